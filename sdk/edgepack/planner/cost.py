"""The cost model: predicted latency, energy and memory of a graph on a device profile, per node and per
precision (docs/profiles.md, "Cost model").

Per node:
  ops      = 2 x multiply-accumulates + the other arithmetic (bias, activations, elementwise work)
  bytes    = weights read + activations read and written, at the precision's storage widths
  latency  = max(ops / compute rate, weight bytes / memory bandwidth + activation bytes / their bandwidth)
             + per-op overhead
  energy   = ops / 2 x energy per MAC + bytes x energy per byte + idle power x latency
The compute rate is the sustained ops/s of the node's arithmetic; for the native runtime, times its
kernel family's efficiency (KERNEL_EFFICIENCY: dense GEMM and convolutions 1 at fp32, depthwise,
pooling, transcendental and int8 elementwise kernels a fitted fraction) and the share of the cores it
wakes (THREAD_GRAIN). The roofline counts compulsory traffic (every tensor read or written once per
op); activations that fit in the profile's last-level cache move at its bandwidth, and weights too when
the whole model fits. Totals add the nodes up, since the runtime executes one op at a time, plus the
profile's fixed cost per run.

Memory: weights at their precision (int8 and int4 with their quantization parameters), the arena from
the memory planner run on the tensors at their precision, and the profile's runtime overhead.

Precisions follow docs/quantization.md: `fp16` stores weights in float16 (the native runtime widens
them to float32 once at load), `int8-dynamic` and `int4` change only the weights, `int8` also the
activations. A precision that does not apply to a node (int4 on a Relu) leaves it as fp32 would.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

import numpy as np

from ..ir import DType, Graph, Node, Value
from ..ir.ops import ALIASING, ELEMENTWISE_BINARY, ELEMENTWISE_UNARY, MOVEMENT, REDUCTIONS
from ..profiles import Profile, load_profile
from ..quant.quantize import BLOCK_SIZES, PRECISIONS
from .memory import plan_memory

# Per channel or block: the native runtime holds a float32 scale and an int32 zero point in memory
# (QUANT_PARAM_BYTES, resident); the .epk stores the scale, and the zero point only when some zero point
# of the tensor is not 0 (docs/format.md): weights are symmetric, so they store SCALE_BYTES.
QUANT_PARAM_BYTES = 8
SCALE_BYTES = 4
# Vectorised exp / log / tanh / erf are polynomial approximations of about ten multiply-adds per element.
# These ops are memory-bound on every profile, so the figure rarely decides a roofline.
TRANSCENDENTAL_OPS = 10

# int8-dynamic quantizes a weighted op's float input per row before the integer GEMM: the row's
# absolute maximum (1 op per element), then scale, round and convert (3, as Quantize).
DYNAMIC_QUANTIZE_OPS = 4

# Arithmetic per output element of the elementwise ops.
_OPS_PER_ELEMENT: dict[str, int] = {
    **{op: 1 for op in ELEMENTWISE_UNARY | ELEMENTWISE_BINARY},
    "Where": 1,
    "Clip": 2, "LeakyRelu": 2, "HardSigmoid": 3, "HardSwish": 4,
    "Exp": TRANSCENDENTAL_OPS, "Log": TRANSCENDENTAL_OPS, "Tanh": TRANSCENDENTAL_OPS,
    "Erf": TRANSCENDENTAL_OPS, "Pow": TRANSCENDENTAL_OPS,
    "Sigmoid": TRANSCENDENTAL_OPS + 2, "Gelu": TRANSCENDENTAL_OPS + 3,
    "Quantize": 3, "Dequantize": 2, "Requantize": 4, "Lut": 1,
}
_FUSED_ACTIVATION_OPS = {"none": 0, "relu": 1, "clip": 2, "gelu": TRANSCENDENTAL_OPS + 3}

# The native runtime's kernels by family (op_kind -> family), each family's efficiency relative to the
# profile's ops_efficiency (which describes the dense kernels, GEMM and convolutions, at fp32), and the
# work below which a kernel runs on one thread. Fitted with benchmarks/latency_model.py on the host:
# docs/planner.md, "The cost model on the host", says how. Profiles of other runtimes do not use them.
# (LayerNormalization is plain arithmetic since its kernel sums in float lanes: it prices as elementwise.)
_TRANSCENDENTAL = ("Exp", "Log", "Tanh", "Erf", "Pow", "Sigmoid", "Gelu", "Softmax", "LogSoftmax", "LRN")
_KIND_FAMILY = {"MatMul": "dense", "Attention": "dense", "Conv": "dense", "Conv 1x1": "dense", "ConvTranspose": "dense",
                "Conv winograd": "winograd",
                "Conv depthwise": "depthwise", "MaxPool": "window", "AveragePool": "window",
                **{op: "elementwise" for op in _OPS_PER_ELEMENT if op not in _TRANSCENDENTAL},
                **{op: "transcendental" for op in _TRANSCENDENTAL}}
KERNEL_EFFICIENCY: dict[tuple[str, str], float] = {
    ("dense", "fp32"): 1.0,             # the profile's ops_efficiency itself
    ("dense", "int8"): 0.8,             # VNNI / dot-product GEMM, requantizing epilogue
    ("winograd", "fp32"): 1.6,          # float 3x3 stride-1 convs as Winograd F(2x2, 3x3): 16/36 of the
                                        # products at about 3/4 of the GEMM's rate (ResNet-50's 3x3 convs
                                        # 500 -> 300 us at 56x56 and 28x28, 530 -> 440 us at 14x14)
    ("winograd", "int8"): 0.8,          # int8 convs run the direct GEMM
    ("depthwise", "fp32"): 0.08,        # direct kernel: phase planes, or channels-last on small planes
    ("depthwise", "int8"): 0.008,       # the same on codes, int32 taps, requantization in the store
    ("window", "fp32"): 0.05,           # MaxPool / AveragePool: a short strided reduction per output
    ("window", "int8"): 0.0065,
    ("transcendental", "fp32"): 0.4,    # exp / erf polynomials, row reductions (Softmax); always
                                        # float math, int8 tensors included
    ("elementwise", "fp32"): 1.0,       # bandwidth-bound
    ("elementwise", "int8"): 0.05,      # fixed-point rescaling per element; table lookups (vpermi2b where
                                        # the build has AVX-512 VBMI)
}
# Work a thread must get before the runtime wakes another (native/kernels: kGrain, kPlaneGrain,
# kMinMacsPerThread): MACs for int8 GEMMs, MACs or window ops for depthwise convolution and pooling,
# tensor elements for the rest. fp32 GEMMs split their packed panels over every thread.
THREAD_GRAIN = {"int8 dense": 1 << 22, "default": 16384}
_WEIGHTED = ("Conv", "ConvTranspose", "MatMul")
_FLOAT = (DType.FLOAT32, DType.FLOAT16)

SUPPORTED_OPS = frozenset(_OPS_PER_ELEMENT) | frozenset(_WEIGHTED) | MOVEMENT | REDUCTIONS | {
    "Softmax", "LogSoftmax", "LayerNormalization", "LRN", "MaxPool", "AveragePool", "ArgMax", "Attention"}


# ---- records -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class NodeCost:
    name: str
    op: str
    precision: str          # what the node was priced at
    arithmetic: str         # the profile figure its math runs at: fp32 | fp16 | int8
    macs: int
    ops: int
    weight_bytes: int       # weights read (resident width)
    activation_bytes: int   # activations read and written
    compute_s: float
    memory_s: float
    overhead_s: float
    compute_energy_j: float
    memory_energy_j: float
    static_energy_j: float  # idle power while the op runs

    @property
    def bytes(self) -> int:
        return self.weight_bytes + self.activation_bytes

    @property
    def latency_s(self) -> float:
        return max(self.compute_s, self.memory_s) + self.overhead_s

    @property
    def energy_j(self) -> float:
        return self.compute_energy_j + self.memory_energy_j + self.static_energy_j

    @property
    def bound(self) -> str:
        return "compute" if self.compute_s >= self.memory_s else "memory"


@dataclass(frozen=True)
class CostReport:
    profile: Profile
    nodes: list[NodeCost]
    weights_bytes: int            # resident weights (in RAM when the profile keeps weights in RAM)
    stored_weights_bytes: int     # weights as stored in the artifact
    arena_bytes: int
    runtime_overhead_bytes: int
    by_name: dict[str, NodeCost] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {n.name: n for n in self.nodes})

    @property
    def macs(self) -> int:
        return sum(n.macs for n in self.nodes)

    @property
    def ops(self) -> int:
        return sum(n.ops for n in self.nodes)

    @property
    def bytes(self) -> int:
        return sum(n.bytes for n in self.nodes)

    @property
    def run_overhead_s(self) -> float:
        """The profile's fixed cost per inference (the call into the runtime), outside every node."""
        return self.profile.compute.run_overhead_s

    @property
    def latency_s(self) -> float:
        return sum(n.latency_s for n in self.nodes) + self.run_overhead_s

    @property
    def energy_j(self) -> float:
        return sum(n.energy_j for n in self.nodes) + self.run_overhead_s * self.profile.energy.idle_power_w

    @property
    def average_power_w(self) -> float:
        return self.energy_j / self.latency_s if self.latency_s else 0.0

    @property
    def ram_bytes(self) -> int:
        weights = self.weights_bytes if self.profile.memory.weights_in == "ram" else 0
        return weights + self.arena_bytes + self.runtime_overhead_bytes

    @property
    def storage_bytes(self) -> int:
        """The artifact's weights; headers, op list and manifest add a few KiB."""
        return self.stored_weights_bytes

    def violations(self) -> list[str]:
        """The profile budgets this prediction breaks, one sentence each (empty when it fits)."""
        p = self.profile
        found = []
        if self.ram_bytes > p.memory.ram_bytes:
            found.append(f"RAM {self.ram_bytes} B > budget {p.memory.ram_bytes} B")
        if self.storage_bytes > p.memory.storage_bytes:
            found.append(f"storage {self.storage_bytes} B > budget {p.memory.storage_bytes} B")
        if self.latency_s > p.latency.p50_s:
            found.append(f"latency {self.latency_s * 1e3:.3f} ms > p50 target {p.latency.p50_s * 1e3:.3f} ms")
        return found

    def as_dict(self) -> dict[str, Any]:
        """Plain data for JSON reports (the profiler puts it beside the measured figures)."""
        return {
            "profile": self.profile.name,
            "totals": {"macs": self.macs, "ops": self.ops, "bytes": self.bytes, "latency_s": self.latency_s,
                       "run_overhead_s": self.run_overhead_s,
                       "energy_j": self.energy_j, "weights_bytes": self.weights_bytes,
                       "stored_weights_bytes": self.stored_weights_bytes, "arena_bytes": self.arena_bytes,
                       "runtime_overhead_bytes": self.runtime_overhead_bytes, "ram_bytes": self.ram_bytes},
            "violations": self.violations(),
            "nodes": [{"name": n.name, "op": n.op, "precision": n.precision, "arithmetic": n.arithmetic,
                       "macs": n.macs, "ops": n.ops, "bytes": n.bytes, "latency_s": n.latency_s,
                       "energy_j": n.energy_j, "bound": n.bound} for n in self.nodes],
        }


