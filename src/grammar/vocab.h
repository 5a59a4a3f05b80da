// The vocabulary as the grammar engine sees it: the exact bytes of every token id (byte-fallback
// pieces <0xNN> as that byte, "▁" as a space, no prefix-space stripping), which ids are special
// (never matched as text), and a byte trie of the text tokens for mask computation.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace fc::grammar {

// A byte trie in preorder: node 0 is the root (depth 0, no byte); node i's subtree is
// [i, nodes[i].end). Walks step a state per depth and skip a dead subtree in one jump.
struct TokenTrie {
  struct Node {
    uint32_t end = 0;                     // one past the last node of the subtree
    uint32_t tok_begin = 0, tok_end = 0;  // ids whose bytes end at this node: toks[begin, end)
    uint16_t depth = 0;
    uint8_t byte = 0;
  };
  std::vector<Node> nodes;
  std::vector<int32_t> toks;

  // entries: (bytes, id); empty byte strings are ignored. Strings longer than 65535 bytes are
  // refused.
  static TokenTrie build(std::vector<std::pair<std::string_view, int32_t>> entries);
  bool empty() const { return nodes.size() <= 1; }
  size_t bytes_used() const { return nodes.size() * sizeof(Node) + toks.size() * 4; }
};

class Vocab {
 public:
  // bytes[id] and special[id] for ids below bytes.size(); `size` is the mask row length (the
  // model's vocabulary, >= bytes.size(): ids past the tokenizer are never allowed).
  Vocab(std::vector<std::string> bytes, std::vector<uint8_t> special, int32_t size);

  int32_t size() const { return size_; }
  size_t words() const { return (static_cast<size_t>(size_) + 31) / 32; }
  int32_t known() const { return static_cast<int32_t>(bytes_.size()); }
  const std::string& bytes(int32_t id) const { return bytes_[static_cast<size_t>(id)]; }
  bool special(int32_t id) const { return special_[static_cast<size_t>(id)]; }
  // An ordinary text token: known, not special, with at least one byte.
  bool text(int32_t id) const {
    return id >= 0 && id < known() && !special_[static_cast<size_t>(id)] &&
           !bytes_[static_cast<size_t>(id)].empty();
  }
  const TokenTrie& trie() const { return trie_; }

 private:
  std::vector<std::string> bytes_;
  std::vector<uint8_t> special_;
  int32_t size_;
  TokenTrie trie_;
};

}  // namespace fc::grammar
