// Window geometry shared by the float Conv / ConvTranspose kernels (conv.cpp) and the quantized
// Conv kernels (qconv.cpp): reading and range-checking the attributes and shapes a hostile file
// could get wrong, and the per-tap output ranges that keep padding tests out of inner loops.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>

#include "kernels/ref/kernel_util.h"

namespace edgepack {

constexpr int64_t kMaxConvAttr = int64_t{1} << 30;  // bound on attributes and dims: products stay in int64

struct ConvGeometry {
  int64_t n = 0, c = 0, h = 0, w = 0;  // input
  int64_t m = 0, oh = 0, ow = 0;       // output channels and plane
  int64_t kh = 0, kw = 0;
  int64_t sh = 1, sw = 1, dh = 1, dw = 1;
  int64_t pt = 0, pl = 0, pb = 0, pr = 0;
  int64_t group = 1, cg = 0, mg = 0;  // channels per group: input, output
  // The float Conv's channels_last attr: 1 = input and output NHWC, 2 = input NCHW, output NHWC.
  bool channels_last = false;          // output NHWC
  bool input_nhwc = false;
  bool depthwise() const { return cg == 1 && mg == 1; }
};

// The outputs o in [lo, hi) of one kernel tap whose input index o * stride + offset lies in
// [0, extent). Precomputed so that the inner loops never test for padding.
struct Tap {
  int64_t lo, hi, offset;
};

inline Tap make_tap(int64_t offset, int64_t stride, int64_t extent, int64_t outputs) {
  const int64_t lo = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
  const int64_t hi = extent - offset <= 0 ? 0 : (extent - offset + stride - 1) / stride;
  const int64_t clamped_lo = std::min(lo, outputs);
  return {clamped_lo, std::min(std::max(clamped_lo, hi), outputs), offset};
}

// Ranks, a constant weight, the window attributes and the input and kernel dims; fills every field
// but the output ones (m, mg, oh, ow), which Conv and ConvTranspose derive differently. With
// `channels_last` 1 the input is NHWC, with 1 or 2 the output.
inline Status read_conv_window(const OpInfo& op, AttrReader& attrs, const Tensor& x, const Tensor& w,
                               ConvGeometry* g, int64_t channels_last = 0) {
  const bool nhwc = channels_last == 1;
  if (x.rank != 4)
    return bad(op, std::string("input must be ") + (nhwc ? "NHWC" : "NCHW") + " (rank 4), got " + x.shape_str());
  if (w.rank != 4) return bad(op, "weight must have rank 4, got " + w.shape_str());
  if (w.storage != Storage::kWeight)
    return Unsupported("op '" + op.name + "' (" + op_name(op.code) + "): weight '" + w.name +
                       "' must be a constant (run-time weights are not supported)");
  const auto strides = attrs.ints("strides", 2), pads = attrs.ints("pads", 4), dilations = attrs.ints("dilations", 2);
  g->group = attrs.i("group");
  EP_RETURN_IF_ERROR(attrs.status());
  for (int i = 0; i < 2; ++i)
    if (strides[i] < 1 || strides[i] > kMaxConvAttr || dilations[i] < 1 || dilations[i] > kMaxConvAttr)
      return bad(op, "strides and dilations must be in [1, 2^30]");
  for (int64_t p : pads)
    if (p < 0 || p > kMaxConvAttr) return bad(op, "pads must be in [0, 2^30]");
  if (g->group < 1 || g->group > kMaxConvAttr)
    return bad(op, "group must be in [1, 2^30], got " + std::to_string(g->group));
  for (int i = 0; i < 4; ++i)
    if (x.dims[i] > kMaxConvAttr || w.dims[i] > kMaxConvAttr)
      return Unsupported("op '" + op.name + "': dimensions above 2^30 are not supported (input " + x.shape_str() +
                         ", weight " + w.shape_str() + ")");
  g->channels_last = channels_last != 0;
  g->input_nhwc = nhwc;
  g->n = x.dims[0];
  g->c = x.dims[nhwc ? 3 : 1];
  g->h = x.dims[nhwc ? 1 : 2];
  g->w = x.dims[nhwc ? 2 : 3];
  g->kh = w.dims[2];
  g->kw = w.dims[3];
  if (g->kh < 1 || g->kw < 1) return bad(op, "weight " + w.shape_str() + " has an empty kernel window");
  g->sh = strides[0];
  g->sw = strides[1];
  g->dh = dilations[0];
  g->dw = dilations[1];
  g->pt = pads[0];
  g->pl = pads[1];
  g->pb = pads[2];
  g->pr = pads[3];
  if (g->c % g->group != 0)
    return bad(op, "group " + std::to_string(g->group) + " does not divide the " + std::to_string(g->c) +
                       " input channels of " + x.shape_str());
  g->cg = g->c / g->group;
  return Status::Ok();
}

// Conv's output side: M and the channels per group from the weight [M, C/group, kh, kw], the output
// plane from the window, and the output tensor's shape checked against them.
inline Status read_conv_output(const OpInfo& op, const Tensor& x, const Tensor& w, const Tensor& y,
                               ConvGeometry* g) {
  g->m = w.dims[0];
  if (w.dims[1] != g->cg)
    return bad(op, "weight " + w.shape_str() + " expects " + std::to_string(w.dims[1]) +
                       " input channels per group, but input " + x.shape_str() + " with group " +
                       std::to_string(g->group) + " has " + std::to_string(g->cg));
  if (g->m % g->group != 0)
    return bad(op, "group " + std::to_string(g->group) + " does not divide the " + std::to_string(g->m) +
                       " output channels of weight " + w.shape_str());
  g->mg = g->m / g->group;
  const int64_t span_h = g->h + g->pt + g->pb - g->dh * (g->kh - 1) - 1;
  const int64_t span_w = g->w + g->pl + g->pr - g->dw * (g->kw - 1) - 1;
  if (span_h < 0 || span_w < 0)
    return bad(op, "the " + std::to_string(g->kh) + "x" + std::to_string(g->kw) +
                       " window (with dilation) does not fit the padded input " + x.shape_str());
  g->oh = span_h / g->sh + 1;
  g->ow = span_w / g->sw + 1;
  if (g->channels_last) return expect_shape(op, y, {g->n, g->oh, g->ow, g->m}, "output");
  return expect_shape(op, y, {g->n, g->m, g->oh, g->ow}, "output");
}

}  // namespace edgepack
