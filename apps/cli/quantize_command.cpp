// `fourcast quantize` (BF16 -> NVFP4 checkpoint, src/quantizer) and `fourcast kl` (mean KL of a
// quantized checkpoint against its base over held-out text).
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "apps/cli/args.h"
#include "apps/cli/commands.h"
#include "core/error.h"
#include "core/parse.h"
#include "model/gemma4/config.h"
#include "quantizer/calib.h"
#include "quantizer/eval.h"
#include "quantizer/quantizer.h"
#include "tokenizer/tokenizer.h"

namespace fc::cli {

namespace {

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(path, ": cannot open");
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Token ids separated by whitespace or commas.
std::vector<int32_t> read_ids(const std::string& path) {
  std::string s = read_file(path);
  for (char& c : s)
    if (c == ',') c = ' ';
  std::istringstream in(s);
  std::vector<int32_t> ids;
  std::string tok;
  while (in >> tok) ids.push_back(static_cast<int32_t>(parse_flag_int(path, tok)));
  return ids;
}

// All values of a repeatable flag (--f V, --f=V; comma-separated lists split).
std::vector<std::string> all_values(int argc, char** argv, const std::string& flag) {
  std::vector<std::string> out;
  for (int i = 2; i < argc; ++i) {
    std::string v;
    if (argv[i] == flag && i + 1 < argc)
      v = argv[i + 1];
    else if (std::strncmp(argv[i], (flag + "=").c_str(), flag.size() + 1) == 0)
      v = argv[i] + flag.size() + 1;
    else
      continue;
    std::stringstream ss(v);
    std::string part;
    while (std::getline(ss, part, ','))
      if (!part.empty()) out.push_back(part);
  }
  return out;
}

// Token sequences from a text file (tokenizer of `model_dir`), an id file, or built-in text.
std::vector<std::vector<int32_t>> token_seqs(const std::string& model_dir,
                                             const std::optional<std::string>& file, bool ids,
                                             const std::string& builtin, int seq_len,
                                             int64_t max_tokens) {
  const gemma4::Config cfg = gemma4::load_config(model_dir);
  std::vector<int32_t> toks;
  if (file && ids) {
    toks = read_ids(*file);
  } else {
    const tok::Tokenizer tk = tok::Tokenizer::from_file(model_dir + "/tokenizer.json");
    toks = tk.encode(file ? read_file(*file) : builtin);
  }
  std::vector<std::vector<int32_t>> seqs =
      quantizer::chunk_tokens(toks, seq_len, max_tokens, cfg.bos_token_id);
  FC_CHECK(!seqs.empty(), "no tokens to run (empty text?)");
  for (const auto& s : seqs)
    for (int32_t t : s)
      FC_CHECK(t >= 0 && t < cfg.vocab_size, "token id ", t, " outside the vocabulary");
  return seqs;
}

void print_kl(const quantizer::KlResult& r) {
  std::printf("KL(base||quant) mean %.6f nats/token  max %.4f  top-1 agreement %.4f  tokens %lld\n",
              r.mean_kl, r.max_kl, r.top1_agree, static_cast<long long>(r.tokens));
}

}  // namespace

int cmd_quantize(int argc, char** argv) {
  Args a(argc, argv, 2,
         {"--model", "--out", "--format", "--algo", "--calib", "--calib-tokens", "--calib-seq-len",
          "--exclude", "--kv-cache", "--threads", "--sample-rows", "--eval", "--eval-tokens"},
         {"--calib-ids", "--w4a4", "--quiet", "--verbose", "--no-awq-identity"});
  quantizer::QuantizeOptions o;
  o.model_dir = a.require("--model");
  o.out_dir = a.require("--out");
  const std::string fmt = a.require("--format");
  if (fmt == "modelopt")
    o.format = quant::Format::kModelOpt;
  else if (fmt == "compressed-tensors")
    o.format = quant::Format::kCompressedTensors;
  else
    fail("--format must be modelopt or compressed-tensors, got ", fmt);
  const std::string algo = a.get("--algo").value_or("max");
  if (algo == "max")
    o.algo = quantizer::Algo::kMax;
  else if (algo == "awq-lite")
    o.algo = quantizer::Algo::kAwqLite;
  else if (algo == "awq-full")
    o.algo = quantizer::Algo::kAwqFull;
  else
    fail("--algo must be max, awq-lite or awq-full, got ", algo);
  o.exclude = all_values(argc, argv, "--exclude");
  if (auto kv = a.get("--kv-cache")) {
    if (*kv != "fp8") fail("--kv-cache must be fp8, got ", *kv);
    o.kv_fp8 = true;
  }
  o.sample_rows = a.get_int("--sample-rows", 512);
  o.progress = !a.has("--quiet");
  o.awq_keep_identity = !a.has("--no-awq-identity");
  FC_CHECK(std::filesystem::absolute(o.model_dir) != std::filesystem::absolute(o.out_dir),
           "--out must differ from --model");
  ThreadPool pool(a.get_int("--threads", hardware_threads()));

  const auto calib = token_seqs(o.model_dir, a.get("--calib"), a.has("--calib-ids"),
                                quantizer::builtin_calib_text(), a.get_int("--calib-seq-len", 512),
                                a.get_int("--calib-tokens", 8192));
  const quantizer::QuantizeSummary s = quantizer::quantize_model(o, calib, pool);
  if (a.has("--verbose"))
    for (const std::string& n : s.notes) std::fprintf(stderr, "%s\n", n.c_str());
  std::fprintf(stderr,
               "quantize: %s %s: %d linears NVFP4, %d kept dense, %d smoothed, %d clipped -> %s\n",
               fmt.c_str(), algo.c_str(), s.quantized, s.kept_dense, s.smoothed, s.clipped,
               o.out_dir.c_str());
  if (auto ev = a.get("--eval")) {
    const auto seqs =
        token_seqs(o.model_dir, *ev == "builtin" ? std::nullopt : ev, false,
                   quantizer::builtin_eval_text(), 512, a.get_int("--eval-tokens", 4096));
    quantizer::KlOptions ko;
    ko.w4a4 = a.has("--w4a4");
    ko.progress = o.progress;
    print_kl(quantizer::kl_divergence(o.model_dir, o.out_dir, seqs, pool, ko));
  }
  return 0;
}

int cmd_kl(int argc, char** argv) {
  Args a(argc, argv, 2,
         {"--base", "--model", "--text", "--ids", "--tokens", "--seq-len", "--threads"},
         {"--loader", "--w4a4", "--quiet"});
  const std::string base = a.require("--base"), model = a.require("--model");
  FC_CHECK(!(a.has("--text") && a.has("--ids")), "give --text or --ids, not both");
  const std::optional<std::string> file = a.has("--ids") ? a.get("--ids") : a.get("--text");
  const auto seqs = token_seqs(base, file, a.has("--ids"), quantizer::builtin_eval_text(),
                               a.get_int("--seq-len", 512), a.get_int("--tokens", 4096));
  ThreadPool pool(a.get_int("--threads", hardware_threads()));
  quantizer::KlOptions ko;
  ko.use_loader = a.has("--loader");
  ko.w4a4 = a.has("--w4a4");
  ko.progress = !a.has("--quiet");
  print_kl(quantizer::kl_divergence(base, model, seqs, pool, ko));
  return 0;
}

}  // namespace fc::cli
