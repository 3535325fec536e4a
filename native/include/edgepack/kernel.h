// The kernel interface. Each op has one OpKernel class (kernels/ref/ for the portable ones):
//   prepare()  once at load, on tensor metadata: validates everything a hostile file could get wrong
//              (input count, dtypes, shapes, attributes) and precomputes what run() needs;
//   run()      per inference, on resolved data pointers: no allocation, no validation beyond run-time
//              data (e.g. gather indices that come from the user's input).
// Scratch memory (e.g. im2col) is requested by prepare() through scratch_bytes and handed to run()
// from the per-arena scratch buffer.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "edgepack/format.h"
#include "edgepack/status.h"
#include "edgepack/tensor.h"
#include "edgepack/thread_pool.h"

namespace edgepack {

struct AttrValue {
  AttrType type = AttrType::kInt;
  std::vector<int64_t> ints;   // kInt (one value) and kInts
  std::vector<float> floats;   // kFloat (one value) and kFloats
  std::string str;             // kStr
};

struct OpInfo {
  OpCode code;
  std::string name;
  std::vector<int32_t> inputs;   // tensor indices, -1 for an absent optional input
  std::vector<int32_t> outputs;
  std::map<std::string, AttrValue> attrs;
  uint64_t arena_bytes = 0;   // the model's planned arena: a kernel writing past a tensor checks against it
};

// Reads attributes with validation; the first problem is kept and reported by status().
//   AttrReader a(op);
//   auto strides = a.ints("strides", 2);  int64_t group = a.i("group");
//   EP_RETURN_IF_ERROR(a.status());
class AttrReader {
 public:
  explicit AttrReader(const OpInfo& op) : op_(op) {}
  int64_t i(const char* key);
  float f(const char* key);
  std::vector<int64_t> ints(const char* key, int expected_count = -1);
  std::vector<float> floats(const char* key, int expected_count = -1);
  std::string str(const char* key);
  bool has(const char* key) const { return op_.attrs.count(key) != 0; }
  Status status() const { return status_; }

 private:
  const AttrValue* find(const char* key, AttrType type);
  const OpInfo& op_;
  Status status_;
};

struct RunContext {
  ThreadPool* pool = nullptr;   // never null during run(); may have one thread
  uint8_t* scratch = nullptr;   // at least scratch_bytes of the kernel, 64-byte aligned
};

class OpKernel {
 public:
  virtual ~OpKernel() = default;
  // ins[i] is null for an absent optional input. Tensors' data pointers are not valid here except
  // for weights (Storage::kWeight), which prepare() may read (e.g. to pack them).
  virtual Status prepare(const OpInfo& op, const std::vector<const Tensor*>& ins,
                         const std::vector<const Tensor*>& outs) = 0;
  virtual Status run(const std::vector<const Tensor*>& ins, const std::vector<Tensor*>& outs,
                     RunContext& ctx) const = 0;
  size_t scratch_bytes = 0;
};

// The registry: one factory per opcode, listed in native/src/registry.cpp.
// `ins` (the op's inputs, null for absent ones) lets dtype-specific variants be chosen at load.
std::unique_ptr<OpKernel> make_kernel(OpCode code, const std::vector<const Tensor*>& ins);
const char* op_name(OpCode code);     // "Conv"; nullptr for an unknown code
bool op_code_valid(uint32_t code);

// Helpers for prepare(): each returns a Status naming the op and what was wrong.
Status expect_inputs(const OpInfo& op, const std::vector<const Tensor*>& ins, size_t min, size_t max);
Status expect_dtype(const OpInfo& op, const Tensor& t, DType dtype, const char* role);
Status expect_same_shape(const OpInfo& op, const Tensor& a, const Tensor& b);
Status expect_shape(const OpInfo& op, const Tensor& t, const std::vector<int64_t>& shape, const char* role);

}  // namespace edgepack
