// CpuBackend's audio-tower ops (backend.h, "Audio tower ops"): plain loops, data-parallel over
// rows. They are also the reference the CUDA kernels are tested against
// (tests/unit/backend/audio_ops_test.cpp checks them against naive formulations).
#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/ops.h"
#include "core/error.h"

namespace fc::cpu {
namespace {

int64_t grain(int64_t n) {
  return std::max<int64_t>(1, (int64_t{1} << 14) / std::max<int64_t>(1, n));
}

}  // namespace

void CpuBackend::clamp(float* x, int64_t ldx, int64_t T, int64_t n, float lo, float hi) {
  pool_.parallel_for(T, grain(n), [&](int64_t b, int64_t e, int) {
    for (int64_t t = b; t < e; ++t)
      for (int64_t i = 0; i < n; ++i) x[t * ldx + i] = std::min(std::max(x[t * ldx + i], lo), hi);
  });
}

void CpuBackend::silu(const float* x, int64_t ldx, int64_t T, int64_t n, float* out, int64_t ldo) {
  pool_.parallel_for(T, grain(n), [&](int64_t b, int64_t e, int) {
    for (int64_t t = b; t < e; ++t)
      for (int64_t i = 0; i < n; ++i) {
        const float v = x[t * ldx + i];
        out[t * ldo + i] = v / (1.0f + std::exp(-v));
      }
  });
}

void CpuBackend::glu(const float* a, int64_t lda, const float* b, int64_t ldb, int64_t T, int64_t n,
                     float* out, int64_t ldo) {
  pool_.parallel_for(T, grain(n), [&](int64_t r0, int64_t r1, int) {
    for (int64_t t = r0; t < r1; ++t)
      for (int64_t i = 0; i < n; ++i)
        out[t * ldo + i] = a[t * lda + i] / (1.0f + std::exp(-b[t * ldb + i]));
  });
}

void CpuBackend::layernorm(const float* x, int64_t rows, int64_t n, int64_t ldx, const Weight* w,
                           const Weight* bias, float eps, float* y, int64_t ldy) {
  pool_.parallel_for(rows, grain(n), [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * ldx;
      double s = 0;
      for (int64_t i = 0; i < n; ++i) s += xr[i];
      const double mean = s / static_cast<double>(n);
      double ss = 0;
      for (int64_t i = 0; i < n; ++i) ss += (xr[i] - mean) * (xr[i] - mean);
      const float m = static_cast<float>(mean);
      const float inv = 1.0f / std::sqrt(static_cast<float>(ss / static_cast<double>(n)) + eps);
      float* yr = y + r * ldy;
      for (int64_t i = 0; i < n; ++i) {
        float v = (xr[i] - m) * inv;
        if (w) v *= weight_at(*w, 0, i);
        if (bias) v += weight_at(*bias, 0, i);
        yr[i] = v;
      }
    }
  });
}

void CpuBackend::conv2d_patches(const float* x, int64_t T, int64_t F, int64_t C, int k, int s,
                                int p, int64_t t0, int64_t n_t, float* out) {
  FC_CHECK(k > 0 && s > 0 && p >= 0 && F + 2 * p >= k, "conv2d_patches: kernel ", k, " stride ", s,
           " padding ", p, " over ", F, " columns");
  const int64_t Fo = (F + 2 * p - k) / s + 1, cols = C * k * k;
  pool_.parallel_for(n_t * Fo, grain(cols), [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t t = t0 + r / Fo, f = r % Fo;
      float* o = out + r * cols;
      for (int64_t c = 0; c < C; ++c)
        for (int i = 0; i < k; ++i) {
          const int64_t ti = s * t - p + i;
          for (int j = 0; j < k; ++j) {
            const int64_t fj = s * f - p + j;
            o[(c * k + i) * k + j] =
                ti >= 0 && ti < T && fj >= 0 && fj < F ? x[(ti * F + fj) * C + c] : 0.0f;
          }
        }
    }
  });
}

void CpuBackend::depthwise_conv1d_causal(const float* x, int64_t ldx, int64_t T, int64_t C,
                                         const Weight& w, float* out, int64_t ldo) {
  FC_CHECK(w.rows == C, "depthwise_conv1d_causal: weight ", w.name, " has ", w.rows, " rows for ",
           C, " channels");
  const int64_t K = w.cols;
  std::vector<float> wf(static_cast<size_t>(C * K));
  for (int64_t c = 0; c < C; ++c) weight_row(w, c, wf.data() + c * K);
  pool_.parallel_for(T, grain(C * K), [&](int64_t r0, int64_t r1, int) {
    for (int64_t t = r0; t < r1; ++t)
      for (int64_t c = 0; c < C; ++c) {
        float acc = 0;
        for (int64_t j = 0; j < K; ++j) {
          const int64_t ti = t - (K - 1) + j;
          if (ti >= 0) acc += wf[static_cast<size_t>(c * K + j)] * x[ti * ldx + c];
        }
        out[t * ldo + c] = acc;
      }
  });
}

void CpuBackend::local_attention(const LocalAttentionArgs& a) {
  FC_CHECK(a.window > 0 && a.logit_cap > 0 && a.head_dim > 0 && a.n_heads > 0,
           "local_attention: window ", a.window, ", logit cap ", a.logit_cap);
  const int D = a.head_dim, W = a.window;
  pool_.parallel_for(a.T * a.n_heads, 1, [&](int64_t b, int64_t e, int) {
    std::vector<float> qs(static_cast<size_t>(D)), p(static_cast<size_t>(W));
    for (int64_t item = b; item < e; ++item) {
      const int64_t t = item / a.n_heads;
      const int64_t h = item % a.n_heads;
      const float* q = a.q + t * a.ldq + h * D;
      for (int d = 0; d < D; ++d) qs[static_cast<size_t>(d)] = q[d] * a.q_scale[d];
      const int64_t lo = std::max<int64_t>(0, t - W + 1);
      float mx = -INFINITY;
      for (int64_t kv = lo; kv <= t; ++kv) {
        const float* k = a.k + kv * a.ldk + h * D;
        const float* r = a.rel_k + (t - kv) * a.ld_rel + h * D;
        float ac = 0, bd = 0;
        for (int d = 0; d < D; ++d) {
          ac += qs[static_cast<size_t>(d)] * (k[d] * a.k_scale);
          bd += qs[static_cast<size_t>(d)] * r[d];
        }
        const float logit = a.logit_cap * std::tanh((ac + bd) / a.logit_cap);
        p[static_cast<size_t>(kv - lo)] = logit;
        mx = std::max(mx, logit);
      }
      float sum = 0;
      for (int64_t i = 0; i <= t - lo; ++i)
        sum += (p[static_cast<size_t>(i)] = std::exp(p[static_cast<size_t>(i)] - mx));
      float* o = a.out + t * a.ldo + h * D;
      std::fill(o, o + D, 0.0f);
      for (int64_t kv = lo; kv <= t; ++kv) {
        const float pk = p[static_cast<size_t>(kv - lo)] / sum;
        const float* v = a.v + kv * a.ldv + h * D;
        for (int d = 0; d < D; ++d) o[d] += pk * v[d];
      }
    }
  });
}

}  // namespace fc::cpu
