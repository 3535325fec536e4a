// MatMul (float32): numpy matmul of A [..., M, K] and B [..., K, N] with batch broadcasting, an
// optional bias [N] added along the last axis, and the fused activation — all on the packed GEMM.
//
// When B has no batch (the usual constant weight [K, N]), A's batch folds into its rows and the op
// is one GEMM of (batch * M) x K x N. Otherwise each output batch item is its own GEMM, with A and B
// located through broadcast strides (0 along a broadcast dimension). A constant operand is packed
// once in prepare(). A run-time A is read in place (the GEMM broadcasts straight from its rows); a
// run-time B is read in place for few rows of A, else packed per run into scratch.
//
// Folded Transposes (passes/fold_transposes.py): attrs a_perm / b_perm say the operand is the input
// transposed, y_perm that the output is the product transposed; each keeps the last axis, so A's and
// B's rows and Y's rows stay contiguous and only the row and batch strides change. Attention's head
// split [1, T, H, D] -> [1, H, T, D] of Q and V and its merge back are read and written in place.
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
    const Tensor* bias = ins.size() > 2 ? ins[2] : nullptr;
    EP_RETURN_IF_ERROR(expect_dtype(op, *ins[0], DType::kFloat32, "input A"));
    EP_RETURN_IF_ERROR(expect_dtype(op, *ins[1], DType::kFloat32, "input B"));
    EP_RETURN_IF_ERROR(expect_dtype(op, *outs[0], DType::kFloat32, "output"));
    Tensor a = *ins[0], b = *ins[1], y = *outs[0];  // the operands and the product, as the GEMM sees them
    EP_RETURN_IF_ERROR(read_layouts(op, &a, &b, &y));
    EP_RETURN_IF_ERROR(gemm::read_matmul(op, a, b, bias, y, &shape_, &epilogue_));

    const int64_t k = shape_.k, n = shape_.n, rows = shape_.rows, mk = shape_.m * k, kn = k * n;
    // An empty constant has nothing to pack (and K == 0 still yields bias + activation in run()).
    a_const_ = a.storage == Storage::kWeight && a.numel > 0;
    b_const_ = b.storage == Storage::kWeight && b.numel > 0;
    // A run-time B is read in place (row k at k * N) when too few rows of A would reuse its packing.
    b_rows_.clear();
    if (!b_const_ && rows <= gemm::kInPlaceMaxRows)
      for (int64_t row = 0; row < k; ++row) b_rows_.push_back(row * b_layout_.row);
    if (permuted_ && (a_const_ || b_const_)) return bad(op, "folded transposes need run-time operands");

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
      int64_t a_at = 0, b_at = 0, y_at = 0;  // where the item's matrices start, in floats
      if (permuted_) {
        int64_t rest = item;  // the item's index over the batch dims, from the last
        for (int d = shape_.batch_rank - 1; d >= 0; rest /= shape_.batch_dims[d], --d) {
          const int64_t i = rest % shape_.batch_dims[d];
          a_at += i * a_layout_.batch[d];
          b_at += i * b_layout_.batch[d];
          y_at += i * y_layout_.batch[d];
        }
      } else {
        int64_t a_mat = 0, b_mat = 0;
        shape_.locate(item, &a_mat, &b_mat);
        a_at = a_mat * shape_.m * k;
        b_at = b_mat * k * n;
        y_at = item * rows * n;
        if (a_const_) a_at = a_mat * packed_a_floats_;
        if (b_const_) b_at = b_mat * packed_b_floats_;
      }
      float* item_scratch = scratch + item * scratch_per_item_;
      p->m = rows;
      p->n = n;
      p->k = k;
      if (a_const_) {
        p->a = gemm::Operand::prepacked(packed_.data() + a_at);
      } else {  // rows read in place, needing no scratch
        p->a = gemm::Operand::strided(a + a_at, a_layout_.row, 1, nullptr);
      }
      if (b_const_) {
        p->b = gemm::Operand::prepacked(packed_.data() + packed_b_offset_ + b_at);
      } else if (!b_rows_.empty()) {
        p->b = gemm::Operand::in_place(b + b_at, b_rows_.data());
      } else {
        p->b = gemm::Operand::strided(b + b_at, b_layout_.row, 1, item_scratch);
      }
      p->c = y + y_at;
      p->ldc = y_layout_.row;
      p->epilogue = epilogue;
    }, ctx.pool);
    return Status::Ok();
  }

 private:
  // Where an operand's (or the product's) rows and batch matrices lie, in floats.
  struct Layout {
    int64_t row = 0;
    int64_t batch[gemm::MatMulShape::kMaxBatchRank] = {};
  };

  // Reads a_perm / b_perm / y_perm (absent: identity) and turns *a, *b (the inputs) and *y (the output)
  // into the shapes of the GEMM's operands and product, with each one's layout in its tensor.
  Status read_layouts(const OpInfo& op, Tensor* a, Tensor* b, Tensor* y) {
    AttrReader attrs(op);
    permuted_ = attrs.has("a_perm") || attrs.has("b_perm") || attrs.has("y_perm");
    Tensor* tensors[3] = {a, b, y};
    Layout* layouts[3] = {&a_layout_, &b_layout_, &y_layout_};
    const char* keys[3] = {"a_perm", "b_perm", "y_perm"};
    for (int t = 0; t < 3; ++t) {
      Tensor& x = *tensors[t];
      if (x.rank < 2 && !attrs.has(keys[t])) continue;  // read_matmul names the rank
      std::vector<int64_t> perm(x.rank);
      for (int d = 0; d < x.rank; ++d) perm[d] = d;
      if (attrs.has(keys[t])) perm = attrs.ints(keys[t], x.rank);
      EP_RETURN_IF_ERROR(attrs.status());
      std::vector<bool> seen(x.rank, false);
      for (int64_t p : perm) {
        if (p < 0 || p >= x.rank || seen[p]) return bad(op, std::string(keys[t]) + " is not a permutation of its axes");
        seen[p] = true;
      }
      if (x.rank < 2 || perm[x.rank - 1] != x.rank - 1)
        return bad(op, std::string(keys[t]) + " must keep the last axis (rows are read and written contiguous)");
      if (x.rank - 2 > gemm::MatMulShape::kMaxBatchRank) return bad(op, "rank is too large");
      std::vector<int64_t> stride(x.rank, 1);  // the tensor's own, contiguous
      for (int d = x.rank - 2; d >= 0; --d) stride[d] = stride[d + 1] * x.dims[d + 1];
      Tensor view = x;
      std::vector<int64_t> view_stride(x.rank);
      if (t < 2) {  // input: operand axis d is the tensor's axis perm[d]
        for (int d = 0; d < x.rank; ++d) {
          view.dims[d] = x.dims[perm[d]];
          view_stride[d] = stride[perm[d]];
        }
      } else {  // output: tensor axis d is the product's axis perm[d]
        for (int d = 0; d < x.rank; ++d) {
          view.dims[perm[d]] = x.dims[d];
          view_stride[perm[d]] = stride[d];
        }
      }
      layouts[t]->row = view_stride[x.rank - 2];
      for (int d = 0; d < x.rank - 2; ++d) layouts[t]->batch[d] = view_stride[d];
      x = view;
    }
    if (permuted_) {
      bool same = a->rank == b->rank && a->rank == y->rank;
      for (int d = 0; same && d < a->rank - 2; ++d) same = a->dims[d] == b->dims[d];
      if (!same) return bad(op, "with folded transposes, A and B must have the same rank and batch dimensions (no broadcast)");
    }
    if (!permuted_) {  // contiguous rows: what run() assumes without perms
      a_layout_.row = a->rank > 0 ? a->dim(-1) : 0;
      b_layout_.row = b->rank > 0 ? b->dim(-1) : 0;
      y_layout_.row = y->rank > 0 ? y->dim(-1) : 0;
    }
    return Status::Ok();
  }

  bool permuted_ = false;
  Layout a_layout_, b_layout_, y_layout_;
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
