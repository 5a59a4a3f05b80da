// nvfp4_matmul (every kernel family this CPU supports, both loop structures, pools of 1 and 3
// threads) against nvfp4_matmul_ref at awkward shapes, strides and alignments; nvfp4_linear
// (pre_quant_scale, W4A4 emulation) against nvfp4_linear_ref; the CPU backend's dispatch and the
// scalar weight accessors on NVFP4 weights.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/nvfp4_linear.h"
#include "backend/cpu/nvfp4_matmul.h"
#include "backend/cpu/ops.h"
#include "core/error.h"
#include "core/half.h"
#include "quant/nvfp4.h"
#include "tests/unit/cpu/nvfp4_test_util.h"

namespace fc::cpu {
namespace {

constexpr float kPad = 12345.0f;  // sentinel in output padding that must not be touched

std::vector<MatmulIsa> supported_isas() {
  std::vector<MatmulIsa> out;
  for (MatmulIsa i :
       {MatmulIsa::kAmx, MatmulIsa::kAvx512Bf16, MatmulIsa::kAvx512Vnni, MatmulIsa::kAvx512,
        MatmulIsa::kAvx2I16, MatmulIsa::kAvx2, MatmulIsa::kScalar}) {
    if (matmul_isa_supported(i)) out.push_back(i);
  }
  return out;
}

const char* isa_name(MatmulIsa i) {
  return i == MatmulIsa::kAmx          ? "amx-bf16"
         : i == MatmulIsa::kAvx512Bf16 ? "avx512-bf16"
         : i == MatmulIsa::kAvx512Vnni ? "avx512-vnni"
         : i == MatmulIsa::kAvx512     ? "avx512"
         : i == MatmulIsa::kAvx2I16    ? "avx2-i16"
         : i == MatmulIsa::kAvx2       ? "avx2"
                                       : "scalar";
}

// A random NVFP4 matrix [N, K]: every code (including 8 = -0), every scale byte except the NaNs
// 0x7F / 0xFF (subnormals and negative scales included), padded row strides, and data that start
// at an odd address.
struct Nvfp4Weights {
  int64_t N, K;
  std::vector<uint8_t> codes, scales;  // one byte of offset in front of each
  quant::Nvfp4Matrix m;

