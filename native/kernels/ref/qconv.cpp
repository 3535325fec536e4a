// Conv (NCHW) on quantized or low-precision operands; qlinear.cpp chooses the kernel at load:
//   Int8ConvKernel         int8 / uint8 input, int8 weight per output channel, optional int32 bias ->
//                          codes, bit-exact to conv_int8 of the reference;
//   FloatWeightConvKernel  float input, float16 / int8 / int4 weight (dequantized once at load) ->
//                          float, on the float GEMM.
//
// Int8ConvKernel has two paths:
//   depthwise (C/group == 1, M/group == 1): a direct kernel on the codes (depthwise.h). The image is
//     first copied into zero-point padded, stride-split planes, so that each tap is one branch-free
//     multiply-add loop over a block of output rows; the requantization subtracts zx * sum(w);
//   GEMM (all others), per group Y_g[Mg, pixels] = W_g[Mg, K] . X_g[K, pixels] on the qgemm core with
//     the weights as packed row panels. The input is first copied, once per image, into zero-point
//     padded planes whose lanes interleave kGroup channels ("channel groups"): the lane of channel
//     group cq at padded position (py, px) holds channels cq*kGroup .. +kGroup-1, and K is ordered
//     (channel group, tap row i, tap column j). Then
//       stride 1: output pixel (y, x) and tap (i, j) read the lane at (y + i*dh, x + j*dw), so over a
//         grid of OH x PW columns (PW the padded width) the column operand is the padded planes
//         themselves, shifted by cq*plane + i*dh*PW + j*dw: read in place, no im2col. The PW - OW
//         extra columns per row are computed and dropped;
//       strides > 1: each column panel is gathered from the padded planes, one 32-bit lane per
//         (k-group, pixel), by the thread that then uses it.
//     Padding holds the input zero point, so it contributes (zx - zx) * w = 0 as the spec requires.
#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/ref/conv_geometry.h"
#include "kernels/ref/depthwise.h"
#include "kernels/ref/gemm.h"
#include "kernels/ref/kernel_util.h"
#include "kernels/ref/qlinear.h"
#include "kernels/ref/quant_util.h"

namespace edgepack {
namespace qlinear {
namespace {

using qgemm::Act;
using qgemm::kGroup;
using qgemm::kTileM;
using qgemm::kTileN;
using qgemm::Wgt;

constexpr int64_t kMinMacsPerThread = int64_t{1} << 22;
constexpr int64_t kMaxBlockPanels = 16;         // column panels per work item of the GEMM path

using Geometry = ConvGeometry;

Status read_geometry(const OpInfo& op, AttrReader& attrs, const Tensor& x, const Tensor& w, const Tensor& y,
                     Geometry* g) {
  EP_RETURN_IF_ERROR(read_conv_window(op, attrs, x, w, g));
  return read_conv_output(op, x, w, y, g);
}

std::vector<Tap> column_taps(const Geometry& g) {
  std::vector<Tap> taps;
  for (int64_t j = 0; j < g.kw; ++j) taps.push_back(make_tap(j * g.dw - g.pl, g.sw, g.w, g.ow));
  return taps;
}

Status out_of_memory(const OpInfo& op) {
  return Status(StatusCode::kRuntimeError, "op '" + op.name + "': out of memory packing the weights");
}

// ---- int8 Conv ------------------------------------------------------------------------------------------

class Int8ConvKernel final : public OpKernel {
 public:
  Status prepare(const OpInfo& op, const std::vector<const Tensor*>& ins,
                 const std::vector<const Tensor*>& outs) override {
    EP_RETURN_IF_ERROR(expect_inputs(op, ins, 2, 3));
    EP_RETURN_IF_ERROR(expect_outputs(op, outs, 1));
    const Tensor &x = *ins[0], &w = *ins[1], &y = *outs[0];
    AttrReader attrs(op);
    EP_RETURN_IF_ERROR(read_geometry(op, attrs, x, w, y, &g_));
    signed_ = x.dtype == DType::kInt8;
    shift_ = g_.depthwise() ? 0 : qgemm::act_shift(x.dtype);  // the depthwise path sums plain codes
    EP_RETURN_IF_ERROR(requant_.prepare(op, attrs, x, w, 0, ins.size() > 2 ? ins[2] : nullptr, y, shift_));
    zero_point_ = tensor_zero_point(x);
    if (g_.depthwise()) return prepare_depthwise(op, x, w);
    return prepare_gemm(op, x, w);
  }

