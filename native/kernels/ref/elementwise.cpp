// Elementwise kernels: unary ops and Cast, binary ops with numpy broadcasting (Add, Sub and Mul also
// on int8 / uint8 codes with the requantization of docs/quantization.md), Where.
//
// prepare() picks one loop function for the op and dtype, so run() is a parallel_for over a plain
// function pointer. Broadcasting is planned once: the output is walked as long contiguous rows in
// which each input is either contiguous or a single repeated element (see Broadcast).
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>

#include "edgepack/kernel.h"
#include "kernels/ref/float_rows.h"
#include "kernels/ref/kernel_util.h"
#include "kernels/ref/kernels.h"
#include "kernels/ref/quant_check.h"
#include "kernels/ref/quant_util.h"

namespace edgepack {
namespace {


// ---- scalar helpers -------------------------------------------------------------------------------
// Signed integer overflow is undefined in C++; numpy wraps, so integer arithmetic goes through the
// unsigned type.
template <class T> using Unsigned = std::make_unsigned_t<T>;

template <class T> T negate(T x) {
  if constexpr (std::is_integral_v<T>) return static_cast<T>(Unsigned<T>(0) - static_cast<Unsigned<T>>(x));
  else return -x;
}

// IEEE binary16 <-> binary32, round to nearest even (what numpy's astype does).
float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t exponent = (h >> 10) & 0x1f, mantissa = h & 0x3ff;
  uint32_t bits;
  if (exponent == 0x1f) {
    bits = sign | 0x7f800000 | (mantissa << 13);  // inf, nan
  } else if (exponent != 0) {
    bits = sign | ((exponent + 112) << 23) | (mantissa << 13);  // rebias 15 -> 127
  } else {
    const float magnitude = std::ldexp(static_cast<float>(mantissa), -24);  // zero or subnormal
    return sign ? -magnitude : magnitude;
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t float_to_half(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000);
  const uint32_t ax = x & 0x7fffffff;
  if (ax >= 0x7f800000) return sign | 0x7c00 | (ax > 0x7f800000 ? 0x200 : 0);  // inf, nan
  if (ax >= 0x477ff000) return sign | 0x7c00;  // >= 65520 rounds past the largest half
  if (ax < 0x38800000) {                        // below 2^-14: a half subnormal, in units of 2^-24
    float magnitude;
    std::memcpy(&magnitude, &ax, 4);
    return sign | static_cast<uint16_t>(std::nearbyint(magnitude * 16777216.0f));
  }
  uint32_t m = ax - 0x38000000;     // rebias 127 -> 15
  m += 0xfff + ((m >> 13) & 1);     // round the 13 dropped bits to nearest even
  return sign | static_cast<uint16_t>(m >> 13);
}

// ---- vectorisable float math ----------------------------------------------------------------------
// std::exp / tanh / erf are library calls that loops cannot vectorise. These are branch-free
// (selects only) and accurate to ~2 ulp (exp) and ~3e-7 relative (tanh, erfc), well inside the
// tolerance of transcendental ops.
// Cephes' odd polynomial near 0 (where 1 - 2 / (e^2x + 1) would cancel), that formula elsewhere.
float tanh_fast(float x) {
  const float z = x * x;
  float p = -5.70498872745e-3f;
  p = p * z + 2.06390887954e-2f;
  p = p * z - 5.37397155531e-2f;
  p = p * z + 1.33314422036e-1f;
  p = p * z - 3.33332819422e-1f;
  const float small = p * z * x + x;
  const float large = 1.0f - 2.0f / (exp_fast(2.0f * x) + 1.0f);  // saturates to -1 / 1 at both ends
  return std::fabs(x) < 0.625f ? small : large;
}

// erfc with relative error < 1.2e-7 everywhere (Numerical Recipes' erfcc, a Chebyshev fit), so
// tails stay accurate where 1 - erf(x) would cancel.
float erfc_fast(float x) {
  const float z = std::fabs(x);
  const float t = 1.0f / (1.0f + 0.5f * z);
  float p = 0.17087277f;
  p = p * t - 0.82215223f;
  p = p * t + 1.48851587f;
  p = p * t - 1.13520398f;
  p = p * t + 0.27886807f;
  p = p * t - 0.18628806f;
  p = p * t + 0.09678418f;
  p = p * t + 0.37409196f;
  p = p * t + 1.00002368f;
  p = p * t - 1.26551223f;
  const float r = t * exp_fast(p - z * z);
  return x >= 0.0f ? r : 2.0f - r;
}

// ---- unary ops ------------------------------------------------------------------------------------
struct UnaryParams {
  float alpha = 0, beta = 0;  // HardSigmoid, LeakyRelu
  float lo = 0, hi = 0;       // Clip
};
using UnaryFn = void (*)(const void* x, void* y, int64_t n, const UnaryParams& p);

template <class T, class Op>
void unary_loop(const void* x, void* y, int64_t n, const UnaryParams& p) {
  const T* in = static_cast<const T*>(x);
  T* out = static_cast<T*>(y);
  const UnaryParams params = p;  // a local copy: the output cannot alias it, so the loop vectorises
  for (int64_t i = 0; i < n; ++i) out[i] = Op::f(in[i], params);
}

// `x < 0 ? 0 : x` rather than `x > 0 ? x : 0` so that NaN passes through, as in np.maximum.
struct Relu { template <class T> static T f(T x, const UnaryParams&) { return x < T(0) ? T(0) : x; } };
struct Neg { template <class T> static T f(T x, const UnaryParams&) { return negate(x); } };
struct Abs { template <class T> static T f(T x, const UnaryParams&) { return x < T(0) ? negate(x) : x; } };
struct Sigmoid { static float f(float x, const UnaryParams&) { return 1.0f / (1.0f + exp_fast(-x)); } };
struct Tanh { static float f(float x, const UnaryParams&) { return tanh_fast(x); } };
struct Erf { static float f(float x, const UnaryParams&) { return 1.0f - erfc_fast(x); } };
struct Exp { static float f(float x, const UnaryParams&) { return exp_fast(x); } };
struct Log { static float f(float x, const UnaryParams&) { return std::log(x); } };
struct Sqrt { static float f(float x, const UnaryParams&) { return std::sqrt(x); } };
struct Reciprocal { static float f(float x, const UnaryParams&) { return 1.0f / x; } };
struct Floor { static float f(float x, const UnaryParams&) { return std::floor(x); } };
struct Ceil { static float f(float x, const UnaryParams&) { return std::ceil(x); } };
struct Not { static uint8_t f(uint8_t x, const UnaryParams&) { return x == 0; } };

// Clamps like np.clip (max wins when min > max; NaN passes through).
float clamp(float x, float lo, float hi) {
  const float y = x < lo ? lo : x;
  return y > hi ? hi : y;
}
struct Clip { static float f(float x, const UnaryParams& p) { return clamp(x, p.lo, p.hi); } };
struct HardSigmoid {
  static float f(float x, const UnaryParams& p) { return clamp(p.alpha * x + p.beta, 0.0f, 1.0f); }
};
struct HardSwish {
  static float f(float x, const UnaryParams&) { return x * clamp(x / 6.0f + 0.5f, 0.0f, 1.0f); }
};
struct LeakyRelu { static float f(float x, const UnaryParams& p) { return x >= 0.0f ? x : x * p.alpha; } };
// erfc keeps the tail accurate where 1 + erf(x) would cancel.
struct GeluErf {
  static float f(float x, const UnaryParams&) { return 0.5f * x * erfc_fast(-x * 0.70710678118654752f); }
};
struct GeluTanh {
  static float f(float x, const UnaryParams&) {
    return 0.5f * x * (1.0f + tanh_fast(0.79788456080286536f * (x + 0.044715f * x * x * x)));
  }
};

#if defined(EDGEPACK_FLOAT_ROWS_AVX512)
void gelu_erf_avx512(const void* x, void* y, int64_t n, const UnaryParams&) {
  f32_gelu_erf__avx512(static_cast<const float*>(x), static_cast<float*>(y), n);
}
#endif

}  // namespace

void gelu_erf_rows(float* y, int64_t rows, int64_t n, int64_t ld) {
#if defined(EDGEPACK_FLOAT_ROWS_AVX512)
  f32_gelu_erf_rows__avx512(y, y, rows, n, ld);
#else
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < n; ++i) y[r * ld + i] = GeluErf::f(y[r * ld + i], UnaryParams{});
#endif
}

