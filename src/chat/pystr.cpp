// Python str semantics over UTF-8. Behaviour matched against CPython 3.11 (Objects/unicodeobject.c:
// split, strip, splitlines, replace, repr) and Python/pystrtod.c (float repr, 'r' format code).
#include "chat/pystr.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace fc::chat {

namespace {

// Decodes UTF-8 (an invalid byte becomes one U+FFFD); `starts`, when given, receives the byte
// offset where each decoded code point begins, then s.size().
std::vector<char32_t> decode_utf8(std::string_view s, std::vector<size_t>* starts) {
  std::vector<char32_t> out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    if (starts) starts->push_back(i);
    unsigned char c = static_cast<unsigned char>(s[i]);
    int extra = c < 0x80 ? 0 : (c >> 5) == 6 ? 1 : (c >> 4) == 14 ? 2 : (c >> 3) == 30 ? 3 : -1;
    if (extra < 0 || i + extra >= s.size()) {
      out.push_back(0xFFFD);
      ++i;
      continue;
    }
    char32_t cp = extra == 0 ? c : (c & (0x3F >> extra));
    bool ok = true;
    for (int k = 1; k <= extra; ++k) {
      unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) {
        ok = false;
        break;
      }
      cp = (cp << 6) | (cc & 0x3F);
    }
    if (!ok) {
      out.push_back(0xFFFD);
      ++i;
      continue;
    }
    out.push_back(cp);
    i += extra + 1;
  }
  if (starts) starts->push_back(s.size());
  return out;
}

}  // namespace

std::vector<char32_t> utf8_decode(std::string_view s) {
  return decode_utf8(s, nullptr);
}

std::string utf8_encode(const std::vector<char32_t>& cps, size_t begin, size_t end) {
  std::string out;
  for (size_t i = begin; i < end; ++i) utf8_append(out, cps[i]);
  return out;
}

// A byte starts a code point unless it is a continuation byte (10xxxxxx).
static bool is_lead(char c) {
  return (static_cast<unsigned char>(c) & 0xC0) != 0x80;
}

int64_t utf8_length(std::string_view s) {
  int64_t n = 0;
  for (char c : s) n += is_lead(c);
  return n;
}

std::vector<size_t> utf8_offsets(std::string_view s) {
  std::vector<size_t> off;
  off.reserve(s.size() + 1);
  for (size_t i = 0; i < s.size(); ++i)
    if (is_lead(s[i]) || i == 0) off.push_back(i);
  off.push_back(s.size());
  return off;
}

bool py_isspace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
         c == 0x205F || c == 0x3000;
}

bool py_isprintable(char32_t c) {
  if (c < 0x20 || (c >= 0x7F && c <= 0xA0) || c == 0xAD) return false;
  if (c == 0x1680 || (c >= 0x2000 && c <= 0x200F) || (c >= 0x2028 && c <= 0x202F)) return false;
  if ((c >= 0x205F && c <= 0x206F) || c == 0x3000 || c == 0xFEFF) return false;
  if ((c >= 0xD800 && c <= 0xF8FF) || (c >= 0xFFF9 && c <= 0xFFFB) || c >= 0xF0000) return false;
  return true;
}

std::string py_strip(std::string_view s, bool left, bool right, const std::string* chars) {
  std::vector<size_t> off;  // byte offset of each code point, so the result is a slice of s
  std::vector<char32_t> cps = decode_utf8(s, &off);
  std::vector<char32_t> set;
  if (chars) set = utf8_decode(*chars);
  auto strip_me = [&](char32_t c) {
    if (!chars) return py_isspace(c);
    for (char32_t x : set)
      if (x == c) return true;
    return false;
  };
  size_t b = 0, e = cps.size();
  if (left)
    while (b < e && strip_me(cps[b])) ++b;
  if (right)
    while (e > b && strip_me(cps[e - 1])) --e;
  // Re-slice the original bytes so invalid sequences survive untouched (and the result is never
  // longer than s: the lexer measures what was stripped by the difference).
  return std::string(s.substr(off[b], off[e] - off[b]));
}

