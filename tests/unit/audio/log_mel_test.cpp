// Log-mel front end facts that need no reference run: frame/token arithmetic (the spec's golden
// table), the window, the filter bank's shape, masking and truncation. The values themselves are
// compared with transformers in tests/golden/audio_golden_test.cpp.
#include <gtest/gtest.h>

#include <cmath>

#include "audio/log_mel.h"

namespace fc::audio {
namespace {

TEST(LogMel, SoftTokenCountsOfTheSpecTable) {
  // ../shared/spec/multimodal.md §5.2 (transformers tests/models/gemma4/test_processing_gemma4.py).
  EXPECT_EQ(audio_soft_tokens(38560), 60);
  EXPECT_EQ(audio_soft_tokens(48000), 75);
  EXPECT_EQ(audio_soft_tokens(48800), 76);
  EXPECT_EQ(audio_soft_tokens(99360), 155);
  EXPECT_EQ(audio_soft_tokens(640000), 750);
  EXPECT_EQ(audio_soft_tokens(480000), 750);
  EXPECT_EQ(audio_soft_tokens(0), 0);
  EXPECT_EQ(audio_soft_tokens(160), 0);  // no frame's window ends inside the clip
  EXPECT_EQ(audio_soft_tokens(161), 1);
}

TEST(LogMel, FrameCountsAndMask) {
  std::vector<float> x(11200, 0.25f);  // 0.7 s: padded to 11264 → 70 frames, 69 valid
  const LogMel f = log_mel(x.data(), static_cast<int64_t>(x.size()));
  EXPECT_EQ(f.frames, 70);
  EXPECT_EQ(f.valid, 69);
  EXPECT_EQ(f.valid, valid_mel_frames(11200));
  for (int m = 0; m < 128; ++m) EXPECT_EQ(f.data[69 * 128 + m], 0.0f);  // masked row
  EXPECT_NE(f.data[68 * 128 + 3], 0.0f);
}

TEST(LogMel, SilenceIsTheFloorAndTooShortHasNoValidFrame) {
  std::vector<float> z(16000, 0.0f);
  const LogMel f = log_mel(z.data(), 16000);
  EXPECT_EQ(f.valid, 99);
  for (float v : f.data) EXPECT_FLOAT_EQ(v, static_cast<float>(std::log(1e-3)));
  const LogMel s = log_mel(z.data(), 100);
  EXPECT_EQ(s.frames, 0);
  EXPECT_EQ(s.valid, 0);
}

TEST(LogMel, TruncatesAtThirtySeconds) {
  std::vector<float> x(31 * 16000);
  for (size_t i = 0; i < x.size(); ++i) x[i] = 0.3f * std::sin(0.05f * static_cast<float>(i));
  const LogMel a = log_mel(x.data(), static_cast<int64_t>(x.size()));
  const LogMel b = log_mel(x.data(), 480000);
  EXPECT_EQ(a.frames, 2999);
  EXPECT_EQ(a.valid, 2999);
  EXPECT_EQ(a.data, b.data);
}

TEST(LogMel, PeriodicHannAndFilterBankShape) {
  const std::vector<float> w = periodic_hann(320);
  EXPECT_EQ(w[0], 0.0f);
  EXPECT_FLOAT_EQ(w[160], 1.0f);
  EXPECT_FLOAT_EQ(w[80], 0.5f);
  const std::vector<double> fb = mel_filter_bank();
  ASSERT_EQ(fb.size(), 257u * 128u);
  for (double v : fb) EXPECT_GE(v, 0.0);
  // Each filter is a triangle peaking below 1 (norm=None: peak 1 only on an exact bin).
  for (int m = 0; m < 128; ++m) {
    double peak = 0;
    for (int k = 0; k < 257; ++k) peak = std::max(peak, fb[static_cast<size_t>(k * 128 + m)]);
    EXPECT_LE(peak, 1.0 + 1e-12) << m;
  }
  EXPECT_EQ(fb[0], 0.0);  // DC bin is the lower edge of filter 0
}

}  // namespace
}  // namespace fc::audio
