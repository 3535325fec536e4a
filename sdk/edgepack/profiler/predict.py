"""What the cost model predicts for an artifact on a profile, to put beside what the runners measure.

Totals come from the artifact's manifest `predicted` entry when it was compiled for the same profile (the
figures its budgets were planned against); otherwise, and always per op, the cost model is run again on
the graph read back from the artifact.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..backends.epk import Artifact, Storage, read_epk
from ..ir import Graph, Node, QuantParams
from ..planner.cost import estimate
from ..profiles import Profile


@dataclass(frozen=True)
class Prediction:
    source: str                      # "artifact manifest" | "cost model (recomputed)"
    latency_s: float
    energy_j: float
    ram_bytes: int
    arena_bytes: int
    per_op_s: dict[str, float] = field(default_factory=dict)   # node name -> predicted latency
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "latency_s": self.latency_s, "energy_j": self.energy_j,
                "ram_bytes": self.ram_bytes, "arena_bytes": self.arena_bytes, "notes": list(self.notes)}


def graph_from_artifact(artifact: Artifact) -> Graph:
    """The artifact's graph, with shapes, dtypes, quantization parameters and attributes, for the cost
    model. Constants are zero-stride placeholders of the right shape and dtype: the cost model reads what
    a tensor is, never its values, so the weights are not loaded."""
    graph = Graph(Path(artifact.path).stem)
    for tensor in artifact.tensors:
        const = None
        if tensor.storage == Storage.WEIGHT:
            # int4 has no numpy dtype; its placeholder only needs the shape
            dtype = np.int8 if tensor.dtype.traits.numpy is None else tensor.dtype.numpy
            const = np.broadcast_to(np.zeros((), dtype), tensor.shape)
        value = graph.add_value(tensor.name, tensor.dtype, tensor.shape, const)
        if tensor.scales.size:
            value.quant = QuantParams(tensor.scales, tensor.zero_points,
                                      None if tensor.quant_axis < 0 else tensor.quant_axis, tensor.block_size)
    names = [t.name for t in artifact.tensors]
    for op in artifact.ops:
        graph.nodes.append(Node(op.op, op.name, [names[i] if i >= 0 else "" for i in op.inputs],
                                [names[i] for i in op.outputs], dict(op.attrs)))
    graph.inputs = [names[i] for i in artifact.inputs]
    graph.outputs = [names[i] for i in artifact.outputs]
    return graph


def predict(artifact: Artifact | str | Path, profile: Profile) -> Prediction:
    """Predicted latency, energy and memory of an artifact (read_epk's, or a path) on `profile`, totals and
    per op. Raises ValueError when the artifact has no planned figures for this profile and the cost model
    cannot price one of its ops."""
    if not isinstance(artifact, Artifact):
        artifact = read_epk(artifact)
    notes = []
    try:
        cost = estimate(graph_from_artifact(artifact), profile)
    except ValueError as error:   # an op the cost model has no rule for
        cost = None
        notes.append(f"no per-op prediction: {error}")
    per_op = {node.name: node.latency_s for node in cost.nodes} if cost is not None else {}
    manifest = artifact.manifest
    planned = manifest.get("predicted")
    if isinstance(planned, dict) and manifest.get("profile") == profile.name:
        return Prediction(f"artifact manifest (compiled for {profile.name})", planned["latency_s"],
                          planned["energy_j"], planned["ram_bytes"], planned["arena_bytes"], per_op, tuple(notes))
    if cost is None:
        raise ValueError(f"no prediction for '{artifact.path}' on {profile.name}: {notes[0]}")
    if manifest.get("profile") not in (None, profile.name):
        notes.append(f"compiled for profile '{manifest['profile']}': predictions recomputed for '{profile.name}'")
    return Prediction("cost model (recomputed)", cost.latency_s, cost.energy_j, cost.ram_bytes, cost.arena_bytes,
                      per_op, tuple(notes))
