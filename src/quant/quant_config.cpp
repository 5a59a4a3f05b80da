#include "quant/quant_config.h"

#include <filesystem>
#include <fstream>
#include <regex>

#include "core/error.h"
#include "core/json_limits.h"

namespace fc::quant {
namespace {

using nlohmann::json;

bool glob_at(const std::string& t, size_t ti, const std::string& p, size_t pi) {
  while (pi < p.size()) {
    const char c = p[pi];
    if (c == '*') {
      while (pi < p.size() && p[pi] == '*') ++pi;
      if (pi == p.size()) return true;
      for (size_t k = ti; k <= t.size(); ++k)
        if (glob_at(t, k, p, pi)) return true;
      return false;
    }
    if (ti >= t.size()) return false;
    if (c == '?') {
      ++ti;
      ++pi;
      continue;
    }
    if (c == '[') {
      size_t j = pi + 1;
      bool neg = false;
      if (j < p.size() && p[j] == '!') {
        neg = true;
        ++j;
      }
      size_t end = j;
      if (end < p.size() && p[end] == ']') ++end;  // ']' first is literal
      while (end < p.size() && p[end] != ']') ++end;
      if (end >= p.size()) {  // no closing bracket: literal '['
        if (t[ti] != '[') return false;
        ++ti;
        ++pi;
        continue;
      }
      bool in = false;
      for (size_t k = j; k < end; ++k) {
        if (k + 2 < end && p[k + 1] == '-') {
          if (t[ti] >= p[k] && t[ti] <= p[k + 2]) in = true;
          k += 2;
        } else if (t[ti] == p[k]) {
          in = true;
        }
      }
      if (in == neg) return false;
      ++ti;
      pi = end + 1;
      continue;
    }
    if (t[ti] != c) return false;
    ++ti;
    ++pi;
  }
  return ti == t.size();
}

// The module and the fused names vLLM also checks (q/k/v_proj -> qkv_proj, gate/up -> gate_up).
std::vector<std::string> name_variants(const std::string& module) {
  std::vector<std::string> out{module};
  const auto dot = module.rfind('.');
  const std::string leaf = dot == std::string::npos ? module : module.substr(dot + 1);
  const std::string head = dot == std::string::npos ? "" : module.substr(0, dot + 1);
  if (leaf == "q_proj" || leaf == "k_proj" || leaf == "v_proj") out.push_back(head + "qkv_proj");
  if (leaf == "gate_proj" || leaf == "up_proj") out.push_back(head + "gate_up_proj");
  return out;
}

bool is_vision(const std::string& m) {
  return m.find("vision_tower") != std::string::npos ||
         m.find("vision_model") != std::string::npos || m.find("visual") != std::string::npos;
}

// ModelOpt exclude_modules, as vLLM's is_layer_excluded: exact (with fused names), substring, or
// fnmatch.
bool modelopt_excluded(const std::vector<std::string>& patterns, const std::string& module) {
  for (const std::string& v : name_variants(module))
    for (const std::string& p : patterns)
      if (v == p || v.find(p) != std::string::npos || glob_match(v, p)) return true;
  return false;
}

// compressed-tensors names: exact module names or "re:" regexes matched from the start.
bool ct_matches(const std::string& entry, const std::string& module) {
  if (entry.rfind("re:", 0) == 0) {
    try {
      return std::regex_search(module, std::regex(entry.substr(3)),
                               std::regex_constants::match_continuous);
    } catch (const std::regex_error&) {
      return false;  // validated at parse time
    }
  }
  return entry == module;
}

bool is_nvfp4_algo(const std::string& a) {
  return a == "NVFP4" || a == "NVFP4_AWQ" || a == "W4A16_NVFP4";
}

void check_modelopt_algo(const std::string& algo, const std::string& source,
                         const std::string& field) {
  if (!is_nvfp4_algo(algo))
    fail(source, ": ", field, " is \"", algo,
         "\"; fourcast loads NVFP4, NVFP4_AWQ, W4A16_NVFP4 and MIXED_PRECISION of these");
}

std::vector<std::string> string_list(const json& j, const std::string& source,
                                     const std::string& field) {
  std::vector<std::string> out;
  if (j.is_null()) return out;
  if (!j.is_array()) fail(source, ": ", field, " must be a list of strings");
  for (const json& e : j) {
    if (!e.is_string()) fail(source, ": ", field, " must be a list of strings");
    out.push_back(e.get<std::string>());
  }
  return out;
}

void parse_kv_scheme(const json& kv, QuantConfig& q) {
  if (kv.is_object()) {
    const int bits = kv.value("num_bits", 0);
    const std::string type = kv.value("type", "");
    if (bits == 8 && type == "float") q.kv_fp8 = true;
  }
}

QuantConfig parse_ct(const json& qc, const std::string& source) {
  QuantConfig q;
  q.format = Format::kCompressedTensors;
  q.source = source;
  const std::string fmt = qc.value("format", "");
  if (fmt != "nvfp4-pack-quantized" && fmt != "mixed-precision")
    fail(source, ": quantization_config.format is \"", fmt,
         "\"; fourcast loads compressed-tensors \"nvfp4-pack-quantized\"");
  const json& groups = qc.value("config_groups", json::object());
  if (!groups.is_object() || groups.empty())
    fail(source, ": quantization_config.config_groups is missing or empty");
  for (const auto& [gname, g] : groups.items()) {
    const std::string where = "quantization_config.config_groups." + gname;
    const json& w = g.value("weights", json());
    if (!w.is_object()) fail(source, ": ", where, ".weights is missing");
    if (w.value("num_bits", 0) != 4 || w.value("type", "") != "float" ||
        w.value("group_size", 0) != 16)
      fail(source, ": ", where,
           ".weights is not NVFP4 (needs num_bits 4, type float, group_size 16)");
    const json& a = g.value("input_activations", json());
    if (a.is_object()) {
      if (a.value("num_bits", 0) != 4 || a.value("type", "") != "float")
        fail(source, ": ", where, ".input_activations is not NVFP4 (num_bits 4, type float)");
      q.ct_input_activations = true;
    }
    for (const std::string& t : string_list(g.value("targets", json()), source, where + ".targets"))
      q.ct_targets.push_back(t);
  }
  q.exclude = string_list(qc.value("ignore", json()), source, "quantization_config.ignore");
  for (const std::string& e : q.exclude)
    if (e.rfind("re:", 0) == 0) {
      try {
        std::regex r(e.substr(3));
      } catch (const std::regex_error& err) {
        fail(source, ": quantization_config.ignore entry \"", e, "\" is not a valid regex");
      }
    }
  parse_kv_scheme(qc.value("kv_cache_scheme", json()), q);
  return q;
}

}  // namespace

bool glob_match(const std::string& text, const std::string& pattern) {
  return glob_at(text, 0, pattern, 0);
}

LinearScheme QuantConfig::scheme_for(const std::string& module) const {
  LinearScheme s;
  if (format == Format::kNone || is_vision(module)) return s;
  if (format == Format::kCompressedTensors) {
    for (const std::string& e : exclude)
      if (ct_matches(e, module)) return s;
    bool targeted = false;
    for (const std::string& t : ct_targets)
      if (t == "Linear" || ct_matches(t, module)) targeted = true;
    if (!targeted) return s;
    s.nvfp4 = true;
    s.input_scale = ct_input_activations;
    return s;
  }
  std::string algo = quant_algo;
  if (quant_algo == "MIXED_PRECISION") {
    auto it = quantized_layers.find(module);
    if (it == quantized_layers.end()) {
      for (const std::string& v : name_variants(module))
        if (auto f = quantized_layers.find(v); f != quantized_layers.end()) it = f;
    }
    if (it == quantized_layers.end()) return s;
    algo = it->second;
  } else if (modelopt_excluded(exclude, module)) {
    return s;
  }
  s.nvfp4 = true;
  s.input_scale = algo != "W4A16_NVFP4";
  s.pre_quant_scale = algo == "NVFP4_AWQ";
  return s;
}

QuantConfig parse_hf_quant_config(const json& j, const std::string& source) {
  if (!j.is_object() || !j.contains("quantization") || !j["quantization"].is_object())
    fail(source, ": missing the \"quantization\" object");
  const json& qz = j["quantization"];
  QuantConfig q;
  q.format = Format::kModelOpt;
  q.source = source;
  if (!qz.contains("quant_algo") || !qz["quant_algo"].is_string())
    fail(source, ": quantization.quant_algo is missing");
  q.quant_algo = qz["quant_algo"].get<std::string>();
  if (q.quant_algo == "MIXED_PRECISION") {
    const json& layers = qz.value("quantized_layers", json());
    if (!layers.is_object())
      fail(source, ": quantization.quantized_layers is missing (quant_algo MIXED_PRECISION)");
    for (const auto& [mod, spec] : layers.items()) {
      if (!spec.is_object() || !spec.contains("quant_algo") || !spec["quant_algo"].is_string())
        fail(source, ": quantization.quantized_layers.", mod, ".quant_algo is missing");
      const std::string a = spec["quant_algo"].get<std::string>();
      check_modelopt_algo(a, source, "quantization.quantized_layers." + mod + ".quant_algo");
      if (spec.contains("group_size") && spec["group_size"] != 16)
        fail(source, ": quantization.quantized_layers.", mod, ".group_size must be 16");
      q.quantized_layers[mod] = a;
    }
  } else {
    check_modelopt_algo(q.quant_algo, source, "quantization.quant_algo");
    if (qz.contains("group_size") && qz["group_size"] != 16)
      fail(source, ": quantization.group_size is ", qz["group_size"].dump(), "; NVFP4 uses 16");
    q.exclude =
        string_list(qz.value("exclude_modules", json()), source, "quantization.exclude_modules");
  }
  const json& kv = qz.value("kv_cache_quant_algo", json());
  if (kv.is_string()) {
    if (kv == "FP8")
      q.kv_fp8 = true;
    else
      fail(source, ": quantization.kv_cache_quant_algo \"", kv.get<std::string>(),
           "\" is not supported (FP8 or null)");
  }
  return q;
}

QuantConfig parse_quant_config(const json& qc, const std::string& source) {
  if (!qc.is_object()) fail(source, ": quantization_config must be an object");
  const std::string method = qc.value("quant_method", "");
  if (method == "modelopt") {
    // ModelOpt's compressed-tensors-looking form (spec §2.1 b): read quant_algo + ignore.
    json hf = {{"quantization", json::object()}};
    json& qz = hf["quantization"];
    if (!qc.contains("quant_algo")) fail(source, ": quantization_config.quant_algo is missing");
    qz["quant_algo"] = qc["quant_algo"];
    if (qc.contains("quantized_layers")) qz["quantized_layers"] = qc["quantized_layers"];
    if (qc.contains("ignore")) qz["exclude_modules"] = qc["ignore"];
    if (qc.contains("exclude_modules")) qz["exclude_modules"] = qc["exclude_modules"];
    if (qc.contains("kv_cache_quant_algo")) qz["kv_cache_quant_algo"] = qc["kv_cache_quant_algo"];
    QuantConfig q = parse_hf_quant_config(hf, source);
    parse_kv_scheme(qc.value("kv_cache_scheme", json()), q);
    return q;
  }
  if (method == "compressed-tensors") return parse_ct(qc, source);
  fail(source, ": quantization_config.quant_method \"", method,
       "\" is not supported (modelopt or compressed-tensors)");
}

QuantConfig load_quant_config(const std::string& dir, const json& config_json) {
  namespace fs = std::filesystem;
  if (config_json.contains("quantization_config"))
    return parse_quant_config(config_json["quantization_config"],
                              (fs::path(dir) / "config.json").string());
  const fs::path hf = fs::path(dir) / "hf_quant_config.json";
  if (fs::exists(hf)) {
    return parse_hf_quant_config(read_json_file(hf.string()), hf.string());
  }
  return QuantConfig{};
}

}  // namespace fc::quant
