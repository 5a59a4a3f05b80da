#include "server/serve_options.h"

#include <functional>
#include <map>
#include <string_view>

#include "core/error.h"
#include "core/json_limits.h"
#include "core/parse.h"
#include "server/cors.h"

namespace fc {
namespace {

int to_int(const std::string& flag, const std::string& v) {
  return static_cast<int>(parse_flag_int(flag, v));
}

double to_double(const std::string& flag, const std::string& v) {
  return parse_flag_double(flag, v);
}

nlohmann::json to_json(const std::string& flag, const std::string& v) {
  return parse_json(v, "flag " + flag);
}

}  // namespace

ServeOptions parse_serve_options(int argc, char** argv, int first) {
  ServeOptions o;
  using Setter = std::function<void(const std::string& flag, const std::string& value)>;
  // Flags taking one value.
  const std::map<std::string, Setter> valued = {
      {"--model", [&](auto&, auto& v) { o.model = v; }},
      {"--host", [&](auto&, auto& v) { o.host = v; }},
      {"--port", [&](auto& f, auto& v) { o.port = to_int(f, v); }},
      {"--max-model-len", [&](auto& f, auto& v) { o.max_model_len = to_int(f, v); }},
      {"--max-num-seqs", [&](auto& f, auto& v) { o.max_num_seqs = to_int(f, v); }},
      {"--max-num-batched-tokens",
       [&](auto& f, auto& v) { o.max_num_batched_tokens = to_int(f, v); }},
      {"--gpu-memory-utilization",
       [&](auto& f, auto& v) { o.gpu_memory_utilization = to_double(f, v); }},
      {"--kv-cache-dtype", [&](auto&, auto& v) { o.kv_cache_dtype = v; }},
      {"--lm-head-dtype", [&](auto&, auto& v) { o.lm_head_dtype = v; }},
      {"--tool-call-parser", [&](auto&, auto& v) { o.tool_call_parser = v; }},
      {"--reasoning-parser", [&](auto&, auto& v) { o.reasoning_parser = v; }},
      {"--chat-template", [&](auto&, auto& v) { o.chat_template = v; }},
      {"--default-chat-template-kwargs",
       [&](auto& f, auto& v) { o.default_chat_template_kwargs = to_json(f, v); }},
      {"--chat-template-content-format",
       [&](auto&, auto& v) { o.chat_template_content_format = v; }},
      {"--generation-config", [&](auto&, auto& v) { o.generation_config = v; }},
      {"--quantization", [&](auto&, auto& v) { o.quantization = v; }},
      {"--nvfp4-mode", [&](auto&, auto& v) { o.nvfp4_mode = v; }},
      {"-q", [&](auto&, auto& v) { o.quantization = v; }},
      {"--dtype", [&](auto&, auto& v) { o.dtype = v; }},
      {"--tensor-parallel-size", [&](auto& f, auto& v) { o.tensor_parallel_size = to_int(f, v); }},
      {"-tp", [&](auto& f, auto& v) { o.tensor_parallel_size = to_int(f, v); }},
      {"--speculative-config", [&](auto& f, auto& v) { o.speculative_config = to_json(f, v); }},
      {"--structured-outputs-config",
       [&](auto& f, auto& v) { o.structured_outputs_config = to_json(f, v); }},
      {"--limit-mm-per-prompt", [&](auto& f, auto& v) { o.limit_mm_per_prompt = to_json(f, v); }},
      {"--mm-processor-kwargs", [&](auto& f, auto& v) { o.mm_processor_kwargs = to_json(f, v); }},
      {"--media-io-kwargs", [&](auto& f, auto& v) { o.media_io_kwargs = to_json(f, v); }},
      {"--allowed-local-media-path", [&](auto&, auto& v) { o.allowed_local_media_path = v; }},
      {"--allowed-media-domains", [&](auto&, auto& v) { o.allowed_media_domains.push_back(v); }},
      {"--mm-encoder-cache-tokens",
       [&](auto& f, auto& v) { o.mm_encoder_cache_tokens = to_int(f, v); }},
      {"--api-key", [&](auto&, auto& v) { o.api_key = v; }},
      {"--device", [&](auto&, auto& v) { o.device = v; }},
      {"--threads", [&](auto& f, auto& v) { o.threads = to_int(f, v); }},
      {"--cpu-kv-cache-gb", [&](auto& f, auto& v) { o.cpu_kv_cache_gb = to_double(f, v); }},
      {"--max-request-bytes", [&](auto& f, auto& v) { o.max_request_bytes = to_int(f, v); }},
      {"--allowed-origins", [&](auto& f, auto& v) { o.allowed_origins = parse_cors_list(f, v); }},
      {"--allowed-methods", [&](auto& f, auto& v) { o.allowed_methods = parse_cors_list(f, v); }},
      {"--allowed-headers", [&](auto& f, auto& v) { o.allowed_headers = parse_cors_list(f, v); }},
      {"--responses-store-max-entries",
       [&](auto& f, auto& v) { o.responses_store_max_entries = to_int(f, v); }},
      {"--responses-store-max-mb",
       [&](auto& f, auto& v) { o.responses_store_max_mb = to_int(f, v); }},
      {"--responses-store-ttl", [&](auto& f, auto& v) { o.responses_store_ttl_s = to_int(f, v); }},
      {"--max-connections", [&](auto& f, auto& v) { o.max_connections = to_int(f, v); }},
      {"--shutdown-timeout", [&](auto& f, auto& v) { o.shutdown_timeout_s = to_double(f, v); }},
      {"--http-head-timeout", [&](auto& f, auto& v) { o.http_head_timeout_s = to_double(f, v); }},
      {"--http-body-timeout", [&](auto& f, auto& v) { o.http_body_timeout_s = to_double(f, v); }},
      {"--http-workers", [&](auto& f, auto& v) { o.http_workers = to_int(f, v); }},
  };
  // vLLM flags accepted with one value but without effect here (logged).
  const std::vector<std::string> ignored_valued = {"--seed",
                                                   "--swap-space",
                                                   "--block-size",
                                                   "--max-logprobs",
                                                   "--uvicorn-log-level",
                                                   "--pipeline-parallel-size",
                                                   "--data-parallel-size",
                                                   "--load-format",
                                                   "--download-dir",
                                                   "--tokenizer-mode",
                                                   "--revision",
                                                   "--max-seq-len-to-capture",
                                                   "--compilation-config",
                                                   "--distributed-executor-backend",
                                                   "--root-path"};
  // Switches (true), with vLLM's --no-... forms.
  const std::map<std::string, std::function<void()>> switches = {
      {"--enable-prefix-caching", [&] { o.enable_prefix_caching = true; }},
      {"--no-enable-prefix-caching", [&] { o.enable_prefix_caching = false; }},
      {"--enable-chunked-prefill", [&] { o.enable_chunked_prefill = true; }},
      {"--no-enable-chunked-prefill", [&] { o.enable_chunked_prefill = false; }},
      {"--enable-auto-tool-choice", [&] { o.enable_auto_tool_choice = true; }},
      {"--enable-prompt-tokens-details", [&] { o.enable_prompt_tokens_details = true; }},
      {"--zero-nan-scales", [&] { o.zero_nan_scales = true; }},
      {"--allow-credentials", [&] { o.allow_credentials = true; }},
      {"--enable-tokenizer-info-endpoint", [&] { o.enable_tokenizer_info_endpoint = true; }},
      {"--enforce-eager", [&] { o.enforce_eager = true; }},
      {"--cpu-prefill-int8", [&] { o.cpu_prefill_int8 = true; }},
      {"--cpu-decode-int8", [&] { o.cpu_decode_int8 = true; }},
      {"--cpu-weights-mmap", [&] { o.cpu_weights_mmap = true; }},
  };
  const std::vector<std::string> ignored_switches = {
      "--trust-remote-code",    "--disable-hybrid-kv-cache-manager",
      "--disable-log-requests", "--disable-log-stats",
      "--enable-log-requests",  "--disable-frontend-multiprocessing",
      "--async-scheduling",     "--no-async-scheduling"};

  for (int i = first; i < argc; ++i) {
    if (std::string_view(argv[i]) != "--help" && std::string_view(argv[i]) != "-h") continue;
    HelpRequested h;
    h.valued.push_back("--served-model-name");
    for (const auto& [f, set] : valued) h.valued.push_back(f);
    for (const std::string& f : ignored_valued) h.valued.push_back(f + " (accepted, no effect)");
    for (const auto& [f, set] : switches) h.switches.push_back(f);
    for (const std::string& f : ignored_switches)
      h.switches.push_back(f + " (accepted, no effect)");
    throw h;
  }
  for (int i = first; i < argc; ++i) {
    std::string a = argv[i];
    if (a.empty() || a[0] != '-') {
      if (!o.model.empty())
        fail("unexpected argument '", a, "' (the model is already '", o.model, "')");
      o.model = a;
      continue;
    }
    std::string value;
    bool has_inline = false;
    if (const size_t eq = a.find('='); eq != std::string::npos && a.rfind("--", 0) == 0) {
      value = a.substr(eq + 1);
      a = a.substr(0, eq);
      has_inline = true;
    }
    auto take_value = [&]() -> std::string {
      if (has_inline) return value;
      if (i + 1 >= argc) fail("flag ", a, " needs a value");
      return argv[++i];
    };
    if (a == "--served-model-name") {
      // vLLM takes one or more names (nargs="+").
      if (has_inline) {
        o.served_model_names.push_back(value);
      } else {
        while (i + 1 < argc && argv[i + 1][0] != '-') o.served_model_names.push_back(argv[++i]);
        if (o.served_model_names.empty()) fail("flag --served-model-name needs a value");
      }
    } else if (a.rfind("--structured-outputs-config.", 0) == 0) {
      // vLLM's dotted form: one key per flag; true/false become booleans.
      const std::string key = a.substr(std::string("--structured-outputs-config.").size());
      const std::string v = take_value();
      if (!o.structured_outputs_config.is_object())
        o.structured_outputs_config = nlohmann::json::object();
      o.structured_outputs_config[key] = v == "true"    ? nlohmann::json(true)
                                         : v == "false" ? nlohmann::json(false)
                                                        : nlohmann::json(v);
    } else if (auto it = valued.find(a); it != valued.end()) {
      it->second(a, take_value());
    } else if (auto sw = switches.find(a); sw != switches.end()) {
      if (has_inline) fail("flag ", a, " takes no value");
      sw->second();
    } else if (std::find(ignored_valued.begin(), ignored_valued.end(), a) != ignored_valued.end()) {
      o.ignored.push_back(a + " " + take_value());
    } else if (std::find(ignored_switches.begin(), ignored_switches.end(), a) !=
               ignored_switches.end()) {
      o.ignored.push_back(a);
    } else {
      fail("unknown flag ", a);
    }
  }
  if (o.port < 0 || o.port > 65535) fail("flag --port: ", o.port, " is not a port number");
  if (o.max_num_seqs < 1) fail("flag --max-num-seqs must be >= 1");
  if (o.max_model_len && *o.max_model_len < 1) fail("flag --max-model-len must be >= 1");
  if (o.max_num_batched_tokens && *o.max_num_batched_tokens < 1)
    fail("flag --max-num-batched-tokens must be >= 1");
  if (o.tensor_parallel_size != 1)
    fail("flag --tensor-parallel-size: only 1 is supported (one device)");
  if (o.kv_cache_dtype != "auto" && o.kv_cache_dtype != "bfloat16" && o.kv_cache_dtype != "fp8" &&
      o.kv_cache_dtype != "fp8_e4m3")
    fail("flag --kv-cache-dtype: '", o.kv_cache_dtype,
         "' is not one of auto, bfloat16, fp8, fp8_e4m3");
  if (!o.tool_call_parser.empty() && o.tool_call_parser != "gemma4")
    fail("flag --tool-call-parser: '", o.tool_call_parser, "' is not supported (gemma4)");
  if (!o.reasoning_parser.empty() && o.reasoning_parser != "gemma4")
    fail("flag --reasoning-parser: '", o.reasoning_parser, "' is not supported (gemma4)");
  if (o.chat_template_content_format != "auto" && o.chat_template_content_format != "string" &&
      o.chat_template_content_format != "openai")
    fail("flag --chat-template-content-format: '", o.chat_template_content_format,
         "' is not one of auto, string, openai");
  if (!o.default_chat_template_kwargs.is_object())
    fail("flag --default-chat-template-kwargs must be a JSON object");
  if (o.nvfp4_mode != "w4a16" && o.nvfp4_mode != "w4a4")
    fail("flag --nvfp4-mode: '", o.nvfp4_mode, "' is not one of w4a16, w4a4");
  if (!o.quantization.empty() && o.quantization != "modelopt" && o.quantization != "modelopt_fp4" &&
      o.quantization != "compressed-tensors")
    fail("flag --quantization: '", o.quantization,
         "' is not supported (modelopt, modelopt_fp4, compressed-tensors)");
  if (o.responses_store_max_entries < 0 || o.responses_store_max_mb < 0 ||
      o.responses_store_ttl_s < 0)
    fail(
        "flags --responses-store-max-entries, --responses-store-max-mb and --responses-store-ttl "
        "must be >= 0");
  if (o.device != "cpu" && o.device != "cuda")
    fail("flag --device: '", o.device, "' is not one of cpu, cuda");
  if (o.max_connections < 1) fail("flag --max-connections must be >= 1");
  if (!(o.shutdown_timeout_s >= 0)) fail("flag --shutdown-timeout must be >= 0 (seconds)");
  if (!(o.http_head_timeout_s > 0)) fail("flag --http-head-timeout must be > 0 (seconds)");
  if (!(o.http_body_timeout_s > 0)) fail("flag --http-body-timeout must be > 0 (seconds)");
  if (o.http_workers < 1 || o.http_workers > 256) fail("flag --http-workers must be in [1, 256]");
  if (o.max_request_bytes < 1) fail("flag --max-request-bytes must be >= 1");
  if (!(o.gpu_memory_utilization > 0 && o.gpu_memory_utilization <= 1))
    fail("flag --gpu-memory-utilization must be in (0, 1]");
  return o;
}

}  // namespace fc
