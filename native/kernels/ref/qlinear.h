// Shared by the kernels of MatMul and Conv on quantized or low-precision operands: qlinear.cpp (the
// factory, the MatMul kernels and these helpers) and qconv.cpp (the Conv kernels).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "edgepack/kernel.h"
#include "kernels/ref/qgemm.h"

namespace edgepack {

std::unique_ptr<OpKernel> make_int8_conv_kernel();          // qconv.cpp: int8 / uint8 input
std::unique_ptr<OpKernel> make_float_weight_conv_kernel();  // qconv.cpp: float input, float16 / int8 / int4 weight

namespace qlinear {

// The requantization of static int8 MatMul / Conv (docs/quantization.md): per output channel c,
//   y = clamp(zy + apply(acc + bias[c], M_c), lo, hi),  M_c from s_x * s_w[c] / s_y,
// where acc = sum((x - zx) * w) over the channel's reduction. The kernels hand over raw sums
// sum((x + code_shift) * w), x the codes as they store them (code_shift = qgemm::act_shift for the
// packed GEMM operands, 0 for plain codes); the offset -(zx + code_shift) * sum(w) + bias that turns
// them into acc + bias is folded in at prepare.
class Requantizer {
 public:
  Requantizer() = default;
  Requantizer(const Requantizer&) = delete;  // params_ points into the object's own vectors
  Requantizer& operator=(const Requantizer&) = delete;

  // Validates the quantization records of x, the int8 weight w (channels along channel_axis), the
  // optional int32 bias and y, and the fused activation; builds the per-channel tables.
  Status prepare(const OpInfo& op, AttrReader& attrs, const Tensor& x, const Tensor& w, int channel_axis,
                 const Tensor* bias, const Tensor& y, int32_t code_shift);

  // Output codes of a block of rows x n raw sums, acc[r * acc_stride + i] -> out[r * out_stride + i];
  // the channel of element (r, i) is first + i (per column: MatMul) or first + r (per row: Conv).
  void per_column(const int32_t* acc, int64_t acc_stride, int rows, int n, int64_t first, uint8_t* out,
                  int64_t out_stride) const;
  void per_row(const int32_t* acc, int64_t acc_stride, int rows, int n, int64_t first, uint8_t* out,
               int64_t out_stride) const;

 private:
  uint8_t wide_code(int32_t raw, int64_t c) const;

  std::vector<int32_t> offset_, multiplier_, rshift_;
  qgemm::Requant params_;  // points into the vectors above
  // Set when some channel's acc + bias may leave int32 (a bias near the int32 limits): the bias is then
  // added in int64 (bias64_) by a scalar loop instead of being folded into the int32 offset.
  bool wide_ = false;
  std::vector<int64_t> bias64_;
};

// The weight as float32, dequantized as the reference does (float16 widened; int8 / int4 per tensor,
// per channel or block-wise), in row-major order of its shape.
Status weight_to_float(const OpInfo& op, const Tensor& w, std::vector<float>* out);

// The int4 code at flat index i of packed data (two per byte, low nibble first).
inline int32_t int4_at(const uint8_t* data, int64_t i) {
  const int32_t nibble = (data[i >> 1] >> ((i & 1) * 4)) & 0xF;
  return (nibble ^ 8) - 8;
}

}  // namespace qlinear
}  // namespace edgepack
