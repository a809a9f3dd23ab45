"""One router per resource: ``ask``, ``openai`` (chat completions), ``documents``, ``health``."""
