// The integer GEMM core (qgemm.h) for AArch64 with the dot-product extension (Armv8.2-A+dotprod:
// Cortex-A55/A76 and newer): sdot adds the dot product of four signed bytes to each int32 lane, and its
// by-element form takes one row's group straight from a register holding four rows.
#include "kernels/ref/qgemm.h"

#if defined(EDGEPACK_QGEMM_NEONDOT)

#include <arm_neon.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>

namespace edgepack {
namespace qgemm {
namespace {

constexpr int kLanes = 4;
constexpr int kVecs = kTileN / kLanes;
static_assert(kTileM == 8 && kVecs == 2, "the tile below is written for 8 x 8");

// Row kRow of the tile: sum += (its group, lane kRow % 4 of a0 or a1) . each column vector. The lane of
// sdot's by-element form is an immediate, so the rows unroll at compile time.
template <int kRow, int kRows>
inline void rows_step(int32x4_t (&sum)[kRows][kVecs], int8x16_t b0, int8x16_t b1, int8x16_t a0, int8x16_t a1) {
  if constexpr (kRow < kRows) {
    const int8x16_t a = kRow < 4 ? a0 : a1;
    sum[kRow][0] = vdotq_laneq_s32(sum[kRow][0], b0, a, kRow % 4);
    sum[kRow][1] = vdotq_laneq_s32(sum[kRow][1], b1, a, kRow % 4);
    rows_step<kRow + 1, kRows>(sum, b0, b1, a0, a1);
  }
}

// qs8_gemm_8x8c4__neondot: a kRows x 8 tile of int32 sums in kRows * 2 registers across the whole K;
// each k-group is one or two row loads (four rows each), two column loads and kRows * 2 sdot.
template <int kRows, bool kInPlace>
void qs8_gemm_8x8c4__neondot(int64_t groups, const int8_t* rows, const int8_t* cols, const int64_t* col_offsets,
                             int32_t* acc) {
  int32x4_t sum[kRows][kVecs];
#pragma GCC unroll 8
  for (int r = 0; r < kRows; ++r) {
    sum[r][0] = vdupq_n_s32(0);
    sum[r][1] = vdupq_n_s32(0);
  }
  for (int64_t g = 0; g < groups; ++g) {
    const int8_t* col = kInPlace ? cols + col_offsets[g] * kGroup : cols + g * kTileN * kGroup;
    const int8_t* row = rows + g * kTileM * kGroup;
    const int8x16_t a0 = vld1q_s8(row);
    const int8x16_t a1 = kRows > 4 ? vld1q_s8(row + 16) : a0;
    rows_step<0, kRows>(sum, vld1q_s8(col), vld1q_s8(col + 16), a0, a1);
  }
#pragma GCC unroll 8
  for (int r = 0; r < kRows; ++r) {
    vst1q_s32(acc + r * kTileN, sum[r][0]);
    vst1q_s32(acc + r * kTileN + kLanes, sum[r][1]);
  }
}

using TileFn = void (*)(int64_t, const int8_t*, const int8_t*, const int64_t*, int32_t*);

template <bool kInPlace, size_t... I>
constexpr std::array<TileFn, sizeof...(I)> make_tiles(std::index_sequence<I...>) {
  return {{&qs8_gemm_8x8c4__neondot<static_cast<int>(I) + 1, kInPlace>...}};
}
// [rows - 1]; both operands are signed bytes, so which one holds the activations does not matter.
constexpr auto kPackedTiles = make_tiles<false>(std::make_index_sequence<kTileM>{});
constexpr auto kInPlaceTiles = make_tiles<true>(std::make_index_sequence<kTileM>{});

struct Bounds {
  int32x4_t zero_point, lo, hi;
  explicit Bounds(const Requant& q)
      : zero_point(vdupq_n_s32(q.zero_point)), lo(vdupq_n_s32(q.lo)), hi(vdupq_n_s32(q.hi)) {}
};

// (x * m + 2^(s-1)) >> s for two int64 lanes; vshlq_s64 by a negative count is an arithmetic shift.
inline int64x2_t apply2(int64x2_t product, int64x2_t shift) {
  const int64x2_t rounding = vshlq_s64(vdupq_n_s64(1), vsubq_s64(shift, vdupq_n_s64(1)));
  return vshlq_s64(vaddq_s64(product, rounding), vnegq_s64(shift));
}

// Four int32 values (already offset) -> four codes in int32 lanes. The int64 results are narrowed
// with saturation and the zero point added with saturation, which keeps every value that the clamp
// would cut on the same side of it.
inline int32x4_t requantize4(int32x4_t x, int32x4_t multiplier, int32x4_t rshift, const Bounds& b) {
  const int64x2_t lo = apply2(vmull_s32(vget_low_s32(x), vget_low_s32(multiplier)), vmovl_s32(vget_low_s32(rshift)));
  const int64x2_t hi = apply2(vmull_high_s32(x, multiplier), vmovl_high_s32(rshift));
  const int32x4_t y = vqaddq_s32(vcombine_s32(vqmovn_s64(lo), vqmovn_s64(hi)), b.zero_point);
  return vminq_s32(vmaxq_s32(y, b.lo), b.hi);
}

// Up to four int32 lanes from p (zero beyond n).
inline int32x4_t load_n(const int32_t* p, int n) {
  if (n >= kLanes) return vld1q_s32(p);
  int32_t buf[kLanes] = {0, 0, 0, 0};
  std::memcpy(buf, p, sizeof(int32_t) * static_cast<size_t>(n));
  return vld1q_s32(buf);
}

// The low bytes of four int32 codes, the first n of them stored.
inline void store_bytes(uint8_t* out, int32x4_t codes, int n) {
  const int16x4_t halves = vmovn_s32(codes);
  const uint8x8_t bytes = vreinterpret_u8_s8(vmovn_s16(vcombine_s16(halves, halves)));
  uint8_t buf[8];
  vst1_u8(buf, bytes);
  std::memcpy(out, buf, static_cast<size_t>(n < kLanes ? n : kLanes));
}

}  // namespace

void tile_act_rows(int rows, int64_t groups, const Act* a_rows, const Wgt* w_cols, int32_t* acc) {
  kPackedTiles[rows - 1](groups, a_rows, w_cols, nullptr, acc);
}

void tile_act_cols(int rows, int64_t groups, const Wgt* w_rows, const Act* x_cols, const int64_t* col_offsets,
                   int32_t* acc) {
  if (col_offsets != nullptr) {
    kInPlaceTiles[rows - 1](groups, w_rows, x_cols, col_offsets, acc);
  } else {
    kPackedTiles[rows - 1](groups, w_rows, x_cols, nullptr, acc);
  }
}

void interleave_codes(const uint8_t* const* rows, bool codes_signed, int64_t n, Act* out) {
  // Acts are signed: uint8 codes - 128, i.e. the byte with its top bit flipped. vst4 interleaves.
  const uint8_t flip = codes_signed ? 0x00 : 0x80;
  const uint8x16_t flip16 = vdupq_n_u8(flip);
  auto* dst = reinterpret_cast<uint8_t*>(out);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16, dst += 64) {
    uint8x16x4_t x;
    x.val[0] = veorq_u8(vld1q_u8(rows[0] + i), flip16);
    x.val[1] = veorq_u8(vld1q_u8(rows[1] + i), flip16);
    x.val[2] = veorq_u8(vld1q_u8(rows[2] + i), flip16);
    x.val[3] = veorq_u8(vld1q_u8(rows[3] + i), flip16);
    vst4q_u8(dst, x);
  }
  for (; i < n; ++i, dst += 4)
    for (int e = 0; e < 4; ++e) dst[e] = rows[e][i] ^ flip;
}

void requantize_per_column(const int32_t* acc, int64_t acc_stride, int rows, int n, const Requant& q, int64_t first,
                           uint8_t* out, int64_t out_stride) {
  const Bounds bounds(q);
  for (int i = 0; i < n; i += kLanes) {
    const int count = n - i;
    const int32x4_t offset = load_n(q.offset + first + i, count), m = load_n(q.multiplier + first + i, count);
    // Lanes past n get rshift 1, which keeps their (discarded) arithmetic defined.
    const int32x4_t s = vmaxq_s32(load_n(q.rshift + first + i, count), vdupq_n_s32(1));
    for (int r = 0; r < rows; ++r) {
      const int32x4_t x = vaddq_s32(load_n(acc + r * acc_stride + i, count), offset);
      store_bytes(out + r * out_stride + i, requantize4(x, m, s, bounds), count);
    }
  }
}

void requantize_per_row(const int32_t* acc, int64_t acc_stride, int rows, int n, const Requant& q, int64_t first,
                        uint8_t* out, int64_t out_stride) {
  const Bounds bounds(q);
  for (int r = 0; r < rows; ++r) {
    const int64_t c = first + r;
    const int32x4_t m = vdupq_n_s32(q.multiplier[c]), s = vdupq_n_s32(q.rshift[c]), offset = vdupq_n_s32(q.offset[c]);
    for (int i = 0; i < n; i += kLanes) {
      const int count = n - i;
      const int32x4_t x = vaddq_s32(load_n(acc + r * acc_stride + i, count), offset);
      store_bytes(out + r * out_stride + i, requantize4(x, m, s, bounds), count);
    }
  }
}

void row_range(const float* a, int64_t n, float* lo, float* hi) {
  float32x4_t l = vdupq_n_f32(0.0f), h = vdupq_n_f32(0.0f);
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    const float32x4_t v = vld1q_f32(a + i);
    l = vminq_f32(l, v);
    h = vmaxq_f32(h, v);
  }
  float lo_all = vminvq_f32(l), hi_all = vmaxvq_f32(h);
  for (; i < n; ++i) {
    lo_all = std::min(lo_all, a[i]);
    hi_all = std::max(hi_all, a[i]);
  }
  *lo = lo_all;
  *hi = hi_all;
}

