// Packed, cache-blocked fp32 GEMM shared by the compute kernels (MatMul, Conv, ConvTranspose):
//   C[M,N] = A[M,K] · B[K,N]  (+ bias per row or per column)  then a fused clamp (none / relu / clip).
//
// Both operands are consumed as "panels" (the layout the micro-kernel streams through):
//   A: ceil(M / kTileM) panels of kTileM rows, stored K block by K block: the block [k0, k1) of every
//      panel, each (k1 - k0) x kTileM and k-major (the kTileM values of one k adjacent), then the next
//      block. The A block the driver keeps in L2 is then one contiguous stream from memory, which
//      matters for large weights that come from DRAM on every run (ResNet's last stage).
//   B: ceil(N / kTileN) panels, each K x kTileN, k-major: a K block of a panel is the contiguous run
//      at k0 * kTileN, and a packer can fill a panel without knowing the blocking.
// Edge panels are zero-padded, so the micro-kernel never reads past a panel. The layout depends only
// on the shape, so a constant operand is packed once at prepare.
//
// A run-time operand is packed on demand into caller-provided scratch from a strided matrix, or read
// where it lies: an A whose rows are contiguous (column stride 1) is always read in place, its values
// broadcast straight from the rows, as packing would only reorder what the micro-kernel broadcasts
// one value at a time anyway. A B can also be given by per-row offsets (a stride-1 view of a
// convolution's input: see conv.cpp), read in place or packed, or come from a custom packer.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <limits>
#include <memory>

#include "edgepack/kernel.h"
#include "edgepack/thread_pool.h"

namespace edgepack {
namespace gemm {

// The register tile of the micro-kernel, chosen per ISA at compile time. Packed data is only ever
// consumed by the build that packed it, so the layout may differ between builds.
#if defined(__AVX512F__)
inline constexpr int kTileM = 8, kTileN = 32;
#elif defined(__AVX2__) && defined(__FMA__)
inline constexpr int kTileM = 6, kTileN = 16;
#elif defined(__ARM_NEON) && defined(__aarch64__)
inline constexpr int kTileM = 8, kTileN = 8;
#else
inline constexpr int kTileM = 4, kTileN = 16;
#endif

const char* ukernel_name();  // e.g. "sgemm_8x32__avx512", for logs and benchmarks
// What the micro-kernel computes for an m x n C, in vector FMAs per k: each tile costs its rows times
// its vectors (a last partial vector counts whole), and a tile of very few rows as much as one whose
// accumulators keep the FMA units busy. For choosing between two GEMMs that give the same result.
int64_t ukernel_work(int64_t m, int64_t n);

inline int64_t panels_a(int64_t m) { return (m + kTileM - 1) / kTileM; }
inline int64_t panels_b(int64_t n) { return (n + kTileN - 1) / kTileN; }
// Floats of the packed form of an operand.
inline int64_t packed_a_floats(int64_t m, int64_t k) { return panels_a(m) * kTileM * k; }
inline int64_t packed_b_floats(int64_t k, int64_t n) { return panels_b(n) * kTileN * k; }

// Floats rounded up to whole 64-byte lines: sub-buffers carved out of 64-byte aligned scratch or
// packed storage at such sizes stay aligned.
inline int64_t whole_lines(int64_t floats) { return (floats + 15) & ~int64_t{15}; }

// Packs panels [first, end) of a strided matrix whose element (row, col) is src[row * rs + col * cs]:
// pack_a for a left operand of `rows` x `k`, pack_b for a right operand of `k` x `cols`.
// `dst` is the start of the whole packed operand.
void pack_a(const float* src, int64_t rs, int64_t cs, int64_t rows, int64_t k, int64_t first, int64_t end,
            float* dst);
void pack_b(const float* src, int64_t rs, int64_t cs, int64_t k, int64_t cols, int64_t first, int64_t end,
            float* dst);
// Packs panels [first, end) of a `k` x `cols` B whose row kk is the floats at src + row_offsets[kk].
void pack_b_rows(const float* src, const int64_t* row_offsets, int64_t k, int64_t cols, int64_t first, int64_t end,
                 float* dst);
// Packs panels [first, end) of a `rows` x `k` A whose element (row, kk) is src[row_offsets[row] + k_offsets[kk]]
// (a convolution's im2col matrix, pixels by rows, gathered from its input: see conv.cpp).
void pack_a_gathered(const float* src, const int64_t* row_offsets, const int64_t* k_offsets, int64_t rows, int64_t k,
                     int64_t first, int64_t end, float* dst);

// Writes panels [first, end) of a B operand into `dst` (the start of the whole packed operand).
using PackFn = void (*)(const void* ctx, const float* src, int64_t first, int64_t end, float* dst);

// One GEMM operand: already packed, packed on demand into `scratch` during sgemm(), or read in place
// (an A with cs == 1; a B through row offsets without scratch).
struct Operand {
  const float* packed = nullptr;   // ready panels (e.g. weights packed at prepare)
  const float* src = nullptr;      // else: the source, read by `pack`, as a strided matrix, or by rows
  int64_t rs = 0, cs = 0;          // strides of the strided source (when pack is null)
  PackFn pack = nullptr;
  const void* ctx = nullptr;
  float* scratch = nullptr;        // packed_a_floats / packed_b_floats, 64-byte aligned
  const int64_t* row_offsets = nullptr;  // B by rows: element (k, col) is src[row_offsets[k] + col]
  // A gathered: element (row, k) is src[gather_rows[row] + gather_k[k]], packed into `scratch` or read in place.
  const int64_t* gather_rows = nullptr;
  const int64_t* gather_k = nullptr;

