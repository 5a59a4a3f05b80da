#include "grammar/regex.h"

#include "core/error.h"

namespace fc::grammar {
namespace {

const CharRanges kDigit = {{'0', '9'}};
const CharRanges kWord = {{'0', '9'}, {'A', 'Z'}, {'_', '_'}, {'a', 'z'}};
const CharRanges kSpace = {{'\t', '\r'},     {' ', ' '},       {0xA0, 0xA0},     {0x1680, 0x1680},
                           {0x2000, 0x200A}, {0x2028, 0x2029}, {0x202F, 0x202F}, {0x205F, 0x205F},
                           {0x3000, 0x3000}, {0xFEFF, 0xFEFF}};

class Parser {
 public:
  Parser(Grammar& g, std::string_view s, const RegexOptions& o) : g_(g), s_(s), o_(o) {
    if (!o_.emit) o_.emit = raw_chars();
  }

  int32_t parse() {
    const int32_t any = g_.star(o_.emit(g_, {{0, 0x10FFFF}}));
    std::vector<int32_t> alts;
    while (true) {
      bool anchored_start = false, anchored_end = false;
      if (peek('^')) {
        ++i_;
        anchored_start = true;
      }
      int32_t body = parse_seq(0, &anchored_end);
      if (o_.search) {
        std::vector<int32_t> parts;
        if (!anchored_start) parts.push_back(any);
        parts.push_back(body);
        if (!anchored_end) parts.push_back(any);
        body = g_.seq(parts);
      }
      alts.push_back(body);
      if (i_ >= s_.size()) break;
      if (s_[i_] == '|') {
        ++i_;
        continue;
      }
      err("unbalanced ')'");
    }
    return g_.alt(alts);
  }

 private:
  [[noreturn]] void err(const std::string& what) const {
    fail("regex: ", what, " at offset ", i_, " in /", std::string(s_), "/");
  }
  bool peek(char c) const { return i_ < s_.size() && s_[i_] == c; }

  char32_t next_cp() {
    const uint8_t c = static_cast<uint8_t>(s_[i_]);
    int n = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    if (c >= 0x80 && c < 0xC0) err("invalid UTF-8");
    if (i_ + static_cast<size_t>(n) > s_.size()) err("truncated UTF-8");
    char32_t cp = n == 1 ? c : n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 0x07);
    for (int k = 1; k < n; ++k)
      cp = (cp << 6) | (static_cast<uint8_t>(s_[i_ + static_cast<size_t>(k)]) & 0x3F);
    i_ += static_cast<size_t>(n);
    return cp;
  }

  int32_t parse_alt(int depth) {
    std::vector<int32_t> alts;
    while (true) {
      alts.push_back(parse_seq(depth, nullptr));
      if (peek('|')) {
        ++i_;
        continue;
      }
      return g_.alt(alts);
    }
  }

  // A sequence up to '|' or ')' (or the end). At depth 0, a final '$' sets *anchored_end.
  int32_t parse_seq(int depth, bool* anchored_end) {
    if (depth > 200) err("groups nested too deeply");
    std::vector<int32_t> items;
    while (i_ < s_.size() && s_[i_] != '|' && s_[i_] != ')') {
      if (s_[i_] == '$') {
        ++i_;
        if (depth == 0 && (i_ == s_.size() || s_[i_] == '|') && anchored_end) {
          *anchored_end = true;
          break;
        }
        err("'$' is only supported at the end of the pattern");
      }
      if (s_[i_] == '^') err("'^' is only supported at the start of the pattern");
      int32_t atom = parse_atom(depth);
      items.push_back(parse_quant(atom));
    }
    if (depth == 0 && i_ < s_.size() && s_[i_] == ')') err("unbalanced ')'");
    return g_.seq(items);
  }

