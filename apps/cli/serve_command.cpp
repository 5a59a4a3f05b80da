// `fourcast serve [MODEL_DIR] [vLLM flags]`: the OpenAI-compatible server.
#include <signal.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "apps/cli/backend_select.h"
#include "apps/cli/commands.h"
#include "apps/cli/drafter_setup.h"
#include "backend/cpu/cpu_backend.h"
#include "core/error.h"
#include "core/log.h"
#include "core/thread_pool.h"
#include "engine/engine.h"
#include "engine/kv_budget.h"
#include "engine/kv_plan.h"
#include "io/safetensors.h"
#include "model/gemma4/audio_encoder.h"
#include "model/gemma4/model.h"
#include "model/gemma4/vision.h"
#include "server/http_server.h"
#include "server/media_request.h"
#include "server/model_files.h"
#include "server/serve_options.h"
#include "server/structured_serving.h"
#include "tokenizer/tokenizer.h"

namespace fc::cli {
namespace {

// vLLM refuses a --quantization that does not match the checkpoint's own description.
void check_quantization_flag(const ServeOptions& o, const gemma4::Config& cfg) {
  if (o.quantization.empty()) return;
  const bool ct = o.quantization == "compressed-tensors";
  const quant::Format want = ct ? quant::Format::kCompressedTensors : quant::Format::kModelOpt;
  if (cfg.quant.format != want)
    fail("flag --quantization ", o.quantization, ": ", o.model, " is ",
         cfg.quant.format == quant::Format::kNone ? "not quantized"
         : cfg.quant.format == quant::Format::kModelOpt
             ? "a ModelOpt checkpoint (use --quantization modelopt)"
             : "a compressed-tensors checkpoint (use --quantization compressed-tensors)");
}

// vLLM's encoder budget (vllm/multimodal/encoder_budget.py): per step and for the cache, at
// least max_num_batched_tokens and the largest item (any allowed image budget: 1120 soft
// tokens). Prefix-LM models (26B/31B) never split an image, so the server's image budget must fit
// one step (vLLM's startup error).
void configure_encoder_budget(const ServeOptions& o, const gemma4::Config& cfg, EngineConfig& ec) {
  const int step = ec.scheduler.max_num_batched_tokens;
  int64_t budget = std::max(step, 1120);
  ec.scheduler.encoder_compute_budget = budget;
  ec.scheduler.encoder_cache_size = std::max<int64_t>(budget, o.mm_encoder_cache_tokens);
  int item = cfg.mm.vision->default_output_length;
  if (o.mm_processor_kwargs.is_object() && o.mm_processor_kwargs.contains("max_soft_tokens") &&
      o.mm_processor_kwargs["max_soft_tokens"].is_number_integer())
    item = o.mm_processor_kwargs["max_soft_tokens"].get<int>();
  if (cfg.use_bidirectional_attention == "vision" && item > step)
    fail("Chunked MM input disabled but max_tokens_per_mm_item=", item,
         " is larger than max_num_batched_tokens=", step, " (raise --max-num-batched-tokens)");
}

// Thousands of client connections need as many file descriptors: raise the soft limit to the
// hard one, and say so when --max-connections cannot be reached.
void raise_open_file_limit(int max_connections) {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
  }
  const rlim_t want = static_cast<rlim_t>(max_connections) + 64;  // + files, pipes, listeners
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want)
    log_line(LogLevel::kWarn, str_cat("--max-connections ", max_connections, " needs ~", want,
                                      " file descriptors but the limit is ", rl.rlim_cur,
                                      " (ulimit -n); connections beyond it are refused"));
}

}  // namespace

