// Fixed-point requantization shared by the int8 kernels; the numpy twin is
// sdk/edgepack/quant/fixed_point.py and the rules are in docs/quantization.md. Bit-exact by design:
// change both sides together.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "edgepack/tensor.h"

namespace edgepack {

struct Multiplier {
  int32_t m = 0;    // in [2^30, 2^31), or 0
  int32_t shift = 0;
};

constexpr int kAddLeftShift = 20;

// r ~= m * 2^(shift - 31); r must be finite and in [0, 2^30). Returns false otherwise.
inline bool quantize_multiplier(double real, Multiplier* out) {
  *out = Multiplier();
  if (!(real >= 0.0) || !std::isfinite(real)) return false;
  if (real == 0.0) return true;
  int exponent = 0;
  const double mantissa = std::frexp(real, &exponent);
  int64_t q = static_cast<int64_t>(std::floor(mantissa * 2147483648.0 + 0.5));
  if (q == (int64_t(1) << 31)) {
    q /= 2;
    ++exponent;
  }
  if (exponent > 30) return false;
  if (exponent < -31) return true;  // rounds every int32 input to 0
  out->m = static_cast<int32_t>(q);
  out->shift = exponent;
  return true;
}

// round(x * real), single rounding, half up; x * m + rounding stays below 2^63 for |x| < 2^31.
inline int64_t apply_multiplier(int64_t x, Multiplier mult) {
  const int total = 31 - mult.shift;
  return (x * mult.m + (int64_t(1) << (total - 1))) >> total;
}

inline int32_t clamp_i32(int64_t v, int32_t lo, int32_t hi) {
  return static_cast<int32_t>(std::min<int64_t>(std::max<int64_t>(v, lo), hi));
}

// Float -> code: round half to even of x / scale (float32 division), plus the zero point, clamped.
inline int32_t quantize_value(float x, float scale, int32_t zero_point, int32_t lo, int32_t hi) {
  const float scaled = std::nearbyint(x / scale);
  if (!(scaled == scaled)) return clamp_i32(zero_point, lo, hi);  // NaN -> zero point
  const float bounded = std::min(std::max(scaled, -2147483648.0f), 2147483520.0f);
  return clamp_i32(static_cast<int64_t>(bounded) + zero_point, lo, hi);
}

// Per-tensor parameters of an activation tensor (prepare() checks there is exactly one scale).
inline float tensor_scale(const Tensor& t) { return t.quant.scales.empty() ? 1.0f : t.quant.scales[0]; }
inline int32_t tensor_zero_point(const Tensor& t) { return t.quant.zero_points.empty() ? 0 : t.quant.zero_points[0]; }

}  // namespace edgepack
