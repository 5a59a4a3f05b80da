#include "server/info_routes.h"

#include "core/json_limits.h"
#include "core/log.h"

namespace fc {

using nlohmann::json;

json model_card(const ServingContext& ctx, const std::string& name) {
  return {{"id", name},
          {"object", "model"},
          {"created", 0},
          {"owned_by", "fourcast"},
          {"root", ctx.opts.model},
          {"parent", nullptr},
          {"max_model_len", ctx.max_model_len},
          {"permission", json::array()}};
}

std::optional<json> find_model_card(const ServingContext& ctx, const std::string& name) {
  for (const std::string& n : ctx.opts.served_model_names)
    if (n == name) return model_card(ctx, n);
  return std::nullopt;
}

namespace {

// transformers' AddedToken objects ({"content": ..., "special": ...} in the file) as their
// content, recursively (vLLM's _make_json_serializable).
json plain(const json& v) {
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"];
  if (v.is_object()) {
    json out = json::object();
    for (auto it = v.begin(); it != v.end(); ++it) out[it.key()] = plain(it.value());
    return out;
  }
  if (v.is_array()) {
    json out = json::array();
    for (const json& x : v) out.push_back(plain(x));
    return out;
  }
  return v;
}

}  // namespace

json tokenizer_info(const ServingContext& ctx, const std::string& tokenizer_config_text) {
  json cfg = json::object();
  if (!tokenizer_config_text.empty()) {
    try {
      cfg = parse_json(tokenizer_config_text);  // depth-bounded, as every outside JSON text
    } catch (const JsonError& e) {
      log_line(LogLevel::kWarn, std::string("tokenizer_config.json: ") + e.what());
    }
    if (!cfg.is_object()) cfg = json::object();
  }
  json out = plain(cfg);
  out.erase("vocab_file");
  out.erase("merges_file");
  out["tokenizer_class"] = cfg.value("tokenizer_class", std::string("GemmaTokenizer"));
  // The special tokens lm-eval needs, from the loaded tokenizer when the file lacks them.
  if (!out.contains("bos_token")) out["bos_token"] = ctx.tmpl_src.bos_token;
  if (!out.contains("eos_token") && !ctx.tmpl_src.eos_token.empty())
    out["eos_token"] = ctx.tmpl_src.eos_token;
  out["chat_template"] = ctx.tmpl_src.text;
  return out;
}

}  // namespace fc
