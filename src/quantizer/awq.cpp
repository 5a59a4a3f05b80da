#include "quantizer/awq.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"

namespace fc::quantizer {

namespace {

// Σ_m mean over [n, N_m] of (X_eff · Wq_mᵀ − ref_m)².
double group_loss(Backend& be, const std::vector<std::vector<float>>& wq,
                  const std::vector<GroupMember>& group, const float* X_eff, int64_t n, int64_t K,
                  const std::vector<std::vector<float>>& ref) {
  double loss = 0.0;
  std::vector<float> y;
  for (size_t m = 0; m < group.size(); ++m) {
    const int64_t N = group[m].rows;
    y.resize(static_cast<size_t>(n * N));
    matmul_f32(be, X_eff, n, K, wq[m].data(), N, y.data());
    double se = 0.0;
    for (size_t i = 0; i < y.size(); ++i) {
      const double d = static_cast<double>(y[i]) - ref[m][i];
      se += d * d;
    }
    loss += se / static_cast<double>(std::max<size_t>(y.size(), 1));
  }
  return loss;
}

std::vector<std::vector<float>> reference_outputs(Backend& be, const std::vector<GroupMember>& g,
                                                  const float* X, int64_t n, int64_t K) {
  std::vector<std::vector<float>> ref(g.size());
  for (size_t m = 0; m < g.size(); ++m) {
    ref[m].resize(static_cast<size_t>(n * g[m].rows));
    matmul_f32(be, X, n, K, g[m].w, g[m].rows, ref[m].data());
  }
  return ref;
}

}  // namespace

void matmul_f32(Backend& be, const float* x, int64_t n, int64_t K, const float* w, int64_t N,
                float* y) {
  if (n == 0 || N == 0) return;
  Weight W;
  W.data = w;
  W.dtype = DType::kF32;
  W.rows = N;
  W.cols = K;
  W.ld = K;
  W.name = "quantizer.scratch";
  be.linear(x, n, K, W, y, N, false);
}

std::vector<float> fake_quant(const float* w, int64_t rows, int64_t cols, float amax,
                              quant::Producer producer) {
  const quant::Nvfp4Tensor t = quant::quantize(w, rows, cols, cols, amax, producer);
  quant::Nvfp4Matrix m;
  m.packed = t.packed.data();
  m.scales = t.scales.data();
  m.rows = rows;
  m.cols = cols;
  m.ld = cols / 2;
  m.scale_ld = cols / 16;
  m.global_scale = t.global_scale;
  std::vector<float> out(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r) quant::dequantize_row(m, r, out.data() + r * cols);
  return out;
}

std::vector<float> weight_mean_normalised(const std::vector<GroupMember>& group, int64_t K) {
  std::vector<double> sum(static_cast<size_t>(K), 0.0);
  int64_t rows = 0;
  const float tiny = std::numeric_limits<float>::min();
  for (const GroupMember& m : group) {
    for (int64_t r = 0; r < m.rows; ++r) {
      const float* row = m.w + r * K;
      for (int64_t b = 0; b < K; b += 16) {
        float bmax = 0.0f;
        for (int64_t i = b; i < std::min(K, b + 16); ++i) bmax = std::max(bmax, std::fabs(row[i]));
        for (int64_t i = b; i < std::min(K, b + 16); ++i)
          sum[static_cast<size_t>(i)] += std::fabs(row[i]) / (bmax + tiny);
      }
    }
    rows += m.rows;
  }
  std::vector<float> out(static_cast<size_t>(K));
  for (int64_t c = 0; c < K; ++c)
    out[static_cast<size_t>(c)] = static_cast<float>(
        sum[static_cast<size_t>(c)] / static_cast<double>(std::max<int64_t>(rows, 1)));
  return out;
}

std::vector<float> awq_scale(const std::vector<float>& x_mean, const std::vector<float>& w_mean,
                             float alpha) {
  const float tiny = std::numeric_limits<float>::min();
  std::vector<float> s(x_mean.size());
  float mx = 0.0f, mn = std::numeric_limits<float>::max();
  for (size_t c = 0; c < s.size(); ++c) {
    const float v = std::pow(x_mean[c], alpha) / (std::pow(w_mean[c], 1.0f - alpha) + tiny);
    s[c] = std::clamp(v, 1e-4f, 1e4f);
    mx = std::max(mx, s[c]);
    mn = std::min(mn, s[c]);
  }
  const float norm = std::sqrt(mx * mn);
  for (float& v : s) v /= norm;
  return s;
}

AwqSearch awq_lite_search(Backend& be, const std::vector<GroupMember>& group, const float* X,
                          int64_t n, int64_t K, const std::vector<float>& x_mean,
                          quant::Producer producer, bool keep_identity) {
  FC_CHECK(!group.empty() && n > 0, "awq: empty group or no calibration rows");
  const std::vector<std::vector<float>> ref = reference_outputs(be, group, X, n, K);
  const std::vector<float> w_mean = weight_mean_normalised(group, K);
  std::vector<std::vector<float>> wq(group.size());
  std::vector<float> ws, xs(static_cast<size_t>(n * K));

  // Loss of smoothing s (identity when s is empty).
  auto eval = [&](const std::vector<float>* s) {
    float amax = 0.0f;
    std::vector<std::vector<float>> scaled(group.size());
    for (size_t m = 0; m < group.size(); ++m) {
      const int64_t N = group[m].rows;
      scaled[m].assign(group[m].w, group[m].w + N * K);
      if (s)
        for (int64_t r = 0; r < N; ++r)
          for (int64_t c = 0; c < K; ++c) scaled[m][static_cast<size_t>(r * K + c)] *= (*s)[c];
      amax = std::max(amax, quant::abs_max(scaled[m].data(), N, K, K));
    }
    if (amax <= 0.0f) return 0.0;
    for (size_t m = 0; m < group.size(); ++m)
      wq[m] = fake_quant(scaled[m].data(), group[m].rows, K, amax, producer);
    for (int64_t r = 0; r < n; ++r)
      for (int64_t c = 0; c < K; ++c)
        xs[static_cast<size_t>(r * K + c)] = s ? X[r * K + c] / (*s)[c] : X[r * K + c];
    return group_loss(be, wq, group, xs.data(), n, K, ref);
  };

  AwqSearch best;
  best.loss_identity = eval(nullptr);
  best.loss = std::numeric_limits<double>::infinity();
  for (int i = 0; i <= 10; ++i) {
    const float alpha = static_cast<float>(i) / 10.0f;
    std::vector<float> s = awq_scale(x_mean, w_mean, alpha);
    const double l = eval(&s);
    if (l < best.loss) {  // strict: ties keep the smaller α, as min() over the dict does
      best.loss = l;
      best.alpha = alpha;
      best.s = std::move(s);
    }
  }
  if (keep_identity && !(best.loss < best.loss_identity)) {
    best.loss = best.loss_identity;
    best.alpha = -1.0f;
    best.s.assign(static_cast<size_t>(K), 1.0f);
  }
  return best;
}

float clip_search(Backend& be, const std::vector<GroupMember>& group, const float* X_eff, int64_t n,
                  int64_t K, float amax, quant::Producer producer) {
  if (n == 0 || amax <= 0.0f) return amax;
  const std::vector<std::vector<float>> ref = reference_outputs(be, group, X_eff, n, K);
  std::vector<std::vector<float>> wq(group.size());
  double best = std::numeric_limits<double>::infinity();
  float best_amax = amax;
  // From 1.0 down so that ties keep the unclipped amax.
  for (int i = 20; i >= 10; --i) {
    const float a = amax * static_cast<float>(i) / 20.0f;
    for (size_t m = 0; m < group.size(); ++m)
      wq[m] = fake_quant(group[m].w, group[m].rows, K, a, producer);
    const double l = group_loss(be, wq, group, X_eff, n, K, ref);
    if (l < best) {
      best = l;
      best_amax = a;
    }
  }
  return best_amax;
}

}  // namespace fc::quantizer
