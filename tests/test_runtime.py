"""The Python runtime API and the CLI: input checking, concurrency, the commands users run first."""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

import edgepack
from edgepack.cli import main as cli_main
from edgepack.demo import MODEL, SAMPLES
from edgepack.reference import run_graph


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    out = tmp_path_factory.mktemp("digits") / "digits.epk"
    compiled = edgepack.compile(MODEL, precision="fp32", output=out)
    with np.load(SAMPLES) as data:
        images = data["images"]
    return compiled, images


def test_session_describes_inputs_and_outputs(digits):
    compiled, _ = digits
    session = edgepack.load(compiled.path, num_threads=2)
    assert [(s.name, s.shape, s.dtype) for s in session.inputs] == [("image", (1, 1, 8, 8), np.dtype("float32"))]
    assert [(s.name, s.shape) for s in session.outputs] == [("logits", (1, 10))]
    assert session.arena_bytes == compiled.arena_bytes
    assert session.num_threads == 2


@pytest.mark.parametrize("feeds,message", [
    ({"images": np.zeros((1, 1, 8, 8), np.float32)}, r"wrong input names: expected \['image'\], got \['images'\]"),
    ({}, r"missing \['image'\]"),
    ({"image": np.zeros((1, 1, 8, 9), np.float32)}, r"expected shape \(1, 1, 8, 8\), got \(1, 1, 8, 9\)"),
    ({"image": np.zeros((1, 1, 8, 8), np.float64)}, r"expected dtype float32, got float64"),
])
def test_run_rejects_wrong_inputs(digits, feeds, message):
    compiled, _ = digits
    session = edgepack.load(compiled.path)
    with pytest.raises(ValueError, match=message):
        session.run(feeds)


def test_concurrent_runs_on_one_session_are_correct(digits):
    """Several Python threads share one session (the GIL is released in run); each gets its own result."""
    compiled, images = digits
    session = edgepack.load(compiled.path, num_threads=2)
    expected = [run_graph(compiled.graph, {"image": images[i:i + 1]})["logits"] for i in range(8)]
    errors: list[str] = []

    def worker(index: int) -> None:
        for _ in range(50):
            got = session.run({"image": images[index:index + 1]})["logits"]
            if not np.allclose(got, expected[index], rtol=1e-4, atol=1e-5):
                errors.append(f"thread {index}: {got} != {expected[index]}")
                return

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:2]
    assert session._native.num_arenas >= 1


def test_non_contiguous_input_is_accepted(digits):
    compiled, images = digits
    session = edgepack.load(compiled.path)
    strided = np.asfortranarray(images[:1])
    np.testing.assert_allclose(session.run({"image": strided})["logits"],
                               session.run({"image": np.ascontiguousarray(images[:1])})["logits"])


