// The pushdown matcher over a CompiledGrammar: pure bookkeeping, no vocabulary. Its state is a
// set of stacks; a stack is its top state plus a parent, an interned (hash-consed) frame in a
// StackArena, so equal stacks are equal pairs, copying a state is copying a few pairs, and a
// checkpoint for rollback is a copy of the set.
//
// Closure: after every step the set is closed — a state with calls pushes each callee (its
// parent frame is the call's return state), an accepting state pops to its parent — and only
// stacks whose top can read a byte or a special token are kept; `can_end` records that the root
// rule accepted. Left recursion is refused at compile time, so closure terminates; the number of
// stacks is bounded (ambiguous grammars fail with an error rather than blowing up).
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "grammar/automaton.h"

namespace fc::grammar {

constexpr uint32_t kRootFrame = 0xFFFFFFFFu;    // parent of the root rule's frame
constexpr uint32_t kBottomFrame = 0xFFFFFFFEu;  // stand-in parent in context-free walks (mask.h)

struct Stack {
  int32_t state = -1;
  uint32_t parent = kRootFrame;
  bool operator==(const Stack& o) const { return state == o.state && parent == o.parent; }
  bool operator<(const Stack& o) const {
    return state != o.state ? state < o.state : parent < o.parent;
  }
};

class StackArena {
 public:
  uint32_t intern(Stack s);
  const Stack& at(uint32_t i) const { return frames_[i]; }
  size_t size() const { return frames_.size(); }
  void clear();

 private:
  std::vector<Stack> frames_;
  std::unordered_map<uint64_t, uint32_t> index_;
};

struct Closure {
  bool can_end = false;  // the root rule accepted
  bool popped = false;   // a frame with parent kBottomFrame accepted
};

constexpr size_t kMaxStacks = 2048;

// Closes `work` (stacks just stepped) into `out` (sorted, unique). `seen` is scratch. Throws
// fc::Error when more than kMaxStacks stacks arise.
void close_stacks(const CompiledGrammar& g, StackArena& arena, std::vector<Stack>& work,
                  std::vector<Stack>& out, Closure& c, std::vector<Stack>& seen);

// Steps every stack of `in` by byte b into `work` (not closed).
void step_byte(const CompiledGrammar& g, const std::vector<Stack>& in, uint8_t b,
               std::vector<Stack>& work);

class Matcher {
 public:
  explicit Matcher(std::shared_ptr<const CompiledGrammar> g);

  // Consume bytes / one special token. False (and no change) when the grammar does not allow
  // them here.
  bool accept_bytes(std::string_view bytes);
  bool accept_special(int32_t token);
  // Like accept_bytes, but only reports.
  bool can_accept_bytes(std::string_view bytes) const;

  bool can_end() const { return cur_.can_end; }
  // Nothing more can be read (only ending is possible).
  bool finished() const { return cur_.stacks.empty(); }

  // Checkpoints: save() pushes the current state; rollback(n) returns to the state n saves ago
  // (the saves are dropped); discard(n) drops the n most recent saves without restoring.
  void save();
  void rollback(size_t n);
  void discard_oldest(size_t keep);  // keep at most `keep` checkpoints
  size_t checkpoints() const { return history_.size(); }

  const std::vector<Stack>& stacks() const { return cur_.stacks; }
  StackArena& arena() const { return arena_; }
  const CompiledGrammar& grammar() const { return *g_; }

 private:
  struct State {
    std::vector<Stack> stacks;
    bool can_end = false;
  };
  bool step_into(std::string_view bytes, State& st) const;

  std::shared_ptr<const CompiledGrammar> g_;
  mutable StackArena arena_;  // interning from const probes only adds frames
  State cur_;
  std::vector<State> history_;
  mutable std::vector<Stack> work_, seen_;
};

}  // namespace fc::grammar
