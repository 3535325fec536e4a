// Conv and ConvTranspose (float32, NCHW, constant weights).
//
// Conv picks one of six paths at prepare():
//   depthwise  (C/group == 1 and M/group == 1): a direct kernel on padded, stride-split planes
//              (depthwise.h);
//   pointwise  (1x1, stride 1, no padding): per group, Y_g[Mg, HW] = W_g[Mg, Cg] · X_g[Cg, HW] is a
//              GEMM straight on the input (read in place for few output channels, else packed);
//   shifted    (all other convs): the input is copied once into zero-padded planes (PH x PW, PW =
//              W + pl + pr) split by the stride into phases, as depthwise.h does: phase (a, b) holds
//              the padded rows a, a + sh, ... and columns b, b + sw, ..., a plane of PHs x PWs
//              (PHs = ceil(PH / sh), PWs = ceil(PW / sw)); only the phases some tap reads are built.
//              Output (y, x) under tap (i, j) reads padded (y*sh + i*dh, x*sw + j*dw), which is
//              phase ((i*dh) % sh, (j*dw) % sw) at (y + (i*dh) / sh, x + (j*dw) / sw). So over the grid
//              of OH x PWs outputs, im2col row (c, i, j) is a phase plane itself, shifted: the GEMM's
//              B is given by row offsets, with no im2col matrix at all, and is read in place (see
//              prepare_shifted) or packed with plain row copies. The PWs - OW extra columns per grid
//              row are computed and dropped as the GEMM stores its tiles into Y (Problem's crop).
//   pixel rows (one group, few output pixels): the GEMM above transposed, Y^T[OH*OW, M] =
//              im2col(X)[OH*OW, K] · W^T[K, M], with the output channels on the vector axis and C
//              stored transposed into Y. Over a small plane (ResNet's 7x7 and 14x14 stages) the pixel
//              grid fills the vectors badly (49 pixels are 4 vectors of 16, 64 lanes), while the
//              channels fill them exactly; the im2col rows are gathered while A is packed, from the
//              input (1x1, unpadded) or from the shifted path's phase planes, so no grid column is
//              computed to be dropped. Chosen when the micro-kernel's work (gemm::ukernel_work) drops
//              by 10% or more, which pays for gathering A.
//   channels-last (one group, several taps, K = C*kh*kw >= kChannelsLastMinK): the pixel-rows GEMM
//              without gathering A: the input is copied once into channels-last phase planes (a
//              transpose per row), where im2col row (y, x) under tap (i, j) is C adjacent floats, so the
//              micro-kernel reads A in place (Operand::gathered without scratch) with K ordered (i, j, c).
//              No grid columns are computed to be dropped, and the channels fill the vectors; taken
//              ahead of the shifted and pixel-rows paths (ResNet-50's 3x3 convs 1.08-1.18 -> 0.96-1.0
//              x ORT on two threads, the strided ones 1.07-1.15 -> 0.95-1.09).
//   Winograd   (3x3, stride 1, one group, at least 32 2x2 output tiles, when its work is under 3/4 of
//              the direct GEMM's): F(2x2, 3x3) as 16 GEMMs (winograd.h); taken first. ResNet-50's 3x3
//              stride-1 convs at 56x56, 28x28 and 14x14: 500, 500, 530 -> 300, 330, 440 us on two threads.
// Weights are packed once at prepare(); bias and the fused activation run in the GEMM epilogue.
//
// ConvTranspose is a GEMM then col2im: per group, col[Mg*kh*kw, H*W] = W_g^T · X_g, and every
// column entry is added to the output pixel it lands on.
#include <algorithm>
#include <string>
#include <vector>

#include "edgepack/kernel.h"
#include "kernels/ref/conv_geometry.h"
#include "kernels/ref/depthwise.h"
#include "kernels/ref/gemm.h"
#include "kernels/ref/kernels.h"
#include "kernels/ref/transpose.h"
#include "kernels/ref/winograd.h"

