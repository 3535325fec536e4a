// y[i] = table[x[i]] over bytes: the inner loop of Requantize and Lut (quantization.cpp), which
// tabulate their 256 possible results at load. One implementation per build, chosen at compile time
// like qgemm.h's: a lone byte table lookup per element does not vectorise, while AVX-512 VBMI's
// vpermi2b looks 64 bytes up at once.
#pragma once

#include <cstdint>

namespace edgepack {

#if defined(__AVX512VBMI__) && defined(__AVX512BW__)
#define EDGEPACK_BYTE_MAP_AVX512VBMI 1  // native/kernels/x86/byte_map_avx512vbmi.cpp
void map_bytes(const uint8_t* table, const uint8_t* x, uint8_t* y, int64_t n);
#else
inline void map_bytes(const uint8_t* table, const uint8_t* x, uint8_t* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = table[x[i]];
}
#endif

}  // namespace edgepack
