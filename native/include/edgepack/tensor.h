// Tensor metadata as the runtime sees it. Data pointers are resolved per arena (run-time tensors) or
// point into the mmap'd WEIGHTS section (constants); kernels never own memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "edgepack/format.h"

namespace edgepack {

size_t dtype_size(DType dtype);           // bytes per element; 0 for sub-byte types
const char* dtype_name(DType dtype);      // "float32", ...
bool dtype_valid(uint8_t code);
uint64_t dtype_nbytes(DType dtype, uint64_t numel);  // storage bytes (int4 packs two per byte)

struct QuantInfo {
  std::vector<float> scales;        // empty: not quantized
  std::vector<int32_t> zero_points;
  int32_t axis = -1;                // -1: per tensor
  int32_t block_size = 0;           // 0: not block-wise
};

struct Tensor {
  std::string name;
  DType dtype = DType::kFloat32;
  Storage storage = Storage::kArena;
  int rank = 0;
  int64_t dims[kMaxRank] = {};
  int64_t numel = 1;
  uint64_t offset = 0;
  uint64_t nbytes = 0;
  QuantInfo quant;
  void* data = nullptr;  // resolved: arena base + offset, or weights base + offset

  template <class T> T* as() const { return static_cast<T*>(data); }
  int64_t dim(int i) const { return dims[i < 0 ? i + rank : i]; }
  std::vector<int64_t> shape() const { return std::vector<int64_t>(dims, dims + rank); }
  std::string shape_str() const;   // "[1, 3, 224, 224]"
};

}  // namespace edgepack
