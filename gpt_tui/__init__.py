"""gpt-tui: a terminal playground for GPT-style language models."""

__version__ = "0.1.0"
