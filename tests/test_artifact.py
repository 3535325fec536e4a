"""The .epk container: round trip, and one handcrafted corrupt file per loader check.

Every corrupt file must raise a clear error (naming what is wrong) from the native loader and from
the Python reader, never crash."""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

import edgepack
from edgepack import _native
from edgepack.backends.epk import (HEADER_BYTES, QUANT_ZERO_POINTS, SECTION_ENTRY_BYTES, SMALL_CONST_BYTES,
                                   ArtifactError, Section, assemble, encode_sections, read_epk)
from edgepack.ir import DType
from edgepack.ir.dtypes import DType as PyDType
from edgepack.ir.ops import SCHEMAS
from edgepack.planner.memory import plan_memory
from edgepack.reference import run_graph
from op_harness import op_graph

DIGITS = Path(edgepack.__file__).parent / "examples" / "digits_cnn.onnx"


@pytest.fixture
def sections():
    """Sections of a small valid artifact: y = relu(x @ w + b)."""
    rng = np.random.default_rng(0)
    attrs = {"activation": "relu", "act_min": 0.0, "act_max": 0.0}
    graph, _ = op_graph("MatMul", attrs, [rng.standard_normal((2, 8), np.float32),
                                          rng.standard_normal((8, 4), np.float32),
                                          rng.standard_normal(4).astype(np.float32)], consts={1, 2})
    return encode_sections(graph, plan_memory(graph), {"note": "test"})


def _write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "m.epk"
    path.write_bytes(data)
    return path


def _expect_error(path: Path, *needles: str) -> None:
    with pytest.raises((edgepack.ArtifactError, edgepack.UnsupportedError, ValueError)) as native_err:
        edgepack.load(path)
    with pytest.raises(ArtifactError):
        read_epk(path)
    message = str(native_err.value).lower()
    for needle in needles:
        assert needle in message, f"'{needle}' not in: {message}"


def _replace(sections, kind, payload):
    return [(k, payload if k == kind else p) for k, p in sections]


def _rewrite_header(data: bytearray, **fields) -> bytes:
    """Patch header fields and recompute the header checksum so only the intended check trips."""
    if "version" in fields:
        struct.pack_into("<I", data, 8, fields["version"])
    if "count" in fields:
        struct.pack_into("<I", data, 12, fields["count"])
    count = struct.unpack_from("<I", data, 12)[0]
    table_end = min(len(data), HEADER_BYTES + SECTION_ENTRY_BYTES * count)
    struct.pack_into("<I", data, 24, zlib.crc32(bytes(data[:24]) + bytes(data[HEADER_BYTES:table_end])))
    return bytes(data)


def test_round_trip_runs_and_reads_back(tmp_path, sections):
    path = _write(tmp_path, assemble(sections))
    artifact = read_epk(path)
    assert artifact.manifest["note"] == "test"
    assert [op.op for op in artifact.ops] == ["MatMul"]
    session = edgepack.load(path)
    x = np.ones((2, 8), np.float32)
    assert session.run({"in0": x})["out0"].shape == (2, 4)
    assert session.arena_bytes == artifact.arena_bytes


def test_weights_are_64_byte_aligned(tmp_path, sections):
    path = _write(tmp_path, assemble(sections))
    artifact = read_epk(path)
    data = path.read_bytes()
    table = {struct.unpack_from("<I", data, HEADER_BYTES + i * SECTION_ENTRY_BYTES)[0]:
             struct.unpack_from("<Q", data, HEADER_BYTES + i * SECTION_ENTRY_BYTES + 8)[0] for i in range(5)}
    for tensor in artifact.tensors:
        if tensor.storage == 1:
            assert (table[Section.WEIGHTS] + tensor.offset) % 64 == 0


def test_empty_file(tmp_path):
    _expect_error(_write(tmp_path, b""), "too small")


def test_wrong_magic(tmp_path, sections):
    data = bytearray(assemble(sections))
    data[:8] = b"NOTEDGEP"
    _expect_error(_write(tmp_path, bytes(data)), "magic")


def test_wrong_version(tmp_path, sections):
    data = _rewrite_header(bytearray(assemble(sections)), version=99)
    with pytest.raises(edgepack.UnsupportedError, match="version 99"):
        edgepack.load(_write(tmp_path, data))
    with pytest.raises(ArtifactError, match="version 99"):
        read_epk(tmp_path / "m.epk")


def test_truncated(tmp_path, sections):
    data = assemble(sections)
    _expect_error(_write(tmp_path, data[: len(data) - 10]), "truncated")


def test_header_checksum(tmp_path, sections):
    data = bytearray(assemble(sections))
    data[HEADER_BYTES + 4] ^= 0xFF  # a section checksum field inside the table
    _expect_error(_write(tmp_path, bytes(data)), "header checksum")


