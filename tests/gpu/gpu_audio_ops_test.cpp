// The CUDA audio-tower ops against the CPU backend (tests/unit/backend/audio_ops_test.cpp checks
// the CPU ones against their definitions), at awkward sizes, and the whole tower on the
// audio-mini fixture. Skipped (exit 0) without a GPU.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "backend/cpu/cpu_backend.h"
#include "core/half.h"
#include "core/thread_pool.h"
#include "gpu_test_util.h"
#include "model/gemma4/audio_tower.h"
#include "model/gemma4/config.h"

namespace fc::gputest {
namespace {

class GpuAudioOps : public ::testing::Test {
 protected:
  void SetUp() override {
    FC_REQUIRE_GPU();
    pool = std::make_unique<ThreadPool>(2);
    cpu = std::make_unique<cpu::CpuBackend>(*pool);
    gpu = std::make_unique<cuda::CudaBackend>();
  }
  std::unique_ptr<ThreadPool> pool;
  std::unique_ptr<cpu::CpuBackend> cpu;
  std::unique_ptr<cuda::CudaBackend> gpu;
};

Weight host_weight(const std::vector<uint16_t>& bf16, int64_t rows, int64_t cols) {
  Weight w;
  w.data = bf16.data();
  w.dtype = DType::kBF16;
  w.rows = rows;
  w.cols = cols;
  w.ld = cols;
  w.name = "w";
  return w;
}

std::vector<uint16_t> to_bf16(const std::vector<float>& v) {
  std::vector<uint16_t> o(v.size());
  for (size_t i = 0; i < v.size(); ++i) o[i] = f32_to_bf16(v[i]);
  return o;
}

TEST_F(GpuAudioOps, ElementwiseAndLayerNorm) {
  const int64_t T = 17, n = 37, ld = 40;
  const std::vector<float> x = randn(static_cast<size_t>(T * ld), 1, 3.0f);
  const std::vector<float> b = randn(x.size(), 2);
  const std::vector<uint16_t> wb = to_bf16(randn(static_cast<size_t>(n), 3));
  const Weight hw = host_weight(wb, 1, n);
  const Weight dw = gpu->upload(hw);
  std::vector<float> c1 = x, s1(x.size()), g1(x.size()), l1(x.size());
  cpu->clamp(c1.data(), ld, T, n, -1.0f, 0.5f);
  cpu->silu(x.data(), ld, T, n, s1.data(), ld);
  cpu->glu(x.data(), ld, b.data(), ld, T, n, g1.data(), ld);
  cpu->layernorm(x.data(), T, n, ld, &hw, nullptr, 1e-6f, l1.data(), ld);
  DevBuf<float> dx(*gpu, x), db(*gpu, b), dc(*gpu, x), ds(*gpu, x), dg(*gpu, x), dl(*gpu, x);
  gpu->clamp(dc.p, ld, T, n, -1.0f, 0.5f);
  gpu->silu(dx.p, ld, T, n, ds.p, ld);
  gpu->glu(dx.p, ld, db.p, ld, T, n, dg.p, ld);
  gpu->layernorm(dx.p, T, n, ld, &dw, nullptr, 1e-6f, dl.p, ld);
  gpu->synchronize();
  for (int64_t t = 0; t < T; ++t) {
    const size_t o = static_cast<size_t>(t * ld);
    EXPECT_LE(rel_err(dc.host().data() + o, c1.data() + o, n), 0.0);
    EXPECT_LE(rel_err(ds.host().data() + o, s1.data() + o, n), 1e-6);
    EXPECT_LE(rel_err(dg.host().data() + o, g1.data() + o, n), 1e-6);
    EXPECT_LE(rel_err(dl.host().data() + o, l1.data() + o, n), 1e-5);
  }
}

TEST_F(GpuAudioOps, ConvPatchesDepthwiseAndLocalAttention) {
  const int64_t T = 9, F = 13, C = 3;
  const std::vector<float> x = randn(static_cast<size_t>(T * F * C), 4);
  const int64_t Fo = 7, rows = 3 * Fo, cols = C * 9;
  std::vector<float> p1(static_cast<size_t>(rows * cols));
  cpu->conv2d_patches(x.data(), T, F, C, 3, 2, 1, 2, 3, p1.data());
  DevBuf<float> dx(*gpu, x), dp(*gpu, std::vector<float>(p1.size()));
  gpu->conv2d_patches(dx.p, T, F, C, 3, 2, 1, 2, 3, dp.p);
  EXPECT_EQ(dp.host(), p1);

  const int64_t N = 23, H = 24, K = 5;
  const std::vector<float> h = randn(static_cast<size_t>(N * H), 5);
  const std::vector<uint16_t> wk = to_bf16(randn(static_cast<size_t>(H * K), 6));
  const Weight hw = host_weight(wk, H, K);
  const Weight dw = gpu->upload(hw);
  std::vector<float> y1(h.size());
  cpu->depthwise_conv1d_causal(h.data(), H, N, H, hw, y1.data(), H);
  DevBuf<float> dh(*gpu, h), dy(*gpu, std::vector<float>(h.size()));
  gpu->depthwise_conv1d_causal(dh.p, H, N, H, dw, dy.p, H);
  EXPECT_LE(rel_err(dy.host().data(), y1.data(), y1.size()), 1e-6);

  const int heads = 3, D = 8, W = 12;
  const std::vector<float> q = randn(h.size(), 7), k = randn(h.size(), 8), v = randn(h.size(), 9);
  const std::vector<float> rel = randn(static_cast<size_t>(W * H), 10), qs = randn(D, 11);
  LocalAttentionArgs a;
  a.ldq = a.ldk = a.ldv = a.ldo = a.ld_rel = H;
  a.T = N;
  a.n_heads = heads;
  a.head_dim = D;
  a.k_scale = 1.3f;
  a.window = W;
  a.logit_cap = 5.0f;
  std::vector<float> o1(h.size());
  a.q = q.data(), a.k = k.data(), a.v = v.data(), a.rel_k = rel.data(), a.q_scale = qs.data();
  a.out = o1.data();
  cpu->local_attention(a);
  DevBuf<float> dq(*gpu, q), dk(*gpu, k), dv(*gpu, v), dr(*gpu, rel), dqs(*gpu, qs),
      doo(*gpu, std::vector<float>(h.size()));
  a.q = dq.p, a.k = dk.p, a.v = dv.p, a.rel_k = dr.p, a.q_scale = dqs.p, a.out = doo.p;
  gpu->local_attention(a);
  EXPECT_LE(rel_err(doo.host().data(), o1.data(), o1.size()), 1e-5);
}

TEST_F(GpuAudioOps, TowerMatchesTheCpuBackend) {
  const std::string dir = std::string(FC_SOURCE_DIR) + "/tests/fixtures/audio-mini";
  std::ifstream f(dir + "/config.json");
  const nlohmann::json j = nlohmann::json::parse(f);
  const gemma4::AudioConfig cfg = *gemma4::parse_audio_config(j, "config.json");
  const gemma4::Config text = gemma4::load_config(dir);
  std::shared_ptr<const Checkpoint> ckpt = Checkpoint::open_dir(dir);
  gemma4::AudioTower tc(cfg, text.hidden_size, ckpt, *cpu, text.quant);
  gemma4::AudioTower tg(cfg, text.hidden_size, ckpt, *gpu, text.quant);
  const std::vector<float> feats = randn(71 * 128, 12);
  const gemma4::AudioEncoding a = tc.encode(feats.data(), 71);
  const gemma4::AudioEncoding b = tg.encode(feats.data(), 71);
  ASSERT_EQ(a.n, b.n);
  EXPECT_LE(rel_err(b.tower.data(), a.tower.data(), a.tower.size()), 1e-4);
  EXPECT_LE(rel_err(b.embeds.data(), a.embeds.data(), a.embeds.size()), 1e-4);
}

}  // namespace
}  // namespace fc::gputest
