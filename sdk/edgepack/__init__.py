"""edgepack: compile, quantize, run and profile ML models for phones and embedded boards.

    import edgepack
    compiled = edgepack.compile("model.onnx", profile="host", output="model.epk")
    session = edgepack.load("model.epk")
    outputs = session.run({"input": x})
"""
__version__ = "0.1.0"

from .api import CompiledModel, analyze, compile  # noqa: E402
from .errors import ArtifactError, EdgepackError, RunError, UnsupportedError  # noqa: E402
from .planner.search import BudgetError  # noqa: E402


def load(path, num_threads=None):
    """Load an .epk artifact in the native runtime: see edgepack.runtime.Session."""
    from .runtime import load as _load
    return _load(path, num_threads)


__all__ = ["compile", "analyze", "load", "CompiledModel", "ArtifactError", "EdgepackError", "RunError", "UnsupportedError", "BudgetError",
           "__version__"]
