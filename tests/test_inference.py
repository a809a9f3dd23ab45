"""The reader's forward pass (rag/models/inference.py) against the transformers module it was
trained as: same logits, same spans, and transformers never imported to answer."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from rag.models import inference, reader

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not reader.WEIGHTS.exists(), reason="no shipped reader weights")]

QUESTION = "郭柱国担任什么职务?"
PASSAGES = [
    "咸阳市市长冷劲松主持。咸阳市委副书记郭柱国,咸阳市委常委、市委秘书长、市委统战部部长王春霄,"
    "秦汉新城党委书记、管委会主任周东出席。" * 6,  # two windows: the stride is exercised
    "Mixed 中英文 text: 梵语的学术研究在欧洲由德国学者开创。",
    "短",
]


@pytest.fixture(scope="module")
def network() -> inference.Network:
    return inference.load_network(reader.WEIGHTS)


def test_logits_match_the_torch_module(network: inference.Network) -> None:
    torch_model = reader.load_reader(reader.WEIGHTS)
    q, *passages = reader.encode_texts([QUESTION, *PASSAGES])
    windows = [w for i, p in enumerate(passages) for w in reader.make_windows(q.ids, p.ids, i)]
    assert len(windows) >= 4 and len({len(w.ids) for w in windows}) > 1  # padding is exercised
    ours = reader.window_logits(network, windows)
    theirs = reader.window_logits(torch_model, windows)
    for w, (s1, e1), (s2, e2) in zip(windows, ours, theirs, strict=True):
        real = len(w.ids)  # logits at padding are never read
        assert np.abs(s1[:real] - s2[:real]).max() < 1e-3
        assert np.abs(e1[:real] - e2[:real]).max() < 1e-3


def test_reader_reads_like_the_torch_module(network: inference.Network) -> None:
    torch_model = reader.load_reader(reader.WEIGHTS)
    ours = reader.read(QUESTION, PASSAGES, network)
    theirs = reader.read(QUESTION, PASSAGES, torch_model)
    for a, b in zip(ours, theirs, strict=True):
        assert (a.start, a.end, a.text) == (b.start, b.end, b.text)
        assert math.isclose(a.margin, b.margin, abs_tol=1e-3)


def test_answering_never_imports_transformers() -> None:
    code = ("import sys; from rag.answer.reading import load_judge; "
            "from rag.models import reader; j = load_judge('short'); "
            "r = reader.read('谁发现了印欧语系?', ['后来威廉·琼斯发现了印欧语系。'], j.model); "
            "assert '威廉' in r[0].text, r; "
            "assert 'transformers' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
