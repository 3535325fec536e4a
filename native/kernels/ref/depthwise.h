// Depthwise convolution (C/group == 1, M/group == 1) on padded, stride-split planes, shared by the float
// Conv kernels (conv.cpp, qconv.cpp's float-weight kernel) and the int8 one (qconv.cpp).
//
// Each channel is first copied into padded planes (the pad value is 0.0f, or the zero point of codes)
// that are split by the stride into sh x sw phases: phase (a, b) of a channel holds the padded rows a, a + sh, ...
// and columns b, b + sw, ..., as a plane of PHs x PWs (PHs = ceil(PH / sh), PWs = ceil(PW / sw)). Output
// (y, x) under tap (i, j) reads padded (y*sh + i*dh, x*sw + j*dw), which is phase ((i*dh) % sh, (j*dw) % sw)
// at (y + (i*dh) / sh, x + (j*dw) / sw). So over a grid of output rows x PWs columns, every tap reads one
// contiguous run of a phase plane, for any stride: the multiply-adds are long unit-stride loops that
// vectorise, with no padding tests. The PWs - OW extra columns of each grid row are computed and dropped.
//
// Small output planes (MobileNet's last stages: 4x4, 2x2) make those runs shorter than a vector, and the
// per-channel work is all overhead. There, when the kernel has handed its constant weights over
// (keep_weights), the plan goes channels-last instead: the image is copied into one padded [PH, PW, C]
// buffer and each output pixel sums its taps over a block of channels at once, the channels being the
// unit-stride (vector) dimension.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "edgepack/thread_pool.h"
#include "kernels/ref/conv_geometry.h"
#include "kernels/ref/gemm.h"
#include "kernels/ref/kernel_util.h"

namespace edgepack {

class DepthwisePlan {
 public:
  static constexpr int64_t kGrid = 4096;  // sums computed together, on the stack of run()

  // Fills the plan for a depthwise conv; false when the padded planes would not fit in int64.
  bool prepare(const ConvGeometry& g) {
    g_ = g;
    const int64_t ph = g.h + g.pt + g.pb, pw = g.w + g.pl + g.pr;
    phase_h_ = (ph + g.sh - 1) / g.sh;
    phase_w_ = (pw + g.sw - 1) / g.sw;
    int64_t phase = 0, channel = 0, planes = 0;
    if (!gemm::checked_mul(phase_h_, phase_w_, &phase) || !gemm::checked_mul(phase, g.sh * g.sw, &channel) ||
        !gemm::checked_mul(channel, g.c, &planes))
      return false;
    phase_ = phase;
    channel_ = channel;
    // The last grid of the last channel, shifted by the widest tap, reads this far past the planes
    // (for dropped columns only).
    elements_ = planes + (g.kw - 1) * g.dw / g.sw;
    tap_offsets_.clear();
    for (int64_t i = 0; i < g.kh; ++i)
      for (int64_t j = 0; j < g.kw; ++j)
        tap_offsets_.push_back(((i * g.dh) % g.sh * g.sw + (j * g.dw) % g.sw) * phase +
                               (i * g.dh) / g.sh * phase_w_ + (j * g.dw) / g.sw);
    column_taps_.clear();
    for (int64_t b = 0; b < g.sw; ++b) column_taps_.push_back(make_tap(b - g.pl, g.sw, g.w, phase_w_));
    // The sums of a channel are computed a block of output rows at a time, or a chunk of one row when a
    // row is wider than the grid.
    rows_per_item_ = std::max<int64_t>(1, std::min(g.oh, kGrid / phase_w_));
    blocks_ = (g.oh + rows_per_item_ - 1) / rows_per_item_;
    chunks_ = (phase_w_ + kGrid - 1) / kGrid;
    return true;
  }

  const ConvGeometry& geometry() const { return g_; }

