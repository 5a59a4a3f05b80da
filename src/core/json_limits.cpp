#include "core/json_limits.h"

#include <fstream>
#include <sstream>
#include <utility>
#include <vector>

namespace fc {
namespace {

// nlohmann's DOM builder (the one json::parse uses) behind a depth counter. The builder keeps
// its own stack of open containers (no recursion); returning false from start_object /
// start_array makes sax_parse stop right there.
template <typename Json>
class BoundedSax {
 public:
  using number_integer_t = typename Json::number_integer_t;
  using number_unsigned_t = typename Json::number_unsigned_t;
  using number_float_t = typename Json::number_float_t;
  using string_t = typename Json::string_t;
  using binary_t = typename Json::binary_t;

  BoundedSax(Json& root, int max_depth) : dom_(root, /*allow_exceptions=*/false), max_(max_depth) {}

  bool null() { return dom_.null(); }
  bool boolean(bool v) { return dom_.boolean(v); }
  bool number_integer(number_integer_t v) { return dom_.number_integer(v); }
  bool number_unsigned(number_unsigned_t v) { return dom_.number_unsigned(v); }
  bool number_float(number_float_t v, const string_t& s) { return dom_.number_float(v, s); }
  bool string(string_t& v) { return dom_.string(v); }
  bool binary(binary_t& v) { return dom_.binary(v); }
  bool key(string_t& v) { return dom_.key(v); }
  bool start_object(std::size_t n) { return open() && dom_.start_object(n); }
  bool end_object() {
    --depth_;
    return dom_.end_object();
  }
  bool start_array(std::size_t n) { return open() && dom_.start_array(n); }
  bool end_array() {
    --depth_;
    return dom_.end_array();
  }
  template <typename Exception>
  bool parse_error(std::size_t byte, const std::string&, const Exception& ex) {
    syntax_error_ = ex.what();
    error_byte_ = byte;
    return false;
  }

  bool too_deep() const { return too_deep_; }
  const std::string& syntax_error() const { return syntax_error_; }
  size_t error_byte() const { return error_byte_; }

 private:
  bool open() {
    if (++depth_ <= max_) return true;
    too_deep_ = true;
    return false;
  }

  nlohmann::detail::json_sax_dom_parser<Json> dom_;
  int max_;
  int depth_ = 0;
  bool too_deep_ = false;
  std::string syntax_error_;
  size_t error_byte_ = 0;
};

// Byte offset of the `depth`-th unclosed bracket, found by a second, flat scan (the SAX
// interface does not report positions); used only for the error message.
size_t offset_of_depth(std::string_view text, int depth) {
  int d = 0;
  bool in_string = false, escaped = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++d == depth) return i;
    } else if (c == ']' || c == '}') {
      --d;
    }
  }
  return text.size();
}

template <typename Json>
Json parse_bounded(std::string_view text, int max_depth) {
  Json out;
  BoundedSax<Json> sax(out, max_depth);
  const bool ok =
      Json::sax_parse(text.begin(), text.end(), &sax, nlohmann::detail::input_format_t::json,
                      /*strict=*/true);
  if (sax.too_deep()) {
    const size_t at = offset_of_depth(text, max_depth + 1);
    throw JsonError(
        JsonError::Kind::kTooDeep,
        str_cat("JSON nested deeper than ", max_depth, " levels (the limit) at byte ", at), at);
  }
  if (!ok) {
    const std::string what = sax.syntax_error().empty() ? "invalid JSON" : sax.syntax_error();
    throw JsonError(JsonError::Kind::kSyntax, what, sax.error_byte());
  }
  return out;
}

// parse_bounded with the source named in front of the message.
template <typename Json>
Json parse_named(std::string_view text, const std::string& what, int max_depth) {
  try {
    return parse_bounded<Json>(text, max_depth);
  } catch (const JsonError& e) {
    const char* sep = e.kind() == JsonError::Kind::kSyntax ? ": invalid JSON: " : ": ";
    throw JsonError(e.kind(), str_cat(what, sep, e.what()), e.byte());
  }
}

std::string read_whole_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(path, ": cannot open");
  std::ostringstream ss;
  ss << f.rdbuf();
  if (f.bad()) fail(path, ": read error");
  return ss.str();
}

template <typename Json>
int depth_of(const Json& root) {
  int best = 0;
  std::vector<std::pair<const Json*, int>> todo = {{&root, 0}};
  while (!todo.empty()) {
    auto [j, d] = todo.back();
    todo.pop_back();
    if (!j->is_structured()) continue;
    best = std::max(best, d + 1);
    for (const Json& child : *j) todo.emplace_back(&child, d + 1);
  }
  return best;
}

}  // namespace

nlohmann::json parse_json(std::string_view text, int max_depth) {
  return parse_bounded<nlohmann::json>(text, max_depth);
}

nlohmann::ordered_json parse_ordered_json(std::string_view text, int max_depth) {
  return parse_bounded<nlohmann::ordered_json>(text, max_depth);
}

nlohmann::json parse_json(std::string_view text, const std::string& what, int max_depth) {
  return parse_named<nlohmann::json>(text, what, max_depth);
}

nlohmann::ordered_json parse_ordered_json(std::string_view text, const std::string& what,
                                          int max_depth) {
  return parse_named<nlohmann::ordered_json>(text, what, max_depth);
}

nlohmann::json read_json_file(const std::string& path, int max_depth) {
  return parse_json(read_whole_file(path), path, max_depth);
}

nlohmann::ordered_json read_ordered_json_file(const std::string& path, int max_depth) {
  return parse_ordered_json(read_whole_file(path), path, max_depth);
}

int json_depth(const nlohmann::json& j) {
  return depth_of(j);
}

int json_depth(const nlohmann::ordered_json& j) {
  return depth_of(j);
}

}  // namespace fc
