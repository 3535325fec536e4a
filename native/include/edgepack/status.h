// Errors are values: the runtime never throws. A Status carries a code and a message that names the
// problem; native/python/ is the one place a Status becomes a Python exception.
#pragma once

#include <string>
#include <utility>

namespace edgepack {

enum class StatusCode : int {
  kOk = 0,
  kInvalidArtifact = 1,  // the .epk is corrupt, truncated, or inconsistent
  kInvalidArgument = 2,  // the caller passed a wrong name, shape or dtype
  kUnsupported = 3,      // a valid file asks for something this build cannot do
  kIoError = 4,          // open / mmap / read failed
  kRuntimeError = 5,     // a run-time data error (e.g. an index out of range)
};

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status Ok() { return Status(); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status InvalidArtifact(std::string m) { return Status(StatusCode::kInvalidArtifact, std::move(m)); }
inline Status InvalidArgument(std::string m) { return Status(StatusCode::kInvalidArgument, std::move(m)); }
inline Status Unsupported(std::string m) { return Status(StatusCode::kUnsupported, std::move(m)); }
inline Status IoError(std::string m) { return Status(StatusCode::kIoError, std::move(m)); }
inline Status RuntimeError(std::string m) { return Status(StatusCode::kRuntimeError, std::move(m)); }

#define EP_RETURN_IF_ERROR(expr)          \
  do {                                    \
    ::edgepack::Status _st = (expr);      \
    if (!_st.ok()) return _st;            \
  } while (0)

#define EP_CHECK(cond, make_status)       \
  do {                                    \
    if (!(cond)) return (make_status);    \
  } while (0)

}  // namespace edgepack
