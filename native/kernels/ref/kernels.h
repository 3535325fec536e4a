// Kernel factories, one per op family; each returns nullptr for an opcode it does not handle.
#pragma once

#include <memory>

#include "edgepack/kernel.h"

namespace edgepack {

std::unique_ptr<OpKernel> make_matmul_kernel(OpCode code);       // matmul.cpp
std::unique_ptr<OpKernel> make_conv_kernel(OpCode code);         // conv.cpp
std::unique_ptr<OpKernel> make_elementwise_kernel(OpCode code);  // elementwise.cpp
std::unique_ptr<OpKernel> make_normalization_kernel(OpCode code);  // normalization.cpp
std::unique_ptr<OpKernel> make_pooling_kernel(OpCode code);      // pooling.cpp
std::unique_ptr<OpKernel> make_movement_kernel(OpCode code);     // movement.cpp
std::unique_ptr<OpKernel> make_quantization_kernel(OpCode code); // quantization.cpp

// MatMul / Conv whose input is int8 or whose weight is int8, int4 or float16 (qlinear.cpp); nullptr
// for float operands, which the float factories handle.
std::unique_ptr<OpKernel> make_quantized_compute_kernel(OpCode code, const std::vector<const Tensor*>& ins);

}  // namespace edgepack
