"""llama-index interop: ``WendaRetriever``, a ``BaseRetriever`` over wenda's hybrid retrieval.

Plug it into any llama-index query engine; nodes carry the ORIGINAL passage text and metadata
``doc_id``, ``chunk_id``, ``start``, ``end`` (offsets into the original document)::

    from llama_index.core.query_engine import RetrieverQueryEngine
    engine = RetrieverQueryEngine.from_args(WendaRetriever(index, top_k=5), llm=my_llm)
    hr = WendaRetriever.from_settings(collection="hr", filter={"tags_any": ["2024"]})

Only retrieval is wrapped: llama-index's own FAISS store cannot delete and its default BM25
tokenizer barely splits Chinese, so wenda's index stays the store.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from rag.answer.retrieve import make_query, retrieve
from rag.store.backend import SearchBackend
from rag.store.collections import DEFAULT, open_collection
from rag.store.filters import Filter
from rag.text.normalize import to_simplified

if TYPE_CHECKING:
    from rag.config import Settings

__all__ = ["WendaRetriever"]


class WendaRetriever(BaseRetriever):
    """The ``top_k`` best passages of ``index`` for a query, as llama-index nodes; ``filter`` (a
    ``Filter`` or its JSON dict) limits the documents they may come from."""

    def __init__(self, index: SearchBackend, top_k: int = 5,
                 filter: Filter | Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self._index, self._top_k = index, top_k
        self._where = Filter.parse(filter) or None

    @classmethod
    def from_settings(cls, settings: Settings | None = None, *, collection: str = DEFAULT,
                      top_k: int | None = None,
                      filter: Filter | Mapping[str, Any] | None = None) -> WendaRetriever:
        """Over collection ``collection`` under ``settings.index_dir`` (``Settings()`` from the
        environment by default); the default collection is built from seeds/ when empty, like
        ``rag ask``; another one must exist (``NotFoundError``)."""
        from rag.bootstrap import open_index
        from rag.config import Settings
        from rag.models.embed import load_embedder

        settings = settings or Settings()
        index = (open_index(settings) if collection == DEFAULT else
                 open_collection(settings.location(), collection, load_embedder(settings.embedder)))
        return cls(index, settings.top_k if top_k is None else top_k, filter)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        question = " ".join(query_bundle.query_str.split())
        if not question:
            return []
        query = make_query(self._index, to_simplified(question), self._where)
        hits = retrieve(self._index, query, self._top_k)
        nodes = []
        for hit in hits:
            c = hit.chunk
            node = TextNode(id_=c.chunk_id, text=self._index.text(c.doc_id)[c.start:c.end],
                            metadata={"doc_id": c.doc_id, "chunk_id": c.chunk_id,
                                      "start": c.start, "end": c.end})
            nodes.append(NodeWithScore(node=node, score=hit.score))
        return nodes
