// A grammar matcher on a vocabulary: accepts token ids, fills mask rows, validates drafts and
// rolls back (speculative decoding). Stop tokens are allowed exactly when the grammar can end;
// once one is accepted the matcher is terminated and only stop tokens stay allowed. Special
// tokens are allowed only where the grammar names them.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "grammar/mask.h"
#include "grammar/matcher.h"

namespace fc::grammar {

// What the compile cache stores: a compiled grammar with its masks on one vocabulary.
struct CompiledConstraint {
  std::shared_ptr<const CompiledGrammar> grammar;
  std::shared_ptr<const GrammarMasks> masks;
  std::vector<std::string> warnings;  // ignored keywords
  std::string grammar_text;           // the IR printed (fourcast constrain --print-grammar)
  double compile_ms = 0;
};

class TokenMatcher {
 public:
  TokenMatcher(std::shared_ptr<const CompiledConstraint> c, std::vector<int32_t> stop_ids,
               size_t max_rollback = 64);

  // row[words()]: the allowed next tokens. Overwrites the row.
  void fill_mask(uint32_t* row, MaskScratch& scratch) const;
  size_t words() const { return c_->masks->vocab().words(); }
  // Consumes a token; false (state unchanged) when it is not allowed.
  bool accept(int32_t token);
  // How many leading tokens would be accepted one after another (state unchanged).
  size_t valid_prefix(std::span<const int32_t> tokens);
  // Undoes the last n accepted tokens (n <= checkpoints kept).
  void rollback(size_t n);

  bool can_end() const { return terminated_ || m_.can_end(); }
  bool terminated() const { return terminated_; }
  bool is_stop(int32_t t) const;
  const Matcher& matcher() const { return m_; }

 private:
  std::shared_ptr<const CompiledConstraint> c_;
  std::vector<int32_t> stops_;
  size_t max_rollback_;
  Matcher m_;
  bool terminated_ = false;
};

}  // namespace fc::grammar
