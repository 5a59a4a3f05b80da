// fourcast: the command-line front end. Subcommands: generate, inspect, synth.
#include <cstdio>
#include <cstring>
#include <string>

#include "apps/cli/commands.h"
#include "benchserve/bench_serve.h"
#include "core/error.h"

namespace {

void usage() {
  std::fprintf(
      stderr,
      "usage: fourcast <command> [flags]\n"
      "  generate --model DIR --prompt-ids 2,105,... [--max-tokens N] [--temperature T]\n"
      "           [--top-k K] [--top-p P] [--min-p P] [--seed S] [--threads N]\n"
      "           [--prefill-chunk N] [--device cpu|cuda]\n"
      "  inspect  --model DIR\n"
      "  synth    --shape e2b|e4b|26b-a4b|31b|FILE.json --out DIR [--seed S] [--tokenizer FILE]\n"
      "           [--quant none|modelopt|compressed-tensors] [--attn-bf16] [--w4a16]\n"
      "  synth    --copy-of TARGET_DIR --out DIR [--noise SIGMA] [--seed S]  (draft_model)\n"
      "  synth    --eagle3-for TARGET_DIR --out DIR [--draft-vocab N] [--tokenizer FILE]\n"
      "  synth    --assistant-for TARGET_DIR --out DIR [--centroids N] [--centroid-top-k K]\n"
      "  serve    [MODEL_DIR] [vLLM serve flags] (default: the bundled tiny model)\n"
      "  tokenize --tokenizer FILE (--text STR | --ids 1,2,3) [--json]\n"
      "  template (--model DIR | --template FILE) --messages FILE.json [--tools FILE.json]\n"
      "           [--kwargs JSON] [--no-generation-prompt]\n"
      "  parse    --text FILE [--tools] [--no-reasoning] [--start-in-reasoning]\n"
      "  quantize --model BF16_DIR --out DIR --format modelopt|compressed-tensors\n"
      "           --algo max|awq-lite|awq-full [--calib FILE] [--kv-cache fp8] ... (--help)\n"
      "  kl       --base DIR --model QUANT_DIR [--text FILE | --ids FILE] ... (--help)\n"
      "  constrain --tokenizer FILE (--json-schema FILE | --regex STR | --grammar FILE |\n"
      "           --choice JSON | --json-object | --tools FILE) [--check FILE] [--print-grammar]\n"
      "           [--bench] [--compact] [--strict] [--vocab-size N]\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    usage();
    return argc < 2 ? 2 : 0;
  }
  const std::string cmd = argv[1];
  try {
    if (cmd == "generate") return fc::cli::cmd_generate(argc, argv);
    if (cmd == "inspect") return fc::cli::cmd_inspect(argc, argv);
    if (cmd == "synth") return fc::cli::cmd_synth(argc, argv);
    if (cmd == "serve") return fc::cli::cmd_serve(argc, argv);
    if (cmd == "tokenize") return fc::cli::cmd_tokenize(argc, argv);
    if (cmd == "template") return fc::cli::cmd_template(argc, argv);
    if (cmd == "parse") return fc::cli::cmd_parse(argc, argv);
    if (cmd == "quantize") return fc::cli::cmd_quantize(argc, argv);
    if (cmd == "kl") return fc::cli::cmd_kl(argc, argv);
    if (cmd == "constrain") return fc::cli::cmd_constrain(argc, argv);
    if (cmd == "bench" && argc >= 3 && !std::strcmp(argv[2], "serve"))
      return run_bench_serve(argc, argv, 3);
    std::fprintf(stderr, "fourcast: unknown command '%s'\n", cmd.c_str());
    usage();
    return 2;
  } catch (const fc::Error& e) {
    std::fprintf(stderr, "fourcast %s: error: %s\n", cmd.c_str(), e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fourcast %s: internal error: %s\n", cmd.c_str(), e.what());
    return 1;
  }
}
