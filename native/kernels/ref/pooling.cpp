// Pooling and reduction kernels: MaxPool, AveragePool (float32, int8 and uint8 codes, NCHW),
// ReduceMean / Sum / Max / Min and ArgMax (float32, int32, int64; ReduceMean also on int8 / uint8
// codes). The int8 semantics are those of docs/quantization.md.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>
#include <type_traits>

#include "edgepack/kernel.h"
#include "kernels/ref/kernel_util.h"
#include "kernels/ref/kernels.h"
#include "kernels/ref/quant_check.h"

#if defined(__AVX512F__)
#include "kernels/x86/avx512.h"
#endif
#include "kernels/ref/quant_util.h"

namespace edgepack {
namespace {

constexpr int64_t kBlock = 64;     // output columns accumulated together when the input row is strided
// Bound on window attributes: keeps their products from overflowing and the per-tap table small.
constexpr int64_t kMaxAttr = 65535;

Status expect_single_io(const OpInfo& op, const std::vector<const Tensor*>& ins,
                        const std::vector<const Tensor*>& outs) {
  EP_RETURN_IF_ERROR(expect_inputs(op, ins, 1, 1));
  if (outs.size() != 1) return bad(op, "has " + std::to_string(outs.size()) + " outputs, expected 1");
  return Status::Ok();
}

int64_t grain_for(int64_t work_per_item) { return std::max<int64_t>(1, kGrain / std::max<int64_t>(1, work_per_item)); }

template <class T> bool is_nan(T x) {
  if constexpr (std::is_floating_point_v<T>) return std::isnan(x);
  else return false;
}
// The comparisons of np.max / np.argmax: NaN wins, and the first NaN stays.
template <class T> bool beats_max(T x, T best) { return x > best || (is_nan(x) && !is_nan(best)); }
template <class T> bool beats_min(T x, T best) { return x < best || (is_nan(x) && !is_nan(best)); }

// double -> T as numpy's astype after a float64 computation (integers truncate, saturating).
template <class T> T from_double(double v) {
  if constexpr (std::is_floating_point_v<T>) {
    return static_cast<T>(v);
  } else {
    if (!(v == v)) return 0;
    if (v <= static_cast<double>(std::numeric_limits<T>::min())) return std::numeric_limits<T>::min();
    if (v >= static_cast<double>(std::numeric_limits<T>::max())) return std::numeric_limits<T>::max();
    return static_cast<T>(v);
  }
}

// ---- MaxPool / AveragePool ------------------------------------------------------------------------
// The taps of one output row that land inside the input: kernel rows [k0, k1), the first reading
// input row `first` (then every `dilation`). Precomputed so the inner loops never test padding.
struct Window {
  int64_t first, k0, k1;
};

Window window(int64_t o, int64_t in, int64_t kernel, int64_t stride, int64_t pad, int64_t dilation) {
  const int64_t base = o * stride - pad;  // input index of tap 0
  const int64_t k0 = base >= 0 ? 0 : std::min(kernel, (-base + dilation - 1) / dilation);
  const int64_t k1 = base >= in ? 0 : std::min(kernel, (in - base + dilation - 1) / dilation);
  return {base + k0 * dilation, k0, std::max(k0, k1)};
}

// One kernel column j: output columns [lo, hi) read input column ow * stride + offset, all inside.
struct ColumnTap {
  int64_t lo, hi, offset;
};

// Rows are pooled tap by tap across a block of output columns (rather than window by window), so
// the inner loop is a plain strided max / sum over output columns that vectorises. Float32 pools
// floats; int8 / uint8 pool the codes (docs/quantization.md): MaxPool never lets padding win, and
// AveragePool sums the codes of the cells inside the input in int32 and divides rounding half away
// from zero.
#if defined(__AVX512F__)
// A float MaxPool output row with AVX-512, for windows of stride 1 or 2 without column dilation: the
// kernel rows are merged into a line padded with -inf (16 columns a step, the tail masked), then each
// kernel column pools the line (stride 2: the even lanes of two loads, one permute). The pooled order
// differs from pool_row's, not the result: max is exact and a NaN wins either way.
constexpr int64_t kAvxLine = 4096;  // padded input columns of the line, on the stack

// combine() of pool_row in vectors: max(v, acc) keeps a NaN acc; a NaN v then replaces it.
inline __m512 max_nan(__m512 acc, __m512 v) {
  const __m512 m = _mm512_max_ps(v, acc);
  return _mm512_mask_mov_ps(m, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), v);
}

using avx512::first_lanes;

// The merged line of one output row: its kernel rows' maxima, column by column, from -pad_left on.
void merge_line_avx512(const float* first_row, int64_t row_step, int64_t rows, int64_t width, int64_t pad_left,
                       int64_t kernel_w, int64_t stride, int64_t out_w, float* line) {
  const __m512 floor = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  const int64_t padded = (out_w - 1) * stride + kernel_w;  // columns the windows read, from -pad_left
  for (int64_t x = 0; x < padded + 32; x += 16) _mm512_store_ps(line + x, floor);
  const int64_t cols = std::min(width, padded - pad_left);  // input columns the windows read
  for (int64_t x = 0; x < cols && rows > 0; x += 16) {
    const __mmask16 m = first_lanes(cols - x);
    __m512 v = _mm512_maskz_loadu_ps(m, first_row + x);
    for (int64_t i = 1; i < rows; ++i) v = max_nan(v, _mm512_maskz_loadu_ps(m, first_row + i * row_step + x));
    _mm512_mask_storeu_ps(line + pad_left + x, m, v);
  }
}

// An output row from its merged line. The loads straddle the line's stores, which cannot forward to
// them: read right after merging, each waits for those stores to reach the cache (most of the time of
// a 112-column row). So the caller pools a line one row later, while it merges the next one.
void pool_line_avx512(const float* line, int64_t kernel_w, int64_t stride, int64_t out_w, float* out) {
  const __m512 floor = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  for (int64_t o = 0; o < out_w; o += 16) {
    __m512 acc = floor;
    const float* base = line + o * stride;
    for (int64_t j = 0; j < kernel_w; ++j) {
      const __m512 v = stride == 1 ? _mm512_loadu_ps(base + j)
                                   : _mm512_permutex2var_ps(_mm512_loadu_ps(base + j), even,
                                                            _mm512_loadu_ps(base + j + 16));
      acc = max_nan(acc, v);
    }
    _mm512_mask_storeu_ps(out + o, first_lanes(out_w - o), acc);
  }
}
#endif

class PoolKernel final : public OpKernel {
 public:
  Status prepare(const OpInfo& op, const std::vector<const Tensor*>& ins,
                 const std::vector<const Tensor*>& outs) override {
    EP_RETURN_IF_ERROR(expect_single_io(op, ins, outs));
    const Tensor &x = *ins[0], &y = *outs[0];
    average_ = op.code == OpCode::kAveragePool;
    switch (x.dtype) {
      case DType::kFloat32: row_ = pick_row<float, float>(); break;
      case DType::kInt8: row_ = pick_row<int8_t, int32_t>(); break;
      case DType::kUInt8: row_ = pick_row<uint8_t, int32_t>(); break;
      default: return unsupported_dtype(op, x.dtype);
    }
    EP_RETURN_IF_ERROR(expect_dtype(op, y, x.dtype, "output"));
    const bool codes = x.dtype != DType::kFloat32;
    if (codes) EP_RETURN_IF_ERROR(expect_same_quant(op, x, y));
    if (x.rank != 4) return bad(op, "input must be NCHW (rank 4), got " + x.shape_str());
    AttrReader attrs(op);
    const auto kernel = attrs.ints("kernel", 2), strides = attrs.ints("strides", 2);
    const auto pads = attrs.ints("pads", 4), dilations = attrs.ints("dilations", 2);
    const int64_t include_pad = average_ ? attrs.i("count_include_pad") : 0;
    const int64_t channels_last = attrs.has("channels_last") ? attrs.i("channels_last") : 0;
    EP_RETURN_IF_ERROR(attrs.status());
    if (channels_last != 0 && channels_last != 1) return bad(op, "channels_last must be 0 or 1");
    channels_last_ = channels_last == 1;
    if (channels_last_ && (average_ || x.dtype != DType::kFloat32))
      return Unsupported("op '" + op.name + "': channels_last is for float MaxPool only");
    for (int i = 0; i < 2; ++i) {
      if (kernel[i] < 1 || kernel[i] > kMaxAttr || strides[i] < 1 || strides[i] > kMaxAttr ||
          dilations[i] < 1 || dilations[i] > kMaxAttr)
        return bad(op, "kernel, strides and dilations must be in [1, 65535]");
    }
    bool padded = false;
    for (int64_t p : pads) {
      if (p < 0 || p > kMaxAttr) return bad(op, "pads must be in [0, 65535]");
      padded = padded || p != 0;
    }
    if (include_pad != 0 && include_pad != 1) return bad(op, "count_include_pad must be 0 or 1");
    if (codes && include_pad && padded)
      return Unsupported("op '" + op.name + "' (AveragePool): count_include_pad with padding is not supported on " +
                         dtype_name(x.dtype) + " (padded cells would have to hold the zero point)");
    // int32 sums of codes, plus half the count when rounding: at most every cell of the input, or of
    // the window, is inside at once
    const int64_t max_cells = std::min(kernel[0], x.dims[2]) * std::min(kernel[1], x.dims[3]);
    if (codes && average_ && max_cells > std::numeric_limits<int32_t>::max() / 256)
      return Unsupported("op '" + op.name + "' (AveragePool): windows of " + std::to_string(max_cells) +
                         " cells are too large for the int32 sum of " + dtype_name(x.dtype) + " codes");

    // NCHW, or NHWC with channels_last: (N, C, H, W) here either way
    const int64_t dims[4] = {x.dims[0], x.dims[channels_last_ ? 3 : 1], x.dims[channels_last_ ? 1 : 2],
                             x.dims[channels_last_ ? 2 : 3]};
    int64_t out_hw[2];
    for (int i = 0; i < 2; ++i) {
      const int64_t span = dims[2 + i] + pads[i] + pads[i + 2] - dilations[i] * (kernel[i] - 1) - 1;
      if (span < 0) return bad(op, "the window does not fit the padded input " + x.shape_str());
      out_hw[i] = span / strides[i] + 1;
    }
    if (channels_last_) {
      EP_RETURN_IF_ERROR(expect_shape(op, y, {dims[0], out_hw[0], out_hw[1], dims[1]}, "output"));
    } else {
      EP_RETURN_IF_ERROR(expect_shape(op, y, {dims[0], dims[1], out_hw[0], out_hw[1]}, "output"));
    }
    // An empty tensor's other dims can be huge (it has no bytes to check them against): no tables.
    if (y.numel == 0) return Status::Ok();
    element_size_ = dtype_size(x.dtype);
    planes_ = dims[0] * dims[1];
    height_ = dims[2];
    width_ = dims[3];
    out_w_ = out_hw[1];
    dilation_h_ = dilations[0];
    stride_w_ = strides[1];
    kernel_area_ = kernel[0] * kernel[1];
    rows_.clear();
    for (int64_t oh = 0; oh < out_hw[0]; ++oh)
      rows_.push_back(window(oh, height_, kernel[0], strides[0], pads[0], dilations[0]));
    taps_.clear();
    for (int64_t j = 0; j < kernel[1]; ++j) {
      const int64_t offset = j * dilations[1] - pads[1];  // input column = ow * stride + offset
      const int64_t lo = offset >= 0 ? 0 : (-offset + strides[1] - 1) / strides[1];
      const int64_t hi = width_ - offset <= 0 ? 0 : (width_ - offset + strides[1] - 1) / strides[1];
      taps_.push_back({std::min(lo, out_w_), std::min(std::max(lo, hi), out_w_), offset});
    }
    // The taps of each output column inside the input (times the kernel rows inside, per row in run()).
    column_counts_.assign(out_w_, 0);
    for (const ColumnTap& t : taps_)
      for (int64_t ow = t.lo; ow < t.hi; ++ow) ++column_counts_[ow];
    count_include_pad_ = include_pad == 1;
    if (channels_last_) {
      if (kernel[0] * kernel[1] > kMaxWindow)
        return Unsupported("op '" + op.name + "': channels_last MaxPool windows are limited to " +
                           std::to_string(kMaxWindow) + " cells, got " + std::to_string(kernel[0]) + "x" +
                           std::to_string(kernel[1]));
      images_ = dims[0];
      channels_ = dims[1];
      pad_left_ = pads[1];
      kernel_h_ = kernel[0];
      inner_lo_ = 0;
      inner_hi_ = out_w_;
      for (const ColumnTap& t : taps_) {
        inner_lo_ = std::max(inner_lo_, t.lo);
        inner_hi_ = std::min(inner_hi_, t.hi);
      }
      cell_offsets_.clear();
      for (int64_t i = 0; i < kernel[0]; ++i)
        for (int64_t j = 0; j < kernel[1]; ++j)
          cell_offsets_.push_back((i * dilations[0] * width_ + j * dilations[1]) * channels_);
      return Status::Ok();
    }
    // Rows are merged over the input columns of a chunk of output columns: (chunk - 1) * stride plus
    // the window's width must fit the merged row. A window wider than that pools row by row.
    const int64_t window_w = (kernel[1] - 1) * dilations[1] + 1;
    merge_rows_ = window_w <= kSpan;
    chunk_ = merge_rows_ ? std::min(kColumns, (kSpan - window_w) / strides[1] + 1) : kColumns;
    // Narrow outputs (the small planes at the end of a CNN: 4x4, 2x2) pool window by window, a whole
    // plane per call: the row pipeline's set-up would cost more than its few windows.
    kernel_w_ = kernel[1];
    pad_left_ = pads[1];
#if defined(__AVX512F__)
    // float MaxPool rows with AVX-512 (see max_pool_row_avx512), which also beats the plane path
    if (!average_ && x.dtype == DType::kFloat32 && dilations[1] == 1 && (strides[1] == 1 || strides[1] == 2) &&
        (out_w_ - 1) * strides[1] + kernel[1] + 32 <= kAvxLine && pads[1] < kAvxLine) {
      avx512_rows_ = true;
      plane_ = nullptr;
      max_2x2_ = false;
      return Status::Ok();
    }
#endif
    plane_ = nullptr;
    max_2x2_ = !average_ && kernel[0] == 2 && kernel[1] == 2 && strides[0] == 2 && strides[1] == 2 &&
               dilations[0] == 1 && dilations[1] == 1 && !padded && 2 * out_w_ <= width_ &&
               2 * static_cast<int64_t>(rows_.size()) <= height_;
    if (out_w_ <= kDirectColumns) {
      switch (x.dtype) {
        case DType::kFloat32: plane_ = pick_plane<float, float>(); break;
        case DType::kInt8: plane_ = pick_plane<int8_t, int32_t>(); break;
        default: plane_ = pick_plane<uint8_t, int32_t>(); break;
      }
    }
    return Status::Ok();
  }