namespace edgepack {
namespace {

constexpr int64_t kPlaneGrain = 16384;          // output elements below which waking another thread does not pay
// GEMM K (C * kh * kw) from which the channels-last path beats the shifted one: it stores Y transposed,
// 8 floats per channel plane per tile, which over a short K costs more than the shifted path's wasted
// grid columns save (SqueezeNet's and ResNet's RGB stems, K = 27 and 147: 1.05 -> 1.54 and 1.03 ->
// 1.08 x ORT; 16 x 3x3 channels, K = 144: even; 32 channels, K = 288: 0.95 -> 0.86).
constexpr int64_t kChannelsLastMinK = 256;

using Geometry = ConvGeometry;

// Checks what Conv and ConvTranspose share: input count, float dtypes, the bias dtype, and the window
// (conv_geometry.h). Fills the input, kernel and attribute fields of `g`.
Status read_common(const OpInfo& op, const std::vector<const Tensor*>& ins, const std::vector<const Tensor*>& outs,
                   AttrReader& attrs, Geometry* g, int64_t channels_last = 0) {
  EP_RETURN_IF_ERROR(expect_inputs(op, ins, 2, op.code == OpCode::kConv ? 4 : 3));
  if (outs.size() != 1) return bad(op, "has " + std::to_string(outs.size()) + " outputs, expected 1");
  const Tensor &x = *ins[0], &w = *ins[1], &y = *outs[0];
  EP_RETURN_IF_ERROR(expect_dtype(op, x, DType::kFloat32, "input"));
  EP_RETURN_IF_ERROR(expect_dtype(op, w, DType::kFloat32, "weight"));
  EP_RETURN_IF_ERROR(expect_dtype(op, y, DType::kFloat32, "output"));
  if (ins.size() > 2 && ins[2] != nullptr) EP_RETURN_IF_ERROR(expect_dtype(op, *ins[2], DType::kFloat32, "bias"));
  return read_conv_window(op, attrs, x, w, g, channels_last);
}

// Reads the bias input (null when absent) after the output channel count is known.
Status read_bias(const OpInfo& op, const std::vector<const Tensor*>& ins, int64_t channels, bool* has_bias) {
  *has_bias = ins.size() > 2 && ins[2] != nullptr;
  if (*has_bias) EP_RETURN_IF_ERROR(expect_shape(op, *ins[2], {channels}, "bias"));
  return Status::Ok();
}

// ---- Conv -----------------------------------------------------------------------------------------

class ConvKernel final : public OpKernel {
 public:
  Status prepare(const OpInfo& op, const std::vector<const Tensor*>& ins,
                 const std::vector<const Tensor*>& outs) override {
    AttrReader attrs(op);
    const int64_t channels_last = attrs.has("channels_last") ? attrs.i("channels_last") : 0;
    EP_RETURN_IF_ERROR(attrs.status());
    if (channels_last < 0 || channels_last > 2) return bad(op, "channels_last must be 0, 1 or 2");
    EP_RETURN_IF_ERROR(read_common(op, ins, outs, attrs, &g_, channels_last));
    EP_RETURN_IF_ERROR(gemm::read_activation(op, attrs, &epilogue_));
    const Tensor &x = *ins[0], &w = *ins[1], &y = *outs[0];
    EP_RETURN_IF_ERROR(read_conv_output(op, x, w, y, &g_));
    EP_RETURN_IF_ERROR(read_bias(op, ins, g_.m, &has_bias_));
    EP_RETURN_IF_ERROR(read_y_stride(op, attrs, y));
    epilogue_.bias_kind = has_bias_ ? gemm::BiasKind::kPerRow : gemm::BiasKind::kNone;

    int64_t k = 0, pixels = 0;
    if (!gemm::checked_mul(g_.cg, g_.kh * g_.kw, &k) || !gemm::checked_mul(g_.oh, g_.ow, &pixels))
      return bad(op, "input " + x.shape_str() + " and weight " + w.shape_str() + " are too large");
    k_ = k;
    pixels_ = pixels;
    offsets_.clear();
    pixel_offsets_.clear();

    has_residual_ = ins.size() > 3 && ins[3] != nullptr;
    if (has_residual_ && !(g_.channels_last && g_.kh == 1 && g_.kw == 1))
      return Unsupported("op '" + op.name + "': a residual input needs a channels_last 1x1 conv");
    if (g_.channels_last) {
      if (g_.group != 1)
        return Unsupported("op '" + op.name + "': channels_last needs one group, got group " + std::to_string(g_.group));
      if (WinogradPlan::applies(g_) && winograd_.prepare(g_, k_ * gemm::ukernel_work(pixels_, g_.m)))
        return prepare_winograd(op, w);
      path_ = Path::kNhwc;
      int64_t scratch = 0;
      EP_RETURN_IF_ERROR(prepare_nhwc(op, w, &scratch));
      EP_RETURN_IF_ERROR(read_residual(op, ins, y));
      scratch_bytes = static_cast<size_t>(scratch) * sizeof(float);
      return Status::Ok();
    }

    if (g_.depthwise()) {
      path_ = Path::kDepthwise;  // reads the weights in place: [C, 1, kh, kw] is already per channel
      if (!depthwise_.prepare(g_)) return bad(op, "input " + x.shape_str() + " is too large");
      if (w.storage == Storage::kWeight) depthwise_.keep_weights(w.as<const float>());
      scratch_bytes = static_cast<size_t>(depthwise_.elements()) * sizeof(float);
      return Status::Ok();
    }
    const bool unpadded_1x1 = g_.kh == 1 && g_.kw == 1 && g_.pt == 0 && g_.pl == 0 && g_.pb == 0 && g_.pr == 0;
    const bool pointwise = unpadded_1x1 && g_.sh == 1 && g_.sw == 1;
    int64_t scratch = 0;
    if (WinogradPlan::applies(g_) && winograd_.prepare(g_, direct_work(pointwise))) return prepare_winograd(op, w);
    if (g_.group == 1 && g_.kh * g_.kw > 1 && k_ >= kChannelsLastMinK) {
      path_ = Path::kChannelsLast;
      EP_RETURN_IF_ERROR(prepare_channels_last(op, w, &scratch));
      scratch_bytes = static_cast<size_t>(scratch) * sizeof(float);
      return Status::Ok();
    }
    if (g_.group == 1 && pixel_rows_pay(pointwise)) {
      path_ = Path::kPixelRows;
      EP_RETURN_IF_ERROR(prepare_pixel_rows(op, w, unpadded_1x1, &scratch));
      scratch_bytes = static_cast<size_t>(scratch) * sizeof(float);
      return Status::Ok();
    }
    path_ = pointwise ? Path::kPointwise : Path::kShifted;
    // Weights [M, Cg, kh, kw] are, per group, a row-major Mg x K matrix: pack each one.
    int64_t per_group = 0, total = 0;
    if (!gemm::checked_mul(gemm::panels_a(g_.mg) * gemm::kTileM, k_, &per_group) ||
        !gemm::checked_mul(gemm::whole_lines(per_group), g_.group, &total))
      return bad(op, "weight " + w.shape_str() + " is too large");
    packed_a_floats_ = gemm::whole_lines(per_group);
    if (!packed_.resize(total))
      return Status(StatusCode::kRuntimeError, "op '" + op.name + "': out of memory packing the weights");
    for (int64_t grp = 0; grp < g_.group; ++grp)
      gemm::pack_a(w.as<const float>() + grp * g_.mg * k_, k_, 1, g_.mg, k_, 0, gemm::panels_a(g_.mg),
                   packed_.data() + grp * packed_a_floats_);

    if (path_ == Path::kShifted) {
      EP_RETURN_IF_ERROR(prepare_shifted(op, &scratch));
    } else if (g_.mg <= gemm::kInPlaceMaxRows) {
      for (int64_t c = 0; c < g_.cg; ++c) offsets_.push_back(c * pixels_);  // input row c of the group
    } else {
      // One packed B (the input) per group: groups may run concurrently.
      int64_t panel_b = 0;
      if (!gemm::checked_mul(gemm::panels_b(pixels_) * gemm::kTileN, k_, &panel_b) ||
          !gemm::checked_mul(gemm::whole_lines(panel_b), g_.group, &scratch))
        return bad(op, "input " + x.shape_str() + " and output " + y.shape_str() + " are too large");
      packed_b_floats_ = gemm::whole_lines(panel_b);
    }
    scratch_bytes = static_cast<size_t>(scratch) * sizeof(float);
    return Status::Ok();
  }

