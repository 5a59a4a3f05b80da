#include "model/gemma4/synth.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/half.h"
#include "core/thread_pool.h"
#include "io/safetensors.h"
#include "model/gemma4/config.h"
#include "model/gemma4/synth_audio.h"
#include "model/gemma4/synth_vision.h"

namespace fc::gemma4 {

using nlohmann::json;

json shape_config(const std::string& shape) {
  // Geometry from ../shared/spec/gemma4-architecture.md §1 (HF convert_gemma4_weights.py).
  json t;
  auto pattern = [](int L, int period) {
    json lt = json::array();
    for (int i = 0; i < L; ++i)
      lt.push_back((i + 1) % period == 0 ? "full_attention" : "sliding_attention");
    return lt;
  };
  t["model_type"] = "gemma4_text";
  t["vocab_size"] = 262144;
  t["head_dim"] = 256;
  t["global_head_dim"] = 512;
  t["rms_norm_eps"] = 1e-6;
  t["hidden_activation"] = "gelu_pytorch_tanh";
  t["final_logit_softcapping"] = 30.0;
  t["tie_word_embeddings"] = true;
  t["vocab_size_per_layer_input"] = 262144;
  t["rope_parameters"] = {
      {"sliding_attention", {{"rope_type", "default"}, {"rope_theta", 10000.0}}},
      {"full_attention",
       {{"rope_type", "proportional"},
        {"partial_rotary_factor", 0.25},
        {"rope_theta", 1000000.0}}}};
  t["pad_token_id"] = 0;
  t["bos_token_id"] = 2;
  t["eos_token_id"] = json::array({1, 106});
  if (shape == "e2b") {
    t.update({{"hidden_size", 1536},
              {"num_hidden_layers", 35},
              {"intermediate_size", 6144},
              {"use_double_wide_mlp", true},
              {"num_attention_heads", 8},
              {"num_key_value_heads", 1},
              {"attention_k_eq_v", false},
              {"sliding_window", 512},
              {"num_kv_shared_layers", 20},
              {"hidden_size_per_layer_input", 256},
              {"enable_moe_block", false},
              {"max_position_embeddings", 131072}});
    t["layer_types"] = pattern(35, 5);
  } else if (shape == "e4b") {
    t.update({{"hidden_size", 2560},
              {"num_hidden_layers", 42},
              {"intermediate_size", 10240},
              {"use_double_wide_mlp", false},
              {"num_attention_heads", 8},
              {"num_key_value_heads", 2},
              {"attention_k_eq_v", false},
              {"sliding_window", 512},
              {"num_kv_shared_layers", 18},
              {"hidden_size_per_layer_input", 256},
              {"enable_moe_block", false},
              {"max_position_embeddings", 131072}});
    t["layer_types"] = pattern(42, 6);
  } else if (shape == "26b-a4b") {
    t.update({{"hidden_size", 2816},
              {"num_hidden_layers", 30},
              {"intermediate_size", 2112},
              {"num_attention_heads", 16},
              {"num_key_value_heads", 8},
              {"num_global_key_value_heads", 2},
              {"attention_k_eq_v", true},
              {"sliding_window", 1024},
              {"num_kv_shared_layers", 0},
              {"hidden_size_per_layer_input", 0},
              {"enable_moe_block", true},
              {"num_experts", 128},
              {"top_k_experts", 8},
              {"moe_intermediate_size", 704},
              {"max_position_embeddings", 262144},
              {"use_bidirectional_attention", "vision"}});
    t["layer_types"] = pattern(30, 6);
  } else if (shape == "31b") {
    t.update({{"hidden_size", 5376},
              {"num_hidden_layers", 60},
              {"intermediate_size", 21504},
              {"num_attention_heads", 32},
              {"num_key_value_heads", 16},
              {"num_global_key_value_heads", 4},
              {"attention_k_eq_v", true},
              {"sliding_window", 1024},
              {"num_kv_shared_layers", 0},
              {"hidden_size_per_layer_input", 0},
              {"enable_moe_block", false},
              {"max_position_embeddings", 262144},
              {"use_bidirectional_attention", "vision"}});
    t["layer_types"] = pattern(60, 6);
  } else {
    fail("synth: unknown shape '", shape, "' (e2b, e4b, 26b-a4b, 31b or a config.json path)");
  }
  json root;
  root["architectures"] = json::array({"Gemma4ForConditionalGeneration"});
  root["model_type"] = "gemma4";
  root["text_config"] = t;
  root["vision_config"] = synth_vision_config(shape);
  root["audio_config"] = nullptr;
  add_multimodal_ids(root);
  root["tie_word_embeddings"] = true;
  if (shape == "e2b" || shape == "e4b") add_audio_config(root);  // E models carry the audio tower
  return root;
}

namespace {

// Counter-based generator: value i of tensor `salt` depends only on (seed, salt, i), so shards
// can be filled in any order and chunk size.
inline uint64_t mix(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

TensorSource random_bf16(const std::string& name, std::vector<int64_t> shape, uint64_t salt,
                         float center, float half_width) {
  TensorSource t;
  t.name = name;
  t.dtype = DType::kBF16;
  t.shape = std::move(shape);
  t.fill = [salt, center, half_width](uint8_t* dst, uint64_t offset, uint64_t len) {
    uint16_t* out = reinterpret_cast<uint16_t*>(dst);
    const uint64_t first = offset / 2;
    for (uint64_t i = 0; i < len / 2; ++i) {
      const uint64_t r = mix(salt ^ mix(first + i));
      const float u = static_cast<float>(r >> 40) * (1.0f / 16777216.0f);  // [0, 1)
      out[i] = f32_to_bf16(center + (2.0f * u - 1.0f) * half_width);
    }
  };
  return t;
}

// Uniform random bytes in [lo, hi] (packed E2M1 codes: 0..255; FP8 scales: a range of codes).
TensorSource random_u8(const std::string& name, DType dtype, std::vector<int64_t> shape,
                       uint64_t salt, uint8_t lo, uint8_t hi) {
  TensorSource t;
  t.name = name;
  t.dtype = dtype;
  t.shape = std::move(shape);
  t.fill = [salt, lo, hi](uint8_t* dst, uint64_t offset, uint64_t len) {
    const uint64_t span = uint64_t{hi} - lo + 1;
    for (uint64_t i = 0; i < len; ++i)
      dst[i] = static_cast<uint8_t>(lo + mix(salt ^ mix(offset + i)) % span);
  };
  return t;
}

TensorSource f32_scalar(const std::string& name, std::vector<int64_t> shape, float v) {
  TensorSource t;
  t.name = name;
  t.dtype = DType::kF32;
  t.shape = std::move(shape);
  t.fill = [v](uint8_t* dst, uint64_t offset, uint64_t len) {
    for (uint64_t i = 0; i < len; i += 4) std::memcpy(dst + i, &v, 4);
  };
  return t;
}

// Quantization description files of a synthetic NVFP4 checkpoint.
// `dense`: linear modules left in BF16 because their input width is not a multiple of 16.
void add_quant_config(json& config, const std::string& dir, const SynthOptions& opt,
                      const std::vector<std::string>& dense) {
  using Q = SynthOptions::Quant;
  const bool modelopt = opt.quant == Q::kModelOpt;
  std::vector<std::string> exclude = {"lm_head", "*router*", "*vision*", "*audio*"};
  if (!opt.quantize_attention) exclude.push_back("*self_attn*");
  exclude.insert(exclude.end(), dense.begin(), dense.end());
  if (modelopt) {
    const json hf = {{"producer", {{"name", "modelopt"}, {"version", "fourcast-synth"}}},
                     {"quantization",
                      {{"quant_algo", opt.input_scales ? "NVFP4" : "W4A16_NVFP4"},
                       {"group_size", 16},
                       {"kv_cache_quant_algo", nullptr},
                       {"exclude_modules", exclude}}}};
    std::ofstream f(dir + "/hf_quant_config.json");
    f << hf.dump(2) << "\n";
    if (!f) fail("synth: cannot write ", dir, "/hf_quant_config.json");
    json group = {
        {"weights", {{"dynamic", false}, {"num_bits", 4}, {"type", "float"}, {"group_size", 16}}},
        {"targets", {"Linear"}}};
    if (opt.input_scales)
      group["input_activations"] = {
          {"dynamic", false}, {"num_bits", 4}, {"type", "float"}, {"group_size", 16}};
    config["quantization_config"] = {{"config_groups", {{"group_0", group}}},
                                     {"ignore", exclude},
                                     {"quant_algo", hf["quantization"]["quant_algo"]},
                                     {"kv_cache_scheme", nullptr},
                                     {"producer", hf["producer"]},
                                     {"quant_method", "modelopt"}};
    return;
  }
  std::vector<std::string> ignore = {"lm_head", "re:.*router.*", "re:.*vision.*", "re:.*audio.*"};
  if (!opt.quantize_attention) ignore.push_back("re:.*self_attn.*");
  ignore.insert(ignore.end(), dense.begin(), dense.end());
  const json args = {{"num_bits", 4},       {"type", "float"},   {"strategy", "tensor_group"},
                     {"group_size", 16},    {"symmetric", true}, {"dynamic", false},
                     {"observer", "minmax"}};
  json group = {{"targets", {"Linear"}}, {"weights", args}, {"output_activations", nullptr}};
  if (opt.input_scales) {
    group["input_activations"] = args;
    group["input_activations"]["dynamic"] = "local";
  } else {
    group["input_activations"] = nullptr;
  }
  config["quantization_config"] = {{"quant_method", "compressed-tensors"},
                                   {"format", "nvfp4-pack-quantized"},
                                   {"quantization_status", "compressed"},
                                   {"config_groups", {{"group_0", group}}},
                                   {"ignore", ignore},
                                   {"kv_cache_scheme", nullptr}};
}

}  // namespace

uint64_t synth_mix(uint64_t z) {
  return mix(z);
}

TensorSource synth_random_bf16(const std::string& name, std::vector<int64_t> shape, uint64_t salt,
                               float center, float half_width) {
  return random_bf16(name, std::move(shape), salt, center, half_width);
}

int64_t write_synthetic(const json& config, const std::string& dir, const SynthOptions& opt) {
  const Config c = parse_config(config, "synth config");
  const int64_t H = c.hidden_size, V = c.vocab_size, L = c.num_hidden_layers;
  const int64_t P = c.hidden_size_per_layer_input, Hq = c.num_attention_heads;
  const float hw = opt.weight_std * std::sqrt(3.0f);  // uniform half-width for that std
  std::vector<TensorSource> ts;
  int64_t params = 0;
  uint64_t salt = mix(opt.seed);
  auto add = [&](const std::string& rel, std::vector<int64_t> shape, float center, float half) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    params += n;
    ts.push_back(
        random_bf16(c.tensor_prefix + rel, std::move(shape), salt = mix(salt), center, half));
  };
  auto matrix = [&](const std::string& rel, int64_t rows, int64_t cols) {
    add(rel, {rows, cols}, 0.0f, hw);
  };
  // A linear module: BF16, or NVFP4 with the same weight std. Uniform codes have rms
  // sqrt(68.5/8) ≈ 2.93; block scales are uniform over e4m3 [0.5, 1] (codes 0x30..0x38, rms ≈
  // 0.76).
  const bool quant = opt.quant != SynthOptions::Quant::kNone;
  const bool ct = opt.quant == SynthOptions::Quant::kCompressedTensors;
  const float s2 = opt.weight_std / (2.93f * 0.76f);
  const float in_scale = 8.0f / 2688.0f;  // activation amax 8
  std::vector<std::string> dense;         // quantizable modules left dense (input width % 16 != 0)
  auto linear = [&](const std::string& rel, int64_t rows, int64_t cols, bool quantize) {
    const std::string m = c.tensor_prefix + rel;
    if (quant && quantize && cols % 16 != 0) dense.push_back(m);
    if (!quant || !quantize || cols % 16 != 0) return matrix(rel + ".weight", rows, cols);
    params += rows * cols;
    ts.push_back(random_u8(m + (ct ? ".weight_packed" : ".weight"), DType::kU8, {rows, cols / 2},
                           salt = mix(salt), 0, 255));
    ts.push_back(random_u8(m + ".weight_scale", DType::kF8_E4M3, {rows, cols / 16},
                           salt = mix(salt), 0x30, 0x38));
    if (ct) {
      ts.push_back(f32_scalar(m + ".weight_global_scale", {1}, 1.0f / s2));
      if (opt.input_scales)
        ts.push_back(f32_scalar(m + ".input_global_scale", {1}, 1.0f / in_scale));
    } else {
      ts.push_back(f32_scalar(m + ".weight_scale_2", {}, s2));
      if (opt.input_scales) ts.push_back(f32_scalar(m + ".input_scale", {}, in_scale));
    }
  };
  const bool qa = opt.quantize_attention;
  auto norm = [&](const std::string& rel, int64_t n) { add(rel, {n}, 1.0f, 0.1f); };
  matrix("embed_tokens.weight", V, H);
  if (!opt.used_ids.empty()) {
    // Damp the rows of ids the tokenizer does not have (see SynthOptions::used_ids).
    std::vector<bool> used(static_cast<size_t>(V), false);
    for (int32_t id : opt.used_ids)
      if (id >= 0 && id < V) used[static_cast<size_t>(id)] = true;
    auto inner = ts.back().fill;
    ts.back().fill = [inner, used = std::move(used), H](uint8_t* dst, uint64_t offset,
                                                        uint64_t len) {
      inner(dst, offset, len);
      uint16_t* v = reinterpret_cast<uint16_t*>(dst);
      for (uint64_t i = 0; i < len / 2; ++i) {
        const uint64_t row = (offset / 2 + i) / static_cast<uint64_t>(H);
        if (!used[row]) v[i] = f32_to_bf16(0.01f * bf16_to_f32(v[i]));
      }
    };
  }
  norm("norm.weight", H);
  if (P > 0) {
    matrix("embed_tokens_per_layer.weight", c.vocab_size_per_layer_input, L * P);
    linear("per_layer_model_projection", L * P, H, true);
    norm("per_layer_projection_norm.weight", P);
  }
  for (int i = 0; i < L; ++i) {
    const LayerSpec& s = c.layers[static_cast<size_t>(i)];
    const std::string p = "layers." + std::to_string(i) + ".";
    const int64_t D = s.head_dim, Hkv = s.num_kv_heads, I = s.intermediate;
    for (const char* n : {"input_layernorm", "post_attention_layernorm",
                          "pre_feedforward_layernorm", "post_feedforward_layernorm"})
      norm(p + n + ".weight", H);
    linear(p + "self_attn.q_proj", Hq * D, H, qa);
    norm(p + "self_attn.q_norm.weight", D);
    linear(p + "self_attn.o_proj", H, Hq * D, qa);
    if (!s.kv_shared) {
      linear(p + "self_attn.k_proj", Hkv * D, H, qa);
      norm(p + "self_attn.k_norm.weight", D);
      if (s.has_v_proj) linear(p + "self_attn.v_proj", Hkv * D, H, qa);
    }
    linear(p + "mlp.gate_proj", I, H, true);
    linear(p + "mlp.up_proj", I, H, true);
    linear(p + "mlp.down_proj", H, I, true);
    add(p + "layer_scalar", {1}, 1.0f, 0.0f);
    if (P > 0) {
      linear(p + "per_layer_input_gate", P, H, true);
      linear(p + "per_layer_projection", H, P, true);
      norm(p + "post_per_layer_input_norm.weight", H);
    }
    if (c.enable_moe_block) {
      const int64_t E = c.num_experts, Im = c.moe_intermediate_size;
      matrix(p + "router.proj.weight", E, H);
      norm(p + "router.scale", H);
      norm(p + "router.per_expert_scale", E);
      if (quant) {
        for (int64_t e = 0; e < E; ++e) {
          const std::string x = p + "experts." + std::to_string(e) + ".";
          linear(x + "gate_proj", Im, H, true);
          linear(x + "up_proj", Im, H, true);
          linear(x + "down_proj", H, Im, true);
        }
      } else {
        add(p + "experts.gate_up_proj", {E, 2 * Im, H}, 0.0f, hw);
        add(p + "experts.down_proj", {E, H, Im}, 0.0f, hw);
      }
      for (const char* n : {"pre_feedforward_layernorm_2", "post_feedforward_layernorm_1",
                            "post_feedforward_layernorm_2"})
        norm(p + n + ".weight", H);
    }
  }
  params += add_synth_vision(c, opt.weight_std, salt, ts);  // BF16: excluded from NVFP4
  params += add_audio_tensors(config, c.hidden_size, opt.weight_std, salt, ts);
  std::filesystem::create_directories(dir);
  json written = config;
  if (quant) add_quant_config(written, dir, opt, dense);
  {
    std::ofstream f(dir + "/config.json");
    f << written.dump(2) << "\n";
    std::ofstream g(dir + "/generation_config.json");
    g << json{{"bos_token_id", c.bos_token_id},
              {"eos_token_id", c.eos_token_ids},
              {"pad_token_id", c.pad_token_id},
              {"do_sample", true},
              {"temperature", 1.0},
              {"top_k", 64},
              {"top_p", 0.95}}
             .dump(2)
      << "\n";
    if (!f || !g) fail("synth: cannot write config files in ", dir);
  }
  // Every fill here is a pure function of (tensor, byte offset) (synth_mix counters), so each
  // chunk the writer asks for is filled by several threads at once, in 1 MiB pieces (a multiple
  // of every element and block size).
  if (opt.threads > 1) {
    auto pool = std::make_shared<ThreadPool>(opt.threads);
    for (TensorSource& t : ts) {
      t.fill = [pool, inner = t.fill](uint8_t* dst, uint64_t off, uint64_t len) {
        constexpr uint64_t kPiece = uint64_t{1} << 20;
        const int64_t pieces = static_cast<int64_t>((len + kPiece - 1) / kPiece);
        pool->parallel_for(pieces, 1, [&](int64_t b, int64_t e, int) {
          for (int64_t i = b; i < e; ++i) {
            const uint64_t o = static_cast<uint64_t>(i) * kPiece;
            inner(dst + o, off + o, std::min(kPiece, len - o));
          }
        });
      };
    }
  }
  write_checkpoint(dir, ts, opt.max_shard_bytes, {{"format", "pt"}, {"fourcast_synth", "1"}});
  return params;
}

}  // namespace fc::gemma4
