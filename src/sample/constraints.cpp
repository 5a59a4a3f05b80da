#include "sample/constraints.h"

#include <algorithm>
#include <limits>

namespace fc {

GrammarConstraint::GrammarConstraint(std::shared_ptr<const grammar::CompiledConstraint> c,
                                     GrammarConstraintOptions o)
    : m_(std::move(c), o.stop_ids), o_(std::move(o)) {
  phase_ = o_.start_in_reasoning  ? Phase::kThought
           : o_.thought_open >= 0 ? Phase::kFirst
                                  : Phase::kGrammar;
}

const std::vector<uint32_t>& GrammarConstraint::row() const {
  if (row_valid_) return row_;
  row_.assign(m_.words(), 0);
  if (phase_ == Phase::kThought) {
    row_.clear();
  } else if (violated_) {
    for (int32_t t : o_.stop_ids)
      if (t >= 0 && static_cast<size_t>(t) < row_.size() * 32)
        row_[static_cast<size_t>(t) >> 5] |= 1u << (t & 31);
  } else {
    m_.fill_mask(row_.data(), scratch_);
    if (phase_ == Phase::kFirst && o_.thought_open >= 0)
      row_[static_cast<size_t>(o_.thought_open) >> 5] |= 1u << (o_.thought_open & 31);
  }
  row_valid_ = true;
  return row_;
}

void GrammarConstraint::mask(std::span<float> logits) const {
  const std::vector<uint32_t>& r = row();
  if (r.empty()) return;  // unconstrained
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  const size_t n = logits.size();
  for (size_t w = 0; w * 32 < n; ++w) {
    const uint32_t bits = w < r.size() ? r[w] : 0;
    if (bits == 0xFFFFFFFFu) continue;
    const size_t end = std::min(n, w * 32 + 32);
    for (size_t t = w * 32; t < end; ++t)
      if (!((bits >> (t & 31)) & 1)) logits[t] = kNegInf;
  }
}

bool GrammarConstraint::allowed(int32_t token) {
  if (phase_ == Phase::kThought) {
    if (token == o_.thought_close) phase_ = Phase::kGrammar;  // not fed to the grammar
    return true;
  }
  if (phase_ == Phase::kFirst && token == o_.thought_open) {
    phase_ = Phase::kThought;
    return true;
  }
  if (violated_)
    return std::find(o_.stop_ids.begin(), o_.stop_ids.end(), token) != o_.stop_ids.end();
  if (!m_.accept(token)) return false;
  phase_ = Phase::kGrammar;
  return true;
}

void GrammarConstraint::accept(int32_t token) {
  row_valid_ = false;
  // A token outside the mask only arrives when another processor forced it (or a bug): keep
  // the output ending cleanly instead of matching garbage.
  if (!allowed(token)) violated_ = true;
}

size_t GrammarConstraint::valid_prefix(std::span<const int32_t> tokens) {
  const Phase phase = phase_;
  const bool violated = violated_;
  size_t n = 0, fed = 0;
  for (; n < tokens.size(); ++n) {
    const Phase before = phase_;
    const bool grammar_step = before != Phase::kThought &&
                              !(before == Phase::kFirst && tokens[n] == o_.thought_open) &&
                              !violated_;
    if (!allowed(tokens[n])) break;
    if (grammar_step) ++fed;
  }
  m_.rollback(fed);
  phase_ = phase;
  violated_ = violated;
  return n;
}

}  // namespace fc
