"""Graph passes. Each pass is one file with `run(graph) -> PassResult`; `PIPELINE` is the default order
before quantization, `FINAL` runs on the quantized graph (what it fuses must stay float), and
`standard_ops` undoes the fusions only the native runtime has, for the other formats' emitters."""
from .base import PassResult, run_passes
from . import (attention_bf16, channels_last, dce, fold_affine, fold_constants, fold_transposes, fuse_activation, fuse_add_norm, fuse_attention, fuse_bias,
               fuse_gelu, fuse_residual, fuse_softmax, merge_matmuls, merge_transposes)
from ..ir import Graph
from ..quant import smooth

PIPELINE = (fold_constants.run, fold_affine.run, fuse_bias.run, fuse_activation.run, fuse_softmax.run,
            merge_transposes.run, dce.run)
FINAL = (fold_transposes.run, fuse_attention.run, fuse_add_norm.run, merge_matmuls.run, fuse_gelu.run)


def standard_ops(graph: Graph) -> Graph:
    """`graph` with attention's three ops, the Softmax's mask and NaN guard, merged MatMuls, a fused Gelu,
    the dynamic MatMul's input scale (smoothing), the float MatMul's operand layouts, the LayerNorm's and the Conv's residuals and the
    channels-last layout written as standard ops again: ONNX,
    TFLite and Core ML have none of them. `graph` itself is not changed."""
    unfused = fuse_gelu.unfuse(fuse_softmax.unfuse(fuse_attention.unfuse(channels_last.unfold(fuse_residual.unfuse(graph)))))
    return fuse_add_norm.unfuse(fold_transposes.unfold(smooth.unfold(merge_matmuls.unmerge(unfused))))


__all__ = ["PassResult", "run_passes", "PIPELINE", "FINAL", "attention_bf16", "channels_last", "fuse_residual",
           "standard_ops"]
