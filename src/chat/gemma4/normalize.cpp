#include "chat/gemma4/normalize.h"

#include <string_view>

#include "core/json_limits.h"

namespace fc::chat::gemma4 {
namespace {

using json = nlohmann::json;

std::string at_message(size_t i) {
  return "messages[" + std::to_string(i) + "]";
}

// Part types vLLM reads as text, and the field holding the text.
const char* text_field(std::string_view type) {
  if (type == "text" || type == "input_text" || type == "output_text") return "text";
  if (type == "refusal") return "refusal";
  if (type == "thinking") return "thinking";
  return nullptr;
}

// Template-side modality of a media part type; empty if it is not a media type.
std::string_view media_modality(std::string_view type) {
  if (type == "image_url" || type == "input_image" || type == "image_embeds" || type == "image_pil")
    return "image";
  if (type == "audio_url" || type == "input_audio" || type == "audio_embeds") return "audio";
  if (type == "video_url" || type == "video_embeds") return "video";
  return {};
}

// The type of a part without "type", from its payload key (vLLM
// `_parse_chat_message_content_mm_part`, "missing 'type'" branch).
std::string infer_type(const json& p) {
  for (const char* key : {"image_url", "image_pil", "image_embeds", "audio_embeds", "audio_url"})
    if (p.contains(key)) return key;
  if (p.contains("input_audio") && !p["input_audio"].is_null()) return "input_audio";
  for (const char* key : {"video_url", "tool_reference"})
    if (p.contains(key)) return key;
  throw InvalidRequest("Missing 'type' field in multimodal part.", "type");
}

// Maps one request content part to its template form. Returns null for a dropped part.
json map_part(const json& p, size_t mi, NormalizedMessages* out) {
  if (p.is_string()) return json{{"type", "text"}, {"text", p}};
  if (!p.is_object())
    throw InvalidRequest(at_message(mi) + ": content parts must be objects or strings", "messages");
  std::string type;
  auto it = p.find("type");
  if (it == p.end() || it->is_null()) {
    type = infer_type(p);
  } else if (it->is_string()) {
    type = it->get<std::string>();
  } else {
    throw InvalidRequest("Invalid 'type' field in multimodal part.", "type");
  }
  if (const char* field = text_field(type)) {
    auto t = p.find(field);
    if (t == p.end() || t->is_null()) return nullptr;  // vLLM skips it with a warning
    if (!t->is_string())
      throw InvalidRequest(at_message(mi) + ": content part '" + field + "' must be a string",
                           "messages");
    return json{{"type", "text"}, {"text", *t}};
  }
  std::string_view modality = media_modality(type);
  if (!modality.empty()) {
    out->media.push_back(MediaItem{std::string(modality), mi, p});
    return json{{"type", modality}};
  }
  if (type == "tool_reference") {
    json name = p.contains("name") ? p["name"] : p.value("tool_reference", json());
    return json{{"type", "tool_reference"}, {"name", name}};
  }
  throw InvalidRequest("Unsupported chat content part type: '" + type +
                           "'. Supported types: audio_embeds, audio_url, image_embeds, image_pil, "
                           "image_url, input_audio, input_image, input_text, output_text, "
                           "refusal, text, thinking, tool_reference, video_embeds, video_url.",
                       "type");
}

// The message's content as a list of template parts (null -> [], string -> one text part).
json content_parts(const json& msg, size_t mi, NormalizedMessages* out) {
  json parts = json::array();
  auto it = msg.find("content");
  if (it == msg.end() || it->is_null()) return parts;
  if (it->is_string()) {
    parts.push_back(json{{"type", "text"}, {"text", *it}});
    return parts;
  }
  if (!it->is_array())
    throw InvalidRequest(at_message(mi) + ": content must be a string, an array or null",
                         "messages");
  for (const json& p : *it) {
    json mapped = map_part(p, mi, out);
    if (!mapped.is_null()) parts.push_back(std::move(mapped));
  }
  return parts;
}

bool all_text(const json& parts) {
  for (const json& p : parts)
    if (p.value("type", "") != "text") return false;
  return true;
}

std::string join_texts(const json& parts) {
  std::string s;
  bool first = true;
  for (const json& p : parts) {
    if (p.value("type", "") != "text") continue;
    if (!first) s += "\n";
    s += p["text"].get<std::string>();
    first = false;
  }
  return s;
}

bool is_blank(const std::string& s) {
  return s.find_first_not_of(" \t\n\r\f\v") == std::string::npos;
}

// function.arguments as the template needs it: an object (vLLM `_postprocess_messages`).
json normalize_arguments(const json* args, const std::string& where,
                         const NormalizeOptions& options) {
  if (args == nullptr || args->is_null()) return json::object();
  if (args->is_object()) return *args;
  if (!args->is_string()) return json::object();  // vLLM: not a mapping -> {}
  const std::string& text = args->get_ref<const std::string&>();
  if (is_blank(text)) return json::object();
  json parsed;
  try {
    parsed = parse_json(text, where);  // nesting bounded while parsing (the text is the client's)
  } catch (const JsonError& e) {
    if (e.kind() == JsonError::Kind::kTooDeep) throw InvalidRequest(e.what(), "messages");
    if (options.coerce_invalid_tool_arguments) return json::object();
    throw InvalidRequest(e.what(), "messages");
  }
  // Valid JSON that is not an object ("[]", "42"): vLLM coerces it to {}.
  if (!parsed.is_object()) return json::object();
  return parsed;
}

json normalize_tool_calls(const json& calls, size_t mi, const NormalizeOptions& options) {
  if (!calls.is_array())
    throw InvalidRequest(at_message(mi) + ".tool_calls must be a list", "tool_calls");
  json out = json::array();
  for (size_t j = 0; j < calls.size(); ++j) {
    const json& call = calls[j];
    if (!call.is_object())
      throw InvalidRequest("assistant tool_calls entries must be objects.", "tool_calls");
    auto fn = call.find("function");
    json type = call.value("type", json("function"));
    if (type != "function" || fn == call.end() || !fn->is_object())
      throw InvalidRequest("chat completions only support assistant tool_calls of type 'function'.",
                           "tool_calls");
    json copy = call;
    const json* args = fn->contains("arguments") ? &(*fn)["arguments"] : nullptr;
    std::string where =
        at_message(mi) + ".tool_calls[" + std::to_string(j) + "].function.arguments";
    copy["function"]["arguments"] = normalize_arguments(args, where, options);
    out.push_back(std::move(copy));
  }
  return out;
}

}  // namespace

NormalizedMessages normalize_messages(const json& messages, const NormalizeOptions& options) {
  if (!messages.is_array()) throw InvalidRequest("messages must be a list", "messages");
  NormalizedMessages out;
  out.messages = json::array();
  for (size_t mi = 0; mi < messages.size(); ++mi) {
    const json& msg = messages[mi];
    if (!msg.is_object()) throw InvalidRequest(at_message(mi) + " must be an object", "messages");
    auto role_it = msg.find("role");
    if (role_it == msg.end() || !role_it->is_string())
      throw InvalidRequest(at_message(mi) + ".role must be a string", "messages");
    const std::string role = role_it->get<std::string>();

    json parts = content_parts(msg, mi, &out);
    json m = {{"role", role}};
    if (options.content_format == ContentFormat::kString) {
      m["content"] = join_texts(parts);
    } else if (role == "tool" && all_text(parts)) {
      // vLLM joins all-text tool results into one string for the template.
      m["content"] = join_texts(parts);
    } else {
      m["content"] = std::move(parts);
    }

    if (role == "assistant") {
      auto calls = msg.find("tool_calls");
      if (calls != msg.end() && !calls->is_null()) {
        json normalized = normalize_tool_calls(*calls, mi, options);
        if (!normalized.empty()) m["tool_calls"] = std::move(normalized);
      }
      // `reasoning` (current) or `reasoning_content` (deprecated); the template gets both.
      json reasoning = msg.value("reasoning", json());
      if (reasoning.is_null()) reasoning = msg.value("reasoning_content", json());
      if (!reasoning.is_null()) {
        if (!reasoning.is_string())
          throw InvalidRequest(at_message(mi) + ".reasoning must be a string", "messages");
        m["reasoning"] = reasoning;
        m["reasoning_content"] = reasoning;
      }
    } else if (role == "tool" && msg.contains("tool_call_id")) {
      m["tool_call_id"] = msg["tool_call_id"];
    }
    if (msg.contains("name") && msg["name"].is_string()) m["name"] = msg["name"];
    if (role == "developer") m["tools"] = msg.value("tools", json());
    out.messages.push_back(std::move(m));
  }
  return out;
}

}  // namespace fc::chat::gemma4
