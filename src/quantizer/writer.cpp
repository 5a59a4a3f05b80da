#include "quantizer/writer.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/half.h"
#include "core/json_limits.h"

namespace fc::quantizer {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

namespace {

constexpr const char* kProducerVersion = "0.0.0+fourcast";

// A tensor owning its bytes.
TensorSource owned(std::string name, DType dt, std::vector<int64_t> shape,
                   std::vector<uint8_t> bytes) {
  auto data = std::make_shared<std::vector<uint8_t>>(std::move(bytes));
  TensorSource s;
  s.name = std::move(name);
  s.dtype = dt;
  s.shape = std::move(shape);
  s.fill = [data](uint8_t* dst, uint64_t off, uint64_t len) {
    std::memcpy(dst, data->data() + off, len);
  };
  return s;
}

TensorSource f32_scalar(std::string name, float v, bool zero_d) {
  std::vector<uint8_t> b(4);
  std::memcpy(b.data(), &v, 4);
  return owned(std::move(name), DType::kF32,
               zero_d ? std::vector<int64_t>{} : std::vector<int64_t>{1}, std::move(b));
}

// fp32 values stored back in `dt` (BF16 rounds to nearest even).
std::vector<uint8_t> encode(const std::vector<float>& v, DType dt, const std::string& name) {
  std::vector<uint8_t> b;
  if (dt == DType::kF32) {
    b.resize(v.size() * 4);
    std::memcpy(b.data(), v.data(), b.size());
  } else if (dt == DType::kBF16 || dt == DType::kF16) {
    b.resize(v.size() * 2);
    for (size_t i = 0; i < v.size(); ++i) {
      const uint16_t h = dt == DType::kBF16 ? f32_to_bf16(v[i]) : f32_to_f16(v[i]);
      std::memcpy(b.data() + 2 * i, &h, 2);
    }
  } else {
    fail("quantize: cannot rewrite tensor ", name, " of dtype ", dtype_name(dt));
  }
  return b;
}

ojson modelopt_quantization_config(const WriteSpec& s, bool kv) {
  const ojson scheme = {{"dynamic", false}, {"num_bits", 4}, {"type", "float"}, {"group_size", 16}};
  ojson qc = {{"config_groups",
               {{"group_0",
                 {{"input_activations", scheme}, {"weights", scheme}, {"targets", {"Linear"}}}}}},
              {"ignore", s.exclude},
              {"quant_algo", s.quant_algo}};
  if (kv) qc["kv_cache_scheme"] = {{"dynamic", false}, {"num_bits", 8}, {"type", "float"}};
  qc["producer"] = {{"name", "modelopt"}, {"version", kProducerVersion}};
  qc["quant_method"] = "modelopt";
  return qc;
}

ojson hf_quant_config(const WriteSpec& s, bool kv) {
  ojson q = {{"quant_algo", s.quant_algo},
             {"kv_cache_quant_algo", kv ? ojson("FP8") : ojson(nullptr)},
             {"group_size", 16}};
  if (s.quant_algo == "NVFP4_AWQ") {
    q["has_zero_point"] = false;
    q["pre_quant_scale"] = true;
  }
  q["exclude_modules"] = s.exclude;
  return {{"producer", {{"name", "modelopt"}, {"version", kProducerVersion}}}, {"quantization", q}};
}

ojson ct_quantization_config(const WriteSpec& s, bool kv) {
  auto args = [](ojson dynamic) {
    return ojson{{"actorder", nullptr},
                 {"block_structure", nullptr},
                 {"dynamic", dynamic},
                 {"group_size", 16},
                 {"num_bits", 4},
                 {"observer", "minmax"},
                 {"observer_kwargs", ojson::object()},
                 {"strategy", "tensor_group"},
                 {"symmetric", true},
                 {"type", "float"}};
  };
  ojson ignore = ojson::array();
  for (const std::string& e : s.exclude) ignore.push_back(glob_to_ct_ignore(e));
  ojson qc = {{"config_groups",
               {{"group_0",
                 {{"format", "nvfp4-pack-quantized"},
                  {"input_activations", args("local")},
                  {"output_activations", nullptr},
                  {"targets", {"Linear"}},
                  {"weights", args(false)}}}}},
              {"format", "nvfp4-pack-quantized"},
              {"global_compression_ratio", nullptr},
              {"ignore", ignore},
              {"kv_cache_scheme", nullptr},
              {"quant_method", "compressed-tensors"},
              {"quantization_status", "compressed"},
              {"sparsity_config", ojson::object()},
              {"transform_config", ojson::object()},
              {"version", kProducerVersion}};
  if (kv)
    qc["kv_cache_scheme"] = {{"actorder", nullptr},
                             {"block_structure", nullptr},
                             {"dynamic", false},
                             {"group_size", nullptr},
                             {"num_bits", 8},
                             {"observer", "minmax"},
                             {"observer_kwargs", ojson::object()},
                             {"strategy", "tensor"},
                             {"symmetric", true},
                             {"type", "float"}};
  return qc;
}

void write_json(const fs::path& p, const ojson& j) {
  std::ofstream f(p);
  if (!f) fail(p.string(), ": cannot write");
  f << j.dump(2) << "\n";
}

}  // namespace

std::string glob_to_ct_ignore(const std::string& glob) {
  if (glob.find_first_of("*?[") == std::string::npos) return glob;
  std::string re = "re:";
  for (size_t i = 0; i < glob.size(); ++i) {
    const char c = glob[i];
    if (c == '*') {
      re += ".*";
    } else if (c == '?') {
      re += '.';
    } else if (c == '[') {
      const size_t end = glob.find(']', i + 1);
      if (end == std::string::npos) {
        re += "\\[";
      } else {
        std::string set = glob.substr(i + 1, end - i - 1);
        if (!set.empty() && set[0] == '!') set[0] = '^';
        re += "[" + set + "]";
        i = end;
      }
    } else if (std::strchr(".^$+(){}|\\", c)) {
      re += '\\';
      re += c;
    } else {
      re += c;
    }
  }
  return re + "$";
}

void write_quantized(const std::string& src_dir, const Checkpoint& src, const WriteSpec& spec,
                     const std::string& out_dir) {
  const bool mo = spec.format == quant::Format::kModelOpt;
  fs::create_directories(out_dir);
  std::vector<TensorSource> out;

  // Source tensors: as they are (zero-copy from the mapping) or rewritten.
  for (const TensorInfo* t : src.all()) {
    if (spec.drop.count(t->name)) continue;
    if (auto it = spec.replace.find(t->name); it != spec.replace.end()) {
      FC_CHECK(it->second.size() == t->numel, "quantize: replacement of ", t->name, " has ",
               it->second.size(), " values, expected ", t->numel);
      out.push_back(owned(t->name, t->dtype, t->shape, encode(it->second, t->dtype, t->name)));
      continue;
    }
    TensorSource s;
    s.name = t->name;
    s.dtype = t->dtype;
    s.shape = t->shape;
    const uint8_t* p = t->data;
    s.fill = [p](uint8_t* dst, uint64_t off, uint64_t len) { std::memcpy(dst, p + off, len); };
    out.push_back(std::move(s));
  }

  // Quantized linears (spec §2.2 / §3.1).
  for (const QuantizedLinear& q : spec.linears) {
    const int64_t N = q.t.rows, K = q.t.cols;
    const std::string& m = q.module;
    out.push_back(
        owned(m + (mo ? ".weight" : ".weight_packed"), DType::kU8, {N, K / 2}, q.t.packed));
    out.push_back(owned(m + ".weight_scale", DType::kF8_E4M3, {N, K / 16}, q.t.scales));
    if (mo) {
      out.push_back(f32_scalar(m + ".weight_scale_2", q.t.global_scale, true));
      out.push_back(f32_scalar(m + ".input_scale", q.input_scale, true));
      if (!q.pre_quant_scale.empty()) {
        std::vector<uint8_t> b(q.pre_quant_scale.size() * 2);
        std::memcpy(b.data(), q.pre_quant_scale.data(), b.size());
        out.push_back(owned(m + ".pre_quant_scale", DType::kBF16, {K}, std::move(b)));
      }
    } else {
      // CT stores reciprocals: weight_global_scale = 2688/amax_W, input_global_scale = 2688/amax_x.
      out.push_back(f32_scalar(m + ".weight_global_scale", q.t.stored_scale, false));
      out.push_back(
          f32_scalar(m + ".input_global_scale", quant::ct_global_scale(q.amax_in), false));
    }
  }
  // FP8 KV scales (spec §2.9 / §3.2): ModelOpt on the k/v projections (0-d), CT on the attention
  // module ([1]).
  for (const auto& [layer, kv] : spec.kv_scales) {
    if (mo) {
      out.push_back(f32_scalar(layer + "self_attn.k_proj.k_scale", kv.first, true));
      out.push_back(f32_scalar(layer + "self_attn.v_proj.v_scale", kv.second, true));
    } else {
      out.push_back(f32_scalar(layer + "self_attn.k_scale", kv.first, false));
      out.push_back(f32_scalar(layer + "self_attn.v_scale", kv.second, false));
    }
  }
  std::sort(out.begin(), out.end(),
            [](const TensorSource& a, const TensorSource& b) { return a.name < b.name; });
  write_checkpoint(out_dir, out, spec.max_shard_bytes);

  // config.json with quantization_config; ModelOpt also writes hf_quant_config.json.
  const fs::path cfg_path = fs::path(src_dir) / "config.json";
  ojson cfg = read_ordered_json_file(cfg_path.string());
  const bool kv = !spec.kv_scales.empty();
  cfg["quantization_config"] =
      mo ? modelopt_quantization_config(spec, kv) : ct_quantization_config(spec, kv);
  write_json(fs::path(out_dir) / "config.json", cfg);
  if (mo) write_json(fs::path(out_dir) / "hf_quant_config.json", hf_quant_config(spec, kv));

  // Everything else (tokenizer, chat template, generation config, README, ...).
  for (const fs::directory_entry& e : fs::directory_iterator(src_dir)) {
    if (!e.is_regular_file()) continue;
    const std::string n = e.path().filename().string();
    if (n == "config.json" || n == "hf_quant_config.json" || n == "model.safetensors.index.json" ||
        e.path().extension() == ".safetensors")
      continue;
    fs::copy_file(e.path(), fs::path(out_dir) / n, fs::copy_options::overwrite_existing);
  }
}

}  // namespace fc::quantizer
