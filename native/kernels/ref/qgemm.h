// The integer GEMM core of the quantized MatMul and Conv kernels (qlinear.cpp, qconv.cpp): int32 sums
// of products of activation codes and int8 weights on packed operands, one register-tiled micro-kernel
// per ISA, then requantized to int8 codes (static int8) or scaled to float (dynamic int8).
//
// Operands. K is cut into groups of kGroup consecutive values that fill one 32-bit lane: four bytes for
// the dot-product instructions (x86 vpdpbusd, Arm sdot) and the scalar fallback, two int16 for AVX2
// (vpmaddwd: vpmaddubsw would saturate, a u8 x s8 pair sum reaches 2 * 255 * 128 > 32767).
//   row panel:    kTileM rows,    [group][row][kGroup]     the operand the micro-kernel broadcasts
//   column panel: kTileN columns, [group][column][kGroup]  the operand it loads as vectors
// Edge panels are padded: rows and columns with any value (their results are dropped), K with zero
// weights (and any activation). The micro-kernel always computes whole columns and 1..kTileM rows.
//
// Encoding. Weights are stored as they are (Wgt). An activation code x (int8 or uint8) is stored as
// x + act_shift(dtype), which puts it in the range of the instruction's operand (unsigned bytes for
// vpdpbusd, signed for sdot); the kernels then add -(zero_point + shift) * sum(w) per output channel,
// so the result is the spec's sum((x - zero_point) * w) (docs/quantization.md). Sums wrap in int32:
// only the final value has to fit, which the kernels check at prepare from the weights.
//
// Packed data is consumed only by the build that packed it, so the layout may differ between builds.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <type_traits>

#include "edgepack/format.h"

