// The integer GEMM core (qgemm.h) for AVX-512 VNNI: vpdpbusd multiplies four unsigned activation bytes
// by four signed weight bytes and adds the sum to an int32 lane, 64 products per instruction.
#include "kernels/ref/qgemm.h"

#if defined(EDGEPACK_QGEMM_AVX512VNNI)

#include "kernels/x86/avx512.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <utility>

namespace edgepack {
namespace qgemm {
namespace {

constexpr int kLanes = 16;
using avx512::first_lanes;
constexpr int kVecs = kTileN / kLanes;  // vectors across a column panel
static_assert(kVecs * kLanes == kTileN, "kTileN must be a whole number of vectors");

// One k-group of a row (four bytes) in every lane.
inline __m512i broadcast_group(const void* p) {
  int32_t lanes;
  std::memcpy(&lanes, p, sizeof(lanes));
  return _mm512_set1_epi32(lanes);
}

// acc + the dot products of four unsigned bytes of u with four signed bytes of s, per 32-bit lane.
// Inline asm, not _mm512_dpbusd_epi32: GCC 12 does not tie that builtin's accumulator to its output
// register, and copied all sixteen accumulators (spilling two) on every k-group: the tile ran at
// about half of vpdpbusd's throughput.
inline __m512i dpbusd(__m512i acc, __m512i u, __m512i s) {
  asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(u), "v"(s));
  return acc;
}

// A kRows x 32 tile of int32 sums held in kRows * 2 registers across the whole K; each k-group is two
// column loads, kRows broadcasts and kRows * 2 vpdpbusd. kActRows says which operand holds the
// (unsigned) activations: vpdpbusd takes them first.
template <int kRows, bool kActRows, bool kInPlace>
inline void sum_tile(int64_t groups, const uint8_t* rows, const uint8_t* cols, const int64_t* col_offsets,
                     __m512i (&sum)[kRows][kVecs]) {
#pragma GCC unroll 16
  for (int r = 0; r < kRows; ++r) {
#pragma GCC unroll 4
    for (int v = 0; v < kVecs; ++v) sum[r][v] = _mm512_setzero_si512();
  }
  for (int64_t g = 0; g < groups; ++g) {
    const uint8_t* col = kInPlace ? cols + col_offsets[g] * 4 : cols + g * kTileN * 4;
    __m512i b[kVecs];
#pragma GCC unroll 4
    for (int v = 0; v < kVecs; ++v) b[v] = _mm512_loadu_si512(col + v * 64);
    const uint8_t* row = rows + g * kTileM * 4;
#pragma GCC unroll 16
    for (int r = 0; r < kRows; ++r) {
      const __m512i a = broadcast_group(row + r * 4);
#pragma GCC unroll 4
      for (int v = 0; v < kVecs; ++v)
        sum[r][v] = kActRows ? dpbusd(sum[r][v], a, b[v]) : dpbusd(sum[r][v], b[v], a);
    }
  }
}

template <int kRows, bool kActRows, bool kInPlace>
void qs8_gemm_8x32c4__avx512vnni(int64_t groups, const uint8_t* rows, const uint8_t* cols, const int64_t* col_offsets,
                                 int32_t* acc) {
  __m512i sum[kRows][kVecs];
  sum_tile<kRows, kActRows, kInPlace>(groups, rows, cols, col_offsets, sum);
#pragma GCC unroll 16
  for (int r = 0; r < kRows; ++r) {
#pragma GCC unroll 4
    for (int v = 0; v < kVecs; ++v) _mm512_storeu_si512(acc + r * kTileN + v * kLanes, sum[r][v]);
  }
}

// The dynamic int8 tile (activations in rows) with DynamicEpilogue applied to the sums in registers:
// the int32 tile never goes through memory, and the float output is written once.
template <int kRows>
void qd8_gemm_8x32c4__avx512vnni(int64_t groups, const uint8_t* rows, const uint8_t* cols, int64_t row0,
                                 int64_t col0, int ncols, const DynamicEpilogue& e) {
  constexpr __mmask16 kAll16 = 0xFFFF;
  __m512i sum[kRows][kVecs];
  sum_tile<kRows, true, false>(groups, rows, cols, nullptr, sum);
  __mmask16 mask[kVecs];
  __m512i col_sum[kVecs];
  __m512 w_scale[kVecs], bias[kVecs];
#pragma GCC unroll 4
  for (int v = 0; v < kVecs; ++v) {
    mask[v] = first_lanes(ncols - v * kLanes);
    col_sum[v] = _mm512_maskz_loadu_epi32(mask[v], e.col_sum + col0 + v * kLanes);
    w_scale[v] = _mm512_maskz_loadu_ps(mask[v], e.w_scale + col0 + v * kLanes);
    bias[v] = e.bias != nullptr ? _mm512_maskz_loadu_ps(mask[v], e.bias + col0 + v * kLanes) : _mm512_setzero_ps();
  }
  const __m512 lo = _mm512_set1_ps(e.lo), hi = _mm512_set1_ps(e.hi);
#pragma GCC unroll 16
  for (int r = 0; r < kRows; ++r) {
    const __m512i correction = _mm512_set1_epi32(e.correction[row0 + r]);
    const __m512 s = _mm512_set1_ps(e.row_scale[row0 + r]);
    float* out = e.y + (row0 + r) * e.ldy + col0;
#pragma GCC unroll 4
    for (int v = 0; v < kVecs; ++v) {
      const __m512i x = _mm512_sub_epi32(sum[r][v], _mm512_mullo_epi32(correction, col_sum[v]));
      // float(x) * (s * s_w), then + bias, as separate roundings (intrinsics are never contracted).
      __m512 y = _mm512_mul_ps(_mm512_maskz_cvtepi32_ps(kAll16, x), _mm512_mul_ps(s, w_scale[v]));
      if (e.bias != nullptr) y = _mm512_add_ps(y, bias[v]);
      // max(lo, y) / min(hi, y) return their second operand when either is NaN: NaN passes.
      y = _mm512_mask_min_ps(y, kAll16, hi, _mm512_mask_max_ps(y, kAll16, lo, y));
      _mm512_mask_storeu_ps(out + v * kLanes, mask[v], y);
    }
  }
}

template <size_t... I>
constexpr std::array<void (*)(int64_t, const uint8_t*, const uint8_t*, int64_t, int64_t, int, const DynamicEpilogue&),
                     sizeof...(I)>
make_dynamic_tiles(std::index_sequence<I...>) {
  return {{&qd8_gemm_8x32c4__avx512vnni<static_cast<int>(I) + 1>...}};
}
constexpr auto kDynamicTiles = make_dynamic_tiles(std::make_index_sequence<kTileM>{});

using TileFn = void (*)(int64_t, const uint8_t*, const uint8_t*, const int64_t*, int32_t*);

template <bool kActRows, bool kInPlace, size_t... I>
constexpr std::array<TileFn, sizeof...(I)> make_tiles(std::index_sequence<I...>) {
  return {{&qs8_gemm_8x32c4__avx512vnni<static_cast<int>(I) + 1, kActRows, kInPlace>...}};
}
// [rows - 1]
constexpr auto kActRowTiles = make_tiles<true, false>(std::make_index_sequence<kTileM>{});
constexpr auto kActColTiles = make_tiles<false, false>(std::make_index_sequence<kTileM>{});
constexpr auto kActColInPlaceTiles = make_tiles<false, true>(std::make_index_sequence<kTileM>{});

// GCC 12 warns (-Wmaybe-uninitialized, falsely) on the unmasked forms of these AVX-512 intrinsics,
// which it implements with an undefined pass-through operand: the zero-masked forms with every lane
// selected are the same instructions.
constexpr __mmask8 kAll8 = 0xFF;
inline __m512i widen64(__m256i x) { return _mm512_maskz_cvtepi32_epi64(kAll8, x); }
inline __m256i low_half(__m512i x) { return _mm512_maskz_extracti64x4_epi64(0xF, x, 0); }
inline __m256i high_half(__m512i x) { return _mm512_maskz_extracti64x4_epi64(0xF, x, 1); }

// Per-lane requantization parameters, widened to int64 for one half (8 lanes) of a vector.
struct Half64 {
  __m512i multiplier, rshift, rounding;
};

inline Half64 widen(__m256i multiplier, __m256i rshift) {
  const __m512i shift = widen64(rshift), one = _mm512_set1_epi64(1);
  return {widen64(multiplier), shift, _mm512_maskz_sllv_epi64(kAll8, one, _mm512_sub_epi64(shift, one))};
}

// The clamp relative to the zero point, so it runs on the int64 result before it is narrowed.
struct Bounds64 {
  __m512i zero_point, lo, hi;
  explicit Bounds64(const Requant& q)
      : zero_point(_mm512_set1_epi64(q.zero_point)),
        lo(_mm512_set1_epi64(int64_t{q.lo} - q.zero_point)),
        hi(_mm512_set1_epi64(int64_t{q.hi} - q.zero_point)) {}
};

// Eight int32 values (already offset) -> eight output bytes in the low half of the result.
inline __m128i requantize8(__m256i x, const Half64& p, const Bounds64& b) {
  // vpmuldq multiplies the sign-extended low halves of the 64-bit lanes: exact 32 x 32 -> 64 bits.
  const __m512i product = _mm512_maskz_mul_epi32(kAll8, widen64(x), p.multiplier);
  __m512i y = _mm512_maskz_srav_epi64(kAll8, _mm512_add_epi64(product, p.rounding), p.rshift);
  y = _mm512_maskz_min_epi64(kAll8, _mm512_maskz_max_epi64(kAll8, y, b.lo), b.hi);
  return _mm512_maskz_cvtepi64_epi8(kAll8, _mm512_add_epi64(y, b.zero_point));
}

// Sixteen int32 values (already offset) -> sixteen output bytes.
inline __m128i requantize16(__m512i x, const Half64& lo, const Half64& hi, const Bounds64& b) {
  return _mm_unpacklo_epi64(requantize8(low_half(x), lo, b), requantize8(high_half(x), hi, b));
}

// Sixteen int8 values as floats.
inline __m512 to_float(__m128i bytes) {
  constexpr __mmask16 kAll16 = 0xFFFF;
  return _mm512_maskz_cvtepi32_ps(kAll16, _mm512_maskz_cvtepi8_epi32(kAll16, bytes));
}


}  // namespace

void tile_act_rows(int rows, int64_t groups, const Act* a_rows, const Wgt* w_cols, int32_t* acc) {
  kActRowTiles[rows - 1](groups, a_rows, reinterpret_cast<const uint8_t*>(w_cols), nullptr, acc);
}

void tile_act_rows_dynamic(int rows, int64_t groups, const Act* a_rows, const Wgt* w_cols, int64_t row0,
                           int64_t col0, int cols, const DynamicEpilogue& e) {
  kDynamicTiles[rows - 1](groups, a_rows, reinterpret_cast<const uint8_t*>(w_cols), row0, col0, cols, e);
}

void tile_act_cols(int rows, int64_t groups, const Wgt* w_rows, const Act* x_cols, const int64_t* col_offsets,
                   int32_t* acc) {
  const auto* w = reinterpret_cast<const uint8_t*>(w_rows);
  if (col_offsets != nullptr) {
    kActColInPlaceTiles[rows - 1](groups, w, x_cols, col_offsets, acc);
  } else {
    kActColTiles[rows - 1](groups, w, x_cols, nullptr, acc);
  }
}

void interleave_codes(const uint8_t* const* rows, bool codes_signed, int64_t n, Act* out) {
  // Acts are unsigned: int8 codes + 128, i.e. the byte with its top bit flipped.
  const uint8_t flip = codes_signed ? 0x80 : 0x00;
  const __m128i flip16 = _mm_set1_epi8(static_cast<char>(flip));
  int64_t i = 0;
  for (; i + 16 <= n; i += 16, out += 64) {
    __m128i x[4];
    for (int e = 0; e < 4; ++e)
      x[e] = _mm_xor_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(rows[e] + i)), flip16);
    const __m128i r01lo = _mm_unpacklo_epi8(x[0], x[1]), r01hi = _mm_unpackhi_epi8(x[0], x[1]);
    const __m128i r23lo = _mm_unpacklo_epi8(x[2], x[3]), r23hi = _mm_unpackhi_epi8(x[2], x[3]);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out), _mm_unpacklo_epi16(r01lo, r23lo));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 16), _mm_unpackhi_epi16(r01lo, r23lo));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 32), _mm_unpacklo_epi16(r01hi, r23hi));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 48), _mm_unpackhi_epi16(r01hi, r23hi));
  }
  for (; i < n; ++i, out += 4)
    for (int e = 0; e < 4; ++e) out[e] = rows[e][i] ^ flip;
}