namespace {

template <class T> UnaryFn pick_integer_unary(OpCode code) {
  switch (code) {
    case OpCode::kRelu: return unary_loop<T, Relu>;
    case OpCode::kNeg: return unary_loop<T, Neg>;
    case OpCode::kAbs: return unary_loop<T, Abs>;
    default: return nullptr;
  }
}

UnaryFn pick_float_unary(OpCode code, const std::string& gelu_mode) {
  switch (code) {
    case OpCode::kRelu: return unary_loop<float, Relu>;
    case OpCode::kNeg: return unary_loop<float, Neg>;
    case OpCode::kAbs: return unary_loop<float, Abs>;
    case OpCode::kSigmoid: return unary_loop<float, Sigmoid>;
    case OpCode::kTanh: return unary_loop<float, Tanh>;
    case OpCode::kErf: return unary_loop<float, Erf>;
    case OpCode::kExp: return unary_loop<float, Exp>;
    case OpCode::kLog: return unary_loop<float, Log>;
    case OpCode::kSqrt: return unary_loop<float, Sqrt>;
    case OpCode::kReciprocal: return unary_loop<float, Reciprocal>;
    case OpCode::kFloor: return unary_loop<float, Floor>;
    case OpCode::kCeil: return unary_loop<float, Ceil>;
    case OpCode::kClip: return unary_loop<float, Clip>;
    case OpCode::kHardSigmoid: return unary_loop<float, HardSigmoid>;
    case OpCode::kHardSwish: return unary_loop<float, HardSwish>;
    case OpCode::kLeakyRelu: return unary_loop<float, LeakyRelu>;
#if defined(EDGEPACK_FLOAT_ROWS_AVX512)
    case OpCode::kGelu: return gelu_mode == "tanh" ? unary_loop<float, GeluTanh> : gelu_erf_avx512;
#else
    case OpCode::kGelu: return gelu_mode == "tanh" ? unary_loop<float, GeluTanh> : unary_loop<float, GeluErf>;
#endif
    default: return nullptr;
  }
}

UnaryFn pick_unary(OpCode code, DType dtype, const std::string& gelu_mode) {
  switch (dtype) {
    case DType::kFloat32: return pick_float_unary(code, gelu_mode);
    case DType::kInt32: return pick_integer_unary<int32_t>(code);
    case DType::kInt64: return pick_integer_unary<int64_t>(code);
    case DType::kBool: return code == OpCode::kNot ? unary_loop<uint8_t, Not> : nullptr;
    default: return nullptr;
  }
}

// ---- Cast -----------------------------------------------------------------------------------------
// Storage tags for the element types that are not plain C++ arithmetic types.
struct Half { uint16_t bits; };
struct Bool { uint8_t byte; };

// A source element widens to float (floating types) or to an integer; a bool byte counts as true
// when non-zero, whatever the file holds.
float widen(float x) { return x; }
float widen(Half x) { return half_to_float(x.bits); }
int64_t widen(Bool x) { return x.byte != 0; }
template <class I, std::enable_if_t<std::is_integral_v<I>, int> = 0> I widen(I x) { return x; }

template <class To, class V> To narrow(V v) {
  if constexpr (std::is_same_v<To, float>) return static_cast<float>(v);
  else if constexpr (std::is_same_v<To, Half>) return Half{float_to_half(static_cast<float>(v))};
  else if constexpr (std::is_same_v<To, Bool>) return Bool{static_cast<uint8_t>(v != 0)};
  else if constexpr (std::is_floating_point_v<V>) return trunc_saturate<To>(v);
  else return static_cast<To>(v);  // integer -> integer wraps, as numpy does
}

template <class From, class To>
void cast_loop(const void* x, void* y, int64_t n, const UnaryParams&) {
  const From* in = static_cast<const From*>(x);
  To* out = static_cast<To*>(y);
  for (int64_t i = 0; i < n; ++i) out[i] = narrow<To>(widen(in[i]));
}

template <class From> UnaryFn pick_cast_to(DType to) {
  switch (to) {
    case DType::kFloat32: return cast_loop<From, float>;
    case DType::kFloat16: return cast_loop<From, Half>;
    case DType::kInt8: return cast_loop<From, int8_t>;
    case DType::kUInt8: return cast_loop<From, uint8_t>;
    case DType::kInt32: return cast_loop<From, int32_t>;
    case DType::kInt64: return cast_loop<From, int64_t>;
    case DType::kBool: return cast_loop<From, Bool>;
    default: return nullptr;
  }
}

UnaryFn pick_cast(DType from, DType to) {
  switch (from) {
    case DType::kFloat32: return pick_cast_to<float>(to);
    case DType::kFloat16: return pick_cast_to<Half>(to);
    case DType::kInt8: return pick_cast_to<int8_t>(to);
    case DType::kUInt8: return pick_cast_to<uint8_t>(to);
    case DType::kInt32: return pick_cast_to<int32_t>(to);
    case DType::kInt64: return pick_cast_to<int64_t>(to);
    case DType::kBool: return pick_cast_to<Bool>(to);
    default: return nullptr;
  }
}

// Unary ops and Cast: one loop function over the flat tensor.
class UnaryKernel final : public OpKernel {
 public:
  Status prepare(const OpInfo& op, const std::vector<const Tensor*>& ins,
                 const std::vector<const Tensor*>& outs) override {
    EP_RETURN_IF_ERROR(expect_inputs(op, ins, 1, 1));
    EP_RETURN_IF_ERROR(expect_outputs(op, outs, 1));
    const Tensor& x = *ins[0];
    const Tensor& y = *outs[0];
    EP_RETURN_IF_ERROR(expect_same_shape(op, x, y));
    AttrReader attrs(op);
    DType out_dtype = x.dtype;
    std::string gelu_mode;
    switch (op.code) {
      case OpCode::kCast: {
        const int64_t to = attrs.i("to");
        EP_RETURN_IF_ERROR(attrs.status());
        if (to < 0 || to > 255 || !dtype_valid(static_cast<uint8_t>(to))) return bad(op, "'to' is not a dtype code");
        out_dtype = static_cast<DType>(to);
        break;
      }
      case OpCode::kHardSigmoid: params_.alpha = attrs.f("alpha"); params_.beta = attrs.f("beta"); break;
      case OpCode::kLeakyRelu: params_.alpha = attrs.f("alpha"); break;
      case OpCode::kClip: params_.lo = attrs.f("min"); params_.hi = attrs.f("max"); break;
      case OpCode::kGelu:
        gelu_mode = attrs.str("approximate");
        EP_RETURN_IF_ERROR(attrs.status());
        if (gelu_mode != "none" && gelu_mode != "tanh") return bad(op, "approximate must be 'none' or 'tanh'");
        break;
      default: break;
    }
    EP_RETURN_IF_ERROR(attrs.status());
    EP_RETURN_IF_ERROR(expect_dtype(op, y, out_dtype, "output"));
    if (op.code == OpCode::kCast) {
      fn_ = pick_cast(x.dtype, out_dtype);
      if (!fn_)
        return Unsupported("op '" + op.name + "' (Cast): cannot cast " + dtype_name(x.dtype) + " to " +
                           dtype_name(out_dtype));
    } else {
      fn_ = pick_unary(op.code, x.dtype, gelu_mode);
      if (!fn_) return unsupported_dtype(op, x.dtype);
    }
    in_size_ = dtype_size(x.dtype);
    out_size_ = dtype_size(out_dtype);
    return Status::Ok();
  }

