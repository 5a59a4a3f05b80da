// Decoding, down-mix and resampling: clips encoded here with libsndfile (every container the
// decoder takes) are decoded back; lossless codecs must round-trip to the quantisation step,
// lossy ones must keep the tone. Bad input: each case must be an fc::Error naming the clip.
#include <gtest/gtest.h>
#include <sndfile.h>

#include <cmath>
#include <cstring>
#include <numbers>

#include "audio/decode.h"
#include "core/error.h"

namespace fc::audio {
namespace {

// A growable memory file for libsndfile's virtual I/O (write mode).
struct Buf {
  std::vector<uint8_t> d;
  sf_count_t pos = 0;
};
sf_count_t b_len(void* u) {
  return static_cast<sf_count_t>(static_cast<Buf*>(u)->d.size());
}
sf_count_t b_seek(sf_count_t off, int whence, void* u) {
  Buf* b = static_cast<Buf*>(u);
  b->pos = whence == SEEK_SET ? off : whence == SEEK_CUR ? b->pos + off : b_len(u) + off;
  return b->pos;
}
sf_count_t b_read(void* dst, sf_count_t n, void* u) {
  Buf* b = static_cast<Buf*>(u);
  const sf_count_t k = std::max<sf_count_t>(0, std::min(n, b_len(u) - b->pos));
  std::memcpy(dst, b->d.data() + b->pos, static_cast<size_t>(k));
  b->pos += k;
  return k;
}
sf_count_t b_write(const void* src, sf_count_t n, void* u) {
  Buf* b = static_cast<Buf*>(u);
  if (b->pos + n > b_len(u)) b->d.resize(static_cast<size_t>(b->pos + n));
  std::memcpy(b->d.data() + b->pos, src, static_cast<size_t>(n));
  b->pos += n;
  return n;
}
sf_count_t b_tell(void* u) {
  return static_cast<Buf*>(u)->pos;
}

// Interleaved `channels` × frames of a tone: channel c = amp · sin(2π f t + c).
std::vector<float> tone(int rate, int channels, double seconds, double f, double amp = 0.5) {
  const int64_t n = static_cast<int64_t>(seconds * rate);
  std::vector<float> x(static_cast<size_t>(n * channels));
  for (int64_t i = 0; i < n; ++i)
    for (int c = 0; c < channels; ++c)
      x[static_cast<size_t>(i * channels + c)] =
          static_cast<float>(amp * std::sin(2 * std::numbers::pi * f * i / rate + c));
  return x;
}

std::vector<uint8_t> encode(int format, int rate, int channels, const std::vector<float>& x) {
  Buf b;
  SF_VIRTUAL_IO vio{b_len, b_seek, b_read, b_write, b_tell};
  SF_INFO info{};
  info.samplerate = rate;
  info.channels = channels;
  info.format = format;
  SNDFILE* f = sf_open_virtual(&vio, SFM_WRITE, &info, &b);
  if (!f)
    ADD_FAILURE() << "libsndfile cannot write format 0x" << std::hex << format << ": "
                  << sf_strerror(nullptr);
  if (!f) return {};
  sf_writef_float(f, x.data(), static_cast<sf_count_t>(x.size() / channels));
  sf_close(f);
  return b.d;
}

// The channel mean, as the decoder down-mixes.
std::vector<float> mono(const std::vector<float>& x, int channels) {
  std::vector<float> m(x.size() / static_cast<size_t>(channels));
  for (size_t i = 0; i < m.size(); ++i) {
    float s = 0;
    for (int c = 0; c < channels; ++c) s += x[i * static_cast<size_t>(channels) + c];
    m[i] = s / static_cast<float>(channels);
  }
  return m;
}

// Power of x at frequency f (Goertzel-style projection), relative to its total power.
double tone_fraction(const std::vector<float>& x, int rate, double f, size_t skip) {
  double c = 0, s = 0, tot = 0;
  for (size_t i = skip; i + skip < x.size(); ++i) {
    const double a = 2 * std::numbers::pi * f * static_cast<double>(i) / rate;
    c += x[i] * std::cos(a);
    s += x[i] * std::sin(a);
    tot += static_cast<double>(x[i]) * x[i];
  }
  const double n = static_cast<double>(x.size() - 2 * skip);
  return (2.0 * (c * c + s * s) / n) / tot;
}

struct Lossless {
  int format;
  const char* codec;
  double step;  // quantisation step of the codec's samples
};

TEST(Decode, LosslessContainersRoundTrip) {
  const std::vector<Lossless> cases = {
      {SF_FORMAT_WAV | SF_FORMAT_PCM_16, "PCM_16", 1.0 / 32768},
      {SF_FORMAT_WAV | SF_FORMAT_PCM_24, "PCM_24", 1.0 / 8388608},
      {SF_FORMAT_WAV | SF_FORMAT_PCM_32, "PCM_32", 1e-7},
      {SF_FORMAT_WAV | SF_FORMAT_FLOAT, "FLOAT", 0},
      {SF_FORMAT_WAV | SF_FORMAT_DOUBLE, "DOUBLE", 0},
      {SF_FORMAT_WAV | SF_FORMAT_PCM_U8, "PCM_U8", 1.0 / 128},
      {SF_FORMAT_FLAC | SF_FORMAT_PCM_16, "PCM_16", 1.0 / 32768},
      {SF_FORMAT_FLAC | SF_FORMAT_PCM_24, "PCM_24", 1.0 / 8388608},
  };
  const std::vector<float> x = tone(44100, 2, 0.25, 441.0);
  const std::vector<float> want = mono(x, 2);
  for (const Lossless& c : cases) {
    const std::vector<uint8_t> bytes = encode(c.format, 44100, 2, x);
    const DecodedAudio a = decode_audio(bytes.data(), bytes.size(), "clip");
    EXPECT_EQ(a.codec, c.codec);
    EXPECT_EQ(a.channels, 2);
    EXPECT_EQ(a.sample_rate, 44100);
    ASSERT_EQ(a.samples.size(), want.size()) << c.codec;
    double err = 0;
    for (size_t i = 0; i < want.size(); ++i)
      err = std::max(err, static_cast<double>(std::abs(a.samples[i] - want[i])));
    EXPECT_LE(err, c.step + 1e-7) << c.codec;
  }
}

TEST(Decode, LossyContainersKeepTheTone) {
  struct Lossy {
    int format;
    int rate;
    Container container;
    const char* codec;
  };
  const std::vector<Lossy> cases = {
      {SF_FORMAT_OGG | SF_FORMAT_VORBIS, 44100, Container::kOgg, "VORBIS"},
      {SF_FORMAT_OGG | SF_FORMAT_OPUS, 48000, Container::kOgg, "OPUS"},
      {SF_FORMAT_MPEG | SF_FORMAT_MPEG_LAYER_III, 44100, Container::kMp3, "MPEG_LAYER_III"},
  };
  for (const Lossy& c : cases) {
    const std::vector<uint8_t> bytes = encode(c.format, c.rate, 2, tone(c.rate, 2, 1.0, 1000.0));
    ASSERT_FALSE(bytes.empty()) << c.codec;
    const DecodedAudio a = decode_audio(bytes.data(), bytes.size(), "clip");
    EXPECT_EQ(a.container, c.container) << c.codec;
    EXPECT_EQ(a.codec, c.codec);
    EXPECT_NEAR(a.seconds(), 1.0, 0.08) << c.codec;  // codec delay / padding
    const std::vector<float> y = resample(a.samples, a.sample_rate, 16000);
    EXPECT_GT(tone_fraction(y, 16000, 1000.0, 800), 0.97) << c.codec;
  }
}

TEST(Decode, ResampleKeepsABandLimitedToneAndLibrosasLength) {
  const std::vector<float> x = tone(48000, 1, 0.5, 1000.0, 0.8);
  const std::vector<float> y = resample(x, 48000, 16000);
  ASSERT_EQ(y.size(), 8000u);
  double err = 0;
  for (size_t i = 400; i + 400 < y.size(); ++i)  // away from the edges
    err = std::max(err, std::abs(y[i] - 0.8 * std::sin(2 * std::numbers::pi * 1000.0 * i / 16000)));
  EXPECT_LT(err, 2e-3);
  EXPECT_EQ(resample(std::vector<float>(44101, 0.0f), 44100, 16000).size(), 16001u);  // ceil
  EXPECT_EQ(resample(x, 48000, 48000), x);
}

TEST(Decode, LoadAudioIsMono16k) {
  const std::vector<uint8_t> bytes =
      encode(SF_FORMAT_WAV | SF_FORMAT_PCM_16, 22050, 3, tone(22050, 3, 0.5, 300.0));
  const std::vector<float> y = load_audio(bytes.data(), bytes.size(), "clip");
  EXPECT_EQ(y.size(), 8000u);
}

TEST(Decode, DeclaredFormatMustMatch) {
  const std::vector<uint8_t> wav =
      encode(SF_FORMAT_WAV | SF_FORMAT_PCM_16, 16000, 1, tone(16000, 1, 0.1, 300.0));
  EXPECT_NO_THROW(decode_audio(wav.data(), wav.size(), "clip", {}, "wav"));
  EXPECT_NO_THROW(decode_audio(wav.data(), wav.size(), "clip", {}, "audio/x-wav"));
  try {
    decode_audio(wav.data(), wav.size(), "input_audio 0", {}, "mp3");
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "input_audio 0: the format field says 'mp3' but the data is wav");
  }
  EXPECT_THROW(decode_audio(wav.data(), wav.size(), "clip", {}, "aac"), Error);
}

void expect_error(const std::vector<uint8_t>& bytes, const std::string& needle,
                  const DecodeLimits& lim = {}) {
  try {
    load_audio(bytes.data(), bytes.size(), "clip 3", lim);
    ADD_FAILURE() << "no error for the case expecting '" << needle << "'";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind("clip 3: ", 0), 0u) << msg;
    EXPECT_NE(msg.find(needle), std::string::npos) << msg;
  }
}

