// End-to-end CPU prefill and decode throughput of a Gemma 4 checkpoint (use `fourcast synth` for
// the real geometry), with the weight bytes each decode step reads, the achieved bytes/s, and the
// machine's read bandwidth measured in the same run. Not a test: it prints figures.
//   bench_model --model DIR [--model DIR2 ...] [--threads N] [--prompt-len 256] [--decode-tokens
//   16] [--reps 2] [--nvfp4-isa auto|avx512-bf16|avx512|avx2-i16|avx2|scalar]
//   [--lm-head-dtype checkpoint|bf16|nvfp4] [--cpu-prefill-int8] [--cpu-decode-int8]
//   [--cpu-weights-mmap] [--profile-ops]
// --cpu-weights-mmap: weights used in place from the checkpoint mapping (CpuOptions::copy_weights
// off; the load line then shows no copy);
// --profile-ops prints the per-op wall time of the fastest prefill and of the fastest decode
// window (bench/op_profile.h);
// --cpu-prefill-int8 / --cpu-decode-int8 run NVFP4 prefill / decode steps in the opt-in int8
// kernels (CpuOptions).
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/matmul.h"
#include "backend/cpu/nvfp4_matmul.h"
#include "bench/bench_util.h"
#include "bench/model_bytes.h"
#include "bench/op_profile.h"
#include "core/dtype.h"
#include "model/gemma4/model.h"
#include "spec/session.h"

namespace {

const char* flag(int argc, char** argv, const char* name, const char* dflt) {
  for (int i = 1; i + 1 < argc; ++i)
    if (!std::strcmp(argv[i], name)) return argv[i + 1];
  return dflt;
}

bool has_flag(int argc, char** argv, const char* name) {
  for (int i = 1; i < argc; ++i)
    if (!std::strcmp(argv[i], name)) return true;
  return false;
}

}  // namespace

struct Result {
  std::string dir;
  int64_t wbytes = 0;
  double prefill_tps = 0, decode_tps = 0;
  // The bandwidth probe around the decode window that gave the best ratio of decode bytes/s to
  // bandwidth (the larger of the probes just before and just after it), and that ratio.
  double paired_bw = 0, paired_ratio = 0;
};

