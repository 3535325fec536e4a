"""Attention behind dynamic int8 MatMuls takes bfloat16 products where the device has bfloat16 dot
products: an `Attention` node whose Q, K and V all come (through reshapes and transposes) from dynamic
int8 MatMuls gets bf16 = 1 when the profile's ISA lists avx512-bf16. Its two products then take bfloat16
operands with float sums (the op's definition: ir/ops.py; reference/ops.py), which vdpbf16ps computes
at twice the rate of float32 FMAs (AVX-512 BF16: 32 products an instruction against 16).

The int8-dynamic recipe already rounds those MatMuls' inputs to 8 bits per row; the attention's
bfloat16 operands (8 significant bits) add less than that: on all-MiniLM-L6-v2 (200 sentences, the
reference executor) mean / min cosine to fp32 0.99948 / 0.99903 -> 0.99947 / 0.99893, top-10 neighbour
agreement 0.979 -> 0.977. Attention fed by float MatMuls (an fp32 or fp16 model) stays float.

This runs after the FINAL passes (api.compile), with the profile's ISA. Builds without AVX-512 BF16
compute the same definition by rounding the operands and multiplying in float32 (native/kernels/ref/
matmul.cpp). Emitters write attention's three float ops back (fuse_attention.unfuse): ONNX Runtime,
LiteRT and Core ML run it in float32."""
from __future__ import annotations

from typing import Iterable

from ..ir import Graph
from ..quant.smooth import is_dynamic_matmul
from .base import PassResult

_MOVEMENT = ("Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten", "Identity")
FEATURE = "avx512-bf16"


def _from_dynamic_matmul(graph: Graph, producers: dict, name: str) -> bool:
    node = producers.get(name)
    while node is not None and node.op in _MOVEMENT:
        node = producers.get(node.inputs[0])
    return node is not None and is_dynamic_matmul(graph, node)


def run(graph: Graph, isa: Iterable[str]) -> PassResult:
    if FEATURE not in set(isa):
        return PassResult(graph, False)
    producers = graph.producers()
    changed = False
    for node in graph.nodes:
        if (node.op == "Attention" and not node.attrs.get("bf16", 0)
                and all(_from_dynamic_matmul(graph, producers, name) for name in node.inputs[:3])):
            node.attrs["bf16"] = 1
            changed = True
    return PassResult(graph, changed)
