// fourcast: the command-line front end; apps/cli/help.cpp lists the commands.
#include <cstdio>
#include <cstring>
#include <string>

#include "apps/cli/commands.h"
#include "apps/cli/help.h"
#include "benchserve/bench_serve.h"
#include "core/error.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fputs(fc::cli::overview_usage().c_str(), stderr);
    return 2;
  }
  if (!std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") ||
      !std::strcmp(argv[1], "help")) {
    std::fputs(fc::cli::overview_usage().c_str(), stdout);
    return 0;
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
    if (cmd == "bench" &&
        (argc < 3 || !std::strcmp(argv[2], "--help") || !std::strcmp(argv[2], "-h")))
      return run_bench_serve(argc, argv, 2);  // the one bench command; its usage
    std::fprintf(stderr, "fourcast: unknown command '%s'\n", cmd.c_str());
    std::fputs(fc::cli::overview_usage().c_str(), stderr);
    return 2;
  } catch (const fc::HelpRequested& h) {
    std::fputs(fc::cli::command_usage(cmd, h).c_str(), stdout);
    return 0;
  } catch (const fc::Error& e) {
    std::fprintf(stderr, "fourcast %s: error: %s\n", cmd.c_str(), e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fourcast %s: internal error: %s\n", cmd.c_str(), e.what());
    return 1;
  }
}
