"""The .epk container: writer and (verifying) reader. The byte layout is specified in
native/include/edgepack/format.h and docs/format.md; this module and native/src/loader.cpp are the
two sides of it."""
from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..ir import DType, Graph
from ..ir.ops import SCHEMAS
from ..planner.memory import MemoryPlan

MAGIC = b"EDGEPACK"
FORMAT_VERSION = 2
QUANT_ZERO_POINTS = 1   # a tensor's quant flags: zero points stored (format.h QuantFlags)
HEADER_BYTES = 64
SECTION_ENTRY_BYTES = 32
ALIGN = 64
SMALL_CONST_BYTES = 64 * 1024   # constants below this are stored first in the weights section
MAX_RANK = 8


class Section:
    MANIFEST = 1
    TENSORS = 2
    OPS = 3
    GRAPH = 4
    WEIGHTS = 5


class Storage:
    ARENA = 0
    WEIGHT = 1


ATTR_INT, ATTR_FLOAT, ATTR_INTS, ATTR_FLOATS, ATTR_STR = 1, 2, 3, 4, 5
_ATTR_KIND = {"int": ATTR_INT, "float": ATTR_FLOAT, "ints": ATTR_INTS, "floats": ATTR_FLOATS, "str": ATTR_STR}
MANIFEST_I64, MANIFEST_F64, MANIFEST_STR = 1, 2, 3


class ArtifactError(ValueError):
    """The file is not a valid .epk: the message says what is wrong."""


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


class _Buffer:
    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def pack(self, fmt: str, *values) -> None:
        self.parts.append(struct.pack("<" + fmt, *values))

    def str(self, text: str) -> None:
        data = text.encode()
        self.pack("I", len(data))
        self.parts.append(data)

    def raw(self, data: bytes) -> None:
        self.parts.append(data)

    def bytes(self) -> bytes:
        return b"".join(self.parts)


# ---- writing -------------------------------------------------------------------------------------
def _encode_manifest(manifest: dict[str, Any]) -> bytes:
    buf = _Buffer()
    buf.pack("I", len(manifest))
    for key, value in manifest.items():
        buf.str(key)
        if isinstance(value, bool) or isinstance(value, (int, np.integer)):
            buf.pack("Bq", MANIFEST_I64, int(value))
        elif isinstance(value, (float, np.floating)):
            buf.pack("Bd", MANIFEST_F64, float(value))
        elif isinstance(value, str):
            buf.pack("B", MANIFEST_STR)
            buf.str(value)
        else:
            buf.pack("B", MANIFEST_STR)
            buf.str(json.dumps(value, sort_keys=True, default=str))
    return buf.bytes()


def pack_int4(values: np.ndarray) -> bytes:
    """Two signed 4-bit values per byte, low nibble first, in row-major order."""
    flat = np.asarray(values, np.int8).reshape(-1)
    if flat.size % 2:
        flat = np.concatenate([flat, np.zeros(1, np.int8)])
    nibbles = (flat.astype(np.uint8) & 0x0F)
    return (nibbles[0::2] | (nibbles[1::2] << 4)).astype(np.uint8).tobytes()


def unpack_int4(data: bytes, count: int) -> np.ndarray:
    raw = np.frombuffer(data, np.uint8)
    nibbles = np.stack([raw & 0x0F, raw >> 4], axis=1).reshape(-1)[:count].astype(np.int8)
    return np.where(nibbles >= 8, nibbles - 16, nibbles).astype(np.int8)


def _weight_bytes(array: np.ndarray, dtype: DType) -> bytes:
    if dtype is DType.INT4:
        return pack_int4(array)
    return np.ascontiguousarray(array).astype(dtype.numpy, copy=False).tobytes()


def _encode_attr(buf: _Buffer, key: str, kind: str, value: Any) -> None:
    buf.str(key)
    code = _ATTR_KIND[kind]
    if kind == "int":
        buf.pack("BIq", code, 1, int(value))
    elif kind == "float":
        buf.pack("BIf", code, 1, float(value))
    elif kind == "ints":
        values = [int(v) for v in value]
        buf.pack(f"BI{len(values)}q", code, len(values), *values)
    elif kind == "floats":
        values = [float(v) for v in value]
        buf.pack(f"BI{len(values)}f", code, len(values), *values)
    else:
        data = str(value).encode()
        buf.pack("BI", code, len(data))
        buf.raw(data)


