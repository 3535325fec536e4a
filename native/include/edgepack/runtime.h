// The public C++ API of the edgepack runtime.
//
//   std::unique_ptr<edgepack::Session> session;
//   edgepack::Status st = edgepack::Session::open("model.epk", {}, &session);
//   const void* in[] = {image};  void* out[] = {logits};
//   st = session->run(in, out);
//
// A Session is safe to run() from several threads at once: each run borrows an arena (the planned
// memory for all run-time tensors) from a pool; arenas are created on first use and then reused.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "edgepack/kernel.h"
#include "edgepack/status.h"
#include "edgepack/tensor.h"
#include "edgepack/thread_pool.h"

namespace edgepack {

struct SessionOptions {
  int num_threads = 0;  // 0: one per hardware thread
};

struct TensorInfo {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  uint64_t nbytes;
};

// Per-run measurements, filled only when the caller passes a RunStats.
struct RunStats {
  std::vector<double> op_seconds;  // one entry per op, in execution order
  double total_seconds = 0;
};

struct ManifestValue {
  ManifestType type;
  int64_t i = 0;
  double f = 0;
  std::string s;
};

class MappedFile;
struct Arena;

class Session {
 public:
  static Status open(const std::string& path, const SessionOptions& options, std::unique_ptr<Session>* out);
  ~Session();

  const std::vector<TensorInfo>& inputs() const { return inputs_; }
  const std::vector<TensorInfo>& outputs() const { return outputs_; }
  // inputs[i]: contiguous data of inputs()[i]; outputs[i]: caller-owned buffer of outputs()[i].nbytes.
  Status run(const void* const* inputs, void* const* outputs, RunStats* stats = nullptr) const;

  uint64_t arena_bytes() const { return arena_bytes_; }
  uint64_t scratch_bytes() const { return scratch_bytes_; }
  uint64_t weights_bytes() const { return weights_bytes_; }
  uint64_t file_bytes() const;
  size_t num_arenas() const;  // arenas created so far (one per concurrent run)
  int num_threads() const { return pool_->num_threads(); }
  const std::vector<OpInfo>& ops() const { return ops_; }
  const std::vector<Tensor>& tensors() const { return tensors_; }
  const std::map<std::string, ManifestValue>& manifest() const { return manifest_; }

 private:
  Session() = default;
  Status parse(const std::string& path);
  Status prepare();
  std::unique_ptr<Arena> make_arena() const;

  std::unique_ptr<MappedFile> file_;
  std::map<std::string, ManifestValue> manifest_;
  std::vector<Tensor> tensors_;       // data pointers set for weights only
  std::vector<OpInfo> ops_;
  std::vector<std::unique_ptr<OpKernel>> kernels_;
  std::vector<int32_t> input_ids_, output_ids_;
  std::vector<TensorInfo> inputs_, outputs_;
  uint64_t arena_bytes_ = 0, scratch_bytes_ = 0, weights_bytes_ = 0;
  std::unique_ptr<ThreadPool> pool_;
  mutable std::mutex arenas_mutex_;
  mutable std::vector<std::unique_ptr<Arena>> free_arenas_;
  mutable size_t arenas_created_ = 0;
};

// CRC-32 of zlib (IEEE 802.3), continuing from `crc` (src/crc32.cpp: PCLMULQDQ / ARM CRC where built).
uint32_t crc32(const uint8_t* data, size_t size, uint32_t crc = 0);
// The same CRC by slicing-by-8 tables: the path of builds without those instructions.
uint32_t crc32_portable(const uint8_t* data, size_t size, uint32_t crc = 0);

}  // namespace edgepack