// Loads one model, times a prefill of prompt_len random tokens and decode_tokens single-token
// steps (best of reps), and folds the bandwidth probe's readings into `bw`. Each decode window
// is bracketed by probes: on a shared machine the available bandwidth changes from second to
// second, so a decode window is compared with the bandwidth measured right around it.
// profile: when not null, `be` is it (wrapping the CPU backend), and the per-op times of the
// fastest prefill are printed.
Result bench_one(const std::string& dir, fc::Backend& be, fc::ThreadPool& pool,
                 fc::bench::BandwidthProbe& probe, int prompt_len, int decode_tokens, int reps,
                 fc::gemma4::LmHeadDType head, double& bw, fc::bench::TimedBackend* profile) {
  using namespace fc;
  const auto t_load = bench::Clock::now();
  gemma4::ModelOptions mo;
  mo.bf16_embed_scale = true;
  mo.lm_head_dtype = head;
  gemma4::Model model(gemma4::load_config(dir), Checkpoint::open_dir(dir), be, mo);
  const double load_s = bench::seconds_since(t_load);
  Result res;
  res.dir = dir;
  res.wbytes = bench::decode_weight_bytes(model);
  std::printf(
      "model %s: %.3f B params (%lld NVFP4 linears), load %.2f s, matmul isa %s, "
      "threads %d\n",
      dir.c_str(), model.weights().parameter_count / 1e9,
      static_cast<long long>(model.weights().nvfp4_linears), load_s, cpu::matmul_isa(),
      pool.size());
  std::printf("weight bytes read per decode token: %.3f GB\n", res.wbytes / 1e9);
  const bench::DecodeBytes parts = bench::decode_bytes_by_part(model);
  const std::string head_format = model.weights().lm_head.nvfp4()
                                      ? std::string("NVFP4")
                                      : std::string(dtype_name(model.weights().lm_head.dtype));
  std::printf(
      "  of which: LM head %.1f MB (%s), layer linears %.1f MB, PLE projection %.1f MB, embedding "
      "rows %.3f MB; not counted: norm vectors %.3f MB, KV %.3f MB at context %d (fp32 cache)\n",
      parts.lm_head / 1e6, head_format.c_str(), parts.linears / 1e6, parts.ple_projection / 1e6,
      parts.embedding_rows / 1e6, parts.norms / 1e6,
      bench::decode_kv_bytes(model, prompt_len + decode_tokens, DType::kF32) / 1e6,
      prompt_len + decode_tokens);
  SessionOptions so;
  so.max_seqs = 1;
  so.max_tokens = prompt_len + decode_tokens + 16;
  so.max_step_tokens = prompt_len;
  Session s(model, be, so);
  std::mt19937 rng(7);
  std::vector<int32_t> prompt(static_cast<size_t>(prompt_len));
  const int32_t vocab = static_cast<int32_t>(model.config().vocab_size);
  for (int32_t& t : prompt) t = 3 + static_cast<int32_t>(rng() % static_cast<uint32_t>(vocab - 3));
  gemma4::ForwardOutput out;
  double best_prefill = 1e30, best_decode = 1e30;
  std::map<std::string, std::pair<double, long>> best_ops, best_decode_ops;
  for (int r = 0; r < reps; ++r) {
    s.add(r);
    if (profile) profile->reset();
    auto t0 = bench::Clock::now();
    s.run({{r, prompt, {prompt_len - 1}, {}}}, out);
    const double prefill_s = bench::seconds_since(t0);
    if (prefill_s < best_prefill && profile) best_ops = profile->times();
    best_prefill = std::min(best_prefill, prefill_s);
    int32_t tok = 3;
    const double bw_before = probe.measure();
    if (profile) profile->reset();
    t0 = bench::Clock::now();
    for (int i = 0; i < decode_tokens; ++i) {
      s.run({{r, {tok}, {0}, {}}}, out);
      tok = 3 + (tok * 7919) % (vocab - 3);  // any token: timing does not depend on the value
    }
    const double per_token = bench::seconds_since(t0) / decode_tokens;
    const double bw_after = probe.measure();
    if (per_token < best_decode && profile) best_decode_ops = profile->times();
    best_decode = std::min(best_decode, per_token);
    const double around = std::max(bw_before, bw_after);
    const double ratio = static_cast<double>(res.wbytes) / per_token / around;
    if (ratio > res.paired_ratio) {
      res.paired_ratio = ratio;
      res.paired_bw = around;
    }
    bw = std::max({bw, bw_before, bw_after});
    s.remove(r);
  }
  if (profile) {
    std::printf("per-op wall time of the fastest %d-token prefill (%.3f s):\n", prompt_len,
                best_prefill);
    bench::TimedBackend view(be);
    view.set_times(best_ops);
    view.print(best_prefill);
    std::printf("per-op wall time of the fastest %d-token decode window (%.4f s per token):\n",
                decode_tokens, best_decode);
    view.set_times(best_decode_ops);
    view.print(best_decode * decode_tokens);
  }
  res.prefill_tps = prompt_len / best_prefill;
  res.decode_tps = 1.0 / best_decode;
  std::printf("prefill %d tokens: %.2f s, %.1f tok/s; decode (context %d..%d): %.2f tok/s\n",
              prompt_len, best_prefill, res.prefill_tps, prompt_len, prompt_len + decode_tokens,
              res.decode_tps);
  return res;
}

