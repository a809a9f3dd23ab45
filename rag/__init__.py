"""wenda: question answering over Chinese document collections, with verified citations.

The pipeline is ``rag.qa.ask``; ``rag.client.Client`` wraps it for notebooks and HTTP.
Nothing heavy is imported here.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
