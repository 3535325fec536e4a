// prepare()-time validation of quantization parameters; see quant_check.h.
#include "kernels/ref/quant_check.h"

#include <cmath>
#include <cstdio>
#include <string>

namespace edgepack {
namespace {

std::string subject(const OpInfo& op, const Tensor& t, const char* role) {
  return "op '" + op.name + "' (" + op_name(op.code) + "): " + role + " '" + t.name + "' ";
}

// A scale or multiplier as %g: std::to_string would print 1e-07 as 0.000000.
std::string num(double x) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.9g", x);
  return text;
}

std::string count_str(size_t n, const char* noun) {
  return std::to_string(n) + " " + noun + (n == 1 ? "" : "s");
}

// What every quant record must satisfy whatever its layout: finite positive scales, zero points in
// the dtype's range (0 for int32 biases and symmetric int4 weights), a valid axis.
Status check_record(const OpInfo& op, const Tensor& t, const char* role) {
  const QuantInfo& q = t.quant;
  if (q.scales.empty()) return InvalidArtifact(subject(op, t, role) + "has no quantization parameters");
  int32_t lo = 0, hi = 0;
  if (!code_range(t.dtype, &lo, &hi) && t.dtype != DType::kInt32 && t.dtype != DType::kInt4)
    return Unsupported(subject(op, t, role) + "is " + dtype_name(t.dtype) + ", which cannot be quantized");
  for (size_t i = 0; i < q.scales.size(); ++i) {
    if (!(std::isfinite(q.scales[i]) && q.scales[i] > 0.0f))
      return InvalidArtifact(subject(op, t, role) + "has scale " + num(q.scales[i]) + " at index " +
                             std::to_string(i) + ": scales must be finite and > 0");
    const int32_t z = q.zero_points[i];  // the loader reads as many zero points as scales
    if (z < lo || z > hi)
      return InvalidArtifact(subject(op, t, role) + "has zero point " + std::to_string(z) + " at index " +
                             std::to_string(i) + ", outside [" + std::to_string(lo) + ", " + std::to_string(hi) +
                             "] for " + dtype_name(t.dtype));
  }
  if (q.axis < -1 || q.axis >= t.rank)
    return InvalidArtifact(subject(op, t, role) + "has quantization axis " + std::to_string(q.axis) +
                           ", out of range for rank " + std::to_string(t.rank));
  if (q.block_size < 0)
    return InvalidArtifact(subject(op, t, role) + "has a negative block size " + std::to_string(q.block_size));
  return Status::Ok();
}

Status not_blockwise(const OpInfo& op, const Tensor& t, const char* role) {
  if (t.quant.block_size != 0)
    return Unsupported(subject(op, t, role) + "is quantized block-wise, which this op does not take");
  return Status::Ok();
}

}  // namespace

bool code_range(DType dtype, int32_t* lo, int32_t* hi) {
  switch (dtype) {
    case DType::kInt8: *lo = -128; *hi = 127; return true;
    case DType::kUInt8: *lo = 0; *hi = 255; return true;
    default: *lo = 0; *hi = 0; return false;
  }
}

Status expect_per_tensor(const OpInfo& op, const Tensor& t, const char* role) {
  EP_RETURN_IF_ERROR(check_record(op, t, role));
  EP_RETURN_IF_ERROR(not_blockwise(op, t, role));
  if (t.quant.scales.size() != 1)
    return InvalidArtifact(subject(op, t, role) + "has " + count_str(t.quant.scales.size(), "scale") +
                           ", expected 1 (per-tensor parameters)");
  return Status::Ok();
}

Status expect_per_channel(const OpInfo& op, const Tensor& t, const char* role) {
  EP_RETURN_IF_ERROR(check_record(op, t, role));
  EP_RETURN_IF_ERROR(not_blockwise(op, t, role));
  const size_t n = t.quant.scales.size();
  if (n == 1) return Status::Ok();
  if (t.quant.axis < 0)
    return InvalidArtifact(subject(op, t, role) + "has " + count_str(n, "scale") +
                           " but no quantization axis (per tensor takes 1)");
  const int64_t channels = t.dims[t.quant.axis];
  if (static_cast<int64_t>(n) != channels)
    return InvalidArtifact(subject(op, t, role) + "has " + count_str(n, "scale") + ", expected 1 or " +
                           std::to_string(channels) + " (one per index of axis " + std::to_string(t.quant.axis) +
                           " of " + t.shape_str() + ")");
  return Status::Ok();
}

Status expect_blockwise(const OpInfo& op, const Tensor& t, const char* role) {
  EP_RETURN_IF_ERROR(check_record(op, t, role));
  const QuantInfo& q = t.quant;
  if (q.block_size == 0 || q.axis < 0)
    return InvalidArtifact(subject(op, t, role) + "needs block-wise parameters (an axis and a block size)");
  const int64_t length = t.dims[q.axis];
  if (length % q.block_size != 0)
    return InvalidArtifact(subject(op, t, role) + "has block size " + std::to_string(q.block_size) +
                           ", which does not divide axis " + std::to_string(q.axis) + " of " + t.shape_str());
  const int64_t blocks = t.numel / q.block_size;
  if (static_cast<int64_t>(q.scales.size()) != blocks)
    return InvalidArtifact(subject(op, t, role) + "has " + count_str(q.scales.size(), "scale") + ", expected " +
                           std::to_string(blocks) + " (one per block of " + std::to_string(q.block_size) +
                           " along axis " + std::to_string(q.axis) + " of " + t.shape_str() + ")");
  return Status::Ok();
}

Status expect_same_quant(const OpInfo& op, const Tensor& from, const Tensor& to) {
  if (!is_quantized(from) && !is_quantized(to)) return Status::Ok();
  if (!is_quantized(from) || !is_quantized(to))
    return InvalidArtifact(subject(op, to, "output") + "and '" + from.name +
                           "' must both be quantized or both not: the op moves codes unchanged");
  EP_RETURN_IF_ERROR(expect_per_tensor(op, from, "input"));
  EP_RETURN_IF_ERROR(expect_per_tensor(op, to, "output"));
  if (from.quant.scales[0] != to.quant.scales[0] || from.quant.zero_points[0] != to.quant.zero_points[0])
    return InvalidArtifact(subject(op, to, "output") + "has scale " + num(to.quant.scales[0]) +
                           " and zero point " + std::to_string(to.quant.zero_points[0]) + ", but '" + from.name +
                           "' has " + num(from.quant.scales[0]) + " and " +
                           std::to_string(from.quant.zero_points[0]) +
                           ": the op moves codes, so the parameters must be equal (requantize first)");
  return Status::Ok();
}

Status make_multiplier(const OpInfo& op, double real, const char* what, Multiplier* out) {
  if (!quantize_multiplier(real, out))
    return Unsupported("op '" + op.name + "' (" + op_name(op.code) + "): the requantization multiplier " + what +
                       " = " + num(real) + " is outside [0, 2^30)");
  return Status::Ok();
}

}  // namespace edgepack
