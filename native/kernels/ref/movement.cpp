// Data-movement kernels: Reshape, Transpose, Concat, Split, Slice, Gather, Pad, Resize, Expand,
// Tile, DepthToSpace.
//
// They only move elements, so they work on every dtype with a byte size (float32, float16, int8,
// ...), except linear Resize which interpolates float32. Transpose, Slice, Expand, Tile and
// DepthToSpace are one strided copy (StridedCopy) with different strides. Quantized tensors move as
// codes, so an output must carry its input's parameters (docs/quantization.md); the one exception is
// Gather from a quantized table into float32, which dequantizes the rows it gathers.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "edgepack/kernel.h"
#include "kernels/ref/kernel_util.h"
#include "kernels/ref/kernels.h"
#include "kernels/ref/quant_check.h"
#include "kernels/ref/quant_util.h"
#include "kernels/ref/transpose.h"

namespace edgepack {
namespace {

constexpr int64_t kGrainBytes = 64 * 1024;  // bytes below which waking another thread does not pay

// Checks the input and output counts, that every input is present and that every output has the
// dtype and quantization parameters of input 0, with a byte size; returns that size.
Status expect_movement(const OpInfo& op, const std::vector<const Tensor*>& ins,
                       const std::vector<const Tensor*>& outs, size_t n_in, size_t n_out, size_t* element_size) {
  EP_RETURN_IF_ERROR(expect_inputs(op, ins, n_in, n_in));
  if (outs.size() != n_out)
    return bad(op, "has " + std::to_string(outs.size()) + " outputs, expected " + std::to_string(n_out));
  for (const Tensor* t : ins)
    if (!t) return bad(op, "an input is absent");
  for (const Tensor* t : outs) {
    EP_RETURN_IF_ERROR(expect_dtype(op, *t, ins[0]->dtype, "output"));
    EP_RETURN_IF_ERROR(expect_same_quant(op, *ins[0], *t));
  }
  *element_size = dtype_size(ins[0]->dtype);
  if (*element_size == 0)
    return Unsupported("op '" + op.name + "' (" + op_name(op.code) + "): dtype " + dtype_name(ins[0]->dtype) +
                       " is not supported");
  return Status::Ok();
}

std::vector<int64_t> contiguous_strides(const Tensor& t) {
  std::vector<int64_t> strides(t.rank);
  int64_t s = 1;
  for (int i = t.rank - 1; i >= 0; --i) {
    strides[i] = s;
    s *= t.dims[i];
  }
  return strides;
}

int64_t grain_rows(int64_t row_bytes) { return std::max<int64_t>(1, kGrainBytes / std::max<int64_t>(1, row_bytes)); }

// ---- element copies by size -----------------------------------------------------------------------
// Copies n elements read every `stride` elements (0: one element repeated) to contiguous dst.
using CopyRowFn = void (*)(const uint8_t* src, int64_t stride, uint8_t* dst, int64_t n);

template <class T> void copy_row(const uint8_t* src, int64_t stride, uint8_t* dst, int64_t n) {
  T* out = reinterpret_cast<T*>(dst);
  if (stride == 1) {
    std::memcpy(dst, src, n * sizeof(T));
  } else if (stride == 0) {
    T v;
    std::memcpy(&v, src, sizeof(T));
    std::fill(out, out + n, v);
  } else {
    const T* in = reinterpret_cast<const T*>(src);
    for (int64_t i = 0; i < n; ++i) out[i] = in[i * stride];
  }
}

// Copies out[i] = in[index[i]] for n elements.
using GatherRowFn = void (*)(const uint8_t* src, const int64_t* index, uint8_t* dst, int64_t n);

template <class T> void gather_row(const uint8_t* src, const int64_t* index, uint8_t* dst, int64_t n) {
  const T* in = reinterpret_cast<const T*>(src);
  T* out = reinterpret_cast<T*>(dst);
  for (int64_t i = 0; i < n; ++i) out[i] = in[index[i]];
}

// Element sizes are 1, 2, 4 or 8 bytes for every dtype that has one.
template <template <class> class Fn, class R> R by_size(size_t element_size) {
  switch (element_size) {
    case 1: return Fn<uint8_t>::get();
    case 2: return Fn<uint16_t>::get();
    case 4: return Fn<uint32_t>::get();
    default: return Fn<uint64_t>::get();
  }
}
template <class T> struct CopyRowOf { static CopyRowFn get() { return copy_row<T>; } };
template <class T> struct GatherRowOf { static GatherRowFn get() { return gather_row<T>; } };

// A 2-D transpose (transpose.h), strides in elements.
using TransposeFn = void (*)(const uint8_t* in, int64_t ld_in, uint8_t* out, int64_t ld_out, int64_t rows, int64_t cols);

template <class T> void transpose_of(const uint8_t* in, int64_t ld_in, uint8_t* out, int64_t ld_out, int64_t rows,
                                     int64_t cols) {
#if defined(EDGEPACK_TRANSPOSE_AVX512)
  if constexpr (sizeof(T) == 4)
    return x32_transpose__avx512(reinterpret_cast<const uint32_t*>(in), ld_in, reinterpret_cast<uint32_t*>(out),
                                 ld_out, rows, cols);
#endif
  transpose_tiles(reinterpret_cast<const T*>(in), ld_in, reinterpret_cast<T*>(out), ld_out, rows, cols);
}
template <class T> struct TransposeOf { static TransposeFn get() { return transpose_of<T>; } };

// ---- StridedCopy ----------------------------------------------------------------------------------
// out[i_0, ..., i_k] = in[offset + sum_d i_d * strides[d]] over the output's dims, written in order.
// Dims of size 1 are dropped and adjacent dims merged where the input is contiguous across them, so a
// transpose that keeps the last axis copies whole rows and a no-op becomes one memcpy. When the last
// two dims read the input as [rows, cols] with cols contiguous (out[..., c, r] = in[..., r, c], K^T in
// attention), each such matrix is a 2-D transpose in tiles instead (transpose.h).
class StridedCopy {
 public:
  void plan(const std::vector<int64_t>& dims, const std::vector<int64_t>& strides, int64_t offset,
            size_t element_size) {
    dims_.clear();
    strides_.clear();
    numel_ = 1;
    for (size_t d = 0; d < dims.size(); ++d) {
      numel_ *= dims[d];
      if (dims[d] == 1) continue;
      if (!dims_.empty() && strides_.back() == strides[d] * dims[d]) {
        dims_.back() *= dims[d];
        strides_.back() = strides[d];
      } else {
        dims_.push_back(dims[d]);
        strides_.push_back(strides[d]);
      }
    }
    if (dims_.empty()) {
      dims_.push_back(1);
      strides_.push_back(1);
    }
    offset_ = offset;
    element_size_ = element_size;
    copy_ = by_size<CopyRowOf, CopyRowFn>(element_size);
    const size_t last = dims_.size() - 1;
    transpose_ = last >= 1 && strides_[last - 1] == 1 && strides_[last] > 1
                     ? by_size<TransposeOf, TransposeFn>(element_size) : nullptr;
  }

