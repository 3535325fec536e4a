// The .epk reader (layout in include/edgepack/format.h). It treats every file as hostile: each count,
// size and offset is checked against what remains before it is used, and each failure names what
// was wrong.
#include <cstring>
#include <limits>
#include <set>

#include "edgepack/runtime.h"
#include "src/mapped_file.h"

namespace edgepack {

// ---- a bounded little-endian reader ----------------------------------------------------------------
namespace {

class Reader {
 public:
  Reader(const uint8_t* data, size_t size, const char* section) : data_(data), size_(size), section_(section) {}

  template <class T>
  bool get(T* out) {
    if (!check(sizeof(T))) return false;
    std::memcpy(out, data_ + pos_, sizeof(T));  // little-endian hosts only (checked at build time)
    pos_ += sizeof(T);
    return true;
  }
  bool str(std::string* out) {
    uint32_t n;
    if (!get(&n) || !check(n)) return false;
    out->assign(reinterpret_cast<const char*>(data_ + pos_), n);
    pos_ += n;
    return true;
  }
  // A count of items that each take at least `min_item_bytes`: rejects counts the section cannot hold.
  bool count(uint32_t* out, size_t min_item_bytes) {
    if (!get(out)) return false;
    return min_item_bytes == 0 || fits(*out, min_item_bytes);
  }
  // False (and failed) when n items of item_bytes each do not fit in what remains.
  bool fits(uint32_t n, size_t item_bytes) {
    if (n > remaining() / item_bytes) {
      fail("count " + std::to_string(n) + " exceeds what the section can hold");
      return false;
    }
    return true;
  }
  size_t remaining() const { return size_ - pos_; }
  size_t pos() const { return pos_; }
  void fail(const std::string& why) {
    if (error_.empty()) error_ = why;
  }
  Status status() const {
    return error_.empty() ? Status::Ok()
                          : InvalidArtifact(std::string(section_) + " section: " + error_);
  }

