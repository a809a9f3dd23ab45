"""The answer stage: ``retrieve`` (hybrid search), ``draft`` (its nouns: Passage, Evidence, Draft,
Generator), ``reading`` (the trained reader's verdict), ``extract`` + ``span`` (quoting answers),
``generate`` (which backend), ``llm`` + ``grounding`` + ``prompts`` (LLM answers, checked), ``cite``
(verified citations). ``rag.qa`` puts them together."""
