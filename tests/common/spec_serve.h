// Serving helpers shared by the speculative-decoding engine tests (spec_engine_test,
// spec_constrained_test): collect a stream's output, make prompts with shared prefixes, and
// serve a prompt set through one engine with or without a drafter.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "engine/engine.h"
#include "spec/draft_model.h"
#include "tests/common/engine_idle.h"

namespace fc::test {

struct Output {
  std::vector<int32_t> tokens;
  std::string reason;
  int drafts = 0, draft_tokens = 0, accepted = 0;
  int cached = 0;  // prompt tokens served from the prefix cache
};

inline Output collect(RequestStream& s) {
  Output o;
  for (;;) {
    auto ev = s.next(60000);
    if (!ev) {
      ADD_FAILURE() << "timeout";
      return o;
    }
    o.tokens.insert(o.tokens.end(), ev->tokens.begin(), ev->tokens.end());
    o.drafts = ev->spec_drafts;
    o.draft_tokens = ev->spec_draft_tokens;
    o.accepted = ev->spec_accepted_tokens;
    o.cached = std::max(o.cached, ev->num_cached_tokens);
    if (ev->finished) {
      o.reason = ev->finish_reason;
      return o;
    }
  }
}

inline std::vector<std::vector<int32_t>> make_prompts(int n) {
  std::mt19937 rng(5);
  std::vector<std::vector<int32_t>> p(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    // Shared prefixes for some (prefix cache hits), lengths 3..20.
    if (i % 5 == 4) p[static_cast<size_t>(i)] = p[static_cast<size_t>(i - 1)];
    const int len = 3 + static_cast<int>(rng() % 18);
    for (int t = 0; t < len; ++t)
      p[static_cast<size_t>(i)].push_back(3 + static_cast<int32_t>(rng() % 240));
  }
  return p;
}

struct ServeRun {
  std::vector<Output> out;
  EngineStats stats;
};

using Factory = std::function<std::unique_ptr<spec::Drafter>(const kv::KVStorage&)>;

// `configure` / `per_request` adjust the engine config and each request (e.g. a constraint).
inline ServeRun serve(gemma4::Model& target, gemma4::Model* draft, cpu::CpuBackend& be, int k,
                      const std::vector<std::vector<int32_t>>& prompts, int kv_tokens,
                      const std::vector<int>& per_request_k = {}, Factory factory = {},
                      bool prefix_caching_with_factory = false, bool drop_last_block = false,
                      const std::function<void(EngineConfig&)>& configure = {},
                      const std::function<void(EngineRequest&)>& per_request = {}) {
  EngineConfig ec;
  ec.block_size = 4;
  ec.kv_tokens = kv_tokens;
  ec.scheduler.max_num_seqs = 16;
  ec.scheduler.max_num_batched_tokens = 32;
  ec.scheduler.max_model_len = 64;
  if (factory) {
    ec.spec_policy.k_max = k;
    ec.spec_policy.adaptive = false;
    ec.make_drafter = factory;
    ec.scheduler.enable_prefix_caching = prefix_caching_with_factory;
    // EAGLE-3 (drafter_setup): the target recomputes the last block of a hit.
    ec.scheduler.prefix_cache_drop_last_block = drop_last_block;
  }
  if (draft) {
    spec::DraftModelOptions o;
    o.max_seqs = 16;
    o.kv_tokens = 4096;
    o.max_step_tokens = 64;
    o.k_max = k;
    ec.spec_policy.k_max = k;
    ec.spec_policy.adaptive = false;
    ec.make_drafter = [&target, draft, &be, o](const kv::KVStorage&) {
      return std::unique_ptr<spec::Drafter>(new spec::DraftModelDrafter(*draft, target, be, o));
    };
  }
  if (configure) configure(ec);
  Engine engine(target, be, ec);
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (size_t i = 0; i < prompts.size(); ++i) {
    EngineRequest r;
    r.prompt = prompts[i];
    r.sampling.temperature = 0;
    r.max_tokens = 5 + static_cast<int>(i % 19);  // ends mid-draft for many k
    if (i < per_request_k.size()) r.num_speculative_tokens = per_request_k[i];
    if (per_request) per_request(r);
    streams.push_back(engine.submit(r));
  }
  ServeRun run;
  for (auto& s : streams) run.out.push_back(collect(*s));
  run.stats = idle_stats(engine);
  return run;
}

}  // namespace fc::test
