// What `--lm-head-dtype` costs in quality and saves in bytes: one checkpoint loaded twice (the
// exact head as stored, and the head re-made at load time), the same token sequence run through
// both, and per position KL(p_exact ‖ p_head) of the next-token distributions (full vocabulary,
// fp32 logits after the softcap; quantizer::compare_logits), its max, top-1 agreement, and the
// decode weight bytes per token of each (bench/model_bytes.h). Not a test: figures only.
//   bench_lm_head_kl --model DIR [--lm-head-dtype nvfp4|bf16] [--tokens 256] [--threads N]
//                    [--text FILE] [--cpu-prefill-int8 | --cpu-decode-int8]
// --cpu-prefill-int8: the second run keeps the head (--lm-head-dtype, default checkpoint) and
// runs the NVFP4 linears in the opt-in int8 prefill kernels (CpuOptions::prefill_int8; every
// position is in one step, so all of them take that path): KL(exact ‖ int8 prefill).
// --cpu-decode-int8: the same with the opt-in int8 decode kernels (CpuOptions::decode_int8), the
// second run fed one token per step as decode does: KL(exact ‖ int8 decode).
// Tokens: the tokenizer of DIR on FILE, or on the built-in held-out evaluation text
// (quantizer/calib.h), BOS first; cut to --tokens.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "bench/bench_util.h"
#include "bench/model_bytes.h"
#include "core/error.h"
#include "model/gemma4/lm_head.h"
#include "model/gemma4/model.h"
#include "quantizer/calib.h"
#include "quantizer/eval.h"
#include "spec/session.h"
#include "tokenizer/tokenizer.h"

namespace {

const char* flag(int argc, char** argv, const char* name, const char* dflt) {
  for (int i = 1; i + 1 < argc; ++i)
    if (!std::strcmp(argv[i], name)) return argv[i + 1];
  return dflt;
}

// Logits [ids.size(), V] of every position of one sequence, and the model's decode bytes/token.
// one_by_one: one token per step (decode), else the whole sequence in one step (prefill).
std::vector<float> all_logits(const std::string& dir, std::shared_ptr<const fc::Checkpoint> ck,
                              fc::gemma4::LmHeadDType d, fc::cpu::CpuBackend& be,
                              const std::vector<int32_t>& ids, int64_t* decode_bytes,
                              bool one_by_one = false) {
  using namespace fc;
  const gemma4::Config cfg = gemma4::load_config(dir);
  gemma4::ModelOptions mo;
  const TensorInfo* emb = ck->find(cfg.tensor_prefix + "embed_tokens.weight");
  mo.bf16_embed_scale = emb && emb->dtype == DType::kBF16;
  mo.lm_head_dtype = d;
  const auto t0 = bench::Clock::now();
  gemma4::Model model(cfg, ck, be, mo);
  *decode_bytes = bench::decode_weight_bytes(model);
  std::printf("head %-10s: %s, load %.2f s, decode weight bytes/token %.4f GB\n",
              gemma4::lm_head_dtype_name(d), model.weights().lm_head.name.c_str(),
              bench::seconds_since(t0), static_cast<double>(*decode_bytes) / 1e9);
  SessionOptions so;
  so.max_seqs = 1;
  so.max_tokens = static_cast<int64_t>(ids.size()) + 16;
  so.max_step_tokens = static_cast<int64_t>(ids.size());
  Session s(model, be, so);
  s.add(0);
  gemma4::ForwardOutput out;
  if (one_by_one) {
    std::vector<float> all;
    for (int32_t id : ids) {
      s.run({{0, {id}, {0}, {}}}, out);
      all.insert(all.end(), out.logits.begin(), out.logits.end());
    }
    return all;
  }
  std::vector<int> rows(ids.size());
  for (size_t i = 0; i < rows.size(); ++i) rows[i] = static_cast<int>(i);
  s.run({{0, ids, rows, {}}}, out);
  return std::move(out.logits);
}

}  // namespace

