// Incremental HTTP/1.1 request parser (RFC 9112): bytes in, at most one complete request out,
// every size bounded. Pure bookkeeping (no sockets), so it is tested on its own with arbitrary
// splits of the input.
//
// Limits and the statuses their violation gets:
//   request target longer than max_target_bytes           -> 414
//   head (request line + fields) over max_head_bytes,
//   or more than max_headers fields                        -> 431
//   Content-Length over max_body_bytes                      -> 413, as soon as the head is read
//   chunked body growing past max_body_bytes                -> 413, as soon as it does
//   Transfer-Encoding other than chunked                    -> 501
//   Expect other than 100-continue                          -> 417
//   HTTP version other than 1.0 / 1.1                       -> 505
//   anything malformed (framing, field syntax, both Content-Length and Transfer-Encoding,
//   conflicting Content-Lengths)                            -> 400
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "http/message.h"

namespace fc::http {

struct Limits {
  size_t max_target_bytes = 8 << 10;
  size_t max_head_bytes = 32 << 10;
  int max_headers = 100;
  size_t max_body_bytes = 8 << 20;
};

class RequestParser {
 public:
  explicit RequestParser(const Limits& limits) : limits_(limits) {}

  // Consumes bytes of `data` and returns how many it used; it stops after the end of one request
  // (done()) or at an error (failed()), leaving the rest (a pipelined next request) unused.
  size_t feed(std::string_view data);

  bool started() const { return started_; }  // a byte of this request has been seen
  bool head_done() const { return state_ >= State::kBody; }
  bool done() const { return state_ == State::kDone; }
  bool failed() const { return state_ == State::kError; }
  int error_status() const { return error_status_; }
  const std::string& error_message() const { return error_message_; }

  // Valid once head_done(): the request (body complete once done()).
  Request& request() { return req_; }
  bool keep_alive() const { return keep_alive_; }
  bool expects_continue() const { return expect_continue_; }
  // True when a body is still to come (Content-Length > 0 or chunked) after the head.
  bool body_pending() const { return state_ > State::kHead && state_ < State::kDone; }

  // Ready for the next request on the connection.
  void reset();

 private:
  enum class State {
    kHead,
    kBody,
    kChunkSize,
    kChunkData,
    kChunkDataEnd,
    kTrailers,
    kDone,
    kError
  };

  bool fail(int status, std::string message);
  bool parse_head(std::string_view head);
  bool parse_target(std::string_view target);
  size_t feed_head(std::string_view data);
  size_t feed_line(std::string_view data, std::string& line, size_t max, bool& complete);

  Limits limits_;
  State state_ = State::kHead;
  bool started_ = false;
  std::string head_;    // bytes of the head so far
  size_t scanned_ = 0;  // head_ bytes already searched for the blank line
  std::string line_;    // chunk-size or trailer line being read
  size_t trailer_bytes_ = 0;
  uint64_t remaining_ = 0;  // body or chunk bytes still to read
  bool keep_alive_ = true;
  bool expect_continue_ = false;
  Request req_;
  int error_status_ = 0;
  std::string error_message_;
};

// "%41b" -> "Ab"; malformed escapes are kept as they are.
std::string percent_decode(std::string_view s);

}  // namespace fc::http
