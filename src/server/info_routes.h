// Small read-only endpoints, independent of the HTTP library: the model card of GET /v1/models
// and GET /v1/models/{id}, and vLLM's GET /tokenizer_info (behind
// --enable-tokenizer-info-endpoint, as in vLLM).
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "server/serving.h"

namespace fc {

// One model card as /v1/models lists it.
nlohmann::json model_card(const ServingContext& ctx, const std::string& name);
// The card of a served model name; nullopt when the name is not served.
std::optional<nlohmann::json> find_model_card(const ServingContext& ctx, const std::string& name);

// vLLM's /tokenizer_info [vllm-project/vllm: vllm/entrypoints/serve/tokenize/serving.py
// `TokenizerInfo`]: the tokenizer's configuration (tokenizer_config.json, as transformers keeps
// it in init_kwargs: special tokens given as AddedToken objects become their content string,
// vocab_file/merges_file dropped), "tokenizer_class", and the chat template the server renders
// with. lm-eval's tokenizer_backend=remote reads bos_token/eos_token/pad_token/chat_template
// from it. `tokenizer_config_text` is the file's text ("" when absent).
nlohmann::json tokenizer_info(const ServingContext& ctx, const std::string& tokenizer_config_text);

}  // namespace fc
