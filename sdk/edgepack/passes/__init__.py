"""Graph passes. Each pass is one file with `run(graph) -> PassResult`; `PIPELINE` is the default order."""
from .base import PassResult, run_passes
from . import (dce, fold_affine, fold_constants, fold_transposes, fuse_activation, fuse_add_norm, fuse_bias, fuse_softmax,
               merge_transposes)

PIPELINE = (fold_constants.run, fold_affine.run, fuse_bias.run, fuse_activation.run, fuse_softmax.run,
            merge_transposes.run, dce.run)

__all__ = ["PassResult", "run_passes", "PIPELINE"]
