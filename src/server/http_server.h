// The HTTP front: OpenAI routes over fc::http (src/http: event-driven, no thread per client),
// JSON <-> native structs at the edge, one engine thread behind. Every handler turns failures
// into OpenAI-shaped errors; a bad request never takes the server down.
//
// Routes are one table (http_server.cpp, routes()): {method, path, handler, inline, while
// draining}; a handler has the http::Handler signature (src/http/message.h documents it).
// Chat, completions and Responses handlers start a ResponseJob and hand it to the HTTP layer as
// a Deferred (non-streaming) or a stream (SSE), so a request waiting on the engine holds no
// thread. CORS is the HTTP layer's before-routing hook (preflights answered before routing and
// before the API key check; simple headers on every other response with an Origin).
#pragma once

#include <memory>
#include <string>

#include "http/server.h"
#include "server/serving.h"

namespace fc {

class HttpServer {
 public:
  explicit HttpServer(ServingContext& ctx);
  ~HttpServer();
  // Resolves host and listens on host:port (0: any free port); returns the port. Throws
  // fc::Error saying what went wrong ("port 8000 on 0.0.0.0 is already in use", "cannot resolve
  // host 'x': ...").
  int bind(const std::string& host, int port);
  // Serves until stop() or the end of a drain.
  void serve();
  // Thread-safe: /health and new requests answer 503, in-flight requests get `timeout_s` to
  // finish, then they are aborted (non-streaming ones answer 503); serve() then returns.
  void begin_drain(double timeout_s);
  void stop();
  http::ServerStats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace fc