  void run(const void* input, void* output, ThreadPool* pool) const {
    if (numel_ == 0) return;
    const uint8_t* in = static_cast<const uint8_t*>(input);
    uint8_t* out = static_cast<uint8_t*>(output);
    if (transpose_) return run_transpose(in, out, pool);
    const int64_t length = dims_.back(), stride = strides_.back();
    const int64_t row_bytes = length * static_cast<int64_t>(element_size_);
    pool->parallel_for(numel_ / length, [&](int64_t begin, int64_t end) {
      // Contiguous rows of up to kShortRun bytes (a Transpose that keeps the last axis, e.g. attention's
      // [1, 128, 12, 32] -> [1, 12, 128, 32]) are copied inline: the call through copy_ into memcpy
      // costs as much as copying 128 bytes.
      if (stride == 1 && row_bytes <= kShortRun) {
        for_each_row(in, out, begin, end, [&](const uint8_t* src, uint8_t* dst) {
          copy_short_run(src, dst, row_bytes);
        });
      } else {
        for_each_row(in, out, begin, end, [&](const uint8_t* src, uint8_t* dst) {
          copy_(src, stride, dst, length);
        });
      }
    }, grain_rows(row_bytes));
  }

 private:
  static constexpr int64_t kShortRun = 256;

  // dst = src for n <= kShortRun bytes, in 32-byte (one vector) and smaller fixed-size pieces.
  static void copy_short_run(const uint8_t* src, uint8_t* dst, int64_t n) {
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) std::memcpy(dst + i, src + i, 32);
    for (; i + 8 <= n; i += 8) std::memcpy(dst + i, src + i, 8);
    for (; i < n; ++i) dst[i] = src[i];
  }

  // Calls fn(source, destination) for output rows [begin, end) (of dims_.back() elements each), in order.
  template <class F>
  void for_each_row(const uint8_t* in, uint8_t* out, int64_t begin, int64_t end, const F& fn) const {
    const int last = static_cast<int>(dims_.size()) - 1;
    const int64_t element_size = static_cast<int64_t>(element_size_);
    const int64_t row_bytes = dims_[last] * element_size;
    int64_t index[2 * kMaxRank];  // the row's index over dims [0, last)
    int64_t off = offset_;
    int64_t rest = begin;
    for (int d = last - 1; d >= 0; --d) {
      index[d] = rest % dims_[d];
      rest /= dims_[d];
      off += index[d] * strides_[d];
    }
    for (int64_t row = begin; row < end; ++row) {
      fn(in + off * element_size, out + row * row_bytes);
      for (int d = last - 1; d >= 0; --d) {  // next row
        off += strides_[d];
        if (++index[d] < dims_[d]) break;
        off -= strides_[d] * dims_[d];
        index[d] = 0;
      }
    }
  }

  // Each [cols, rows] output matrix (the last two dims) from the input's [rows, cols], in blocks of
  // kTransposeTile output rows, so that two threads share even a single matrix.
  void run_transpose(const uint8_t* in, uint8_t* out, ThreadPool* pool) const {
    const int last = static_cast<int>(dims_.size()) - 1;
    const int64_t cols = dims_[last - 1], rows = dims_[last], ld_in = strides_[last];
    const int64_t element_size = static_cast<int64_t>(element_size_);
    const int64_t blocks = (cols + kTransposeTile - 1) / kTransposeTile;
    pool->parallel_for(numel_ / (rows * cols) * blocks, [&](int64_t begin, int64_t end) {
      for (int64_t item = begin; item < end; ++item) {
        const int64_t matrix = item / blocks, c0 = item % blocks * kTransposeTile;
        int64_t off = offset_;
        for (int64_t d = last - 2, rest = matrix; d >= 0; rest /= dims_[d], --d) off += rest % dims_[d] * strides_[d];
        transpose_(in + (off + c0) * element_size, ld_in, out + (matrix * cols + c0) * rows * element_size, rows, rows,
                   std::min(kTransposeTile, cols - c0));
      }
    }, grain_rows(kTransposeTile * rows * element_size));
  }

  std::vector<int64_t> dims_, strides_;
  int64_t offset_ = 0, numel_ = 0;
  size_t element_size_ = 0;
  CopyRowFn copy_ = nullptr;
  TransposeFn transpose_ = nullptr;  // set when the last two dims are a 2-D transpose
};

// Kernels that are a StridedCopy once prepare() has worked out the strides.
class StridedKernel : public OpKernel {
 public:
  Status run(const std::vector<const Tensor*>& ins, const std::vector<Tensor*>& outs, RunContext& ctx) const final {
    copy_.run(ins[0]->data, outs[0]->data, ctx.pool);
    return Status::Ok();
  }

 protected:
  StridedCopy copy_;
};

// ---- Reshape --------------------------------------------------------------------------------------
// The executor may alias the output to the input, in which case there is nothing to copy.
class ReshapeKernel final : public OpKernel {
 public:
  Status prepare(const OpInfo& op, const std::vector<const Tensor*>& ins,
                 const std::vector<const Tensor*>& outs) override {
    EP_RETURN_IF_ERROR(expect_inputs(op, ins, 1, 1));
    if (outs.size() != 1) return bad(op, "has " + std::to_string(outs.size()) + " outputs, expected 1");
    EP_RETURN_IF_ERROR(expect_dtype(op, *outs[0], ins[0]->dtype, "output"));
    EP_RETURN_IF_ERROR(expect_same_quant(op, *ins[0], *outs[0]));
    if (ins[0]->numel != outs[0]->numel)
      return bad(op, "cannot reshape " + ins[0]->shape_str() + " to " + outs[0]->shape_str());
    bytes_ = dtype_nbytes(ins[0]->dtype, ins[0]->numel);  // by bytes: works for packed int4 too
    return Status::Ok();
  }

