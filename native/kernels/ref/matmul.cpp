// MatMul (float32): numpy matmul of A [..., M, K] and B [..., K, N] with batch broadcasting, an
// optional bias [N] added along the last axis, and the fused activation — all on the packed GEMM.
//
// When B has no batch (the usual constant weight [K, N]), A's batch folds into its rows and the op
// is one GEMM of (batch * M) x K x N. Otherwise each output batch item is its own GEMM, with A and B
// located through broadcast strides (0 along a broadcast dimension). A constant operand is packed
// once in prepare(); a run-time one is packed per run into scratch.
#include <algorithm>
#include <string>
#include <vector>

#include "edgepack/kernel.h"
#include "kernels/ref/gemm.h"
#include "kernels/ref/kernels.h"

namespace edgepack {
namespace {

constexpr int kMaxBatchRank = kMaxRank - 2;

Status bad(const OpInfo& op, const std::string& what) {
  return InvalidArtifact("op '" + op.name + "' (" + op_name(op.code) + "): " + what);
}

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
    if (a.rank < 2 || b.rank < 2)
      return bad(op, "inputs must have rank >= 2, got A " + a.shape_str() + " and B " + b.shape_str());
    m_ = a.dim(-2);
    k_ = a.dim(-1);
    n_ = b.dim(-1);
    if (b.dim(-2) != k_) return bad(op, "A " + a.shape_str() + " and B " + b.shape_str() + " do not multiply");
    // Sizes come from the file: every product used below is checked once here.
    int64_t mk = 0, kn = 0;
    if (!gemm::checked_mul(m_, k_, &mk) || !gemm::checked_mul(k_, n_, &kn))
      return bad(op, "A " + a.shape_str() + " and B " + b.shape_str() + " are too large");

    // Broadcast the batch dimensions (right-aligned, numpy rules) and record each operand's element
    // stride along every output batch dimension.
    batch_rank_ = std::max(a.rank, b.rank) - 2;
    std::vector<int64_t> out_shape(batch_rank_);
    int64_t a_stride = mk, b_stride = kn, a_batch = 1, b_batch = 1, out_batch = 1;
    for (int d = batch_rank_ - 1; d >= 0; --d) {
      const int ad = d - (batch_rank_ - (a.rank - 2)), bd = d - (batch_rank_ - (b.rank - 2));
      const int64_t da = ad >= 0 ? a.dims[ad] : 1, db = bd >= 0 ? b.dims[bd] : 1;
      if (da != db && da != 1 && db != 1)
        return bad(op, "batch dimensions of A " + a.shape_str() + " and B " + b.shape_str() + " do not broadcast");
      out_shape[d] = batch_dims_[d] = std::max(da, db);
      a_strides_[d] = da == 1 ? 0 : a_stride;
      b_strides_[d] = db == 1 ? 0 : b_stride;
      if (!gemm::checked_mul(a_batch, da, &a_batch) || !gemm::checked_mul(b_batch, db, &b_batch) ||
          !gemm::checked_mul(out_batch, batch_dims_[d], &out_batch) || !gemm::checked_mul(a_stride, da, &a_stride) ||
          !gemm::checked_mul(b_stride, db, &b_stride))
        return bad(op, "A " + a.shape_str() + " and B " + b.shape_str() + " are too large");
    }
    out_shape.push_back(m_);
    out_shape.push_back(n_);
    EP_RETURN_IF_ERROR(expect_shape(op, y, out_shape, "output"));
    if (bias != nullptr) {
      EP_RETURN_IF_ERROR(expect_dtype(op, *bias, DType::kFloat32, "bias"));
      EP_RETURN_IF_ERROR(expect_shape(op, *bias, {n_}, "bias"));
    }
    AttrReader attrs(op);
    EP_RETURN_IF_ERROR(gemm::read_activation(op, attrs, &epilogue_));
    epilogue_.bias_kind = bias != nullptr ? gemm::BiasKind::kPerColumn : gemm::BiasKind::kNone;

    folded_ = b_batch == 1;
    if (folded_) {
      // A [..., M, K] is one row-major matrix of a_batch * M rows; the output [..., M, N] likewise.
      count_ = 1;
      if (!gemm::checked_mul(a_batch, m_, &rows_)) return bad(op, "A is too large");
    } else {
      count_ = out_batch;
      rows_ = m_;
    }
    // An empty constant has nothing to pack (and K == 0 still yields bias + activation in run()).
    a_const_ = a.storage == Storage::kWeight && a.numel > 0;
    b_const_ = b.storage == Storage::kWeight && b.numel > 0;
    // A run-time B is read in place (row k at k * N) when too few rows of A would reuse its packing.
    b_rows_.clear();
    if (!b_const_ && rows_ <= gemm::kInPlaceMaxRows)
      for (int64_t k = 0; k < k_; ++k) b_rows_.push_back(k * n_);

