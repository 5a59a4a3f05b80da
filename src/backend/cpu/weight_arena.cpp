#include "backend/cpu/weight_arena.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

namespace fc::cpu {
namespace {

constexpr size_t kHuge = size_t{2} << 20;     // transparent huge page size on x86-64 / arm64
constexpr size_t kChunk = size_t{256} << 20;  // chunk for small tensors (a few MiB unused at most)
constexpr size_t kAlign = 64;
constexpr size_t kCopyPiece = size_t{8} << 20;  // bytes per parallel memcpy piece

size_t round_up(size_t n, size_t a) {
  return (n + a - 1) / a * a;
}

// /proc/meminfo's MemAvailable and MemTotal (bytes; 0 where unknown): memory the kernel can give
// without swapping, page cache included.
std::pair<size_t, size_t> mem_available_total() {
  size_t avail = 0, total = 0;
  if (FILE* f = std::fopen("/proc/meminfo", "r")) {
    char line[128];
    while (std::fgets(line, sizeof line, f)) {
      unsigned long long kb = 0;
      if (std::sscanf(line, "MemAvailable: %llu kB", &kb) == 1)
        avail = static_cast<size_t>(kb) << 10;
      if (std::sscanf(line, "MemTotal: %llu kB", &kb) == 1) total = static_cast<size_t>(kb) << 10;
    }
    std::fclose(f);
  }
  return {avail, total};
}

}  // namespace

WeightArena::~WeightArena() {
  for (const Chunk& c : chunks_) ::munmap(c.map, c.map_size);
}

size_t WeightArena::bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return held_;
}

bool WeightArena::refused() const {
  std::lock_guard<std::mutex> lock(mu_);
  return refused_;
}

uint8_t* WeightArena::reserve(size_t bytes) {
  if (!chunks_.empty()) {
    Chunk& c = chunks_.back();
    const size_t at = round_up(c.used, kAlign);
    if (at + bytes <= c.size) {
      c.used = at + bytes;
      return c.base + at;
    }
  }
  // A new chunk: kChunk, or the tensor's own size rounded to huge pages for large tensors.
  const size_t size = std::max(kChunk, round_up(bytes, kHuge));
  // Copy only while the memory is there: a model that fits the page cache but not twice over
  // (copies plus the checkpoint's cached pages still to be read) is served from the mapping, not
  // pushed into the OOM killer. Keeps max(1 GiB, 1/8 of RAM) free; once refused, the rest of the
  // tensors stay in place too.
  if (refused_) return nullptr;
  const auto [avail, total] = mem_available_total();
  if (avail != 0 && avail < size + std::max(size_t{1} << 30, total / 8)) {
    refused_ = true;
    return nullptr;
  }
  const size_t map_size = size + kHuge;  // slack to align the start to 2 MiB
  void* p = ::mmap(nullptr, map_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return nullptr;
  Chunk c;
  c.map = static_cast<uint8_t*>(p);
  c.map_size = map_size;
  c.base = reinterpret_cast<uint8_t*>(round_up(reinterpret_cast<uintptr_t>(p), kHuge));
  c.size = size;
  c.used = bytes;
  // Advice only: without THP (or with it disabled) the chunk is plain 4 KiB pages.
  ::madvise(c.base, c.size, MADV_HUGEPAGE);
  chunks_.push_back(c);
  return c.base;
}

const void* WeightArena::copy(const void* src, size_t bytes, ThreadPool& pool) {
  if (src == nullptr || bytes == 0) return src;
  // Held across the copy, so a concurrent call for the same bytes gets a finished copy.
  std::lock_guard<std::mutex> lock(mu_);
  const auto key = std::make_pair(src, bytes);
  if (auto it = copies_.find(key); it != copies_.end()) return it->second;
  uint8_t* dst = reserve(bytes);
  if (dst == nullptr) return src;
  copies_.emplace(key, dst);
  held_ += bytes;
  // The first touch of each destination page (its fault and zeroing) happens in the threads too.
  const auto* s = static_cast<const uint8_t*>(src);
  const int64_t pieces = static_cast<int64_t>((bytes + kCopyPiece - 1) / kCopyPiece);
  const auto piece = [&](int64_t b, int64_t e, int) {
    const size_t lo = static_cast<size_t>(b) * kCopyPiece;
    const size_t hi = std::min(bytes, static_cast<size_t>(e) * kCopyPiece);
    std::memcpy(dst + lo, s + lo, hi - lo);
  };
  if (pieces == 1) {
    piece(0, 1, 0);
  } else {
    pool.parallel_for(pieces, 1, piece);
  }
  // The source pages (the checkpoint's page cache, or a load-time buffer) are not read again:
  // marked cold, they are the first the kernel reclaims if the copies need the memory — not the
  // pages of tensors still to be copied. A hint only: with memory to spare they stay cached, and
  // the next start reads them from memory instead of the disk.
  const uintptr_t page = 4096, a = reinterpret_cast<uintptr_t>(src);
  const uintptr_t lo = (a + page - 1) / page * page, hi = (a + bytes) / page * page;
  if (hi > lo) ::madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_COLD);
  return dst;
}

}  // namespace fc::cpu