  Status run(const std::vector<const Tensor*>& ins, const std::vector<Tensor*>& outs, RunContext& ctx) const override {
    const uint8_t* x = ins[0]->as<const uint8_t>();
    uint8_t* y = outs[0]->as<uint8_t>();
    ctx.pool->parallel_for(outs[0]->numel, [&](int64_t begin, int64_t end) {
      fn_(x + begin * in_size_, y + begin * out_size_, end - begin, params_);
    }, kGrain);
    return Status::Ok();
  }

 private:
  UnaryFn fn_ = nullptr;
  UnaryParams params_;
  size_t in_size_ = 0, out_size_ = 0;
};

// ---- broadcasting ---------------------------------------------------------------------------------
// The output of a broadcast op walked as rows: size-1 dims are dropped and adjacent dims merged
// wherever every input is laid out alike across them, so same-shape operands become one row, a
// scalar operand a stride of 0, [C] against [N, C] rows of C, and [C, 1, 1] against [N, C, H, W]
// rows of H*W with a constant per row.
struct Broadcast {
  static constexpr int kMaxInputs = 3;
  int rank = 0;
  int64_t dims[kMaxRank] = {};
  int64_t strides[kMaxInputs][kMaxRank] = {};  // element strides, 0 along broadcast dims

  // Calls fn(out_offset, in_offsets, length) for each run of contiguous output elements in
  // [begin, end) (in element units; an input's elements in the run are `strides[k][rank - 1]` apart).
  template <class F> void for_each_row(int64_t begin, int64_t end, const F& fn) const {
    const int last = rank - 1;
    int64_t index[kMaxRank];
    int64_t offsets[kMaxInputs] = {};
    int64_t rest = begin;
    for (int d = last; d >= 0; --d) {
      index[d] = rest % dims[d];
      rest /= dims[d];
      for (int k = 0; k < kMaxInputs; ++k) offsets[k] += index[d] * strides[k][d];
    }
    for (int64_t pos = begin; pos < end;) {
      const int64_t length = std::min(dims[last] - index[last], end - pos);
      fn(pos, offsets, length);
      pos += length;
      index[last] += length;
      for (int k = 0; k < kMaxInputs; ++k) offsets[k] += length * strides[k][last];
      for (int d = last; d > 0 && index[d] == dims[d]; --d) {  // carry
        index[d] = 0;
        ++index[d - 1];
        for (int k = 0; k < kMaxInputs; ++k) offsets[k] += strides[k][d - 1] - dims[d] * strides[k][d];
      }
    }
  }
};

// Plans broadcasting `inputs` to the output tensor's shape, which must be their numpy broadcast.
Status plan_broadcast(const OpInfo& op, const std::vector<const Tensor*>& inputs, const Tensor& out,
                      Broadcast* plan) {
  int rank = 0;
  for (const Tensor* t : inputs) rank = std::max(rank, t->rank);
  std::vector<int64_t> shape(rank, 1);
  for (const Tensor* t : inputs) {
    for (int i = 0; i < t->rank; ++i) {
      int64_t& d = shape[rank - t->rank + i];
      const int64_t x = t->dims[i];
      if (x == 1 || x == d) continue;
      if (d != 1) return bad(op, "input shapes do not broadcast ('" + t->name + "' is " + t->shape_str() + ")");
      d = x;
    }
  }
  EP_RETURN_IF_ERROR(expect_shape(op, out, shape, "output"));

  *plan = Broadcast();
  int64_t contiguous[Broadcast::kMaxInputs] = {1, 1, 1};  // each input's stride for the current dim
  int64_t full[Broadcast::kMaxInputs][kMaxRank] = {};
  for (int i = rank - 1; i >= 0; --i) {
    for (size_t k = 0; k < inputs.size(); ++k) {
      const Tensor& t = *inputs[k];
      const int j = i - (rank - t.rank);
      const bool present = j >= 0 && t.dims[j] != 1;
      full[k][i] = present ? contiguous[k] : 0;
      if (present) contiguous[k] *= t.dims[j];
    }
  }
  for (int i = 0; i < rank; ++i) {
    if (shape[i] == 1) continue;
    const int last = plan->rank - 1;
    bool merge = last >= 0;
    for (int k = 0; k < Broadcast::kMaxInputs && merge; ++k)
      merge = plan->strides[k][last] == full[k][i] * shape[i];
    if (merge) {
      plan->dims[last] *= shape[i];
      for (int k = 0; k < Broadcast::kMaxInputs; ++k) plan->strides[k][last] = full[k][i];
    } else {
      plan->dims[plan->rank] = shape[i];
      for (int k = 0; k < Broadcast::kMaxInputs; ++k) plan->strides[k][plan->rank] = full[k][i];
      ++plan->rank;
    }
  }
  if (plan->rank == 0) {  // a single element: every input holds exactly one
    plan->rank = 1;
    plan->dims[0] = 1;
    for (auto& s : plan->strides) s[0] = 1;
  }
  return Status::Ok();
}

// ---- binary ops -----------------------------------------------------------------------------------
// The integer parameters of int8 / uint8 Add, Sub and Mul, fixed at prepare().
struct QuantArithmetic {
  int32_t a_zero = 0, b_zero = 0, y_zero = 0, lo = 0, hi = 0;
  Multiplier a, b;  // Add / Sub: M(s_a / t), M(s_b / t) with t = 2 max(s_a, s_b)
  Multiplier out;   // Add / Sub: M(t / (2^L s_y)); Mul: M(s_a s_b / s_y)
};

// A row of a binary op; a and b advance by sa / sb (0 or 1, never both 0). Returns false when an
// integer division by zero was found (and nothing was written). `q` is read by the int8 ops only.
using BinaryFn = bool (*)(const void* a, int64_t sa, const void* b, int64_t sb, void* y, int64_t n,
                          const QuantArithmetic& q);

template <class T, class Out, class Op>
bool binary_row(const void* pa, int64_t sa, const void* pb, int64_t sb, void* py, int64_t n,
                const QuantArithmetic&) {
  const T* a = static_cast<const T*>(pa);
  const T* b = static_cast<const T*>(pb);
  Out* y = static_cast<Out*>(py);
  if constexpr (Op::template kChecksZero<T>) {
    if (std::find(b, b + (sb ? n : 1), T(0)) != b + (sb ? n : 1)) return false;
  }
  // Three loops with constant strides so that each one vectorises.
  if (sa && sb) {
    for (int64_t i = 0; i < n; ++i) y[i] = Op::f(a[i], b[i]);
  } else if (sb) {
    const T s = a[0];
    for (int64_t i = 0; i < n; ++i) y[i] = Op::f(s, b[i]);
  } else {
    const T s = b[0];
    for (int64_t i = 0; i < n; ++i) y[i] = Op::f(a[i], s);
  }
  return true;
}

struct Arithmetic { template <class T> static constexpr bool kChecksZero = false; };
struct AddOp : Arithmetic {
  template <class T> static T f(T a, T b) {
    if constexpr (std::is_integral_v<T>) return static_cast<T>(Unsigned<T>(a) + Unsigned<T>(b));
    else return a + b;
  }
};
struct SubOp : Arithmetic {
  template <class T> static T f(T a, T b) {
    if constexpr (std::is_integral_v<T>) return static_cast<T>(Unsigned<T>(a) - Unsigned<T>(b));
    else return a - b;
  }
};
struct MulOp : Arithmetic {
  template <class T> static T f(T a, T b) {
    if constexpr (std::is_integral_v<T>) return static_cast<T>(Unsigned<T>(a) * Unsigned<T>(b));
    else return a * b;
  }
};
// Integer division truncates toward zero (C++ and ONNX agree); MIN / -1 would trap, so -1 negates.
struct DivOp {
  template <class T> static constexpr bool kChecksZero = std::is_integral_v<T>;
  template <class T> static T f(T a, T b) {
    if constexpr (std::is_integral_v<T>) return b == -1 ? negate(a) : static_cast<T>(a / b);
    else return a / b;
  }
};
struct PowOp : Arithmetic {
  template <class T> static T f(T a, T b) {
    if constexpr (std::is_integral_v<T>) {
      return trunc_saturate<T>(std::pow(static_cast<double>(a), static_cast<double>(b)));
    } else {
      return b == 2.0f ? a * a : std::pow(a, b);  // x**2 is common (decomposed norms) and pow is slow
    }
  }
};
// Max / Min return NaN when either side is NaN, like np.maximum / np.minimum.
template <class T> bool is_nan(T x) {
  if constexpr (std::is_floating_point_v<T>) return std::isnan(x);
  else return false;
}
struct MaxOp : Arithmetic { template <class T> static T f(T a, T b) { return a > b || is_nan(a) ? a : b; } };
struct MinOp : Arithmetic { template <class T> static T f(T a, T b) { return a < b || is_nan(a) ? a : b; } };
struct EqualOp : Arithmetic { template <class T> static uint8_t f(T a, T b) { return a == b; } };
struct LessOp : Arithmetic { template <class T> static uint8_t f(T a, T b) { return a < b; } };
struct GreaterOp : Arithmetic { template <class T> static uint8_t f(T a, T b) { return a > b; } };
struct AndOp : Arithmetic { template <class T> static uint8_t f(T a, T b) { return a != 0 && b != 0; } };
struct OrOp : Arithmetic { template <class T> static uint8_t f(T a, T b) { return a != 0 || b != 0; } };

// int8 / uint8 codes (TFLite's reference arithmetic): Add / Sub rescale each operand to a common
// scale with L bits of headroom, a' = apply((a - za) 2^L, M_a), and y = clamp(zy + apply(a' ± b', M_out));
// Mul is y = clamp(zy + apply((a - za)(b - zb), M)). Plain arithmetic rather than per-code tables, so
// the loops vectorise; every intermediate fits int64 (|a - za| 2^L M_a < 2^59).
template <bool kSubtract> struct QuantAddOp {
  template <class T> static T f(T a, T b, const QuantArithmetic& q) {
    constexpr int64_t kHeadroom = int64_t{1} << kAddLeftShift;
    const int64_t a_term = apply_multiplier((static_cast<int32_t>(a) - q.a_zero) * kHeadroom, q.a);
    const int64_t b_term = apply_multiplier((static_cast<int32_t>(b) - q.b_zero) * kHeadroom, q.b);
    const int64_t sum = kSubtract ? a_term - b_term : a_term + b_term;
    return static_cast<T>(clamp_i32(q.y_zero + apply_multiplier(sum, q.out), q.lo, q.hi));
  }
};
struct QuantMulOp {
  template <class T> static T f(T a, T b, const QuantArithmetic& q) {
    const int32_t product = (static_cast<int32_t>(a) - q.a_zero) * (static_cast<int32_t>(b) - q.b_zero);
    return static_cast<T>(clamp_i32(q.y_zero + apply_multiplier(product, q.out), q.lo, q.hi));
  }
};

template <class T, class Op>
bool quant_row(const void* pa, int64_t sa, const void* pb, int64_t sb, void* py, int64_t n,
               const QuantArithmetic& p) {
  const T* a = static_cast<const T*>(pa);
  const T* b = static_cast<const T*>(pb);
  T* y = static_cast<T*>(py);
  const QuantArithmetic params = p;  // a local copy: the output cannot alias it, so the loops vectorise
  if (sa && sb) {
    for (int64_t i = 0; i < n; ++i) y[i] = Op::f(a[i], b[i], params);
  } else if (sb) {
    const T s = a[0];
    for (int64_t i = 0; i < n; ++i) y[i] = Op::f(s, b[i], params);
  } else {
    const T s = b[0];
    for (int64_t i = 0; i < n; ++i) y[i] = Op::f(a[i], s, params);
  }
  return true;
}

template <class T> BinaryFn pick_quant_binary(OpCode code) {
  switch (code) {
    case OpCode::kAdd: return quant_row<T, QuantAddOp<false>>;
    case OpCode::kSub: return quant_row<T, QuantAddOp<true>>;
    case OpCode::kMul: return quant_row<T, QuantMulOp>;
    default: return nullptr;
  }
}

// Fills `q` for int8 / uint8 a, b -> y (docs/quantization.md, TFLite's reference arithmetic), with the
// multipliers computed in double from the float32 scales exactly as fixed_point.py does.
Status plan_quant_arithmetic(const OpInfo& op, const Tensor& a, const Tensor& b, const Tensor& y,
                             QuantArithmetic* q) {
  EP_RETURN_IF_ERROR(expect_per_tensor(op, a, "input 0"));
  EP_RETURN_IF_ERROR(expect_per_tensor(op, b, "input 1"));
  EP_RETURN_IF_ERROR(expect_per_tensor(op, y, "output"));
  code_range(a.dtype, &q->lo, &q->hi);
  const double sa = tensor_scale(a), sb = tensor_scale(b), sy = tensor_scale(y);
  q->a_zero = tensor_zero_point(a);
  q->b_zero = tensor_zero_point(b);
  q->y_zero = tensor_zero_point(y);
  if (op.code == OpCode::kMul) return make_multiplier(op, sa * sb / sy, "s_a * s_b / s_y", &q->out);
  const double twice_max = 2 * std::max(sa, sb);
  EP_RETURN_IF_ERROR(make_multiplier(op, sa / twice_max, "s_a / (2 max(s_a, s_b))", &q->a));
  EP_RETURN_IF_ERROR(make_multiplier(op, sb / twice_max, "s_b / (2 max(s_a, s_b))", &q->b));
  return make_multiplier(op, twice_max / ((1 << kAddLeftShift) * sy), "2 max(s_a, s_b) / (2^20 s_y)", &q->out);
}

bool is_comparison(OpCode code) {
  return code == OpCode::kEqual || code == OpCode::kLess || code == OpCode::kGreater ||
         code == OpCode::kAnd || code == OpCode::kOr;
}

template <class T> BinaryFn pick_numeric_binary(OpCode code) {
  switch (code) {
    case OpCode::kAdd: return binary_row<T, T, AddOp>;
    case OpCode::kSub: return binary_row<T, T, SubOp>;
    case OpCode::kMul: return binary_row<T, T, MulOp>;
    case OpCode::kDiv: return binary_row<T, T, DivOp>;
    case OpCode::kPow: return binary_row<T, T, PowOp>;
    case OpCode::kMax: return binary_row<T, T, MaxOp>;
    case OpCode::kMin: return binary_row<T, T, MinOp>;
    case OpCode::kEqual: return binary_row<T, uint8_t, EqualOp>;
    case OpCode::kLess: return binary_row<T, uint8_t, LessOp>;
    case OpCode::kGreater: return binary_row<T, uint8_t, GreaterOp>;
    default: return nullptr;
  }
}

BinaryFn pick_binary(OpCode code, DType dtype) {
  switch (dtype) {
    case DType::kFloat32: return pick_numeric_binary<float>(code);
    case DType::kInt32: return pick_numeric_binary<int32_t>(code);
    case DType::kInt64: return pick_numeric_binary<int64_t>(code);
    case DType::kInt8: return pick_quant_binary<int8_t>(code);
    case DType::kUInt8: return pick_quant_binary<uint8_t>(code);
    case DType::kBool:
      if (code == OpCode::kAnd) return binary_row<uint8_t, uint8_t, AndOp>;
      if (code == OpCode::kOr) return binary_row<uint8_t, uint8_t, OrOp>;
      return nullptr;
    default: return nullptr;
  }
}

class BinaryKernel final : public OpKernel {
 public:
  Status prepare(const OpInfo& op, const std::vector<const Tensor*>& ins,
                 const std::vector<const Tensor*>& outs) override {
    EP_RETURN_IF_ERROR(expect_inputs(op, ins, 2, 2));
    EP_RETURN_IF_ERROR(expect_outputs(op, outs, 1));
    const Tensor &a = *ins[0], &b = *ins[1], &y = *outs[0];
    EP_RETURN_IF_ERROR(expect_dtype(op, b, a.dtype, "input 1"));
    EP_RETURN_IF_ERROR(expect_dtype(op, y, is_comparison(op.code) ? DType::kBool : a.dtype, "output"));
    fn_ = pick_binary(op.code, a.dtype);
    if (!fn_) return unsupported_dtype(op, a.dtype);
    if (a.dtype == DType::kInt8 || a.dtype == DType::kUInt8)
      EP_RETURN_IF_ERROR(plan_quant_arithmetic(op, a, b, y, &quant_));
    EP_RETURN_IF_ERROR(plan_broadcast(op, {&a, &b}, y, &plan_));
    in_size_ = dtype_size(a.dtype);
    out_size_ = dtype_size(y.dtype);
    zero_division_ = "op '" + op.name + "' (" + op_name(op.code) + "): integer division by zero";
    return Status::Ok();
  }

