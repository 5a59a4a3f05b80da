#include "http/multipart.h"

#include <cctype>

namespace fc::http {

namespace {

[[noreturn]] void bad(const std::string& message, int status = 400) {
  throw MultipartError(status, message);
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// RFC 9110 tchar: the characters of a header name or an unquoted token.
bool tchar(char c) {
  if (std::isalnum(static_cast<unsigned char>(c))) return true;
  for (char t : std::string_view("!#$%&'*+-.^_`|~"))
    if (c == t) return true;
  return false;
}

// RFC 2046 bchars (a boundary's characters; a space only inside).
bool bchar(char c) {
  if (std::isalnum(static_cast<unsigned char>(c))) return true;
  for (char t : std::string_view("'()+_,-./:=? "))
    if (c == t) return true;
  return false;
}

struct HeaderValue {
  std::string type;                                         // lower-cased
  std::vector<std::pair<std::string, std::string>> params;  // names lower-cased, values unquoted
};

// "type; a=b; c=\"d\\\"e\"" (Content-Type, Content-Disposition). `what` names the header for
// the error. Unquoted values run to the next ';' or space (boundaries with '=' or '/' are often
// sent unquoted although RFC 2045 wants them quoted).
HeaderValue parse_header_value(std::string_view v, const std::string& what) {
  HeaderValue out;
  size_t i = 0;
  auto skip_ws = [&] {
    while (i < v.size() && (v[i] == ' ' || v[i] == '\t')) ++i;
  };
  skip_ws();
  const size_t type_end = v.find(';', i);
  out.type = lower(trim(v.substr(i, type_end == std::string_view::npos ? v.npos : type_end - i)));
  if (out.type.empty()) bad(what + " has no value");
  i = type_end == std::string_view::npos ? v.size() : type_end;
  while (i < v.size()) {
    ++i;  // the ';'
    skip_ws();
    if (i == v.size()) break;  // a trailing ';'
    const size_t name_start = i;
    while (i < v.size() && tchar(v[i])) ++i;
    const std::string name = lower(v.substr(name_start, i - name_start));
    skip_ws();
    if (name.empty() || i == v.size() || v[i] != '=')
      bad(what + ": malformed parameter at offset " + std::to_string(name_start) +
          " (expected name=value)");
    ++i;
    skip_ws();
    std::string value;
    if (i < v.size() && v[i] == '"') {
      ++i;
      bool closed = false;
      while (i < v.size()) {
        const char c = v[i++];
        if (c == '"') {
          closed = true;
          break;
        }
        if (c == '\\') {
          if (i == v.size()) break;
          value += v[i++];
        } else {
          value += c;
        }
      }
      if (!closed) bad(what + ": parameter '" + name + "' has an unterminated quoted string");
    } else {
      const size_t vs = i;
      while (i < v.size() && v[i] != ';' && v[i] != ' ' && v[i] != '\t' && v[i] != '"') ++i;
      value = std::string(v.substr(vs, i - vs));
      if (value.empty()) bad(what + ": parameter '" + name + "' has an empty value");
    }
    skip_ws();
    if (i < v.size() && v[i] != ';')
      bad(what + ": unexpected character '" + std::string(1, v[i]) + "' after parameter '" + name +
          "'");
    for (const auto& [n, _] : out.params)
      if (n == name) bad(what + ": parameter '" + name + "' given twice");
    out.params.emplace_back(name, std::move(value));
  }
  return out;
}

const std::string* param(const HeaderValue& h, std::string_view name) {
  for (const auto& [n, v] : h.params)
    if (n == name) return &v;
  return nullptr;
}

std::string part_name(size_t index) {
  return "multipart part " + std::to_string(index + 1);
}

// Parses the header block of part `index` starting at `pos`; leaves `pos` at its content.
void parse_part_headers(std::string_view body, size_t& pos, size_t index,
                        const MultipartLimits& lim, FormPart& part) {
  const size_t start = pos;
  const std::string who = part_name(index);
  bool have_disposition = false;
  for (;;) {
    const size_t eol = body.find("\r\n", pos);
    if (eol == std::string_view::npos) {
      if (body.find('\n', pos) != std::string_view::npos)
        bad(who + ": header lines end in a bare LF; multipart bodies need CRLF line ends");
      if (body.size() - start > lim.max_header_bytes)
        bad(who + ": headers over the limit of " + std::to_string(lim.max_header_bytes) + " bytes");
      bad(who + ": the body ends inside the part's headers (no blank line after them)");
    }
    if (eol + 2 - start > lim.max_header_bytes)
      bad(who + ": headers over the limit of " + std::to_string(lim.max_header_bytes) + " bytes");
    const std::string_view line = body.substr(pos, eol - pos);
    pos = eol + 2;
    if (line.empty()) break;
    if (line.find('\n') != std::string_view::npos)
      bad(who + ": header lines end in a bare LF; multipart bodies need CRLF line ends");
    if (line.front() == ' ' || line.front() == '\t')
      bad(who + ": folded header lines are not allowed");
    if (part.headers.size() == lim.max_headers)
      bad(who + ": more than " + std::to_string(lim.max_headers) + " header lines");
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0)
      bad(who + ": malformed header line (expected 'Name: value')");
    for (char c : line.substr(0, colon))
      if (!tchar(c))
        bad(who + ": malformed header name '" + std::string(line.substr(0, colon)) + "'");
    const std::string name = lower(line.substr(0, colon));
    const std::string value(trim(line.substr(colon + 1)));
    if (name == "content-disposition") {
      if (have_disposition) bad(who + ": Content-Disposition given twice");
      have_disposition = true;
      const HeaderValue h = parse_header_value(value, who + ": Content-Disposition");
      if (h.type != "form-data")
        bad(who + ": Content-Disposition must be form-data, got '" + h.type + "'");
      const std::string* n = param(h, "name");
      if (!n) bad(who + ": Content-Disposition has no name parameter");
      part.name = *n;
      if (const std::string* f = param(h, "filename")) part.filename = *f;
    } else if (name == "content-type") {
      if (!part.content_type.empty()) bad(who + ": Content-Type given twice");
      part.content_type = value;
    }
    part.headers.emplace_back(name, value);
  }
  if (!have_disposition) bad(who + ": no Content-Disposition header");
}

// Where the delimiter "--B" at `at` (just past its dashes and boundary: `after`) leads:
// 1 a next part (pos past its CRLF), 2 the end (close delimiter), 0 not a delimiter (content),
// -1 a bare LF after it.
int delimiter_kind(std::string_view body, size_t after, size_t& next) {
  if (body.substr(after, 2) == "--") {
    next = after + 2;
    return 2;
  }
  size_t i = after;
  while (i < body.size() && (body[i] == ' ' || body[i] == '\t')) ++i;
  if (body.substr(i, 2) == "\r\n") {
    next = i + 2;
    return 1;
  }
  if (i < body.size() && body[i] == '\n') return -1;
  return 0;
}

// True when "--B" starts a line that ends in a bare LF somewhere from `from` on: a client that
// framed the body with LF only (reported as such rather than as a missing boundary).
bool bare_lf_delimiter(std::string_view body, size_t from, const std::string& dash) {
  for (size_t at = body.find(dash, from); at != std::string_view::npos;
       at = body.find(dash, at + 1)) {
    const bool line_start = at == 0 || (body[at - 1] == '\n' && (at < 2 || body[at - 2] != '\r'));
    size_t next = 0;
    if (line_start && delimiter_kind(body, at + dash.size(), next) != 0) return true;
  }
  return false;
}

}  // namespace

const FormPart* MultipartForm::find(std::string_view name) const {
  for (const FormPart& p : parts)
    if (p.name == name) return &p;
  return nullptr;
}

size_t MultipartForm::count(std::string_view name) const {
  size_t n = 0;
  for (const FormPart& p : parts) n += p.name == name;
  return n;
}

std::string multipart_boundary(std::string_view content_type) {
  const HeaderValue h = parse_header_value(content_type, "Content-Type");
  if (h.type != "multipart/form-data")
    bad("Content-Type must be multipart/form-data, got '" + std::string(trim(content_type)) + "'");
  const std::string* b = param(h, "boundary");
  if (!b) bad("Content-Type multipart/form-data has no boundary parameter");
  if (b->empty() || b->size() > 70)
    bad("multipart boundary must be 1 to 70 characters, got " + std::to_string(b->size()));
  for (char c : *b)
    if (!bchar(c))
      bad("multipart boundary holds a character RFC 2046 does not allow (byte " +
          std::to_string(static_cast<unsigned char>(c)) + ")");
  if (b->back() == ' ') bad("multipart boundary must not end with a space");
  return *b;
}

MultipartForm parse_multipart(std::string_view body, std::string_view boundary,
                              const MultipartLimits& lim) {
  if (body.size() > lim.max_total_bytes)
    bad("multipart body is " + std::to_string(body.size()) + " bytes, over the limit of " +
            std::to_string(lim.max_total_bytes),
        413);
  if (boundary.empty()) bad("multipart boundary is empty");
  const std::string dash = "--" + std::string(boundary);
  const std::string delim = "\r\n" + dash;
  MultipartForm form;

  // The opening delimiter: at the very start, or after a preamble ending in CRLF.
  size_t pos = std::string_view::npos;
  int kind = 0;
  if (body.substr(0, dash.size()) == dash) {
    kind = delimiter_kind(body, dash.size(), pos);
  }
  for (size_t at = body.find(delim); kind <= 0 && at != std::string_view::npos;
       at = body.find(delim, at + 1))
    kind = delimiter_kind(body, at + delim.size(), pos);
  if (kind <= 0) {
    if (kind < 0 || bare_lf_delimiter(body, 0, dash))
      bad("multipart delimiter lines end in a bare LF; multipart bodies need CRLF line ends");
    bad("multipart body has no opening boundary '" + dash + "'");
  }

  while (kind == 1) {
    if (form.parts.size() == lim.max_parts)
      bad("multipart body has more than " + std::to_string(lim.max_parts) + " parts");
    FormPart part;
    parse_part_headers(body, pos, form.parts.size(), lim, part);
    // The content runs to the next real delimiter.
    const size_t content = pos;
    kind = 0;
    size_t at = body.find(delim, content);
    for (; at != std::string_view::npos; at = body.find(delim, at + 1)) {
      kind = delimiter_kind(body, at + delim.size(), pos);
      if (kind > 0) break;  // a bare LF after "--B" inside content is content
    }
    if (kind <= 0) {
      const std::string who = part_name(form.parts.size());
      if (kind < 0 || bare_lf_delimiter(body, content, dash))
        bad(who + ": delimiter lines end in a bare LF; multipart bodies need CRLF line ends");
      bad(who + ": the body ends without the closing boundary '" + dash + "--'");
    }
    part.data = body.substr(content, at - content);
    form.parts.push_back(std::move(part));
  }
  return form;  // kind == 2: what follows the close delimiter is the epilogue
}

}  // namespace fc::http
