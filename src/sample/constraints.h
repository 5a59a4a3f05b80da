// Output constraints for the sampler (TokenConstraint, sample/sampler.h): GrammarConstraint
// masks every token the request's compiled grammar (grammar/, any kind: JSON Schema, JSON
// object, regex, GBNF/Lark, choice, Gemma 4 tool calls) does not allow next. Each SamplerState
// owns one, so speculative verification, which samples through the same pipeline, applies it
// at every verified position; drafts are cut at the first token it refuses (valid_prefix).
//
// Reasoning (Gemma 4, spec structured-output §1.6): inside <|channel>...<channel|> nothing is
// constrained and the delimiters are never fed to the grammar. With `thought_open` set, the
// first token may open a thought block instead of starting the grammar; with
// `start_in_reasoning` the prompt left one open.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "grammar/token_matcher.h"
#include "sample/sampler.h"

namespace fc {

struct GrammarConstraintOptions {
  std::vector<int32_t> stop_ids;  // allowed exactly when the grammar can end
  bool start_in_reasoning = false;
  int32_t thought_open = -1;   // <|channel>: may come first (-1: no reasoning)
  int32_t thought_close = -1;  // <channel|>
};

class GrammarConstraint final : public TokenConstraint {
 public:
  GrammarConstraint(std::shared_ptr<const grammar::CompiledConstraint> c,
                    GrammarConstraintOptions o);
  void mask(std::span<float> logits) const override;
  void accept(int32_t token) override;
  size_t valid_prefix(std::span<const int32_t> tokens) override;

  // The packed row of allowed tokens for the current step (grammar::TokenMatcher layout); empty
  // when unconstrained (inside a thought block).
  const std::vector<uint32_t>& row() const;
  bool in_reasoning() const { return phase_ == Phase::kThought; }
  bool violated() const { return violated_; }

 private:
  enum class Phase { kFirst, kThought, kGrammar };
  bool allowed(int32_t token);  // would accept() keep the grammar (advances if so)

  grammar::TokenMatcher m_;
  GrammarConstraintOptions o_;
  Phase phase_;
  bool violated_ = false;  // a refused token was forced in: from then on only stop tokens
  mutable grammar::MaskScratch scratch_;
  mutable std::vector<uint32_t> row_;
  mutable bool row_valid_ = false;
};

}  // namespace fc
