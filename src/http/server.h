// An event-driven HTTP/1.1 server: one I/O thread multiplexes every connection with epoll
// (non-blocking sockets, level-triggered), a small pool of worker threads runs route handlers and
// Deferred::pump(); nothing ever waits on a client or on the engine while holding a thread. So
// thousands of idle, slow or waiting clients cost memory (a few KiB each), not threads.
//
// Bounds (ServerOptions): a connection cap (over it: 503, then close); a deadline for the whole
// request head from its first byte and another for the whole body (neither is reset by trickling
// bytes); a keep-alive idle timeout; a write-progress timeout; the parser's size limits
// (http/parser.h) with an immediate 413 for an over-limit Content-Length. A client that goes
// away while its request waits or streams is noticed at once (EPOLLRDHUP) and its Deferred is
// cancelled. Drain (begin_drain): every new request gets 503, requests in flight finish up to a
// deadline, then their Deferreds are cancelled, and serve() returns. A before-routing hook
// (ServerOptions::before_routing) may answer a request without routing it or add header fields
// to its response, whatever produces it (CORS).
//
// Usage:
//   http::Server s(opts);
//   s.add({"GET", "/health", [](const http::Request&, http::Response& r) { ... }, true});
//   http::BindResult b = s.bind("0.0.0.0", 8000);   // b.error says what went wrong
//   s.serve();                                       // until stop() or a finished drain
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "http/message.h"
#include "http/parser.h"
#include "http/router.h"

namespace fc::http {

struct ServerOptions {
  Limits limits;
  int max_connections = 4096;          // open client connections; more get a 503 and are closed
  int workers = 4;                     // threads running handlers and pumps
  double head_timeout_s = 10;          // first byte of a request -> end of its head
  double body_timeout_s = 60;          // end of the head -> end of the body
  double idle_timeout_s = 30;          // keep-alive connection without a request
  double write_timeout_s = 60;         // pending output without any progress
  size_t max_stream_buffer = 8 << 20;  // unsent stream bytes before a client counts as stuck
  // Body and content type of the errors the server answers itself (404, 405, 408, 413, 414,
  // 431, 500, 503, ...); default {"error": {"message", "code"}} JSON.
  std::function<std::string(int status, const std::string& message)> error_body;
  // Called on the I/O thread for every response head sent (metrics).
  std::function<void(int status)> on_response;
  // Called on the I/O thread for every complete request before it is routed (so before any
  // handler, API key check or 404/405); must be cheap and never block. Returning true answers
  // the request with `res` as filled (an immediate response: a Deferred there is ignored),
  // without routing it - a CORS preflight. Returning false routes the request as usual, and the
  // header fields it put in `res.headers` are added to whatever response the request gets
  // (handler, Deferred, stream, 404/405) - CORS's response headers. Thrown exceptions count as
  // false with no headers.
  std::function<bool(const Request& req, Response& res)> before_routing;
};

// Counters since start (monotonic) and current levels, for /metrics.
struct ServerStats {
  int64_t connections_accepted = 0;
  int64_t rejected_max_connections = 0;  // answered 503 (or closed) for the connection cap
  int64_t rejected_draining = 0;         // requests answered 503 while draining
  int64_t timeouts_head = 0, timeouts_body = 0, timeouts_idle = 0, timeouts_write = 0;
  int64_t limit_errors = 0;   // 413 / 414 / 431 for the size limits
  int64_t bad_requests = 0;   // other malformed requests (400, 501, 505, ...)
  int64_t client_gone = 0;    // clients that left while their request was in flight
  int64_t accept_errors = 0;  // accept() failures (out of file descriptors, ...)
  int connections_open = 0;
  int requests_in_flight = 0;  // handler running, or response deferred or streaming
  int tasks_queued = 0;        // handler / pump tasks waiting for a worker
  int max_connections = 0;
  bool draining = false;
};

struct BindResult {
  bool ok = false;
  int port = 0;       // the bound port (the chosen one for port 0)
  std::string error;  // e.g. "port 8000 on 127.0.0.1 is already in use"
};

class Server {
 public:
  explicit Server(ServerOptions opts);
  ~Server();  // stops and joins everything; in-flight Deferreds are cancelled (kShutdown)
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Adds a route (before serve()).
  void add(Route r);
  // Resolves `host` and listens on host:port (0: any free port).
  BindResult bind(const std::string& host, int port);
  // Runs the I/O loop on the calling thread until stop(), or until a drain has finished.
  void serve();
  // Thread-safe. New requests get 503 from now on; serve() returns once no request is in
  // flight, or after `timeout` plus a grace period in which cancelled Deferreds end their
  // responses (a deferred one with an error, never a partial success).
  void begin_drain(std::chrono::milliseconds timeout);
  // Thread-safe: serve() returns soon; whatever is in flight is dropped.
  void stop();
  ServerStats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace fc::http
