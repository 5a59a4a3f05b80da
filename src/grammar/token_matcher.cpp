#include "grammar/token_matcher.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"

namespace fc::grammar {

TokenMatcher::TokenMatcher(std::shared_ptr<const CompiledConstraint> c,
                           std::vector<int32_t> stop_ids, size_t max_rollback)
    : c_(std::move(c)), stops_(std::move(stop_ids)), max_rollback_(max_rollback), m_(c_->grammar) {}

bool TokenMatcher::is_stop(int32_t t) const {
  return std::find(stops_.begin(), stops_.end(), t) != stops_.end();
}

void TokenMatcher::fill_mask(uint32_t* row, MaskScratch& scratch) const {
  const int32_t V = c_->masks->vocab().size();
  if (terminated_) {
    std::memset(row, 0, words() * 4);
  } else {
    c_->masks->fill(m_, row, scratch);
  }
  for (int32_t t : stops_) {
    if (t < 0 || t >= V) continue;
    const uint32_t bit = 1u << (t & 31);
    if (can_end()) {
      row[static_cast<size_t>(t) >> 5] |= bit;
    } else {
      row[static_cast<size_t>(t) >> 5] &= ~bit;
    }
  }
}

bool TokenMatcher::accept(int32_t token) {
  if (terminated_) return false;
  const Vocab& v = c_->masks->vocab();
  if (token < 0 || token >= v.size()) return false;
  bool ok = false;
  const bool stop = is_stop(token);
  m_.save();
  if (stop && m_.can_end()) {
    terminated_ = true;
    ok = true;
  } else if (stop) {
    ok = false;
  } else if (token < v.known() && v.special(token)) {
    ok = m_.accept_special(token);
  } else if (v.text(token)) {
    ok = m_.accept_bytes(v.bytes(token));
  }
  if (!ok) {
    m_.rollback(1);
    return false;
  }
  // Every accepted token was accepted before termination, so a rollback always un-terminates.
  if (m_.checkpoints() > max_rollback_) m_.discard_oldest(max_rollback_);
  return true;
}

size_t TokenMatcher::valid_prefix(std::span<const int32_t> tokens) {
  size_t n = 0;
  const size_t limit = std::min(tokens.size(), max_rollback_);
  while (n < limit && accept(tokens[n])) ++n;
  rollback(n);
  return n;
}

void TokenMatcher::rollback(size_t n) {
  FC_CHECK(n <= m_.checkpoints(), "TokenMatcher: rollback of ", n, " tokens, ", m_.checkpoints(),
           " kept");
  if (n == 0) return;
  m_.rollback(n);
  terminated_ = false;
}

}  // namespace fc::grammar