int cmd_serve(int argc, char** argv) {
  const auto t0 = std::chrono::steady_clock::now();
  ServeOptions o = parse_serve_options(argc, argv, 2);
  if (o.model.empty()) o.model = FOURCAST_BUNDLED_MODEL;
  if (o.served_model_names.empty()) o.served_model_names = {o.model};
  // vLLM's switch for the Responses API store: "0" turns storing off (here it is on, bounded).
  if (const char* e = std::getenv("VLLM_ENABLE_RESPONSES_API_STORE"); e && std::string(e) == "0")
    o.responses_store_max_entries = 0;
  for (const std::string& f : o.ignored)
    log_line(LogLevel::kInfo, "flag accepted, no effect here: " + f);

  // Signals are handled by one thread (sigwait), so block them before any thread starts.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

  ThreadPool pool(o.threads > 0 ? o.threads : hardware_threads());
  const std::unique_ptr<Backend> backend =
      make_backend(o.device, pool, o.nvfp4_mode == "w4a4", o.cpu_prefill_int8, o.cpu_decode_int8,
                   o.cpu_weights_mmap);
  Backend& be = *backend;
  gemma4::Config cfg = gemma4::load_config(o.model);
  check_quantization_flag(o, cfg);
  std::shared_ptr<const Checkpoint> ckpt = Checkpoint::open_dir(o.model);
  gemma4::ModelOptions mo;
  const TensorInfo* emb = ckpt->find(cfg.tensor_prefix + "embed_tokens.weight");
  mo.bf16_embed_scale = emb && emb->dtype == DType::kBF16;
  mo.load.zero_bad_scales = o.zero_nan_scales;
  mo.graphs = !o.enforce_eager;
  mo.lm_head_dtype = gemma4::parse_lm_head_dtype(o.lm_head_dtype);
  gemma4::Model model(cfg, ckpt, be, mo);
  const tok::Tokenizer tokenizer = tok::Tokenizer::from_file(o.model + "/tokenizer.json");
  if (tokenizer.id_bound() > cfg.vocab_size)
    fail(o.model, "/tokenizer.json: uses ids up to ", tokenizer.id_bound() - 1,
         " but the model's vocab_size is ", cfg.vocab_size);
  const ChatTemplateSource tsrc = load_chat_template(o.model, o.chat_template);
  const chat::Template tmpl = chat::Template::parse(tsrc.text);
  GenerationConfig gen;
  if (o.generation_config == "auto") {
    if (auto g = load_generation_config_if_present(o.model + "/generation_config.json")) gen = *g;
  } else if (o.generation_config != "vllm") {
    gen = load_generation_config(o.generation_config + "/generation_config.json");
  }

  // KV storage dtype: vLLM's "auto" is the model's dtype.
  DType kv_dtype = mo.bf16_embed_scale ? DType::kBF16 : DType::kF32;
  if (o.kv_cache_dtype == "bfloat16") kv_dtype = DType::kBF16;
  if (o.kv_cache_dtype.rfind("fp8", 0) == 0) {
    kv_dtype = DType::kF8_E4M3;
    int unscaled = 0;
    for (size_t i = 0; i < cfg.layers.size(); ++i)
      if (!cfg.layers[i].kv_shared && !model.weights().layers[i].has_kv_scales) ++unscaled;
    if (unscaled > 0)  // vLLM's rule: missing scales mean 1.0 (spec weight-formats §5)
      log_line(LogLevel::kWarn, "--kv-cache-dtype " + o.kv_cache_dtype + ": " +
                                    std::to_string(unscaled) +
                                    " layer(s) have no k_scale/v_scale in the checkpoint; using "
                                    "1.0 (may cost accuracy)");
  }
  // KV budget: on a device vLLM's --gpu-memory-utilization share of its memory, less what the
  // weights took and the largest step's activations; on the CPU --cpu-kv-cache-gb. It must hold
  // one max_model_len request; --max-num-seqs only caps concurrency (engine/kv_plan.h).
  const int step_tokens = o.max_num_batched_tokens.value_or(
      o.enable_chunked_prefill ? 2048 : o.max_model_len.value_or(cfg.max_position_embeddings));
  KvPlanRequest kvr;
  for (const kv::GroupLayout& g : model.kv_layout())
    kvr.groups.push_back({kv::KVStorage::bytes_per_token(g, kv_dtype), g.sliding_window});
  kvr.budget_bytes = static_cast<int64_t>(o.cpu_kv_cache_gb * (1ull << 30));
  kvr.budget_flag = str_cat("--cpu-kv-cache-gb ", o.cpu_kv_cache_gb);
  kvr.step_tokens = step_tokens;
  kvr.max_num_seqs = o.max_num_seqs;
  if (o.speculative_config.is_object() &&  // rejected drafts roll back (engine.cpp kv_options)
      o.speculative_config.contains("num_speculative_tokens") &&
      o.speculative_config["num_speculative_tokens"].is_number_integer())
    kvr.max_rollback = static_cast<int>(std::clamp<int64_t>(
                           o.speculative_config["num_speculative_tokens"].get<int64_t>(), 0, 16)) +
                       2;
  if (const std::optional<DeviceMemory> dm = be.memory()) {
    const int64_t logit_rows = int64_t{o.max_num_seqs} * 8;  // last rows + speculative ones
    const int64_t act = activation_bytes(cfg, step_tokens, logit_rows);
    kvr.budget_bytes = device_kv_budget(*dm, o.gpu_memory_utilization, act);
    kvr.budget_flag = str_cat("--gpu-memory-utilization ", o.gpu_memory_utilization);
    log_line(
        LogLevel::kInfo,
        str_cat("device memory: ", dm->total >> 20, " MiB, in use ", (dm->total - dm->free) >> 20,
                " MiB after loading; activations up to ", act >> 20, " MiB; KV cache ",
                kvr.budget_bytes >> 20, " MiB (", kvr.budget_flag, ")"));
  }
  if (o.max_model_len && *o.max_model_len > cfg.max_position_embeddings)
    fail("--max-model-len ", *o.max_model_len, " exceeds the model's max_position_embeddings ",
         cfg.max_position_embeddings);
  // Without --max-model-len: the model's length, or the largest that one request can fill.
  int max_len = o.max_model_len.value_or(cfg.max_position_embeddings);
  if (!o.max_model_len && kvr.budget_bytes > 0) {
    const int fits = largest_fitting_max_model_len(kvr, max_len);
    if (fits > 0 && fits < max_len) {
      log_line(LogLevel::kInfo,
               str_cat("max_model_len ", fits, " (the most one request can use in ",
                       kvr.budget_flag, "; the model allows ", max_len, ")"));
      max_len = fits;
    }
  }
  kvr.max_model_len = max_len;
  const KvPlan kv_plan = plan_kv_cache(kvr);
  log_line(LogLevel::kInfo, describe_kv_plan(kvr, kv_plan));
  const int64_t kv_tokens = kv_plan.full_tokens > 0 ? kv_plan.full_tokens : kv_plan.sliding_tokens;

  EngineConfig ec;
  ec.kv_tokens = kv_tokens;
  ec.kv_sliding_tokens = kv_plan.sliding_tokens;
  ec.kv_dtype = kv_dtype;
  ec.scheduler.max_num_seqs = o.max_num_seqs;
  ec.scheduler.max_model_len = max_len;
  ec.scheduler.enable_chunked_prefill = o.enable_chunked_prefill;
  ec.scheduler.enable_prefix_caching = o.enable_prefix_caching;
  ec.scheduler.max_num_batched_tokens =
      o.max_num_batched_tokens.value_or(o.enable_chunked_prefill ? 2048 : max_len);
  // Multimodal: the vision tower as the image / video encoder (server/media_request.h).
  std::unique_ptr<gemma4::VisionTower> vision;
  if (gemma4::has_vision_tower(cfg, *ckpt)) {
    vision = std::make_unique<gemma4::VisionTower>(cfg, *ckpt, be, mo.load);
    ec.encoders.push_back(vision.get());
    configure_encoder_budget(o, cfg, ec);
  }
  // The audio tower as the audio encoder (server/audio_request.h; at most 750 soft tokens a clip).
  std::unique_ptr<gemma4::AudioEncoder> audio;
  if (gemma4::has_audio_tower(cfg, *ckpt)) {
    audio = std::make_unique<gemma4::AudioEncoder>(o.model, cfg, ckpt, be, mo.load);
    ec.encoders.push_back(audio.get());
    if (!vision) {
      ec.scheduler.encoder_compute_budget = std::max(ec.scheduler.max_num_batched_tokens, 1120);
      ec.scheduler.encoder_cache_size =
          std::max<int64_t>(ec.scheduler.encoder_compute_budget, o.mm_encoder_cache_tokens);
    }
  }
  DrafterSetup drafter;  // outlives the engine
  if (!o.speculative_config.is_null())
    setup_speculation(o.speculative_config, model, be, mo.bf16_embed_scale, kv_tokens,
                      o.max_num_seqs, max_len, ec, drafter);
  Engine engine(model, be, ec);
  Metrics metrics;
  ServingContext ctx{
      o,       tokenizer, tmpl, tsrc, gen, engine, metrics, {}, o.served_model_names[0],
      max_len, {},        {},   {}};
  if (vision || audio) ctx.media = std::make_shared<MediaContext>(o, cfg);
  ctx.constraints = make_constraint_compiler(tokenizer, cfg.vocab_size);
  ctx.structured_config = parse_structured_outputs_config(o.structured_outputs_config);
  ctx.eos_ids = gen.eos_token_ids.empty()
                    ? std::vector<int32_t>(cfg.eos_token_ids.begin(), cfg.eos_token_ids.end())
                    : gen.eos_token_ids;
  if (ctx.eos_ids.empty()) ctx.eos_ids = {tokenizer.gemma4_ids().eos};
  HttpServer http(ctx);

  // Bind before anything else can go wrong, and before signals are handled, so that a port clash
  // or a bad host is reported as exactly that.
  const int port = http.bind(o.host, o.port);
  raise_open_file_limit(o.max_connections);

  // Signals (blocked in every thread since the start) are taken by this thread: the first
  // SIGTERM / SIGINT drains (new requests 503, in-flight ones get --shutdown-timeout), a second
  // one exits at once.
  std::atomic<bool> serving_done{false};
  std::thread signals([&] {
    int received = 0;
    while (!serving_done) {
      timespec tick{0, 100 * 1000 * 1000};
      const int sig = sigtimedwait(&sigs, nullptr, &tick);
      if (sig < 0) continue;
      const char* name = sig == SIGTERM ? "SIGTERM" : "SIGINT";
      if (++received > 1) {
        log_line(LogLevel::kWarn, std::string("received ") + name + " again: exiting now");
        std::_Exit(128 + sig);
      }
      log_line(LogLevel::kInfo,
               str_cat("received ", name, ": draining (new requests get 503; in-flight requests ",
                       "have up to --shutdown-timeout ", o.shutdown_timeout_s,
                       " s to finish; a second signal exits at once)"));
      http.begin_drain(o.shutdown_timeout_s);
    }
  });
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  char line[256];
  std::snprintf(
      line, sizeof line,
      "ready: serving %s as '%s' on http://%s:%d (max_model_len %d, KV %lld tokens %s, %d threads) "
      "after %.2f s",
      o.model.c_str(), ctx.model_name.c_str(), o.host.c_str(), port, max_len,
      static_cast<long long>(kv_tokens), std::string(dtype_name(kv_dtype)).c_str(), pool.size(),
      secs);
  log_line(LogLevel::kInfo, line);
  http.serve();
  if (const int left = http.stats().requests_in_flight; left > 0)
    log_line(LogLevel::kWarn,
             str_cat("stopped serving with ", left, " request(s) not finished in time (aborted)"));
  else
    log_line(LogLevel::kInfo, "drained: no request in flight");
  engine.shutdown(false);
  serving_done = true;
  signals.join();
  log_line(LogLevel::kInfo, "stopped");
  return 0;
}

}  // namespace fc::cli
