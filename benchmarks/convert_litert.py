"""Build the peer runtimes' model files in the benchmark cache (default ~/.cache/edgepack/bench-models).

LiteRT (run in the LiteRT venv, with the SDK on the path for the model definitions):

    PYTHONPATH=sdk /opt/litert-venv/bin/python benchmarks/convert_litert.py

converts the PyTorch models (all-MiniLM-L6-v2 at batch 1, seq 128; the digits CNN; the MobileNet-style
digits model) with litert-torch to fp32 .tflite, and makes the dynamic-range int8 variant of each with
ai-edge-quantizer's dynamic_wi8_afp32 recipe (int8 per-channel symmetric weights, float activations
quantized at run time).

ONNX (run in the main environment: it needs onnxruntime):

    python benchmarks/convert_litert.py --onnx

exports the fp32 ONNX models (the light models from onnx's backend-test data too) and their ONNX Runtime
quantize_dynamic int8 variants (common.ORT_DYNAMIC_OPTIONS: ORT's defaults). accuracy.py and compare.py
make any missing ONNX file themselves, so this step is optional.

Existing files are kept; pass --force to rebuild them. A recipe.json beside the models records what made them.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from common import ALL_MODELS, DEFAULT_CACHE, LITERT_RECIPE, ORT_DYNAMIC_OPTIONS, TORCH_MODELS, ModelFiles, \
    ensure_ort_int8, tmp_path, torch_model


def convert_litert(name: str, cache: Path, force: bool) -> None:
    files = ModelFiles(cache, name)
    if force or not files.tflite.exists():
        import litert_torch
        module, example = torch_model(name, cache)
        started = time.perf_counter()
        edge_model = litert_torch.convert(module, example)
        tmp = tmp_path(files.tflite)
        edge_model.export(str(tmp))
        tmp.replace(files.tflite)
        print(f"{files.tflite.name}: litert-torch {time.perf_counter() - started:.1f} s, "
              f"{files.tflite.stat().st_size / 1e6:.2f} MB", flush=True)
    if force or not files.tflite_int8.exists():
        from ai_edge_quantizer import quantizer, recipe
        started = time.perf_counter()
        result = quantizer.Quantizer(str(files.tflite), recipe.dynamic_wi8_afp32()).quantize(
            enable_progress_report=False)
        tmp = tmp_path(files.tflite_int8)
        result.export_model(str(tmp), overwrite=True)
        tmp.replace(files.tflite_int8)
        print(f"{files.tflite_int8.name}: ai-edge-quantizer {time.perf_counter() - started:.1f} s, "
              f"{files.tflite_int8.stat().st_size / 1e6:.2f} MB", flush=True)


def convert_onnx(name: str, cache: Path, force: bool) -> None:
    files = ModelFiles(cache, name)
    if force:
        files.onnx.unlink(missing_ok=True)
        files.onnx_int8.unlink(missing_ok=True)
    ensure_ort_int8(name, cache)
    print(f"{files.onnx.name}: {files.onnx.stat().st_size / 1e6:.2f} MB, {files.onnx_int8.name}: "
          f"{files.onnx_int8.stat().st_size / 1e6:.2f} MB", flush=True)


def record(cache: Path, key: str, facts: dict) -> None:
    """Merge what made these files into cache/recipe.json (the two environments each write their part)."""
    path = cache / "recipe.json"
    recorded = json.loads(path.read_text()) if path.exists() else {}
    recorded[key] = facts
    path.write_text(json.dumps(recorded, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help="where the models go (default: %(default)s)")
    parser.add_argument("--onnx", action="store_true",
                        help="export ONNX fp32 + ORT quantize_dynamic int8 instead of LiteRT (main environment)")
    parser.add_argument("--models", nargs="+", metavar="NAME",
                        help=f"subset to build (LiteRT: {', '.join(TORCH_MODELS)}; ONNX: {', '.join(ALL_MODELS)})")
    parser.add_argument("--force", action="store_true", help="rebuild files that already exist")
    args = parser.parse_args(argv)
    known = ALL_MODELS if args.onnx else TORCH_MODELS
    models = args.models or list(known)
    unknown = sorted(set(models) - set(known))
    if unknown:
        parser.error(f"unknown model(s) {unknown} for {'ONNX' if args.onnx else 'LiteRT'}; choose from {list(known)}")
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    from importlib.metadata import version
    if args.onnx:
        for name in models:
            convert_onnx(name, args.cache_dir, args.force)
        record(args.cache_dir, "onnxruntime", {"quantize_dynamic": ORT_DYNAMIC_OPTIONS,
                                               "onnxruntime": version("onnxruntime")})
    else:
        for name in models:
            convert_litert(name, args.cache_dir, args.force)
        record(args.cache_dir, "litert", {"converter": "litert_torch.convert(module, example_inputs)",
                                          "quantizer_recipe": LITERT_RECIPE,
                                          **{p: version(p) for p in ("litert-torch", "ai-edge-quantizer", "torch")}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
