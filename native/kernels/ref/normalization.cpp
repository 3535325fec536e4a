// Normalisation kernels: Softmax, LogSoftmax, LayerNormalization, LRN (float32).
//
// Sums are accumulated in double: rows can be long (vocabularies, 224x224 planes) and the reference
// accumulates in float64.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "edgepack/kernel.h"
#include "kernels/ref/float_rows.h"
#include "kernels/ref/kernel_util.h"
#include "kernels/ref/kernels.h"

namespace edgepack {
namespace {

constexpr int64_t kBlock = 64;     // columns processed together when the reduced axis is strided

// A float32 input 0 and one output of the same shape and dtype (the shape of every op in this file).
Status expect_float_io(const OpInfo& op, const std::vector<const Tensor*>& ins,
                       const std::vector<const Tensor*>& outs, size_t min_inputs, size_t max_inputs) {
  EP_RETURN_IF_ERROR(expect_inputs(op, ins, min_inputs, max_inputs));
  if (outs.size() != 1) return bad(op, "has " + std::to_string(outs.size()) + " outputs, expected 1");
  EP_RETURN_IF_ERROR(expect_dtype(op, *ins[0], DType::kFloat32, "input"));
  EP_RETURN_IF_ERROR(expect_dtype(op, *outs[0], DType::kFloat32, "output"));
  return expect_same_shape(op, *ins[0], *outs[0]);
}

// Reads an axis attribute that must index a dimension of `t`.
Status read_axis(const OpInfo& op, const Tensor& t, int64_t* axis) {
  AttrReader attrs(op);
  *axis = attrs.i("axis");
  EP_RETURN_IF_ERROR(attrs.status());
  if (*axis < 0 || *axis >= t.rank) return bad(op, "axis " + std::to_string(*axis) + " is out of range for rank " +
                                                   std::to_string(t.rank));
  return Status::Ok();
}

// Sum of term(i) over [0, n) in 8 independent double lanes: a single running sum is a serial chain
// the compiler may not reorder, the lanes vectorise; double keeps the reference's accuracy.
template <class F> double lane_sum(int64_t n, const F& term) {
  double lanes[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) lanes[k] += term(i + k);
  for (; i < n; ++i) lanes[0] += term(i);
  return ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
}

// ---- Softmax / LogSoftmax -------------------------------------------------------------------------
// y = exp(y) with kernel_util.h's branch-free exp_fast, inlined so that the loop vectorises.
void exp_in_place(float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = exp_fast(y[i]);
}

#if !defined(EDGEPACK_FLOAT_ROWS_AVX512)
// The max of value(i) over [0, n) in 8 independent lanes: a single running max is a serial chain that
// does not vectorise. A NaN may be skipped here; it still reaches the output through exp(x - max).
template <class F> float max_of(int64_t n, const F& value) {
  float lanes[8];
  std::fill(lanes, lanes + 8, -std::numeric_limits<float>::infinity());
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) lanes[k] = value(i + k) > lanes[k] ? value(i + k) : lanes[k];
  for (; i < n; ++i) lanes[0] = value(i) > lanes[0] ? value(i) : lanes[0];
  return *std::max_element(lanes, lanes + 8);
}

// A contiguous row (the axis is the last non-trivial one), plus the row `b` of a fused bias when not
// null. y holds x - max, then its exponentials, then the result; with inverse_sum, y is left at the
// exponentials and *inverse_sum = 1 / their sum.
void softmax_row(const float* x, const float* b, float* y, int64_t n, bool log, float* inverse_sum = nullptr) {
  const auto value = [x, b](int64_t i) { return b ? x[i] + b[i] : x[i]; };
  const float max = max_of(n, value);
  for (int64_t i = 0; i < n; ++i) y[i] = value(i) - max;
  exp_in_place(y, n);
  const double sum = lane_sum(n, [y](int64_t i) { return y[i]; });
  if (inverse_sum != nullptr) {
    *inverse_sum = static_cast<float>(1.0 / sum);
    return;
  }
  if (log) {  // (x - max) - log(sum): folding max into the shift first would lose log(sum) at large |max|
    const float log_sum = static_cast<float>(std::log(sum));
    for (int64_t i = 0; i < n; ++i) y[i] = (value(i) - max) - log_sum;
  } else {
    const float scale = static_cast<float>(1.0 / sum);
    for (int64_t i = 0; i < n; ++i) y[i] *= scale;
  }
}
#endif

// y = 0 where y is NaN (Where(IsNaN(y), 0, y)).
void nan_to_zero_in_place(float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = std::isnan(y[i]) ? 0.0f : y[i];
}

// `cols` (<= kBlock) adjacent columns of an [n, stride] block, the axis running down the rows: the
// columns are processed together so that every pass reads contiguous memory.
void softmax_columns(const float* x, float* y, int64_t n, int64_t stride, int64_t cols, bool log) {
  float max[kBlock];
  double sum[kBlock];
  std::fill(max, max + cols, -std::numeric_limits<float>::infinity());
  std::fill(sum, sum + cols, 0.0);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t j = 0; j < cols; ++j) max[j] = x[r * stride + j] > max[j] ? x[r * stride + j] : max[j];
  for (int64_t r = 0; r < n; ++r) {
    const float* in = x + r * stride;
    float* out = y + r * stride;
    for (int64_t j = 0; j < cols; ++j) out[j] = in[j] - max[j];
    exp_in_place(out, cols);
    for (int64_t j = 0; j < cols; ++j) sum[j] += out[j];
  }
  float finish[kBlock];  // log(sum) (log) or the scale of each column
  for (int64_t j = 0; j < cols; ++j)
    finish[j] = log ? static_cast<float>(std::log(sum[j])) : static_cast<float>(1.0 / sum[j]);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t j = 0; j < cols; ++j)
      y[r * stride + j] = log ? (x[r * stride + j] - max[j]) - finish[j] : y[r * stride + j] * finish[j];
}

}  // namespace

