"""How much accuracy each quantizer gives up: edgepack's int8-dynamic, static int8 and int4 artifacts next
to ONNX Runtime's quantize_dynamic and LiteRT's dynamic-range int8, each against the same fp32 model.

all-MiniLM-L6-v2 (batch 1, seq 128) on real sentences (edgepack.models.minilm.sentences): the first
--eval sentences are evaluated, the next --calibration ones (disjoint) calibrate static int8 and smooth
int8-dynamic's MatMul inputs (docs/quantization.md). Per variant:
mean and min cosine of its embedding to fp32's, top-10 neighbour agreement (for each sentence, the share
of its 10 nearest neighbours by cosine within the evaluation set that fp32 and the variant agree on,
averaged), and the artifact's size over the same format's fp32 file.

Digits CNN and MobileNet-style model: test-split accuracy of fp32, edgepack static int8 (calibrated on the
training split), ORT and LiteRT; and how often each variant's predicted class is fp32's.

The fp32 reference is ONNX Runtime on the exported fp32 ONNX model. edgepack artifacts run in the native
runtime; where a precision's native kernels do not exist yet (UnsupportedError at load), they run in
edgepack.reference.run_graph, the numpy oracle the kernels are tested against, and the table says so.

    python benchmarks/accuracy.py            # everything (MiniLM takes ~15 min on 2 cores)
    python benchmarks/accuracy.py --quick    # digits CNN only, main-environment packages only
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from common import DEFAULT_CACHE, DIGITS_MODELS, LITERT_RECIPE, ORT_DYNAMIC_OPTIONS, README, RESULTS_DIR, \
    THREADS, EdgepackRunner, LiteRTRunner, ModelFiles, OrtRunner, calibration_feeds, ensure_onnx, \
    ensure_ort_int8, litert_missing, log, machine, markdown_table, onnx_inputs, update_readme, versions, write_json

Feeds = Mapping[str, np.ndarray]
Predict = Callable[[Feeds], np.ndarray]
NEIGHBOURS = 10
MINILM_PRECISIONS = ("int8-dynamic", "int8", "int4")
ACCURACY_MODELS = ("minilm",) + DIGITS_MODELS


# ---- executors --------------------------------------------------------------------------------------------
def short(executor: str) -> str:
    """The executor without the reason in parentheses: for table cells."""
    return executor.split(" (")[0]


def first_output(runner) -> Predict:
    return lambda feeds: np.asarray(runner.run(feeds)[0], dtype=np.float32)


def edgepack_predictor(compiled) -> tuple[Predict, str]:
    """The native runtime when it can load the artifact, else the numpy reference on the compiled graph;
    with a description of which ran."""
    import edgepack
    from edgepack.reference import run_graph
    try:
        return first_output(EdgepackRunner(compiled.path)), "edgepack native"
    except edgepack.UnsupportedError as error:
        output = compiled.graph.outputs[0]
        return (lambda feeds: run_graph(compiled.graph, feeds)[output].astype(np.float32),
                f"edgepack reference (native kernels missing: {error})")


def outputs(predict: Predict, samples: list[Feeds]) -> np.ndarray:
    return np.concatenate([predict(feeds) for feeds in samples])


def compile_edgepack(source: Path, directory: Path, precision: str, calibration: list[Feeds] | None):
    import edgepack
    return edgepack.compile(source, output=directory / f"{source.stem}.{precision}.epk", precision=precision,
                            calibration_data=calibration if precision in ("int8", "int8-dynamic") else None, progress=False)


# ---- metrics ----------------------------------------------------------------------------------------------
def unit_rows(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-30)


def nearest(embeddings: np.ndarray, k: int) -> np.ndarray:
    """Indices of each row's k nearest other rows by cosine."""
    similarity = unit_rows(embeddings) @ unit_rows(embeddings).T
    np.fill_diagonal(similarity, -np.inf)
    return np.argpartition(-similarity, k, axis=1)[:, :k]


def embedding_metrics(reference: np.ndarray, embeddings: np.ndarray) -> dict[str, float]:
    cosines = np.sum(unit_rows(reference) * unit_rows(embeddings), axis=1)
    ours, theirs = nearest(reference, NEIGHBOURS), nearest(embeddings, NEIGHBOURS)
    agreement = np.mean([len(set(a) & set(b)) / NEIGHBOURS for a, b in zip(ours, theirs)])
    return {"mean_cosine": round(float(cosines.mean()), 5), "min_cosine": round(float(cosines.min()), 5),
            "top10_agreement": round(float(agreement), 4)}