  Status run(const std::vector<const Tensor*>& ins, const std::vector<Tensor*>& outs, RunContext&) const override {
    if (ins[0]->data != outs[0]->data) std::memcpy(outs[0]->data, ins[0]->data, bytes_);
    return Status::Ok();
  }

 private:
  uint64_t bytes_ = 0;
};

// ---- Transpose ------------------------------------------------------------------------------------
class TransposeKernel final : public StridedKernel {
 public:
  Status prepare(const OpInfo& op, const std::vector<const Tensor*>& ins,
                 const std::vector<const Tensor*>& outs) override {
    size_t element_size = 0;
    EP_RETURN_IF_ERROR(expect_movement(op, ins, outs, 1, 1, &element_size));
    const Tensor& x = *ins[0];
    AttrReader attrs(op);
    const auto perm = attrs.ints("perm", x.rank);
    EP_RETURN_IF_ERROR(attrs.status());
    std::vector<bool> seen(x.rank, false);
    for (int64_t p : perm) {
      if (p < 0 || p >= x.rank || seen[p]) return bad(op, "perm is not a permutation of the input's axes");
      seen[p] = true;
    }
    const auto in_strides = contiguous_strides(x);
    std::vector<int64_t> dims, strides;
    for (int64_t p : perm) {
      dims.push_back(x.dims[p]);
      strides.push_back(in_strides[p]);
    }
    EP_RETURN_IF_ERROR(expect_shape(op, *outs[0], dims, "output"));
    copy_.plan(dims, strides, 0, element_size);
    return Status::Ok();
  }
};

// ---- Concat / Split -------------------------------------------------------------------------------
// Both view the tensors as [outer, axis * inner]: each outer row of the whole tensor is the
// concatenation of the parts' rows, so the work is one memcpy per part and row.
struct Rows {
  int64_t outer = 0;
  int64_t whole_bytes = 0;            // bytes of one row of the whole tensor
  std::vector<int64_t> part_bytes;    // bytes of one row of each part
};

// Checks that `parts` concatenate to `whole` along `axis` and plans the rows.
Status plan_rows(const OpInfo& op, const std::vector<const Tensor*>& parts, const Tensor& whole, int64_t axis,
                 size_t element_size, Rows* rows) {
  if (axis < 0 || axis >= whole.rank)
    return bad(op, "axis " + std::to_string(axis) + " is out of range for rank " + std::to_string(whole.rank));
  const int64_t inner = product(whole, static_cast<int>(axis) + 1, whole.rank);
  int64_t total = 0;
  rows->part_bytes.clear();
  for (const Tensor* part : parts) {
    bool match = part->rank == whole.rank;
    for (int d = 0; d < whole.rank && match; ++d) match = d == axis || part->dims[d] == whole.dims[d];
    if (!match)
      return bad(op, "'" + part->name + "' " + part->shape_str() + " and '" + whole.name + "' " + whole.shape_str() +
                     " differ outside axis " + std::to_string(axis));
    total += part->dims[axis];
    rows->part_bytes.push_back(part->dims[axis] * inner * static_cast<int64_t>(element_size));
  }
  if (total != whole.dims[axis])
    return bad(op, "the parts add up to " + std::to_string(total) + " along axis " + std::to_string(axis) +
                   ", the whole has " + std::to_string(whole.dims[axis]));
  // an empty tensor's other dims can be huge: looping over them would be a hang, not a no-op
  rows->outer = whole.numel == 0 ? 0 : product(whole, 0, static_cast<int>(axis));
  rows->whole_bytes = whole.dims[axis] * inner * static_cast<int64_t>(element_size);
  return Status::Ok();
}

class ConcatKernel final : public OpKernel {
 public:
  Status prepare(const OpInfo& op, const std::vector<const Tensor*>& ins,
                 const std::vector<const Tensor*>& outs) override {
    size_t element_size = 0;
    EP_RETURN_IF_ERROR(expect_movement(op, ins, outs, std::max<size_t>(1, ins.size()), 1, &element_size));
    // every input is copied as codes into the output: all must share its parameters
    for (size_t i = 1; i < ins.size(); ++i) {
      EP_RETURN_IF_ERROR(expect_dtype(op, *ins[i], ins[0]->dtype, "input"));
      EP_RETURN_IF_ERROR(expect_same_quant(op, *ins[i], *outs[0]));
    }
    AttrReader attrs(op);
    const int64_t axis = attrs.i("axis");
    EP_RETURN_IF_ERROR(attrs.status());
    return plan_rows(op, ins, *outs[0], axis, element_size, &rows_);
  }

  Status run(const std::vector<const Tensor*>& ins, const std::vector<Tensor*>& outs, RunContext& ctx) const override {
    uint8_t* out = outs[0]->as<uint8_t>();
    int64_t at = 0;
    bool all_in_place = true;
    for (size_t i = 0; i < ins.size(); ++i) {
      all_in_place = all_in_place && ins[i]->as<const uint8_t>() == out + at;
      at += rows_.part_bytes[i];
    }
    if (all_in_place) return Status::Ok();
    ctx.pool->parallel_for(rows_.outer, [&](int64_t begin, int64_t end) {
      for (int64_t row = begin; row < end; ++row) {
        int64_t at = 0;  // the part's byte offset in a row of the output
        for (size_t i = 0; i < ins.size(); ++i) {
          const uint8_t* part = ins[i]->as<const uint8_t>();
          // The memory planner may have placed the part where it belongs in the output already: as
          // one block (outer == 1), or written there row by row by its producer (a channels-last Conv
          // with y_stride). Either way its first row is in place.
          if (part != out + at)
            std::memcpy(out + row * rows_.whole_bytes + at, part + row * rows_.part_bytes[i], rows_.part_bytes[i]);
          at += rows_.part_bytes[i];
        }
      }
    }, grain_rows(rows_.whole_bytes));
    return Status::Ok();
  }

 private:
  Rows rows_;
};

class SplitKernel final : public OpKernel {
 public:
  Status prepare(const OpInfo& op, const std::vector<const Tensor*>& ins,
                 const std::vector<const Tensor*>& outs) override {
    AttrReader attrs(op);
    const int64_t axis = attrs.i("axis");
    const auto split = attrs.ints("split");
    EP_RETURN_IF_ERROR(attrs.status());
    size_t element_size = 0;
    EP_RETURN_IF_ERROR(expect_movement(op, ins, outs, 1, split.size(), &element_size));
    const Tensor& x = *ins[0];
    for (size_t i = 0; i < split.size(); ++i) {
      if (axis >= 0 && axis < x.rank && outs[i]->rank == x.rank && outs[i]->dims[axis] != split[i])
        return bad(op, "output " + std::to_string(i) + " has " + std::to_string(outs[i]->dims[axis]) +
                       " along axis " + std::to_string(axis) + ", split says " + std::to_string(split[i]));
    }
    return plan_rows(op, outs, x, axis, element_size, &rows_);
  }