  Status run(const std::vector<const Tensor*>& ins, const std::vector<Tensor*>& outs, RunContext& ctx) const override {
    if (outs[0]->numel == 0) return Status::Ok();
    uint8_t* y = outs[0]->as<uint8_t>();  // int8 and uint8 codes alike
    const int64_t image = g_.c * g_.h * g_.w, out_image = g_.m * g_.oh * g_.ow;
    if (g_.depthwise()) {
      const uint8_t* x = ins[0]->as<const uint8_t>();
      for (int64_t n = 0; n < g_.n; ++n) {
        if (signed_) {
          run_depthwise(reinterpret_cast<const int8_t*>(x + n * image), reinterpret_cast<int8_t*>(ctx.scratch),
                        y + n * out_image, ctx.pool);
        } else {
          run_depthwise(x + n * image, ctx.scratch, y + n * out_image, ctx.pool);
        }
      }
      return Status::Ok();
    }
    Act* padded = reinterpret_cast<Act*>(ctx.scratch);
    Act* columns = reinterpret_cast<Act*>(ctx.scratch + padded_bytes_);
    for (int64_t n = 0; n < g_.n; ++n) {
      build_padded(ins[0]->as<const uint8_t>() + n * image, padded, ctx.pool);  // int8 or uint8 codes, as bytes
      run_gemm(padded, columns, y + n * out_image, ctx.pool);
    }
    return Status::Ok();
  }

 private:
  Status prepare_depthwise(const OpInfo& op, const Tensor& x, const Tensor& w) {
    if (!depthwise_.prepare(g_)) return bad(op, "input " + x.shape_str() + " is too large");
    const int8_t* src = w.as<const int8_t>();
    depthwise_weights_.assign(src, src + w.numel);
    depthwise_.keep_weights(depthwise_weights_.data());
    scratch_bytes = static_cast<size_t>(depthwise_.elements());  // the planes of codes, as bytes
    return Status::Ok();
  }

  Status prepare_gemm(const OpInfo& op, const Tensor& x, const Tensor& w) {
    channel_groups_ = (g_.cg + kGroup - 1) / kGroup;
    groups_ = channel_groups_ * g_.kh * g_.kw;
    pw_ = g_.w + g_.pl + g_.pr;
    int64_t group_lanes = 0, lanes = 0, grid = 0, weight_bytes = 0;
    if (!gemm::checked_mul(g_.h + g_.pt + g_.pb, pw_, &plane_) ||
        !gemm::checked_mul(channel_groups_, plane_, &group_lanes) ||
        !gemm::checked_mul(g_.group, group_lanes, &lanes) ||
        !gemm::checked_mul(g_.oh, std::max(pw_, g_.ow), &grid) ||
        !gemm::checked_mul(qgemm::row_panels(g_.mg) * kTileM * g_.group, groups_ * 4, &weight_bytes))
      return bad(op, "input " + x.shape_str() + " and weight " + w.shape_str() + " are too large");
    group_lanes_ = group_lanes;
    // Padded planes of every group, plus the lanes that the last grid panel, shifted by the widest
    // tap, reads past them (for dropped columns only).
    padded_lanes_ = lanes + kTileN + (g_.kw - 1) * g_.dw;
    padded_bytes_ = qgemm::whole_lines(static_cast<size_t>(padded_lanes_) * 4);
    for (int64_t cq = 0; cq < channel_groups_; ++cq)
      for (int64_t i = 0; i < g_.kh; ++i)
        for (int64_t j = 0; j < g_.kw; ++j) tap_lanes_.push_back(cq * plane_ + i * g_.dh * pw_ + j * g_.dw);

    in_place_ = g_.sh == 1 && g_.sw == 1;
    columns_ = in_place_ ? g_.oh * pw_ : g_.oh * g_.ow;
    scratch_bytes = padded_bytes_;
    if (!in_place_) {
      for (int64_t oy = 0; oy < g_.oh; ++oy)
        for (int64_t ox = 0; ox < g_.ow; ++ox) pixel_lanes_.push_back(oy * g_.sh * pw_ + ox * g_.sw);
      int64_t per_group = 0;
      if (!gemm::checked_mul(qgemm::col_panels(columns_), qgemm::col_panel_size(groups_), &per_group))
        return bad(op, "input " + x.shape_str() + " and weight " + w.shape_str() + " are too large");
      columns_group_bytes_ = qgemm::whole_lines(static_cast<size_t>(per_group) * sizeof(Act));
      scratch_bytes += columns_group_bytes_ * static_cast<size_t>(g_.group);
    }

    // Weights [M, Cg, kh, kw] -> per group, Mg row panels over K = (channel group, i, j, lane element).
    weights_group_ = qgemm::row_panels(g_.mg) * qgemm::row_panel_size(groups_);
    if (!weights_.resize(static_cast<size_t>(weights_group_ * g_.group) * sizeof(Wgt))) return out_of_memory(op);
    // Written in the packed order (one store stream); rows past Mg and channels past Cg are zero.
    Wgt* dst = weights_.as<Wgt>();
    const int8_t* src = w.as<const int8_t>();
    const int64_t taps = g_.kh * g_.kw;
    for (int64_t grp = 0; grp < g_.group; ++grp)
      for (int64_t p = 0; p < qgemm::row_panels(g_.mg); ++p)
        for (int64_t cq = 0; cq < channel_groups_; ++cq)
          for (int64_t tap = 0; tap < taps; ++tap)
            for (int r = 0; r < kTileM; ++r) {
              const int64_t mg = p * kTileM + r;
              for (int e = 0; e < kGroup; ++e, ++dst) {
                const int64_t c = cq * kGroup + e;
                *dst = mg < g_.mg && c < g_.cg ? static_cast<Wgt>(src[((grp * g_.mg + mg) * g_.cg + c) * taps + tap])
                                               : Wgt{0};
              }
            }
    return Status::Ok();
  }