  Status run(const std::vector<const Tensor*>& ins, const std::vector<Tensor*>& outs, RunContext& ctx) const override {
    if (outs[0]->numel == 0) return Status::Ok();
    const float* x = ins[0]->as<const float>();
    const float* bias = has_bias_ ? ins[2]->as<const float>() : nullptr;
    float* y = outs[0]->as<float>();
    float* scratch = reinterpret_cast<float*>(ctx.scratch);
    if (path_ == Path::kDepthwise) {
      depthwise_float(depthwise_, x, ins[1]->as<const float>(), bias, epilogue_.lo, epilogue_.hi, y, scratch, ctx.pool);
      return Status::Ok();
    }
    if (path_ == Path::kShifted) {
      run_shifted(x, bias, y, scratch, ctx.pool);
      return Status::Ok();
    }
    if (path_ == Path::kPixelRows) {
      run_pixel_rows(x, bias, y, scratch, ctx.pool);
      return Status::Ok();
    }
    if (path_ == Path::kChannelsLast) {
      run_channels_last(x, bias, y, scratch, ctx.pool);
      return Status::Ok();
    }
    if (path_ == Path::kNhwc) {
      run_nhwc(x, bias, has_residual_ ? ins[3]->as<const float>() : nullptr, y, scratch, ctx.pool);
      return Status::Ok();
    }
    if (path_ == Path::kWinograd) {
      for (int64_t n = 0; n < g_.n; ++n)
        winograd_.run(x + n * g_.c * g_.h * g_.w, packed_.data(), bias, epilogue_.lo, epilogue_.hi,
                      y + n * y_stride_ * pixels_, scratch, ctx.pool, y_stride_);
      return Status::Ok();
    }
    const int64_t in_group = g_.cg * g_.h * g_.w, out_group = g_.mg * pixels_;
    for (int64_t n = 0; n < g_.n; ++n) {
      const float* xn = x + n * g_.c * g_.h * g_.w;
      float* yn = y + n * g_.m * pixels_;
      gemm::sgemm_batch(g_.group, [&](int64_t grp, gemm::Problem* p) {
        p->m = g_.mg;
        p->n = pixels_;
        p->k = k_;
        p->a = gemm::Operand::prepacked(packed_.data() + grp * packed_a_floats_);
        if (!offsets_.empty()) {
          p->b = gemm::Operand::in_place(xn + grp * in_group, offsets_.data());
        } else {
          p->b = gemm::Operand::strided(xn + grp * in_group, pixels_, 1, scratch + grp * packed_b_floats_);
        }
        p->c = yn + grp * out_group;
        p->ldc = pixels_;
        p->epilogue = epilogue_;
        if (bias != nullptr) p->epilogue.bias = bias + grp * g_.mg;
      }, ctx.pool);
    }
    return Status::Ok();
  }

 private:
  enum class Path { kDepthwise, kPointwise, kShifted, kPixelRows, kChannelsLast, kWinograd, kNhwc };

  // Winograd planned (winograd_.prepare): its weights kept, reordered, and its scratch.
  Status prepare_winograd(const OpInfo& op, const Tensor& w) {
    path_ = Path::kWinograd;
    if (!packed_.resize(winograd_.packed_floats()))
      return Status(StatusCode::kRuntimeError, "op '" + op.name + "': out of memory packing the weights");
    winograd_.pack_weights(w.as<const float>(), packed_.data());
    scratch_bytes = static_cast<size_t>(winograd_.scratch_floats()) * sizeof(float);
    return Status::Ok();
  }

  // The micro-kernel work (gemm::ukernel_work times K) of the GEMM the conv runs without Winograd: the
  // pixel rows' (channels-last or gathered) or the pointwise / shifted one's, whichever is less.
  int64_t direct_work(bool pointwise) const {
    return k_ * std::min(gemm::ukernel_work(pixels_, g_.m), gemm::ukernel_work(g_.mg, grid_columns(pointwise)));
  }

  // Whether the pixel-rows GEMM does at least 10% less micro-kernel work than the pointwise or shifted one.
  bool pixel_rows_pay(bool pointwise) const {
    return gemm::ukernel_work(pixels_, g_.m) * 10 < gemm::ukernel_work(g_.mg, grid_columns(pointwise)) * 9;
  }

  // N of the pointwise or shifted GEMM: the pixels, or the OH x PWs grid of the shifted path.
  int64_t grid_columns(bool pointwise) const {
    const int64_t phase_w = (g_.w + g_.pl + g_.pr + g_.sw - 1) / g_.sw;
    return pointwise ? pixels_ : g_.oh * phase_w;
  }

