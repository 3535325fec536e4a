// pybind11 bindings: the one place a Status becomes a Python exception (classes from edgepack.errors).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <vector>

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

// One input or output as Python sees it, built once at load: runs compare and allocate with these.
// name / dtype stay null when the file's name is not UTF-8 or numpy has no such dtype (int4): such a
// session still loads as before, and runs take the checked path, which reports the problem.
struct PyTensor {
  py::object name;
  py::object dtype;
  DType code;
  std::vector<Py_intptr_t> shape;
};

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
    for (const auto& info : session_->inputs()) inputs_.push_back(py_tensor(info));
    for (const auto& info : session_->outputs()) outputs_.push_back(py_tensor(info));
    fast_ = std::all_of(inputs_.begin(), inputs_.end(), [](const PyTensor& t) { return t.name && t.dtype; }) &&
            std::all_of(outputs_.begin(), outputs_.end(), [](const PyTensor& t) { return t.name && t.dtype; });
  }

  // The fast path of edgepack.runtime.Session.run: `feeds` is a plain dict holding exactly the inputs'
  // names, each a C-contiguous ndarray of the input's shape and dtype. Returns the outputs as a dict
  // (name -> new array), or None when `feeds` is anything else: the Python side then checks and
  // converts the feeds itself, with its error messages, and calls run().
  py::object run_feeds(py::handle feeds) {
    PyObject* dict = feeds.ptr();
    if (!fast_ || !PyDict_CheckExact(dict) || PyDict_GET_SIZE(dict) != static_cast<Py_ssize_t>(inputs_.size()))
      return py::none();
    const auto& api = py::detail::npy_api::get();
    Pointers<const void*> in_ptrs(inputs_.size());
    // The dict holds the arrays while the GIL is released, but another thread could replace its items
    // meanwhile: hold our own references.
    Pointers<py::object> keep(inputs_.size());
    for (size_t i = 0; i < inputs_.size(); ++i) {
      const PyTensor& spec = inputs_[i];
      PyObject* value = PyDict_GetItemWithError(dict, spec.name.ptr());  // borrowed
      if (value == nullptr) {
        if (PyErr_Occurred()) throw py::error_already_set();  // e.g. an unhashable key's __eq__ raised
        return py::none();
      }
      if (!api.PyArray_Check_(value)) return py::none();
      const auto* array = py::detail::array_proxy(value);
      if (!(array->flags & py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_) ||
          array->nd != static_cast<int>(spec.shape.size()) ||
          !std::equal(spec.shape.begin(), spec.shape.end(), array->dimensions) ||
          !(array->descr == spec.dtype.ptr() || api.PyArray_EquivTypes_(array->descr, spec.dtype.ptr())))
        return py::none();
      in_ptrs[i] = array->data;
      keep[i] = py::reinterpret_borrow<py::object>(value);
    }
    Pointers<void*> out_ptrs(outputs_.size());
    py::dict result;
    for (size_t i = 0; i < outputs_.size(); ++i) {
      py::object out = new_array(outputs_[i]);
      out_ptrs[i] = py::detail::array_proxy(out.ptr())->data;
      if (PyDict_SetItem(result.ptr(), outputs_[i].name.ptr(), out.ptr()) != 0) throw py::error_already_set();
    }
    execute(in_ptrs.data(), out_ptrs.data(), nullptr);
    return std::move(result);
  }

  // Inputs arrive already checked and converted by edgepack.runtime (C-contiguous, right dtype and
  // shape); sizes are checked again here so a direct caller cannot make the runtime overread.
  py::tuple run(const std::vector<py::array>& inputs, bool profile) {
    const auto& infos = session_->inputs();
    if (inputs.size() != infos.size())
      throw py::value_error("expected " + std::to_string(infos.size()) + " inputs, got " + std::to_string(inputs.size()));
    Pointers<const void*> in_ptrs(inputs.size());
    for (size_t i = 0; i < inputs.size(); ++i) {
      const py::array& a = inputs[i];
      if (!(a.flags() & py::array::c_style) || static_cast<uint64_t>(a.nbytes()) != infos[i].nbytes)
        throw py::value_error("input '" + infos[i].name + "' must be a C-contiguous array of " +
                              std::to_string(infos[i].nbytes) + " bytes");
      in_ptrs[i] = a.data();
    }
    py::list outputs(outputs_.size());
    Pointers<void*> out_ptrs(outputs_.size());
    for (size_t i = 0; i < outputs_.size(); ++i) {
      py::object out = new_array(outputs_[i]);
      out_ptrs[i] = py::detail::array_proxy(out.ptr())->data;
      PyList_SET_ITEM(outputs.ptr(), i, out.release().ptr());
    }
    RunStats stats;
    execute(in_ptrs.data(), out_ptrs.data(), profile ? &stats : nullptr);
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
  // A few items on the stack (every model so far has at most a handful of inputs and outputs).
  template <typename T>
  class Pointers {
   public:
    explicit Pointers(size_t n) : heap_(n > kInline ? n : 0) {}
    T& operator[](size_t i) { return data()[i]; }
    T* data() { return heap_.empty() ? inline_ : heap_.data(); }

   private:
    static constexpr size_t kInline = 8;
    T inline_[kInline]{};
    std::vector<T> heap_;
  };

  static PyTensor py_tensor(const TensorInfo& info) {
    PyTensor t{py::object(), py::object(), info.dtype, std::vector<Py_intptr_t>(info.shape.begin(), info.shape.end())};
    try {
      t.name = py::str(info.name);
    } catch (const py::error_already_set&) {}
    try {
      t.dtype = py::dtype(dtype_name(info.dtype));
    } catch (const py::error_already_set&) {}
    return t;
  }

  // A new C-contiguous array for `spec` (uninitialised: the run writes all of it).
  static py::object new_array(const PyTensor& spec) {
    if (!spec.dtype) py::dtype(dtype_name(spec.code));  // raises numpy's TypeError, as before
    const auto& api = py::detail::npy_api::get();
    PyObject* descr = spec.dtype.ptr();
    Py_INCREF(descr);  // NewFromDescr steals it
    PyObject* array = api.PyArray_NewFromDescr_(api.PyArray_Type_, descr, static_cast<int>(spec.shape.size()),
                                                spec.shape.data(), nullptr, nullptr, 0, nullptr);
    if (array == nullptr) throw py::error_already_set();
    return py::reinterpret_steal<py::object>(array);
  }

  void execute(const void* const* inputs, void* const* outputs, RunStats* stats) {
    Status st;
    {
      py::gil_scoped_release release;
      st = session_->run(inputs, outputs, stats);
    }
    if (!st.ok()) raise(st);
  }

  std::unique_ptr<Session> session_;
  std::vector<PyTensor> inputs_, outputs_;
  bool fast_ = false;  // every name and dtype has a Python object: run_feeds may be used
};

}  // namespace

PYBIND11_MODULE(_native, m) {
  m.doc() = "edgepack C++ runtime";
  py::class_<PySession>(m, "Session")
      .def(py::init<const std::string&, int>(), py::arg("path"), py::arg("num_threads") = 0)
      .def("run", &PySession::run, py::arg("inputs"), py::arg("profile") = false)
      .def("run_feeds", &PySession::run_feeds, py::arg("feeds"))
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
  // For tests: the loader's CRC and the portable one, over any bytes-like object.
  m.def("crc32", [](py::buffer data, uint32_t crc, bool portable) {
    const py::buffer_info info = data.request();
    const auto* p = static_cast<const uint8_t*>(info.ptr);
    const size_t n = static_cast<size_t>(info.size * info.itemsize);
    py::gil_scoped_release release;
    return portable ? crc32_portable(p, n, crc) : crc32(p, n, crc);
  }, py::arg("data"), py::arg("crc") = 0, py::arg("portable") = false);
  m.def("dtype_names", [] {
    py::dict out;
    for (int code = 0; code < 256; ++code)
      if (dtype_valid(static_cast<uint8_t>(code))) out[py::int_(code)] = dtype_name(static_cast<DType>(code));
    return out;
  });
}
