// The opt-in int8 NVFP4 prefill (nvfp4_prefill_i8.h): the AVX2 quantizer and packer against the
// scalar definitions (bit for bit), nvfp4_matmul_i8 against nvfp4_matmul_i8_ref at awkward
// shapes, the reference against the exact product within the quantization's error bound, and
// the CPU backend's opt-in dispatch.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/matmul.h"
#include "backend/cpu/nvfp4_linear.h"
#include "backend/cpu/nvfp4_matmul.h"
#include "backend/cpu/nvfp4_prefill_i8.h"
#include "backend/cpu/nvfp4_prefill_i8_kernels.h"
#include "core/error.h"
#include "quant/nvfp4.h"
#include "tests/unit/cpu/nvfp4_test_util.h"

namespace fc::cpu {
namespace {

constexpr float kPad = 12345.0f;

// A random NVFP4 matrix [N, K] with padded strides (every code; scales 2⁻³..2³ in E4M3).
struct Q {
  std::vector<uint8_t> codes, scales;
  quant::Nvfp4Matrix m;
  Q(int64_t N, int64_t K, std::mt19937& rng) {
    const int64_t ld = K / 2 + 3, sld = K / 16 + 1;
    codes.resize(static_cast<size_t>(N * ld + 1));
    scales.resize(static_cast<size_t>(N * sld + 1));
    std::uniform_int_distribution<int> byte(0, 255), sc(0x20, 0x4F);
    for (auto& c : codes) c = static_cast<uint8_t>(byte(rng));
    for (auto& s : scales) s = static_cast<uint8_t>(sc(rng));
    m.packed = codes.data() + 1;
    m.scales = scales.data() + 1;
    m.rows = N;
    m.cols = K;
    m.ld = ld;
    m.scale_ld = sld;
    m.global_scale = 0.0137f;
  }
};

// Activations with blocks of zeros, single outliers and exact rounding ties (x · 127/max = k.5).
std::vector<float> activations(int64_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& f : v) f = u(rng);
  for (int64_t b = 0; b + 16 <= n; b += 16) {
    switch ((b / 16) % 5) {
      case 1:
        std::fill_n(v.begin() + b, 16, 0.0f);
        break;
      case 2:
        v[static_cast<size_t>(b + 3)] = 40.0f;  // outlier: the rest of the block rounds coarsely
        break;
      case 3:
        v[static_cast<size_t>(b)] = 127.0f;  // max 127: values k + 0.5 are ties
        v[static_cast<size_t>(b + 1)] = 2.5f;
        v[static_cast<size_t>(b + 2)] = -3.5f;
        break;
      default:
        break;
    }
  }
  return v;
}

TEST(Nvfp4PrefillI8, Avx2QuantizerEqualsScalarDefinition) {
  if (!nvfp4_i8_fast()) GTEST_SKIP() << "no AVX2";
  std::mt19937 rng(3);
  const int64_t T = 7, K = 336, ldx = K + 5;
  const std::vector<float> x = activations(T * ldx, rng);
  std::vector<uint8_t> q(static_cast<size_t>(T * K)), qr(q.size());
  std::vector<float> s(static_cast<size_t>(T * K / 16)), sr(s.size());
  detail::i8_kernels_avx2().quantize(x.data(), T, ldx, K, q.data(), K, s.data(), K / 16);
  for (int64_t t = 0; t < T; ++t) {
    detail::quantize_row_i8(x.data() + t * ldx, K, qr.data() + t * K, sr.data() + t * K / 16);
  }
  EXPECT_EQ(q, qr);
  EXPECT_EQ(s, sr);
  // The definition itself: round half to even of x · 127 / max, scale max / 254.
  EXPECT_EQ(qr[16 * 3], 128 + 127);
  EXPECT_EQ(qr[16 * 3 + 1], 128 + 2);  // 2.5 → 2
  EXPECT_EQ(qr[16 * 3 + 2], 128 - 4);  // -3.5 → -4
  EXPECT_EQ(sr[3], 127.0f / 127.0f * 0.5f);
  EXPECT_EQ(sr[1], 0.0f);
  for (int k = 16; k < 32; ++k) EXPECT_EQ(qr[k], 128);
}

TEST(Nvfp4PrefillI8, Avx2PackEqualsScalarPack) {
  if (!nvfp4_i8_fast()) GTEST_SKIP() << "no AVX2";
  std::mt19937 rng(4);
  const Q w(65, 1040, rng);
  for (int64_t rows : {1, 7, 8, 9, 64}) {
    for (auto [k0, kc] :
         {std::pair<int64_t, int64_t>{0, 16}, {16, 48}, {64, 64}, {32, 80}, {16, 1024}}) {
      const size_t bytes = static_cast<size_t>((rows + 7) / 8 * (kc / 16) * detail::kI8BlockBytes);
      std::vector<uint8_t> a(bytes + 64, 0xAA), b(bytes + 64, 0x55);
      uint8_t* pa = a.data() + (32 - reinterpret_cast<uintptr_t>(a.data()) % 32) % 32;
      uint8_t* pb = b.data() + (32 - reinterpret_cast<uintptr_t>(b.data()) % 32) % 32;
      detail::i8_kernels_avx2().pack(w.m.packed, w.m.ld, w.m.scales, w.m.scale_ld, rows, k0, kc,
                                     w.m.global_scale, pa);
      detail::i8_kernels_scalar().pack(w.m.packed, w.m.ld, w.m.scales, w.m.scale_ld, rows, k0, kc,
                                       w.m.global_scale, pb);
      ASSERT_EQ(0, std::memcmp(pa, pb, bytes)) << "rows=" << rows << " k0=" << k0 << " kc=" << kc;
    }
  }
}

// |Σ terms| tolerance for fp32 summation-order differences: 1e-5 of Σ |q·v·scale| (+|y0|).
float order_tol(const float* x, int64_t K, const quant::Nvfp4Matrix& w, int64_t n) {
  std::vector<float> row(static_cast<size_t>(K));
  quant::dequantize_row(w, n, row.data());
  double s = 0;
  for (int64_t k = 0; k < K; ++k) s += std::fabs(x[k] * row[static_cast<size_t>(k)]);
  return static_cast<float>(1.1e-5 * s + 1e-30);  // |x̂| ≤ |x|·(1 + 1/254)
}

TEST(Nvfp4PrefillI8, MatchesItsReferenceAtAwkwardShapes) {
  std::mt19937 rng(5);
  ThreadPool pool1(1), pool2(2), pool3(3);
  // K: 1 and 3 scale blocks, 65 (two K blocks of 528 and 512), 129 (three), and for the direct
  // (T <= 32) tiles' 64-column groups K % 64 = 0, 16, 32, 48; N around the 8-row micro-panels,
  // 64-row panels and the direct tiles' 4 rows; T around the direct tiles' 2 rows, the direct /
  // packed split at 32, the 4-row tiles and 120-row activation blocks.
  for (int64_t K : {16, 48, 96, 1040, 2064, 2112}) {
    for (int64_t N : {1, 3, 7, 8, 9, 65}) {
      const Q w(N, K, rng);
      for (int64_t T : {1, 2, 3, 5, 32, 33, 121}) {
        if (K >= 2064 && T >= 32 && N < 65) continue;  // keep the scalar reference's time down
        const int64_t ldx = K + 3, ldy = N + 2;
        const std::vector<float> x = activations(T * ldx, rng);
        std::vector<float> y0(static_cast<size_t>(T * ldy));
        for (auto& f : y0) f = std::uniform_real_distribution<float>(-1, 1)(rng);
        for (bool acc : {false, true}) {
          std::vector<float> ref = y0;
          nvfp4_matmul_i8_ref(x.data(), T, ldx, w.m, ref.data(), ldy, acc);
          for (ThreadPool* pool : {&pool1, &pool2, &pool3}) {
            // Each path at every T: the direct tiles (decode) and the packed panels (prefill).
            for (MatmulPath path : {MatmulPath::kAuto, MatmulPath::kDirect, MatmulPath::kBlocked}) {
              if (path != MatmulPath::kAuto && pool != &pool2) continue;
              std::vector<float> y = y0;
              for (int64_t t = 0; t < T; ++t) {
                for (int64_t n = N; n < ldy; ++n) y[static_cast<size_t>(t * ldy + n)] = kPad;
              }
              nvfp4_matmul_i8(*pool, x.data(), T, ldx, w.m, y.data(), ldy, acc, path);
              const std::string where = "K=" + std::to_string(K) + " N=" + std::to_string(N) +
                                        " T=" + std::to_string(T) + " acc=" + std::to_string(acc) +
                                        " threads=" + std::to_string(pool->size()) +
                                        " path=" + std::to_string(static_cast<int>(path));
              test::expect_rows_near(
                  y, ref, y0, T, N, ldy, acc, kPad,
                  [&](int64_t t, int64_t n) { return order_tol(x.data() + t * ldx, K, w.m, n); },
                  where);
            }
          }
        }
      }
    }
  }
}

TEST(Nvfp4PrefillI8, ReferenceIsWithinTheQuantizationBoundOfTheExactProduct) {
  // Each activation moves by at most half a step (max_b / 254) and nothing else is rounded but
  // fp32 sums, so |i8 − exact| ≤ Σ_b max_b / 254 · Σ_{k in b} |w| + order error. The bound must
  // also be used: the two differ (this is not the exact path).
  std::mt19937 rng(6);
  const int64_t T = 9, N = 13, K = 272;
  const Q w(N, K, rng);
  const std::vector<float> x = activations(T * K, rng);
  std::vector<float> yi(static_cast<size_t>(T * N)), ye(yi.size());
  nvfp4_matmul_i8_ref(x.data(), T, K, w.m, yi.data(), N);
  nvfp4_matmul_ref(x.data(), T, K, w.m, ye.data(), N);
  std::vector<float> row(static_cast<size_t>(K));
  double worst = 0;
  int differ = 0;
  for (int64_t n = 0; n < N; ++n) {
    quant::dequantize_row(w.m, n, row.data());
    for (int64_t t = 0; t < T; ++t) {
      double bound = 0;
      for (int64_t b = 0; b < K; b += 16) {
        double mx = 0, sw = 0;
        for (int64_t k = b; k < b + 16; ++k) {
          mx = std::max(mx, static_cast<double>(std::fabs(x[t * K + k])));
          sw += std::fabs(row[static_cast<size_t>(k)]);
        }
        bound += mx / 254.0 * sw;
      }
      const float tol = static_cast<float>(bound) + order_tol(x.data() + t * K, K, w.m, n);
      const size_t i = static_cast<size_t>(t * N + n);
      ASSERT_NEAR(yi[i], ye[i], tol) << "t=" << t << " n=" << n;
      worst = std::max(worst, std::fabs(yi[i] - ye[i]) / (bound + 1e-30));
      differ += yi[i] != ye[i];
    }
  }
  EXPECT_GT(differ, T * N / 2);
  EXPECT_LT(worst, 1.0);
}

TEST(Nvfp4PrefillI8, RejectsBadShapes) {
  std::mt19937 rng(1);
  ThreadPool pool(1);
  Q w(4, 32, rng);
  std::vector<float> x(64), y(8);
  quant::Nvfp4Matrix bad = w.m;
  bad.cols = 24;
  EXPECT_THROW(nvfp4_matmul_i8(pool, x.data(), 1, 24, bad, y.data(), 4), Error);
  bad = w.m;
  bad.scale_ld = 1;
  EXPECT_THROW(nvfp4_matmul_i8(pool, x.data(), 1, 32, bad, y.data(), 4), Error);
  EXPECT_THROW(nvfp4_matmul_i8(pool, x.data(), 2, 16, w.m, y.data(), 4), Error);  // ldx < K
}

// The direct (decode) layout, byte for byte from its definition (nvfp4_prefill_i8_kernels.h).
TEST(Nvfp4PrefillI8, DirectArrangementFollowsItsDefinition) {
  std::mt19937 rng(9);
  const int64_t T = 2, K = 80, groups = 2, ldxd = detail::i8_direct_row_bytes(K);
  ASSERT_EQ(ldxd, groups * detail::kI8DirectGroupBytes);
  const std::vector<float> x = activations(T * K, rng);
  std::vector<uint8_t> xq(static_cast<size_t>(T * K)), xd(static_cast<size_t>(T * ldxd), 0xAA);
  std::vector<float> xs(static_cast<size_t>(T * K / 16));
  for (int64_t t = 0; t < T; ++t) {
    detail::quantize_row_i8(x.data() + t * K, K, xq.data() + t * K, xs.data() + t * K / 16);
  }
  detail::arrange_i8_direct(xq.data(), K, xs.data(), K / 16, T, K, xd.data(), ldxd);
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t g = 0; g < groups; ++g) {
      const uint8_t* o = xd.data() + t * ldxd + g * detail::kI8DirectGroupBytes;
      for (int64_t k = 0; k < 64; ++k) {
        const int64_t col = 64 * g + k;
        const int q = col < K ? xq[static_cast<size_t>(t * K + col)] - 128 : 0;
        EXPECT_EQ(static_cast<int8_t>(o[32 * (k % 2) + k / 2]), q) << t << " " << col;
      }
      for (int n = 0; n < 8; ++n) {
        int32_t c = 0, want = 0;
        float a = 0, want_a = 0;
        for (int k = 0; k < 8; ++k) {
          const int64_t col = 64 * g + 8 * n + k;
          if (col < K) want += 12 * (xq[static_cast<size_t>(t * K + col)] - 128);
        }
        const int64_t col = 64 * g + 8 * n;
        if (col < K) want_a = 256.0f * xs[static_cast<size_t>(t * K / 16 + col / 16)];
        std::memcpy(&c, o + 64 + 4 * n, 4);
        std::memcpy(&a, o + 96 + 4 * n, 4);
        EXPECT_EQ(c, want) << t << " " << g << " " << n;
        EXPECT_EQ(a, want_a) << t << " " << g << " " << n;
      }
    }
  }
}