int main(int argc, char** argv) {
  using namespace fc;
  const char* dir_c = flag(argc, argv, "--model", nullptr);
  if (!dir_c) {
    std::fprintf(stderr,
                 "usage: bench_lm_head_kl --model DIR [--lm-head-dtype nvfp4|bf16] [--tokens N] "
                 "[--threads N] [--text FILE] [--cpu-prefill-int8 | --cpu-decode-int8]\n");
    return 2;
  }
  const std::string dir = dir_c;
  const int n_tokens = std::max(2, std::atoi(flag(argc, argv, "--tokens", "256")));
  const int threads = std::atoi(flag(argc, argv, "--threads", "0"));
  const char* text_file = flag(argc, argv, "--text", nullptr);
  bool prefill8 = false, decode8 = false;
  for (int i = 1; i < argc; ++i) {
    prefill8 = prefill8 || !std::strcmp(argv[i], "--cpu-prefill-int8");
    decode8 = decode8 || !std::strcmp(argv[i], "--cpu-decode-int8");
  }
  const bool int8 = prefill8 || decode8;
  try {
    const gemma4::LmHeadDType d = gemma4::parse_lm_head_dtype(
        flag(argc, argv, "--lm-head-dtype", int8 ? "checkpoint" : "nvfp4"));
    const gemma4::Config cfg = gemma4::load_config(dir);
    std::string text = quantizer::builtin_eval_text();
    if (text_file) {
      std::ifstream f(text_file, std::ios::binary);
      if (!f) fail(text_file, ": cannot open");
      std::stringstream ss;
      ss << f.rdbuf();
      text = ss.str();
    }
    const tok::Tokenizer tk = tok::Tokenizer::from_file(dir + "/tokenizer.json");
    std::vector<int32_t> ids;
    if (cfg.bos_token_id >= 0) ids.push_back(cfg.bos_token_id);
    for (int32_t t : tk.encode(text)) {
      if (static_cast<int>(ids.size()) >= n_tokens) break;
      FC_CHECK(t >= 0 && t < cfg.vocab_size, "token id ", t, " outside the vocabulary");
      ids.push_back(t);
    }
    ThreadPool pool(threads > 0 ? threads : hardware_threads());
    cpu::CpuBackend be(pool);
    cpu::CpuOptions o8;
    o8.prefill_int8 = prefill8;
    o8.decode_int8 = decode8;
    cpu::CpuBackend be8(pool, o8);
    std::shared_ptr<const Checkpoint> ck = Checkpoint::open_dir(dir);
    int64_t b_exact = 0, b_head = 0;
    const std::vector<float> p =
        all_logits(dir, ck, gemma4::LmHeadDType::kCheckpoint, be, ids, &b_exact);
    const std::vector<float> q = all_logits(dir, ck, d, int8 ? be8 : be, ids, &b_head, decode8);
    const int64_t V = cfg.vocab_size, T = static_cast<int64_t>(ids.size());
    FC_CHECK(static_cast<int64_t>(p.size()) == T * V && q.size() == p.size(), "logit counts");
    const quantizer::KlResult r = quantizer::compare_logits(p.data(), q.data(), T, V);
    if (int8) {
      std::printf(
          "%s, --cpu-%s-int8 (head %s), %lld positions: KL(exact || int8 %s) mean %.6f "
          "nats/token, max %.6f, top-1 agreement %.4f\n",
          dir.c_str(), decode8 ? "decode" : "prefill", gemma4::lm_head_dtype_name(d),
          static_cast<long long>(T), decode8 ? "decode" : "prefill", r.mean_kl, r.max_kl,
          r.top1_agree);
      return 0;
    }
    std::printf(
        "%s, --lm-head-dtype %s, %lld positions: KL(exact || head) mean %.6f nats/token, max "
        "%.6f, top-1 agreement %.4f; decode weight bytes/token %.4f -> %.4f GB (%.1f%%)\n",
        dir.c_str(), gemma4::lm_head_dtype_name(d), static_cast<long long>(T), r.mean_kl, r.max_kl,
        r.top1_agree, static_cast<double>(b_exact) / 1e9, static_cast<double>(b_head) / 1e9,
        100.0 * static_cast<double>(b_head - b_exact) / static_cast<double>(b_exact));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_lm_head_kl: %s\n", e.what());
    return 1;
  }
  return 0;
}
