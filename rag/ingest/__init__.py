"""Ingest: find and name files (``documents``), bring an index up to date with them
(``pipeline``), and run uploads as jobs (``jobs``). Parsing each format is ``rag.loaders``.

``from rag.ingest import ingest, ingest_paths`` is the stage's face; ``locked`` and ``wipe``
(the writer lock and ``--rebuild``) live with the store and are named here too.
"""

from rag.ingest.pipeline import IngestReport, delete_documents, ingest, ingest_paths
from rag.store.durable import locked, wipe

__all__ = ["IngestReport", "delete_documents", "ingest", "ingest_paths", "locked", "wipe"]
