# Every target sets itself up: a virtualenv in .venv, torch==2.13.0 (the CPU wheel) first,
# then this package with its dev extras. Re-running is quick once installed.
VENV ?= .venv
PY := $(VENV)/bin/python
RAG := $(VENV)/bin/rag
STAMP := $(VENV)/.installed-stamp
Q ?= 秦创原量子信息科技联合创新中心将聚焦哪些领域?

.PHONY: install serve ask chat test test-fast lint eval bench clean

$(STAMP): pyproject.toml
	@echo "==> creating $(VENV) and installing wenda (first run: a few minutes)"
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --progress-bar on torch==2.13.0
	$(PY) -m pip install --progress-bar on -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

serve: install  ## build the index from seeds/ if there is none, then serve on :8000
	$(RAG) serve

ask: install  ## make ask Q="问题"
	$(RAG) ask "$(Q)"

chat: install
	$(RAG) chat

test: install  ## the whole suite, integration tier (real bundled model) included
	$(PY) -m pytest -q

test-fast: install  ## unit tests only (fake embedder)
	$(PY) -m pytest -q -m "not integration and not browser"

lint: install
	$(VENV)/bin/ruff check rag server evals tests
	$(VENV)/bin/mypy rag server

eval: install  ## the seeds gold set
	$(RAG) eval --dataset evals/gold/seeds.jsonl --json evals/out/seeds.json

bench: install  ## both public benchmarks (DRCD, CMRC 2018) with the BM25 baseline
	$(RAG) bench squad ../shared/benchmarks/drcd_dev.json --json evals/out/drcd.json --index-dir .rag-bench/drcd
	$(RAG) bench squad ../shared/benchmarks/cmrc2018_dev.json --json evals/out/cmrc.json --index-dir .rag-bench/cmrc

clean:
	rm -rf .rag .rag-bench evals/out