std::vector<std::string> py_split(std::string_view s, const std::string* sep, int64_t maxsplit,
                                  bool from_right) {
  std::vector<std::string> parts;
  if (sep) {
    if (sep->empty()) throw std::invalid_argument("empty separator");
    if (!from_right) {
      size_t pos = 0;
      while (maxsplit < 0 || static_cast<int64_t>(parts.size()) < maxsplit) {
        size_t hit = s.find(*sep, pos);
        if (hit == std::string_view::npos) break;
        parts.emplace_back(s.substr(pos, hit - pos));
        pos = hit + sep->size();
      }
      parts.emplace_back(s.substr(pos));
    } else {
      size_t end = s.size();
      std::vector<std::string> rev;
      while (maxsplit < 0 || static_cast<int64_t>(rev.size()) < maxsplit) {
        if (end < sep->size()) break;
        size_t hit = s.rfind(*sep, end - sep->size());
        if (hit == std::string_view::npos) break;
        rev.emplace_back(s.substr(hit + sep->size(), end - hit - sep->size()));
        end = hit;
      }
      rev.emplace_back(s.substr(0, end));
      parts.assign(rev.rbegin(), rev.rend());
    }
    return parts;
  }
  // Whitespace split: runs of whitespace separate, leading/trailing whitespace yields nothing.
  std::vector<char32_t> cps = utf8_decode(s);
  int64_t n = static_cast<int64_t>(cps.size());
  if (!from_right) {
    int64_t i = 0;
    while (i < n) {
      while (i < n && py_isspace(cps[i])) ++i;
      if (i >= n) break;
      if (maxsplit >= 0 && static_cast<int64_t>(parts.size()) >= maxsplit) {
        int64_t e = n;
        while (e > i && py_isspace(cps[e - 1])) --e;
        parts.push_back(utf8_encode(cps, i, e));
        break;
      }
      int64_t j = i;
      while (j < n && !py_isspace(cps[j])) ++j;
      parts.push_back(utf8_encode(cps, i, j));
      i = j;
    }
  } else {
    int64_t i = n;
    std::vector<std::string> rev;
    while (i > 0) {
      while (i > 0 && py_isspace(cps[i - 1])) --i;
      if (i <= 0) break;
      if (maxsplit >= 0 && static_cast<int64_t>(rev.size()) >= maxsplit) {
        int64_t b = 0;
        while (b < i && py_isspace(cps[b])) ++b;
        rev.push_back(utf8_encode(cps, b, i));
        break;
      }
      int64_t j = i;
      while (j > 0 && !py_isspace(cps[j - 1])) --j;
      rev.push_back(utf8_encode(cps, j, i));
      i = j;
    }
    parts.assign(rev.rbegin(), rev.rend());
  }
  return parts;
}

std::vector<std::string> py_splitlines(std::string_view s, bool keepends) {
  std::vector<char32_t> cps = utf8_decode(s);
  std::vector<std::string> out;
  size_t i = 0, start = 0;
  auto is_break = [](char32_t c) {
    return c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || c == 0x1C || c == 0x1D ||
           c == 0x1E || c == 0x85 || c == 0x2028 || c == 0x2029;
  };
  while (i < cps.size()) {
    if (!is_break(cps[i])) {
      ++i;
      continue;
    }
    size_t eol = i;
    size_t next = (cps[i] == '\r' && i + 1 < cps.size() && cps[i + 1] == '\n') ? i + 2 : i + 1;
    out.push_back(utf8_encode(cps, start, keepends ? next : eol));
    start = i = next;
  }
  if (start < cps.size()) out.push_back(utf8_encode(cps, start, cps.size()));
  return out;
}