  // The pixel-rows path: W^T packed as the GEMM's B; A gathered from the input (an unpadded 1x1 conv)
  // or from the shifted path's phase planes. Scratch: the planes, packed A, and the partial sums.
  Status prepare_pixel_rows(const OpInfo& op, const Tensor& w, bool unpadded_1x1, int64_t* scratch_floats) {
    int64_t packed_a = 0, partial = 0;
    if (!gemm::checked_mul(gemm::panels_a(pixels_) * gemm::kTileM, k_, &packed_a) ||
        !gemm::checked_mul(pixels_, g_.m, &partial))
      return bad(op, "weight " + w.shape_str() + " is too large");
    EP_RETURN_IF_ERROR(pack_weights_as_b(op, w, w.as<const float>()));
    pixel_offsets_.clear();
    if (unpadded_1x1) {
      // Pixel (y, x) reads input (y*sh, x*sw) of every channel, in place.
      padded_floats_ = 0;
      for (int64_t c = 0; c < g_.c; ++c) offsets_.push_back(c * g_.h * g_.w);
      for (int64_t p = 0; p < pixels_; ++p) pixel_offsets_.push_back(p / g_.ow * g_.sh * g_.w + p % g_.ow * g_.sw);
    } else {
      // Pixel (y, x) is grid column y * PWs + x of the shifted path.
      int64_t unused = 0;
      EP_RETURN_IF_ERROR(prepare_shifted(op, &unused));
      for (int64_t p = 0; p < pixels_; ++p) pixel_offsets_.push_back(p / g_.ow * phase_w_ + p % g_.ow);
    }
    packed_a_floats_ = gemm::whole_lines(packed_a);
    *scratch_floats = padded_floats_ + packed_a_floats_ + partial;
    return Status::Ok();
  }

  void run_pixel_rows(const float* x, const float* bias, float* y, float* scratch, ThreadPool* pool) const {
    float* padded = scratch;
    float* packed_a = padded + padded_floats_;
    float* partial = packed_a + packed_a_floats_;
    for (int64_t n = 0; n < g_.n; ++n) {
      const float* xn = x + n * g_.c * g_.h * g_.w;
      if (padded_floats_ > 0) fill_phases(xn, padded, pool);
      multiply_pixel_rows(gemm::Operand::gathered(padded_floats_ > 0 ? padded : xn, pixel_offsets_.data(),
                                                  offsets_.data(), packed_a),
                          bias, y + n * g_.m * pixels_, partial, pool);
    }
  }

  // The GEMM of the pixel-rows and channels-last paths: the output pixels as rows of A (gathered from
  // the input), the packed weights as B, C stored transposed into the image's NCHW output `yn`.
  void multiply_pixel_rows(const gemm::Operand& a, const float* bias, float* yn, float* partial,
                           ThreadPool* pool) const {
    gemm::Problem p;
    p.m = pixels_;
    p.n = g_.m;
    p.k = k_;
    p.a = a;
    p.b = gemm::Operand::prepacked(packed_.data());
    p.c = yn;
    p.ldc = pixels_;
    p.transpose_c = true;
    p.partial = partial;
    p.epilogue = epilogue_;
    p.epilogue.bias = bias;
    gemm::sgemm(p, pool);
  }

  // The stride-split phase planes (PHs x PWs each) and the phases some tap reads, in order (phases_);
  // returns slot, where slot[a * sw + b] is the place of phase (a, b) among them.
  std::vector<int64_t> plan_phases() {
    const int64_t ph = g_.h + g_.pt + g_.pb, pw = g_.w + g_.pl + g_.pr;
    phase_h_ = (ph + g_.sh - 1) / g_.sh;
    phase_w_ = (pw + g_.sw - 1) / g_.sw;
    std::vector<int64_t> slot(g_.sh * g_.sw, -1);
    for (int64_t i = 0; i < g_.kh; ++i)
      for (int64_t j = 0; j < g_.kw; ++j) slot[tap_phase(i, j)] = 0;
    phases_.clear();
    for (int64_t p = 0; p < g_.sh * g_.sw; ++p)
      if (slot[p] == 0) {
        slot[p] = static_cast<int64_t>(phases_.size());
        phases_.push_back(p);
      }
    return slot;
  }
  // The phase (a * sw + b) that tap (i, j) reads.
  int64_t tap_phase(int64_t i, int64_t j) const { return (i * g_.dh) % g_.sh * g_.sw + (j * g_.dw) % g_.sw; }

  // The geometry of the shifted path, and the scratch it needs (floats).
  Status prepare_shifted(const OpInfo& op, int64_t* scratch_floats) {
    const std::vector<int64_t> slot = plan_phases();
    const int64_t used = static_cast<int64_t>(phases_.size());
    int64_t phase = 0, channel = 0, padded = 0, panel_b = 0, packed = 0;
    if (!gemm::checked_mul(phase_h_, phase_w_, &phase) || !gemm::checked_mul(phase, used, &channel) ||
        !gemm::checked_mul(g_.c, channel, &padded) || !gemm::checked_mul(g_.oh, phase_w_, &grid_) ||
        !gemm::checked_mul(gemm::panels_b(grid_) * gemm::kTileN, k_, &panel_b) ||
        !gemm::checked_mul(gemm::whole_lines(panel_b), g_.group, &packed))
      return bad(op, "the padded input is too large");
    phase_floats_ = phase;
    channel_floats_ = channel;
    // Over the grid, a tap reads at most (i*dh) / sh rows further down its phase, which stays inside
    // the plane; the last row, shifted by the widest tap, reads ((kw - 1) * dw) / sw floats past
    // (for dropped columns only) the last plane.
    padded_floats_ = gemm::whole_lines(padded + (g_.kw - 1) * g_.dw / g_.sw);
    // B is read in place when few output channels reuse it, and whenever the kernel has several taps:
    // its kh*kw rows per channel are then shifted views of the same plane, so in place it occupies the
    // caches kh*kw times less than packed (measured faster at every Mg on ResNet's 3x3 convs). A 1x1
    // (strided) conv over many channels packs, like the pointwise path.
    const bool in_place = g_.mg <= gemm::kInPlaceMaxRows || g_.kh * g_.kw > 1;
    packed_b_floats_ = in_place ? 0 : gemm::whole_lines(panel_b);
    *scratch_floats = padded_floats_ + (packed_b_floats_ > 0 ? packed : 0);
    for (int64_t c = 0; c < g_.cg; ++c)
      for (int64_t i = 0; i < g_.kh; ++i)
        for (int64_t j = 0; j < g_.kw; ++j) {
          offsets_.push_back(c * channel_floats_ + slot[tap_phase(i, j)] * phase_floats_ +
                             (i * g_.dh) / g_.sh * phase_w_ + (j * g_.dw) / g_.sw);
        }
    return Status::Ok();
  }

