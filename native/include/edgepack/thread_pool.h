// A small fixed thread pool: parallel_for splits [0, n) into one contiguous chunk per thread, which the
// caller and the workers claim, so that a worker the OS has not scheduled yet (the machine may be
// shared) delays nothing: the caller takes its chunk too. No allocation per call. When another run already owns
// the pool (concurrent sessions or runs), the work runs inline on the caller instead of waiting.
// Workers and the caller spin briefly before sleeping: an op takes tens of microseconds, and a
// condition-variable wake-up costs about as much, so sleeping between ops would eat the gain.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace edgepack {

// A non-owning callable reference (no allocation, unlike std::function).
class RangeFn {
 public:
  template <class F>
  RangeFn(const F& f) : obj_(&f), call_([](const void* o, int64_t b, int64_t e) { (*static_cast<const F*>(o))(b, e); }) {}
  void operator()(int64_t begin, int64_t end) const { call_(obj_, begin, end); }

 private:
  const void* obj_;
  void (*call_)(const void*, int64_t, int64_t);
};

class ThreadPool {
 public:
  explicit ThreadPool(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return static_cast<int>(workers_.size()) + 1; }
  // Calls fn(begin, end) over a static partition of [0, n); `grain` is the smallest chunk worth a thread.
  void parallel_for(int64_t n, RangeFn fn, int64_t grain = 1);
  // Gets sleeping workers spinning again, ahead of the parallel_for calls of a run: a worker idle for
  // longer than its spin sleeps, and a run's first parallel op would otherwise wait for its wake-up.
  void wake();

 private:
  void worker_loop();
  // Claims and runs chunks of the job of `generation` until none is left (or a newer job replaced it).
  void run_chunks(uint64_t generation, const RangeFn& fn, int64_t n, int chunks);
  std::vector<std::thread> workers_;
  std::mutex busy_;                 // held by the run that owns the workers
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  // job_, job_n_ and job_chunks_ are written and read under mutex_; generation_ changes under
  // mutex_ too but may be polled without it.
  const RangeFn* job_ = nullptr;
  int64_t job_n_ = 0;
  int job_chunks_ = 0;
  std::atomic<uint64_t> generation_{0};
  // The next chunk to claim, tagged with the low 32 bits of its job's generation in the high half: a
  // worker still holding an old job's pointer cannot claim a chunk of a newer one.
  std::atomic<uint64_t> claim_{0};
  std::atomic<int> pending_{0};   // chunks of the current job not finished yet
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> wakes_{0};  // bumped by wake(): a sleeping worker's cue to spin again
};

}  // namespace edgepack