  Nvfp4Weights(int64_t n, int64_t k, std::mt19937& rng, float gs = 0.0173f) : N(n), K(k) {
    const int64_t ld = K / 2 + 5, sld = K / 16 + 3;
    codes.resize(static_cast<size_t>(N * ld + 1));
    scales.resize(static_cast<size_t>(N * sld + 1));
    std::uniform_int_distribution<int> byte(0, 255);
    for (auto& c : codes) c = static_cast<uint8_t>(byte(rng));
    for (auto& s : scales) {
      do s = static_cast<uint8_t>(byte(rng));
      while ((s & 0x7F) == 0x7F);
    }
    m.packed = codes.data() + 1;
    m.scales = scales.data() + 1;
    m.rows = N;
    m.cols = K;
    m.ld = ld;
    m.scale_ld = sld;
    m.global_scale = gs;
  }
};

std::vector<float> random_vec(size_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& f : v) f = u(rng);
  return v;
}

// |Σ x·w| error allowed: fp32 summation-order error, relative to Σ|x||w|. fixed16: the kernels
// hold each activation as fixed point per 16-column block (the direct paths of kAvx2I16 and
// kAvx512Vnni, 24 bits),
// within 2⁻²² · max_block |x| of it, so the bound adds 2⁻²² · Σ_blocks max_block |x| · Σ_block |w|.
std::vector<float> tolerances(const float* x, int64_t T, int64_t ldx, const quant::Nvfp4Matrix& w,
                              bool fixed16 = false) {
  std::vector<float> tol(static_cast<size_t>(T * w.rows));
  std::vector<float> row(static_cast<size_t>(w.cols));
  for (int64_t n = 0; n < w.rows; ++n) {
    quant::dequantize_row(w, n, row.data());
    for (int64_t t = 0; t < T; ++t) {
      double s = 0, q = 0;
      for (int64_t b = 0; b < w.cols; b += 16) {
        double mx = 0, sw = 0;
        for (int64_t k = b; k < b + 16; ++k) {
          s += std::fabs(x[t * ldx + k] * row[k]);
          mx = std::max(mx, static_cast<double>(std::fabs(x[t * ldx + k])));
          sw += std::fabs(row[k]);
        }
        q += mx * sw;
      }
      const double fx = fixed16 ? std::ldexp(q, -22) : 0.0;
      tol[static_cast<size_t>(t * w.rows + n)] = static_cast<float>(1e-5 * s + fx + 1e-30);
    }
  }
  return tol;
}

// Whether nvfp4_matmul's own choice on this CPU is the fixed-point family (its direct path).
bool default_is_fixed16() {
  const std::string isa = nvfp4_direct_kernels();
  return isa == "avx2-i16" || isa == "avx512-vnni";
}

TEST(Nvfp4Matmul, MatchesReferenceEveryIsaPathShapeAndStride) {
  std::mt19937 rng(7);
  ThreadPool pool1(1), pool3(3);
  // K % 64 = 16, 48, 32, 48, 16, 16 (a partial last group of 1, 3, 2 scale blocks for the 64-column
  // kernels), N odd and not a multiple of any tile, T across both tile heights and both paths.
  for (int64_t K : {16, 48, 96, 240, 272, 1040}) {
    for (int64_t N : {1, 17, 33, 257}) {
      const Nvfp4Weights w(N, K, rng);
      for (int64_t T : {1, 2, 3, 5, 17, 33, 64}) {
        // x at an odd offset with a padded row stride; y likewise, padding holds a sentinel.
        const int64_t ldx = K + 3, ldy = N + 5;
        const std::vector<float> xbuf = random_vec(static_cast<size_t>(T * ldx + 1), rng);
        const float* x = xbuf.data() + 1;
        const std::vector<float> y0 = random_vec(static_cast<size_t>(T * ldy + 1), rng);
        const std::vector<float> tol = tolerances(x, T, ldx, w.m);
        const std::vector<float> tol16 = tolerances(x, T, ldx, w.m, true);
        for (bool acc : {false, true}) {
          std::vector<float> ref = y0;
          nvfp4_matmul_ref(x, T, ldx, w.m, ref.data() + 1, ldy, acc);
          for (MatmulIsa isa : supported_isas()) {
            for (MatmulPath path : {MatmulPath::kDirect, MatmulPath::kBlocked, MatmulPath::kAuto}) {
              for (ThreadPool* pool : {&pool1, &pool3}) {
                std::vector<float> y = y0;
                for (int64_t t = 0; t < T; ++t) {
                  for (int64_t n = N; n < ldy; ++n) y[1 + t * ldy + n] = kPad;
                }
                nvfp4_matmul_with_isa(isa, *pool, x, T, ldx, w.m, y.data() + 1, ldy, acc, path);
                const std::string where =
                    std::string(isa_name(isa)) + " path " + std::to_string(static_cast<int>(path)) +
                    " K=" + std::to_string(K) + " N=" + std::to_string(N) +
                    " T=" + std::to_string(T) + " acc=" + std::to_string(acc) +
                    " threads=" + std::to_string(pool->size());
                ASSERT_EQ(y[0], y0[0]) << where;
                for (int64_t t = 0; t < T; ++t) {
                  for (int64_t n = 0; n < ldy; ++n) {
                    const float got = y[static_cast<size_t>(1 + t * ldy + n)];
                    if (n >= N) {
                      ASSERT_EQ(got, kPad) << where;
                      continue;
                    }
                    const float want = ref[static_cast<size_t>(1 + t * ldy + n)];
                    const float extra = acc ? 1e-6f * std::fabs(y0[1 + t * ldy + n]) : 0.0f;
                    // The integer sets' blocked path (kAuto beyond 32 rows) is the fp32 one.
                    const bool fixed16 =
                        (isa == MatmulIsa::kAvx2I16 || isa == MatmulIsa::kAvx512Vnni) &&
                        (path == MatmulPath::kDirect || (path == MatmulPath::kAuto && T <= 32));
                    const float t_n = (fixed16 ? tol16 : tol)[static_cast<size_t>(t * N + n)];
                    ASSERT_NEAR(got, want, t_n + extra) << where << " t=" << t << " n=" << n;
                  }
                }
              }
            }
          }
        }
      }
    }
  }
}

TEST(Nvfp4Matmul, BlockedPathTileAndBlockEdges) {
  // The blocked path's packed-panel GEMM (gemm_packed.h, on AVX2 and scalar sets): T around its
  // register tile and 120-row activation blocks, N around its 16-row micro-panels and 64-row
  // panels, K around its 256-column blocks (272: two blocks of 144 and 128; 528: three).
  std::mt19937 rng(23);
  ThreadPool pool1(1), pool2(2);
  for (int64_t K : {16, 272, 528}) {
    for (int64_t N : {15, 16, 65}) {
      const Nvfp4Weights w(N, K, rng);
      for (int64_t T : {7, 33, 121}) {
        const int64_t ldx = K + 1, ldy = N + 2;
        const std::vector<float> xbuf = random_vec(static_cast<size_t>(T * ldx + 1), rng);
        const float* x = xbuf.data() + 1;
        const std::vector<float> y0 = random_vec(static_cast<size_t>(T * ldy), rng);
        const std::vector<float> tol = tolerances(x, T, ldx, w.m);
        for (bool acc : {false, true}) {
          std::vector<float> ref = y0;
          nvfp4_matmul_ref(x, T, ldx, w.m, ref.data(), ldy, acc);
          for (MatmulIsa isa : supported_isas()) {
            for (ThreadPool* pool : {&pool1, &pool2}) {
              std::vector<float> y = y0;
              for (int64_t t = 0; t < T; ++t) {
                for (int64_t n = N; n < ldy; ++n) y[t * ldy + n] = kPad;
              }
              nvfp4_matmul_with_isa(isa, *pool, x, T, ldx, w.m, y.data(), ldy, acc,
                                    MatmulPath::kBlocked);
              const std::string where = std::string(isa_name(isa)) + " K=" + std::to_string(K) +
                                        " N=" + std::to_string(N) + " T=" + std::to_string(T) +
                                        " acc=" + std::to_string(acc) +
                                        " threads=" + std::to_string(pool->size());
              test::expect_rows_near(
                  y, ref, y0, T, N, ldy, acc, kPad,
                  [&](int64_t t, int64_t n) { return tol[static_cast<size_t>(t * N + n)]; }, where);
            }
          }
        }
      }
    }
  }
}

TEST(Nvfp4Matmul, ReferenceIsTheDequantizedDot) {
  // The reference itself against a double-precision dot of dequantize_row values.
  std::mt19937 rng(3);
  const Nvfp4Weights w(5, 64, rng, 1.0f);
  const std::vector<float> x = random_vec(64 * 2, rng);
  std::vector<float> y(10);
  nvfp4_matmul_ref(x.data(), 2, 64, w.m, y.data(), 5);
  std::vector<float> row(64);
  for (int n = 0; n < 5; ++n) {
    quant::dequantize_row(w.m, n, row.data());
    for (int t = 0; t < 2; ++t) {
      double s = 0, a = 0;
      for (int k = 0; k < 64; ++k) {
        s += static_cast<double>(x[t * 64 + k]) * row[k];
        a += std::fabs(static_cast<double>(x[t * 64 + k]) * row[k]);
      }
      EXPECT_NEAR(y[t * 5 + n], s, 1e-5 * a);
    }
  }
}

// kAuto's direct (decode) kernels are the set nvfp4_direct_kernels() names (measured once per
// process): one of those this CPU supports, and nvfp4_matmul's decode-sized results are that
// set's, bit for bit; the blocked path is the family's.
TEST(Nvfp4Matmul, AutoUsesTheMeasuredDirectSet) {
  const std::string name = nvfp4_direct_kernels();
  MatmulIsa isa = MatmulIsa::kAuto;
  for (MatmulIsa i : supported_isas()) {
    if (i != MatmulIsa::kAmx && name == isa_name(i)) isa = i;
  }
  ASSERT_NE(isa, MatmulIsa::kAuto) << "direct set " << name << " is not a supported family";
  std::mt19937 rng(31);
  ThreadPool pool(2);
  const Nvfp4Weights w(67, 1040, rng);
  for (int64_t T : {1, 2, 3, 4, 5}) {
    const std::vector<float> x = random_vec(static_cast<size_t>(T * 1040), rng);
    std::vector<float> a(static_cast<size_t>(T * 67)), b(a.size());
    nvfp4_matmul(pool, x.data(), T, 1040, w.m, a.data(), 67);
    nvfp4_matmul_with_isa(isa, pool, x.data(), T, 1040, w.m, b.data(), 67, false,
                          MatmulPath::kDirect);
    EXPECT_EQ(a, b) << name << " T=" << T;
  }
}

// A non-finite activation makes every output of its row non-finite on every family and path
// (the reference's inf·w / NaN·w sums are; the fixed-point families give its block a NaN scale),
// and leaves the other rows as they were.
TEST(Nvfp4Matmul, NonFiniteActivationsPoisonTheirRowOnly) {
  std::mt19937 rng(41);
  ThreadPool pool(2);
  const Nvfp4Weights w(21, 272, rng);
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                    -std::numeric_limits<float>::infinity()}) {
    std::vector<float> x = random_vec(static_cast<size_t>(3 * 272), rng);
    x[272 + 37] = bad;  // row 1, block 2
    const std::vector<float> tol = tolerances(x.data(), 3, 272, w.m, true);
    std::vector<float> ref(static_cast<size_t>(3 * 21));
    nvfp4_matmul_ref(x.data(), 3, 272, w.m, ref.data(), 21);
    for (MatmulIsa isa : supported_isas()) {
      for (MatmulPath path : {MatmulPath::kDirect, MatmulPath::kBlocked}) {
        std::vector<float> y(ref.size());
        nvfp4_matmul_with_isa(isa, pool, x.data(), 3, 272, w.m, y.data(), 21, false, path);
        for (int64_t t = 0; t < 3; ++t) {
          for (int64_t n = 0; n < 21; ++n) {
            const size_t i = static_cast<size_t>(t * 21 + n);
            if (t == 1) {
              EXPECT_FALSE(std::isfinite(y[i])) << isa_name(isa) << " n=" << n << " " << bad;
            } else {
              EXPECT_NEAR(y[i], ref[i], tol[i]) << isa_name(isa) << " t=" << t << " n=" << n;
            }
          }
        }
      }
    }
  }
}

