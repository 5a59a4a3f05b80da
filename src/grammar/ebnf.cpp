#include "grammar/ebnf.h"

#include <map>
#include <set>

#include "core/error.h"
#include "core/json_limits.h"
#include "grammar/regex.h"

namespace fc::grammar {
namespace {

// Lark's common.lark terminals (the ones grammars import in practice), as regexes.
const std::map<std::string, std::string> kLarkCommon = {
    {"DIGIT", "[0-9]"},
    {"HEXDIGIT", "[a-fA-F0-9]"},
    {"INT", "[0-9]+"},
    {"SIGNED_INT", "[+-]?[0-9]+"},
    {"DECIMAL", R"([0-9]+\.[0-9]*|\.[0-9]+)"},
    {"FLOAT", R"(([0-9]+\.[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?|[0-9]+[eE][+-]?[0-9]+)"},
    {"SIGNED_FLOAT", R"([+-]?(([0-9]+\.[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?|[0-9]+[eE][+-]?[0-9]+))"},
    {"NUMBER", R"(([0-9]+\.[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?|[0-9]+([eE][+-]?[0-9]+)?)"},
    {"SIGNED_NUMBER",
     R"([+-]?(([0-9]+\.[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?|[0-9]+([eE][+-]?[0-9]+)?))"},
    {"ESCAPED_STRING", R"("([^"\\]|\\.)*")"},
    {"LCASE_LETTER", "[a-z]"},
    {"UCASE_LETTER", "[A-Z]"},
    {"LETTER", "[a-zA-Z]"},
    {"WORD", "[a-zA-Z]+"},
    {"CNAME", "[a-zA-Z_][a-zA-Z0-9_]*"},
    {"WS_INLINE", "[ \\t]+"},
    {"WS", "[ \\t\\f\\r\\n]+"},
    {"CR", "\\r"},
    {"LF", "\\n"},
    {"NEWLINE", "(\\r?\\n)+"},
};

class TextParser {
 public:
  TextParser(Grammar& g, std::string_view s, const GrammarTextOptions& o, bool lark)
      : g_(g), s_(s), o_(o), lark_(lark) {}

  void run() {
    FC_CHECK(s_.size() <= 1'000'000, "grammar: text longer than 1 MB");
    while (true) {
      skip_ws();
      if (eof()) break;
      if (lark_ && s_[i_] == '%') {
        directive();
        continue;
      }
      define_rule();
    }
    const std::string entry = lark_ ? "start" : "root";
    for (const auto& [name, r] : rules_)
      if (!defined_.count(name)) err("rule '" + name + "' is not defined");
    auto it = rules_.find(entry);
    if (it == rules_.end()) fail("grammar: no '", entry, "' rule (the entry point)");
    g_.root = it->second;
  }

 private:
  [[noreturn]] void err(const std::string& what) const {
    size_t line = 1, col = 1;
    for (size_t k = 0; k < i_ && k < s_.size(); ++k) {
      if (s_[k] == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
    }
    fail("grammar: ", what, " at line ", line, ", column ", col);
  }
  bool eof() const { return i_ >= s_.size(); }
  bool peek(char c) const { return i_ < s_.size() && s_[i_] == c; }
  bool peek_str(std::string_view t) const { return s_.substr(i_, t.size()) == t; }

  void skip_ws() {
    while (!eof()) {
      const char c = s_[i_];
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
        ++i_;
      } else if (c == '#' || (lark_ && peek_str("//"))) {
        while (!eof() && s_[i_] != '\n') ++i_;
      } else {
        break;
      }
    }
  }

  static bool ident_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.';
  }

  std::string ident() {
    const size_t st = i_;
    while (!eof() && ident_char(s_[i_])) ++i_;
    return std::string(s_.substr(st, i_ - st));
  }

  // At `name ::=` (GBNF) or `name:` (Lark, with optional ?/! and .priority)?
  bool at_rule_start() {
    const size_t save = i_;
    if (lark_ && (peek('?') || peek('!'))) ++i_;
    const std::string n = ident();
    bool yes = false;
    if (!n.empty()) {
      while (!eof() && (s_[i_] == ' ' || s_[i_] == '\t')) ++i_;
      yes = lark_ ? (peek(':') && !peek_str("::=")) : peek_str("::=");
      if (!lark_ && peek('[')) err("rule options like name[max_tokens=...] are not supported");
    }
    i_ = save;
    return yes;
  }

  int32_t rule_ref(const std::string& name) {
    auto it = rules_.find(name);
    if (it != rules_.end()) return it->second;
    const int32_t r = g_.add_rule(name);
    rules_[name] = r;
    return r;
  }

  void define_rule() {
    if (lark_ && (peek('?') || peek('!'))) ++i_;
    std::string name = ident();
    if (name.empty()) err("expected a rule name");
    if (lark_) {
      const size_t dot = name.find('.');
      if (dot != std::string::npos) name = name.substr(0, dot);  // priority: same language
      if (peek('{')) err("templates are not supported");
    }
    skip_ws();
    if (lark_) {
      if (!peek(':')) err("expected ':' after rule name '" + name + "'");
      ++i_;
    } else {
      if (peek('[')) err("rule options like name[max_tokens=...] are not supported");
      if (!peek_str("::=")) err("expected '::=' after rule name '" + name + "'");
      i_ += 3;
    }
    if (defined_.count(name)) err("rule '" + name + "' is defined twice");
    const int32_t r = rule_ref(name);
    defined_.insert(name);
    g_.define(r, alts(0));
  }

  void directive() {
    if (peek_str("%ignore")) err("%ignore is not supported");
    if (peek_str("%import")) {
      i_ += 7;
      skip_ws();
      std::string mod = ident();
      std::vector<std::string> names;
      if (mod.rfind("common.", 0) == 0) {
        names.push_back(mod.substr(7));
      } else if (mod == "common") {
        skip_ws();
        if (!peek('(')) err("expected '(' after %import common");
        ++i_;
        while (true) {
          skip_ws();
          if (peek(')')) {
            ++i_;
            break;
          }
          names.push_back(ident());
          skip_ws();
          if (peek(',')) ++i_;
          if (names.back().empty()) err("bad %import list");
        }
      } else {
        err("only %import common.X is supported");
      }
      for (const std::string& n : names) {
        auto it = kLarkCommon.find(n);
        if (it == kLarkCommon.end()) err("common." + n + " is not supported");
        if (defined_.count(n)) continue;
        const int32_t r = rule_ref(n);
        defined_.insert(n);
        g_.define(r, parse_regex(g_, it->second, RegexOptions{}));
      }
      return;
    }
    err("unsupported directive");
  }

  int32_t alts(int depth) {
    if (depth > 200) err("nesting too deep");
    std::vector<int32_t> a;
    while (true) {
      a.push_back(seq(depth));
      skip_ws();
      if (peek('|')) {
        ++i_;
        continue;
      }
      return g_.alt(a);
    }
  }

  int32_t seq(int depth) {
    std::vector<int32_t> items;
    while (true) {
      skip_ws();
      if (eof() || peek('|') || peek(')') || (lark_ && peek(']')) ||
          (lark_ && peek('%') && !peek_str("%json")))
        break;
      if (at_rule_start()) break;
      items.push_back(postfix(atom(depth), depth));
    }
    return g_.seq(items);
  }

  int number() {
    const size_t st = i_;
    int64_t v = 0;
    while (!eof() && s_[i_] >= '0' && s_[i_] <= '9' && v < 10'000'000)
      v = v * 10 + (s_[i_++] - '0');
    if (i_ == st) err("expected a number");
    return static_cast<int>(v);
  }

  int32_t postfix(int32_t x, int depth) {
    while (!eof()) {
      const char c = s_[i_];
      if (c == '*' || c == '+' || c == '?') {
        ++i_;
        if (peek('+') && c == '+') err("'a++' is not supported");
        x = c == '*' ? g_.star(x) : c == '+' ? g_.plus(x) : g_.opt(x);
      } else if (c == '{' && !lark_) {
        ++i_;
        skip_ws();
        int mn = 0, mx;
        if (!peek(',')) mn = number();
        skip_ws();
        mx = mn;
        if (peek(',')) {
          ++i_;
          skip_ws();
          mx = peek('}') ? -1 : number();
        }
        skip_ws();
        if (!peek('}')) err("expected '}'");
        ++i_;
        x = g_.repeat(x, mn, mx);
      } else if (c == '~' && lark_) {
        ++i_;
        skip_ws();
        int mn = number(), mx = mn;
        if (peek_str("..")) {
          i_ += 2;
          mx = number();
        }
        x = g_.repeat(x, mn, mx);
      } else {
        break;
      }
    }
    (void)depth;
    return x;
  }

  char32_t escape() {  // after '\\'
    if (eof()) err("trailing backslash");
    const char c = s_[i_++];
    auto hex = [&](int n) {
      char32_t v = 0;
      for (int k = 0; k < n; ++k) {
        if (eof()) err("truncated escape");
        const char h = s_[i_++];
        v = v * 16 + static_cast<char32_t>(h >= '0' && h <= '9'   ? h - '0'
                                           : h >= 'a' && h <= 'f' ? h - 'a' + 10
                                           : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                                                  : (err("bad hex digit"), 0));
      }
      return v;
    };
    switch (c) {
      case 'n':
        return '\n';
      case 'r':
        return '\r';
      case 't':
        return '\t';
      case 'b':
        return '\b';
      case 'f':
        return '\f';
      case 'a':
        return '\a';
      case 'v':
        return '\v';
      case '0':
        return 0;
      case 'e':
        return 0x1B;
      case 'x':
        return hex(2);
      case 'u':
        return hex(4);
      case 'U':
        return hex(8);
      default:
        return static_cast<unsigned char>(c);
    }
  }

  char32_t code_point() {
    const uint8_t c = static_cast<uint8_t>(s_[i_]);
    const int n = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    if (i_ + static_cast<size_t>(n) > s_.size()) err("truncated UTF-8");
    char32_t cp = n == 1 ? c : n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 7);
    for (int k = 1; k < n; ++k)
      cp = (cp << 6) | (static_cast<uint8_t>(s_[i_ + static_cast<size_t>(k)]) & 0x3F);
    i_ += static_cast<size_t>(n);
    return cp;
  }

  int32_t string_lit() {
    const char q = s_[i_++];
    std::vector<int32_t> parts;
    while (true) {
      if (eof()) err("unterminated string");
      if (s_[i_] == q) {
        ++i_;
        break;
      }
      char32_t cp;
      if (s_[i_] == '\\') {
        ++i_;
        cp = escape();
      } else {
        cp = code_point();
      }
      parts.push_back(g_.chars({{cp, cp}}));
    }
    if (lark_ && peek('i')) err("case-insensitive literals are not supported");
    return g_.seq(parts);
  }

  int32_t char_class() {
    ++i_;
    bool neg = false;
    if (peek('^')) {
      neg = true;
      ++i_;
    }
    CharRanges r;
    while (true) {
      if (eof()) err("unterminated character class");
      if (peek(']')) {
        ++i_;
        break;
      }
      auto one = [&]() -> char32_t {
        if (s_[i_] == '\\') {
          ++i_;
          return escape();
        }
        return code_point();
      };
      const char32_t lo = one();
      char32_t hi = lo;
      if (peek('-') && i_ + 1 < s_.size() && s_[i_ + 1] != ']') {
        ++i_;
        hi = one();
        if (hi < lo) err("range out of order in class");
      }
      r.emplace_back(lo, hi);
    }
    r = normalize_ranges(r);
    return g_.chars(neg ? complement_ranges(r) : r);
  }

  int32_t token() {
    const size_t st = i_;
    const size_t close = s_.find('>', i_ + 1);
    if (close == std::string_view::npos) err("unterminated special token");
    const std::string text(s_.substr(st, close - st + 1));
    i_ = close + 1;
    if (text.size() > 3 && text[1] == '[' && text[text.size() - 2] == ']') {
      const std::string body = text.substr(2, text.size() - 4);
      std::vector<int32_t> alts;
      size_t p = 0;
      while (p <= body.size()) {
        size_t q = body.find(',', p);
        if (q == std::string::npos) q = body.size();
        const std::string item = body.substr(p, q - p);
        const size_t dash = item.find('-');
        try {
          const long lo = std::stol(item.substr(0, dash));
          const long hi = dash == std::string::npos ? lo : std::stol(item.substr(dash + 1));
          if (lo < 0 || hi < lo || hi - lo > 100000) err("bad token range " + text);
          for (long t = lo; t <= hi; ++t) alts.push_back(g_.special(static_cast<int32_t>(t)));
        } catch (const std::logic_error&) {
          err("bad token id in " + text);
        }
        p = q + 1;
      }
      return g_.alt(alts);
    }
    const int32_t id = o_.token_by_text ? o_.token_by_text(text) : -1;
    if (id < 0) err("'" + text + "' is not a special token of this tokenizer");
    return g_.special(id);
  }

  int32_t atom(int depth) {
    const char c = s_[i_];
    if (c == '"' || c == '\'') return string_lit();
    if (c == '(') {
      ++i_;
      const int32_t x = alts(depth + 1);
      skip_ws();
      if (!peek(')')) err("expected ')'");
      ++i_;
      return x;
    }
    if (c == '[') {
      if (!lark_) return char_class();
      ++i_;
      const int32_t x = alts(depth + 1);
      skip_ws();
      if (!peek(']')) err("expected ']'");
      ++i_;
      return g_.opt(x);
    }
    if (c == '.' && !lark_) {
      ++i_;
      return g_.any_char();
    }
    if (c == '!') err("negated tokens (!<...>) are not supported");
    if (c == '<') return token();
    if (c == '/' && lark_) {
      ++i_;
      std::string re;
      while (true) {
        if (eof()) err("unterminated regex");
        if (s_[i_] == '\\' && i_ + 1 < s_.size() && s_[i_ + 1] == '/') {
          re += '/';
          i_ += 2;
          continue;
        }
        if (s_[i_] == '\\' && i_ + 1 < s_.size()) {
          re += s_.substr(i_, 2);
          i_ += 2;
          continue;
        }
        if (s_[i_] == '/') {
          ++i_;
          break;
        }
        re += s_[i_++];
      }
      while (!eof() &&
             (s_[i_] == 'i' || s_[i_] == 'm' || s_[i_] == 's' || s_[i_] == 'x' || s_[i_] == 'u'))
        err(std::string("regex flag '") + s_[i_] + "' is not supported");
      return parse_regex(g_, re, RegexOptions{});
    }
    if (lark_ && peek_str("%json")) {
      i_ += 5;
      skip_ws();
      if (!peek('{')) err("expected a JSON schema after %json");
      const size_t st = i_;
      int d = 0;
      bool in_str = false;
      for (; i_ < s_.size(); ++i_) {
        const char ch = s_[i_];
        if (in_str) {
          if (ch == '\\')
            ++i_;
          else if (ch == '"')
            in_str = false;
        } else if (ch == '"') {
          in_str = true;
        } else if (ch == '{') {
          ++d;
        } else if (ch == '}' && --d == 0) {
          ++i_;
          break;
        }
      }
      nlohmann::ordered_json schema;
      try {
        schema = parse_ordered_json(s_.substr(st, i_ - st));
      } catch (const std::exception&) {
        err("%json: not valid JSON");
      }
      return g_.ref(add_json_schema(g_, schema, o_.json, nullptr));
    }
    if (ident_char(c) && c != '.' && c != '-') {
      const std::string n = ident();
      return g_.ref(rule_ref(n));
    }
    err(std::string("unexpected character '") + c + "'");
  }

  Grammar& g_;
  std::string_view s_;
  const GrammarTextOptions& o_;
  bool lark_;
  size_t i_ = 0;
  std::map<std::string, int32_t> rules_;
  std::set<std::string> defined_;
};

}  // namespace

bool looks_like_ebnf(std::string_view text) {
  size_t p = 0;
  while (p < text.size()) {
    size_t e = text.find('\n', p);
    if (e == std::string_view::npos) e = text.size();
    std::string_view line = text.substr(p, e - p);
    const size_t hash = line.find('#');
    const std::string_view code = line.substr(0, hash);
    if (code.find("::=") != std::string_view::npos) return true;
    p = e + 1;
  }
  return false;
}

void parse_gbnf(Grammar& g, std::string_view text, const GrammarTextOptions& o) {
  TextParser(g, text, o, false).run();
}

void parse_lark(Grammar& g, std::string_view text, const GrammarTextOptions& o) {
  TextParser(g, text, o, true).run();
}

}  // namespace fc::grammar