  // Copies the constant weights w [C, kh * kw] (as the Acc of run()), transposed to [kh * kw, C], which
  // lets run() take the channels-last path on small output planes. Optional; call after prepare().
  template <class Acc> void keep_weights(const Acc* w) {
    const int64_t taps = g_.kh * g_.kw;
    if (g_.oh * g_.ow > kChannelsLastMaxPixels) return;
    std::vector<Acc>& t = transposed<Acc>();
    t.resize(static_cast<size_t>(taps * g_.c));
    for (int64_t c = 0; c < g_.c; ++c)
      for (int64_t k = 0; k < taps; ++k) t[k * g_.c + c] = w[c * taps + k];
    // per tap: where it reads in the padded [PH, PW, C] image, relative to the window's corner
    const int64_t pw = g_.w + g_.pl + g_.pr;
    last_taps_.clear();
    for (int64_t i = 0; i < g_.kh; ++i)
      for (int64_t j = 0; j < g_.kw; ++j) last_taps_.push_back((i * g_.dh * pw + j * g_.dw) * g_.c);
  }

  // Elements of the padded planes of one image (the scratch run() needs).
  int64_t elements() const { return elements_; }

  // Runs the depthwise conv of one image x [C, H, W] (codes, or floats) with `planes` as scratch
  // (elements() of T). A work item is a channel: its padded phase planes are built (`pad` in the
  // padding) and used at once, while they are in cache. Then, per block of output rows (or chunk of a
  // row wider than the grid), sums[k] = sum over taps t of weight(c)[t] times the input under tap t
  // (Acc: float, or int32 for codes), and store(c, oy, x0, sums, n) for each output row it covers: n
  // outputs from column x0 of row oy (n may run on into the next rows: store writes them contiguously). `weight(c)` returns channel c's kh * kw weights as Acc.
  template <class Acc, class T, class Weights, class Store>
  void run(const T* x, T pad, T* planes, const Weights& weight, const Store& store, ThreadPool* pool) const {
    if (!transposed<Acc>().empty()) {
      run_channels_last<Acc>(x, pad, planes, store, pool);
      return;
    }
    std::fill(planes + g_.c * channel_, planes + elements_, pad);
    const int64_t taps = static_cast<int64_t>(tap_offsets_.size());
    pool->parallel_for(g_.c, [&](int64_t begin, int64_t end) {
      Acc sums[kGrid];
      for (int64_t c = begin; c < end; ++c) {
        T* channel = planes + c * channel_;
        build_channel(x + c * g_.h * g_.w, pad, channel);
        for (int64_t item = 0; item < blocks_ * chunks_; ++item) {
          const int64_t oy0 = item / chunks_ * rows_per_item_, x0 = item % chunks_ * kGrid;
          const int64_t rows = std::min(rows_per_item_, g_.oh - oy0);
          const int64_t len = chunks_ == 1 ? rows * phase_w_ : std::min(kGrid, phase_w_ - x0);
          multiply_add(channel + oy0 * phase_w_ + x0, tap_offsets_.data(), weight(c), taps, len, sums);
          const int64_t n = std::min(g_.ow, x0 + len) - x0;
          for (int64_t r = 0; r < rows && n > 0; ++r) store(c, oy0 + r, x0, sums + r * phase_w_, n);
        }
      }
    }, std::max<int64_t>(1, kGrain / std::max<int64_t>(1, g_.oh * g_.ow * taps)));
  }

 private:
  // Output planes up to this many pixels go channels-last (when the weights were kept).
  static constexpr int64_t kChannelsLastMaxPixels = 64;
  static constexpr int64_t kChannelBlock = 16;  // channels summed together: one AVX-512 vector of floats

  template <class Acc> std::vector<Acc>& transposed() {
    if constexpr (std::is_same_v<Acc, float>) return weights_f_; else return weights_i_;
  }
  template <class Acc> const std::vector<Acc>& transposed() const {
    if constexpr (std::is_same_v<Acc, float>) return weights_f_; else return weights_i_;
  }