std::string py_replace(std::string_view s, std::string_view old_s, std::string_view new_s,
                       int64_t count) {
  std::string out;
  if (old_s.empty()) {
    // Python inserts `new` before every character and at the end.
    std::vector<size_t> off = utf8_offsets(s);
    int64_t done = 0;
    for (size_t k = 0; k + 1 < off.size() || k == 0; ++k) {
      if (count < 0 || done < count) {
        out += new_s;
        ++done;
      }
      if (k + 1 >= off.size()) break;
      out += s.substr(off[k], off[k + 1] - off[k]);
    }
    if (off.size() > 1 && (count < 0 || done < count)) out += new_s;
    return out;
  }
  size_t pos = 0;
  int64_t done = 0;
  while (count < 0 || done < count) {
    size_t hit = s.find(old_s, pos);
    if (hit == std::string_view::npos) break;
    out += s.substr(pos, hit - pos);
    out += new_s;
    pos = hit + old_s.size();
    ++done;
  }
  out += s.substr(pos);
  return out;
}

// Simple one-to-one case pairs (lower, upper) beyond ASCII.
static char32_t upper_cp(char32_t c) {
  if (c >= 'a' && c <= 'z') return c - 32;
  if (c < 0x80) return c;
  if (c == 0xB5) return 0x39C;
  if ((c >= 0xE0 && c <= 0xFE && c != 0xF7)) return c - 32;
  if (c == 0xFF) return 0x178;
  if (c >= 0x3B1 && c <= 0x3C9 && c != 0x3C2) return c - 32;
  if (c == 0x3C2) return 0x3A3;
  if (c >= 0x430 && c <= 0x44F) return c - 32;
  if (c >= 0x450 && c <= 0x45F) return c - 80;
  return c;
}

static char32_t lower_cp(char32_t c) {
  if (c >= 'A' && c <= 'Z') return c + 32;
  if (c < 0x80) return c;
  if (c >= 0xC0 && c <= 0xDE && c != 0xD7) return c + 32;
  if (c == 0x178) return 0xFF;
  if (c >= 0x391 && c <= 0x3A9 && c != 0x3A2) return c + 32;
  if (c >= 0x410 && c <= 0x42F) return c + 32;
  if (c >= 0x400 && c <= 0x40F) return c + 80;
  return c;
}

static bool is_upper_cp(char32_t c) {
  return lower_cp(c) != c;
}
static bool is_lower_cp(char32_t c) {
  return upper_cp(c) != c || c == 0xDF;
}

static void append_upper(std::string& out, char32_t c) {
  if (c == 0xDF) {
    out += "SS";  // German sharp s upper-cases to two letters in Python.
    return;
  }
  utf8_append(out, upper_cp(c));
}

std::string py_upper(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : utf8_decode(s)) append_upper(out, c);
  return out;
}

std::string py_lower(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : utf8_decode(s)) utf8_append(out, lower_cp(c));
  return out;
}

std::string py_capitalize(std::string_view s) {
  std::vector<char32_t> cps = utf8_decode(s);
  std::string out;
  for (size_t i = 0; i < cps.size(); ++i) {
    if (i == 0)
      append_upper(out, cps[i]);
    else
      utf8_append(out, lower_cp(cps[i]));
  }
  return out;
}

std::string jinja_title(std::string_view s) {
  // jinja2 filters.do_title: split on ([-\s({\[<]+), upper-case the first char of each piece.
  std::vector<char32_t> cps = utf8_decode(s);
  std::string out;
  bool at_start = true;
  for (char32_t c : cps) {
    bool sep = c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || py_isspace(c);
    if (sep) {
      utf8_append(out, c);
      at_start = true;
    } else if (at_start) {
      append_upper(out, c);
      at_start = false;
    } else {
      utf8_append(out, lower_cp(c));
    }
  }
  return out;
}

bool py_isupper_str(std::string_view s) {
  bool cased = false;
  for (char32_t c : utf8_decode(s)) {
    if (is_lower_cp(c)) return false;
    if (is_upper_cp(c)) cased = true;
  }
  return cased;
}

