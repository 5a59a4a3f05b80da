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

Vocab::Vocab(std::vector<std::string> bytes, std::vector<uint8_t> special, int32_t size)
    : bytes_(std::move(bytes)), special_(std::move(special)), size_(size) {
  special_.resize(bytes_.size(), 0);
  FC_CHECK(size_ >= static_cast<int32_t>(bytes_.size()), "vocab: ", bytes_.size(),
           " token strings for a vocabulary of ", size_);
  std::vector<std::pair<std::string_view, int32_t>> e;
  e.reserve(bytes_.size());
  for (int32_t id = 0; id < known(); ++id)
    if (text(id)) e.emplace_back(bytes_[static_cast<size_t>(id)], id);
  trie_ = TokenTrie::build(std::move(e));
}

}  // namespace fc::grammar