  Status run(const std::vector<const Tensor*>& ins, const std::vector<Tensor*>& outs, RunContext& ctx) const override {
    const uint8_t* a = ins[0]->as<const uint8_t>();
    const uint8_t* b = ins[1]->as<const uint8_t>();
    uint8_t* y = outs[0]->as<uint8_t>();
    const int last = plan_.rank - 1;
    const int64_t sa = plan_.strides[0][last], sb = plan_.strides[1][last];
    std::atomic<bool> ok{true};
    ctx.pool->parallel_for(outs[0]->numel, [&](int64_t begin, int64_t end) {
      plan_.for_each_row(begin, end, [&](int64_t out, const int64_t* in, int64_t n) {
        if (!fn_(a + in[0] * in_size_, sa, b + in[1] * in_size_, sb, y + out * out_size_, n, quant_))
          ok.store(false, std::memory_order_relaxed);
      });
    }, kGrain);
    return ok.load() ? Status::Ok() : RuntimeError(zero_division_);
  }

 private:
  BinaryFn fn_ = nullptr;
  Broadcast plan_;
  QuantArithmetic quant_;
  size_t in_size_ = 0, out_size_ = 0;
  std::string zero_division_;  // built in prepare() so that run() does not allocate until it fails
};

// ---- Where ----------------------------------------------------------------------------------------
// Where only moves elements, so it works on any dtype by element size.
using WhereFn = void (*)(const uint8_t* c, int64_t sc, const void* a, int64_t sa, const void* b, int64_t sb,
                         void* y, int64_t n);

// T is an unsigned integer of the element's size; the select is a bit mask rather than a branch,
// which a random condition would mispredict half the time.
template <class T> T select(uint8_t c, T a, T b) {
  const T mask = static_cast<T>(T(0) - T(c != 0));
  return static_cast<T>((a & mask) | (b & ~mask));
}

// One loop per pattern of operands that advance (stride 1) or stay (stride 0, a broadcast scalar), so
// that each vectorises: a run-time stride multiplies every index and keeps the loop scalar, which made
// attention's NaN guard (Where(isnan(p), 0, p) over [1, 12, 128, 128]) ten times slower.
template <class T, bool kC, bool kA, bool kB>
void where_loop(const uint8_t* c, const T* a, const T* b, T* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = select(c[kC ? i : 0], a[kA ? i : 0], b[kB ? i : 0]);
}

template <class T>
void where_row(const uint8_t* c, int64_t sc, const void* pa, int64_t sa, const void* pb, int64_t sb, void* py,
               int64_t n) {
  const T* a = static_cast<const T*>(pa);
  const T* b = static_cast<const T*>(pb);
  T* y = static_cast<T*>(py);
  // The last dimension of a broadcast plan has strides 0 or 1 (Broadcast merges only contiguous runs).
  switch ((sc != 0) << 2 | (sa != 0) << 1 | (sb != 0)) {
    case 0b111: return where_loop<T, true, true, true>(c, a, b, y, n);
    case 0b110: return where_loop<T, true, true, false>(c, a, b, y, n);
    case 0b101: return where_loop<T, true, false, true>(c, a, b, y, n);
    case 0b100: return where_loop<T, true, false, false>(c, a, b, y, n);
    case 0b011: return where_loop<T, false, true, true>(c, a, b, y, n);
    case 0b010: return where_loop<T, false, true, false>(c, a, b, y, n);
    case 0b001: return where_loop<T, false, false, true>(c, a, b, y, n);
    default: return where_loop<T, false, false, false>(c, a, b, y, n);
  }
}

WhereFn pick_where(size_t element_size) {
  switch (element_size) {
    case 1: return where_row<uint8_t>;
    case 2: return where_row<uint16_t>;
    case 4: return where_row<uint32_t>;
    case 8: return where_row<uint64_t>;
    default: return nullptr;
  }
}

class WhereKernel final : public OpKernel {
 public:
  Status prepare(const OpInfo& op, const std::vector<const Tensor*>& ins,
                 const std::vector<const Tensor*>& outs) override {
    EP_RETURN_IF_ERROR(expect_inputs(op, ins, 3, 3));
    EP_RETURN_IF_ERROR(expect_outputs(op, outs, 1));
    const Tensor &cond = *ins[0], &a = *ins[1], &b = *ins[2], &y = *outs[0];
    EP_RETURN_IF_ERROR(expect_dtype(op, cond, DType::kBool, "condition"));
    EP_RETURN_IF_ERROR(expect_dtype(op, b, a.dtype, "input 2"));
    EP_RETURN_IF_ERROR(expect_dtype(op, y, a.dtype, "output"));
    element_size_ = dtype_size(a.dtype);
    fn_ = pick_where(element_size_);
    if (!fn_) return unsupported_dtype(op, a.dtype);
    return plan_broadcast(op, {&cond, &a, &b}, y, &plan_);
  }

