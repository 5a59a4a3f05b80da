// Numbered device buffers reused across calls (forward passes, drafter steps): buffer i grows
// when a batch needs more and is freed with the owner. Not thread-safe; one user at a time.
#pragma once

#include <cstddef>
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
};

}  // namespace fc
