#include "model/gemma4/synth_drafters.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <numeric>
#include <thread>

#include "core/error.h"
#include "core/half.h"
#include "io/safetensors.h"
#include "model/gemma4/synth.h"

namespace fc::gemma4 {

using nlohmann::json;

namespace {

namespace fs = std::filesystem;

// FNV-1a of a tensor name: a per-tensor noise stream that does not depend on write order.
uint64_t name_hash(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

// fn(begin, end) over [0, n) on up to 16 threads (noise fills of multi-GB tensors are CPU-bound).
template <typename Fn>
void parallel_range(uint64_t n, Fn fn) {
  const uint64_t threads =
      std::min<uint64_t>({16, std::max(1u, std::thread::hardware_concurrency()), n / 65536 + 1});
  if (threads <= 1) return fn(uint64_t{0}, n);
  std::vector<std::thread> pool;
  const uint64_t step = (n + threads - 1) / threads;
  for (uint64_t b = 0; b < n; b += step) pool.emplace_back(fn, b, std::min(n, b + step));
  for (std::thread& t : pool) t.join();
}

bool is_dense_float(DType t) {
  return t == DType::kF32 || t == DType::kBF16 || t == DType::kF16;
}

float load_elem(DType t, const uint8_t* p) {
  if (t == DType::kF32) {
    float v;
    std::memcpy(&v, p, 4);
    return v;
  }
  uint16_t h;
  std::memcpy(&h, p, 2);
  return t == DType::kBF16 ? bf16_to_f32(h) : f16_to_f32(h);
}

void store_elem(DType t, uint8_t* p, float v) {
  if (t == DType::kF32) return (void)std::memcpy(p, &v, 4);
  const uint16_t h = t == DType::kBF16 ? f32_to_bf16(v) : f32_to_f16(v);
  std::memcpy(p, &h, 2);
}

bool ends_with(const std::string& s, const char* suffix) {
  const size_t n = std::strlen(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

// Quantization metadata stored as float tensors (NVFP4 global / activation / KV scales, AWQ
// smoothing): copied unchanged by the noisy copy, which perturbs weights only.
bool is_quant_aux(const std::string& n) {
  for (const char* s : {".weight_scale", ".weight_scale_2", ".input_scale", ".weight_global_scale",
                        ".input_global_scale", ".k_scale", ".v_scale", ".pre_quant_scale"})
    if (ends_with(n, s)) return true;
  return false;
}

// Packed E2M1 codes (two per byte): ModelOpt `.weight` U8, compressed-tensors `.weight_packed`.
bool is_packed_fp4(const TensorInfo& t) {
  return t.dtype == DType::kU8 &&
         (ends_with(t.name, ".weight") || ends_with(t.name, ".weight_packed"));
}

// Standard normal value number i of stream `salt` (Box-Muller on two 24-bit uniforms).
inline float gauss(uint64_t salt, uint64_t i) {
  const uint64_t r = synth_mix(salt ^ synth_mix(i));
  const float u1 = (static_cast<float>(r >> 40) + 0.5f) * (1.0f / 16777216.0f);  // (0, 1)
  const float u2 = static_cast<float>((r >> 16) & 0xffffff) * (1.0f / 16777216.0f);
  return std::sqrt(-2.0f * std::log(u1)) * std::cos(6.28318530718f * u2);
}

double tensor_rms(const TensorInfo& t) {
  const uint64_t es = static_cast<uint64_t>(dtype_bits(t.dtype)) / 8;
  std::mutex mu;
  double sum = 0.0;
  parallel_range(t.numel, [&](uint64_t b, uint64_t e) {
    double s = 0.0;
    for (uint64_t i = b; i < e; ++i) {
      const double v = load_elem(t.dtype, t.data + i * es);
      s += v * v;
    }
    std::lock_guard<std::mutex> lock(mu);
    sum += s;
  });
  return t.numel ? std::sqrt(sum / static_cast<double>(t.numel)) : 0.0;
}

void write_json(const std::string& path, const json& j) {
  std::ofstream f(path);
  f << j.dump(2) << "\n";
  if (!f) fail("synth: cannot write ", path);
}

// Accumulates random BF16 tensors: weights uniform with std 1/sqrt(fan_in) (so a layer's output
// stays O(1) for O(1) inputs), norms uniform in 1 +- 0.1.
struct RandomTensors {
  uint64_t salt;
  std::vector<TensorSource> ts;
  int64_t params = 0;

  void add(const std::string& name, std::vector<int64_t> shape, float center, float half) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    params += n;
    ts.push_back(synth_random_bf16(name, std::move(shape), salt = synth_mix(salt), center, half));
  }
  void linear(const std::string& name, int64_t rows, int64_t cols) {
    add(name, {rows, cols}, 0.0f, std::sqrt(3.0f / static_cast<float>(cols)));
  }
  void norm(const std::string& name, int64_t n) { add(name, {n}, 1.0f, 0.1f); }
  // An integer / bool tensor held in memory by the fill closure.
  template <typename T>
  void host(const std::string& name, DType dtype, std::vector<T> v) {
    TensorSource t;
    t.name = name;
    t.dtype = dtype;
    t.shape = {static_cast<int64_t>(v.size())};
    auto data = std::make_shared<std::vector<T>>(std::move(v));
    t.fill = [data](uint8_t* dst, uint64_t off, uint64_t len) {
      std::memcpy(dst, reinterpret_cast<const uint8_t*>(data->data()) + off, len);
    };
    ts.push_back(std::move(t));
  }
};

json generation_config(const Config& t) {
  return {{"bos_token_id", t.bos_token_id},
          {"eos_token_id", t.eos_token_ids},
          {"pad_token_id", t.pad_token_id}};
}

// The last KV-owning target layer of a type (the one an assistant layer of that type reads), or
// -1 when the target has none.
int source_layer(const Config& t, LayerType type) {
  for (int j = t.first_kv_shared_layer() - 1; j >= 0; --j)
    if (t.layers[static_cast<size_t>(j)].type == type) return j;
  return -1;
}

json rope_json(const RopeConfig& r) {
  json j = {{"rope_type", r.type}, {"rope_theta", r.theta}};
  if (r.type == "proportional") {
    j["partial_rotary_factor"] = r.partial_rotary_factor;
    if (r.factor != 1.0) j["factor"] = r.factor;
  }
  return j;
}

}  // namespace

CopyReport write_copy(const std::string& src_dir, const std::string& out_dir,
                      const CopyOptions& opt) {
  if (!(opt.noise >= 0.0 && opt.noise <= 1.0))
    fail("synth --copy-of: --noise ", opt.noise, " must be in [0, 1]");
  if (fs::exists(out_dir) && fs::equivalent(src_dir, out_dir))
    fail("synth --copy-of: the output directory is the source directory ", src_dir);
  std::shared_ptr<const Checkpoint> ck = Checkpoint::open_dir(src_dir);
  CopyReport rep;
  std::vector<TensorSource> ts;
  const float sigma = static_cast<float>(opt.noise);
  for (const TensorInfo* t : ck->all()) {
    TensorSource s;
    s.name = t->name;
    s.dtype = t->dtype;
    s.shape = t->shape;
    ++rep.tensors;
    rep.bytes += t->nbytes;
    const uint64_t salt = synth_mix(opt.seed ^ synth_mix(name_hash(t->name)));
    if (sigma > 0 && is_dense_float(t->dtype) && !is_quant_aux(t->name)) {
      ++rep.perturbed;
      // rms over the whole tensor, computed on the first fill (fills come in offset order from one
      // writer thread): one extra read pass through the mapping, never a copy in memory.
      auto rms = std::make_shared<double>(-1.0);
      s.fill = [ck, t, salt, sigma, rms](uint8_t* dst, uint64_t off, uint64_t len) {
        if (*rms < 0) *rms = tensor_rms(*t);
        const uint64_t es = static_cast<uint64_t>(dtype_bits(t->dtype)) / 8;
        FC_CHECK(off % es == 0 && len % es == 0, "synth: unaligned fill of ", t->name);
        const float sd = sigma * static_cast<float>(*rms);
        parallel_range(len / es, [&](uint64_t b, uint64_t e) {
          for (uint64_t i = b; i < e; ++i) {
            const uint64_t idx = off / es + i;
            const float w = load_elem(t->dtype, t->data + idx * es);
            store_elem(t->dtype, dst + i * es, w + sd * gauss(salt, idx));
          }
        });
      };
    } else if (sigma > 0 && is_packed_fp4(*t)) {
      ++rep.repacked;
      // Each nibble independently: with probability sigma, a uniformly random E2M1 code.
      const uint32_t p = static_cast<uint32_t>(std::lround(sigma * 16777216.0f));  // of 2^24
      s.fill = [ck, t, salt, p](uint8_t* dst, uint64_t off, uint64_t len) {
        parallel_range(len, [&](uint64_t b, uint64_t e) {
          for (uint64_t i = b; i < e; ++i) {
            const uint64_t r = synth_mix(salt ^ synth_mix(off + i));
            uint8_t v = t->data[off + i];
            if ((r & 0xffffff) < p) v = static_cast<uint8_t>((v & 0xf0) | ((r >> 24) & 0xf));
            if (((r >> 28) & 0xffffff) < p)
              v = static_cast<uint8_t>((v & 0x0f) | (((r >> 56) & 0xf) << 4));
            dst[i] = v;
          }
        });
      };
    } else {
      s.fill = [ck, t](uint8_t* dst, uint64_t off, uint64_t len) {
        std::memcpy(dst, t->data + off, len);
      };
    }
    ts.push_back(std::move(s));
  }
  fs::create_directories(out_dir);
  write_checkpoint(out_dir, ts, opt.max_shard_bytes,
                   {{"format", "pt"},
                    {"fourcast_synth", sigma > 0 ? "noisy-copy" : "copy"},
                    {"fourcast_synth_noise", std::to_string(opt.noise)}});
  // Everything else the target ships (configs, tokenizer, chat template, quantization config).
  for (const fs::directory_entry& e : fs::directory_iterator(src_dir)) {
    const std::string name = e.path().filename().string();
    if (!e.is_regular_file() || ends_with(name, ".safetensors") ||
        name == "model.safetensors.index.json")
      continue;
    fs::copy_file(e.path(), fs::path(out_dir) / name, fs::copy_options::overwrite_existing);
  }
  return rep;
}

json eagle3_config_for(const Config& t, const Eagle3SynthOptions& opt) {
  const int L = t.num_hidden_layers;
  const int vd = std::clamp(opt.draft_vocab_size, 1, t.vocab_size);
  json layer = {{"architectures", {"LlamaForCausalLM"}},
                {"model_type", "llama"},
                {"vocab_size", t.vocab_size},
                {"hidden_size", t.hidden_size},
                {"intermediate_size", t.intermediate_size},
                {"num_hidden_layers", 1},
                {"num_attention_heads", t.num_attention_heads},
                {"num_key_value_heads", t.num_key_value_heads},
                {"head_dim", t.head_dim},
                {"hidden_act", "silu"},
                {"max_position_embeddings", t.max_position_embeddings},
                {"rms_norm_eps", t.rms_norm_eps},
                // The target's full-attention base frequency, Llama RoPE over the whole head.
                {"rope_parameters", {{"rope_type", "default"}, {"rope_theta", t.rope_full.theta}}},
                {"attention_bias", false},
                {"mlp_bias", false},
                {"tie_word_embeddings", false},
                {"bos_token_id", t.bos_token_id},
                {"eos_token_id", t.eos_token_ids.empty() ? 1 : t.eos_token_ids[0]}};
  auto clamp_id = [L](int i) { return std::clamp(i, 0, L - 1); };
  return {{"architectures", {"Eagle3Speculator"}},
          {"speculators_model_type", "eagle3"},
          {"speculators_version", "0.3.0"},
          {"transformer_layer_config", layer},
          {"draft_vocab_size", vd},
          {"target_hidden_size", nullptr},
          {"eagle_aux_hidden_state_layer_ids", {clamp_id(2), clamp_id(L / 2), clamp_id(L - 3)}},
          {"norm_before_residual", true},
          {"norm_before_fc", false},
          {"speculators_config",
           {{"algorithm", "eagle3"},
            {"proposal_methods",
             {{{"proposal_type", "greedy"},
               {"speculative_tokens", 3},
               {"verifier_accept_k", 1},
               {"accept_tolerance", 0.0}}}},
            {"default_proposal_method", "greedy"},
            {"verifier", {{"name_or_path", opt.verifier}, {"architectures", {t.architecture}}}}}},
          {"dtype", "bfloat16"},
          {"fourcast_synth", "random eagle3 head"}};
}

int64_t write_eagle3_for(const std::string& target_dir, const std::string& out_dir,
                         const Eagle3SynthOptions& opt) {
  const Config t = load_config(target_dir);
  const json cfg = eagle3_config_for(t, opt);
  const json& lc = cfg["transformer_layer_config"];
  const int64_t H = t.hidden_size, V = t.vocab_size, I = lc["intermediate_size"].get<int64_t>();
  const int64_t nh = lc["num_attention_heads"].get<int64_t>(), D = lc["head_dim"].get<int64_t>();
  const int64_t nkv = lc["num_key_value_heads"].get<int64_t>();
  const int64_t Vd = cfg["draft_vocab_size"].get<int64_t>();
  // Draft vocabulary: preferred ids, then ascending ids, sorted (d2t = selected - arange).
  std::vector<uint8_t> t2d(static_cast<size_t>(V), 0);
  std::vector<int64_t> sel;
  auto take = [&](int64_t id) {
    if (id < 0 || id >= V || t2d[static_cast<size_t>(id)] || static_cast<int64_t>(sel.size()) >= Vd)
      return;
    t2d[static_cast<size_t>(id)] = 1;
    sel.push_back(id);
  };
  for (int32_t id : opt.preferred_ids) take(id);
  for (int64_t id = 0; id < V && static_cast<int64_t>(sel.size()) < Vd; ++id) take(id);
  std::sort(sel.begin(), sel.end());
  std::vector<int64_t> d2t(sel.size());
  for (size_t d = 0; d < sel.size(); ++d) d2t[d] = sel[d] - static_cast<int64_t>(d);

  RandomTensors r{synth_mix(opt.seed ^ 0xea91e3ull), {}, 0};
  const std::string p = "layers.0.";
  r.linear("fc.weight", H, 3 * H);  // input: three raw target residual streams
  r.linear(p + "self_attn.q_proj.weight", nh * D, 2 * H);  // input: [embedding | hidden], normed
  r.linear(p + "self_attn.k_proj.weight", nkv * D, 2 * H);
  r.linear(p + "self_attn.v_proj.weight", nkv * D, 2 * H);
  r.linear(p + "self_attn.o_proj.weight", H, nh * D);
  r.linear(p + "mlp.gate_proj.weight", I, H);
  r.linear(p + "mlp.up_proj.weight", I, H);
  r.linear(p + "mlp.down_proj.weight", H, I);
  r.norm(p + "input_layernorm.weight", H);
  r.norm(p + "hidden_norm.weight", H);
  r.norm(p + "post_attention_layernorm.weight", H);
  r.norm("norm.weight", H);
  r.linear("lm_head.weight", Vd, H);
  r.host("d2t", DType::kI64, std::move(d2t));
  r.host("t2d", DType::kBool, std::move(t2d));
  fs::create_directories(out_dir);
  write_json(out_dir + "/config.json", cfg);
  write_checkpoint(out_dir, r.ts, uint64_t{4} << 30,
                   {{"format", "pt"}, {"fourcast_synth", "eagle3"}});
  return r.params;
}

json assistant_config_for(const Config& t, const AssistantSynthOptions& opt) {
  const int Ht = t.hidden_size, V = t.vocab_size;
  const int Hd = Ht >= 2816 ? 1024 : Ht >= 1024 ? 256 : std::max(8, Ht / 4 / 8 * 8);
  const int src_s = source_layer(t, LayerType::kSliding), src_f = source_layer(t, LayerType::kFull);
  FC_CHECK(src_s >= 0 || src_f >= 0, "synth --assistant-for: the target has no KV-owning layer");
  // [S, S, S, F] as the published assistants; one type only if the target lacks the other.
  std::vector<LayerType> types = {LayerType::kSliding, LayerType::kSliding, LayerType::kSliding,
                                  LayerType::kFull};
  for (LayerType& ty : types)
    if (source_layer(t, ty) < 0) ty = src_s >= 0 ? LayerType::kSliding : LayerType::kFull;
  const LayerSpec& ls = t.layers[static_cast<size_t>(src_s >= 0 ? src_s : src_f)];
  const LayerSpec& lf = t.layers[static_cast<size_t>(src_f >= 0 ? src_f : src_s)];
  // Query heads: a multiple of both KV-head counts (GQA).
  const int g = std::lcm(ls.num_kv_heads, lf.num_kv_heads);
  const int hq = ((Hd >= 1024 ? t.num_attention_heads : 4) + g - 1) / g * g;
  json lt = json::array(), plc = json::object();
  for (size_t i = 0; i < types.size(); ++i) {
    lt.push_back(layer_type_name(types[i]));
    if (types[i] == LayerType::kFull)
      plc[std::to_string(i)] = {{"head_dim", lf.head_dim},
                                {"num_key_value_heads", lf.num_kv_heads}};
  }
  json text = {{"model_type", "gemma4_text"},
               {"vocab_size", V},
               {"hidden_size", Hd},
               {"intermediate_size", 8 * Hd},
               {"num_hidden_layers", static_cast<int>(types.size())},
               {"layer_types", lt},
               {"num_attention_heads", hq},
               {"num_key_value_heads", ls.num_kv_heads},
               {"head_dim", ls.head_dim},
               {"global_head_dim", lf.head_dim},
               {"num_global_key_value_heads", lf.num_kv_heads},
               {"attention_k_eq_v", t.attention_k_eq_v},
               {"per_layer_config", plc},
               {"sliding_window", t.sliding_window},
               {"rope_parameters",
                {{"sliding_attention", rope_json(t.rope_sliding)},
                 {"full_attention", rope_json(t.rope_full)}}},
               {"rms_norm_eps", t.rms_norm_eps},
               {"hidden_activation", "gelu_pytorch_tanh"},
               {"num_kv_shared_layers", static_cast<int>(types.size())},
               {"hidden_size_per_layer_input", 0},
               {"vocab_size_per_layer_input", 0},
               {"enable_moe_block", false},
               {"use_double_wide_mlp", false},
               {"tie_word_embeddings", true},
               {"max_position_embeddings", t.max_position_embeddings},
               {"pad_token_id", t.pad_token_id},
               {"bos_token_id", t.bos_token_id},
               {"eos_token_id", t.eos_token_ids}};
  if (t.final_logit_softcapping) text["final_logit_softcapping"] = *t.final_logit_softcapping;
  int centroids = opt.num_centroids < 0 ? (V == 262144 ? 2048 : 0) : opt.num_centroids;
  if (centroids > 0 && V % centroids != 0)
    fail("synth --assistant-for: vocab_size ", V, " is not a multiple of ", centroids,
         " centroids");
  json root = {{"architectures", {"Gemma4AssistantForCausalLM"}},
               {"model_type", "gemma4_assistant"},
               {"backbone_hidden_size", Ht},
               {"use_ordered_embeddings", centroids > 0},
               {"num_centroids", centroids > 0 ? centroids : 2048},
               {"centroid_intermediate_top_k",
                centroids > 0 ? std::min(opt.centroid_top_k, centroids) : opt.centroid_top_k},
               {"tie_word_embeddings", true},
               {"text_config", text},
               {"dtype", "bfloat16"},
               {"fourcast_synth", "random gemma4_assistant"}};
  return root;
}

int64_t write_assistant_for(const std::string& target_dir, const std::string& out_dir,
                            const AssistantSynthOptions& opt) {
  const Config t = load_config(target_dir);
  const json cfg = assistant_config_for(t, opt);
  // Parse our own text config as MtpDrafter will (every layer KV-shared, read as 0).
  json text = cfg["text_config"];
  text["num_kv_shared_layers"] = 0;
  const Config a = parse_config(text, out_dir + "/config.json: text_config");
  const int64_t Hd = a.hidden_size, Ht = t.hidden_size, V = a.vocab_size;
  const int64_t Hq = a.num_attention_heads;
  RandomTensors r{synth_mix(opt.seed ^ 0xa551574ull), {}, 0};
  r.linear("model.embed_tokens.weight", V, Hd);  // tied LM head: logits O(1) on a normed state
  r.norm("model.norm.weight", Hd);
  r.linear("pre_projection.weight", Hd, 2 * Ht);  // [scaled target embedding | target state]
  r.linear("post_projection.weight", Ht, Hd);
  for (int i = 0; i < a.num_hidden_layers; ++i) {
    const LayerSpec& s = a.layers[static_cast<size_t>(i)];
    const std::string p = "model.layers." + std::to_string(i) + ".";
    for (const char* n : {"input_layernorm", "post_attention_layernorm",
                          "pre_feedforward_layernorm", "post_feedforward_layernorm"})
      r.norm(p + n + ".weight", Hd);
    r.linear(p + "self_attn.q_proj.weight", Hq * s.head_dim, Hd);
    r.norm(p + "self_attn.q_norm.weight", s.head_dim);
    r.linear(p + "self_attn.o_proj.weight", Hd, Hq * s.head_dim);
    r.linear(p + "mlp.gate_proj.weight", s.intermediate, Hd);
    r.linear(p + "mlp.up_proj.weight", s.intermediate, Hd);
    r.linear(p + "mlp.down_proj.weight", Hd, s.intermediate);
    r.add(p + "layer_scalar", {1}, 1.0f, 0.0f);
  }
  if (cfg["use_ordered_embeddings"].get<bool>()) {
    const int64_t C = cfg["num_centroids"].get<int64_t>();
    r.linear("masked_embedding.centroids.weight", C, Hd);
    // A seeded permutation of the vocabulary (Fisher-Yates): cluster c owns entries
    // [c V/C, (c+1) V/C). Real assistants cluster by embedding similarity.
    std::vector<int64_t> order(static_cast<size_t>(V));
    std::iota(order.begin(), order.end(), int64_t{0});
    const uint64_t salt = synth_mix(opt.seed ^ 0x0bd3e5ull);
    for (int64_t i = V - 1; i > 0; --i)
      std::swap(order[static_cast<size_t>(i)],
                order[synth_mix(salt ^ synth_mix(static_cast<uint64_t>(i))) %
                      static_cast<uint64_t>(i + 1)]);
    r.host("masked_embedding.token_ordering", DType::kI64, std::move(order));
  }
  fs::create_directories(out_dir);
  write_json(out_dir + "/config.json", cfg);
  write_json(out_dir + "/generation_config.json", generation_config(t));
  write_checkpoint(out_dir, r.ts, uint64_t{4} << 30,
                   {{"format", "pt"}, {"fourcast_synth", "gemma4_assistant"}});
  return r.params;
}

}  // namespace fc::gemma4