  Status run(const std::vector<const Tensor*>& ins, const std::vector<Tensor*>& outs, RunContext& ctx) const override {
    const uint8_t* x = ins[0]->as<const uint8_t>();
    uint8_t* y = outs[0]->as<uint8_t>();
    const int64_t out_h = static_cast<int64_t>(rows_.size());
    const int64_t plane_bytes = height_ * width_ * static_cast<int64_t>(element_size_);
    const int64_t row_bytes = out_w_ * static_cast<int64_t>(element_size_);
    if (channels_last_) {
      run_channels_last(reinterpret_cast<const float*>(x), reinterpret_cast<float*>(y), out_h, ctx.pool);
      return Status::Ok();
    }
#if defined(__AVX512F__)
    if (avx512_rows_) {
      ctx.pool->parallel_for(planes_ * out_h, [&](int64_t begin, int64_t end) {
        alignas(64) float lines[2][kAvxLine + 48];  // item i merges into lines[i % 2]
        const auto pool = [&](int64_t item) {
          pool_line_avx512(lines[item % 2], kernel_w_, stride_w_, out_w_, reinterpret_cast<float*>(y + item * row_bytes));
        };
        for (int64_t item = begin; item < end; ++item) {
          const int64_t plane = item / out_h, oh = item % out_h;
          const Window& r = rows_[oh];
          const float* plane_x = reinterpret_cast<const float*>(x + plane * plane_bytes);
          merge_line_avx512(plane_x + r.first * width_, dilation_h_ * width_, r.k1 - r.k0, width_, pad_left_, kernel_w_,
                            stride_w_, out_w_, lines[item % 2]);
          if (item > begin) pool(item - 1);
        }
        pool(end - 1);
      }, grain_for(out_w_ * kernel_area_));
      return Status::Ok();
    }
#endif
    if (plane_ != nullptr) {
      ctx.pool->parallel_for(planes_, [&](int64_t begin, int64_t end) {
        for (int64_t plane = begin; plane < end; ++plane)
          (this->*plane_)(x + plane * plane_bytes, y + plane * out_h * row_bytes);
      }, grain_for(out_h * out_w_ * kernel_area_));
      return Status::Ok();
    }
    ctx.pool->parallel_for(planes_ * out_h, [&](int64_t begin, int64_t end) {
      for (int64_t item = begin; item < end; ++item) {
        const int64_t plane = item / out_h, oh = item % out_h;
        (this->*row_)(x + plane * plane_bytes, rows_[oh], y + item * row_bytes);
      }
    }, grain_for(out_w_ * kernel_area_));
    return Status::Ok();
  }