  Status run(const std::vector<const Tensor*>& ins, const std::vector<Tensor*>& outs, RunContext& ctx) const override {
    const uint8_t* in = ins[0]->as<const uint8_t>();
    ctx.pool->parallel_for(rows_.outer, [&](int64_t begin, int64_t end) {
      for (int64_t row = begin; row < end; ++row) {
        const uint8_t* src = in + row * rows_.whole_bytes;
        for (size_t i = 0; i < outs.size(); ++i) {
          std::memcpy(outs[i]->as<uint8_t>() + row * rows_.part_bytes[i], src, rows_.part_bytes[i]);
          src += rows_.part_bytes[i];
        }
      }
    }, grain_rows(rows_.whole_bytes));
    return Status::Ok();
  }

 private:
  Rows rows_;
};

// ---- Slice ----------------------------------------------------------------------------------------
// Canonical slices (Python's slice.indices): per axis, output index i reads input index
// starts + i * steps; bounds lie in [0, size], or [-1, size] for a negative step, where an end of -1
// means "through index 0". The output's extent must be the length of that range and every index
// read must lie inside the input.
int64_t range_length(int64_t start, int64_t end, int64_t step) {
  if (step > 0) return end > start ? (end - start - 1) / step + 1 : 0;
  return start > end ? (end - start + 1) / step + 1 : 0;  // not -step, which overflows for INT64_MIN
}

class SliceKernel final : public StridedKernel {
 public:
  Status prepare(const OpInfo& op, const std::vector<const Tensor*>& ins,
                 const std::vector<const Tensor*>& outs) override {
    size_t element_size = 0;
    EP_RETURN_IF_ERROR(expect_movement(op, ins, outs, 1, 1, &element_size));
    const Tensor& x = *ins[0];
    AttrReader attrs(op);
    const auto starts = attrs.ints("starts", x.rank), ends = attrs.ints("ends", x.rank);
    const auto steps = attrs.ints("steps", x.rank);
    EP_RETURN_IF_ERROR(attrs.status());
    const auto in_strides = contiguous_strides(x);
    std::vector<int64_t> dims(x.rank), strides(x.rank);
    int64_t offset = 0;
    for (int d = 0; d < x.rank; ++d) {
      const int64_t size = x.dims[d], start = starts[d], step = steps[d];
      // bounded attributes also keep the arithmetic below from overflowing
      const int64_t lowest = step < 0 ? -1 : 0;
      if (step == 0 || start < lowest || start > size || ends[d] < lowest || ends[d] > size)
        return bad(op, "slice " + std::to_string(start) + ":" + std::to_string(ends[d]) + ":" + std::to_string(step) +
                       " of axis " + std::to_string(d) + " (size " + std::to_string(size) + ") is not canonical");
      dims[d] = range_length(start, ends[d], step);
      if (dims[d] > 0) {
        const int64_t last = start + (dims[d] - 1) * step;
        if (start < 0 || start >= size || last < 0 || last >= size)
          return bad(op, "slice of axis " + std::to_string(d) + " reads outside the input");
      }
      strides[d] = dims[d] > 1 ? step * in_strides[d] : 0;  // a step cannot overflow once it fits the axis
      offset += std::max<int64_t>(0, start) * in_strides[d];
    }
    EP_RETURN_IF_ERROR(expect_shape(op, *outs[0], dims, "output"));
    copy_.plan(dims, strides, offset, element_size);
    return Status::Ok();
  }
};

// ---- Expand / Tile / DepthToSpace -----------------------------------------------------------------
class ExpandKernel final : public StridedKernel {
 public:
  Status prepare(const OpInfo& op, const std::vector<const Tensor*>& ins,
                 const std::vector<const Tensor*>& outs) override {
    size_t element_size = 0;
    EP_RETURN_IF_ERROR(expect_movement(op, ins, outs, 1, 1, &element_size));
    const Tensor &x = *ins[0], &y = *outs[0];
    const int shift = y.rank - x.rank;
    if (shift < 0) return bad(op, "cannot expand " + x.shape_str() + " to the lower rank " + y.shape_str());
    const auto in_strides = contiguous_strides(x);
    std::vector<int64_t> strides(y.rank, 0);
    for (int d = 0; d < x.rank; ++d) {
      if (x.dims[d] == y.dims[d + shift]) strides[d + shift] = in_strides[d];
      else if (x.dims[d] != 1) return bad(op, "cannot expand " + x.shape_str() + " to " + y.shape_str());
    }
    copy_.plan(y.shape(), strides, 0, element_size);
    return Status::Ok();
  }
};

// Tile is a broadcast: the output viewed as [r_0, d_0, r_1, d_1, ...] reads the input with stride 0
// along each repeat.
class TileKernel final : public StridedKernel {
 public:
  Status prepare(const OpInfo& op, const std::vector<const Tensor*>& ins,
                 const std::vector<const Tensor*>& outs) override {
    size_t element_size = 0;
    EP_RETURN_IF_ERROR(expect_movement(op, ins, outs, 1, 1, &element_size));
    const Tensor &x = *ins[0], &y = *outs[0];
    AttrReader attrs(op);
    const auto repeats = attrs.ints("repeats", x.rank);
    EP_RETURN_IF_ERROR(attrs.status());
    if (y.rank != x.rank) return bad(op, "output rank differs from the input's");
    const auto in_strides = contiguous_strides(x);
    std::vector<int64_t> dims, strides;
    for (int d = 0; d < x.rank; ++d) {
      // the output's extent is checked by division, so a hostile repeat cannot overflow
      const bool consistent = repeats[d] >= 0 &&
                              (x.dims[d] == 0 ? y.dims[d] == 0
                                              : y.dims[d] % x.dims[d] == 0 && y.dims[d] / x.dims[d] == repeats[d]);
      if (!consistent)
        return bad(op, "output " + y.shape_str() + " is not " + x.shape_str() + " tiled by the repeats");
      dims.insert(dims.end(), {repeats[d], x.dims[d]});
      strides.insert(strides.end(), {0, in_strides[d]});
    }
    copy_.plan(dims, strides, 0, element_size);
    return Status::Ok();
  }
};

class DepthToSpaceKernel final : public StridedKernel {
 public:
  Status prepare(const OpInfo& op, const std::vector<const Tensor*>& ins,
                 const std::vector<const Tensor*>& outs) override {
    size_t element_size = 0;
    EP_RETURN_IF_ERROR(expect_movement(op, ins, outs, 1, 1, &element_size));
    const Tensor& x = *ins[0];
    AttrReader attrs(op);
    const int64_t b = attrs.i("blocksize");
    const std::string mode = attrs.str("mode");
    EP_RETURN_IF_ERROR(attrs.status());
    if (x.rank != 4) return bad(op, "input must be NCHW (rank 4), got " + x.shape_str());
    if (mode != "DCR" && mode != "CRD") return bad(op, "mode must be 'DCR' or 'CRD'");
    if (b < 1 || b > (int64_t{1} << 20) || x.dims[1] % (b * b) != 0)
      return bad(op, "blocksize " + std::to_string(b) + " does not divide the channels of " + x.shape_str());
    const int64_t n = x.dims[0], c = x.dims[1] / (b * b), h = x.dims[2], w = x.dims[3];
    EP_RETURN_IF_ERROR(expect_shape(op, *outs[0], {n, c, h * b, w * b}, "output"));
    // The output viewed as [n, c, h, b_row, w, b_col]; the input splits its channels as
    // [b_row, b_col, c] (DCR) or [c, b_row, b_col] (CRD).
    const int64_t hw = h * w;
    const int64_t s_c = mode == "DCR" ? hw : b * b * hw;
    const int64_t s_row = mode == "DCR" ? b * c * hw : b * hw;
    const int64_t s_col = mode == "DCR" ? c * hw : hw;
    copy_.plan({n, c, h, b, w, b}, {x.dims[1] * hw, s_c, w, s_row, 1, s_col}, 0, element_size);
    return Status::Ok();
  }
};

// ---- Gather ---------------------------------------------------------------------------------------
// out[o, j, i] = data[o, indices[j], i] over data viewed as [outer, axis, inner].
//
// A quantized table gathered into float32 (docs/quantization.md, "Gather from an int8 / int4
// table") yields its rows along axis 0 dequantized: int8 per tensor or per row (q - z) * s, or int4
// block-wise along the last axis q * s (two values per byte, low nibble first). One float multiply
// per element, as the reference's dequantize-then-gather.
class GatherKernel final : public OpKernel {
 public:
  Status prepare(const OpInfo& op, const std::vector<const Tensor*>& ins,
                 const std::vector<const Tensor*>& outs) override {
    dequantize_ = ins.size() == 2 && ins[0] && outs.size() == 1 && outs[0]->dtype == DType::kFloat32 &&
                  ins[0]->dtype != DType::kFloat32;
    if (dequantize_) {
      EP_RETURN_IF_ERROR(expect_inputs(op, ins, 2, 2));
      EP_RETURN_IF_ERROR(prepare_table(op, *ins[0]));
    } else {
      EP_RETURN_IF_ERROR(expect_movement(op, ins, outs, 2, 1, &element_size_));
    }
    const Tensor &x = *ins[0], &indices = *ins[1];
    if (indices.dtype != DType::kInt64 && indices.dtype != DType::kInt32)
      return Unsupported("op '" + op.name + "' (Gather): indices '" + indices.name + "' must be int64 or int32, not " +
                         dtype_name(indices.dtype));
    AttrReader attrs(op);
    const int64_t axis = attrs.i("axis");
    EP_RETURN_IF_ERROR(attrs.status());
    if (axis < 0 || axis >= x.rank)
      return bad(op, "axis " + std::to_string(axis) + " is out of range for rank " + std::to_string(x.rank));
    if (dequantize_ && axis != 0)
      return Unsupported("op '" + op.name + "' (Gather): a quantized table is gathered along axis 0, not " +
                         std::to_string(axis));
    std::vector<int64_t> shape(x.dims, x.dims + axis);
    shape.insert(shape.end(), indices.dims, indices.dims + indices.rank);
    shape.insert(shape.end(), x.dims + axis + 1, x.dims + x.rank);
    EP_RETURN_IF_ERROR(expect_shape(op, *outs[0], shape, "output"));
    outer_ = outs[0]->numel == 0 ? 0 : product(x, 0, static_cast<int>(axis));  // see plan_rows
    axis_size_ = x.dims[axis];
    row_ = product(x, static_cast<int>(axis) + 1, x.rank);
    inner_bytes_ = row_ * static_cast<int64_t>(element_size_);
    count_ = indices.numel;
    wide_ = indices.dtype == DType::kInt64;
    message_prefix_ = "op '" + op.name + "' (Gather): ";
    if (indices.storage == Storage::kWeight) {  // constant indices are checked once, at load
      for (int64_t j = 0; j < count_; ++j) {
        const int64_t k = index_at(indices.data, j);
        if (k < -axis_size_ || k >= axis_size_) return bad(op, out_of_range(indices.data, j));
      }
    }
    return Status::Ok();
  }

