#include "grammar/vocab.h"

#include <algorithm>

#include "core/error.h"

namespace fc::grammar {

TokenTrie TokenTrie::build(std::vector<std::pair<std::string_view, int32_t>> entries) {
  std::erase_if(entries, [](const auto& e) { return e.first.empty(); });
  std::sort(entries.begin(), entries.end());
  TokenTrie t;
  t.nodes.push_back(Node{});
  std::vector<uint32_t> path = {0};  // node index per depth along the current string
  std::string_view prev;
  for (const auto& [s, id] : entries) {
    FC_CHECK(s.size() < 65535, "token trie: a token has ", s.size(), " bytes");
    size_t lcp = 0;
    while (lcp < s.size() && lcp < prev.size() && s[lcp] == prev[lcp]) ++lcp;
    // Close the nodes of the previous string below the common prefix.
    while (path.size() > lcp + 1) {
      t.nodes[path.back()].end = static_cast<uint32_t>(t.nodes.size());
      path.pop_back();
    }
    for (size_t d = lcp; d < s.size(); ++d) {
      Node n;
      n.depth = static_cast<uint16_t>(d + 1);
      n.byte = static_cast<uint8_t>(s[d]);
      n.tok_begin = n.tok_end = static_cast<uint32_t>(t.toks.size());
      t.nodes.push_back(n);
      path.push_back(static_cast<uint32_t>(t.nodes.size() - 1));
    }
    Node& last = t.nodes[path.back()];
    if (last.tok_end != t.toks.size())
      last.tok_begin = last.tok_end = static_cast<uint32_t>(t.toks.size());
    t.toks.push_back(id);
    last.tok_end = static_cast<uint32_t>(t.toks.size());
    prev = s;
  }
  while (!path.empty()) {
    t.nodes[path.back()].end = static_cast<uint32_t>(t.nodes.size());
    path.pop_back();
  }
  return t;
}

int plain_text_step(int c, uint8_t b) {
  const bool cont = b >= 0x80 && b <= 0xBF;
  switch (c) {
    case 0:
      if (b >= 0x20 && b < 0x7F) return b == '"' || b == '\\' ? -1 : 0;
      if (b >= 0xC2 && b <= 0xDF) return 1;
      if (b == 0xE0) return 4;
      if (b == 0xED) return 5;
      if (b >= 0xE1 && b <= 0xEF) return 2;
      if (b == 0xF0) return 6;
      if (b >= 0xF1 && b <= 0xF3) return 3;
      if (b == 0xF4) return 7;
      return -1;
    case 1:
    case 2:
    case 3:
      return cont ? c - 1 : -1;
    case 4:
      return b >= 0xA0 && b <= 0xBF ? 1 : -1;
    case 5:
      return b >= 0x80 && b <= 0x9F ? 1 : -1;
    case 6:
      return b >= 0x90 && b <= 0xBF ? 2 : -1;
    case 7:
      return b >= 0x80 && b <= 0x8F ? 2 : -1;
    default:
      return -1;
  }
}

size_t Vocab::bytes_used() const {
  return trie_.bytes_used() + slice_.bytes_used() + rest_.bytes_used() + slice_class_.size() +
         slice_bits_.size() * 4;
}

Vocab::Vocab(std::vector<std::string> bytes, std::vector<uint8_t> special, int32_t size)
    : bytes_(std::move(bytes)), special_(std::move(special)), size_(size) {
  special_.resize(bytes_.size(), 0);
  FC_CHECK(size_ >= static_cast<int32_t>(bytes_.size()), "vocab: ", bytes_.size(),
           " token strings for a vocabulary of ", size_);
  std::vector<std::pair<std::string_view, int32_t>> e, plain, rest;
  e.reserve(bytes_.size());
  slice_bits_.assign(words(), 0);
  for (int32_t id = 0; id < known(); ++id) {
    if (!text(id)) continue;
    const std::string_view b = bytes_[static_cast<size_t>(id)];
    e.emplace_back(b, id);
    int c = 0;
    for (size_t k = 0; k < b.size() && c >= 0; ++k)
      c = plain_text_step(c, static_cast<uint8_t>(b[k]));
    if (c == 0) {
      plain.emplace_back(b, id);
      slice_bits_[static_cast<size_t>(id) >> 5] |= 1u << (id & 31);
    } else {
      rest.emplace_back(b, id);
    }
  }
  trie_ = TokenTrie::build(std::move(e));
  slice_ = TokenTrie::build(std::move(plain));
  rest_ = TokenTrie::build(std::move(rest));
  // Classes in preorder: a node's parent is the nearest earlier node one level up.
  slice_class_.assign(slice_.nodes.size(), 0);
  std::vector<uint8_t> at_depth = {0};
  for (size_t i = 1; i < slice_.nodes.size(); ++i) {
    const TokenTrie::Node& n = slice_.nodes[i];
    at_depth.resize(n.depth);
    const int c = plain_text_step(at_depth[n.depth - 1u], n.byte);
    FC_CHECK(c >= 0, "vocab: plain-text slice node ", i, " is not well-formed UTF-8");
    slice_class_[i] = static_cast<uint8_t>(c);
    at_depth.push_back(static_cast<uint8_t>(c));
  }
}

}  // namespace fc::grammar
