// The scalar NVFP4 primitives of quant/nvfp4.h: E2M1 and E4M3 tables and rounding (spec
// weight-formats §1), quantize / dequantize_row round trips, the W4A4 activation QDQ.
#include "quant/nvfp4.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

namespace fc::quant {
namespace {

TEST(Nvfp4Quant, E2m1TableAndRoundTrip) {
  const float want[8] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};
  for (int c = 0; c < 16; ++c) {
    EXPECT_EQ(kE2M1[c], c < 8 ? want[c] : -want[c - 8]) << c;
    EXPECT_EQ(std::signbit(kE2M1[c]), c >= 8) << c;  // code 8 is -0
    EXPECT_EQ(e2m1_to_float(static_cast<uint8_t>(c)), kE2M1[c]);
    EXPECT_EQ(e2m1_to_float(static_cast<uint8_t>(c | 0xF0)), kE2M1[c]);  // high bits ignored
    EXPECT_EQ(float_to_e2m1(kE2M1[c]), c) << c;
  }
}

TEST(Nvfp4Quant, E2m1Thresholds) {
  // Spec §1.1: ties go to the even code.
  EXPECT_EQ(float_to_e2m1(0.25f), 0);
  EXPECT_EQ(float_to_e2m1(0.2500001f), 1);  // 0.5
  EXPECT_EQ(float_to_e2m1(0.7499999f), 1);
  EXPECT_EQ(float_to_e2m1(0.75f), 2);  // 1
  EXPECT_EQ(float_to_e2m1(1.25f), 2);
  EXPECT_EQ(float_to_e2m1(1.2500001f), 3);  // 1.5
  EXPECT_EQ(float_to_e2m1(1.75f), 4);       // 2
  EXPECT_EQ(float_to_e2m1(2.5f), 4);
  EXPECT_EQ(float_to_e2m1(2.5000002f), 5);  // 3
  EXPECT_EQ(float_to_e2m1(3.5f), 6);        // 4
  EXPECT_EQ(float_to_e2m1(5.0f), 6);
  EXPECT_EQ(float_to_e2m1(5.0001f), 7);  // 6
  EXPECT_EQ(float_to_e2m1(1e30f), 7);    // saturates
  EXPECT_EQ(float_to_e2m1(std::numeric_limits<float>::infinity()), 7);
  EXPECT_EQ(float_to_e2m1(-0.1f), 8);  // -0
  EXPECT_EQ(float_to_e2m1(-0.0f), 8);
  EXPECT_EQ(float_to_e2m1(-1.75f), 12);  // -2
  EXPECT_EQ(float_to_e2m1(-7.0f), 15);   // -6
  EXPECT_EQ(float_to_e2m1(std::nanf("")), 0);
}

TEST(Nvfp4Quant, E4m3DecodeEncodeAllCodes) {
  const float* table = e4m3_table();
  for (int b = 0; b < 256; ++b) {
    const auto u = static_cast<uint8_t>(b);
    const float v = e4m3_to_float(u);
    if ((b & 0x7F) == 0x7F) {
      EXPECT_TRUE(std::isnan(v)) << b;
      EXPECT_TRUE(std::isnan(table[b])) << b;
      continue;
    }
    EXPECT_EQ(std::memcmp(&v, &table[b], 4), 0) << b;
    EXPECT_EQ(float_to_e4m3(v), u) << b << " " << v;
    // The value from first principles: sign, 4 exponent bits (bias 7), 3 mantissa bits.
    const int e = (b >> 3) & 15, m = b & 7;
    const double mag = e == 0 ? m * std::ldexp(1.0, -9) : (1 + m / 8.0) * std::ldexp(1.0, e - 7);
    EXPECT_EQ(static_cast<double>(v), (b & 0x80) ? -mag : mag) << b;
  }
  EXPECT_EQ(e4m3_to_float(0x7E), 448.0f);
  EXPECT_EQ(e4m3_to_float(0x01), 0.001953125f);  // 2^-9
  EXPECT_EQ(e4m3_to_float(0x08), 0.015625f);     // 2^-6, smallest normal
}

TEST(Nvfp4Quant, E4m3SaturatesAndRoundsHalfToEven) {
  EXPECT_EQ(float_to_e4m3(448.0f), 0x7E);
  EXPECT_EQ(float_to_e4m3(460.0f), 0x7E);
  EXPECT_EQ(float_to_e4m3(500.0f), 0x7E);
  EXPECT_EQ(float_to_e4m3(1e9f), 0x7E);
  EXPECT_EQ(float_to_e4m3(std::numeric_limits<float>::infinity()), 0x7E);
  EXPECT_EQ(float_to_e4m3(-500.0f), 0xFE);
  EXPECT_EQ(float_to_e4m3(std::nanf("")), 0x7F);
  EXPECT_EQ(float_to_e4m3(0.0f), 0x00);
  EXPECT_EQ(float_to_e4m3(-0.0f), 0x80);
  EXPECT_EQ(float_to_e4m3(1e-6f), 0x00);  // below half the smallest subnormal
  // Every pair of neighbours (subnormal, subnormal/normal boundary, normal, binade edges): the
  // midpoint goes to the code with the even mantissa, anything off it to the nearer one.
  for (int b = 0; b < 0x7E; ++b) {
    const float lo = e4m3_to_float(static_cast<uint8_t>(b));
    const float hi = e4m3_to_float(static_cast<uint8_t>(b + 1));
    const float mid = (lo + hi) / 2;  // exact in fp32
    const int even = (b % 2 == 0) ? b : b + 1;
    EXPECT_EQ(float_to_e4m3(mid), even) << b;
    EXPECT_EQ(float_to_e4m3(-mid), even | 0x80) << b;
    EXPECT_EQ(float_to_e4m3(std::nextafter(mid, 0.0f)), b) << b;
    EXPECT_EQ(float_to_e4m3(std::nextafter(mid, 1000.0f)), b + 1) << b;
  }
}

// W = e2m1(code) · e4m3(scale) · S2 with S2 a power of two and one ±6 code per block, so that
// quantize recovers exactly these codes and scales (amax_b / (6·S2) is the scale itself).
TEST(Nvfp4Quant, QuantizeDequantizeRoundTripExact) {
  std::mt19937 rng(2);
  const int64_t rows = 7, cols = 96, ld = cols + 3;
  for (Producer prod : {Producer::kModelOpt, Producer::kCompressedTensors}) {
    const float s2 = std::ldexp(1.0f, -10);
    std::vector<uint8_t> codes(static_cast<size_t>(rows * cols)), scales(rows * cols / 16);
    std::uniform_int_distribution<int> code(0, 15);
    // Nonzero block scales (a zero scale is replaced by both producers).
    std::uniform_int_distribution<int> scale(1, 0x7E);
    for (auto& s : scales) s = static_cast<uint8_t>(scale(rng));
    std::vector<float> w(static_cast<size_t>(rows * ld), 0.0f);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t k = 0; k < cols; ++k) {
        uint8_t c = static_cast<uint8_t>(code(rng));
        if (k % 16 == (r + k / 16) % 16) c = (k % 2) ? 15 : 7;  // the block's ±6
        codes[static_cast<size_t>(r * cols + k)] = c;
        const float sb = e4m3_to_float(scales[static_cast<size_t>(r * cols / 16 + k / 16)]);
        w[static_cast<size_t>(r * ld + k)] = kE2M1[c] * sb * s2;  // exact
      }
    }
    const Nvfp4Tensor t = quantize(w.data(), rows, cols, ld, 2688.0f * s2, prod);
    EXPECT_EQ(t.global_scale, s2);
    ASSERT_EQ(t.scales, scales);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t k = 0; k < cols; ++k) {
        const uint8_t byte = t.packed[static_cast<size_t>(r * cols / 2 + k / 2)];
        // ModelOpt codes -0.0 as +0 (sign from x < 0); CT keeps the sign bit.
        uint8_t want = codes[static_cast<size_t>(r * cols + k)];
        if (prod == Producer::kModelOpt && want == 8) want = 0;
        ASSERT_EQ((k % 2) ? byte >> 4 : byte & 0xF, want) << r << " " << k;
      }
    }
    Nvfp4Matrix m{t.packed.data(), t.scales.data(), rows,          cols,
                  cols / 2,        cols / 16,       t.global_scale};
    std::vector<float> row(static_cast<size_t>(cols));
    for (int64_t r = 0; r < rows; ++r) {
      dequantize_row(m, r, row.data());
      for (int64_t k = 0; k < cols; ++k) {
        ASSERT_EQ(row[k], w[static_cast<size_t>(r * ld + k)]) << r << " " << k;
      }
    }
  }
}

