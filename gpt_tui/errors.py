"""One small hierarchy of errors whose messages a user can act on.

The CLI turns a `GptTuiError` into one line on stderr and an exit code; the TUI into a
notification. Anything else escaping is a bug.
"""

from __future__ import annotations


class GptTuiError(Exception):
    """Base of every error gpt-tui reports to a user; the message says what to do."""


class UnknownModelError(GptTuiError, ValueError):
    """A model name that is neither in the catalog nor a path to a model."""


class ModelFileError(GptTuiError):
    """A model file or directory is missing, truncated or of the wrong kind."""


class NotEnoughMemoryError(GptTuiError):
    """A model too large for the memory available, refused before converting or loading it."""


class DownloadError(GptTuiError):
    """A download failed (network, HTTP status, verification)."""


class StorageError(GptTuiError):
    """The cache or config location cannot be created or written."""


class SessionFileError(GptTuiError):
    """A saved session file is damaged or from an incompatible version."""


class InputError(GptTuiError, ValueError):
    """An input the user can correct (a position outside the text, a target that is not one
    token): the CLI reports it as a bad argument, exit code 2."""


class BackendError(GptTuiError):
    """A backend could not do what was asked: a server down or answering an error, a stream cut
    short, a response that cannot be trusted. The message is one line for the user."""


class SpeculationError(GptTuiError, ValueError):
    """A speculative-decoding setting that cannot be used with this model."""
