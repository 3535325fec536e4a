// Helpers shared by the portable kernels: error messages, threading grain, small numeric utilities.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "edgepack/kernel.h"

namespace edgepack {

inline constexpr int64_t kGrain = 16384;  // elements below which waking another thread does not pay

// An InvalidArtifact status naming the op and what is wrong with it.
inline Status bad(const OpInfo& op, const std::string& what) {
  return InvalidArtifact("op '" + op.name + "' (" + op_name(op.code) + "): " + what);
}

inline Status unsupported_dtype(const OpInfo& op, DType dtype) {
  return Unsupported("op '" + op.name + "' (" + op_name(op.code) + "): dtype " + dtype_name(dtype) +
                     " is not supported");
}

inline Status expect_outputs(const OpInfo& op, const std::vector<const Tensor*>& outs, size_t n) {
  if (outs.size() != n)
    return bad(op, "has " + std::to_string(outs.size()) + " outputs, expected " + std::to_string(n));
  return Status::Ok();
}

// Product of dims [begin, end).
inline int64_t product(const Tensor& t, int begin, int end) {
  int64_t p = 1;
  for (int i = begin; i < end; ++i) p *= t.dims[i];
  return p;
}

// Softmax's and Attention's nan_to_zero attribute (absent: 0), which must be 0 or 1.
inline Status read_nan_to_zero(const OpInfo& op, bool* nan_to_zero) {
  AttrReader attrs(op);
  const int64_t value = attrs.has("nan_to_zero") ? attrs.i("nan_to_zero") : 0;
  EP_RETURN_IF_ERROR(attrs.status());
  if (value != 0 && value != 1) return bad(op, "nan_to_zero must be 0 or 1, got " + std::to_string(value));
  *nan_to_zero = value == 1;
  return Status::Ok();
}

// A float32 bias added along the last axis of `x` (Softmax's input, Attention's scores: an attention
// mask), broadcast to it by numpy's rules: checks that it does and lists, per row of x, where the row's
// bias starts (a mask [1, 1, 128, 128] over scores [1, 12, 128, 128] repeats every 128 rows). `what`
// names the bias and x in the error.
inline Status plan_row_bias(const OpInfo& op, const Tensor& x, const Tensor& bias, const std::string& what,
                            std::vector<int64_t>* offsets) {
  EP_RETURN_IF_ERROR(expect_dtype(op, bias, DType::kFloat32, what.c_str()));
  const int skip = x.rank - bias.rank;
  bool broadcasts = x.rank >= 1 && bias.rank >= 1 && skip >= 0 && bias.dims[bias.rank - 1] == x.dims[x.rank - 1];
  for (int d = 0; broadcasts && d < bias.rank; ++d) broadcasts = bias.dims[d] == 1 || bias.dims[d] == x.dims[skip + d];
  if (!broadcasts)
    return bad(op, what + " '" + bias.name + "' " + bias.shape_str() + " does not broadcast along the last axis of " +
                   x.shape_str());
  std::vector<int64_t> strides(x.rank, 0);  // bias elements per step of each of x's dims
  for (int64_t d = bias.rank - 1, s = 1; d >= 0; s *= bias.dims[d], --d) strides[skip + d] = bias.dims[d] == 1 ? 0 : s;
  // No rows when any dim is 0 (the others can be huge: looping over them would be a hang).
  const bool empty = std::any_of(x.dims, x.dims + x.rank, [](int64_t d) { return d == 0; });
  const int64_t rows = empty ? 0 : product(x, 0, x.rank - 1);
  offsets->assign(rows, 0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t d = x.rank - 2, rest = r; d >= 0; rest /= x.dims[d], --d) (*offsets)[r] += rest % x.dims[d] * strides[d];
  return Status::Ok();
}

// float -> integer truncating toward zero, saturating at the type's range, NaN -> 0.
template <class I> I trunc_saturate(double x) {
  if (!(x == x)) return 0;
  if (x <= static_cast<double>(std::numeric_limits<I>::min())) return std::numeric_limits<I>::min();
  if (x >= static_cast<double>(std::numeric_limits<I>::max())) return std::numeric_limits<I>::max();
  return static_cast<I>(x);
}

// even[j] = in[2j], odd[j] = in[2j + 1] for the n values of `in` (even gets the last one when n is odd):
// a stride-2 row split so that later loops read it contiguously. Reading both halves in one loop is
// what lets the compiler vectorise it (a lone stride-2 load does not).
template <class T> void split_even_odd(const T* in, int64_t n, T* even, T* odd) {
  for (int64_t j = 0; j < n / 2; ++j) {
    even[j] = in[2 * j];
    odd[j] = in[2 * j + 1];
  }
  if (n % 2 != 0) even[n / 2] = in[n - 1];
}

// ---- vectorisable float math ----------------------------------------------------------------------
// std::exp is a library call that loops cannot vectorise. This is branch-free (selects only) and
// accurate to ~2 ulp, well inside the tolerance of transcendental ops.
inline float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline uint32_t to_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// exp(x) = 2^n * exp(r) with n = round(x / ln2), |r| <= ln2 / 2, exp(r) by Cephes' expf polynomial.
inline float exp_fast(float x) {
  constexpr float kLo = -86.0f, kHi = 88.72283905f;  // below: < 4e-38, flushed to 0; above: inf
  constexpr float kRound = 12582912.0f;              // 1.5 * 2^23: adding it rounds to an integer
  const float c = std::min(std::max(x, kLo), kHi);   // keeps NaN
  const float shifted = c * 1.44269504088896341f + kRound;
  const float n = shifted - kRound;
  const float r = (c - n * 0.693359375f) - n * -2.12194440e-4f;  // ln2 split in two for precision
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  // 2^(n-1) * 2: n reaches 128 at the top of the range, one more than a float exponent holds
  const float half_scale = from_bits((to_bits(shifted) - to_bits(kRound) + 126u) << 23);
  const float y = p * half_scale * 2.0f;
  return x < kLo ? 0.0f : (x > kHi ? std::numeric_limits<float>::infinity() : y);
}

}  // namespace edgepack
