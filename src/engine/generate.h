// Single-sequence generation over a Session: chunked prefill, then one token per decode step,
// sampled with the request's parameters. The building block of `fourcast generate` and bench/.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "sample/sampler.h"
#include "spec/session.h"

namespace fc {

struct GenerateOptions {
  int max_tokens = 16;
  SamplingParams sampling;
  std::vector<int32_t> stop_ids;  // generation ends after emitting one of these
  int prefill_chunk = 512;        // prompt tokens per forward
};

struct GenerateResult {
  std::vector<int32_t> tokens;
  std::string finish_reason;  // "stop" or "length"
  double prefill_seconds = 0;
  double decode_seconds = 0;  // for tokens[1..]: each needs one decode forward
};

// Adds sequence `id` to the session, generates, and removes it again.
GenerateResult generate(Session& session, kv::SeqId id, std::span<const int32_t> prompt,
                        const GenerateOptions& opt);

}  // namespace fc