def classifier_metrics(reference: np.ndarray, logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    predicted = logits.argmax(axis=1)
    return {"accuracy": round(float(np.mean(predicted == labels)), 4),
            "agreement_with_fp32": round(float(np.mean(predicted == reference.argmax(axis=1))), 4)}


def row(variant: str, runtime: str, executor: str, size: int, fp32_size: int, **metrics) -> dict:
    return {"variant": variant, "runtime": runtime, "executor": executor, "size_bytes": size,
            "size_ratio_to_fp32": round(size / fp32_size, 3), **metrics}


# ---- the variants of one model ---------------------------------------------------------------------------
def evaluate(name: str, cache: Path, workdir: Path, samples: list[Feeds], calibration: list[Feeds],
             precisions: tuple[str, ...], metrics: Callable[[np.ndarray, np.ndarray], dict]) -> list[dict]:
    """Every variant of `name` on `samples`, each measured by metrics(fp32 outputs, variant outputs)."""
    files = ModelFiles(cache, name)
    onnx_fp32, onnx_int8 = ensure_onnx(name, cache), ensure_ort_int8(name, cache)

    def measure(label: str, predict: Predict) -> dict:
        started = time.perf_counter()
        result = metrics(reference, outputs(predict, samples))
        log(f"  {name} {label}: {result} ({time.perf_counter() - started:.0f} s)")
        return result

    reference = outputs(first_output(OrtRunner(onnx_fp32)), samples)
    onnx_size = onnx_fp32.stat().st_size
    rows = [row("onnxruntime fp32 (the reference)", "onnxruntime", "onnxruntime", onnx_size, onnx_size,
                **metrics(reference, reference)),
            row("ORT quantize_dynamic int8", "onnxruntime", "onnxruntime", onnx_int8.stat().st_size, onnx_size,
                **measure("ORT int8", first_output(OrtRunner(onnx_int8))))]
    fp32 = compile_edgepack(onnx_fp32, workdir, "fp32", None)
    predict, executor = edgepack_predictor(fp32)
    rows.append(row("edgepack fp32", "edgepack", executor, fp32.file_bytes, fp32.file_bytes,
                    **measure("edgepack fp32", predict)))
    for precision in precisions:
        compiled = compile_edgepack(onnx_fp32, workdir, precision, calibration)
        predict, executor = edgepack_predictor(compiled)
        fallbacks = len(compiled.manifest.get("fallbacks", []))
        rows.append(row(f"edgepack {precision}" + (" (calibrated)" if precision == "int8" else ""), "edgepack",
                        executor, compiled.file_bytes, fp32.file_bytes, compile_fallbacks=fallbacks,
                        **measure(f"edgepack {precision} [{short(executor)}]", predict)))
    missing = litert_missing(name, cache)
    if missing:
        rows.append({"variant": "LiteRT (fp32 and dynamic int8)", "runtime": "litert", "available": False,
                     "reason": missing})
    else:
        tflite_size = files.tflite.stat().st_size
        for label, path in (("LiteRT fp32", files.tflite), ("LiteRT dynamic-range int8", files.tflite_int8)):
            rows.append(row(label, "litert", "litert", path.stat().st_size, tflite_size,
                            **measure(label, first_output(LiteRTRunner(path)))))
    return rows


def minilm_result(cache: Path, workdir: Path, n_eval: int, n_calibration: int) -> dict:
    from edgepack.models import minilm
    sentences = minilm.sentences(n_eval + n_calibration)
    evaluation, calibration = sentences[:n_eval], sentences[n_eval:]
    assert not set(evaluation) & set(calibration)  # sentences() returns distinct sentences
    log(f"MiniLM: {len(evaluation)} evaluation sentences, {len(calibration)} calibration sentences")
    rows = evaluate("minilm", cache, workdir, minilm.tokenize(evaluation), minilm.tokenize(calibration),
                    MINILM_PRECISIONS, embedding_metrics)
    return {"evaluation_sentences": len(evaluation), "calibration_sentences": len(calibration),
            "neighbours": NEIGHBOURS, "rows": rows}


def digits_result(name: str, cache: Path, workdir: Path, n_calibration: int) -> dict:
    from edgepack.models.digits import digits_data
    data = digits_data()
    input_name = onnx_inputs(ensure_onnx(name, cache))[0]
    samples = [{input_name: data.x_test[i:i + 1]} for i in range(len(data.x_test))]
    log(f"{name}: {len(samples)} test images, {n_calibration} calibration images from the training split")
    rows = evaluate(name, cache, workdir, samples, calibration_feeds(name, [input_name], n_calibration), ("int8",),
                    lambda reference, logits: classifier_metrics(reference, logits, data.y_test))
    return {"test_images": len(samples), "calibration_images": n_calibration, "rows": rows}


# ---- report -----------------------------------------------------------------------------------------------
def executor_note(rows: list[dict]) -> list[str]:
    return [f"- {r['variant']}: {r['executor']}" for r in rows if short(r["executor"]) != r["executor"]]


def tables(results: dict) -> str:
    parts = []
    for name, result in results["models"].items():
        available = [r for r in result["rows"] if r.get("available", True)]
        if name == "minilm":
            headers = ["variant", "mean cosine", "min cosine", "top-10 agreement", "size / fp32", "runs in"]
            cells = [[r["variant"], f"{r['mean_cosine']:.4f}", f"{r['min_cosine']:.4f}",
                      f"{r['top10_agreement']:.3f}", f"{r['size_ratio_to_fp32']:.3f}", short(r["executor"])]
                     for r in available]
            title = (f"all-MiniLM-L6-v2, seq 128: {result['evaluation_sentences']} sentences "
                     f"(calibration: {result['calibration_sentences']} others)")
        else:
            headers = ["variant", "test accuracy", "same class as fp32", "size / fp32", "runs in"]
            cells = [[r["variant"], f"{r['accuracy']:.4f}", f"{r['agreement_with_fp32']:.4f}",
                      f"{r['size_ratio_to_fp32']:.3f}", short(r["executor"])] for r in available]
            title = f"{name}: {result['test_images']} digits test images"
        notes = executor_note(available) + [f"- {r['variant']}: absent: {r['reason']}" for r in result["rows"]
                                            if not r.get("available", True)]
        parts.append(f"**{title}**\n\n" + markdown_table(headers, cells) + ("\n\n" + "\n".join(notes) if notes else ""))
    return "\n\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE,
                        help="model cache shared with convert_litert.py (default: %(default)s)")
    parser.add_argument("--models", nargs="+", choices=ACCURACY_MODELS, default=list(ACCURACY_MODELS))
    parser.add_argument("--quick", action="store_true", help="digits CNN only (a smoke test, seconds)")
    parser.add_argument("--eval", type=int, default=500, help="MiniLM evaluation sentences (default: %(default)s)")
    parser.add_argument("--calibration", type=int, default=100,
                        help="calibration samples, disjoint from the evaluated ones (default: %(default)s)")
    parser.add_argument("--output", type=Path, default=RESULTS_DIR / "accuracy.json", help="default: %(default)s")
    parser.add_argument("--no-readme", action="store_true", help=f"leave the tables in {README.name} as they are")
    args = parser.parse_args(argv)
    models = ["digits_cnn"] if args.quick else args.models
    results = {"machine": machine(), "versions": versions(),
               "settings": {"threads": THREADS, "ort_quantize_dynamic": ORT_DYNAMIC_OPTIONS,
                            "litert_quantizer_recipe": LITERT_RECIPE, "quick": args.quick}, "models": {}}
    with tempfile.TemporaryDirectory(prefix="edgepack-accuracy-") as workdir:
        for name in models:
            if name == "minilm":
                results["models"][name] = minilm_result(args.cache_dir, Path(workdir), args.eval, args.calibration)
            else:
                results["models"][name] = digits_result(name, args.cache_dir, Path(workdir), args.calibration)
    write_json(args.output, results)
    text = tables(results)
    print(text)
    if not args.no_readme:
        update_readme("accuracy", f"Measured {results['machine']['date']} on {results['machine']['cpu']} "
                                  f"({THREADS} threads).\n\n{text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
