// MatMul and Conv on quantized or low-precision operands (docs/quantization.md), chosen at load by the
// dtypes of the input and the weight:
//   int8 / uint8 input                  static int8:  Int8MatMulKernel below, the int8 Conv in qconv.cpp;
//   float input, int8 MatMul weight     dynamic int8: DynamicMatMulKernel;
//   float input, float16 / int4 weight  weight-only:  FloatWeightMatMulKernel, the float-weight Conv in
//   (or an int8 Conv weight)                           qconv.cpp.
// The integer kernels run on the packed GEMM core of qgemm.h and are bit-exact to the numpy reference
// (sdk/edgepack/reference/quantized.py); the dynamic one is too, since its float epilogue does the
// reference's float32 operations in the reference's order. Weight-only kernels dequantize the weight
// and run the float GEMM (gemm.h); int4 MatMul weights stay int4 in memory and are dequantized one
// column panel (or, for a row or a few, one row segment) at a time.
#include "kernels/ref/qlinear.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "kernels/ref/float_rows.h"
#include "kernels/ref/gemm.h"
#include "kernels/ref/kernel_util.h"
#include "kernels/ref/kernels.h"
#include "kernels/ref/quant_check.h"
#include "kernels/ref/quant_util.h"

namespace edgepack {
namespace qlinear {
namespace {

using qgemm::Act;
using qgemm::kGroup;
using qgemm::kTileM;
using qgemm::kTileN;
using qgemm::Wgt;

constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();

std::string subject(const OpInfo& op, const Tensor& t, const char* role) {
  return "op '" + op.name + "' (" + op_name(op.code) + "): " + role + " '" + t.name + "' ";
}

Status expect_constant(const OpInfo& op, const Tensor& t, const char* role) {
  if (t.storage != Storage::kWeight)
    return Unsupported(subject(op, t, role) + "must be a constant (run-time weights are not supported)");
  return Status::Ok();
}

// Sum and sum of magnitudes of an int8 weight over each index of `axis`.
void channel_sums(const Tensor& w, int axis, std::vector<int64_t>* sum, std::vector<int64_t>* abs_sum) {
  const int64_t channels = w.dims[axis], inner = product(w, axis + 1, w.rank);
  sum->assign(static_cast<size_t>(channels), 0);
  abs_sum->assign(static_cast<size_t>(channels), 0);
  if (w.numel == 0) return;
  const int64_t outer = w.numel / (channels * inner);
  const int8_t* v = w.as<const int8_t>();
  // Loops in memory order, no division per element (this runs over every weight at load). The inner
  // loops vectorise: per channel over a contiguous run (inner > 1), or across channels (inner == 1).
  int64_t* s = sum->data();
  int64_t* a = abs_sum->data();
  for (int64_t o = 0; o < outer; ++o) {
    if (inner == 1) {
      for (int64_t c = 0; c < channels; ++c) {
        s[c] += v[c];
        a[c] += std::abs(int32_t{v[c]});
      }
      v += channels;
      continue;
    }
    for (int64_t c = 0; c < channels; ++c, v += inner) {
      int64_t run = 0, run_abs = 0;
      for (int64_t i = 0; i < inner; ++i) {
        run += v[i];
        run_abs += std::abs(int32_t{v[i]});
      }
      s[c] += run;
      a[c] += run_abs;
    }
  }
}

// The output's zero point and the fused activation as a clamp on its codes (activation_bounds in the
// reference): relu -> lo = zy; clip(a, b) -> [zy + round(a / s_y), zy + round(b / s_y)], within the
// dtype's codes.
Status output_codes(const OpInfo& op, AttrReader& attrs, const Tensor& y, qgemm::Requant* q) {
  gemm::Epilogue bounds;
  EP_RETURN_IF_ERROR(gemm::read_activation(op, attrs, &bounds));
  int32_t lo = 0, hi = 0;
  code_range(y.dtype, &lo, &hi);
  const int32_t zy = tensor_zero_point(y);
  const float sy = tensor_scale(y);
  // zy + round(bound / s_y) in float32 as the reference, within the dtype's codes.
  auto code = [&](float bound) {
    const int64_t c = zy + static_cast<int64_t>(std::min(std::max(std::nearbyint(bound / sy), -1e12f), 1e12f));
    return static_cast<int32_t>(std::min<int64_t>(std::max<int64_t>(c, lo), hi));
  };
  q->zero_point = zy;
  q->lo = std::isfinite(bounds.lo) ? code(bounds.lo) : lo;
  q->hi = std::isfinite(bounds.hi) ? code(bounds.hi) : hi;
  return Status::Ok();
}

// A weight's per-channel scales must run along its output channels (the reference broadcasts them
// there whatever the record says), and int8 weights are symmetric.
Status expect_weight_channels(const OpInfo& op, const Tensor& w, int channel_axis) {
  EP_RETURN_IF_ERROR(expect_per_channel(op, w, "weight"));
  if (w.quant.scales.size() > 1 && w.quant.axis != channel_axis)
    return InvalidArtifact(subject(op, w, "weight") + "has its scales along axis " + std::to_string(w.quant.axis) +
                           ", expected axis " + std::to_string(channel_axis) + " (the output channels)");
  for (size_t i = 0; i < w.quant.zero_points.size(); ++i)
    if (w.quant.zero_points[i] != 0)
      return InvalidArtifact(subject(op, w, "weight") + "has zero point " + std::to_string(w.quant.zero_points[i]) +
                             " at index " + std::to_string(i) + ": int8 weights are symmetric (zero point 0)");
  return Status::Ok();
}

float half_to_float(uint16_t h) {
  const uint32_t sign = uint32_t{h & 0x8000u} << 16, exponent = (h >> 10) & 0x1F, mantissa = h & 0x3FFu;
  if (exponent == 0x1F) return from_bits(sign | 0x7F800000u | (mantissa << 13));  // inf, NaN
  if (exponent != 0) return from_bits(sign | ((exponent + 112) << 23) | (mantissa << 13));
  const float magnitude = static_cast<float>(mantissa) * 5.9604644775390625e-8f;  // subnormal: m * 2^-24
  return sign != 0 ? -magnitude : magnitude;
}

}  // namespace

// ---- Requantizer --------------------------------------------------------------------------------------

Status Requantizer::prepare(const OpInfo& op, AttrReader& attrs, const Tensor& x, const Tensor& w,
                            int channel_axis, const Tensor* bias, const Tensor& y, int32_t code_shift) {
  int32_t code_lo = 0, code_hi = 0;
  if (!code_range(x.dtype, &code_lo, &code_hi))
    return Unsupported(subject(op, x, "input") + "is " + dtype_name(x.dtype) + ", expected int8 or uint8");
  EP_RETURN_IF_ERROR(expect_dtype(op, y, x.dtype, "output"));
  EP_RETURN_IF_ERROR(expect_dtype(op, w, DType::kInt8, "weight"));
  EP_RETURN_IF_ERROR(expect_constant(op, w, "weight"));
  EP_RETURN_IF_ERROR(expect_per_tensor(op, x, "input"));
  EP_RETURN_IF_ERROR(expect_per_tensor(op, y, "output"));
  EP_RETURN_IF_ERROR(expect_weight_channels(op, w, channel_axis));
  const int64_t channels = w.dims[channel_axis];
  const float sx = tensor_scale(x), sy = tensor_scale(y);
  const int32_t zx = tensor_zero_point(x);
  auto weight_scale = [&](int64_t c) { return w.quant.scales[w.quant.scales.size() == 1 ? 0 : c]; };

  const int32_t* bias_codes = nullptr;
  if (bias != nullptr) {
    EP_RETURN_IF_ERROR(expect_dtype(op, *bias, DType::kInt32, "bias"));
    EP_RETURN_IF_ERROR(expect_constant(op, *bias, "bias"));
    EP_RETURN_IF_ERROR(expect_shape(op, *bias, {channels}, "bias"));
    EP_RETURN_IF_ERROR(expect_per_channel(op, *bias, "bias"));
    // The bias is in units of s_x * s_w[c] (TFLite's tolerance for a scale written in float32).
    for (int64_t c = 0; c < channels; ++c) {
      const float expected = static_cast<float>(static_cast<double>(sx) * weight_scale(c));
      const float actual = bias->quant.scales[bias->quant.scales.size() == 1 ? 0 : c];
      if (std::abs(actual - expected) > 1e-6f * std::min(actual, expected)) {
        char numbers[96];
        std::snprintf(numbers, sizeof(numbers), "%.9g, expected s_x * s_w = %.9g", actual, expected);
        return InvalidArtifact(subject(op, *bias, "bias") + "has scale " + numbers + " at channel " +
                               std::to_string(c));
      }
    }
    bias_codes = bias->as<const int32_t>();
  }
  EP_RETURN_IF_ERROR(output_codes(op, attrs, y, &params_));

  std::vector<int64_t> sum, abs_sum;
  channel_sums(w, channel_axis, &sum, &abs_sum);
  // The kernels' int32 sums must hold acc = sum((x - zx) * w) exactly: bound it from the weights.
  const int64_t max_step = std::max(code_hi - zx, zx - code_lo);
  multiplier_.resize(channels);
  rshift_.resize(channels);
  offset_.resize(channels);
  wide_ = false;
  for (int64_t c = 0; c < channels; ++c) {
    Multiplier m;
    EP_RETURN_IF_ERROR(make_multiplier(op, static_cast<double>(sx) * weight_scale(c) / sy, "s_x * s_w / s_y", &m));
    multiplier_[c] = m.m;
    rshift_[c] = 31 - m.shift;
    const int64_t bound = max_step * abs_sum[c];
    if (bound > kInt32Max)
      return Unsupported("op '" + op.name + "' (" + op_name(op.code) + "): output channel " + std::to_string(c) +
                         " can overflow the int32 accumulator (|sum((x - zx) * w)| up to " + std::to_string(bound) +
                         "): the reduction is too long");
    const int64_t b = bias_codes != nullptr ? bias_codes[c] : 0;
    if (bound + std::abs(b) > kInt32Max) wide_ = true;
  }
  bias64_.assign(wide_ ? channels : 0, 0);
  for (int64_t c = 0; c < channels; ++c) {
    const int64_t b = bias_codes != nullptr ? bias_codes[c] : 0;
    // Wrapping in int32 is fine: the result is exact whenever the true value fits, which the bound
    // guarantees.
    int64_t offset = -(int64_t{zx} + code_shift) * sum[c];
    if (wide_) {
      bias64_[c] = b;
    } else {
      offset += b;
    }
    offset_[c] = static_cast<int32_t>(static_cast<uint32_t>(static_cast<uint64_t>(offset)));
  }
  params_.offset = offset_.data();
  params_.multiplier = multiplier_.data();
  params_.rshift = rshift_.data();
  return Status::Ok();
}

uint8_t Requantizer::wide_code(int32_t raw, int64_t c) const {
  const auto centred = static_cast<int32_t>(static_cast<uint32_t>(raw) + static_cast<uint32_t>(offset_[c]));
  const int64_t y = apply_multiplier(int64_t{centred} + bias64_[c], Multiplier{multiplier_[c], 31 - rshift_[c]});
  return static_cast<uint8_t>(clamp_i32(y + params_.zero_point, params_.lo, params_.hi));
}

void Requantizer::per_column(const int32_t* acc, int64_t acc_stride, int rows, int n, int64_t first, uint8_t* out,
                             int64_t out_stride) const {
  if (!wide_) {
    qgemm::requantize_per_column(acc, acc_stride, rows, n, params_, first, out, out_stride);
    return;
  }
  for (int r = 0; r < rows; ++r)
    for (int i = 0; i < n; ++i) out[r * out_stride + i] = wide_code(acc[r * acc_stride + i], first + i);
}

void Requantizer::per_row(const int32_t* acc, int64_t acc_stride, int rows, int n, int64_t first, uint8_t* out,
                          int64_t out_stride) const {
  if (!wide_) {
    qgemm::requantize_per_row(acc, acc_stride, rows, n, params_, first, out, out_stride);
    return;
  }
  for (int r = 0; r < rows; ++r)
    for (int i = 0; i < n; ++i) out[r * out_stride + i] = wide_code(acc[r * acc_stride + i], first + r);
}

// ---- weight dequantization ------------------------------------------------------------------------------

Status weight_to_float(const OpInfo& op, const Tensor& w, std::vector<float>* out) {
  out->resize(static_cast<size_t>(w.numel));
  float* dst = out->data();
  if (w.dtype == DType::kFloat16) {
    const uint16_t* src = w.as<const uint16_t>();
    for (int64_t i = 0; i < w.numel; ++i) dst[i] = half_to_float(src[i]);
    return Status::Ok();
  }
  if (w.dtype != DType::kInt8 && w.dtype != DType::kInt4)
    return Unsupported(subject(op, w, "weight") + "is " + dtype_name(w.dtype) + ", expected float16, int8 or int4");
  const QuantInfo& q = w.quant;
  auto code = [&](int64_t i) {
    return w.dtype == DType::kInt8 ? int32_t{w.as<const int8_t>()[i]} : int4_at(w.as<const uint8_t>(), i);
  };
  if (q.block_size > 0) {
    // q * scale of its block: blocks of block_size along `axis`, scales shaped like w with that axis
    // divided by block_size (zero points are 0 by the scheme and ignored, as in the reference).
    EP_RETURN_IF_ERROR(expect_blockwise(op, w, "weight"));
    const int64_t length = w.dims[q.axis], inner = product(w, q.axis + 1, w.rank), blocks = length / q.block_size;
    for (int64_t i = 0; i < w.numel; ++i) {
      const int64_t outer = i / (length * inner), along = i / inner % length, in = i % inner;
      dst[i] = static_cast<float>(code(i)) * q.scales[(outer * blocks + along / q.block_size) * inner + in];
    }
    return Status::Ok();
  }
  EP_RETURN_IF_ERROR(expect_per_channel(op, w, "weight"));
  const bool per_channel = q.scales.size() > 1;
  const int64_t channels = per_channel ? w.dims[q.axis] : 1, inner = per_channel ? product(w, q.axis + 1, w.rank) : 1;
  for (int64_t i = 0; i < w.numel; ++i) {
    const int64_t c = per_channel ? i / inner % channels : 0;
    dst[i] = static_cast<float>(code(i) - q.zero_points[c]) * q.scales[c];
  }
  return Status::Ok();
}

namespace {

// ---- int8 MatMul: shapes, packed weights, the tile loop --------------------------------------------------

constexpr int64_t kMinMacsPerThread = int64_t{1} << 22;  // ~10 us of int8 work: less is not worth a wake-up

// A [..., M, K] x constant B [K, N] -> Y [..., M, N]: A's batch folds into rows = numel(A) / K.
Status read_matmul_shapes(const OpInfo& op, const Tensor& a, const Tensor& b, const Tensor& y, int64_t* rows,
                          int64_t* k, int64_t* n) {
  if (a.rank < 2) return bad(op, "input A must have rank >= 2, got " + a.shape_str());
  if (b.rank != 2) return Unsupported(subject(op, b, "weight") + "must be 2-D [K, N], got " + b.shape_str());
  EP_RETURN_IF_ERROR(expect_constant(op, b, "weight"));
  *k = a.dim(-1);
  *n = b.dims[1];
  if (b.dims[0] != *k) return bad(op, "A " + a.shape_str() + " and B " + b.shape_str() + " do not multiply");
  *rows = *k > 0 ? a.numel / *k : product(a, 0, a.rank - 1);
  std::vector<int64_t> out = a.shape();
  out.back() = *n;
  EP_RETURN_IF_ERROR(expect_shape(op, y, out, "output"));
  int64_t bytes = 0;
  if (!gemm::checked_mul(qgemm::row_panels(*rows) * kTileM, qgemm::k_groups(*k) * 4, &bytes) ||
      !gemm::checked_mul(qgemm::col_panels(*n) * kTileN, qgemm::k_groups(*k) * 4, &bytes))
    return bad(op, "A " + a.shape_str() + " and B " + b.shape_str() + " are too large");
  return Status::Ok();
}

// B [K, N] int8 in column panels.
Status pack_weight_columns(const OpInfo& op, const Tensor& b, qgemm::AlignedBuffer* panels) {
  const int64_t k = b.dims[0], n = b.dims[1], groups = qgemm::k_groups(k);
  const int64_t size = qgemm::col_panels(n) * qgemm::col_panel_size(groups);
  if (!panels->resize(static_cast<size_t>(size) * sizeof(Wgt)))
    return Status(StatusCode::kRuntimeError, "op '" + op.name + "': out of memory packing the weights");
  Wgt* dst = panels->as<Wgt>();
  const int8_t* src = b.as<const int8_t>();
  // In the order of the packed layout (one store stream); K and column tails are zero.
  for (int64_t p = 0; p < qgemm::col_panels(n); ++p) {
    const int64_t col0 = p * kTileN, cols = std::min<int64_t>(kTileN, n - col0);
    for (int64_t g = 0; g < groups; ++g) {
      for (int64_t c = 0; c < kTileN; ++c) {
        for (int e = 0; e < kGroup; ++e, ++dst) {
          const int64_t kk = g * kGroup + e;
          *dst = c < cols && kk < k ? static_cast<Wgt>(src[kk * n + col0 + c]) : Wgt{0};
        }
      }
    }
  }
  return Status::Ok();
}

// Activation codes [rows, K] (int8 or uint8) into row panels [first, end), stored as code + shift.
template <class Code>
void pack_code_rows(const Code* a, int64_t rows, int64_t k, int32_t shift, int64_t first, int64_t end, Act* dst) {
  const int64_t groups = qgemm::k_groups(k), full = k / kGroup;
  for (int64_t p = first; p < end; ++p) {
    Act* panel = dst + p * qgemm::row_panel_size(groups);
    for (int r = 0; r < kTileM && p * kTileM + r < rows; ++r) {
      const Code* src = a + (p * kTileM + r) * k;
      Act* lane = panel + r * kGroup;
      for (int64_t g = 0; g < full; ++g, src += kGroup, lane += kTileM * kGroup)
        for (int e = 0; e < kGroup; ++e) lane[e] = static_cast<Act>(src[e] + shift);
      if (full < groups)  // K tail: the weights there are 0, the activations anything
        for (int e = 0; e < kGroup; ++e) lane[e] = e < k - full * kGroup ? static_cast<Act>(src[e] + shift) : Act{0};
    }
  }
}

// The product of the activation rows with the packed weight columns: pack(first, end) writes row panels
// [first, end) of A, then tile(a_panel, w_panel, rows, row0, col0, cols) computes and stores every tile
// (rows x cols of the output at row0, col0). With enough row
// panels the threads split the rows, each packing its own panels and multiplying them with every
// column panel: one parallel region per op (waking the pool costs as much as a small op). Otherwise
// the few rows are packed first and the threads split the columns.
template <class Pack, class TileFn>
void multiply(ThreadPool* pool, int64_t rows, int64_t cols, int64_t groups, const Act* a_panels, const Wgt* w_panels,
              const Pack& pack, const TileFn& tile) {
  constexpr int64_t kRowBlock = 8;  // row panels whose A (kRowBlock * kTileM rows) stays in L2 across the columns
  const int64_t rp = qgemm::row_panels(rows), cp = qgemm::col_panels(cols);
  const int64_t tile_macs = kTileM * kTileN * groups * kGroup;
  const int64_t a_step = qgemm::row_panel_size(groups), w_step = qgemm::col_panel_size(groups);
  const int64_t panel_lines = w_step * static_cast<int64_t>(sizeof(Wgt)) / 64;  // a panel is whole lines
  auto tiles = [&](int64_t p0, int64_t p1, int64_t c0, int64_t c1) {
    for (int64_t b0 = p0; b0 < p1; b0 += kRowBlock) {
      for (int64_t c = c0; c < c1; ++c) {
        const int64_t col0 = c * kTileN;
        const int ncols = static_cast<int>(std::min<int64_t>(kTileN, cols - col0));

        const int64_t block_end = std::min(p1, b0 + kRowBlock), tiles_here = block_end - b0;
        const char* next = reinterpret_cast<const char*>(w_panels + (c + 1) * w_step);
        for (int64_t p = b0; p < block_end; ++p) {
          const int nrows = static_cast<int>(std::min<int64_t>(kTileM, rows - p * kTileM));
          // The next column panel is fetched into L1 a slice per tile while this one is multiplied: the
          // weights come from L3 or DRAM on every run (a model's weights do not stay in L2 between
          // runs), and the hardware prefetcher alone left the tiles waiting on them (all-MiniLM-L6-v2
          // int8: -6 % on one thread, -3 % on two). Spread thin, the prefetches do not crowd the tile's
          // loads (a whole panel at the tile's start was 4-6 % slower).
          if (c + 1 < c1) {
            const int64_t i = p - b0;
            for (int64_t line = i * panel_lines / tiles_here; line < (i + 1) * panel_lines / tiles_here; ++line)
              __builtin_prefetch(next + line * 64, 0, 3);
          }
          tile(a_panels + p * a_step, w_panels + c * w_step, nrows, p * kTileM, col0, ncols);
        }
      }
    }
  };
  if (rp >= 2 * pool->num_threads()) {
    const int64_t grain = std::max<int64_t>(1, kMinMacsPerThread / std::max<int64_t>(1, cp * tile_macs));
    pool->parallel_for(rp, [&](int64_t first, int64_t end) {
      pack(first, end);
      tiles(first, end, 0, cp);
    }, grain);
  } else {
    pack(0, rp);
    const int64_t grain = std::max<int64_t>(1, kMinMacsPerThread / std::max<int64_t>(1, rp * tile_macs));
    pool->parallel_for(cp, [&](int64_t first, int64_t end) { tiles(0, rp, first, end); }, grain);
  }
}

// ---- static int8 MatMul ---------------------------------------------------------------------------------

class Int8MatMulKernel final : public OpKernel {
 public:
  Status prepare(const OpInfo& op, const std::vector<const Tensor*>& ins,
                 const std::vector<const Tensor*>& outs) override {
    EP_RETURN_IF_ERROR(expect_inputs(op, ins, 2, 3));
    EP_RETURN_IF_ERROR(expect_outputs(op, outs, 1));
    const Tensor &a = *ins[0], &b = *ins[1], &y = *outs[0];
    EP_RETURN_IF_ERROR(read_matmul_shapes(op, a, b, y, &rows_, &k_, &n_));
    AttrReader attrs(op);
    EP_RETURN_IF_ERROR(requant_.prepare(op, attrs, a, b, 1, ins.size() > 2 ? ins[2] : nullptr, y,
                                        qgemm::act_shift(a.dtype)));
    EP_RETURN_IF_ERROR(pack_weight_columns(op, b, &weights_));
    signed_ = a.dtype == DType::kInt8;
    shift_ = qgemm::act_shift(a.dtype);
    groups_ = qgemm::k_groups(k_);
    scratch_bytes = static_cast<size_t>(qgemm::row_panels(rows_) * qgemm::row_panel_size(groups_)) * sizeof(Act);
    return Status::Ok();
  }