TEST(Nvfp4Matmul, RejectsBadShapes) {
  std::mt19937 rng(1);
  ThreadPool pool(1);
  Nvfp4Weights w(4, 32, rng);
  std::vector<float> x(64), y(8);
  quant::Nvfp4Matrix bad = w.m;
  bad.cols = 24;  // not a multiple of 16
  EXPECT_THROW(nvfp4_matmul(pool, x.data(), 1, 24, bad, y.data(), 4), Error);
  bad = w.m;
  bad.ld = 15;  // < cols / 2
  EXPECT_THROW(nvfp4_matmul(pool, x.data(), 1, 32, bad, y.data(), 4), Error);
  bad = w.m;
  bad.scale_ld = 1;  // < cols / 16
  EXPECT_THROW(nvfp4_matmul(pool, x.data(), 1, 32, bad, y.data(), 4), Error);
}

// ---- nvfp4_linear ----------------------------------------------------------------------------

// pre_quant_scale[k] of w as fp32.
float pqs_value(const Weight& w, int64_t k) {
  if (w.pqs_dtype == DType::kF32) return static_cast<const float*>(w.pre_quant_scale)[k];
  const uint16_t h = static_cast<const uint16_t*>(w.pre_quant_scale)[k];
  return w.pqs_dtype == DType::kBF16 ? bf16_to_f32(h) : f16_to_f32(h);
}

