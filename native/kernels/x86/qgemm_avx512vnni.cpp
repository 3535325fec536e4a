// The integer GEMM core (qgemm.h) for AVX-512 VNNI: vpdpbusd multiplies four unsigned activation bytes
// by four signed weight bytes and adds the sum to an int32 lane, 64 products per instruction.
#include "kernels/ref/qgemm.h"

#if defined(EDGEPACK_QGEMM_AVX512VNNI)

#include <immintrin.h>

#include <array>
#include <cstring>
#include <utility>

namespace edgepack {
namespace qgemm {
namespace {

constexpr int kLanes = 16;
constexpr int kVecs = kTileN / kLanes;  // vectors across a column panel
static_assert(kVecs * kLanes == kTileN, "kTileN must be a whole number of vectors");

// One k-group of a row (four bytes) in every lane.
inline __m512i broadcast_group(const void* p) {
  int32_t lanes;
  std::memcpy(&lanes, p, sizeof(lanes));
  return _mm512_set1_epi32(lanes);
}

// A kRows x kTileN tile of int32 sums held in kRows * 2 registers
// across the whole K; each k-group is two column loads, kRows broadcasts and kRows * 2 vpdpbusd.
// kActRows says which operand holds the (unsigned) activations: vpdpbusd takes them first.
template <int kRows, bool kActRows, bool kInPlace>
void qs8_gemm_8x32c4__avx512vnni(int64_t groups, const uint8_t* rows, const uint8_t* cols, const int64_t* col_offsets, int32_t* acc) {
  __m512i sum[kRows][kVecs];
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
        sum[r][v] = kActRows ? _mm512_dpbusd_epi32(sum[r][v], a, b[v]) : _mm512_dpbusd_epi32(sum[r][v], b[v], a);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < kRows; ++r) {
#pragma GCC unroll 4
    for (int v = 0; v < kVecs; ++v) _mm512_storeu_si512(acc + r * kTileN + v * kLanes, sum[r][v]);
  }
}

using TileFn = void (*)(int64_t, const uint8_t*, const uint8_t*, const int64_t*, int32_t*);

template <bool kActRows, bool kInPlace, size_t... I>
constexpr std::array<TileFn, sizeof...(I)> make_tiles(std::index_sequence<I...>) {
  return {{&qs8_gemm_8x32c4__avx512vnni<static_cast<int>(I) + 1, kActRows, kInPlace>...}};
}
// [rows - 1]
constexpr auto kActRowTiles = make_tiles<true, false>(std::make_index_sequence<kTileM>{});
constexpr auto kActColTiles = make_tiles<false, false>(std::make_index_sequence<kTileM>{});
constexpr auto kActColInPlaceTiles = make_tiles<false, true>(std::make_index_sequence<kTileM>{});

// Per-lane requantization parameters, widened to int64 for one half (8 lanes) of a vector.
struct Half64 {
  __m512i multiplier, rshift, rounding;
};

inline Half64 widen(__m256i multiplier, __m256i rshift) {
  const __m512i shift = _mm512_cvtepi32_epi64(rshift);
  return {_mm512_cvtepi32_epi64(multiplier), shift,
          _mm512_sllv_epi64(_mm512_set1_epi64(1), _mm512_sub_epi64(shift, _mm512_set1_epi64(1)))};
}

// The clamp relative to the zero point, so it runs on the int64 result before it is narrowed.
struct Bounds64 {
  __m512i zero_point, lo, hi;
  explicit Bounds64(const OutputRange& r)
      : zero_point(_mm512_set1_epi64(r.zero_point)),
        lo(_mm512_set1_epi64(int64_t{r.lo} - r.zero_point)),
        hi(_mm512_set1_epi64(int64_t{r.hi} - r.zero_point)) {}
};

// Eight int32 values (already offset) -> eight output bytes in the low half of the result.
inline __m128i requantize8(__m256i x, const Half64& p, const Bounds64& b) {
  // vpmuldq multiplies the sign-extended low halves of the 64-bit lanes: exact 32 x 32 -> 64 bits.
  const __m512i product = _mm512_mul_epi32(_mm512_cvtepi32_epi64(x), p.multiplier);
  __m512i y = _mm512_srav_epi64(_mm512_add_epi64(product, p.rounding), p.rshift);
  y = _mm512_min_epi64(_mm512_max_epi64(y, b.lo), b.hi);
  return _mm512_cvtepi64_epi8(_mm512_add_epi64(y, b.zero_point));
}

inline __mmask16 first_lanes(int n) { return n >= kLanes ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1u); }

}  // namespace

const char* ukernel_name() { return "qs8_gemm_8x32c4__avx512vnni"; }

void tile_act_rows(int rows, int64_t groups, const Act* a_rows, const Wgt* w_cols, int32_t* acc) {
  kActRowTiles[rows - 1](groups, a_rows, reinterpret_cast<const uint8_t*>(w_cols), nullptr, acc);
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

void requantize_columns(const int32_t* acc, int n, const int32_t* offset, const int32_t* multiplier,
                        const int32_t* rshift, OutputRange range, uint8_t* out) {
  const Bounds64 bounds(range);
  for (int i = 0; i < n; i += kLanes) {
    const __mmask16 mask = first_lanes(n - i);
    const __m512i x = _mm512_add_epi32(_mm512_maskz_loadu_epi32(mask, acc + i), _mm512_maskz_loadu_epi32(mask, offset + i));
    const __m512i m = _mm512_maskz_loadu_epi32(mask, multiplier + i);
    const __m512i s = _mm512_maskz_loadu_epi32(mask, rshift + i);
    const __m128i lo = requantize8(_mm512_castsi512_si256(x),
                                   widen(_mm512_castsi512_si256(m), _mm512_castsi512_si256(s)), bounds);
    const __m128i hi = requantize8(_mm512_extracti64x4_epi64(x, 1),
                                   widen(_mm512_extracti64x4_epi64(m, 1), _mm512_extracti64x4_epi64(s, 1)), bounds);
    _mm_mask_storeu_epi8(out + i, mask, _mm_unpacklo_epi64(lo, hi));
  }
}

void requantize_channel(const int32_t* acc, int n, int32_t offset, int32_t multiplier, int32_t rshift,
                        OutputRange range, uint8_t* out) {
  const Bounds64 bounds(range);
  const Half64 params = widen(_mm256_set1_epi32(multiplier), _mm256_set1_epi32(rshift));
  const __m512i off = _mm512_set1_epi32(offset);
  for (int i = 0; i < n; i += kLanes) {
    const __mmask16 mask = first_lanes(n - i);
    const __m512i x = _mm512_add_epi32(_mm512_maskz_loadu_epi32(mask, acc + i), off);
    const __m128i lo = requantize8(_mm512_castsi512_si256(x), params, bounds);
    const __m128i hi = requantize8(_mm512_extracti64x4_epi64(x, 1), params, bounds);
    _mm_mask_storeu_epi8(out + i, mask, _mm_unpacklo_epi64(lo, hi));
  }
}

}  // namespace qgemm
}  // namespace edgepack

#endif  // EDGEPACK_QGEMM_AVX512VNNI