  // Copies image xn into its padded phase planes, one plane (channel c, phase slot s) per work item:
  // the plane's column taps are found once, and each row is one strided copy between zero fills. (Per
  // row the divisions that locate it cost more than copying its few floats: ResNet's 3x3 stride-2
  // convs spent 200 us here, as long as their GEMM's first K block.)
  void fill_phases(const float* xn, float* padded, ThreadPool* pool) const {
    const int64_t used = static_cast<int64_t>(phases_.size()), in_plane = g_.h * g_.w;
    const int64_t grain = std::max<int64_t>(1, kPlaneGrain / std::max<int64_t>(1, phase_floats_));
    pool->parallel_for(g_.c * used, [&](int64_t begin, int64_t end) {
      for (int64_t item = begin; item < end; ++item) {
        const int64_t c = item / used, a = phases_[item % used] / g_.sw, b = phases_[item % used] % g_.sw;
        // Phase column u holds padded column u * sw + b, input column u * sw + b - pl.
        const Tap tap = make_tap(b - g_.pl, g_.sw, g_.w, phase_w_);
        float* dst = padded + c * channel_floats_ + item % used * phase_floats_;
        for (int64_t v = 0; v < phase_h_; ++v, dst += phase_w_) {
          const int64_t iy = v * g_.sh + a - g_.pt;  // phase row v holds padded row v * sh + a
          if (iy < 0 || iy >= g_.h) {
            std::fill(dst, dst + phase_w_, 0.0f);
            continue;
          }
          const float* in = xn + c * in_plane + iy * g_.w + tap.offset;  // in[u * sw]: phase column u
          std::fill(dst, dst + tap.lo, 0.0f);
          if (g_.sw == 1) {
            std::copy(in + tap.lo, in + tap.hi, dst + tap.lo);
          } else if (g_.sw == 2) {
            for (int64_t u = tap.lo; u < tap.hi; ++u) dst[u] = in[u * 2];
          } else {
            for (int64_t u = tap.lo; u < tap.hi; ++u) dst[u] = in[u * g_.sw];
          }
          std::fill(dst + tap.hi, dst + phase_w_, 0.0f);
        }
      }
    }, grain);
    std::fill(padded + g_.c * channel_floats_, padded + padded_floats_, 0.0f);
  }

  // The channels-last path: the pixel-rows GEMM, Y^T[OH*OW, M] = im2col(X)[OH*OW, K] · W^T[K, M], with
  // K ordered (i, j, c) and im2col(X) read in place from channels-last phase planes ([slot][v][u][c]):
  // element (pixel (y, x), k (i, j, c)) lies at pixel_offsets_[p] = (y * PWs + x) * C plus offsets_[k] =
  // the tap's phase plane, its shift ((i*dh) / sh rows, (j*dw) / sw columns) and c. Within a tap
  // consecutive k are adjacent floats. Scratch: the planes, and the partial sums of the transposed C.
  Status prepare_channels_last(const OpInfo& op, const Tensor& w, int64_t* scratch_floats) {
    const std::vector<int64_t> slot = plan_phases();
    const int64_t used = static_cast<int64_t>(phases_.size());
    int64_t phase = 0, padded = 0, partial = 0;
    if (!gemm::checked_mul(phase_h_ * phase_w_, g_.c, &phase) || !gemm::checked_mul(phase, used, &padded) ||
        !gemm::checked_mul(pixels_, g_.m, &partial))
      return bad(op, "weight " + w.shape_str() + " is too large");
    phase_floats_ = phase;
    padded_floats_ = gemm::whole_lines(padded);
    if (g_.channels_last) partial = 0;  // C is the NHWC output itself
    // Weights [M, C, kh, kw] reordered to [M, kh, kw, C]: K in (i, j, c) order.
    const float* wt = w.as<const float>();
    std::vector<float> reordered(static_cast<size_t>(g_.m * k_));
    const int64_t taps = g_.kh * g_.kw;
    for (int64_t m = 0; m < g_.m; ++m)
      for (int64_t c = 0; c < g_.c; ++c)
        for (int64_t t = 0; t < taps; ++t) reordered[m * k_ + t * g_.c + c] = wt[m * k_ + c * taps + t];
    EP_RETURN_IF_ERROR(pack_weights_as_b(op, w, reordered.data()));
    offsets_.clear();
    pixel_offsets_.clear();
    for (int64_t i = 0; i < g_.kh; ++i)
      for (int64_t j = 0; j < g_.kw; ++j)
        for (int64_t c = 0; c < g_.c; ++c)
          offsets_.push_back(slot[tap_phase(i, j)] * phase_floats_ +
                             ((i * g_.dh) / g_.sh * phase_w_ + (j * g_.dw) / g_.sw) * g_.c + c);
    for (int64_t p = 0; p < pixels_; ++p) pixel_offsets_.push_back((p / g_.ow * phase_w_ + p % g_.ow) * g_.c);
    *scratch_floats = padded_floats_ + partial;
    return Status::Ok();
  }

