// Numbered device buffers reused across calls (forward passes, drafter steps): buffer i grows
// when a batch needs more and is freed with the owner. Not thread-safe; one user at a time.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "backend/backend.h"

namespace fc {

class DeviceScratch {
 public:
  explicit DeviceScratch(Backend& be) : be_(be) {}
  ~DeviceScratch() {
    for (Buf& b : bufs_)
      if (b.p) be_.free(b.p);
  }
  DeviceScratch(const DeviceScratch&) = delete;
  DeviceScratch& operator=(const DeviceScratch&) = delete;

  // Sequential use within one call: reset(), then each next_* takes the following buffer.
  void reset() { next_ = 0; }
  // Reuse buffers from #i on (those before stay with their contents).
  void rewind(size_t i) { next_ = std::min(next_, i); }
  void* next_bytes(size_t bytes) { return get(next_++, std::max<size_t>(bytes, 1)); }
  float* next_f32(int64_t n) {
    return static_cast<float*>(next_bytes(static_cast<size_t>(std::max<int64_t>(n, 0)) * 4));
  }
  int32_t* next_i32(int64_t n) {
    return static_cast<int32_t*>(next_bytes(static_cast<size_t>(std::max<int64_t>(n, 0)) * 4));
  }
  // A device copy of `host`.
  int32_t* next_i32(const std::vector<int32_t>& host) {
    int32_t* d = next_i32(static_cast<int64_t>(host.size()));
    if (!host.empty()) be_.to_device(d, host.data(), host.size() * 4);
    return d;
  }

  // Buffer #i with at least `bytes` bytes (contents undefined after growth).
  void* get(size_t i, size_t bytes) {
    if (bufs_.size() <= i) bufs_.resize(i + 1);
    Buf& b = bufs_[i];
    if (b.bytes < bytes) {
      if (b.p) be_.free(b.p);
      b.p = be_.alloc(bytes);
      b.bytes = bytes;
    }
    return b.p;
  }

 private:
  struct Buf {
    void* p = nullptr;
    size_t bytes = 0;
  };
  Backend& be_;
  std::vector<Buf> bufs_;
  size_t next_ = 0;
};

}  // namespace fc
