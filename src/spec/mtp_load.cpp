// MtpDrafter loading: the gemma4_assistant config (HF Gemma4AssistantConfig, transformers 5.23
// models/gemma4_assistant/configuration_gemma4_assistant.py), its tensors (spec weight-formats
// §6.6 table) and the checks that the assistant fits the target whose KV it reads.
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/half.h"
#include "core/json_limits.h"
#include "spec/mtp.h"
#include "spec/mtp_internal.h"

namespace fc::spec {

using gemma4::LayerType;
using nlohmann::json;

namespace {

json read_json(const std::string& path) {
  return read_json_file(path);
}

int get_int(const json& j, const char* key, int dflt, int min_value, const std::string& where) {
  if (!j.contains(key) || j[key].is_null()) return dflt;
  if (!j[key].is_number_integer()) fail(where, ": key '", key, "' must be an integer");
  const int64_t v = j[key].get<int64_t>();
  if (v < min_value || v > (int64_t{1} << 31) - 1)
    fail(where, ": key '", key, "' = ", v, " is out of range (min ", min_value, ")");
  return static_cast<int>(v);
}

bool get_bool(const json& j, const char* key, bool dflt, const std::string& where) {
  if (!j.contains(key) || j[key].is_null()) return dflt;
  if (!j[key].is_boolean()) fail(where, ": key '", key, "' must be true or false");
  return j[key].get<bool>();
}

float host_scalar(const TensorInfo& t) {
  if (t.dtype == DType::kF32) {
    float v;
    std::memcpy(&v, t.data, 4);
    return v;
  }
  uint16_t h;
  std::memcpy(&h, t.data, 2);
  return t.dtype == DType::kBF16 ? bf16_to_f32(h) : f16_to_f32(h);
}

// A dense float tensor of exactly `shape` ([1] also accepts a 0-d scalar), made usable by `be`.
const TensorInfo& need(const Checkpoint& ck, const std::string& name, std::vector<int64_t> shape) {
  const TensorInfo* t = ck.find(name);
  if (!t) fail("missing tensor ", name, " in ", ck.dir(), " (required by the assistant config)");
  if (t->dtype != DType::kF32 && t->dtype != DType::kBF16 && t->dtype != DType::kF16)
    fail("tensor ", name, " in ", t->file, " has dtype ", dtype_name(t->dtype),
         "; assistant weights must be F32, BF16 or F16");
  const bool scalar_ok = shape == std::vector<int64_t>{1} && t->shape.empty();
  if (t->shape != shape && !scalar_ok)
    fail("tensor ", name, " in ", t->file, " has shape ", shape_str(t->shape), ", expected ",
         shape_str(shape));
  return *t;
}

Weight bind(const Checkpoint& ck, Backend& be, const std::string& name,
            std::vector<int64_t> shape) {
  const TensorInfo& t = need(ck, name, shape);
  Weight w;
  w.data = t.data;
  w.dtype = t.dtype;
  w.name = t.name;
  w.rows = shape.size() == 2 ? shape[0] : 1;
  w.cols = shape.back();
  w.ld = w.cols;
  return be.upload(w);
}

}  // namespace

MtpConfig load_mtp_config(const std::string& dir) {
  const std::string path = dir + "/config.json";
  const json root = read_json(path);
  if (!root.is_object()) fail(path, ": config must be a JSON object");
  const std::string type = root.value("model_type", "");
  if (type != "gemma4_assistant")
    fail(path, ": model_type '", type, "' is not a Gemma 4 MTP assistant (gemma4_assistant)");
  if (!root.contains("text_config") || !root["text_config"].is_object())
    fail(path, ": a gemma4_assistant config needs a text_config object");
  if (root.contains("quantization_config"))
    fail(path, ": quantized assistants are not supported (quantization_config present)");
  MtpConfig c;
  c.backbone_hidden_size = get_int(root, "backbone_hidden_size", 1536, 1, path);
  c.use_ordered_embeddings = get_bool(root, "use_ordered_embeddings", false, path);
  c.num_centroids = get_int(root, "num_centroids", 2048, 1, path);
  c.centroid_intermediate_top_k = get_int(root, "centroid_intermediate_top_k", 32, 1, path);
  c.tie_word_embeddings = get_bool(root, "tie_word_embeddings", true, path);

  // Every assistant layer is KV-shared (HF sets num_kv_shared_layers = num_hidden_layers when 0
  // and requires it); the text parser sees 0 so that it derives plain per-layer geometry.
  json text = root["text_config"];
  const std::string where = path + ": text_config";
  const int L = get_int(text, "num_hidden_layers", 30, 1, where);
  const int shared = get_int(text, "num_kv_shared_layers", 0, 0, where);
  if (shared != 0 && shared != L)
    fail(where, ": num_kv_shared_layers = ", shared, " but every assistant layer must be shared (",
         L, ")");
  text["num_kv_shared_layers"] = 0;
  c.text = gemma4::parse_config(text, where);
  if (c.text.hidden_size_per_layer_input != 0)
    fail(where, ": hidden_size_per_layer_input must be 0 for an assistant, got ",
         c.text.hidden_size_per_layer_input);
  if (c.text.vocab_size_per_layer_input != 0)
    fail(where, ": vocab_size_per_layer_input must be 0 for an assistant, got ",
         c.text.vocab_size_per_layer_input);
  if (c.text.enable_moe_block) fail(where, ": enable_moe_block must be false for an assistant");
  if (c.text.use_double_wide_mlp) fail(where, ": use_double_wide_mlp must be false");
  if (c.use_ordered_embeddings) {
    if (c.text.vocab_size % c.num_centroids != 0)
      fail(path, ": vocab_size ", c.text.vocab_size, " is not a multiple of num_centroids ",
           c.num_centroids);
    if (c.centroid_intermediate_top_k > c.num_centroids)
      fail(path, ": centroid_intermediate_top_k ", c.centroid_intermediate_top_k,
           " > num_centroids ", c.num_centroids);
  }

  const std::string gpath = dir + "/generation_config.json";
  if (std::filesystem::exists(gpath)) {
    const json g = read_json(gpath);
    if (g.contains("suppress_tokens") && !g["suppress_tokens"].is_null()) {
      const json& s = g["suppress_tokens"];
      if (!s.is_array()) fail(gpath, ": suppress_tokens must be a list of token ids");
      for (const json& x : s) {
        if (!x.is_number_integer() || x.get<int64_t>() < 0 || x.get<int64_t>() >= c.text.vocab_size)
          fail(gpath, ": suppress_tokens entry ", x.dump(), " is not a token id in [0, ",
               c.text.vocab_size, ")");
        c.suppress_tokens.push_back(x.get<int32_t>());
      }
    }
  }
  return c;
}

void MtpDrafter::bind(const Checkpoint& ck) {
  const gemma4::Config& t = cfg_.text;
  const int64_t Hd = t.hidden_size, Ht = cfg_.backbone_hidden_size, V = t.vocab_size;
  const int64_t Hq = t.num_attention_heads;
  pre_projection_ = spec::bind(ck, be_, "pre_projection.weight", {Hd, 2 * Ht});
  post_projection_ = spec::bind(ck, be_, "post_projection.weight", {Ht, Hd});
  norm_ = spec::bind(ck, be_, "model.norm.weight", {Hd});
  lm_head_ = cfg_.tie_word_embeddings ? spec::bind(ck, be_, "model.embed_tokens.weight", {V, Hd})
                                      : spec::bind(ck, be_, "lm_head.weight", {V, Hd});
  for (int i = 0; i < t.num_hidden_layers; ++i) {
    const gemma4::LayerSpec& s = t.layers[static_cast<size_t>(i)];
    const std::string p = "model.layers." + std::to_string(i) + ".";
    const int64_t D = s.head_dim, I = s.intermediate;
    Layer& l = layers_[static_cast<size_t>(i)];  // type, geometry and source set by check_pair
    l.input_layernorm = spec::bind(ck, be_, p + "input_layernorm.weight", {Hd});
    l.post_attention_layernorm = spec::bind(ck, be_, p + "post_attention_layernorm.weight", {Hd});
    l.pre_feedforward_layernorm = spec::bind(ck, be_, p + "pre_feedforward_layernorm.weight", {Hd});
    l.post_feedforward_layernorm =
        spec::bind(ck, be_, p + "post_feedforward_layernorm.weight", {Hd});
    l.q_proj = spec::bind(ck, be_, p + "self_attn.q_proj.weight", {Hq * D, Hd});
    l.q_norm = spec::bind(ck, be_, p + "self_attn.q_norm.weight", {D});
    l.o_proj = spec::bind(ck, be_, p + "self_attn.o_proj.weight", {Hd, Hq * D});
    l.gate_proj = spec::bind(ck, be_, p + "mlp.gate_proj.weight", {I, Hd});
    l.up_proj = spec::bind(ck, be_, p + "mlp.up_proj.weight", {I, Hd});
    l.down_proj = spec::bind(ck, be_, p + "mlp.down_proj.weight", {Hd, I});
    l.layer_scalar = host_scalar(need(ck, p + "layer_scalar", {1}));
  }
  if (cfg_.use_ordered_embeddings) {
    centroids_ = spec::bind(ck, be_, "masked_embedding.centroids.weight", {cfg_.num_centroids, Hd});
    const std::string name = "masked_embedding.token_ordering";
    const TensorInfo* o = ck.find(name);
    if (!o) fail("missing tensor ", name, " in ", ck.dir(), " (use_ordered_embeddings is true)");
    if ((o->dtype != DType::kI64 && o->dtype != DType::kI32) || o->shape != std::vector<int64_t>{V})
      fail("tensor ", name, " in ", o->file, " is ", dtype_name(o->dtype), " ", shape_str(o->shape),
           ", expected I64 ", shape_str({V}));
    token_ordering_.resize(static_cast<size_t>(V));
    for (int64_t i = 0; i < V; ++i) {
      int64_t x = 0;
      if (o->dtype == DType::kI64) {
        std::memcpy(&x, o->data + 8 * i, 8);
      } else {
        int32_t y;
        std::memcpy(&y, o->data + 4 * i, 4);
        x = y;
      }
      if (x < 0 || x >= V)
        fail("tensor ", name, " in ", o->file, ": entry ", i, " = ", x,
             " is not a token id in [0, ", V, ")");
      token_ordering_[static_cast<size_t>(i)] = static_cast<int32_t>(x);
    }
  }
}

void MtpDrafter::check_pair() {
  const gemma4::Config& a = cfg_.text;
  const gemma4::Config& t = target_.config();
  const std::string who = "MTP assistant " + ckpt_->dir();
  if (cfg_.backbone_hidden_size != t.hidden_size)
    fail(who, ": backbone_hidden_size ", cfg_.backbone_hidden_size,
         " does not match the target's hidden_size ", t.hidden_size,
         " (the assistant was trained for another target)");
  if (a.vocab_size != t.vocab_size)
    fail(who, ": vocab_size ", a.vocab_size, " differs from the target's ", t.vocab_size);
  layers_.resize(a.layers.size());
  for (size_t i = 0; i < layers_.size(); ++i) {
    Layer& l = layers_[i];
    l.type = a.layers[i].type;
    l.head_dim = a.layers[i].head_dim;
    l.num_kv_heads = a.layers[i].num_kv_heads;
    // The last non-KV-shared target layer of the same type (HF kv_sharing_modes "store").
    for (int j = t.first_kv_shared_layer() - 1; j >= 0; --j)
      if (t.layers[static_cast<size_t>(j)].type == l.type) {
        l.src = j;
        break;
      }
    if (l.src < 0)
      fail(who, ": layer ", i, " is ", gemma4::layer_type_name(l.type),
           " but the target has no KV-owning layer of that type");
    const gemma4::LayerSpec& s = t.layers[static_cast<size_t>(l.src)];
    if (s.head_dim != l.head_dim || s.num_kv_heads != l.num_kv_heads)
      fail(who, ": layer ", i, " (", gemma4::layer_type_name(l.type), ") expects K/V of ",
           l.num_kv_heads, " heads x ", l.head_dim, " but target layer ", l.src, " has ",
           s.num_kv_heads, " heads x ", s.head_dim);
    if (l.type == LayerType::kSliding && a.sliding_window != t.sliding_window)
      fail(who, ": sliding_window ", a.sliding_window, " differs from the target's ",
           t.sliding_window);
    l.group = kv_.group_of(l.src);
    if (l.group < 0) fail(who, ": target layer ", l.src, " owns no KV storage");
  }
}

MtpDrafter::MtpDrafter(const std::string& assistant_dir, const gemma4::Model& target,
                       const kv::KVStorage& target_kv, Backend& backend, MtpOptions options)
    : cfg_(load_mtp_config(assistant_dir)),
      ckpt_(Checkpoint::open_dir(assistant_dir)),
      target_(target),
      kv_(target_kv),
      be_(backend),
      opt_(options) {
  check_pair();  // from the configs alone: refuses a mismatched pair before reading tensors
  bind(*ckpt_);
  // RoPE frequencies per layer type, from the assistant's own rope parameters (as HF's rotary
  // embedding of the assistant model computes them) and the head_dim of that type's layers.
  for (int ti = 0; ti < 2; ++ti) {
    const LayerType type = ti == 0 ? LayerType::kSliding : LayerType::kFull;
    for (const Layer& l : layers_) {
      if (l.type != type) continue;
      const std::vector<float> f = gemma4::rope_inv_freq(cfg_.text.rope(type), l.head_dim);
      inv_freq_dev_[ti] = static_cast<float*>(be_.alloc(f.size() * sizeof(float)));
      be_.to_device(inv_freq_dev_[ti], f.data(), f.size() * sizeof(float));
      break;
    }
  }
  scratch_ = std::make_unique<Scratch>(be_);
}

MtpDrafter::~MtpDrafter() {
  for (float* p : inv_freq_dev_)
    if (p) be_.free(p);
}

int MtpDrafter::source_layer(int i) const {
  return layers_.at(static_cast<size_t>(i)).src;
}

}  // namespace fc::spec
