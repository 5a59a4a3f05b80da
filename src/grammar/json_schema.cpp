#include "grammar/json_schema.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <set>

#include "core/error.h"
#include "grammar/json_numbers.h"
#include "grammar/json_strings.h"
#include "grammar/regex.h"

namespace fc::grammar {
namespace {

using json = nlohmann::ordered_json;
using Syntax = JsonSchemaOptions::Syntax;

class Compiler {
 public:
  Compiler(Grammar& g, const json& root, const JsonSchemaOptions& o, std::vector<std::string>* w)
      : g_(g), root_(root), o_(o), warnings_(w) {}

  int32_t rule_for(const json& s, const std::string& stem, int depth) {
    const int32_t r = g_.add_rule(g_.fresh_name(stem));
    g_.define(r, value(s, depth));
    return r;
  }

  int32_t any_object_rule() {
    any_rule();
    return any_obj_;
  }

 private:
  [[noreturn]] void unsupported(const std::string& kw, const std::string& why = "") {
    fail("json_schema: unsupported keyword '", kw, "'", why.empty() ? "" : " (" + why + ")");
  }
  void ignore(const std::string& kw, const std::string& why) {
    if (o_.strict) unsupported(kw, why);
    if (warnings_) warnings_->push_back("json_schema: keyword '" + kw + "' ignored (" + why + ")");
  }

  bool gemma() const { return o_.syntax == Syntax::kGemma; }

  // Whitespace and punctuation nodes are built once per schema and shared (the IR is a DAG;
  // the NFA builder builds a shared node once per continuation).
  // The gap is its own (leaf) rule, called where a gap may be: inlined, its 17-state
  // indentation counter would be copied into every object and array automaton at every
  // separator (most of their states); as a call it is one state there, and its positions' masks
  // are shared by every schema.
  int32_t ws() {
    if (ws_ < 0) {
      const int32_t body = make_ws();
      if (g_.nodes[static_cast<size_t>(body)].op == Op::kEmpty) {
        ws_ = body;
      } else {
        const int32_t r = g_.add_rule(g_.fresh_name("ws"));
        g_.define(r, body);
        ws_ = g_.ref(r);
      }
    }
    return ws_;
  }
  int32_t make_ws() {
    if (gemma() || !o_.any_whitespace) return g_.empty();
    if (!o_.whitespace_pattern.empty()) {
      RegexOptions ro;
      return parse_regex(g_, o_.whitespace_pattern, ro);
    }
    // One gap: a single space (json.dumps' ", " and ": "), or a line break and up to 16 spaces
    // or tabs of indentation (pretty-printed JSON to depth 8 at two spaces). Bounded, so a
    // model that prefers blanks cannot run to max_tokens (vLLM #38696 on Gemma 4).
    ByteSet sp;
    sp.set(' ');
    sp.set('\t');
    const int32_t newline =
        g_.seq({g_.opt(g_.byte('\r')), g_.byte('\n'), g_.repeat(g_.bytes(sp), 0, 16)});
    return g_.opt(g_.alt({g_.byte(' '), newline}));
  }
  // open (ws body ws | ws) close, the empty form only when `empty_ok`: one gap when empty.
  int32_t container(char open, int32_t body, bool empty_ok, char close) {
    const int32_t o = g_.byte(static_cast<uint8_t>(open)), c = g_.byte(static_cast<uint8_t>(close));
    if (gemma()) return g_.seq({o, empty_ok ? g_.opt(body) : body, c});
    std::vector<int32_t> alts = {g_.seq({ws(), body, ws()})};
    if (empty_ok) alts.push_back(ws());
    return g_.seq({o, g_.alt(alts), c});
  }
  int32_t punct(char c) {
    int32_t& p = punct_[static_cast<uint8_t>(c)];
    if (p < 0) p = g_.seq({ws(), g_.byte(static_cast<uint8_t>(c)), ws()});
    return p;
  }

  // String delimiters.
  int32_t quote() { return gemma() ? g_.special(o_.gemma_string_token) : g_.byte('"'); }

