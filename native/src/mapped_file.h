// A read-only memory map of an artifact: weights are used in place, never copied.
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>

#include "edgepack/status.h"

namespace edgepack {

class MappedFile {
 public:
  ~MappedFile() {
    if (data_ && size_) munmap(const_cast<uint8_t*>(data_), size_);
  }
  static Status open(const std::string& path, std::unique_ptr<MappedFile>* out) {
    int fd = ::open(path.c_str(), O_RDONLY);
    if (fd < 0) return IoError("cannot open '" + path + "': " + std::strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      ::close(fd);
      return IoError("'" + path + "' is not a regular file");
    }
    auto file = std::unique_ptr<MappedFile>(new MappedFile());
    file->size_ = static_cast<size_t>(st.st_size);
    if (file->size_ > 0) {
      void* p = mmap(nullptr, file->size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (p == MAP_FAILED) {
        ::close(fd);
        return IoError("cannot mmap '" + path + "': " + std::strerror(errno));
      }
      file->data_ = static_cast<const uint8_t*>(p);
    }
    ::close(fd);
    *out = std::move(file);
    return Status::Ok();
  }
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

  // Drops the whole pages of [p, p + n) from this process's resident memory. The mapping is private and
  // read-only, so nothing is lost: a page read again faults back in from the page cache (or the file).
  // Kernels that pack a weight at prepare() never read the mapped copy again, so releasing it keeps the
  // artifact's bytes from counting twice (mapped + packed) in RSS.
  void release(const uint8_t* p, size_t n) const {
    static const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
    const uintptr_t begin = (reinterpret_cast<uintptr_t>(p) + page - 1) / page * page;
    const uintptr_t end = (reinterpret_cast<uintptr_t>(p) + n) / page * page;
    if (p >= data_ && p + n <= data_ + size_ && end > begin)
      madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);  // advice: a failure changes nothing
  }

 private:
  MappedFile() = default;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};


}  // namespace edgepack