int main(int argc, char** argv) {
  using namespace fc;
  std::vector<std::string> dirs;
  for (int i = 1; i + 1 < argc; ++i)
    if (!std::strcmp(argv[i], "--model")) dirs.push_back(argv[i + 1]);
  if (dirs.empty()) {
    std::fprintf(stderr,
                 "usage: bench_model --model DIR [--model DIR2 ...] [--threads N] [--prompt-len N] "
                 "[--decode-tokens N] [--reps N]\n");
    return 2;
  }
  const int threads = std::atoi(flag(argc, argv, "--threads", "0"));
  const int prompt_len = std::atoi(flag(argc, argv, "--prompt-len", "256"));
  const int decode_tokens = std::atoi(flag(argc, argv, "--decode-tokens", "16"));
  const int reps = std::atoi(flag(argc, argv, "--reps", "2"));
  const std::string isa_name = flag(argc, argv, "--nvfp4-isa", "auto");
  bool known = false;
  cpu::CpuOptions co;
  co.nvfp4_isa = bench::isa_from_name(isa_name, &known);
  if (!known || !cpu::matmul_isa_supported(co.nvfp4_isa)) {
    std::fprintf(stderr, "bench_model: --nvfp4-isa %s is unknown or not supported here\n",
                 isa_name.c_str());
    return 2;
  }
  try {
    const gemma4::LmHeadDType head =
        gemma4::parse_lm_head_dtype(flag(argc, argv, "--lm-head-dtype", "checkpoint"));
    ThreadPool pool(threads > 0 ? threads : hardware_threads());
    co.prefill_int8 = has_flag(argc, argv, "--cpu-prefill-int8");
    co.decode_int8 = has_flag(argc, argv, "--cpu-decode-int8");
    co.copy_weights = !has_flag(argc, argv, "--cpu-weights-mmap");
    cpu::CpuBackend cpu_be(pool, co);
    std::unique_ptr<bench::TimedBackend> timed;
    if (has_flag(argc, argv, "--profile-ops"))
      timed = std::make_unique<bench::TimedBackend>(cpu_be);
    Backend& be = timed ? static_cast<Backend&>(*timed) : static_cast<Backend&>(cpu_be);
    if (co.prefill_int8) std::printf("prefill: int8 activations (--cpu-prefill-int8)\n");
    if (co.decode_int8) std::printf("decode: int8 activations (--cpu-decode-int8)\n");
    if (co.nvfp4_isa == cpu::MatmulIsa::kAuto) {
      std::printf("nvfp4 kernels: %s (direct: %s)\n", cpu::nvfp4_matmul_isa(),
                  cpu::nvfp4_direct_kernels());
    } else {
      std::printf("nvfp4 kernels: %s\n", isa_name.c_str());
    }
    bench::BandwidthProbe probe(pool, size_t{1} << 30);
    std::vector<Result> results;
    double bw = 0;
    for (const std::string& dir : dirs)
      results.push_back(
          bench_one(dir, be, pool, probe, prompt_len, decode_tokens, reps, head, bw, timed.get()));
    std::printf("\nweights copied to huge-page memory at load: %.2f GB%s\n",
                static_cast<double>(cpu_be.weight_bytes_copied()) / 1e9,
                !co.copy_weights               ? " (--cpu-weights-mmap)"
                : cpu_be.weight_copy_stopped() ? " (stopped for want of memory: the rest in place)"
                                               : "");
    std::printf("memory read bandwidth (1 GiB, %d threads, best of the run): %.2f GB/s\n",
                pool.size(), bw / 1e9);
    std::printf(
        "decode GB/s: best decode window; of bw: against the best probe of the run; paired: the\n"
        "window with the best ratio against the larger probe taken just before / after it\n");
    std::printf("%-34s %8s %11s %10s %11s %7s %10s %7s\n", "model", "GB/token", "prefill t/s",
                "decode t/s", "decode GB/s", "of bw", "paired bw", "paired");
    for (const Result& r : results)
      std::printf("%-34s %8.3f %11.1f %10.2f %11.2f %6.0f%% %10.2f %6.0f%%\n", r.dir.c_str(),
                  r.wbytes / 1e9, r.prefill_tps, r.decode_tps, r.wbytes * r.decode_tps / 1e9,
                  100.0 * r.wbytes * r.decode_tps / bw, r.paired_bw / 1e9, 100.0 * r.paired_ratio);
    if (probe.checksum() == 42) std::printf(" ");  // keep the probe's reads observable
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_model: %s\n", e.what());
    return 1;
  }
  return 0;
}
