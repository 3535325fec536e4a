"""The budget planner: one precision per node that meets a device's budgets with the least accuracy loss.

The method (docs/planner.md):

1. **Options.** A node may take fp32 and each precision that applies to it without a fallback in the
   quantizer (docs/quantization.md) and that the profile's runtime executes (`RUNTIME_PRECISIONS`);
   static int8 only when calibration data is given. Nodes with a single option are fixed.
2. **Loss.** For every option, the noise power of the model output relative to its signal,
   10^(-SQNR/10), with only that node at that precision and the rest in fp32, measured with the numpy
   reference on evaluation samples. To first order the noise of different nodes adds, so the loss of an
   assignment is the sum of its nodes' losses.
3. **Costs.** Each option's resident and stored weight bytes, latency and energy from the cost model,
   the node priced on its own. Weight bytes add up exactly; the arena, the Quantize / Dequantize nodes
   at int8 boundaries and the width of a neighbour's activations do not. The linear model is anchored
   on the exact estimate of the all-fp32 graph and, after each solve, corrected by the difference
   between the exact estimate of the quantized graph and the model; the ILP is solved again until
   the exact estimate fits (weight-only precisions leave nothing to correct).
4. **ILP** (`scipy.optimize.milp`, HiGHS): binary x[node, precision], exactly one per node; minimise
   the summed loss subject to RAM (weights + arena + runtime overhead), storage (the whole artifact:
   weights, headers, op list, manifest), latency (p50) and, when one is set, energy per inference.
5. **Verification.** The end-to-end metric (mean cosine to the fp32 outputs by default) on the
   evaluation data. While it is below the tolerance, a greedy upgrade: the most sensitive node that
   has a more accurate option moves one step up if the exact estimate still fits every budget, and the
   metric is measured again. The ILP already holds the least predicted loss within the budgets, so
   re-solving would return the same assignment; the upgrades spend the room the conservative parts of
   the model left, guided by the measured metric.

When no assignment fits, `BudgetError` names each budget, the best figure achievable and by how much
it misses; `allow_over_budget=True` returns the assignment closest to the budgets instead, flagged.
"""
from __future__ import annotations

import json
import math
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from ..backends.epk import assemble, encode_sections
from ..errors import EdgepackError
from ..ir import DType, Graph, Node
from ..profiles import BYTES, TIME, Dimension, Profile, parse_quantity
from ..quant.calibrate import calibrate, load_calibration_data
from ..quant.quantize import BLOCK_SIZES, FOLLOWERS, FRAGILE, PRECISIONS, Decision, quantize_graph
from ..quant.sensitivity import sqnr
from ..reference.executor import execute_node
from .cost import CostReport, estimate
from .memory import plan_memory

# What each runtime executes (docs/quantization.md for the precisions themselves):
#   native  every precision edgepack defines;
#   onnx    QDQ int8, DynamicQuantizeLinear + MatMulInteger, float16 weights, block-wise int4
#           (DequantizeLinear with block_size, opset 21);
#   tflite  LiteRT's float16 weights, full-integer int8 and dynamic-range int8; no block-wise int4;
#   coreml  float16, W8A8 int8 and block-wise int4 weights; no per-row dynamic activation quantization.
# TensorFlow Lite for Microcontrollers (tflite on a target without an OS) has float and full-integer
# kernels only.
RUNTIME_PRECISIONS: dict[str, tuple[str, ...]] = {
    "native": ("fp32", "fp16", "int8", "int8-dynamic", "int4"),
    "onnx": ("fp32", "fp16", "int8", "int8-dynamic", "int4"),
    "tflite": ("fp32", "fp16", "int8", "int8-dynamic"),
    "coreml": ("fp32", "fp16", "int8", "int4"),
}
MICROCONTROLLER_PRECISIONS = ("fp32", "int8")

RESOURCES = ("ram", "storage", "latency", "energy")
RESOURCE_NAMES = {"ram": "RAM", "storage": "storage", "latency": "latency p50", "energy": "energy",
                  "accuracy": "accuracy"}
# Energy per inference spans nanojoules (microcontrollers) to joules (transformers on a phone): the
# profile's ENERGY dimension stops at uJ, made for energy per operation.
ENERGY_BUDGET = Dimension("energy", {"nJ": (10, -9), "uJ": (10, -6), "mJ": (10, -3), "J": (10, 0)}, "5 mJ")
# Below this output SQNR at its most accurate lower precision, a node kept in fp32 is called fragile.
FRAGILE_DB = 30.0
MAX_SOLVES = 8
EXACT_GRAPHS_KEPT = 3
# The manifest entries besides the per-node precisions: versions, hashes, budgets, predicted cost, op counts.
MANIFEST_BYTES = 2048

Sample = dict[str, np.ndarray]
Metric = Callable[[list[Sample], list[Sample]], float]


class PlanError(EdgepackError, ValueError):
    """The planner cannot choose precisions with what it was given; the message says what is missing."""


