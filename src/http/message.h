// HTTP/1.1 messages as route handlers see them (fc::http, the server in server.h).
//
// Handler API, for whoever adds a route:
//
//   void handler(const http::Request& req, http::Response& res);
//
// - req.method ("GET", "POST", ...), req.path (percent-decoded, no query), req.query (raw),
//   req.params ({name} segments of the route pattern, decoded), req.body (complete, already
//   bounded by the server's limits), req.header("content-type") (names are case-insensitive).
// - Answer at once: res.status = 201; res.set_content(text, "application/json");
//   res.set_header("X-Thing", "1"). Throwing from a handler answers 500 (the server's error
//   body) - handlers that want OpenAI error shapes catch and set them themselves.
// - Answer later without holding a thread: res.defer(d) (the whole response comes from d when
//   it is ready), or res.stream(d, "text/event-stream") (status and headers go out now, then the
//   body as d produces it, each piece written and flushed at once). See Deferred below.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace fc::http {

struct Request {
  std::string method;     // as sent (methods are case-sensitive)
  std::string target;     // request-target as sent
  std::string path;       // percent-decoded path ("/v1/models/a%2Fb" -> "/v1/models/a/b")
  std::string query;      // after '?', raw
  int version_minor = 1;  // HTTP/1.<minor>
  // Header fields in arrival order; names lower-cased, values without surrounding whitespace.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;                           // de-chunked
  std::map<std::string, std::string> params;  // route pattern parameters
  std::string peer;                           // "address:port" of the client

  // The first field called `name` (any case), or null.
  const std::string* header(std::string_view name) const;
  std::string header_value(std::string_view name, const std::string& fallback = "") const;
};

enum class CancelReason { kClientGone, kShutdown };

class Response;

// A response produced after the handler returned: a stream of events, or a body that waits on
// other work (the engine). The server never blocks a thread on it:
//  - start(wake) is called once, on the I/O thread, right after the handler returned. `wake`
//    may then be called from any thread, any number of times (calls coalesce); each call makes
//    the server run pump() soon on a worker thread.
//  - pump() is never run twice at once for one Deferred (and runs once right after start()).
//    It must not block. Streaming: append the bytes to send now to `stream_bytes` (the server
//    frames them as one HTTP chunk and flushes them); deferred: fill `final` when ready. Return
//    true when the response is complete (a stream's last bytes may come with it).
//  - A deferred (not streaming) one may end by handing over: `final.defer(d2)` or
//    `final.stream(d2, type)` in its last pump; the response then continues from d2 exactly as
//    if the handler had returned it (e.g. a request that must fetch something before it can
//    decide whether it streams: server/media_prefetch.h).
//  - cancel() comes on the I/O thread, possibly while pump() runs: the client disconnected
//    (then nothing more is sent; pump() may still be called, its output is dropped) or the server
//    is stopping (then the server keeps pumping for a short grace period to let the Deferred end
//    the response - a deferred one with an error status). Must be thread-safe.
class Deferred {
 public:
  virtual ~Deferred() = default;
  virtual void start(std::function<void()> wake) = 0;
  virtual bool pump(std::string& stream_bytes, Response& final) = 0;
  virtual void cancel(CancelReason why) = 0;
};

class Response {
 public:
  int status = 200;
  std::string body;
  std::string content_type;  // empty: no Content-Type header
  std::vector<std::pair<std::string, std::string>> headers;

  void set_content(std::string text, std::string type) {
    body = std::move(text);
    content_type = std::move(type);
  }
  // Adds a header field (Content-Length, Transfer-Encoding and Connection are the server's).
  void set_header(std::string name, std::string value) {
    headers.emplace_back(std::move(name), std::move(value));
  }
  // Status and headers now, body from `d` (chunked transfer encoding).
  void stream(std::shared_ptr<Deferred> d, std::string type) {
    deferred = std::move(d);
    streaming = true;
    content_type = std::move(type);
  }
  // The whole response from `d` later (status, headers, body set on pump's `final`).
  void defer(std::shared_ptr<Deferred> d) {
    deferred = std::move(d);
    streaming = false;
  }

  std::shared_ptr<Deferred> deferred;
  bool streaming = false;
};

using Handler = std::function<void(const Request&, Response&)>;

// Standard reason phrase of a status code ("Not Found"); "Unknown" for others.
const char* reason_phrase(int status);

}  // namespace fc::http
