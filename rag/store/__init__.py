"""The store: ``index`` (SQLite docstore + FAISS + BM25, one generation at a time), ``durable``
(atomic writes, the writer lock), ``collections`` (named indexes), ``filters`` (which documents a
question may draw on), ``doctor`` (integrity checks)."""
