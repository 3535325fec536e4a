"""edgepack: compile, quantize, run and profile ML models for phones and embedded boards.

    import edgepack
    compiled = edgepack.compile("model.onnx", profile="host", output="model.epk")
    session = edgepack.load("model.epk")
    outputs = session.run({"input": x})

`import edgepack` loads only the exceptions; `edgepack.load` then loads the runtime (numpy and the
native extension). The compiler (onnx, scipy, the planner...) is imported on first use of `compile`,
`analyze`, `CompiledModel` or `BudgetError`, so an application that only runs artifacts starts fast.
"""
__version__ = "0.1.0"

from .errors import ArtifactError, EdgepackError, RunError, UnsupportedError  # noqa: E402


def load(path, num_threads=None):
    """Load an .epk artifact in the native runtime: see edgepack.runtime.Session."""
    from .runtime import load as _load
    return _load(path, num_threads)


# Public names whose modules are imported on first access (PEP 562): name -> (module, attribute).
_LAZY = {
    "compile": ("api", "compile"),
    "analyze": ("api", "analyze"),
    "CompiledModel": ("api", "CompiledModel"),
    "BudgetError": ("planner.search", "BudgetError"),
}


def __getattr__(name):
    import importlib
    if name in _LAZY:
        module, attribute = _LAZY[name]
        value = getattr(importlib.import_module(f"{__name__}.{module}"), attribute)
        globals()[name] = value  # later lookups skip this function
        return value
    # Submodules (edgepack.ir, edgepack.models, ...) were reachable as attributes when `import edgepack`
    # imported the compiler; they still are, imported on first access.
    if not name.startswith("__"):
        try:
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"{__name__}.{name}":
                raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__all__ = ["compile", "analyze", "load", "CompiledModel", "ArtifactError", "EdgepackError", "RunError", "UnsupportedError", "BudgetError",
           "__version__"]
