// `fourcast quantize --algo max` against the real producers' exports of the same weights
// (tests/fixtures/nvfp4/{modelopt,ct}-{e2b,26b}, made by ModelOpt 0.47.0 and llm-compressor
// 0.14.0.1 / compressed-tensors 0.20.0): every packed code, block scale and per-tensor weight
// scale must be byte-identical, fused q/k/v and gate/up groups and MoE experts included.
// (Input and KV scales depend on the calibration data, which differs, so they are not compared.)
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "quantizer/quantizer.h"

namespace fc::quantizer {
namespace {

namespace fs = std::filesystem;
const std::string kFixtures = std::string(FC_SOURCE_DIR) + "/tests/fixtures/";

bool is_weight_tensor(const TensorInfo& t) {
  auto ends = [&](const std::string& s) {
    return t.name.size() > s.size() && t.name.compare(t.name.size() - s.size(), s.size(), s) == 0;
  };
  return ends(".weight_packed") || ends(".weight_scale") || ends(".weight_scale_2") ||
         ends(".weight_global_scale") || (ends(".weight") && t.dtype == DType::kU8);
}

void check(const std::string& source, const std::string& fixture, quant::Format format) {
  const fs::path out =
      fs::temp_directory_path() / ("fc_parity_" + fixture + "_" + std::to_string(getpid()));
  ThreadPool pool(2);
  QuantizeOptions o;
  o.model_dir = kFixtures + source;
  o.out_dir = out.string();
  o.format = format;
  o.algo = Algo::kMax;
  o.progress = false;
  // Any calibration: the weight tensors do not depend on it under max calibration.
  std::vector<int32_t> seq = {2};
  for (int i = 0; i < 64; ++i) seq.push_back(3 + (i * 37) % 240);
  quantize_model(o, {seq}, pool);
  auto ours = Checkpoint::open_dir(out.string());
  auto theirs = Checkpoint::open_dir(kFixtures + "nvfp4/" + fixture);
  int compared = 0;
  for (const TensorInfo* t : theirs->all()) {
    if (!is_weight_tensor(*t)) continue;
    const TensorInfo* m = ours->find(t->name);
    ASSERT_NE(m, nullptr) << fixture << ": we did not write " << t->name;
    EXPECT_EQ(m->dtype, t->dtype) << t->name;
    EXPECT_EQ(m->shape, t->shape) << t->name;
    ASSERT_EQ(m->nbytes, t->nbytes) << t->name;
    EXPECT_EQ(std::memcmp(m->data, t->data, t->nbytes), 0) << fixture << ": " << t->name;
    ++compared;
  }
  EXPECT_GT(compared, 100) << fixture;
  fs::remove_all(out);
}

TEST(ProducerParity, ModelOptE2b) {
  check("mini-e2b", "modelopt-e2b", quant::Format::kModelOpt);
}
TEST(ProducerParity, ModelOpt26b) {
  check("mini-26b", "modelopt-26b", quant::Format::kModelOpt);
}
TEST(ProducerParity, CompressedTensorsE2b) {
  check("mini-e2b", "ct-e2b", quant::Format::kCompressedTensors);
}
TEST(ProducerParity, CompressedTensors26b) {
  check("mini-26b", "ct-26b", quant::Format::kCompressedTensors);
}

}  // namespace
}  // namespace fc::quantizer