struct LinearCase {
  Nvfp4Weights q;
  std::vector<unsigned char> pqs;  // [K] in pqs_dtype
  Weight w;

  LinearCase(int64_t N, int64_t K, DType pqs_dtype, float input_scale, std::mt19937& rng)
      : q(N, K, rng) {
    w = test::nvfp4_weight_view(q.m);
    w.input_scale = input_scale;
    if (pqs_dtype != DType::kU8) {  // kU8: no pre_quant_scale
      std::uniform_real_distribution<float> u(0.25f, 4.0f);
      pqs.resize(static_cast<size_t>(K * 4));
      for (int64_t k = 0; k < K; ++k) {
        const float v = u(rng);
        if (pqs_dtype == DType::kF32) {
          std::memcpy(pqs.data() + 4 * k, &v, 4);
        } else {
          const uint16_t h = pqs_dtype == DType::kBF16 ? f32_to_bf16(v) : f32_to_f16(v);
          std::memcpy(pqs.data() + 2 * k, &h, 2);
        }
      }
      w.pre_quant_scale = pqs.data();
      w.pqs_dtype = pqs_dtype;
    }
  }
};

TEST(Nvfp4Linear, PreQuantScaleAndW4A4MatchReference) {
  std::mt19937 rng(11);
  ThreadPool pool(3);
  for (DType pqs : {DType::kU8, DType::kBF16, DType::kF16, DType::kF32}) {
    for (float input_scale : {0.0f, 1.0f / 2688.0f, 0.05f}) {
      for (bool emulate : {false, true}) {
        for (int64_t T : {1, 3, 17}) {
          const int64_t N = 33, K = 272, ldx = K + 7, ldy = N + 2;
          LinearCase c(N, K, pqs, input_scale, rng);
          std::vector<float> x = random_vec(static_cast<size_t>(T * ldx), rng);
          for (size_t i = 0; i < x.size(); i += 37) x[i] *= 40.0f;  // outliers: varied block amax
          const std::vector<float> y0 = random_vec(static_cast<size_t>(T * ldy), rng);
          const std::string where =
              std::string(dtype_name(pqs)) + " is=" + std::to_string(input_scale) +
              " emulate=" + std::to_string(emulate) + " T=" + std::to_string(T);
          for (bool acc : {false, true}) {
            std::vector<float> ref = y0, y = y0, prepared, scratch;
            nvfp4_linear_ref(x.data(), T, ldx, c.w, ref.data(), ldy, acc, emulate, &prepared);
            nvfp4_linear(pool, scratch, x.data(), T, ldx, c.w, y.data(), ldy, acc, emulate);
            // The prepared activations are elementwise and deterministic: bitwise equal.
            int64_t ld = 0;
            const float* xp =
                nvfp4_prepare_activations(pool, scratch, x.data(), T, ldx, c.w, emulate, &ld);
            const bool applied_w4a4 = emulate && input_scale > 0.0f;  // exact fp32 kernels
            const bool applied = pqs != DType::kU8 || applied_w4a4;
            ASSERT_EQ(xp == x.data(), !applied) << where;
            for (int64_t t = 0; t < T; ++t) {
              for (int64_t k = 0; k < K; ++k) {
                const float a = xp[t * ld + k], b = prepared[static_cast<size_t>(t * K + k)];
                ASSERT_EQ(std::memcmp(&a, &b, 4), 0) << where << " t=" << t << " k=" << k;
              }
            }
            if (emulate && input_scale > 0.0f) {  // the QDQ really changed something
              int changed = 0;
              for (int64_t k = 0; k < K; ++k) {
                const float pre = pqs == DType::kU8 ? x[k] : x[k] * pqs_value(c.w, k);
                changed += prepared[static_cast<size_t>(k)] != pre;
              }
              EXPECT_GT(changed, K / 4) << where;
            }
            const std::vector<float> tol =
                tolerances(prepared.data(), T, K, c.q.m, default_is_fixed16() && !applied_w4a4);
            for (int64_t t = 0; t < T; ++t) {
              for (int64_t n = 0; n < N; ++n) {
                const size_t i = static_cast<size_t>(t * ldy + n);
                const float extra = acc ? 1e-6f * std::fabs(y0[i]) : 0.0f;
                ASSERT_NEAR(y[i], ref[i], tol[static_cast<size_t>(t * N + n)] + extra) << where;
              }
            }
          }
        }
      }
    }
  }
}

