// The fp32 GEMM: ISA traits, one templated register-tiled micro-kernel, packing, and a BLIS-style
// blocked driver (see gemm.h for the packed layout).
//
// Loop nest of one thread's rectangle of C (panel = one kTileM rows of A or kTileN columns of B):
//   jc: kNcPanels B panels    (B block of kc x nc: L2/L3; B is packed here when this thread owns it)
//    pc: K in blocks of <= kKc (accumulating into C between blocks; bias/clamp on the last one)
//     ic: kMcPanels A panels  (A block of mc x kc: stays in L2 across the jr loop)
//      jr: one B panel        (B micro-panel of kc x kTileN: stays in L1 across the ir loop)
//       ir: one A panel       -> micro-kernel on a kTileM x kTileN tile of C
#include "kernels/ref/gemm.h"
#include "kernels/ref/kernel_util.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <string>
#include <type_traits>
#include <utility>

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#elif defined(__ARM_NEON) && defined(__aarch64__)
#include <arm_neon.h>
#endif

namespace edgepack {
namespace gemm {
namespace {

// ---- ISA traits: a vector of kWidth floats and the handful of operations the micro-kernel uses ----
#if defined(__AVX512F__)
struct Isa {
  using V = __m512;
  static constexpr int kWidth = 16;
  static constexpr const char* kName = "sgemm_8x32__avx512";
  static V zero() { return _mm512_setzero_ps(); }
  static V load(const float* p) { return _mm512_loadu_ps(p); }
  static V broadcast(const float* p) { return _mm512_set1_ps(*p); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
  // max/min return their second operand when either is NaN, so a NaN sum stays NaN (as in numpy).
  // The all-lanes masked forms sidestep GCC 12's false -Wmaybe-uninitialized on _mm512_max_ps.
  static V clamp(V x, V lo, V hi) {
    return _mm512_mask_min_ps(x, 0xFFFF, hi, _mm512_mask_max_ps(x, 0xFFFF, lo, x));
  }
  static V set1(float x) { return _mm512_set1_ps(x); }
  static __mmask16 mask(int n) { return static_cast<__mmask16>((1u << n) - 1u); }
  static V load_n(const float* p, int n) { return _mm512_maskz_loadu_ps(mask(n), p); }
  static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
  static void store_n(float* p, V v, int n) { _mm512_mask_storeu_ps(p, mask(n), v); }
};
#elif defined(__AVX2__) && defined(__FMA__)
struct Isa {
  using V = __m256;
  static constexpr int kWidth = 8;
  static constexpr const char* kName = "sgemm_6x16__avx2";
  static V zero() { return _mm256_setzero_ps(); }
  static V load(const float* p) { return _mm256_loadu_ps(p); }
  static V broadcast(const float* p) { return _mm256_broadcast_ss(p); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V add(V a, V b) { return _mm256_add_ps(a, b); }
  static V clamp(V x, V lo, V hi) { return _mm256_min_ps(hi, _mm256_max_ps(lo, x)); }
  static V set1(float x) { return _mm256_set1_ps(x); }
  static __m256i mask(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static V load_n(const float* p, int n) { return _mm256_maskload_ps(p, mask(n)); }
  static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  static void store_n(float* p, V v, int n) { _mm256_maskstore_ps(p, mask(n), v); }
};
#elif defined(__ARM_NEON) && defined(__aarch64__)
struct Isa {
  using V = float32x4_t;
  static constexpr int kWidth = 4;
  static constexpr const char* kName = "sgemm_8x8__neon";
  static V zero() { return vdupq_n_f32(0.0f); }
  static V load(const float* p) { return vld1q_f32(p); }
  static V broadcast(const float* p) { return vld1q_dup_f32(p); }
  static V fma(V a, V b, V c) { return vfmaq_f32(c, a, b); }
  static V add(V a, V b) { return vaddq_f32(a, b); }
  // fmax/fmin return NaN when either input is NaN, so a NaN sum stays NaN (as in numpy).
  static V clamp(V x, V lo, V hi) { return vminq_f32(hi, vmaxq_f32(lo, x)); }
  static V set1(float x) { return vdupq_n_f32(x); }
  // No masked loads: partial vectors go through a small buffer.
  static V load_n(const float* p, int n) {
    float buf[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    std::memcpy(buf, p, sizeof(float) * n);
    return vld1q_f32(buf);
  }
  static void store(float* p, V v) { vst1q_f32(p, v); }
  static void store_n(float* p, V v, int n) {
    float buf[4];
    vst1q_f32(buf, v);
    std::memcpy(p, buf, sizeof(float) * n);
  }
};
#else
// Portable: one float per "vector". The fully unrolled tile is plain scalar code that compilers
// vectorize for the target (e.g. SSE on baseline x86-64).
struct Isa {
  using V = float;
  static constexpr int kWidth = 1;
  static constexpr const char* kName = "sgemm_4x16__scalar";
  static V zero() { return 0.0f; }
  static V load(const float* p) { return *p; }
  static V broadcast(const float* p) { return *p; }
  static V fma(V a, V b, V c) { return a * b + c; }
  static V add(V a, V b) { return a + b; }
  // Comparisons written so that a NaN x fails both tests and passes through.
  static V clamp(V x, V lo, V hi) {
    x = x < lo ? lo : x;
    return x > hi ? hi : x;
  }
  static V set1(float x) { return x; }
  static V load_n(const float* p, int) { return *p; }
  static void store(float* p, V v) { *p = v; }
  static void store_n(float* p, V v, int) { *p = v; }
};
#endif

// The lanes set in `keep` of a vector, from / to consecutive floats at p (a cropped C: see Problem).
#if defined(__AVX512F__)
inline Isa::V load_kept(const float* p, uint32_t keep) {
  const __mmask16 k = static_cast<__mmask16>(keep);
  return _mm512_maskz_expand_ps(k, Isa::load_n(p, __builtin_popcount(keep)));
}
inline void store_kept(float* p, Isa::V v, uint32_t keep) {
  Isa::store_n(p, _mm512_maskz_compress_ps(static_cast<__mmask16>(keep), v), __builtin_popcount(keep));
}
#else
inline Isa::V load_kept(const float* p, uint32_t keep) {
  float lanes[Isa::kWidth] = {};
  for (int l = 0; l < Isa::kWidth; ++l)
    if (keep >> l & 1u) lanes[l] = *p++;
  return Isa::load(lanes);
}
inline void store_kept(float* p, Isa::V v, uint32_t keep) {
  float lanes[Isa::kWidth];
  Isa::store(lanes, v);
  for (int l = 0; l < Isa::kWidth; ++l)
    if (keep >> l & 1u) *p++ = lanes[l];
}
#endif

constexpr int kVecs = kTileN / Isa::kWidth;  // vectors across a B panel
static_assert(kVecs * Isa::kWidth == kTileN, "kTileN must be a whole number of vectors");

// ---- cache blocking (see the loop nest at the top) ----
// Tuned on Zen 5 (48 KiB L1d, 1 MiB L2); the measured optimum is flat around these values (K blocks of
// 384-512 beat 256 by a few percent on 3x3 convs, whose in-place B takes less L1 than packed panels,
// and on MatMuls, whose row-major A is read in place; fewer blocks also mean fewer passes over C).
constexpr int64_t kKc = 384;                   // B micro-panel of 384 x kTileN floats (48 KiB at 8x32), in L1
constexpr int64_t kMcPanels = 512 / kTileM;    // A block of 512 x 384 floats = 768 KiB, in L2
constexpr int64_t kNcPanels = 1024 / kTileN;   // B block of 384 x 1024 floats = 1.5 MiB, in L2/L3
// M*N*K (~2^21: about 10 us of work) below which waking another thread costs more than it saves.
constexpr double kSerialWork = 2.0e6;
// Floats of the shared operand that the calling thread packs itself rather than in a parallel pass
// (a pass costs a wake-up and a barrier; e.g. the one row of A of a classifier layer).
constexpr int64_t kInlinePackFloats = 32 * 1024;

// K is summed in even blocks (300 -> 150 + 150, not 256 + 44), so no block is too short to amortise
// its C traffic. There is one (empty) block when K == 0, so that C still gets the bias and clamp.
int64_t k_blocks(int64_t k) { return std::max<int64_t>(1, (k + kKc - 1) / kKc); }
int64_t k_begin(int64_t k, int64_t blocks, int64_t block) { return block * k / blocks; }

// What the micro-kernel does with its tile once the K block is summed.
struct Tile {
  float* c;
  int64_t ldc;
  int cols;           // valid columns, 1..kTileN
  bool accumulate;    // add the partial sums of earlier K blocks, already in C
  bool finish;        // last K block: add the bias and clamp
  const float* row_bias;  // this tile's first row, or null
  const float* col_bias;  // this tile's first column, or null
  const float* residual;  // the tile's first element in Epilogue::residual, or null
  int64_t ldr;
  float lo, hi;
  const int64_t* b_offsets;  // in-place B: the K block's row offsets
  int64_t lda;               // A read in place by rows: the row stride
  // A gathered in place: the tile's row offsets and the K block's column offsets (Operand::gathered)
  const int64_t* a_rows;
  const int64_t* a_k;
  // A cropped C (Problem::crop_grid > 0): c is the tile's first row; per vector, the lanes kept and
  // where in the row the first of them lands.
  bool cropped;
  uint32_t keep[kVecs];
  int64_t kept_at[kVecs];
  // A transposed C (Problem::transpose_c): c is the tile in `partial` (row-major), and the last K block
  // stores element (r, j) of the tile at out_t[j * ldt + r] instead.
  bool transposed;
  float* out_t;
  int64_t ldt;
};

using UKernel = void (*)(int64_t kc, const float* a, const float* b, const Tile& t);

// How the micro-kernel reads A: packed panels, rows in place (`a` is the tile's first row at the K
// block's first column, row r is t.lda floats further on), or gathered in place (element (r, k) at
// a + t.a_rows[r] + t.a_k[k]).
enum AForm { kPackedA, kRowsA, kGatheredA };

// The register-tiled micro-kernel: a kRows x (kV * kWidth) block of C held in registers across the
// K loop; each k step is kV panel loads of B, kRows broadcasts of A and kRows * kV FMAs. Edge tiles
// use the instantiation with just the rows and vectors they need. A partial last vector of a packed
// B is loaded whole (from the panel's zero padding) and only its stores are masked. A is read as kA
// says. With kInPlaceB, B is not packed: row k of the tile starts at b + b_offsets[k],
// and a partial last vector is a masked load, so no row is read past its last column.
template <int kRows, int kV, AForm kA, bool kInPlaceB>
void ukernel(int64_t kc, const float* a, const float* b, const Tile& t) {
  using V = Isa::V;
  constexpr int W = Isa::kWidth;
  V acc[kRows][kV];
#pragma GCC unroll 16
  for (int r = 0; r < kRows; ++r) {
#pragma GCC unroll 16
    for (int v = 0; v < kV; ++v) acc[r][v] = Isa::zero();
  }
  const int tail = t.cols - (kV - 1) * W;  // valid lanes of the last vector, 1..W
  const float* arow[kRows];
#pragma GCC unroll 16
  for (int r = 0; r < kRows; ++r) arow[r] = a + (kA == kGatheredA ? t.a_rows[r] : kA == kRowsA ? r * t.lda : r);
  // The K loop, for a B whose last vector is whole or not: one loop per case, so that the check is not
  // a branch in every k step (GCC does not unswitch it; attention's 32-deep tiles ran ~5 % slower).
  const auto k_loop = [&](auto whole_tail) {
    constexpr bool kWholeTail = decltype(whole_tail)::value;
    for (int64_t k = 0; k < kc; ++k) {
      const int64_t ak = kA == kGatheredA ? t.a_k[k] : kA == kRowsA ? k : k * kTileM;
      const float* brow = kInPlaceB ? b + t.b_offsets[k] : b + k * kTileN;
      V bv[kV];
#pragma GCC unroll 16
      for (int v = 0; v < kV; ++v)
        bv[v] = !kInPlaceB || v + 1 < kV || kWholeTail ? Isa::load(brow + v * W) : Isa::load_n(brow + v * W, tail);
#pragma GCC unroll 16
      for (int r = 0; r < kRows; ++r) {
        const V av = Isa::broadcast(arow[r] + ak);
#pragma GCC unroll 16
        for (int v = 0; v < kV; ++v) acc[r][v] = Isa::fma(av, bv[v], acc[r][v]);
      }
    }
  };
  if (!kInPlaceB || tail == W) {
    k_loop(std::true_type{});
  } else {
    k_loop(std::false_type{});
  }

  const V lo = Isa::set1(t.lo), hi = Isa::set1(t.hi);
  // The tile's epilogue, fully unrolled like the rest so that acc stays in registers; load_c / store_c
  // read and write vector v of a row of C: the whole vector (its last one masked to the tail), or the
  // kept lanes of a cropped C.
  const auto epilogue = [&](const auto& load_c, const auto& store_c) {
#pragma GCC unroll 16
    for (int r = 0; r < kRows; ++r) {
      float* crow = t.c + r * t.ldc;
      const V rb = t.row_bias != nullptr ? Isa::broadcast(t.row_bias + r) : Isa::zero();
#pragma GCC unroll 16
      for (int v = 0; v < kV; ++v) {
        const bool full = v + 1 < kV || tail == W;
        V x = acc[r][v];
        if (t.accumulate) x = Isa::add(x, load_c(crow, v, full));
        if (t.finish) {
          x = Isa::add(x, rb);
          if (t.col_bias != nullptr)
            x = Isa::add(x, full ? Isa::load(t.col_bias + v * W) : Isa::load_n(t.col_bias + v * W, tail));
          if (t.residual != nullptr) {
            const float* res = t.residual + r * t.ldr + v * W;
            x = Isa::add(x, full ? Isa::load(res) : Isa::load_n(res, tail));
          }
          x = Isa::clamp(x, lo, hi);
        }
        store_c(crow, r, v, full, x);
      }
    }
  };
  if (t.cropped) {
    epilogue([&](const float* crow, int v, bool) { return load_kept(crow + t.kept_at[v], t.keep[v]); },
             [&](float* crow, int, int v, bool, V x) { store_kept(crow + t.kept_at[v], x, t.keep[v]); });
  } else if (t.transposed && t.finish) {
    // Through a buffer: row r of the tile becomes column r of its kTileN rows of C.
    alignas(64) float tile[kRows][kV * W];
    epilogue([&](const float* crow, int v, bool) { return Isa::load(crow + v * W); },
             [&](float*, int r, int v, bool, V x) { Isa::store(&tile[r][v * W], x); });
    for (int j = 0; j < t.cols; ++j) {
      float* out = t.out_t + j * t.ldt;
#pragma GCC unroll 16
      for (int r = 0; r < kRows; ++r) out[r] = tile[r][j];
    }
  } else {
    epilogue([&](const float* crow, int v, bool full) {
               return full ? Isa::load(crow + v * W) : Isa::load_n(crow + v * W, tail);
             },
             [&](float* crow, int, int v, bool full, V x) {
               if (full) {
                 Isa::store(crow + v * W, x);
               } else {
                 Isa::store_n(crow + v * W, x, tail);
               }
             });
  }
}

// [rows - 1][vectors - 1], flattened, per operand form
template <AForm kA, bool kInPlaceB, size_t... I>
constexpr std::array<UKernel, sizeof...(I)> make_ukernels(std::index_sequence<I...>) {
  return {{&ukernel<static_cast<int>(I / kVecs) + 1, static_cast<int>(I % kVecs) + 1, kA, kInPlaceB>...}};
}
template <AForm kA, bool kInPlaceB>
constexpr std::array<UKernel, kTileM * kVecs> kUKernels =
    make_ukernels<kA, kInPlaceB>(std::make_index_sequence<kTileM * kVecs>{});

// A gathered A is only ever paired with a packed B (Conv's channels-last path), so that form has no
// in-place B instantiations.
const UKernel* ukernels_for(AForm a, bool in_place_b) {
  if (a == kGatheredA) return kUKernels<kGatheredA, false>.data();
  if (a == kRowsA) return in_place_b ? kUKernels<kRowsA, true>.data() : kUKernels<kRowsA, false>.data();
  return in_place_b ? kUKernels<kPackedA, true>.data() : kUKernels<kPackedA, false>.data();
}

void pack_operand_a(const Problem& p, int64_t first, int64_t end) {
  if (p.a.gather_rows != nullptr) {
    pack_a_gathered(p.a.src, p.a.gather_rows, p.a.gather_k, p.m, p.k, first, end, p.a.scratch);
  } else {
    pack_a(p.a.src, p.a.rs, p.a.cs, p.m, p.k, first, end, p.a.scratch);
  }
}

void pack_operand_b(const Problem& p, int64_t first, int64_t end) {
  const Operand& o = p.b;
  if (o.pack != nullptr) {
    o.pack(o.ctx, o.src, first, end, o.scratch);
  } else if (o.row_offsets != nullptr) {
    pack_b_rows(o.src, o.row_offsets, p.k, p.n, first, end, o.scratch);
  } else {
    pack_b(o.src, o.rs, o.cs, p.k, p.n, first, end, o.scratch);
  }
}

// The kept lanes of the `cols` columns from col0 of a cropped C, and where each vector's first lands.
void crop_tile(const Problem& p, int64_t col0, int cols, Tile* t) {
  int64_t x = col0 % p.crop_grid;  // column within its grid row
  const int64_t row_start = col0 / p.crop_grid * p.crop_keep;
  int64_t at = row_start + std::min(x, p.crop_keep);
  for (int v = 0, j = 0; v < kVecs; ++v) {
    uint32_t keep = 0;
    t->kept_at[v] = at;
    for (int l = 0; l < Isa::kWidth && j < cols; ++l, ++j) {
      if (x < p.crop_keep) {
        keep |= 1u << l;
        ++at;
      }
      if (++x == p.crop_grid) x = 0;
    }
    t->keep[v] = keep;
  }
}

// Computes the C tiles of A panels [ma, mb) x B panels [na, nb). With own_a / own_b the thread also
// packs those panels of A (all up front) / B (one jc block at a time, just before it is used).
void compute_rect(const Problem& p, int64_t ma, int64_t mb, int64_t na, int64_t nb, bool own_a, bool own_b) {
  if (own_a) pack_operand_a(p, ma, mb);
  const float* pa = p.a.panels();
  const float* pb = p.b.panels();
  const bool prepacked_a = p.a.packed != nullptr;
  const bool in_place_a = p.a.a_in_place(), gathered_a = p.a.a_gathered_in_place(), in_place_b = p.b.b_in_place();
  const UKernel* ukernels = ukernels_for(gathered_a ? kGatheredA : in_place_a ? kRowsA : kPackedA, in_place_b);
  const Epilogue& e = p.epilogue;
  const int64_t blocks = k_blocks(p.k), m_pad = panels_a(p.m) * kTileM;

  Tile t{};
  t.ldr = e.ldr;
  t.transposed = p.transpose_c;
  t.ldc = t.transposed ? p.n : p.ldc;  // a transposed C keeps its partial sums row-major
  t.ldt = p.ldc;
  t.lda = p.a.rs;
  t.lo = e.lo;
  t.hi = e.hi;
  for (int64_t jc = na; jc < nb; jc += kNcPanels) {
    const int64_t jc_end = std::min(jc + kNcPanels, nb);
    if (own_b) pack_operand_b(p, jc, jc_end);
    for (int64_t kb = 0; kb < blocks; ++kb) {
      const int64_t k0 = k_begin(p.k, blocks, kb), kc = k_begin(p.k, blocks, kb + 1) - k0;
      // this K block of every A panel: contiguous when packed, else columns [k0, k0 + kc) of the rows
      const float* a_block = in_place_a ? p.a.src + k0 : pa + k0 * m_pad;
      t.b_offsets = in_place_b ? p.b.row_offsets + k0 : nullptr;
      t.a_k = gathered_a ? p.a.gather_k + k0 : nullptr;
      t.accumulate = kb > 0;
      t.finish = kb + 1 == blocks;
      for (int64_t ic = ma; ic < mb; ic += kMcPanels) {
        const int64_t ic_end = std::min(ic + kMcPanels, mb);
        for (int64_t jr = jc; jr < jc_end; ++jr) {
          const int64_t col0 = jr * kTileN;
          const float* bp = in_place_b ? p.b.src + col0 : pb + jr * kTileN * p.k + k0 * kTileN;
          t.cols = static_cast<int>(std::min<int64_t>(kTileN, p.n - col0));
          t.col_bias = e.bias_kind == BiasKind::kPerColumn ? e.bias + col0 : nullptr;
          const int vecs = (t.cols + Isa::kWidth - 1) / Isa::kWidth;
          // A cropped C's tile whose columns all lie in one grid row before the dropped ones is stored
          // plainly at its place in that row: the lane-by-lane crop is a real share of a tile with a
          // short K (SqueezeNet's 3x3 stride-2 stem over RGB, K = 27: 236 -> 218 us on one thread).
          int64_t c_col = col0;
          t.cropped = p.crop_grid > 0 && col0 % p.crop_grid + t.cols > p.crop_keep;
          if (t.cropped) {
            crop_tile(p, col0, t.cols, &t);
          } else if (p.crop_grid > 0) {
            c_col = col0 / p.crop_grid * p.crop_keep + col0 % p.crop_grid;
          }
          for (int64_t ir = ic; ir < ic_end; ++ir) {
            const int64_t row0 = ir * kTileM;
            const int rows = static_cast<int>(std::min<int64_t>(kTileM, p.m - row0));
            if (t.transposed) {
              t.c = p.partial + row0 * p.n + col0;
              t.out_t = p.c + col0 * p.ldc + row0;
            } else {
              t.c = p.c + row0 * p.ldc + (t.cropped ? 0 : c_col);
            }
            t.residual = e.residual != nullptr ? e.residual + row0 * e.ldr + col0 : nullptr;
            t.row_bias = e.bias_kind == BiasKind::kPerRow ? e.bias + row0 : nullptr;
            const float* ap = gathered_a ? p.a.src : in_place_a ? a_block + row0 * p.a.rs : a_block + ir * kc * kTileM;
            t.a_rows = gathered_a ? p.a.gather_rows + row0 : nullptr;
            // Packed weights (a Conv's A) come from DRAM on every run: while the first B panel of the
            // block meets panel ir, the next panel is fetched, so the tile after it does not wait on
            // memory (ResNet-50 fp32 -2 %, SqueezeNet -2..4 %; later B panels find the block in L2).
            if (prepacked_a && jr == jc && ir + 1 < ic_end) {
              const char* next = reinterpret_cast<const char*>(a_block + (ir + 1) * kc * kTileM);
              for (int64_t line = 0; line < kc * kTileM * static_cast<int64_t>(sizeof(float)) / 64; ++line)
                __builtin_prefetch(next + line * 64, 0, 3);
            }
            ukernels[(rows - 1) * kVecs + (vecs - 1)](kc, ap, bp, t);
          }
        }
      }
    }
  }
}

}  // namespace

const char* ukernel_name() { return Isa::kName; }

int64_t ukernel_work(int64_t m, int64_t n) {
  // Two FMA pipes of 4 cycles latency keep 8 independent accumulators busy; a tile with fewer (rows
  // times kVecs) waits on its chains and takes about as long as one with 8.
  constexpr int64_t kBusyRows = std::max(1, 8 / kVecs);
  const int64_t rest = m % kTileM;
  const int64_t rows = m / kTileM * kTileM + (rest > 0 ? std::max(rest, kBusyRows) : 0);
  const int64_t vectors = n / kTileN * kVecs + (n % kTileN + Isa::kWidth - 1) / Isa::kWidth;
  return rows * vectors;
}

void pack_a(const float* src, int64_t rs, int64_t cs, int64_t rows, int64_t k, int64_t first, int64_t end,
            float* dst) {
  const int64_t blocks = k_blocks(k), m_pad = panels_a(rows) * kTileM;
  for (int64_t p = first; p < end; ++p) {
    const int64_t row0 = p * kTileM;
    const int valid = static_cast<int>(std::min<int64_t>(kTileM, rows - row0));
    const float* in = src + row0 * rs;
    for (int64_t kb = 0; kb < blocks; ++kb) {
      const int64_t k0 = k_begin(k, blocks, kb), k1 = k_begin(k, blocks, kb + 1);
      float* out = dst + k0 * m_pad + p * (k1 - k0) * kTileM;
      for (int64_t kk = k0; kk < k1; ++kk, out += kTileM) {
        for (int r = 0; r < valid; ++r) out[r] = in[r * rs + kk * cs];
        for (int r = valid; r < kTileM; ++r) out[r] = 0.0f;
      }
    }
  }
}

void pack_a_gathered(const float* src, const int64_t* row_offsets, const int64_t* k_offsets, int64_t rows, int64_t k,
                     int64_t first, int64_t end, float* dst) {
  const int64_t blocks = k_blocks(k), m_pad = panels_a(rows) * kTileM;
  for (int64_t p = first; p < end; ++p) {
    const int64_t row0 = p * kTileM;
    const int valid = static_cast<int>(std::min<int64_t>(kTileM, rows - row0));
    const int64_t* at = row_offsets + row0;
    // Pixels of one output row are adjacent in the input (stride 1): then each k is one short copy.
    const bool adjacent = valid == kTileM && at[kTileM - 1] - at[0] == kTileM - 1;
    for (int64_t kb = 0; kb < blocks; ++kb) {
      const int64_t k0 = k_begin(k, blocks, kb), k1 = k_begin(k, blocks, kb + 1);
      float* out = dst + k0 * m_pad + p * (k1 - k0) * kTileM;
      for (int64_t kk = k0; kk < k1; ++kk, out += kTileM) {
        const float* in = src + k_offsets[kk];
        if (adjacent) {
          std::memcpy(out, in + at[0], sizeof(float) * kTileM);
          continue;
        }
        for (int r = 0; r < valid; ++r) out[r] = in[at[r]];
        for (int r = valid; r < kTileM; ++r) out[r] = 0.0f;
      }
    }
  }
}

void pack_b(const float* src, int64_t rs, int64_t cs, int64_t k, int64_t cols, int64_t first, int64_t end,
            float* dst) {
  for (int64_t p = first; p < end; ++p) {
    float* out = dst + p * kTileN * k;
    const int64_t col0 = p * kTileN;
    const int valid = static_cast<int>(std::min<int64_t>(kTileN, cols - col0));
    const float* in = src + col0 * cs;
    for (int64_t kk = 0; kk < k; ++kk, out += kTileN) {
      const float* row = in + kk * rs;
      if (cs == 1 && valid == kTileN) {
        std::memcpy(out, row, sizeof(float) * kTileN);
        continue;
      }
      for (int j = 0; j < valid; ++j) out[j] = row[j * cs];
      for (int j = valid; j < kTileN; ++j) out[j] = 0.0f;
    }
  }
}

void pack_b_rows(const float* src, const int64_t* row_offsets, int64_t k, int64_t cols, int64_t first, int64_t end,
                 float* dst) {
  for (int64_t p = first; p < end; ++p) {
    float* out = dst + p * kTileN * k;
    const int64_t col0 = p * kTileN;
    const int valid = static_cast<int>(std::min<int64_t>(kTileN, cols - col0));
    if (valid == kTileN) {
      for (int64_t kk = 0; kk < k; ++kk, out += kTileN) std::memcpy(out, src + row_offsets[kk] + col0, sizeof(float) * kTileN);
      continue;
    }
    for (int64_t kk = 0; kk < k; ++kk, out += kTileN) {
      std::memcpy(out, src + row_offsets[kk] + col0, sizeof(float) * valid);
      std::fill(out + valid, out + kTileN, 0.0f);
    }
  }
}

void sgemm_serial(const Problem& p) {
  if (p.m <= 0 || p.n <= 0) return;
  compute_rect(p, 0, panels_a(p.m), 0, panels_b(p.n), p.a.needs_packing_a(), p.b.needs_packing_b());
}

void sgemm(const Problem& p, ThreadPool* pool) {
  if (p.m <= 0 || p.n <= 0) return;
  const int threads = pool != nullptr ? pool->num_threads() : 1;
  if (threads == 1 || static_cast<double>(p.m) * static_cast<double>(p.n) * std::max<int64_t>(p.k, 1) < kSerialWork) {
    sgemm_serial(p);
    return;
  }
  // Split the tile grid along M or N, whichever leaves the busiest thread the least work; when they
  // are close, along the larger operand, so that each thread streams only its share of it (e.g. the
  // 2048 x 512 weights of a 1x1 conv over 7x7 pixels, rather than all of them per thread). The operand
  // along the split is packed by its owner; the other one, needed by every thread, first.
  // A thread's work is counted in what the micro-kernel computes: the rows of its A panels times the
  // vectors of its B panels (a last panel of 9 columns is one vector, not two), over the chunks the
  // pool makes (equal panel counts, the first ones one larger).
  const int64_t pm = panels_a(p.m), pn = panels_b(p.n);
  const auto busiest = [threads](int64_t panels, const auto& size) {
    const int64_t chunks = std::min<int64_t>(threads, panels), base = panels / chunks, extra = panels % chunks;
    int64_t most = 0;
    for (int64_t c = 0, first = 0; c < chunks; ++c) {
      const int64_t end = first + base + (c < extra ? 1 : 0);
      int64_t work = 0;
      for (int64_t i = first; i < end; ++i) work += size(i);
      most = std::max(most, work);
      first = end;
    }
    return most;
  };
  const auto rows = [&p](int64_t i) { return std::min<int64_t>(kTileM, p.m - i * kTileM); };
  const auto vectors = [&p](int64_t j) { return (std::min<int64_t>(kTileN, p.n - j * kTileN) + Isa::kWidth - 1) / Isa::kWidth; };
  const int64_t cost_n = busiest(pn, vectors) * p.m;
  const int64_t cost_m = busiest(pm, rows) * ((pn - 1) * kVecs + vectors(pn - 1));
  // Along the larger operand unless the other split leaves the busiest thread at least 5% less work:
  // splitting the smaller one makes each thread stream all of the larger, and with in-place B fewer A
  // panels share each B micro-panel (the strided stem conv ran 2x slower split along M at a 0.1% gain).
  const bool larger_n = pn * kTileN > pm * kTileM;
  const bool split_n = larger_n ? !(cost_m * 20 < cost_n * 19) : cost_n * 20 < cost_m * 19;
  if (split_n) {
    if (p.a.needs_packing_a()) {
      if (packed_a_floats(p.m, p.k) <= kInlinePackFloats) {
        pack_operand_a(p, 0, pm);
      } else {
        pool->parallel_for(pm, [&](int64_t b, int64_t e) { pack_operand_a(p, b, e); });
      }
    }
    const bool own_b = p.b.needs_packing_b();
    pool->parallel_for(pn, [&](int64_t b, int64_t e) { compute_rect(p, 0, pm, b, e, false, own_b); });
  } else {
    if (p.b.needs_packing_b()) {
      if (packed_b_floats(p.k, p.n) <= kInlinePackFloats) {
        pack_operand_b(p, 0, pn);
      } else {
        pool->parallel_for(pn, [&](int64_t b, int64_t e) { pack_operand_b(p, b, e); });
      }
    }
    const bool own_a = p.a.needs_packing_a();
    pool->parallel_for(pm, [&](int64_t b, int64_t e) { compute_rect(p, b, e, 0, pn, own_a, false); });
  }
}

void sgemm_batch(int64_t count, ItemFn item, ThreadPool* pool) {
  if (count <= 0) return;
  const int threads = pool != nullptr ? pool->num_threads() : 1;
  // Whole items per thread when they divide evenly or are plentiful enough that the imbalance of
  // static chunks is small; otherwise split each item so both threads share every item.
  if (threads > 1 && count >= threads && (count % threads == 0 || count >= 4 * threads)) {
    pool->parallel_for(count, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        Problem p;
        item(i, &p);
        sgemm_serial(p);
      }
    });
    return;
  }
  for (int64_t i = 0; i < count; ++i) {
    Problem p;
    item(i, &p);
    sgemm(p, pool);
  }
}

Status read_activation(const OpInfo& op, AttrReader& attrs, Epilogue* epilogue) {
  const std::string act = attrs.str("activation");
  const float lo = attrs.f("act_min"), hi = attrs.f("act_max");
  EP_RETURN_IF_ERROR(attrs.status());
  const std::string where = "op '" + op.name + "' (" + op_name(op.code) + "): ";
  if (act == "none") {
    epilogue->lo = -std::numeric_limits<float>::infinity();
    epilogue->hi = std::numeric_limits<float>::infinity();
  } else if (act == "relu") {
    epilogue->lo = 0.0f;
    epilogue->hi = std::numeric_limits<float>::infinity();
  } else if (act == "clip") {
    // A NaN bound would make numpy's clip return NaN everywhere; no exporter means that.
    if (std::isnan(lo) || std::isnan(hi)) return InvalidArtifact(where + "clip bounds must not be NaN");
    epilogue->lo = lo;
    epilogue->hi = hi;
  } else {
    return Unsupported(where + "unknown fused activation '" + act + "' (expected none, relu or clip)");
  }
  return Status::Ok();
}

bool AlignedFloats::resize(int64_t count) {
  data_.reset();
  if (count <= 0) return true;
  // aligned_alloc wants a size that is a multiple of the alignment.
  const size_t bytes = (static_cast<size_t>(count) * sizeof(float) + 63) & ~static_cast<size_t>(63);
  data_.reset(static_cast<float*>(std::aligned_alloc(64, bytes)));
  return data_ != nullptr;
}

}  // namespace gemm
}  // namespace edgepack

namespace edgepack {
namespace gemm {

Status read_matmul(const OpInfo& op, const Tensor& a, const Tensor& b, const Tensor* bias, const Tensor& y,
                   MatMulShape* s, Epilogue* epilogue) {
  const std::string operands = "A " + a.shape_str() + " and B " + b.shape_str();
  if (a.rank < 2 || b.rank < 2)
    return bad(op, "inputs must have rank >= 2, got " + operands);
  s->m = a.dim(-2);
  s->k = a.dim(-1);
  s->n = b.dim(-1);
  if (b.dim(-2) != s->k) return bad(op, operands + " do not multiply");
  int64_t mk = 0, kn = 0;
  if (!checked_mul(s->m, s->k, &mk) || !checked_mul(s->k, s->n, &kn))
    return bad(op, operands + " are too large");

  s->batch_rank = std::max(a.rank, b.rank) - 2;
  std::vector<int64_t> out_shape(s->batch_rank);
  int64_t a_stride = 1, b_stride = 1, out_batch = 1;
  s->a_matrices = s->b_matrices = 1;
  for (int d = s->batch_rank - 1; d >= 0; --d) {
    const int ad = d - (s->batch_rank - (a.rank - 2)), bd = d - (s->batch_rank - (b.rank - 2));
    const int64_t da = ad >= 0 ? a.dims[ad] : 1, db = bd >= 0 ? b.dims[bd] : 1;
    if (da != db && da != 1 && db != 1) return bad(op, "batch dimensions of " + operands + " do not broadcast");
    out_shape[d] = s->batch_dims[d] = std::max(da, db);
    s->a_strides[d] = da == 1 ? 0 : a_stride;
    s->b_strides[d] = db == 1 ? 0 : b_stride;
    if (!checked_mul(s->a_matrices, da, &s->a_matrices) || !checked_mul(s->b_matrices, db, &s->b_matrices) ||
        !checked_mul(out_batch, s->batch_dims[d], &out_batch) || !checked_mul(a_stride, da, &a_stride) ||
        !checked_mul(b_stride, db, &b_stride))
      return bad(op, operands + " are too large");
  }
  int64_t elements = 0;
  if (!checked_mul(s->a_matrices, mk, &elements) || !checked_mul(s->b_matrices, kn, &elements))
    return bad(op, operands + " are too large");
  out_shape.push_back(s->m);
  out_shape.push_back(s->n);
  EP_RETURN_IF_ERROR(expect_shape(op, y, out_shape, "output"));

  s->folded = s->b_matrices == 1;
  s->count = s->folded ? 1 : out_batch;
  s->rows = s->m;
  if (s->folded && !checked_mul(s->a_matrices, s->m, &s->rows)) return bad(op, "A is too large");

  if (bias != nullptr) {
    EP_RETURN_IF_ERROR(expect_dtype(op, *bias, DType::kFloat32, "bias"));
    EP_RETURN_IF_ERROR(expect_shape(op, *bias, {s->n}, "bias"));
  }
  AttrReader attrs(op);
  EP_RETURN_IF_ERROR(read_activation(op, attrs, epilogue));
  epilogue->bias_kind = bias != nullptr ? BiasKind::kPerColumn : BiasKind::kNone;
  return Status::Ok();
}

}  // namespace gemm
}  // namespace edgepack
