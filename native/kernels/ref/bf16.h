// bfloat16 operands for Attention's two products (attr bf16: passes/attention_bf16.py). The op's definition
// (reference/ops.py) rounds Q, K, V and exp(scores - max) to bfloat16, nearest even, and sums the
// products in float. With AVX-512 BF16, vdpbf16ps multiplies pairs of bfloat16 values and adds both
// products to a float lane: 32 products an instruction, twice the float FMA's 16. Other builds round
// the operands to bfloat16 values kept as floats and multiply them with the float GEMM: every product
// of two bfloat16 values is exact in float, so both give the definition up to the order of float sums.
#pragma once

#include <cstdint>
#include <cstring>

namespace edgepack {

// x rounded to the nearest bfloat16 (ties to even), as a float; NaN stays NaN.
inline float round_bf16(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof(u));
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return x;
  u = (u + 0x7FFFu + ((u >> 16) & 1u)) & 0xFFFF0000u;
  std::memcpy(&x, &u, sizeof(x));
  return x;
}

#if defined(__AVX512BF16__) && defined(__AVX512BW__)
#define EDGEPACK_BF16_AVX512 1  // native/kernels/x86/bf16_avx512.cpp
namespace bf16 {

constexpr int kTileM = 8, kTileN = 32;  // the register tile: 8 rows x 32 float sums

inline int64_t pairs(int64_t k) { return (k + 1) / 2; }
// uint16 elements of a packed B of k x n: ceil(n / kTileN) panels of pairs(k) x kTileN x 2.
inline int64_t packed_b_elements(int64_t k, int64_t n) { return (n + kTileN - 1) / kTileN * pairs(k) * kTileN * 2; }

// `n` floats as bfloat16 (nearest even), then zeros up to 2 * pairs(n): a GEMM A row.
void pack_row(const float* src, int64_t n, uint16_t* dst);
// The k x n matrix whose row i is the n floats at src + i * rs, as a GEMM B: each panel of kTileN
// columns holds, per pair of rows (2q, 2q + 1), the columns' two values side by side; zero past k and n.
void pack_b(const float* src, int64_t rs, int64_t k, int64_t n, uint16_t* dst);
// pack_b for a B whose element (i, j) is src[i * row_stride + j * col_stride]: with row_stride 1 (K
// given as [T, D], each column's k values adjacent) a column's values are converted together and the
// pairs transposed into place; any other strides element by element.
void pack_b_transposed(const float* src, int64_t col_stride, int64_t row_stride, int64_t k, int64_t n, uint16_t* dst);
// C[m, n] = A[m, k] B[k, n] in float (C overwritten; row stride ldc): A's rows of 2 * pairs(k) values
// lda apart (pack_row), B from pack_b.
void gemm(int64_t m, int64_t n, int64_t k, const uint16_t* a, int64_t lda, const uint16_t* b, float* c, int64_t ldc);

}  // namespace bf16
#endif

}  // namespace edgepack