TEST(Decode, BadInputIsAnErrorNamingTheClip) {
  const std::vector<uint8_t> wav =
      encode(SF_FORMAT_WAV | SF_FORMAT_PCM_16, 16000, 1, tone(16000, 1, 1.0, 300.0));
  expect_error({}, "empty audio data");
  expect_error(std::vector<uint8_t>(wav.begin(), wav.begin() + 2000), "truncated WAV");
  expect_error(std::vector<uint8_t>(wav.begin(), wav.begin() + 30), "truncated WAV");
  std::vector<uint8_t> junk(5000);
  for (size_t i = 0; i < junk.size(); ++i) junk[i] = static_cast<uint8_t>((i * 7919u) >> 3);
  expect_error(junk, "cannot decode");
  expect_error(encode(SF_FORMAT_AIFF | SF_FORMAT_PCM_16, 16000, 1, tone(16000, 1, 0.1, 300.0)),
               "unsupported audio container");
  expect_error(encode(SF_FORMAT_WAV | SF_FORMAT_PCM_16, 16000, 1, {}), "no samples");
  DecodeLimits lim;
  lim.max_seconds = 0.5;
  expect_error(wav, "over the limit of 0.5 s", lim);
  lim = {};
  lim.max_bytes = 1000;
  expect_error(wav, "over the limit of 1000", lim);
  std::vector<float> nan_clip(100, 0.1f);
  nan_clip[42] = std::nanf("");
  expect_error(encode(SF_FORMAT_WAV | SF_FORMAT_FLOAT, 16000, 1, nan_clip), "not finite");
}

}  // namespace
}  // namespace fc::audio
