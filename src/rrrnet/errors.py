"""User errors. The CLI prints these as one message and exits with code 2 (no traceback)."""


class RRRNetError(Exception):
    """Base class of every error caused by the user's input rather than by a bug."""


class ConfigError(RRRNetError, ValueError):
    """An impossible model configuration (blocks, branch count, split point, shift ...)."""


class WeightsError(RRRNetError):
    """A checkpoint that cannot be found, fetched, verified or loaded."""


class DataError(RRRNetError):
    """A dataset that cannot be read or split: missing/malformed files, bad images, too few images."""


class RunError(RRRNetError):
    """A run folder that cannot be written, resumed or read."""