 private:
  using RowFn = void (PoolKernel::*)(const uint8_t* plane, const Window& r, uint8_t* out) const;
  static constexpr int64_t kColumns = 256;  // output columns accumulated together, on the stack
  static constexpr int64_t kSpan = 1024;    // input columns of the merged rows, on the stack
  static constexpr int64_t kDirectColumns = 16;  // output rows up to this wide pool window by window
  using PlaneFn = void (PoolKernel::*)(const uint8_t* plane, uint8_t* out) const;

  template <class T, class Acc> PlaneFn pick_plane() const {
    return average_ ? &PoolKernel::pool_plane_direct<T, Acc, true> : &PoolKernel::pool_plane_direct<T, Acc, false>;
  }

  // A whole output plane, window by window (out_w_ <= kDirectColumns); the same combine and the same
  // averaging as pool_row.
  template <class T, class Acc, bool kAverage>
  void pool_plane_direct(const uint8_t* plane_bytes, uint8_t* out_bytes) const {
    const T* plane = reinterpret_cast<const T*>(plane_bytes);
    T* out = reinterpret_cast<T*>(out_bytes);
    if constexpr (!kAverage) {
      if (max_2x2_) {  // 2x2 windows, stride 2, inside the input: four values per output
        const int64_t width = width_, out_w = out_w_, out_h = static_cast<int64_t>(rows_.size());
        const Acc floor = static_cast<Acc>(lowest<T>());
        for (int64_t oh = 0; oh < out_h; ++oh, out += out_w) {
          const T* a = plane + 2 * oh * width;
          const T* b = a + width;
          for (int64_t ow = 0; ow < out_w; ++ow) {
            Acc m = combine<T, Acc, false>(floor, a[2 * ow]);
            m = combine<T, Acc, false>(m, a[2 * ow + 1]);
            m = combine<T, Acc, false>(m, b[2 * ow]);
            out[ow] = static_cast<T>(combine<T, Acc, false>(m, b[2 * ow + 1]));
          }
        }
        return;
      }
    }
    Acc acc[kDirectColumns];
    for (const Window& r : rows_) {
      const int64_t rows = r.k1 - r.k0;
      std::fill(acc, acc + out_w_, kAverage ? Acc(0) : static_cast<Acc>(lowest<T>()));
      for (int64_t i = 0; i < rows; ++i) {
        const T* line = plane + (r.first + i * dilation_h_) * width_;
        for (const ColumnTap& t : taps_)
          for (int64_t ow = t.lo; ow < t.hi; ++ow)
            acc[ow] = combine<T, Acc, kAverage>(acc[ow], line[ow * stride_w_ + t.offset]);
      }
      if constexpr (!kAverage) std::transform(acc, acc + out_w_, out, [](Acc v) { return static_cast<T>(v); });
      else if constexpr (std::is_floating_point_v<T>) float_averages(acc, rows, 0, out_w_, out);
      else code_averages(acc, column_counts_.data(), rows, out_w_, out);
      out += out_w_;
    }
  }

