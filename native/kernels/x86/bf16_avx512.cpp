// The bfloat16 GEMM of bf16.h for AVX-512 BF16: an 8 x 32 tile of float sums in 16 registers; per pair
// of k, two column loads, 8 broadcasts of a row's pair and 16 vdpbf16ps.
#include "kernels/ref/bf16.h"

#if defined(EDGEPACK_BF16_AVX512)

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>

#include "kernels/ref/transpose.h"
#include "kernels/x86/avx512.h"

namespace edgepack {
namespace bf16 {
namespace {

using avx512::first_lanes;
using avx512::first_words;

// 16 + 16 floats -> 32 bfloat16 in order (vcvtne2ps2bf16 rounds to nearest even).
inline __m512i convert(__m512 lo, __m512 hi) { return reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(hi, lo)); }

// acc + the pairwise products of x and y. Inline asm, as for vpdpbusd in qgemm_avx512vnni.cpp: the
// accumulator stays in its register across the loop.
inline __m512 dpbf16(__m512 acc, __m512i x, __m512i y) {
  asm("vdpbf16ps %2, %1, %0" : "+v"(acc) : "v"(x), "v"(y));
  return acc;
}

template <int kRows>
void tile(int64_t k_pairs, const uint16_t* a, int64_t lda, const uint16_t* b, float* c, int64_t ldc, int cols) {
  __m512 sum[kRows][2];
#pragma GCC unroll 8
  for (int r = 0; r < kRows; ++r) sum[r][0] = sum[r][1] = _mm512_setzero_ps();
  for (int64_t q = 0; q < k_pairs; ++q) {
    const __m512i b0 = _mm512_loadu_si512(b + q * 2 * kTileN), b1 = _mm512_loadu_si512(b + q * 2 * kTileN + 32);
#pragma GCC unroll 8
    for (int r = 0; r < kRows; ++r) {
      int32_t pair;
      std::memcpy(&pair, a + r * lda + 2 * q, sizeof(pair));
      const __m512i x = _mm512_set1_epi32(pair);
      sum[r][0] = dpbf16(sum[r][0], x, b0);
      sum[r][1] = dpbf16(sum[r][1], x, b1);
    }
  }
  const __mmask16 m0 = first_lanes(cols), m1 = first_lanes(cols - 16);
#pragma GCC unroll 8
  for (int r = 0; r < kRows; ++r) {
    _mm512_mask_storeu_ps(c + r * ldc, m0, sum[r][0]);
    _mm512_mask_storeu_ps(c + r * ldc + 16, m1, sum[r][1]);
  }
}

using TileFn = void (*)(int64_t, const uint16_t*, int64_t, const uint16_t*, float*, int64_t, int);
template <size_t... I>
constexpr std::array<TileFn, sizeof...(I)> make_tiles(std::index_sequence<I...>) {
  return {{&tile<static_cast<int>(I) + 1>...}};
}
constexpr auto kTiles = make_tiles(std::make_index_sequence<kTileM>{});  // [rows - 1]

}  // namespace

void pack_row(const float* src, int64_t n, uint16_t* dst) {
  const int64_t padded = 2 * pairs(n);
  for (int64_t i = 0; i < padded; i += 32) {
    const __m512 lo = _mm512_maskz_loadu_ps(first_lanes(n - i), src + i);
    const __m512 hi = _mm512_maskz_loadu_ps(first_lanes(n - i - 16), src + i + 16);
    _mm512_mask_storeu_epi16(dst + i, first_words(padded - i), convert(lo, hi));
  }
}

void pack_b(const float* src, int64_t rs, int64_t k, int64_t n, uint16_t* dst) {
  // word 2i of the result is bfloat16 i of the first row, word 2i + 1 that of the second
  alignas(64) static constexpr uint16_t kInterleave[32] = {0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23,
                                                           8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
  const __m512i interleave = _mm512_load_si512(kInterleave);
  const int64_t k_pairs = pairs(k);
  for (int64_t col0 = 0; col0 < n; col0 += kTileN) {
    for (int64_t q = 0; q < k_pairs; ++q, dst += 2 * kTileN) {
      const float* first = src + 2 * q * rs + col0;
      const float* second = 2 * q + 1 < k ? first + rs : nullptr;
      for (int h = 0; h < 2; ++h) {  // columns col0 + 16h .. + 15
        const __mmask16 m = first_lanes(n - col0 - 16 * h);
        const __m512 x = _mm512_maskz_loadu_ps(m, first + 16 * h);
        const __m512 y = second != nullptr ? _mm512_maskz_loadu_ps(m, second + 16 * h) : _mm512_setzero_ps();
        _mm512_storeu_si512(dst + 32 * h, _mm512_permutexvar_epi16(interleave, convert(x, y)));
      }
    }
  }
}

void pack_b_transposed(const float* src, int64_t col_stride, int64_t row_stride, int64_t k, int64_t n, uint16_t* dst) {
  const int64_t k_pairs = pairs(k);
  if (row_stride != 1) {  // rare layouts: element by element
    for (int64_t col0 = 0, panel = 0; col0 < n; col0 += kTileN, ++panel)
      for (int64_t q = 0; q < k_pairs; ++q)
        for (int64_t c = 0; c < kTileN; ++c)
          for (int64_t e = 0; e < 2; ++e) {
            const int64_t i = 2 * q + e, j = col0 + c;
            const float x = i < k && j < n ? round_bf16(src[i * row_stride + j * col_stride]) : 0.0f;
            uint32_t bits;
            std::memcpy(&bits, &x, sizeof(bits));
            dst[((panel * k_pairs + q) * kTileN + c) * 2 + e] = static_cast<uint16_t>(bits >> 16);
          }
    return;
  }
  constexpr int64_t kPairs = 16;  // pairs converted per column at a time: one vector
  auto* out = reinterpret_cast<uint32_t*>(dst);
  for (int64_t col0 = 0; col0 < n; col0 += kTileN, out += k_pairs * kTileN) {
    for (int64_t q0 = 0; q0 < k_pairs; q0 += kPairs) {
      alignas(64) uint32_t columns[kTileN][kPairs];  // column c's pairs q0.. (values 2 q0 ..)
      for (int64_t c = 0; c < kTileN; ++c) {
        __m512i pairs16 = _mm512_setzero_si512();
        if (col0 + c < n) {
          const float* x = src + (col0 + c) * col_stride + 2 * q0;
          const int64_t left = k - 2 * q0;
          pairs16 = convert(_mm512_maskz_loadu_ps(first_lanes(left), x), _mm512_maskz_loadu_ps(first_lanes(left - 16), x + 16));
        }
        _mm512_store_si512(columns[c], pairs16);
      }
      const int64_t count = std::min<int64_t>(kPairs, k_pairs - q0);
      x32_transpose__avx512(&columns[0][0], kPairs, out + q0 * kTileN, kTileN, kTileN, count);
    }
  }
}

void gemm(int64_t m, int64_t n, int64_t k, const uint16_t* a, int64_t lda, const uint16_t* b, float* c, int64_t ldc) {
  const int64_t k_pairs = pairs(k);
  for (int64_t col0 = 0; col0 < n; col0 += kTileN, b += k_pairs * 2 * kTileN) {
    const int cols = static_cast<int>(n - col0 < kTileN ? n - col0 : kTileN);
    for (int64_t row0 = 0; row0 < m; row0 += kTileM) {
      const int rows = static_cast<int>(m - row0 < kTileM ? m - row0 : kTileM);
      kTiles[rows - 1](k_pairs, a + row0 * lda, lda, b, c + row0 * ldc + col0, ldc, cols);
    }
  }
}

}  // namespace bf16
}  // namespace edgepack

#endif
