#include "apps/cli/commands.h"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "apps/cli/args.h"
#include "apps/cli/backend_select.h"
#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/matmul.h"
#include "core/error.h"
#include "core/json_limits.h"
#include "core/log.h"
#include "core/thread_pool.h"
#include "engine/generate.h"
#include "io/safetensors.h"
#include "kv/kv_storage.h"
#include "model/gemma4/model.h"
#include "model/gemma4/synth.h"
#include "model/gemma4/synth_drafters.h"
#include "sample/generation_config.h"
#include "tokenizer/tokenizer.h"

namespace fc::cli {

int cmd_generate(int argc, char** argv) {
  Args a(argc, argv, 2,
         {"--model", "--prompt-ids", "--max-tokens", "--temperature", "--top-k", "--top-p",
          "--min-p", "--seed", "--threads", "--prefill-chunk", "--repetition-penalty",
          "--kv-cache-dtype", "--nvfp4-mode", "--device", "--lm-head-dtype"},
         {"--ignore-eos", "--zero-nan-scales", "--cpu-prefill-int8", "--cpu-decode-int8",
          "--cpu-weights-mmap"});
  const std::string dir = a.require("--model");
  const std::vector<int32_t> prompt = parse_id_list(a.require("--prompt-ids"), "--prompt-ids");
  ThreadPool pool(a.get_int("--threads", hardware_threads()));
  const std::string mode = a.get("--nvfp4-mode").value_or("w4a16");
  if (mode != "w4a16" && mode != "w4a4") fail("--nvfp4-mode: '", mode, "' is not w4a16 or w4a4");
  const std::unique_ptr<Backend> backend = make_backend(
      a.get("--device").value_or("cpu"), pool, mode == "w4a4", a.has("--cpu-prefill-int8"),
      a.has("--cpu-decode-int8"), a.has("--cpu-weights-mmap"));
  Backend& be = *backend;
  gemma4::Config cfg = gemma4::load_config(dir);
  std::shared_ptr<const Checkpoint> ckpt = Checkpoint::open_dir(dir);
  gemma4::ModelOptions mo;
  mo.load.zero_bad_scales = a.has("--zero-nan-scales");
  // Serve as HF would at the checkpoint's dtype: bf16 checkpoints round the embedding scale.
  const TensorInfo* emb = ckpt->find(cfg.tensor_prefix + "embed_tokens.weight");
  mo.bf16_embed_scale = emb && emb->dtype == DType::kBF16;
  mo.lm_head_dtype = gemma4::parse_lm_head_dtype(a.get("--lm-head-dtype").value_or("checkpoint"));
  gemma4::Model model(cfg, ckpt, be, mo);

  GenerationConfig gen;
  if (auto g = load_generation_config_if_present(dir + "/generation_config.json")) gen = *g;
  RequestSampling req;
  if (a.has("--temperature")) req.temperature = a.get_double("--temperature", 1.0);
  if (a.has("--top-k")) req.top_k = a.get_int("--top-k", 0);
  if (a.has("--top-p")) req.top_p = a.get_double("--top-p", 1.0);
  if (a.has("--min-p")) req.min_p = a.get_double("--min-p", 0.0);
  if (a.has("--repetition-penalty"))
    req.repetition_penalty = a.get_double("--repetition-penalty", 1.0);
  if (a.has("--seed")) req.seed = a.get_int("--seed", 0);
  GenerateOptions go;
  go.sampling = resolve_sampling_params(req, gen, {});
  go.max_tokens = a.get_int("--max-tokens", 16);
  FC_CHECK(go.max_tokens >= 1, "--max-tokens must be >= 1");
  go.prefill_chunk = a.get_int("--prefill-chunk", 512);
  if (!a.has("--ignore-eos"))
    go.stop_ids = gen.eos_token_ids.empty()
                      ? std::vector<int32_t>(cfg.eos_token_ids.begin(), cfg.eos_token_ids.end())
                      : gen.eos_token_ids;
  SessionOptions so;
  so.max_seqs = 1;
  so.max_tokens = static_cast<int64_t>(prompt.size()) + go.max_tokens + 16;
  so.max_step_tokens = go.prefill_chunk;
  const std::string kvd = a.get("--kv-cache-dtype").value_or("auto");
  if (kvd == "fp8" || kvd == "fp8_e4m3")
    so.kv_dtype = DType::kF8_E4M3;
  else if (kvd == "bfloat16")
    so.kv_dtype = DType::kBF16;
  else if (kvd != "auto")
    fail("--kv-cache-dtype: '", kvd, "' is not one of auto, bfloat16, fp8, fp8_e4m3");
  Session session(model, be, so);
  GenerateResult r = generate(session, 1, prompt, go);
  std::string ids;
  for (size_t i = 0; i < r.tokens.size(); ++i) ids += (i ? "," : "") + std::to_string(r.tokens[i]);
  std::printf("%s\n", ids.c_str());
  const double dec = r.tokens.size() > 1 ? (r.tokens.size() - 1) / r.decode_seconds : 0;
  std::fprintf(stderr,
               "finish=%s prompt=%zu tokens prefill %.1f tok/s, generated=%zu decode %.2f tok/s\n",
               r.finish_reason.c_str(), prompt.size(), prompt.size() / r.prefill_seconds,
               r.tokens.size(), dec);
  return 0;
}

int cmd_inspect(int argc, char** argv) {
  Args a(argc, argv, 2, {"--model"}, {});
  const std::string dir = a.require("--model");
  gemma4::Config cfg = gemma4::load_config(dir);
  std::shared_ptr<const Checkpoint> ckpt = Checkpoint::open_dir(dir);
  ThreadPool pool(1);
  cpu::CpuBackend be(pool);
  gemma4::Model model(cfg, ckpt, be);  // binds and validates every tensor
  std::printf("%s", gemma4::describe(cfg).c_str());
  std::printf("\ntensors (%s):\n", dir.c_str());
  std::map<std::string, int> dtype_count;
  for (const TensorInfo* t : ckpt->all()) {
    std::printf("  %-72s %-8s %s\n", t->name.c_str(), std::string(dtype_name(t->dtype)).c_str(),
                shape_str(t->shape).c_str());
    dtype_count[std::string(dtype_name(t->dtype))]++;
  }
  std::printf("\ndtypes:");
  for (const auto& [d, n] : dtype_count) std::printf(" %s x%d", d.c_str(), n);
  std::printf("\ntext-model parameters: %lld (%.3f B)\n",
              static_cast<long long>(model.weights().parameter_count),
              model.weights().parameter_count / 1e9);
  std::printf("checkpoint bytes: %llu\n", static_cast<unsigned long long>(ckpt->total_bytes()));
  if (!model.weights().unused.empty()) {
    std::printf("unused text-model tensors (%zu):", model.weights().unused.size());
    for (const std::string& n : model.weights().unused) std::printf(" %s", n.c_str());
    std::printf("\n");
  }
  std::printf("\nKV cache per token (fp32 K+V):\n");
  int64_t total = 0;
  for (const kv::GroupLayout& g : model.kv_layout()) {
    const int64_t per_layer = int64_t{2} * g.num_kv_heads * g.head_dim * 4;
    std::printf("  %-18s %2zu layers x %lld bytes = %lld bytes/token%s\n",
                g.sliding_window ? "sliding_attention" : "full_attention", g.layers.size(),
                static_cast<long long>(per_layer),
                static_cast<long long>(per_layer * g.layers.size()),
                g.sliding_window
                    ? (" (at most " + std::to_string(g.sliding_window) + " tokens held)").c_str()
                    : "");
    total += per_layer * static_cast<int64_t>(g.layers.size());
  }
  std::printf("  total              %lld bytes/token (KV-shared layers hold none)\n",
              static_cast<long long>(total));
  return 0;
}

namespace {

// The ids a tokenizer file can print (EAGLE-3 draft vocabularies and damped embedding rows).
std::vector<int32_t> tokenizer_ids(const std::string& path) {
  const tok::Tokenizer t = tok::Tokenizer::from_file(path);
  std::vector<int32_t> ids;
  for (int32_t id = 0; id < t.id_bound(); ++id)
    if (t.id_to_token(id)) ids.push_back(id);
  return ids;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// `synth --copy-of / --eagle3-for / --assistant-for`: drafters made for a target checkpoint.
int synth_drafter(const Args& a, const std::string& out) {
  const auto t0 = std::chrono::steady_clock::now();
  const uint64_t seed = static_cast<uint64_t>(a.get_int("--seed", 1));
  char buf[256];
  if (auto src = a.get("--copy-of")) {
    gemma4::CopyOptions o;
    o.noise = a.get_double("--noise", 0.0);
    o.seed = seed;
    o.max_shard_bytes = static_cast<uint64_t>(a.get_double("--shard-gb", 4.0) * (1ull << 30));
    log_line(LogLevel::kInfo, "synth: copying " + *src + " to " + out);
    const gemma4::CopyReport r = gemma4::write_copy(*src, out, o);
    std::snprintf(buf, sizeof buf,
                  "synth: wrote %lld tensors (%.2f GB; noise %g: %lld dense perturbed, %lld NVFP4 "
                  "re-coded) in %.1f s",
                  static_cast<long long>(r.tensors), r.bytes / 1e9, o.noise,
                  static_cast<long long>(r.perturbed), static_cast<long long>(r.repacked),
                  seconds_since(t0));
  } else if (auto target = a.get("--eagle3-for")) {
    gemma4::Eagle3SynthOptions o;
    o.seed = seed;
    o.draft_vocab_size = a.get_int("--draft-vocab", 32000);
    o.verifier = *target;
    // Ids the target's tokenizer has go into the draft vocabulary first.
    const std::string tpath = a.get("--tokenizer").value_or(*target + "/tokenizer.json");
    if (std::filesystem::exists(tpath)) o.preferred_ids = tokenizer_ids(tpath);
    log_line(LogLevel::kInfo, "synth: writing an EAGLE-3 head for " + *target + " to " + out);
    const int64_t n = gemma4::write_eagle3_for(*target, out, o);
    std::snprintf(buf, sizeof buf, "synth: wrote %lld parameters in %.1f s",
                  static_cast<long long>(n), seconds_since(t0));
  } else {
    const std::string base = a.require("--assistant-for");
    gemma4::AssistantSynthOptions o;
    o.seed = seed;
    o.num_centroids = a.get_int("--centroids", -1);
    o.centroid_top_k = a.get_int("--centroid-top-k", 32);
    log_line(LogLevel::kInfo, "synth: writing a gemma4_assistant for " + base + " to " + out);
    const int64_t n = gemma4::write_assistant_for(base, out, o);
    std::snprintf(buf, sizeof buf, "synth: wrote %lld parameters in %.1f s",
                  static_cast<long long>(n), seconds_since(t0));
  }
  log_line(LogLevel::kInfo, buf);
  return 0;
}

}  // namespace

int cmd_synth(int argc, char** argv) {
  Args a(argc, argv, 2,
         {"--shape", "--out", "--seed", "--shard-gb", "--tokenizer", "--quant", "--copy-of",
          "--noise", "--threads", "--eagle3-for", "--assistant-for", "--draft-vocab", "--centroids",
          "--centroid-top-k"},
         {"--attn-bf16", "--w4a16"});
  const std::string out = a.require("--out");
  const int modes =
      a.has("--shape") + a.has("--copy-of") + a.has("--eagle3-for") + a.has("--assistant-for");
  if (modes != 1)
    fail("synth: give exactly one of --shape, --copy-of, --eagle3-for, --assistant-for");
  if (a.has("--noise") && !a.has("--copy-of")) fail("synth: --noise needs --copy-of");
  if (!a.has("--shape")) return synth_drafter(a, out);
  const std::string shape = a.require("--shape");
  nlohmann::json cfg;
  if (shape.size() > 5 && shape.substr(shape.size() - 5) == ".json") {
    cfg = read_json_file(shape);
  } else {
    cfg = gemma4::shape_config(shape);
  }
  gemma4::SynthOptions so;
  so.seed = static_cast<uint64_t>(a.get_int("--seed", 1));
  so.max_shard_bytes = static_cast<uint64_t>(a.get_double("--shard-gb", 4.0) * (1ull << 30));
  const std::string quant = a.get("--quant").value_or("none");
  if (quant == "modelopt")
    so.quant = gemma4::SynthOptions::Quant::kModelOpt;
  else if (quant == "compressed-tensors")
    so.quant = gemma4::SynthOptions::Quant::kCompressedTensors;
  else if (quant != "none")
    fail("synth: --quant '", quant, "' is not one of none, modelopt, compressed-tensors");
  so.quantize_attention = !a.has("--attn-bf16");
  so.input_scales = !a.has("--w4a16");
  so.threads = static_cast<int>(a.get_int("--threads", hardware_threads()));
  // Also copy the tokenizer (below) so the checkpoint can be served.
  if (auto tpath = a.get("--tokenizer")) so.used_ids = tokenizer_ids(*tpath);
  log_line(LogLevel::kInfo, "synth: writing " + shape + " to " + out);
  const int64_t n = gemma4::write_synthetic(cfg, out, so);
  if (auto tpath = a.get("--tokenizer"))
    std::filesystem::copy_file(*tpath, out + "/tokenizer.json",
                               std::filesystem::copy_options::overwrite_existing);
  log_line(LogLevel::kInfo, "synth: wrote " + std::to_string(n) + " parameters");
  return 0;
}

}  // namespace fc::cli
