"""Frontends turn user models into the IR: ONNX directly, PyTorch through torch.onnx."""
from .onnx import UnsupportedModelError, import_onnx, supported_ops



def import_torch(*args, **kwargs):
    """See edgepack.frontends.torch.import_torch (imported lazily: torch is optional)."""
    from .torch import import_torch as _import_torch
    return _import_torch(*args, **kwargs)


__all__ = ["UnsupportedModelError", "import_onnx", "import_torch", "supported_ops"]