TEST(Nvfp4Linear, CpuBackendDispatchesNvfp4Weights) {
  std::mt19937 rng(5);
  ThreadPool pool(2);
  LinearCase c(40, 96, DType::kBF16, 0.01f, rng);
  const int64_t T = 3;
  const std::vector<float> x = random_vec(static_cast<size_t>(T * 96), rng);
  for (bool emulate : {false, true}) {
    CpuBackend be(pool, CpuOptions{emulate});
    std::vector<float> y(static_cast<size_t>(T * 40)), ref(y.size()), prepared;
    be.linear(x.data(), T, 96, c.w, y.data(), 40, false);
    nvfp4_linear_ref(x.data(), T, 96, c.w, ref.data(), 40, false, emulate, &prepared);
    const std::vector<float> tol =
        tolerances(prepared.data(), T, 96, c.q.m, default_is_fixed16() && !emulate);
    for (size_t i = 0; i < y.size(); ++i) ASSERT_NEAR(y[i], ref[i], tol[i]) << emulate;
  }
}

// CpuOptions::nvfp4_isa picks the kernel family of W4A16 linears: the backend's result is the
// chosen family's, bit for bit (same pool, same split), for every family this CPU has.
TEST(Nvfp4Linear, CpuBackendRunsTheChosenFamily) {
  std::mt19937 rng(11);
  ThreadPool pool(2);
  LinearCase c(37, 208, DType::kU8, 0.0f, rng);
  for (int64_t T : {1, 2, 5}) {
    const std::vector<float> x = random_vec(static_cast<size_t>(T * 208), rng);
    for (MatmulIsa isa : supported_isas()) {
      CpuOptions o;
      o.nvfp4_isa = isa;
      CpuBackend be(pool, o);
      std::vector<float> y(static_cast<size_t>(T * 37)), want(y.size());
      be.linear(x.data(), T, 208, c.w, y.data(), 37, false);
      nvfp4_matmul_with_isa(isa, pool, x.data(), T, 208, c.q.m, want.data(), 37);
      for (size_t i = 0; i < y.size(); ++i) ASSERT_EQ(y[i], want[i]) << isa_name(isa) << " " << i;
    }
  }
}

TEST(Nvfp4Linear, ScalarWeightAccessorsDequantize) {
  std::mt19937 rng(9);
  LinearCase c(6, 48, DType::kU8, 0.0f, rng);
  std::vector<float> want(48), got(48);
  for (int64_t r = 0; r < 6; ++r) {
    quant::dequantize_row(c.q.m, r, want.data());
    weight_row(c.w, r, got.data());
    for (int64_t k = 0; k < 48; ++k) {
      ASSERT_EQ(std::memcmp(&got[k], &want[k], 4), 0) << r << " " << k;
      const float a = weight_at(c.w, r, k);
      ASSERT_EQ(std::memcmp(&a, &want[k], 4), 0) << r << " " << k;
    }
  }
}

}  // namespace
}  // namespace fc::cpu