  // The channels-last path (see the top): `buffer` (elements() >= PH * PW * C) holds the padded image
  // [PH, PW, C]; per block of channels, sums[pixel][channel] over the taps, then store() per output row.
  template <class Acc, class T, class Store>
  void run_channels_last(const T* x, T pad, T* buffer, const Store& store, ThreadPool* pool) const {
    const int64_t C = g_.c, pw = g_.w + g_.pl + g_.pr, ph = g_.h + g_.pt + g_.pb;
    std::fill(buffer, buffer + ph * pw * C, pad);
    for (int64_t c = 0; c < C; ++c)
      for (int64_t iy = 0; iy < g_.h; ++iy) {
        const T* src = x + (c * g_.h + iy) * g_.w;
        T* dst = buffer + ((iy + g_.pt) * pw + g_.pl) * C + c;
        for (int64_t ix = 0; ix < g_.w; ++ix) dst[ix * C] = src[ix];
      }
    const Acc* wt = transposed<Acc>().data();
    const int64_t taps = g_.kh * g_.kw, pixels = g_.oh * g_.ow;
    const int64_t* tap_in = last_taps_.data();
    const int64_t blocks = (C + kChannelBlock - 1) / kChannelBlock;
    pool->parallel_for(blocks, [&](int64_t begin, int64_t end) {
      Acc sums[kChannelsLastMaxPixels * kChannelBlock];  // [pixel][channel of the block]
      Acc plane[kChannelsLastMaxPixels];
      for (int64_t b = begin; b < end; ++b) {
        const int64_t c0 = b * kChannelBlock, n = std::min(kChannelBlock, C - c0);
        for (int64_t p = 0; p < pixels; ++p) {
          const int64_t oy = p / g_.ow, ox = p % g_.ow;
          const T* corner = buffer + (oy * g_.sh * pw + ox * g_.sw) * C + c0;
          if (n == kChannelBlock) {
            // The block's sums as one GCC vector, kept in registers across the taps (a plain array of
            // 16 was unrolled into 16 scalar chains).
            typedef Acc V __attribute__((vector_size(kChannelBlock * sizeof(Acc))));
            typedef T VT __attribute__((vector_size(kChannelBlock * sizeof(T))));
            V acc = {};
            for (int64_t t = 0; t < taps; ++t) {
              V w;
              VT in;
              std::memcpy(&w, wt + t * C + c0, sizeof(w));
              std::memcpy(&in, corner + tap_in[t], sizeof(in));
              acc += w * __builtin_convertvector(in, V);
            }
            std::memcpy(sums + p * kChannelBlock, &acc, sizeof(acc));
          } else {
            Acc* acc = sums + p * kChannelBlock;
            std::fill(acc, acc + n, Acc(0));
            for (int64_t t = 0; t < taps; ++t)
              for (int64_t k = 0; k < n; ++k) acc[k] += wt[t * C + c0 + k] * Acc(corner[tap_in[t] + k]);
          }
        }
        // A channel's whole output plane in one store (its rows are adjacent in the output).
        for (int64_t k = 0; k < n; ++k) {
          for (int64_t p = 0; p < pixels; ++p) plane[p] = sums[p * kChannelBlock + k];
          store(c0 + k, 0, 0, plane, pixels);
        }
      }
    }, std::max<int64_t>(1, kGrain / std::max<int64_t>(1, pixels * taps * kChannelBlock)));
  }

