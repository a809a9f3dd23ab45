"""wenda's HTTP server: ``create_app`` for tests and embedding, ``run`` for ``rag serve``."""

from server.app import create_app, run

__all__ = ["create_app", "run"]