  Status run(const std::vector<const Tensor*>& ins, const std::vector<Tensor*>& outs, RunContext& ctx) const override {
    if (outs[0]->numel == 0) return Status::Ok();
    Act* a_panels = reinterpret_cast<Act*>(ctx.scratch);
    uint8_t* y = outs[0]->as<uint8_t>();  // int8 and uint8 codes alike
    auto pack = [&](int64_t first, int64_t end) {
      if (signed_) {
        pack_code_rows(ins[0]->as<const int8_t>(), rows_, k_, shift_, first, end, a_panels);
      } else {
        pack_code_rows(ins[0]->as<const uint8_t>(), rows_, k_, shift_, first, end, a_panels);
      }
    };
    multiply(ctx.pool, rows_, n_, groups_, a_panels, weights_.as<Wgt>(), pack,
             [&](const Act* a_panel, const Wgt* w_panel, int rows, int64_t row0, int64_t col0, int cols) {
               alignas(64) int32_t acc[kTileM * kTileN];
               qgemm::tile_act_rows(rows, groups_, a_panel, w_panel, acc);
               requant_.per_column(acc, kTileN, rows, cols, col0, y + row0 * n_ + col0, n_);
             });
    return Status::Ok();
  }

 private:
  int64_t rows_ = 0, k_ = 0, n_ = 0, groups_ = 0;
  bool signed_ = true;
  int32_t shift_ = 0;
  qgemm::AlignedBuffer weights_;  // B in column panels
  Requantizer requant_;
};

// ---- dynamic int8 MatMul --------------------------------------------------------------------------------

#if !defined(EDGEPACK_QGEMM_VECTOR_ROW_QUANT)
// qgemm::quantize_row_panel (qgemm.h) in plain C++, one row at a time: the row's (smoothed) values are
// staged in float32 as the reference computes them, ranged, then quantized into the row's lanes.
void quantize_row(const float* a, int64_t k, const float* smooth, int32_t shift, Act* lanes, float* scale,
                  int32_t* correction) {
  constexpr int64_t kChunk = 256;  // a multiple of kGroup
  float lo = 0.0f, hi = 0.0f;
  float v[kChunk];
  for (int64_t k0 = 0; k0 < k; k0 += kChunk) {
    const int64_t n = std::min(kChunk, k - k0);
    for (int64_t i = 0; i < n; ++i) v[i] = smooth != nullptr ? a[k0 + i] * smooth[k0 + i] : a[k0 + i];
    float l, h;
    qgemm::row_range(v, n, &l, &h);
    lo = std::min(lo, l);
    hi = std::max(hi, h);
  }
  const float s = hi > lo ? (hi - lo) / 255.0f : 1.0f;
  const float z = std::min(std::max(std::nearbyint(-lo / s), 0.0f), 255.0f);
  const float inverse = 1.0f / s;
  *scale = s;
  *correction = static_cast<int32_t>(z) + shift;
  int32_t q[kChunk];
  for (int64_t k0 = 0; k0 < k; k0 += kChunk) {
    const int64_t n = std::min(kChunk, k - k0);
    for (int64_t i = 0; i < n; ++i) {  // vectorises: multiply, round, clamp, convert
      const float x = smooth != nullptr ? a[k0 + i] * smooth[k0 + i] : a[k0 + i];
      float c = std::nearbyint(x * inverse) + z;
      c = c < 0.0f ? 0.0f : c;
      q[i] = static_cast<int32_t>(c > 255.0f ? 255.0f : c);
    }
    for (int64_t i = n; i < (n + kGroup - 1) / kGroup * kGroup; ++i) q[i] = -shift;  // K tail: stored as 0
    Act* lane = lanes + k0 / kGroup * kTileM * kGroup;
    for (int64_t g = 0; g * kGroup < n; ++g, lane += kTileM * kGroup)
      for (int e = 0; e < kGroup; ++e) lane[e] = static_cast<Act>(q[g * kGroup + e] + shift);
  }
}
#endif

// qgemm::DynamicEpilogue on a tile of raw sums acc[r * kTileN + c], in plain C++ (the AVX-512 build
// applies it in registers instead, tile_act_rows_dynamic, except to a tile that spans two outputs of a
// split).
void dynamic_epilogue(const int32_t* acc, int rows, int64_t row0, int64_t col0, int cols,
                      const qgemm::DynamicEpilogue& e) {
  const int32_t* col_sum = e.col_sum + col0;
  const float* w_scale = e.w_scale + col0;
  const float* b = e.bias != nullptr ? e.bias + col0 : nullptr;
  const float lo = e.lo, hi = e.hi;
  for (int r = 0; r < rows; ++r) {
    const int64_t row = row0 + r;
    // The raw sums are sum((q + shift) * w); acc = raw - (z + shift) * sum(w), wrapping in int32.
    const auto correction = static_cast<uint32_t>(e.correction[row]);
    const float s = e.row_scale[row];
    const int32_t* raw = acc + r * kTileN;
    float* out = e.y + row * e.ldy + col0;
    // y = float(acc) * (s * s_w) + bias, then the clamp: the reference's float32 operations in its
    // order. The product is stored before the sum is taken: GCC contracts a * b + c into an FMA
    // (one rounding instead of numpy's two) even in ISO C++ mode, but not across two loops.
    for (int c = 0; c < cols; ++c) {
      const auto sum = static_cast<int32_t>(static_cast<uint32_t>(raw[c]) - correction * static_cast<uint32_t>(col_sum[c]));
      out[c] = static_cast<float>(sum) * (s * w_scale[c]);
    }
    for (int c = 0; c < cols; ++c) {
      float v = b != nullptr ? out[c] + b[c] : out[c];
      v = v < lo ? lo : v;  // NaN passes, as through numpy's maximum / clip
      out[c] = v > hi ? hi : v;
    }
  }
}

class DynamicMatMulKernel final : public OpKernel {
 public:
  Status prepare(const OpInfo& op, const std::vector<const Tensor*>& ins,
                 const std::vector<const Tensor*>& outs) override {
    EP_RETURN_IF_ERROR(expect_inputs(op, ins, 2, 4));
    const Tensor &a = *ins[0], &b = *ins[1];
    const Tensor* bias = ins.size() > 2 ? ins[2] : nullptr;
    const Tensor* input_scale = ins.size() > 3 ? ins[3] : nullptr;  // a folded smoothing Mul (ir/ops.py)
    EP_RETURN_IF_ERROR(expect_dtype(op, a, DType::kFloat32, "input A"));
    EP_RETURN_IF_ERROR(expect_dtype(op, b, DType::kInt8, "weight"));
    EP_RETURN_IF_ERROR(read_split(op, a, b, outs));
    EP_RETURN_IF_ERROR(expect_weight_channels(op, b, 1));
    if (bias != nullptr) {
      EP_RETURN_IF_ERROR(expect_dtype(op, *bias, DType::kFloat32, "bias"));
      EP_RETURN_IF_ERROR(expect_shape(op, *bias, {n_}, "bias"));
    }
    if (input_scale != nullptr) {
      EP_RETURN_IF_ERROR(expect_dtype(op, *input_scale, DType::kFloat32, "input_scale"));
      EP_RETURN_IF_ERROR(expect_shape(op, *input_scale, {k_}, "input_scale"));
    }
    AttrReader attrs(op);
    // Gelu is fused into this kernel only (passes/fuse_gelu.py): it runs on each tile as it is stored.
    gelu_ = attrs.has("activation") && attrs.str("activation") == "gelu";
    if (!gelu_) EP_RETURN_IF_ERROR(gemm::read_activation(op, attrs, &bounds_));

    std::vector<int64_t> sum, abs_sum;
    channel_sums(b, 1, &sum, &abs_sum);
    col_sums_.resize(n_);
    w_scales_.resize(n_);
    for (int64_t c = 0; c < n_; ++c) {
      if (255 * abs_sum[c] > kInt32Max)  // |q - z| <= 255
        return Unsupported("op '" + op.name + "' (MatMul): output column " + std::to_string(c) +
                           " can overflow the int32 accumulator: the reduction is too long");
      col_sums_[c] = static_cast<int32_t>(sum[c]);
      w_scales_[c] = b.quant.scales[b.quant.scales.size() == 1 ? 0 : c];
    }
    EP_RETURN_IF_ERROR(pack_weight_columns(op, b, &weights_));
    groups_ = qgemm::k_groups(k_);
    shift_ = qgemm::act_shift(DType::kUInt8);
    // Scratch: A's row panels, then each row's scale and its zero point + shift.
    panels_bytes_ = qgemm::whole_lines(static_cast<size_t>(qgemm::row_panels(rows_) * qgemm::row_panel_size(groups_)) *
                                       sizeof(Act));
    scales_bytes_ = qgemm::whole_lines(static_cast<size_t>(rows_) * sizeof(float));
    scratch_bytes = panels_bytes_ + scales_bytes_ + static_cast<size_t>(rows_) * sizeof(int32_t);
    return Status::Ok();
  }

