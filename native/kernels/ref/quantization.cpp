// The int8 scheme's conversion kernels (docs/quantization.md): Quantize (float32 -> int8 / uint8 with
// the output's parameters), Dequantize (int8 / uint8 / int32 -> float32, per tensor or per channel),
// Requantize (codes -> codes under other parameters) and Lut (codes -> codes through a constant
// 256-entry table).
//
// Requantize and Lut map each of the 256 input codes to one output code, so prepare() tabulates that
// map by input byte and run() is one lookup per element: bit-exact to the reference by construction.
#include <algorithm>
#include <string>
#include <vector>

#include "edgepack/kernel.h"
#include "kernels/ref/byte_map.h"
#include "kernels/ref/kernel_util.h"
#include "kernels/ref/kernels.h"
#include "kernels/ref/quant_check.h"
#include "kernels/ref/quant_util.h"

namespace edgepack {
namespace {


// An int8 or uint8 tensor; its code range goes to *lo and *hi when they are given.
Status expect_codes(const OpInfo& op, const Tensor& t, const char* role, int32_t* lo = nullptr,
                    int32_t* hi = nullptr) {
  int32_t min = 0, max = 0;
  if (!code_range(t.dtype, &min, &max))
    return Unsupported("op '" + op.name + "' (" + op_name(op.code) + "): " + role + " '" + t.name + "' is " +
                       dtype_name(t.dtype) + ", expected int8 or uint8");
  if (lo) *lo = min;
  if (hi) *hi = max;
  return Status::Ok();
}

// The code a byte holds in an int8 or uint8 tensor.
int32_t decode(uint8_t byte, DType dtype) {
  return dtype == DType::kInt8 && byte >= 128 ? byte - 256 : byte;
}

// ---- Quantize -------------------------------------------------------------------------------------
struct QuantizeParams {
  float scale = 1.0f;
  int32_t zero_point = 0, lo = 0, hi = 0;
};
using QuantizeFn = void (*)(const float* x, void* y, int64_t n, const QuantizeParams& p);

template <class T> void quantize_loop(const float* x, void* py, int64_t n, const QuantizeParams& p) {
  T* y = static_cast<T*>(py);
  const QuantizeParams params = p;  // a local copy: the output cannot alias it
  for (int64_t i = 0; i < n; ++i)
    y[i] = static_cast<T>(quantize_value(x[i], params.scale, params.zero_point, params.lo, params.hi));
}

class QuantizeKernel final : public OpKernel {
 public:
  Status prepare(const OpInfo& op, const std::vector<const Tensor*>& ins,
                 const std::vector<const Tensor*>& outs) override {
    EP_RETURN_IF_ERROR(expect_inputs(op, ins, 1, 1));
    EP_RETURN_IF_ERROR(expect_outputs(op, outs, 1));
    const Tensor &x = *ins[0], &y = *outs[0];
    EP_RETURN_IF_ERROR(expect_dtype(op, x, DType::kFloat32, "input"));
    EP_RETURN_IF_ERROR(expect_codes(op, y, "output", &params_.lo, &params_.hi));
    EP_RETURN_IF_ERROR(expect_same_shape(op, x, y));
    EP_RETURN_IF_ERROR(expect_per_tensor(op, y, "output"));
    params_.scale = tensor_scale(y);
    params_.zero_point = tensor_zero_point(y);
    fn_ = y.dtype == DType::kInt8 ? quantize_loop<int8_t> : quantize_loop<uint8_t>;
    return Status::Ok();
  }

  Status run(const std::vector<const Tensor*>& ins, const std::vector<Tensor*>& outs, RunContext& ctx) const override {
    const float* x = ins[0]->as<const float>();
    uint8_t* y = outs[0]->as<uint8_t>();  // one byte per element for both dtypes
    ctx.pool->parallel_for(outs[0]->numel, [&](int64_t begin, int64_t end) {
      fn_(x + begin, y + begin, end - begin, params_);
    }, kGrain);
    return Status::Ok();
  }

