// `fourcast serve` command line, accepting vLLM's `vllm serve` flags (vllm/engine/arg_utils.py,
// vllm/entrypoints/openai/cli_args.py). Flags that have no meaning here are accepted and reported
// in `ignored` (logged at start); unknown flags are errors naming the flag.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace fc {

struct ServeOptions {
  std::string model;                            // model directory (positional or --model)
  std::vector<std::string> served_model_names;  // default: the model argument
  std::string host = "0.0.0.0";
  int port = 8000;
  std::optional<int> max_model_len;  // default: the model's max_position_embeddings
  int max_num_seqs = 8;
  std::optional<int> max_num_batched_tokens;
  double gpu_memory_utilization = 0.9;
  std::string kv_cache_dtype = "auto";       // auto | bfloat16 | fp8 | fp8_e4m3
  std::string lm_head_dtype = "checkpoint";  // checkpoint | bf16 | nvfp4 (gemma4/lm_head.h)
  bool enable_prefix_caching = true;
  bool enable_chunked_prefill = true;
  bool enable_auto_tool_choice = false;
  bool enable_prompt_tokens_details = false;  // usage.prompt_tokens_details.cached_tokens
  std::string tool_call_parser;               // "gemma4" or empty
  std::string reasoning_parser;               // "gemma4" or empty
  std::string chat_template;                  // path or inline template
  nlohmann::json default_chat_template_kwargs = nlohmann::json::object();
  std::string chat_template_content_format = "auto";  // auto | string | openai
  std::string generation_config = "auto";             // auto | vllm | DIR
  std::string quantization;  // modelopt, compressed-tensors, ... (checked against the checkpoint)
  std::string dtype = "auto";
  int tensor_parallel_size = 1;
  nlohmann::json speculative_config;  // null when absent
  // --structured-outputs-config JSON, or its dotted keys (--structured-outputs-config.backend X)
  nlohmann::json structured_outputs_config;  // null when absent
  nlohmann::json limit_mm_per_prompt;        // null when absent
  // Multimodal (server/media_request.h): processor defaults ({"max_soft_tokens": N}), media
  // loading ({"image": {"rgba_background_color": [r, g, b]}, "video": {"num_frames": N}}),
  // file: URLs under this directory only, http(s) hosts allowed (empty: any), encoder-cache size
  // in soft tokens (0: vLLM's default, the encoder budget).
  nlohmann::json mm_processor_kwargs;
  nlohmann::json media_io_kwargs;
  std::string allowed_local_media_path;
  std::vector<std::string> allowed_media_domains;
  int mm_encoder_cache_tokens = 0;
  std::string api_key;
  std::string device = "cpu";
  int threads = 0;                   // 0: all hardware threads
  double cpu_kv_cache_gb = 4.0;      // KV memory budget on the CPU (GiB; vLLM's CPU default)
  int max_request_bytes = 32 << 20;  // HTTP body limit: fits a 25 MiB audio upload (vLLM's cap)
  int max_connections = 4096;        // open client connections; more get 503
  double shutdown_timeout_s = 30;    // SIGTERM: how long in-flight requests may take to finish
  double http_head_timeout_s = 10;   // a request head must arrive within this from its start
  double http_body_timeout_s = 60;   // and its body within this after the head
  int http_workers = 4;              // threads running handlers (templating, tokenizing, output)
  bool zero_nan_scales = false;      // load NVFP4 checkpoints with NaN scales zeroed (else reject)
  bool enforce_eager = false;        // vLLM's --enforce-eager: no CUDA graphs for decode steps
  bool cpu_prefill_int8 = false;     // NVFP4 prefill with int8 activations on the CPU (not exact)
  bool cpu_decode_int8 = false;      // the same for decode-sized steps (< 33 rows; not exact)
  bool cpu_weights_mmap = false;     // CPU weights used in place from the mmap (no huge-page copy)
  std::string nvfp4_mode = "w4a16";  // w4a16 (Hopper / vLLM Marlin numerics) | w4a4 (emulation)
  // CORS, vLLM's flags (JSON lists, default ["*"]; --allow-credentials off).
  std::vector<std::string> allowed_origins = {"*"};
  std::vector<std::string> allowed_methods = {"*"};
  std::vector<std::string> allowed_headers = {"*"};
  bool allow_credentials = false;
  bool enable_tokenizer_info_endpoint = false;  // GET /tokenizer_info (vLLM: off by default)
  // The Responses API store (fourcast flags): entry cap (0: nothing is stored, as vLLM without
  // VLLM_ENABLE_RESPONSES_API_STORE), byte budget in MiB, TTL in seconds (0: none).
  int responses_store_max_entries = 10000;
  int responses_store_max_mb = 512;
  int responses_store_ttl_s = 86400;
  std::vector<std::string> ignored;  // accepted flags without effect here, for the log
};

// Parses argv[first..argc). Throws fc::Error naming the flag for unknown flags, missing values,
// malformed numbers or JSON.
ServeOptions parse_serve_options(int argc, char** argv, int first);

}  // namespace fc