  // Acc is the type rows are pooled in: float for float32; int32 for codes, whose sums need it and
  // whose maxima are cheaper to reorder (the split of a line into even and odd columns) in 32-bit lanes.
  template <class T, class Acc> RowFn pick_row() const {
    return average_ ? &PoolKernel::pool_row<T, Acc, true> : &PoolKernel::pool_row<T, Acc, false>;
  }


  // One output row, chunk_ columns at a time. The window is separable: the kernel rows inside
  // the input are first merged column by column into one line (a contiguous, vectorised pass over the
  // input columns the chunk reads), then the kernel columns pool that line. With stride 2 the line is
  // split into its even and odd columns first, so that every kernel column reads contiguously too.
  template <class T, class Acc, bool kAverage>
  void pool_row(const uint8_t* plane_bytes, const Window& r, uint8_t* out_bytes) const {
    const T* plane = reinterpret_cast<const T*>(plane_bytes);
    T* out = reinterpret_cast<T*>(out_bytes);
    const int64_t rows = r.k1 - r.k0;
    const T* first_row = plane + r.first * width_;
    const int64_t row_step = dilation_h_ * width_;
    Acc acc[kColumns];
    Acc merged[kSpan], split[kSpan + 1];
    for (int64_t c0 = 0; c0 < out_w_; c0 += chunk_) {
      const int64_t c1 = std::min(out_w_, c0 + chunk_);
      // MaxPool starts below every value, so padding never wins; a window wholly in the padding
      // yields that floor (-inf, or the lowest code), as the reference's padded windows do.
      std::fill(acc, acc + (c1 - c0), kAverage ? Acc(0) : static_cast<Acc>(lowest<T>()));
      if (!merge_rows_) {  // a window wider than the line: row by row, strided
        for (int64_t i = 0; i < rows; ++i) pool_taps<T, Acc, kAverage>(first_row + i * row_step, 0, 0, c0, c1, acc);
      } else if (rows > 0) {
        // the input columns that the chunk's kernel columns read
        const int64_t x0 = std::max<int64_t>(0, c0 * stride_w_ + taps_.front().offset);
        const int64_t x1 = std::max(x0, std::min(width_, (c1 - 1) * stride_w_ + taps_.back().offset + 1));
        merge_rows<T, Acc, kAverage>(first_row + x0, row_step, rows, x1 - x0, merged);
        if (stride_w_ == 2) {
          const int64_t half = (x1 - x0 + 1) / 2;
          split_even_odd(merged, x1 - x0, split, split + half);
          pool_taps<Acc, Acc, kAverage>(split, x0, half, c0, c1, acc);
        } else {
          pool_taps<Acc, Acc, kAverage>(merged, x0, 0, c0, c1, acc);
        }
      }
      if constexpr (!kAverage) std::transform(acc, acc + (c1 - c0), out + c0, [](Acc v) { return static_cast<T>(v); });
      else if constexpr (std::is_floating_point_v<T>) float_averages(acc, rows, c0, c1, out);
      else code_averages(acc, column_counts_.data() + c0, rows, c1 - c0, out + c0);
    }
  }

  // Pools output columns [c0, c1) of one line of input columns from `base` on into acc. Column x is
  // line[x - base], or, when the line is split into even and odd columns (half > 0; stride 2), at
  // (x - base) / 2 of the even half (line) or of the odd one (line + half).
  template <class T, class Acc, bool kSum>
  void pool_taps(const T* line, int64_t base, int64_t half, int64_t c0, int64_t c1, Acc* acc) const {
    for (const ColumnTap& t : taps_) {
      const int64_t lo = std::max(t.lo, c0), hi = std::min(t.hi, c1);
      if (lo >= hi) continue;
      const int64_t x = lo * stride_w_ + t.offset - base;
      if (half > 0) {
        pool_columns<1, T, Acc, kSum>(line + x % 2 * half + x / 2, 1, hi - lo, acc + (lo - c0));
      } else if (stride_w_ == 1) {
        pool_columns<1, T, Acc, kSum>(line + x, 1, hi - lo, acc + (lo - c0));
      } else {
        pool_columns<0, T, Acc, kSum>(line + x, stride_w_, hi - lo, acc + (lo - c0));
      }
    }
  }

