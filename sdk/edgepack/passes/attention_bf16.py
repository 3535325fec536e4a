"""Attention behind dynamic int8 MatMuls takes bfloat16 products where the device has bfloat16 dot
products: an `Attention` node whose Q, K and V all come (through reshapes and transposes) from dynamic
int8 MatMuls gets bf16 = 1 when the profile's ISA lists avx512-bf16. Its two products then take bfloat16
operands with float sums (the op's definition: ir/ops.py; reference/ops.py), which vdpbf16ps computes
at twice the rate of float32 FMAs (AVX-512 BF16: 32 products an instruction against 16).

The int8-dynamic recipe already rounds those MatMuls' inputs to 8 bits per row; the attention's
bfloat16 operands (8 significant bits) add less than that: on all-MiniLM-L6-v2 (200 sentences, the
reference executor) mean / min cosine to fp32 0.99948 / 0.99903 -> 0.99947 / 0.99893, top-10 neighbour
agreement 0.979 -> 0.977. Attention fed by float MatMuls (an fp32 or fp16 model) stays float.

A bf16 Attention's kernel packs K for its products whatever K's layout, so a Transpose that only
feeds K (the head split of K^T, kept by fold_transposes because it moves the last axis, through
Reshapes that undo each other) folds into its `k_perm`: one copy of K per layer less (all-MiniLM-L6-v2:
6 Transposes of [128, 12, 32]).

This runs after the FINAL passes (api.compile), with the profile's ISA. Builds without AVX-512 BF16
compute the same definition by rounding the operands and multiplying in float32 (native/kernels/ref/
matmul.cpp). Emitters write attention's three float ops back (fuse_attention.unfuse): ONNX Runtime,
LiteRT and Core ML run it in float32."""
from __future__ import annotations

from typing import Iterable

from ..ir import Graph
from ..quant.smooth import is_dynamic_matmul
from .base import PassResult, single_consumer

_MOVEMENT = ("Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten", "Identity")
FEATURE = "avx512-bf16"


def _from_dynamic_matmul(graph: Graph, producers: dict, name: str) -> bool:
    node = producers.get(name)
    while node is not None and node.op in _MOVEMENT:
        node = producers.get(node.inputs[0])
    return node is not None and is_dynamic_matmul(graph, node)


def _fold_k_transpose(graph: Graph, node, producers: dict, consumers: dict) -> bool:
    """K = Transpose(x) [-> Reshapes back to the Transpose's shape] becomes x with k_perm = the perm."""
    if "k_perm" in node.attrs:
        return False
    chain, name = [], node.inputs[1]
    producer = producers.get(name)
    while producer is not None and producer.op == "Reshape" and single_consumer(graph, name, consumers):
        chain.append(producer)
        name = producer.inputs[0]
        producer = producers.get(name)
    if (producer is None or producer.op != "Transpose" or not single_consumer(graph, name, consumers)
            or graph.values[name].shape != graph.values[node.inputs[1]].shape):
        return False
    node.inputs[1] = producer.inputs[0]
    node.attrs["k_perm"] = [int(p) for p in producer.attrs["perm"]]
    for dead in chain + [producer]:
        graph.nodes.remove(dead)
    return True


def run(graph: Graph, isa: Iterable[str]) -> PassResult:
    if FEATURE not in set(isa):
        return PassResult(graph, False)
    producers, consumers = graph.producers(), graph.consumers()
    changed = folded = False
    for node in list(graph.nodes):
        if (node.op == "Attention" and not node.attrs.get("bf16", 0)
                and all(_from_dynamic_matmul(graph, producers, name) for name in node.inputs[:3])):
            node.attrs["bf16"] = 1
            changed = True
            if _fold_k_transpose(graph, node, producers, consumers):
                folded = True
                producers, consumers = graph.producers(), graph.consumers()
    if folded:
        graph.prune_values()
    return PassResult(graph, changed)
