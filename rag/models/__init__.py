"""Models wenda runs itself: the embedders (``embed``), the bundled GGUF LLMs (``gguf``), the e5
encoder in torch (``e5``, ``vocab``) and the trained reader (``reader``)."""