  int32_t parse_quant(int32_t atom) {
    while (i_ < s_.size()) {
      int mn, mx;
      const char c = s_[i_];
      if (c == '*') {
        mn = 0, mx = -1, ++i_;
      } else if (c == '+') {
        mn = 1, mx = -1, ++i_;
      } else if (c == '?') {
        mn = 0, mx = 1, ++i_;
      } else if (c == '{') {
        size_t j = i_ + 1;
        auto num = [&](int& v) {
          const size_t st = j;
          int64_t x = 0;
          while (j < s_.size() && s_[j] >= '0' && s_[j] <= '9' && x < 1000000)
            x = x * 10 + (s_[j++] - '0');
          v = static_cast<int>(x);
          return j > st;
        };
        if (!num(mn)) return atom;  // a literal '{' (ECMA annex B)
        mx = mn;
        if (j < s_.size() && s_[j] == ',') {
          ++j;
          if (!num(mx)) mx = -1;
        }
        if (j >= s_.size() || s_[j] != '}') err("bad {n,m} quantifier");
        if (mx != -1 && mx < mn) err("quantifier {n,m} with m < n");
        if (mn > g_.limits().max_repeat || mx > g_.limits().max_repeat)
          err("repeat count above the limit");
        i_ = j + 1;
      } else {
        return atom;
      }
      if (peek('?')) {
        ++i_;  // lazy: same language
      } else if (peek('+')) {
        err("possessive quantifiers are not supported");
      }
      atom = g_.repeat(atom, mn, mx);
    }
    return atom;
  }

  int32_t parse_atom(int depth) {
    const char c = s_[i_];
    if (c == '(') {
      ++i_;
      if (peek('?')) {
        ++i_;
        if (peek(':')) {
          ++i_;
        } else if (peek('<') || peek('P')) {
          if (peek('P')) ++i_;
          if (!peek('<')) err("unsupported group syntax");
          if (i_ + 1 < s_.size() && (s_[i_ + 1] == '=' || s_[i_ + 1] == '!'))
            err("lookbehind is not supported");
          while (i_ < s_.size() && s_[i_] != '>') ++i_;
          if (!peek('>')) err("unterminated group name");
          ++i_;
        } else if (peek('=') || peek('!')) {
          err("lookahead is not supported");
        } else {
          err("inline flags and other (?...) groups are not supported");
        }
      }
      const int32_t inner = parse_alt(depth + 1);
      if (!peek(')')) err("missing ')'");
      ++i_;
      return inner;
    }
    if (c == '[') return o_.emit(g_, parse_class());
    if (c == '.') {
      ++i_;
      return o_.emit(g_, complement_ranges({{'\n', '\n'}, {'\r', '\r'}, {0x2028, 0x2029}}));
    }
    if (c == '\\') {
      CharRanges r = parse_escape(false);
      return o_.emit(g_, r);
    }
    if (c == '*' || c == '+' || c == '?') err("nothing to repeat");
    const char32_t cp = next_cp();
    return o_.emit(g_, {{cp, cp}});
  }

  // After '\\': the code points it stands for.
  CharRanges parse_escape(bool in_class) {
    ++i_;
    if (i_ >= s_.size()) err("trailing backslash");
    const char c = s_[i_++];
    CharRanges cls = class_escape(c);
    if (!cls.empty()) return cls;
    auto one = [](char32_t x) { return CharRanges{{x, x}}; };
    switch (c) {
      case 'n':
        return one('\n');
      case 'r':
        return one('\r');
      case 't':
        return one('\t');
      case 'f':
        return one('\f');
      case 'v':
        return one('\v');
      case '0':
        return one(0);
      case 'b':
        if (in_class) return one('\b');
        err("word boundaries (\\b) are not supported");
      case 'B':
        err("word boundaries (\\B) are not supported");
      case 'x':
        return one(hex(2));
      case 'u':
        if (peek('{')) {
          ++i_;
          char32_t v = 0;
          int n = 0;
          while (i_ < s_.size() && s_[i_] != '}') {
            v = v * 16 + hexval(s_[i_++]);
            if (++n > 6 || v > 0x10FFFF) err("bad \\u{...} escape");
          }
          if (!peek('}') || n == 0) err("bad \\u{...} escape");
          ++i_;
          return one(v);
        }
        return one(hex(4));
      case 'p':
      case 'P':
        err("unicode property classes (\\p) are not supported");
      case 'k':
        err("named backreferences are not supported");
      case 'c':
        err("control escapes (\\c) are not supported");
      default:
        if (c >= '1' && c <= '9') err("backreferences are not supported");
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
          err(std::string("unknown escape \\") + c);
        --i_;
        {
          const char32_t cp = next_cp();
          return one(cp);
        }
    }
  }

