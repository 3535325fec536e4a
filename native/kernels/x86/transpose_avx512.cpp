// The 32-bit transpose of transpose.h for AVX-512: a 16 x 16 tile is 16 row loads, four rounds of 16
// shuffles (32-bit and 64-bit interleaves within 128-bit lanes, then two rounds of 128-bit lane
// shuffles) and 16 row stores.
#include "kernels/ref/transpose.h"

#if defined(EDGEPACK_TRANSPOSE_AVX512)

#include "kernels/x86/avx512.h"

namespace edgepack {
namespace {

// out row c = in column c of one 16 x 16 tile.
inline void transpose_16x16(const uint32_t* in, int64_t ld_in, uint32_t* out, int64_t ld_out) {
  __m512i r[16], t[16];
  for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_si512(in + i * ld_in);
  // per 128-bit lane l: t[2k] = rows 2k, 2k+1 at columns 4l, 4l+1; t[2k+1] at 4l+2, 4l+3
  for (int k = 0; k < 8; ++k) {
    t[2 * k] = _mm512_unpacklo_epi32(r[2 * k], r[2 * k + 1]);
    t[2 * k + 1] = _mm512_unpackhi_epi32(r[2 * k], r[2 * k + 1]);
  }
  // r[4q + j] = column 4l + j of rows 4q..4q+3, in lane l
  for (int q = 0; q < 4; ++q) {
    r[4 * q] = _mm512_unpacklo_epi64(t[4 * q], t[4 * q + 2]);
    r[4 * q + 1] = _mm512_unpackhi_epi64(t[4 * q], t[4 * q + 2]);
    r[4 * q + 2] = _mm512_unpacklo_epi64(t[4 * q + 1], t[4 * q + 3]);
    r[4 * q + 3] = _mm512_unpackhi_epi64(t[4 * q + 1], t[4 * q + 3]);
  }
  // 0x88 takes lanes 0 and 2 of each operand, 0xdd lanes 1 and 3
  for (int h = 0; h < 2; ++h)
    for (int j = 0; j < 4; ++j) {
      t[8 * h + j] = _mm512_shuffle_i32x4(r[8 * h + j], r[8 * h + 4 + j], 0x88);
      t[8 * h + 4 + j] = _mm512_shuffle_i32x4(r[8 * h + j], r[8 * h + 4 + j], 0xdd);
    }
  for (int j = 0; j < 8; ++j) {
    r[j] = _mm512_shuffle_i32x4(t[j], t[8 + j], 0x88);
    r[8 + j] = _mm512_shuffle_i32x4(t[j], t[8 + j], 0xdd);
  }
  for (int c = 0; c < 16; ++c) _mm512_storeu_si512(out + c * ld_out, r[c]);
}

}  // namespace

void x32_transpose__avx512(const uint32_t* in, int64_t ld_in, uint32_t* out, int64_t ld_out, int64_t rows,
                           int64_t cols) {
  const int64_t full_rows = rows - rows % 16, full_cols = cols - cols % 16;
  for (int64_t c0 = 0; c0 < full_cols; c0 += 16)
    for (int64_t r0 = 0; r0 < full_rows; r0 += 16)
      transpose_16x16(in + r0 * ld_in + c0, ld_in, out + c0 * ld_out + r0, ld_out);
  if (full_rows < rows)  // the last rows, across the full columns
    transpose_tiles(in + full_rows * ld_in, ld_in, out + full_rows, ld_out, rows - full_rows, full_cols);
  if (full_cols < cols)  // the last columns, across all rows
    transpose_tiles(in + full_cols, ld_in, out + full_cols * ld_out, ld_out, rows, cols - full_cols);
}

}  // namespace edgepack

#endif
