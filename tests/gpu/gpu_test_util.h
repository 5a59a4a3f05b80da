// Helpers of the GPU tests: skip without a GPU, device buffers from host vectors, comparisons.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "backend/cuda/cuda_backend.h"

namespace fc::gputest {

// Skips the current test (exit status 0) when no CUDA device is usable.
#define FC_REQUIRE_GPU()                                                             \
  do {                                                                               \
    if (::fc::cuda::device_count() == 0)                                             \
      GTEST_SKIP() << "no CUDA GPU (" << ::fc::cuda::device_error() << "): skipped"; \
  } while (0)

inline std::vector<float> randn(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(g);
  return v;
}

// max |got - want| / max(1e-6, max |want|) over n elements
inline double rel_err(const float* got, const float* want, size_t n) {
  double d = 0, m = 1e-6;
  for (size_t i = 0; i < n; ++i) {
    if (std::isnan(got[i]) != std::isnan(want[i])) return INFINITY;
    d = std::max(d, static_cast<double>(std::fabs(got[i] - want[i])));
    m = std::max(m, static_cast<double>(std::fabs(want[i])));
  }
  return d / m;
}

// A device copy of a host vector, freed with the object.
template <typename T>
struct DevBuf {
  cuda::CudaBackend* be = nullptr;
  T* p = nullptr;
  size_t n = 0;
  DevBuf(cuda::CudaBackend& b, const std::vector<T>& h) : be(&b), n(h.size()) {
    p = static_cast<T*>(b.alloc(std::max<size_t>(1, n) * sizeof(T)));
    if (n) b.to_device(p, h.data(), n * sizeof(T));
  }
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
  ~DevBuf() { be->free(p); }
  std::vector<T> host() const {
    std::vector<T> h(n);
    if (n) be->to_host(h.data(), p, n * sizeof(T));
    return h;
  }
};

}  // namespace fc::gputest