TEST(Nvfp4Quant, ActivationQdq) {
  // input_scale 1 (gA = 1): a block with amax 6 has scale e4m3(1) = 1, so values just round to
  // E2M1; a block of zeros stays zero (scale 0, no division).
  std::vector<float> x(32, 0.0f);
  const float in[16] = {6,     0.25f, 0.26f, 1.25f, -1.75f, 2.5f,  -3.5f, 5.0f,
                        5.01f, -0.1f, 0.75f, 1.3f,  5.9f,   -6.0f, 0.0f,  3.0f};
  const float want[16] = {6, 0, 0.5f, 1, -2, 2, -4, 4, 6, -0.0f, 1, 1.5f, 6, -6, 0, 3};
  std::copy(in, in + 16, x.begin());
  std::vector<float> out(32, 99.0f);
  activation_qdq(x.data(), 32, 1.0f, out.data());
  for (int i = 0; i < 16; ++i) EXPECT_EQ(out[i], want[i]) << i;
  for (int i = 16; i < 32; ++i) EXPECT_EQ(out[i], 0.0f) << i;
  // In place gives the same; with input_scale 2 (gA = 0.5) a block scaled by 2 gives the same
  // codes, dequantized back at twice the value.
  std::vector<float> y = x;
  activation_qdq(y.data(), 32, 1.0f, y.data());
  EXPECT_EQ(y, out);
  for (float& v : x) v *= 2.0f;
  activation_qdq(x.data(), 32, 2.0f, y.data());
  for (int i = 0; i < 32; ++i) EXPECT_EQ(y[i], 2.0f * out[i]) << i;
}

}  // namespace
}  // namespace fc::quant
