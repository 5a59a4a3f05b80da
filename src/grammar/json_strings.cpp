#include "grammar/json_strings.h"

#include "grammar/json_schema.h"

#include <cctype>
#include <cstdio>
#include <map>
#include <set>

namespace fc::grammar {
namespace {

const std::set<std::string> kAnnotations = {"title",
                                            "description",
                                            "default",
                                            "examples",
                                            "deprecated",
                                            "readOnly",
                                            "writeOnly",
                                            "$comment",
                                            "$schema",
                                            "$id",
                                            "$anchor",
                                            "contentMediaType",
                                            "contentEncoding",
                                            "contentSchema",
                                            "discriminator",
                                            "externalDocs",
                                            "xml",
                                            "example",
                                            "$defs",
                                            "definitions",
                                            "$vocabulary",
                                            "strict"};

const std::set<std::string> kHandled = {"type",
                                        "enum",
                                        "const",
                                        "properties",
                                        "required",
                                        "additionalProperties",
                                        "items",
                                        "prefixItems",
                                        "minItems",
                                        "maxItems",
                                        "minLength",
                                        "maxLength",
                                        "pattern",
                                        "format",
                                        "minimum",
                                        "maximum",
                                        "exclusiveMinimum",
                                        "exclusiveMaximum",
                                        "anyOf",
                                        "oneOf",
                                        "allOf",
                                        "$ref",
                                        "nullable",
                                        "unevaluatedProperties",
                                        "additionalItems"};

const std::map<std::string, std::string> kFormats = {
    // Days per month (February up to 29 in every year: leap years are not a regular language
    // worth its size here).
    {"date",
     R"(\d{4}-((0[13578]|1[02])-(0[1-9]|[12]\d|3[01])|(0[469]|11)-(0[1-9]|[12]\d|30)|02-(0[1-9]|[12]\d)))"},
    {"time",
     R"(([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)(\.\d{1,9})?([Zz]|[+-]([01]\d|2[0-3]):[0-5]\d))"},
    {"date-time",
     R"(\d{4}-((0[13578]|1[02])-(0[1-9]|[12]\d|3[01])|(0[469]|11)-(0[1-9]|[12]\d|30)|02-(0[1-9]|[12]\d))[Tt]([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)(\.\d{1,9})?([Zz]|[+-]([01]\d|2[0-3]):[0-5]\d))"},
    {"uuid", R"([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})"},
    {"email",
     R"([A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+)"},
    {"ipv4", R"(((25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d))"},
    {"ipv6",
     R"(([0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}|([0-9a-fA-F]{1,4}:){1,7}:|([0-9a-fA-F]{1,4}:){1,6}:[0-9a-fA-F]{1,4}|([0-9a-fA-F]{1,4}:){1,5}(:[0-9a-fA-F]{1,4}){1,2}|([0-9a-fA-F]{1,4}:){1,4}(:[0-9a-fA-F]{1,4}){1,3}|([0-9a-fA-F]{1,4}:){1,3}(:[0-9a-fA-F]{1,4}){1,4}|([0-9a-fA-F]{1,4}:){1,2}(:[0-9a-fA-F]{1,4}){1,5}|[0-9a-fA-F]{1,4}:(:[0-9a-fA-F]{1,4}){1,6}|:((:[0-9a-fA-F]{1,4}){1,7}|:))"},
    {"hostname",
     R"([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*)"},
    {"uri", R"([A-Za-z][A-Za-z0-9+.\-]*:[^\s"<>\\^`{|}]*)"},
};

}  // namespace

bool is_annotation(const std::string& keyword) {
  return kAnnotations.count(keyword) > 0;
}

bool is_handled_keyword(const std::string& keyword) {
  return kHandled.count(keyword) > 0;
}

const std::string* format_regex(const std::string& format) {
  auto it = kFormats.find(format);
  return it == kFormats.end() ? nullptr : &it->second;
}

// The JSON encodings of one character in `r`: raw, or an escape for " \ and controls.
int32_t json_chars_expr(Grammar& g, const CharRanges& r) {
  const CharRanges raw = subtract_ranges(r, {{0, 0x1F}, {'"', '"'}, {'\\', '\\'}});
  std::vector<int32_t> alts;
  if (!raw.empty()) alts.push_back(g.chars(raw));
  auto has = [&](char32_t c) {
    for (auto [lo, hi] : r)
      if (c >= lo && c <= hi) return true;
    return false;
  };
  static const std::pair<char32_t, char> kShort[] = {{'"', '"'},  {'\\', '\\'}, {'/', '/'},
                                                     {'\b', 'b'}, {'\f', 'f'},  {'\n', 'n'},
                                                     {'\r', 'r'}, {'\t', 't'}};
  ByteSet esc;
  for (auto [c, e] : kShort)
    if (has(c)) esc.set(static_cast<uint8_t>(e));
  if (esc.any()) alts.push_back(g.seq({g.byte('\\'), g.bytes(esc)}));
  // Other control characters as \u00XX (either hex case).
  for (char32_t c = 0; c < 0x20; ++c) {
    if (!has(c)) continue;
    char h[3];
    std::snprintf(h, sizeof h, "%02x", static_cast<unsigned>(c));
    ByteSet lo;
    lo.set(static_cast<uint8_t>(h[1]));
    lo.set(static_cast<uint8_t>(std::toupper(h[1])));
    alts.push_back(g.seq({g.literal("\\u00"), g.byte(static_cast<uint8_t>(h[0])), g.bytes(lo)}));
  }
  return g.alt(alts);
}

CharEmitter json_string_chars() {
  return [](Grammar& g, const CharRanges& r) { return json_chars_expr(g, r); };
}

}  // namespace fc::grammar
