#include "http/parser.h"

#include <algorithm>
#include <cctype>
#include <cstdint>

namespace fc::http {
namespace {

char lower(char c) {
  return static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
}

std::string to_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = lower(c);
  return out;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}

// RFC 9110 token characters (method and field names).
bool is_tchar(char c) {
  if (std::isalnum(static_cast<unsigned char>(c))) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Comma-separated list elements, trimmed, empty ones dropped.
template <typename F>
void for_each_element(std::string_view v, F f) {
  while (!v.empty()) {
    const size_t comma = v.find(',');
    std::string_view e = trim_ows(v.substr(0, comma));
    if (!e.empty()) f(e);
    if (comma == std::string_view::npos) break;
    v.remove_prefix(comma + 1);
  }
}

}  // namespace

const std::string* Request::header(std::string_view name) const {
  for (const auto& [k, v] : headers)
    if (iequals(k, name)) return &v;
  return nullptr;
}

std::string Request::header_value(std::string_view name, const std::string& fallback) const {
  const std::string* v = header(name);
  return v ? *v : fallback;
}

std::string percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      const int hi = hex_value(s[i + 1]), lo = hex_value(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

void RequestParser::reset() {
  const Limits l = limits_;
  *this = RequestParser(l);
}

bool RequestParser::fail(int status, std::string message) {
  state_ = State::kError;
  error_status_ = status;
  error_message_ = std::move(message);
  return false;
}

size_t RequestParser::feed(std::string_view data) {
  size_t used = 0;
  while (used < data.size() && state_ != State::kDone && state_ != State::kError) {
    std::string_view rest = data.substr(used);
    switch (state_) {
      case State::kHead:
        used += feed_head(rest);
        break;
      case State::kBody: {
        const size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, rest.size()));
        req_.body.append(rest.data(), n);
        remaining_ -= n;
        used += n;
        if (remaining_ == 0) state_ = State::kDone;
        break;
      }
      case State::kChunkSize: {
        bool complete = false;
        used += feed_line(rest, line_, 1024, complete);
        if (state_ == State::kError || !complete) break;
        std::string_view size_text = line_;
        if (const size_t semi = size_text.find(';'); semi != std::string_view::npos)
          size_text = size_text.substr(0, semi);  // chunk extensions are ignored
        size_text = trim_ows(size_text);
        uint64_t n = 0;
        if (size_text.empty() || size_text.size() > 15) {
          fail(400, "malformed chunk size");
          break;
        }
        for (char c : size_text) {
          const int h = hex_value(c);
          if (h < 0) {
            fail(400, "malformed chunk size");
            break;
          }
          n = n * 16 + static_cast<uint64_t>(h);
        }
        if (state_ == State::kError) break;
        line_.clear();
        if (n == 0) {
          state_ = State::kTrailers;
        } else if (req_.body.size() + n > limits_.max_body_bytes) {
          fail(413, "request body larger than " + std::to_string(limits_.max_body_bytes) +
                        " bytes (the limit)");
        } else {
          remaining_ = n;
          state_ = State::kChunkData;
        }
        break;
      }
      case State::kChunkData: {
        const size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, rest.size()));
        req_.body.append(rest.data(), n);
        remaining_ -= n;
        used += n;
        if (remaining_ == 0) state_ = State::kChunkDataEnd;
        break;
      }
      case State::kChunkDataEnd: {
        bool complete = false;
        used += feed_line(rest, line_, 2, complete);
        if (state_ == State::kError || !complete) break;
        if (!line_.empty()) {
          fail(400, "chunk data longer than its size");
          break;
        }
        state_ = State::kChunkSize;
        break;
      }
      case State::kTrailers: {
        bool complete = false;
        // No per-line limit here: the trailer section's byte budget is the only one, so a long
        // trailer line is a 431 however the bytes are split (a line limit gave 400 when the line
        // arrived whole but 431 when the budget ran out first in pieces). feed_line takes at
        // most this call's data, so line_ stays within the budget plus one read.
        const size_t n = feed_line(rest, line_, SIZE_MAX, complete);
        used += n;
        trailer_bytes_ += n;
        if (state_ == State::kError) break;
        if (trailer_bytes_ > limits_.max_head_bytes) {
          fail(431, "trailer fields larger than " + std::to_string(limits_.max_head_bytes) +
                        " bytes (the limit)");
          break;
        }
        if (!complete) break;
        if (line_.empty()) state_ = State::kDone;  // trailer fields themselves are dropped
        line_.clear();
        break;
      }
      default:
        break;
    }
  }
  return used;
}