void softmax_rows(const float* x, const float* bias, const int64_t* bias_offsets, float* y, int64_t rows, int64_t n,
                  bool log, bool nan_to_zero) {
#if defined(EDGEPACK_FLOAT_ROWS_AVX512)
  f32_softmax_rows__avx512(x, bias, bias_offsets, y, rows, n, log, nan_to_zero);
#else
  for (int64_t r = 0; r < rows; ++r) {
    softmax_row(x + r * n, bias ? bias + bias_offsets[r] : nullptr, y + r * n, n, log);
    if (nan_to_zero) nan_to_zero_in_place(y + r * n, n);
  }
#endif
}

void softmax_exp_rows(const float* x, const float* bias, const int64_t* bias_offsets, float* y, int64_t rows,
                      int64_t n, float* inverse_sums) {
#if defined(EDGEPACK_FLOAT_ROWS_AVX512)
  f32_softmax_exp_rows__avx512(x, bias, bias_offsets, y, rows, n, inverse_sums);
#else
  for (int64_t r = 0; r < rows; ++r)
    softmax_row(x + r * n, bias ? bias + bias_offsets[r] : nullptr, y + r * n, n, false, inverse_sums + r);
#endif
}

namespace {

// Softmax and LogSoftmax. Softmax may carry a fused attention mask (passes/fuse_softmax.py): input 1,
// a bias broadcast to x and added before the softmax (along the last axis only), and nan_to_zero,
// which writes 0 where the result is NaN (a row masked to -inf throughout).
class SoftmaxKernel final : public OpKernel {
 public:
  Status prepare(const OpInfo& op, const std::vector<const Tensor*>& ins,
                 const std::vector<const Tensor*>& outs) override {
    log_ = op.code == OpCode::kLogSoftmax;
    EP_RETURN_IF_ERROR(expect_float_io(op, ins, outs, 1, log_ ? 1 : 2));
    const Tensor& x = *ins[0];
    int64_t axis = 0;
    EP_RETURN_IF_ERROR(read_axis(op, x, &axis));
    EP_RETURN_IF_ERROR(read_nan_to_zero(op, &nan_to_zero_));
    // An empty tensor's other dims can be huge: looping over them would be a hang, not a no-op.
    outer_ = x.numel == 0 ? 0 : product(x, 0, static_cast<int>(axis));
    length_ = x.dims[axis];
    inner_ = product(x, static_cast<int>(axis) + 1, x.rank);
    has_bias_ = ins.size() == 2 && ins[1];
    if (has_bias_) {  // the kernel adds it along the (contiguous) last axis only
      if (axis != x.rank - 1) return bad(op, "a bias needs the softmax along the last axis, got axis " + std::to_string(axis));
      EP_RETURN_IF_ERROR(plan_row_bias(op, x, *ins[1], "bias", &bias_offsets_));
    }
    return Status::Ok();
  }

