// The float row kernels of float_rows.h for AVX-512: 16 lanes per instruction, no per-element
// division, Gelu's Phi by per-lane table lookups, and the selects of a branch-free exp replaced by
// vscalefps, which scales by 2^n with the float's own underflow to 0.
#include "kernels/ref/float_rows.h"

#if defined(EDGEPACK_FLOAT_ROWS_AVX512)

#include "kernels/x86/avx512.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace edgepack {
namespace {

constexpr int kLanes = 16;

using avx512::first_lanes;

// exp(x) for x <= 0 (or NaN): Softmax's exp(x - max). 2^n exp(r) with n = round(x / ln2) by the
// 1.5 * 2^23 rounding trick, |r| <= ln2 / 2 (ln2 split in two for precision) and exp(r) = 1 + r q(r),
// q of degree 5 fitted in relative error (1.7e-8; with float rounding <= 1.03 ulp over [-87.3, 0]).
// vscalefps applies 2^n with the float's underflow (to 0 through subnormals); x is only bounded below
// so that r stays finite at -inf, and vmaxps returns its second operand on NaN, so NaN passes through.
inline __m512 exp16_nonpositive(__m512 x) {
  x = _mm512_max_ps(_mm512_set1_ps(-104.0f), x);  // exp(-104) rounds to 0
  const __m512 round = _mm512_set1_ps(12582912.0f);
  const __m512 n = _mm512_sub_ps(_mm512_fmadd_ps(x, _mm512_set1_ps(1.44269504088896341f), round), round);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(0.00138593011f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.00837477017f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.0416677259f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.166664213f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.49999994f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

// The sum of two vectors of double lanes; a float vector's low and high halves widened to double.
inline double sum_lanes(__m512d a, __m512d b) { return _mm512_reduce_add_pd(_mm512_add_pd(a, b)); }
inline __m512d low_to_double(__m512 v) { return _mm512_cvtps_pd(_mm512_castps512_ps256(v)); }
inline __m512d high_to_double(__m512 v) { return _mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1)); }

// ---- Gelu -----------------------------------------------------------------------------------------
// Phi(x) = (1 + erf(x / sqrt 2)) / 2 as a degree-6 polynomial on each of 32 intervals of width 1/2,
// centred on k / 2 for k in [-16, 16): vpermt2ps looks up each coefficient of 16 lanes' intervals at
// once, so Gelu costs 7 lookups, 6 multiply-adds and a multiply where erfc through exp costs ~35
// operations and a division. Fitted in double by least squares in relative error (scipy.special.ndtr at 400 Chebyshev
// points per interval): |error| < 1.1e-7 * max(1, |x|) everywhere, relative < 2e-7 where
// |Gelu| > 1e-3, < 1e-4 down to |Gelu| = 1e-10. Below x = -7.75 Phi is 0 (Gelu there is under 4e-14
// and the reference's 1 + erf has no correct digit), which also makes Gelu(-inf) = -inf * 0 NaN, as in
// the reference. Row k & 31 holds interval k (the index is the low 5 bits of k); row 16 (k = -16) is 0.
alignas(64) constexpr float kPhi[7][32] = {
    {0.5f, 0.691462457f, 0.841344774f, 0.93319279f, 0.977249861f, 0.993790329f,
     0.998650074f, 0.999767363f, 0.99996835f, 0.999996603f, 0.999999702f, 1.0f,
     1.0f, 1.0f, 1.0f, 1.0f, 0.0f, 3.19143109e-14f,
     1.27994468e-12f, 4.01623838e-11f, 9.86618787e-10f, 1.89898532e-08f, 2.8665346e-07f, 3.39768121e-06f,
     3.16712612e-05f, 0.0002326291f, 0.00134989794f, 0.00620966498f, 0.0227501318f, 0.066807203f,
     0.158655256f, 0.308537543f},
    {0.199471131f, 0.176032662f, 0.120985374f, 0.0647588074f, 0.0269954819f, 0.00876414683f,
     0.00221592304f, 0.000436341623f, 6.69154542e-05f, 7.99200097e-06f, 7.43389307e-07f, 5.38532916e-08f,
     3.03842373e-09f, 1.33515449e-10f, 4.5695895e-12f, 1.21482495e-13f, 0.0f, 1.21720003e-13f,
     4.56763837e-12f, 1.33485972e-10f, 3.03808845e-09f, 5.38505631e-08f, 7.43373846e-07f, 7.99194368e-06f,
     6.69153305e-05f, 0.000436341536f, 0.00221592328f, 0.00876414776f, 0.0269954819f, 0.0647588074f,
     0.120985374f, 0.176032662f},
    {1.61201577e-08f, -0.0220040753f, -0.0302463416f, -0.0242845528f, -0.0134977428f, -0.00547759328f,
     -0.00166194246f, -0.000381798513f, -6.69151705e-05f, -8.99090082e-06f, -9.29213968e-07f, -7.40447419e-08f,
     -4.55723947e-09f, -2.16930293e-10f, -7.99366389e-12f, -2.2996584e-13f, 0.0f, 2.27671668e-13f,
     7.98023193e-12f, 2.16684726e-10f, 4.55419569e-09f, 7.40176063e-08f, 9.29044973e-07f, 8.99020233e-06f,
     6.69134824e-05f, 0.000381797232f, 0.001661947f, 0.00547760585f, 0.0134977484f, 0.0242845342f,
     0.0302463192f, 0.0220040847f},
    {-0.00831079669f, -0.00550088147f, -3.25011541e-07f, 0.00337261637f, 0.00337448413f, 0.00191726943f,
     0.000738677802f, 0.000204526121f, 4.18110612e-05f, 6.40598228e-06f, 7.42416944e-07f, 6.54850183e-08f,
     4.4149715e-09f, 2.2821979e-10f, 9.06473594e-12f, 2.83915252e-13f, 0.0f, 2.78863033e-13f,
     9.09952409e-12f, 2.28734587e-10f, 4.42075221e-09f, 6.55314807e-08f, 7.42676605e-07f, 6.40693861e-06f,
     4.18131094e-05f, 0.000204527489f, 0.000738673785f, 0.00191726023f, 0.00337448111f, 0.00337262521f,
     -3.17649096e-07f, -0.00550088286f},
    {-1.71684178e-07f, 0.00126051402f, 0.00126026769f, 0.000379513251f, -0.000281169021f, -0.000370887661f,
     -0.000207756195f, -7.35788781e-05f, -1.81216692e-05f, -3.23015456e-06f, -4.2559796e-07f, -4.19816715e-08f,
     -3.12634141e-09f, -1.76790152e-10f, -7.63135562e-12f, -2.29544655e-13f, 0.0f, 2.59492026e-13f,
     7.80295793e-12f, 1.79768755e-10f, 3.16257087e-09f, 4.22988577e-08f, 4.27541863e-07f, 3.23807444e-06f,
     1.8140594e-05f, 7.35931026e-05f, 0.000207706995f, 0.000370754336f, 0.000281117274f, -0.000379304838f,
     -0.00126001565f, -0.00126061123f},
    {0.00030764984f, 0.000142142933f, -0.000123421909f, -0.000181497409f, -7.06937572e-05f, 1.99324677e-05f,
     3.43333595e-05f, 1.8153014e-05f, 5.76788852e-06f, 1.24684436e-06f, 1.92575044e-07f, 2.17960174e-08f,
     1.83537818e-09f, 1.16134886e-10f, 5.56561047e-12f, 1.76787404e-13f, 0.0f, 1.97035693e-13f,
     5.44789431e-12f, 1.1441513e-10f, 1.81619986e-09f, 2.16428049e-08f, 1.91723359e-07f, 1.24372275e-06f,
     5.76124194e-06f, 1.81485793e-05f, 3.43463107e-05f, 1.99622009e-05f, -7.0684262e-05f, -0.000181526018f,
     -0.000123445454f, 0.000142147386f},
    {4.57251502e-07f, -4.72307001e-05f, -3.13791134e-05f, 9.89958517e-06f, 2.08687179e-05f, 8.07791184e-06f,
     -1.64626726e-06f, -2.80152631e-06f, -1.29705552e-06f, -3.53373679e-07f, -6.47351044e-08f, -8.40238989e-09f,
     -7.9394824e-10f, -5.5509479e-11f, -2.88274244e-12f, -1.89238111e-13f, 0.0f, 9.08864726e-14f,
     2.38234671e-12f, 4.69646613e-11f, 6.91103341e-10f, 7.51087814e-09f, 5.93208291e-08f, 3.31495045e-07f,
     1.24515975e-06f, 2.76275364e-06f, 1.77951108e-06f, -7.71860687e-06f, -2.07297944e-05f, -1.04571427e-05f,
     3.07066803e-05f, 4.74897679e-05f},
};

inline __m512 gelu16(__m512 x, const __m512 (&lo)[7], const __m512 (&hi)[7]) {
  const __m512 two = _mm512_set1_ps(2.0f), round = _mm512_set1_ps(12582912.0f);  // 1.5 * 2^23
  const __m512 c = _mm512_min_ps(_mm512_set1_ps(7.74f), _mm512_max_ps(_mm512_set1_ps(-8.25f), x));
  const __m512 m = _mm512_fmadd_ps(c, two, round);  // round(2c) in the low mantissa bits
  const __m512i k = _mm512_castps_si512(m);
  const __m512 u = _mm512_fmsub_ps(c, two, _mm512_sub_ps(m, round));  // 2c - round(2c), exact
  __m512 p = _mm512_permutex2var_ps(lo[6], k, hi[6]);
  for (int d = 5; d >= 0; --d) p = _mm512_fmadd_ps(p, u, _mm512_permutex2var_ps(lo[d], k, hi[d]));
  return _mm512_mul_ps(x, p);
}

}  // namespace

