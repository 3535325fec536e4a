// pybind11 bindings: the one place a Status becomes a Python exception (classes from edgepack.errors).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "edgepack/runtime.h"

namespace py = pybind11;
using namespace edgepack;

namespace {

[[noreturn]] void raise(const Status& status) {
  py::module_ errors = py::module_::import("edgepack.errors");
  const char* cls = "EdgepackError";
  switch (status.code()) {
    case StatusCode::kInvalidArtifact: cls = "ArtifactError"; break;
    case StatusCode::kUnsupported: cls = "UnsupportedError"; break;
    case StatusCode::kRuntimeError: cls = "RunError"; break;
    case StatusCode::kIoError: throw py::value_error(status.message());
    case StatusCode::kInvalidArgument: throw py::value_error(status.message());
    default: break;
  }
  py::set_error(errors.attr(cls), status.message().c_str());
  throw py::error_already_set();
}

py::dict tensor_info(const TensorInfo& info) {
  py::dict d;
  d["name"] = info.name;
  d["shape"] = py::tuple(py::cast(info.shape));
  d["dtype"] = dtype_name(info.dtype);
  return d;
}

class PySession {
 public:
  PySession(const std::string& path, int num_threads) {
    SessionOptions options;
    options.num_threads = num_threads;
    Status st;
    {
      py::gil_scoped_release release;
      st = Session::open(path, options, &session_);
    }
    if (!st.ok()) raise(st);
  }

  // Inputs arrive already checked and converted by edgepack.runtime (C-contiguous, right dtype and
  // shape); sizes are checked again here so a direct caller cannot make the runtime overread.
  py::tuple run(const std::vector<py::array>& inputs, bool profile) {
    const auto& infos = session_->inputs();
    if (inputs.size() != infos.size())
      throw py::value_error("expected " + std::to_string(infos.size()) + " inputs, got " + std::to_string(inputs.size()));
    std::vector<const void*> in_ptrs;
    for (size_t i = 0; i < inputs.size(); ++i) {
      const py::array& a = inputs[i];
      if (!(a.flags() & py::array::c_style) || static_cast<uint64_t>(a.nbytes()) != infos[i].nbytes)
        throw py::value_error("input '" + infos[i].name + "' must be a C-contiguous array of " +
                              std::to_string(infos[i].nbytes) + " bytes");
      in_ptrs.push_back(a.data());
    }
    py::list outputs;
    std::vector<void*> out_ptrs;
    for (const auto& info : session_->outputs()) {
      py::array out(py::dtype(dtype_name(info.dtype)), info.shape);
      out_ptrs.push_back(out.mutable_data());
      outputs.append(out);
    }
    RunStats stats;
    Status st;
    {
      py::gil_scoped_release release;
      st = session_->run(in_ptrs.data(), out_ptrs.data(), profile ? &stats : nullptr);
    }
    if (!st.ok()) raise(st);
    return py::make_tuple(outputs, profile ? py::cast(stats.op_seconds) : py::none());
  }

  py::list infos(bool inputs) const {
    py::list out;
    for (const auto& info : inputs ? session_->inputs() : session_->outputs()) out.append(tensor_info(info));
    return out;
  }

  py::list ops() const {
    py::list out;
    for (const auto& op : session_->ops()) out.append(py::make_tuple(op.name, op_name(op.code)));
    return out;
  }

  py::dict manifest() const {
    py::dict out;
    for (const auto& [key, value] : session_->manifest()) {
      if (value.type == ManifestType::kI64) out[key.c_str()] = value.i;
      else if (value.type == ManifestType::kF64) out[key.c_str()] = value.f;
      else out[key.c_str()] = value.s;
    }
    return out;
  }

  const Session& session() const { return *session_; }

 private:
  std::unique_ptr<Session> session_;
};

}  // namespace

PYBIND11_MODULE(_native, m) {
  m.doc() = "edgepack C++ runtime";
  py::class_<PySession>(m, "Session")
      .def(py::init<const std::string&, int>(), py::arg("path"), py::arg("num_threads") = 0)
      .def("run", &PySession::run, py::arg("inputs"), py::arg("profile") = false)
      .def_property_readonly("inputs", [](const PySession& s) { return s.infos(true); })
      .def_property_readonly("outputs", [](const PySession& s) { return s.infos(false); })
      .def_property_readonly("ops", &PySession::ops)
      .def_property_readonly("manifest", &PySession::manifest)
      .def_property_readonly("arena_bytes", [](const PySession& s) { return s.session().arena_bytes(); })
      .def_property_readonly("scratch_bytes", [](const PySession& s) { return s.session().scratch_bytes(); })
      .def_property_readonly("weights_bytes", [](const PySession& s) { return s.session().weights_bytes(); })
      .def_property_readonly("num_arenas", [](const PySession& s) { return s.session().num_arenas(); })
      .def_property_readonly("num_threads", [](const PySession& s) { return s.session().num_threads(); });
  m.def("op_names", [] {
    py::dict out;
    for (uint32_t code = 0; code < 1024; ++code)
      if (op_code_valid(code)) out[py::int_(code)] = op_name(static_cast<OpCode>(code));
    return out;
  });
  m.def("dtype_names", [] {
    py::dict out;
    for (int code = 0; code < 256; ++code)
      if (dtype_valid(static_cast<uint8_t>(code))) out[py::int_(code)] = dtype_name(static_cast<DType>(code));
    return out;
  });
}
