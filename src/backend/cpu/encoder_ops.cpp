// CPU implementations of the encoder ops (vision tower): segment attention, patch-grid
// pooling, standardize. The references they are tested against are in ops.cpp.
#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/fast_math.h"
#include "backend/cpu/ops.h"
#include "core/error.h"

namespace fc::cpu {

void CpuBackend::attention_segments(const SegmentAttentionArgs& a) {
  FC_CHECK(a.n_heads > 0 && a.n_kv_heads > 0 && a.n_heads % a.n_kv_heads == 0,
           "attention_segments: ", a.n_heads, " query heads over ", a.n_kv_heads, " KV heads");
  const int rep = a.n_heads / a.n_kv_heads, D = a.head_dim;
  // Work items: (segment, query head, block of 16 query rows); a block reuses its key rows.
  struct Item {
    int seg, head, row0;
  };
  std::vector<Item> items;
  constexpr int kRows = 16;
  for (int s = 0; s < a.n_segments; ++s)
    for (int h = 0; h < a.n_heads; ++h)
      for (int r = a.seg[s]; r < a.seg[s + 1]; r += kRows) items.push_back({s, h, r});
  pool_.parallel_for(static_cast<int64_t>(items.size()), 1, [&](int64_t b, int64_t e, int) {
    std::vector<float> sc;
    std::vector<const float*> vrows;
    for (int64_t it = b; it < e; ++it) {
      const Item& w = items[static_cast<size_t>(it)];
      const int s0 = a.seg[w.seg], s1 = a.seg[w.seg + 1], n = s1 - s0;
      const int64_t g = w.head / rep;
      sc.resize(static_cast<size_t>(n));
      vrows.resize(static_cast<size_t>(n));
      for (int j = 0; j < n; ++j) vrows[static_cast<size_t>(j)] = a.v + (s0 + j) * a.ldv + g * D;
      for (int t = w.row0; t < std::min(s1, w.row0 + kRows); ++t) {
        const float* q = a.q + t * a.ldq + static_cast<int64_t>(w.head) * D;
        float mx = -INFINITY;
        for (int j = 0; j < n; ++j) {
          const float d = dot_f32(q, a.k + (s0 + j) * a.ldk + g * D, D) * a.scale;
          sc[static_cast<size_t>(j)] = d;
          mx = std::max(mx, d);
        }
        const float inv = 1.0f / exp_sub_sum(sc.data(), n, mx);
        for (float& v : sc) v *= inv;
        weighted_rows_f32(sc.data(), vrows.data(), n, D,
                          a.out + t * a.ldo + static_cast<int64_t>(w.head) * D);
      }
    }
  });
}

void CpuBackend::avg_pool(const float* x, int64_t ldx, int grid_h, int grid_w, int k, int64_t n,
                          float scale, float* out, int64_t ldo) {
  FC_CHECK(k > 0 && grid_h % k == 0 && grid_w % k == 0, "avg_pool: grid ", grid_h, "x", grid_w,
           " not divisible by the kernel ", k);
  const int oh = grid_h / k, ow = grid_w / k;
  const float w = 1.0f / static_cast<float>(k * k);
  pool_.parallel_for(static_cast<int64_t>(oh) * ow, 1, [&](int64_t b, int64_t e, int) {
    for (int64_t slot = b; slot < e; ++slot) {
      const int r = static_cast<int>(slot / ow), c = static_cast<int>(slot % ow);
      float* o = out + slot * ldo;
      std::fill(o, o + n, 0.0f);
      for (int dy = 0; dy < k; ++dy)
        for (int dx = 0; dx < k; ++dx) {
          const float* xi = x + (static_cast<int64_t>(r * k + dy) * grid_w + c * k + dx) * ldx;
          for (int64_t i = 0; i < n; ++i) o[i] += xi[i] * w;
        }
      for (int64_t i = 0; i < n; ++i) o[i] *= scale;
    }
  });
}

void CpuBackend::sub_mul(float* x, int64_t ldx, int64_t T, int64_t n, const Weight& sub,
                         const Weight& mul) {
  FC_CHECK(sub.rows * sub.cols == n && mul.rows * mul.cols == n, "sub_mul: ", sub.name, " / ",
           mul.name, " must hold ", n, " values");
  std::vector<float> s(static_cast<size_t>(n)), m(static_cast<size_t>(n));
  weight_row(sub, 0, s.data());
  weight_row(mul, 0, m.data());
  for (int64_t t = 0; t < T; ++t)
    for (int64_t i = 0; i < n; ++i)
      x[t * ldx + i] = (x[t * ldx + i] - s[static_cast<size_t>(i)]) * m[static_cast<size_t>(i)];
}

}  // namespace fc::cpu