def write_epk(graph: Graph, plan: MemoryPlan, path: str | Path, manifest: dict[str, Any] | None = None) -> int:
    """Serialise a planned graph. Returns the file size in bytes. Writes to a temporary file first
    so a failure never leaves a half-written artifact at `path`."""
    data = assemble(encode_sections(graph, plan, manifest))
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return len(data)


def encode_sections(graph: Graph, plan: MemoryPlan, manifest: dict[str, Any] | None = None) -> list[tuple[int, bytes]]:
    """The (kind, payload) sections of an artifact, in file order."""
    used = list(dict.fromkeys(list(graph.inputs)
                              + [n for node in graph.nodes for n in node.inputs + node.outputs if n]
                              + list(graph.outputs)))
    index = {name: i for i, name in enumerate(used)}

    # Small constants (biases, scales, norm parameters: read in place at run time) come first, the large
    # ones (mostly packed at load, their mapped pages then released) after them: a page fault maps a
    # whole folio of the page cache, so a bias stored between two packed weights would bring their pages
    # back into the process's RSS on the first run.
    consts = [name for name in used if graph.values[name].is_const]
    weights = bytearray()
    weight_offsets: dict[str, int] = {}
    for name in sorted(consts, key=lambda n: graph.values[n].nbytes >= SMALL_CONST_BYTES):   # stable
        value = graph.values[name]
        weights.extend(b"\0" * (_align(len(weights)) - len(weights)))
        weight_offsets[name] = len(weights)
        weights.extend(_weight_bytes(value.const, value.dtype))

    tensors = _Buffer()
    tensors.pack("I", len(used))
    for name in used:
        value = graph.values[name]
        if len(value.shape) > MAX_RANK:
            raise ValueError(f"tensor '{name}' has rank {len(value.shape)} > {MAX_RANK}")
        if value.is_const:
            offset, storage = weight_offsets[name], Storage.WEIGHT
        else:
            offset, storage = plan.offsets[name], Storage.ARENA
        tensors.str(name)
        tensors.pack("BBBB", int(value.dtype), storage, len(value.shape), 0)
        tensors.pack(f"{len(value.shape)}q", *value.shape)
        tensors.pack("QQ", offset, value.nbytes)
        quant = value.quant
        if quant is None:
            tensors.pack("IIii", 0, 0, -1, 0)
        else:
            scales = np.asarray(quant.scale, np.float32).reshape(-1)
            zero_points = np.asarray(quant.zero_point, np.int32).reshape(-1)
            flags = QUANT_ZERO_POINTS if zero_points.any() else 0   # symmetric: no zero points stored
            tensors.pack("II", scales.size, flags)
            tensors.raw(scales.tobytes())
            if flags & QUANT_ZERO_POINTS:
                tensors.raw(zero_points.tobytes())
            tensors.pack("ii", -1 if quant.axis is None else quant.axis, quant.block_size)

    ops = _Buffer()
    ops.pack("I", len(graph.nodes))
    for node in graph.nodes:
        schema = SCHEMAS[node.op]
        ops.pack("I", schema.code)
        ops.str(node.name)
        ops.pack(f"I{len(node.inputs)}i", len(node.inputs), *[index[n] if n else -1 for n in node.inputs])
        ops.pack(f"I{len(node.outputs)}i", len(node.outputs), *[index[n] for n in node.outputs])
        ops.pack("I", len(node.attrs))
        for key, value in node.attrs.items():
            _encode_attr(ops, key, schema.attrs[key], value)

    graph_section = _Buffer()
    graph_section.pack("Q", plan.arena_bytes)
    graph_section.pack(f"I{len(graph.inputs)}i", len(graph.inputs), *[index[n] for n in graph.inputs])
    graph_section.pack(f"I{len(graph.outputs)}i", len(graph.outputs), *[index[n] for n in graph.outputs])

    return [(Section.MANIFEST, _encode_manifest(manifest or {})), (Section.TENSORS, tensors.bytes()),
            (Section.OPS, ops.bytes()), (Section.GRAPH, graph_section.bytes()), (Section.WEIGHTS, bytes(weights))]