  // The max, or sum, of `a` and an input value: a NaN input wins the max, as np.max (std::max keeps
  // `a` when it is NaN). Written as a max and a rarely taken NaN test rather than one comparison, so
  // that scalar loop tails select without a data-dependent branch.
  template <class T, class Acc, bool kSum> static Acc combine(Acc a, T v) {
    if constexpr (kSum) {
      return a + v;
    } else {
      const Acc m = std::max(a, static_cast<Acc>(v));
      return is_nan(v) ? v : m;
    }
  }

  // acc[j] = max or sum of acc[j] and in[j * stride], j < n; kStride is the stride when known at
  // compile time (0: use `stride`), so that the common strides vectorise. Everything the loop reads
  // is a parameter: a store through an int8 pointer may alias any object, so members would be
  // reloaded every iteration and the loop would not vectorise.
  template <int64_t kStride, class T, class Acc, bool kSum>
  static void pool_columns(const T* in, int64_t stride, int64_t n, Acc* acc) {
    const int64_t step = kStride != 0 ? kStride : stride;
    for (int64_t j = 0; j < n; ++j) acc[j] = combine<T, Acc, kSum>(acc[j], in[j * step]);
  }

  // merged[x] = max or sum over the `rows` rows (`row_step` apart, from `in`) of column x, x < n.
  template <class T, class Acc, bool kSum>
  static void merge_rows(const T* in, int64_t row_step, int64_t rows, int64_t n, Acc* merged) {
    if (rows == 1) {
      for (int64_t x = 0; x < n; ++x) merged[x] = static_cast<Acc>(in[x]);
      return;
    }
    for (int64_t x = 0; x < n; ++x) merged[x] = combine<T, Acc, kSum>(static_cast<Acc>(in[x]), in[row_step + x]);
    for (int64_t i = 2; i < rows; ++i) {
      const T* row = in + i * row_step;
      for (int64_t x = 0; x < n; ++x) merged[x] = combine<T, Acc, kSum>(merged[x], row[x]);
    }
  }

  // Output columns [c0, c1) from their sums, `rows` kernel rows being inside the input.
  void float_averages(const float* sums, int64_t rows, int64_t c0, int64_t c1, float* out) const {
    for (int64_t ow = c0; ow < c1; ++ow) {
      // Without count_include_pad a window entirely in the padding divides 0 by 0, as the reference.
      const float divisor = count_include_pad_ ? static_cast<float>(kernel_area_)
                                               : static_cast<float>(rows) * static_cast<float>(column_counts_[ow]);
      out[ow] = sums[ow - c0] / divisor;
    }
  }

  // The mean of each of n windows of codes, rounded half away from zero: floor((|s| + c/2) / c) with
  // the sign of s, for c = rows * counts[j] cells inside. The division is in double so that it
  // vectorises: s and c are below 2^31, so a quotient just under an integer is at least 1/c under,
  // far more than double's rounding, and its floor is exact. A window wholly in the padding sums
  // nothing and, divided by 1, averages to 0, as numpy's integer 0 // 0 does in the reference.
  template <class T>
  static void code_averages(const int32_t* sums, const int32_t* counts, int64_t rows, int64_t n, T* out) {
    const int32_t r = static_cast<int32_t>(rows);
    for (int64_t j = 0; j < n; ++j) {
      const int32_t cells = r * counts[j], s = sums[j];
      const double divisor = static_cast<double>(std::max(cells, 1));
      const int32_t mean = static_cast<int32_t>((std::abs(s) + cells / 2) / divisor);  // >= 0: truncation floors
      out[j] = static_cast<T>(s < 0 ? -mean : mean);  // a mean of codes: within their range
    }
  }

  template <class T> static T lowest() {
    return std::numeric_limits<T>::has_infinity ? -std::numeric_limits<T>::infinity() : std::numeric_limits<T>::lowest();
  }