  Status run(const std::vector<const Tensor*>& ins, const std::vector<Tensor*>& outs, RunContext& ctx) const override {
    if (outs[0]->numel == 0) return Status::Ok();
    const float* a = ins[0]->as<const float>();
    const float* bias = ins.size() > 2 && ins[2] != nullptr ? ins[2]->as<const float>() : nullptr;
    Act* a_panels = reinterpret_cast<Act*>(ctx.scratch);
    float* row_scale = reinterpret_cast<float*>(ctx.scratch + panels_bytes_);
    int32_t* row_correction = reinterpret_cast<int32_t*>(ctx.scratch + panels_bytes_ + scales_bytes_);

    const float* smooth = ins.size() > 3 && ins[3] != nullptr ? ins[3]->as<const float>() : nullptr;
    auto quantize = [&](int64_t first, int64_t end) {
      for (int64_t p = first; p < end; ++p) {
        Act* panel = a_panels + p * qgemm::row_panel_size(groups_);
        const int64_t row0 = p * kTileM;
        const int rows = static_cast<int>(std::min<int64_t>(kTileM, rows_ - row0));
#if defined(EDGEPACK_QGEMM_VECTOR_ROW_QUANT)
        qgemm::quantize_row_panel(a + row0 * k_, k_, rows, k_, smooth, panel, row_scale + row0, row_correction + row0);
#else
        for (int r = 0; r < rows; ++r)
          quantize_row(a + (row0 + r) * k_, k_, smooth, shift_, panel + r * kGroup, row_scale + row0 + r,
                       row_correction + row0 + r);
#endif
      }
    };
    qgemm::DynamicEpilogue e;
    e.correction = row_correction;
    e.row_scale = row_scale;
    e.col_sum = col_sums_.data();
    e.w_scale = w_scales_.data();
    e.bias = bias;
    e.lo = bounds_.lo;
    e.hi = bounds_.hi;
    // Output j's epilogue: the per-column tables from its first column on, and its own rows.
    std::array<qgemm::DynamicEpilogue, kMaxOutputs> outputs;
    for (size_t j = 0; j < outs.size(); ++j) {
      const int64_t first = starts_[j];
      outputs[j] = e;
      outputs[j].col_sum = e.col_sum + first;
      outputs[j].w_scale = e.w_scale + first;
      outputs[j].bias = bias != nullptr ? bias + first : nullptr;
      outputs[j].y = outs[j]->as<float>();
      outputs[j].ldy = starts_[j + 1] - first;
    }
    multiply(ctx.pool, rows_, n_, groups_, a_panels, weights_.as<Wgt>(), quantize,
             [&](const Act* a_panel, const Wgt* w_panel, int rows, int64_t row0, int64_t col0, int cols) {
               // The tile's columns [from, to) of output o have been stored: Gelu them while they are in L1.
               const auto finish = [&](size_t o, int64_t from, int64_t to) {
                 if (!gelu_) return;
                 const qgemm::DynamicEpilogue& out = outputs[o];
                 gelu_erf_rows(out.y + row0 * out.ldy + (from - starts_[o]), rows, to - from, out.ldy);
               };
               const size_t j = output_of_[col0 / kTileN];
#if defined(EDGEPACK_QGEMM_FUSED_DYNAMIC)
               if (col0 + cols <= starts_[j + 1]) {  // the tile lies in one output
                 qgemm::tile_act_rows_dynamic(rows, groups_, a_panel, w_panel, row0, col0 - starts_[j], cols, outputs[j]);
                 return finish(j, col0, col0 + cols);
               }
#endif
               alignas(64) int32_t acc[kTileM * kTileN];
               qgemm::tile_act_rows(rows, groups_, a_panel, w_panel, acc);
               // Each output's share of the tile (a tile spans outputs whose widths are not whole tiles).
               for (size_t o = j; o < outs.size() && starts_[o] < col0 + cols; ++o) {
                 const int64_t from = std::max(col0, starts_[o]), to = std::min(col0 + cols, starts_[o + 1]);
                 if (from >= to) continue;
                 dynamic_epilogue(acc + (from - col0), rows, row0, from - starts_[o], static_cast<int>(to - from),
                                  outputs[o]);
                 finish(o, from, to);
               }
             });
    return Status::Ok();
  }