    int64_t pa = 0, pb = 0;  // packed floats per A / B matrix
    if (!gemm::checked_mul(gemm::panels_a(rows_) * gemm::kTileM, k_, &pa) ||
        !gemm::checked_mul(gemm::panels_b(n_) * gemm::kTileN, k_, &pb))
      return bad(op, "operands are too large");
    pa = gemm::whole_lines(pa);
    pb = gemm::whole_lines(pb);
    packed_a_floats_ = pa;
    packed_b_floats_ = pb;
    // Constants are packed once, one packed matrix per batch matrix of the operand.
    const int64_t a_mats = folded_ ? 1 : a_batch, b_mats = b_batch;
    int64_t a_floats = 0, b_floats = 0;
    if (!gemm::checked_mul(a_const_ ? a_mats : 0, pa, &a_floats) || !gemm::checked_mul(b_const_ ? b_mats : 0, pb, &b_floats))
      return bad(op, "constant operands are too large");
    if (!packed_.resize(a_floats + b_floats))
      return Status(StatusCode::kRuntimeError, "op '" + op.name + "': out of memory packing the weights");
    packed_b_offset_ = a_floats;
    if (a_const_)
      for (int64_t i = 0; i < a_mats; ++i)
        gemm::pack_a(a.as<const float>() + i * mk, k_, 1, rows_, k_, 0, gemm::panels_a(rows_),
                     packed_.data() + i * pa);
    if (b_const_)
      for (int64_t i = 0; i < b_mats; ++i)
        gemm::pack_b(b.as<const float>() + i * kn, n_, 1, k_, n_, 0, gemm::panels_b(n_),
                     packed_.data() + packed_b_offset_ + i * pb);

    // Scratch: the packed run-time operands of every item (items may run concurrently).
    const int64_t per_item = (a_const_ ? 0 : pa) + (b_const_ || !b_rows_.empty() ? 0 : pb);
    int64_t scratch_floats = 0;
    if (!gemm::checked_mul(count_, per_item, &scratch_floats)) return bad(op, "scratch would be too large");
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

    gemm::sgemm_batch(count_, [&](int64_t item, gemm::Problem* p) {
      // Element offsets of this item's A and B: walk the output batch index from the last dimension.
      int64_t a_off = 0, b_off = 0;
      for (int64_t d = batch_rank_ - 1, rest = item; d >= 0 && !folded_; --d) {
        const int64_t i = rest % batch_dims_[d];
        rest /= batch_dims_[d];
        a_off += i * a_strides_[d];
        b_off += i * b_strides_[d];
      }
      float* item_scratch = scratch + item * scratch_per_item_;
      p->m = rows_;
      p->n = n_;
      p->k = k_;
      if (a_const_) {
        p->a = gemm::Operand::prepacked(packed_.data() + a_off / (m_ * k_) * packed_a_floats_);
      } else {
        p->a = gemm::Operand::strided(a + a_off, k_, 1, item_scratch);
        item_scratch += packed_a_floats_;
      }
      if (b_const_) {
        p->b = gemm::Operand::prepacked(packed_.data() + packed_b_offset_ + b_off / (k_ * n_) * packed_b_floats_);
      } else if (!b_rows_.empty()) {
        p->b = gemm::Operand::in_place(b + b_off, b_rows_.data());
      } else {
        p->b = gemm::Operand::strided(b + b_off, n_, 1, item_scratch);
      }
      p->c = y + item * rows_ * n_;
      p->ldc = n_;
      p->epilogue = epilogue;
    }, ctx.pool);
    return Status::Ok();
  }

 private:
  int64_t m_ = 0, k_ = 0, n_ = 0;
  int64_t rows_ = 0;          // rows of each GEMM: M, or batch * M when folded
  int64_t count_ = 0;         // GEMMs per run
  bool folded_ = false;       // B has no batch: A's batch is folded into the rows of one GEMM
  int batch_rank_ = 0;
  int64_t batch_dims_[kMaxBatchRank] = {};
  int64_t a_strides_[kMaxBatchRank] = {}, b_strides_[kMaxBatchRank] = {};
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
