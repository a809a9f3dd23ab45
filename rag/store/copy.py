"""Copy one index into another through the public write path: moving an index to PostgreSQL, and
the tests and bench (evals/backends.py) that compare backends over the same data.

Every document goes with its stored text, normalized text, chunks (same offsets and ordinals) and
stored vectors, so nothing is re-parsed, re-chunked or re-embedded; the destination tokenizes and
weighs the chunks itself. Documents go in batches, one ``commit`` each (one transaction, one
generation); a document already in the destination is replaced.
"""

from __future__ import annotations

from rag.ingest.documents import Document
from rag.store.backend import Change, SearchBackend
from rag.text.chunk import Chunk

__all__ = ["copy_index"]


def copy_index(src: SearchBackend, dst: SearchBackend, batch: int = 64) -> int:
    """Copy every document of ``src`` (as loaded now) into ``dst``; returns how many."""
    src = src.snapshot()
    by_doc: dict[str, list[tuple[int, Chunk]]] = {}
    for chunk_id, chunk in src.chunks.items():
        by_doc.setdefault(chunk.doc_id, []).append((chunk_id, chunk))
    sources = src.sources()
    infos = src.documents()
    with dst.writing():
        have = dst.sources()
        for start in range(0, len(infos), batch):
            change = Change()
            ids: list[int] = []
            for info in infos[start:start + batch]:
                stored = src.stored(info.doc_id)
                doc = Document(info.doc_id, stored.text, info.sha256, info.path, source=info.source,
                               title=stored.title, media_type=stored.media_type, pages=stored.pages,
                               source_sha256=sources[info.doc_id].source_sha256, tags=info.tags)
                chunks = sorted(by_doc.get(info.doc_id, []), key=lambda pair: pair[1].ordinal)
                change.added.append((doc, stored.normalized, [c for _, c in chunks]))
                ids += [i for i, _ in chunks]
                if info.doc_id in have:
                    change.removed.append(info.doc_id)
            change.vectors = src.vectors(ids)
            dst.commit(change)
    return len(infos)
