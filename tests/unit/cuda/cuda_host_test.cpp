// The CUDA backend's host-testable pieces, checked without a GPU: the number-format helpers the
// kernels use (device_math.h, compiled here as host code) against the CPU reference bit for bit
// (the FP4 / FP8 codecs themselves are quant's, tested in tests/unit/quant),
// the swizzled FP4 scale layout against the reshape/permute definition of spec weight-formats
// §4.1, and the launch-geometry and workspace computations.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "backend/cpu/ops.h"
#include "backend/cuda/device_math.h"
#include "backend/cuda/plan.h"
#include "core/half.h"
#include "quant/nvfp4.h"

namespace fc::cuda {
namespace {

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
bool same(float a, float b) {
  return (std::isnan(a) && std::isnan(b)) || bits(a) == bits(b);
}

// Floats that stress the rounding code: every bf16 value (all exponents, signs, NaN/inf), the
// midpoints between neighbouring bf16 values, and random fp32 values over a wide range.
std::vector<float> probe_floats() {
  std::vector<float> v;
  for (uint32_t h = 0; h < 65536; ++h) {
    v.push_back(bf16_f32(static_cast<uint16_t>(h)));
    v.push_back(bits_f32((h << 16) | 0x8000u));  // halfway to the next bf16
  }
  std::mt19937 g(7);
  std::uniform_real_distribution<float> e(-30.0f, 12.0f);
  for (int i = 0; i < 200000; ++i) v.push_back((i & 1 ? -1.0f : 1.0f) * std::exp2(e(g)));
  return v;
}

TEST(CudaDeviceMath, TableFreeE2m1DecodeMatchesTheTable) {
  // The kernels decode E2M1 by bit arithmetic (quant/codecs_hd.h), the CPU by quant::kE2M1.
  for (uint32_t c = 0; c < 16; ++c) EXPECT_TRUE(same(e2m1_f32(c), quant::kE2M1[c])) << c;
  // Decode ignores bits above the nibble (the kernels shift packed words without masking).
  EXPECT_EQ(e2m1_f32(0xF7u), 6.0f);
}

TEST(CudaDeviceMath, HalfFormatsMatchCpu) {
  for (uint32_t h = 0; h < 65536; ++h) {
    ASSERT_TRUE(same(f16_f32(static_cast<uint16_t>(h)), f16_to_f32(static_cast<uint16_t>(h)))) << h;
    ASSERT_TRUE(same(bf16_f32(static_cast<uint16_t>(h)), bf16_to_f32(static_cast<uint16_t>(h))));
  }
  for (float x : probe_floats()) ASSERT_EQ(f32_bf16(x), f32_to_bf16(x)) << x;
}

TEST(CudaDeviceMath, ActivationQdqMatchesCpu) {
  std::mt19937 g(3);
  std::normal_distribution<float> d(0.0f, 1.0f);
  for (float input_scale : {1.0f / 448.0f, 0.01f, 0.37f, 3.0f}) {
    std::vector<float> x(16 * 64), want(x.size()), got(x.size());
    for (size_t i = 0; i < x.size(); ++i) x[i] = d(g) * (i % 37 == 0 ? 50.0f : 1.0f);
    for (int i = 0; i < 16; ++i) x[static_cast<size_t>(16 * 5 + i)] = 0.0f;  // an all-zero block
    quant::activation_qdq(x.data(), static_cast<int64_t>(x.size()), input_scale, want.data());
    for (size_t b = 0; b < x.size(); b += 16)
      qdq_block16(x.data() + b, input_scale, got.data() + b);
    for (size_t i = 0; i < x.size(); ++i) ASSERT_TRUE(same(got[i], want[i])) << i;
  }
}

TEST(CudaDeviceMath, ActivationsMatchCpu) {
  for (float x : {-9.0f, -2.5f, -0.3f, 0.0f, 1e-4f, 0.7f, 3.0f, 11.0f})
    EXPECT_NEAR(gelu_tanh_f(x), cpu::gelu_tanh(x), 1e-6f * std::max(1.0f, std::fabs(x)));
  EXPECT_NEAR(silu_f(2.0f), 2.0f / (1.0f + std::exp(-2.0f)), 1e-6f);
}

// Spec §4.1 defines the layout as reshape(Mp/128, 4, 32, Kp/4, 4).permute(0, 3, 2, 1, 4) of the
// padded [Mp, Kp] scale matrix; compute that index independently of the closed formula.
int64_t permute_index(int64_t m, int64_t kb, int64_t Kp) {
  const int64_t a = m / 128, b = (m % 128) / 32, c = m % 32, d = kb / 4, e = kb % 4;
  return (((a * (Kp / 4) + d) * 32 + c) * 4 + b) * 4 + e;  // strides of the permuted shape
}

TEST(CudaPlan, SwizzleOffsetIsSpecPermutation) {
  for (int64_t Kb : {1, 3, 4, 7, 8, 336}) {
    const int64_t Kp = round_up(Kb, 4);
    for (int64_t m = 0; m < 300; ++m)
      for (int64_t kb = 0; kb < Kb; ++kb)
        ASSERT_EQ(swizzled_scale_offset(m, kb, Kb), permute_index(m, kb, Kp)) << m << "," << kb;
  }
  // Spot values from the formula: (m, kb) = (0, 0), (1, 0), (32, 0), (0, 1), (0, 4), (128, 0).
  EXPECT_EQ(swizzled_scale_offset(1, 0, 8), 16);
  EXPECT_EQ(swizzled_scale_offset(32, 0, 8), 4);
  EXPECT_EQ(swizzled_scale_offset(0, 1, 8), 1);
  EXPECT_EQ(swizzled_scale_offset(0, 4, 8), 512);
  EXPECT_EQ(swizzled_scale_offset(128, 0, 8), 1024);
}

TEST(CudaPlan, SwizzleRoundTripsAndPadsWithZeros) {
  for (auto [M, Kb, ld] :
       {std::array<int64_t, 3>{1, 1, 1}, {17, 3, 5}, {128, 4, 4}, {130, 9, 9}, {256, 336, 340}}) {
    std::vector<uint8_t> s(static_cast<size_t>(M * ld));
    std::mt19937 g(static_cast<uint32_t>(M * 31 + Kb));
    for (uint8_t& b : s) b = static_cast<uint8_t>(1 + g() % 255);  // nonzero: padding shows
    const std::vector<uint8_t> sw = swizzle_block_scales(s.data(), M, Kb, ld);
    ASSERT_EQ(static_cast<int64_t>(sw.size()), round_up(M, 128) * round_up(Kb, 4));
    ASSERT_EQ(static_cast<int64_t>(sw.size()), swizzled_scale_bytes(M, Kb));
    size_t nonzero = 0;
    for (uint8_t b : sw) nonzero += b != 0;
    EXPECT_EQ(static_cast<int64_t>(nonzero), M * Kb);  // everything else is padding (0)
    const std::vector<uint8_t> back = unswizzle_block_scales(sw.data(), M, Kb);
    for (int64_t m = 0; m < M; ++m)
      for (int64_t kb = 0; kb < Kb; ++kb)
        ASSERT_EQ(back[static_cast<size_t>(m * Kb + kb)], s[static_cast<size_t>(m * ld + kb)]);
  }
}

TEST(CudaPlan, Fp4NativeShapes) {
  EXPECT_TRUE(fp4_native_shape_ok(5376, 21504));
  EXPECT_FALSE(fp4_native_shape_ok(5376, 16));  // packed rows of 8 bytes
  EXPECT_FALSE(fp4_native_shape_ok(17, 64));
  EXPECT_FALSE(fp4_native_shape_ok(0, 64));
}

TEST(CudaPlan, LaunchGeometry) {
  EXPECT_EQ(linear_grid(1, 1).x, 1);
  EXPECT_EQ(linear_grid(1, 1).y, 1);
  EXPECT_EQ(linear_grid(17, 5).x, (5 + kLinWarps - 1) / kLinWarps);
  EXPECT_EQ(linear_grid(17, 5).y, (17 + kLinTokens - 1) / kLinTokens);
  // Every (token, column) pair is covered exactly once.
  for (int64_t T : {1, 7, 8, 9, 17, 64})
    for (int64_t N : {1, 3, 4, 5, 262})
      EXPECT_GE(linear_grid(T, N).x * kLinWarps * linear_grid(T, N).y * kLinTokens, T * N);
  EXPECT_EQ(attention_row_splits(64, 32), 1);  // batched decode: one block per (seq, head)
  EXPECT_EQ(attention_row_splits(1, 32), 64);  // one long prefill: fill the GPU
  EXPECT_EQ(attention_row_splits(1, 1), 64);
  EXPECT_EQ(attention_row_splits(4, 8), 64);
  EXPECT_EQ(attention_row_splits(16, 8), 16);
  EXPECT_EQ(attention_row_splits(0, 8), 64);
}

TEST(CudaPlan, WorkspaceSizes) {
  EXPECT_EQ(ws_align(1), 256u);
  EXPECT_EQ(ws_align(256), 256u);
  // Dense on CUDA cores: nothing; dense via cuBLAS 16-bit: the converted activations.
  EXPECT_EQ(linear_ws_bytes(4, 100, false, 2, false, false, false), 0u);
  EXPECT_EQ(linear_ws_bytes(17, 100, false, 2, true, false, false), ws_align(17 * 100 * 2));
  // NVFP4: nothing for plain W4A16, the prepared fp32 activations with pqs / W4A4 emulation.
  EXPECT_EQ(linear_ws_bytes(17, 64, true, 0, false, false, false), 0u);
  EXPECT_EQ(linear_ws_bytes(17, 64, true, 0, false, true, false), ws_align(17 * 64 * 4));
  EXPECT_EQ(linear_ws_bytes(17, 64, true, 0, false, false, true),
            ws_align(17 * 64 * 4) + ws_align(17 * 32) + ws_align(128 * 4));
  EXPECT_GE(moe_ws_bytes(3, 2, 64, 32, 1000), 3u * 64 * 4 * 2 + 3 * 64 * 4 + 3 * 32 * 4 + 1000);
}

TEST(CudaPlan, Nvfp4DequantChunks) {
  // Small weights in one chunk; large ones in 128-row multiples near kDequantElems elements.
  EXPECT_EQ(nvfp4_dequant_chunk_rows(8192, 5376), (kDequantElems / 5376) / 128 * 128);
  EXPECT_EQ(nvfp4_dequant_chunk_rows(100, 64), 100);
  EXPECT_EQ(nvfp4_dequant_chunk_rows(0, 64), 0);
  // A very wide row still gets one 128-row chunk (never fewer rows than 128 unless N is).
  EXPECT_EQ(nvfp4_dequant_chunk_rows(1000, int64_t{1} << 20), 128);
  EXPECT_EQ(nvfp4_dequant_chunk_rows(50, int64_t{1} << 20), 50);
  for (int64_t N : {1, 127, 128, 5376, 21504, 262144})
    for (int64_t K : {16, 5376, 21504}) {
      const int64_t r = nvfp4_dequant_chunk_rows(N, K);
      EXPECT_GE(r, 1);
      EXPECT_LE(r, N);
      EXPECT_TRUE(r == N || r % 128 == 0) << N << "x" << K;
      EXPECT_LE(r * K, std::max<int64_t>(kDequantElems, 128 * K));
    }
  EXPECT_EQ(nvfp4_dequant_ws_bytes(3, 100, 64, false),
            ws_align(3 * 64 * 2) + ws_align(100 * 64 * 2));
  EXPECT_EQ(nvfp4_dequant_ws_bytes(3, 100, 64, true),
            ws_align(3 * 64 * 4) + ws_align(3 * 64 * 2) + ws_align(100 * 64 * 2));
}

TEST(CudaPlan, AttentionKeySplits) {
  // One sequence, 16 KV heads x 1 head chunk, 1024 keys: at most 1024/128 = 8 splits.
  EXPECT_EQ(attention_key_splits(1, 16, 1024), 8);
  // 4096 keys, 4 KV heads x 2 head chunks = 8 blocks per split: 512/8 = 64 splits wanted, 32 by
  // keys.
  EXPECT_EQ(attention_key_splits(1, 8, 4096), 32);
  // A large batch fills the GPU without splitting.
  EXPECT_EQ(attention_key_splits(64, 16, 4096), 1);
  EXPECT_EQ(attention_key_splits(1, 1, 1 << 20), kAttnMaxSplits);
  EXPECT_EQ(attention_key_splits(1, 1, 5), 1);
  EXPECT_EQ(attention_split_ws_bytes(2, 32, 256, 8), ws_align(2 * 32 * 8 * 4 * 258 * 4));
}

}  // namespace
}  // namespace fc::cuda
