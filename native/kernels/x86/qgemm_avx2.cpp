// The integer GEMM core (qgemm.h) for AVX2 without VNNI. Operands are stored as int16 pairs and
// multiplied with vpmaddwd (two exact int16 products summed into an int32 lane): vpmaddubsw on the
// bytes would be twice as dense but saturates, since a u8 x s8 pair sum reaches 2 * 255 * 128.
#include "kernels/ref/qgemm.h"

#if defined(EDGEPACK_QGEMM_AVX2)

#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>

namespace edgepack {
namespace qgemm {
namespace {

constexpr int kLanes = 8;
constexpr int kVecs = kTileN / kLanes;
static_assert(kVecs * kLanes == kTileN, "kTileN must be a whole number of vectors");

inline __m256i broadcast_group(const void* p) {
  int32_t lanes;
  std::memcpy(&lanes, p, sizeof(lanes));
  return _mm256_set1_epi32(lanes);
}

// qs8_gemm_6x16c2__avx2: a kRows x kTileN tile of int32 sums in kRows * 2 registers across the whole
// K; each k-group (two int16) is two column loads, kRows broadcasts, kRows * 2 vpmaddwd and vpaddd.
template <int kRows, bool kInPlace>
void qs8_gemm_6x16c2__avx2(int64_t groups, const int16_t* rows, const int16_t* cols, const int64_t* col_offsets,
                            int32_t* acc) {
  __m256i sum[kRows][kVecs];
#pragma GCC unroll 8
  for (int r = 0; r < kRows; ++r) {
#pragma GCC unroll 4
    for (int v = 0; v < kVecs; ++v) sum[r][v] = _mm256_setzero_si256();
  }
  for (int64_t g = 0; g < groups; ++g) {
    const int16_t* col = kInPlace ? cols + col_offsets[g] * kGroup : cols + g * kTileN * kGroup;
    __m256i b[kVecs];
#pragma GCC unroll 4
    for (int v = 0; v < kVecs; ++v) b[v] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(col + v * 16));
    const int16_t* row = rows + g * kTileM * kGroup;
#pragma GCC unroll 8
    for (int r = 0; r < kRows; ++r) {
      const __m256i a = broadcast_group(row + r * kGroup);
#pragma GCC unroll 4
      for (int v = 0; v < kVecs; ++v) sum[r][v] = _mm256_add_epi32(sum[r][v], _mm256_madd_epi16(a, b[v]));
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < kRows; ++r) {
#pragma GCC unroll 4
    for (int v = 0; v < kVecs; ++v)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc + r * kTileN + v * kLanes), sum[r][v]);
  }
}

using TileFn = void (*)(int64_t, const int16_t*, const int16_t*, const int64_t*, int32_t*);

template <bool kInPlace, size_t... I>
constexpr std::array<TileFn, sizeof...(I)> make_tiles(std::index_sequence<I...>) {
  return {{&qs8_gemm_6x16c2__avx2<static_cast<int>(I) + 1, kInPlace>...}};
}
// [rows - 1]; both operands are int16, so which one holds the activations does not matter.
constexpr auto kPackedTiles = make_tiles<false>(std::make_index_sequence<kTileM>{});
constexpr auto kInPlaceTiles = make_tiles<true>(std::make_index_sequence<kTileM>{});

// Per-lane requantization parameters, widened to int64 for one half (4 lanes) of a vector.
struct Half64 {
  __m256i multiplier, rshift, rounding, unbias;
};

// AVX2 has no arithmetic shift of int64 lanes: requantize8 adds 2^62 (the value is then non-negative,
// as an unsigned number it cannot overflow: |x * m| < 2^62 and the rounding term is at most 2^61),
// shifts logically and subtracts 2^(62 - rshift), which is exact because rshift <= 62.
inline Half64 widen(__m128i multiplier, __m128i rshift) {
  const __m256i shift = _mm256_cvtepi32_epi64(rshift);
  const __m256i one = _mm256_set1_epi64x(1);
  const __m256i rounding = _mm256_sllv_epi64(one, _mm256_sub_epi64(shift, one));
  return {_mm256_cvtepi32_epi64(multiplier), shift,
          _mm256_add_epi64(rounding, _mm256_set1_epi64x(int64_t{1} << 62)),
          _mm256_sllv_epi64(one, _mm256_sub_epi64(_mm256_set1_epi64x(62), shift))};
}

struct Bounds64 {
  __m256i zero_point, lo, hi;
  explicit Bounds64(const Requant& q)
      : zero_point(_mm256_set1_epi64x(q.zero_point)),
        lo(_mm256_set1_epi64x(int64_t{q.lo} - q.zero_point)),
        hi(_mm256_set1_epi64x(int64_t{q.hi} - q.zero_point)) {}
};

// Four int32 values (already offset) -> four codes in the low 32 bits of each int64 lane.
inline __m256i requantize4(__m128i x, const Half64& p, const Bounds64& b) {
  const __m256i product = _mm256_mul_epi32(_mm256_cvtepi32_epi64(x), p.multiplier);
  __m256i y = _mm256_sub_epi64(_mm256_srlv_epi64(_mm256_add_epi64(product, p.rounding), p.rshift), p.unbias);
  y = _mm256_blendv_epi8(y, b.lo, _mm256_cmpgt_epi64(b.lo, y));
  y = _mm256_blendv_epi8(y, b.hi, _mm256_cmpgt_epi64(y, b.hi));
  return _mm256_add_epi64(y, b.zero_point);
}

// The low bytes of two vectors of four int64 codes, as eight bytes in the low half of the result.
inline __m128i narrow8(__m256i lo, __m256i hi) {
  const __m256i gather = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
  const __m128i low32 = _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(lo, gather));
  const __m128i high32 = _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(hi, gather));
  const __m128i bytes = _mm_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
  return _mm_unpacklo_epi32(_mm_shuffle_epi8(low32, bytes), _mm_shuffle_epi8(high32, bytes));
}