 private:
  QuantizeFn fn_ = nullptr;
  QuantizeParams params_;
};

// ---- Dequantize -----------------------------------------------------------------------------------
// The input viewed as [outer, count, inner]: channel c has scales[c] and zeros[c] (count 1 and inner
// the whole tensor when per tensor).
struct Channels {
  const float* scales = nullptr;
  const int32_t* zeros = nullptr;
  int64_t count = 1, inner = 1;
};
using DequantizeFn = void (*)(const void* x, float* y, int64_t begin, int64_t end, const Channels& ch);

// (q - zero_point) * scale in float32, as the reference. An int32 input has zero point 0 (checked
// at prepare()), so the subtraction cannot overflow.
template <class T>
void dequantize_range(const void* px, float* y, int64_t begin, int64_t end, const Channels& ch) {
  const T* x = static_cast<const T*>(px);
  if (ch.inner == 1 && ch.count > 1) {  // channels innermost: the parameters change every element
    for (int64_t pos = begin; pos < end;) {
      const int64_t c0 = pos % ch.count, n = std::min(end - pos, ch.count - c0);
      const T* xs = x + pos;
      float* ys = y + pos;
      const float* s = ch.scales + c0;
      const int32_t* z = ch.zeros + c0;
      for (int64_t i = 0; i < n; ++i) ys[i] = static_cast<float>(static_cast<int32_t>(xs[i]) - z[i]) * s[i];
      pos += n;
    }
    return;
  }
  for (int64_t pos = begin; pos < end;) {  // runs of `inner` elements share their channel's parameters
    const int64_t run = pos / ch.inner;
    const int64_t n = std::min(end, (run + 1) * ch.inner) - pos;
    const float s = ch.scales[run % ch.count];
    const int32_t z = ch.zeros[run % ch.count];
    const T* xs = x + pos;
    float* ys = y + pos;
    for (int64_t i = 0; i < n; ++i) ys[i] = static_cast<float>(static_cast<int32_t>(xs[i]) - z) * s;
    pos += n;
  }
}

class DequantizeKernel final : public OpKernel {
 public:
  Status prepare(const OpInfo& op, const std::vector<const Tensor*>& ins,
                 const std::vector<const Tensor*>& outs) override {
    EP_RETURN_IF_ERROR(expect_inputs(op, ins, 1, 1));
    EP_RETURN_IF_ERROR(expect_outputs(op, outs, 1));
    const Tensor &x = *ins[0], &y = *outs[0];
    switch (x.dtype) {
      case DType::kInt8: fn_ = dequantize_range<int8_t>; break;
      case DType::kUInt8: fn_ = dequantize_range<uint8_t>; break;
      case DType::kInt32: fn_ = dequantize_range<int32_t>; break;
      default:
        return Unsupported("op '" + op.name + "' (Dequantize): input '" + x.name + "' is " + dtype_name(x.dtype) +
                           ", expected int8, uint8 or int32");
    }
    EP_RETURN_IF_ERROR(expect_dtype(op, y, DType::kFloat32, "output"));
    EP_RETURN_IF_ERROR(expect_same_shape(op, x, y));
    EP_RETURN_IF_ERROR(expect_per_channel(op, x, "input"));
    scales_ = x.quant.scales;
    zeros_ = x.quant.zero_points;
    channels_ = Channels();
    if (scales_.size() > 1) {
      channels_.count = static_cast<int64_t>(scales_.size());
      for (int d = x.quant.axis + 1; d < x.rank; ++d) channels_.inner *= x.dims[d];
    } else {
      channels_.inner = std::max<int64_t>(1, x.numel);
    }
    channels_.scales = scales_.data();
    channels_.zeros = zeros_.data();
    return Status::Ok();
  }

  Status run(const std::vector<const Tensor*>& ins, const std::vector<Tensor*>& outs, RunContext& ctx) const override {
    const void* x = ins[0]->data;
    float* y = outs[0]->as<float>();
    ctx.pool->parallel_for(outs[0]->numel, [&](int64_t begin, int64_t end) { fn_(x, y, begin, end, channels_); },
                           kGrain);
    return Status::Ok();
  }

 private:
  DequantizeFn fn_ = nullptr;
  std::vector<float> scales_;
  std::vector<int32_t> zeros_;
  Channels channels_;  // points into scales_ and zeros_
};

// ---- Requantize / Lut -----------------------------------------------------------------------------
// Output byte = table_[input byte]; int8 and uint8 alike.
class ByteMapKernel : public OpKernel {
 public:
  Status run(const std::vector<const Tensor*>& ins, const std::vector<Tensor*>& outs, RunContext& ctx) const final {
    const uint8_t* x = ins[0]->as<const uint8_t>();
    uint8_t* y = outs[0]->as<uint8_t>();
    ctx.pool->parallel_for(outs[0]->numel, [&](int64_t begin, int64_t end) {
      map_bytes(table_, x + begin, y + begin, end - begin);
    }, kGrain);
    return Status::Ok();
  }