  // A value as literal text (enum / const).
  int32_t literal_value(const json& v) {
    if (!gemma()) return g_.literal(v.dump(-1, ' ', false, json::error_handler_t::strict));
    if (v.is_string()) return g_.seq({quote(), g_.literal(v.get<std::string>()), quote()});
    if (v.is_array()) {
      std::vector<int32_t> parts = {g_.byte('[')};
      for (size_t i = 0; i < v.size(); ++i) {
        if (i) parts.push_back(g_.byte(','));
        parts.push_back(literal_value(v[i]));
      }
      parts.push_back(g_.byte(']'));
      return g_.seq(parts);
    }
    if (v.is_object()) {
      std::vector<int32_t> parts = {g_.byte('{')};
      bool first = true;
      for (auto it = v.begin(); it != v.end(); ++it) {
        if (!first) parts.push_back(g_.byte(','));
        first = false;
        parts.push_back(g_.literal(it.key() + ":"));
        parts.push_back(literal_value(it.value()));
      }
      parts.push_back(g_.byte('}'));
      return g_.seq(parts);
    }
    return g_.literal(v.dump());
  }

  // Key text for a property name.
  int32_t key_literal(const std::string& name) {
    if (gemma()) return g_.literal(name);
    return g_.literal(json(name).dump(-1, ' ', false, json::error_handler_t::strict));
  }

  const json& resolve(const std::string& ref) {
    if (ref.empty() || ref[0] != '#')
      unsupported("$ref", "only local references (#...) are supported: " + ref);
    if (ref.size() > 1 && ref[1] != '/') unsupported("$ref", "anchors are not supported: " + ref);
    const json* cur = &root_;
    size_t i = 1;
    while (i < ref.size()) {
      size_t j = ref.find('/', i + 1);
      if (j == std::string::npos) j = ref.size();
      std::string tok;
      for (size_t k = i + 1; k < j; ++k) {  // JSON pointer and %-escapes
        if (ref[k] == '~' && k + 1 < j) {
          tok += ref[k + 1] == '1' ? '/' : '~';
          ++k;
        } else if (ref[k] == '%' && k + 2 < j) {
          tok += static_cast<char>(std::stoi(ref.substr(k + 1, 2), nullptr, 16));
          k += 2;
        } else {
          tok += ref[k];
        }
      }
      if (cur->is_object() && cur->contains(tok)) {
        cur = &(*cur)[tok];
      } else if (cur->is_array() && !tok.empty() &&
                 std::all_of(tok.begin(), tok.end(), ::isdigit) && std::stoul(tok) < cur->size()) {
        cur = &(*cur)[std::stoul(tok)];
      } else {
        fail("json_schema: $ref '", ref, "' does not resolve");
      }
      i = j;
    }
    return *cur;
  }

  int32_t ref_rule(const std::string& ref, int depth) {
    auto it = refs_.find(ref);
    if (it != refs_.end()) return it->second;
    const json& target = resolve(ref);
    const int32_t r = g_.add_rule(g_.fresh_name("ref"));
    refs_[ref] = r;
    g_.define(r, value(target, depth + 1));
    return r;
  }

  static bool constraining(const json& s) {
    if (!s.is_object()) return true;
    for (auto it = s.begin(); it != s.end(); ++it)
      if (!is_annotation(it.key())) return true;
    return false;
  }

