// The executor: prepares every op's kernel once at load, then runs the op list over an arena.
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <new>
#include <thread>

#include "edgepack/runtime.h"
#include "src/mapped_file.h"

namespace edgepack {

// One arena: the planned memory of every run-time tensor plus kernel scratch, and the tensor table
// with data pointers resolved into it. The per-op pointer lists are built once, so run() allocates
// nothing.
struct Arena {
  uint8_t* memory = nullptr;
  std::vector<Tensor> tensors;
  std::vector<std::vector<const Tensor*>> op_inputs;
  std::vector<std::vector<Tensor*>> op_outputs;
  ~Arena() { std::free(memory); }
};

namespace {
constexpr uint64_t kAlign = 64;
uint64_t align_up(uint64_t n) { return (n + kAlign - 1) / kAlign * kAlign; }
}  // namespace

Session::~Session() = default;
uint64_t Session::file_bytes() const { return file_ ? file_->size() : 0; }

Status Session::open(const std::string& path, const SessionOptions& options, std::unique_ptr<Session>* out) {
  std::unique_ptr<Session> session(new Session());
  EP_RETURN_IF_ERROR(session->parse(path));
  int threads = options.num_threads;
  EP_CHECK(threads >= 0 && threads <= 256, InvalidArgument("num_threads must be 0..256, got " + std::to_string(threads)));
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  session->pool_ = std::make_unique<ThreadPool>(threads);
  EP_RETURN_IF_ERROR(session->prepare());
  // Create the first arena now: a model whose arena cannot be allocated fails at load, not at run.
  std::unique_ptr<Arena> arena = session->make_arena();
  EP_CHECK(arena, Status(StatusCode::kRuntimeError, "cannot allocate the " + std::to_string(session->arena_bytes_) +
                                                        "-byte arena"));
  session->free_arenas_.push_back(std::move(arena));
  session->arenas_created_ = 1;
  *out = std::move(session);
  return Status::Ok();
}

Status Session::prepare() {
  kernels_.reserve(ops_.size());
  for (const OpInfo& op : ops_) {
    std::vector<const Tensor*> ins, outs;
    for (int32_t id : op.inputs) ins.push_back(id >= 0 ? &tensors_[id] : nullptr);
    for (int32_t id : op.outputs) outs.push_back(&tensors_[id]);
    std::unique_ptr<OpKernel> kernel = make_kernel(op.code, ins);
    EP_CHECK(kernel, Unsupported(std::string("op '") + op.name + "': no kernel for " + op_name(op.code) + " in this build"));
    EP_RETURN_IF_ERROR(kernel->prepare(op, ins, outs));
    // Weights the kernel packed are never read from the mapping again; weights used in place fault
    // back in on the first run. Either way only what runs stays resident (docs/architecture.md).
    if (file_)
      for (const Tensor* t : ins)
        if (t != nullptr && t->storage == Storage::kWeight) file_->release(static_cast<const uint8_t*>(t->data), t->nbytes);
    scratch_bytes_ = std::max<uint64_t>(scratch_bytes_, align_up(kernel->scratch_bytes));
    kernels_.push_back(std::move(kernel));
  }
  return Status::Ok();
}

std::unique_ptr<Arena> Session::make_arena() const {
  auto arena = std::make_unique<Arena>();
  const uint64_t total = align_up(arena_bytes_) + scratch_bytes_;
  arena->memory = static_cast<uint8_t*>(std::aligned_alloc(kAlign, std::max<uint64_t>(total, kAlign)));
  if (!arena->memory) return nullptr;
  arena->tensors = tensors_;
  for (Tensor& t : arena->tensors)
    if (t.storage == Storage::kArena) t.data = arena->memory + t.offset;
  arena->op_inputs.resize(ops_.size());
  arena->op_outputs.resize(ops_.size());
  for (size_t i = 0; i < ops_.size(); ++i) {
    for (int32_t id : ops_[i].inputs) arena->op_inputs[i].push_back(id >= 0 ? &arena->tensors[id] : nullptr);
    for (int32_t id : ops_[i].outputs) arena->op_outputs[i].push_back(&arena->tensors[id]);
  }
  return arena;
}

size_t Session::num_arenas() const {
  std::lock_guard<std::mutex> lock(arenas_mutex_);
  return arenas_created_;
}

Status Session::run(const void* const* inputs, void* const* outputs, RunStats* stats) const {
  std::unique_ptr<Arena> arena;
  {
    std::lock_guard<std::mutex> lock(arenas_mutex_);
    if (!free_arenas_.empty()) {
      arena = std::move(free_arenas_.back());
      free_arenas_.pop_back();
    }
  }
  if (!arena) {
    arena = make_arena();
    EP_CHECK(arena, RuntimeError("cannot allocate another " + std::to_string(arena_bytes_) + "-byte arena"));
    std::lock_guard<std::mutex> lock(arenas_mutex_);
    ++arenas_created_;
  }
  using clock = std::chrono::steady_clock;
  const auto run_start = clock::now();
  pool_->wake();  // workers asleep since the last run start spinning while the inputs are copied
  for (size_t i = 0; i < input_ids_.size(); ++i) {
    const Tensor& t = arena->tensors[input_ids_[i]];
    std::memcpy(t.data, inputs[i], t.nbytes);
  }
  RunContext ctx;
  ctx.pool = pool_.get();
  ctx.scratch = arena->memory + align_up(arena_bytes_);
  if (stats) stats->op_seconds.assign(ops_.size(), 0.0);
  Status status;
  for (size_t i = 0; i < ops_.size() && status.ok(); ++i) {
    if (stats) {
      const auto t0 = clock::now();
      status = kernels_[i]->run(arena->op_inputs[i], arena->op_outputs[i], ctx);
      stats->op_seconds[i] = std::chrono::duration<double>(clock::now() - t0).count();
    } else {
      status = kernels_[i]->run(arena->op_inputs[i], arena->op_outputs[i], ctx);
    }
  }
  if (status.ok()) {
    for (size_t i = 0; i < output_ids_.size(); ++i) {
      const Tensor& t = arena->tensors[output_ids_[i]];
      std::memcpy(outputs[i], t.data, t.nbytes);
    }
  }
  if (stats) stats->total_seconds = std::chrono::duration<double>(clock::now() - run_start).count();
  std::lock_guard<std::mutex> lock(arenas_mutex_);
  free_arenas_.push_back(std::move(arena));
  return status;
}

}  // namespace edgepack