  char32_t hexval(char h) {
    if (h >= '0' && h <= '9') return static_cast<char32_t>(h - '0');
    if (h >= 'a' && h <= 'f') return static_cast<char32_t>(h - 'a' + 10);
    if (h >= 'A' && h <= 'F') return static_cast<char32_t>(h - 'A' + 10);
    err("bad hex digit");
  }
  char32_t hex(int n) {
    if (i_ + static_cast<size_t>(n) > s_.size()) err("truncated hex escape");
    char32_t v = 0;
    for (int k = 0; k < n; ++k) v = v * 16 + hexval(s_[i_++]);
    return v;
  }

  CharRanges parse_class() {
    ++i_;  // '['
    bool neg = false;
    if (peek('^')) {
      neg = true;
      ++i_;
    }
    CharRanges r;
    bool first = true;
    while (true) {
      if (i_ >= s_.size()) err("unterminated character class");
      if (s_[i_] == ']' && !first) break;
      if (s_[i_] == ']' && first) break;  // ECMA: [] is empty, [^] is everything
      first = false;
      CharRanges lo;
      if (s_[i_] == '\\') {
        lo = parse_escape(true);
      } else if (s_[i_] == '[' && i_ + 1 < s_.size() && s_[i_ + 1] == ':') {
        err("POSIX classes [:...:] are not supported");
      } else {
        const char32_t cp = next_cp();
        lo = {{cp, cp}};
      }
      if (peek('-') && i_ + 1 < s_.size() && s_[i_ + 1] != ']' && lo.size() == 1 &&
          lo[0].first == lo[0].second) {
        ++i_;
        CharRanges hi;
        if (s_[i_] == '\\') {
          hi = parse_escape(true);
        } else {
          const char32_t cp = next_cp();
          hi = {{cp, cp}};
        }
        if (hi.size() != 1 || hi[0].first != hi[0].second) err("bad range in class");
        if (hi[0].first < lo[0].first) err("range out of order in class");
        r.emplace_back(lo[0].first, hi[0].first);
      } else {
        r.insert(r.end(), lo.begin(), lo.end());
      }
    }
    ++i_;  // ']'
    r = normalize_ranges(r);
    return neg ? complement_ranges(r) : r;
  }

  Grammar& g_;
  std::string_view s_;
  RegexOptions o_;
  size_t i_ = 0;
};

}  // namespace

CharEmitter raw_chars() {
  return [](Grammar& g, const CharRanges& r) { return g.chars(r); };
}

CharRanges class_escape(char c) {
  switch (c) {
    case 'd':
      return kDigit;
    case 'D':
      return complement_ranges(kDigit);
    case 'w':
      return kWord;
    case 'W':
      return complement_ranges(kWord);
    case 's':
      return kSpace;
    case 'S':
      return complement_ranges(kSpace);
    default:
      return {};
  }
}

int32_t parse_regex(Grammar& g, std::string_view re, const RegexOptions& o) {
  FC_CHECK(re.size() <= 100000, "regex: pattern longer than 100000 bytes");
  Parser p(g, re, o);
  return p.parse();
}

}  // namespace fc::grammar