  Status run(const std::vector<const Tensor*>& ins, const std::vector<Tensor*>& outs, RunContext& ctx) const override {
    const uint8_t* c = ins[0]->as<const uint8_t>();
    const uint8_t* a = ins[1]->as<const uint8_t>();
    const uint8_t* b = ins[2]->as<const uint8_t>();
    uint8_t* y = outs[0]->as<uint8_t>();
    const int last = plan_.rank - 1;
    const size_t es = element_size_;
    ctx.pool->parallel_for(outs[0]->numel, [&](int64_t begin, int64_t end) {
      plan_.for_each_row(begin, end, [&](int64_t out, const int64_t* in, int64_t n) {
        fn_(c + in[0], plan_.strides[0][last], a + in[1] * es, plan_.strides[1][last], b + in[2] * es,
            plan_.strides[2][last], y + out * es, n);
      });
    }, kGrain);
    return Status::Ok();
  }

 private:
  WhereFn fn_ = nullptr;
  Broadcast plan_;
  size_t element_size_ = 0;
};

}  // namespace

std::unique_ptr<OpKernel> make_elementwise_kernel(OpCode code) {
  switch (code) {
    case OpCode::kRelu: case OpCode::kSigmoid: case OpCode::kTanh: case OpCode::kErf: case OpCode::kExp:
    case OpCode::kLog: case OpCode::kSqrt: case OpCode::kNeg: case OpCode::kAbs: case OpCode::kReciprocal:
    case OpCode::kHardSigmoid: case OpCode::kHardSwish: case OpCode::kLeakyRelu: case OpCode::kClip:
    case OpCode::kGelu: case OpCode::kNot: case OpCode::kCast: case OpCode::kFloor: case OpCode::kCeil:
      return std::make_unique<UnaryKernel>();
    case OpCode::kAdd: case OpCode::kSub: case OpCode::kMul: case OpCode::kDiv: case OpCode::kPow:
    case OpCode::kMax: case OpCode::kMin: case OpCode::kEqual: case OpCode::kLess: case OpCode::kGreater:
    case OpCode::kAnd: case OpCode::kOr:
      return std::make_unique<BinaryKernel>();
    case OpCode::kWhere:
      return std::make_unique<WhereKernel>();
    default:
      return nullptr;
  }
}

}  // namespace edgepack
