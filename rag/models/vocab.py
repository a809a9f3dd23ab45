"""The e5 vocabulary pruned to the pieces Chinese and English text can use, and its tokenizer.

Why pruning is lossless for such text: a unigram tokenizer segments a text into pieces that are
substrings of that (normalized, metaspaced) text, so every piece on any candidate path is made of
the text's own characters. Keeping every piece made only of ``ALLOWED`` characters keeps every
candidate of a text written in them, with the same scores: Viterbi picks the same path, and the
pruned ids map one to one onto the original ids (``KEEP[new] == old``). The ``<unk>`` penalty
(tokenizers: the lowest score minus 10) is kept equal by giving the unreachable ``<unk>`` piece
the full vocabulary's lowest score. Characters outside ``ALLOWED`` still get their single-character
pieces, so other scripts degrade to characters instead of ``<unk>``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from rag.models import e5

if TYPE_CHECKING:
    from tokenizers import Tokenizer

# Code point ranges of Chinese and English text (after e5.normalize: full-width forms become ASCII).
ALLOWED_RANGES = [
    (0x20, 0x7E),  # ASCII
    (0xA0, 0x17F),  # Latin-1 and Latin Extended-A: ° × ·, and names in both languages (Müller, Göttingen)
    (0x2000, 0x206F),  # general punctuation: — ‘ ’ “ ” … ‰ ※
    (0x2100, 0x218F),  # letterlike and number forms: ℃ № Ⅱ
    (0x2190, 0x22FF),  # arrows, mathematical operators
    (0x2460, 0x24FF),  # enclosed alphanumerics: ① ⑴
    (0x2500, 0x257F),  # box drawing
    (0x2581, 0x2581),  # ▁, SentencePiece's metaspace
    (0x25A0, 0x26FF),  # geometric shapes, miscellaneous symbols: ■ ● ★
    (0x2E80, 0x2FDF),  # CJK radicals
    (0x3000, 0x303F),  # CJK symbols and punctuation: 。 、 「 」 《 》
    (0x3040, 0x30FF),  # kana: Japanese names and titles quoted in Chinese text
    (0x3100, 0x312F), (0x31A0, 0x31BF),  # bopomofo
    (0x3200, 0x33FF),  # enclosed CJK, CJK compatibility
    (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF),  # CJK ideographs
    (0xFE30, 0xFE6F), (0xFF00, 0xFFEF),  # CJK compatibility forms, half- and full-width forms
    (0x20000, 0x2FFFF),  # CJK ideograph extensions B and beyond
]


def is_allowed(ch: str) -> bool:
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in ALLOWED_RANGES)


@lru_cache(maxsize=1)
def keep_ids() -> np.ndarray:
    """Original ids of the kept pieces, ascending: the specials, every piece of ``ALLOWED``
    characters, and every single-character piece (``x`` or ``▁x``) of any script."""
    f = e5.read_e5_file()
    specials = set(f.specials.values())
    keep = [i for i, piece in enumerate(f.pieces)
            if i in specials or all(map(is_allowed, piece)) or len(piece.removeprefix("▁")) == 1]
    return np.array(keep, np.int32)


def build_tokenizer(keep: np.ndarray) -> Tokenizer:
    """e5's tokenizer over the kept pieces only; new id ``i`` is original id ``keep[i]``."""
    f = e5.read_e5_file()
    unk_old = f.specials["unk"]
    vocab = [(f.pieces[i], float(f.scores[i])) for i in keep.tolist()]
    unk = int(np.searchsorted(keep, unk_old))
    # same <unk> penalty as the full vocabulary (min score - 10); the piece itself never matches text
    vocab[unk] = (e5.UNK_PIECE, float(f.scores.min()))
    tokenizer = e5.unigram(vocab, unk)
    return tokenizer  # no post-processor: the reader assembles <s> question </s></s> passage </s> itself


@lru_cache(maxsize=1)
def pruned_tokenizer() -> Tokenizer:
    return build_tokenizer(keep_ids())


def normalized_origin(text: str) -> tuple[str, list[int]]:
    """``e5.normalize(text)`` and, per normalized character, the index of the input character it came from."""
    table = e5.read_e5_file().norm_map
    chars: list[str] = []
    origin: list[int] = []
    for i, ch in enumerate(text):
        out = table.get(ord(ch), ch)
        chars.append(out)
        origin.extend([i] * len(out))
    return "".join(chars), origin


def specials(keep: np.ndarray) -> dict[str, int]:
    """The new ids of <s>, </s>, <pad>, <unk>."""
    f = e5.read_e5_file()
    return {name: int(np.searchsorted(keep, old)) for name, old in f.specials.items()}


def pruned_embeddings(keep: np.ndarray) -> np.ndarray:
    """The kept rows of e5's word-embedding table, float32, read from the bundled 4-bit file.

    The reader never trains this table, so the shipped weights need not repeat it: these rows are
    exactly the ones it was trained with."""
    f = e5.read_e5_file()
    raw = f.tensors["emb.word"]
    hidden = f.config["hidden"]
    if raw.dtype != e5.Q4_0:
        return np.array(raw.reshape(-1, hidden)[keep])
    per_row = hidden // 32  # Q4_0 blocks per row
    blocks = raw.reshape(-1, per_row)[keep].ravel()
    return e5.dequantize_q4_0(blocks).reshape(len(keep), hidden)
