"""Frontends turn user models into the IR: ONNX directly, PyTorch through torch.onnx."""
from .onnx import UnsupportedModelError, import_onnx, supported_ops

__all__ = ["UnsupportedModelError", "import_onnx", "supported_ops"]
