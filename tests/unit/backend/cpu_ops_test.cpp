// The CPU backend's parallel ops against their scalar references, at awkward sizes.
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/fast_math.h"
#include "backend/cpu/ops.h"
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

float max_rel(const std::vector<float>& a, const std::vector<float>& b) {
  float m = 0, s = 1e-6f;
  for (size_t i = 0; i < a.size(); ++i) {
    m = std::max(m, std::fabs(a[i] - b[i]));
    s = std::max(s, std::fabs(b[i]));
  }
  return m / s;
}

struct AttnCase {
  int n_heads, n_kv, head_dim, block, window;
  std::vector<int> n_q, pos0;
};

TEST(CpuOps, PagedAttentionMatchesReference) {
  const AttnCase cases[] = {
      {1, 1, 2, 1, 0, {1}, {0}},
      {4, 2, 16, 4, 4, {13}, {0}},
      {4, 1, 32, 3, 0, {1, 5, 17}, {9, 0, 3}},
      {8, 8, 18, 16, 7, {3, 1}, {40, 77}},
      {6, 3, 34, 5, 1, {2, 9}, {11, 0}},
      // Head sizes past the p·v kernel's 64-float register chunk: 80 = 64 + 16, and E2B's 512.
      {2, 1, 80, 4, 0, {3, 1}, {70, 5}},
      {8, 1, 512, 16, 0, {1}, {300}},
      // Prefill-sized sequences (the tiled path, attention_prefill.h): several query tiles, a
      // partial last tile, heads per KV head not a multiple of the 4- and 6-head kernel tiles,
      // windows shorter and longer than a tile, D % 16 != 0.
      {8, 1, 256, 16, 24, {70}, {5}},
      {10, 2, 40, 7, 0, {33, 6, 1}, {0, 50, 3}},
      {3, 3, 20, 4, 3, {9}, {0}},
  };
  for (int threads : {1, 3}) {
    ThreadPool pool(threads);
    CpuBackend be(pool);
    uint32_t seed = 1;
    for (const AttnCase& c : cases) {
      const int n_seqs = static_cast<int>(c.n_q.size());
      std::vector<int32_t> q_begin, tables, offs;
      int rows = 0, blocks = 0;
      for (int s = 0; s < n_seqs; ++s) {
        q_begin.push_back(rows);
        rows += c.n_q[static_cast<size_t>(s)];
        const int ctx = c.pos0[static_cast<size_t>(s)] + c.n_q[static_cast<size_t>(s)];
        offs.push_back(static_cast<int32_t>(tables.size()));
        // Scattered block ids: sequence s uses blocks in reverse order.
        const int nb = (ctx + c.block - 1) / c.block;
        for (int b = nb - 1; b >= 0; --b) tables.push_back(blocks + b);
        blocks += nb;
      }
      const int64_t ld = int64_t{c.n_heads} * c.head_dim + 3;  // padded rows
      const int64_t kv_row = int64_t{c.n_kv} * c.head_dim;
      std::vector<float> q = randn(static_cast<size_t>(rows * ld), seed++);
      std::vector<float> k = randn(static_cast<size_t>(blocks * c.block * kv_row), seed++);
      std::vector<float> v = randn(static_cast<size_t>(blocks * c.block * kv_row), seed++);
      std::vector<float> o1(static_cast<size_t>(rows * ld), 7.0f), o2 = o1;
      AttentionArgs a;
      a.q = q.data();
      a.ldq = ld;
      a.k_cache = k.data();
      a.v_cache = v.data();
      a.n_heads = c.n_heads;
      a.n_kv_heads = c.n_kv;
      a.head_dim = c.head_dim;
      a.block_size = c.block;
      a.scale = 0.7f;
      a.sliding_window = c.window;
      a.n_seqs = n_seqs;
      a.q_begin = q_begin.data();
      a.n_q = c.n_q.data();
      a.pos0 = c.pos0.data();
      a.block_tables = tables.data();
      a.table_offset = offs.data();
      a.ldo = ld;
      a.out = o1.data();
      attention_ref(a);
      a.out = o2.data();
      be.attention(a);
      EXPECT_LE(max_rel(o2, o1), 1e-5f) << "heads " << c.n_heads << " D " << c.head_dim;
      // BF16 cache: fast == reference on the same bf16 data, and close to the fp32 result.
      std::vector<uint16_t> kb(k.size()), vb(v.size());
      for (size_t i = 0; i < k.size(); ++i) kb[i] = f32_to_bf16(k[i]), vb[i] = f32_to_bf16(v[i]);
      std::vector<float> o3 = o1, o4 = o1;
      a.k_cache = kb.data();
      a.v_cache = vb.data();
      a.kv_dtype = DType::kBF16;
      a.out = o3.data();
      attention_ref(a);
      a.out = o4.data();
      be.attention(a);
      EXPECT_LE(max_rel(o4, o3), 1e-5f) << "bf16 heads " << c.n_heads << " D " << c.head_dim;
      EXPECT_LE(max_rel(o3, o1), 3e-2f) << "bf16 vs f32, heads " << c.n_heads;
      EXPECT_GT(max_rel(o3, o1), 0.0f) << "bf16 cache must actually round";
      // FP8 E4M3 cache with per-layer scales (written through kv_write): fast == reference on
      // the same bytes, and close to the fp32 result (3 mantissa bits).
      const float ks = 0.037f, vs = 0.011f;
      std::vector<uint8_t> k8(k.size()), v8(v.size());
      std::vector<int32_t> all_slots(static_cast<size_t>(blocks * c.block));
      std::iota(all_slots.begin(), all_slots.end(), 0);
      be.kv_write(k.data(), kv_row, v.data(), kv_row, blocks * c.block, kv_row, all_slots.data(),
                  k8.data(), v8.data(), DType::kF8_E4M3, ks, vs);
      std::vector<float> o5 = o1, o6 = o1;
      a.k_cache = k8.data();
      a.v_cache = v8.data();
      a.kv_dtype = DType::kF8_E4M3;
      a.k_scale = ks;
      a.v_scale = vs;
      a.out = o5.data();
      attention_ref(a);
      a.out = o6.data();
      be.attention(a);
      EXPECT_LE(max_rel(o6, o5), 1e-5f) << "fp8 heads " << c.n_heads << " D " << c.head_dim;
      EXPECT_LE(max_rel(o5, o1), 0.25f) << "fp8 vs f32, heads " << c.n_heads;
      EXPECT_GT(max_rel(o5, o1), 0.0f);
      // Padding columns untouched.
      EXPECT_EQ(o2[static_cast<size_t>(ld - 1)], 7.0f);
    }
  }
}

