"""Train the reader (rag/models/reader.py), resumably, then evaluate and export it.

    python -m evals.train_reader [--minutes M] [--device cpu|cuda] [--resume]

Fixed seed; AdamW with linear warmup and decay; the word-embedding table is always frozen, and on
CPU the bottom ``--freeze`` layers too (their parameters need no gradient, so autograd records
nothing below them: the same saving as running them under ``torch.no_grad()``). A checkpoint with
optimizer, schedule and step goes to ``.reader/`` every few minutes; ``--resume`` continues at the
same step with the same batches and dropout. At the end: the table on the validation split
(evals/reader_eval.py) and the shipped file rag/models/reader.safetensors with its sha256.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from pathlib import Path
from typing import Any

import numpy as np

from evals import reader_data
from rag.models import reader

WORK = reader_data.WORK
SEED = 13


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m evals.train_reader", description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=None, help="training time budget for this run")
    p.add_argument("--until", type=int, default=None,
                   help="stop at this step, the schedule unchanged (the shipped reader: see the Makefile)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--resume", action="store_true", help="continue from .reader/checkpoint.pt")
    p.add_argument("--init", default=None,
                   help="start from this checkpoint's weights (new optimizer and schedule)")
    p.add_argument("--epochs", type=float, default=2.0)
    p.add_argument("--steps", type=int, default=None, help="schedule length (default: the epochs)")
    p.add_argument("--freeze", type=int, default=None, help="bottom layers frozen (default: 6 cpu, 0 cuda)")
    p.add_argument("--max-len", type=int, default=None, help="tokens per window (default 256 cpu, 384 cuda)")
    p.add_argument("--stride", type=int, default=128)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--warmup", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=SEED, help="batch order, windows kept and dropout")
    p.add_argument("--keyword-share", type=float, default=0.4)
    p.add_argument("--swapped", type=float, default=0.0,
                   help="share of training questions also asked with an entity or number swapped (no answer)")
    p.add_argument("--officials", type=int, default=0,
                   help="synthetic news reports on officials (evals.reader_hard)")
    p.add_argument("--null-windows", type=float, default=0.3, help="share of answerless gold windows kept")
    p.add_argument("--checkpoint-minutes", type=float, default=5.0)
    p.add_argument("--eval-limit", type=int, default=None, help="questions per evaluated part (default all)")
    p.add_argument("--no-eval", action="store_true")
    p.add_argument("--data", default=str(reader_data.BENCHMARKS), help="benchmarks folder")
    args = p.parse_args(argv)
    cuda = args.device == "cuda"
    args.freeze = args.freeze if args.freeze is not None else (0 if cuda else 6)
    args.max_len = args.max_len or (384 if cuda else 256)
    return args


def token_span(enc: reader.Encoded, start: int, end: int) -> tuple[int, int]:
    """First and last token overlapping characters [start, end)."""
    inside = [i for i, (a, b) in enumerate(zip(enc.starts, enc.ends, strict=True)) if b > start and a < end]
    return inside[0], inside[-1]


def make_features(examples: list[reader_data.Example], max_len: int, stride: int,
                  null_share: float, seed: int = SEED) -> list[tuple[list[int], int, int]]:
    """(input ids, start label, end label) windows; label 0 (<s>) where the window holds no answer.

    One window per example carries its answer (the one where it is most central); of the answerless
    windows of gold paragraphs a share is kept; a no-answer example gives one random window."""
    rng = random.Random(seed)
    questions = reader.encode_texts([e.question for e in examples])
    contexts = reader.encode_texts([e.context for e in examples])
    out = []
    for ex, q, c in zip(examples, questions, contexts, strict=True):
        windows = reader.make_windows(q.ids, c.ids, 0, max_len, stride)
        if ex.start is None or ex.end is None:
            w = rng.choice(windows)
            out.append((w.ids, 0, 0))
            continue
        a, b = token_span(c, ex.start, ex.end)
        holding = [w for w in windows if w.first <= a and b < w.last]
        best = max(holding, key=lambda w: min(a - w.first, w.last - 1 - b), default=None)
        for w in windows:
            if w is best:
                out.append((w.ids, w.offset + a - w.first, w.offset + b - w.first))
            elif rng.random() < null_share:
                out.append((w.ids, 0, 0))
    return out


def hard_examples(examples: list[reader_data.Example], swapped: float,
                  officials: int) -> list[reader_data.Example]:
    """The hard no-answer examples (evals.reader_hard), built once and kept in .reader/."""
    if not (swapped or officials):
        return []
    from evals import reader_hard

    path = WORK / f"data-hard-{swapped}-{officials}.jsonl"
    if not path.exists():
        made = reader_hard.swapped(examples, swapped) + reader_hard.officials(officials)
        reader_data.save_examples(made, path)
    return reader_data.load_examples(path)


def freeze(model: Any, layers: int) -> None:
    model.bert.embeddings.word_embeddings.weight.requires_grad_(False)  # 82% of e5: never trained
    if layers:
        for param in [*model.bert.embeddings.parameters(), *model.bert.encoder.layer[:layers].parameters()]:
            param.requires_grad_(False)


def schedule(step: int, total: int, warmup: float) -> float:
    """Linear warmup over the first ``warmup`` share of steps, then linear decay to 0."""
    w = max(1, int(total * warmup))
    return step / w if step < w else max(0.0, (total - step) / max(1, total - w))


def batch_tensors(batch: list[tuple[list[int], int, int]], device: str) -> tuple[Any, ...]:
    import torch

    windows = [reader.Window(ids, 0, 0, 0, 0) for ids, _, _ in batch]
    ids, mask = reader.pad_batch(windows)
    starts = torch.tensor([s for _, s, _ in batch])
    ends = torch.tensor([e for _, _, e in batch])
    return (torch.from_numpy(ids).to(device), torch.from_numpy(mask).to(device), starts.to(device),
            ends.to(device))


def save_checkpoint(model: Any, optimizer: Any, step: int, args: argparse.Namespace) -> None:
    import torch

    state = {k: v for k, v in model.state_dict().items() if k != "bert." + reader.WORD}
    tmp = WORK / "checkpoint.pt.tmp"
    torch.save({"model": state, "optimizer": optimizer.state_dict(), "step": step, "args": vars(args)}, tmp)
    tmp.replace(WORK / "checkpoint.pt")  # atomic: an interrupted save leaves the previous checkpoint


def train(args: argparse.Namespace) -> Any:
    import torch

    torch.set_num_threads(2) if args.device == "cpu" else None
    torch.manual_seed(args.seed)
    model = reader.new_reader()
    checkpoint = torch.load(WORK / "checkpoint.pt", weights_only=False) if args.resume else None
    if args.init and not checkpoint:  # warm start: an earlier run's weights, this run's schedule
        model.load_state_dict(torch.load(args.init, weights_only=False)["model"], strict=False)
    if checkpoint:
        model.load_state_dict(checkpoint["model"], strict=False)
        saved = checkpoint["args"]  # the run's shape stays; the budget, the device and (when
        for key in ("epochs", "steps", "freeze", "max_len", "stride", "batch", "lr", "warmup",
                    "keyword_share", "null_windows", "seed", "swapped", "officials"):  # given) a
            if not (key == "steps" and args.steps):  # shorter schedule may change; older runs lack
                setattr(args, key, saved.get(key, getattr(args, key)))  # the seed and hard examples
    freeze(model, args.freeze)
    model.to(args.device).train()
    examples = reader_data.cached_examples("train", args.keyword_share, WORK, Path(args.data))
    examples += hard_examples(examples, args.swapped, args.officials)
    features = make_features(examples, args.max_len, args.stride, args.null_windows, args.seed)
    per_epoch = math.ceil(len(features) / args.batch)
    total = args.steps or int(per_epoch * args.epochs)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)
    step = 0
    if checkpoint:
        optimizer.load_state_dict(checkpoint["optimizer"])
        step = checkpoint["step"]
    print(f"{len(features)} windows, {per_epoch} steps/epoch, schedule {total} steps, from step {step}; "
          f"{sum(p.numel() for p in params) / 1e6:.1f}M trainable", flush=True)
    began = last_save = time.monotonic()
    done_at_start = step
    while step < total:
        epoch, at = divmod(step, per_epoch)
        order = np.random.default_rng(args.seed + epoch).permutation(len(features))
        batch = [features[i] for i in order[at * args.batch:(at + 1) * args.batch]]
        ids, mask, starts, ends = batch_tensors(batch, args.device)
        torch.manual_seed(args.seed * 100_003 + step)  # dropout: the same masks after a resume
        for group in optimizer.param_groups:
            group["lr"] = args.lr * schedule(step, total, args.warmup)
        with torch.autocast(args.device, dtype=torch.bfloat16, enabled=args.device == "cuda"):
            start_logits, end_logits = model(ids, mask)
        # padding can hold no answer
        start_logits = start_logits.masked_fill(mask == 0, -1e4)
        end_logits = end_logits.masked_fill(mask == 0, -1e4)
        loss = (torch.nn.functional.cross_entropy(start_logits, starts)
                + torch.nn.functional.cross_entropy(end_logits, ends)) / 2
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        step += 1
        elapsed = time.monotonic() - began
        if step % 10 == 0 or step == total:
            rate = (step - done_at_start) * args.batch / elapsed
            print(f"step {step}/{total} epoch {epoch} loss {loss.item():.3f} {rate:.2f} windows/s "
                  f"{elapsed / 60:.1f} min", flush=True)
        out_of_time = args.minutes is not None and elapsed > args.minutes * 60
        if args.until is not None and step >= args.until:
            save_checkpoint(model, optimizer, step, args)
            print(f"stopped at step {step}/{total} (--until)", flush=True)
            break
        if out_of_time or step == total or time.monotonic() - last_save > args.checkpoint_minutes * 60:
            save_checkpoint(model, optimizer, step, args)
            last_save = time.monotonic()
        if out_of_time:
            print(f"time budget spent at step {step}/{total}: --resume continues", flush=True)
            break
    return model.float().eval()


def export(model: Any, args: argparse.Namespace) -> Path:
    """The shipped weights and, beside them, a JSON with their checksum and provenance."""
    import hashlib

    path = reader.WEIGHTS
    meta = {"max_len": str(args.max_len), "stride": str(args.stride), "freeze": str(args.freeze)}
    reader.save_reader(model.cpu(), path, meta)
    path.chmod(0o644)  # safetensors creates it owner-only; it is a shipped, committed file
    info = {"file": path.name, "format": "int8", "bytes": path.stat().st_size,
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), **meta}
    path.with_suffix(".json").write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {path} ({info['bytes'] / 1e6:.1f} MB, int8)", flush=True)
    return path


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    WORK.mkdir(exist_ok=True)
    if not (WORK / f"data-train-{args.keyword_share}.jsonl").exists():  # else the cache holds the split
        reader_data.write_split(reader_data.split_articles(list(reader_data.load_articles(Path(args.data)))))
    model = train(args)
    path = export(model, args)
    if not args.no_eval:
        from evals import reader_eval

        reader_eval.main(["--weights", str(path), "--limit", str(args.eval_limit or 0), "--data", args.data],
                         trained=model)


if __name__ == "__main__":
    main()
