// Mask time of the grammar engine on a real-size vocabulary (issue 13):
//   bench_grammar --tokenizer FILE [--schemas N] [--seed S] [--vocab-size V] [--batch 16]
//       [--slowest K]
// Generates N realistic JSON Schemas (objects of 2-12 properties: strings with and without
// formats, patterns and lengths, bounded integers and numbers, enums, booleans, nullable types,
// arrays, nested objects, $ref'd definitions, additionalProperties false or open) with one valid
// instance each (compact or indented at random), compiles each schema (fresh compile cache; the
// leaf-position cache shared as in the server), tokenizes the instance, and times one mask per
// token while walking it through the matcher (every token must be allowed). Prints compile and
// mask-time percentiles. --batch B also times one decode step's constrained sampling for B
// sequences (mask + apply + sample over the whole vocabulary) against unconstrained sampling.
// --slowest K lists the K slowest masks (thread CPU time) with the rules of the matcher's top
// states, to see which positions cost the tail. Also prints the vocabulary's load-time split
// (plain-text slice) and its memory.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "grammar/compiler.h"
#include "sample/constraints.h"
#include "server/structured_serving.h"
#include "tokenizer/tokenizer.h"

namespace {

using ojson = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

double us_since(Clock::time_point t) {
  return std::chrono::duration<double, std::micro>(Clock::now() - t).count();
}

// CPU time of the calling thread in µs: unlike wall time it does not grow when other processes
// share the cores (the figures in docs/benchmarks.md were taken on a loaded 2-core machine).
double thread_cpu_us() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e6 + static_cast<double>(ts.tv_nsec) / 1e3;
}

double pct(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p / 100.0 * static_cast<double>(v.size())))];
}

struct Gen {
  std::mt19937 rng;
  int pick(int n) { return static_cast<int>(rng() % static_cast<uint32_t>(n)); }
  std::string word() {
    static const char* w[] = {"name",     "id",    "email",       "created_at", "title",   "price",
                              "count",    "tags",  "address",     "city",       "zip",     "status",
                              "owner",    "items", "description", "score",      "enabled", "url",
                              "uuid",     "date",  "notes",       "priority",   "kind",    "value",
                              "children", "meta",  "user",        "level"};
    return w[pick(28)];
  }
  std::string text() {
    static const char* t[] = {"Paris",      "hello world", "A quick test",    "北京",
                              "naïve café", "line\nbreak", "quote \" inside", "x",
                              "",           "2024 report"};
    return t[pick(10)];
  }
  // A schema and a valid instance of it.
  std::pair<ojson, ojson> value(int depth) {
    const int k = depth > 2 ? pick(7) : pick(10);
    switch (k) {
      case 0: {
        const std::string s = text();
        return {{{"type", "string"}}, s};
      }
      case 1: {
        static const char* f[] = {"date", "date-time", "uuid", "email", "ipv4", "uri"};
        static const char* v[] = {
            "2024-02-29",      "2025-07-01T12:30:00Z", "123e4567-e89b-12d3-a456-426614174000",
            "ann@example.com", "192.168.0.1",          "https://example.com/a?b=c"};
        const int i = pick(6);
        return {{{"type", "string"}, {"format", f[i]}}, v[i]};
      }
      case 2: {
        const int lo = pick(50), hi = lo + 1 + pick(1000);
        return {{{"type", "integer"}, {"minimum", lo}, {"maximum", hi}}, lo + pick(hi - lo + 1)};
      }
      case 3:
        return {{{"type", "number"}}, (pick(20000) - 10000) / 64.0};
      case 4:
        return {{{"type", "boolean"}}, pick(2) == 1};
      case 5: {
        ojson e = ojson::array({"low", "medium", "high", "urgent"});
        return {{{"enum", e}}, e[static_cast<size_t>(pick(4))]};
      }
      case 6: {
        const bool null = pick(2);
        return {{{"type", ojson::array({"string", "null"})}},
                null ? ojson(nullptr) : ojson(text())};
      }
      case 7: {
        auto [s, v] = value(depth + 1);
        ojson arr = ojson::array();
        const int n = pick(4);
        for (int i = 0; i < n; ++i) arr.push_back(value_like(s, v));
        return {{{"type", "array"}, {"items", s}, {"maxItems", 8}}, arr};
      }
      case 8:
        return {{{"type", "string"}, {"pattern", "^[A-Z]{2}-[0-9]{4}$"}}, "AB-1234"};
      default:
        return object(depth + 1);
    }
  }
  ojson value_like(const ojson& s, const ojson& v) { return v; }
  std::pair<ojson, ojson> object(int depth) {
    ojson props = ojson::object(), inst = ojson::object(), req = ojson::array();
    const int n = 2 + pick(depth > 1 ? 4 : 11);
    for (int i = 0; i < n; ++i) {
      std::string key = word();
      if (props.contains(key)) key += "_" + std::to_string(i);
      auto [s, v] = value(depth);
      props[key] = s;
      if (pick(4) != 0) {
        req.push_back(key);
        inst[key] = v;
      } else if (pick(2)) {
        inst[key] = v;
      }
    }
    ojson s = {{"type", "object"}, {"properties", props}, {"required", req}};
    if (pick(2)) s["additionalProperties"] = false;
    // Instance keys in schema order (the grammar's fixed order).
    ojson ordered = ojson::object();
    for (auto it = props.begin(); it != props.end(); ++it)
      if (inst.contains(it.key())) ordered[it.key()] = inst[it.key()];
    return {s, ordered};
  }
};

}  // namespace

