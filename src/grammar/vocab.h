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
  // The ids of every token in node i's subtree: toks[tok_begin of i, subtree_tok_end(i)).
  uint32_t subtree_tok_end(size_t i) const {
    return nodes[i].end < nodes.size() ? nodes[nodes[i].end].tok_begin
                                       : static_cast<uint32_t>(toks.size());
  }
  size_t bytes_used() const { return nodes.size() * sizeof(Node) + toks.size() * 4; }
};

// UTF-8 position classes of the plain-text slice (below): what the next byte may be.
// 0 = at a character boundary; 1/2/3 = that many continuation bytes (80-BF) left; 4 = after E0
// (A0-BF, then 1); 5 = after ED (80-9F, then 1: no surrogates); 6 = after F0 (90-BF, then 2);
// 7 = after F4 (80-8F, then 2: at most U+10FFFF).
constexpr int kUtf8Classes = 8;
// The class after byte b at class c, or -1 when b cannot come next in a plain-text token: at a
// boundary only 20-7E except '"' and '\\', and the lead bytes of well-formed UTF-8 (C2-F4).
int plain_text_step(int c, uint8_t b);

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

  // The vocabulary split once at load for the mask walk (mask.h): the "plain-text slice" holds
  // the text tokens whose bytes are whole well-formed UTF-8 characters other than C0 controls,
  // DEL, '"' and '\\' (most of a vocabulary: what a JSON string takes freely); `rest` holds
  // every other text token. slice_class[i] is the plain_text_step class after slice node i.
  const TokenTrie& slice_trie() const { return slice_; }
  const std::vector<uint8_t>& slice_class() const { return slice_class_; }
  const TokenTrie& rest_trie() const { return rest_; }
  // The slice as a mask row (words() words).
  const std::vector<uint32_t>& slice_bits() const { return slice_bits_; }
  size_t slice_tokens() const { return slice_.toks.size(); }
  size_t bytes_used() const;  // the three tries, the class array and the slice row

 private:
  std::vector<std::string> bytes_;
  std::vector<uint8_t> special_;
  int32_t size_;
  TokenTrie trie_, slice_, rest_;
  std::vector<uint8_t> slice_class_;
  std::vector<uint32_t> slice_bits_;
};

}  // namespace fc::grammar
