"""Recipes: a default precision plus per-node overrides matched by node name or op type (globs).

    precision: int8            # default for every node it applies to
    observer: percentile       # minmax | percentile | entropy | mse
    overrides:                 # later entries win
      - {match: "conv1*", precision: fp32}    # node names
      - {match: "Softmax", precision: fp32}   # op types
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..ir import Graph
from .observers import OBSERVERS
from .quantize import FRAGILE, PRECISIONS


@dataclass
class Recipe:
    precision: str = "fp32"
    observer: str = "minmax"
    overrides: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        _check_precision(self.precision, "precision")
        if self.observer not in OBSERVERS:
            raise ValueError(f"recipe: unknown observer '{self.observer}' (choose from {', '.join(OBSERVERS)})")
        for pattern, precision in self.overrides:
            _check_precision(precision, f"override '{pattern}'")

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "recipe") -> "Recipe":
        if not isinstance(data, dict):
            raise ValueError(f"{source}: a recipe is a mapping with keys precision, observer, overrides")
        unknown = set(data) - {"precision", "observer", "overrides"}
        if unknown:
            raise ValueError(f"{source}: unknown keys {sorted(unknown)} (known: precision, observer, overrides)")
        overrides = []
        for i, entry in enumerate(data.get("overrides") or []):
            if not isinstance(entry, dict) or set(entry) != {"match", "precision"}:
                raise ValueError(f"{source}: override {i} must be {{match: PATTERN, precision: P}}, got {entry!r}")
            overrides.append((str(entry["match"]), str(entry["precision"])))
        return cls(str(data.get("precision", "fp32")), str(data.get("observer", "minmax")), overrides)

    @classmethod
    def load(cls, path: str | Path) -> "Recipe":
        import yaml
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"recipe '{path}' does not exist")
        return cls.from_dict(yaml.safe_load(path.read_text()) or {}, str(path))

    def to_dict(self) -> dict[str, Any]:
        return {"precision": self.precision, "observer": self.observer,
                "overrides": [{"match": p, "precision": q} for p, q in self.overrides]}


def _check_precision(precision: str, where: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"{where}: unknown precision '{precision}' (choose from {', '.join(PRECISIONS)})")


def _applies(precision: str, graph: Graph, node) -> bool:
    """Whether a default precision is meant for this node (others stay fp32 without a warning)."""
    weight = graph.values[node.inputs[1]] if len(node.inputs) > 1 and node.inputs[1] else None
    table = graph.values[node.inputs[0]] if node.inputs and node.inputs[0] else None
    const_weight = weight is not None and weight.is_const
    if precision == "int8":
        return node.op not in FRAGILE
    if precision == "fp16":
        return node.op in ("Conv", "MatMul") and const_weight
    if precision in ("int8-dynamic", "int4"):
        return (node.op == "MatMul" and const_weight) or (node.op == "Gather" and table is not None and table.is_const)
    return True


def assign_precisions(graph: Graph, recipe: Recipe) -> tuple[dict[str, str], dict[str, str]]:
    """(node name -> precision, node name -> why) for every node."""
    precisions, reasons = {}, {}
    for node in graph.nodes:
        if _applies(recipe.precision, graph, node):
            precisions[node.name], reasons[node.name] = recipe.precision, "default"
        else:
            precisions[node.name] = "fp32"
            reasons[node.name] = ("kept in fp32: fragile under int8" if recipe.precision == "int8" and node.op in FRAGILE
                                  else "default (precision does not apply)")
    for pattern, precision in recipe.overrides:
        matched = [n for n in graph.nodes if fnmatch.fnmatchcase(n.name, pattern) or fnmatch.fnmatchcase(n.op, pattern)]
        if not matched:
            names = ", ".join(n.name for n in graph.nodes[:12])
            raise ValueError(f"recipe override '{pattern}' matches no node name or op type "
                             f"(ops: {', '.join(sorted(graph.op_counts()))}; nodes: {names}"
                             f"{', ...' if len(graph.nodes) > 12 else ''})")
        for node in matched:
            precisions[node.name], reasons[node.name] = precision, f"recipe override '{pattern}'"
    return precisions, reasons
