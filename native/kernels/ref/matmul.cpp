// MatMul (float32): numpy matmul of A [..., M, K] and B [..., K, N] with batch broadcasting, an
// optional bias [N] added along the last axis, and the fused activation — all on the packed GEMM.
//
// When B has no batch (the usual constant weight [K, N]), A's batch folds into its rows and the op
// is one GEMM of (batch * M) x K x N. Otherwise each output batch item is its own GEMM, with A and B
// located through broadcast strides (0 along a broadcast dimension). A constant operand is packed
// once in prepare(). A run-time A is read in place (the GEMM broadcasts straight from its rows); a
// run-time B is read in place for few rows of A, else packed per run into scratch.
#include <algorithm>
#include <string>
#include <vector>

#include "edgepack/kernel.h"
#include "kernels/ref/gemm.h"
#include "kernels/ref/kernel_util.h"
#include "kernels/ref/kernels.h"

namespace edgepack {
namespace {

class MatMulKernel final : public OpKernel {
 public:
  Status prepare(const OpInfo& op, const std::vector<const Tensor*>& ins,
                 const std::vector<const Tensor*>& outs) override {
    EP_RETURN_IF_ERROR(expect_inputs(op, ins, 2, 3));
    if (outs.size() != 1) return bad(op, "has " + std::to_string(outs.size()) + " outputs, expected 1");
    const Tensor &a = *ins[0], &b = *ins[1], &y = *outs[0];
    const Tensor* bias = ins.size() > 2 ? ins[2] : nullptr;
    EP_RETURN_IF_ERROR(expect_dtype(op, a, DType::kFloat32, "input A"));
    EP_RETURN_IF_ERROR(expect_dtype(op, b, DType::kFloat32, "input B"));
    EP_RETURN_IF_ERROR(expect_dtype(op, y, DType::kFloat32, "output"));
    EP_RETURN_IF_ERROR(gemm::read_matmul(op, a, b, bias, y, &shape_, &epilogue_));
    const int64_t k = shape_.k, n = shape_.n, rows = shape_.rows, mk = shape_.m * k, kn = k * n;
    // An empty constant has nothing to pack (and K == 0 still yields bias + activation in run()).
    a_const_ = a.storage == Storage::kWeight && a.numel > 0;
    b_const_ = b.storage == Storage::kWeight && b.numel > 0;
    // A run-time B is read in place (row k at k * N) when too few rows of A would reuse its packing.
    b_rows_.clear();
    if (!b_const_ && rows <= gemm::kInPlaceMaxRows)
      for (int64_t row = 0; row < k; ++row) b_rows_.push_back(row * n);

    int64_t pa = 0, pb = 0;  // packed floats per A / B matrix
    if (!gemm::checked_mul(gemm::panels_a(rows) * gemm::kTileM, k, &pa) ||
        !gemm::checked_mul(gemm::panels_b(n) * gemm::kTileN, k, &pb))
      return bad(op, "operands are too large");
    pa = gemm::whole_lines(pa);
    pb = gemm::whole_lines(pb);
    packed_a_floats_ = pa;
    packed_b_floats_ = pb;
    // Constants are packed once, one packed matrix per batch matrix of the operand.
    const int64_t a_mats = shape_.folded ? 1 : shape_.a_matrices, b_mats = shape_.b_matrices;
    int64_t a_floats = 0, b_floats = 0;
    if (!gemm::checked_mul(a_const_ ? a_mats : 0, pa, &a_floats) || !gemm::checked_mul(b_const_ ? b_mats : 0, pb, &b_floats))
      return bad(op, "constant operands are too large");
    if (!packed_.resize(a_floats + b_floats))
      return Status(StatusCode::kRuntimeError, "op '" + op.name + "': out of memory packing the weights");
    packed_b_offset_ = a_floats;
    if (a_const_)
      for (int64_t i = 0; i < a_mats; ++i)
        gemm::pack_a(a.as<const float>() + i * mk, k, 1, rows, k, 0, gemm::panels_a(rows),
                     packed_.data() + i * pa);
    if (b_const_)
      for (int64_t i = 0; i < b_mats; ++i)
        gemm::pack_b(b.as<const float>() + i * kn, n, 1, k, n, 0, gemm::panels_b(n),
                     packed_.data() + packed_b_offset_ + i * pb);

    // Scratch: the packed run-time B of every item (items may run concurrently).
    const int64_t per_item = b_const_ || !b_rows_.empty() ? 0 : pb;
    int64_t scratch_floats = 0;
    if (!gemm::checked_mul(shape_.count, per_item, &scratch_floats)) return bad(op, "scratch would be too large");
    scratch_per_item_ = per_item;
    scratch_bytes = static_cast<size_t>(scratch_floats) * sizeof(float);
    return Status::Ok();
  }

  Status run(const std::vector<const Tensor*>& ins, const std::vector<Tensor*>& outs, RunContext& ctx) const override {
    if (outs[0]->numel == 0) return Status::Ok();
    const float* a = ins[0]->as<const float>();
    const float* b = ins[1]->as<const float>();
    float* y = outs[0]->as<float>();
    gemm::Epilogue epilogue = epilogue_;
    if (ins.size() > 2 && ins[2] != nullptr) epilogue.bias = ins[2]->as<const float>();
    float* scratch = reinterpret_cast<float*>(ctx.scratch);

    const int64_t k = shape_.k, n = shape_.n, rows = shape_.rows;
    gemm::sgemm_batch(shape_.count, [&](int64_t item, gemm::Problem* p) {
      int64_t a_mat = 0, b_mat = 0;
      shape_.locate(item, &a_mat, &b_mat);
      float* item_scratch = scratch + item * scratch_per_item_;
      p->m = rows;
      p->n = n;
      p->k = k;
      if (a_const_) {
        p->a = gemm::Operand::prepacked(packed_.data() + a_mat * packed_a_floats_);
      } else {  // row-major: read in place, needing no scratch
        p->a = gemm::Operand::strided(a + a_mat * shape_.m * k, k, 1, nullptr);
      }
      if (b_const_) {
        p->b = gemm::Operand::prepacked(packed_.data() + packed_b_offset_ + b_mat * packed_b_floats_);
      } else if (!b_rows_.empty()) {
        p->b = gemm::Operand::in_place(b + b_mat * k * n, b_rows_.data());
      } else {
        p->b = gemm::Operand::strided(b + b_mat * k * n, n, 1, item_scratch);
      }
      p->c = y + item * rows * n;
      p->ldc = n;
      p->epilogue = epilogue;
    }, ctx.pool);
    return Status::Ok();
  }

 private:
  gemm::MatMulShape shape_;
  bool a_const_ = false, b_const_ = false;
  gemm::AlignedFloats packed_;  // packed constant A matrices, then packed constant B matrices
  int64_t packed_b_offset_ = 0;
  int64_t packed_a_floats_ = 0, packed_b_floats_ = 0;  // per matrix, rounded to 64-byte lines
  int64_t scratch_per_item_ = 0;
  std::vector<int64_t> b_rows_;  // in-place run-time B: the offset of each row; empty when B is packed
  gemm::Epilogue epilogue_;
};

}  // namespace

std::unique_ptr<OpKernel> make_matmul_kernel(OpCode code) {
  if (code == OpCode::kMatMul) return std::make_unique<MatMulKernel>();
  return nullptr;
}

}  // namespace edgepack