def assemble(sections: list[tuple[int, bytes]]) -> bytes:
    """Lay sections out behind the header and section table, with their checksums."""
    table = _Buffer()
    offset = _align(HEADER_BYTES + SECTION_ENTRY_BYTES * len(sections))
    layout = []
    for kind, payload in sections:
        layout.append((offset, payload))
        table.pack("IIQQQ", kind, zlib.crc32(payload), offset, len(payload), 0)
        offset = _align(offset + len(payload))
    file_size = layout[-1][0] + len(layout[-1][1])
    head = MAGIC + struct.pack("<IIQ", FORMAT_VERSION, len(sections), file_size)
    table_bytes = table.bytes()
    header = head + struct.pack("<I", zlib.crc32(head + table_bytes)) + b"\0" * 36
    out = bytearray(header + table_bytes)
    for offset, payload in layout:
        out.extend(b"\0" * (offset - len(out)))
        out.extend(payload)
    return bytes(out)


# ---- reading (for inspect, diff and tests; the runtime has its own reader in C++) -----------------
@dataclass
class TensorEntry:
    name: str
    dtype: DType
    storage: int
    shape: tuple[int, ...]
    offset: int
    nbytes: int
    scales: np.ndarray
    zero_points: np.ndarray
    quant_axis: int
    block_size: int


@dataclass
class OpEntry:
    op: str
    name: str
    inputs: list[int]
    outputs: list[int]
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass
class Artifact:
    path: Path
    version: int
    manifest: dict[str, Any]
    tensors: list[TensorEntry]
    ops: list[OpEntry]
    arena_bytes: int
    inputs: list[int]
    outputs: list[int]
    weights_bytes: int
    file_bytes: int


class _Reader:
    def __init__(self, data: bytes, what: str) -> None:
        self.data, self.pos, self.what = data, 0, what

    def unpack(self, fmt: str):
        size = struct.calcsize("<" + fmt)
        if self.pos + size > len(self.data):
            raise ArtifactError(f"{self.what} section is truncated at byte {self.pos}")
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += size
        return values

    def str(self) -> str:
        (n,) = self.unpack("I")
        if self.pos + n > len(self.data):
            raise ArtifactError(f"{self.what} section: string of {n} bytes runs past the end")
        text = self.data[self.pos:self.pos + n].decode("utf-8", errors="replace")
        self.pos += n
        return text


_OPS_BY_CODE = {s.code: s.name for s in SCHEMAS.values()}