  // allOf-style combination of two schemas (throws unsupported when they cannot merge).
  json merge(json a, const json& b, int depth) {
    if (depth > o_.max_schema_depth) fail("json_schema: schema nested too deeply");
    if (b.is_boolean()) return b.get<bool>() ? a : json(false);
    if (a.is_boolean()) return a.get<bool>() ? b : json(false);
    // Nothing to combine with: keep b as it is ($ref stays a reference, so recursion works).
    if (!constraining(a)) return b;
    if (!constraining(b)) return a;
    json bb = b;
    while (bb.contains("$ref")) {  // inline references before merging
      json t = resolve(bb["$ref"].get<std::string>());
      bb.erase("$ref");
      bb = merge(bb, t, depth + 1);
    }
    if (o_.strict) {
      // A branch's additionalProperties / unevaluated* see only that branch's properties:
      // merged into one object they would see the others' too.
      auto closes = [](const json& x) {
        return x.is_object() &&
               ((x.contains("additionalProperties") && x["additionalProperties"] != true) ||
                x.contains("unevaluatedProperties") || x.contains("unevaluatedItems"));
      };
      auto opens = [](const json& x) {
        return x.is_object() && (x.contains("properties") || x.contains("required") ||
                                 x.contains("prefixItems") || x.contains("items"));
      };
      if ((closes(a) && opens(bb)) || (closes(bb) && opens(a)))
        unsupported(closes(a) ? (a.contains("additionalProperties") ? "additionalProperties"
                                                                    : "unevaluatedProperties")
                              : (bb.contains("additionalProperties") ? "additionalProperties"
                                                                     : "unevaluatedProperties"),
                    "inside a combined schema (allOf/anyOf/$ref)");
    }
    for (auto it = bb.begin(); it != bb.end(); ++it) {
      const std::string& k = it.key();
      const json& v = it.value();
      if (!a.contains(k) || is_annotation(k)) {
        if (!a.contains(k)) a[k] = v;
        continue;
      }
      json& x = a[k];
      if (k == "type") {
        auto types = [](const json& t) {
          std::set<std::string> s;
          if (t.is_string()) s.insert(t.get<std::string>());
          if (t.is_array())
            for (const json& e : t) s.insert(e.get<std::string>());
          return s;
        };
        std::set<std::string> p = types(x), q = types(v), r;
        for (const std::string& t : p)
          if (q.count(t) || (t == "integer" && q.count("number"))) r.insert(t);
        if (p.count("number") && q.count("integer")) r.insert("integer");
        x = json(std::vector<std::string>(r.begin(), r.end()));
      } else if (k == "properties") {
        for (auto p = v.begin(); p != v.end(); ++p)
          x[p.key()] = x.contains(p.key()) ? merge(x[p.key()], p.value(), depth + 1) : p.value();
      } else if (k == "required") {
        std::set<std::string> s(x.begin(), x.end());
        for (const json& e : v)
          if (!s.count(e.get<std::string>())) x.push_back(e);
      } else if (k == "minimum" || k == "exclusiveMinimum" || k == "minLength" || k == "minItems") {
        if (v.is_number() && x.is_number()) x = std::max(x.get<double>(), v.get<double>());
      } else if (k == "maximum" || k == "exclusiveMaximum" || k == "maxLength" || k == "maxItems") {
        if (v.is_number() && x.is_number()) x = std::min(x.get<double>(), v.get<double>());
      } else if (k == "enum") {
        json r = json::array();
        for (const json& e : x)
          if (std::find(v.begin(), v.end(), e) != v.end()) r.push_back(e);
        x = r;
      } else if (k == "additionalProperties" || k == "items") {
        x = merge(x, v, depth + 1);
      } else if (k == "anyOf" || k == "oneOf") {
        json r = json::array();
        for (const json& p : x)
          for (const json& q : v) r.push_back(merge(p, q, depth + 1));
        if (r.size() > 256) unsupported("allOf", "too many combined alternatives");
        x = r;
      } else if (k == "allOf") {
        for (const json& e : v) x.push_back(e);
      } else if (x != v) {
        unsupported("allOf", "cannot combine two different '" + k + "'");
      }
    }
    return a;
  }