TEST(CpuOps, AttentionOverASubsetOfBatchRows) {
  // Sequences own rows [q_begin, q_begin + n_q) of the batch, not necessarily from row 0 or
  // contiguously (the MTP assistant attends subsets of its rows per window class).
  ThreadPool pool(3);
  CpuBackend be(pool);
  const int H = 2, D = 8, B = 4, rows = 7;
  std::vector<float> q = randn(static_cast<size_t>(rows * H * D), 11);
  std::vector<float> k = randn(static_cast<size_t>(8 * B * H * D), 12);
  std::vector<float> v = randn(static_cast<size_t>(8 * B * H * D), 13);
  std::vector<int32_t> qb = {5, 1}, nq = {1, 2}, p0 = {9, 3}, tables = {0, 1, 2, 3, 4, 5},
                       off = {0, 3};
  std::vector<float> o1(static_cast<size_t>(rows * H * D), 7.0f), o2 = o1;
  AttentionArgs a;
  a.q = q.data();
  a.ldq = H * D;
  a.ldo = H * D;
  a.k_cache = k.data();
  a.v_cache = v.data();
  a.n_heads = H;
  a.n_kv_heads = H;
  a.head_dim = D;
  a.block_size = B;
  a.sliding_window = 5;
  a.n_seqs = 2;
  a.q_begin = qb.data();
  a.n_q = nq.data();
  a.pos0 = p0.data();
  a.block_tables = tables.data();
  a.table_offset = off.data();
  a.out = o1.data();
  attention_ref(a);
  a.out = o2.data();
  be.attention(a);
  EXPECT_LE(max_rel(o2, o1), 1e-5f);
  for (int r : {0, 3, 4, 6}) EXPECT_EQ(o2[static_cast<size_t>(r * H * D)], 7.0f) << r;
  for (int r : {1, 2, 5}) EXPECT_NE(o2[static_cast<size_t>(r * H * D)], 7.0f) << r;
}