void f32_gelu_erf__avx512(const float* x, float* y, int64_t n) { f32_gelu_erf_rows__avx512(x, y, 1, n, 0); }

void f32_gelu_erf_rows__avx512(const float* x, float* y, int64_t rows, int64_t n, int64_t ld) {
  __m512 lo[7], hi[7];  // the table, loaded once for all the rows (a tile's rows are short)
  for (int d = 0; d < 7; ++d) {
    lo[d] = _mm512_load_ps(kPhi[d]);
    hi[d] = _mm512_load_ps(kPhi[d] + kLanes);
  }
  const int64_t full = n - n % kLanes;
  const __mmask16 tail = first_lanes(n - full);
  for (int64_t r = 0; r < rows; ++r, x += ld, y += ld) {
    for (int64_t i = 0; i < full; i += kLanes) _mm512_storeu_ps(y + i, gelu16(_mm512_loadu_ps(x + i), lo, hi));
    if (tail) _mm512_mask_storeu_ps(y + full, tail, gelu16(_mm512_maskz_loadu_ps(tail, x + full), lo, hi));
  }
}

namespace {

// ---- Softmax / LogSoftmax -------------------------------------------------------------------------
// Two passes over x and one over y: the max; exp(x - max) stored and summed; the scale (Softmax) or
// (x - max) - log(sum) (LogSoftmax). A row stays in L1 across them. A fused bias (an attention mask)
// is added as x is read, in the first two passes: the sum x + bias is the float the separate Add wrote,
// so the result is bit for bit that of Add then Softmax.
constexpr int64_t kShortRow = 256;  // rows up to this long are summed in float lanes
constexpr int kRowGroup = 4;        // short rows processed together

// The max / the sum of v's 16 lanes, in every lane.
inline __m512 all_lanes_max(__m512 v) {
  v = _mm512_max_ps(v, _mm512_shuffle_f32x4(v, v, 0x4E));
  v = _mm512_max_ps(v, _mm512_shuffle_f32x4(v, v, 0xB1));
  v = _mm512_max_ps(v, _mm512_permute_ps(v, 0x4E));
  return _mm512_max_ps(v, _mm512_permute_ps(v, 0xB1));
}
inline __m512 all_lanes_sum(__m512 v) {
  v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, 0x4E));
  v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, 0xB1));
  v = _mm512_add_ps(v, _mm512_permute_ps(v, 0x4E));
  return _mm512_add_ps(v, _mm512_permute_ps(v, 0xB1));
}

