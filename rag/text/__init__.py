"""The Chinese language layer (the leaves): ``normalize`` (offset-preserving cleaning and script
conversion), ``lexical`` (tokens, BM25, question weights), ``crosslingual`` (English questions over
Chinese text), ``chunk`` (sentences and chunks), ``injection`` (instructions aimed at an AI)."""