 private:
  bool check(size_t n) {
    if (n > size_ - pos_) {
      fail("truncated at byte " + std::to_string(pos_) + " (needs " + std::to_string(n) + " more bytes)");
      return false;
    }
    return true;
  }
  const uint8_t* data_;
  size_t size_, pos_ = 0;
  const char* section_;
  std::string error_;
};

static_assert(sizeof(float) == 4 && sizeof(double) == 8, "IEEE floats required");
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the .epk reader assumes a little-endian host"
#endif

struct SectionRef {
  const uint8_t* data = nullptr;
  uint64_t size = 0;
  bool present = false;
};

uint64_t rd64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
uint32_t rd32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

}  // namespace

Status Session::parse(const std::string& path) {
  EP_RETURN_IF_ERROR(MappedFile::open(path, &file_));
  const uint8_t* d = file_->data();
  const uint64_t size = file_->size();
  const std::string where = "'" + path + "': ";

  // header
  EP_CHECK(size >= kHeaderBytes, InvalidArtifact(where + "file is " + std::to_string(size) +
                                                 " bytes, too small for an edgepack header (truncated?)"));
  EP_CHECK(std::memcmp(d, kMagic, 8) == 0, InvalidArtifact(where + "bad magic: not an edgepack artifact"));
  const uint32_t version = rd32(d + 8), nsections = rd32(d + 12);
  EP_CHECK(version == kFormatVersion, Unsupported(where + "format version " + std::to_string(version) +
                                                  ", this runtime reads version " + std::to_string(kFormatVersion)));
  const uint64_t declared = rd64(d + 16);
  EP_CHECK(declared == size, InvalidArtifact(where + "header says " + std::to_string(declared) + " bytes but the file has " +
                                             std::to_string(size) + " (truncated or padded)"));
  EP_CHECK(nsections >= 1 && nsections <= kMaxSections,
           InvalidArtifact(where + "bad section count " + std::to_string(nsections)));
  const uint64_t table_end = kHeaderBytes + uint64_t(kSectionEntryBytes) * nsections;
  EP_CHECK(table_end <= size, InvalidArtifact(where + "section table runs past the end of the file"));
  uint32_t crc = crc32(d, 24);
  crc = crc32(d + kHeaderBytes, table_end - kHeaderBytes, crc);
  EP_CHECK(crc == rd32(d + 24), InvalidArtifact(where + "header checksum mismatch (corrupt header or section table)"));

  // sections
  SectionRef sections[6];
  std::vector<std::pair<uint64_t, uint64_t>> spans;
  for (uint32_t i = 0; i < nsections; ++i) {
    const uint8_t* e = d + kHeaderBytes + i * kSectionEntryBytes;
    const uint32_t kind = rd32(e), sec_crc = rd32(e + 4);
    const uint64_t off = rd64(e + 8), len = rd64(e + 16);
    const std::string name = "section " + std::to_string(i) + " (kind " + std::to_string(kind) + ")";
    EP_CHECK(kind >= 1 && kind <= 5, InvalidArtifact(where + name + ": unknown section kind"));
    EP_CHECK(!sections[kind].present, InvalidArtifact(where + name + ": duplicate section kind"));
    EP_CHECK(off % kWeightAlignment == 0, InvalidArtifact(where + name + ": offset " + std::to_string(off) + " is not 64-byte aligned"));
    EP_CHECK(off >= table_end && off <= size && len <= size - off,
             InvalidArtifact(where + name + ": offset " + std::to_string(off) + " + size " + std::to_string(len) +
                             " lies outside the file (" + std::to_string(size) + " bytes)"));
    for (auto& s : spans)
      EP_CHECK(off + len <= s.first || s.first + s.second <= off, InvalidArtifact(where + name + ": overlaps another section"));
    spans.emplace_back(off, len);
    EP_CHECK(crc32(d + off, len) == sec_crc, InvalidArtifact(where + name + ": checksum mismatch (corrupt data)"));
    sections[kind] = {d + off, len, true};
  }
  for (uint32_t kind = 1; kind <= 5; ++kind)
    EP_CHECK(sections[kind].present, InvalidArtifact(where + "section kind " + std::to_string(kind) + " is missing"));
  const SectionRef& weights = sections[static_cast<int>(SectionKind::kWeights)];
  weights_bytes_ = weights.size;

  // manifest
  {
    Reader r(sections[1].data, sections[1].size, "manifest");
    uint32_t n = 0;
    r.count(&n, 5);
    for (uint32_t i = 0; i < n && r.status().ok(); ++i) {
      std::string key;
      uint8_t type = 0;
      ManifestValue v;
      if (!r.str(&key) || !r.get(&type)) break;
      v.type = static_cast<ManifestType>(type);
      if (type == 1) r.get(&v.i);
      else if (type == 2) r.get(&v.f);
      else if (type == 3) r.str(&v.s);
      else r.fail("entry '" + key + "' has unknown type " + std::to_string(type));
      manifest_[key] = v;
    }
    EP_RETURN_IF_ERROR(r.status());
  }

  // graph: arena size first, tensors are checked against it
  Reader g(sections[4].data, sections[4].size, "graph");
  g.get(&arena_bytes_);
  EP_RETURN_IF_ERROR(g.status());

  // tensors
  {
    Reader r(sections[2].data, sections[2].size, "tensors");
    uint32_t n = 0;
    r.count(&n, 4 + 4 + 16 + 12);
    tensors_.resize(r.status().ok() ? n : 0);
    for (uint32_t i = 0; i < n && r.status().ok(); ++i) {
      Tensor& t = tensors_[i];
      uint8_t dtype = 0, storage = 0, rank = 0, reserved = 0;
      if (!r.str(&t.name) || !r.get(&dtype) || !r.get(&storage) || !r.get(&rank) || !r.get(&reserved)) break;
      const std::string tn = "tensor " + std::to_string(i) + " '" + t.name + "': ";
      if (!dtype_valid(dtype)) { r.fail(tn + "unknown dtype " + std::to_string(dtype)); break; }
      if (storage > 1) { r.fail(tn + "unknown storage " + std::to_string(storage)); break; }
      if (rank > kMaxRank) { r.fail(tn + "rank " + std::to_string(rank) + " exceeds " + std::to_string(kMaxRank)); break; }
      t.dtype = static_cast<DType>(dtype);
      t.storage = static_cast<Storage>(storage);
      t.rank = rank;
      t.numel = 1;
      for (int k = 0; k < rank; ++k) {
        if (!r.get(&t.dims[k])) break;
        if (t.dims[k] < 0 || (t.dims[k] > 0 && t.numel > std::numeric_limits<int64_t>::max() / 4 / t.dims[k])) {
          r.fail(tn + "bad dimension " + std::to_string(t.dims[k]));
          break;
        }
        t.numel *= t.dims[k];
      }
      if (!r.get(&t.offset) || !r.get(&t.nbytes)) break;
      if (t.nbytes != dtype_nbytes(t.dtype, t.numel)) {
        r.fail(tn + "nbytes " + std::to_string(t.nbytes) + " does not match shape " + t.shape_str() + " of " + dtype_name(t.dtype));
        break;
      }
      const uint64_t limit = t.storage == Storage::kWeight ? weights.size : arena_bytes_;
      if (t.offset > limit || t.nbytes > limit - t.offset) {
        r.fail(tn + "offset " + std::to_string(t.offset) + " + " + std::to_string(t.nbytes) + " bytes lies outside the " +
               (t.storage == Storage::kWeight ? "weights section (" : "arena (") + std::to_string(limit) + " bytes)");
        break;
      }
      if (t.storage == Storage::kWeight && t.offset % kWeightAlignment != 0) {
        r.fail(tn + "weight offset is not 64-byte aligned");
        break;
      }
      uint32_t nscales = 0, flags = 0;
      if (!r.get(&nscales) || !r.get(&flags)) break;
      if ((flags & ~uint32_t{kQuantZeroPoints}) != 0) {
        r.fail(tn + "unknown quant flags " + std::to_string(flags));
        break;
      }
      const bool zero_points = (flags & kQuantZeroPoints) != 0;
      if (!r.fits(nscales, zero_points ? 8 : 4)) break;
      t.quant.scales.resize(nscales);
      t.quant.zero_points.assign(nscales, 0);
      for (auto& s : t.quant.scales) r.get(&s);
      if (zero_points)
        for (auto& z : t.quant.zero_points) r.get(&z);
      r.get(&t.quant.axis);
      r.get(&t.quant.block_size);
      if (t.storage == Storage::kWeight) t.data = const_cast<uint8_t*>(weights.data + t.offset);
    }
    EP_RETURN_IF_ERROR(r.status());
  }
  const int64_t ntensors = static_cast<int64_t>(tensors_.size());

  // ops
  {
    Reader r(sections[3].data, sections[3].size, "ops");
    uint32_t n = 0;
    r.count(&n, 4 + 4 + 4 + 4 + 4);
    ops_.resize(r.status().ok() ? n : 0);
    for (uint32_t i = 0; i < n && r.status().ok(); ++i) {
      OpInfo& op = ops_[i];
      op.arena_bytes = arena_bytes_;
      uint32_t code = 0, nin = 0, nout = 0, nattrs = 0;
      if (!r.get(&code) || !r.str(&op.name)) break;
      const std::string on = "op " + std::to_string(i) + " '" + op.name + "': ";
      if (!op_code_valid(code)) { r.fail(on + "unknown opcode " + std::to_string(code)); break; }
      op.code = static_cast<OpCode>(code);
      if (!r.count(&nin, 4)) break;
      op.inputs.resize(nin);
      for (auto& x : op.inputs) {
        r.get(&x);
        if (x < -1 || x >= ntensors) { r.fail(on + "input tensor index " + std::to_string(x) + " out of range"); break; }
      }
      if (!r.count(&nout, 4)) break;
      if (nout == 0) { r.fail(on + "has no outputs"); break; }
      op.outputs.resize(nout);
      for (auto& x : op.outputs) {
        r.get(&x);
        if (x < 0 || x >= ntensors) { r.fail(on + "output tensor index " + std::to_string(x) + " out of range"); break; }
        if (tensors_[x].storage != Storage::kArena) { r.fail(on + "writes to constant '" + tensors_[x].name + "'"); break; }
      }
      if (!r.count(&nattrs, 4 + 1 + 4)) break;
      for (uint32_t a = 0; a < nattrs && r.status().ok(); ++a) {
        std::string key;
        uint8_t type = 0;
        uint32_t count = 0;
        if (!r.str(&key) || !r.get(&type) || !r.get(&count)) break;
        AttrValue v;
        v.type = static_cast<AttrType>(type);
        if (type == 1 || type == 3) {
          if (count > r.remaining() / 8 || (type == 1 && count != 1)) { r.fail(on + "attribute '" + key + "' has a bad count"); break; }
          v.ints.resize(count);
          for (auto& x : v.ints) r.get(&x);
        } else if (type == 2 || type == 4) {
          if (count > r.remaining() / 4 || (type == 2 && count != 1)) { r.fail(on + "attribute '" + key + "' has a bad count"); break; }
          v.floats.resize(count);
          for (auto& x : v.floats) r.get(&x);
        } else if (type == 5) {
          if (count > r.remaining()) { r.fail(on + "attribute '" + key + "' runs past the end"); break; }
          v.str.resize(count);
          for (auto& c : v.str) r.get(&c);
        } else {
          r.fail(on + "attribute '" + key + "' has unknown type " + std::to_string(type));
          break;
        }
        op.attrs[key] = std::move(v);
      }
    }
    EP_RETURN_IF_ERROR(r.status());
  }

  // graph inputs and outputs
  auto read_ids = [&](std::vector<int32_t>* ids, const char* what) {
    uint32_t n = 0;
    if (!g.count(&n, 4)) return;
    ids->resize(n);
    for (auto& x : *ids) {
      g.get(&x);
      if (x < 0 || x >= ntensors) { g.fail(std::string(what) + " tensor index " + std::to_string(x) + " out of range"); return; }
      if (tensors_[x].storage != Storage::kArena) { g.fail(std::string(what) + " '" + tensors_[x].name + "' is a constant"); return; }
    }
  };
  read_ids(&input_ids_, "input");
  read_ids(&output_ids_, "output");
  EP_RETURN_IF_ERROR(g.status());
  EP_CHECK(!output_ids_.empty(), InvalidArtifact(where + "the graph has no outputs"));

  // every run-time tensor an op reads must have been written first (by an input or an earlier op)
  std::vector<char> written(tensors_.size(), 0);
  for (int32_t id : input_ids_) written[id] = 1;
  for (const OpInfo& op : ops_) {
    for (int32_t id : op.inputs)
      if (id >= 0 && tensors_[id].storage == Storage::kArena && !written[id])
        return InvalidArtifact(where + "op '" + op.name + "' reads '" + tensors_[id].name + "' before anything writes it");
    for (int32_t id : op.outputs) written[id] = 1;
  }
  for (int32_t id : output_ids_)
    EP_CHECK(written[id], InvalidArtifact(where + "output '" + tensors_[id].name + "' is never written"));

  auto describe = [&](const std::vector<int32_t>& ids, std::vector<TensorInfo>* infos) {
    for (int32_t id : ids) {
      const Tensor& t = tensors_[id];
      infos->push_back({t.name, t.dtype, t.shape(), t.nbytes});
    }
  };
  describe(input_ids_, &inputs_);
  describe(output_ids_, &outputs_);
  return Status::Ok();
}

}  // namespace edgepack
