// Small shared pieces: dtype traits, attribute reading, prepare() validation helpers.
#include <sstream>

#include "edgepack/kernel.h"
#include "edgepack/tensor.h"

namespace edgepack {

namespace {
struct DTypeTraits {
  DType dtype;
  size_t size;
  const char* name;
};
// One traits table per dtype; mirrors sdk/edgepack/ir/dtypes.py (a test checks the names agree).
constexpr DTypeTraits kTraits[] = {
    {DType::kFloat32, 4, "float32"}, {DType::kFloat16, 2, "float16"}, {DType::kInt8, 1, "int8"},
    {DType::kUInt8, 1, "uint8"},     {DType::kInt32, 4, "int32"},     {DType::kInt64, 8, "int64"},
    {DType::kBool, 1, "bool"},       {DType::kInt4, 0, "int4"},
};
const DTypeTraits* traits(DType dtype) {
  for (const auto& t : kTraits)
    if (t.dtype == dtype) return &t;
  return nullptr;
}
}  // namespace

bool dtype_valid(uint8_t code) { return traits(static_cast<DType>(code)) != nullptr; }
size_t dtype_size(DType dtype) { return traits(dtype) ? traits(dtype)->size : 0; }
const char* dtype_name(DType dtype) { return traits(dtype) ? traits(dtype)->name : "invalid"; }
uint64_t dtype_nbytes(DType dtype, uint64_t numel) {
  return dtype == DType::kInt4 ? (numel + 1) / 2 : numel * dtype_size(dtype);
}

std::string Tensor::shape_str() const {
  std::ostringstream s;
  s << "[";
  for (int i = 0; i < rank; ++i) s << (i ? ", " : "") << dims[i];
  s << "]";
  return s.str();
}

// ---- AttrReader ----------------------------------------------------------------------------------
const AttrValue* AttrReader::find(const char* key, AttrType type) {
  auto it = op_.attrs.find(key);
  if (it == op_.attrs.end()) {
    if (status_.ok()) status_ = InvalidArtifact("op '" + op_.name + "': missing attribute '" + key + "'");
    return nullptr;
  }
  if (it->second.type != type) {
    if (status_.ok()) status_ = InvalidArtifact("op '" + op_.name + "': attribute '" + key + "' has the wrong type");
    return nullptr;
  }
  return &it->second;
}

int64_t AttrReader::i(const char* key) {
  const AttrValue* v = find(key, AttrType::kInt);
  return v && v->ints.size() == 1 ? v->ints[0] : 0;
}

float AttrReader::f(const char* key) {
  const AttrValue* v = find(key, AttrType::kFloat);
  return v && v->floats.size() == 1 ? v->floats[0] : 0.0f;
}

std::vector<int64_t> AttrReader::ints(const char* key, int expected_count) {
  const AttrValue* v = find(key, AttrType::kInts);
  if (!v) return std::vector<int64_t>(expected_count > 0 ? expected_count : 0, 0);
  if (expected_count >= 0 && static_cast<int>(v->ints.size()) != expected_count) {
    if (status_.ok())
      status_ = InvalidArtifact("op '" + op_.name + "': attribute '" + key + "' has " +
                                std::to_string(v->ints.size()) + " values, expected " + std::to_string(expected_count));
    return std::vector<int64_t>(expected_count, 0);
  }
  return v->ints;
}

std::vector<float> AttrReader::floats(const char* key, int expected_count) {
  const AttrValue* v = find(key, AttrType::kFloats);
  if (!v) return std::vector<float>(expected_count > 0 ? expected_count : 0, 0.0f);
  if (expected_count >= 0 && static_cast<int>(v->floats.size()) != expected_count) {
    if (status_.ok())
      status_ = InvalidArtifact("op '" + op_.name + "': attribute '" + key + "' has " +
                                std::to_string(v->floats.size()) + " values, expected " + std::to_string(expected_count));
    return std::vector<float>(expected_count, 0.0f);
  }
  return v->floats;
}

std::string AttrReader::str(const char* key) {
  const AttrValue* v = find(key, AttrType::kStr);
  return v ? v->str : std::string();
}

// ---- prepare() helpers ---------------------------------------------------------------------------
Status expect_inputs(const OpInfo& op, const std::vector<const Tensor*>& ins, size_t min, size_t max) {
  if (ins.size() < min || ins.size() > max)
    return InvalidArtifact("op '" + op.name + "' (" + op_name(op.code) + "): has " + std::to_string(ins.size()) +
                           " inputs, expected " + std::to_string(min) + ".." + std::to_string(max));
  for (size_t i = 0; i < min; ++i)
    if (!ins[i])
      return InvalidArtifact("op '" + op.name + "': required input " + std::to_string(i) + " is absent");
  return Status::Ok();
}

Status expect_dtype(const OpInfo& op, const Tensor& t, DType dtype, const char* role) {
  if (t.dtype != dtype)
    return Unsupported("op '" + op.name + "' (" + op_name(op.code) + "): " + role + " '" + t.name + "' is " +
                       dtype_name(t.dtype) + ", expected " + dtype_name(dtype));
  return Status::Ok();
}

Status expect_same_shape(const OpInfo& op, const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape())
    return InvalidArtifact("op '" + op.name + "': '" + a.name + "' " + a.shape_str() + " and '" + b.name + "' " +
                           b.shape_str() + " must have the same shape");
  return Status::Ok();
}

Status expect_shape(const OpInfo& op, const Tensor& t, const std::vector<int64_t>& shape, const char* role) {
  if (t.shape() != shape) {
    Tensor expected;
    expected.rank = static_cast<int>(shape.size());
    for (int i = 0; i < expected.rank && i < kMaxRank; ++i) expected.dims[i] = shape[i];
    return InvalidArtifact("op '" + op.name + "' (" + op_name(op.code) + "): " + role + " '" + t.name + "' has shape " +
                           t.shape_str() + ", expected " + expected.shape_str());
  }
  return Status::Ok();
}

}  // namespace edgepack
