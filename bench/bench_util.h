// Shared helpers for the benchmarks: wall-clock timing and the machine's memory read bandwidth,
// measured in the same run as the figures it is compared with.
#pragma once

#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <new>
#include <string>
#include <vector>

#include "backend/cpu/matmul.h"
#include "core/thread_pool.h"

namespace fc::bench {

using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Sums n 64-bit words with 4 independent 128-bit accumulators (plain SSE2, baseline x86-64).
// Best-of-`reps` wall time of fn(), seconds per call.
template <typename F>
double best_time(int reps, F&& fn) {
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = Clock::now();
    fn();
    best = std::min(best, seconds_since(t0));
  }
  return best;
}

inline uint64_t sum_words(const uint64_t* p, int64_t n) {
  typedef uint64_t v2 __attribute__((vector_size(16)));
  v2 a{0, 0}, b{0, 0}, c{0, 0}, d{0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    // One line ahead-of-use per iteration, 2 KiB out: the hardware prefetcher alone leaves a
    // single core well short of what it can pull (the matmul kernels prefetch the same way).
    __builtin_prefetch(p + i + 256);
    v2 t0, t1, t2, t3;
    __builtin_memcpy(&t0, p + i, 16);
    __builtin_memcpy(&t1, p + i + 2, 16);
    __builtin_memcpy(&t2, p + i + 4, 16);
    __builtin_memcpy(&t3, p + i + 6, 16);
    a += t0;
    b += t1;
    c += t2;
    d += t3;
  }
  const v2 s = a + b + c + d;
  uint64_t r = s[0] + s[1];
  for (; i < n; ++i) r += p[i];
  return r;
}

// Multi-threaded read bandwidth (bytes/s, best of `reps`) over a buffer of `bytes`, first touched
// by the pool's threads so pages sit near their readers.
class BandwidthProbe {
 public:
  // The buffer is on transparent huge pages where the kernel has them (madvise), as the CPU
  // backend's weights are (cpu/weight_arena.h): on 4 KiB pages the probe would measure TLB misses
  // too (bench_bandwidth on the Xeon guest of docs/benchmarks.md: 24-34 GB/s before, 33-38 since).
  BandwidthProbe(ThreadPool& pool, size_t bytes) : pool_(pool), n_(bytes / 8) {
    map_size_ = n_ * 8 + (size_t{2} << 20);
    void* m =
        ::mmap(nullptr, map_size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) throw std::bad_alloc();
    map_ = m;
    const uintptr_t a =
        (reinterpret_cast<uintptr_t>(m) + (size_t{2} << 20) - 1) & ~((uintptr_t{2} << 20) - 1);
    buf_ = reinterpret_cast<uint64_t*>(a);
    ::madvise(buf_, n_ * 8, MADV_HUGEPAGE);
    partial_.assign(static_cast<size_t>(pool.size()), 0);
    pool_.parallel_for(static_cast<int64_t>(n_), 1 << 16, [&](int64_t b, int64_t e, int) {
      for (int64_t i = b; i < e; ++i) buf_[i] = static_cast<uint64_t>(i);
    });
  }
  BandwidthProbe(const BandwidthProbe&) = delete;
  BandwidthProbe& operator=(const BandwidthProbe&) = delete;
  ~BandwidthProbe() { ::munmap(map_, map_size_); }
  double measure(int reps = 3) {
    double best = 1e30;
    for (int r = 0; r < reps; ++r) {
      const auto t0 = Clock::now();
      pool_.parallel_for(static_cast<int64_t>(n_), 1 << 16, [&](int64_t b, int64_t e, int th) {
        partial_[static_cast<size_t>(th)] += sum_words(buf_ + b, e - b);
      });
      best = std::min(best, seconds_since(t0));
    }
    return static_cast<double>(n_ * 8) / best;
  }
  uint64_t checksum() const {
    uint64_t s = 0;
    for (uint64_t p : partial_) s += p;
    return s;
  }

 private:
  ThreadPool& pool_;
  size_t n_ = 0, map_size_ = 0;
  void* map_ = nullptr;
  uint64_t* buf_ = nullptr;
  std::vector<uint64_t> partial_;
};

// --isa / --nvfp4-isa values: the kernel family names nvfp4_matmul_isa() prints; "auto" (or
// anything unknown, which the caller reports) is kAuto. *ok is false for an unknown name.
inline cpu::MatmulIsa isa_from_name(const std::string& s, bool* ok) {
  using cpu::MatmulIsa;
  *ok = true;
  if (s == "amx-bf16") return MatmulIsa::kAmx;
  if (s == "avx512-bf16") return MatmulIsa::kAvx512Bf16;
  if (s == "avx512-vnni") return MatmulIsa::kAvx512Vnni;
  if (s == "avx512") return MatmulIsa::kAvx512;
  if (s == "avx2-i16") return MatmulIsa::kAvx2I16;
  if (s == "avx2") return MatmulIsa::kAvx2;
  if (s == "scalar") return MatmulIsa::kScalar;
  *ok = s == "auto";
  return MatmulIsa::kAuto;
}

}  // namespace fc::bench
