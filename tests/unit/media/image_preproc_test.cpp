// Image decoding and Gemma 4 preprocessing against tests/fixtures/vision-preproc (made by
// tools/refgen/make_vision_preproc.py with transformers' two Gemma 4 image processors and PIL):
// decoded RGB (as vLLM's ImageMediaIO gives it to HF), the resized image of both backends, the
// pixel values and positions, and soft-token counts of 1200 sizes at every budget. Every pixel
// must be equal; the tests print the number of differing values when they are not.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>
#include <fstream>
#include <random>

#include "io/safetensors.h"
#include "media/gemma4_image.h"
#include "media/image.h"
#include "media/resize.h"
#include "tests/unit/media/golden_fixture.h"

namespace fc::media {
namespace {

const std::string kDir = std::string(FC_SOURCE_DIR) + "/tests/fixtures/vision-preproc/";

using testing::read_file;
using Golden = testing::GoldenFixture;

const Golden& golden() {
  static Golden g(kDir);
  return g;
}

// Number of differing bytes (and the largest difference) between an image and a U8 tensor.
std::pair<int64_t, int> diff(const RgbImage& img, const TensorInfo& t) {
  EXPECT_EQ(t.dtype, DType::kU8);
  EXPECT_EQ(t.shape, (std::vector<int64_t>{img.height, img.width, 3})) << t.name;
  if (t.nbytes != img.rgb.size()) return {-1, -1};
  int64_t n = 0;
  int mx = 0;
  for (size_t i = 0; i < img.rgb.size(); ++i) {
    const int d = std::abs(int(img.rgb[i]) - int(t.data[i]));
    n += d != 0;
    mx = std::max(mx, d);
  }
  return {n, mx};
}

RgbImage from_tensor(const TensorInfo& t) {
  RgbImage img;
  img.height = static_cast<int>(t.shape[0]);
  img.width = static_cast<int>(t.shape[1]);
  img.rgb.assign(t.data, t.data + t.nbytes);
  return img;
}

TEST(ImageDecode, EveryFixtureDecodesAsVllmHandsItToHF) {
  const Golden& g = golden();
  ASSERT_GE(g.manifest.size(), 6u);
  for (auto& [name, m] : g.manifest.items()) {
    const std::vector<uint8_t> bytes = read_file(kDir + m["file"].get<std::string>());
    const RgbImage img = decode_image(bytes);
    EXPECT_EQ(img.mode, m["mode"].get<std::string>()) << name;
    const auto [n, mx] = diff(img, g.t(name + ".rgb"));
    EXPECT_EQ(n, 0) << name << " (" << img.mode << " " << img.format << "): " << n
                    << " values differ, max " << mx;
  }
}

TEST(ImageDecode, ExifOrientationIsOptIn) {
  const Golden& g = golden();
  const std::vector<uint8_t> bytes = read_file(kDir + "inputs/exif6.jpg");
  DecodeOptions o;
  o.exif_transpose = true;
  const RgbImage img = decode_image(bytes, o);
  const auto [n, mx] = diff(img, g.t("exif6.rgb_exif"));
  EXPECT_EQ(n, 0) << "max " << mx;
  EXPECT_EQ(img.width, 48);
  EXPECT_EQ(img.height, 64);
}

TEST(ImageResize, BothBackendsMatchTheProcessorsPixelForPixel) {
  const Golden& g = golden();
  for (auto& [name, m] : g.manifest.items()) {
    const RgbImage src = from_tensor(g.t(name + ".rgb"));
    for (auto [b, be] :
         {std::pair{"tv", ResizeBackend::kTorchvision}, std::pair{"pil", ResizeBackend::kPil}}) {
      const TensorInfo& ref = g.t(name + "." + b + ".resized");
      const int h = static_cast<int>(ref.shape[0]), w = static_cast<int>(ref.shape[1]);
      EXPECT_EQ(h, m["resized_hw"][0].get<int>());
      EXPECT_EQ(w, m["resized_hw"][1].get<int>());
      const RgbImage out =
          (h == src.height && w == src.width) ? src : resize_bicubic(src, h, w, be);
      const auto [n, mx] = diff(out, ref);
      EXPECT_EQ(n, 0) << name << " " << b << " " << src.height << "x" << src.width << " -> " << h
                      << "x" << w << ": " << n << " of " << out.rgb.size() << " differ, max " << mx;
    }
  }
}

uint64_t fnv1a64(const std::vector<uint8_t>& v) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (uint8_t b : v) h = (h ^ b) * 0x100000001B3ull;
  return h;
}

TEST(ImageResize, RealGeometryBudgets70And280) {
  const Golden& g = golden();
  for (const char* name : {"gray", "progressive"}) {
    const RgbImage src = from_tensor(g.t(std::string(name) + ".rgb"));
    for (int budget : {70, 280}) {
      const std::string p = "real." + std::string(name) + "." + std::to_string(budget);
      const int32_t* hw = reinterpret_cast<const int32_t*>(g.t(p + ".shape").data);
      const auto [h, w] = aspect_ratio_preserving_size(src.height, src.width, 16, budget * 9, 3);
      ASSERT_EQ(h, hw[0]);
      ASSERT_EQ(w, hw[1]);
      for (auto [b, be] :
           {std::pair{"tv", ResizeBackend::kTorchvision}, std::pair{"pil", ResizeBackend::kPil}}) {
        const RgbImage out = resize_bicubic(src, h, w, be);
        const TensorInfo& head = g.t(p + "." + b + ".head");
        EXPECT_EQ(std::memcmp(head.data, out.rgb.data(), head.nbytes), 0) << p << " " << b;
        int64_t want;
        std::memcpy(&want, g.t(p + "." + b + ".fnv1a").data, 8);
        EXPECT_EQ(fnv1a64(out.rgb), static_cast<uint64_t>(want)) << p << " " << b;
      }
    }
  }
}

TEST(Gemma4Preprocess, PixelValuesAndPositionsEqualTheProcessors) {
  const Golden& g = golden();
  for (const char* name : {"rgb_noise", "gray16"}) {
    const RgbImage src = from_tensor(g.t(std::string(name) + ".rgb"));
    for (auto [b, be] :
         {std::pair{"tv", ResizeBackend::kTorchvision}, std::pair{"pil", ResizeBackend::kPil}}) {
      ImageProcessorConfig cfg;
      cfg.patch_size = 4;
      cfg.max_soft_tokens = 70;
      cfg.backend = be;
      const PatchGrid pg = preprocess_gemma4_image(src, cfg);
      const TensorInfo& pv = g.t(std::string(name) + "." + b + ".pv");
      const TensorInfo& pos = g.t(std::string(name) + "." + b + ".pos");
      ASSERT_EQ(pv.shape, (std::vector<int64_t>{630, 48}));
      const size_t n = static_cast<size_t>(pg.grid_h) * pg.grid_w;
      EXPECT_EQ(pg.num_soft_tokens,
                *reinterpret_cast<const int32_t*>(g.t(std::string(name) + ".n").data));
      EXPECT_EQ(std::memcmp(pv.data, pg.pixels.data(), n * 48 * 4), 0) << name << " " << b;
      EXPECT_EQ(std::memcmp(pos.data, pg.positions.data(), n * 2 * 4), 0) << name << " " << b;
      // The processor pads to max_patches with 0 pixels and (-1, -1) positions.
      const float* pvf = reinterpret_cast<const float*>(pv.data);
      const int32_t* posi = reinterpret_cast<const int32_t*>(pos.data);
      for (size_t i = n * 48; i < 630 * 48; ++i) ASSERT_EQ(pvf[i], 0.0f);
      for (size_t i = n * 2; i < 630 * 2; ++i) ASSERT_EQ(posi[i], -1);
    }
  }
}

TEST(Gemma4Preprocess, SoftTokenCountsEqualHFAndVllmAtEveryBudget) {
  const TensorInfo& t = golden().t("counts");
  ASSERT_EQ(t.shape.size(), 2u);
  ASSERT_GE(t.shape[0], 5000);
  const int32_t* r = reinterpret_cast<const int32_t*>(t.data);
  int checked = 0;
  for (int64_t i = 0; i < t.shape[0]; ++i, r += 7) {
    const auto [h, w] = aspect_ratio_preserving_size(r[0], r[1], 16, r[2] * 9, 3);
    ASSERT_EQ(h, r[3]) << r[0] << "x" << r[1] << " @" << r[2];
    ASSERT_EQ(w, r[4]) << r[0] << "x" << r[1] << " @" << r[2];
    ImageProcessorConfig cfg;
    cfg.max_soft_tokens = r[2];
    ASSERT_EQ(num_soft_tokens(r[0], r[1], cfg), r[5]);
    ASSERT_EQ(vllm_num_soft_tokens(r[0], r[1], r[2]), r[6]);
    ++checked;
  }
  EXPECT_GE(checked, 5000);
}

TEST(Gemma4Preprocess, SpecExamplesAndBudgetValidation) {
  ImageProcessorConfig c;
  for (auto [budget, side, n] : {std::tuple{70, 384, 64},
                                 {140, 528, 121},
                                 {280, 768, 256},
                                 {560, 1104, 529},
                                 {1120, 1584, 1089}}) {
    c.max_soft_tokens = budget;
    EXPECT_EQ(aspect_ratio_preserving_size(1000, 1000, 16, budget * 9, 3),
              (std::pair<int, int>{side, side}));
    EXPECT_EQ(num_soft_tokens(1000, 1000, c), n);
  }
  // HF's resize test cases (spec multimodal.md §2.1).
  EXPECT_EQ(aspect_ratio_preserving_size(50, 10000, 10, 200, 1), (std::pair<int, int>{10, 2000}));
  EXPECT_EQ(aspect_ratio_preserving_size(2785, 34, 16, 2304, 6), (std::pair<int, int>{6144, 96}));
  EXPECT_EQ(aspect_ratio_preserving_size(5, 100, 5, 20, 3), (std::pair<int, int>{15, 30}));
  for (int bad : {0, 69, 71, 256, 281, 2240}) {
    EXPECT_FALSE(valid_max_soft_tokens(bad));
    c.max_soft_tokens = bad;
    RgbImage img;
    img.width = img.height = 8;
    img.rgb.assign(8 * 8 * 3, 0);
    try {
      preprocess_gemma4_image(img, c);
      ADD_FAILURE() << bad;
    } catch (const DecodeError& e) {
      EXPECT_NE(
          std::string(e.what()).find("Unsupported max_soft_tokens value: " + std::to_string(bad)),
          std::string::npos);
    }
  }
}

// The integer weights move the stored horizontal pass by at most one level, which the vertical
// filter (L1 norm up to ~1.3 when upsampling) carries into the result: at most two levels.
TEST(ImageResize, IntegerPathsStayWithinTwoLevelsOfTheDoubleReference) {
  std::mt19937 rng(7);
  for (int it = 0; it < 30; ++it) {
    RgbImage src;
    src.width = 1 + static_cast<int>(rng() % 90);
    src.height = 1 + static_cast<int>(rng() % 90);
    src.rgb.resize(static_cast<size_t>(src.width) * src.height * 3);
    for (auto& v : src.rgb) v = static_cast<uint8_t>(rng());
    const int oh = 1 + static_cast<int>(rng() % 120), ow = 1 + static_cast<int>(rng() % 120);
    const std::vector<double> ref = resize_reference(src, oh, ow);
    for (ResizeBackend be : {ResizeBackend::kTorchvision, ResizeBackend::kPil}) {
      const RgbImage out = resize_bicubic(src, oh, ow, be);
      for (size_t i = 0; i < ref.size(); ++i)
        ASSERT_LE(std::abs(out.rgb[i] - std::clamp(std::round(ref[i]), 0.0, 255.0)), 2.0)
            << src.height << "x" << src.width << " -> " << oh << "x" << ow << " at " << i;
    }
  }
}

// ---- bad input: every case is a DecodeError with a message, never a crash ----

std::vector<uint8_t> png_with_size(uint32_t w, uint32_t h) {
  // A valid PNG signature and IHDR (CRC unchecked by the size test path: libpng checks it, so
  // compute it), then nothing.
  std::vector<uint8_t> b = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n',
                            0,    0,   0,   13,  'I',  'H',  'D',  'R'};
  auto be32 = [&](uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<uint8_t>(v >> s));
  };
  be32(w);
  be32(h);
  for (uint8_t v : {8, 2, 0, 0, 0}) b.push_back(v);
  uint32_t crc = 0xffffffffu;
  for (size_t i = 12; i < b.size(); ++i) {
    crc ^= b[i];
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
  }
  be32(crc ^ 0xffffffffu);
  return b;
}