// x[i..i+16) (+ b[i..i+16) with a bias); the tail form reads the lanes of `tail` and keeps `fill` in
// the others.
template <bool kBias> inline __m512 load_row(const float* x, const float* b, int64_t i) {
  const __m512 v = _mm512_loadu_ps(x + i);
  return kBias ? _mm512_add_ps(v, _mm512_loadu_ps(b + i)) : v;
}
template <bool kBias> inline __m512 load_row_tail(__m512 fill, __mmask16 tail, const float* x, const float* b, int64_t i) {
  const __m512 v = _mm512_mask_loadu_ps(fill, tail, x + i);
  return kBias ? _mm512_mask_add_ps(v, tail, v, _mm512_maskz_loadu_ps(tail, b + i)) : v;
}

// v with its NaN lanes set to 0 when nan_to_zero (Where(IsNaN(v), 0, v)).
inline __m512 finish(__m512 v, bool nan_to_zero) {
  return nan_to_zero ? _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v, v, _CMP_ORD_Q), v) : v;
}

// kRows rows of n <= kShortRow values, each pass interleaving the rows: one row's passes are chains
// of dependent reductions (max, then sum, then the scale), and interleaving independent rows keeps
// the vector units busy where a single row would wait on them. The float lane sums of a short row
// are as accurate as the reference's float64 sum to ~1e-6, far inside the tolerance. b[r] is row r's
// bias (unused without kBias).
template <int kRows, bool kBias>
void softmax_short_rows(const float* x, const float* const* b, float* y, int64_t n, bool log, bool nan_to_zero,
                        float* inverse_sums) {
  const int64_t full = n - n % kLanes;
  const __mmask16 tail = first_lanes(n - full);
  const __m512 minus_inf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  const __m512 zero = _mm512_setzero_ps();
  __m512 max[kRows], sum[kRows];
  for (int r = 0; r < kRows; ++r) max[r] = minus_inf;
  for (int64_t i = 0; i < full; i += kLanes)
    for (int r = 0; r < kRows; ++r) max[r] = _mm512_max_ps(max[r], load_row<kBias>(x + r * n, b[r], i));
  // A NaN may be dropped here; it still reaches the whole row through exp(x - max) and the sum.
  for (int r = 0; r < kRows; ++r) {
    if (tail) max[r] = _mm512_max_ps(max[r], load_row_tail<kBias>(minus_inf, tail, x + r * n, b[r], full));
    max[r] = all_lanes_max(max[r]);
    sum[r] = zero;
  }
  for (int64_t i = 0; i < full; i += kLanes)
    for (int r = 0; r < kRows; ++r) {
      const __m512 e = exp16_nonpositive(_mm512_sub_ps(load_row<kBias>(x + r * n, b[r], i), max[r]));
      if (!log) _mm512_storeu_ps(y + r * n + i, e);
      sum[r] = _mm512_add_ps(sum[r], e);
    }
  if (tail)
    for (int r = 0; r < kRows; ++r) {
      const __m512 e = exp16_nonpositive(_mm512_sub_ps(load_row_tail<kBias>(zero, tail, x + r * n, b[r], full), max[r]));
      if (!log) _mm512_mask_storeu_ps(y + r * n + full, tail, e);
      sum[r] = _mm512_mask_add_ps(sum[r], tail, sum[r], e);
    }
  if (log) {  // (x - max) - log(sum): folding max into the shift first would lose log(sum) at large |max|
    for (int r = 0; r < kRows; ++r) {
      const float total = _mm512_cvtss_f32(all_lanes_sum(sum[r]));
      const __m512 log_sum = _mm512_set1_ps(static_cast<float>(std::log(static_cast<double>(total))));
      const float* in = x + r * n;
      float* out = y + r * n;
      for (int64_t i = 0; i < full; i += kLanes)
        _mm512_storeu_ps(out + i, finish(_mm512_sub_ps(_mm512_sub_ps(load_row<kBias>(in, b[r], i), max[r]), log_sum),
                                         nan_to_zero));
      if (tail) {
        const __m512 v = load_row_tail<kBias>(zero, tail, in, b[r], full);
        _mm512_mask_storeu_ps(out + full, tail, finish(_mm512_sub_ps(_mm512_sub_ps(v, max[r]), log_sum), nan_to_zero));
      }
    }
    return;
  }
  for (int r = 0; r < kRows; ++r) sum[r] = _mm512_div_ps(_mm512_set1_ps(1.0f), all_lanes_sum(sum[r]));
  if (inverse_sums != nullptr) {  // the caller scales by them: y keeps the exponentials
    for (int r = 0; r < kRows; ++r) inverse_sums[r] = _mm512_cvtss_f32(sum[r]);
    return;
  }
  for (int64_t i = 0; i < full; i += kLanes)
    for (int r = 0; r < kRows; ++r)
      _mm512_storeu_ps(y + r * n + i, finish(_mm512_mul_ps(_mm512_loadu_ps(y + r * n + i), sum[r]), nan_to_zero));
  if (tail)
    for (int r = 0; r < kRows; ++r)
      _mm512_mask_storeu_ps(y + r * n + full, tail,
                            finish(_mm512_mul_ps(_mm512_maskz_loadu_ps(tail, y + r * n + full), sum[r]), nan_to_zero));
}