  Status run(const std::vector<const Tensor*>& ins, const std::vector<Tensor*>& outs, RunContext& ctx) const override {
    const uint8_t* data = ins[0]->as<const uint8_t>();
    const void* indices = ins[1]->data;
    uint8_t* out = outs[0]->as<uint8_t>();
    float* out_floats = outs[0]->as<float>();
    std::atomic<int64_t> failed{-1};  // a position holding an out-of-range index
    // Indices are checked as they are used (not in a separate pass) so that nothing can read out of
    // bounds whatever the input holds.
    ctx.pool->parallel_for(outer_ * count_, [&](int64_t begin, int64_t end) {
      for (int64_t item = begin; item < end; ++item) {
        const int64_t o = item / count_, j = item % count_;
        int64_t k = index_at(indices, j);
        if (k < 0) k += axis_size_;
        if (k < 0 || k >= axis_size_) {
          failed.store(j, std::memory_order_relaxed);
          return;
        }
        if (dequantize_) dequantize_row(data, k, out_floats + item * row_);  // axis 0: o is 0
        else std::memcpy(out + item * inner_bytes_, data + (o * axis_size_ + k) * inner_bytes_, inner_bytes_);
      }
    }, grain_rows(dequantize_ ? row_ * static_cast<int64_t>(sizeof(float)) : inner_bytes_));
    const int64_t position = failed.load();
    return position < 0 ? Status::Ok() : RuntimeError(message_prefix_ + out_of_range(indices, position));
  }