void requantize_per_column(const int32_t* acc, int64_t acc_stride, int rows, int n, const Requant& q, int64_t first,
                           uint8_t* out, int64_t out_stride) {
  const Bounds64 bounds(q);
  for (int i = 0; i < n; i += kLanes) {
    const __mmask16 mask = first_lanes(n - i);
    const __m512i offset = _mm512_maskz_loadu_epi32(mask, q.offset + first + i);
    const __m512i m = _mm512_maskz_loadu_epi32(mask, q.multiplier + first + i);
    const __m512i s = _mm512_maskz_loadu_epi32(mask, q.rshift + first + i);
    const Half64 lo = widen(low_half(m), low_half(s)), hi = widen(high_half(m), high_half(s));
    for (int r = 0; r < rows; ++r) {
      const __m512i x = _mm512_add_epi32(_mm512_maskz_loadu_epi32(mask, acc + r * acc_stride + i), offset);
      _mm_mask_storeu_epi8(out + r * out_stride + i, mask, requantize16(x, lo, hi, bounds));
    }
  }
}

void requantize_per_row(const int32_t* acc, int64_t acc_stride, int rows, int n, const Requant& q, int64_t first,
                        uint8_t* out, int64_t out_stride) {
  const Bounds64 bounds(q);
  for (int r = 0; r < rows; ++r) {
    const int64_t c = first + r;
    const Half64 p = widen(_mm256_set1_epi32(q.multiplier[c]), _mm256_set1_epi32(q.rshift[c]));
    const __m512i offset = _mm512_set1_epi32(q.offset[c]);
    for (int i = 0; i < n; i += kLanes) {
      const __mmask16 mask = first_lanes(n - i);
      const __m512i x = _mm512_add_epi32(_mm512_maskz_loadu_epi32(mask, acc + r * acc_stride + i), offset);
      _mm_mask_storeu_epi8(out + r * out_stride + i, mask, requantize16(x, p, p, bounds));
    }
  }
}

