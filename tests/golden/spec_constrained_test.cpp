// Speculative decoding under output constraints (issue 13): greedy output with each drafter kind
// (draft_model exact copy and another model, EAGLE-3, MTP) equals output without speculation,
// under a JSON Schema, a regex and a GBNF grammar, with drafts cut at the first token the
// grammar refuses and the matcher rolled back after verification. Every output is valid.
#include <gtest/gtest.h>

#include "tests/common/engine_idle.h"

#include <algorithm>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "engine/engine.h"
#include "io/safetensors.h"
#include "spec/draft_model.h"
#include "spec/eagle3.h"
#include "spec/mtp.h"
#include "tests/common/spec_serve.h"
#include "tests/common/toy_constraint.h"

namespace fc {
namespace {

using test::idle_stats;

const std::string kFixtures = std::string(FC_SOURCE_DIR) + "/tests/fixtures/";

using test::make_prompts;
using test::Output;
using test::ServeRun;

// test::serve with a constraint on every request (stop token 1), max_model_len 64.
ServeRun serve(gemma4::Model& target, gemma4::Model* draft, cpu::CpuBackend& be, int k,
               const std::vector<std::vector<int32_t>>& prompts, int kv_tokens,
               const std::vector<int>& per_request_k, test::Factory factory,
               bool prefix_caching_with_factory, bool drop_last_block,
               std::function<std::unique_ptr<TokenConstraint>()> constraint) {
  return test::serve(
      target, draft, be, k, prompts, kv_tokens, per_request_k, std::move(factory),
      prefix_caching_with_factory, drop_last_block,
      [](EngineConfig& ec) { ec.scheduler.max_model_len = 64; },
      [&](EngineRequest& r) {
        r.sampling.make_constraint = constraint;
        r.stop_token_ids = {1};
      });
}

struct Kind {
  const char* name;
  grammar::ConstraintSpec::Kind kind;
  const char* text;
};
const Kind kKinds[] = {
    {"json_schema", grammar::ConstraintSpec::Kind::kJsonSchema,
     R"({"type":"object","properties":{"a":{"type":"array","items":{"type":"integer"}},
        "b":{"enum":["x","yz",true]},"c":{"type":"string","maxLength":8}},"required":["a"]})"},
    {"regex", grammar::ConstraintSpec::Kind::kRegex, "([a-h][0-9]|[i-z]+ ?)+(\\.[0-9]{1,3})?"},
    {"grammar", grammar::ConstraintSpec::Kind::kGrammar,
     "root ::= item (\",\" item)*\nitem ::= [0-9]+ | \"[\" root \"]\" | [a-e]{1,4}"},
};

// Checks that every output is a valid prefix (or a complete match when it stopped).
void check_valid(grammar::ConstraintCompiler& cc, const Kind& k, const ServeRun& r) {
  grammar::ConstraintSpec s;
  s.kind = k.kind;
  s.text = k.text;
  auto c = cc.compile(s);
  for (const Output& o : r.out) {
    grammar::TokenMatcher m(c, {1});
    for (int32_t t : o.tokens) ASSERT_TRUE(m.accept(t)) << k.name;
    if (o.reason == "stop") {
      EXPECT_TRUE(m.terminated()) << k.name;
    }
  }
}

TEST(SpecConstrained, GreedyIsExactWithEveryDrafterKind) {
  ThreadPool pool(2);
  cpu::CpuBackend be(pool);
  auto load = [&](const std::string& name) {
    const std::string dir = kFixtures + name;
    return std::make_unique<gemma4::Model>(gemma4::load_config(dir), Checkpoint::open_dir(dir), be);
  };
  auto target = load("mini-e2b");
  auto copy = load("mini-e2b");
  auto other = load("kitchen-sink");
  auto t31 = load("mini-31b");
  auto cc = test::toy_compiler();
  const auto prompts = make_prompts(16);
  const int k = 3;
  for (const Kind& kind : kKinds) {
    auto con = test::toy_constraint(*cc, kind.kind, kind.text);
    const ServeRun ref = serve(*target, nullptr, be, 0, prompts, 400, {}, {}, false, false, con);
    check_valid(*cc, kind, ref);
    int stopped = 0;
    for (const Output& o : ref.out) stopped += o.reason == "stop";
    std::printf("%s: %d of %zu reference outputs stopped\n", kind.name, stopped, ref.out.size());
    for (gemma4::Model* d : {copy.get(), other.get()}) {
      const ServeRun r = serve(*target, d, be, k, prompts, 400, {}, {}, false, false, con);
      for (size_t i = 0; i < prompts.size(); ++i) {
        EXPECT_EQ(r.out[i].tokens, ref.out[i].tokens) << kind.name << " request " << i;
        EXPECT_EQ(r.out[i].reason, ref.out[i].reason);
      }
      EXPECT_EQ(r.stats.kv_blocks_free, r.stats.kv_blocks_total);
      ASSERT_GT(r.stats.spec_drafts, 0) << kind.name;
      if (d == copy.get())  // drafts the grammar refuses are cut, so the copy is always accepted
        EXPECT_EQ(r.stats.spec_accepted_tokens, r.stats.spec_draft_tokens) << kind.name;
    }
    const std::string mtp = kFixtures + "mtp-mini";
    const ServeRun rm = serve(
        *target, nullptr, be, k, prompts, 400, {},
        [&, mtp](const kv::KVStorage& kv) {
          return std::unique_ptr<spec::Drafter>(new spec::MtpDrafter(mtp, *target, kv, be));
        },
        true, false, con);
    for (size_t i = 0; i < prompts.size(); ++i)
      EXPECT_EQ(rm.out[i].tokens, ref.out[i].tokens) << kind.name << " mtp request " << i;
    // EAGLE-3 pairs with the 31B-geometry fixture: its own reference.
    const ServeRun ref31 = serve(*t31, nullptr, be, 0, prompts, 400, {}, {}, false, false, con);
    spec::Eagle3Options o;
    o.max_seqs = 16;
    o.max_tokens = 4096;
    o.block_size = 4;
    o.prefix_caching = true;
    const ServeRun re = serve(
        *t31, nullptr, be, k, prompts, 400, {},
        [&, o](const kv::KVStorage&) {
          return std::unique_ptr<spec::Drafter>(
              new spec::Eagle3Drafter(kFixtures + "eagle3-mini", *t31, be, o));
        },
        true, true, con);
    for (size_t i = 0; i < prompts.size(); ++i)
      EXPECT_EQ(re.out[i].tokens, ref31.out[i].tokens) << kind.name << " eagle3 request " << i;
    check_valid(*cc, kind, re);
  }
}

}  // namespace
}  // namespace fc
