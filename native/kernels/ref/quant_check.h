// prepare()-time validation of quantization parameters (the rules are in docs/quantization.md). The
// loader copies a tensor's quant record from the file unchecked, so a kernel that reads scales or
// zero points first passes the tensor through one of these; each error names the op, the tensor and
// what is wrong.
#pragma once

#include <cstdint>

#include "edgepack/kernel.h"
#include "kernels/ref/quant_util.h"

namespace edgepack {

inline bool is_quantized(const Tensor& t) { return !t.quant.scales.empty(); }

// The codes of an activation dtype: [-128, 127] for int8, [0, 255] for uint8; false for any other.
bool code_range(DType dtype, int32_t* lo, int32_t* hi);

// Present, exactly one scale (finite, > 0) and a zero point in the dtype's range.
Status expect_per_tensor(const OpInfo& op, const Tensor& t, const char* role);

// Present, one scale or one per index of quant.axis; not block-wise.
Status expect_per_channel(const OpInfo& op, const Tensor& t, const char* role);

// Present and block-wise: blocks of quant.block_size along quant.axis, one scale per block (the
// scales laid out like the tensor with that axis divided by the block size). The zero points are
// ignored, as in the reference; for int4, the only block-wise dtype, they must be 0 anyway.
Status expect_blockwise(const OpInfo& op, const Tensor& t, const char* role);

// For ops that move codes: `to` carries exactly `from`'s parameters, per tensor, or neither is
// quantized.
Status expect_same_quant(const OpInfo& op, const Tensor& from, const Tensor& to);

// (M, shift) for a real multiplier, or an error naming the op and `what` the multiplier is for.
Status make_multiplier(const OpInfo& op, double real, const char* what, Multiplier* out);

}  // namespace edgepack