TEST(CpuOps, KvWriteRoundsToBf16) {
  ThreadPool pool(1);
  CpuBackend be(pool);
  const std::vector<float> k = {1.0f, 1.00390625f, -3.14159f, 7.0f}, v = {0.5f, -0.1f, 2.0f, 1e-3f};
  std::vector<uint16_t> kc(8, 0xFFFF), vc(8, 0xFFFF);
  const std::vector<int32_t> slots = {1, -1};
  be.kv_write(k.data(), 2, v.data(), 2, 2, 2, slots.data(), kc.data(), vc.data(), DType::kBF16);
  EXPECT_EQ(kc[0], 0xFFFF);  // slot 0 untouched
  EXPECT_EQ(kc[2], f32_to_bf16(1.0f));
  EXPECT_EQ(kc[3], f32_to_bf16(1.00390625f));
  EXPECT_EQ(vc[3], f32_to_bf16(-0.1f));
  EXPECT_EQ(kc[4], 0xFFFF);  // row 1 skipped (slot -1)
}

TEST(CpuOps, KvWriteFp8DividesByScaleAndSaturates) {
  ThreadPool pool(1);
  CpuBackend be(pool);
  // k / 0.5: 1 -> 2 (0x40), 300 -> 600 saturates to 448 (0x7E), -0.001 -> -0.002 rounds to the
  // subnormal -1·2⁻⁹ (0x81); v / 2: 3 -> 1.5 (0x3C), 1e9 -> 448, 0 -> 0.
  const std::vector<float> k = {1.0f, 300.0f, -0.001f}, v = {3.0f, 1e9f, 0.0f};
  std::vector<uint8_t> kc(6, 0xAA), vc(6, 0xAA);
  const std::vector<int32_t> slots = {1};
  be.kv_write(k.data(), 3, v.data(), 3, 1, 3, slots.data(), kc.data(), vc.data(), DType::kF8_E4M3,
              0.5f, 2.0f);
  EXPECT_EQ(kc[0], 0xAA);
  EXPECT_EQ(kc[3], 0x40);
  EXPECT_EQ(kc[4], 0x7E);
  EXPECT_EQ(kc[5], 0x81);
  EXPECT_EQ(vc[3], 0x3C);
  EXPECT_EQ(vc[4], 0x7E);
  EXPECT_EQ(vc[5], 0x00);
}

TEST(CpuOps, SiluMulMatchesDefinition) {
  ThreadPool pool(3);
  CpuBackend be(pool);
  for (int64_t T : {1, 17}) {
    const int64_t n = 37, ld = 41;
    std::vector<float> g = randn(static_cast<size_t>(T * ld), 3, 4.0f);
    std::vector<float> u = randn(static_cast<size_t>(T * ld), 4);
    std::vector<float> out(static_cast<size_t>(T * ld), 9.0f);
    be.silu_mul(g.data(), ld, u.data(), ld, T, n, out.data(), ld);
    for (int64_t t = 0; t < T; ++t) {
      for (int64_t i = 0; i < n; ++i) {
        const double x = g[static_cast<size_t>(t * ld + i)];
        const double want = x / (1.0 + std::exp(-x)) * u[static_cast<size_t>(t * ld + i)];
        EXPECT_NEAR(out[static_cast<size_t>(t * ld + i)], want, 1e-5 * (1 + std::fabs(want)));
      }
      EXPECT_EQ(out[static_cast<size_t>(t * ld + n)], 9.0f);  // padding untouched
    }
  }
}

TEST(CpuOps, AttentionIsSoftmaxOverWindow) {
  // One head, D = 2, window 2: the query at position 2 sees positions 1 and 2 only.
  ThreadPool pool(1);
  CpuBackend be(pool);
  std::vector<float> k = {1, 0, 0, 1, 1, 1}, v = {10, 0, 0, 20, 5, 5}, q = {2, 0}, out(2);
  std::vector<int32_t> qb = {0}, nq = {1}, p0 = {2}, table = {0}, off = {0};
  AttentionArgs a;
  a.q = q.data(), a.ldq = 2, a.out = out.data(), a.ldo = 2, a.k_cache = k.data(),
  a.v_cache = v.data();
  a.n_heads = a.n_kv_heads = 1, a.head_dim = 2, a.block_size = 4, a.scale = 1.0f,
  a.sliding_window = 2;
  a.n_seqs = 1, a.q_begin = qb.data(), a.n_q = nq.data(), a.pos0 = p0.data();
  a.block_tables = table.data(), a.table_offset = off.data();
  be.attention(a);
  // scores: pos1 = 0, pos2 = 2 -> p = [1, e^2] / (1 + e^2)
  const float p2 = std::exp(2.0f) / (1 + std::exp(2.0f)), p1 = 1 - p2;
  EXPECT_NEAR(out[0], p1 * 0 + p2 * 5, 1e-5);
  EXPECT_NEAR(out[1], p1 * 20 + p2 * 5, 1e-5);
}