  // The image's zero-point padded planes, channel groups interleaved in lanes (see the top).
  void build_padded(const uint8_t* x, Act* padded, ThreadPool* pool) const {
    const Act pad = static_cast<Act>(zero_point_ + shift_);
    const int64_t ph = plane_ / pw_, rows = g_.group * channel_groups_ * ph;
    pool->parallel_for(rows, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        Act* dst = padded + r * pw_ * kGroup;
        const int64_t iy = r % ph - g_.pt, cq = r / ph % channel_groups_, grp = r / (ph * channel_groups_);
        if (iy < 0 || iy >= g_.h) {
          std::fill(dst, dst + pw_ * kGroup, pad);
          continue;
        }
        std::fill(dst, dst + g_.pl * kGroup, pad);
        std::fill(dst + (g_.pl + g_.w) * kGroup, dst + pw_ * kGroup, pad);
        // Channels past the group's last meet zero weights: any valid row will do for them.
        const uint8_t* rows_in[kGroup];
        for (int e = 0; e < kGroup; ++e) {
          const int64_t c = std::min(cq * kGroup + e, g_.cg - 1);
          rows_in[e] = x + ((grp * g_.cg + c) * g_.h + iy) * g_.w;
        }
        qgemm::interleave_codes(rows_in, signed_, g_.w, dst + g_.pl * kGroup);
      }
    }, std::max<int64_t>(1, kGrain / std::max<int64_t>(1, pw_ * kGroup)));
    const int64_t used = g_.group * group_lanes_ * kGroup;
    std::fill(padded + used, padded + padded_lanes_ * kGroup, pad);
  }

  // Column panels [first, end) of a strided conv from one group's padded planes: the lane of each
  // (k-group, output pixel) is copied from under the pixel's window.
  void gather_columns(const Act* planes, int64_t first, int64_t end, Act* dst) const {
    for (int64_t p = first; p < end; ++p) {
      Act* panel = dst + p * qgemm::col_panel_size(groups_);
      const int64_t p0 = p * kTileN, valid = std::min<int64_t>(kTileN, columns_ - p0);
      const int64_t* pixel = pixel_lanes_.data() + p0;
      for (int64_t gi = 0; gi < groups_; ++gi) {
        const Act* src = planes + tap_lanes_[gi] * kGroup;
        Act* out = panel + gi * kTileN * kGroup;
        for (int64_t c = 0; c < valid; ++c) std::memcpy(out + c * kGroup, src + pixel[c] * kGroup, 4);
        std::fill(out + valid * kGroup, out + kTileN * kGroup, Act{0});
      }
    }
  }