 private:
  static constexpr size_t kMaxOutputs = 8;

  // The outputs: one [..., N], or with attr split (passes/merge_matmuls.py) one [..., split[j]] per entry,
  // the columns of B in order. Fills starts_ and output_of_.
  Status read_split(const OpInfo& op, const Tensor& a, const Tensor& b, const std::vector<const Tensor*>& outs) {
    AttrReader attrs(op);
    std::vector<int64_t> split;
    if (attrs.has("split")) split = attrs.ints("split");
    EP_RETURN_IF_ERROR(attrs.status());
    if (outs.empty() || outs.size() > kMaxOutputs || (split.empty() ? outs.size() != 1 : split.size() != outs.size()))
      return bad(op, "has " + std::to_string(outs.size()) + " outputs for a split of " + std::to_string(split.size()) +
                     " (at most " + std::to_string(kMaxOutputs) + ")");
    const int64_t n = b.rank == 2 ? b.dims[1] : 0;
    if (split.empty()) split.push_back(n);
    starts_.assign(1, 0);
    for (size_t j = 0; j < outs.size(); ++j) {
      if (split[j] <= 0) return bad(op, "split entries must be positive");
      starts_.push_back(starts_.back() + split[j]);
      EP_RETURN_IF_ERROR(expect_dtype(op, *outs[j], DType::kFloat32, "output"));
    }
    if (starts_.back() != n) return bad(op, "split adds up to " + std::to_string(starts_.back()) + " columns, B has " + std::to_string(n));
    for (size_t j = 0; j < outs.size(); ++j) {
      Tensor whole = *outs[j];  // the output as if it had every column, for the shape checks
      if (whole.rank > 0) whole.dims[whole.rank - 1] = n;
      EP_RETURN_IF_ERROR(read_matmul_shapes(op, a, b, whole, &rows_, &k_, &n_));
      if (outs[j]->rank == 0 || outs[j]->dim(-1) != split[j])
        return bad(op, "output " + std::to_string(j) + " " + outs[j]->shape_str() + " does not have its " +
                       std::to_string(split[j]) + " split columns");
    }
    output_of_.assign(qgemm::col_panels(n_), 0);
    for (int64_t c = 0; c < qgemm::col_panels(n_); ++c)
      while (starts_[output_of_[c] + 1] <= c * kTileN) ++output_of_[c];
    return Status::Ok();
  }

