// CudaBackend linear (dense F32/BF16/F16 on both the CUDA-core and the cuBLAS path, NVFP4 W4A16
// with and without pre_quant_scale, W4A4 emulation, native FP4 on Blackwell) and MoE ops against
// the CPU backend. Skipped (exit 0) without a GPU.
#include <gtest/gtest.h>

#include <cstring>

#include "backend/cpu/cpu_backend.h"
#include "core/half.h"
#include "core/thread_pool.h"
#include "gpu_test_util.h"
#include "quant/nvfp4.h"

namespace fc::gputest {
namespace {

struct Dense {
  std::vector<uint8_t> bytes;
  Weight w;
  Dense(int64_t rows, int64_t cols, int64_t ld, DType dt, uint32_t seed) {
    const std::vector<float> v = randn(static_cast<size_t>(rows * ld), seed, 0.1f);
    const size_t esz = static_cast<size_t>(dtype_bits(dt) / 8);
    bytes.resize(v.size() * esz);
    for (size_t i = 0; i < v.size(); ++i) {
      if (dt == DType::kF32) {
        std::memcpy(&bytes[i * 4], &v[i], 4);
      } else {
        const uint16_t h = dt == DType::kBF16 ? f32_to_bf16(v[i]) : f32_to_f16(v[i]);
        std::memcpy(&bytes[i * 2], &h, 2);
      }
    }
    w = Weight{bytes.data(), dt, rows, cols, ld, "dense"};
  }
};

// An NVFP4 weight quantized from random values (ModelOpt arithmetic), optional BF16 AWQ scale.
struct Fp4 {
  quant::Nvfp4Tensor q;
  std::vector<uint16_t> pqs;
  Weight w;
  Fp4(int64_t rows, int64_t cols, uint32_t seed, bool with_pqs, float input_scale) {
    const std::vector<float> v = randn(static_cast<size_t>(rows * cols), seed, 0.05f);
    q = quant::quantize(v.data(), rows, cols, cols, quant::abs_max(v.data(), rows, cols, cols),
                        quant::Producer::kModelOpt);
    w.data = q.packed.data();
    w.dtype = DType::kU8;
    w.rows = rows;
    w.cols = cols;
    w.ld = cols / 2;
    w.name = "nvfp4";
    w.format = WeightFormat::kNvfp4;
    w.block_scale = q.scales.data();
    w.scale_ld = cols / 16;
    w.global_scale = q.global_scale;
    w.input_scale = input_scale;
    if (with_pqs) {
      const std::vector<float> s = randn(static_cast<size_t>(cols), seed + 1, 0.3f);
      for (float x : s) pqs.push_back(f32_to_bf16(1.0f + std::fabs(x)));
      w.pre_quant_scale = pqs.data();
      w.pqs_dtype = DType::kBF16;
    }
  }
};

class GpuLinear : public ::testing::Test {
 protected:
  void SetUp() override {
    FC_REQUIRE_GPU();
    pool = std::make_unique<ThreadPool>(2);
  }
  // y = x·Wᵀ on both backends (accumulate onto a random y when asked); returns the rel. error.
  // ldx_pad 3 misaligns activation rows (the plain SIMT kernels); 0 or a multiple of 4 keeps
  // them 16-byte aligned (the streaming GEMVs).
  double compare(cpu::CpuBackend& cpu, cuda::CudaBackend& gpu, const Weight& hw, int64_t T,
                 bool accumulate, int64_t ldx_pad = 3) {
    const int64_t K = hw.cols, N = hw.rows, ldx = K + ldx_pad, ldy = N + 2;
    const std::vector<float> x = randn(static_cast<size_t>(T * ldx), 21);
    std::vector<float> want = randn(static_cast<size_t>(T * ldy), 22);
    DevBuf<float> dx(gpu, x), dy(gpu, want);
    cpu.linear(x.data(), T, ldx, hw, want.data(), ldy, accumulate);
    const Weight dw = gpu.upload(hw);
    gpu.linear(dx.p, T, ldx, dw, dy.p, ldy, accumulate);
    const std::vector<float> got = dy.host();
    return rel_err(got.data(), want.data(), got.size());
  }
  std::unique_ptr<ThreadPool> pool;
};

TEST_F(GpuLinear, DenseSimtAndCublas) {
  cpu::CpuBackend cpu(*pool);
  for (bool exact : {true, false}) {
    cuda::CudaOptions o;
    o.exact_linear = exact;
    cuda::CudaBackend gpu(o);
    for (DType dt : {DType::kF32, DType::kBF16, DType::kF16})
      for (int64_t T : {1, 8, 9, 17, 64})
        for (auto [N, K] : {std::pair<int64_t, int64_t>{1, 1}, {5, 33}, {262, 1000}})
          for (bool acc : {false, true}) {
            // fp32 everywhere except cuBLAS with 16-bit weights (x rounded to the weight dtype).
            const bool x16 = !exact && T > o.simt_max_rows && dt != DType::kF32;
            const double tol = x16 ? 2e-2 : 2e-5;
            Dense d(N, K, K + 1, dt, static_cast<uint32_t>(N * 7 + K));
            EXPECT_LE(compare(cpu, gpu, d.w, T, acc), tol)
                << dtype_name(dt) << " T=" << T << " N=" << N << " K=" << K << " acc=" << acc
                << " exact=" << exact;
          }
  }
}

TEST_F(GpuLinear, Nvfp4W4A16AndW4A4Emulation) {
  for (bool w4a4 : {false, true}) {
    cpu::CpuOptions co;
    co.emulate_w4a4 = w4a4;
    cpu::CpuBackend cpu(*pool, co);
    cuda::CudaOptions go;
    go.emulate_w4a4 = w4a4;
    cuda::CudaBackend gpu(go);
    for (bool pqs : {false, true})
      for (int64_t T : {1, 17})
        for (auto [N, K] : {std::pair<int64_t, int64_t>{1, 16}, {7, 48}, {130, 1024}}) {
          Fp4 f(N, K, static_cast<uint32_t>(N + K), pqs, 0.02f);
          // W4A4: a 1-ulp activation difference may flip a 4-bit code (see nvfp4_golden_test).
          EXPECT_LE(compare(cpu, gpu, f.w, T, T == 17), w4a4 ? 2e-3 : 2e-5)
              << "pqs=" << pqs << " T=" << T << " N=" << N << " K=" << K << " w4a4=" << w4a4;
        }
  }
}

// The decode GEMVs of kernels_gemv.cu (16-byte loads; aligned rows) against v1 and the CPU, and
// NVFP4 prefill through dequantized BF16 weights and cuBLAS (activations rounded to BF16, so the
// cuBLAS-16 tolerance), including a weight large enough to be processed in two chunks.
TEST_F(GpuLinear, StreamingGemvAndNvfp4Dequant) {
  cpu::CpuBackend cpu(*pool);
  for (int version : {1, 2}) {
    cuda::CudaOptions o;
    o.gemv_version = version;
    cuda::CudaBackend gpu(o);
    for (DType dt : {DType::kBF16, DType::kF16})
      for (int64_t T : {1, 3, 8})
        for (auto [N, K] : {std::pair<int64_t, int64_t>{1, 8}, {5, 200}, {262, 1000}, {33, 4104}})
          for (int64_t pad : {0, 4}) {
            Dense d(N, K, K, dt, static_cast<uint32_t>(N * 3 + K));
            EXPECT_LE(compare(cpu, gpu, d.w, T, T == 3, pad), 2e-5)
                << "v" << version << " " << dtype_name(dt) << " T=" << T << " N=" << N << " K=" << K
                << " pad=" << pad;
          }
    for (bool pqs : {false, true})
      for (int64_t T : {1, 5, 17, 31})
        for (auto [N, K] : {std::pair<int64_t, int64_t>{1, 32}, {7, 96}, {130, 1024}, {3, 5376}}) {
          Fp4 f(N, K, static_cast<uint32_t>(N + 5 * K), pqs, 0.0f);
          EXPECT_LE(compare(cpu, gpu, f.w, T, T == 5, 0), 2e-5)
              << "v" << version << " pqs=" << pqs << " T=" << T << " N=" << N << " K=" << K;
        }
  }
  cuda::CudaBackend gpu;  // defaults: T >= 32 NVFP4 rows take the dequantized-BF16 path
  for (bool pqs : {false, true})
    for (int64_t T : {32, 70})
      for (auto [N, K] : {std::pair<int64_t, int64_t>{130, 64}, {300, 1024}, {2100, 8192}}) {
        if (N == 2100 && (pqs || T == 70)) continue;  // the two-chunk case once is enough
        Fp4 f(N, K, static_cast<uint32_t>(2 * N + K), pqs, 0.0f);
        EXPECT_LE(compare(cpu, gpu, f.w, T, T == 70, T == 32 ? 3 : 0), 2e-2)
            << "dequant pqs=" << pqs << " T=" << T << " N=" << N << " K=" << K;
      }
}

// Blackwell only: the cuBLASLt block-scaled FP4 path against the CPU's W4A4 emulation (same
// activation quantization; only the GEMM's summation differs).
TEST_F(GpuLinear, NativeFp4OnBlackwell) {
  cuda::CudaOptions go;
  go.native_fp4 = true;
  cuda::CudaBackend gpu(go);
  if (gpu.device_description().find("sm_1") == std::string::npos)
    GTEST_SKIP() << "native FP4 needs Blackwell (sm_100+): " << gpu.device_description();
  cpu::CpuOptions co;
  co.emulate_w4a4 = true;
  cpu::CpuBackend cpu(*pool, co);
  for (int64_t T : {1, 17, 130}) {
    Fp4 f(256, 512, 9, T == 17, 0.02f);
    EXPECT_LE(compare(cpu, gpu, f.w, T, false), 5e-3) << "T=" << T;
  }
}

TEST_F(GpuLinear, MoeRouteAndExperts) {
  cpu::CpuBackend cpu(*pool);
  cuda::CudaOptions o;
  o.exact_linear = true;  // experts may get > 8 rows: keep fp32 activations for the comparison
  cuda::CudaBackend gpu(o);
  for (bool fp4 : {false, true})
    for (int64_t T : {1, 17}) {
      const int E = 6, k = 2;
      const int64_t H = 48, I = 32, ldx = H + 1, ldl = E + 3, ldo = H + 2;
      std::vector<float> logits = randn(static_cast<size_t>(T * ldl), 31, 2.0f);
      logits[2] = logits[4];  // a tie: the lower id wins on both
      Dense pes(1, E, E, DType::kBF16, 32);
      std::vector<int32_t> idx(static_cast<size_t>(T * k));
      std::vector<float> wts(static_cast<size_t>(T * k));
      cpu.moe_route(logits.data(), ldl, T, E, k, pes.w, idx.data(), wts.data());
      DevBuf<float> dl(gpu, logits);
      DevBuf<int32_t> didx(gpu, idx);
      DevBuf<float> dw(gpu, wts);
      gpu.moe_route(dl.p, ldl, T, E, k, gpu.upload(pes.w), didx.p, dw.p);
      EXPECT_EQ(didx.host(), idx);
      const std::vector<float> gw = dw.host();
      EXPECT_LE(rel_err(gw.data(), wts.data(), wts.size()), 1e-6);

      std::vector<Dense> dg, du, dd;
      std::vector<Fp4> fg, fu, fd;
      std::vector<Weight> hg, hu, hd, gg, gu, gd;
      for (int e = 0; e < E; ++e) {
        const uint32_t s = static_cast<uint32_t>(100 + e * 3);
        if (fp4) {
          fg.emplace_back(I, H, s, false, 0.0f);
          fu.emplace_back(I, H, s + 1, e == 1, 0.0f);
          fd.emplace_back(H, I, s + 2, false, 0.0f);
        } else {
          dg.emplace_back(I, H, H, DType::kBF16, s);
          du.emplace_back(I, H, H, DType::kBF16, s + 1);
          dd.emplace_back(H, I, I, DType::kBF16, s + 2);
        }
      }
      for (int e = 0; e < E; ++e) {
        hg.push_back(fp4 ? fg[e].w : dg[e].w);
        hu.push_back(fp4 ? fu[e].w : du[e].w);
        hd.push_back(fp4 ? fd[e].w : dd[e].w);
        gg.push_back(gpu.upload(hg.back()));
        gu.push_back(gpu.upload(hu.back()));
        gd.push_back(gpu.upload(hd.back()));
      }
      const std::vector<float> x = randn(static_cast<size_t>(T * ldx), 33);
      std::vector<float> want(static_cast<size_t>(T * ldo), 7.0f);
      cpu.moe_experts(x.data(), ldx, T, idx.data(), wts.data(), k, hg.data(), hu.data(), hd.data(),
                      E, want.data(), ldo);
      DevBuf<float> dx(gpu, x), dout(gpu, std::vector<float>(want.size(), 7.0f));
      gpu.moe_experts(dx.p, ldx, T, didx.p, dw.p, k, gg.data(), gu.data(), gd.data(), E, dout.p,
                      ldo);
      const std::vector<float> got = dout.host();
      EXPECT_LE(rel_err(got.data(), want.data(), got.size()), 2e-5) << "fp4=" << fp4 << " T=" << T;
    }
}

}  // namespace
}  // namespace fc::gputest
