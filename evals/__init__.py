"""Evaluation: gold-set harness (``rag eval``), public-benchmark runner (``rag bench``),
pure metric functions and the report writer. Modules: ``metrics``, ``harness``, ``report``,
``bench``; ``evals/gold/`` holds the gold sets."""
