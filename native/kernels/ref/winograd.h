// Winograd F(2x2, 3x3) for float Conv: a 3x3, stride-1, undilated, one-group convolution computed as
// 16 GEMMs over 2x2 output tiles, 2.25 times fewer multiplications than the direct GEMM (Lavin & Gray,
// "Fast Algorithms for Convolutional Neural Networks", 2015).
//
// Each 2x2 output tile reads a 4x4 patch d of the padded input; per input channel c and output
// channel k, with cross-correlation (ONNX Conv):
//   Y = A^T [ U ⊙ V ] A,   U = G g G^T (the weights, 4x4 per (c, k)),   V = B^T d B (4x4 per (tile, c))
//   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1],  G = [1 0 0; ½ ½ ½; ½ -½ ½; 0 0 1],  A^T = [1 1 1 0; 0 1 -1 -1]
// Summing over c, each of the 16 positions ξ of the 4x4 product is one GEMM:
//   M_ξ[tiles, K] = V_ξ[tiles, C] · U_ξ[C, K]
// U is computed at the start of every run, from the weights as kept since prepare() (reordered, the
// same size), into scratch as 16 packed GEMM B operands: keeping U instead would hold 16/9 of the
// weights in memory and read that much from DRAM per run, where a model's weights do not stay in
// cache (ResNet-50's 256-channel 3x3 convs: 528 us with U kept, 440 us with U made per run, 530 us
// direct). V_ξ is written by the input transform as row-major rows of C floats that the micro-kernel
// reads in place.
//
// The work is cut into items of R tile rows (2R output rows) times a range of output channels, each
// done by one thread from start to end in its own slot of scratch, so that the transformed input
// (16 x tiles x C), the GEMM sums (16 x tiles x K range) and the output rows stay in L2:
//   1. the 2R + 2 padded input rows the item reads, copied channels-last (a transpose per row; a plain
//      copy when the conv's input is NHWC already, with channels_last);
//   2. the input transform (adds and subtracts only, 16 channels per vector);
//   3. the 16 GEMMs, through the float GEMM's micro-kernel (gemm.h);
//   4. the output transform with bias and the fused clamp, into channels-last output rows, which are
//      transposed into the NCHW output (copied into the NHWC one with channels_last).
// R and the channel split are chosen per run for the pool's thread count (plan()).
//
// Error: the input and output transforms only add and subtract, and U's only other operation is
// halving, so results differ from the direct GEMM by a few float roundings of the transformed values
// (within the float kernels' tolerance against the float64 reference: rtol 1e-4, atol 1e-5).
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "edgepack/thread_pool.h"
#include "kernels/ref/conv_geometry.h"
#include "kernels/ref/gemm.h"
#include "kernels/ref/transpose.h"

namespace edgepack {

class WinogradPlan {
 public:
  static constexpr int64_t kSlots = 8;             // scratch slots: at most this many threads share the op
  static constexpr int64_t kSlotFloats = 1 << 19;  // the largest slot (2 MB)
  static constexpr int64_t kL2Floats = 1 << 18;    // a slot past this (1 MB, one core's L2 here) spills to L3
  // Fewer tiles reuse each U value too little to pay for making it (ResNet's 7x7 stage, 16 tiles:
  // 1.05 x the direct GEMM's time).
  static constexpr int64_t kMinTiles = 32;

  // Whether F(2x2, 3x3) applies to `g` (shape only).
  static bool applies(const ConvGeometry& g) {
    return g.group == 1 && g.kh == 3 && g.kw == 3 && g.sh == 1 && g.sw == 1 && g.dh == 1 && g.dw == 1 &&
           g.oh >= 2 && g.ow >= 2;
  }

  // Plans `g` and reports whether it pays: the micro-kernel work of the 16 GEMMs plus the transforms,
  // against `direct_work`, the work of the GEMM the conv would otherwise run (in the same units:
  // vector FMAs, gemm::ukernel_work times K). False when it does not pay or the sizes do not fit a slot.
  bool prepare(const ConvGeometry& g, int64_t direct_work) {
    g_ = g;
    th_ = (g.oh + 1) / 2;
    tw_ = (g.ow + 1) / 2;
    cp_ = 2 * tw_ + 2;
    k_panels_ = gemm::panels_b(g.m);
    if (slot_floats(1, std::min<int64_t>(g.m, gemm::kTileN)) > kSlotFloats || th_ * tw_ < kMinTiles) return false;
    // The weight transform: about 90 instructions per input channel and B panel.
    const int64_t work = 16 * g.c * gemm::ukernel_work(th_ * tw_, g.m) + transform_work(th_ * tw_, g.m) +
                         90 * k_panels_ * g.c;
    if (work * 4 >= direct_work * 3) return false;  // a margin for the transforms' memory traffic
    slot_ = 0;
    for (int64_t threads = 1; threads <= kSlots; ++threads) {
      const Split s = plan(threads);
      slot_ = std::max(slot_, slot_floats(s.rows, std::min(g_.m, s.panels * gemm::kTileN)));
    }
    return true;
  }