void dequantize_int4_bytes(const uint8_t* packed, int64_t bytes, const float* scale, float* out) {
  const uint8x16_t low4 = vdupq_n_u8(0x0F), eight = vdupq_n_u8(8);
  int64_t i = 0;
  for (; i + 16 <= bytes; i += 16) {
    const uint8x16_t b = vld1q_u8(packed + i);
    // vzip interleaves the low and high nibbles back into code order; (c ^ 8) - 8 sign-extends them.
    const uint8x16x2_t codes = vzipq_u8(vandq_u8(b, low4), vshrq_n_u8(b, 4));
    for (int h = 0; h < 2; ++h) {
      const int8x16_t c = vreinterpretq_s8_u8(vsubq_u8(veorq_u8(codes.val[h], eight), eight));
      const int16x8_t halves[2] = {vmovl_s8(vget_low_s8(c)), vmovl_high_s8(c)};
      for (int q = 0; q < 2; ++q) {
        float* o = out + 2 * i + 16 * h + 8 * q;
        const float* s = scale + 2 * i + 16 * h + 8 * q;
        vst1q_f32(o, vmulq_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(halves[q]))), vld1q_f32(s)));
        vst1q_f32(o + 4, vmulq_f32(vcvtq_f32_s32(vmovl_high_s16(halves[q])), vld1q_f32(s + 4)));
      }
    }
  }
  for (; i < bytes; ++i) {
    out[2 * i] = static_cast<float>(((packed[i] & 0xF) ^ 8) - 8) * scale[2 * i];
    out[2 * i + 1] = static_cast<float>(((packed[i] >> 4) ^ 8) - 8) * scale[2 * i + 1];
  }
}

}  // namespace qgemm
}  // namespace edgepack

#endif  // EDGEPACK_QGEMM_NEONDOT