# ---- arithmetic counts --------------------------------------------------------------------------------------

def _numel(shape: tuple[int, ...]) -> int:
    return math.prod(shape)


def count_ops(graph: Graph, node: Node) -> tuple[int, int]:
    """(multiply-accumulates, other arithmetic ops) of one node, from its static shapes."""
    op, attrs = node.op, node.attrs
    values = graph.values
    x = values[node.inputs[0]]
    out = values[node.outputs[0]]
    out_numel = _numel(out.shape)
    has_bias = len(node.inputs) > 2 and bool(node.inputs[2])
    epilogue = out_numel * (int(has_bias) + _FUSED_ACTIVATION_OPS[attrs.get("activation", "none")])
    if op == "Conv":
        w = values[node.inputs[1]].shape          # [M, C/group, kh, kw]
        has_residual = len(node.inputs) > 3 and bool(node.inputs[3])   # a fused residual Add
        return out_numel * _numel(w[1:]), epilogue + out_numel * int(has_residual)
    if op == "ConvTranspose":
        w = values[node.inputs[1]].shape          # [C, M/group, kh, kw]: each input pixel meets M/group filters
        return _numel(x.shape) * _numel(w[1:]), epilogue
    if op == "MatMul":                            # every output of a split
        out_numel = sum(_numel(values[n].shape) for n in node.outputs)
        return out_numel * x.shape[-1], out_numel * (int(has_bias) + _FUSED_ACTIVATION_OPS[attrs.get("activation", "none")])
    if op == "Attention":                         # Q K, the masked softmax of the scores, P V
        q = tuple(x.shape[p] for p in attrs["q_perm"]) if "q_perm" in attrs else x.shape
        v = values[node.inputs[2]].shape
        keys = v[attrs["v_perm"][-2]] if "v_perm" in attrs else v[-2]
        scores = _numel(q[:-1]) * keys
        softmax = scores * (TRANSCENDENTAL_OPS + 4 + int(len(node.inputs) > 3) + attrs.get("nan_to_zero", 0)
                            + int("scale" in attrs))
        products = scores * (q[-1] + out.shape[-1])
        # bf16 (passes/attention_bf16.py): vdpbf16ps does two products in a float FMA's time
        return (products // 2 if attrs.get("bf16", 0) else products), softmax
    if op in _OPS_PER_ELEMENT:
        return 0, out_numel * _OPS_PER_ELEMENT[op]
    if op in ("Softmax", "LogSoftmax"):           # max, subtract, exp, sum, divide (or log-subtract)
        fused = int(len(node.inputs) > 1 and bool(node.inputs[1])) + attrs.get("nan_to_zero", 0)  # mask add, NaN select
        return 0, _numel(x.shape) * (TRANSCENDENTAL_OPS + 4 + fused)
    if op == "LayerNormalization":                # mean, centre, square-accumulate, normalise, scale, bias
        has_residual = len(node.inputs) > 3 and bool(node.inputs[3])   # a fused residual Add
        return 0, _numel(x.shape) * (6 + int(has_bias) + int(has_residual))
    if op == "LRN":                               # sum of squares over `size` channels, pow, multiply
        return 0, _numel(x.shape) * (2 * attrs["size"] + TRANSCENDENTAL_OPS + 1)
    if op == "MaxPool":
        return 0, out_numel * _numel(tuple(attrs["kernel"]))
    if op == "AveragePool":
        return 0, out_numel * (_numel(tuple(attrs["kernel"])) + 1)
    if op in REDUCTIONS:
        return 0, _numel(x.shape) + (out_numel if op == "ReduceMean" else 0)
    if op == "ArgMax":
        return 0, _numel(x.shape)
    if op in MOVEMENT:
        return 0, 0
    raise ValueError(f"the cost model has no rule for op '{op}' (node '{node.name}')")


def op_kind(graph: Graph, node: Node) -> str:
    """The kind of kernel a node runs: its op, with Conv split into depthwise, pointwise (1x1), Winograd
    (3x3 stride 1, one group, at least 16 input channels and 32 2x2 output tiles) and the rest."""
    if node.op == "Conv":
        w = graph.values[node.inputs[1]].shape          # [M, C/group, kh, kw]
        if node.attrs.get("group", 1) > 1 and w[1] == 1:
            return "Conv depthwise"
        if _numel(tuple(w[2:])) == 1:
            return "Conv 1x1"
        out = graph.values[node.outputs[0]].shape
        oh, ow = out[1:3] if node.attrs.get("channels_last", 0) else out[2:4]   # NHWC or NCHW
        tiles = -(-oh // 2) * -(-ow // 2)
        if (node.attrs.get("group", 1) == 1 and tuple(w[2:]) == (3, 3) and w[1] >= 16 and tiles >= 32
                and all(s == 1 for s in node.attrs.get("strides", (1, 1)))
                and all(d == 1 for d in node.attrs.get("dilations", (1, 1)))):
            return "Conv winograd"   # what the native float kernel runs as F(2x2, 3x3) (winograd.h)
        return "Conv"
    return node.op


# ---- precisions and storage ---------------------------------------------------------------------------------

def _weight_index(graph: Graph, node: Node) -> int | None:
    """Input index of the node's quantizable weight (a constant), if it has one."""
    index = 0 if node.op == "Gather" else 1 if node.op in _WEIGHTED else None
    if index is None or len(node.inputs) <= index or not node.inputs[index]:
        return None
    return index if graph.values[node.inputs[index]].is_const else None


def infer_precision(graph: Graph, node: Node) -> str:
    """The precision a node of an already quantized graph runs at, read from its tensors' dtypes."""
    tensors = [graph.values[n] for n in node.inputs + node.outputs if n and not graph.values[n].is_const]
    if any(v.dtype in (DType.INT8, DType.UINT8) for v in tensors):
        return "int8"
    index = _weight_index(graph, node)
    weight = graph.values[node.inputs[index]].dtype if index is not None else None
    return {DType.INT4: "int4", DType.INT8: "int8-dynamic", DType.FLOAT16: "fp16"}.get(weight, "fp32")


def _arithmetic(precision: str, has_weight: bool, profile: Profile) -> str:
    """The profile figure a node's math runs at. Weight-only precisions leave activations in float, so
    they multiply in fp32 (int4 is dequantised first); fp16 multiplies in half precision only where the
    profile lists an fp16 figure, i.e. where its runtime does."""
    if precision == "int8" or (precision == "int8-dynamic" and has_weight):
        return "int8"
    if precision == "fp16" and "fp16" in profile.compute.peak_ops:
        return "fp16"
    return "fp32"


def _activation_dtype(dtype: DType, precision: str) -> DType:
    """How a run-time tensor produced by a node at `precision` is stored."""
    if dtype in _FLOAT and precision == "int8":
        return DType.INT8
    return dtype


def _weight_layout(node: Node, value: Value) -> tuple[int, int]:
    """(channels, reduction length) of a weight, as docs/quantization.md lays out its scales."""
    shape = value.shape
    if node.op == "Conv":
        return shape[0], _numel(shape) // shape[0]
    if node.op == "ConvTranspose":
        channels = shape[1] * node.attrs["group"]
        return channels, _numel(shape) // channels
    if node.op == "MatMul":
        return _numel(shape) // shape[-2], shape[-2]
    return _numel(shape) // shape[-1], shape[-1]   # Gather table: rows x row length


def int4_block_size(reduction: int) -> int:
    """The block the quantizer picks: the largest of BLOCK_SIZES dividing the reduction axis. When none
    divides, the quantizer falls back to int8-dynamic; priced as int4, such a weight gets a padded last block."""
    return next((b for b in BLOCK_SIZES if reduction % b == 0), min(BLOCK_SIZES))


def _const_bytes(graph: Graph, node: Node, index: int, precision: str, profile: Profile) -> tuple[int, int]:
    """(resident, stored) bytes of the constant input `index` of `node` at `precision`."""
    value = graph.values[node.inputs[index]]
    n = value.numel
    widen = profile.runtime == "native"   # the native runtime widens float16 weights to float32 at load
    if value.dtype is not DType.FLOAT32:   # already quantized (or not numeric data): as it is
        quant = value.quant
        params = 0 if quant is None else quant.scale.size
        stored = value.nbytes + params * (QUANT_PARAM_BYTES if quant is not None and np.any(quant.zero_point)
                                          else SCALE_BYTES)
        return (4 * n if value.dtype is DType.FLOAT16 and widen else value.nbytes + params * QUANT_PARAM_BYTES), stored
    role = ("weight" if index == _weight_index(graph, node)
            else "bias" if node.op in _WEIGHTED and index == 2 else "other")
    if role == "weight":
        channels, reduction = _weight_layout(node, value)
        if precision == "fp16":
            return (4 * n if widen else 2 * n), 2 * n
        if precision in ("int8", "int8-dynamic"):
            return n + channels * QUANT_PARAM_BYTES, n + channels * SCALE_BYTES
        if precision == "int4":
            blocks = channels * math.ceil(reduction / int4_block_size(reduction))
            data = DType.INT4.nbytes(n)
            return data + blocks * QUANT_PARAM_BYTES, data + blocks * SCALE_BYTES
        return 4 * n, 4 * n
    if precision == "int8":   # int32 bias with a scale per output channel; other constants int8 per tensor
        if role == "bias":
            return 4 * n + n * QUANT_PARAM_BYTES, 4 * n + n * SCALE_BYTES
        return n + QUANT_PARAM_BYTES, n + QUANT_PARAM_BYTES
    return 4 * n, 4 * n


# ---- the estimate -------------------------------------------------------------------------------------------

def _check_precisions(graph: Graph, precisions: Mapping[str, str], default: str | None) -> None:
    names = {node.name for node in graph.nodes}
    unknown = [name for name in precisions if name not in names]
    if unknown:
        raise ValueError(f"precisions name nodes not in graph '{graph.name}': {', '.join(sorted(unknown))}")
    asked = list(precisions.items()) + ([("default", default)] if default is not None else [])
    for where, precision in asked:
        if precision not in PRECISIONS:
            raise ValueError(f"{where}: unknown precision '{precision}' (choose from {', '.join(PRECISIONS)})")


def estimate(graph: Graph, profile: Profile | str, precisions: Mapping[str, str] | None = None,
             default: str | None = None) -> CostReport:
    """Predict latency, energy and memory of `graph` on `profile`.

    precisions: node name -> one of PRECISIONS, for the nodes to price at a chosen precision.
    default: the precision of every other node; None reads it from the graph's dtypes (infer_precision),
    which prices an already quantized graph as it is (and a float graph as fp32).
    Chosen precisions change how float tensors are stored; inferred ones never do (the graph already
    says). Graph inputs and outputs keep their dtype: callers exchange them as declared."""
    if isinstance(profile, str):
        profile = load_profile(profile)
    precisions = dict(precisions or {})
    _check_precisions(graph, precisions, default)
    chosen = {node.name: precisions.get(node.name, default) for node in graph.nodes}

    storage: dict[str, DType] = {}
    boundary = set(graph.inputs) | set(graph.outputs)
    for node in graph.nodes:
        for name in node.outputs:
            value = graph.values[name]
            storage[name] = value.dtype if name in boundary or chosen[node.name] is None \
                else _activation_dtype(value.dtype, chosen[node.name])

    def price(weights_cached: bool) -> tuple[list[NodeCost], dict[tuple[str, int], int]]:
        resident: dict[tuple[str, int], int] = {}   # (constant, stored size) -> resident size, counted once
        rows = []
        for node in graph.nodes:
            precision = chosen[node.name] or infer_precision(graph, node)
            storage_precision = chosen[node.name] or "fp32"
            row, consts = _node_cost(graph, node, precision, storage_precision, storage, profile, weights_cached)
            rows.append(row)
            resident.update(consts)
        return rows, resident

    rows, resident = price(False)
    arena = _arena_bytes(graph, storage)
    cache = profile.compute.cache_bytes
    if cache is not None and sum(resident.values()) + arena <= cache:
        rows, resident = price(True)   # the whole model stays in the cache from one run to the next
    return CostReport(profile, rows, sum(resident.values()), sum(stored for _, stored in resident),
                      arena, profile.memory.runtime_overhead_bytes)


def _node_cost(graph: Graph, node: Node, precision: str, storage_precision: str, storage: dict[str, DType],
               profile: Profile, weights_cached: bool = False) -> tuple[NodeCost, dict[tuple[str, int], int]]:
    weight_index = _weight_index(graph, node)
    arithmetic = _arithmetic(precision, weight_index is not None, profile)
    macs, other = count_ops(graph, node)
    ops = 2 * macs + other

    weight_bytes, activation_bytes = 0, 0
    consts: dict[tuple[str, int], int] = {}
    for index, name in enumerate(node.inputs):
        if not name:
            continue
        value = graph.values[name]
        if value.is_const:
            size, stored = _const_bytes(graph, node, index, storage_precision, profile)
            consts[(name, stored)] = size
            if node.op == "Gather" and index == 0:   # only the gathered rows are read
                size = size * _numel(graph.values[node.outputs[0]].shape) // max(value.numel, 1)
            weight_bytes += size
            continue
        dtype = storage.get(name, value.dtype)
        read = dtype.nbytes(value.numel)
        if node.op == "Slice":                       # only the selected elements are read
            read = dtype.nbytes(graph.values[node.outputs[0]].numel)
        if precision == "int8-dynamic" and weight_index is not None and dtype in _FLOAT:
            read += 2 * value.numel                  # quantized per row first: write an int8 copy, read it back
            ops += DYNAMIC_QUANTIZE_OPS * value.numel
        activation_bytes += read
    if node.op in ALIASING and not graph.values[node.inputs[0]].is_const:
        activation_bytes = 0                         # the memory planner gave input and output the same bytes
    else:
        activation_bytes += sum(storage[n].nbytes(graph.values[n].numel) for n in node.outputs)

    total_bytes = weight_bytes + activation_bytes
    compute = profile.compute
    rate = compute.sustained_ops(arithmetic)
    if profile.runtime == "native":   # the native runtime's kernels: their family's efficiency and threading
        kind = op_kind(graph, node)
        if _KIND_FAMILY.get(kind) == "transcendental":
            arithmetic = "fp32"       # int8 tensors are dequantized: exp, erf and row statistics are float math
            rate = compute.sustained_ops(arithmetic)
        rate *= kernel_efficiency(kind, arithmetic) * threads_used(graph, node, kind, arithmetic, macs, other,
                                                                   compute.cores) / compute.cores
    compute_s = ops / rate
    weight_bandwidth = compute.cache_bandwidth_bytes_per_s if weights_cached else compute.sustained_bandwidth
    memory_s = weight_bytes / weight_bandwidth + activation_bytes / _activation_bandwidth(activation_bytes, profile)
    latency = max(compute_s, memory_s) + compute.op_overhead_s
    energy = profile.energy
    row = NodeCost(node.name, node.op, precision, arithmetic, macs, ops, weight_bytes, activation_bytes,
                   compute_s, memory_s, compute.op_overhead_s,
                   compute_energy_j=ops / 2 * energy.mac_j[arithmetic],
                   memory_energy_j=total_bytes * energy.memory_byte_j,
                   static_energy_j=latency * energy.idle_power_w)
    return row, consts


def kernel_efficiency(kind: str, arithmetic: str) -> float:
    """The native runtime's kernel for `kind` (op_kind) at `arithmetic`, as a fraction of the rate the
    profile's dense kernels sustain (peak x ops_efficiency). Fitted on the host: docs/planner.md."""
    family = _KIND_FAMILY.get(kind, "other")
    return KERNEL_EFFICIENCY.get((family, arithmetic), KERNEL_EFFICIENCY.get((family, "fp32"), 1.0))


def threads_used(graph: Graph, node: Node, kind: str, arithmetic: str, macs: int, other_ops: int,
                 cores: int) -> int:
    """How many of the profile's cores the native runtime gives this node: one per grain of work."""
    family = _KIND_FAMILY.get(kind, "other")
    if family in ("dense", "winograd") and arithmetic != "int8":
        return cores
    if family in ("dense", "winograd"):
        work, grain = macs, THREAD_GRAIN["int8 dense"]
    elif family in ("depthwise", "window"):
        work, grain = macs or other_ops, THREAD_GRAIN["default"]
    else:
        work = max((graph.values[n].numel for n in node.inputs + node.outputs
                    if n and not graph.values[n].is_const), default=0)
        grain = THREAD_GRAIN["default"]
    return max(1, min(cores, work // grain))


def _activation_bandwidth(activation_bytes: int, profile: Profile) -> float:
    """Run-time tensors that fit in the profile's last-level cache (when it gives one) move at its
    bandwidth: a producer's output is still there when the next op reads it. Larger ones go to memory."""
    c = profile.compute
    if c.cache_bytes is not None and c.cache_bandwidth_bytes_per_s and activation_bytes <= c.cache_bytes:
        return c.cache_bandwidth_bytes_per_s
    return c.sustained_bandwidth


def _arena_bytes(graph: Graph, storage: dict[str, DType]) -> int:
    """The memory planner's arena for the run-time tensors stored at their priced dtypes."""
    shadow = Graph(graph.name)
    shadow.nodes, shadow.inputs, shadow.outputs = graph.nodes, graph.inputs, graph.outputs
    shadow.values = {name: replace(value, dtype=storage[name]) if name in storage else value
                     for name, value in graph.values.items()}
    return plan_memory(shadow).arena_bytes


def cost_table(graph: Graph, profile: Profile | str,
               precisions: tuple[str, ...] = PRECISIONS) -> dict[str, dict[str, NodeCost]]:
    """node name -> precision -> its cost with the whole graph at that precision: the per-layer options
    a precision search weighs (a node's cost depends on its neighbours only through the width of the
    activations it reads)."""
    if isinstance(profile, str):
        profile = load_profile(profile)
    table: dict[str, dict[str, NodeCost]] = {node.name: {} for node in graph.nodes}
    for precision in precisions:
        for row in estimate(graph, profile, default=precision).nodes:
            table[row.name][precision] = row
    return table