  void run_gemm(const Act* padded, Act* columns, uint8_t* y, ThreadPool* pool) const {
    const int64_t cp = qgemm::col_panels(columns_), rp = qgemm::row_panels(g_.mg);
    const int64_t wanted = std::max<int64_t>(1, 8 * pool->num_threads() / g_.group);  // column blocks per group
    const int64_t per_block = std::min(kMaxBlockPanels, std::max<int64_t>(1, cp / wanted));
    const int64_t blocks = (cp + per_block - 1) / per_block;
    const int64_t item_macs = per_block * kTileN * g_.mg * groups_ * kGroup;
    const int64_t grain = std::max<int64_t>(1, kMinMacsPerThread / std::max<int64_t>(1, item_macs));
    const int64_t pixels = g_.oh * g_.ow;
    pool->parallel_for(g_.group * blocks, [&](int64_t begin, int64_t end) {
      alignas(64) int32_t acc[kTileM * kTileN];
      for (int64_t item = begin; item < end; ++item) {
        const int64_t grp = item / blocks, first = item % blocks * per_block, last = std::min(cp, first + per_block);
        const Act* planes = padded + grp * group_lanes_ * kGroup;
        Act* packed = reinterpret_cast<Act*>(reinterpret_cast<uint8_t*>(columns) + grp * columns_group_bytes_);
        if (!in_place_) gather_columns(planes, first, last, packed);
        const Wgt* weights = weights_.as<Wgt>() + grp * weights_group_;
        for (int64_t p = first; p < last; ++p) {
          const int64_t col0 = p * kTileN;
          const int ncols = static_cast<int>(std::min<int64_t>(kTileN, columns_ - col0));
          const Act* cols = in_place_ ? planes + col0 * kGroup : packed + p * qgemm::col_panel_size(groups_);
          for (int64_t r0 = 0; r0 < rp; ++r0) {
            const int rows = static_cast<int>(std::min<int64_t>(kTileM, g_.mg - r0 * kTileM));
            qgemm::tile_act_cols(rows, groups_, weights + r0 * qgemm::row_panel_size(groups_), cols,
                                 in_place_ ? tap_lanes_.data() : nullptr, acc);
            const int64_t channel = grp * g_.mg + r0 * kTileM;
            if (in_place_ && pw_ != g_.ow) {
              store_grid(acc, rows, col0, ncols, channel, y + channel * pixels);
            } else {  // grid columns are the output pixels
              requant_.per_row(acc, kTileN, rows, ncols, channel, y + channel * pixels + col0, pixels);
            }
          }
        }
      }
    }, grain);
  }

  // Requantizes a tile of sums at grid columns [q0, q0 + n) for channels first.. (rows of the tile):
  // grid column q is output pixel (q / PW, q % PW); the columns with q % PW >= OW exist only in the grid.
  void store_grid(const int32_t* acc, int rows, int64_t q0, int n, int64_t first, uint8_t* planes) const {
    const int64_t pixels = g_.oh * g_.ow;
    for (int64_t q = q0; q < q0 + n;) {
      const int64_t oy = q / pw_, ox = q - oy * pw_;
      const int64_t run = std::min(q0 + n, (oy + 1) * pw_) - q;
      if (ox < g_.ow)
        requant_.per_row(acc + (q - q0), kTileN, rows, static_cast<int>(std::min(run, g_.ow - ox)), first,
                         planes + oy * g_.ow + ox, pixels);
      q += run;
    }
  }

  // The raw sums of w[i][j] times the code under tap (i, j) (the zero point in the padding), requantized.
  template <class Code> void run_depthwise(const Code* x, Code* planes, uint8_t* y, ThreadPool* pool) const {
    const int64_t taps = g_.kh * g_.kw;
    depthwise_.run<int32_t>(x, static_cast<Code>(zero_point_), planes, [&](int64_t c) { return depthwise_weights_.data() + c * taps; },
                            [&](int64_t c, int64_t oy, int64_t x0, const int32_t* sums, int64_t n) {
                              requant_.per_row(sums, 0, 1, static_cast<int>(n), c, y + (c * g_.oh + oy) * g_.ow + x0, 0);
                            }, pool);
  }