  static Operand prepacked(const float* panels) {
    Operand o;
    o.packed = panels;
    return o;
  }
  // As A with cs == 1 it is read in place, and `scratch` may be null.
  static Operand strided(const float* src, int64_t rs, int64_t cs, float* scratch) {
    Operand o;
    o.src = src;
    o.rs = rs;
    o.cs = cs;
    o.scratch = scratch;
    return o;
  }
  // B only (its panels hold all of K, so a packer needs no knowledge of the K blocking).
  static Operand custom(PackFn pack, const void* ctx, const float* src, float* scratch) {
    Operand o;
    o.src = src;
    o.pack = pack;
    o.ctx = ctx;
    o.scratch = scratch;
    return o;
  }
  // B read where it lies, with no packing: row k of B is the n floats at src + row_offsets[k] (a
  // row-major matrix, or a stride-1 convolution over a padded input, where row (c, i, j) is the
  // input shifted by tap (i, j)). Packing costs a pass over B that only pays off when enough rows
  // of A reuse the packed panels; see kInPlaceMaxRows.
  static Operand in_place(const float* src, const int64_t* row_offsets) {
    Operand o;
    o.src = src;
    o.row_offsets = row_offsets;
    return o;
  }
  // B given by rows as for in_place(), packed into `scratch` (for many rows of A: see kInPlaceMaxRows).
  static Operand rows(const float* src, const int64_t* row_offsets, float* scratch) {
    Operand o = in_place(src, row_offsets);
    o.scratch = scratch;
    return o;
  }
  // A only: element (row, k) is src[row_offsets[row] + k_offsets[k]] (see pack_a_gathered), packed into
  // `scratch`, or read in place when `scratch` is null: the micro-kernel then broadcasts each value from
  // where it lies, which suits a channels-last input whose consecutive k are adjacent floats.
  static Operand gathered(const float* src, const int64_t* row_offsets, const int64_t* k_offsets, float* scratch) {
    Operand o;
    o.src = src;
    o.gather_rows = row_offsets;
    o.gather_k = k_offsets;
    o.scratch = scratch;
    return o;
  }
  // A row-major A (cs == 1) is read in place; B by rows is read in place unless given scratch.
  bool a_in_place() const {
    return packed == nullptr && pack == nullptr && row_offsets == nullptr && gather_rows == nullptr && cs == 1;
  }
  bool a_gathered_in_place() const { return packed == nullptr && gather_rows != nullptr && scratch == nullptr; }
  bool b_in_place() const { return packed == nullptr && row_offsets != nullptr && scratch == nullptr; }
  bool needs_packing_a() const { return packed == nullptr && !a_in_place() && !a_gathered_in_place(); }
  bool needs_packing_b() const { return packed == nullptr && !b_in_place(); }
  const float* panels() const { return packed != nullptr ? packed : scratch; }
};

// Up to this many rows of A, reading a run-time B in place beats packing it (measured on 1x1 convs:
// packing wins from ~256 rows on, where unaligned in-place loads cost more than the one pass).
inline constexpr int64_t kInPlaceMaxRows = 128;

enum class BiasKind : uint8_t { kNone, kPerRow, kPerColumn };

// Applied once per output element, after the full K sum: y = clamp(acc + bias, lo, hi).
// A fused activation is a clamp: none = (-inf, inf), relu = [0, inf), clip = [min, max].
struct Epilogue {
  BiasKind bias_kind = BiasKind::kNone;
  const float* bias = nullptr;  // M values (per row) or N values (per column)
  float lo = -std::numeric_limits<float>::infinity();
  float hi = std::numeric_limits<float>::infinity();
  // Optional: a matrix of C's shape added before the clamp, element (i, j) at residual[i * ldr + j] (a
  // Conv's fused residual Add). Only for a C stored plainly (no crop, not transposed).
  const float* residual = nullptr;
  int64_t ldr = 0;
};

struct Problem {
  int64_t m = 0, n = 0, k = 0;
  Operand a, b;
  float* c = nullptr;
  int64_t ldc = 0;  // row stride of C
  Epilogue epilogue;
  // Optional crop of C's columns: seen as a grid of rows crop_grid wide, only the first crop_keep
  // columns of each grid row are stored, packed: column j lands at (j / crop_grid) * crop_keep +
  // j % crop_grid of its row. (Conv computes over a grid wider than the output; this drops the extra
  // columns as the tile is stored, rather than in a pass over C.) Off when crop_grid == 0.
  int64_t crop_grid = 0, crop_keep = 0;
  // C stored transposed: element (i, j) at c[j * ldc + i] (a convolution whose GEMM has the output pixels
  // as rows and the output channels on the vector axis writes its NCHW output this way). The sums of
  // all but the last K block are kept in `partial` (m x n floats, row-major), which must be given.
  // Not with a crop.
  bool transpose_c = false;
  float* partial = nullptr;
};

// Runs one GEMM, split over the pool's threads (static partition of the tile grid).
void sgemm(const Problem& p, ThreadPool* pool);
// Runs one GEMM on the calling thread.
void sgemm_serial(const Problem& p);

// A non-owning reference to a callable `void(int64_t index, Problem* out)` describing batch item `index`.
class ItemFn {
 public:
  template <class F>
  ItemFn(const F& f)
      : obj_(&f), call_([](const void* o, int64_t i, Problem* p) { (*static_cast<const F*>(o))(i, p); }) {}
  void operator()(int64_t i, Problem* p) const { call_(obj_, i, p); }