 private:
  // Checks a table's parameters and keeps what dequantize_row() needs.
  Status prepare_table(const OpInfo& op, const Tensor& table) {
    const QuantInfo& q = table.quant;
    if (table.dtype == DType::kInt8) {
      EP_RETURN_IF_ERROR(expect_per_channel(op, table, "table"));
      if (q.scales.size() > 1 && q.axis != 0)
        return Unsupported("op '" + op.name + "' (Gather): int8 table '" + table.name +
                           "' must be quantized per tensor or per row (axis 0), not along axis " +
                           std::to_string(q.axis));
    } else if (table.dtype == DType::kInt4) {
      EP_RETURN_IF_ERROR(expect_blockwise(op, table, "table"));
      if (table.rank < 2 || q.axis != table.rank - 1)
        return Unsupported("op '" + op.name + "' (Gather): int4 table '" + table.name +
                           "' must be block-wise along its last axis, of rank >= 2");
    } else {
      return Unsupported("op '" + op.name + "' (Gather): a table gathered into float32 must be int8 or int4, not " +
                         dtype_name(table.dtype));
    }
    int4_ = table.dtype == DType::kInt4;
    scales_ = q.scales;
    zeros_ = q.zero_points;
    block_ = q.block_size;
    return Status::Ok();
  }

  // Row k of the table (row_ values), dequantized into out.
  void dequantize_row(const uint8_t* table, int64_t k, float* out) const {
    if (int4_) {
      const int64_t first = k * row_;  // element index of the row's first value; blocks never straddle rows
      const float* scales = scales_.data() + first / block_;
      for (int64_t b = 0; b < row_ / block_; ++b) {
        const float s = scales[b];
        for (int64_t t = 0; t < block_; ++t) {
          const int64_t e = first + b * block_ + t;
          const int nibble = e & 1 ? table[e >> 1] >> 4 : table[e >> 1] & 0x0F;
          out[b * block_ + t] = static_cast<float>((nibble ^ 8) - 8) * s;  // sign-extends the 4 bits
        }
      }
      return;
    }
    const int8_t* q = reinterpret_cast<const int8_t*>(table) + k * row_;
    const size_t c = scales_.size() > 1 ? static_cast<size_t>(k) : 0;
    const float s = scales_[c];
    const int32_t z = zeros_[c];
    for (int64_t i = 0; i < row_; ++i) out[i] = static_cast<float>(static_cast<int32_t>(q[i]) - z) * s;
  }

  int64_t index_at(const void* indices, int64_t j) const {
    return wide_ ? static_cast<const int64_t*>(indices)[j] : static_cast<const int32_t*>(indices)[j];
  }

  std::string out_of_range(const void* indices, int64_t position) const {
    return "index " + std::to_string(index_at(indices, position)) + " at position " + std::to_string(position) +
           " is out of range for an axis of size " + std::to_string(axis_size_);
  }

  size_t element_size_ = 0;  // movement only
  int64_t outer_ = 0, axis_size_ = 0, row_ = 0, inner_bytes_ = 0, count_ = 0;  // row_: elements per index
  bool wide_ = false;  // int64 indices (else int32)
  std::string message_prefix_;  // "op '<name>' (Gather): ", built at load so run() only allocates on failure
  // dequantizing a table
  bool dequantize_ = false, int4_ = false;
  std::vector<float> scales_;
  std::vector<int32_t> zeros_;
  int64_t block_ = 0;
};

// ---- Pad ------------------------------------------------------------------------------------------
// For each axis, a table mapping each output index to the input index it copies, or -1 for the
// constant. Output rows (along the last axis) whose outer indices hit the constant are filled; the
// others copy the input row's middle in one memcpy and map the pads through the table.
class PadKernel final : public OpKernel {
 public:
  Status prepare(const OpInfo& op, const std::vector<const Tensor*>& ins,
                 const std::vector<const Tensor*>& outs) override {
    EP_RETURN_IF_ERROR(expect_movement(op, ins, outs, 1, 1, &element_size_));
    const Tensor &x = *ins[0], &y = *outs[0];
    AttrReader attrs(op);
    const auto pads = attrs.ints("pads", 2 * x.rank);
    const std::string mode = attrs.str("mode");
    const float value = attrs.f("value");
    EP_RETURN_IF_ERROR(attrs.status());
    if (mode != "constant" && mode != "reflect" && mode != "edge")
      return bad(op, "mode must be 'constant', 'reflect' or 'edge', got '" + mode + "'");
    if (y.rank != x.rank) return bad(op, "output rank differs from the input's");
    rank_ = std::max(1, x.rank);  // a scalar is padded as a one-element vector with no pads
    in_dims_.assign(rank_, 1);
    out_dims_.assign(rank_, 1);
    begins_.assign(rank_, 0);
    for (int d = 0; d < x.rank; ++d) {
      const int64_t before = pads[d], after = pads[d + x.rank];
      // checked against the output extent first, so the sum cannot overflow
      if (before < 0 || after < 0 || before > y.dims[d] || after > y.dims[d] - before ||
          y.dims[d] - before - after != x.dims[d])
        return bad(op, "output " + y.shape_str() + " is not " + x.shape_str() + " padded by the pads");
      if (mode != "constant" && x.dims[d] == 0 && y.dims[d] > 0)
        return bad(op, "cannot " + mode + "-pad an empty axis");
      in_dims_[d] = x.dims[d];
      out_dims_[d] = y.dims[d];
      begins_[d] = before;
    }
    EP_RETURN_IF_ERROR(set_constant(op, y, value));
    // An empty tensor's other dims can be huge (it has no bytes to check them against): no tables.
    if (y.numel > 0) plan_tables(mode);
    return Status::Ok();
  }

  Status run(const std::vector<const Tensor*>& ins, const std::vector<Tensor*>& outs, RunContext& ctx) const override {
    const int last = rank_ - 1;
    const int64_t length = out_dims_[last];
    if (outs[0]->numel == 0) return Status::Ok();
    const uint8_t* in = ins[0]->as<const uint8_t>();
    uint8_t* out = outs[0]->as<uint8_t>();
    ctx.pool->parallel_for(outs[0]->numel / length, [&](int64_t begin, int64_t end) {
      for (int64_t row = begin; row < end; ++row) pad_row(in, row, out + row * length * element_size_);
    }, grain_rows(length * element_size_));
    return Status::Ok();
  }