// Eight int32 values (already offset) -> eight codes in the low half of the result.
inline __m128i requantize8(__m256i x, const Half64& lo, const Half64& hi, const Bounds64& b) {
  return narrow8(requantize4(_mm256_castsi256_si128(x), lo, b), requantize4(_mm256_extracti128_si256(x, 1), hi, b));
}

inline void store_bytes(uint8_t* out, __m128i v, int n) {
  if (n >= kLanes) {
    _mm_storel_epi64(reinterpret_cast<__m128i*>(out), v);
  } else {
    uint8_t buf[16];
    _mm_storeu_si128(reinterpret_cast<__m128i*>(buf), v);
    std::memcpy(out, buf, static_cast<size_t>(n));
  }
}

inline __m256i load_n(const int32_t* p, int n) {
  if (n >= kLanes) return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  return _mm256_maskload_epi32(p, mask);
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
  // Acts are the codes widened to int16: pairs of rows, sign- or zero-extended, interleaved.
  int64_t i = 0;
  for (; i + 16 <= n; i += 16, out += 32) {
    const __m128i b0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(rows[0] + i));
    const __m128i b1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(rows[1] + i));
    const __m256i w0 = codes_signed ? _mm256_cvtepi8_epi16(b0) : _mm256_cvtepu8_epi16(b0);
    const __m256i w1 = codes_signed ? _mm256_cvtepi8_epi16(b1) : _mm256_cvtepu8_epi16(b1);
    // unpack works within 128-bit halves: lo = values 0-3 and 8-11, hi = 4-7 and 12-15
    const __m256i lo = _mm256_unpacklo_epi16(w0, w1), hi = _mm256_unpackhi_epi16(w0, w1);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), _mm256_permute2x128_si256(lo, hi, 0x20));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 16), _mm256_permute2x128_si256(lo, hi, 0x31));
  }
  for (; i < n; ++i, out += 2)
    for (int e = 0; e < 2; ++e)
      out[e] = codes_signed ? int16_t{static_cast<int8_t>(rows[e][i])} : int16_t{rows[e][i]};
}

