"""Exceptions edgepack raises. Every message names the problem (file, op, tensor, expected vs got)."""


class EdgepackError(Exception):
    """Base class of edgepack's own errors."""


class ArtifactError(EdgepackError, ValueError):
    """An .epk file is corrupt, truncated or inconsistent."""


class UnsupportedError(EdgepackError, ValueError):
    """A valid model or artifact asks for something edgepack does not support."""


class RunError(EdgepackError, RuntimeError):
    """Inference failed on run-time data (e.g. an index out of range in an input)."""