  int32_t value(const json& s, int depth) {
    if (depth > o_.max_schema_depth) fail("json_schema: schema nested too deeply");
    if (s.is_boolean()) return s.get<bool>() ? g_.ref(any_rule()) : g_.nothing();
    if (!s.is_object())
      fail("json_schema: a schema must be an object or a boolean, got ", s.dump());
    for (auto it = s.begin(); it != s.end(); ++it) {
      const std::string& k = it.key();
      if (is_annotation(k) || is_handled_keyword(k) || k.rfind("x-", 0) == 0) continue;
      if (k == "uniqueItems" && it.value() == false) continue;
      if (k == "minProperties" && it.value() == 0) continue;
      ignore(k, "not supported");
    }
    // Keywords whose meaning depends on what sibling applicators evaluated: merging would change
    // it, so under `strict` these combinations are refused rather than approximated.
    const bool applicators =
        s.contains("allOf") || s.contains("anyOf") || s.contains("oneOf") || s.contains("$ref");
    if (o_.strict && applicators) {
      for (const char* kw : {"unevaluatedProperties", "unevaluatedItems", "additionalProperties",
                             "items", "additionalItems"})
        if (s.contains(kw)) unsupported(kw, "beside allOf/anyOf/oneOf/$ref");
    }
    if (s.contains("$ref")) {
      json rest = s;
      rest.erase("$ref");
      bool only_ref = true;
      for (auto it = rest.begin(); it != rest.end(); ++it)
        if (!is_annotation(it.key())) only_ref = false;
      const std::string ref = s["$ref"].is_string() ? s["$ref"].get<std::string>() : "";
      if (only_ref) return g_.ref(ref_rule(ref, depth));
      return value(merge(rest, resolve(ref), depth), depth + 1);
    }
    if (s.contains("allOf")) {
      if (!s["allOf"].is_array()) fail("json_schema: allOf must be an array");
      json m = s;
      m.erase("allOf");
      for (const json& e : s["allOf"]) m = merge(m, e, depth);
      return value(m, depth + 1);
    }
    for (const char* kw : {"anyOf", "oneOf"}) {
      if (!s.contains(kw)) continue;
      if (!s[kw].is_array() || s[kw].empty())
        fail("json_schema: ", kw, " must be a non-empty array");
      if (std::string(kw) == "oneOf") {
        // Exact only when no value can match two branches; we can tell for branches of
        // pairwise different single types (or consts), else it is anyOf (warned; strict: error).
        std::set<std::string> seen;
        bool disjoint = true;
        for (const json& b : s[kw]) {
          std::string key;
          if (b.is_object() && b.contains("const"))
            key = "const:" + b["const"].dump();
          else if (b.is_object() && b.contains("type") && b["type"].is_string() && b.size() <= 3)
            key = b["type"].get<std::string>();
          if (key.empty() || !seen.insert(key).second ||
              (key == "number" && seen.count("integer")) ||
              (key == "integer" && seen.count("number")))
            disjoint = false;
        }
        if (!disjoint) {
          if (o_.strict) unsupported("oneOf", "branches that may overlap");
          if (warnings_) warnings_->push_back("json_schema: oneOf is matched as anyOf");
        }
      }
      json base = s;
      base.erase(kw);
      std::vector<int32_t> alts;
      for (const json& b : s[kw]) alts.push_back(value(merge(base, b, depth), depth + 1));
      return g_.alt(alts);
    }
    // Types allowed.
    std::set<std::string> types;
    if (s.contains("type")) {
      const json& t = s["type"];
      if (t.is_string())
        types.insert(t.get<std::string>());
      else if (t.is_array())
        for (const json& e : t) types.insert(e.is_string() ? e.get<std::string>() : "?");
      else
        fail("json_schema: type must be a string or an array");
      for (const std::string& x : types)
        if (x != "null" && x != "boolean" && x != "object" && x != "array" && x != "number" &&
            x != "integer" && x != "string")
          fail("json_schema: unknown type '", x, "'");
    } else {
      types = {"null", "boolean", "object", "array", "number", "string"};
    }
    if (s.value("nullable", false)) types.insert("null");
    if (s.contains("enum") || s.contains("const")) {
      json vals = json::array();
      if (s.contains("const")) vals.push_back(s["const"]);
      if (s.contains("enum")) {
        if (!s["enum"].is_array()) fail("json_schema: enum must be an array");
        for (const json& e : s["enum"])
          if (!s.contains("const") || e == s["const"]) vals.push_back(e);
        if (s.contains("const") && vals.size() > 1) vals.erase(vals.begin());
      }
      std::vector<int32_t> alts;
      for (const json& v : vals) {
        const std::string t =
            v.is_null()      ? "null"
            : v.is_boolean() ? "boolean"
            : v.is_object()  ? "object"
            : v.is_array()   ? "array"
            : v.is_string()  ? "string"
            : v.is_number_integer() ||
                    (v.is_number_float() && v.get<double>() == std::floor(v.get<double>()))
                ? "integer"
                : "number";
        if (types.count(t) || (t == "integer" && types.count("number")))
          alts.push_back(literal_value(v));
      }
      return g_.alt(alts);
    }
    std::vector<int32_t> alts;
    if (types.count("null")) alts.push_back(g_.literal("null"));
    if (types.count("boolean")) alts.push_back(g_.alt({g_.literal("true"), g_.literal("false")}));
    if (types.count("number")) {
      alts.push_back(g_.ref(number_rule(s, false)));
    } else if (types.count("integer")) {
      alts.push_back(g_.ref(number_rule(s, true)));
    }
    if (types.count("string")) alts.push_back(g_.ref(string_rule(s)));
    if (types.count("array")) alts.push_back(array(s, depth));
    if (types.count("object")) alts.push_back(object(s, depth));
    return g_.alt(alts);
  }

  static std::optional<NumBound> bound(const json& s, const char* inc, const char* exc,
                                       bool lower) {
    std::optional<NumBound> b;
    auto tighter = [&](NumBound n) {
      if (!b || (lower ? n.value > b->value || (n.value == b->value && n.exclusive)
                       : n.value < b->value || (n.value == b->value && n.exclusive)))
        b = n;
    };
    if (s.contains(inc) && s[inc].is_number()) {
      // draft 4: exclusiveMinimum: true makes minimum exclusive
      const bool ex = s.contains(exc) && s[exc].is_boolean() && s[exc].get<bool>();
      tighter(NumBound{s[inc].get<double>(), ex});
    }
    if (s.contains(exc) && s[exc].is_number()) tighter(NumBound{s[exc].get<double>(), true});
    return b;
  }

