// The row loops of the float ops that take most of a transformer encoder's time after its MatMuls:
// erf Gelu, Softmax / LogSoftmax along a contiguous axis, LayerNormalization. One implementation per
// build, chosen at compile time like byte_map.h's: with AVX-512 the ops call the explicit 16-lane
// kernels declared here; elsewhere their portable, auto-vectorised loops (elementwise.cpp,
// normalization.cpp). Auto-vectorised, these were 2-4x slower: the compiler keeps the selects of a
// branch-free exp as mask operations, cannot look polynomial coefficients up per lane, and widens
// every element to double for sums.
#pragma once

#include <cstdint>

namespace edgepack {

#if defined(__AVX512F__) && defined(__AVX512DQ__)
#define EDGEPACK_FLOAT_ROWS_AVX512 1  // native/kernels/x86/float_rows_avx512.cpp

// y = x * Phi(x) (Gelu with approximate = "none") for n values; the rows form: `rows` rows of n values,
// row r at x + r * ld (and y + r * ld).
void f32_gelu_erf__avx512(const float* x, float* y, int64_t n);
void f32_gelu_erf_rows__avx512(const float* x, float* y, int64_t rows, int64_t n, int64_t ld);

// Softmax (log: LogSoftmax) of each of `rows` contiguous rows of n values. With a bias (Softmax
// only), row r is x's row plus the n values at bias + bias_offsets[r]; nan_to_zero writes 0 for NaN.
void f32_softmax_rows__avx512(const float* x, const float* bias, const int64_t* bias_offsets, float* y,
                              int64_t rows, int64_t n, bool log, bool nan_to_zero);

// The Softmax above without its last pass: y = exp(row (+ bias) - the row's max), and inverse_sums[r]
// = 1 / the sum of row r of y, which the caller applies where it is cheaper (Attention: to P V's rows).
void f32_softmax_exp_rows__avx512(const float* x, const float* bias, const int64_t* bias_offsets, float* y,
                                  int64_t rows, int64_t n, float* inverse_sums);

// (x - mean) / sqrt(variance + epsilon) * scale (+ bias, when not null) over each of `rows` contiguous
// rows of n values; with a residual (not null, x's layout), x + residual in float32 is normalised (the
// sum is stored in y first: y may not overlap x or residual then).
void f32_layer_norm_rows__avx512(const float* x, const float* residual, const float* scale, const float* bias,
                                 float* y, int64_t rows, int64_t n, float epsilon);
#endif

// Gelu (approximate = "none") in place on `rows` rows of n values, row r at y + r * ld: the kernel above
// where the build has it, else the portable loop (elementwise.cpp). A dynamic int8 MatMul applies it to
// its output tiles.
void gelu_erf_rows(float* y, int64_t rows, int64_t n, int64_t ld);

// Softmax (log: LogSoftmax) of each of `rows` contiguous rows of n values, with an optional bias as
// above: the kernel above where the build has it, else the portable loop (normalization.cpp).
void softmax_rows(const float* x, const float* bias, const int64_t* bias_offsets, float* y, int64_t rows, int64_t n,
                  bool log, bool nan_to_zero);
// The same with the normalisation left to the caller (f32_softmax_exp_rows__avx512 where the build has it).
void softmax_exp_rows(const float* x, const float* bias, const int64_t* bias_offsets, float* y, int64_t rows,
                      int64_t n, float* inverse_sums);

}  // namespace edgepack