def test_demo_runs_and_checks(capsys, tmp_path):
    assert cli_main(["demo", "--workdir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "native vs numpy reference" in out and "MISMATCH" not in out
    assert (tmp_path / "digits_cnn.epk").exists()


def test_cli_compile_run_inspect(tmp_path, capsys):
    artifact = tmp_path / "d.epk"
    assert cli_main(["compile", str(MODEL), "-o", str(artifact), "--precision", "fp32"]) == 0
    with np.load(SAMPLES) as data:
        np.savez(tmp_path / "in.npz", image=data["images"][:1])
    assert cli_main(["run", str(artifact), "--inputs", str(tmp_path / "in.npz"), "-o", str(tmp_path / "out.npz")]) == 0
    with np.load(tmp_path / "out.npz") as out:
        assert out["logits"].shape == (1, 10)
    # an existing output is not overwritten without --force
    assert cli_main(["run", str(artifact), "--inputs", str(tmp_path / "in.npz"), "-o", str(tmp_path / "out.npz")]) == 2
    assert "--force" in capsys.readouterr().err
    assert cli_main(["inspect", str(artifact)]) == 0
    out = capsys.readouterr().out
    assert "image [1, 1, 8, 8] float32" in out and "arena" in out and "Conv" in out


def test_compile_never_overwrites_user_files(tmp_path):
    precious = tmp_path / "notes.txt"
    precious.write_text("mine")
    with pytest.raises(FileExistsError, match="not an edgepack artifact"):
        edgepack.compile(MODEL, precision="fp32", output=precious)
    assert precious.read_text() == "mine"


def test_cli_reports_bad_input_shape_flag(capsys):
    assert cli_main(["compile", str(MODEL), "--input-shape", "image:1x1x8x8"]) == 2
    assert "NAME=1x3x224x224" in capsys.readouterr().err


def test_unsupported_op_names_op_node_and_supported_ops(tmp_path):
    import onnx
    from onnx import TensorProto, helper
    node = helper.make_node("Einsum", ["x", "x"], ["y"], name="my_einsum", equation="ij,ij->i")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    path = tmp_path / "einsum.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    with pytest.raises(edgepack.UnsupportedError) as err:
        edgepack.compile(path, precision="fp32", output=tmp_path / "e.epk")
    message = str(err.value)
    assert "'Einsum'" in message and "my_einsum" in message and "Conv" in message
    assert not (tmp_path / "e.epk").exists()


# ---- start-up: running an artifact imports the runtime only ----------------------------------------------
COMPILER_PACKAGES = ("onnx", "scipy", "torch", "rich", "yaml", "onnxruntime", "edgepack.api", "edgepack.frontends",
                     "edgepack.planner", "edgepack.quant", "edgepack.reference", "edgepack.backends")


def _modules_after(code: str) -> set[str]:
    """The modules a fresh interpreter has imported after running `code` (edgepack from this tree)."""
    import json
    import os
    import subprocess
    import sys
    sdk = str(Path(edgepack.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([sdk, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", code + "\nimport json, sys; print(json.dumps(sorted(sys.modules)))"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def _compiler_modules(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == p or m.startswith(p + ".") for p in COMPILER_PACKAGES))


def test_import_load_run_imports_no_compiler(digits):
    compiled, _ = digits
    modules = _modules_after(f"import numpy as np, edgepack\n"
                             f"session = edgepack.load({str(compiled.path)!r})\n"
                             f"out = session.run({{'image': np.zeros((1, 1, 8, 8), np.float32)}})\n"
                             f"assert out['logits'].shape == (1, 10)")
    assert "edgepack._native" in modules and "edgepack.runtime" in modules
    assert not _compiler_modules(modules)


def test_cli_run_imports_no_compiler(digits, tmp_path):
    compiled, images = digits
    np.savez(tmp_path / "in.npz", image=images[:1])
    modules = _modules_after(f"from edgepack.cli import main\n"
                             f"assert main(['run', {str(compiled.path)!r}, '--inputs', {str(tmp_path / 'in.npz')!r}]) == 0")
    assert "edgepack.runtime" in modules and not _compiler_modules(modules)


def test_public_api_is_complete_when_imported_lazily():
    modules = _modules_after("import edgepack\n"
                             "from edgepack import *\n"
                             "from edgepack import compile, analyze, load, CompiledModel, BudgetError\n"
                             "import edgepack.api, edgepack.planner.search, edgepack.errors\n"
                             "assert edgepack.compile is edgepack.api.compile and edgepack.analyze is edgepack.api.analyze\n"
                             "assert edgepack.CompiledModel is edgepack.api.CompiledModel\n"
                             "assert edgepack.BudgetError is edgepack.planner.search.BudgetError\n"
                             "assert issubclass(edgepack.BudgetError, edgepack.EdgepackError)\n"
                             "assert edgepack.UnsupportedError is edgepack.errors.UnsupportedError\n"
                             "assert set(edgepack.__all__) <= set(dir(edgepack))\n"
                             "assert edgepack.models.__name__ == 'edgepack.models'  # submodules as attributes\n"
                             "assert not hasattr(edgepack, 'no_such_thing')\n")
    assert "edgepack.api" in modules
    plain = _modules_after("import edgepack\nassert edgepack.__version__")
    assert not _compiler_modules(plain) and "numpy" not in plain


# ---- run(): the native fast path and the checked path give the same results and errors ----------------------
def test_run_fast_and_checked_paths_agree(digits):
    from collections import OrderedDict
    from types import MappingProxyType

    compiled, images = digits
    session = edgepack.load(compiled.path, num_threads=2)
    x = np.ascontiguousarray(images[:1])
    expected = session.run({"image": x})
    assert list(expected) == ["logits"] and expected["logits"].flags.c_contiguous
    # a plain dict of ready arrays takes the native fast path; anything else returns None from it
    assert session._native.run_feeds({"image": x}) is not None
    assert session._native.run_feeds(OrderedDict(image=x)) is None and session._native.run_feeds({"image": x[0]}) is None
    again = session.run({"image": x})
    assert again["logits"] is not expected["logits"]  # a fresh array every call
    readonly = x.copy()
    readonly.flags.writeable = False

    class Feeds(dict):
        def __getitem__(self, key):
            return np.zeros_like(x) if key == "image" else super().__getitem__(key)

    equivalent_dtype = x.view(np.dtype(np.float32, metadata={"note": 1}))  # another descr, same type
    assert equivalent_dtype.dtype is not x.dtype
    for feeds in (OrderedDict(image=x), MappingProxyType({"image": x}),
                  {"image": readonly}, {"image": equivalent_dtype}, {"image": np.asfortranarray(x)},
                  {"image": np.asarray(x.tolist(), np.float32)}):
        np.testing.assert_array_equal(session.run(feeds)["logits"], expected["logits"])
    # a dict subclass is read through its own __getitem__, as before
    np.testing.assert_array_equal(session.run(Feeds(image=x))["logits"], session.run({"image": np.zeros_like(x)})["logits"])
    with pytest.raises(ValueError, match=r"unknown \['extra'\]"):
        session.run({"image": x, "extra": x})
    with pytest.raises(ValueError, match=r"expected dtype float32, got float64"):
        session.run({"image": x.tolist()})
    with pytest.raises(ValueError, match=r"expected dtype float32, got >f4"):
        session.run({"image": x.astype(">f4")})
    with pytest.raises(ValueError, match=r"expected shape \(1, 1, 8, 8\), got \(1, 8, 8\)"):
        session.run({"image": x[0]})
    with pytest.raises(TypeError, match="dict of input name -> array"):
        session.run([x])
    outputs, seconds = session.run_profiled({"image": x})
    np.testing.assert_array_equal(outputs["logits"], expected["logits"])
    assert len(seconds) == len(session.ops)


def test_repr_of_a_session_whose_load_failed(tmp_path):
    """A traceback that shows the half-built Session must not raise again from its repr."""
    from edgepack.runtime import Session
    bad = tmp_path / "bad.epk"
    bad.write_bytes(b"not an artifact")
    session = Session.__new__(Session)
    with pytest.raises(edgepack.ArtifactError):
        session.__init__(bad)
    assert repr(session) == f"Session('{bad}', not loaded)"