  int64_t rows_ = 0, k_ = 0, n_ = 0, groups_ = 0;
  int32_t shift_ = 0;
  bool gelu_ = false;               // activation "gelu": Gelu (erf) after the bias
  std::vector<int64_t> starts_;    // output j has the columns [starts_[j], starts_[j + 1])
  std::vector<uint8_t> output_of_;  // per column panel: the output of its first column
  qgemm::AlignedBuffer weights_;  // B in column panels
  std::vector<int32_t> col_sums_;
  std::vector<float> w_scales_;
  gemm::Epilogue bounds_;  // the fused activation's clamp
  size_t panels_bytes_ = 0, scales_bytes_ = 0;
};

// ---- weight-only MatMul (float16 / int4 / dequantized weights, float GEMM) -------------------------------

// out[i] = code(first + i) * scale[i] for n int4 codes from flat index `first` of packed data.
void dequantize_int4(const uint8_t* codes, int64_t first, int64_t n, const float* scale, float* out) {
  int64_t i = 0;
  if (first % 2 != 0 && n > 0) {  // starts on a high nibble
    out[0] = static_cast<float>(int4_at(codes, first)) * scale[0];
    i = 1;
  }
  const int64_t bytes = (n - i) / 2;
  qgemm::dequantize_int4_bytes(codes + (first + i) / 2, bytes, scale + i, out + i);
  for (i += 2 * bytes; i < n; ++i) out[i] = static_cast<float>(int4_at(codes, first + i)) * scale[i];
}

// Int4 weights are dequantized one column panel at a time into one of this many slot buffers, each
// slot owning a contiguous range of panels: at most this many threads share a MatMul.
constexpr int64_t kInt4Slots = 8;

class FloatWeightMatMulKernel final : public OpKernel {
 public:
  Status prepare(const OpInfo& op, const std::vector<const Tensor*>& ins,
                 const std::vector<const Tensor*>& outs) override {
    EP_RETURN_IF_ERROR(expect_inputs(op, ins, 2, 3));
    EP_RETURN_IF_ERROR(expect_outputs(op, outs, 1));
    const Tensor &a = *ins[0], &b = *ins[1], &y = *outs[0];
    const Tensor* bias = ins.size() > 2 ? ins[2] : nullptr;
    EP_RETURN_IF_ERROR(expect_dtype(op, a, DType::kFloat32, "input A"));
    EP_RETURN_IF_ERROR(expect_dtype(op, y, DType::kFloat32, "output"));
    EP_RETURN_IF_ERROR(expect_constant(op, b, "weight"));
    EP_RETURN_IF_ERROR(gemm::read_matmul(op, a, b, bias, y, &shape_, &epilogue_));
    const int64_t kn = shape_.k * shape_.n;

    int64_t pa = 0, pb = 0, a_scratch = 0;
    if (!gemm::checked_mul(gemm::panels_a(shape_.rows) * gemm::kTileM, shape_.k, &pa) ||
        !gemm::checked_mul(gemm::panels_b(shape_.n) * gemm::kTileN, shape_.k, &pb) ||
        !gemm::checked_mul(gemm::whole_lines(pa), shape_.count, &a_scratch))
      return bad(op, "operands are too large");
    packed_a_floats_ = gemm::whole_lines(pa);
    packed_b_floats_ = gemm::whole_lines(pb);

    // Int4 weights [K, N] with blocks along K stay int4: run() dequantizes them a column panel at a
    // time (run_int4), or a row segment at a time for fewer rows than a tile (run_int4_few_rows).
    stream_int4_ = b.dtype == DType::kInt4 && b.rank == 2 && b.quant.block_size > 0 && b.quant.axis == 0;
    if (stream_int4_) {
      EP_RETURN_IF_ERROR(expect_blockwise(op, b, "weight"));
      slots_ = std::min(kInt4Slots, gemm::panels_b(shape_.n));
      slot_floats_ = gemm::whole_lines(shape_.k * gemm::kTileN);
      if (shape_.rows >= gemm::kTileM)
        scratch_bytes = static_cast<size_t>(a_scratch + slots_ * slot_floats_) * sizeof(float);
      return Status::Ok();
    }
    std::vector<float> weights;
    EP_RETURN_IF_ERROR(weight_to_float(op, b, &weights));
    const int64_t mats = shape_.b_matrices;
    if (!packed_b_.resize(mats * packed_b_floats_))
      return Status(StatusCode::kRuntimeError, "op '" + op.name + "': out of memory packing the weights");
    for (int64_t i = 0; i < mats; ++i)
      gemm::pack_b(weights.data() + i * kn, shape_.n, 1, shape_.k, shape_.n, 0, gemm::panels_b(shape_.n),
                   packed_b_.data() + i * packed_b_floats_);
    scratch_bytes = static_cast<size_t>(a_scratch) * sizeof(float);
    return Status::Ok();
  }

