// The 2-D transpose under Transpose when the input's innermost axis becomes the output's second last,
// e.g. attention's K^T, [12, 128, 32] -> [12, 32, 128]: out[c * ld_out + r] = in[r * ld_in + c] for
// r < rows, c < cols. Copied element by element in output order, each output row reads a column of the
// input, one element per cache line; in tiles of 16 x 16 both sides read and write whole lines. One
// implementation per build, chosen at compile time like byte_map.h's: with AVX-512 a float-sized
// tile is transposed in registers (x86/transpose_avx512.cpp); elsewhere, and for other element sizes,
// transpose_tiles' loops. Both only move bits.
#pragma once

#include <algorithm>
#include <cstdint>

namespace edgepack {

constexpr int64_t kTransposeTile = 16;

// Tiles of kTransposeTile x kTransposeTile elements, so that the lines a tile reads and writes stay in L1.
template <class T> void transpose_tiles(const T* in, int64_t ld_in, T* out, int64_t ld_out, int64_t rows, int64_t cols) {
  for (int64_t r0 = 0; r0 < rows; r0 += kTransposeTile)
    for (int64_t c0 = 0; c0 < cols; c0 += kTransposeTile) {
      const int64_t r1 = std::min(rows, r0 + kTransposeTile), c1 = std::min(cols, c0 + kTransposeTile);
      for (int64_t c = c0; c < c1; ++c)
        for (int64_t r = r0; r < r1; ++r) out[c * ld_out + r] = in[r * ld_in + c];
    }
}

#if defined(__AVX512F__)
#define EDGEPACK_TRANSPOSE_AVX512 1  // native/kernels/x86/transpose_avx512.cpp
// 32-bit elements: whole 16 x 16 tiles in registers, the edges by transpose_tiles.
void x32_transpose__avx512(const uint32_t* in, int64_t ld_in, uint32_t* out, int64_t ld_out, int64_t rows,
                           int64_t cols);
#endif

// Floats, through the build's fastest transpose.
inline void transpose_floats(const float* in, int64_t ld_in, float* out, int64_t ld_out, int64_t rows, int64_t cols) {
#if defined(EDGEPACK_TRANSPOSE_AVX512)
  x32_transpose__avx512(reinterpret_cast<const uint32_t*>(in), ld_in, reinterpret_cast<uint32_t*>(out), ld_out, rows,
                        cols);
#else
  transpose_tiles(in, ld_in, out, ld_out, rows, cols);
#endif
}

}  // namespace edgepack