  Geometry g_;
  Requantizer requant_;
  bool signed_ = true;
  int32_t zero_point_ = 0, shift_ = 0;
  DepthwisePlan depthwise_;
  std::vector<int32_t> depthwise_weights_;  // [C, kh * kw]
  // The GEMM path pads the image to planes of plane_ = PH x PW lanes of channel groups.
  int64_t pw_ = 0, plane_ = 0;
  // GEMM path: K = groups_ k-groups over channel_groups_ groups of kGroup channels.
  int64_t channel_groups_ = 0, groups_ = 0, group_lanes_ = 0, padded_lanes_ = 0;
  std::vector<int64_t> tap_lanes_;   // per k-group: its lane offset in a group's padded planes
  bool in_place_ = false;            // stride 1: columns read in place from the padded planes
  int64_t columns_ = 0;              // GEMM N: the OH x PW grid (in place) or the OH x OW pixels
  std::vector<int64_t> pixel_lanes_; // strided: per output pixel, the lane offset of its window's corner
  qgemm::AlignedBuffer weights_;     // per group, row panels of its Mg weights
  int64_t weights_group_ = 0;        // elements per group
  size_t padded_bytes_ = 0, columns_group_bytes_ = 0;
};

// ---- float input, dequantized weights ------------------------------------------------------------------

// B panels of the im2col matrix [Cg * kh * kw, OH * OW] of one group, for the float GEMM: row (c, i, j),
// column (oy, ox) holds the input under tap (i, j) of output (oy, ox), 0 in the padding. Each run of a
// panel's pixels within one output row reads a (for stride 1: contiguous) segment of an input row.
struct Im2col {
  Geometry g;
  std::vector<Tap> taps;

  static void pack(const void* ctx, const float* src, int64_t first, int64_t end, float* dst) {
    const Im2col& im = *static_cast<const Im2col*>(ctx);
    const Geometry& g = im.g;
    constexpr int64_t kN = gemm::kTileN;
    const int64_t k = g.cg * g.kh * g.kw, pixels = g.oh * g.ow;
    for (int64_t p = first; p < end; ++p) {
      float* panel = dst + p * kN * k;
      const int64_t first_pixel = p * kN, valid = std::min(kN, pixels - first_pixel);
      for (int64_t t = 0; t < valid;) {
        const int64_t oy = (first_pixel + t) / g.ow, x0 = (first_pixel + t) % g.ow;
        const int64_t x1 = x0 + std::min(valid - t, g.ow - x0);
        for (int64_t c = 0; c < g.cg; ++c) {
          for (int64_t i = 0; i < g.kh; ++i) {
            float* out = panel + (c * g.kh + i) * g.kw * kN + t - x0;  // out[x]: pixel x of this run
            const int64_t iy = oy * g.sh - g.pt + i * g.dh;
            for (int64_t j = 0; j < g.kw; ++j, out += kN) {
              if (iy < 0 || iy >= g.h) {
                std::fill(out + x0, out + x1, 0.0f);
                continue;
              }
              const Tap& tap = im.taps[j];
              const int64_t lo = std::min(std::max(tap.lo, x0), x1), hi = std::max(std::min(tap.hi, x1), lo);
              const float* in = src + (c * g.h + iy) * g.w + tap.offset;  // in[x * sw]: the input under x
              std::fill(out + x0, out + lo, 0.0f);
              for (int64_t x = lo; x < hi; ++x) out[x] = in[x * g.sw];
              std::fill(out + hi, out + x1, 0.0f);
            }
          }
        }
        t += x1 - x0;
      }
      for (int64_t r = 0; r < k && valid < kN; ++r) std::fill(panel + r * kN + valid, panel + (r + 1) * kN, 0.0f);
    }
  }
};

class FloatWeightConvKernel final : public OpKernel {
 public:
  Status prepare(const OpInfo& op, const std::vector<const Tensor*>& ins,
                 const std::vector<const Tensor*>& outs) override {
    EP_RETURN_IF_ERROR(expect_inputs(op, ins, 2, 3));
    EP_RETURN_IF_ERROR(expect_outputs(op, outs, 1));
    const Tensor &x = *ins[0], &w = *ins[1], &y = *outs[0];
    EP_RETURN_IF_ERROR(expect_dtype(op, x, DType::kFloat32, "input"));
    EP_RETURN_IF_ERROR(expect_dtype(op, y, DType::kFloat32, "output"));
    AttrReader attrs(op);
    EP_RETURN_IF_ERROR(read_geometry(op, attrs, x, w, y, &im2col_.g));
    EP_RETURN_IF_ERROR(gemm::read_activation(op, attrs, &epilogue_));
    const Geometry& g = im2col_.g;
    has_bias_ = ins.size() > 2 && ins[2] != nullptr;
    if (has_bias_) {
      EP_RETURN_IF_ERROR(expect_dtype(op, *ins[2], DType::kFloat32, "bias"));
      EP_RETURN_IF_ERROR(expect_shape(op, *ins[2], {g.m}, "bias"));
    }
    epilogue_.bias_kind = has_bias_ ? gemm::BiasKind::kPerRow : gemm::BiasKind::kNone;
    im2col_.taps = column_taps(g);
    EP_RETURN_IF_ERROR(weight_to_float(op, w, &weights_));
    if (g.depthwise()) {
      if (!depthwise_.prepare(g)) return bad(op, "input " + x.shape_str() + " is too large");
      depthwise_.keep_weights(weights_.data());
      scratch_bytes = static_cast<size_t>(depthwise_.elements()) * sizeof(float);
      return Status::Ok();
    }

    int64_t per_group = 0, total = 0, panel_b = 0, scratch = 0;
    if (!gemm::checked_mul(g.cg, g.kh * g.kw, &k_) || !gemm::checked_mul(g.oh, g.ow, &pixels_) ||
        !gemm::checked_mul(gemm::panels_a(g.mg) * gemm::kTileM, k_, &per_group) ||
        !gemm::checked_mul(gemm::whole_lines(per_group), g.group, &total) ||
        !gemm::checked_mul(gemm::panels_b(pixels_) * gemm::kTileN, k_, &panel_b) ||
        !gemm::checked_mul(gemm::whole_lines(panel_b), g.group, &scratch))
      return bad(op, "input " + x.shape_str() + " and weight " + w.shape_str() + " are too large");
    packed_a_floats_ = gemm::whole_lines(per_group);
    packed_b_floats_ = gemm::whole_lines(panel_b);
    if (!packed_.resize(total)) return out_of_memory(op);
    for (int64_t grp = 0; grp < g.group; ++grp)
      gemm::pack_a(weights_.data() + grp * g.mg * k_, k_, 1, g.mg, k_, 0, gemm::panels_a(g.mg),
                   packed_.data() + grp * packed_a_floats_);
    weights_ = std::vector<float>();  // packed now; only the depthwise path reads them unpacked
    scratch_bytes = static_cast<size_t>(scratch) * sizeof(float);  // one im2col per group: groups run concurrently
    return Status::Ok();
  }

