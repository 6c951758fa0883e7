"""User errors. The CLI prints these as one message and exits with code 2 (no traceback)."""


class RRRNetError(Exception):
    """Base class of every error caused by the user's input rather than by a bug."""


class ConfigError(RRRNetError, ValueError):
    """An impossible model configuration (blocks, branch count, split point, shift ...)."""


class WeightsError(RRRNetError):
    """A checkpoint that cannot be found, fetched, verified or loaded."""