  // Copies image xn into its channels-last phase planes ([slot][v][u][c]), one phase row (slot s, row v:
  // PWs x C floats) per work item. From NCHW, with stride 1 along W a row is a 2-D transpose of the C x W
  // input rows; from NHWC (channels_last 1) it is a copy.
  void fill_channels_last(const float* xn, float* padded, ThreadPool* pool) const {
    const int64_t used = static_cast<int64_t>(phases_.size()), in_plane = g_.h * g_.w, row_floats = phase_w_ * g_.c;
    const int64_t grain = std::max<int64_t>(1, kPlaneGrain / std::max<int64_t>(1, row_floats));
    pool->parallel_for(used * phase_h_, [&](int64_t begin, int64_t end) {
      for (int64_t item = begin; item < end; ++item) {
        const int64_t s = item / phase_h_, v = item % phase_h_, a = phases_[s] / g_.sw, b = phases_[s] % g_.sw;
        float* dst = padded + s * phase_floats_ + v * row_floats;
        const int64_t iy = v * g_.sh + a - g_.pt;  // phase row v holds padded row v * sh + a
        if (iy < 0 || iy >= g_.h) {
          std::fill(dst, dst + row_floats, 0.0f);
          continue;
        }
        // Phase column u holds padded column u * sw + b, input column u * sw + b - pl.
        const Tap tap = make_tap(b - g_.pl, g_.sw, g_.w, phase_w_);
        std::fill(dst, dst + tap.lo * g_.c, 0.0f);
        if (g_.input_nhwc) {
          const float* in = xn + (iy * g_.w + tap.offset) * g_.c;  // in[u * sw * C]: phase column u
          for (int64_t u = tap.lo; u < tap.hi;) {  // runs of adjacent columns (all of them at stride 1)
            const int64_t run = g_.sw == 1 ? tap.hi - tap.lo : 1;
            std::copy_n(in + u * g_.sw * g_.c, run * g_.c, dst + u * g_.c);
            u += run;
          }
          std::fill(dst + tap.hi * g_.c, dst + row_floats, 0.0f);
          continue;
        }
        const float* in = xn + iy * g_.w + tap.offset;  // in[c * H*W + u * sw]: channel c at phase column u
        if (g_.sw == 1) {
          transpose_floats(in + tap.lo, in_plane, dst + tap.lo * g_.c, g_.c, g_.c, tap.hi - tap.lo);
        } else {
          for (int64_t u = tap.lo; u < tap.hi; ++u)
            for (int64_t c = 0; c < g_.c; ++c) dst[u * g_.c + c] = in[c * in_plane + u * g_.sw];
        }
        std::fill(dst + tap.hi * g_.c, dst + row_floats, 0.0f);
      }
    }, grain);
  }

  void run_channels_last(const float* x, const float* bias, float* y, float* scratch, ThreadPool* pool) const {
    float* padded = scratch;
    float* partial = padded + padded_floats_;
    for (int64_t n = 0; n < g_.n; ++n) {
      fill_channels_last(x + n * g_.c * g_.h * g_.w, padded, pool);
      multiply_pixel_rows(gemm::Operand::gathered(padded, pixel_offsets_.data(), offsets_.data(), nullptr), bias,
                          y + n * g_.m * pixels_, partial, pool);
    }
  }

  // The weights as the GEMM's B: `rows` is row-major M x K (the weights, or reordered), which is
  // W^T [K, M] with strides (1, K); the bias then runs along C's columns.
  Status pack_weights_as_b(const OpInfo& op, const Tensor& w, const float* rows) {
    int64_t packed_w = 0;
    if (!gemm::checked_mul(gemm::panels_b(g_.m) * gemm::kTileN, k_, &packed_w))
      return bad(op, "weight " + w.shape_str() + " is too large");
    if (!packed_.resize(packed_w))
      return Status(StatusCode::kRuntimeError, "op '" + op.name + "': out of memory packing the weights");
    gemm::pack_b(rows, 1, k_, k_, g_.m, 0, gemm::panels_b(g_.m), packed_.data());
    epilogue_.bias_kind = has_bias_ ? gemm::BiasKind::kPerColumn : gemm::BiasKind::kNone;
    return Status::Ok();
  }

  // The NHWC path (channels_last): the channels-last GEMM with the output as C, Y[OH*OW, M] row-major,
  // which is the NHWC output itself. A 1x1 stride-1 unpadded conv reads its input in place as A (rows
  // of C floats); a strided unpadded 1x1 gathers its pixels in place; any other conv copies the input
  // once into padded channels-last phase planes (row copies, no transpose), as the channels-last path
  // does. With channels_last 2 the input is NCHW (the image a CNN starts from) and always goes through
  // the planes, transposed on the way.
  Status prepare_nhwc(const OpInfo& op, const Tensor& w, int64_t* scratch_floats) {
    const bool unpadded_1x1 = g_.kh == 1 && g_.kw == 1 && g_.pt == 0 && g_.pl == 0 && g_.pb == 0 && g_.pr == 0;
    if (!unpadded_1x1 || !g_.input_nhwc) return prepare_channels_last(op, w, scratch_floats);
    EP_RETURN_IF_ERROR(pack_weights_as_b(op, w, w.as<const float>()));
    padded_floats_ = 0;
    if (g_.sh != 1 || g_.sw != 1) {
      for (int64_t c = 0; c < g_.c; ++c) offsets_.push_back(c);
      for (int64_t p = 0; p < pixels_; ++p)
        pixel_offsets_.push_back((p / g_.ow * g_.sh * g_.w + p % g_.ow * g_.sw) * g_.c);
    }
    *scratch_floats = 0;
    return Status::Ok();
  }

  void run_nhwc(const float* x, const float* bias, const float* residual, float* y, float* scratch,
                ThreadPool* pool) const {
    for (int64_t n = 0; n < g_.n; ++n) {
      const float* xn = x + n * g_.h * g_.w * g_.c;
      gemm::Problem p;
      p.m = pixels_;
      p.n = g_.m;
      p.k = k_;
      if (padded_floats_ > 0) {
        fill_channels_last(xn, scratch, pool);
        p.a = gemm::Operand::gathered(scratch, pixel_offsets_.data(), offsets_.data(), nullptr);
      } else if (!pixel_offsets_.empty()) {
        p.a = gemm::Operand::gathered(xn, pixel_offsets_.data(), offsets_.data(), nullptr);
      } else {
        p.a = gemm::Operand::strided(xn, g_.c, 1, nullptr);
      }
      p.b = gemm::Operand::prepacked(packed_.data());
      p.c = y + n * pixels_ * y_stride_;
      p.ldc = y_stride_;
      p.epilogue = epilogue_;
      p.epilogue.bias = bias;
      if (residual != nullptr) {
        p.epilogue.residual = residual + n * pixels_ * g_.m;
        p.epilogue.ldr = g_.m;
      }
      gemm::sgemm(p, pool);
    }
  }

