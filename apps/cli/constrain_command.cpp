// fourcast constrain: compile a constraint for a tokenizer, print its grammar, check a text
// against it token by token, and time masks. --dump-masks FILE writes, for every position of the
// --check text or of the --bench walk, a line "TOKEN HEX": the token taken there (-1 after the
// last) and the mask row before it as little-endian uint32 words in hex (llguidance's
// compute_bitmask layout; tools/structured/oracle_llguidance.py compares the two).
//   exit 0: the text is accepted and may stop there; 1: rejected (byte offset and token
//   printed); 2: the constraint is invalid or unsupported (why printed).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>

#include "apps/cli/args.h"
#include "apps/cli/commands.h"
#include "core/error.h"
#include "core/json_limits.h"
#include "grammar/compiler.h"
#include "server/structured_serving.h"
#include "tokenizer/tokenizer.h"

namespace fc::cli {
namespace {

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail("cannot read ", path);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

double pct(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i =
      std::min(v.size() - 1, static_cast<size_t>(p / 100.0 * static_cast<double>(v.size())));
  return v[i];
}

}  // namespace

int cmd_constrain(int argc, char** argv) {
  Args a(argc, argv, 2,
         {"--tokenizer", "--json-schema", "--regex", "--grammar", "--choice", "--tools", "--check",
          "--vocab-size", "--bench-steps", "--seed", "--dump-masks"},
         {"--print-grammar", "--bench", "--json-object", "--compact", "--strict", "--quiet",
          "--no-stop"});
  const tok::Tokenizer t = tok::Tokenizer::from_file(a.require("--tokenizer"));
  const int32_t V = a.get_int("--vocab-size", t.id_bound());
  grammar::ConstraintSpec spec;
  int kinds = 0;
  if (auto f = a.get("--json-schema")) {
    spec.kind = grammar::ConstraintSpec::Kind::kJsonSchema;
    spec.text = read_file(*f);
    ++kinds;
  }
  if (auto r = a.get("--regex")) {
    spec.kind = grammar::ConstraintSpec::Kind::kRegex;
    spec.text = *r;
    ++kinds;
  }
  if (auto f = a.get("--grammar")) {
    spec.kind = grammar::ConstraintSpec::Kind::kGrammar;
    spec.text = read_file(*f);
    ++kinds;
  }
  if (auto c = a.get("--choice")) {
    spec.kind = grammar::ConstraintSpec::Kind::kChoice;
    spec.text = *c;
    ++kinds;
  }
  if (a.has("--json-object")) {
    spec.kind = grammar::ConstraintSpec::Kind::kJsonObject;
    ++kinds;
  }
  if (auto f = a.get("--tools")) {  // an OpenAI tools array; tool_choice "required"
    spec.kind = grammar::ConstraintSpec::Kind::kToolCalls;
    const auto tools = parse_ordered_json(read_file(*f));
    for (const auto& tl : tools) {
      const auto& fn = tl.contains("function") ? tl["function"] : tl;
      spec.tools.push_back({fn.value("name", ""), fn.contains("parameters")
                                                      ? fn["parameters"]
                                                      : nlohmann::ordered_json()});
    }
    ++kinds;
  }
  if (kinds != 1)
    fail("give exactly one of --json-schema, --regex, --grammar, --choice, --json-object, --tools");
  spec.json.any_whitespace = !a.has("--compact");
  spec.json.strict = a.has("--strict");
  const bool quiet = a.has("--quiet");

  auto cc = make_constraint_compiler(t, V);
  cc->keep_grammar_text = a.has("--print-grammar");
  std::shared_ptr<const grammar::CompiledConstraint> c;
  try {
    c = cc->compile(spec);
  } catch (const Error& e) {
    std::fprintf(stdout, "invalid constraint: %s\n", e.what());
    return 2;
  }
  for (const std::string& w : c->warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
  if (a.has("--print-grammar")) std::fputs(c->grammar_text.c_str(), stdout);

  const tok::Gemma4Ids& ids = t.gemma4_ids();
  std::vector<int32_t> stops;
  for (int32_t s : {ids.eos, ids.turn_close, ids.tool_response_open})
    if (s >= 0) stops.push_back(s);
  grammar::TokenMatcher m(c, stops);
  grammar::MaskScratch scratch;
  std::vector<double> mask_us;
  std::vector<uint32_t> row(m.words());
  auto time_mask = [&] {
    const auto t0 = std::chrono::steady_clock::now();
    m.fill_mask(row.data(), scratch);
    mask_us.push_back(
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
  };
  std::FILE* dump = nullptr;
  if (auto f = a.get("--dump-masks")) {
    dump = std::fopen(f->c_str(), "wb");
    if (!dump) fail("cannot write ", *f);
  }
  // One dump line: the token taken at this position and the row before it.
  auto dump_row = [&](int32_t token) {
    if (!dump) return;
    m.fill_mask(row.data(), scratch);
    std::fprintf(dump, "%d ", token);
    for (uint32_t w : row)
      for (int b = 0; b < 4; ++b) std::fprintf(dump, "%02x", (w >> (8 * b)) & 0xFFu);
    std::fputc('\n', dump);
  };
  int rc = 0;
  if (auto f = a.get("--check")) {
    const std::string text = read_file(*f);
    tok::EncodeOptions eo;
    eo.parse_special = true;
    const std::vector<int32_t> toks = t.encode(text, eo);
    size_t offset = 0;
    for (size_t i = 0; i < toks.size(); ++i) {
      if (a.has("--bench")) time_mask();
      const std::string piece = t.decode(std::span<const int32_t>(&toks[i], 1), false);
      dump_row(toks[i]);
      if (!m.accept(toks[i])) {
        std::printf("rejected: token %zu (id %d, %s) at byte %zu\n", i, toks[i],
                    nlohmann::json(piece)
                        .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
                        .c_str(),
                    offset);
        rc = 1;
        break;
      }
      offset += t.is_special(toks[i]) ? t.id_to_token(toks[i]).value_or("").size() : piece.size();
    }
    if (rc == 0) dump_row(-1);
    if (rc == 0 && !m.can_end()) {
      std::printf(
          "rejected: the text is accepted as far as it goes (%zu tokens) but is incomplete\n",
          toks.size());
      rc = 1;
    }
    if (rc == 0 && !quiet) std::printf("accepted: %zu tokens\n", toks.size());
  } else if (a.has("--bench")) {
    // A random walk through allowed tokens.
    std::mt19937 rng(static_cast<uint32_t>(a.get_int("--seed", 1)));
    const int steps = a.get_int("--bench-steps", 256);
    for (int s = 0; s < steps && !m.terminated(); ++s) {
      time_mask();
      std::vector<int32_t> allowed;
      for (int32_t id = 0; id < V; ++id)
        if ((row[static_cast<size_t>(id) >> 5] >> (id & 31)) & 1) allowed.push_back(id);
      if (allowed.empty()) break;
      const int32_t pick = allowed[rng() % allowed.size()];
      dump_row(pick);
      m.accept(pick);
    }
    if (!m.terminated()) dump_row(-1);
  }
  if (dump) std::fclose(dump);
  if (a.has("--bench")) {
    // Compile time without the cache (a fresh compiler: leaf positions are not shared either).
    auto fresh = make_constraint_compiler(t, V);
    const auto t0 = std::chrono::steady_clock::now();
    fresh->compile(spec);
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    std::printf(
        "compile: %.3f ms (states %d, classes %d); masks: %zu, median %.1f us, p99 %.1f us, "
        "p99.9 %.1f us, max %.1f us, first %.1f us\n",
        ms, c->grammar->num_states, c->grammar->num_classes, mask_us.size(), pct(mask_us, 50),
        pct(mask_us, 99), pct(mask_us, 99.9), pct(mask_us, 100),
        mask_us.empty() ? 0.0 : mask_us[0]);
  }
  return rc;
}

}  // namespace fc::cli