  Status run(const std::vector<const Tensor*>& ins, const std::vector<Tensor*>& outs, RunContext& ctx) const override {
    if (outs[0]->numel == 0) return Status::Ok();
    const Geometry& g = im2col_.g;
    const float* x = ins[0]->as<const float>();
    const float* bias = has_bias_ ? ins[2]->as<const float>() : nullptr;
    float* y = outs[0]->as<float>();
    float* scratch = reinterpret_cast<float*>(ctx.scratch);
    if (g.depthwise()) {
      depthwise_float(depthwise_, x, weights_.data(), bias, epilogue_.lo, epilogue_.hi, y, scratch, ctx.pool);
      return Status::Ok();
    }
    for (int64_t n = 0; n < g.n; ++n) {
      const float* xn = x + n * g.c * g.h * g.w;
      float* yn = y + n * g.m * pixels_;
      gemm::sgemm_batch(g.group, [&](int64_t grp, gemm::Problem* p) {
        p->m = g.mg;
        p->n = pixels_;
        p->k = k_;
        p->a = gemm::Operand::prepacked(packed_.data() + grp * packed_a_floats_);
        p->b = gemm::Operand::custom(&Im2col::pack, &im2col_, xn + grp * g.cg * g.h * g.w,
                                     scratch + grp * packed_b_floats_);
        p->c = yn + grp * g.mg * pixels_;
        p->ldc = pixels_;
        p->epilogue = epilogue_;
        if (bias != nullptr) p->epilogue.bias = bias + grp * g.mg;
      }, ctx.pool);
    }
    return Status::Ok();
  }

 private:
  Im2col im2col_;  // the geometry and column taps, and the packer of the GEMM path
  DepthwisePlan depthwise_;
  bool has_bias_ = false;
  gemm::Epilogue epilogue_;
  std::vector<float> weights_;   // dequantized [M, Cg, kh, kw], kept for the depthwise path
  int64_t k_ = 0, pixels_ = 0;   // GEMM K (Cg * kh * kw) and N (OH * OW)
  gemm::AlignedFloats packed_;   // per group: packed Mg x K weights
  int64_t packed_a_floats_ = 0, packed_b_floats_ = 0;
};

}  // namespace
}  // namespace qlinear

std::unique_ptr<OpKernel> make_int8_conv_kernel() { return std::make_unique<qlinear::Int8ConvKernel>(); }
std::unique_ptr<OpKernel> make_float_weight_conv_kernel() { return std::make_unique<qlinear::FloatWeightConvKernel>(); }

}  // namespace edgepack