  int32_t number_rule(const json& s, bool integer) {
    const auto lo = bound(s, "minimum", "exclusiveMinimum", true);
    const auto hi = bound(s, "maximum", "exclusiveMaximum", false);
    const std::string key = std::string(integer ? "i" : "n") +
                            (lo ? std::to_string(lo->value) + (lo->exclusive ? "x" : "") : "-") +
                            "," +
                            (hi ? std::to_string(hi->value) + (hi->exclusive ? "x" : "") : "-");
    auto it = leaves_.find(key);
    if (it != leaves_.end()) return it->second;
    int32_t body;
    try {
      body = integer ? integer_expr(g_, lo, hi) : number_expr(g_, lo, hi);
    } catch (const Error& e) {
      if (std::string(e.what()).find("fractional") == std::string::npos) throw;
      ignore("minimum", e.what());
      body = number_expr(g_, std::nullopt, std::nullopt);
    }
    const int32_t r = g_.add_rule(g_.fresh_name(integer ? "integer" : "number"));
    g_.define(r, body);
    leaves_[key] = r;
    return r;
  }

  // Characters of a plain string value.
  int32_t plain_chars() {
    if (gemma()) {
      // No `<|` inside (it could spell the <|"|> delimiter): [^<] | "<"+ [^<|], then "<"*.
      const int32_t lt = g_.byte('<');
      const int32_t body = g_.star(
          g_.alt({g_.chars(complement_ranges({{'<', '<'}})),
                  g_.seq({g_.plus(lt), g_.chars(complement_ranges({{'<', '<'}, {'|', '|'}}))})}));
      return g_.seq({body, g_.star(g_.byte('<'))});
    }
    const int32_t raw = g_.chars(complement_ranges({{0, 0x1F}, {'"', '"'}, {'\\', '\\'}}));
    ByteSet esc;
    for (char c : std::string("\"\\/bfnrt")) esc.set(static_cast<uint8_t>(c));
    ByteSet hex;
    for (char c : std::string("0123456789abcdefABCDEF")) hex.set(static_cast<uint8_t>(c));
    const int32_t escape =
        g_.seq({g_.byte('\\'),
                g_.alt({g_.bytes(esc), g_.seq({g_.byte('u'), g_.repeat(g_.bytes(hex), 4, 4)})})});
    return g_.alt({raw, escape});
  }

  int32_t string_rule(const json& s) {
    const bool has_len = s.contains("minLength") || s.contains("maxLength");
    const std::string pattern =
        s.contains("pattern") && s["pattern"].is_string() ? s["pattern"].get<std::string>() : "";
    std::string format =
        s.contains("format") && s["format"].is_string() ? s["format"].get<std::string>() : "";
    if (!format.empty() && !format_regex(format)) {
      ignore("format", "format '" + format + "' is not supported");
      format.clear();
    }
    if (!pattern.empty() && !format.empty()) unsupported("format", "together with pattern");
    int64_t mn = s.contains("minLength") ? s["minLength"].get<int64_t>() : 0;
    int64_t mx = s.contains("maxLength") ? s["maxLength"].get<int64_t>() : -1;
    if ((!pattern.empty() || !format.empty()) && has_len)
      unsupported(s.contains("minLength") ? "minLength" : "maxLength",
                  "together with pattern or format");
    if (mn < 0 || mx < -1 || (mx >= 0 && mx < mn)) fail("json_schema: bad minLength/maxLength");
    const std::string key =
        "s" + std::to_string(mn) + "," + std::to_string(mx) + "," + pattern + "\x01" + format;
    auto it = leaves_.find(key);
    if (it != leaves_.end()) return it->second;
    int32_t content;
    const CharEmitter emit = gemma() ? raw_chars() : json_string_chars();
    if (!pattern.empty()) {
      RegexOptions ro;
      ro.search = true;
      ro.emit = emit;
      content = parse_regex(g_, pattern, ro);
    } else if (!format.empty()) {
      RegexOptions ro;
      ro.emit = emit;
      content = parse_regex(g_, *format_regex(format), ro);
    } else if (has_len) {
      const int32_t ch = gemma() ? g_.chars(complement_ranges({{'<', '<'}})) : plain_chars();
      content = g_.repeat(ch, static_cast<int32_t>(mn), static_cast<int32_t>(mx));
    } else {
      content = gemma() ? plain_chars() : g_.star(plain_chars());
    }
    const int32_t r = g_.add_rule(g_.fresh_name("string"));
    g_.define(r, g_.seq({quote(), content, quote()}));
    leaves_[key] = r;
    return r;
  }

