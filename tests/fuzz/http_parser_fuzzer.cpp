// Fuzzes the incremental HTTP/1.1 request parser (src/http/parser.h), the first code that sees a
// client's bytes. Input: a 4-byte little-endian split seed, then the bytes of a connection
// (possibly several pipelined requests). The bytes are parsed twice, in one piece and in random
// pieces of 1..64 bytes; both must give the same requests (method, target, path, query,
// headers, body, keep-alive) and the same error status, every limit must hold for an accepted
// request, and an error must be one of the statuses parser.h documents. Small limits so that
// short inputs reach every one of them.
#include <algorithm>
#include <string>
#include <vector>

#include "http/parser.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

fc::http::Limits limits() {
  fc::http::Limits l;
  l.max_target_bytes = 256;
  l.max_head_bytes = 1024;
  l.max_headers = 16;
  l.max_body_bytes = 4096;
  return l;
}

// One parse outcome: a request as text, or "error <status>", or "incomplete".
std::string outcome(fc::http::RequestParser& p) {
  if (p.failed()) {
    const int st = p.error_status();
    FUZZ_CHECK(
        st == 400 || st == 413 || st == 414 || st == 417 || st == 431 || st == 501 || st == 505,
        "undocumented error status " + std::to_string(st));
    FUZZ_CHECK(!p.error_message().empty(), "error without a message");
    return "error " + std::to_string(st);
  }
  if (!p.done()) return "incomplete";
  const fc::http::Request& r = p.request();
  const fc::http::Limits l = limits();
  FUZZ_CHECK(r.target.size() <= l.max_target_bytes, "target over max_target_bytes");
  FUZZ_CHECK(static_cast<int>(r.headers.size()) <= l.max_headers, "more than max_headers");
  FUZZ_CHECK(r.body.size() <= l.max_body_bytes, "body over max_body_bytes");
  std::string s = r.method + " " + r.target + " " + r.path + " ?" + r.query + " 1." +
                  std::to_string(r.version_minor) + (p.keep_alive() ? " ka" : " close") + "\n";
  for (const auto& [name, value] : r.headers) {
    for (char c : name) FUZZ_CHECK(!(c >= 'A' && c <= 'Z'), "header name not lower-cased");
    s += name + ": " + value + "\n";
  }
  return s + "\n" + r.body;
}

// Parses `data` as a connection: requests one after another until the bytes run out or one
// fails. `piece` gives the size of the next piece fed (0: all that is left).
template <typename Piece>
std::vector<std::string> parse_all(std::string_view data, Piece piece) {
  std::vector<std::string> out;
  fc::http::RequestParser p(limits());
  size_t pos = 0;
  while (pos < data.size()) {
    const size_t want = piece();
    const size_t n = want == 0 ? data.size() - pos : std::min(data.size() - pos, want);
    const size_t used = p.feed(data.substr(pos, n));
    FUZZ_CHECK(used <= n, "feed used more than it was given");
    FUZZ_CHECK(used == n || p.done() || p.failed(), "feed stopped early without a result");
    pos += used;
    if (p.failed()) {
      out.push_back(outcome(p));
      return out;
    }
    if (p.done()) {
      out.push_back(outcome(p));
      p.reset();
    }
  }
  if (p.started()) out.push_back(outcome(p));
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fc::fuzz::Input in(data, size);
  uint32_t x = in.take<uint32_t>() | 1;
  const std::string bytes = in.rest();
  const std::vector<std::string> whole = parse_all(bytes, [] { return size_t{0}; });
  const std::vector<std::string> split = parse_all(bytes, [&] {
    x = x * 1664525u + 1013904223u;
    return size_t{1} + (x >> 26);  // 1..64 bytes
  });
  if (whole != split) {
    std::string diff;
    for (const auto* side : {&whole, &split}) {
      diff += side == &whole ? "\n--- whole:" : "\n--- split:";
      for (const std::string& o : *side) diff += "\n[" + o.substr(0, 300) + "]";
    }
    FUZZ_CHECK(false, "split input parsed differently" + diff);
  }
  return 0;
}
