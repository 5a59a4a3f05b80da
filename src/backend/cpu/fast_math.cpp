#include "backend/cpu/fast_math.h"

#include <cstring>

#include "backend/cpu/fast_math_avx2.h"

namespace fc::cpu {
namespace {

// exp(y) for y <= 0, y >= -87 (exp(-87) ~ 1.6e-38, still normal): 2^k · p(r), r = y - k ln2 in
// [-ln2/2, ln2/2] (ln2 split in two parts), p the degree-7 Taylor polynomial (truncation < 1e-8
// relative).
inline float exp_nonpos(float y) {
  const float kf = __builtin_floorf(y * 1.44269504f + 0.5f);
  const float r = (y - kf * 0.693145752f) - kf * 1.42860677e-06f;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(kf) + 127) << 23;  // 2^k, k in [-126, 0]
  float scale;
  std::memcpy(&scale, &bits, 4);
  return p * scale;
}

// tanh(t) for any finite t, branch-free: tanh(|t|) = (1 - e) / (1 + e) with e = exp(-2|t|);
// |t| is clamped to 9, where tanh is 1 within fp32 rounding.
inline float tanh_poly(float t) {
  const float a = t < 0 ? -t : t;
  const float e = exp_nonpos(-2.0f * (a < 9.0f ? a : 9.0f));
  const float th = (1.0f - e) / (1.0f + e);
  return t < 0 ? -th : th;
}

inline float bf16_value(uint16_t h) {
  const uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline float value_of(float x) {
  return x;
}
inline float value_of(uint16_t x) {
  return bf16_value(x);
}

constexpr int kDotLanes = 16;  // partial sums: one AVX-512 vector, two AVX2 ones

template <typename Row>
inline float dot_lanes(const float* q, const Row* k, int64_t n) {
  float acc[kDotLanes] = {};
  int64_t i = 0;
  for (; i + kDotLanes <= n; i += kDotLanes)
    for (int j = 0; j < kDotLanes; ++j) acc[j] += q[i + j] * value_of(k[i + j]);
  for (; i < n; ++i) acc[0] += q[i] * value_of(k[i]);
  float s = 0.0f;
  for (int j = 0; j < kDotLanes; ++j) s += acc[j];
  return s;
}

}  // namespace

#define FC_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))

FC_CLONES float dot_f32(const float* q, const float* k, int64_t n) {
  return dot_lanes(q, k, n);
}

FC_CLONES float dot_bf16(const float* q, const uint16_t* k, int64_t n) {
  return dot_lanes(q, k, n);
}

namespace {

constexpr int64_t kOutChunk = 64;  // output floats kept in registers (4 AVX-512 vectors)

template <typename Row>
inline void weighted_rows(const float* w, const Row* const* rows, int64_t n, int64_t D,
                          float* out) {
  int64_t d0 = 0;
  for (; d0 + kOutChunk <= D; d0 += kOutChunk) {
    float acc[kOutChunk] = {};
    for (int64_t r = 0; r < n; ++r) {
      const Row* x = rows[r] + d0;
      const float a = w[r];
      for (int j = 0; j < kOutChunk; ++j) acc[j] += a * value_of(x[j]);
    }
    for (int j = 0; j < kOutChunk; ++j) out[d0 + j] = acc[j];
  }
  if (d0 < D) {
    for (int64_t d = d0; d < D; ++d) out[d] = 0.0f;
    for (int64_t r = 0; r < n; ++r)
      for (int64_t d = d0; d < D; ++d) out[d] += w[r] * value_of(rows[r][d]);
  }
}

}  // namespace

FC_CLONES void weighted_rows_f32(const float* w, const float* const* rows, int64_t n, int64_t D,
                                 float* out) {
  weighted_rows(w, rows, n, D, out);
}

FC_CLONES void weighted_rows_bf16(const float* w, const uint16_t* const* rows, int64_t n, int64_t D,
                                  float* out) {
  weighted_rows(w, rows, n, D, out);
}

// The elementwise exponentials below: AVX2 (fast_math_avx2.cpp) for the longest multiple of the
// vector width where the CPU has it, these loops (scalar in every clone GCC builds) for the rest.
namespace {
bool use_avx2() {
  static const bool has = detail::fast_math_avx2();  // asked once (CPUID traps in a VM)
  return has;
}
}  // namespace

FC_CLONES float exp_sub_sum(float* x, int64_t n, float m) {
  float acc[kDotLanes] = {};
  int64_t i = use_avx2() ? detail::exp_sub_sum_avx2(x, n, m, acc) : 0;
  auto one = [m](float v) {
    const float y = v - m;
    return y < -87.0f ? 0.0f : exp_nonpos(y);  // -inf (masked) gives 0, NaN stays NaN
  };
  for (; i + kDotLanes <= n; i += kDotLanes)
    for (int j = 0; j < kDotLanes; ++j) acc[j] += (x[i + j] = one(x[i + j]));
  for (; i < n; ++i) acc[0] += (x[i] = one(x[i]));
  float s = 0.0f;
  for (int j = 0; j < kDotLanes; ++j) s += acc[j];
  return s;
}

__attribute__((target_clones("avx512f", "avx2", "default"))) void softcap_row(float* x, int64_t n,
                                                                              float c) {
  const float inv = 1.0f / c;
  for (int64_t i = use_avx2() ? detail::softcap_row_avx2(x, n, c) : 0; i < n; ++i)
    x[i] = c * tanh_poly(x[i] * inv);
}

__attribute__((target_clones("avx512f", "avx2", "default"))) void gelu_mul_row(const float* gate,
                                                                               const float* up,
                                                                               float* out,
                                                                               int64_t n) {
  // gelu_pytorch_tanh(g) = 0.5 g (1 + tanh(sqrt(2/pi) (g + 0.044715 g^3)))
  for (int64_t i = use_avx2() ? detail::gelu_mul_row_avx2(gate, up, out, n) : 0; i < n; ++i) {
    const float g = gate[i];
    const float u = 0.7978845608f * (g + 0.044715f * g * g * g);
    out[i] = 0.5f * g * (1.0f + tanh_poly(u)) * up[i];
  }
}

}  // namespace fc::cpu