  // The weights as kept between runs: [K panel][c][tap][kTileN], the output channels of a GEMM B panel
  // adjacent (zero past K), so that each run's weight transform reads and writes whole vectors.
  int64_t packed_floats() const { return k_panels_ * g_.c * 9 * gemm::kTileN; }
  void pack_weights(const float* w, float* packed) const {
    std::fill(packed, packed + packed_floats(), 0.0f);
    for (int64_t k = 0; k < g_.m; ++k)
      for (int64_t c = 0; c < g_.c; ++c)
        for (int64_t tap = 0; tap < 9; ++tap)
          packed[((k / gemm::kTileN * g_.c + c) * 9 + tap) * gemm::kTileN + k % gemm::kTileN] =
              w[(k * g_.c + c) * 9 + tap];
  }

  int64_t scratch_floats() const { return 16 * u_floats() + kSlots * slot_; }

  // One image: x [C, H, W] -> y [K, OH, OW], with `packed` from pack_weights() and scratch_floats() of scratch.
  // y_stride: floats between NHWC output pixels (channels_last; ignored for NCHW).
  void run(const float* x, const float* packed, const float* bias, float lo, float hi, float* y, float* scratch,
           ThreadPool* pool, int64_t y_stride = 0) const {
    float* u = scratch;
    scratch += 16 * u_floats();
    pool->parallel_for(k_panels_ * g_.c, [&](int64_t begin, int64_t end) {
      for (int64_t row = begin; row < end; ++row) transform_weights(packed + row * 9 * gemm::kTileN, row, u);
    }, 64);
    const Split split = plan(std::min<int64_t>(pool->num_threads(), kSlots));  // a plan slot_ was sized for
    const int64_t blocks = (th_ + split.rows - 1) / split.rows, items = blocks * split.parts;
    const int64_t slots = std::min<int64_t>({kSlots, pool->num_threads(), items});
    pool->parallel_for(slots, [&](int64_t first_slot, int64_t end_slot) {
      for (int64_t slot = first_slot; slot < end_slot; ++slot)
        for (int64_t item = slot * items / slots; item < (slot + 1) * items / slots; ++item)
          run_item(x, u, bias, lo, hi, y, scratch + slot * slot_, split, item / split.parts,
                   item % split.parts, y_stride);
    });
  }

 private:
  struct Split {
    int64_t rows = 1;   // tile rows per item
    int64_t parts = 1;  // output channel ranges
    int64_t panels = 1; // B panels (kTileN output channels) per range
  };

  int64_t u_floats() const { return gemm::whole_lines(gemm::packed_b_floats(g_.c, g_.m)); }

  // Vector FMAs' worth of transform work for `tiles` tiles and `k` output channels, in FMA units of two
  // per cycle: the input transform (16 loads, 32 adds, 16 stores per 16 channels) and the output
  // transform (16 loads, 24 adds, 4 stores per 16 output channels).
  int64_t transform_work(int64_t tiles, int64_t k) const {
    const int64_t c_vectors = (g_.c + 15) / 16, k_vectors = (k + 15) / 16;
    return tiles * (32 * c_vectors + 24 * k_vectors);
  }

  // Floats of a slot for items of `rows` tile rows and `k` output channels (all whole 64-byte lines).
  int64_t slot_floats(int64_t rows, int64_t k) const {
    const int64_t tiles = rows * tw_;
    return gemm::whole_lines((2 * rows + 2) * cp_ * g_.c) + 16 * gemm::whole_lines(tiles * g_.c) +
           16 * gemm::whole_lines(tiles * k) + gemm::whole_lines(2 * rows * 2 * tw_ * k);
  }

