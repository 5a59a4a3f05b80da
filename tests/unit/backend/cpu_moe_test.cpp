// CpuBackend::moe_experts (experts spread over a 3-thread pool) against the plain
// expert-by-expert loop written out here with the backend's own linear and gelu_mul on one
// thread: equal bit for bit up to one pass of 256 tokens (same kernels per output row,
// contributions added in ascending expert id), for dense and NVFP4 experts, with unused experts
// and a repeated choice.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "quant/nvfp4.h"

namespace fc::cpu {
namespace {

struct Experts {
  std::vector<std::vector<float>> dense;  // F32 storage per weight
  std::vector<std::vector<uint8_t>> codes, scales;
  std::vector<Weight> gate, up, down;
};

Weight dense_weight(std::vector<float>& store, int64_t rows, int64_t cols, std::mt19937& rng) {
  std::normal_distribution<float> nd(0.0f, 0.3f);
  store.resize(static_cast<size_t>(rows * cols));
  for (float& f : store) f = nd(rng);
  Weight w;
  w.data = store.data();
  w.dtype = DType::kF32;
  w.rows = rows;
  w.cols = cols;
  w.ld = cols;
  w.name = "expert";
  return w;
}

Weight nvfp4_weight(std::vector<uint8_t>& codes, std::vector<uint8_t>& scales, int64_t rows,
                    int64_t cols, std::mt19937& rng) {
  codes.resize(static_cast<size_t>(rows * cols / 2));
  scales.resize(static_cast<size_t>(rows * cols / 16));
  for (auto& c : codes) c = static_cast<uint8_t>(rng());
  for (auto& s : scales) s = static_cast<uint8_t>(0x28 + rng() % 0x10);
  Weight w;
  w.data = codes.data();
  w.dtype = DType::kU8;
  w.rows = rows;
  w.cols = cols;
  w.ld = cols / 2;
  w.name = "expert";
  w.format = WeightFormat::kNvfp4;
  w.block_scale = scales.data();
  w.scale_ld = cols / 16;
  w.global_scale = 0.02f;
  return w;
}

Experts make_experts(int E, int64_t H, int64_t I, bool nvfp4, std::mt19937& rng) {
  Experts x;
  x.dense.resize(static_cast<size_t>(3 * E));
  x.codes.resize(static_cast<size_t>(3 * E));
  x.scales.resize(static_cast<size_t>(3 * E));
  for (int e = 0; e < E; ++e) {
    const size_t g = 3 * e, u = g + 1, d = g + 2;
    if (nvfp4) {
      x.gate.push_back(nvfp4_weight(x.codes[g], x.scales[g], I, H, rng));
      x.up.push_back(nvfp4_weight(x.codes[u], x.scales[u], I, H, rng));
      x.down.push_back(nvfp4_weight(x.codes[d], x.scales[d], H, I, rng));
    } else {
      x.gate.push_back(dense_weight(x.dense[g], I, H, rng));
      x.up.push_back(dense_weight(x.dense[u], I, H, rng));
      x.down.push_back(dense_weight(x.dense[d], H, I, rng));
    }
  }
  return x;
}

TEST(CpuMoe, ExpertsEqualTheSequentialLoop) {
  std::mt19937 rng(21);
  ThreadPool one(1), three(3);
  CpuBackend solo(one), be(three);
  const int E = 6, k = 2;
  const int64_t H = 48, I = 32;
  for (bool nvfp4 : {false, true}) {
    const Experts ex = make_experts(E, H, I, nvfp4, rng);
    // 300: longer than one pass of the parallel experts (256 tokens), compared within fp32
    // rounding since the passes give the experts' matmuls other row counts.
    for (int64_t T : {1, 9, 40, 300}) {
      std::normal_distribution<float> nd(0.0f, 1.0f);
      const int64_t ldx = H + 3, ldo = H + 1;
      std::vector<float> x(static_cast<size_t>(T * ldx));
      for (float& f : x) f = nd(rng);
      std::vector<int32_t> idx(static_cast<size_t>(T * k));
      std::vector<float> w(idx.size());
      for (int64_t t = 0; t < T; ++t) {
        idx[t * k] = static_cast<int32_t>(rng() % 4);  // experts 4 and 5 only as second choice
        idx[t * k + 1] = t == 3 ? idx[t * k] : static_cast<int32_t>(rng() % 5);
        w[t * k] = 0.7f, w[t * k + 1] = 0.3f;
      }
      std::vector<float> got(static_cast<size_t>(T * ldo), 5.0f), want = got;
      be.moe_experts(x.data(), ldx, T, idx.data(), w.data(), k, ex.gate.data(), ex.up.data(),
                     ex.down.data(), E, got.data(), ldo);
      // The plain loop: experts in ascending id, each over its rows in token order.
      for (int64_t t = 0; t < T; ++t) std::fill_n(want.data() + t * ldo, H, 0.0f);
      for (int e = 0; e < E; ++e) {
        std::vector<int64_t> rows;
        std::vector<float> wr;
        for (int64_t s = 0; s < T * k; ++s)
          if (idx[s] == e) rows.push_back(s / k), wr.push_back(w[s]);
        const int64_t n = static_cast<int64_t>(rows.size());
        if (n == 0) continue;
        std::vector<float> xs(static_cast<size_t>(n * H)), gu(static_cast<size_t>(n * 2 * I)),
            act(static_cast<size_t>(n * I)), y(static_cast<size_t>(n * H));
        for (int64_t r = 0; r < n; ++r)
          std::memcpy(xs.data() + r * H, x.data() + rows[r] * ldx, H * sizeof(float));
        solo.linear(xs.data(), n, H, ex.gate[e], gu.data(), 2 * I, false);
        solo.linear(xs.data(), n, H, ex.up[e], gu.data() + I, 2 * I, false);
        solo.gelu_mul(gu.data(), 2 * I, gu.data() + I, 2 * I, n, I, act.data(), I);
        solo.linear(act.data(), n, I, ex.down[e], y.data(), H, false);
        for (int64_t r = 0; r < n; ++r)
          for (int64_t i = 0; i < H; ++i) want[rows[r] * ldo + i] += y[r * H + i] * wr[r];
      }
      if (T <= 256) {
        EXPECT_EQ(got, want) << "nvfp4=" << nvfp4 << " T=" << T;  // padding column kept, too
      } else {
        for (size_t i = 0; i < got.size(); ++i)
          ASSERT_NEAR(got[i], want[i], 1e-5f * (1.0f + std::fabs(want[i])))
              << "T=" << T << " " << i;
      }
    }
  }
}

}  // namespace
}  // namespace fc::cpu
