// The vision tower and embed_vision against transformers (fp32, eager) on the two tiny
// conditional-generation fixtures of tools/refgen/make_vision_fixtures.py: mm-31b (standardize,
// BF16 weights) and mm-e2b (clipped linears, F32). Every intermediate is compared: patch
// embedder, each encoder layer, the pooled × √d features, the standardized tower output and the
// projected soft tokens, for three images (54, 60, 64 soft tokens) encoded one at a time and
// all three in one batch (images attend only within themselves).
//
// Tolerance: max |diff| <= 1e-4 · max(1, max |ref|) per tensor, as the text golden tests; the
// largest measured deviation is printed.
#include <gtest/gtest.h>

#include "tests/common/golden_io.h"
#include "tests/common/mm_fixture.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "backend/cpu/cpu_backend.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "io/safetensors.h"
#include "model/gemma4/config.h"
#include "model/gemma4/vision.h"

namespace fc::gemma4 {
namespace {

const std::string kFixtures = std::string(FC_SOURCE_DIR) + "/tests/fixtures/";

float max_abs(const std::vector<float>& v) {
  float m = 0;
  for (float x : v) m = std::max(m, std::fabs(x));
  return m;
}

void expect_close(const std::vector<float>& got, const std::vector<float>& want,
                  const std::string& what, float* worst) {
  ASSERT_EQ(got.size(), want.size()) << what;
  float d = 0;
  for (size_t i = 0; i < got.size(); ++i) d = std::max(d, std::fabs(got[i] - want[i]));
  const float scale = std::max(1.0f, max_abs(want));
  EXPECT_LE(d, 1e-4f * scale) << what << ": max |diff| " << d << " of max |ref| " << scale;
  *worst = std::max(*worst, d / scale);
}

class VisionGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(VisionGolden, TowerAndProjectorMatchTransformers) {
  const std::string dir = kFixtures + GetParam();
  ThreadPool pool(2);
  cpu::CpuBackend be(pool);
  const Config cfg = load_config(dir);
  ASSERT_TRUE(cfg.mm.vision.has_value());
  auto ckpt = Checkpoint::open_dir(dir);
  ASSERT_TRUE(has_vision_tower(cfg, *ckpt));
  VisionTower tower(cfg, *ckpt, be);
  auto g = SafetensorsFile::open(dir + "/golden.safetensors");
  const int pool_k = cfg.mm.vision->pooling_kernel_size;
  std::vector<MediaInput> imgs;
  for (int i = 0; i < 3; ++i) imgs.push_back(*test::fixture_image(*g, i, pool_k));
  float worst = 0;
  // One at a time, with every intermediate.
  for (int i = 0; i < 3; ++i) {
    const std::string p = "img" + std::to_string(i) + ".";
    VisionTrace tr;
    std::vector<float> out(static_cast<size_t>(imgs[i].num_tokens) * cfg.hidden_size);
    tower.encode_traced({&imgs[i]}, out.data(), &tr);
    expect_close(tr.patch_embed, test::read_f32(*g, p + "patch_embed"), p + "patch_embed", &worst);
    for (size_t l = 0; l < tr.layers.size(); ++l)
      expect_close(tr.layers[l], test::read_f32(*g, p + "layer" + std::to_string(l)),
                   p + "layer" + std::to_string(l), &worst);
    expect_close(tr.pooled, test::read_f32(*g, p + "pooled"), p + "pooled", &worst);
    expect_close(tr.tower, test::read_f32(*g, p + "tower"), p + "tower", &worst);
    expect_close(out, test::read_f32(*g, p + "embed"), p + "embed", &worst);
  }
  // All three in one call: the same rows, in order.
  std::vector<float> all(
      static_cast<size_t>(imgs[0].num_tokens + imgs[1].num_tokens + imgs[2].num_tokens) *
      cfg.hidden_size);
  tower.encode({&imgs[0], &imgs[1], &imgs[2]}, all.data());
  std::vector<float> want;
  for (int i = 0; i < 3; ++i) {
    const std::vector<float> e = test::read_f32(*g, "img" + std::to_string(i) + ".embed");
    want.insert(want.end(), e.begin(), e.end());
  }
  expect_close(all, want, "batched embed", &worst);
  std::printf("%s: largest deviation %.3g of max |ref|\n", GetParam().c_str(), worst);
}

TEST(VisionTower, BadInputsAreErrors) {
  const std::string dir = kFixtures + "mm-31b";
  ThreadPool pool(1);
  cpu::CpuBackend be(pool);
  const Config cfg = load_config(dir);
  auto ckpt = Checkpoint::open_dir(dir);
  VisionTower tower(cfg, *ckpt, be);
  auto g = SafetensorsFile::open(dir + "/golden.safetensors");
  MediaInput m = *test::fixture_image(*g, 0, 3);
  std::vector<float> out(static_cast<size_t>(m.num_tokens) * cfg.hidden_size);
  MediaInput bad = m;
  bad.num_tokens += 1;
  EXPECT_THROW(tower.encode({&bad}, out.data()), fc::Error);
  bad = m;
  bad.grid_w += 1;
  EXPECT_THROW(tower.encode({&bad}, out.data()), fc::Error);
  bad = m;
  bad.positions[0] = 100000;
  EXPECT_THROW(tower.encode({&bad}, out.data()), fc::Error);
  bad = m;
  bad.modality = "audio";
  EXPECT_THROW(tower.encode({&bad}, out.data()), fc::Error);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, VisionGolden, ::testing::Values("mm-31b", "mm-e2b"));

}  // namespace
}  // namespace fc::gemma4