  Status run(const std::vector<const Tensor*>& ins, const std::vector<Tensor*>& outs, RunContext& ctx) const override {
    if (outs[0]->numel == 0) return Status::Ok();
    const float* a = ins[0]->as<const float>();
    float* y = outs[0]->as<float>();
    gemm::Epilogue epilogue = epilogue_;
    if (ins.size() > 2 && ins[2] != nullptr) epilogue.bias = ins[2]->as<const float>();
    float* scratch = reinterpret_cast<float*>(ctx.scratch);
    if (stream_int4_ && shape_.rows < gemm::kTileM) {
      run_int4_few_rows(a, *ins[1], epilogue, y, ctx.pool);
      return Status::Ok();
    }
    if (stream_int4_) {
      run_int4(a, *ins[1], epilogue, y, scratch, ctx.pool);
      return Status::Ok();
    }
    gemm::sgemm_batch(shape_.count, [&](int64_t item, gemm::Problem* p) {
      int64_t a_mat = 0, b_mat = 0;
      shape_.locate(item, &a_mat, &b_mat);
      p->m = shape_.rows;
      p->n = shape_.n;
      p->k = shape_.k;
      p->a = gemm::Operand::strided(a + a_mat * shape_.m * shape_.k, shape_.k, 1, scratch + item * packed_a_floats_);
      p->b = gemm::Operand::prepacked(packed_b_.data() + b_mat * packed_b_floats_);
      p->c = y + item * shape_.rows * shape_.n;
      p->ldc = shape_.n;
      p->epilogue = epilogue;
    }, ctx.pool);
    return Status::Ok();
  }

