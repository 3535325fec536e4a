"""Graph passes. Each pass is one file with `run(graph) -> PassResult`; `PIPELINE` is the default order."""
from .base import PassResult, run_passes
from . import dce, fold_affine, fold_constants, fuse_activation, fuse_bias

PIPELINE = (fold_constants.run, fold_affine.run, fuse_bias.run, fuse_activation.run, dce.run)

__all__ = ["PassResult", "run_passes", "PIPELINE"]