 private:
  const void* obj_;
  void (*call_)(const void*, int64_t, Problem*);
};

// Runs `count` independent GEMMs (batch items, conv groups). Items must not share scratch: when there
// are enough items, whole items are spread over the threads; otherwise each item is split.
void sgemm_batch(int64_t count, ItemFn item, ThreadPool* pool);

// ---- shared by the prepare() of the compute kernels ----

// Reads the fused activation of Conv / MatMul (attrs activation, act_min, act_max) as a clamp into
// `epilogue`. Problems are reported through `attrs` or returned, naming the op.
Status read_activation(const OpInfo& op, AttrReader& attrs, Epilogue* epilogue);

// A float MatMul A [..., M, K] x B [..., K, N] -> Y [..., M, N], the batch dims broadcast by numpy's
// rules. When B has no batch (the usual constant weight), A's batch folds into the rows of one GEMM.
struct MatMulShape {
  static constexpr int kMaxBatchRank = kMaxRank - 2;
  int64_t m = 0, k = 0, n = 0;
  int64_t rows = 0;                        // rows of each GEMM: M, or batch * M when folded
  int64_t count = 0;                       // GEMMs per run
  int64_t a_matrices = 1, b_matrices = 1;  // batch matrices of each operand
  bool folded = false;
  int batch_rank = 0;
  int64_t batch_dims[kMaxBatchRank] = {};
  int64_t a_strides[kMaxBatchRank] = {}, b_strides[kMaxBatchRank] = {};  // in matrices; 0 where broadcast

  // The matrices of A and B that output batch item `item` multiplies (walking its index from the last dim).
  void locate(int64_t item, int64_t* a_matrix, int64_t* b_matrix) const {
    *a_matrix = *b_matrix = 0;
    for (int d = batch_rank - 1; d >= 0 && !folded; --d) {
      const int64_t i = item % batch_dims[d];
      item /= batch_dims[d];
      *a_matrix += i * a_strides[d];
      *b_matrix += i * b_strides[d];
    }
  }
};

// Checks A, B and Y of a float MatMul (ranks, inner dims, broadcast batch, output shape; every product
// the kernels take from these sizes) and an optional bias [N]; reads the fused activation and the bias
// kind into `epilogue`. Dtypes are the caller's to check.
Status read_matmul(const OpInfo& op, const Tensor& a, const Tensor& b, const Tensor* bias, const Tensor& y,
                   MatMulShape* shape, Epilogue* epilogue);

// a * b for sizes from a hostile file: false when the product would exceed kMaxElements.
inline constexpr int64_t kMaxElements = int64_t{1} << 40;
inline bool checked_mul(int64_t a, int64_t b, int64_t* out) {
  if (a < 0 || b < 0 || (a != 0 && b > kMaxElements / a)) return false;
  *out = a * b;
  return true;
}

// 64-byte aligned float storage owned by a kernel object (its pre-packed weights).
class AlignedFloats {
 public:
  // False when the allocation fails (prepare reports it rather than throwing).
  bool resize(int64_t count);
  float* data() { return data_.get(); }
  const float* data() const { return data_.get(); }

 private:
  struct Free {
    void operator()(float* p) const { std::free(p); }
  };
  std::unique_ptr<float, Free> data_;
};

}  // namespace gemm
}  // namespace edgepack
