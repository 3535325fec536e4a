// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320: the one of zlib.crc32), which the loader
// computes over every section of an artifact. At load it is the one pass over all the weights, so
// it has to run near memory speed, not at the ~0.5 GB/s of a byte-at-a-time table (190 ms of the
// 250 ms it took to load ResNet-50):
//   x86 with PCLMULQDQ: carry-less multiply folding (Gopal et al., "Fast CRC Computation for Generic
//     Polynomials Using PCLMULQDQ Instruction", Intel 2009), four 128-bit lanes of 64 bytes a step,
//     then Barrett reduction; the constants are the bit-reflected ones of that paper for 0x04C11DB7
//     (as in zlib / Chromium's crc32_simd.c);
//   AArch64 with the CRC extension: the crc32x/crc32b instructions (same polynomial);
//   elsewhere: slicing-by-8 tables.
// tests/test_artifact.py checks all of them against zlib.crc32 over lengths and alignments.
#include <cstring>

#include "edgepack/runtime.h"

#if defined(__PCLMUL__) && defined(__SSE4_1__)
#include <immintrin.h>
#define EDGEPACK_CRC_PCLMUL 1
#elif defined(__aarch64__) && defined(__ARM_FEATURE_CRC32)
#include <arm_acle.h>
#define EDGEPACK_CRC_ARM 1
#endif

namespace edgepack {
namespace {

// t[j][b]: the CRC contribution of byte b followed by j zero bytes.
struct SliceTables {
  uint32_t t[8][256];
  SliceTables() {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; ++i)
      for (int j = 1; j < 8; ++j) t[j][i] = t[0][t[j - 1][i] & 0xFF] ^ (t[j - 1][i] >> 8);
  }
};

const SliceTables& tables() {
  static const SliceTables instance;
  return instance;
}

// `crc` is the running register (already inverted by the caller).
uint32_t crc_bytes(const uint8_t* p, size_t n, uint32_t crc) {
  const auto& t = tables().t;
  for (size_t i = 0; i < n; ++i) crc = t[0][(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
  return crc;
}

uint32_t crc_slice8(const uint8_t* p, size_t n, uint32_t crc) {
  const auto& t = tables().t;
  for (; n >= 8; p += 8, n -= 8) {
    uint32_t lo, hi;
    std::memcpy(&lo, p, 4);
    std::memcpy(&hi, p + 4, 4);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    lo = __builtin_bswap32(lo);
    hi = __builtin_bswap32(hi);
#endif
    lo ^= crc;
    crc = t[7][lo & 0xFF] ^ t[6][(lo >> 8) & 0xFF] ^ t[5][(lo >> 16) & 0xFF] ^ t[4][lo >> 24] ^
          t[3][hi & 0xFF] ^ t[2][(hi >> 8) & 0xFF] ^ t[1][(hi >> 16) & 0xFF] ^ t[0][hi >> 24];
  }
  return crc_bytes(p, n, crc);
}

#if defined(EDGEPACK_CRC_PCLMUL)
// n >= 64 and a multiple of 16; `crc` is the running register.
uint32_t crc_pclmul(const uint8_t* buf, size_t n, uint32_t crc) {
  alignas(16) static const uint64_t k1k2[] = {0x0154442bd4, 0x01c6e41596};
  alignas(16) static const uint64_t k3k4[] = {0x01751997d0, 0x00ccaa009e};
  alignas(16) static const uint64_t k5k0[] = {0x0163cd6124, 0x0000000000};
  alignas(16) static const uint64_t poly[] = {0x01db710641, 0x01f7011641};
  auto load = [](const uint8_t* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); };
  // x * k folded onto the next 128 bits: the low half times k's low, the high half times k's high.
  auto fold = [](__m128i x, __m128i k, __m128i next) {
    return _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x, k, 0x00), _mm_clmulepi64_si128(x, k, 0x11)), next);
  };

  __m128i x1 = _mm_xor_si128(load(buf), _mm_cvtsi32_si128(static_cast<int>(crc)));
  __m128i x2 = load(buf + 16), x3 = load(buf + 32), x4 = load(buf + 48);
  buf += 64;
  n -= 64;
  __m128i k = _mm_load_si128(reinterpret_cast<const __m128i*>(k1k2));
  for (; n >= 64; buf += 64, n -= 64) {
    x1 = fold(x1, k, load(buf));
    x2 = fold(x2, k, load(buf + 16));
    x3 = fold(x3, k, load(buf + 32));
    x4 = fold(x4, k, load(buf + 48));
  }
  k = _mm_load_si128(reinterpret_cast<const __m128i*>(k3k4));
  x1 = fold(x1, k, x2);
  x1 = fold(x1, k, x3);
  x1 = fold(x1, k, x4);
  for (; n >= 16; buf += 16, n -= 16) x1 = fold(x1, k, load(buf));

  // 128 -> 64 bits
  const __m128i mask32 = _mm_setr_epi32(~0, 0, ~0, 0);
  x2 = _mm_clmulepi64_si128(x1, k, 0x10);
  x1 = _mm_xor_si128(_mm_srli_si128(x1, 8), x2);
  k = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(k5k0));
  x2 = _mm_srli_si128(x1, 4);
  x1 = _mm_xor_si128(_mm_clmulepi64_si128(_mm_and_si128(x1, mask32), k, 0x00), x2);
  // Barrett reduction to 32 bits
  k = _mm_load_si128(reinterpret_cast<const __m128i*>(poly));
  x2 = _mm_clmulepi64_si128(_mm_and_si128(x1, mask32), k, 0x10);
  x2 = _mm_clmulepi64_si128(_mm_and_si128(x2, mask32), k, 0x00);
  x1 = _mm_xor_si128(x1, x2);
  return static_cast<uint32_t>(_mm_extract_epi32(x1, 1));
}
#endif

}  // namespace

uint32_t crc32(const uint8_t* data, size_t size, uint32_t crc) {
  crc = ~crc;
#if defined(EDGEPACK_CRC_PCLMUL)
  if (size >= 64) {
    const size_t bulk = size & ~size_t{15};
    crc = crc_pclmul(data, bulk, crc);
    data += bulk;
    size -= bulk;
  }
  crc = crc_bytes(data, size, crc);
#elif defined(EDGEPACK_CRC_ARM)
  for (; size >= 8; data += 8, size -= 8) {
    uint64_t v;
    std::memcpy(&v, data, 8);
    crc = __crc32d(crc, v);
  }
  for (; size > 0; ++data, --size) crc = __crc32b(crc, *data);
#else
  crc = crc_slice8(data, size, crc);
#endif
  return ~crc;
}

// The portable path, for tests on builds that use another one.
uint32_t crc32_portable(const uint8_t* data, size_t size, uint32_t crc) { return ~crc_slice8(data, size, ~crc); }

}  // namespace edgepack