# ---- budgets -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Budgets:
    """What the compiled model must meet: the profile's budgets, with any overrides applied."""
    ram_bytes: int                 # weights (when in RAM) + arena + runtime overhead
    storage_bytes: int             # the artifact
    latency_s: float               # predicted latency against the p50 target
    p95_s: float                   # tail target: measured by the profiler, not predicted
    energy_j: float | None         # per inference; None: no energy budget
    accuracy: float                # the least acceptable metric value (mean cosine by default)

    OVERRIDES = {"ram": BYTES, "storage": BYTES, "latency": TIME, "p95": TIME, "energy": ENERGY_BUDGET,
                 "accuracy": None}

    @classmethod
    def from_profile(cls, profile: Profile, overrides: Mapping[str, Any] | None = None) -> "Budgets":
        """The profile's budgets; `overrides` replaces some, e.g. {"ram": "20 MB", "energy": "30 mJ",
        "accuracy": 0.995}. Quantities are strings with units, as in profiles (docs/profiles.md)."""
        values: dict[str, Any] = {
            "ram": profile.memory.ram_bytes, "storage": profile.memory.storage_bytes,
            "latency": profile.latency.p50_s, "p95": profile.latency.p95_s, "energy": None,
            "accuracy": profile.accuracy.min_cosine}
        for key, raw in (overrides or {}).items():
            if key not in cls.OVERRIDES:
                raise ValueError(f"budgets: unknown budget '{key}' (known: {', '.join(cls.OVERRIDES)})")
            dimension = cls.OVERRIDES[key]
            if dimension is None:
                if isinstance(raw, bool) or not isinstance(raw, (int, float)):
                    raise ValueError(f"budgets: accuracy is the least acceptable metric value, a number; got {raw!r}")
                values[key] = float(raw)
            else:
                try:
                    values[key] = parse_quantity(raw, dimension)
                except ValueError as err:
                    raise ValueError(f"budgets: {key}: {err}") from None
        if values["p95"] < values["latency"]:
            raise ValueError(f"budgets: the p95 target ({values['p95']} s) is below the p50 target "
                             f"({values['latency']} s)")
        return cls(int(values["ram"]), int(values["storage"]), float(values["latency"]), float(values["p95"]),
                   values["energy"], values["accuracy"])

    def limits(self) -> dict[str, float]:
        """The resource budgets the cost model predicts, by resource name."""
        found = {"ram": self.ram_bytes, "storage": self.storage_bytes, "latency": self.latency_s}
        if self.energy_j is not None:
            found["energy"] = self.energy_j
        return found

    def as_dict(self) -> dict[str, Any]:
        return {"ram_bytes": self.ram_bytes, "storage_bytes": self.storage_bytes, "latency_p50_s": self.latency_s,
                "latency_p95_s": self.p95_s, "energy_j": self.energy_j, "accuracy": self.accuracy}


def _unit_power(value: float, base: int, count: int) -> int:
    power = 0
    while power < count - 1 and value >= base ** (power + 1):
        power += 1
    return power


def _decimal_bytes(value: float) -> bool:
    """Whether a byte count reads as a whole number in decimal units but not in binary ones (64 MB,
    not 61.04 MiB; but 512 KiB, not 524.3 kB)."""
    def whole(base: int) -> bool:
        return value > 0 and (value / base ** _unit_power(value, base, 4)).is_integer()
    return whole(1000) and not whole(1024)


def format_figure(resource: str, value: float, like: float | None = None) -> str:
    """A budget figure for people: bytes in the unit family of `like` (beside a budget written "20 MB",
    decimal units; beside "512 KiB", binary), seconds in ms, energy in mJ / J, accuracy as a plain number."""
    if resource in ("ram", "storage"):
        reference = like if like is not None else value
        decimal = _decimal_bytes(reference)
        base, units = (1000, ("B", "kB", "MB", "GB")) if decimal else (1024, ("B", "KiB", "MiB", "GiB"))
        power = _unit_power(value, base, len(units))
        number = value / base ** power
        return f"{number:.0f} {units[power]}" if power == 0 else f"{number:.4g} {units[power]}"
    if resource in ("latency", "p95"):
        return f"{value * 1e3:.4g} ms" if value < 1 else f"{value:.4g} s"
    if resource == "energy":
        return f"{value * 1e3:.4g} mJ" if value < 1 else f"{value:.4g} J"
    return f"{value:.5f}"


