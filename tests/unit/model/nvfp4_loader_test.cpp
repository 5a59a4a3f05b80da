// Loading NVFP4 checkpoints (ModelOpt and compressed-tensors naming) written by `synth` with the
// kitchen-sink geometry: both formats bind the same weights; every corruption (missing scale,
// wrong scale shape or dtype, NaN scale, K not a multiple of 16, packed codes where the config
// says dense) is an error naming the tensor; --zero-nan-scales loads NaN scales as zeros.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "core/error.h"
#include "io/safetensors.h"
#include "model/gemma4/model.h"
#include "model/gemma4/synth.h"
#include "quant/nvfp4.h"

namespace fc::gemma4 {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
const std::string kShape = std::string(FC_SOURCE_DIR) + "/tests/fixtures/kitchen-sink/config.json";

json shape() {
  std::ifstream f(kShape);
  return json::parse(f);
}

std::string synth(const std::string& tag, SynthOptions::Quant q, bool attention = true) {
  const fs::path dir = fs::temp_directory_path() / ("fc_nvfp4_" + tag);
  fs::remove_all(dir);
  SynthOptions o;
  o.quant = q;
  o.quantize_attention = attention;
  o.weight_std = 0.3f;
  write_synthetic(shape(), dir.string(), o);
  return dir.string();
}

// One tensor of a checkpoint being rewritten: its bytes may be edited in place.
struct Edited {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
};

// Rewrites DIR/model.safetensors through `edit` (return false to drop the tensor).
void rewrite(const std::string& dir, const std::function<bool(Edited&)>& edit) {
  std::vector<Edited> ts;
  {
    auto src = SafetensorsFile::open(dir + "/model.safetensors");
    for (const TensorInfo& t : src->tensors()) {
      Edited e{t.name, t.dtype, t.shape, std::vector<uint8_t>(t.data, t.data + t.nbytes)};
      if (edit(e)) ts.push_back(std::move(e));
    }
  }
  std::vector<TensorSource> out;
  for (const Edited& e : ts)
    out.push_back(tensor_from_memory(e.name, e.dtype, e.shape, e.bytes.data()));
  write_safetensors(dir + "/model.safetensors", out);
}

std::string load_error(const std::string& dir, bool zero_bad = false) {
  ThreadPool pool(1);
  cpu::CpuBackend be(pool);
  ModelOptions mo;
  mo.load.zero_bad_scales = zero_bad;
  try {
    Model m(load_config(dir), Checkpoint::open_dir(dir), be, mo);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

std::vector<float> logits(const std::string& dir, bool emulate_w4a4 = false) {
  ThreadPool pool(2);
  cpu::CpuOptions co;
  co.emulate_w4a4 = emulate_w4a4;
  cpu::CpuBackend be(pool, co);
  Model m(load_config(dir), Checkpoint::open_dir(dir), be);
  const Config& c = m.config();
  kv::KVStorage kv(be, m.kv_layout(), 4, std::vector<int>(m.kv_layout().size(), 8));
  std::vector<int32_t> ids = {5, 17, 99, 3, 42, 8, 250};
  std::vector<std::vector<int32_t>> tables(m.kv_layout().size(), std::vector<int32_t>{0, 1});
  ForwardBatch b;
  SeqInput s;
  s.tokens = ids.data();
  s.n = static_cast<int>(ids.size());
  for (auto& t : tables) s.block_tables.push_back(&t);
  for (int i = 0; i < s.n; ++i) s.logit_rows.push_back(i);
  b.seqs.push_back(s);
  ForwardOutput out;
  m.forward(b, kv, out);
  EXPECT_EQ(out.logits.size(), ids.size() * static_cast<size_t>(c.vocab_size));
  return out.logits;
}

TEST(Nvfp4Loader, BothFormatsBindTheSameWeights) {
  const std::string mo = synth("mo", SynthOptions::Quant::kModelOpt);
  const std::string ct = synth("ct", SynthOptions::Quant::kCompressedTensors);
  ThreadPool pool(1);
  cpu::CpuBackend be(pool);
  Model a(load_config(mo), Checkpoint::open_dir(mo), be);
  Model b(load_config(ct), Checkpoint::open_dir(ct), be);
  EXPECT_EQ(a.config().quant.format, quant::Format::kModelOpt);
  EXPECT_EQ(b.config().quant.format, quant::Format::kCompressedTensors);
  EXPECT_GT(a.weights().nvfp4_linears, 20);
  EXPECT_EQ(a.weights().nvfp4_linears, b.weights().nvfp4_linears);
  EXPECT_TRUE(a.weights().unused.empty()) << a.weights().unused.front();
  EXPECT_TRUE(b.weights().unused.empty()) << b.weights().unused.front();
  const Weight& wa = a.weights().layers[1].k_proj;
  const Weight& wb = b.weights().layers[1].k_proj;
  ASSERT_TRUE(wa.nvfp4() && wb.nvfp4());
  EXPECT_EQ(std::memcmp(wa.data, wb.data, static_cast<size_t>(wa.rows * wa.ld)), 0);
  // CT stores 1/S2: the reciprocal of the reciprocal is within one ulp.
  EXPECT_NEAR(wa.global_scale, wb.global_scale, wa.global_scale * 2e-7f);
  EXPECT_NEAR(wa.input_scale, wb.input_scale, wa.input_scale * 2e-7f);
  // MoE experts are per-expert NVFP4 modules; per_layer_projection (K = 8) stayed dense.
  EXPECT_TRUE(a.weights().layers[0].expert_down[3].nvfp4());
  EXPECT_FALSE(a.weights().layers[0].per_layer_projection.nvfp4());
  const std::vector<float> la = logits(mo), lb = logits(ct);
  float m = 0, d = 0;
  for (size_t i = 0; i < la.size(); ++i) {
    m = std::max(m, std::fabs(la[i]));
    d = std::max(d, std::fabs(la[i] - lb[i]));
  }
  EXPECT_GT(m, 0.1f);
  EXPECT_LE(d, 1e-4f * m);
  // W4A4 emulation changes the numbers (activations are rounded to 4 bits), but not wildly.
  const std::vector<float> le = logits(mo, true);
  float de = 0;
  for (size_t i = 0; i < la.size(); ++i) de = std::max(de, std::fabs(la[i] - le[i]));
  EXPECT_GT(de, 1e-4f * m);
}

TEST(Nvfp4Loader, FusedGroupShardsKeepTheirOwnGlobalScale) {
  // Two encodings of the same k_proj: weight_scale_2 doubled, or every FP8 block scale doubled
  // (exponent + 1 = byte + 8). q_proj and v_proj keep their scale, so the q/k/v group carries
  // different per-tensor scales; exact per-shard handling gives bitwise identical logits, and
  // both differ from the unmodified model (a shared max over the group would not).
  const std::string base = synth("shard0", SynthOptions::Quant::kModelOpt);
  const std::string a = synth("shard_a", SynthOptions::Quant::kModelOpt);
  const std::string b = synth("shard_b", SynthOptions::Quant::kModelOpt);
  const std::string k = "model.layers.0.self_attn.k_proj";
  rewrite(a, [&](Edited& e) {
    if (e.name == k + ".weight_scale_2") {
      float v;
      std::memcpy(&v, e.bytes.data(), 4);
      v *= 2.0f;
      std::memcpy(e.bytes.data(), &v, 4);
    }
    return true;
  });
  rewrite(b, [&](Edited& e) {
    if (e.name == k + ".weight_scale")
      for (uint8_t& x : e.bytes) x = static_cast<uint8_t>(x + 8);
    return true;
  });
  const std::vector<float> l0 = logits(base), la = logits(a), lb = logits(b);
  EXPECT_EQ(la, lb);
  EXPECT_NE(la, l0);
  for (const std::string& d : {base, a, b}) fs::remove_all(d);
}

TEST(Nvfp4Loader, AttentionInBf16Variant) {
  const std::string dir = synth("attn", SynthOptions::Quant::kModelOpt, false);
  ThreadPool pool(1);
  cpu::CpuBackend be(pool);
  Model a(load_config(dir), Checkpoint::open_dir(dir), be);
  EXPECT_FALSE(a.weights().layers[0].q_proj.nvfp4());
  EXPECT_TRUE(a.weights().layers[0].gate_proj.nvfp4());
}

struct Corruption {
  const char* tag;
  SynthOptions::Quant q;
  std::function<bool(Edited&)> edit;
  const char* expect_tensor;  // the error must name this
  const char* expect_text;
};

TEST(Nvfp4Loader, CorruptionsAreNamed) {
  using Q = SynthOptions::Quant;
  const std::string q1 = "model.layers.1.self_attn.q_proj";
  const Corruption cases[] = {
      {"noscale", Q::kModelOpt, [&](Edited& e) { return e.name != q1 + ".weight_scale"; },
       "model.layers.1.self_attn.q_proj.weight_scale", "missing tensor"},
      {"nos2", Q::kModelOpt, [&](Edited& e) { return e.name != q1 + ".weight_scale_2"; },
       "model.layers.1.self_attn.q_proj.weight_scale_2", "missing tensor"},
      {"noinput", Q::kModelOpt, [&](Edited& e) { return e.name != q1 + ".input_scale"; },
       "model.layers.1.self_attn.q_proj.input_scale", "missing tensor"},
      {"ctglobal", Q::kCompressedTensors,
       [&](Edited& e) { return e.name != q1 + ".weight_global_scale"; },
       "model.layers.1.self_attn.q_proj.weight_global_scale", "missing tensor"},
      {"scaleshape", Q::kModelOpt,
       [&](Edited& e) {
         if (e.name == q1 + ".weight_scale") {
           e.shape[1] -= 1;
           e.bytes.resize(static_cast<size_t>(e.shape[0] * e.shape[1]));
         }
         return true;
       },
       "model.layers.1.self_attn.q_proj.weight_scale", "has shape"},
      {"scaledtype", Q::kCompressedTensors,
       [&](Edited& e) {
         if (e.name == q1 + ".weight_scale") e.dtype = DType::kU8;
         return true;
       },
       "model.layers.1.self_attn.q_proj.weight_scale", "dtype U8"},
      {"nanblock", Q::kModelOpt,
       [&](Edited& e) {
         if (e.name == q1 + ".weight_scale") e.bytes[5] = 0x7F;
         return true;
       },
       "model.layers.1.self_attn.q_proj.weight_scale", "NaN FP8 block scale"},
      {"nans2", Q::kModelOpt,
       [&](Edited& e) {
         if (e.name == q1 + ".weight_scale_2") {
           const float nan = std::nanf("");
           std::memcpy(e.bytes.data(), &nan, 4);
         }
         return true;
       },
       "model.layers.1.self_attn.q_proj.weight_scale_2", "invalid scale"},
      {"infct", Q::kCompressedTensors,
       [&](Edited& e) {
         if (e.name == q1 + ".input_global_scale") {
           const float inf = INFINITY;
           std::memcpy(e.bytes.data(), &inf, 4);
         }
         return true;
       },
       "model.layers.1.self_attn.q_proj.input_global_scale", "invalid scale"},
      {"packedshape", Q::kModelOpt,
       [&](Edited& e) {
         if (e.name == q1 + ".weight") {
           e.shape[1] += 1;  // K/2 + 1 packed bytes: not the config's K
           e.bytes.resize(static_cast<size_t>(e.shape[0] * e.shape[1]));
         }
         return true;
       },
       "model.layers.1.self_attn.q_proj.weight", "has shape"},
      {"densecodes", Q::kModelOpt,
       [&](Edited& e) {
         if (e.name == q1 + ".weight") e.dtype = DType::kBF16, e.shape[1] /= 2;
         return true;
       },
       "model.layers.1.self_attn.q_proj.weight", "U8 packed"},
  };
  for (const Corruption& c : cases) {
    const std::string dir = synth(c.tag, c.q);
    rewrite(dir, c.edit);
    const std::string err = load_error(dir);
    EXPECT_NE(err.find(c.expect_tensor), std::string::npos) << c.tag << ": " << err;
    EXPECT_NE(err.find(c.expect_text), std::string::npos) << c.tag << ": " << err;
    fs::remove_all(dir);
  }
}

TEST(Nvfp4Loader, OddKIsRejected) {
  // Quantize a module whose input width (P = 8) is not a multiple of 16 by dropping it from the
  // exclude list: the config now claims an impossible NVFP4 layout.
  const std::string dir = synth("oddk", SynthOptions::Quant::kModelOpt);
  json hf = json::parse(std::ifstream(dir + "/hf_quant_config.json"));
  json& ex = hf["quantization"]["exclude_modules"];
  json kept = json::array();
  for (const json& p : ex)
    if (p.get<std::string>().find("per_layer_projection") == std::string::npos) kept.push_back(p);
  ex = kept;
  json cfg = json::parse(std::ifstream(dir + "/config.json"));
  cfg.erase("quantization_config");  // hf_quant_config.json is then the description
  std::ofstream(dir + "/hf_quant_config.json") << hf.dump();
  std::ofstream(dir + "/config.json") << cfg.dump();
  const std::string err = load_error(dir);
  EXPECT_NE(err.find("model.layers.0.per_layer_projection"), std::string::npos) << err;
  EXPECT_NE(err.find("not a multiple of 16"), std::string::npos) << err;
  fs::remove_all(dir);
}

TEST(Nvfp4Loader, ZeroNanScalesFlagLoadsWithZeroedBlocks) {
  const std::string dir = synth("zero", SynthOptions::Quant::kModelOpt);
  const std::string q1 = "model.layers.1.self_attn.q_proj.weight_scale";
  rewrite(dir, [&](Edited& e) {
    if (e.name == q1) e.bytes[0] = 0xFF;
    return true;
  });
  EXPECT_NE(load_error(dir).find(q1), std::string::npos);
  EXPECT_EQ(load_error(dir, true), "");
  ThreadPool pool(1);
  cpu::CpuBackend be(pool);
  ModelOptions mo;
  mo.load.zero_bad_scales = true;
  Model m(load_config(dir), Checkpoint::open_dir(dir), be, mo);
  const Weight& w = m.weights().layers[1].q_proj;
  EXPECT_EQ(w.block_scale[0], 0);  // the NaN block reads as zero (a host copy)
  EXPECT_NE(w.block_scale[1], 0);
  fs::remove_all(dir);
}

TEST(Nvfp4Loader, KvScalesInBothNamingSchemes) {
  for (auto q : {SynthOptions::Quant::kModelOpt, SynthOptions::Quant::kCompressedTensors}) {
    const std::string dir = synth("kvs", q);
    const bool ct = q == SynthOptions::Quant::kCompressedTensors;
    const float ks = 0.25f, vs = 0.125f;
    // Append scales for layer 1 (ModelOpt: k_proj.k_scale 0-d; CT: self_attn.k_scale [1]).
    {
      auto f = SafetensorsFile::open(dir + "/model.safetensors");
      std::vector<TensorSource> out;
      for (const TensorInfo& t : f->tensors())
        out.push_back(tensor_from_memory(t.name, t.dtype, t.shape, t.data));
      const std::string a = "model.layers.1.self_attn.";
      const std::vector<int64_t> sh = ct ? std::vector<int64_t>{1} : std::vector<int64_t>{};
      out.push_back(
          tensor_from_memory(a + (ct ? "k_scale" : "k_proj.k_scale"), DType::kF32, sh, &ks));
      out.push_back(
          tensor_from_memory(a + (ct ? "v_scale" : "v_proj.v_scale"), DType::kF32, sh, &vs));
      write_safetensors(dir + "/model2.safetensors", out);
    }
    fs::rename(dir + "/model2.safetensors", dir + "/model.safetensors");
    ThreadPool pool(1);
    cpu::CpuBackend be(pool);
    Model m(load_config(dir), Checkpoint::open_dir(dir), be);
    EXPECT_TRUE(m.weights().layers[1].has_kv_scales);
    EXPECT_EQ(m.weights().layers[1].k_scale, ks);
    EXPECT_EQ(m.weights().layers[1].v_scale, vs);
    EXPECT_FALSE(m.weights().layers[0].has_kv_scales);
    EXPECT_EQ(m.weights().layers[0].k_scale, 1.0f);
    EXPECT_TRUE(m.weights().unused.empty());
    fs::remove_all(dir);
  }
}

}  // namespace
}  // namespace fc::gemma4
