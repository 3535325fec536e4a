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
#include <cmath>
#include <string>
#include <vector>

#include "edgepack/kernel.h"
#include "kernels/ref/float_rows.h"
#include "kernels/ref/bf16.h"
#include "kernels/ref/gemm.h"
#include "kernels/ref/kernel_util.h"
#include "kernels/ref/kernels.h"

namespace edgepack {
namespace {

// Where an operand's (or the product's) rows and batch matrices lie, in floats.
struct Layout {
  int64_t row = 0;
  int64_t col = 1;  // 1 unless the perm moves the last axis (read_layout's `any_last`)
  int64_t batch[gemm::MatMulShape::kMaxBatchRank] = {};
};

// Reads the perm attribute `key` of a MatMul-family op (absent: identity) and turns *x into the view
// the GEMM sees: an input's operand axis d is the tensor's axis perm[d]; an output's tensor axis d is
// the product's axis perm[d]. The perm must keep the last axis (rows stay contiguous), unless
// `any_last` (a reader that gathers its rows: bf16 Attention's K); `layout` gets the view's row,
// column and batch strides within the tensor.
Status read_layout(const OpInfo& op, const char* key, bool output, Tensor* x, Layout* layout, bool any_last = false) {
  AttrReader attrs(op);
  std::vector<int64_t> perm(x->rank);
  for (int d = 0; d < x->rank; ++d) perm[d] = d;
  if (attrs.has(key)) perm = attrs.ints(key, x->rank);
  EP_RETURN_IF_ERROR(attrs.status());
  std::vector<bool> seen(x->rank, false);
  for (int64_t p : perm) {
    if (p < 0 || p >= x->rank || seen[p]) return bad(op, std::string(key) + " is not a permutation of its axes");
    seen[p] = true;
  }
  if (x->rank < 2 || (perm[x->rank - 1] != x->rank - 1 && !any_last))
    return bad(op, std::string(key) + " must keep the last axis (rows are read and written contiguous)");
  if (x->rank - 2 > gemm::MatMulShape::kMaxBatchRank) return bad(op, "rank is too large");
  std::vector<int64_t> stride(x->rank, 1);  // the tensor's own, contiguous
  for (int d = x->rank - 2; d >= 0; --d) stride[d] = stride[d + 1] * x->dims[d + 1];
  Tensor view = *x;
  std::vector<int64_t> view_stride(x->rank);
  for (int d = 0; d < x->rank; ++d) {
    const int from = output ? d : static_cast<int>(perm[d]), to = output ? static_cast<int>(perm[d]) : d;
    view.dims[to] = x->dims[from];
    view_stride[to] = stride[from];
  }
  layout->row = view_stride[x->rank - 2];
  layout->col = view_stride[x->rank - 1];
  for (int d = 0; d < x->rank - 2; ++d) layout->batch[d] = view_stride[d];
  *x = view;
  return Status::Ok();
}

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
  // Reads a_perm / b_perm / y_perm (absent: identity) and turns *a, *b (the inputs) and *y (the output)
  // into the shapes of the GEMM's operands and product, with each one's layout in its tensor.
  Status read_layouts(const OpInfo& op, Tensor* a, Tensor* b, Tensor* y) {
    AttrReader attrs(op);
    permuted_ = attrs.has("a_perm") || attrs.has("b_perm") || attrs.has("y_perm");
    Tensor* tensors[3] = {a, b, y};
    Layout* layouts[3] = {&a_layout_, &b_layout_, &y_layout_};
    const char* keys[3] = {"a_perm", "b_perm", "y_perm"};
    for (int t = 0; t < 3; ++t) {
      if (tensors[t]->rank < 2 && !attrs.has(keys[t])) continue;  // read_matmul names the rank
      EP_RETURN_IF_ERROR(read_layout(op, keys[t], t == 2, tensors[t], layouts[t]));
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

// Attention (passes/fuse_attention.py): Y = softmax(Q K [x scale] [+ mask]) V, the ops fused. The work is
// cut into blocks of query rows of one batch item (head); a block's scores are computed into a buffer
// that stays in L1, put through the softmax there, and multiplied by V, so the [.., M, T] scores never
// go to memory. Q is read in place (its rows broadcast), K ([.., D, T], the scores' right operand) and
// V by rows in place: both are small next to the scores, and the blocks of one head reuse them from
// cache. Each GEMM and the softmax are the float MatMul's and Softmax's own (gemm.h, float_rows.h),
// in the unfused order, except that each row of P V is divided by the row's sum instead of each row of
// P (the same float result to a few ulp).
class AttentionKernel final : public OpKernel {
 public:
  Status prepare(const OpInfo& op, const std::vector<const Tensor*>& ins,
                 const std::vector<const Tensor*>& outs) override {
    EP_RETURN_IF_ERROR(expect_inputs(op, ins, 3, 4));
    if (outs.size() != 1) return bad(op, "has " + std::to_string(outs.size()) + " outputs, expected 1");
    const char* names[3] = {"Q", "K", "V"};
    for (int i = 0; i < 3; ++i) EP_RETURN_IF_ERROR(expect_dtype(op, *ins[i], DType::kFloat32, names[i]));
    EP_RETURN_IF_ERROR(expect_dtype(op, *outs[0], DType::kFloat32, "output"));
    Tensor q = *ins[0], k = *ins[1], v = *ins[2], y = *outs[0];
    AttrReader attrs(op);
    scale_ = attrs.has("scale") ? attrs.f("scale") : 1.0f;
    const int64_t bf16 = attrs.has("bf16") ? attrs.i("bf16") : 0;
    EP_RETURN_IF_ERROR(attrs.status());
    if (bf16 != 0 && bf16 != 1) return bad(op, "bf16 must be 0 or 1, got " + std::to_string(bf16));
    bf16_ = bf16 == 1;
    EP_RETURN_IF_ERROR(read_layout(op, "q_perm", false, &q, &q_layout_));
    // bf16 packs K whatever its layout: k_perm may move the last axis (K given as [.., T, D]).
    EP_RETURN_IF_ERROR(read_layout(op, "k_perm", false, &k, &k_layout_, bf16_));
    EP_RETURN_IF_ERROR(read_layout(op, "v_perm", false, &v, &v_layout_));
    EP_RETURN_IF_ERROR(read_layout(op, "y_perm", true, &y, &y_layout_));
    EP_RETURN_IF_ERROR(read_nan_to_zero(op, &nan_to_zero_));

    rank_ = q.rank;
    bool fits = k.rank == rank_ && v.rank == rank_ && y.rank == rank_;
    for (int d = 0; fits && d < rank_ - 2; ++d) fits = k.dims[d] == q.dims[d] && v.dims[d] == q.dims[d] && y.dims[d] == q.dims[d];
    m_ = q.dim(-2);
    d_ = q.dim(-1);
    t_ = k.dim(-1);
    dv_ = v.dim(-1);
    fits = fits && k.dim(-2) == d_ && v.dim(-2) == t_ && y.dim(-2) == m_ && y.dim(-1) == dv_;
    if (!fits)
      return bad(op, "Q " + q.shape_str() + ", K " + k.shape_str() + " and V " + v.shape_str() +
                     " (as multiplied) do not give the output " + y.shape_str() + " (batch dimensions must match)");
    count_ = 1;
    for (int d = 0; d < rank_ - 2; ++d) {
      batch_dims_[d] = q.dims[d];
      count_ *= q.dims[d];
    }
    if (ins.size() > 3 && ins[3] != nullptr) {  // the mask, per row of the scores [.., M, T]
      Tensor scores = q;
      scores.dims[rank_ - 1] = t_;
      EP_RETURN_IF_ERROR(plan_row_bias(op, scores, *ins[3], "mask", &mask_rows_));
    }

    k_rows_.resize(d_);
    for (int64_t i = 0; i < d_; ++i) k_rows_[i] = i * k_layout_.row;
    v_rows_.resize(t_);
    for (int64_t i = 0; i < t_; ++i) v_rows_[i] = i * v_layout_.row;
    // Rows per block: their scores (block x T floats) fit in kBlockBytes, in whole register tiles.
    block_ = std::max<int64_t>(gemm::kTileM, kBlockBytes / sizeof(float) / std::max<int64_t>(1, t_) /
                                                 gemm::kTileM * gemm::kTileM);
    block_ = std::min({block_, std::max<int64_t>(1, m_), gemm::kInPlaceMaxRows});
    int64_t floats = 0;
    if (!gemm::checked_mul(block_, t_, &floats) ||
        !gemm::checked_mul(gemm::whole_lines(floats) + gemm::whole_lines(block_), kSlots, &floats))
      return bad(op, "scores are too large");
    slot_floats_ = gemm::whole_lines(block_ * t_) + gemm::whole_lines(block_);  // the scores, 1 / each row's sum
    if (bf16_) {
      // Per slot, after the scores: the bfloat16 operands of one head (K, V) and of one block (Q, P).
      // (Each is at most a few times the scores, whose size was checked above.)
#if defined(EDGEPACK_BF16_AVX512)
      k_elements_ = bf16::packed_b_elements(d_, t_);
      v_elements_ = bf16::packed_b_elements(t_, dv_);
      const int64_t q_elements = block_ * 2 * bf16::pairs(d_), p_elements = block_ * 2 * bf16::pairs(t_);
      slot_floats_ += gemm::whole_lines((k_elements_ + v_elements_ + q_elements + p_elements + 1) / 2);
#else
      // K, V and a block of Q as float copies rounded to bfloat16 values; P is rounded in place.
      slot_floats_ += gemm::whole_lines(d_ * t_) + gemm::whole_lines(t_ * dv_) + gemm::whole_lines(block_ * d_);
      k_rounded_rows_.resize(d_);
      for (int64_t i = 0; i < d_; ++i) k_rounded_rows_[i] = i * t_;
      v_rounded_rows_.resize(t_);
      for (int64_t i = 0; i < t_; ++i) v_rounded_rows_[i] = i * dv_;
#endif
      if (!gemm::checked_mul(slot_floats_, kSlots, &floats)) return bad(op, "scores are too large");
    }
    scratch_bytes = static_cast<size_t>(floats) * sizeof(float);
    return Status::Ok();
  }

  Status run(const std::vector<const Tensor*>& ins, const std::vector<Tensor*>& outs, RunContext& ctx) const override {
    if (outs[0]->numel == 0) return Status::Ok();
    const float* q = ins[0]->as<const float>();
    const float* k = ins[1]->as<const float>();
    const float* v = ins[2]->as<const float>();
    const float* mask = ins.size() > 3 && ins[3] != nullptr ? ins[3]->as<const float>() : nullptr;
    float* y = outs[0]->as<float>();
    const int64_t blocks = (m_ + block_ - 1) / block_, items = count_ * blocks;
    const int64_t slots = std::min<int64_t>({kSlots, ctx.pool->num_threads(), items});
    ctx.pool->parallel_for(slots, [&](int64_t first_slot, int64_t end_slot) {
      for (int64_t slot = first_slot; slot < end_slot; ++slot) {
        float* scores = reinterpret_cast<float*>(ctx.scratch) + slot * slot_floats_;
        float* inverse_sums = scores + gemm::whole_lines(block_ * t_);
        float* operands = inverse_sums + gemm::whole_lines(block_);  // bf16: this slot's rounded operands
        int64_t packed_batch = -1;                                  // the head whose K and V they hold
        // The slot's items, in order: the row blocks of a head one after another, so K and V stay in cache.
        for (int64_t item = slot * items / slots; item < (slot + 1) * items / slots; ++item) {
          const int64_t batch = item / blocks, row0 = item % blocks * block_, rows = std::min(block_, m_ - row0);
          int64_t q_at = row0 * q_layout_.row, k_at = 0, v_at = 0, y_at = row0 * y_layout_.row;
          for (int64_t d = rank_ - 3, rest = batch; d >= 0; rest /= batch_dims_[d], --d) {
            const int64_t i = rest % batch_dims_[d];
            q_at += i * q_layout_.batch[d];
            k_at += i * k_layout_.batch[d];
            v_at += i * v_layout_.batch[d];
            y_at += i * y_layout_.batch[d];
          }
          if (bf16_) {
            if (batch != packed_batch) {
              pack_head_bf16(k + k_at, v + v_at, operands);
              packed_batch = batch;
            }
            scores_bf16(q + q_at, rows, operands, scores);
          } else {
            gemm::Problem qk;
            qk.m = rows;
            qk.n = t_;
            qk.k = d_;
            qk.a = gemm::Operand::strided(q + q_at, q_layout_.row, 1, nullptr);
            qk.b = gemm::Operand::in_place(k + k_at, k_rows_.data());
            qk.c = scores;
            qk.ldc = t_;
            gemm::sgemm_serial(qk);
          }
          if (scale_ != 1.0f)  // the scores' Mul, in float32 as the separate op (x 1 changes nothing)
            for (int64_t i = 0; i < rows * t_; ++i) scores[i] *= scale_;
          // exp(scores - max) only: the division by each row's sum is applied to P V's rows below, Dv
          // values a row instead of T (a pass over the scores less).
          softmax_exp_rows(scores, mask, mask ? mask_rows_.data() + batch * m_ + row0 : nullptr, scores, rows, t_,
                           inverse_sums);
          if (bf16_) {
            products_bf16(scores, rows, operands, y + y_at);
          } else {
            gemm::Problem pv;
            pv.m = rows;
            pv.n = dv_;
            pv.k = t_;
            pv.a = gemm::Operand::strided(scores, t_, 1, nullptr);
            pv.b = gemm::Operand::in_place(v + v_at, v_rows_.data());
            pv.c = y + y_at;
            pv.ldc = y_layout_.row;
            gemm::sgemm_serial(pv);
          }
          for (int64_t r = 0; r < rows; ++r) {
            float* out = y + y_at + r * y_layout_.row;
            const float scale = inverse_sums[r];
            // A row whose probabilities are all NaN (every key masked to -inf) is 0 with nan_to_zero,
            // as the separate ops give: the NaN guard zeroes P, and 0 x V is 0.
            if (nan_to_zero_ && std::isnan(scale)) {
              std::fill(out, out + dv_, 0.0f);
            } else {
              for (int64_t c = 0; c < dv_; ++c) out[c] *= scale;
            }
          }
        }
      }
    });
    return Status::Ok();
  }

 private:
  // The bfloat16 forms of one head's K and V into `operands`: packed GEMM B operands with AVX-512 BF16,
  // else float copies rounded to bfloat16 values.
  void pack_head_bf16(const float* k, const float* v, float* operands) const {
#if defined(EDGEPACK_BF16_AVX512)
    auto* words = reinterpret_cast<uint16_t*>(operands);
    if (k_layout_.col == 1) {
      bf16::pack_b(k, k_layout_.row, d_, t_, words);
    } else {  // K given as [T, D]: key t's D values are k_layout_.col apart from the next key's
      bf16::pack_b_transposed(k, k_layout_.col, k_layout_.row, d_, t_, words);
    }
    bf16::pack_b(v, v_layout_.row, t_, dv_, words + k_elements_);
#else
    float* kr = operands;
    float* vr = kr + gemm::whole_lines(d_ * t_);
    for (int64_t i = 0; i < d_; ++i)
      for (int64_t j = 0; j < t_; ++j) kr[i * t_ + j] = round_bf16(k[i * k_layout_.row + j * k_layout_.col]);
    for (int64_t i = 0; i < t_; ++i)
      for (int64_t j = 0; j < dv_; ++j) vr[i * dv_ + j] = round_bf16(v[i * v_layout_.row + j]);
#endif
  }

  // scores = bfloat16(Q rows) K for a block of `rows` query rows at q.
  void scores_bf16(const float* q, int64_t rows, float* operands, float* scores) const {
#if defined(EDGEPACK_BF16_AVX512)
    auto* words = reinterpret_cast<uint16_t*>(operands);
    uint16_t* qa = words + k_elements_ + v_elements_;
    const int64_t lda = 2 * bf16::pairs(d_);
    for (int64_t r = 0; r < rows; ++r) bf16::pack_row(q + r * q_layout_.row, d_, qa + r * lda);
    bf16::gemm(rows, t_, d_, qa, lda, words, scores, t_);
#else
    float* kr = operands;
    float* qr = kr + gemm::whole_lines(d_ * t_) + gemm::whole_lines(t_ * dv_);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < d_; ++c) qr[r * d_ + c] = round_bf16(q[r * q_layout_.row + c]);
    gemm::Problem qk;
    qk.m = rows;
    qk.n = t_;
    qk.k = d_;
    qk.a = gemm::Operand::strided(qr, d_, 1, nullptr);
    qk.b = gemm::Operand::in_place(kr, k_rounded_rows_.data());
    qk.c = scores;
    qk.ldc = t_;
    gemm::sgemm_serial(qk);
#endif
  }

  // y rows = bfloat16(E rows) V, E the block's exp(scores - max) (rounded in place without AVX-512 BF16).
  void products_bf16(float* e, int64_t rows, float* operands, float* y) const {
#if defined(EDGEPACK_BF16_AVX512)
    auto* words = reinterpret_cast<uint16_t*>(operands);
    uint16_t* pa = words + k_elements_ + v_elements_ + block_ * 2 * bf16::pairs(d_);
    const int64_t lda = 2 * bf16::pairs(t_);
    for (int64_t r = 0; r < rows; ++r) bf16::pack_row(e + r * t_, t_, pa + r * lda);
    bf16::gemm(rows, dv_, t_, pa, lda, words + k_elements_, y, y_layout_.row);
#else
    for (int64_t i = 0; i < rows * t_; ++i) e[i] = round_bf16(e[i]);
    gemm::Problem pv;
    pv.m = rows;
    pv.n = dv_;
    pv.k = t_;
    pv.a = gemm::Operand::strided(e, t_, 1, nullptr);
    pv.b = gemm::Operand::in_place(operands + gemm::whole_lines(d_ * t_), v_rounded_rows_.data());
    pv.c = y;
    pv.ldc = y_layout_.row;
    gemm::sgemm_serial(pv);
#endif
  }

  static constexpr int64_t kBlockBytes = 16 << 10;  // a block's scores, with Q, K and V rows beside them in L1
  static constexpr int64_t kSlots = 8;               // score buffers: at most this many threads share the op

  int rank_ = 0;
  int64_t batch_dims_[gemm::MatMulShape::kMaxBatchRank] = {};
  int64_t count_ = 0, m_ = 0, d_ = 0, t_ = 0, dv_ = 0;  // batch items; Q [M, D], K [D, T], V [T, Dv]
  Layout q_layout_, k_layout_, v_layout_, y_layout_;
  bool nan_to_zero_ = false;
  float scale_ = 1.0f;  // attr scale: the scores times it before the softmax
  bool bf16_ = false;   // attr bf16: both products on bfloat16 operands (bf16.h)
  int64_t k_elements_ = 0, v_elements_ = 0;  // AVX-512 BF16: uint16 of the packed K and V
  std::vector<int64_t> k_rounded_rows_, v_rounded_rows_;  // other builds: rows of the rounded K and V
  int64_t block_ = 0, slot_floats_ = 0;
  std::vector<int64_t> k_rows_, v_rows_, mask_rows_;
};

}  // namespace

std::unique_ptr<OpKernel> make_matmul_kernel(OpCode code) {
  if (code == OpCode::kMatMul) return std::make_unique<MatMulKernel>();
  if (code == OpCode::kAttention) return std::make_unique<AttentionKernel>();
  return nullptr;
}

}  // namespace edgepack
