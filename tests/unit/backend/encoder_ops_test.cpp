// The encoder ops (segment attention, pooling, clamp, standardize) and the bidirectional
// image-block window of paged attention, against their scalar references at awkward sizes.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/ops.h"

namespace fc::cpu {
namespace {

std::vector<float> randn(size_t n, uint32_t seed) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = d(g);
  return v;
}

float max_rel(const std::vector<float>& a, const std::vector<float>& b) {
  float m = 0, s = 1e-6f;
  for (size_t i = 0; i < a.size(); ++i) {
    m = std::max(m, std::fabs(a[i] - b[i]));
    s = std::max(s, std::fabs(b[i]));
  }
  return m / s;
}

TEST(EncoderOps, SegmentAttentionMatchesReference) {
  ThreadPool pool(3);
  CpuBackend be(pool);
  // Segments of 1, 17 and 40 rows (one shorter than the 16-row work block, one not a multiple);
  // GQA 6 query heads over 2 KV heads, head_dim 72 (the 31B tower's).
  for (auto [Hq, Hkv, D] : {std::tuple{6, 2, 72}, std::tuple{4, 4, 8}}) {
    const std::vector<int32_t> seg = {0, 1, 18, 58};
    const int T = seg.back();
    const int64_t ldq = Hq * D + 3, ldk = Hkv * D + 1;
    std::vector<float> q = randn(static_cast<size_t>(T * ldq), 1);
    std::vector<float> k = randn(static_cast<size_t>(T * ldk), 2);
    std::vector<float> v = randn(static_cast<size_t>(T * ldk), 3);
    std::vector<float> o1(static_cast<size_t>(T * Hq * D), 9.0f), o2 = o1;
    SegmentAttentionArgs a;
    a.q = q.data();
    a.k = k.data();
    a.v = v.data();
    a.ldq = ldq;
    a.ldk = a.ldv = ldk;
    a.ldo = Hq * D;
    a.n_heads = Hq;
    a.n_kv_heads = Hkv;
    a.head_dim = D;
    a.scale = 0.7f;
    a.n_segments = 3;
    a.seg = seg.data();
    a.out = o1.data();
    attention_segments_ref(a);
    a.out = o2.data();
    be.attention_segments(a);
    EXPECT_LE(max_rel(o2, o1), 1e-5f) << Hq << "/" << Hkv << "/" << D;
    // A one-row segment attends only itself: its output is its own v.
    for (int d = 0; d < D; ++d)
      EXPECT_NEAR(o2[static_cast<size_t>(d)], v[static_cast<size_t>(d)], 1e-5f);
  }
}

TEST(EncoderOps, AvgPoolClampSubMul) {
  ThreadPool pool(2);
  CpuBackend be(pool);
  const int gh = 6, gw = 9, k = 3;
  const int64_t n = 13, ldx = 15;
  std::vector<float> x = randn(static_cast<size_t>(gh * gw * ldx), 4);
  std::vector<float> o1(static_cast<size_t>((gh / k) * (gw / k) * n)), o2 = o1;
  avg_pool_ref(x.data(), ldx, gh, gw, k, n, 2.5f, o1.data(), n);
  be.avg_pool(x.data(), ldx, gh, gw, k, n, 2.5f, o2.data(), n);
  EXPECT_LE(max_rel(o2, o1), 1e-6f);
  // Slot (1, 2) is the mean of patches rows 3..5, columns 6..8, times the scale.
  double want = 0;
  for (int dy = 0; dy < 3; ++dy)
    for (int dx = 0; dx < 3; ++dx)
      want += x[static_cast<size_t>(((3 + dy) * gw + 6 + dx) * ldx + 4)];
  EXPECT_NEAR(o2[static_cast<size_t>((1 * 3 + 2) * n + 4)], want / 9 * 2.5, 1e-5);

  std::vector<float> c = {-3, -1, 0, 2, 5, 9};
  be.clamp(c.data(), 3, 2, 2, -1.5f, 4.0f);  // rows of 2 inside a stride of 3
  EXPECT_EQ(c, (std::vector<float>{-1.5f, -1, 0, 2, 4, 9}));

  std::vector<float> sub = {1, 2}, mul = {10, -1}, y = {3, 3, 5, 0};
  Weight ws, wm;
  ws.data = sub.data(), ws.rows = 1, ws.cols = 2, ws.ld = 2;
  wm.data = mul.data(), wm.rows = 1, wm.cols = 2, wm.ld = 2;
  be.sub_mul(y.data(), 2, 2, 2, ws, wm);
  EXPECT_EQ(y, (std::vector<float>{20, -1, 40, 2}));
}

TEST(EncoderOps, PagedAttentionSeesAheadWithinKvLimitAndTheWindow) {
  // A prefill chunk of 12 positions (window 4) where positions 3..9 form an image block: those
  // queries see (p - 4, 9]; the others stay causal.
  ThreadPool pool(2);
  CpuBackend be(pool);
  const int H = 2, D = 8, B = 4, T = 12;
  std::vector<float> q = randn(static_cast<size_t>(T * H * D), 5);
  std::vector<float> kc = randn(static_cast<size_t>(4 * B * H * D), 6);
  std::vector<float> vc = randn(static_cast<size_t>(4 * B * H * D), 7);
  std::vector<int32_t> qb = {0}, nq = {T}, p0 = {0}, table = {2, 0, 3}, off = {0}, lim(T);
  for (int t = 0; t < T; ++t) lim[t] = (t >= 3 && t <= 9) ? 9 : -1;
  std::vector<float> o1(static_cast<size_t>(T * H * D)), o2 = o1, o3 = o1;
  AttentionArgs a;
  a.q = q.data(), a.ldq = H * D, a.ldo = H * D, a.k_cache = kc.data(), a.v_cache = vc.data();
  a.n_heads = a.n_kv_heads = H, a.head_dim = D, a.block_size = B, a.sliding_window = 4;
  a.n_seqs = 1, a.q_begin = qb.data(), a.n_q = nq.data(), a.pos0 = p0.data();
  a.block_tables = table.data(), a.table_offset = off.data(), a.kv_limit = lim.data();
  a.out = o1.data();
  attention_ref(a);
  a.out = o2.data();
  be.attention(a);
  EXPECT_LE(max_rel(o2, o1), 1e-5f);
  // Without the limit the block's queries differ, the others not.
  a.kv_limit = nullptr;
  a.out = o3.data();
  be.attention(a);
  for (int t = 0; t < T; ++t) {
    float d = 0;
    for (int i = 0; i < H * D; ++i)
      d = std::max(d, std::fabs(o3[t * H * D + i] - o2[t * H * D + i]));
    if (t >= 3 && t < 9)
      EXPECT_GT(d, 1e-4f) << t;
    else
      EXPECT_EQ(d, 0.0f) << t;  // text tokens and the block's last token: causal either way
  }
}

}  // namespace
}  // namespace fc::cpu
