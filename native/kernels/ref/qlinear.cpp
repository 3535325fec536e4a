// MatMul and Conv on quantized or low-precision operands. Until the integer kernels land, every
// combination falls through to the float kernels (which refuse non-float dtypes at load).
#include "kernels/ref/kernels.h"

namespace edgepack {

std::unique_ptr<OpKernel> make_quantized_compute_kernel(OpCode code, const std::vector<const Tensor*>& ins) {
  (void)code;
  (void)ins;
  return nullptr;
}

}  // namespace edgepack