  Status run(const std::vector<const Tensor*>& ins, const std::vector<Tensor*>& outs, RunContext& ctx) const override {
    const float* x = ins[0]->as<const float>();
    const float* bias = has_bias_ ? ins[1]->as<const float>() : nullptr;
    float* y = outs[0]->as<float>();
    const int64_t blocks = (inner_ + kBlock - 1) / kBlock;  // column blocks per outer index
    const int64_t block_elems = length_ * std::min(inner_, kBlock);
    ctx.pool->parallel_for(outer_ * blocks, [&](int64_t begin, int64_t end) {
      if (inner_ == 1)
        return softmax_rows(x + begin * length_, bias, bias_offsets_.data() + (bias ? begin : 0), y + begin * length_,
                            end - begin, length_, log_, nan_to_zero_);
      for (int64_t item = begin; item < end; ++item) {
        const int64_t o = item / blocks, col = (item % blocks) * kBlock;
        const int64_t offset = o * length_ * inner_ + col;
        const int64_t cols = std::min(kBlock, inner_ - col);
        softmax_columns(x + offset, y + offset, length_, inner_, cols, log_);
        if (nan_to_zero_)
          for (int64_t r = 0; r < length_; ++r) nan_to_zero_in_place(y + offset + r * inner_, cols);
      }
    }, std::max<int64_t>(1, kGrain / std::max<int64_t>(1, block_elems)));
    return Status::Ok();
  }

 private:
  bool log_ = false, nan_to_zero_ = false, has_bias_ = false;
  int64_t outer_ = 0, length_ = 0, inner_ = 0;  // the input as [outer, length (the axis), inner]
  std::vector<int64_t> bias_offsets_;            // per row of x: the offset of its bias row
};

// ---- LayerNormalization ---------------------------------------------------------------------------
// The dims of `t` with leading 1s removed: scale / bias broadcast against the normalised shape.
std::vector<int64_t> squeezed_front(std::vector<int64_t> shape) {
  const auto first = std::find_if(shape.begin(), shape.end(), [](int64_t d) { return d != 1; });
  shape.erase(shape.begin(), first);
  return shape;
}

class LayerNormKernel final : public OpKernel {
 public:
  Status prepare(const OpInfo& op, const std::vector<const Tensor*>& ins,
                 const std::vector<const Tensor*>& outs) override {
    EP_RETURN_IF_ERROR(expect_float_io(op, ins, outs, 2, 4));
    const Tensor& x = *ins[0];
    int64_t axis = 0;
    EP_RETURN_IF_ERROR(read_axis(op, x, &axis));
    // A fused residual (passes/fuse_add_norm.py) is added to x element for element.
    has_residual_ = ins.size() == 4 && ins[3];
    if (has_residual_ && ins[3]->shape() != x.shape())
      return bad(op, "residual '" + ins[3]->name + "' " + ins[3]->shape_str() + " is not the input's shape " +
                     x.shape_str());
    AttrReader attrs(op);
    epsilon_ = attrs.f("epsilon");
    EP_RETURN_IF_ERROR(attrs.status());
    if (!(epsilon_ >= 0.0f) || !std::isfinite(epsilon_)) return bad(op, "epsilon must be a finite value >= 0");
    rows_ = x.numel == 0 ? 0 : product(x, 0, static_cast<int>(axis));  // see SoftmaxKernel
    size_ = product(x, static_cast<int>(axis), x.rank);
    const auto normalized = squeezed_front(std::vector<int64_t>(x.dims + axis, x.dims + x.rank));
    for (size_t i = 1; i < std::min<size_t>(ins.size(), 3); ++i) {
      if (!ins[i]) continue;
      const char* role = i == 1 ? "scale" : "bias";
      EP_RETURN_IF_ERROR(expect_dtype(op, *ins[i], DType::kFloat32, role));
      if (ins[i]->rank > x.rank || squeezed_front(ins[i]->shape()) != normalized)
        return bad(op, std::string(role) + " '" + ins[i]->name + "' " + ins[i]->shape_str() +
                       " does not match the normalised shape of " + x.shape_str() + " from axis " +
                       std::to_string(axis));
    }
    has_bias_ = ins.size() >= 3 && ins[2];
    return Status::Ok();
  }

  Status run(const std::vector<const Tensor*>& ins, const std::vector<Tensor*>& outs, RunContext& ctx) const override {
    const float* x = ins[0]->as<const float>();
    const float* scale = ins[1]->as<const float>();
    const float* bias = has_bias_ ? ins[2]->as<const float>() : nullptr;
    const float* residual = has_residual_ ? ins[3]->as<const float>() : nullptr;
    float* y = outs[0]->as<float>();
    ctx.pool->parallel_for(rows_, [&](int64_t begin, int64_t end) {
      const float* r = residual != nullptr ? residual + begin * size_ : nullptr;
#if defined(EDGEPACK_FLOAT_ROWS_AVX512)
      f32_layer_norm_rows__avx512(x + begin * size_, r, scale, bias, y + begin * size_, end - begin, size_, epsilon_);
#else
      for (int64_t row = begin; row < end; ++row) {
        const float* in = x + row * size_;
        float* out = y + row * size_;
        if (r != nullptr) {  // the sum, in float32 as the Add wrote it, normalised where it lies
          for (int64_t i = 0; i < size_; ++i) out[i] = in[i] + r[(row - begin) * size_ + i];
          in = out;
        }
        normalize_row(in, scale, bias, out);
      }
#endif
    }, std::max<int64_t>(1, kGrain / std::max<int64_t>(1, size_)));
    return Status::Ok();
  }