  // y_stride (channels_last only): the output's pixels lie y_stride floats apart, its M channels a slice
  // of a wider NHWC tensor (a Concat's output, passes/channels_last.py), which must stay in the arena.
  Status read_y_stride(const OpInfo& op, AttrReader& attrs, const Tensor& y) {
    y_stride_ = g_.m;
    if (!attrs.has("y_stride")) return Status::Ok();
    const int64_t stride = attrs.i("y_stride");
    EP_RETURN_IF_ERROR(attrs.status());
    if (!g_.channels_last || stride < g_.m || stride > kMaxConvAttr)
      return bad(op, "y_stride " + std::to_string(stride) + " needs channels_last and at least the " +
                         std::to_string(g_.m) + " output channels");
    const uint64_t rows = static_cast<uint64_t>(g_.n * g_.oh * g_.ow);
    const uint64_t span = rows == 0 ? 0 : ((rows - 1) * static_cast<uint64_t>(stride) + g_.m) * sizeof(float);
    if (y.storage != Storage::kArena || y.offset + span > op.arena_bytes)
      return bad(op, "output '" + y.name + "' with y_stride " + std::to_string(stride) + " runs past the arena");
    y_stride_ = stride;
    return Status::Ok();
  }

  // The fused residual (input 3, passes/fuse_residual.py): float, the output's shape.
  Status read_residual(const OpInfo& op, const std::vector<const Tensor*>& ins, const Tensor& y) const {
    if (!has_residual_) return Status::Ok();
    EP_RETURN_IF_ERROR(expect_dtype(op, *ins[3], DType::kFloat32, "residual"));
    return expect_shape(op, *ins[3], std::vector<int64_t>(y.dims, y.dims + y.rank), "residual");
  }

  void run_shifted(const float* x, const float* bias, float* y, float* scratch, ThreadPool* pool) const {
    float* padded = scratch;
    float* panels = padded + padded_floats_;  // packed B per group, when B is packed
    for (int64_t n = 0; n < g_.n; ++n) {
      const float* xn = x + n * g_.c * g_.h * g_.w;
      float* yn = y + n * g_.m * pixels_;
      fill_phases(xn, padded, pool);
      gemm::sgemm_batch(g_.group, [&](int64_t grp, gemm::Problem* p) {
        p->m = g_.mg;
        p->n = grid_;
        p->k = k_;
        p->a = gemm::Operand::prepacked(packed_.data() + grp * packed_a_floats_);
        const float* b = padded + grp * g_.cg * channel_floats_;
        if (packed_b_floats_ > 0) {
          p->b = gemm::Operand::rows(b, offsets_.data(), panels + grp * packed_b_floats_);
        } else {
          p->b = gemm::Operand::in_place(b, offsets_.data());
        }
        p->c = yn + grp * g_.mg * pixels_;
        p->ldc = pixels_;
        if (phase_w_ != g_.ow) {  // keep the first OW of every PWs grid columns
          p->crop_grid = phase_w_;
          p->crop_keep = g_.ow;
        }
        p->epilogue = epilogue_;
        if (bias != nullptr) p->epilogue.bias = bias + grp * g_.mg;
      }, pool);
    }
  }

  Geometry g_;
  Path path_ = Path::kShifted;
  bool has_bias_ = false, has_residual_ = false;
  int64_t y_stride_ = 0;      // floats between output pixels (channels_last): M, or y_stride
  int64_t k_ = 0, pixels_ = 0;  // GEMM K (Cg * kh * kw) and N (OH * OW)
  DepthwisePlan depthwise_;
  WinogradPlan winograd_;
  // B by rows: row k of the group's B starts at offsets_[k] (in the input for the pointwise path,
  // in the padded phase planes for the shifted one); empty when the pointwise path packs B. The
  // pixel-rows path: the im2col column k of its A starts at offsets_[k], and pixel p is pixel_offsets_[p]
  // further on.
  std::vector<int64_t> offsets_, pixel_offsets_;
  // The shifted path: per channel, the phases_ (a * sw + b) that taps read, each a plane of
  // phase_floats_ = PHs x PWs; a GEMM over the OH x PWs grid.
  std::vector<int64_t> phases_;
  int64_t phase_h_ = 0, phase_w_ = 0, phase_floats_ = 0, channel_floats_ = 0, grid_ = 0, padded_floats_ = 0;
  gemm::AlignedFloats packed_;  // per group: packed Mg x K weights
  int64_t packed_a_floats_ = 0, packed_b_floats_ = 0;  // per group, rounded to 64-byte lines (pixel rows: A in scratch)
  gemm::Epilogue epilogue_;
};

// ---- ConvTranspose --------------------------------------------------------------------------------

class ConvTransposeKernel final : public OpKernel {
 public:
  Status prepare(const OpInfo& op, const std::vector<const Tensor*>& ins,
                 const std::vector<const Tensor*>& outs) override {
    AttrReader attrs(op);
    const auto output_padding = attrs.ints("output_padding", 2);
    EP_RETURN_IF_ERROR(read_common(op, ins, outs, attrs, &g_));
    const Tensor &x = *ins[0], &w = *ins[1], &y = *outs[0];
    for (int64_t p : output_padding)
      if (p < 0 || p > kMaxConvAttr) return bad(op, "output_padding must be in [0, 2^30]");
    if (w.dims[0] != g_.c)
      return bad(op, "weight " + w.shape_str() + " is for " + std::to_string(w.dims[0]) + " input channels, but input " +
                         x.shape_str() + " has " + std::to_string(g_.c));
    if (g_.h < 1 || g_.w < 1) return bad(op, "input " + x.shape_str() + " has an empty plane");
    g_.mg = w.dims[1];
    g_.m = g_.mg * g_.group;
    g_.oh = (g_.h - 1) * g_.sh + g_.dh * (g_.kh - 1) + 1 + output_padding[0] - g_.pt - g_.pb;
    g_.ow = (g_.w - 1) * g_.sw + g_.dw * (g_.kw - 1) + 1 + output_padding[1] - g_.pl - g_.pr;
    if (g_.oh < 1 || g_.ow < 1) return bad(op, "pads leave an empty output for input " + x.shape_str());
    EP_RETURN_IF_ERROR(expect_shape(op, y, {g_.n, g_.m, g_.oh, g_.ow}, "output"));
    EP_RETURN_IF_ERROR(read_bias(op, ins, g_.m, &has_bias_));

    // Column entry (m, i, j) of input pixel (h, w) lands on output (h*sh + i*dh - pt, w*sw + j*dw - pl).
    row_taps_.clear();
    col_taps_.clear();
    for (int64_t i = 0; i < g_.kh; ++i) row_taps_.push_back(make_tap(i * g_.dh - g_.pt, g_.sh, g_.oh, g_.h));
    for (int64_t j = 0; j < g_.kw; ++j) col_taps_.push_back(make_tap(j * g_.dw - g_.pl, g_.sw, g_.ow, g_.w));

    // A = W_g^T: row (m, i, j), column c is W[g*Cg + c, m, i, j], a strided view of the weights.
    int64_t rows = 0, pixels = 0, per_group = 0, total = 0, col = 0, panel_b = 0;
    if (!gemm::checked_mul(g_.mg, g_.kh * g_.kw, &rows) || !gemm::checked_mul(g_.h, g_.w, &pixels) ||
        !gemm::checked_mul(gemm::panels_a(rows) * gemm::kTileM, g_.cg, &per_group) ||
        !gemm::checked_mul(gemm::whole_lines(per_group), g_.group, &total) || !gemm::checked_mul(rows, pixels, &col) ||
        !gemm::checked_mul(gemm::panels_b(pixels) * gemm::kTileN, g_.cg, &panel_b))
      return bad(op, "weight " + w.shape_str() + " and input " + x.shape_str() + " are too large");
    rows_ = rows;
    pixels_ = pixels;
    packed_a_floats_ = gemm::whole_lines(per_group);
    col_floats_ = gemm::whole_lines(col);
    if (!packed_.resize(total))
      return Status(StatusCode::kRuntimeError, "op '" + op.name + "': out of memory packing the weights");
    for (int64_t grp = 0; grp < g_.group; ++grp)
      gemm::pack_a(w.as<const float>() + grp * g_.cg * rows_, 1, rows_, rows_, g_.cg, 0, gemm::panels_a(rows_),
                   packed_.data() + grp * packed_a_floats_);
    scratch_bytes = static_cast<size_t>(col_floats_ + panel_b) * sizeof(float);
    return Status::Ok();
  }