def test_section_checksum(tmp_path, sections):
    data = bytearray(assemble(sections))
    data[-1] ^= 0x01  # last byte of the weights
    _expect_error(_write(tmp_path, bytes(data)), "checksum mismatch")


@pytest.mark.parametrize("portable", [False, True])
def test_crc32_is_zlibs(portable):
    """The loader's CRC (PCLMULQDQ folding on x86, slicing-by-8 elsewhere) equals zlib.crc32 at every
    length around the 16- and 64-byte steps, at odd alignments, continued from a prior CRC, and over
    a large buffer."""
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, 5000, dtype=np.uint8).tobytes()
    for start in (0, 1, 3, 7):
        for n in list(range(0, 200)) + [255, 256, 257, 1023, 1024, 4093]:
            chunk = data[start:start + n]
            assert _native.crc32(chunk, 0, portable) == zlib.crc32(chunk), (start, n)
    prior = zlib.crc32(data[:100])
    assert _native.crc32(data[100:], prior, portable) == zlib.crc32(data)
    big = rng.integers(0, 256, 3 << 20, dtype=np.uint8)
    assert _native.crc32(big, 0, portable) == zlib.crc32(big.tobytes())
    flipped = bytearray(data)
    flipped[2500] ^= 0x10
    assert _native.crc32(bytes(flipped), 0, portable) != zlib.crc32(data)


def test_section_offset_outside_file(tmp_path, sections):
    data = bytearray(assemble(sections))
    struct.pack_into("<Q", data, HEADER_BYTES + 8, 1 << 40)
    with pytest.raises(edgepack.ArtifactError, match="outside the file"):
        edgepack.load(_write(tmp_path, _rewrite_header(data)))


def test_missing_section(tmp_path, sections):
    data = assemble([s for s in sections if s[0] != Section.OPS])
    with pytest.raises(edgepack.ArtifactError, match="missing"):
        edgepack.load(_write(tmp_path, data))


def _tensor_entries(payload: bytes):
    """Offsets of each tensor entry's fixed fields inside a TENSORS payload."""
    (count,) = struct.unpack_from("<I", payload, 0)
    pos, entries = 4, []
    for _ in range(count):
        (n,) = struct.unpack_from("<I", payload, pos)
        pos += 4 + n
        dtype, storage, rank, _ = struct.unpack_from("<BBBB", payload, pos)
        entry = {"dtype": pos, "storage": pos + 1, "dims": pos + 4, "offset": pos + 4 + 8 * rank,
                 "nbytes": pos + 12 + 8 * rank, "storage_value": storage}
        pos += 4 + 8 * rank + 16
        nscales, flags = struct.unpack_from("<II", payload, pos)
        entry.update(nscales=pos, quant_flags=pos + 4, quant_flags_value=flags)
        pos += 8 + (8 if flags & QUANT_ZERO_POINTS else 4) * nscales + 8
        entries.append(entry)
    return entries


def _patched_tensor(sections, index, field, fmt, value):
    payload = bytearray(dict(sections)[Section.TENSORS])
    entry = _tensor_entries(bytes(payload))[index]
    struct.pack_into("<" + fmt, payload, entry[field], value)
    return assemble(_replace(sections, Section.TENSORS, bytes(payload)))


def test_unknown_quant_flags(tmp_path, sections):
    data = _patched_tensor(sections, 0, "quant_flags", "I", 6)
    with pytest.raises(edgepack.ArtifactError, match="unknown quant flags 6"):
        edgepack.load(_write(tmp_path, data))


def test_scale_count_beyond_the_section(tmp_path, sections):
    data = _patched_tensor(sections, 0, "nscales", "I", 1 << 28)
    with pytest.raises(edgepack.ArtifactError, match="exceeds what the section can hold"):
        edgepack.load(_write(tmp_path, data))


def test_zero_points_are_stored_only_when_one_is_not_zero(tmp_path):
    """Symmetric int8 weights and int32 biases carry scales alone; an asymmetric activation carries its
    zero point; both read back as written (Python reader and native loader)."""
    x = np.random.default_rng(0).uniform(0, 16, (1, 1, 8, 8)).astype(np.float32)
    compiled = edgepack.compile(DIGITS, precision="int8", calibration_data=[{"image": x}],
                                output=tmp_path / "q.epk", progress=False)
    artifact = read_epk(compiled.path)
    payload = dict(encode_sections(compiled.graph, plan_memory(compiled.graph), {}))[Section.TENSORS]
    flags = {t.name: e["quant_flags_value"] for t, e in zip(artifact.tensors, _tensor_entries(payload))}
    weights = [t for t in artifact.tensors if t.dtype in (DType.INT8, DType.INT32) and t.storage == 1]
    activations = [t for t in artifact.tensors if t.dtype is DType.INT8 and t.storage == 0]
    assert weights and all(flags[t.name] == 0 and not t.zero_points.any() for t in weights)
    assert any(flags[t.name] == QUANT_ZERO_POINTS and t.zero_points.any() for t in activations)
    for t in artifact.tensors:
        value = compiled.graph.values[t.name]
        if value.quant is not None:
            np.testing.assert_array_equal(t.zero_points, np.asarray(value.quant.zero_point).reshape(-1))
    session = edgepack.load(compiled.path)   # the native loader reads the same records
    output = compiled.graph.outputs[0]
    np.testing.assert_array_equal(session.run({"image": x})[output], run_graph(compiled.graph, {"image": x})[output])