void expect_decode_error(const std::vector<uint8_t>& bytes, const std::string& what) {
  try {
    decode_image(bytes);
    ADD_FAILURE() << "decoded: " << what;
  } catch (const DecodeError& e) {
    EXPECT_FALSE(std::string(e.what()).empty()) << what;
    SUCCEED() << e.what();
  }
}

TEST(ImageDecode, BadInputIsAnErrorNotACrash) {
  const std::vector<uint8_t> png = read_file(kDir + "inputs/rgb_noise.png");
  for (size_t cut : {size_t{8}, size_t{30}, png.size() / 2, png.size() - 13})
    expect_decode_error(std::vector<uint8_t>(png.begin(), png.begin() + cut), "truncated png");
  const std::vector<uint8_t> jpg = read_file(kDir + "inputs/progressive.jpg");
  expect_decode_error(std::vector<uint8_t>(jpg.begin(), jpg.begin() + jpg.size() / 2),
                      "truncated jpeg");
  const std::vector<uint8_t> gif = read_file(kDir + "inputs/anim.gif");
  expect_decode_error(std::vector<uint8_t>(gif.begin(), gif.begin() + 200), "truncated gif");
  const std::vector<uint8_t> webp = read_file(kDir + "inputs/photo_lossy.webp");
  expect_decode_error(std::vector<uint8_t>(webp.begin(), webp.begin() + webp.size() / 2),
                      "truncated webp");
  expect_decode_error({}, "empty");
  expect_decode_error({'h', 'e', 'l', 'l', 'o'}, "text");
  try {
    decode_image(png_with_size(30000, 30000));
    ADD_FAILURE();
  } catch (const DecodeError& e) {
    EXPECT_NE(std::string(e.what()).find("decompression bomb"), std::string::npos) << e.what();
  }
  expect_decode_error(png_with_size(0, 10), "zero width");
  DecodeOptions small;
  small.max_pixels = 100;
  EXPECT_THROW(decode_image(png, small), DecodeError);
}

}  // namespace
}  // namespace fc::media