  RowFn row_ = nullptr;
  PlaneFn plane_ = nullptr;  // set for narrow outputs: used instead of row_
  bool max_2x2_ = false;     // MaxPool 2x2 / 2 without padding (the plane path's special case)
  // channels_last: NHWC float MaxPool, the channels of a pixel on the vector axis. Each output row
  // (image, oh) is one item: per output pixel, the window's input pixels inside the image are maxed a
  // few vectors of channels at a time, held in registers across the window (max_at, max_of).
  void run_channels_last(const float* x, float* y, int64_t out_h, ThreadPool* pool) const {
    const int64_t c = channels_;
    pool->parallel_for(images_ * out_h, [&](int64_t begin, int64_t end) {
      for (int64_t item = begin; item < end; ++item) {
        const int64_t n = item / out_h, oh = item % out_h;
        const Window& rows = rows_[oh];
        float* out = y + item * out_w_ * c;
        const float* window[kMaxWindow];  // the window's input pixels inside the image
        // Inside the image (every kernel row, and columns [inner_lo_, inner_hi_)) the window is the
        // fixed offsets cell_offsets_ from its first pixel.
        const bool all_rows = rows.k1 - rows.k0 == kernel_h_;
        const float* first_row = x + (n * height_ + rows.first) * width_ * c;
        for (int64_t ow = 0; ow < out_w_; ++ow, out += c) {
          if (all_rows && ow >= inner_lo_ && ow < inner_hi_) {
            max_at(first_row + (ow * stride_w_ - pad_left_) * c, cell_offsets_.data(),
                   static_cast<int>(cell_offsets_.size()), c, out);
            continue;
          }
          int cells = 0;
          for (int64_t i = rows.k0; i < rows.k1; ++i) {
            const float* in_row = x + ((n * height_ + rows.first + (i - rows.k0) * dilation_h_) * width_) * c;
            for (const ColumnTap& t : taps_)
              if (ow >= t.lo && ow < t.hi) window[cells++] = in_row + (ow * stride_w_ + t.offset) * c;
          }
          max_of(window, cells, c, out);
        }
      }
    }, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, out_w_ * c)));  // ~16K outputs per thread at least
  }
  // out[j] = the max of cells[k][j] over k (-inf with no cell), NaN winning, a vector of channels at a
  // time held in a register across the window.
  static void max_of(const float* const* cells, int count, int64_t channels, float* out) {
    int64_t j = 0;
#if defined(__AVX512F__)
    for (; j < channels; j += 16) {
      const __mmask16 m = first_lanes(channels - j);
      __m512 acc = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
      for (int k = 0; k < count; ++k) acc = max_nan(acc, _mm512_maskz_loadu_ps(m, cells[k] + j));
      _mm512_mask_storeu_ps(out + j, m, acc);
    }
#endif
    for (; j < channels; ++j) {
      float best = -std::numeric_limits<float>::infinity();
      for (int k = 0; k < count; ++k)
        if (beats_max(cells[k][j], best)) best = cells[k][j];
      out[j] = best;
    }
  }
  // max_of with the cells at base + offsets[k]: four vectors of channels at a time, each cell's loads
  // independent of the others' (ResNet's and SqueezeNet's 64 to 256 channels).
  static void max_at(const float* base, const int64_t* offsets, int count, int64_t channels, float* out) {
    int64_t j = 0;
#if defined(__AVX512F__)
    const __m512 floor = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
    for (; j + 64 <= channels; j += 64) {
      __m512 a0 = floor, a1 = floor, a2 = floor, a3 = floor;
      for (int k = 0; k < count; ++k) {
        const float* p = base + offsets[k] + j;
        a0 = max_nan(a0, _mm512_loadu_ps(p));
        a1 = max_nan(a1, _mm512_loadu_ps(p + 16));
        a2 = max_nan(a2, _mm512_loadu_ps(p + 32));
        a3 = max_nan(a3, _mm512_loadu_ps(p + 48));
      }
      _mm512_storeu_ps(out + j, a0);
      _mm512_storeu_ps(out + j + 16, a1);
      _mm512_storeu_ps(out + j + 32, a2);
      _mm512_storeu_ps(out + j + 48, a3);
    }
#endif
    if (j == channels) return;
    const float* cells[kMaxWindow];
    for (int k = 0; k < count; ++k) cells[k] = base + offsets[k] + j;
    max_of(cells, count, channels - j, out + j);
  }
  static constexpr int64_t kMaxWindow = 64;  // channels_last windows up to 8x8 (prepare checks)

  bool channels_last_ = false;
  int64_t images_ = 0, channels_ = 0, kernel_h_ = 1, inner_lo_ = 0, inner_hi_ = 0;
  std::vector<int64_t> cell_offsets_;  // channels_last: the window's cells from its first, in floats
  bool avx512_rows_ = false;  // float MaxPool through merge_line_avx512 and pool_line_avx512
  bool average_ = false, count_include_pad_ = false, merge_rows_ = false;
  int64_t chunk_ = kColumns;  // output columns per chunk
  std::vector<Window> rows_;
  std::vector<ColumnTap> taps_;
  std::vector<int32_t> column_counts_;  // per output column, the kernel columns inside the input
  size_t element_size_ = 0;
  int64_t planes_ = 0, height_ = 0, width_ = 0, out_w_ = 0, dilation_h_ = 1, stride_w_ = 1, kernel_area_ = 1;
  int64_t kernel_w_ = 1, pad_left_ = 0;
};

// ---- ReduceMean / ReduceSum / ReduceMax / ReduceMin -----------------------------------------------
// A set of input dims walked as one index space (last fastest), adjacent contiguous dims merged.
struct Dims {
  int n = 0;
  int64_t size[kMaxRank] = {};
  int64_t stride[kMaxRank] = {};
  int64_t count = 1;

  void push(int64_t d, int64_t s) {
    count *= d;
    if (n > 0 && stride[n - 1] == d * s) {
      size[n - 1] *= d;
      stride[n - 1] = s;
    } else {
      size[n] = d;
      stride[n] = s;
      ++n;
    }
  }
  void pop() {
    --n;
    count = 1;
    for (int i = 0; i < n; ++i) count *= size[i];
  }

  // The input offset of the `index`-th point.
  int64_t offset(int64_t index) const {
    int64_t off = 0;
    for (int i = n - 1; i >= 0; --i) {
      off += (index % size[i]) * stride[i];
      index /= size[i];
    }
    return off;
  }

  // Calls fn(offset) for every point, offsets relative to `base`.
  template <class F> void for_each(int64_t base, const F& fn) const {
    int64_t index[kMaxRank] = {};
    int64_t off = base;
    for (int64_t t = 0; t < count; ++t) {
      fn(off);
      for (int i = n - 1; i >= 0; --i) {
        off += stride[i];
        if (++index[i] < size[i]) break;
        off -= stride[i] * size[i];
        index[i] = 0;
      }
    }
  }
};

// How a reduction walks its input. When the innermost input dim is reduced, each output element sums
// contiguous runs of `run` elements at the `reduced` offsets. When it is kept, each output row of
// `run` contiguous elements is accumulated kBlock columns at a time, reading contiguous rows.
// The requantization of an int8 / uint8 ReduceMean: y = clamp(zy + apply(sum(x) - n zx, M(s_x / (s_y n)))).
struct QuantMean {
  Multiplier multiplier;
  int64_t zero_sum = 0;  // n * zx
  int32_t y_zero = 0, lo = 0, hi = 0;
};

struct ReducePlan {
  Dims kept, reduced;   // the innermost dim, of length `run`, is taken out of the set it belongs to
  int64_t run = 1;
  bool inner_kept = false;
  int64_t total = 1;    // elements reduced into each output (run included when inner_kept is false)
  QuantMean quant;      // int8 / uint8 ReduceMean only
};

// Sum and Mean accumulate in double like the reference; Max and Min in the input type.
template <class T> struct SumOp {
  using Acc = double;
  static Acc init() { return 0; }
  static Acc step(Acc a, T x) { return a + static_cast<double>(x); }
  static T finish(Acc a, const ReducePlan&) { return from_double<T>(a); }
};
template <class T> struct MeanOp : SumOp<T> {
  static T finish(double a, const ReducePlan& plan) { return from_double<T>(a / static_cast<double>(plan.total)); }
};
// int8 / uint8 codes: an exact int32 sum (prepare() bounds the count), then the fixed-point multiplier.
template <class T> struct QuantMeanOp {
  using Acc = int32_t;
  static Acc init() { return 0; }
  static Acc step(Acc a, T x) { return a + x; }
  static T finish(Acc a, const ReducePlan& plan) {
    const QuantMean& q = plan.quant;
    return static_cast<T>(clamp_i32(q.y_zero + apply_multiplier(a - q.zero_sum, q.multiplier), q.lo, q.hi));
  }
};
template <class T> struct MaxOp {
  using Acc = T;
  static Acc init() {
    return std::numeric_limits<T>::has_infinity ? -std::numeric_limits<T>::infinity() : std::numeric_limits<T>::lowest();
  }
  static Acc step(Acc a, T x) { return beats_max(x, a) ? x : a; }
  static T finish(Acc a, const ReducePlan&) { return a; }
};
template <class T> struct MinOp {
  using Acc = T;
  static Acc init() {
    return std::numeric_limits<T>::has_infinity ? std::numeric_limits<T>::infinity() : std::numeric_limits<T>::max();
  }
  static Acc step(Acc a, T x) { return beats_min(x, a) ? x : a; }
  static T finish(Acc a, const ReducePlan&) { return a; }
};

