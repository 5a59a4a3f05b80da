// --lm-head-dtype nvfp4: the head re-quantized at load time is exactly quant::quantize of the
// checkpoint's head (one per-tensor amax, ModelOpt arithmetic), and the model's logits are the
// final hidden states times that dequantized head (then the softcap).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "core/error.h"
#include "core/half.h"
#include "io/safetensors.h"
#include "model/gemma4/model.h"
#include "quant/nvfp4.h"
#include "spec/session.h"

namespace fc::gemma4 {
namespace {

const std::string kTiny = std::string(FC_SOURCE_DIR) + "/models/tiny-gemma4";

TEST(LmHead, ParsesTheFlag) {
  EXPECT_EQ(parse_lm_head_dtype("checkpoint"), LmHeadDType::kCheckpoint);
  EXPECT_EQ(parse_lm_head_dtype("auto"), LmHeadDType::kCheckpoint);
  EXPECT_EQ(parse_lm_head_dtype("bf16"), LmHeadDType::kBf16);
  EXPECT_EQ(parse_lm_head_dtype("nvfp4"), LmHeadDType::kNvfp4);
  for (LmHeadDType d : {LmHeadDType::kCheckpoint, LmHeadDType::kBf16, LmHeadDType::kNvfp4})
    EXPECT_EQ(parse_lm_head_dtype(lm_head_dtype_name(d)), d);
  for (const char* bad : {"fp8", "", "NVFP4", "int4"}) {
    try {
      parse_lm_head_dtype(bad);
      FAIL() << bad << " accepted";
    } catch (const Error& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find("--lm-head-dtype"), std::string::npos) << m;
      EXPECT_NE(m.find("checkpoint, bf16, nvfp4"), std::string::npos) << m;
    }
  }
}

// An F32 head rounded to BF16 element by element (nearest even); a BF16 head kept as it is.
TEST(LmHead, Bf16HeadRoundsAnF32HeadAndKeepsABf16One) {
  ThreadPool pool(1);
  cpu::CpuBackend be(pool);
  const Config cfg = load_config(kTiny);
  std::shared_ptr<const Checkpoint> ck = Checkpoint::open_dir(kTiny);
  Model model(cfg, ck, be, {});
  const Weight& head = model.weights().lm_head;
  ASSERT_EQ(head.dtype, DType::kBF16);
  std::vector<std::vector<uint8_t>> owned;
  const Weight same = make_lm_head(LmHeadDType::kBf16, head, *ck, be, owned);
  EXPECT_EQ(same.data, head.data);
  EXPECT_TRUE(owned.empty());
  EXPECT_EQ(make_lm_head(LmHeadDType::kCheckpoint, head, *ck, be, owned).data, head.data);

  // A 3 x 32 F32 tensor with values that round up, down and to even, in a one-tensor checkpoint.
  const int64_t V = 3, H = 32;
  std::vector<float> f(static_cast<size_t>(V * H));
  for (size_t i = 0; i < f.size(); ++i)
    f[i] = std::ldexp(1.0f + static_cast<float>(i) * 0x1p-12f, static_cast<int>(i % 5) - 2);
  const std::string path = ::testing::TempDir() + "/lm_head_f32.safetensors";
  write_safetensors(path, {tensor_from_memory("lm_head.weight", DType::kF32, {V, H}, f.data())});
  std::shared_ptr<const Checkpoint> fake = Checkpoint::open_files({path});
  const TensorInfo& t = fake->get("lm_head.weight");
  Weight w;
  w.name = t.name;
  w.data = t.data;
  w.dtype = DType::kF32;
  w.rows = V;
  w.cols = H;
  w.ld = H;
  const Weight b = make_lm_head(LmHeadDType::kBf16, w, *fake, be, owned);
  ASSERT_EQ(b.dtype, DType::kBF16);
  ASSERT_EQ(b.ld, H);
  ASSERT_EQ(owned.size(), 1u);
  for (size_t i = 0; i < f.size(); ++i) {
    uint16_t h;
    std::memcpy(&h, static_cast<const uint8_t*>(b.data) + 2 * i, 2);
    ASSERT_EQ(h, f32_to_bf16(f[i])) << i;
  }
}

TEST(LmHead, Nvfp4HeadIsTheQuantizedCheckpointHeadAndGivesItsLogits) {
  ThreadPool pool(2);
  cpu::CpuBackend be(pool);
  const Config cfg = load_config(kTiny);
  std::shared_ptr<const Checkpoint> ck = Checkpoint::open_dir(kTiny);
  ModelOptions mo;
  mo.lm_head_dtype = LmHeadDType::kNvfp4;
  Model model(cfg, ck, be, mo);
  const Weight& head = model.weights().lm_head;
  ASSERT_TRUE(head.nvfp4());
  const int64_t V = cfg.vocab_size, H = cfg.hidden_size;
  ASSERT_EQ(head.rows, V);
  ASSERT_EQ(head.cols, H);
  EXPECT_FALSE(model.weights().embed_tokens.nvfp4());  // the embedding lookup stays exact

  // The checkpoint's (tied) head as fp32, quantized in one piece.
  const TensorInfo& t = ck->get(cfg.tensor_prefix + "embed_tokens.weight");
  ASSERT_EQ(t.dtype, DType::kBF16);
  std::vector<float> w(static_cast<size_t>(V * H));
  for (size_t i = 0; i < w.size(); ++i) {
    uint16_t h;
    std::memcpy(&h, t.data + 2 * i, 2);
    w[i] = bf16_to_f32(h);
  }
  const quant::Nvfp4Tensor q = quant::quantize(w.data(), V, H, H, quant::abs_max(w.data(), V, H, H),
                                               quant::Producer::kModelOpt);
  ASSERT_EQ(head.ld, H / 2);
  ASSERT_EQ(head.scale_ld, H / 16);
  EXPECT_EQ(head.global_scale, q.global_scale);
  EXPECT_EQ(std::memcmp(head.data, q.packed.data(), q.packed.size()), 0);
  EXPECT_EQ(std::memcmp(head.block_scale, q.scales.data(), q.scales.size()), 0);

  // Logits of a short prompt against final hidden · dequantized headᵀ, softcapped.
  SessionOptions so;
  so.max_seqs = 1;
  so.max_tokens = 64;
  Session s(model, be, so);
  s.add(0);
  const std::vector<int32_t> ids = {2, 105, 2364, 107, 9259, 1041, 300};
  std::vector<int> rows(ids.size());
  for (size_t i = 0; i < rows.size(); ++i) rows[i] = static_cast<int>(i);
  ForwardOutput out;
  s.run({{0, ids, rows, rows}}, out, {}, true);
  ASSERT_EQ(out.n_logit_rows, static_cast<int>(ids.size()));
  quant::Nvfp4Matrix m;
  m.packed = q.packed.data();
  m.scales = q.scales.data();
  m.rows = V;
  m.cols = H;
  m.ld = H / 2;
  m.scale_ld = H / 16;
  m.global_scale = q.global_scale;
  std::vector<float> row(static_cast<size_t>(H));
  const double cap = *cfg.final_logit_softcapping;
  double worst = 0;
  for (int64_t v = 0; v < V; ++v) {
    quant::dequantize_row(m, v, row.data());
    for (size_t r = 0; r < ids.size(); ++r) {
      const float* h = out.final_hidden.data() + r * H;
      double dot = 0, mag = 0;
      for (int64_t k = 0; k < H; ++k) {
        dot += static_cast<double>(h[k]) * row[k];
        mag += std::fabs(static_cast<double>(h[k]) * row[k]);
      }
      const double want = cap * std::tanh(dot / cap);
      const double got = out.logits[r * V + v];
      worst = std::max(worst, std::fabs(got - want) / (mag + 1e-30));
      ASSERT_NEAR(got, want, 1e-4 * mag + 1e-6) << "row " << r << " id " << v;
    }
  }
  RecordProperty("worst_rel_err", std::to_string(worst));
}

}  // namespace
}  // namespace fc::gemma4
