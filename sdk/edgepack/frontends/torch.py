"""PyTorch frontend: torch.onnx.export into memory, then the ONNX importer with static shapes.

The torch.export-based exporter (dynamo=True, the default since torch 2.9) is used by default: it traces
with the example inputs' shapes, runs the onnxscript optimizer, and so hands over a graph whose shape
arithmetic is already folded (opset 20 by default, which also keeps GELU as one Gelu node). The legacy
TorchScript exporter stays reachable with dynamo=False for models torch.export cannot trace.
"""
from __future__ import annotations

import contextlib
import inspect
import io
import logging
import os
import sys
import warnings
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

import numpy as np
import onnx

from ..ir import Graph
from .onnx import UnsupportedModelError, import_onnx

if TYPE_CHECKING:  # torch is imported only when a module is actually exported
    from torch import nn

# The exporters report progress and harmless optimizer misses through these loggers.
_NOISY_LOGGERS = ("torch.onnx", "torch.export", "torch._dynamo", "torch.fx", "onnxscript")


@contextlib.contextmanager
def _native_output_discarded() -> Iterator[None]:
    """Discard what C++ code writes to file descriptors 1 and 2: the TorchScript exporter prints the
    whole TorchScript graph to stdout when it fails (its ONNX log cannot be switched off in torch 2.13)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    try:
        with open(os.devnull, "wb") as sink:
            for fd in saved:
                os.dup2(sink.fileno(), fd)
            yield
    finally:
        for fd, copy in saved.items():
            os.dup2(copy, fd)
            os.close(copy)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporters' warnings, log lines and prints; errors still propagate."""
    loggers = [logging.getLogger(name) for name in _NOISY_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()), _native_output_discarded():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


@contextlib.contextmanager
def _eval_mode(module: nn.Module) -> Iterator[None]:
    """Put every submodule in eval mode and give each back its own mode afterwards."""
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training


def _as_tensor(value: Any):
    """A tensor with plain row-major strides: torch.export records the strides it is given, and odd
    ones (a numpy [:, None] axis, channels-last) show up as as_strided Gathers in the graph."""
    import torch
    tensor = torch.from_numpy(value) if isinstance(value, np.ndarray) else value
    return tensor.clone(memory_format=torch.contiguous_format) if isinstance(tensor, torch.Tensor) else tensor


def _split_inputs(module: nn.Module, example_inputs: Any) -> tuple[tuple, dict, list[str]]:
    """(args, kwargs, default input names): a tensor, a sequence of tensors, or a name -> tensor dict.
    Default names are the forward() parameter names, so ONNX inputs read like the Python signature."""
    if isinstance(example_inputs, Mapping):
        kwargs = {name: _as_tensor(v) for name, v in example_inputs.items()}
        return (), kwargs, list(kwargs)
    if isinstance(example_inputs, Sequence) and not isinstance(example_inputs, (str, bytes)):
        args = tuple(_as_tensor(v) for v in example_inputs)
    else:
        args = (_as_tensor(example_inputs),)
    params = [p.name for p in inspect.signature(module.forward).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    names = params[:len(args)] if len(params) >= len(args) else [f"input_{i}" for i in range(len(args))]
    return args, {}, names


def _rename_value(graph: onnx.GraphProto, old: str, new: str) -> None:
    for node in graph.node:
        node.input[:] = [new if n == old else n for n in node.input]
        node.output[:] = [new if n == old else n for n in node.output]
    for info in list(graph.input) + list(graph.output) + list(graph.value_info) + list(graph.initializer):
        if info.name == old:
            info.name = new


def _rename_outputs(model: onnx.ModelProto, names: Sequence[str]) -> None:
    """Give the graph outputs the caller's names. Done here rather than by the exporter, which can
    leave an internal value with the same name (e.g. "embedding") and so write an invalid model."""
    graph = model.graph
    if len(names) != len(graph.output):
        raise ValueError(f"{len(names)} output names for {len(graph.output)} outputs")
    taken = {n for node in graph.node for n in list(node.input) + list(node.output)}
    taken |= {v.name for v in list(graph.input) + list(graph.initializer)}
    for out, new in zip(list(graph.output), names):
        if out.name == new:
            continue
        if new in taken:
            internal = new
            while internal in taken:
                internal += "_"
            _rename_value(graph, new, internal)
            taken.add(internal)
        _rename_value(graph, out.name, new)
        taken.add(new)


def _export(module: nn.Module, args: tuple, kwargs: dict, input_names: list[str], output_names: list[str] | None,
            opset: int, dynamo: bool) -> onnx.ModelProto:
    import torch
    common = dict(kwargs=kwargs or None, input_names=input_names, opset_version=opset, dynamo=dynamo)
    with _quiet():
        if dynamo:
            model = torch.onnx.export(module, args, **common, optimize=True, verbose=False).model_proto
        else:
            buffer = io.BytesIO()
            torch.onnx.export(module, args, buffer, **common, do_constant_folding=True)
            model = onnx.load_model_from_string(buffer.getvalue())
    if output_names:
        _rename_outputs(model, output_names)
    return model


def to_onnx(module: nn.Module, example_inputs: Any, input_names: Sequence[str] | None = None,
            output_names: Sequence[str] | None = None, opset: int = 20, dynamo: bool = True) -> onnx.ModelProto:
    """Export a torch nn.Module to an in-memory ONNX model with the static shapes of `example_inputs`.

    example_inputs: a tensor, a tuple/list of tensors (positional forward() arguments) or a dict of
    name -> tensor (keyword arguments); numpy arrays are accepted too.
    input_names: defaults to the forward() argument names; output_names: defaults to the exporter's.
    The module runs in eval mode during export; each submodule's mode is restored afterwards.
    """
    args, kwargs, default_names = _split_inputs(module, example_inputs)
    names = list(input_names) if input_names is not None else default_names
    if len(names) != len(args) + len(kwargs):
        raise ValueError(f"{type(module).__name__}: {len(names)} input names for "
                         f"{len(args) + len(kwargs)} example inputs")
    with _eval_mode(module):
        try:
            return _export(module, args, kwargs, names, list(output_names) if output_names else None, opset, dynamo)
        except Exception as err:  # the exporters raise many unrelated types
            hint = " (dynamo=False selects the TorchScript exporter, which may trace it)" if dynamo else ""
            message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise UnsupportedModelError(
                f"torch.onnx.export failed for module {type(module).__name__}: {message}{hint}") from err


def import_torch(module: nn.Module, example_inputs: Any, input_names: Sequence[str] | None = None,
                 output_names: Sequence[str] | None = None, opset: int = 20, dynamo: bool = True) -> Graph:
    """Import a torch nn.Module into the IR: `to_onnx` (same arguments), then `import_onnx` with the
    shapes of `example_inputs` as the static input shapes."""
    model = to_onnx(module, example_inputs, input_names, output_names, opset, dynamo)
    args, kwargs, default_names = _split_inputs(module, example_inputs)
    names = list(input_names) if input_names is not None else default_names
    exported = {i.name for i in model.graph.input}
    # the exporter drops inputs that forward() never reads
    shapes = {name: tuple(t.shape) for name, t in zip(names, [*args, *kwargs.values()]) if name in exported}
    graph = import_onnx(model, shapes)
    graph.metadata["source"] = f"torch:{type(module).__name__}"
    return graph