 private:
  // Two passes (mean, then variance around it) avoid the cancellation of E[x^2] - E[x]^2.
  [[maybe_unused]] void normalize_row(const float* x, const float* scale, const float* bias, float* y) const {
    const double mean = lane_sum(size_, [x](int64_t i) { return x[i]; }) / size_;
    const double squares = lane_sum(size_, [x, mean](int64_t i) { return (x[i] - mean) * (x[i] - mean); });
    const double inv_std = 1.0 / std::sqrt(squares / size_ + epsilon_);
    for (int64_t i = 0; i < size_; ++i) {
      const float v = static_cast<float>((x[i] - mean) * inv_std) * scale[i];
      y[i] = bias ? v + bias[i] : v;
    }
  }

  float epsilon_ = 0;
  bool has_bias_ = false, has_residual_ = false;
  int64_t rows_ = 0, size_ = 0;  // the input as [rows, size (the normalised axes)]
};

// ---- LRN ------------------------------------------------------------------------------------------
// ONNX LRN across channels: y = x / (bias + alpha / size * sum of x^2 over the channel window)^beta,
// the window being floor((size-1)/2) channels before and ceil((size-1)/2) after.
class LrnKernel final : public OpKernel {
 public:
  Status prepare(const OpInfo& op, const std::vector<const Tensor*>& ins,
                 const std::vector<const Tensor*>& outs) override {
    EP_RETURN_IF_ERROR(expect_float_io(op, ins, outs, 1, 1));
    const Tensor& x = *ins[0];
    if (x.rank < 2) return bad(op, "input must have a channel axis (rank >= 2), got " + x.shape_str());
    AttrReader attrs(op);
    const int64_t size = attrs.i("size");
    alpha_ = attrs.f("alpha");
    beta_ = attrs.f("beta");
    bias_ = attrs.f("bias");
    EP_RETURN_IF_ERROR(attrs.status());
    if (size < 1) return bad(op, "size must be >= 1, got " + std::to_string(size));
    alpha_over_size_ = static_cast<float>(static_cast<double>(alpha_) / size);
    batch_ = x.numel == 0 ? 0 : x.dims[0];  // see SoftmaxKernel
    channels_ = x.dims[1];
    // a window wider than the channels reaches them all; clamping keeps c + after_ from overflowing
    before_ = std::min((size - 1) / 2, channels_);
    after_ = std::min(size / 2, channels_);
    inner_ = product(x, 2, x.rank);
    return Status::Ok();
  }

  Status run(const std::vector<const Tensor*>& ins, const std::vector<Tensor*>& outs, RunContext& ctx) const override {
    const float* x = ins[0]->as<const float>();
    float* y = outs[0]->as<float>();
    ctx.pool->parallel_for(batch_ * channels_, [&](int64_t begin, int64_t end) {
      for (int64_t item = begin; item < end; ++item) channel(x, y, item / channels_, item % channels_);
    }, std::max<int64_t>(1, kGrain / std::max<int64_t>(1, inner_ * (before_ + after_ + 1))));
    return Status::Ok();
  }

 private:
  // One output channel: the window's sum of squares is accumulated in the output row, then replaced.
  void channel(const float* x, float* y, int64_t n, int64_t c) const {
    const float* image = x + n * channels_ * inner_;
    float* out = y + (n * channels_ + c) * inner_;
    std::fill(out, out + inner_, 0.0f);
    const int64_t lo = std::max<int64_t>(0, c - before_), hi = std::min(channels_, c + after_ + 1);
    for (int64_t k = lo; k < hi; ++k) {
      const float* row = image + k * inner_;
      for (int64_t i = 0; i < inner_; ++i) out[i] += row[i] * row[i];
    }
    const float* in = image + c * inner_;
    for (int64_t i = 0; i < inner_; ++i) out[i] = in[i] / std::pow(bias_ + alpha_over_size_ * out[i], beta_);
  }

  float alpha_ = 0, beta_ = 0, bias_ = 0, alpha_over_size_ = 0;
  int64_t before_ = 0, after_ = 0;
  int64_t batch_ = 0, channels_ = 0, inner_ = 0;  // the input as [batch, channels, inner]
};

}  // namespace

std::unique_ptr<OpKernel> make_normalization_kernel(OpCode code) {
  switch (code) {
    case OpCode::kSoftmax:
    case OpCode::kLogSoftmax: return std::make_unique<SoftmaxKernel>();
    case OpCode::kLayerNormalization: return std::make_unique<LayerNormKernel>();
    case OpCode::kLRN: return std::make_unique<LrnKernel>();
    default: return nullptr;
  }
}

}  // namespace edgepack