// CpuOptions::prefill_int8: W4A16 steps of >= kPrefillInt8MinRows rows run nvfp4_matmul_i8 (bit
// for bit, same pool), shorter ones the exact kernels; decode_int8 the same for the shorter
// ones; both off by default.
TEST(Nvfp4PrefillI8, CpuBackendOptIn) {
  std::mt19937 rng(8);
  ThreadPool pool(2);
  const int64_t N = 40, K = 96;
  Q q(N, K, rng);
  const Weight w = test::nvfp4_weight_view(q.m);
  // With AMX tiles the int8 paths stop where the exact direct path does (nvfp4_int8_max_rows: 5
  // rows, 9 with the integer direct kernels); edge and edge + 1 straddle it.
  const int64_t cap = nvfp4_int8_max_rows(MatmulIsa::kAuto);
  const int64_t direct = nvfp4_direct_max_rows(MatmulIsa::kAuto);
  EXPECT_EQ(cap, matmul_isa_supported(MatmulIsa::kAmx) ? direct : INT64_MAX);
  if (matmul_isa_supported(MatmulIsa::kAmx)) EXPECT_TRUE(direct == 5 || direct == 9) << direct;
  const int64_t edge = cap == INT64_MAX ? 5 : cap;
  for (int64_t T : {edge, edge + 1, kPrefillInt8MinRows - 1, kPrefillInt8MinRows, int64_t{70}}) {
    const std::vector<float> x = activations(T * K, rng);
    std::vector<float> i8(static_cast<size_t>(T * N)), exact(i8.size());
    nvfp4_matmul_i8(pool, x.data(), T, K, q.m, i8.data(), N);
    nvfp4_matmul(pool, x.data(), T, K, q.m, exact.data(), N);
    ASSERT_NE(i8, exact);
    for (int opt = 0; opt < 4; ++opt) {
      CpuOptions o;
      o.prefill_int8 = opt & 1;
      o.decode_int8 = opt & 2;
      CpuBackend be(pool, o);
      std::vector<float> y(i8.size());
      be.linear(x.data(), T, K, w, y.data(), N, false);
      const bool want_i8 = (T >= kPrefillInt8MinRows ? o.prefill_int8 : o.decode_int8) && T <= cap;
      EXPECT_EQ(y, want_i8 ? i8 : exact) << "T=" << T << " opt=" << opt;
    }
  }
}

}  // namespace
}  // namespace fc::cpu