def read_epk(path: str | Path) -> Artifact:
    path = Path(path)
    data = path.read_bytes()
    if len(data) < HEADER_BYTES or data[:8] != MAGIC:
        raise ArtifactError(f"'{path}' is not an edgepack artifact (bad magic)")
    version, count, file_size = struct.unpack_from("<IIQ", data, 8)
    if version != FORMAT_VERSION:
        raise ArtifactError(f"'{path}' has format version {version}; this edgepack reads {FORMAT_VERSION}")
    if file_size != len(data):
        raise ArtifactError(f"'{path}' is {len(data)} bytes but its header says {file_size} (truncated?)")
    table_end = HEADER_BYTES + SECTION_ENTRY_BYTES * count
    if not 1 <= count <= 16 or table_end > len(data):
        raise ArtifactError(f"'{path}' has a bad section count {count}")
    (crc,) = struct.unpack_from("<I", data, 24)
    if zlib.crc32(data[:24] + data[HEADER_BYTES:table_end]) != crc:
        raise ArtifactError(f"'{path}': header checksum mismatch")
    sections: dict[int, bytes] = {}
    for i in range(count):
        kind, crc, offset, size, _ = struct.unpack_from("<IIQQQ", data, HEADER_BYTES + i * SECTION_ENTRY_BYTES)
        if offset + size > len(data):
            raise ArtifactError(f"'{path}': section {kind} runs past the end of the file")
        payload = data[offset:offset + size]
        if zlib.crc32(payload) != crc:
            raise ArtifactError(f"'{path}': section {kind} checksum mismatch")
        sections[kind] = payload
    for kind in (Section.MANIFEST, Section.TENSORS, Section.OPS, Section.GRAPH, Section.WEIGHTS):
        if kind not in sections:
            raise ArtifactError(f"'{path}': section {kind} is missing")

    r = _Reader(sections[Section.MANIFEST], "manifest")
    manifest: dict[str, Any] = {}
    for _ in range(r.unpack("I")[0]):
        key = r.str()
        (kind,) = r.unpack("B")
        if kind == MANIFEST_I64:
            manifest[key] = r.unpack("q")[0]
        elif kind == MANIFEST_F64:
            manifest[key] = r.unpack("d")[0]
        else:
            text = r.str()
            try:
                manifest[key] = json.loads(text) if text[:1] in "[{" else text
            except json.JSONDecodeError:
                manifest[key] = text

    r = _Reader(sections[Section.TENSORS], "tensors")
    tensors = []
    for _ in range(r.unpack("I")[0]):
        name = r.str()
        dtype, storage, rank, _ = r.unpack("BBBB")
        shape = r.unpack(f"{rank}q")
        offset, nbytes = r.unpack("QQ")
        n, flags = r.unpack("II")
        if flags & ~QUANT_ZERO_POINTS:
            raise ArtifactError(f"'{path}': tensor '{name}' has unknown quant flags {flags}")
        scales = np.array(r.unpack(f"{n}f"), np.float32)
        zero_points = (np.array(r.unpack(f"{n}i"), np.int32) if flags & QUANT_ZERO_POINTS
                       else np.zeros(n, np.int32))
        axis, block = r.unpack("ii")
        tensors.append(TensorEntry(name, DType(dtype), storage, tuple(shape), offset, nbytes, scales,
                                   zero_points, axis, block))

    r = _Reader(sections[Section.OPS], "ops")
    ops = []
    for _ in range(r.unpack("I")[0]):
        (code,) = r.unpack("I")
        name = r.str()
        (n_in,) = r.unpack("I")
        inputs = list(r.unpack(f"{n_in}i"))
        (n_out,) = r.unpack("I")
        outputs = list(r.unpack(f"{n_out}i"))
        attrs: dict[str, Any] = {}
        for _ in range(r.unpack("I")[0]):
            key = r.str()
            kind, n = r.unpack("BI")
            if kind == ATTR_INT:
                attrs[key] = r.unpack("q")[0]
            elif kind == ATTR_FLOAT:
                attrs[key] = r.unpack("f")[0]
            elif kind == ATTR_INTS:
                attrs[key] = list(r.unpack(f"{n}q"))
            elif kind == ATTR_FLOATS:
                attrs[key] = list(r.unpack(f"{n}f"))
            else:
                attrs[key] = bytes(r.unpack(f"{n}s")[0]).decode()
        ops.append(OpEntry(_OPS_BY_CODE.get(code, f"<unknown {code}>"), name, inputs, outputs, attrs))

    r = _Reader(sections[Section.GRAPH], "graph")
    (arena,) = r.unpack("Q")
    inputs = list(r.unpack(f"{r.unpack('I')[0]}i"))
    outputs = list(r.unpack(f"{r.unpack('I')[0]}i"))
    return Artifact(path, version, manifest, tensors, ops, arena, inputs, outputs,
                    len(sections[Section.WEIGHTS]), len(data))


def weight_array(artifact: Artifact, tensor: TensorEntry) -> np.ndarray:
    """A constant's data as numpy (for inspect / diff)."""
    data = Path(artifact.path).read_bytes()
    # locate the weights section again (cheap; this is a debugging path)
    count = struct.unpack_from("<I", data, 12)[0]
    for i in range(count):
        kind, _, offset, size, _ = struct.unpack_from("<IIQQQ", data, HEADER_BYTES + i * SECTION_ENTRY_BYTES)
        if kind == Section.WEIGHTS:
            raw = data[offset + tensor.offset: offset + tensor.offset + tensor.nbytes]
            if tensor.dtype is DType.INT4:
                return unpack_int4(raw, int(np.prod(tensor.shape))).reshape(tensor.shape)
            return np.frombuffer(raw, tensor.dtype.numpy).reshape(tensor.shape)
    raise ArtifactError("no weights section")