using ReduceFn = void (*)(const ReducePlan& plan, const void* x, void* y, ThreadPool* pool);

// The double sum of a contiguous run in 8 independent lanes: one running sum is a chain of dependent
// adds (4 cycles each); the lanes vectorise (a global average pool of 1000 x 13 x 13: 82 -> ~10 us).
template <class T> double sum_run(const T* x, int64_t n) {
  double lanes[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) lanes[k] += static_cast<double>(x[i + k]);
  for (; i < n; ++i) lanes[0] += static_cast<double>(x[i]);
  return ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
}

template <class T, class Op>
void reduce(const ReducePlan& plan, const void* px, void* py, ThreadPool* pool) {
  using Acc = typename Op::Acc;
  const T* x = static_cast<const T*>(px);
  T* y = static_cast<T*>(py);
  if (!plan.inner_kept) {
    pool->parallel_for(plan.kept.count, [&](int64_t begin, int64_t end) {
      for (int64_t o = begin; o < end; ++o) {
        Acc acc = Op::init();
        plan.reduced.for_each(plan.kept.offset(o), [&](int64_t off) {
          if constexpr (std::is_same_v<Acc, double>) {
            acc += sum_run(x + off, plan.run);  // Sum / Mean of floats
          } else {
            for (int64_t i = 0; i < plan.run; ++i) acc = Op::step(acc, x[off + i]);
          }
        });
        y[o] = Op::finish(acc, plan);
      }
    }, grain_for(plan.total));
    return;
  }
  const int64_t blocks = (plan.run + kBlock - 1) / kBlock;
  pool->parallel_for(plan.kept.count * blocks, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      const int64_t row = item / blocks, col = (item % blocks) * kBlock;
      const int64_t cols = std::min(kBlock, plan.run - col);
      Acc acc[kBlock];
      std::fill(acc, acc + cols, Op::init());
      plan.reduced.for_each(plan.kept.offset(row) + col, [&](int64_t off) {
        for (int64_t j = 0; j < cols; ++j) acc[j] = Op::step(acc[j], x[off + j]);
      });
      T* out = y + row * plan.run + col;
      for (int64_t j = 0; j < cols; ++j) out[j] = Op::finish(acc[j], plan);
    }
  }, grain_for(plan.total * std::min(kBlock, plan.run)));
}

template <class T> ReduceFn pick_reduce_for(OpCode code) {
  switch (code) {
    case OpCode::kReduceSum: return reduce<T, SumOp<T>>;
    case OpCode::kReduceMean: return reduce<T, MeanOp<T>>;
    case OpCode::kReduceMax: return reduce<T, MaxOp<T>>;
    case OpCode::kReduceMin: return reduce<T, MinOp<T>>;
    default: return nullptr;
  }
}

ReduceFn pick_reduce(OpCode code, DType dtype) {
  switch (dtype) {
    case DType::kFloat32: return pick_reduce_for<float>(code);
    case DType::kInt32: return pick_reduce_for<int32_t>(code);
    case DType::kInt64: return pick_reduce_for<int64_t>(code);
    case DType::kInt8: return code == OpCode::kReduceMean ? reduce<int8_t, QuantMeanOp<int8_t>> : nullptr;
    case DType::kUInt8: return code == OpCode::kReduceMean ? reduce<uint8_t, QuantMeanOp<uint8_t>> : nullptr;
    default: return nullptr;
  }
}

class ReduceKernel final : public OpKernel {
 public:
  Status prepare(const OpInfo& op, const std::vector<const Tensor*>& ins,
                 const std::vector<const Tensor*>& outs) override {
    EP_RETURN_IF_ERROR(expect_single_io(op, ins, outs));
    const Tensor &x = *ins[0], &y = *outs[0];
    EP_RETURN_IF_ERROR(expect_dtype(op, y, x.dtype, "output"));
    fn_ = pick_reduce(op.code, x.dtype);
    if (!fn_) return unsupported_dtype(op, x.dtype);
    AttrReader attrs(op);
    const auto axes = attrs.ints("axes");
    const int64_t keepdims = attrs.i("keepdims");
    EP_RETURN_IF_ERROR(attrs.status());
    if (keepdims != 0 && keepdims != 1) return bad(op, "keepdims must be 0 or 1");
    bool reduced[kMaxRank] = {};
    for (size_t i = 0; i < axes.size(); ++i) {
      if (axes[i] < 0 || axes[i] >= x.rank || (i > 0 && axes[i] <= axes[i - 1]))
        return bad(op, "axes must be sorted, distinct and in [0, " + std::to_string(x.rank) + ")");
      reduced[axes[i]] = true;
    }
    std::vector<int64_t> out_shape;
    for (int i = 0; i < x.rank; ++i) {
      if (!reduced[i]) out_shape.push_back(x.dims[i]);
      else if (keepdims) out_shape.push_back(1);
    }
    EP_RETURN_IF_ERROR(expect_shape(op, y, out_shape, "output"));
    plan_ = plan_reduction(x, reduced);
    if (plan_.total == 0 && op.code != OpCode::kReduceSum && y.numel > 0)
      return bad(op, "reduces an empty set of elements");
    if (x.dtype == DType::kInt8 || x.dtype == DType::kUInt8) return plan_quant_mean(op, x, y);
    return Status::Ok();
  }

  Status run(const std::vector<const Tensor*>& ins, const std::vector<Tensor*>& outs, RunContext& ctx) const override {
    fn_(plan_, ins[0]->data, outs[0]->data, ctx.pool);
    return Status::Ok();
  }