TEST(CpuOps, RmsNormRopeGeluMatchDefinitions) {
  ThreadPool pool(2);
  CpuBackend be(pool);
  const int rows = 17, n = 33;
  std::vector<float> x = randn(rows * n, 5), y(rows * n);
  std::vector<uint16_t> wb(n);
  for (int i = 0; i < n; ++i) wb[static_cast<size_t>(i)] = f32_to_bf16(0.5f + 0.03f * i);
  Weight w{wb.data(), DType::kBF16, 1, n, n, "w"};
  be.rmsnorm(x.data(), rows, n, n, &w, 1e-6f, y.data(), n);
  for (int r = 0; r < rows; ++r) {
    double ss = 0;
    for (int i = 0; i < n; ++i) ss += double(x[r * n + i]) * x[r * n + i];
    const double inv = 1.0 / std::sqrt(ss / n + 1e-6);
    for (int i = 0; i < n; ++i)
      EXPECT_NEAR(y[r * n + i], x[r * n + i] * inv * bf16_to_f32(wb[static_cast<size_t>(i)]), 1e-5);
  }
  // RoPE: rotating by position p then by -p is the identity; dim d pairs with d + D/2.
  const int D = 8;
  std::vector<float> h = randn(2 * D, 9), h0 = h;
  std::vector<float> inv = {1.0f, 0.1f, 0.0f, 0.5f};
  std::vector<int32_t> pos = {3, 0};
  be.rope(h.data(), 1, D, 2, D, pos.data(), inv.data());
  EXPECT_NEAR(h[0], h0[0] * std::cos(3.0f) - h0[4] * std::sin(3.0f), 1e-5);
  EXPECT_NEAR(h[4], h0[4] * std::cos(3.0f) + h0[0] * std::sin(3.0f), 1e-5);
  EXPECT_EQ(h[2], h0[2]);  // zero frequency: untouched
  EXPECT_EQ(h[6], h0[6]);
  EXPECT_NEAR(gelu_tanh(1.0f), 0.841192f, 1e-5);
  EXPECT_NEAR(gelu_tanh(-2.0f), -0.0454023f, 1e-5);
}

TEST(CpuOps, MoeRouteRenormalisesAndScales) {
  ThreadPool pool(1);
  CpuBackend be(pool);
  std::vector<float> logits = {0.0f, 2.0f, 1.0f, 2.0f};  // tie between experts 1 and 3
  std::vector<float> scale = {1.0f, 2.0f, 3.0f, 4.0f};
  Weight s{scale.data(), DType::kF32, 1, 4, 4, "scale"};
  std::vector<int32_t> idx(2);
  std::vector<float> w(2);
  be.moe_route(logits.data(), 4, 1, 4, 2, s, idx.data(), w.data());
  EXPECT_EQ(idx[0], 1);  // lower id first on ties
  EXPECT_EQ(idx[1], 3);
  EXPECT_NEAR(w[0], 0.5f * 2.0f, 1e-6);
  EXPECT_NEAR(w[1], 0.5f * 4.0f, 1e-6);
}

TEST(CpuOps, FastTanhKernelsMatchLibm) {
  // Dense sweep of the range plus large, tiny and signed values; awkward lengths (1, 17, 1001).
  std::vector<float> x;
  for (float v = -40.0f; v <= 40.0f; v += 0.00731f) x.push_back(v);
  for (float v : {0.0f, -0.0f, 1e-8f, -1e-8f, 1e-4f, 1e4f, -1e4f, 3e38f}) x.push_back(v);
  for (int64_t n : {int64_t{1}, int64_t{17}, int64_t{1001}, static_cast<int64_t>(x.size())}) {
    std::vector<float> y(x.begin(), x.begin() + n);
    softcap_row(y.data(), n, 30.0f);
    for (int64_t i = 0; i < n; ++i)
      EXPECT_NEAR(y[static_cast<size_t>(i)], 30.0f * std::tanh(x[static_cast<size_t>(i)] / 30.0f),
                  30.0f * 3e-7f)
          << x[static_cast<size_t>(i)];
    std::vector<float> up(static_cast<size_t>(n), 1.5f), out(static_cast<size_t>(n));
    gelu_mul_row(x.data(), up.data(), out.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      const float g = x[static_cast<size_t>(i)];
      if (std::fabs(g) > 1e3f) continue;  // the reference's cube overflows differently
      EXPECT_NEAR(out[static_cast<size_t>(i)], gelu_tanh(g) * 1.5f,
                  1e-6f * std::max(1.0f, std::fabs(g)))
          << g;
    }
  }
}