  // The items for `threads` threads. Output channels are split between the threads only when U
  // outgrows L2, so that each thread reads its share of U once; otherwise every item takes all of them
  // (a split repeats the input transform per range, and measured 10-25 % slower on ResNet-50's 56x56 and
  // 28x28 convs, U of 0.25 and 1 MB; at 14x14, U of 4 MB, all 7 tile rows with the channels halved was
  // the fastest plan). The tile rows per item: fewest estimated cycles on the busiest thread, among
  // the slots that fit.
  Split plan(int64_t threads) const {
    const int64_t parts = 16 * g_.c * g_.m > kL2Floats ? std::min<int64_t>(threads, k_panels_) : 1;
    const int64_t panels = (k_panels_ + parts - 1) / parts;
    const int64_t k = std::min(g_.m, panels * gemm::kTileN);
    Split best{1, parts, panels};
    int64_t best_cost = -1;
    for (int64_t rows = 1; rows <= th_ && slot_floats(rows, k) <= kSlotFloats; ++rows) {
      const int64_t items = (th_ + rows - 1) / rows * parts, tiles = rows * tw_;
      // Per item: its GEMMs, its transforms, reading its range of U from L3 (4 floats an FMA's time),
      // and, when its slot outgrows L2, writing and reading the transformed input and sums through L3.
      const int64_t spill = slot_floats(rows, k) > kL2Floats ? 8 * tiles * (g_.c + k) : 0;
      const int64_t item =
          16 * g_.c * gemm::ukernel_work(tiles, k) + transform_work(tiles, k) + 16 * g_.c * k / 4 + spill;
      const int64_t cost = (items + threads - 1) / threads * item;
      if (best_cost < 0 || cost < best_cost) {
        best_cost = cost;
        best.rows = rows;
      }
    }
    return best;
  }

  // U_ξ = G g G^T for the kTileN output channels of B panel row `row` (panel row / C, input channel
  // row % C): the 9 taps of kTileN weights at `w`, written to row `row` of each U_ξ.
  void transform_weights(const float* w, int64_t row, float* u) const {
    float* out = u + row * gemm::kTileN;
    const int64_t stride = u_floats();
#pragma GCC ivdep
    for (int64_t lane = 0; lane < gemm::kTileN; ++lane) {
      float t[4][3];  // G g: rows combined, column j
      for (int j = 0; j < 3; ++j) {
        const float g0 = w[j * gemm::kTileN + lane], g1 = w[(3 + j) * gemm::kTileN + lane],
                     g2 = w[(6 + j) * gemm::kTileN + lane];
        t[0][j] = g0;
        t[1][j] = 0.5f * (g0 + g1 + g2);
        t[2][j] = 0.5f * (g0 - g1 + g2);
        t[3][j] = g2;
      }
      for (int r = 0; r < 4; ++r) {  // (G g) G^T: columns combined
        const float t0 = t[r][0], t1 = t[r][1], t2 = t[r][2];
        out[(r * 4 + 0) * stride + lane] = t0;
        out[(r * 4 + 1) * stride + lane] = 0.5f * (t0 + t1 + t2);
        out[(r * 4 + 2) * stride + lane] = 0.5f * (t0 - t1 + t2);
        out[(r * 4 + 3) * stride + lane] = t2;
      }
    }
  }

  void run_item(const float* x, const float* u, const float* bias, float lo, float hi, float* y, float* slot,
                const Split& split, int64_t block, int64_t part, int64_t y_stride) const {
    const int64_t ty0 = block * split.rows, rows = std::min(split.rows, th_ - ty0), tiles = rows * tw_;
    const int64_t k0 = part * split.panels * gemm::kTileN;
    const int64_t kn = std::min(g_.m - k0, split.panels * gemm::kTileN);
    const int64_t c_count = g_.c;
    const int64_t max_tiles = split.rows * tw_;
    float* input = slot;  // (2 * rows + 2) x cp_ x C, channels-last
    float* v = input + gemm::whole_lines((2 * split.rows + 2) * cp_ * c_count);
    const int64_t v_stride = gemm::whole_lines(max_tiles * c_count);
    float* m = v + 16 * v_stride;
    const int64_t m_stride = gemm::whole_lines(max_tiles * kn);
    float* out = m + 16 * m_stride;  // 2 * rows x 2 * tw_ x kn, channels-last

    fill_input(x, 2 * ty0, 2 * rows + 2, input);
    for (int64_t t = 0; t < tiles; ++t) {
      const float* d = input + ((t / tw_) * 2 * cp_ + (t % tw_) * 2) * c_count;
      transform_input(d, cp_ * c_count, c_count, v + t * c_count, v_stride, c_count);
    }
    for (int xi = 0; xi < 16; ++xi) {
      gemm::Problem p;
      p.m = tiles;
      p.n = kn;
      p.k = c_count;
      p.a = gemm::Operand::strided(v + xi * v_stride, c_count, 1, nullptr);
      p.b = gemm::Operand::prepacked(u + xi * u_floats() + k0 / gemm::kTileN * gemm::kTileN * c_count);
      p.c = m + xi * m_stride;
      p.ldc = kn;
      gemm::sgemm_serial(p);
    }
    const int64_t out_w = 2 * tw_;
    for (int64_t t = 0; t < tiles; ++t) {
      float* o = out + ((t / tw_) * 2 * out_w + (t % tw_) * 2) * kn;
      transform_output(m + t * kn, m_stride, bias != nullptr ? bias + k0 : nullptr, lo, hi, kn, o, out_w * kn, kn);
    }
    const int64_t plane = g_.oh * g_.ow;
    for (int64_t r = 0; r < 2 * rows && 2 * ty0 + r < g_.oh; ++r) {
      const float* row = out + r * out_w * kn;
      if (g_.channels_last) {  // NHWC: each output pixel's kn channels are adjacent
        float* dst = y + (2 * ty0 + r) * g_.ow * y_stride + k0;
        for (int64_t ox = 0; ox < g_.ow; ++ox) std::copy_n(row + ox * kn, kn, dst + ox * y_stride);
      } else {
        transpose_floats(row, kn, y + k0 * plane + (2 * ty0 + r) * g_.ow, plane, g_.ow, kn);
      }
    }
  }

