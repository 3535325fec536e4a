// What the AVX-512 kernels share: <immintrin.h> without GCC 12.2's false warnings, and lane masks.
#pragma once

#include <cstdint>

// GCC 12.2's AVX-512 intrinsics (max, min, unpacks, extracts, ...) pass _mm512_undefined_*(), a
// self-initialised variable, which -Wall reports wherever they are inlined (GCC bug 105593, fixed in 12.3).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

namespace edgepack {
namespace avx512 {

// Lanes [0, n) of a 16-lane vector, for any n: none when n <= 0, all when n >= 16.
inline __mmask16 first_lanes(int64_t n) {
  return n >= 16 ? __mmask16(0xFFFF) : n <= 0 ? __mmask16(0) : static_cast<__mmask16>((1u << n) - 1u);
}

// Words [0, n) of a vector of 32 16-bit words, for any n.
inline __mmask32 first_words(int64_t n) {
  return n >= 32 ? __mmask32(0xFFFFFFFFu) : n <= 0 ? __mmask32(0) : static_cast<__mmask32>((1u << n) - 1u);
}

}  // namespace avx512
}  // namespace edgepack
