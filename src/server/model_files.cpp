#include "server/model_files.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "core/json_limits.h"

namespace fc {

std::string read_text_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(path, ": cannot open");
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

namespace {

// tokenizer_config.json stores special tokens as a string or as {"content": ...}.
std::string token_string(const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string())
    return v["content"].get<std::string>();
  return "";
}

}  // namespace

ChatTemplateSource load_chat_template(const std::string& model_dir,
                                      const std::string& override_arg) {
  namespace fs = std::filesystem;
  ChatTemplateSource src;
  nlohmann::json tcfg;
  const std::string tcfg_path = model_dir + "/tokenizer_config.json";
  if (!model_dir.empty() && fs::exists(tcfg_path)) {
    tcfg = parse_json(read_text_file(tcfg_path), tcfg_path);
    if (tcfg.contains("bos_token")) {
      const std::string b = token_string(tcfg["bos_token"]);
      if (!b.empty()) src.bos_token = b;
    }
    if (tcfg.contains("eos_token")) src.eos_token = token_string(tcfg["eos_token"]);
  }
  if (!override_arg.empty()) {
    // vLLM: a path if it names a file, else the template itself.
    std::error_code ec;
    if (fs::is_regular_file(override_arg, ec)) {
      src.text = read_text_file(override_arg);
      src.origin = override_arg;
    } else if (override_arg.find("{%") != std::string::npos ||
               override_arg.find("{{") != std::string::npos) {
      src.text = override_arg;
      src.origin = "--chat-template";
    } else {
      fail("--chat-template: '", override_arg, "' is neither a file nor a template");
    }
    return src;
  }
  const std::string jinja = model_dir + "/chat_template.jinja";
  if (fs::exists(jinja)) {
    src.text = read_text_file(jinja);
    src.origin = jinja;
    return src;
  }
  if (tcfg.contains("chat_template")) {
    const nlohmann::json& t = tcfg["chat_template"];
    if (t.is_string()) {
      src.text = t.get<std::string>();
    } else if (t.is_array()) {  // [{"name": "default", "template": "..."}, ...]
      for (const auto& e : t)
        if (e.is_object() && e.value("name", "") == "default" && e.contains("template"))
          src.text = e["template"].get<std::string>();
    }
    if (!src.text.empty()) {
      src.origin = tcfg_path + ": chat_template";
      return src;
    }
  }
  fail(
      "no chat template: pass --chat-template, or put chat_template.jinja or a \"chat_template\" "
      "in "
      "tokenizer_config.json in ",
      model_dir);
}

}  // namespace fc