  int32_t array(const json& s, int depth) {
    std::vector<json> prefix;
    if (s.contains("prefixItems")) {
      if (!s["prefixItems"].is_array()) fail("json_schema: prefixItems must be an array");
      for (const json& e : s["prefixItems"]) prefix.push_back(e);
    }
    json items = true;
    if (s.contains("items")) {
      if (s["items"].is_array()) {  // draft 4-7 tuple form
        for (const json& e : s["items"]) prefix.push_back(e);
        if (s.contains("additionalItems")) items = s["additionalItems"];
      } else {
        items = s["items"];
      }
    }
    int64_t mn = s.contains("minItems") ? s["minItems"].get<int64_t>() : 0;
    int64_t mx = s.contains("maxItems") ? s["maxItems"].get<int64_t>() : -1;
    if (items == false)
      mx = mx < 0 ? static_cast<int64_t>(prefix.size())
                  : std::min<int64_t>(mx, static_cast<int64_t>(prefix.size()));
    if (mn < 0 || (mx >= 0 && mx < mn)) return g_.nothing();
    if (mn > g_.limits().max_repeat || mx > g_.limits().max_repeat)
      unsupported("maxItems", "bound too large");
    const int32_t r = g_.add_rule(g_.fresh_name("array"));
    std::vector<int32_t> elem;
    for (size_t i = 0; i < prefix.size(); ++i)
      elem.push_back(g_.ref(rule_for(prefix[i], "item", depth + 1)));
    const int32_t item = items == false ? g_.nothing() : g_.ref(rule_for(items, "item", depth + 1));
    const size_t p = prefix.size();
    const int32_t sep = gemma() ? g_.byte(',') : punct(',');
    // tail(i): the elements after the first i (i >= 1 were written).
    std::function<int32_t(int64_t)> tail = [&](int64_t i) -> int32_t {
      if (mx >= 0 && i >= mx) return g_.empty();
      if (static_cast<size_t>(i) >= p) {
        const int64_t lo = std::max<int64_t>(0, mn - i);
        const int64_t hi = mx < 0 ? -1 : mx - i;
        return g_.repeat(g_.seq({sep, item}), static_cast<int32_t>(lo), static_cast<int32_t>(hi));
      }
      const int32_t more = g_.seq({sep, elem[static_cast<size_t>(i)], tail(i + 1)});
      return i >= mn ? g_.opt(more) : more;
    };
    const int32_t first = p > 0 ? elem[0] : item;
    const int32_t body = mx == 0 ? g_.nothing() : g_.seq({first, tail(1)});
    g_.define(r, container('[', body, mn == 0, ']'));
    return g_.ref(r);
  }

  // Key strings that are none of `names` (additional properties).
  int32_t other_key(const std::vector<std::string>& names) {
    struct T {
      std::map<char32_t, int> kids;
      bool end = false;
    };
    std::vector<T> trie(1);
    for (const std::string& n : names) {
      int cur = 0;
      for (size_t i = 0; i < n.size();) {  // decode UTF-8
        const uint8_t c = static_cast<uint8_t>(n[i]);
        int len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
        char32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 7);
        for (int k = 1; k < len && i + static_cast<size_t>(k) < n.size(); ++k)
          cp = (cp << 6) | (static_cast<uint8_t>(n[i + static_cast<size_t>(k)]) & 0x3F);
        i += static_cast<size_t>(len);
        auto it = trie[static_cast<size_t>(cur)].kids.find(cp);
        if (it == trie[static_cast<size_t>(cur)].kids.end()) {
          trie.push_back(T{});
          it = trie[static_cast<size_t>(cur)]
                   .kids.emplace(cp, static_cast<int>(trie.size() - 1))
                   .first;
        }
        cur = it->second;
      }
      trie[static_cast<size_t>(cur)].end = true;
    }
    const CharRanges domain = gemma() ? CharRanges{{'0', '9'}, {'A', 'Z'}, {'_', '_'}, {'a', 'z'}}
                                      : CharRanges{{0, 0x10FFFF}};
    auto emit = [&](const CharRanges& r) { return gemma() ? g_.chars(r) : json_chars(r); };
    const int32_t any = g_.star(emit(domain));
    std::function<int32_t(int)> notin = [&](int node) -> int32_t {
      const T& t = trie[static_cast<size_t>(node)];
      std::vector<int32_t> alts;
      // Stopping here spells a name that is not listed; the empty name only in JSON (a bare
      // Gemma key cannot be empty).
      if (!t.end && (node != 0 || !gemma())) alts.push_back(g_.empty());
      CharRanges used;
      for (auto& [c, k] : t.kids) {
        alts.push_back(g_.seq({emit({{c, c}}), notin(k)}));
        used.emplace_back(c, c);
      }
      const CharRanges other = subtract_ranges(domain, used);
      if (!other.empty()) alts.push_back(g_.seq({emit(other), any}));
      return g_.alt(alts);
    };
    const int32_t body =
        names.empty() ? (gemma() ? g_.plus(emit(domain)) : g_.star(emit(domain))) : notin(0);
    if (gemma()) return body;
    // JSON keys may be empty unless "" is a listed name.
    return g_.seq({g_.byte('"'), body, g_.byte('"')});
  }