 private:
  // The constant's bytes in the output's dtype: integers truncate (saturating), as numpy's astype,
  // except that a quantized output pads with the code of the (real) value under its parameters.
  Status set_constant(const OpInfo& op, const Tensor& y, float value) {
    const DType dtype = y.dtype;
    auto store = [this](auto v) { std::memcpy(constant_, &v, sizeof(v)); };
    int32_t lo = 0, hi = 0;
    if (is_quantized(y) && code_range(dtype, &lo, &hi)) {
      const int32_t code = quantize_value(value, tensor_scale(y), tensor_zero_point(y), lo, hi);
      if (dtype == DType::kInt8) store(static_cast<int8_t>(code));
      else store(static_cast<uint8_t>(code));
      return Status::Ok();
    }
    switch (dtype) {
      case DType::kFloat32: store(value); break;
      case DType::kInt64: store(trunc_saturate<int64_t>(value)); break;
      case DType::kInt32: store(trunc_saturate<int32_t>(value)); break;
      case DType::kInt8: store(trunc_saturate<int8_t>(value)); break;
      case DType::kUInt8: store(trunc_saturate<uint8_t>(value)); break;
      case DType::kBool: store(static_cast<uint8_t>(value != 0.0f)); break;
      default:
        // float16 has no conversion here; zero is all-zero bits in every dtype
        if (value != 0.0f)
          return Unsupported("op '" + op.name + "' (Pad): a non-zero pad value for " + dtype_name(dtype));
        std::memset(constant_, 0, sizeof(constant_));
    }
    return Status::Ok();
  }

  void plan_tables(const std::string& mode) {
    table_offsets_.assign(rank_, 0);
    tables_.clear();
    for (int d = 0; d < rank_; ++d) {
      table_offsets_[d] = static_cast<int64_t>(tables_.size());
      const int64_t n = in_dims_[d];
      for (int64_t o = 0; o < out_dims_[d]; ++o) {
        const int64_t i = o - begins_[d];
        int64_t source = i;
        if (i < 0 || i >= n) {
          if (mode == "constant") source = -1;
          else if (mode == "edge") source = std::clamp<int64_t>(i, 0, n - 1);
          else source = reflect(i, n);
        }
        tables_.push_back(source);
      }
    }
    in_strides_.assign(rank_, 1);
    for (int d = rank_ - 2; d >= 0; --d) in_strides_[d] = in_strides_[d + 1] * in_dims_[d + 1];
    copy_ = by_size<GatherRowOf, GatherRowFn>(element_size_);
    fill_ = by_size<CopyRowOf, CopyRowFn>(element_size_);
  }

  // Mirror without repeating the edge (numpy "reflect"), periodic for pads wider than the axis.
  static int64_t reflect(int64_t i, int64_t n) {
    if (n == 1) return 0;
    const int64_t period = 2 * (n - 1);
    const int64_t m = ((i % period) + period) % period;
    return m < n ? m : period - m;
  }

  void pad_row(const uint8_t* in, int64_t row, uint8_t* dst) const {
    const int last = rank_ - 1;
    const int64_t length = out_dims_[last];
    int64_t offset = 0;
    for (int d = last - 1; d >= 0; --d) {
      const int64_t source = tables_[table_offsets_[d] + row % out_dims_[d]];
      row /= out_dims_[d];
      if (source < 0) {
        fill_(constant_, 0, dst, length);
        return;
      }
      offset += source * in_strides_[d];
    }
    const uint8_t* src = in + offset * static_cast<int64_t>(element_size_);
    const int64_t* table = tables_.data() + table_offsets_[last];
    const int64_t before = begins_[last], middle = in_dims_[last];
    const int64_t es = static_cast<int64_t>(element_size_);
    pad_span(src, table, dst, 0, before);
    std::memcpy(dst + before * es, src, middle * es);
    pad_span(src, table, dst, before + middle, length);
  }

  // Output elements [begin, end) of the row, each from its table entry or the constant.
  void pad_span(const uint8_t* src, const int64_t* table, uint8_t* dst, int64_t begin, int64_t end) const {
    const int64_t es = static_cast<int64_t>(element_size_);
    if (begin < end && table[begin] < 0) fill_(constant_, 0, dst + begin * es, end - begin);
    else if (begin < end) copy_(src, table + begin, dst + begin * es, end - begin);
  }