bool py_islower_str(std::string_view s) {
  bool cased = false;
  for (char32_t c : utf8_decode(s)) {
    if (is_upper_cp(c)) return false;
    if (is_lower_cp(c)) cased = true;
  }
  return cased;
}

std::string py_repr_string(std::string_view s) {
  bool has_single = s.find('\'') != std::string_view::npos;
  bool has_double = s.find('"') != std::string_view::npos;
  char quote = (has_single && !has_double) ? '"' : '\'';
  std::string out(1, quote);
  char buf[16];
  for (char32_t c : utf8_decode(s)) {
    if (c == static_cast<char32_t>(quote) || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (py_isprintable(c)) {
      utf8_append(out, c);
    } else {
      if (c <= 0xFF)
        std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned>(c));
      else if (c <= 0xFFFF)
        std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
      else
        std::snprintf(buf, sizeof buf, "\\U%08x", static_cast<unsigned>(c));
      out += buf;
    }
  }
  out += quote;
  return out;
}

std::string py_repr_float(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v < 0 ? "-inf" : "inf";
  if (v == 0) return std::signbit(v) ? "-0.0" : "0.0";
  // Shortest round-trip digits in scientific form "d.ddde±X", then re-laid out the way
  // PyOS_double_to_string(..., 'r', ...) does: exponent form iff decpt <= -4 or decpt > 16.
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
  std::string sci(buf, res.ptr);
  std::string out;
  size_t i = 0;
  if (sci[0] == '-') {
    out += '-';
    i = 1;
  }
  size_t epos = sci.find('e');
  std::string digits;
  for (size_t k = i; k < epos; ++k)
    if (sci[k] != '.') digits += sci[k];
  int exp10 = std::stoi(sci.substr(epos + 1));
  int decpt = exp10 + 1;  // value = 0.DIGITS * 10^decpt
  int nd = static_cast<int>(digits.size());
  if (decpt > -4 && decpt <= 16) {
    if (decpt <= 0) {
      out += "0.";
      out.append(static_cast<size_t>(-decpt), '0');
      out += digits;
    } else if (decpt >= nd) {
      out += digits;
      out.append(static_cast<size_t>(decpt - nd), '0');
      out += ".0";
    } else {
      out += digits.substr(0, decpt);
      out += '.';
      out += digits.substr(decpt);
    }
  } else {
    out += digits[0];
    if (nd > 1) {
      out += '.';
      out += digits.substr(1);
    }
    int e = decpt - 1;
    std::snprintf(buf, sizeof buf, "e%c%02d", e < 0 ? '-' : '+', e < 0 ? -e : e);
    out += buf;
  }
  return out;
}

std::vector<int64_t> py_slice_indices(int64_t len, const int64_t* start, const int64_t* stop,
                                      int64_t step) {
  // CPython PySlice_AdjustIndices.
  int64_t lo, hi;
  if (step > 0) {
    lo = start ? *start : 0;
    hi = stop ? *stop : len;
    if (lo < 0) lo = std::max<int64_t>(lo + len, 0);
    if (lo > len) lo = len;
    if (hi < 0) hi = std::max<int64_t>(hi + len, 0);
    if (hi > len) hi = len;
  } else {
    lo = start ? *start : len - 1;
    hi = stop ? *stop : -1;
    if (start) {
      if (lo < 0) lo = std::max<int64_t>(lo + len, -1);
      if (lo >= len) lo = len - 1;
    }
    if (stop) {
      if (hi < 0) hi = std::max<int64_t>(hi + len, -1);
      if (hi >= len) hi = len - 1;
    }
  }
  std::vector<int64_t> idx;
  if (step > 0)
    for (int64_t i = lo; i < hi; i += step) idx.push_back(i);
  else
    for (int64_t i = lo; i > hi; i += step) idx.push_back(i);
  return idx;
}

}  // namespace fc::chat
