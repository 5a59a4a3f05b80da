// Text-layer subcommands: tokenize, template, parse.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "apps/cli/args.h"
#include "apps/cli/commands.h"
#include "chat/chat_template.h"
#include "chat/gemma4/normalize.h"
#include "chat/gemma4/output_parser.h"
#include "core/error.h"
#include "core/json_limits.h"
#include "server/model_files.h"
#include "tokenizer/tokenizer.h"

namespace fc::cli {

int cmd_tokenize(int argc, char** argv) {
  Args a(argc, argv, 2, {"--tokenizer", "--text", "--ids"}, {"--json", "--text-specials"});
  const tok::Tokenizer t = tok::Tokenizer::from_file(a.require("--tokenizer"));
  if (a.has("--text") == a.has("--ids")) fail("give exactly one of --text and --ids");
  if (a.has("--text")) {
    tok::EncodeOptions eo;
    eo.parse_special = !a.has("--text-specials");
    const std::vector<int32_t> ids = t.encode(*a.get("--text"), eo);
    if (a.has("--json")) {
      nlohmann::json pieces = nlohmann::json::array();
      for (int32_t id : ids) pieces.push_back(t.id_to_token(id).value_or(""));
      std::printf("%s\n", nlohmann::json{{"ids", ids}, {"tokens", pieces}, {"count", ids.size()}}
                              .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
                              .c_str());
    } else {
      std::string line;
      for (size_t i = 0; i < ids.size(); ++i) line += (i ? "," : "") + std::to_string(ids[i]);
      std::printf("%s\n", line.c_str());
    }
  } else {
    const std::vector<int32_t> ids = parse_id_list(*a.get("--ids"), "--ids");
    const std::string text = t.decode(ids);
    if (a.has("--json"))
      std::printf("%s\n", nlohmann::json{{"text", text}}
                              .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
                              .c_str());
    else
      std::printf("%s\n", text.c_str());
  }
  return 0;
}

int cmd_template(int argc, char** argv) {
  Args a(argc, argv, 2, {"--model", "--template", "--messages", "--tools", "--kwargs"},
         {"--no-generation-prompt"});
  if (a.has("--model") == a.has("--template")) fail("give exactly one of --model and --template");
  const ChatTemplateSource src =
      load_chat_template(a.get("--model").value_or(""), a.get("--template").value_or(""));
  const chat::Template tmpl = chat::Template::parse(src.text);
  const nlohmann::ordered_json messages = read_ordered_json_file(a.require("--messages"));
  // The same normalisation the server applies before templating (vLLM's).
  const chat::gemma4::NormalizedMessages nm =
      chat::gemma4::normalize_messages(nlohmann::json::parse(messages.dump()));
  nlohmann::ordered_json ctx = nlohmann::ordered_json::object();
  ctx["messages"] = nm.messages;
  if (a.has("--tools")) ctx["tools"] = read_ordered_json_file(*a.get("--tools"));
  ctx["add_generation_prompt"] = !a.has("--no-generation-prompt");
  ctx["bos_token"] = src.bos_token;
  if (!src.eos_token.empty()) ctx["eos_token"] = src.eos_token;
  if (auto k = a.get("--kwargs")) {
    const nlohmann::ordered_json kw = parse_ordered_json(*k, "--kwargs");
    if (!kw.is_object()) fail("--kwargs must be a JSON object");
    for (auto it = kw.begin(); it != kw.end(); ++it) ctx[it.key()] = it.value();
  }
  const std::string out = tmpl.render(ctx);
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

int cmd_parse(int argc, char** argv) {
  Args a(argc, argv, 2, {"--text"}, {"--tools", "--no-reasoning", "--start-in-reasoning"});
  const std::string text = read_text_file(a.require("--text"));
  chat::gemma4::ParseOptions po;
  po.reasoning = !a.has("--no-reasoning");
  po.tools = a.has("--tools");
  po.start_in_reasoning = a.has("--start-in-reasoning");
  const chat::gemma4::ParsedOutput out = chat::gemma4::parse_output(text, po);
  std::printf("%s\n", chat::gemma4::message_to_json(out)
                          .dump(2, ' ', false, nlohmann::json::error_handler_t::replace)
                          .c_str());
  return 0;
}

}  // namespace fc::cli
