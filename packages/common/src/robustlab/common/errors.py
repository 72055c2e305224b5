"""Exceptions raised by robustlab. Each message names the file, field or value at fault and what was expected."""

__all__ = [
    "RobustlabError",
    "CheckpointError",
    "DivergenceError",
    "NonFiniteLossError",
    "ConfigError",
    "DataError",
    "DownloadError",
]


class RobustlabError(Exception):
    """Base class of every error robustlab raises on purpose; the CLI prints these without a traceback."""


class CheckpointError(RobustlabError):
    """A checkpoint file is missing, truncated, corrupt or does not fit the model it is loaded into."""


class DivergenceError(RobustlabError, FloatingPointError):
    """Training diverged: the loss grew by orders of magnitude or the weights are no longer finite.

    The message names the epoch (and step where known); the files already written are those of the last good
    epoch. A recipe records such a run as diverged, not as a result.
    """


class NonFiniteLossError(DivergenceError):
    """The training loss became NaN or infinite; the message names the epoch and step."""


class ConfigError(RobustlabError, ValueError):
    """A configuration key or value is unknown or of the wrong type."""


class DataError(RobustlabError, ValueError):
    """Input data is malformed: the message names the file, record or field."""


class DownloadError(RobustlabError):
    """A download failed or its content does not match the expected checksum."""