// Reads one line (without its CRLF or bare LF) into `line`; `complete` once its end is seen.
size_t RequestParser::feed_line(std::string_view data, std::string& line, size_t max,
                                bool& complete) {
  const size_t nl = data.find('\n');
  const size_t take = nl == std::string_view::npos ? data.size() : nl + 1;
  line.append(data.data(), nl == std::string_view::npos ? take : nl);
  if (nl != std::string_view::npos) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    complete = true;
  }
  if (line.size() > max) fail(400, "line too long in the chunked body");
  return take;
}

size_t RequestParser::feed_head(std::string_view data) {
  size_t used = 0;
  // Empty lines before a request line are ignored (RFC 9112 §2.2).
  if (head_.empty()) {
    while (used < data.size() && (data[used] == '\r' || data[used] == '\n')) ++used;
    if (used == data.size()) return used;
  }
  started_ = true;
  const size_t before = head_.size();
  // Take at most what the head limit allows, plus the 4 bytes of a terminator.
  const size_t room = limits_.max_head_bytes + 4 > before ? limits_.max_head_bytes + 4 - before : 0;
  const std::string_view chunk = data.substr(used, room);
  head_.append(chunk);
  // Search the new bytes (and the three before them) for the blank line ending the head.
  const size_t from = scanned_ >= 3 ? scanned_ - 3 : 0;
  size_t end = std::string::npos, term = 0;
  for (size_t i = from; i < head_.size(); ++i) {
    if (head_[i] != '\n') continue;
    if (i + 1 < head_.size() && head_[i + 1] == '\n') {
      end = i + 1;
      term = 1;
      break;
    }
    if (i + 2 < head_.size() && head_[i + 1] == '\r' && head_[i + 2] == '\n') {
      end = i + 1;
      term = 2;
      break;
    }
  }
  scanned_ = head_.size();
  // A request line longer than the target limit (plus room for method and version) is a 414
  // whether or not its line end has arrived yet, and before any other check, so that the status
  // does not depend on how the bytes were split (found by http_parser_fuzzer: 400 in one piece,
  // 414 byte by byte).
  const size_t line_max = limits_.max_target_bytes + 64;
  if (head_.size() > line_max &&
      std::string_view(head_).substr(0, line_max + 1).find('\n') == std::string_view::npos) {
    fail(414, "request target longer than " + std::to_string(limits_.max_target_bytes) +
                  " bytes (the limit)");
    return used + chunk.size();
  }
  if (end == std::string::npos) {
    // Too large iff the blank line will start past the limit (the test below once it arrived).
    // Without it yet, the earliest it can start: at size - 1 after a trailing "\n\r", at size
    // after a trailing "\n", else later still (failing at size > limit alone gave 431 in
    // pieces for a head that is within the limit whole; found by http_parser_fuzzer).
    const size_t n = head_.size();
    const size_t min_end = n >= 2 && head_[n - 2] == '\n' && head_[n - 1] == '\r' ? n - 1
                           : n >= 1 && head_[n - 1] == '\n'                       ? n
                                                                                  : n + 1;
    if (min_end > limits_.max_head_bytes) {
      fail(431, "request header fields larger than " + std::to_string(limits_.max_head_bytes) +
                    " bytes (the limit)");
    }
    return used + chunk.size();
  }
  const size_t head_len = end + term;  // through the blank line
  if (end > limits_.max_head_bytes) {
    fail(431, "request header fields larger than " + std::to_string(limits_.max_head_bytes) +
                  " bytes (the limit)");
    return used + chunk.size();
  }
  const size_t consumed_here = head_len - before;  // bytes of `chunk` that belong to the head
  head_.resize(end);
  parse_head(head_);  // sets the state: body, done or error
  return used + consumed_here;
}

bool RequestParser::parse_target(std::string_view target) {
  if (target == "*") {
    req_.path = "*";
    return true;
  }
  if (target.rfind("http://", 0) == 0 || target.rfind("https://", 0) == 0) {  // absolute-form
    const size_t host = target.find("//") + 2;
    const size_t slash = target.find_first_of("/?", host);
    target = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
    if (target.front() == '?') return fail(400, "malformed request target");
  }
  if (target.empty() || target.front() != '/') return fail(400, "malformed request target");
  const size_t q = target.find('?');
  req_.path = percent_decode(target.substr(0, q));
  if (q != std::string_view::npos) req_.query = std::string(target.substr(q + 1));
  if (req_.path.find('\0') != std::string::npos) return fail(400, "malformed request target");
  return true;
}

