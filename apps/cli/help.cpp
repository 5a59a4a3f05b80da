#include "apps/cli/help.h"

#include <map>

namespace fc::cli {
namespace {

// Per command: synopsis and description (the flag list is appended from the parser).
const std::map<std::string, std::string>& texts() {
  static const std::map<std::string, std::string> t = {
      {"generate",
       "usage: fourcast generate --model DIR --prompt-ids 2,105,... [flags]\n"
       "Greedy or sampled generation from token ids on one sequence; prints the ids and speed.\n"
       "Sampling flags take vLLM's meaning; --kv-cache-dtype auto|bfloat16|fp8; --nvfp4-mode\n"
       "w4a16|w4a4; --device cpu|cuda; --ignore-eos keeps going past EOS; --lm-head-dtype\n"
       "checkpoint|bf16|nvfp4 re-makes the LM head at load time (changes the logits);\n"
       "--cpu-prefill-int8 runs NVFP4 prefill steps with int8 activations (faster, not exact);\n"
       "--cpu-decode-int8 does the same for decode steps (< 33 rows, MoE experts included).\n"
       "On CPUs with AMX tiles both only take steps of up to 5 rows (9 with the integer "
       "decode kernels; the exact tiles are faster).\n"
       "--cpu-weights-mmap: use the weights in place from the checkpoint mapping (default: copied\n"
       "at load to huge pages while memory allows; decode reads them faster).\n"},
      {"inspect",
       "usage: fourcast inspect --model DIR\n"
       "Config summary, tensor table, dtypes, parameter count and KV bytes per token.\n"},
      {"synth",
       "usage: fourcast synth --shape e2b|e4b|26b-a4b|31b|FILE.json --out DIR [--seed S]\n"
       "                      [--tokenizer FILE] [--quant none|modelopt|compressed-tensors]\n"
       "                      [--attn-bf16] [--w4a16] [--shard-gb G] [--threads N]\n"
       "       fourcast synth --copy-of TARGET_DIR --out DIR [--noise SIGMA] [--seed S]\n"
       "       fourcast synth --eagle3-for TARGET_DIR --out DIR [--draft-vocab N] [--tokenizer F]\n"
       "       fourcast synth --assistant-for TARGET_DIR --out DIR [--centroids N]\n"
       "                      [--centroid-top-k K]\n"
       "Writes a random checkpoint of a Gemma 4 geometry (or a drafter for a target).\n"},
      {"serve",
       "usage: fourcast serve [MODEL_DIR] [vLLM serve flags]\n"
       "OpenAI-compatible server (default model: the bundled tiny model). Flags as `vllm serve`;\n"
       "flags without meaning here are accepted and logged. --cpu-kv-cache-gb sets the CPU KV\n"
       "budget; --max-num-seqs caps concurrent sequences (it reserves nothing). HTTP limits:\n"
       "--max-request-bytes, --max-connections (more get 503), --http-head-timeout and\n"
       "--http-body-timeout (seconds), --http-workers. SIGTERM drains for --shutdown-timeout\n"
       "seconds; a second signal exits at once. --enforce-eager: no CUDA graphs.\n"
       "--lm-head-dtype checkpoint|bf16|nvfp4: the LM head re-made at load time (opt-in).\n"
       "--cpu-prefill-int8: NVFP4 prefill steps with int8 activations (faster, not exact).\n"
       "--cpu-decode-int8: the same for decode steps (< 33 rows, MoE experts included).\n"
       "On CPUs with AMX tiles both only take steps of up to 5 rows (9 with the integer "
       "decode kernels; the exact tiles are faster).\n"
       "--cpu-weights-mmap: use the weights in place from the checkpoint mapping (default: copied\n"
       "at load to huge pages while memory allows; decode reads them faster).\n"},
      {"tokenize",
       "usage: fourcast tokenize --tokenizer FILE (--text STR | --ids 1,2,3) [--json]\n"
       "                         [--text-specials]\n"
       "Encodes text to ids or decodes ids to text with a tokenizer.json.\n"},
      {"template",
       "usage: fourcast template (--model DIR | --template FILE) --messages FILE.json\n"
       "                         [--tools FILE.json] [--kwargs JSON] [--no-generation-prompt]\n"
       "Renders a chat template as the server does (messages normalised as vLLM does).\n"},
      {"parse",
       "usage: fourcast parse --text FILE [--tools] [--no-reasoning] [--start-in-reasoning]\n"
       "Splits generated text into reasoning, content and tool calls (Gemma 4 parsers).\n"},
      {"quantize",
       "usage: fourcast quantize --model BF16_DIR --out DIR --format modelopt|compressed-tensors\n"
       "         --algo max|awq-lite|awq-full [--calib FILE [--calib-ids]] [--calib-tokens N]\n"
       "         [--calib-seq-len N] [--exclude GLOB]... [--kv-cache fp8] [--sample-rows N]\n"
       "         [--eval FILE|builtin [--eval-tokens N] [--w4a4]] [--threads N] [--quiet]\n"
       "         [--verbose] [--no-awq-identity]\n"
       "Writes an NVFP4 checkpoint (W4A4 scales, group 16) of every text-model linear except\n"
       "lm_head, routers, vision/audio towers and --exclude globs (fnmatch over module paths,\n"
       "repeatable or comma-separated, e.g. '*self_attn*'). Calibration: --calib text through the\n"
       "checkpoint's tokenizer.json (--calib-ids: the file holds token ids), else built-in "
       "English\n"
       "sentences. max: per-tensor amax (q/k/v and gate/up share weight and input amax).\n"
       "awq-lite: AWQ smoothing per input group (folded into input_layernorm /\n"
       "pre_feedforward_layernorm / up_proj rows; o_proj gets pre_quant_scale in modelopt and is\n"
       "not smoothed in compressed-tensors). awq-full: awq-lite then a per-tensor amax clip\n"
       "search. MoE experts: max only. --kv-cache fp8: per-layer K/V scales (amax/448). --eval:\n"
       "mean KL(base || quantized) per token. See docs/quantize.md.\n"},
      {"kl",
       "usage: fourcast kl --base DIR --model QUANT_DIR [--text FILE | --ids FILE] [--tokens N]\n"
       "         [--seq-len N] [--loader] [--w4a4] [--threads N] [--quiet]\n"
       "Mean KL(p_base || p_quant) per next-token distribution over held-out text (default:\n"
       "built-in sentences). Default: the base model with the quantized linears dequantized in\n"
       "place; --loader: load QUANT_DIR through fourcast's NVFP4 loader instead.\n"},
      {"constrain",
       "usage: fourcast constrain --tokenizer FILE (--json-schema FILE | --regex STR |\n"
       "         --grammar FILE | --choice JSON | --json-object | --tools FILE) [--check FILE]\n"
       "         [--print-grammar] [--bench [--bench-steps N] [--seed S]] [--strict] [--compact]\n"
       "         [--vocab-size N] [--dump-masks FILE] [--quiet] [--no-stop]\n"
       "Compiles a structured-output constraint for a tokenizer; --check walks a file's text\n"
       "through the matcher token by token (exit 0 accepted, 1 rejected with the byte offset\n"
       "and token, 2 invalid or unsupported constraint); --bench times masks and the compile.\n"},
  };
  return t;
}

}  // namespace

std::string overview_usage() {
  return "usage: fourcast <command> [flags]     (fourcast <command> --help: its flags)\n"
         "commands:\n"
         "  serve       [MODEL_DIR] [vLLM serve flags]: the OpenAI-compatible server\n"
         "  generate    --model DIR --prompt-ids 2,105,...: generate from token ids\n"
         "  inspect     --model DIR: config, tensors, dtypes, KV bytes per token\n"
         "  synth       --shape e2b|e4b|26b-a4b|31b|FILE.json --out DIR: a random checkpoint\n"
         "              (--copy-of | --eagle3-for | --assistant-for TARGET: a drafter)\n"
         "  quantize    --model BF16_DIR --out DIR --format F --algo A: an NVFP4 checkpoint\n"
         "  kl          --base DIR --model QUANT_DIR: mean KL of a quantized model\n"
         "  tokenize    --tokenizer FILE (--text STR | --ids 1,2,3): encode or decode\n"
         "  template    (--model DIR | --template FILE) --messages FILE.json: render a chat\n"
         "  parse       --text FILE: split output into reasoning, content, tool calls\n"
         "  constrain   --tokenizer FILE (--json-schema FILE | --regex STR | ...): check text\n"
         "              against a structured-output constraint, time its masks\n"
         "  bench serve [--base-url URL] [--num-prompts N] ...: load-test a running server\n";
}

std::string command_usage(const std::string& command, const HelpRequested& flags) {
  auto it = texts().find(command);
  std::string out = it != texts().end() ? it->second : "usage: fourcast " + command + " [flags]\n";
  out += "flags:\n";
  for (const std::string& f : flags.valued) {
    const size_t note = f.find(' ');  // "--seed (accepted, no effect)"
    out += "  " + f.substr(0, note) + " VALUE" + (note == std::string::npos ? "" : f.substr(note)) +
           "\n";
  }
  for (const std::string& f : flags.switches) out += "  " + f + "\n";
  out += "  --help, -h\n";
  return out;
}

}  // namespace fc::cli