TEST(CpuOps, AttentionKernelsMatchScalarLoops) {
  // dot / weighted_rows (fp32 and bf16 rows) and exp_sub_sum against double-precision loops at
  // awkward lengths: 1, 17 (no full 16-lane step), 64 (one register chunk), 80, 513.
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-2.0f, 2.0f);
  for (int64_t n : {int64_t{1}, int64_t{17}, int64_t{64}, int64_t{80}, int64_t{513}}) {
    std::vector<float> q(static_cast<size_t>(n)), k(static_cast<size_t>(n));
    std::vector<uint16_t> kb(static_cast<size_t>(n));
    double want = 0, want_b = 0, mag = 0;
    for (int64_t i = 0; i < n; ++i) {
      q[i] = u(rng);
      k[i] = u(rng);
      kb[i] = f32_to_bf16(k[i]);
      want += double{q[i]} * k[i];
      want_b += double{q[i]} * bf16_to_f32(kb[i]);
      mag += std::fabs(double{q[i]} * k[i]);
    }
    EXPECT_NEAR(dot_f32(q.data(), k.data(), n), want, 1e-6 * mag) << n;
    EXPECT_NEAR(dot_bf16(q.data(), kb.data(), n), want_b, 1e-6 * mag) << n;

    // 7 rows of n values, weights of mixed sign.
    const int R = 7;
    std::vector<std::vector<float>> rows(R, std::vector<float>(static_cast<size_t>(n)));
    std::vector<std::vector<uint16_t>> rows_b(R, std::vector<uint16_t>(static_cast<size_t>(n)));
    std::vector<const float*> rp;
    std::vector<const uint16_t*> rbp;
    std::vector<float> w(R);
    for (int r = 0; r < R; ++r) {
      w[r] = u(rng);
      for (int64_t i = 0; i < n; ++i) {
        rows[r][i] = u(rng);
        rows_b[r][i] = f32_to_bf16(rows[r][i]);
      }
      rp.push_back(rows[r].data());
      rbp.push_back(rows_b[r].data());
    }
    std::vector<float> out(static_cast<size_t>(n) + 1, 77.0f), out_b(out);
    weighted_rows_f32(w.data(), rp.data(), R, n, out.data());
    weighted_rows_bf16(w.data(), rbp.data(), R, n, out_b.data());
    for (int64_t i = 0; i < n; ++i) {
      double s = 0, sb = 0, m = 0;
      for (int r = 0; r < R; ++r) {
        s += double{w[r]} * rows[r][i];
        sb += double{w[r]} * bf16_to_f32(rows_b[r][i]);
        m += std::fabs(double{w[r]} * rows[r][i]);
      }
      EXPECT_NEAR(out[i], s, 1e-6 * m) << n << " " << i;
      EXPECT_NEAR(out_b[i], sb, 1e-6 * m) << n << " " << i;
    }
    EXPECT_EQ(out[n], 77.0f);  // nothing written past D
    EXPECT_EQ(out_b[n], 77.0f);

    // Softmax numerators: x - m spans [-100, 0] (below -87 gives 0) plus -inf.
    std::vector<float> x(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) x[i] = -100.0f * static_cast<float>(i) / n + 3.0f;
    if (n > 2) x[1] = -INFINITY;
    std::vector<float> e = x;
    const float sum = exp_sub_sum(e.data(), n, 3.0f);
    double want_sum = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double d = double{x[i]} - 3.0;
      const double ref = d < -87.0 ? 0.0 : std::exp(d);
      want_sum += ref;
      EXPECT_NEAR(e[i], ref, 1e-6 * ref + 1e-38) << n << " " << x[i];
    }
    EXPECT_NEAR(sum, want_sum, 1e-6 * want_sum) << n;
  }
  float nan_in = std::nanf("");
  EXPECT_TRUE(std::isnan(exp_sub_sum(&nan_in, 1, 0.0f)));  // NaN scores are not hidden
}

}  // namespace
}  // namespace fc::cpu