 private:
  // B = int4 [K, N], blocks of block_size along K. A is packed once; then each slot dequantizes its
  // column panels one at a time (K x kTileN floats, in the packed-B layout) and multiplies A with it.
  void run_int4(const float* a, const Tensor& b, const gemm::Epilogue& epilogue, float* y, float* scratch,
                ThreadPool* pool) const {
    float* a_panels = scratch;
    float* slots = scratch + packed_a_floats_;
    const int64_t a_grain = std::max<int64_t>(1, kGrain / std::max<int64_t>(1, gemm::kTileM * shape_.k));
    pool->parallel_for(gemm::panels_a(shape_.rows), [&](int64_t first, int64_t end) {
      gemm::pack_a(a, shape_.k, 1, shape_.rows, shape_.k, first, end, a_panels);
    }, a_grain);
    const uint8_t* codes = b.as<const uint8_t>();
    const float* scales = b.quant.scales.data();
    const int64_t block = b.quant.block_size, panels = gemm::panels_b(shape_.n);
    pool->parallel_for(slots_, [&](int64_t first_slot, int64_t end_slot) {
      for (int64_t s = first_slot; s < end_slot; ++s) {
        float* panel = slots + s * slot_floats_;
        for (int64_t p = s * panels / slots_; p < (s + 1) * panels / slots_; ++p) {
          const int64_t col0 = p * gemm::kTileN;
          const int cols = static_cast<int>(std::min<int64_t>(gemm::kTileN, shape_.n - col0));
          for (int64_t k = 0; k < shape_.k; ++k) {
            float* out = panel + k * gemm::kTileN;
            dequantize_int4(codes, k * shape_.n + col0, cols, scales + k / block * shape_.n + col0, out);
            std::fill(out + cols, out + gemm::kTileN, 0.0f);
          }
          gemm::Problem prob;
          prob.m = shape_.rows;
          prob.n = cols;
          prob.k = shape_.k;
          prob.a = gemm::Operand::prepacked(a_panels);
          prob.b = gemm::Operand::prepacked(panel);
          prob.c = y + col0;
          prob.ldc = shape_.n;
          prob.epilogue = epilogue;
          if (epilogue.bias != nullptr) prob.epilogue.bias = epilogue.bias + col0;
          gemm::sgemm_serial(prob);
        }
      }
    }, 1);
  }

