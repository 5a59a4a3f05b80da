#include "grammar/matcher.h"

#include <algorithm>
#include <unordered_set>

#include "core/error.h"

namespace fc::grammar {

uint32_t StackArena::intern(Stack s) {
  const uint64_t key = (static_cast<uint64_t>(static_cast<uint32_t>(s.state)) << 32) | s.parent;
  auto [it, inserted] = index_.try_emplace(key, static_cast<uint32_t>(frames_.size()));
  if (inserted) {
    FC_CHECK(frames_.size() < 0xF0000000u, "grammar matcher: stack arena full");
    frames_.push_back(s);
  }
  return it->second;
}

void StackArena::clear() {
  frames_.clear();
  index_.clear();
}

void step_byte(const CompiledGrammar& g, const std::vector<Stack>& in, uint8_t b,
               std::vector<Stack>& work) {
  work.clear();
  const size_t C = static_cast<size_t>(g.num_classes);
  const size_t cls = g.byte_class[b];
  for (const Stack& s : in) {
    const int32_t t = g.next[static_cast<size_t>(s.state) * C + cls];
    if (t >= 0) work.push_back(Stack{t, s.parent});
  }
}

void close_stacks(const CompiledGrammar& g, StackArena& arena, std::vector<Stack>& work,
                  std::vector<Stack>& out, Closure& c, std::vector<Stack>& seen) {
  out.clear();
  seen.clear();
  std::unordered_set<uint64_t> big;  // membership once `seen` is long
  auto key = [](const Stack& s) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(s.state)) << 32) | s.parent;
  };
  while (!work.empty()) {
    const Stack st = work.back();
    work.pop_back();
    if (seen.size() < 48) {
      if (std::find(seen.begin(), seen.end(), st) != seen.end()) continue;
      seen.push_back(st);
      if (seen.size() == 48)
        for (const Stack& s : seen) big.insert(key(s));
    } else {
      if (!big.insert(key(st)).second) continue;
      FC_CHECK(big.size() < kMaxStacks * 16,
               "grammar matcher: the grammar is too ambiguous here (too many parse stacks)");
    }
    const uint8_t fl = g.flags[static_cast<size_t>(st.state)];
    if (fl & (kHasBytes | kHasSpecial)) out.push_back(st);
    if (fl & kHasCalls) {
      for (uint32_t k = g.call_off[static_cast<size_t>(st.state)];
           k < g.call_off[static_cast<size_t>(st.state) + 1]; ++k) {
        const Call& cl = g.calls[k];
        work.push_back(Stack{g.rule_start[static_cast<size_t>(cl.rule)],
                             arena.intern(Stack{cl.ret, st.parent})});
      }
    }
    if (fl & kAccept) {
      if (st.parent == kRootFrame) {
        c.can_end = true;
      } else if (st.parent == kBottomFrame) {
        c.popped = true;
      } else {
        work.push_back(arena.at(st.parent));
      }
    }
  }
  if (out.size() > 1) {
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
  }
  FC_CHECK(out.size() <= kMaxStacks,
           "grammar matcher: the grammar is too ambiguous here (too many parse stacks)");
}

Matcher::Matcher(std::shared_ptr<const CompiledGrammar> g) : g_(std::move(g)) {
  work_.push_back(Stack{g_->rule_start[static_cast<size_t>(g_->root_rule)], kRootFrame});
  Closure c;
  close_stacks(*g_, arena_, work_, cur_.stacks, c, seen_);
  cur_.can_end = c.can_end;
}

bool Matcher::step_into(std::string_view bytes, State& st) const {
  std::vector<Stack> a = cur_.stacks, b;
  bool can_end = cur_.can_end;
  for (size_t i = 0; i < bytes.size(); ++i) {
    step_byte(*g_, a, static_cast<uint8_t>(bytes[i]), work_);
    if (work_.empty()) return false;
    Closure c;
    close_stacks(*g_, arena_, work_, b, c, seen_);
    std::swap(a, b);
    can_end = c.can_end;
    if (a.empty() && !(can_end && i + 1 == bytes.size())) return false;
  }
  st.stacks = std::move(a);
  st.can_end = can_end;
  return true;
}

bool Matcher::accept_bytes(std::string_view bytes) {
  State st;
  if (!step_into(bytes, st)) return false;
  cur_ = std::move(st);
  return true;
}

bool Matcher::can_accept_bytes(std::string_view bytes) const {
  State st;
  return step_into(bytes, st);
}

bool Matcher::accept_special(int32_t token) {
  work_.clear();
  for (const Stack& s : cur_.stacks)
    for (uint32_t k = g_->special_off[static_cast<size_t>(s.state)];
         k < g_->special_off[static_cast<size_t>(s.state) + 1]; ++k)
      if (g_->specials[k].token == token) work_.push_back(Stack{g_->specials[k].next, s.parent});
  if (work_.empty()) return false;
  State st;
  Closure c;
  close_stacks(*g_, arena_, work_, st.stacks, c, seen_);
  st.can_end = c.can_end;
  cur_ = std::move(st);
  return true;
}

void Matcher::save() {
  history_.push_back(cur_);
}

void Matcher::rollback(size_t n) {
  FC_CHECK(n <= history_.size(), "grammar matcher: rollback of ", n, " steps, only ",
           history_.size(), " saved");
  if (n == 0) return;
  cur_ = std::move(history_[history_.size() - n]);
  history_.resize(history_.size() - n);
}

void Matcher::discard_oldest(size_t keep) {
  if (history_.size() > keep)
    history_.erase(history_.begin(),
                   history_.begin() + static_cast<std::ptrdiff_t>(history_.size() - keep));
}

}  // namespace fc::grammar
