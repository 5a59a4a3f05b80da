// Fuzzes the OpenAI request path at the C++ function level, end to end on the bundled tiny model
// (models/tiny-gemma4): a body (JSON, parsed with the depth bound) goes through
// parse_chat_request -> normalisation -> chat template -> tokenizer -> engine -> output parser ->
// response JSON or SSE events (start_chat -> ResponseJob, run to its end on this thread), through
// parse_completion_request -> start_completion, and through what /tokenize does (prepare_chat,
// or encoding "prompt"). Generation is capped at 2 tokens so one input runs in milliseconds.
// Client errors must be fc::Error (ApiError -> 4xx); any other exception would be a 500, and is
// a finding like a crash or a sanitizer report.
#include <memory>
#include <string>

#include "backend/cpu/cpu_backend.h"
#include "chat/chat_template.h"
#include "core/error.h"
#include "core/json_limits.h"
#include "core/thread_pool.h"
#include "engine/engine.h"
#include "io/safetensors.h"
#include "model/gemma4/model.h"
#include "server/metrics.h"
#include "server/model_files.h"
#include "server/serve_options.h"
#include "server/serving.h"
#include "server/structured_serving.h"
#include "tests/fuzz/fuzz_util.h"
#include "tokenizer/tokenizer.h"

namespace {

using nlohmann::json;

// Everything a running server holds, built once (never destroyed: the engine thread lives for
// the whole run).
struct Server {
  fc::ServeOptions opts;
  fc::ThreadPool pool{1};
  fc::cpu::CpuBackend be{pool};
  std::unique_ptr<fc::gemma4::Model> model;
  std::unique_ptr<fc::tok::Tokenizer> tok;
  fc::ChatTemplateSource tsrc;
  std::unique_ptr<fc::chat::Template> tmpl;
  fc::GenerationConfig gen;
  std::unique_ptr<fc::Engine> engine;
  fc::Metrics metrics;
  std::unique_ptr<fc::ServingContext> ctx;

  Server() {
    const std::string dir = fc::fuzz::source_dir() + "/models/tiny-gemma4";
    opts.model = dir;
    opts.served_model_names = {"tiny"};
    opts.enable_auto_tool_choice = true;
    opts.tool_call_parser = "gemma4";
    opts.reasoning_parser = "gemma4";
    fc::gemma4::Config cfg = fc::gemma4::load_config(dir);
    model = std::make_unique<fc::gemma4::Model>(cfg, fc::Checkpoint::open_dir(dir), be);
    tok = std::make_unique<fc::tok::Tokenizer>(
        fc::tok::Tokenizer::from_file(dir + "/tokenizer.json"));
    tsrc = fc::load_chat_template(dir, "");
    tmpl = std::make_unique<fc::chat::Template>(fc::chat::Template::parse(tsrc.text));
    if (auto g = fc::load_generation_config_if_present(dir + "/generation_config.json")) gen = *g;
    fc::EngineConfig ec;
    ec.kv_tokens = 2048;
    ec.scheduler.max_num_seqs = 4;
    ec.scheduler.max_model_len = 1024;
    ec.scheduler.max_num_batched_tokens = 1024;
    engine = std::make_unique<fc::Engine>(*model, be, ec);
    ctx = std::make_unique<fc::ServingContext>(fc::ServingContext{
        opts, *tok, *tmpl, tsrc, gen, *engine, metrics, {}, "tiny", 1024, {}, {}, {}});
    ctx->constraints = fc::make_constraint_compiler(*tok, cfg.vocab_size);  // structured outputs
    ctx->eos_ids = {1, 106, 50};
  }
};

Server& server() {
  static Server* s = new Server();
  return *s;
}

template <class Req>
void cap(Req& r) {
  r.max_tokens = std::min<int64_t>(r.max_tokens.value_or(2), 2);
  r.n = std::min(r.n, 2);
}

// Runs a job as the HTTP layer would (pump until complete), taking every SSE event; for a JSON
// response, serializes the body.
void run(std::unique_ptr<fc::ResponseJob> job) {
  const nlohmann::json out = fc::run_to_end(*job, [](const std::string& data) {
    (void)data;
    return true;
  });
  (void)out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  server();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Server& s = server();
  json body;
  try {
    body = fc::parse_json(std::string_view(reinterpret_cast<const char*>(data), size), "body", 64);
  } catch (const fc::Error&) {
    return 0;
  }
  if (!body.is_object()) return 0;
  if (body.contains("messages")) {
    try {  // /tokenize with messages
      fc::ChatRequest r = fc::parse_chat_request(body);
      (void)fc::prepare_chat(*s.ctx, r);
    } catch (const fc::Error&) {
    }
    try {  // /v1/chat/completions
      fc::ChatRequest r = fc::parse_chat_request(body);
      cap(r);
      run(fc::start_chat(*s.ctx, r));
    } catch (const fc::Error&) {
    }
  }
  if (body.contains("prompt")) {
    try {  // /tokenize with a prompt string
      if (body["prompt"].is_string()) (void)s.tok->encode(body["prompt"].get<std::string>());
    } catch (const fc::Error&) {
    }
    try {  // /v1/completions
      fc::CompletionRequest r = fc::parse_completion_request(body);
      cap(r);
      run(fc::start_completion(*s.ctx, r));
    } catch (const fc::Error&) {
    }
  }
  return 0;
}