  // The padded phase planes of one channel from its input plane xc [H, W].
  template <class T> void build_channel(const T* xc, T pad, T* channel) const {
    for (int64_t a = 0; a < g_.sh; ++a) {
      for (int64_t r = 0; r < phase_h_; ++r) {
        const int64_t iy = r * g_.sh + a - g_.pt;  // input row
        T* dst = channel + a * g_.sw * phase_ + r * phase_w_;  // its column phase 0
        if (iy < 0 || iy >= g_.h) {
          for (int64_t b = 0; b < g_.sw; ++b) std::fill(dst + b * phase_, dst + b * phase_ + phase_w_, pad);
          continue;
        }
        const T* src = xc + iy * g_.w;
        if (g_.sw == 2) {  // padded column p = input column + pl goes to phase p % 2, column p / 2
          std::fill(dst, dst + phase_w_, pad);
          std::fill(dst + phase_, dst + phase_ + phase_w_, pad);
          const int64_t first = g_.pl % 2;  // the phase of input column 0
          split_even_odd(src, g_.w, dst + first * phase_ + g_.pl / 2, dst + (1 - first) * phase_ + (g_.pl + 1) / 2);
          continue;
        }
        for (int64_t b = 0; b < g_.sw; ++b, dst += phase_) {
          const Tap& t = column_taps_[b];  // dst[col] = input column col * sw + t.offset
          std::fill(dst, dst + t.lo, pad);
          if (g_.sw == 1) {
            std::copy(src + t.offset + t.lo, src + t.offset + t.hi, dst + t.lo);
          } else {
            for (int64_t col = t.lo; col < t.hi; ++col) dst[col] = src[col * g_.sw + t.offset];
          }
          std::fill(dst + t.hi, dst + phase_w_, pad);
        }
      }
    }
  }

  // sums[k] = sum over taps t of w[t] * in[offsets[t] + k], k < len. Taps go four at a time, so that
  // the sums are loaded and stored once per four multiply-adds.
  template <class Acc, class T>
  static void multiply_add(const T* in, const int64_t* offsets, const Acc* w, int64_t taps, int64_t len, Acc* sums) {
    std::fill(sums, sums + len, Acc(0));
    int64_t t = 0;
    for (; t + 4 <= taps; t += 4) {
      const T *a = in + offsets[t], *b = in + offsets[t + 1], *c = in + offsets[t + 2], *d = in + offsets[t + 3];
      const Acc wa = w[t], wb = w[t + 1], wc = w[t + 2], wd = w[t + 3];
      for (int64_t k = 0; k < len; ++k)
        sums[k] = sums[k] + wa * Acc(a[k]) + wb * Acc(b[k]) + wc * Acc(c[k]) + wd * Acc(d[k]);
    }
    for (; t < taps; ++t) {
      const T* a = in + offsets[t];
      const Acc wa = w[t];
      for (int64_t k = 0; k < len; ++k) sums[k] += wa * Acc(a[k]);
    }
  }

  ConvGeometry g_;
  int64_t phase_h_ = 0, phase_w_ = 0, phase_ = 0, channel_ = 0, elements_ = 0;
  std::vector<int64_t> tap_offsets_;  // per tap (i, j): where its run starts in a channel's phase planes
  std::vector<Tap> column_taps_;      // per column phase b: the input columns it holds
  int64_t rows_per_item_ = 1, blocks_ = 1, chunks_ = 1;
  std::vector<float> weights_f_;    // keep_weights: [kh * kw, C], float weights
  std::vector<int32_t> weights_i_;  // or int8 codes as int32
  std::vector<int64_t> last_taps_;  // keep_weights: per tap, its offset in the channels-last image
};

// The float depthwise conv of every image of x: w [C, kh * kw], bias (or null) after the sum as the
// reference, then the fused activation's clamp [lo, hi] (NaN passes it); `planes` holds plan.elements().
inline void depthwise_float(const DepthwisePlan& plan, const float* x, const float* w, const float* bias, float lo,
                            float hi, float* y, float* planes, ThreadPool* pool) {
  const ConvGeometry& g = plan.geometry();
  const int64_t taps = g.kh * g.kw;
  for (int64_t n = 0; n < g.n; ++n) {
    float* yn = y + n * g.c * g.oh * g.ow;
    plan.run<float>(x + n * g.c * g.h * g.w, 0.0f, planes, [&](int64_t c) { return w + c * taps; },
                    [&](int64_t c, int64_t oy, int64_t x0, const float* sums, int64_t count) {
                      const float b = bias != nullptr ? bias[c] : 0.0f;
                      float* out = yn + (c * g.oh + oy) * g.ow + x0;
                      for (int64_t k = 0; k < count; ++k) out[k] = std::min(std::max(sums[k] + b, lo), hi);
                    }, pool);
  }
}

}  // namespace edgepack
