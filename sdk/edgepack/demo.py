"""`edgepack demo`: compile the bundled digits CNN for the host, run it in the native runtime on
bundled handwritten digits, and check it against the numpy reference (and ONNX Runtime if present)."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

EXAMPLES = Path(__file__).parent / "examples"
MODEL = EXAMPLES / "digits_cnn.onnx"
SAMPLES = EXAMPLES / "digits_samples.npz"


def run_demo(workdir: Path | None = None) -> int:
    from .api import compile as compile_model
    from .reference import run_graph
    from .runtime import load

    with tempfile.TemporaryDirectory() as tmp:
        out_dir = Path(workdir) if workdir else Path(tmp)
        out_dir.mkdir(parents=True, exist_ok=True)
        artifact = out_dir / "digits_cnn.epk"
        print(f"1. compile  {MODEL.name} (a CNN trained on scikit-learn's 8x8 digits) for profile 'host'")
        started = time.perf_counter()
        compiled = compile_model(MODEL, profile="host", output=artifact)
        print(f"   -> {artifact}: {len(compiled.graph.nodes)} ops {compiled.graph.op_counts()}, "
              f"{compiled.file_bytes} bytes, arena {compiled.arena_bytes} bytes "
              f"(unplanned {compiled.memory.naive_bytes}), {time.perf_counter() - started:.2f} s")

        with np.load(SAMPLES) as data:
            images, labels = data["images"], data["labels"]
        session = load(artifact)
        name = session.inputs[0].name
        print(f"2. run      {len(images)} held-out digits through the native runtime "
              f"({session.num_threads} threads, input {name} {session.inputs[0].shape})")
        native = np.concatenate([session.run({name: images[i:i + 1]})[session.outputs[0].name]
                                 for i in range(len(images))])
        started = time.perf_counter()
        for _ in range(200):
            session.run({name: images[:1]})
        latency = (time.perf_counter() - started) / 200
        accuracy = float((native.argmax(axis=1) == labels).mean())
        print(f"   accuracy {accuracy * 100:.1f}%  latency {latency * 1e6:.1f} us per image")

        reference = np.concatenate([run_graph(compiled.graph, {name: images[i:i + 1]})[compiled.graph.outputs[0]]
                                    for i in range(len(images))])
        err = float(np.abs(native - reference).max())
        ok = np.allclose(native, reference, rtol=1e-4, atol=1e-5)
        print(f"3. check    native vs numpy reference: max abs error {err:.2e} -> {'OK' if ok else 'MISMATCH'}")
        try:
            import onnxruntime as ort
            sess = ort.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"])
            ort_out = np.concatenate([sess.run(None, {name: images[i:i + 1]})[0] for i in range(len(images))])
            ort_err = float(np.abs(native - ort_out).max())
            ort_ok = np.allclose(native, ort_out, rtol=1e-4, atol=1e-5)
            ok = ok and ort_ok
            print(f"           native vs ONNX Runtime:    max abs error {ort_err:.2e} -> {'OK' if ort_ok else 'MISMATCH'}")
        except ImportError:
            print("           (onnxruntime not installed: skipped the ONNX Runtime comparison)")
        print(f"Try: edgepack inspect {artifact}" if workdir else "Keep the artifact with --workdir DIR.")
        return 0 if ok else 1
