"""Every error wenda raises on purpose.

    RagError                     root: catch this at an edge (CLI, HTTP) and show its message
    ├── InputError               a question or request is malformed (empty, too long, bad top_k)
    ├── DocumentError            a file cannot be loaded (missing, unreadable, encrypted, corrupt,
    │   │                        no text)
    │   ├── UnsupportedFormatError   a type wenda does not read (sniffed from the bytes)
    │   └── DocumentTooLargeError    over a limit: pages, characters, unpacked bytes
    ├── IndexStateError          the index is missing, corrupt, locked, or was made by an
    │   │                        incompatible version or embedder
    │   └── IncompatibleIndexError
    ├── NotFoundError            a named document does not exist in the index
    ├── ConfigError              a setting (``RAG_*``) is out of range or inconsistent
    ├── IngestCancelled          an ingest was cancelled before its commit (nothing changed)
    └── ModelError               a model is missing, fails its checksum, or fails to run

Edges map these in one place: ``rag.cli`` to a message and exit code, ``server`` to an HTTP status
and a stable ``error.code``.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DocumentError",
    "DocumentTooLargeError",
    "IncompatibleIndexError",
    "IndexStateError",
    "IngestCancelled",
    "InputError",
    "ModelError",
    "NotFoundError",
    "RagError",
    "UnsupportedFormatError",
]


class RagError(Exception):
    """Root of wenda's errors. ``code`` is stable and machine-readable."""

    code = "rag_error"


class InputError(RagError):
    """A question or request is malformed."""

    code = "invalid_input"


class DocumentError(RagError):
    """A file cannot be loaded as a document."""

    code = "invalid_document"


class UnsupportedFormatError(DocumentError):
    """The file is of a type wenda does not read."""

    code = "unsupported_media_type"


class DocumentTooLargeError(DocumentError):
    """The file is over a limit (pages, extracted characters, decompressed bytes)."""

    code = "document_too_large"


class IndexStateError(RagError):
    """The index is missing, corrupt or locked."""

    code = "index_error"


class IncompatibleIndexError(IndexStateError):
    """The index on disk was built by another schema version or another embedder."""

    code = "incompatible_index"


class NotFoundError(RagError):
    """A named document does not exist."""

    code = "not_found"


class ConfigError(RagError):
    """A setting is out of range or contradicts another one."""

    code = "invalid_config"


class IngestCancelled(RagError):
    """An ingest (an upload job) was cancelled, or dropped, before its commit: nothing changed."""

    code = "cancelled"


class ModelError(RagError):
    """A model is missing, corrupt, or failed."""

    code = "model_error"