  size_t element_size_ = 0;
  int rank_ = 1;
  std::vector<int64_t> in_dims_, out_dims_, begins_, in_strides_;
  std::vector<int64_t> tables_, table_offsets_;  // all axes' tables, concatenated
  uint8_t constant_[8] = {};
  GatherRowFn copy_ = nullptr;
  CopyRowFn fill_ = nullptr;
};

// ---- Resize ---------------------------------------------------------------------------------------
// Index (nearest) or index-pair-and-weight (linear) tables along H and W, computed once; run() is
// then two table lookups per output element.
struct Axis {
  std::vector<int64_t> lo, hi;  // input indices (nearest uses lo)
  std::vector<float> frac;      // weight of hi
};

double source_coordinate(int64_t o, double scale, int64_t in, int64_t out, const std::string& mode) {
  if (mode == "half_pixel") return (o + 0.5) / scale - 0.5;
  if (mode == "pytorch_half_pixel") return out > 1 ? (o + 0.5) / scale - 0.5 : 0.0;
  if (mode == "align_corners") return out > 1 ? static_cast<double>(o) * (in - 1) / (out - 1) : 0.0;
  return o / scale;  // asymmetric
}

double nearest(double coord, const std::string& mode) {
  if (mode == "round_prefer_floor") return std::ceil(coord - 0.5);
  if (mode == "round_prefer_ceil") return std::floor(coord + 0.5);
  if (mode == "floor") return std::floor(coord);
  return std::ceil(coord);
}

Axis plan_axis(int64_t in, int64_t out, double scale, bool linear, const std::string& coordinate_mode,
               const std::string& nearest_mode) {
  Axis axis;
  for (int64_t o = 0; o < out; ++o) {
    const double coord = source_coordinate(o, scale, in, out, coordinate_mode);
    if (linear) {
      const double c = std::clamp(coord, 0.0, static_cast<double>(in - 1));
      const int64_t lo = static_cast<int64_t>(std::floor(c));
      axis.lo.push_back(lo);
      axis.hi.push_back(std::min(lo + 1, in - 1));
      axis.frac.push_back(static_cast<float>(c - lo));
    } else {
      const double index = std::clamp(nearest(coord, nearest_mode), 0.0, static_cast<double>(in - 1));
      axis.lo.push_back(static_cast<int64_t>(index));
    }
  }
  return axis;
}

class ResizeKernel final : public OpKernel {
 public:
  Status prepare(const OpInfo& op, const std::vector<const Tensor*>& ins,
                 const std::vector<const Tensor*>& outs) override {
    EP_RETURN_IF_ERROR(expect_movement(op, ins, outs, 1, 1, &element_size_));
    const Tensor &x = *ins[0], &y = *outs[0];
    AttrReader attrs(op);
    const std::string mode = attrs.str("mode");
    const std::string coordinate_mode = attrs.str("coordinate_transformation_mode");
    const std::string nearest_mode = attrs.str("nearest_mode");
    const auto scales = attrs.floats("scales", x.rank);
    EP_RETURN_IF_ERROR(attrs.status());
    if (mode != "nearest" && mode != "linear") return bad(op, "mode must be 'nearest' or 'linear'");
    if (coordinate_mode != "half_pixel" && coordinate_mode != "pytorch_half_pixel" &&
        coordinate_mode != "align_corners" && coordinate_mode != "asymmetric")
      return bad(op, "unknown coordinate_transformation_mode '" + coordinate_mode + "'");
    if (nearest_mode != "round_prefer_floor" && nearest_mode != "round_prefer_ceil" && nearest_mode != "floor" &&
        nearest_mode != "ceil")
      return bad(op, "unknown nearest_mode '" + nearest_mode + "'");
    linear_ = mode == "linear";
    if (linear_) EP_RETURN_IF_ERROR(expect_dtype(op, x, DType::kFloat32, "input"));
    if (x.rank != 4 || y.rank != 4 || y.dims[0] != x.dims[0] || y.dims[1] != x.dims[1])
      return bad(op, "resizes the last two axes of NCHW: cannot resize " + x.shape_str() + " to " + y.shape_str());
    for (int d = 2; d < 4; ++d) {
      // scales are output/input per axis; from `sizes` they are exact, from scales the output is floored
      const double expected = static_cast<double>(x.dims[d]) * scales[d];
      const double off_by = std::fabs(static_cast<double>(y.dims[d]) - expected);
      if (!(scales[d] > 0.0f) || !std::isfinite(scales[d]) || off_by >= 1.0 + 1e-6 * expected)
        return bad(op, "output " + y.shape_str() + " does not match input " + x.shape_str() + " scaled by " +
                       std::to_string(scales[d]) + " on axis " + std::to_string(d));
      if (x.dims[d] == 0 && y.dims[d] > 0) return bad(op, "cannot resize an empty axis");
    }
    // An empty tensor's other dims can be huge (it has no bytes to check them against): no tables.
    if (y.numel == 0) return Status::Ok();
    rows_ = plan_axis(x.dims[2], y.dims[2], scales[2], linear_, coordinate_mode, nearest_mode);
    cols_ = plan_axis(x.dims[3], y.dims[3], scales[3], linear_, coordinate_mode, nearest_mode);
    planes_ = x.dims[0] * x.dims[1];
    in_h_ = x.dims[2];
    in_w_ = x.dims[3];
    gather_ = by_size<GatherRowOf, GatherRowFn>(element_size_);
    return Status::Ok();
  }

  Status run(const std::vector<const Tensor*>& ins, const std::vector<Tensor*>& outs, RunContext& ctx) const override {
    const uint8_t* x = ins[0]->as<const uint8_t>();
    uint8_t* y = outs[0]->as<uint8_t>();
    const int64_t out_h = static_cast<int64_t>(rows_.lo.size()), out_w = static_cast<int64_t>(cols_.lo.size());
    const int64_t es = static_cast<int64_t>(element_size_);
    ctx.pool->parallel_for(planes_ * out_h, [&](int64_t begin, int64_t end) {
      for (int64_t item = begin; item < end; ++item) {
        const int64_t plane = item / out_h, oh = item % out_h;
        const uint8_t* in = x + plane * in_h_ * in_w_ * es;
        uint8_t* out = y + item * out_w * es;
        if (linear_) {
          linear_row(reinterpret_cast<const float*>(in), oh, reinterpret_cast<float*>(out));
        } else if (item > begin && oh > 0 && rows_.lo[oh] == rows_.lo[oh - 1]) {
          std::memcpy(out, out - out_w * es, out_w * es);  // upsampling repeats rows: copy this chunk's last
        } else {
          gather_(in + rows_.lo[oh] * in_w_ * es, cols_.lo.data(), out, out_w);
        }
      }
    }, grain_rows(out_w * es * (linear_ ? 4 : 1)));
    return Status::Ok();
  }

 private:
  void linear_row(const float* plane, int64_t oh, float* out) const {
    const float* top = plane + rows_.lo[oh] * in_w_;
    const float* bottom = plane + rows_.hi[oh] * in_w_;
    const float fy = rows_.frac[oh];
    for (size_t ow = 0; ow < cols_.lo.size(); ++ow) {
      const int64_t l = cols_.lo[ow], h = cols_.hi[ow];
      const float fx = cols_.frac[ow];
      const float t = top[l] + (top[h] - top[l]) * fx;
      const float b = bottom[l] + (bottom[h] - bottom[l]) * fx;
      out[ow] = t + (b - t) * fy;
    }
  }

  size_t element_size_ = 0;
  bool linear_ = false;
  Axis rows_, cols_;
  int64_t planes_ = 0, in_h_ = 0, in_w_ = 0;
  GatherRowFn gather_ = nullptr;
};

}  // namespace

std::unique_ptr<OpKernel> make_movement_kernel(OpCode code) {
  switch (code) {
    case OpCode::kReshape: return std::make_unique<ReshapeKernel>();
    case OpCode::kTranspose: return std::make_unique<TransposeKernel>();
    case OpCode::kConcat: return std::make_unique<ConcatKernel>();
    case OpCode::kSplit: return std::make_unique<SplitKernel>();
    case OpCode::kSlice: return std::make_unique<SliceKernel>();
    case OpCode::kGather: return std::make_unique<GatherKernel>();
    case OpCode::kPad: return std::make_unique<PadKernel>();
    case OpCode::kResize: return std::make_unique<ResizeKernel>();
    case OpCode::kExpand: return std::make_unique<ExpandKernel>();
    case OpCode::kTile: return std::make_unique<TileKernel>();
    case OpCode::kDepthToSpace: return std::make_unique<DepthToSpaceKernel>();
    default: return nullptr;
  }
}

}  // namespace edgepack
