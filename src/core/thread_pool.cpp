#include "core/thread_pool.h"

#include <sched.h>

#include <algorithm>
#include <chrono>

namespace fc {

int hardware_threads() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

ThreadPool::ThreadPool(int n_threads) : n_threads_(std::max(1, n_threads)) {
  for (int i = 1; i < n_threads_; ++i) threads_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_.store(true);
  }
  cv_start_.notify_all();
  for (auto& t : threads_) t.join();
}

namespace {

constexpr int kSpinHotMicros = 20;  // pure spinning before yielding
constexpr int kSpinMicros = 200;    // then yielding spins before sleeping on the condvar

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// Spins until pred() or about `us` microseconds have passed; returns pred(). After the first few
// microseconds the spinner yields the CPU between checks, so on an oversubscribed machine (CI runs
// tests in parallel; HTTP threads) it does not starve threads doing real work.
template <typename Pred>
bool spin_until(Pred pred, int us) {
  const auto start = std::chrono::steady_clock::now();
  const auto end = start + std::chrono::microseconds(us);
  const auto yield_after = start + std::chrono::microseconds(kSpinHotMicros);
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (pred()) return true;
      cpu_relax();
    }
    const auto now = std::chrono::steady_clock::now();
    if (now >= end) return pred();
    if (now >= yield_after) sched_yield();
  }
}

}  // namespace

void ThreadPool::worker(int index) {
  uint64_t seen = 0;
  for (;;) {
    auto ready = [&] {
      return stop_.load(std::memory_order_acquire) ||
             generation_.load(std::memory_order_acquire) != seen;
    };
    if (!spin_until(ready, kSpinMicros)) {
      std::unique_lock<std::mutex> lk(mu_);
      cv_start_.wait(lk, ready);
    }
    if (stop_.load(std::memory_order_acquire)) return;
    seen = generation_.load(std::memory_order_acquire);
    const std::function<void(int64_t, int64_t, int)>* job = job_;
    const int64_t n = job_n_, chunk = job_chunk_;
    const int64_t b = std::min(n, chunk * index), e = std::min(n, b + chunk);
    if (b < e) {
      try {
        (*job)(b, e, index);
      } catch (...) {
        std::lock_guard<std::mutex> lk(mu_);
        if (!error_) error_ = std::current_exception();
      }
    }
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard<std::mutex> lk(mu_);  // the caller is spinning or inside its wait
      cv_done_.notify_one();
    }
  }
}

void ThreadPool::parallel_for(int64_t n, int64_t grain,
                              const std::function<void(int64_t, int64_t, int)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  const int64_t pieces = (n + grain - 1) / grain;
  const int64_t workers = std::min<int64_t>(n_threads_, pieces);
  if (workers <= 1) {
    fn(0, n, 0);
    return;
  }
  // Every worker gets a contiguous range of whole grains; the caller takes range 0.
  const int64_t chunk = ((pieces + workers - 1) / workers) * grain;
  {
    std::lock_guard<std::mutex> lk(mu_);
    job_ = &fn;
    job_n_ = n;
    job_chunk_ = chunk;
    error_ = nullptr;
    pending_.store(n_threads_ - 1, std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);
  }
  cv_start_.notify_all();
  std::exception_ptr mine;
  try {
    fn(0, std::min(n, chunk), 0);
  } catch (...) {
    mine = std::current_exception();
  }
  auto done = [&] { return pending_.load(std::memory_order_acquire) == 0; };
  if (!spin_until(done, kSpinMicros)) {
    std::unique_lock<std::mutex> lk(mu_);
    cv_done_.wait(lk, done);
  }
  std::lock_guard<std::mutex> lk(mu_);
  job_ = nullptr;
  if (mine) std::rethrow_exception(mine);
  if (error_) std::rethrow_exception(error_);
}

void ThreadPool::for_each(int64_t n, const std::function<void(int64_t)>& fn) {
  parallel_for(n, 1, [&](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e; ++i) fn(i);
  });
}

}  // namespace fc
