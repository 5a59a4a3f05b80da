// Video decoding, frame sampling and per-frame preprocessing against tests/fixtures/video (made by
// tools/refgen/make_video_fixtures.py: ffprobe / the ffmpeg CLI for the metadata and the decoded
// frames, transformers' Gemma4VideoProcessor for the pixel values, numpy for vLLM's linspace
// sampling, transformers' default_sample_indices_fn and VideoMetadata.timestamps), and the
// decoder's bad-input errors.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>
#include <fstream>

#include "io/safetensors.h"
#include "media/gemma4_video.h"
#include "media/video_decode.h"
#include "tests/unit/media/golden_fixture.h"

namespace fc::media {
namespace {

const std::string kDir = std::string(FC_SOURCE_DIR) + "/tests/fixtures/video/";

using testing::read_file;
using Golden = testing::GoldenFixture;

const Golden& golden() {
  static Golden g(kDir);
  return g;
}

// The fixture generator's checksum: Σ (i + 1)·2654435761 mod 2^32 · word_i mod 2^64 over the
// 32-bit words (floats) or bytes.
int64_t checksum(const uint8_t* p, size_t n, size_t word) {
  uint64_t s = 0;
  for (size_t i = 0; i < n / word; ++i) {
    uint64_t w = 0;
    if (word == 4) {
      uint32_t v;
      std::memcpy(&v, p + i * 4, 4);
      w = v;
    } else {
      w = p[i];
    }
    s += w * (((i + 1) * 2654435761ull) & 0xFFFFFFFFull);
  }
  return static_cast<int64_t>(s);
}

TEST(VideoGolden, ClipsDecodeSampleAndPreprocessAsTheReference) {
  const Golden& g = golden();
  for (const auto& c : g.manifest["clips"]) {
    const std::string file = c["file"];
    SCOPED_TRACE(file);
    const std::vector<uint8_t> bytes = read_file(kDir + file);
    const VideoInfo info = probe_video(bytes);
    EXPECT_EQ(info.codec, c["codec"].get<std::string>());
    EXPECT_EQ(info.width, c["width"].get<int>());
    EXPECT_EQ(info.height, c["height"].get<int>());
    EXPECT_EQ(info.total_frames, c["total_frames"].get<int64_t>());
    EXPECT_DOUBLE_EQ(info.fps, c["fps"].get<double>());
    EXPECT_NEAR(info.duration, c["duration"].get<double>(), 1e-6);

    ImageProcessorConfig pc;
    const Gemma4Video v = load_gemma4_video(bytes, VideoSampling{}, pc);
    EXPECT_EQ(v.indices, c["indices"].get<std::vector<int64_t>>());
    ASSERT_EQ(v.frames.size(), c["pixel_checksums"].size());
    const auto ts = c["timestamps"].get<std::vector<double>>();
    ASSERT_EQ(v.timestamps.size(), ts.size());
    for (size_t i = 0; i < ts.size(); ++i) {
      EXPECT_DOUBLE_EQ(v.timestamps[i], ts[i]) << i;
      EXPECT_EQ(timestamp_mmss(v.timestamps[i]), c["mmss"][i].get<std::string>()) << i;
    }
    // The decoded frames (before resizing) against the ffmpeg CLI's.
    const DecodedVideo raw = decode_video(bytes, [&](const VideoInfo&) { return v.indices; });
    ASSERT_EQ(raw.frames.size(), c["frame_checksums"].size());
    for (size_t i = 0; i < raw.frames.size(); ++i)
      EXPECT_EQ(checksum(raw.frames[i].rgb.data(), raw.frames[i].rgb.size(), 1),
                c["frame_checksums"][i].get<int64_t>())
          << "frame " << raw.indices[i];
    const std::string key = file.substr(0, file.find('.'));
    for (int k = 0; k < 2; ++k) {
      const TensorInfo& t = g.t(key + ".frame" + std::to_string(k));
      ASSERT_EQ(t.nbytes, raw.frames[k].rgb.size());
      int64_t differ = 0;
      for (size_t i = 0; i < t.nbytes; ++i) differ += t.data[i] != raw.frames[k].rgb[i];
      EXPECT_EQ(differ, 0) << "frame " << k << ": bytes differing from the ffmpeg CLI's";
    }
    // transformers' Gemma4VideoProcessor on those frames.
    for (size_t i = 0; i < v.frames.size(); ++i) {
      const PatchGrid& p = v.frames[i];
      EXPECT_EQ(p.num_soft_tokens, c["soft_tokens_per_frame"].get<int>());
      EXPECT_EQ(static_cast<int>(p.pixels.size()) / p.patch_dim, c["real_patches"].get<int>());
      EXPECT_EQ(checksum(reinterpret_cast<const uint8_t*>(p.pixels.data()), p.pixels.size() * 4, 4),
                c["pixel_checksums"][i].get<int64_t>())
          << "pixel values of frame " << i;
      // transformers' Gemma4VideoProcessor: the same resize, rescaled as u8 / 255 in fp32.
      std::vector<float> hf(p.pixels.size());
      for (size_t k = 0; k < hf.size(); ++k) hf[k] = std::nearbyint(p.pixels[k] * 255.0f) / 255.0f;
      EXPECT_EQ(checksum(reinterpret_cast<const uint8_t*>(hf.data()), hf.size() * 4, 4),
                c["hf_video_pixel_checksums"][i].get<int64_t>())
          << "HF video processor's pixel values of frame " << i;
    }
    const TensorInfo& pos = g.t(key + ".positions0");
    ASSERT_EQ(pos.nbytes, v.frames[0].positions.size() * 4);
    EXPECT_EQ(std::memcmp(pos.data, v.frames[0].positions.data(), pos.nbytes), 0);
  }
}

TEST(VideoGolden, FrameSamplingOfVllmAndTransformers) {
  int n = 0;
  for (const auto& c : golden().manifest["sampling"]) {
    const int64_t total = c["total"];
    const int num_frames = c["num_frames"];
    const double fps = c["fps"], duration = c["duration"];
    SCOPED_TRACE(c.dump().substr(0, 120));
    EXPECT_EQ(vllm_sample_frame_indices(total, duration, num_frames, fps),
              c["vllm"].get<std::vector<int64_t>>());
    if (c.contains("hf")) {
      EXPECT_EQ(hf_sample_frame_indices(total, num_frames), c["hf"].get<std::vector<int64_t>>());
    } else if (c.contains("hf_error")) {
      try {
        hf_sample_frame_indices(total, num_frames);
        ADD_FAILURE() << "expected HF's error";
      } catch (const DecodeError& e) {
        EXPECT_EQ(std::string(e.what()), c["hf_error"].get<std::string>());
      }
    }
    ++n;
  }
  EXPECT_GT(n, 200);
  for (const auto& c : golden().manifest["mmss_cases"])
    EXPECT_EQ(timestamp_mmss(c[0].get<double>()), c[1].get<std::string>()) << c.dump();
}

std::string error_of(const std::vector<uint8_t>& bytes, const VideoLimits& lim = {}) {
  try {
    load_gemma4_video(bytes, VideoSampling{}, ImageProcessorConfig{}, lim);
  } catch (const DecodeError& e) {
    return e.what();
  }
  return "";
}

// An MJPEG AVI whose every frame (JPEG SOF0) and stream header declare w x h: a decompression
// bomb's header.
std::vector<uint8_t> avi_with_size(std::vector<uint8_t> b, uint16_t w, uint16_t h) {
  for (size_t i = 0; i + 20 < b.size(); ++i) {
    if (std::memcmp(&b[i], "strf", 4) == 0) {
      const int32_t w32 = w, h32 = h;
      std::memcpy(&b[i + 12], &w32, 4);
      std::memcpy(&b[i + 16], &h32, 4);
    }
    if (b[i] == 0xFF && b[i + 1] == 0xC0 && b[i + 4] == 8) {  // SOF0, 8-bit precision
      b[i + 5] = static_cast<uint8_t>(h >> 8);
      b[i + 6] = static_cast<uint8_t>(h);
      b[i + 7] = static_cast<uint8_t>(w >> 8);
      b[i + 8] = static_cast<uint8_t>(w);
    }
  }
  return b;
}

TEST(VideoDecode, BadInputsGiveErrorsNamingTheProblem) {
  EXPECT_NE(error_of({}).find("empty"), std::string::npos);
  const std::string text = "this is not a video, just some text that goes on for a while.";
  EXPECT_NE(error_of(std::vector<uint8_t>(text.begin(), text.end())).find("not a video"),
            std::string::npos);
  std::vector<uint8_t> noise(4096);
  for (size_t i = 0; i < noise.size(); ++i)
    noise[i] = static_cast<uint8_t>((i * 2654435761u) >> 13);
  EXPECT_NE(error_of(noise), "");
  // A stream with no frames.
  EXPECT_NE(error_of(read_file(kDir + "zero_frames.avi")).find("no frame could be decoded"),
            std::string::npos);
  // Truncated files: every prefix either decodes some frames or is refused; none crashes.
  for (const char* f : {"h264_25fps_3s.mp4", "vp9_10fps_2s.webm", "mjpeg_5fps_2s.avi"}) {
    const std::vector<uint8_t> full = read_file(kDir + f);
    for (size_t cut :
         {size_t{16}, size_t{200}, full.size() / 3, full.size() / 2, full.size() - 7}) {
      const std::vector<uint8_t> part(full.begin(), full.begin() + static_cast<ptrdiff_t>(cut));
      try {
        const Gemma4Video v = load_gemma4_video(part, VideoSampling{}, ImageProcessorConfig{});
        EXPECT_FALSE(v.frames.empty());
        EXPECT_EQ(v.frames.size(), v.indices.size());
      } catch (const DecodeError& e) {
        EXPECT_NE(std::string(e.what()), "") << f << " cut at " << cut;
      }
    }
  }
  // Frames of a decompression bomb: FFmpeg's probing decoders are bound by the same pixel limit,
  // so nothing that size is allocated and the stream is refused.
  const std::vector<uint8_t> avi = read_file(kDir + "mjpeg_5fps_2s.avi");
  for (uint16_t side : {uint16_t{30000}, uint16_t{15000}}) {
    const std::string e = error_of(avi_with_size(avi, side, side));
    EXPECT_NE(e.find("exceed the maximum of 178956970 pixels"), std::string::npos) << e;
  }
  VideoLimits lim;
  lim.max_pixels = 1000;
  EXPECT_NE(error_of(avi, lim).find("exceed the maximum of 1000 pixels"), std::string::npos);
  // A size the container states (MP4, WebM) is checked before decoding, with vLLM's message.
  lim.max_pixels = 3000;
  const std::string e = error_of(read_file(kDir + "vp9_10fps_2s.webm"), lim);
  EXPECT_NE(e.find("Video frame dimensions 64x48 (3072 pixels) exceed the maximum of 3000 pixels."),
            std::string::npos)
      << e;
  lim = {};
  lim.max_bytes = 100;
  EXPECT_NE(error_of(avi, lim).find("over the limit of 100"), std::string::npos);
  lim = {};
  lim.max_duration_s = 1.0;
  EXPECT_NE(error_of(avi, lim).find("lasts"), std::string::npos);
  lim = {};
  lim.max_frames = 5;
  EXPECT_NE(error_of(avi, lim).find("has 10 frames, over the limit of 5"), std::string::npos);
  lim = {};
  lim.max_decoded_frames = 5;
  EXPECT_NE(error_of(avi, lim).find("decoded frames"), std::string::npos);
  lim = {};
  lim.max_decoded_pixels = 3 * 64 * 48;
  EXPECT_NE(error_of(avi, lim).find("pixels (the limit)"), std::string::npos);
}

TEST(VideoDecode, SamplingOptionsOfTheMediaIoKwargs) {
  const std::vector<uint8_t> mp4 = read_file(kDir + "h264_25fps_3s.mp4");  // 75 frames, 3 s
  VideoSampling s;
  s.num_frames = 4;
  EXPECT_EQ(load_gemma4_video(mp4, s, {}).indices, (std::vector<int64_t>{0, 24, 49, 74}));
  s.num_frames = -1;
  EXPECT_EQ(load_gemma4_video(mp4, s, {}).indices.size(), 75u);
  s.fps = 1;  // at most floor(3 s · 1) frames
  EXPECT_EQ(load_gemma4_video(mp4, s, {}).indices, (std::vector<int64_t>{0, 37, 74}));
}

}  // namespace
}  // namespace fc::media