// A row longer than kShortRow: the sum runs in float lanes over blocks of kShortRow values and in
// double across blocks, so that a long row (a vocabulary) sums as accurately as the reference's
// float64 does.
template <bool kBias>
void softmax_long_row(const float* x, const float* b, float* y, int64_t n, bool log, bool nan_to_zero,
                      float* inverse_sum) {
  const __m512 minus_inf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  const __m512 zero = _mm512_setzero_ps();
  __m512 m0 = minus_inf, m1 = minus_inf;  // two chains: vmaxps latency, not throughput, bounds one
  int64_t i = 0;
  for (; i + 2 * kLanes <= n; i += 2 * kLanes) {
    m0 = _mm512_max_ps(m0, load_row<kBias>(x, b, i));
    m1 = _mm512_max_ps(m1, load_row<kBias>(x, b, i + kLanes));
  }
  for (; i + kLanes <= n; i += kLanes) m0 = _mm512_max_ps(m0, load_row<kBias>(x, b, i));
  if (i < n) m1 = _mm512_max_ps(m1, load_row_tail<kBias>(minus_inf, first_lanes(n - i), x, b, i));
  const __m512 max = all_lanes_max(_mm512_max_ps(m0, m1));

  __m512d sum0 = _mm512_setzero_pd(), sum1 = _mm512_setzero_pd();
  for (int64_t block = 0; block < n; block += kShortRow) {
    const int64_t end = std::min(n, block + kShortRow);
    __m512 sum = zero;
    for (i = block; i + kLanes <= end; i += kLanes) {
      const __m512 e = exp16_nonpositive(_mm512_sub_ps(load_row<kBias>(x, b, i), max));
      if (!log) _mm512_storeu_ps(y + i, e);
      sum = _mm512_add_ps(sum, e);
    }
    if (i < end) {
      const __mmask16 tail = first_lanes(end - i);
      const __m512 e = exp16_nonpositive(_mm512_sub_ps(load_row_tail<kBias>(zero, tail, x, b, i), max));
      if (!log) _mm512_mask_storeu_ps(y + i, tail, e);
      sum = _mm512_mask_add_ps(sum, tail, sum, e);
    }
    sum0 = _mm512_add_pd(sum0, low_to_double(sum));
    sum1 = _mm512_add_pd(sum1, high_to_double(sum));
  }
  const double total = sum_lanes(sum0, sum1);
  if (inverse_sum != nullptr) {
    *inverse_sum = static_cast<float>(1.0 / total);
    return;
  }

  if (log) {
    const __m512 log_sum = _mm512_set1_ps(static_cast<float>(std::log(total)));
    for (i = 0; i + kLanes <= n; i += kLanes)
      _mm512_storeu_ps(y + i, finish(_mm512_sub_ps(_mm512_sub_ps(load_row<kBias>(x, b, i), max), log_sum), nan_to_zero));
    if (i < n) {
      const __mmask16 tail = first_lanes(n - i);
      const __m512 v = load_row_tail<kBias>(zero, tail, x, b, i);
      _mm512_mask_storeu_ps(y + i, tail, finish(_mm512_sub_ps(_mm512_sub_ps(v, max), log_sum), nan_to_zero));
    }
  } else {
    const __m512 scale = _mm512_set1_ps(static_cast<float>(1.0 / total));
    for (i = 0; i + kLanes <= n; i += kLanes)
      _mm512_storeu_ps(y + i, finish(_mm512_mul_ps(_mm512_loadu_ps(y + i), scale), nan_to_zero));
    if (i < n) {
      const __mmask16 tail = first_lanes(n - i);
      _mm512_mask_storeu_ps(y + i, tail, finish(_mm512_mul_ps(_mm512_maskz_loadu_ps(tail, y + i), scale), nan_to_zero));
    }
  }
}