  // Fewer rows than a GEMM tile (e.g. one token): no packing and no panel buffers, which would cost more
  // than the product. Each row of W is dequantized a segment at a time into a stack buffer and
  // multiplied into all rows of Y, so the int4 weights are read once; threads split the columns.
  void run_int4_few_rows(const float* a, const Tensor& b, const gemm::Epilogue& epilogue, float* y,
                         ThreadPool* pool) const {
    constexpr int64_t kCols = 256;
    const uint8_t* codes = b.as<const uint8_t>();
    const float* scales = b.quant.scales.data();
    const int64_t block = b.quant.block_size, chunks = (shape_.n + kCols - 1) / kCols;
    const int64_t grain = std::max<int64_t>(1, kGrain / std::max<int64_t>(1, shape_.k * kCols * (shape_.rows + 1)));
    pool->parallel_for(chunks, [&](int64_t first, int64_t end) {
      float w[kCols], acc[gemm::kTileM][kCols];
      for (int64_t chunk = first; chunk < end; ++chunk) {
        const int64_t c0 = chunk * kCols, len = std::min(kCols, shape_.n - c0);
        for (int64_t r = 0; r < shape_.rows; ++r) std::fill(acc[r], acc[r] + len, 0.0f);
        for (int64_t k = 0; k < shape_.k; ++k) {
          dequantize_int4(codes, k * shape_.n + c0, len, scales + k / block * shape_.n + c0, w);
          for (int64_t r = 0; r < shape_.rows; ++r) {
            const float ark = a[r * shape_.k + k];
            for (int64_t c = 0; c < len; ++c) acc[r][c] += ark * w[c];
          }
        }
        for (int64_t r = 0; r < shape_.rows; ++r) {
          float* out = y + r * shape_.n + c0;
          for (int64_t c = 0; c < len; ++c) {
            float v = epilogue.bias != nullptr ? acc[r][c] + epilogue.bias[c0 + c] : acc[r][c];
            v = v < epilogue.lo ? epilogue.lo : v;
            out[c] = v > epilogue.hi ? epilogue.hi : v;
          }
        }
      }
    }, grain);
  }

  gemm::MatMulShape shape_;
  gemm::Epilogue epilogue_;
  int64_t packed_a_floats_ = 0, packed_b_floats_ = 0;  // per matrix, whole 64-byte lines
  gemm::AlignedFloats packed_b_;                       // the dequantized B matrices, packed
  bool stream_int4_ = false;
  int64_t slots_ = 0, slot_floats_ = 0;
};

}  // namespace
}  // namespace qlinear

std::unique_ptr<OpKernel> make_quantized_compute_kernel(OpCode code, const std::vector<const Tensor*>& ins) {
  if ((code != OpCode::kMatMul && code != OpCode::kConv) || ins.size() < 2 || ins[0] == nullptr || ins[1] == nullptr)
    return nullptr;
  const DType x = ins[0]->dtype, w = ins[1]->dtype;
  if (x == DType::kInt8 || x == DType::kUInt8) {
    if (code == OpCode::kConv) return make_int8_conv_kernel();
    return std::make_unique<qlinear::Int8MatMulKernel>();
  }
  if (w != DType::kInt8 && w != DType::kInt4 && w != DType::kFloat16) return nullptr;
  if (code == OpCode::kConv) return make_float_weight_conv_kernel();
  // The reference runs float x int8 (not block-wise) as dynamic int8, any other weight as weight-only.
  if (w == DType::kInt8 && ins[1]->quant.block_size == 0) return std::make_unique<qlinear::DynamicMatMulKernel>();
  return std::make_unique<qlinear::FloatWeightMatMulKernel>();
}

}  // namespace edgepack