 protected:
  uint8_t table_[256] = {};
};

// y = clamp(zy + apply(x - zx, M(s_x / s_y))).
class RequantizeKernel final : public ByteMapKernel {
 public:
  Status prepare(const OpInfo& op, const std::vector<const Tensor*>& ins,
                 const std::vector<const Tensor*>& outs) override {
    EP_RETURN_IF_ERROR(expect_inputs(op, ins, 1, 1));
    EP_RETURN_IF_ERROR(expect_outputs(op, outs, 1));
    const Tensor &x = *ins[0], &y = *outs[0];
    int32_t lo = 0, hi = 0;
    EP_RETURN_IF_ERROR(expect_codes(op, x, "input", &lo, &hi));
    EP_RETURN_IF_ERROR(expect_dtype(op, y, x.dtype, "output"));
    EP_RETURN_IF_ERROR(expect_same_shape(op, x, y));
    EP_RETURN_IF_ERROR(expect_per_tensor(op, x, "input"));
    EP_RETURN_IF_ERROR(expect_per_tensor(op, y, "output"));
    Multiplier m;
    EP_RETURN_IF_ERROR(make_multiplier(op, static_cast<double>(tensor_scale(x)) / tensor_scale(y), "s_x / s_y", &m));
    const int32_t zx = tensor_zero_point(x), zy = tensor_zero_point(y);
    for (int b = 0; b < 256; ++b) {
      const int32_t code = decode(static_cast<uint8_t>(b), x.dtype);
      table_[b] = static_cast<uint8_t>(clamp_i32(zy + apply_multiplier(code - zx, m), lo, hi));
    }
    return Status::Ok();
  }
};

// y = table[x + 128] for int8 x, table[x] for uint8 x; the table is a constant [256] of y's dtype.
class LutKernel final : public ByteMapKernel {
 public:
  Status prepare(const OpInfo& op, const std::vector<const Tensor*>& ins,
                 const std::vector<const Tensor*>& outs) override {
    EP_RETURN_IF_ERROR(expect_inputs(op, ins, 2, 2));
    EP_RETURN_IF_ERROR(expect_outputs(op, outs, 1));
    const Tensor &x = *ins[0], &table = *ins[1], &y = *outs[0];
    EP_RETURN_IF_ERROR(expect_codes(op, x, "input"));
    EP_RETURN_IF_ERROR(expect_codes(op, y, "output"));
    EP_RETURN_IF_ERROR(expect_dtype(op, table, y.dtype, "table"));
    EP_RETURN_IF_ERROR(expect_same_shape(op, x, y));
    if (table.rank != 1 || table.dims[0] != 256)
      return bad(op, "table '" + table.name + "' has shape " + table.shape_str() + ", expected [256]");
    if (table.storage != Storage::kWeight) return bad(op, "table '" + table.name + "' must be a constant");
    // The table encodes the parameters; they are checked only so that a corrupt record is not let through.
    if (is_quantized(x)) EP_RETURN_IF_ERROR(expect_per_tensor(op, x, "input"));
    if (is_quantized(y)) EP_RETURN_IF_ERROR(expect_per_tensor(op, y, "output"));
    const uint8_t* entries = table.as<const uint8_t>();
    const int32_t offset = x.dtype == DType::kInt8 ? 128 : 0;
    for (int b = 0; b < 256; ++b) table_[b] = entries[decode(static_cast<uint8_t>(b), x.dtype) + offset];
    return Status::Ok();
  }
};

}  // namespace

std::unique_ptr<OpKernel> make_quantization_kernel(OpCode code) {
  switch (code) {
    case OpCode::kQuantize: return std::make_unique<QuantizeKernel>();
    case OpCode::kDequantize: return std::make_unique<DequantizeKernel>();
    case OpCode::kRequantize: return std::make_unique<RequantizeKernel>();
    case OpCode::kLut: return std::make_unique<LutKernel>();
    default: return nullptr;
  }
}

}  // namespace edgepack
