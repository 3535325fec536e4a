// The .epk artifact format, version 2. This comment is the specification (docs/format.md repeats it
// with examples); the writer is sdk/edgepack/backends/epk.py, the reader native/src/loader.cpp.
// Numbers are never reused: a removed entry stays here as a comment.
//
// All integers are little-endian. Offsets are absolute file offsets. A `str` is u32 byte length +
// UTF-8 bytes (no terminator).
//
//   Header (64 bytes, offset 0)
//     0   u8[8]   magic "EDGEPACK"
//     8   u32     format version (kFormatVersion)
//     12  u32     section count S (1..16)
//     16  u64     file size in bytes (must equal the real size: catches truncation)
//     24  u32     CRC-32 (IEEE) of header bytes [0, 24) followed by the section table
//     28  u8[36]  reserved, zero
//
//   Section table (S entries of 32 bytes, offset 64)
//     0   u32     kind (SectionKind); each kind at most once
//     4   u32     CRC-32 of the section's bytes
//     8   u64     offset (a multiple of 64)
//     16  u64     size
//     24  u64     reserved, zero
//   Sections do not overlap and lie inside the file.
//
//   MANIFEST  u32 count, then per entry: str key, u8 type (1 i64, 2 f64, 3 str), value
//             (i64 / f64 / str). Free-form metadata: source hash, profile, recipe, measurements.
//   TENSORS   u32 count T, then per tensor:
//               str name; u8 dtype (DType); u8 storage (Storage); u8 rank (0..8); u8 reserved
//               i64 dims[rank]  (each >= 0)
//               u64 offset      (arena offset, or offset inside the WEIGHTS section)
//               u64 nbytes      (must equal the bytes of dims x dtype)
//               u32 n_scales; u32 quant_flags (QuantFlags); f32 scales[n_scales];
//               i32 zero_points[n_scales] only with kQuantZeroPoints (else all zero points are 0);
//               i32 quant_axis (-1 per tensor); i32 block_size (0 unless block-wise)
//   OPS       u32 count, then per op (in execution order):
//               u32 opcode (OpCode); str name;
//               u32 n_in; i32 inputs[n_in] (tensor index, -1 = absent optional input)
//               u32 n_out; i32 outputs[n_out]
//               u32 n_attrs, then per attribute: str key; u8 type (AttrType); u32 count;
//               values: i64[count] for kInt/kInts, f32[count] for kFloat/kFloats, count bytes for kStr
//   GRAPH     u64 arena bytes; u32 n_inputs; i32 tensor[n_inputs]; u32 n_outputs; i32 tensor[n_outputs]
//   WEIGHTS   raw bytes; every weight tensor starts at a multiple of 64 from the section start
//             (the section itself starts at a multiple of 64, so weights are 64-byte aligned in a
//             mmap and are used in place, never copied).
//
// The reader treats every file as hostile: every count, size and offset is checked against what
// remains before it is used; every tensor must fit its arena or the weights section; every op is
// checked by its kernel's prepare() (shapes, dtypes, attributes) before the first run.
//
// History: version 1 stored zero_points[n_scales] always and had no quant_flags (symmetric weights
// carried 4 bytes of zeros per channel or block).
#pragma once

#include <cstdint>

namespace edgepack {

inline constexpr char kMagic[8] = {'E', 'D', 'G', 'E', 'P', 'A', 'C', 'K'};
inline constexpr uint32_t kFormatVersion = 2;
inline constexpr uint32_t kHeaderBytes = 64;
inline constexpr uint32_t kSectionEntryBytes = 32;
inline constexpr uint32_t kMaxSections = 16;
inline constexpr uint32_t kWeightAlignment = 64;
inline constexpr int kMaxRank = 8;

// Bits of a tensor's quant_flags; the others must be 0.
enum QuantFlags : uint32_t {
  kQuantZeroPoints = 1u << 0,  // zero_points[n_scales] follow the scales
};

enum class SectionKind : uint32_t {
  kManifest = 1,
  kTensors = 2,
  kOps = 3,
  kGraph = 4,
  kWeights = 5,
};

// Mirrors sdk/edgepack/ir/dtypes.py.
enum class DType : uint8_t {
  kFloat32 = 1,
  kFloat16 = 2,
  kInt8 = 3,
  kUInt8 = 4,
  kInt32 = 5,
  kInt64 = 6,
  kBool = 7,
  kInt4 = 8,  // two per byte, low nibble first
};

enum class Storage : uint8_t {
  kArena = 0,   // lives in the planned arena at `offset`
  kWeight = 1,  // constant, at `offset` inside the WEIGHTS section
};

enum class AttrType : uint8_t {
  kInt = 1,
  kFloat = 2,
  kInts = 3,
  kFloats = 4,
  kStr = 5,
};

enum class ManifestType : uint8_t {
  kI64 = 1,
  kF64 = 2,
  kStr = 3,
};

// Mirrors sdk/edgepack/ir/ops.py (the IR op set and its semantics are documented there).
enum class OpCode : uint32_t {
  kConv = 1,
  kConvTranspose = 2,
  kMatMul = 3,
  kAttention = 4,
  kRelu = 10,
  kSigmoid = 11,
  kTanh = 12,
  kErf = 13,
  kExp = 14,
  kLog = 15,
  kSqrt = 16,
  kNeg = 17,
  kAbs = 18,
  kReciprocal = 19,
  kHardSigmoid = 20,
  kHardSwish = 21,
  kLeakyRelu = 22,
  kClip = 23,
  kGelu = 24,
  kNot = 25,
  kCast = 26,
  kFloor = 27,
  kCeil = 28,
  kAdd = 40,
  kSub = 41,
  kMul = 42,
  kDiv = 43,
  kPow = 44,
  kMax = 45,
  kMin = 46,
  kEqual = 47,
  kLess = 48,
  kGreater = 49,
  kAnd = 50,
  kOr = 51,
  kWhere = 52,
  kSoftmax = 60,
  kLayerNormalization = 61,
  kLRN = 62,
  kLogSoftmax = 63,
  kMaxPool = 70,
  kAveragePool = 71,
  kReduceMean = 72,
  kReduceSum = 73,
  kReduceMax = 74,
  kReduceMin = 75,
  kArgMax = 76,
  kReshape = 90,
  kTranspose = 91,
  kConcat = 92,
  kSplit = 93,
  kSlice = 94,
  kGather = 95,
  kPad = 96,
  kResize = 97,
  kExpand = 98,
  kTile = 99,
  kDepthToSpace = 100,
  kQuantize = 110,
  kDequantize = 111,
  kRequantize = 112,
  kLut = 113,
};

}  // namespace edgepack