  // Padded input rows [row0, row0 + count) (padded coordinates) into `dst`, channels-last, cp_ columns.
  void fill_input(const float* x, int64_t row0, int64_t count, float* dst) const {
    const int64_t c_count = g_.c, in_plane = g_.h * g_.w, row_floats = cp_ * c_count;
    const int64_t cols = std::min(g_.w, cp_ - g_.pl);  // input columns inside the padded row
    for (int64_t r = 0; r < count; ++r, dst += row_floats) {
      const int64_t iy = row0 + r - g_.pt;
      if (iy < 0 || iy >= g_.h || cols <= 0) {
        std::fill(dst, dst + row_floats, 0.0f);
        continue;
      }
      std::fill(dst, dst + g_.pl * c_count, 0.0f);
      if (g_.input_nhwc) {
        std::copy_n(x + iy * g_.w * c_count, cols * c_count, dst + g_.pl * c_count);
      } else {
        transpose_floats(x + iy * g_.w, in_plane, dst + g_.pl * c_count, c_count, c_count, cols);
      }
      std::fill(dst + (g_.pl + cols) * c_count, dst + row_floats, 0.0f);
    }
  }

  // V = B^T d B for one tile: d[r][s] at d + r * row + s * col + c, V_ξ at v + ξ * v_stride + c.
  static void transform_input(const float* d, int64_t row, int64_t col, float* v, int64_t v_stride, int64_t count) {
    const float* d0 = d;
    const float* d1 = d + row;
    const float* d2 = d + 2 * row;
    const float* d3 = d + 3 * row;
#pragma GCC ivdep
    for (int64_t c = 0; c < count; ++c) {
      float t[4][4];  // B^T d: rows combined, column s
      for (int s = 0; s < 4; ++s) {
        const float a0 = d0[s * col + c], a1 = d1[s * col + c], a2 = d2[s * col + c], a3 = d3[s * col + c];
        t[0][s] = a0 - a2;
        t[1][s] = a1 + a2;
        t[2][s] = a2 - a1;
        t[3][s] = a1 - a3;
      }
      for (int r = 0; r < 4; ++r) {  // (B^T d) B: columns combined
        v[(r * 4 + 0) * v_stride + c] = t[r][0] - t[r][2];
        v[(r * 4 + 1) * v_stride + c] = t[r][1] + t[r][2];
        v[(r * 4 + 2) * v_stride + c] = t[r][2] - t[r][1];
        v[(r * 4 + 3) * v_stride + c] = t[r][1] - t[r][3];
      }
    }
  }

  // Y = A^T m A + bias, clamped to [lo, hi], for one tile: m_ξ at m + ξ * m_stride + k; output (a, b) at
  // o + a * row + b * col + k.
  static void transform_output(const float* m, int64_t m_stride, const float* bias, float lo, float hi,
                               int64_t count, float* o, int64_t row, int64_t col) {
#pragma GCC ivdep
    for (int64_t k = 0; k < count; ++k) {
      float t[2][4];  // A^T m: rows combined, column s
      for (int s = 0; s < 4; ++s) {
        const float a0 = m[s * m_stride + k], a1 = m[(4 + s) * m_stride + k], a2 = m[(8 + s) * m_stride + k],
                    a3 = m[(12 + s) * m_stride + k];
        t[0][s] = a0 + a1 + a2;
        t[1][s] = a1 - a2 - a3;
      }
      const float b = bias != nullptr ? bias[k] : 0.0f;
      for (int r = 0; r < 2; ++r) {
        const float y0 = t[r][0] + t[r][1] + t[r][2] + b, y1 = t[r][1] - t[r][2] - t[r][3] + b;
        o[r * row + k] = clamp(y0, lo, hi);
        o[r * row + col + k] = clamp(y1, lo, hi);
      }
    }
  }

  // As the GEMM epilogue clamps: a NaN passes.
  static float clamp(float y, float lo, float hi) {
    y = y < lo ? lo : y;
    return y > hi ? hi : y;
  }

  ConvGeometry g_;
  int64_t th_ = 0, tw_ = 0, cp_ = 0, k_panels_ = 0;
  int64_t slot_ = 0;  // floats of a scratch slot
};

}  // namespace edgepack