void row_range(const float* a, int64_t n, float* lo, float* hi) {
  constexpr __mmask16 kAll16 = 0xFFFF;
  __m512 l = _mm512_setzero_ps(), h = _mm512_setzero_ps();
  for (int64_t i = 0; i < n; i += kLanes) {
    // Lanes past n load 0, which the range includes anyway.
    const __m512 v = _mm512_maskz_loadu_ps(first_lanes(n - i), a + i);
    l = _mm512_maskz_min_ps(kAll16, l, v);
    h = _mm512_maskz_max_ps(kAll16, h, v);
  }
  float lanes_lo[kLanes], lanes_hi[kLanes];
  _mm512_storeu_ps(lanes_lo, l);
  _mm512_storeu_ps(lanes_hi, h);
  *lo = *std::min_element(lanes_lo, lanes_lo + kLanes);
  *hi = *std::max_element(lanes_hi, lanes_hi + kLanes);
}

// v = a[i] (times smooth[i]) for the 16 lanes from i, lanes past the row's end 0.
inline __m512 load_row(const float* a, const float* smooth, int64_t i, __mmask16 mask) {
  const __m512 v = _mm512_maskz_loadu_ps(mask, a + i);
  return smooth != nullptr ? _mm512_mul_ps(v, _mm512_maskz_loadu_ps(mask, smooth + i)) : v;
}

