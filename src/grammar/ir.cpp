#include "grammar/ir.h"

#include <algorithm>
#include <cstdio>
#include <unordered_set>

#include "core/error.h"

namespace fc::grammar {

namespace {
// A node of kind `op` with every other field at its default.
Node node_of(Op op) {
  Node n;
  n.op = op;
  return n;
}

int utf8_len(char32_t c) {
  return c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
}

void encode(char32_t c, uint8_t* out) {
  const int n = utf8_len(c);
  if (n == 1) {
    out[0] = static_cast<uint8_t>(c);
    return;
  }
  static const uint8_t lead[5] = {0, 0, 0xC0, 0xE0, 0xF0};
  for (int i = n - 1; i > 0; --i) {
    out[i] = static_cast<uint8_t>(0x80 | (c & 0x3F));
    c >>= 6;
  }
  out[0] = static_cast<uint8_t>(lead[n] | c);
}

// [lo, hi] with every code point of the same UTF-8 length, as byte-range sequences (the
// classic split: each piece is a fixed lead followed by whole continuation ranges).
void split_same_len(Grammar& g, char32_t lo, char32_t hi, std::vector<int32_t>& out) {
  const int n = utf8_len(lo);
  for (int i = 1; i < n; ++i) {
    const char32_t m = (char32_t{1} << (6 * i)) - 1;
    if ((lo & ~m) != (hi & ~m)) {
      if ((lo & m) != 0) {
        split_same_len(g, lo, lo | m, out);
        split_same_len(g, (lo | m) + 1, hi, out);
        return;
      }
      if ((hi & m) != m) {
        split_same_len(g, lo, (hi & ~m) - 1, out);
        split_same_len(g, hi & ~m, hi, out);
        return;
      }
    }
  }
  uint8_t a[4], b[4];
  encode(lo, a);
  encode(hi, b);
  std::vector<int32_t> parts;
  for (int i = 0; i < n; ++i) parts.push_back(g.byte_range(a[i], b[i]));
  out.push_back(parts.size() == 1 ? parts[0] : g.seq(std::move(parts)));
}

std::string byte_text(uint8_t b) {
  if (b == '\\' || b == ']' || b == '[' || b == '-' || b == '^' || b == '"') {
    return std::string("\\") + static_cast<char>(b);
  }
  if (b >= 0x20 && b < 0x7F) return std::string(1, static_cast<char>(b));
  char buf[8];
  std::snprintf(buf, sizeof buf, "\\x%02X", b);
  return buf;
}

}  // namespace

int32_t Grammar::add(Node n) {
  FC_CHECK(static_cast<int64_t>(nodes.size()) < limits_.max_nodes, "grammar: more than ",
           limits_.max_nodes, " expression nodes");
  nodes.push_back(std::move(n));
  return static_cast<int32_t>(nodes.size() - 1);
}

int32_t Grammar::empty() {
  return add(node_of(Op::kEmpty));
}
int32_t Grammar::nothing() {
  return add(node_of(Op::kNothing));
}

int32_t Grammar::bytes(const ByteSet& s) {
  if (s.none()) return nothing();
  Node n = node_of(Op::kBytes);
  n.bytes = s;
  return add(std::move(n));
}

int32_t Grammar::byte(uint8_t b) {
  ByteSet s;
  s.set(b);
  return bytes(s);
}

int32_t Grammar::byte_range(uint8_t lo, uint8_t hi) {
  ByteSet s;
  for (int b = lo; b <= hi; ++b) s.set(static_cast<size_t>(b));
  return bytes(s);
}

int32_t Grammar::literal(std::string_view s) {
  if (s.empty()) return empty();
  if (s.size() == 1) return byte(static_cast<uint8_t>(s[0]));
  std::vector<int32_t> k;
  for (char c : s) k.push_back(byte(static_cast<uint8_t>(c)));
  return seq(std::move(k));
}

int32_t Grammar::seq(std::vector<int32_t> kids) {
  std::vector<int32_t> flat;
  for (int32_t k : kids) {
    if (nodes[static_cast<size_t>(k)].op == Op::kEmpty) continue;
    if (nodes[static_cast<size_t>(k)].op == Op::kNothing) return nothing();
    flat.push_back(k);
  }
  if (flat.empty()) return empty();
  if (flat.size() == 1) return flat[0];
  Node n = node_of(Op::kSeq);
  n.kids = std::move(flat);
  return add(std::move(n));
}

int32_t Grammar::alt(std::vector<int32_t> kids) {
  std::vector<int32_t> keep;
  for (int32_t k : kids)
    if (nodes[static_cast<size_t>(k)].op != Op::kNothing) keep.push_back(k);
  if (keep.empty()) return nothing();
  if (keep.size() == 1) return keep[0];
  Node n = node_of(Op::kAlt);
  n.kids = std::move(keep);
  return add(std::move(n));
}

int32_t Grammar::repeat(int32_t x, int32_t min, int32_t max) {
  FC_CHECK(min >= 0 && (max == -1 || max >= min), "grammar: bad repeat bounds {", min, ",", max,
           "}");
  FC_CHECK(min <= limits_.max_repeat && max <= limits_.max_repeat, "grammar: repeat bound ",
           std::max(min, max), " is above the limit ", limits_.max_repeat);
  if (max == 0) return empty();
  if (min == 1 && max == 1) return x;
  const Op op = nodes[static_cast<size_t>(x)].op;
  if (op == Op::kEmpty) return x;
  if (op == Op::kNothing) return min == 0 ? empty() : x;
  Node n = node_of(Op::kRepeat);
  n.kids = {x};
  n.min = min;
  n.max = max;
  return add(std::move(n));
}

int32_t Grammar::ref(int32_t rule) {
  Node n = node_of(Op::kRef);
  n.ref = rule;
  return add(std::move(n));
}

int32_t Grammar::special(int32_t token) {
  Node n = node_of(Op::kSpecial);
  n.ref = token;
  return add(std::move(n));
}

int32_t Grammar::chars(const CharRanges& ranges) {
  const CharRanges r = subtract_ranges(normalize_ranges(ranges), {{0xD800, 0xDFFF}});
  std::vector<int32_t> alts;
  ByteSet ascii;
  for (auto [lo, hi] : r) {
    // Split at the UTF-8 length boundaries; ASCII pieces merge into one byte set.
    static const char32_t bounds[4] = {0x7F, 0x7FF, 0xFFFF, 0x10FFFF};
    char32_t a = lo;
    for (char32_t b : bounds) {
      if (a > hi) break;
      if (a > b) continue;
      const char32_t e = std::min(hi, b);
      if (b == 0x7F) {
        for (char32_t c = a; c <= e; ++c) ascii.set(c);
      } else {
        split_same_len(*this, a, e, alts);
      }
      a = e + 1;
    }
  }
  if (ascii.any()) alts.insert(alts.begin(), bytes(ascii));
  return alt(std::move(alts));
}

int32_t Grammar::any_char() {
  return chars({{0, 0x10FFFF}});
}

int32_t Grammar::add_rule(const std::string& name) {
  FC_CHECK(rule(name) < 0, "grammar: rule '", name, "' is defined twice");
  rules.push_back(Rule{name, -1});
  return static_cast<int32_t>(rules.size() - 1);
}

int32_t Grammar::rule(const std::string& name) const {
  for (size_t i = 0; i < rules.size(); ++i)
    if (rules[i].name == name) return static_cast<int32_t>(i);
  return -1;
}

void Grammar::define(int32_t r, int32_t body) {
  rules[static_cast<size_t>(r)].body = body;
}

std::string Grammar::fresh_name(const std::string& stem) const {
  std::unordered_set<std::string> names;
  for (const Rule& r : rules) names.insert(r.name);
  if (!names.count(stem)) return stem;
  for (int i = 1;; ++i) {
    std::string n = stem + "-" + std::to_string(i);
    if (!names.count(n)) return n;
  }
}

std::string Grammar::to_string() const {
  std::string out;
  // Recursive printer with precedence: alternatives bind loosest.
  auto print = [&](auto&& self, int32_t id, int prec) -> std::string {
    const Node& n = nodes[static_cast<size_t>(id)];
    switch (n.op) {
      case Op::kEmpty:
        return "\"\"";
      case Op::kNothing:
        return "[^\\x00-\\xFF]";
      case Op::kBytes: {
        if (n.bytes.count() == 1) {
          for (int b = 0; b < 256; ++b)
            if (n.bytes.test(static_cast<size_t>(b))) {
              const std::string t = byte_text(static_cast<uint8_t>(b));
              return "\"" +
                     (t == "\\]" || t == "\\[" || t == "\\-" || t == "\\^" ? t.substr(1) : t) +
                     "\"";
            }
        }
        std::string s = "[";
        for (int b = 0; b < 256;) {
          if (!n.bytes.test(static_cast<size_t>(b))) {
            ++b;
            continue;
          }
          int e = b;
          while (e + 1 < 256 && n.bytes.test(static_cast<size_t>(e + 1))) ++e;
          s += byte_text(static_cast<uint8_t>(b));
          if (e > b) s += "-" + byte_text(static_cast<uint8_t>(e));
          b = e + 1;
        }
        return s + "]";
      }
      case Op::kSeq: {
        std::string s;
        for (int32_t k : n.kids) s += (s.empty() ? "" : " ") + self(self, k, 1);
        return prec > 1 ? "(" + s + ")" : s;
      }
      case Op::kAlt: {
        std::string s;
        for (int32_t k : n.kids) s += (s.empty() ? "" : " | ") + self(self, k, 0);
        return prec > 0 ? "(" + s + ")" : s;
      }
      case Op::kRepeat: {
        std::string x = self(self, n.kids[0], 2);
        if (n.min == 0 && n.max == -1) return x + "*";
        if (n.min == 1 && n.max == -1) return x + "+";
        if (n.min == 0 && n.max == 1) return x + "?";
        if (n.max == -1) return x + "{" + std::to_string(n.min) + ",}";
        if (n.min == n.max) return x + "{" + std::to_string(n.min) + "}";
        return x + "{" + std::to_string(n.min) + "," + std::to_string(n.max) + "}";
      }
      case Op::kRef:
        return rules[static_cast<size_t>(n.ref)].name;
      case Op::kSpecial:
        return "<[" + std::to_string(n.ref) + "]>";
    }
    return "";
  };
  for (size_t i = 0; i < rules.size(); ++i) {
    out += rules[i].name + " ::= ";
    out += rules[i].body < 0 ? "(undefined)" : print(print, rules[i].body, 0);
    out += "\n";
  }
  return out;
}

CharRanges normalize_ranges(CharRanges r) {
  std::sort(r.begin(), r.end());
  CharRanges out;
  for (auto [lo, hi] : r) {
    if (lo > hi) continue;
    if (!out.empty() && lo <= out.back().second + 1) {
      out.back().second = std::max(out.back().second, hi);
    } else {
      out.emplace_back(lo, hi);
    }
  }
  return out;
}

CharRanges complement_ranges(const CharRanges& r) {
  CharRanges n = normalize_ranges(r), out;
  char32_t next = 0;
  for (auto [lo, hi] : n) {
    if (lo > next) out.emplace_back(next, lo - 1);
    next = hi + 1;
  }
  if (next <= 0x10FFFF) out.emplace_back(next, 0x10FFFF);
  return out;
}

CharRanges subtract_ranges(const CharRanges& a, const CharRanges& b) {
  CharRanges nb = complement_ranges(b), out;
  // a ∩ complement(b)
  CharRanges na = normalize_ranges(a);
  size_t j = 0;
  for (auto [lo, hi] : na) {
    while (j < nb.size() && nb[j].second < lo) ++j;
    for (size_t k = j; k < nb.size() && nb[k].first <= hi; ++k) {
      const char32_t l = std::max(lo, nb[k].first), h = std::min(hi, nb[k].second);
      if (l <= h) out.emplace_back(l, h);
    }
  }
  return out;
}

}  // namespace fc::grammar
