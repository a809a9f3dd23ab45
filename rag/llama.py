"""llama-index interop: ``WendaRetriever``, a ``BaseRetriever`` over wenda's hybrid retrieval.

Plug it into any llama-index query engine; nodes carry the ORIGINAL passage text and metadata
``doc_id``, ``chunk_id``, ``start``, ``end`` (offsets into the original document)::

    from llama_index.core.query_engine import RetrieverQueryEngine
    engine = RetrieverQueryEngine.from_args(WendaRetriever(index, top_k=5), llm=my_llm)

Only retrieval is wrapped: llama-index's own FAISS store cannot delete and its default BM25
tokenizer barely splits Chinese, so wenda's index stays the store.
"""

from __future__ import annotations

from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from rag.index import Index
from rag.normalize import to_simplified
from rag.retrieve import make_query, retrieve

__all__ = ["WendaRetriever"]


class WendaRetriever(BaseRetriever):
    """The ``top_k`` best passages of ``index`` for a query, as llama-index nodes."""

    def __init__(self, index: Index, top_k: int = 5) -> None:
        super().__init__()
        self._index, self._top_k = index, top_k

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        question = " ".join(query_bundle.query_str.split())
        if not question:
            return []
        hits = retrieve(self._index, make_query(self._index, to_simplified(question)), self._top_k)
        nodes = []
        for hit in hits:
            c = hit.chunk
            node = TextNode(id_=c.chunk_id, text=self._index.text(c.doc_id)[c.start:c.end],
                            metadata={"doc_id": c.doc_id, "chunk_id": c.chunk_id,
                                      "start": c.start, "end": c.end})
            nodes.append(NodeWithScore(node=node, score=hit.score))
        return nodes