bool RequestParser::parse_head(std::string_view head) {
  // Request line.
  size_t eol = head.find('\n');
  std::string_view line = head.substr(0, eol);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  const size_t sp1 = line.find(' ');
  const size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos)
    return fail(400, "malformed request line");
  const std::string_view method = line.substr(0, sp1);
  const std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string_view version = line.substr(sp2 + 1);
  if (method.empty() || !std::all_of(method.begin(), method.end(), is_tchar))
    return fail(400, "malformed request method");
  if (target.size() > limits_.max_target_bytes)
    return fail(414, "request target longer than " + std::to_string(limits_.max_target_bytes) +
                         " bytes (the limit)");
  for (char c : target)
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f)
      return fail(400, "malformed request target");
  if (version.size() != 8 || version.substr(0, 5) != "HTTP/" || !is_digit(version[5]) ||
      version[6] != '.' || !is_digit(version[7]))
    return fail(400, "malformed HTTP version");
  if (version[5] != '1' || (version[7] != '0' && version[7] != '1'))
    return fail(505, "HTTP version not supported (1.0 and 1.1 are)");
  req_.method = std::string(method);
  req_.target = std::string(target);
  req_.version_minor = version[7] - '0';
  if (!parse_target(target)) return false;

  // Header fields.
  std::string_view rest = eol == std::string_view::npos ? "" : head.substr(eol + 1);
  while (!rest.empty()) {
    eol = rest.find('\n');
    line = rest.substr(0, eol);
    rest = eol == std::string_view::npos ? "" : rest.substr(eol + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    if (line.front() == ' ' || line.front() == '\t')
      return fail(400, "obsolete line folding in header fields");
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) return fail(400, "malformed header field");
    const std::string_view name = line.substr(0, colon);
    if (!std::all_of(name.begin(), name.end(), is_tchar))
      return fail(400, "malformed header field name");
    const std::string_view value = trim_ows(line.substr(colon + 1));
    for (char c : value)
      if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f)
        return fail(400, "control character in header field value");
    if (static_cast<int>(req_.headers.size()) >= limits_.max_headers)
      return fail(
          431, "more than " + std::to_string(limits_.max_headers) + " header fields (the limit)");
    req_.headers.emplace_back(to_lower(name), std::string(value));
  }

  // Framing and connection semantics.
  keep_alive_ = req_.version_minor == 1;
  bool has_length = false, chunked = false;
  uint64_t length = 0;
  for (const auto& [name, value] : req_.headers) {
    if (name == "content-length") {
      bool ok = true;
      for_each_element(value, [&](std::string_view e) {
        uint64_t n = 0;
        if (e.size() > 18 || !std::all_of(e.begin(), e.end(), is_digit)) {
          ok = false;
          return;
        }
        for (char c : e) n = n * 10 + static_cast<uint64_t>(c - '0');
        if (has_length && n != length) ok = false;
        has_length = true;
        length = n;
      });
      if (!ok || !has_length) return fail(400, "malformed Content-Length");
    } else if (name == "transfer-encoding") {
      bool unsupported = false;
      for_each_element(value, [&](std::string_view e) {
        if (iequals(e, "chunked") && !chunked)
          chunked = true;
        else
          unsupported = true;
      });
      if (unsupported)
        return fail(501, "unsupported Transfer-Encoding '" + value + "' (chunked is)");
    } else if (name == "connection") {
      for_each_element(value, [&](std::string_view e) {
        if (iequals(e, "close")) keep_alive_ = false;
        if (iequals(e, "keep-alive") && req_.version_minor == 0) keep_alive_ = true;
      });
    } else if (name == "expect") {
      if (!iequals(value, "100-continue"))
        return fail(417, "unsupported expectation '" + value + "'");
      expect_continue_ = req_.version_minor == 1;
    }
  }
  if (has_length && chunked) return fail(400, "both Content-Length and Transfer-Encoding given");
  if (chunked && req_.version_minor == 0)
    return fail(400, "Transfer-Encoding in an HTTP/1.0 request");
  if (has_length && length > limits_.max_body_bytes)
    return fail(413, "request body of " + std::to_string(length) + " bytes is larger than " +
                         std::to_string(limits_.max_body_bytes) + " bytes (the limit)");
  if (chunked) {
    state_ = State::kChunkSize;
  } else if (length > 0) {
    req_.body.reserve(static_cast<size_t>(length));
    remaining_ = length;
    state_ = State::kBody;
  } else {
    state_ = State::kDone;
  }
  if (state_ == State::kDone) expect_continue_ = false;
  return true;
}

}  // namespace fc::http
