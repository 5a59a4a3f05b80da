// A fixed set of worker threads for data-parallel loops. Not a task queue: parallel_for blocks the
// caller (who also works) until every chunk is done. One parallel_for at a time per pool; the pool
// is owned by whoever runs the forward pass and passed down explicitly.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace fc {

class ThreadPool {
 public:
  // n_threads counts the calling thread: ThreadPool(1) runs everything inline.
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Calls fn(begin, end, thread_index) over [0, n) split into at most size() contiguous ranges of
  // whole `grain`-sized pieces. Exceptions thrown by fn are rethrown in the caller.
  void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t, int)>& fn);

  // Convenience: fn(i) for each i in [0, n).
  void for_each(int64_t n, const std::function<void(int64_t)>& fn);

 private:
  void worker(int index);

  int n_threads_;
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable cv_start_, cv_done_;
  // A job is published by writing job_* and then bumping generation_ (under mu_, so sleepers
  // cannot miss it). Workers and the caller first spin briefly on the atomics (decode steps issue
  // hundreds of short parallel loops; a futex wake-up costs more than many of them take), then
  // sleep on the condition variables.
  const std::function<void(int64_t, int64_t, int)>* job_ = nullptr;
  int64_t job_n_ = 0, job_chunk_ = 0;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
  std::exception_ptr error_;
};

// Number of hardware threads the process may use (sched affinity aware).
int hardware_threads();

}  // namespace fc