void quantize_row_panel(const float* a, int64_t lda, int rows, int64_t k, const float* smooth, Act* panel,
                        float* scale, int32_t* correction) {
  constexpr __mmask16 kAll16 = 0xFFFF;
  static_assert(kTileM == 8 && kGroup == 4 && act_shift(DType::kUInt8) == 0, "the panel layout below");
  // Rows past `rows` repeat the last one: their codes are dropped, and they must not be read past A.
  const float* row[kTileM];
  __m512 inverse[kTileM] = {};  // initialised: GCC cannot see that rows >= 1 (-Wmaybe-uninitialized)
  __m512i zero_point[kTileM] = {};
  for (int r = 0; r < kTileM; ++r) {
    row[r] = a + std::min(r, rows - 1) * lda;
    if (r >= rows) {
      inverse[r] = inverse[rows - 1];
      zero_point[r] = zero_point[rows - 1];
      continue;
    }
    __m512 l = _mm512_setzero_ps(), h = _mm512_setzero_ps();
    for (int64_t i = 0; i < k; i += kLanes) {
      const __m512 v = load_row(row[r], smooth, i, first_lanes(k - i));
      l = _mm512_maskz_min_ps(kAll16, l, v);
      h = _mm512_maskz_max_ps(kAll16, h, v);
    }
    const float lo = _mm512_reduce_min_ps(l), hi = _mm512_reduce_max_ps(h);
    const float s = hi > lo ? (hi - lo) / 255.0f : 1.0f;
    const float z = std::min(std::max(std::nearbyint(-lo / s), 0.0f), 255.0f);
    scale[r] = s;
    correction[r] = static_cast<int32_t>(z);
    inverse[r] = _mm512_set1_ps(1.0f / s);
    zero_point[r] = _mm512_set1_epi32(static_cast<int32_t>(z));
  }
  // 16 values of each of the 8 rows per step: round(v * inverse) + z as int32 (vcvtps2dq rounds half
  // to even, like np.rint), then two saturating packs clamp to [0, 255] and leave in 128-bit lane L the
  // k-group (k0 / 4 + L) of rows 0..3 (rows 4..7 from the second pack); the permutes put the 8 rows of a
  // k-group together, as the panel stores them.
  const __m512i groups01 = _mm512_set_epi64(11, 10, 3, 2, 9, 8, 1, 0);
  const __m512i groups23 = _mm512_set_epi64(15, 14, 7, 6, 13, 12, 5, 4);
  const int64_t groups = k_groups(k);
  for (int64_t k0 = 0; k0 < k; k0 += kLanes) {
    const __mmask16 mask = first_lanes(k - k0);
    __m512i q[kTileM];
#pragma GCC unroll 8
    for (int r = 0; r < kTileM; ++r) {
      const __m512 v = _mm512_mul_ps(load_row(row[r], smooth, k0, mask), inverse[r]);
      q[r] = _mm512_add_epi32(_mm512_maskz_cvtps_epi32(kAll16, v), zero_point[r]);
    }
    const __m512i rows0123 = _mm512_packus_epi16(_mm512_packs_epi32(q[0], q[1]), _mm512_packs_epi32(q[2], q[3]));
    const __m512i rows4567 = _mm512_packus_epi16(_mm512_packs_epi32(q[4], q[5]), _mm512_packs_epi32(q[6], q[7]));
    const __m512i first = _mm512_permutex2var_epi64(rows0123, groups01, rows4567);
    const __m512i second = _mm512_permutex2var_epi64(rows0123, groups23, rows4567);
    Act* out = panel + k0 / kGroup * kTileM * kGroup;
    const int64_t left = groups - k0 / kGroup;  // k-groups of the panel from here (the last step: 1..4)
    if (left >= 4) {
      _mm512_storeu_si512(out, first);
      _mm512_storeu_si512(out + 64, second);
    } else {  // 32 bytes (4 qwords) per k-group
      _mm512_mask_storeu_epi64(out, left >= 2 ? 0xFF : 0x0F, first);
      if (left == 3) _mm512_mask_storeu_epi64(out + 64, 0x0F, second);
    }
  }
}