def test_tensor_offset_outside_arena(tmp_path, sections):
    data = _patched_tensor(sections, 0, "offset", "Q", 1 << 30)  # tensor 0 is the graph input
    with pytest.raises(edgepack.ArtifactError, match="outside the arena"):
        edgepack.load(_write(tmp_path, data))


def test_weight_offset_outside_weights(tmp_path, sections):
    entries = _tensor_entries(dict(sections)[Section.TENSORS])
    weight = next(i for i, e in enumerate(entries) if e["storage_value"] == 1)
    data = _patched_tensor(sections, weight, "offset", "Q", 1 << 20)
    with pytest.raises(edgepack.ArtifactError, match="weights section"):
        edgepack.load(_write(tmp_path, data))


def test_nbytes_mismatch(tmp_path, sections):
    data = _patched_tensor(sections, 0, "nbytes", "Q", 3)
    with pytest.raises(edgepack.ArtifactError, match="nbytes"):
        edgepack.load(_write(tmp_path, data))


def test_bad_dtype(tmp_path, sections):
    data = _patched_tensor(sections, 0, "dtype", "B", 200)
    with pytest.raises(edgepack.ArtifactError, match="unknown dtype"):
        edgepack.load(_write(tmp_path, data))


def test_unknown_opcode(tmp_path, sections):
    payload = bytearray(dict(sections)[Section.OPS])
    struct.pack_into("<I", payload, 4, 9999)
    with pytest.raises(edgepack.ArtifactError, match="unknown opcode 9999"):
        edgepack.load(_write(tmp_path, assemble(_replace(sections, Section.OPS, bytes(payload)))))


def test_op_input_index_out_of_range(tmp_path, sections):
    payload = bytearray(dict(sections)[Section.OPS])
    (name_len,) = struct.unpack_from("<I", payload, 8)
    first_input = 8 + 4 + name_len + 4
    struct.pack_into("<i", payload, first_input, 1000)
    with pytest.raises(edgepack.ArtifactError, match="out of range"):
        edgepack.load(_write(tmp_path, assemble(_replace(sections, Section.OPS, bytes(payload)))))


def test_kernel_rejects_inconsistent_shapes(tmp_path):
    """A file whose op shapes disagree (weight K != input K) is caught by the kernel's prepare()."""
    graph, _ = op_graph("MatMul", {"activation": "none", "act_min": 0.0, "act_max": 0.0},
                        [np.ones((2, 8), np.float32), np.ones((8, 4), np.float32)], consts={1})
    weight = graph.values["in1"]
    weight.const = np.ones((6, 4), np.float32)
    weight.shape = (6, 4)
    path = tmp_path / "bad.epk"
    path.write_bytes(assemble(encode_sections(graph, plan_memory(graph))))
    with pytest.raises((edgepack.ArtifactError, edgepack.UnsupportedError)) as err:
        edgepack.load(path)
    assert "matmul_0" in str(err.value)


def test_not_a_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        edgepack.load(tmp_path / "missing.epk")
    with pytest.raises(ValueError, match="not a regular file"):
        _native.Session(str(tmp_path))


def test_opcodes_and_dtypes_agree_with_native():
    assert _native.op_names() == {s.code: s.name for s in SCHEMAS.values()}
    assert _native.dtype_names() == {int(d): d.name.lower() for d in PyDType}
    assert DType.INT4.nbytes(5) == 3


def test_small_constants_are_stored_before_large_ones(tmp_path):
    """Biases and scales (read in place at run time) sit together at the start of the weights section, away
    from the large weights whose mapped pages the runtime releases after packing them."""
    rng = np.random.default_rng(0)
    attrs = {"activation": "none", "act_min": 0.0, "act_max": 0.0}
    graph, _ = op_graph("MatMul", attrs, [rng.standard_normal((2, 256), np.float32),
                                          rng.standard_normal((256, 128), np.float32),    # 128 KiB
                                          rng.standard_normal(128).astype(np.float32)], consts={1, 2})
    path = tmp_path / "m.epk"
    path.write_bytes(assemble(encode_sections(graph, plan_memory(graph), {})))
    weights = [t for t in read_epk(path).tensors if t.storage == 1]
    small = [t.offset for t in weights if t.nbytes < SMALL_CONST_BYTES]
    large = [t.offset for t in weights if t.nbytes >= SMALL_CONST_BYTES]
    assert small and large and max(small) < min(large)