  int32_t object(const json& s, int depth) {
    const json props = s.contains("properties") ? s["properties"] : json::object();
    if (!props.is_object()) fail("json_schema: properties must be an object");
    std::set<std::string> req;
    std::vector<std::string> req_order;  // `required` names in their array order
    if (s.contains("required")) {
      if (!s["required"].is_array()) fail("json_schema: required must be an array");
      for (const json& e : s["required"]) {
        if (!e.is_string()) fail("json_schema: required must list strings");
        if (req.insert(e.get<std::string>()).second) req_order.push_back(e.get<std::string>());
      }
    }
    json addl = o_.additional_properties_default ? json(true) : json(false);
    if (s.contains("additionalProperties"))
      addl = s["additionalProperties"];
    else if (s.contains("unevaluatedProperties"))
      addl = s["unevaluatedProperties"];
    const int32_t r = g_.add_rule(g_.fresh_name("object"));
    struct Prop {
      std::string name;
      int32_t member;
      bool required;
    };
    std::vector<Prop> ps;
    std::vector<std::string> names;
    const int32_t colon = gemma() ? g_.byte(':') : punct(':');
    auto member = [&](const std::string& name, const json& sch) {
      return g_.seq({key_literal(name), colon, g_.ref(rule_for(sch, "prop", depth + 1))});
    };
    for (auto it = props.begin(); it != props.end(); ++it) {
      names.push_back(it.key());
      ps.push_back({it.key(), member(it.key(), it.value()), req.count(it.key()) > 0});
    }
    for (const std::string& n : req_order)
      if (!props.contains(n)) {
        names.push_back(n);
        ps.push_back({n, member(n, addl == false ? json(true) : addl), true});
      }
    const int32_t sep = gemma() ? g_.byte(',') : punct(',');
    int32_t extra = -1;  // one additional member
    if (addl != false) {
      // The other-key string is a leaf rule of its own: its positions' masks are then plain DFA
      // walks (about 10x cheaper than walks with parse stacks inside the object's rule).
      const int32_t key = g_.add_rule(g_.fresh_name("key"));
      g_.define(key, other_key(names));
      extra = g_.seq({g_.ref(key), colon, g_.ref(rule_for(addl, "additional", depth + 1))});
    }
    // Members in order: required ones must appear; after the first written member every member
    // is preceded by a separator.
    const size_t n = ps.size();
    if (n > 256) unsupported("properties", "more than 256 properties");
    size_t first_req = n;
    for (size_t i = 0; i < n; ++i)
      if (ps[i].required) {
        first_req = i;
        break;
      }
    // rest[i]: the members from index i on, given something was written. One shared chain, so
    // the alternatives for the first written member share their tails (linear, not quadratic).
    std::vector<int32_t> rest(n + 1);
    rest[n] = extra >= 0 ? g_.star(g_.seq({sep, extra})) : g_.empty();
    for (size_t k = n; k-- > 0;) {
      const int32_t m = g_.seq({sep, ps[k].member});
      rest[k] = g_.seq({ps[k].required ? m : g_.opt(m), rest[k + 1]});
    }
    std::vector<int32_t> starts;  // alternatives for the first written member
    const size_t last_first = first_req < n ? first_req : n - (n > 0 ? 1 : 0);
    for (size_t j = 0; j < n && j <= last_first; ++j)
      starts.push_back(g_.seq({ps[j].member, rest[j + 1]}));
    if (first_req == n && extra >= 0)
      starts.push_back(g_.seq({extra, g_.star(g_.seq({sep, extra}))}));
    g_.define(r, container('{', g_.alt(starts), first_req == n, '}'));
    return g_.ref(r);
  }