int main(int argc, char** argv) {
  std::string tokenizer;
  int schemas = 300, seed = 1, batch = 0, slowest = 0;
  int32_t V = 262144;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string f = argv[i];
    if (f == "--tokenizer")
      tokenizer = argv[i + 1];
    else if (f == "--schemas")
      schemas = std::stoi(argv[i + 1]);
    else if (f == "--seed")
      seed = std::stoi(argv[i + 1]);
    else if (f == "--vocab-size")
      V = std::stoi(argv[i + 1]);
    else if (f == "--batch")
      batch = std::stoi(argv[i + 1]);
    else if (f == "--slowest")
      slowest = std::stoi(argv[i + 1]);
    else {
      std::fprintf(stderr, "unknown flag %s\n", f.c_str());
      return 2;
    }
  }
  if (tokenizer.empty()) {
    std::fprintf(stderr,
                 "usage: bench_grammar --tokenizer FILE [--schemas N] [--seed S] [--batch B]\n");
    return 2;
  }
  try {
    const fc::tok::Tokenizer tok = fc::tok::Tokenizer::from_file(tokenizer);
    V = std::max(V, tok.id_bound());
    auto t0 = Clock::now();
    const double v0 = thread_cpu_us();
    auto cc = fc::make_constraint_compiler(tok, V);
    const fc::grammar::Vocab& vocab = cc->vocab();
    std::printf(
        "vocabulary: %d ids, %zu trie nodes; plain-text slice %zu tokens (%zu nodes), rest %zu "
        "tokens (%zu nodes); %.1f MiB; built in %.1f ms (thread CPU %.1f ms)\n",
        V, vocab.trie().nodes.size(), vocab.slice_tokens(), vocab.slice_trie().nodes.size(),
        vocab.rest_trie().toks.size(), vocab.rest_trie().nodes.size(),
        static_cast<double>(vocab.bytes_used()) / (1 << 20), us_since(t0) / 1000,
        (thread_cpu_us() - v0) / 1000);
    struct Slow {
      double cpu_us;
      int schema;
      size_t token;
      std::string rules;
    };
    std::vector<Slow> slow;
    Gen g{std::mt19937(static_cast<uint32_t>(seed))};
    std::vector<double> compile_ms, mask_us, first_us, compile_cpu_ms, mask_cpu_us;
    size_t tokens = 0;
    int failures = 0;
    fc::grammar::MaskScratch scratch;
    std::vector<std::shared_ptr<const fc::grammar::CompiledConstraint>> kept;
    for (int s = 0; s < schemas; ++s) {
      auto [schema, inst] = g.object(0);
      if (s % 7 == 3) {  // a $ref'd definition used twice
        schema = {{"$defs", {{"part", schema}}},
                  {"type", "object"},
                  {"properties",
                   {{"main", {{"$ref", "#/$defs/part"}}}, {"spare", {{"$ref", "#/$defs/part"}}}}},
                  {"required", ojson::array({"main"})},
                  {"additionalProperties", false}};
        inst = {{"main", inst}};
      }
      fc::grammar::ConstraintSpec spec;
      spec.kind = fc::grammar::ConstraintSpec::Kind::kJsonSchema;
      spec.text = schema.dump();
      const auto tc = Clock::now();
      const double cc0 = thread_cpu_us();
      auto c = cc->compile(spec);
      compile_cpu_ms.push_back((thread_cpu_us() - cc0) / 1000);
      compile_ms.push_back(us_since(tc) / 1000);
      kept.push_back(c);
      const std::string text = g.pick(2) ? inst.dump() : inst.dump(2);
      fc::tok::EncodeOptions eo;
      const std::vector<int32_t> ids = tok.encode(text, eo);
      fc::grammar::TokenMatcher m(c, {1});
      std::vector<uint32_t> row(m.words());
      for (size_t i = 0; i <= ids.size(); ++i) {
        const auto tm = Clock::now();
        const double c0 = thread_cpu_us();
        m.fill_mask(row.data(), scratch);
        const double cpu = thread_cpu_us() - c0;
        const double us = us_since(tm);
        (i == 0 ? first_us : mask_us).push_back(us);
        if (i > 0) mask_cpu_us.push_back(cpu);
        if (i > 0 && slowest > 0 && cpu > 300) {
          const fc::grammar::CompiledGrammar& cg = *c->grammar;
          std::string rules;
          for (const fc::grammar::Stack& st : m.matcher().stacks()) {
            const size_t r = static_cast<size_t>(cg.state_rule[static_cast<size_t>(st.state)]);
            rules += " " + cg.rule_names[r] + (cg.rule_leaf[r] ? "(leaf)" : "");
          }
          slow.push_back(Slow{cpu, s, i, rules});
        }
        if (i == ids.size()) {
          if (!((row[0] >> 1) & 1)) ++failures;  // the stop token must be allowed at the end
          break;
        }
        const int32_t t = ids[i];
        if (!((row[static_cast<size_t>(t) >> 5] >> (t & 31)) & 1) || !m.accept(t)) {
          ++failures;
          std::fprintf(stderr, "schema %d: token %zu refused\n%s\n%s\n", s, i, spec.text.c_str(),
                       text.c_str());
          break;
        }
        ++tokens;
      }
    }
    std::printf("%d schemas, %zu tokens walked, %d failures\n", schemas, tokens, failures);
    std::printf("compile ms: median %.2f p90 %.2f p99 %.2f max %.2f\n", pct(compile_ms, 50),
                pct(compile_ms, 90), pct(compile_ms, 99), pct(compile_ms, 100));
    std::printf("first mask us: median %.1f p99 %.1f max %.1f\n", pct(first_us, 50),
                pct(first_us, 99), pct(first_us, 100));
    std::printf(
        "mask us (%zu masks): median %.1f p90 %.1f p99 %.1f p99.9 %.1f max %.1f mean %.1f\n",
        mask_us.size(), pct(mask_us, 50), pct(mask_us, 90), pct(mask_us, 99), pct(mask_us, 99.9),
        pct(mask_us, 100), [&] {
          double a = 0;
          for (double x : mask_us) a += x;
          return a / std::max<size_t>(1, mask_us.size());
        }());
    std::printf(
        "thread CPU time: compile ms median %.2f p99 %.2f; mask us median %.1f p99 %.1f "
        "p99.9 %.1f max %.1f\n",
        pct(compile_cpu_ms, 50), pct(compile_cpu_ms, 99), pct(mask_cpu_us, 50),
        pct(mask_cpu_us, 99), pct(mask_cpu_us, 99.9), pct(mask_cpu_us, 100));
    if (slowest > 0) {
      std::sort(slow.begin(), slow.end(),
                [](const Slow& a, const Slow& b) { return a.cpu_us > b.cpu_us; });
      std::printf("masks over 300 us: %zu; slowest:\n", slow.size());
      for (size_t k = 0; k < slow.size() && k < static_cast<size_t>(slowest); ++k)
        std::printf("  %.0f us  schema %d token %zu  top rules:%s\n", slow[k].cpu_us,
                    slow[k].schema, slow[k].token, slow[k].rules.c_str());
    }
    if (batch > 0) {
      // One decode step for `batch` sequences: constrained vs unconstrained sampling.
      fc::ThreadPool pool(1);
      std::mt19937 rng(3);
      std::normal_distribution<float> nd(0, 3);
      std::vector<float> logits(static_cast<size_t>(V) * batch);
      for (float& x : logits) x = nd(rng);
      for (int constrained = 0; constrained < 2; ++constrained) {
        std::vector<std::unique_ptr<fc::SamplerState>> st;
        for (int b = 0; b < batch; ++b) {
          fc::SamplingParams p;
          p.temperature = 1;
          p.seed = static_cast<uint64_t>(b);
          if (constrained) {
            auto c = kept[static_cast<size_t>(b) % kept.size()];
            p.make_constraint = [c] {
              fc::GrammarConstraintOptions o;
              o.stop_ids = {1};
              return std::unique_ptr<fc::TokenConstraint>(new fc::GrammarConstraint(c, o));
            };
          }
          st.push_back(std::make_unique<fc::SamplerState>(p, std::span<const int32_t>(), V));
        }
        fc::SamplerScratch sc;
        std::vector<double> step_ms;
        for (int step = 0; step < 32; ++step) {
          const auto ts = Clock::now();
          for (int b = 0; b < batch; ++b) {
            const fc::SampleResult r =
                fc::sample(std::span<const float>(logits.data() + static_cast<size_t>(b) * V,
                                                  static_cast<size_t>(V)),
                           *st[static_cast<size_t>(b)], sc);
            st[static_cast<size_t>(b)]->accept(r.token);
          }
          step_ms.push_back(us_since(ts) / 1000);
        }
        std::printf("sampling step, %d sequences %s: median %.2f ms p90 %.2f ms\n", batch,
                    constrained ? "constrained" : "unconstrained", pct(step_ms, 50),
                    pct(step_ms, 90));
      }
    }
    return failures ? 1 : 0;
  } catch (const fc::Error& e) {
    std::fprintf(stderr, "bench_grammar: %s\n", e.what());
    return 1;
  }
}