  Status run(const std::vector<const Tensor*>& ins, const std::vector<Tensor*>& outs, RunContext& ctx) const override {
    if (outs[0]->numel == 0) return Status::Ok();
    const float* x = ins[0]->as<const float>();
    const float* bias = has_bias_ ? ins[2]->as<const float>() : nullptr;
    float* y = outs[0]->as<float>();
    float* col = reinterpret_cast<float*>(ctx.scratch);
    float* panels = col + col_floats_;
    const int64_t out_plane = g_.oh * g_.ow;
    for (int64_t n = 0; n < g_.n; ++n) {
      for (int64_t grp = 0; grp < g_.group; ++grp) {
        gemm::Problem p;
        p.m = rows_;
        p.n = pixels_;
        p.k = g_.cg;
        p.a = gemm::Operand::prepacked(packed_.data() + grp * packed_a_floats_);
        p.b = gemm::Operand::strided(x + (n * g_.c + grp * g_.cg) * pixels_, pixels_, 1, panels);
        p.c = col;
        p.ldc = pixels_;
        gemm::sgemm(p, ctx.pool);
        // col2im: each output channel gathers its own kh*kw column rows, so channels are independent.
        const int64_t grain = std::max<int64_t>(1, kPlaneGrain / std::max<int64_t>(1, out_plane));
        ctx.pool->parallel_for(g_.mg, [&](int64_t begin, int64_t end) {
          for (int64_t m = begin; m < end; ++m) {
            const int64_t channel = grp * g_.mg + m;
            float* out = y + (n * g_.m + channel) * out_plane;
            std::fill(out, out + out_plane, bias != nullptr ? bias[channel] : 0.0f);
            col2im(col + m * g_.kh * g_.kw * pixels_, out);
          }
        }, grain);
      }
    }
    return Status::Ok();
  }

 private:
  // Adds the kh*kw column rows of one output channel (`rows`, each H*W) into its output plane.
  void col2im(const float* rows, float* out) const {
    for (int64_t i = 0; i < g_.kh; ++i) {
      const Tap& rt = row_taps_[i];
      for (int64_t j = 0; j < g_.kw; ++j) {
        const Tap& ct = col_taps_[j];
        const float* src = rows + (i * g_.kw + j) * pixels_;
        for (int64_t h = rt.lo; h < rt.hi; ++h) {
          float* dst = out + (h * g_.sh + rt.offset) * g_.ow + ct.offset;  // dst[w * sw]
          const float* s = src + h * g_.w;
          if (g_.sw == 1) {
            for (int64_t x = ct.lo; x < ct.hi; ++x) dst[x] += s[x];
          } else {
            for (int64_t x = ct.lo; x < ct.hi; ++x) dst[x * g_.sw] += s[x];
          }
        }
      }
    }
  }

  Geometry g_;
  bool has_bias_ = false;
  int64_t rows_ = 0, pixels_ = 0;  // GEMM M (Mg * kh * kw) and N (H * W)
  std::vector<Tap> row_taps_, col_taps_;
  gemm::AlignedFloats packed_;     // per group: packed W_g^T
  int64_t packed_a_floats_ = 0, col_floats_ = 0;
};

}  // namespace

std::unique_ptr<OpKernel> make_conv_kernel(OpCode code) {
  if (code == OpCode::kConv) return std::make_unique<ConvKernel>();
  if (code == OpCode::kConvTranspose) return std::make_unique<ConvTransposeKernel>();
  return nullptr;
}

}  // namespace edgepack