void dequantize_int4_bytes(const uint8_t* packed, int64_t bytes, const float* scale, float* out) {
  const __m128i low4 = _mm_set1_epi8(0x0F), eight = _mm_set1_epi8(8);
  int64_t i = 0;
  for (; i + 16 <= bytes; i += 16) {
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(packed + i));
    const __m128i lo = _mm_and_si128(b, low4), hi = _mm_and_si128(_mm_srli_epi16(b, 4), low4);
    // Codes in order (low nibble first), sign-extended from 4 bits: (c ^ 8) - 8.
    const __m128i first = _mm_sub_epi8(_mm_xor_si128(_mm_unpacklo_epi8(lo, hi), eight), eight);
    const __m128i second = _mm_sub_epi8(_mm_xor_si128(_mm_unpackhi_epi8(lo, hi), eight), eight);
    _mm512_storeu_ps(out + 2 * i, _mm512_mul_ps(to_float(first), _mm512_loadu_ps(scale + 2 * i)));
    _mm512_storeu_ps(out + 2 * i + 16, _mm512_mul_ps(to_float(second), _mm512_loadu_ps(scale + 2 * i + 16)));
  }
  for (; i < bytes; ++i) {
    out[2 * i] = static_cast<float>(((packed[i] & 0xF) ^ 8) - 8) * scale[2 * i];
    out[2 * i + 1] = static_cast<float>(((packed[i] >> 4) ^ 8) - 8) * scale[2 * i + 1];
  }
}

}  // namespace qgemm
}  // namespace edgepack

#endif  // EDGEPACK_QGEMM_AVX512VNNI
