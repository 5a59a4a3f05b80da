// The audio front end against transformers' Gemma4AudioFeatureExtractor and Gemma4Processor
// (tests/fixtures/audio-mini/golden.safetensors, tools/refgen/make_audio_fixture.py): the mel
// filter bank, the log-mel features of six signals (silence, a sweep, noise, a clipped sine,
// 0.7 s, 31 s) with their masks, and the soft-token counts of 619 clip lengths.
//
// Tolerance 1e-5 (measured: at most 4.8e-7, the float32 cast of the output). The window product
// must be float32 as HF's arrays are: done in double, the sweep's quiet bins near the 1e-3 floor
// move its log-mel by up to 7.8e-4 (measured with a float64 run of HF's formula).
#include <gtest/gtest.h>

#include <cmath>
#include <memory>

#include "audio/log_mel.h"
#include "io/safetensors.h"
#include "tests/common/audio_fixture.h"
#include "tests/common/golden_io.h"

namespace fc::audio {
namespace {

const std::string kDir = std::string(FC_SOURCE_DIR) + "/tests/fixtures/audio-mini";

const SafetensorsFile& golden() {
  static const std::unique_ptr<SafetensorsFile> f =
      SafetensorsFile::open(kDir + "/golden.safetensors");
  return *f;
}

std::vector<float> signal(const std::string& name) {
  return test::fixture_signal(golden(), name);
}

std::vector<uint8_t> mask(const std::string& key) {
  const TensorInfo* t = golden().find(key);
  EXPECT_NE(t, nullptr) << key;
  if (!t) return {};
  return std::vector<uint8_t>(t->data, t->data + t->nbytes);
}

// Max |a − b| over rows [r0, r0 + rows) of `got` against `want` (rows × 128).
double max_diff(const LogMel& got, int64_t r0, const std::vector<float>& want) {
  double d = 0;
  for (size_t i = 0; i < want.size(); ++i)
    d = std::max(d, static_cast<double>(std::abs(got.data[r0 * 128 + i] - want[i])));
  return d;
}

TEST(AudioFrontendGolden, MelFilterBankAndWindow) {
  const std::vector<float> ref = test::read_f32(golden(), "fe.mel_filters");
  const std::vector<double> fb = mel_filter_bank();
  ASSERT_EQ(ref.size(), fb.size());
  for (size_t i = 0; i < fb.size(); ++i)
    EXPECT_NEAR(fb[i], ref[i], 1e-7 * std::max(1.0, std::abs(fb[i]))) << i;
  EXPECT_EQ(periodic_hann(320), test::read_f32(golden(), "fe.window"));
}

TEST(AudioFrontendGolden, FeaturesOfSixSignals) {
  for (const char* name : {"silence", "sweep", "noise", "clipped", "short"}) {
    const std::vector<float> x = signal(name);
    const LogMel f = log_mel(x.data(), static_cast<int64_t>(x.size()));
    const std::vector<float> ref =
        test::read_f32(golden(), std::string("fe.") + name + ".features");
    const std::vector<uint8_t> m = mask(std::string("fe.") + name + ".mask");
    ASSERT_EQ(static_cast<int64_t>(m.size()), f.frames) << name;
    ASSERT_EQ(ref.size(), f.data.size()) << name;
    int64_t valid = 0;
    for (uint8_t v : m) valid += v;
    EXPECT_EQ(valid, f.valid) << name;
    for (int64_t i = 0; i < f.frames; ++i) EXPECT_EQ(m[static_cast<size_t>(i)], i < f.valid);
    const double d = max_diff(f, 0, ref);
    EXPECT_LE(d, 1e-5) << name;
    std::printf("%-8s %4lld frames (%lld valid): max |ours - HF| %.2e\n", name,
                static_cast<long long>(f.frames), static_cast<long long>(f.valid), d);
  }
}

TEST(AudioFrontendGolden, ThirtyOneSecondsAreTruncatedToThirty) {
  const std::vector<float> tile = signal("noise");
  std::vector<float> x;
  for (int i = 0; i < 31; ++i) x.insert(x.end(), tile.begin(), tile.end());  // as the fixture
  const LogMel f = log_mel(x.data(), static_cast<int64_t>(x.size()));
  const std::vector<uint8_t> m = mask("fe.long.mask");
  ASSERT_EQ(f.frames, static_cast<int64_t>(m.size()));
  EXPECT_EQ(f.frames, 2999);
  EXPECT_EQ(f.valid, 2999);
  const std::vector<float> head = test::read_f32(golden(), "fe.long.head");
  const std::vector<float> tail = test::read_f32(golden(), "fe.long.tail");
  const int64_t rows = static_cast<int64_t>(tail.size() / 128);
  EXPECT_LE(max_diff(f, 0, head), 1e-5);
  EXPECT_LE(max_diff(f, f.frames - rows, tail), 1e-5);
}

TEST(AudioFrontendGolden, SoftTokenCountsEqualTheProcessor) {
  const std::vector<int32_t> n = test::read_ids(golden(), "tokens.lengths");
  const std::vector<int32_t> want = test::read_ids(golden(), "tokens.counts");
  ASSERT_EQ(n.size(), want.size());
  ASSERT_GE(n.size(), 500u);
  for (size_t i = 0; i < n.size(); ++i)
    EXPECT_EQ(audio_soft_tokens(n[i]), want[i]) << n[i] << " samples";
}

}  // namespace
}  // namespace fc::audio