template <bool kBias>
void softmax_rows(const float* x, const float* bias, const int64_t* bias_offsets, float* y, int64_t rows, int64_t n,
                  bool log, bool nan_to_zero, float* inverse_sums) {
  const float* b[kRowGroup] = {};
  const auto row_bias = [&](int64_t r) { return kBias ? bias + bias_offsets[r] : nullptr; };
  const auto inverse = [&](int64_t r) { return inverse_sums != nullptr ? inverse_sums + r : nullptr; };
  if (n > kShortRow) {
    for (int64_t r = 0; r < rows; ++r)
      softmax_long_row<kBias>(x + r * n, row_bias(r), y + r * n, n, log, nan_to_zero, inverse(r));
    return;
  }
  int64_t r = 0;
  for (; r + kRowGroup <= rows; r += kRowGroup) {
    for (int k = 0; k < kRowGroup; ++k) b[k] = row_bias(r + k);
    softmax_short_rows<kRowGroup, kBias>(x + r * n, b, y + r * n, n, log, nan_to_zero, inverse(r));
  }
  for (int k = 0; k < rows - r; ++k) b[k] = row_bias(r + k);
  switch (rows - r) {
    case 3: return softmax_short_rows<3, kBias>(x + r * n, b, y + r * n, n, log, nan_to_zero, inverse(r));
    case 2: return softmax_short_rows<2, kBias>(x + r * n, b, y + r * n, n, log, nan_to_zero, inverse(r));
    case 1: return softmax_short_rows<1, kBias>(x + r * n, b, y + r * n, n, log, nan_to_zero, inverse(r));
    default: return;
  }
}

}  // namespace

