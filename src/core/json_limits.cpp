#include "core/json_limits.h"

#include <fstream>
#include <sstream>

#include "core/error.h"

namespace fc {
namespace {

// Thrown from the parser callback to stop at the first level too deep (the callback's return
// value only discards a value, it does not stop the parse).
struct TooDeep {};

template <class Json>
Json parse_bounded(std::string_view text, const std::string& what, int max_depth) {
  // `depth` is the number of enclosing containers, so a value at nesting level n (the root
  // container is level 1) starts with depth n - 1.
  auto cb = [max_depth](int depth, nlohmann::json::parse_event_t ev, Json&) -> bool {
    if ((ev == nlohmann::json::parse_event_t::object_start ||
         ev == nlohmann::json::parse_event_t::array_start) &&
        depth >= max_depth)
      throw TooDeep{};
    return true;
  };
  try {
    return Json::parse(text.begin(), text.end(), cb);
  } catch (const TooDeep&) {
    fail(what, ": JSON nesting deeper than ", max_depth, " levels");
  } catch (const nlohmann::json::exception& e) {
    fail(what, ": invalid JSON: ", e.what());
  }
}

}  // namespace

nlohmann::json parse_json_bounded(std::string_view text, const std::string& what, int max_depth) {
  return parse_bounded<nlohmann::json>(text, what, max_depth);
}

nlohmann::ordered_json parse_ordered_json_bounded(std::string_view text, const std::string& what,
                                                  int max_depth) {
  return parse_bounded<nlohmann::ordered_json>(text, what, max_depth);
}

namespace {

std::string read_whole_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(path, ": cannot open");
  std::ostringstream ss;
  ss << f.rdbuf();
  if (f.bad()) fail(path, ": read error");
  return ss.str();
}

}  // namespace

nlohmann::json read_json_file_bounded(const std::string& path, int max_depth) {
  return parse_json_bounded(read_whole_file(path), path, max_depth);
}

nlohmann::ordered_json read_ordered_json_file_bounded(const std::string& path, int max_depth) {
  return parse_ordered_json_bounded(read_whole_file(path), path, max_depth);
}

}  // namespace fc