  // json_chars_expr with the escape alternatives (\uXXXX for controls, \" \\ \/ ...) built once
  // per distinct set of escapable characters: other_key's complement sets differ only in a few
  // printable characters, and rebuilding 34 escapes at every key trie node was most of an open
  // object's automaton.
  int32_t json_chars(const CharRanges& r) {
    uint64_t key = 0;
    CharRanges special;
    auto has = [&](char32_t c) {
      for (auto [lo, hi] : r)
        if (c >= lo && c <= hi) return true;
      return false;
    };
    for (char32_t c : {U'"', U'\\', U'/'})
      if (has(c)) special.emplace_back(c, c);
    for (char32_t c = 0; c < 0x20; ++c)
      if (has(c)) special.emplace_back(c, c);
    for (const auto& sc : special) {
      const char32_t c = sc.first;
      key |= uint64_t{1} << (c < 0x20 ? c : c == '"' ? 32 : c == '/' ? 34 : 33);
    }
    const CharRanges raw = subtract_ranges(r, {{0, 0x1F}, {'"', '"'}, {'\\', '\\'}});
    if (special.empty()) return raw.empty() ? g_.nothing() : g_.chars(raw);
    auto it = escapes_.find(key);
    if (it == escapes_.end())
      it = escapes_.emplace(key, json_chars_expr(g_, normalize_ranges(special))).first;
    return raw.empty() ? it->second : g_.alt({g_.chars(raw), it->second});
  }

  int32_t any_rule() {
    if (any_ >= 0) return any_;
    any_ = g_.add_rule(g_.fresh_name("json-value"));
    any_obj_ = g_.add_rule(g_.fresh_name("json-object"));
    const int32_t arr = g_.add_rule(g_.fresh_name("json-array"));
    const int32_t str = string_rule(json::object());
    const int32_t num = number_rule(json::object(), false);
    const int32_t v = g_.ref(any_);
    const int32_t sep = gemma() ? g_.byte(',') : punct(',');
    const int32_t colon = gemma() ? g_.byte(':') : punct(':');
    const int32_t key =
        gemma() ? g_.seq({g_.chars({{'A', 'Z'}, {'_', '_'}, {'a', 'z'}}),
                          g_.star(g_.chars({{'0', '9'}, {'A', 'Z'}, {'_', '_'}, {'a', 'z'}}))})
                : g_.ref(str);
    const int32_t mem = g_.seq({key, colon, v});
    g_.define(any_obj_, container('{', g_.seq({mem, g_.star(g_.seq({sep, mem}))}), true, '}'));
    g_.define(arr, container('[', g_.seq({v, g_.star(g_.seq({sep, v}))}), true, ']'));
    g_.define(any_, g_.alt({g_.ref(any_obj_), g_.ref(arr), g_.ref(str), g_.ref(num),
                            g_.literal("true"), g_.literal("false"), g_.literal("null")}));
    return any_;
  }

  Grammar& g_;
  const json& root_;
  JsonSchemaOptions o_;
  std::vector<std::string>* warnings_;
  std::map<std::string, int32_t> refs_, leaves_;
  std::map<uint64_t, int32_t> escapes_;
  int32_t any_ = -1, any_obj_ = -1, ws_ = -1;
  std::array<int32_t, 256> punct_ = make_unset();
  static std::array<int32_t, 256> make_unset() {
    std::array<int32_t, 256> a;
    a.fill(-1);
    return a;
  }
};

}  // namespace

int32_t add_json_schema(Grammar& g, const json& schema, const JsonSchemaOptions& o,
                        std::vector<std::string>* warnings) {
  FC_CHECK(o.syntax == Syntax::kJson || o.gemma_string_token >= 0,
           "json_schema: the Gemma syntax needs the <|\"|> token id");
  Compiler c(g, schema, o, warnings);
  return c.rule_for(schema, "root-value", 0);
}

int32_t add_json_any_object(Grammar& g, const JsonSchemaOptions& o) {
  Compiler c(g, json::object(), o, nullptr);
  return c.any_object_rule();
}

}  // namespace fc::grammar