void f32_softmax_rows__avx512(const float* x, const float* bias, const int64_t* bias_offsets, float* y,
                              int64_t rows, int64_t n, bool log, bool nan_to_zero) {
  if (bias) return softmax_rows<true>(x, bias, bias_offsets, y, rows, n, log, nan_to_zero, nullptr);
  softmax_rows<false>(x, nullptr, nullptr, y, rows, n, log, nan_to_zero, nullptr);
}

void f32_softmax_exp_rows__avx512(const float* x, const float* bias, const int64_t* bias_offsets, float* y,
                                  int64_t rows, int64_t n, float* inverse_sums) {
  if (bias) return softmax_rows<true>(x, bias, bias_offsets, y, rows, n, false, false, inverse_sums);
  softmax_rows<false>(x, nullptr, nullptr, y, rows, n, false, false, inverse_sums);
}

// ---- LayerNormalization ---------------------------------------------------------------------------
// Two passes in double lanes as the reference (the mean, then the variance around it: E[x^2] - E[x]^2
// would cancel), one in float to write y. The mean is split into two floats, so that
// (x - mean_hi) - mean_lo is x - mean to float precision even when |mean| >> the spread.
namespace {

// kRows rows of LayerNorm at once: each pass is a chain of dependent additions per row, and
// interleaving independent rows keeps the adders busy where one row would wait on their latency.
// The sums run in float lanes, of x minus the row's first value: the deviations are of the size of the
// row's spread, not of its offset, so a row like 100 + N(0, 3) loses no more than a centred one
// (~1e-7 relative), and a vector costs 2 to 4 operations a pass where widening to double took 6 to 8
// (all-MiniLM-L6-v2's 128 x 384, one thread: 9.4 us a row at a time in double, 8.2 four rows in double, 5.5 in float).
template <int kRows, bool kResidual>
void layer_norm_rows(const float* x, const float* residual, const float* scale, const float* bias, float* y, int64_t n,
                     float epsilon) {
  const int64_t full = n - n % kLanes;
  const __mmask16 tail = first_lanes(n - full);
  const auto load_from = [&](const float* p, int r, int64_t i) {
    return i < full ? _mm512_loadu_ps(p + r * n + i) : _mm512_maskz_loadu_ps(tail, p + r * n + i);
  };
  float first[kRows];
  __m512 shift[kRows], sum[kRows];
#pragma GCC unroll 4
  for (int r = 0; r < kRows; ++r) {
    first[r] = kResidual ? x[r * n] + residual[r * n] : x[r * n];
    shift[r] = _mm512_set1_ps(first[r]);
    sum[r] = _mm512_setzero_ps();
  }
  for (int64_t i = 0; i < n; i += kLanes) {
    const __mmask16 mask = i < full ? __mmask16(0xFFFF) : tail;
#pragma GCC unroll 4
    for (int r = 0; r < kRows; ++r) {
      __m512 v = load_from(x, r, i);
      if (kResidual) {  // the sum is what the later passes read: store it in y
        v = _mm512_add_ps(v, load_from(residual, r, i));
        _mm512_mask_storeu_ps(y + r * n + i, mask, v);
      }
      sum[r] = _mm512_add_ps(sum[r], _mm512_maskz_sub_ps(mask, v, shift[r]));
    }
  }
  const float* source = kResidual ? y : x;
  const auto load = [&](int r, int64_t i) { return load_from(source, r, i); };
  // The mean as two floats (mean_hi + mean_lo), so that x - mean is as exact as in double.
  __m512 mean_hi[kRows], mean_lo[kRows];
#pragma GCC unroll 4
  for (int r = 0; r < kRows; ++r) {
    const double mean = first[r] + static_cast<double>(_mm512_reduce_add_ps(sum[r])) / static_cast<double>(n);
    const float m = static_cast<float>(mean);
    mean_hi[r] = _mm512_set1_ps(m);
    mean_lo[r] = _mm512_set1_ps(static_cast<float>(mean - m));
    sum[r] = _mm512_setzero_ps();
  }
  for (int64_t i = 0; i < n; i += kLanes) {
    const __mmask16 mask = i < full ? __mmask16(0xFFFF) : tail;
#pragma GCC unroll 4
    for (int r = 0; r < kRows; ++r) {
      const __m512 d = _mm512_maskz_sub_ps(mask, _mm512_sub_ps(load(r, i), mean_hi[r]), mean_lo[r]);
      sum[r] = _mm512_fmadd_ps(d, d, sum[r]);
    }
  }
  __m512 inv_std[kRows];
#pragma GCC unroll 4
  for (int r = 0; r < kRows; ++r) {
    const double variance = static_cast<double>(_mm512_reduce_add_ps(sum[r])) / static_cast<double>(n);
    inv_std[r] = _mm512_set1_ps(static_cast<float>(1.0 / std::sqrt(variance + epsilon)));
  }
  for (int64_t i = 0; i < n; i += kLanes) {
    const __mmask16 mask = i < full ? __mmask16(0xFFFF) : tail;
    const __m512 g = _mm512_maskz_loadu_ps(mask, scale + i);
    const __m512 b = bias ? _mm512_maskz_loadu_ps(mask, bias + i) : _mm512_setzero_ps();
#pragma GCC unroll 4
    for (int r = 0; r < kRows; ++r) {
      const __m512 v = _mm512_mul_ps(_mm512_sub_ps(_mm512_sub_ps(load(r, i), mean_hi[r]), mean_lo[r]), inv_std[r]);
      _mm512_mask_storeu_ps(y + r * n + i, mask, _mm512_fmadd_ps(v, g, b));
    }
  }
}

}  // namespace

void f32_layer_norm_rows__avx512(const float* x, const float* residual, const float* scale, const float* bias,
                                 float* y, int64_t rows, int64_t n, float epsilon) {
  constexpr int kGroup = 4;
  int64_t r = 0;
  if (residual != nullptr) {
    for (; r + kGroup <= rows; r += kGroup)
      layer_norm_rows<kGroup, true>(x + r * n, residual + r * n, scale, bias, y + r * n, n, epsilon);
    for (; r < rows; ++r) layer_norm_rows<1, true>(x + r * n, residual + r * n, scale, bias, y + r * n, n, epsilon);
    return;
  }
  for (; r + kGroup <= rows; r += kGroup) layer_norm_rows<kGroup, false>(x + r * n, nullptr, scale, bias, y + r * n, n, epsilon);
  for (; r < rows; ++r) layer_norm_rows<1, false>(x + r * n, nullptr, scale, bias, y + r * n, n, epsilon);
}

}  // namespace edgepack

#endif
