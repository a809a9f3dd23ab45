"""PostgreSQL + pgvector as the index (``RAG_BACKEND=postgres``): many serving machines, one store.

``PostgresIndex`` (index.py) implements ``rag.store.backend.SearchBackend`` over one collection;
``collections`` lists, creates and drops them. The modules: ``schema`` (tables, connections),
``write`` (the one transaction of a commit), ``bm25`` (bm25s's scores as sparse inner products),
``search`` (the SQL of both searches), ``chunks`` (the chunk map a serving process caches),
``doctor`` (``rag doctor``: do counts, terms, indexes and weights agree with the documents?).
"""

from rag.store.postgres import collections
from rag.store.postgres.index import PostgresIndex

__all__ = ["PostgresIndex", "collections"]