void requantize_per_column(const int32_t* acc, int64_t acc_stride, int rows, int n, const Requant& q, int64_t first,
                           uint8_t* out, int64_t out_stride) {
  const Bounds64 bounds(q);
  for (int i = 0; i < n; i += kLanes) {
    const int count = n - i;
    const __m256i offset = load_n(q.offset + first + i, count);
    const __m256i m = load_n(q.multiplier + first + i, count);
    // Lanes past n get rshift 1: any shift in [1, 62] keeps their (discarded) arithmetic defined.
    const __m256i s = _mm256_max_epi32(load_n(q.rshift + first + i, count), _mm256_set1_epi32(1));
    const Half64 lo = widen(_mm256_castsi256_si128(m), _mm256_castsi256_si128(s));
    const Half64 hi = widen(_mm256_extracti128_si256(m, 1), _mm256_extracti128_si256(s, 1));
    for (int r = 0; r < rows; ++r) {
      const __m256i x = _mm256_add_epi32(load_n(acc + r * acc_stride + i, count), offset);
      store_bytes(out + r * out_stride + i, requantize8(x, lo, hi, bounds), count);
    }
  }
}

void requantize_per_row(const int32_t* acc, int64_t acc_stride, int rows, int n, const Requant& q, int64_t first,
                        uint8_t* out, int64_t out_stride) {
  const Bounds64 bounds(q);
  for (int r = 0; r < rows; ++r) {
    const int64_t c = first + r;
    const Half64 p = widen(_mm_set1_epi32(q.multiplier[c]), _mm_set1_epi32(q.rshift[c]));
    const __m256i offset = _mm256_set1_epi32(q.offset[c]);
    for (int i = 0; i < n; i += kLanes) {
      const int count = n - i;
      const __m256i x = _mm256_add_epi32(load_n(acc + r * acc_stride + i, count), offset);
      store_bytes(out + r * out_stride + i, requantize8(x, p, p, bounds), count);
    }
  }
}

void row_range(const float* a, int64_t n, float* lo, float* hi) {
  __m256 l = _mm256_setzero_ps(), h = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    const __m256 v = _mm256_loadu_ps(a + i);
    l = _mm256_min_ps(l, v);
    h = _mm256_max_ps(h, v);
  }
  float lanes_lo[kLanes], lanes_hi[kLanes];
  _mm256_storeu_ps(lanes_lo, l);
  _mm256_storeu_ps(lanes_hi, h);
  float lo_all = 0.0f, hi_all = 0.0f;
  for (int j = 0; j < kLanes; ++j) {
    lo_all = std::min(lo_all, lanes_lo[j]);
    hi_all = std::max(hi_all, lanes_hi[j]);
  }
  for (; i < n; ++i) {
    lo_all = std::min(lo_all, a[i]);
    hi_all = std::max(hi_all, a[i]);
  }
  *lo = lo_all;
  *hi = hi_all;
}

void dequantize_int4_bytes(const uint8_t* packed, int64_t bytes, const float* scale, float* out) {
  const __m128i low4 = _mm_set1_epi8(0x0F), eight = _mm_set1_epi8(8);
  int64_t i = 0;
  for (; i + 16 <= bytes; i += 16) {
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(packed + i));
    const __m128i lo = _mm_and_si128(b, low4), hi = _mm_and_si128(_mm_srli_epi16(b, 4), low4);
    // Codes in order (low nibble first), sign-extended from 4 bits: (c ^ 8) - 8.
    const __m128i codes[2] = {_mm_sub_epi8(_mm_xor_si128(_mm_unpacklo_epi8(lo, hi), eight), eight),
                              _mm_sub_epi8(_mm_xor_si128(_mm_unpackhi_epi8(lo, hi), eight), eight)};
    for (int h = 0; h < 2; ++h) {
      float* o = out + 2 * i + 16 * h;
      const float* s = scale + 2 * i + 16 * h;
      const __m256 v0 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(codes[h]));
      const __m256 v1 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(codes[h], 8)));
      _mm256_storeu_ps(o, _mm256_mul_ps(v0, _mm256_loadu_ps(s)));
      _mm256_storeu_ps(o + 8, _mm256_mul_ps(v1, _mm256_loadu_ps(s + 8)));
    }
  }
  for (; i < bytes; ++i) {
    out[2 * i] = static_cast<float>(((packed[i] & 0xF) ^ 8) - 8) * scale[2 * i];
    out[2 * i + 1] = static_cast<float>(((packed[i] >> 4) ^ 8) - 8) * scale[2 * i + 1];
  }
}

}  // namespace qgemm
}  // namespace edgepack

#endif  // EDGEPACK_QGEMM_AVX2
