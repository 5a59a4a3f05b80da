// The CPU backend's audio-tower ops against naive double-precision formulations of their
// definitions (backend.h), at awkward sizes: conv patches + linear against a direct convolution,
// local attention against a dense masked score matrix, and the element-wise ops.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "core/half.h"

namespace fc::cpu {
namespace {

std::vector<float> randn(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(g);
  return v;
}

Weight f32_weight(const std::vector<float>& v, int64_t rows, int64_t cols) {
  Weight w;
  w.data = v.data();
  w.dtype = DType::kF32;
  w.rows = rows;
  w.cols = cols;
  w.ld = cols;
  w.name = "test";
  return w;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<double>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

struct AudioOps : ::testing::Test {
  ThreadPool pool{3};
  CpuBackend be{pool};
};

TEST_F(AudioOps, ElementwiseOps) {
  const int64_t T = 7, n = 37, ld = 41;
  std::vector<float> x = randn(static_cast<size_t>(T * ld), 1, 3.0f), y(x.size(), -9.0f);
  std::vector<float> b = randn(x.size(), 2, 2.0f);
  std::vector<float> c = x;
  be.clamp(c.data(), ld, T, n, -1.5f, 0.75f);
  be.silu(x.data(), ld, T, n, y.data(), ld);
  std::vector<float> g(x.size(), -9.0f);
  be.glu(x.data(), ld, b.data(), ld, T, n, g.data(), ld);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t i = 0; i < ld; ++i) {
      const size_t k = static_cast<size_t>(t * ld + i);
      if (i >= n) {  // columns past n untouched
        EXPECT_EQ(c[k], x[k]);
        EXPECT_EQ(y[k], -9.0f);
        continue;
      }
      EXPECT_EQ(c[k], std::min(std::max(x[k], -1.5f), 0.75f));
      EXPECT_NEAR(y[k], x[k] / (1.0 + std::exp(-static_cast<double>(x[k]))), 1e-6);
      EXPECT_NEAR(g[k], x[k] / (1.0 + std::exp(-static_cast<double>(b[k]))), 1e-6);
    }
  std::vector<float> r = x;
  be.clamp(r.data(), ld, T, n, 0.0f, INFINITY);  // ReLU
  for (int64_t i = 0; i < n; ++i)
    EXPECT_EQ(r[static_cast<size_t>(i)], std::max(x[static_cast<size_t>(i)], 0.0f));
}

TEST_F(AudioOps, LayerNormMatchesDefinition) {
  const int64_t rows = 11, n = 29, ld = 31;
  std::vector<float> x = randn(static_cast<size_t>(rows * ld), 3, 4.0f);
  for (float& v : x) v += 2.5f;  // a mean far from zero
  std::vector<float> wv = randn(static_cast<size_t>(n), 4), bv = randn(static_cast<size_t>(n), 5);
  std::vector<uint16_t> wb(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    wb[static_cast<size_t>(i)] = f32_to_bf16(wv[static_cast<size_t>(i)]);
  Weight w = f32_weight(wv, 1, n), b = f32_weight(bv, 1, n), w16 = w;
  w16.data = wb.data();
  w16.dtype = DType::kBF16;
  for (int variant = 0; variant < 3; ++variant) {
    std::vector<float> y(static_cast<size_t>(rows * n));
    const Weight* ww = variant == 0 ? &w : variant == 1 ? &w16 : nullptr;
    const Weight* bb = variant == 0 ? &b : nullptr;
    be.layernorm(x.data(), rows, n, ld, ww, bb, 1e-5f, y.data(), n);
    std::vector<double> want(y.size());
    for (int64_t r = 0; r < rows; ++r) {
      double m = 0, v = 0;
      for (int64_t i = 0; i < n; ++i) m += x[static_cast<size_t>(r * ld + i)];
      m /= n;
      for (int64_t i = 0; i < n; ++i) v += std::pow(x[static_cast<size_t>(r * ld + i)] - m, 2);
      v /= n;
      for (int64_t i = 0; i < n; ++i) {
        double o = (x[static_cast<size_t>(r * ld + i)] - m) / std::sqrt(v + 1e-5);
        if (variant == 0) o = o * wv[static_cast<size_t>(i)] + bv[static_cast<size_t>(i)];
        if (variant == 1) o *= bf16_to_f32(wb[static_cast<size_t>(i)]);
        want[static_cast<size_t>(r * n + i)] = o;
      }
    }
    EXPECT_LT(max_abs_diff(y, want), 1e-5) << variant;
  }
}

// out[t, f, co] = Σ w[co, c, i, j] x[2t − 1 + i, 2f − 1 + j, c] (zero outside), double.
std::vector<double> conv_direct(const std::vector<float>& x, int64_t T, int64_t F, int64_t C,
                                const std::vector<float>& w, int64_t Co, int k, int s, int p) {
  const int64_t To = (T + 2 * p - k) / s + 1, Fo = (F + 2 * p - k) / s + 1;
  std::vector<double> out(static_cast<size_t>(To * Fo * Co), 0.0);
  for (int64_t t = 0; t < To; ++t)
    for (int64_t f = 0; f < Fo; ++f)
      for (int64_t co = 0; co < Co; ++co) {
        double acc = 0;
        for (int64_t c = 0; c < C; ++c)
          for (int i = 0; i < k; ++i)
            for (int j = 0; j < k; ++j) {
              const int64_t ti = s * t - p + i, fj = s * f - p + j;
              if (ti < 0 || ti >= T || fj < 0 || fj >= F) continue;
              acc += static_cast<double>(w[static_cast<size_t>(((co * C + c) * k + i) * k + j)]) *
                     x[static_cast<size_t>((ti * F + fj) * C + c)];
            }
        out[static_cast<size_t>((t * Fo + f) * Co + co)] = acc;
      }
  return out;
}

TEST_F(AudioOps, Conv2dPatchesTimesWeightIsTheConvolution) {
  struct Case {
    int64_t T, F, C, Co;
    int k, s, p;
    int64_t chunk;
  };
  for (const Case& c : {Case{7, 13, 3, 5, 3, 2, 1, 2}, Case{1, 4, 1, 6, 3, 2, 1, 1},
                        Case{10, 9, 4, 2, 3, 1, 1, 3}, Case{6, 8, 2, 3, 2, 2, 0, 6}}) {
    const std::vector<float> x = randn(static_cast<size_t>(c.T * c.F * c.C), 7);
    const std::vector<float> wv = randn(static_cast<size_t>(c.Co * c.C * c.k * c.k), 8);
    const int64_t To = (c.T + 2 * c.p - c.k) / c.s + 1, Fo = (c.F + 2 * c.p - c.k) / c.s + 1;
    const int64_t cols = c.C * c.k * c.k;
    std::vector<float> y(static_cast<size_t>(To * Fo * c.Co));
    std::vector<float> patches(static_cast<size_t>(c.chunk * Fo * cols));
    const Weight w = f32_weight(wv, c.Co, cols);
    for (int64_t t0 = 0; t0 < To; t0 += c.chunk) {
      const int64_t nt = std::min(c.chunk, To - t0);
      be.conv2d_patches(x.data(), c.T, c.F, c.C, c.k, c.s, c.p, t0, nt, patches.data());
      be.linear(patches.data(), nt * Fo, cols, w, y.data() + t0 * Fo * c.Co, c.Co, false);
    }
    EXPECT_LT(max_abs_diff(y, conv_direct(x, c.T, c.F, c.C, wv, c.Co, c.k, c.s, c.p)), 1e-5)
        << c.T << "x" << c.F << "x" << c.C;
  }
}

TEST_F(AudioOps, CausalDepthwiseConv) {
  const int64_t T = 9, C = 13, K = 5, ld = 16;
  const std::vector<float> x = randn(static_cast<size_t>(T * ld), 9);
  const std::vector<float> wv = randn(static_cast<size_t>(C * K), 10);
  std::vector<float> y(static_cast<size_t>(T * ld), -7.0f);
  be.depthwise_conv1d_causal(x.data(), ld, T, C, f32_weight(wv, C, K), y.data(), ld);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t c = 0; c < C; ++c) {
      double want = 0;
      for (int64_t j = 0; j < K; ++j)
        if (t - (K - 1) + j >= 0)
          want += static_cast<double>(wv[static_cast<size_t>(c * K + j)]) *
                  x[static_cast<size_t>((t - (K - 1) + j) * ld + c)];
      EXPECT_NEAR(y[static_cast<size_t>(t * ld + c)], want, 1e-5) << t << "," << c;
    }
  EXPECT_EQ(y[static_cast<size_t>(ld - 1)], -7.0f);
}

TEST_F(AudioOps, LocalAttentionMatchesDenseMaskedScores) {
  for (const auto& [T, heads, D, W, cap] :
       {std::tuple{17, 3, 8, 4, 5.0f}, std::tuple{1, 2, 5, 12, 50.0f},
        std::tuple{30, 2, 16, 12, 2.0f}}) {
    const int64_t HD = heads * D, ld = HD + 3;
    const std::vector<float> q = randn(static_cast<size_t>(T * ld), 11, 2.0f);
    const std::vector<float> k = randn(static_cast<size_t>(T * ld), 12, 2.0f);
    const std::vector<float> v = randn(static_cast<size_t>(T * ld), 13);
    const std::vector<float> rel = randn(static_cast<size_t>(W * HD), 14);
    const std::vector<float> qs = randn(static_cast<size_t>(D), 15);
    std::vector<float> out(static_cast<size_t>(T * ld), 0.0f);
    LocalAttentionArgs a;
    a.q = q.data();
    a.k = k.data();
    a.v = v.data();
    a.ldq = a.ldk = a.ldv = ld;
    a.out = out.data();
    a.ldo = ld;
    a.T = T;
    a.n_heads = heads;
    a.head_dim = D;
    a.q_scale = qs.data();
    a.k_scale = 1.3f;
    a.rel_k = rel.data();
    a.ld_rel = HD;
    a.window = W;
    a.logit_cap = cap;
    be.local_attention(a);
    // Dense reference: every (t, kv) score, masked to 0 <= t − kv < W, softmax, weighted sum.
    double err = 0;
    for (int t = 0; t < T; ++t)
      for (int h = 0; h < heads; ++h) {
        std::vector<double> s(static_cast<size_t>(T), -INFINITY);
        double mx = -INFINITY;
        for (int kv = 0; kv < T; ++kv) {
          if (t - kv < 0 || t - kv >= W) continue;
          double l = 0;
          for (int d = 0; d < D; ++d) {
            const double qd = static_cast<double>(q[static_cast<size_t>(t * ld + h * D + d)]) *
                              qs[static_cast<size_t>(d)];
            l += qd * (k[static_cast<size_t>(kv * ld + h * D + d)] * 1.3 +
                       rel[static_cast<size_t>((t - kv) * HD + h * D + d)]);
          }
          s[static_cast<size_t>(kv)] = cap * std::tanh(l / cap);
          mx = std::max(mx, s[static_cast<size_t>(kv)]);
        }
        double z = 0;
        for (double& e : s) z += (e = std::exp(e - mx));
        for (int d = 0; d < D; ++d) {
          double o = 0;
          for (int kv = 0; kv < T; ++kv)
            o += s[static_cast<size_t>(kv)] / z * v[static_cast<size_t>(kv * ld + h * D + d)];
          err = std::max(err, std::abs(o - out[static_cast<size_t>(t * ld + h * D + d)]));
        }
      }
    EXPECT_LT(err, 2e-5) << "T " << T << " W " << W;
  }
}

}  // namespace
}  // namespace fc::cpu