@dataclass(frozen=True)
class BudgetCheck:
    """One budget against a figure: predicted (resources) or measured (accuracy)."""
    budget: str                    # ram | storage | latency | energy | accuracy
    limit: float
    value: float

    @property
    def passed(self) -> bool:
        return self.value >= self.limit if self.budget == "accuracy" else self.value <= self.limit

    @property
    def margin(self) -> float:
        """Room left (positive) or the amount missed (negative), in the budget's unit."""
        return self.value - self.limit if self.budget == "accuracy" else self.limit - self.value

    @property
    def name(self) -> str:
        return RESOURCE_NAMES[self.budget]

    def figure(self, value: float) -> str:
        return format_figure(self.budget, value, like=self.limit)

    def describe(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        room = "to spare" if self.passed else "over" if self.budget != "accuracy" else "short"
        return (f"{self.name}: {self.figure(self.value)} vs budget {self.figure(self.limit)}: {verdict} "
                f"({self.figure(abs(self.margin))} {room})")


class BudgetError(PlanError):
    """No precision assignment meets the budgets. `misses` holds, per budget that cannot be met, the best
    figure achievable (`value`) against the budget (`limit`)."""

    def __init__(self, profile: str, misses: Sequence[BudgetCheck], note: str = "", chosen: bool = False) -> None:
        """chosen: the figures are those of precisions the caller chose, not the best the planner found."""
        self.profile = profile
        self.misses = list(misses)
        lines = []
        for miss in self.misses:
            share = abs(miss.margin) / miss.limit * 100 if miss.limit else math.inf
            figure = ("measured" if miss.budget == "accuracy" else "predicted") if chosen else \
                "best reached within the other budgets" if miss.budget == "accuracy" else "best achievable"
            lines.append(f"  {miss.name}: {figure} {miss.figure(miss.value)}, budget {miss.figure(miss.limit)}: "
                         f"misses by {miss.figure(abs(miss.margin))} ({share:.1f}%)")
        headline = "the chosen precisions miss" if chosen else "no precision assignment meets"
        super().__init__(f"{headline} the budgets of profile '{profile}'"
                         + (f" ({note})" if note else "") + ":\n" + "\n".join(lines)
                         + "\npass allow_over_budget=True (CLI --allow-over-budget) to write the closest "
                           "artifact anyway, flagged in its manifest")


# ---- metrics -----------------------------------------------------------------------------------------

def _flat(sample: Sample, names: Sequence[str]) -> np.ndarray:
    return np.concatenate([np.asarray(sample[name], np.float64).reshape(-1) for name in names])


def mean_cosine(outputs: list[Sample], references: list[Sample]) -> float:
    """Mean over samples of the cosine similarity between the outputs and the fp32 outputs (all outputs
    of a sample flattened into one vector). The default accuracy metric."""
    values = []
    for got, ref in zip(outputs, references):
        names = sorted(ref)
        a, b = _flat(got, names), _flat(ref, names)
        norms = float(np.linalg.norm(a) * np.linalg.norm(b))
        values.append(1.0 if norms == 0.0 and not a.any() and not b.any() else float(a @ b) / norms if norms else 0.0)
    return float(np.mean(values))


def output_sqnr(outputs: list[Sample], references: list[Sample]) -> float:
    """SQNR (dB) of all outputs over all samples against the fp32 outputs."""
    names = sorted(references[0])
    return sqnr(np.concatenate([_flat(r, names) for r in references]),
                np.concatenate([_flat(o, names) for o in outputs]))


# ---- options -----------------------------------------------------------------------------------------

def runtime_precisions(profile: Profile) -> tuple[str, ...]:
    """The precisions the profile's runtime executes on its target."""
    if profile.runtime == "tflite" and profile.target.os == "none":
        return MICROCONTROLLER_PRECISIONS
    return RUNTIME_PRECISIONS[profile.runtime]


def _float_const(graph: Graph, node: Node, index: int) -> np.ndarray | None:
    if len(node.inputs) <= index or not node.inputs[index]:
        return None
    value = graph.values[node.inputs[index]]
    return value.const if value.is_const and value.dtype is DType.FLOAT32 else None


def node_precisions(graph: Graph, node: Node, allowed: Iterable[str] = PRECISIONS) -> list[str]:
    """fp32 and the precisions of `allowed` the quantizer gives this node as asked (no fallback)."""
    allowed = set(allowed)
    weight = _float_const(graph, node, 1) if node.op in ("Conv", "MatMul") else None
    table = _float_const(graph, node, 0) if node.op == "Gather" else None
    matrix = weight is not None and node.op == "MatMul" and weight.ndim == 2
    applies = {
        "fp16": weight is not None,
        "int8": (node.op == "Conv" and weight is not None) or matrix,
        "int8-dynamic": matrix or table is not None,
        # int4 blocks run along the reduction axis (rows of a MatMul weight, the row of a table)
        "int4": (matrix and any(weight.shape[0] % b == 0 for b in BLOCK_SIZES))
                or (table is not None and any(table.shape[-1] % b == 0 for b in BLOCK_SIZES)),
    }
    return ["fp32"] + [p for p in PRECISIONS if applies.get(p) and p in allowed]


@dataclass(frozen=True)
class Option:
    """One node at one precision: its accuracy cost and its resource costs."""
    precision: str
    loss: float | None        # output noise power / signal power, only this node at this precision
                              # (None: not measured; fp32 is 0)
    ram_bytes: int            # resident weight bytes
    storage_bytes: int        # weight bytes in the artifact
    latency_s: float
    energy_j: float

    @property
    def sqnr_db(self) -> float | None:
        if self.loss is None:
            return None
        return math.inf if self.loss <= 0 else -10.0 * math.log10(self.loss)

    def resource(self, name: str, weights_in_ram: bool) -> float:
        if name == "ram":
            return self.ram_bytes if weights_in_ram else 0
        return {"storage": self.storage_bytes, "latency": self.latency_s, "energy": self.energy_j}[name]


def _node_alone(graph: Graph, node: Node) -> Graph:
    """A graph of just `node`, sharing its values: the cost model prices it on its own."""
    alone = Graph(node.name)
    for name in node.inputs:
        if name and name not in alone.values:
            alone.values[name] = graph.values[name]
            if not graph.values[name].is_const:
                alone.inputs.append(name)
    for name in node.outputs:
        alone.values[name] = graph.values[name]
    alone.nodes = [node]
    alone.outputs = list(node.outputs)
    return alone


def _option_costs(graph: Graph, node: Node, precision: str, profile: Profile, loss: float | None) -> Option:
    cost = estimate(_node_alone(graph, node), profile, {node.name: precision})
    return Option(precision, loss, cost.weights_bytes, cost.stored_weights_bytes, cost.latency_s, cost.energy_j)


# ---- the ILP ------------------------------------------------------------------------------------------

Assignment = dict[str, str]
Options = Mapping[str, Mapping[str, Option]]


def solve_ilp(options: Options, limits: Mapping[str, float], base: Mapping[str, float], weights_in_ram: bool = True,
              elastic: bool = False) -> Assignment | None:
    """The least-loss choice of one option per node (node -> precision -> Option, losses measured) such
    that for every resource r in `limits`: base[r] + the chosen options' costs <= limits[r]. None when no
    choice fits. `elastic` lets each budget be exceeded and first minimises the summed relative excess,
    then the loss: the choice closest to the budgets (always exists).

    Binary x[node, precision] with sum_p x[node, p] = 1; scipy.optimize.milp (HiGHS) solves it to
    optimality. Rows are divided by their budget, for the solver's tolerances. HiGHS stops within an
    absolute objective gap of 1e-6 and losses span many decades (fp16 ~1e-9, int4 ~1e-2), so the
    objective is solved twice: scaled by the largest loss, then by the optimum found, which makes that
    gap relative to the optimum."""
    from scipy.optimize import Bounds, LinearConstraint, milp

    columns = [(node, precision) for node, choices in options.items() for precision in choices]
    resources = list(limits)
    n_x, n_s = len(columns), len(resources) if elastic else 0
    losses = np.array([options[n][p].loss for n, p in columns], dtype=np.float64)

    row_of = {node: i for i, node in enumerate(options)}
    one_each = np.zeros((len(row_of), n_x + n_s))
    for j, (node, _) in enumerate(columns):
        one_each[row_of[node], j] = 1.0
    budget_rows = np.zeros((len(resources), n_x + n_s))
    upper = np.zeros(len(resources))
    for i, r in enumerate(resources):
        budget_rows[i, :n_x] = [options[n][p].resource(r, weights_in_ram) / limits[r] for n, p in columns]
        if elastic:
            budget_rows[i, n_x + i] = -1.0      # slack: the share of the budget exceeded
        upper[i] = (limits[r] - base[r]) / limits[r]
    constraints = [LinearConstraint(one_each, 1.0, 1.0), LinearConstraint(budget_rows, -np.inf, upper)]
    integrality = np.concatenate([np.ones(n_x), np.zeros(n_s)])
    bounds = Bounds(np.zeros(n_x + n_s), np.concatenate([np.ones(n_x), np.full(n_s, np.inf)]))
    settings = {"mip_rel_gap": 1e-9, "time_limit": 120.0}
    if elastic:
        excess = np.concatenate([np.zeros(n_x), np.ones(n_s)])
        first = milp(excess, constraints=constraints, integrality=integrality, bounds=bounds, options=settings)
        if first.status != 0:
            return None
        constraints.append(LinearConstraint(excess[None, :], -np.inf, first.fun + 1e-9))
    scale = losses.max() if losses.size and losses.max() > 0 else 1.0
    for _ in range(2):
        result = milp(np.concatenate([losses / scale, np.zeros(n_s)]), constraints=constraints,
                      integrality=integrality, bounds=bounds, options=settings)
        if result.status != 0:
            return None
        if result.fun <= 0:
            break
        scale *= result.fun
    return {n: p for (n, p), x in zip(columns, result.x[:n_x]) if x > 0.5}


# ---- execution ---------------------------------------------------------------------------------------

class _Executor:
    """The numpy reference over fixed samples. With `keep`, every tensor of the float graph is kept, so a
    variant that differs in a few nodes re-runs only those and what depends on them."""

    def __init__(self, graph: Graph, samples: list[Sample], keep: bool) -> None:
        self.graph = graph
        self.samples = samples
        self.nodes = {node.name: node for node in graph.nodes}
        envs = [self._run(graph, self._start(graph, sample), graph.nodes) for sample in samples]
        self.references = [{name: env[name] for name in graph.outputs} for env in envs]
        self.envs = envs if keep else None

    @staticmethod
    def _start(graph: Graph, sample: Sample) -> dict[str, np.ndarray]:
        env = {name: value.const for name, value in graph.values.items() if value.is_const}
        for name in graph.inputs:
            value = graph.values[name]
            env[name] = np.asarray(sample[name]).astype(value.dtype.numpy, copy=False).reshape(value.shape)
        return env

    @staticmethod
    def _run(graph: Graph, env: dict[str, np.ndarray], nodes: Iterable[Node]) -> dict[str, np.ndarray]:
        for node in nodes:
            outputs = execute_node(graph, node, [env[name] if name else None for name in node.inputs])
            # views (a Transpose output) make numpy's batched matmul take a slow path
            env.update(zip(node.outputs, (np.ascontiguousarray(out) for out in outputs)))
        return env

    def outputs(self, variant: Graph) -> list[Sample]:
        if self.envs is None:
            return [{name: env[name] for name in variant.outputs}
                    for env in (self._run(variant, self._start(variant, s), variant.nodes) for s in self.samples)]
        changed: set[str] = set()
        rerun = []
        for node in variant.nodes:
            same = self.nodes.get(node.name)
            if (same is None or same.op != node.op or same.inputs != node.inputs or same.outputs != node.outputs
                    or any(name in changed for name in node.inputs)):
                rerun.append(node)
                changed.update(node.outputs)
        new_consts = {name: value.const for name, value in variant.values.items()
                      if value.is_const and not (name in self.graph.values and self.graph.values[name].is_const)}
        return [{name: env[name] for name in variant.outputs}
                for env in (self._run(variant, {**base, **new_consts}, rerun) for base in self.envs)]


def _progress(total: int, description: str, enabled: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    bar = Progress(TextColumn(description), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                   disable=not enabled, transient=True)
    return bar, bar.add_task(description, total=total)


# ---- the plan ----------------------------------------------------------------------------------------

@dataclass
class NodeChoice:
    """The precision one node of the float graph runs at, and why."""
    node: str
    op: str
    precision: str                     # as executed (after any quantizer fallback)
    reason: str
    options: dict[str, Option] = field(default_factory=dict)   # measured options (decision nodes)
    weighted: bool = False             # holds weights some precision below fp32 applies to
    weight_bytes: int = 0              # resident weights at the chosen precision
    latency_s: float = 0.0             # from the exact estimate of the quantized graph
    energy_j: float = 0.0

    @property
    def sqnr_db(self) -> float | None:
        """Output SQNR with only this node at its precision (None: not measured)."""
        option = self.options.get(self.precision)
        return option.sqnr_db if option is not None else None


@dataclass
class Plan:
    """The planner's result: the quantized graph, its exact predicted cost and the per-node choices."""
    profile: Profile
    budgets: Budgets
    graph: Graph
    decisions: list[Decision]
    cost: CostReport
    artifact_bytes: int                    # the whole artifact (weights, headers, op list, manifest)
    nodes: list[NodeChoice]
    method: str
    metric_name: str = "mean cosine"
    metric: float | None = None            # measured on the evaluation data
    output_sqnr_db: float | None = None
    predicted_sqnr_db: float | None = None  # from the summed single-node losses
    evaluation_samples: int = 0
    upgrades: list[str] = field(default_factory=list)
    allow_over_budget: bool = False

    @property
    def checks(self) -> list[BudgetCheck]:
        totals = _totals(self.cost, self.artifact_bytes)
        found = [BudgetCheck(name, limit, totals[name]) for name, limit in self.budgets.limits().items()]
        if self.metric is not None:
            found.append(BudgetCheck("accuracy", self.budgets.accuracy, self.metric))
        return found

    @property
    def over_budget(self) -> list[BudgetCheck]:
        return [check for check in self.checks if not check.passed]

    @property
    def precisions(self) -> dict[str, str]:
        return {choice.node: choice.precision for choice in self.nodes}

    def manifest(self) -> dict[str, Any]:
        """The manifest entries that record the plan (docs/planner.md)."""
        cost = self.cost
        return {
            "budgets": self.budgets.as_dict(),
            "predicted": {"ram_bytes": cost.ram_bytes, "weights_bytes": cost.weights_bytes,
                          "arena_bytes": cost.arena_bytes, "runtime_overhead_bytes": cost.runtime_overhead_bytes,
                          "stored_weights_bytes": cost.stored_weights_bytes, "artifact_bytes": self.artifact_bytes,
                          "latency_s": cost.latency_s,
                          "energy_j": cost.energy_j},
            "precisions": self.precisions,
            "plan": {"method": self.method, "metric": self.metric_name, "metric_value": self.metric,
                     "output_sqnr_db": _finite(self.output_sqnr_db),
                     "predicted_sqnr_db": _finite(self.predicted_sqnr_db),
                     "evaluation_samples": self.evaluation_samples, "upgrades": self.upgrades},
            "allow_over_budget": self.allow_over_budget,
            "over_budget": [check.describe() for check in self.over_budget],
        }


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def _totals(cost: CostReport, artifact_bytes: int) -> dict[str, float]:
    return {"ram": cost.ram_bytes, "storage": artifact_bytes, "latency": cost.latency_s, "energy": cost.energy_j}


def estimate_artifact_bytes(graph: Graph, precisions: Mapping[str, str]) -> int:
    """The size of the artifact of a quantized graph: encoded exactly, with an allowance for the manifest
    compile() writes (the per-node precisions plus MANIFEST_BYTES for the rest)."""
    encoded = len(assemble(encode_sections(graph, plan_memory(graph), {})))
    return encoded + len(json.dumps(precisions)) + MANIFEST_BYTES


def _key(assignment: Assignment) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(assignment.items()))


@dataclass
class _Exact:
    """An assignment applied: the quantized graph, its exact cost estimate and artifact size."""
    graph: Graph
    decisions: list[Decision]
    cost: CostReport
    artifact_bytes: int

    def totals(self) -> dict[str, float]:
        return _totals(self.cost, self.artifact_bytes)


class _Planner:
    """State of one planning run (see the module docstring for the method)."""

    def __init__(self, graph: Graph, profile: Profile, budgets: Budgets, calibration: list[Sample] | None,
                 evaluation: list[Sample] | None, metric: Metric | None, metric_name: str, observer: str,
                 pinned: Mapping[str, tuple[str, str]], allow_over_budget: bool, sensitivity_samples: int,
                 progress: bool) -> None:
        self.graph = graph
        self.profile = profile
        self.budgets = budgets
        self.limits = budgets.limits()
        self.evaluation = evaluation
        self.metric = metric or mean_cosine
        self.metric_name = metric_name
        self.observer = observer
        self.pinned = dict(pinned)
        self.allow_over_budget = allow_over_budget
        self.sensitivity_samples = sensitivity_samples
        self.progress = progress
        self.weights_in_ram = profile.memory.weights_in == "ram"

        self.allowed = [p for p in runtime_precisions(profile) if p != "int8" or calibration is not None]
        self.precisions = {node.name: ([self.pinned[node.name][0]] if node.name in self.pinned
                                       else node_precisions(graph, node, self.allowed)) for node in graph.nodes}
        self.decision = [node.name for node in graph.nodes if len(self.precisions[node.name]) > 1]
        uses_int8 = any("int8" in options for options in self.precisions.values())
        if uses_int8 and calibration is None:   # a recipe pinned a node to static int8
            load_calibration_data(None, graph)
        uses_dynamic = any("int8-dynamic" in options for options in self.precisions.values())
        # static int8 needs the statistics; dynamic int8 uses them to smooth its inputs (quant/smooth.py)
        self.stats = (calibrate(graph, calibration, observer if uses_int8 else "minmax", progress)
                      if uses_int8 or uses_dynamic and calibration is not None else None)
        # ops without weights that run in int8 when their input is int8 (a constant-table Gather is a
        # weighted node with its own options, not a follower)
        self.followers = [node.name for node in graph.nodes
                          if node.op in FOLLOWERS and node.name not in self.pinned
                          and node_precisions(graph, node) == ["fp32"]]
        # each quantized graph is a copy of the weights: keep the latest few, and every assignment's totals
        self.exact_cache: OrderedDict[tuple[tuple[str, str], ...], _Exact] = OrderedDict()
        self.totals_cache: dict[tuple[tuple[str, str], ...], dict[str, float]] = {}

    # ---- exact evaluation ---------------------------------------------------------------------------
    def asked(self, assignment: Assignment) -> dict[str, str]:
        """What quantize_graph is asked: the assignment, and int8 for the cheap ops that follow an int8
        input (they stay float unless an input is int8, see quant/quantize.py)."""
        asked = dict(assignment)
        if "int8" in assignment.values():
            asked.update({name: "int8" for name in self.followers})
        return asked

    def exact(self, assignment: Assignment) -> _Exact:
        """The assignment applied by the quantizer and priced exactly."""
        key = _key(assignment)
        if key in self.exact_cache:
            self.exact_cache.move_to_end(key)
        else:
            result = quantize_graph(self.graph, self.asked(assignment), self.stats, self.observer)
            self.exact_cache[key] = _Exact(result.graph, result.decisions, estimate(result.graph, self.profile),
                                           estimate_artifact_bytes(result.graph, assignment))
            self.totals_cache[key] = self.exact_cache[key].totals()
            if len(self.exact_cache) > EXACT_GRAPHS_KEPT:
                self.exact_cache.popitem(last=False)
        return self.exact_cache[key]

    def totals(self, assignment: Assignment) -> dict[str, float]:
        key = _key(assignment)
        return self.totals_cache[key] if key in self.totals_cache else self.exact(assignment).totals()

    def fits(self, assignment: Assignment) -> bool:
        totals = self.totals(assignment)
        return all(totals[r] <= limit for r, limit in self.limits.items())

    # ---- options --------------------------------------------------------------------------------------
    def measure_options(self, executor: _Executor | None) -> Options:
        """node -> precision -> Option, with the single-node loss measured when an executor is given."""
        nodes = {node.name: node for node in self.graph.nodes}
        measured = [(name, p) for name, options in self.precisions.items() for p in options if p != "fp32"]
        losses: dict[tuple[str, str], float | None] = {}
        if executor is None:
            losses = {key: None for key in measured}
        elif measured:
            references = executor.references
            signal = sum(float(np.sum(_flat(r, self.graph.outputs) ** 2)) for r in references)
            bar, task = _progress(len(measured), "measuring sensitivity", self.progress)
            with bar:
                for name, precision in measured:
                    variant = quantize_graph(self.graph, self.asked({name: precision}), self.stats, self.observer)
                    outputs = executor.outputs(variant.graph)
                    noise = sum(float(np.sum((_flat(o, self.graph.outputs) - _flat(r, self.graph.outputs)) ** 2))
                                for o, r in zip(outputs, references))
                    losses[(name, precision)] = noise / max(signal, 1e-30)
                    bar.advance(task)
        return {name: {p: _option_costs(self.graph, nodes[name], p, self.profile, losses.get((name, p), 0.0))
                       for p in options}
                for name, options in self.precisions.items()}

    # ---- the ILP --------------------------------------------------------------------------------------
    def model(self, assignment: Assignment, options: Options) -> dict[str, float]:
        """The linear part of the cost model: the sum of the chosen options' costs."""
        return {r: sum(options[n][p].resource(r, self.weights_in_ram) for n, p in assignment.items())
                for r in RESOURCES}

    def solve(self, options: Options, base: dict[str, float], elastic: bool = False) -> Assignment | None:
        return solve_ilp(options, self.limits, base, self.weights_in_ram, elastic)

    def search(self, options: Options, reference: Assignment
               ) -> tuple[Assignment | None, dict[str, float]]:
        """Solve, check with the exact estimate, correct the linear model and solve again (module
        docstring, step 3). Returns the least-loss assignment that fits exactly (or None) and the base
        costs of the last model."""
        exact_reference = self.totals(reference)
        linear_reference = self.model(reference, options)
        base = {r: exact_reference[r] - linear_reference[r] for r in RESOURCES}
        best: Assignment | None = None
        tried: set[tuple[tuple[str, str], ...]] = set()
        restarted = False
        for _ in range(MAX_SOLVES):
            assignment = self.solve(options, base)
            if assignment is None:
                if restarted or best is not None:
                    break
                # the model may be pessimistic (an fp32 arena while int8 activations shrink it): take the
                # corrections of the assignment closest to the budgets and try once more
                restarted = True
                assignment = self.solve(options, base, elastic=True)
                if assignment is None:
                    break
            key = _key(assignment)
            if key in tried:
                break
            tried.add(key)
            totals = self.totals(assignment)
            if self.fits(assignment) and (
                    best is None or self.loss(assignment, options) < self.loss(best, options)):
                best = assignment
            linear = self.model(assignment, options)
            base = {r: totals[r] - linear[r] for r in RESOURCES}
        return best, base

    @staticmethod
    def loss(assignment: Assignment, options: Options) -> float:
        return sum(options[n][p].loss for n, p in assignment.items())

    # ---- failure --------------------------------------------------------------------------------------
    def misses(self, options: Options, base: dict[str, float]
               ) -> tuple[list[BudgetCheck], str]:
        """Per budget that no assignment meets, the best figure achievable alone; when each can be met
        alone but not together, what the assignment closest to all of them misses."""
        found = []
        for r, limit in self.limits.items():
            cheapest = {n: min(opts, key=lambda p: options[n][p].resource(r, self.weights_in_ram))
                        for n, opts in self.precisions.items()}
            candidates = [cheapest]
            if r == "ram" and self.stats is not None:   # int8 activations shrink the arena: try them too
                candidates.append({n: "int8" if "int8" in opts else cheapest[n] for n, opts in self.precisions.items()})
            best = min(self.totals(a)[r] for a in candidates)
            if best > limit:
                found.append(BudgetCheck(r, limit, best))
        if found:
            return found, ""
        closest = self.solve(options, base, elastic=True)
        checks = self._checks(closest) if closest is not None else []
        return ([c for c in checks if not c.passed],
                "each budget can be met alone, not all together; figures of the assignment closest to them")

    # ---- the run --------------------------------------------------------------------------------------
    def run(self) -> Plan:
        reference = {name: options[0] if name in self.pinned else "fp32" for name, options in self.precisions.items()}
        fits = self.fits(reference)
        pinned_low = any(p != "fp32" for p in reference.values())
        if fits or not self.decision:
            if not fits and not self.allow_over_budget:
                misses = [c for c in self._checks(reference) if not c.passed]
                raise BudgetError(self.profile.name, misses, "no node has a lower precision on this runtime")
            executor = _Executor(self.graph, self.evaluation, keep=False) if self.evaluation and pinned_low else None
            method = ("fp32 meets every budget: no node needs a lower precision" if fits
                      else "no node has a choice of precision")
            reasons = {n: "fp32: every budget holds at full precision" for n in self.decision} if fits else {}
            return self.finish(reference, self.measure_options(None), method, executor, reasons)
        if not self.evaluation:
            broken = [c.describe() for c in self._checks(reference) if not c.passed]
            raise PlanError(f"profile '{self.profile.name}': at full precision the model breaks its budgets "
                            f"({'; '.join(broken)}); choosing lower precisions needs data to measure what they "
                            "cost in accuracy: pass evaluation_data= or calibration_data= (CLI --evaluation / "
                            "--calibration), or an explicit precision")
        sensitivity = _Executor(self.graph, self.evaluation[:self.sensitivity_samples], keep=True)
        options = self.measure_options(sensitivity)
        assignment, base = self.search(options, reference)
        method = (f"ILP over {len(self.decision)} nodes (scipy.optimize.milp): least summed single-node "
                  "output noise within the budgets")
        if assignment is None:
            misses, note = self.misses(options, base)
            if not self.allow_over_budget:
                raise BudgetError(self.profile.name, misses, note)
            assignment = self.solve(options, base, elastic=True) or reference
            method += "; no assignment meets the budgets: the one closest to them (allow_over_budget)"
        return self.finish(assignment, options, method, _Executor(self.graph, self.evaluation, keep=False))

    def _checks(self, assignment: Assignment) -> list[BudgetCheck]:
        totals = self.totals(assignment)
        return [BudgetCheck(r, limit, totals[r]) for r, limit in self.limits.items()]

    def finish(self, assignment: Assignment, options: Options, method: str,
               executor: _Executor | None, reasons: dict[str, str] | None = None) -> Plan:
        """Verify the end-to-end metric, upgrade while it is short (module docstring, step 5), explain."""
        reasons = dict(reasons or {})
        metric = sqnr_db = None
        upgrades: list[str] = []
        if executor is not None:
            metric, sqnr_db = self.evaluate(assignment, executor)
            while metric < self.budgets.accuracy:
                upgraded = self.upgrade(assignment, options)
                if upgraded is None:
                    break
                node, before = upgraded
                upgrades.append(f"{node}: {before} -> {assignment[node]}")
                reasons[node] = f"{assignment[node]}: raised from {before} to meet the accuracy tolerance"
                metric, sqnr_db = self.evaluate(assignment, executor)
            if metric < self.budgets.accuracy and not self.allow_over_budget:
                raise BudgetError(self.profile.name, [BudgetCheck("accuracy", self.budgets.accuracy, metric)],
                                  f"{self.metric_name} on {len(executor.samples)} evaluation samples; no more "
                                  "accurate option fits the other budgets")
            if upgrades:
                method += f"; {len(upgrades)} greedy upgrade(s) to meet the accuracy tolerance"
        exact = self.exact(assignment)
        losses = [options[n][p].loss for n, p in assignment.items()]
        predicted = None
        if all(loss is not None for loss in losses):
            total = sum(losses)
            predicted = math.inf if total <= 0 else -10.0 * math.log10(total)
        plan = Plan(self.profile, self.budgets, exact.graph, exact.decisions, exact.cost, exact.artifact_bytes,
                    nodes=[], method=method, metric_name=self.metric_name, metric=metric, output_sqnr_db=sqnr_db,
                    predicted_sqnr_db=predicted, evaluation_samples=len(executor.samples) if executor else 0,
                    upgrades=upgrades, allow_over_budget=self.allow_over_budget)
        plan.nodes = self.explain(assignment, options, exact, reasons)
        return plan

    def evaluate(self, assignment: Assignment, executor: _Executor) -> tuple[float, float]:
        outputs = executor.outputs(self.exact(assignment).graph)
        return float(self.metric(outputs, executor.references)), output_sqnr(outputs, executor.references)

    def upgrade(self, assignment: Assignment, options: Options) -> tuple[str, str] | None:
        """Move the most sensitive node that can afford it one step up in accuracy; returns (node, old
        precision), or None when no upgrade fits the budgets. Changes `assignment` in place."""
        measured = [n for n in self.decision if options[n][assignment[n]].loss is not None]
        for node in sorted(measured, key=lambda n: -options[n][assignment[n]].loss):
            current = options[node][assignment[node]]
            better = [o for o in options[node].values() if o.loss is not None and o.loss < current.loss]
            if not better:
                continue
            step = max(better, key=lambda o: o.loss)   # the next more accurate option, not the best
            trial = {**assignment, node: step.precision}
            if self.fits(trial):
                before = assignment[node]
                assignment[node] = step.precision
                return node, before
        return None

    # ---- reasons --------------------------------------------------------------------------------------
    def explain(self, assignment: Assignment, options: Options, exact: _Exact,
                reasons: dict[str, str]) -> list[NodeChoice]:
        used = {d.node: d.used for d in exact.decisions}
        rows = exact.cost.by_name
        totals = exact.totals()
        at_fp32 = self._checks({n: "fp32" if n not in self.pinned else p for n, p in assignment.items()})
        binding = [c.budget for c in at_fp32 if not c.passed]
        choices = []
        for node in self.graph.nodes:
            name = node.name
            precision = used.get(name, "fp32")
            if name in reasons:
                reason = reasons[name]
            elif name in self.pinned:
                reason = f"{precision}: {self.pinned[name][1]}"
            elif name in self.decision:
                reason = self._why_decided(name, precision, options[name], totals, binding)
            else:
                reason = self._why_fixed(node, precision)
            option = options[name].get(precision)
            row = rows.get(name)
            choices.append(NodeChoice(name, node.op, precision, reason,
                                      options[name] if name in self.decision or name in self.pinned else {},
                                      len(node_precisions(self.graph, node)) > 1,
                                      option.ram_bytes if option is not None else 0,
                                      row.latency_s if row is not None else 0.0,
                                      row.energy_j if row is not None else 0.0))
        return choices

    def _why_decided(self, name: str, precision: str, options: dict[str, Option], totals: dict[str, float],
                     binding: list[str]) -> str:
        current = options[precision]
        lower = [o for o in options.values() if o.precision != "fp32"]
        if precision == "fp32":
            best = min(lower, key=lambda o: o.loss)
            if best.sqnr_db < FRAGILE_DB:
                return f"fp32: fragile (at best {best.precision}: {best.sqnr_db:.1f} dB output SQNR)"
            alone = ", ".join(f"{o.precision} {o.sqnr_db:.1f}" for o in lower)
            return f"fp32: kept; the budgets hold without lowering it (alone: {alone} dB)"
        better = [o for o in options.values() if o.loss < current.loss]
        step = max(better, key=lambda o: o.loss) if better else None
        if step is not None:
            broken = [r for r, limit in self.limits.items()
                      if totals[r] + step.resource(r, self.weights_in_ram) - current.resource(r, self.weights_in_ram)
                      > limit]
            if broken:
                named = " and ".join(f"{format_figure(r, self.limits[r], self.limits[r])} {RESOURCE_NAMES[r]}"
                                     for r in broken)
                return f"{precision}: needed to meet the {named} budget"
        named = ", ".join(RESOURCE_NAMES[r] for r in binding) or "every"
        return f"{precision}: least total loss within the {named} budget ({current.sqnr_db:.1f} dB alone)"

    def _why_fixed(self, node: Node, precision: str) -> str:
        if precision == "int8":
            return "int8: follows its int8 input"
        could = node_precisions(self.graph, node)
        if len(could) == 1:
            return "fp32: fragile under int8, kept in float" if node.op in FRAGILE else "fp32: no weights to quantize"
        if "int8" in could and "int8" in runtime_precisions(self.profile) and "int8" not in self.allowed:
            return "fp32: static int8 needs calibration data"
        runtime = f"the {self.profile.runtime} runtime on {self.profile.target.name}"
        return f"fp32: {runtime} runs no lower precision of {node.op}"


def plan_precisions(graph: Graph, profile: Profile, budgets: Budgets | None = None, *,
                    calibration: list[Sample] | None = None, evaluation: list[Sample] | None = None,
                    metric: Metric | None = None, metric_name: str | None = None, observer: str = "minmax",
                    pinned: Mapping[str, tuple[str, str]] | None = None, allow_over_budget: bool = False,
                    sensitivity_samples: int = 4, progress: bool = True) -> Plan:
    """Choose a precision per node of the float `graph` for `profile` (module docstring for the method).

    budgets: the profile's by default (Budgets.from_profile with overrides).
    calibration: input samples; enables static int8 (where the runtime runs it).
    evaluation: input samples for the single-node sensitivities (the first `sensitivity_samples`) and the
        end-to-end metric (all of them); defaults to the calibration samples.
    metric: metric(outputs, fp32_outputs) -> float, higher is better, one dict per sample; the tolerance
        is `budgets.accuracy`. Default: mean_cosine.
    pinned: node name -> (precision, reason) fixed by the caller, e.g. a recipe's overrides.
    Raises BudgetError when no assignment meets the budgets (unless allow_over_budget), PlanError when
    the fp32 model breaks a budget and there is no data to measure lower precisions with."""
    if sensitivity_samples < 1:
        raise ValueError("sensitivity_samples must be at least 1")
    if metric is not None and metric_name is None:
        metric_name = getattr(metric, "__name__", "metric")
    planner = _Planner(graph, profile, budgets or Budgets.from_profile(profile), calibration,
                       evaluation if evaluation is not None else calibration, metric, metric_name or "mean cosine",
                       observer, pinned or {}, allow_over_budget, sensitivity_samples, progress)
    return planner.run()


def assess(graph: Graph, quantized: Graph, decisions: list[Decision], profile: Profile, budgets: Budgets,
           method: str, evaluation: list[Sample] | None = None, metric: Metric | None = None,
           allow_over_budget: bool = False) -> Plan:
    """The plan of precisions the caller chose (an explicit precision or recipe, already applied to
    `quantized`): its exact cost, the budget checks and, with evaluation data, the measured metric.
    Raises BudgetError when a budget is missed, unless allow_over_budget."""
    cost = estimate(quantized, profile)
    metric_value = sqnr_db = None
    if evaluation:
        executor = _Executor(graph, evaluation, keep=False)
        outputs = executor.outputs(quantized)
        metric_value = float((metric or mean_cosine)(outputs, executor.references))
        sqnr_db = output_sqnr(outputs, executor.references)
    used = {d.node: d for d in decisions}
    nodes = []
    for node in graph.nodes:
        decision = used[node.name]
        row = cost.by_name.get(node.name)
        option = _option_costs(graph, node, decision.used, profile, None)
        nodes.append(NodeChoice(node.name, node.op, decision.used, f"{decision.used}: {decision.note or 'asked'}", {},
                                len(node_precisions(graph, node)) > 1, option.ram_bytes,
                                row.latency_s if row else 0.0, row.energy_j if row else 0.0))
    size = estimate_artifact_bytes(quantized, {d.node: d.used for d in decisions})
    plan = Plan(profile, budgets, quantized, decisions, cost, size, nodes, method,
                metric_name=getattr(metric, "__name__", "metric") if metric else "mean cosine",
                metric=metric_value, output_sqnr_db=sqnr_db, evaluation_samples=len(evaluation or []),
                allow_over_budget=allow_over_budget)
    if plan.over_budget and not allow_over_budget:
        raise BudgetError(profile.name, plan.over_budget, method, chosen=True)
    return plan


__all__ = ["Budgets", "BudgetCheck", "BudgetError", "PlanError", "Plan", "NodeChoice", "Option", "plan_precisions",
           "assess", "mean_cosine", "output_sqnr", "node_precisions", "runtime_precisions", "RUNTIME_PRECISIONS",
           "format_figure"]