 private:
  static ReducePlan plan_reduction(const Tensor& x, const bool* reduced) {
    ReducePlan plan;
    int64_t strides[kMaxRank];
    int innermost = -1;  // the innermost dim of size > 1
    int64_t stride = 1;
    for (int i = x.rank - 1; i >= 0; --i) {
      strides[i] = stride;
      stride *= x.dims[i];
      if (x.dims[i] != 1 && innermost < 0) innermost = i;
    }
    for (int i = 0; i < x.rank; ++i)
      if (x.dims[i] != 1) (reduced[i] ? plan.reduced : plan.kept).push(x.dims[i], strides[i]);
    plan.total = plan.reduced.count;
    if (innermost >= 0 && !reduced[innermost]) {
      plan.inner_kept = true;
      plan.run = plan.kept.size[plan.kept.n - 1];
      plan.kept.pop();
    } else if (innermost >= 0) {
      plan.run = plan.reduced.size[plan.reduced.n - 1];
      plan.reduced.pop();
    }
    return plan;
  }

  Status plan_quant_mean(const OpInfo& op, const Tensor& x, const Tensor& y) {
    EP_RETURN_IF_ERROR(expect_per_tensor(op, x, "input"));
    EP_RETURN_IF_ERROR(expect_per_tensor(op, y, "output"));
    // |sum(x - zx)| <= 255 n must fit int32 (and apply_multiplier's |x| < 2^31)
    if (plan_.total > std::numeric_limits<int32_t>::max() / 255)
      return Unsupported("op '" + op.name + "' (ReduceMean): the mean of " + std::to_string(plan_.total) + " " +
                         dtype_name(x.dtype) + " codes overflows the int32 sum");
    QuantMean& q = plan_.quant;
    const double n = static_cast<double>(plan_.total);
    EP_RETURN_IF_ERROR(make_multiplier(op, tensor_scale(x) / (static_cast<double>(tensor_scale(y)) * n),
                                       "s_x / (s_y n)", &q.multiplier));
    q.zero_sum = plan_.total * tensor_zero_point(x);
    q.y_zero = tensor_zero_point(y);
    code_range(y.dtype, &q.lo, &q.hi);
    return Status::Ok();
  }

  ReduceFn fn_ = nullptr;
  ReducePlan plan_;
};

// ---- ArgMax ---------------------------------------------------------------------------------------
using ArgMaxFn = void (*)(const void* x, int64_t* y, int64_t outer, int64_t length, int64_t inner, ThreadPool* pool);

// The first index of the maximum along the axis of an [outer, length, inner] input.
template <class T>
void arg_max(const void* px, int64_t* y, int64_t outer, int64_t length, int64_t inner, ThreadPool* pool) {
  const T* x = static_cast<const T*>(px);
  const int64_t blocks = (inner + kBlock - 1) / kBlock;
  pool->parallel_for(outer * blocks, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      const int64_t o = item / blocks, col = (item % blocks) * kBlock;
      const int64_t cols = std::min(kBlock, inner - col);
      const T* in = x + o * length * inner + col;
      T best[kBlock];
      int64_t* index = y + o * inner + col;
      for (int64_t j = 0; j < cols; ++j) {
        best[j] = in[j];
        index[j] = 0;
      }
      for (int64_t a = 1; a < length; ++a) {
        const T* row = in + a * inner;
        for (int64_t j = 0; j < cols; ++j) {
          if (beats_max(row[j], best[j])) {
            best[j] = row[j];
            index[j] = a;
          }
        }
      }
    }
  }, grain_for(length * std::min(kBlock, inner)));
}

class ArgMaxKernel final : public OpKernel {
 public:
  Status prepare(const OpInfo& op, const std::vector<const Tensor*>& ins,
                 const std::vector<const Tensor*>& outs) override {
    EP_RETURN_IF_ERROR(expect_single_io(op, ins, outs));
    const Tensor &x = *ins[0], &y = *outs[0];
    EP_RETURN_IF_ERROR(expect_dtype(op, y, DType::kInt64, "output"));
    switch (x.dtype) {
      case DType::kFloat32: fn_ = arg_max<float>; break;
      case DType::kInt32: fn_ = arg_max<int32_t>; break;
      case DType::kInt64: fn_ = arg_max<int64_t>; break;
      default: return unsupported_dtype(op, x.dtype);
    }
    AttrReader attrs(op);
    const int64_t axis = attrs.i("axis"), keepdims = attrs.i("keepdims");
    EP_RETURN_IF_ERROR(attrs.status());
    if (axis < 0 || axis >= x.rank) return bad(op, "axis " + std::to_string(axis) + " is out of range for rank " +
                                                   std::to_string(x.rank));
    if (keepdims != 0 && keepdims != 1) return bad(op, "keepdims must be 0 or 1");
    std::vector<int64_t> out_shape = x.shape();
    if (keepdims) out_shape[axis] = 1;
    else out_shape.erase(out_shape.begin() + axis);
    EP_RETURN_IF_ERROR(expect_shape(op, y, out_shape, "output"));
    length_ = x.dims[axis];
    if (length_ == 0 && y.numel > 0) return bad(op, "takes the argmax of an empty axis");
    outer_ = 1;
    inner_ = 1;
    for (int i = 0; i < axis; ++i) outer_ *= x.dims[i];
    for (int i = static_cast<int>(axis) + 1; i < x.rank; ++i) inner_ *= x.dims[i];
    return Status::Ok();
  }

  Status run(const std::vector<const Tensor*>& ins, const std::vector<Tensor*>& outs, RunContext& ctx) const override {
    fn_(ins[0]->data, outs[0]->as<int64_t>(), outer_, length_, inner_, ctx.pool);
    return Status::Ok();
  }

 private:
  ArgMaxFn fn_ = nullptr;
  int64_t outer_ = 0, length_ = 0, inner_ = 0;
};

}  // namespace

std::unique_ptr<OpKernel> make_pooling_kernel(OpCode code) {
  switch (code) {
    case OpCode::kMaxPool:
    case OpCode::kAveragePool: return std::make_unique<PoolKernel>();
    case OpCode::kReduceMean:
    case OpCode::kReduceSum:
    case OpCode::kReduceMax:
    case OpCode::kReduceMin: return std::make_unique<ReduceKernel>();
    case OpCode::kArgMax: return std::make_unique<ArgMaxKernel>();
    default: return nullptr;
  }
}

}  // namespace edgepack
