// Backend-owned copies of checkpoint tensors for the CPU backend: anonymous memory in 2 MiB-aligned
// chunks marked for transparent huge pages (madvise MADV_HUGEPAGE), 64-byte aligned tensors.
//
// Why: decode streams every weight once per token, and on 4 KiB pages that is a TLB miss per 4 KiB
// (two-level in a VM). On the Intel Xeon guest of docs/benchmarks.md (bench_model
// [--cpu-weights-mmap]): E2B decode 11.8 tok/s from the mapping, 14.2 from the copies; 26B-A4B's
// BF16 head 104 ms per token from long-cached page-cache pages, 51 ms copied. The copy costs load
// time (a parallel memcpy) and, while the page cache still holds the file, memory the kernel can
// reclaim.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <utility>
#include <vector>

#include "core/thread_pool.h"

namespace fc::cpu {

class WeightArena {
 public:
  WeightArena() = default;
  WeightArena(const WeightArena&) = delete;
  WeightArena& operator=(const WeightArena&) = delete;
  ~WeightArena();

  // A copy of [src, src + bytes), 64-byte aligned, valid for the arena's lifetime; the same
  // (src, bytes) again returns the same copy (a tied embedding / head is stored once). Large
  // copies are split over `pool`. nullptr or 0 bytes: src itself. If the memory cannot be mapped
  // or MemAvailable would drop below max(1 GiB, RAM / 8): src itself (the caller keeps working on
  // the original bytes).
  const void* copy(const void* src, size_t bytes, ThreadPool& pool);

  // Bytes held in copies (what the arena added to the process).
  size_t bytes() const;
  // Whether a copy was refused for want of memory (that tensor and all later ones stay in place).
  bool refused() const;

 private:
  struct Chunk {
    uint8_t* map = nullptr;  // what mmap returned (munmap'ed in the destructor)
    size_t map_size = 0;
    uint8_t* base = nullptr;  // 2 MiB aligned start inside the mapping
    size_t size = 0, used = 0;
  };
  // Room for `bytes` at 64-byte alignment: the current chunk or a new one.
  uint8_t* reserve(size_t bytes);

  mutable std::mutex mu_;
  std::vector<Chunk> chunks_;
  std::map<std::pair<const void*, size_t>, const void*> copies_;
  size_t held_ = 0;
  bool refused_ = false;
};

}  // namespace fc::cpu
