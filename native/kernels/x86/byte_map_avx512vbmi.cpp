// The byte table lookup (byte_map.h) for AVX-512 VBMI: vpermi2b picks each of 64 bytes from 128 table
// bytes by the low 7 bits of its index, so two lookups (table halves [0, 128) and [128, 256)) and a
// blend on the index's top bit map 64 bytes.
#include "kernels/ref/byte_map.h"

#if defined(EDGEPACK_BYTE_MAP_AVX512VBMI)

#include <immintrin.h>

namespace edgepack {

void map_bytes(const uint8_t* table, const uint8_t* x, uint8_t* y, int64_t n) {
  const __m512i t0 = _mm512_loadu_si512(table), t1 = _mm512_loadu_si512(table + 64);
  const __m512i t2 = _mm512_loadu_si512(table + 128), t3 = _mm512_loadu_si512(table + 192);
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    const __m512i index = _mm512_loadu_si512(x + i);
    const __m512i low = _mm512_permutex2var_epi8(t0, index, t1);
    const __m512i high = _mm512_permutex2var_epi8(t2, index, t3);
    _mm512_storeu_si512(y + i, _mm512_mask_blend_epi8(_mm512_movepi8_mask(index), low, high));
  }
  for (; i < n; ++i) y[i] = table[x[i]];
}

}  // namespace edgepack

#endif