namespace edgepack {
namespace qgemm {

// One implementation per build, chosen at compile time like the float GEMM's (gemm.h); each lives in
// its own file, guarded by its EDGEPACK_QGEMM_* macro.
#if defined(__AVX512VNNI__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#define EDGEPACK_QGEMM_AVX512VNNI 1  // native/kernels/x86/qgemm_avx512vnni.cpp
inline constexpr int kTileM = 8, kTileN = 32, kGroup = 4;
using Act = uint8_t;  // vpdpbusd multiplies unsigned bytes by signed bytes
using Wgt = int8_t;
#elif defined(__AVX2__)
#define EDGEPACK_QGEMM_AVX2 1  // native/kernels/x86/qgemm_avx2.cpp
inline constexpr int kTileM = 6, kTileN = 16, kGroup = 2;
using Act = int16_t;
using Wgt = int16_t;
#elif defined(__ARM_NEON) && defined(__aarch64__) && defined(__ARM_FEATURE_DOTPROD)
#define EDGEPACK_QGEMM_NEONDOT 1  // native/kernels/arm/qgemm_neondot.cpp
inline constexpr int kTileM = 8, kTileN = 8, kGroup = 4;
using Act = int8_t;  // sdot multiplies signed bytes
using Wgt = int8_t;
#else
#define EDGEPACK_QGEMM_SCALAR 1  // native/kernels/ref/qgemm_scalar.cpp
inline constexpr int kTileM = 4, kTileN = 8, kGroup = 4;
using Act = uint8_t;
using Wgt = int8_t;
#endif
static_assert(kGroup * sizeof(Act) == 4 && kGroup * sizeof(Wgt) == 4, "a k-group fills one 32-bit lane");

// What is added to an activation code of `code_dtype` (int8 or uint8) to store it as an Act.
constexpr int32_t act_shift(DType code_dtype) {
  const bool code_signed = code_dtype == DType::kInt8;
  if constexpr (sizeof(Act) == 2) {
    return 0;
  } else if constexpr (std::is_signed_v<Act>) {
    return code_signed ? 0 : -128;
  } else {
    return code_signed ? 128 : 0;
  }
}

inline int64_t k_groups(int64_t k) { return (k + kGroup - 1) / kGroup; }
inline int64_t row_panels(int64_t rows) { return (rows + kTileM - 1) / kTileM; }
inline int64_t col_panels(int64_t cols) { return (cols + kTileN - 1) / kTileN; }
// Elements of one panel over `groups` k-groups.
inline int64_t row_panel_size(int64_t groups) { return groups * kTileM * kGroup; }
inline int64_t col_panel_size(int64_t groups) { return groups * kTileN * kGroup; }
// Where element (row, k) / (k, col) lives in packed row / column panels over `groups` k-groups.
inline int64_t row_panel_index(int64_t groups, int64_t row, int64_t k) {
  return row / kTileM * row_panel_size(groups) + (k / kGroup * kTileM + row % kTileM) * kGroup + k % kGroup;
}
inline int64_t col_panel_index(int64_t groups, int64_t col, int64_t k) {
  return col / kTileN * col_panel_size(groups) + (k / kGroup * kTileN + col % kTileN) * kGroup + k % kGroup;
}
// Bytes rounded up to whole 64-byte lines, so that sub-buffers of aligned memory stay aligned.
inline size_t whole_lines(size_t bytes) { return (bytes + 63) & ~size_t{63}; }

// ---- micro-kernels: one tile of int32 sums, acc[r * kTileN + c] for r < rows (1..kTileM) ----
// Activations in rows (MatMul: rows of A against packed weight columns).
void tile_act_rows(int rows, int64_t groups, const Act* a_rows, const Wgt* w_cols, int32_t* acc);
// Weights in rows (Conv: output channels against pixels). Columns come packed (col_offsets null), or
// are read in place: group g of column c is the lane at x_cols + (col_offsets[g] + c) * kGroup.
void tile_act_cols(int rows, int64_t groups, const Wgt* w_rows, const Act* x_cols, const int64_t* col_offsets,
                   int32_t* acc);

// ---- operand layout ----
// Interleaves kGroup rows of n activation codes (int8 or uint8, as bytes) into lanes, stored as Acts:
// out[i * kGroup + e] = rows[e][i] + act_shift.
void interleave_codes(const uint8_t* const* rows, bool codes_signed, int64_t n, Act* out);

// ---- requantization (docs/quantization.md), vectorised per ISA ----
// The per-channel parameters (arrays indexed by output channel) and the output's codes.
struct Requant {
  const int32_t* offset = nullptr;      // added to a raw sum, wrapping in int32: bias and zero-point terms
  const int32_t* multiplier = nullptr;  // Multiplier::m
  const int32_t* rshift = nullptr;      // 31 - Multiplier::shift, in [1, 62]
  int32_t zero_point = 0, lo = -128, hi = 127;  // the output's zero point; the fused activation's clamp
};
// A block of rows x n raw sums acc[r * acc_stride + i] -> codes out[r * out_stride + i] (int8 and
// uint8 alike, as bytes): clamp(zero_point + apply(acc + offset), lo, hi) with apply(x) =
// (x * multiplier + 2^(rshift - 1)) >> rshift in int64, for the channel of the element: first + i
// (per column: MatMul) or first + r (per row: Conv).
void requantize_per_column(const int32_t* acc, int64_t acc_stride, int rows, int n, const Requant& q, int64_t first,
                           uint8_t* out, int64_t out_stride);
void requantize_per_row(const int32_t* acc, int64_t acc_stride, int rows, int n, const Requant& q, int64_t first,
                        uint8_t* out, int64_t out_stride);

// ---- dynamic int8 ----
// *lo = min(0, a[0..n)), *hi = max(0, a[0..n)): the range of a row that dynamic int8 quantizes over.
// A compiler vectorises a min/max reduction of floats only under -ffast-math, hence one per ISA.
void row_range(const float* a, int64_t n, float* lo, float* hi);

// Quantizes rows (1..kTileM) of A into one row panel as the reference's quantize_rows does: row i is
// a + i * lda, k values, each times smooth[k] first when smooth is not null (a folded SmoothQuant Mul);
// lo = min(row, 0), hi = max(row, 0), s = (hi - lo) / 255 (1 for a zero row), z = round(-lo / s),
// q = clamp(round(a * (1 / s)) + z, 0, 255), stored as q + act_shift(uint8); scale[i] = s and
// correction[i] = z + act_shift(uint8). The panel's rows past `rows` get any codes.
#if defined(EDGEPACK_QGEMM_AVX512VNNI)
#define EDGEPACK_QGEMM_VECTOR_ROW_QUANT 1  // else qlinear.cpp's portable loop
void quantize_row_panel(const float* a, int64_t lda, int rows, int64_t k, const float* smooth, Act* panel,
                        float* scale, int32_t* correction);
#endif

// The float epilogue of a dynamic int8 MatMul (docs/quantization.md): for row r and column c of the
// tile, with sum = raw - correction[r] * col_sum[c] (wrapping in int32),
//   y[r][c] = clamp(float(sum) * (row_scale[r] * w_scale[c]) + bias[c], lo, hi)
// in the reference's float32 operations and order (product, then sum: no FMA), NaN passing the clamp.
struct DynamicEpilogue {
  const int32_t* correction = nullptr;  // per row of the problem: the row's zero point + act_shift
  const float* row_scale = nullptr;     // per row of the problem
  const int32_t* col_sum = nullptr;     // per column: sum of the column's weights
  const float* w_scale = nullptr;       // per column
  const float* bias = nullptr;          // per column, or null
  float lo = 0, hi = 0;                 // the fused activation's clamp (+-inf when none)
  float* y = nullptr;                   // the output, row stride ldy
  int64_t ldy = 0;
};
#if defined(EDGEPACK_QGEMM_AVX512VNNI)
// tile_act_rows with that epilogue applied in registers: the tile's rows [row0, row0 + rows) and
// columns [col0, col0 + cols) of y are written. (Elsewhere the kernel runs tile_act_rows and then the
// same epilogue in plain C++.)
#define EDGEPACK_QGEMM_FUSED_DYNAMIC 1
void tile_act_rows_dynamic(int rows, int64_t groups, const Act* a_rows, const Wgt* w_cols, int64_t row0,
                           int64_t col0, int cols, const DynamicEpilogue& e);
#endif

// ---- weight-only int4 ----
// Two int4 codes per byte, low nibble first (values -8..7), times their scales: for i < bytes,
// out[2i] = low(packed[i]) * scale[2i] and out[2i + 1] = high(packed[i]) * scale[2i + 1].
void dequantize_int4_bytes(const uint8_t* packed, int64_t bytes, const float* scale, float* out);

// 64-byte aligned bytes owned by a kernel object (packed weights, per-channel tables).
class AlignedBuffer {
 public:
  // False when the allocation fails (prepare reports it rather than throwing).
  bool resize(size_t bytes) {
    data_.reset();
    if (bytes == 0) return true;
    data_.reset(static_cast<uint8_t*>(std::aligned_alloc(64, whole_lines(bytes))));
    return data_ != nullptr;
  }
  template <class T> T* as() { return reinterpret_cast<T*>(data_.get()); }
  template <class T> const T* as() const { return reinterpret_cast<const T*>(data_.get()); }

 private:
  struct Free {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  std::unique_ptr<uint8_t, Free> data_;
};

}  // namespace qgemm
}  // namespace edgepack
