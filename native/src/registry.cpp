// The op registry: opcode -> name, and opcode -> kernel factory. Explicit tables, no static
// initialisers, so a static library keeps every kernel and a cross build sees the same list.
#include "edgepack/kernel.h"
#include "kernels/ref/kernels.h"

namespace edgepack {

namespace {
struct OpName {
  OpCode code;
  const char* name;
};
constexpr OpName kOpNames[] = {
    {OpCode::kConv, "Conv"},
    {OpCode::kConvTranspose, "ConvTranspose"},
    {OpCode::kMatMul, "MatMul"},
    {OpCode::kAttention, "Attention"},
    {OpCode::kRelu, "Relu"},
    {OpCode::kSigmoid, "Sigmoid"},
    {OpCode::kTanh, "Tanh"},
    {OpCode::kErf, "Erf"},
    {OpCode::kExp, "Exp"},
    {OpCode::kLog, "Log"},
    {OpCode::kSqrt, "Sqrt"},
    {OpCode::kNeg, "Neg"},
    {OpCode::kAbs, "Abs"},
    {OpCode::kReciprocal, "Reciprocal"},
    {OpCode::kHardSigmoid, "HardSigmoid"},
    {OpCode::kHardSwish, "HardSwish"},
    {OpCode::kLeakyRelu, "LeakyRelu"},
    {OpCode::kClip, "Clip"},
    {OpCode::kGelu, "Gelu"},
    {OpCode::kNot, "Not"},
    {OpCode::kCast, "Cast"},
    {OpCode::kFloor, "Floor"},
    {OpCode::kCeil, "Ceil"},
    {OpCode::kAdd, "Add"},
    {OpCode::kSub, "Sub"},
    {OpCode::kMul, "Mul"},
    {OpCode::kDiv, "Div"},
    {OpCode::kPow, "Pow"},
    {OpCode::kMax, "Max"},
    {OpCode::kMin, "Min"},
    {OpCode::kEqual, "Equal"},
    {OpCode::kLess, "Less"},
    {OpCode::kGreater, "Greater"},
    {OpCode::kAnd, "And"},
    {OpCode::kOr, "Or"},
    {OpCode::kWhere, "Where"},
    {OpCode::kSoftmax, "Softmax"},
    {OpCode::kLayerNormalization, "LayerNormalization"},
    {OpCode::kLRN, "LRN"},
    {OpCode::kLogSoftmax, "LogSoftmax"},
    {OpCode::kMaxPool, "MaxPool"},
    {OpCode::kAveragePool, "AveragePool"},
    {OpCode::kReduceMean, "ReduceMean"},
    {OpCode::kReduceSum, "ReduceSum"},
    {OpCode::kReduceMax, "ReduceMax"},
    {OpCode::kReduceMin, "ReduceMin"},
    {OpCode::kArgMax, "ArgMax"},
    {OpCode::kReshape, "Reshape"},
    {OpCode::kTranspose, "Transpose"},
    {OpCode::kConcat, "Concat"},
    {OpCode::kSplit, "Split"},
    {OpCode::kSlice, "Slice"},
    {OpCode::kGather, "Gather"},
    {OpCode::kPad, "Pad"},
    {OpCode::kResize, "Resize"},
    {OpCode::kExpand, "Expand"},
    {OpCode::kTile, "Tile"},
    {OpCode::kDepthToSpace, "DepthToSpace"},
    {OpCode::kQuantize, "Quantize"},
    {OpCode::kDequantize, "Dequantize"},
    {OpCode::kRequantize, "Requantize"},
    {OpCode::kLut, "Lut"},
};

using Factory = std::unique_ptr<OpKernel> (*)(OpCode);
constexpr Factory kFactories[] = {
    make_matmul_kernel, make_conv_kernel, make_elementwise_kernel,
    make_normalization_kernel, make_pooling_kernel, make_movement_kernel,
    make_quantization_kernel,
};
}  // namespace

const char* op_name(OpCode code) {
  for (const auto& entry : kOpNames)
    if (entry.code == code) return entry.name;
  return nullptr;
}

bool op_code_valid(uint32_t code) { return op_name(static_cast<OpCode>(code)) != nullptr; }

std::unique_ptr<OpKernel> make_kernel(OpCode code, const std::vector<const Tensor*>& ins) {
  // MatMul / Conv on quantized or low-precision operands have their own kernels (qlinear.cpp).
  if (auto kernel = make_quantized_compute_kernel(code, ins)) return kernel;
  for (Factory factory : kFactories)
    if (auto kernel = factory(code)) return kernel;
  return nullptr;
}

}  // namespace edgepack
