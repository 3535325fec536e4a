// The integer GEMM core (qgemm.h) in portable C++, for builds without a SIMD implementation (e.g.
// baseline x86-64, Armv8.0 without the dot-product instructions). Also the plainest statement of what
// the SIMD versions compute.
#include "kernels/ref/qgemm.h"

#if defined(EDGEPACK_QGEMM_SCALAR)

#include "kernels/ref/quant_util.h"

namespace edgepack {
namespace qgemm {
namespace {

// A tile of 1..kTileM rows. RowT / ColT are the element types of the two operands (Act or Wgt). Sums
// are kept unsigned: they wrap by design, and signed overflow would be undefined.
template <class RowT, class ColT, bool kInPlace>
void qs8_gemm_4x8c4__scalar(int rows, int64_t groups, const RowT* row_panel, const ColT* cols,
                            const int64_t* col_offsets, int32_t* acc) {
  uint32_t sum[kTileM * kTileN] = {};
  for (int64_t g = 0; g < groups; ++g) {
    const ColT* col = kInPlace ? cols + col_offsets[g] * kGroup : cols + g * kTileN * kGroup;
    const RowT* row = row_panel + g * kTileM * kGroup;
    for (int r = 0; r < rows; ++r) {
      for (int c = 0; c < kTileN; ++c) {
        int32_t dot = 0;  // at most 4 * 255 * 128 in magnitude
        for (int e = 0; e < kGroup; ++e)
          dot += int32_t{row[r * kGroup + e]} * int32_t{col[c * kGroup + e]};
        sum[r * kTileN + c] += static_cast<uint32_t>(dot);
      }
    }
  }
  for (int i = 0; i < rows * kTileN; ++i) acc[i] = static_cast<int32_t>(sum[i]);
}

inline uint8_t requantize_one(int32_t acc, const Requant& q, int64_t c) {
  const auto x = static_cast<int32_t>(static_cast<uint32_t>(acc) + static_cast<uint32_t>(q.offset[c]));
  const int64_t y = (int64_t{x} * q.multiplier[c] + (int64_t{1} << (q.rshift[c] - 1))) >> q.rshift[c];
  return static_cast<uint8_t>(clamp_i32(y + q.zero_point, q.lo, q.hi));
}

}  // namespace

void tile_act_rows(int rows, int64_t groups, const Act* a_rows, const Wgt* w_cols, int32_t* acc) {
  qs8_gemm_4x8c4__scalar<Act, Wgt, false>(rows, groups, a_rows, w_cols, nullptr, acc);
}

void tile_act_cols(int rows, int64_t groups, const Wgt* w_rows, const Act* x_cols, const int64_t* col_offsets,
                   int32_t* acc) {
  if (col_offsets != nullptr) {
    qs8_gemm_4x8c4__scalar<Wgt, Act, true>(rows, groups, w_rows, x_cols, col_offsets, acc);
  } else {
    qs8_gemm_4x8c4__scalar<Wgt, Act, false>(rows, groups, w_rows, x_cols, nullptr, acc);
  }
}

void interleave_codes(const uint8_t* const* rows, bool codes_signed, int64_t n, Act* out) {
  const uint8_t flip = codes_signed ? 0x80 : 0x00;  // Acts are unsigned: int8 codes + 128
  for (int64_t i = 0; i < n; ++i, out += kGroup)
    for (int e = 0; e < kGroup; ++e) out[e] = rows[e][i] ^ flip;
}

void requantize_per_column(const int32_t* acc, int64_t acc_stride, int rows, int n, const Requant& q, int64_t first,
                           uint8_t* out, int64_t out_stride) {
  for (int r = 0; r < rows; ++r)
    for (int i = 0; i < n; ++i) out[r * out_stride + i] = requantize_one(acc[r * acc_stride + i], q, first + i);
}

void requantize_per_row(const int32_t* acc, int64_t acc_stride, int rows, int n, const Requant& q, int64_t first,
                        uint8_t* out, int64_t out_stride) {
  for (int r = 0; r < rows; ++r)
    for (int i = 0; i < n; ++i) out[r * out_stride + i] = requantize_one(acc[r * acc_stride + i], q, first + r);
}

void row_range(const float* a, int64_t n, float* lo, float* hi) {
  float l = 0.0f, h = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    l = a[i] < l ? a[i] : l;
    h = a[i] > h ? a[i] : h;
  }
  *lo = l;
  *hi = h;
}

void dequantize_int4_bytes(const uint8_t* packed, int64_t bytes, const float* scale, float* out) {
  for (int64_t i = 0; i < bytes; ++i) {
    out[2 * i] = static_cast<float>(((packed[i] & 0xF) ^ 8) - 8) * scale[2 * i];
    out[2 * i + 1] = static_cast<float>(((packed[i] >> 4) ^ 8) - 8) * scale[2 * i + 1];
  }
}

}  // namespace qgemm
}  // namespace edgepack

#endif  // EDGEPACK_QGEMM_SCALAR
