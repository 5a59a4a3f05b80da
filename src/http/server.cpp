// The I/O loop. Every connection is a small state machine owned by the I/O thread:
//
//   kIdle (keep-alive, waiting) -> kHead -> kBody -> kHandling (handler, deferred or stream)
//        ^____________________________________________|  response flushed, keep-alive
//   any phase -> kLinger (response sent, write side shut, draining the client's leftovers) ->
//   closed
//
// One timer per connection at a time (the earliest that applies): the phase deadline (head,
// body, idle, linger; fixed when the phase starts, never pushed back by trickling bytes) or,
// while output is pending, the write-progress deadline. Workers never touch a connection: they
// post results through the Mailbox, keyed by connection id and request number.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <set>
#include <unordered_map>

#include "core/error.h"
#include "core/log.h"
#include "http/internal.h"
#include "http/server.h"

namespace fc::http {

using Clock = std::chrono::steady_clock;
using detail::Posted;

namespace {

constexpr uint64_t kListenerId = 0, kMailboxId = 1;
constexpr int kBacklog = 4096;
// Connections over the cap still get a 503 (read their head, answer, close) up to this many at a
// time; beyond that they are closed at once.
constexpr int kRejectLane = 256;
constexpr auto kLinger = std::chrono::seconds(2);
constexpr auto kRejectHeadTimeout = std::chrono::seconds(2);
constexpr auto kDrainGrace = std::chrono::seconds(3);
constexpr auto kLogEvery = std::chrono::seconds(10);

std::string default_error_body(int status, const std::string& message) {
  std::string m;
  for (char c : message) {
    if (c == '"' || c == '\\') m += '\\';
    if (static_cast<unsigned char>(c) >= 0x20) m += c;
  }
  return "{\"error\":{\"message\":\"" + m + "\",\"code\":" + std::to_string(status) + "}}";
}

std::string peer_name(const sockaddr_storage& sa) {
  char buf[INET6_ADDRSTRLEN] = {0};
  if (sa.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&sa);
    inet_ntop(AF_INET, &a->sin_addr, buf, sizeof buf);
    return std::string(buf) + ":" + std::to_string(ntohs(a->sin_port));
  }
  const auto* a = reinterpret_cast<const sockaddr_in6*>(&sa);
  inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof buf);
  return "[" + std::string(buf) + "]:" + std::to_string(ntohs(a->sin6_port));
}

std::string hex(size_t n) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%zx", n);
  return buf;
}

}  // namespace

struct Server::Impl {
  enum class Phase { kIdle, kHead, kBody, kHandling, kLinger };
  enum class Timer { kNone, kPhase, kWrite };

  struct Conn {
    uint64_t id = 0;
    int fd = -1;
    std::string peer;
    Phase phase = Phase::kIdle;
    RequestParser parser;
    std::string in;  // received, not yet parsed (a pipelined request)
    std::string out;
    size_t out_off = 0;
    uint32_t events = 0;
    Clock::time_point phase_deadline, last_progress;
    Timer timer = Timer::kNone;
    Clock::time_point timer_at;
    bool fresh = true;    // no request yet: the head deadline runs from accept
    bool reject = false;  // over the connection cap: answer 503 after the head
    bool keep_alive = true;
    bool close_after = false;    // close once the response is flushed
    bool response_done = false;  // the whole response is queued in `out`
    bool in_flight = false;
    uint64_t seq = 0;
    int version_minor = 1;
    std::shared_ptr<Deferred> deferred;
    bool streaming = false, chunked = false;
    bool pumping = false, pump_again = false;
    bool cancelled = false;
    std::shared_ptr<std::atomic<bool>> wake_pending;
    explicit Conn(const Limits& l) : parser(l) {}
  };

  ServerOptions opts;
  Router router;
  std::shared_ptr<detail::Mailbox> mailbox = std::make_shared<detail::Mailbox>();
  std::unique_ptr<detail::TaskPool> pool;
  int epfd = -1, listen_fd = -1;
  bool listener_paused = false;
  Clock::time_point listener_resume;
  uint64_t next_id = 2;
  std::unordered_map<uint64_t, std::unique_ptr<Conn>> conns;
  std::set<std::pair<Clock::time_point, uint64_t>> timers;
  std::vector<uint64_t> ready;  // connections with pipelined input to process
  int open_normal = 0, open_reject = 0;
  int in_flight = 0;
  bool running = false, stop_requested = false;
  bool draining = false, drain_cancelled = false;
  Clock::time_point drain_deadline, grace_deadline;
  ServerStats st;
  mutable std::mutex stats_mu;
  ServerStats published;
  Clock::time_point last_cap_log{}, last_timeout_log{};
  int64_t logged_timeouts = 0;

  explicit Impl(ServerOptions o) : opts(std::move(o)) {
    if (!opts.error_body) opts.error_body = default_error_body;
    epfd = epoll_create1(EPOLL_CLOEXEC);
    FC_CHECK(epfd >= 0, "epoll_create1 failed: ", std::strerror(errno));
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kMailboxId;
    epoll_ctl(epfd, EPOLL_CTL_ADD, mailbox->fd(), &ev);
    st.max_connections = opts.max_connections;
    pool = std::make_unique<detail::TaskPool>(std::max(1, opts.workers));
  }

  ~Impl() {
    for (auto& [id, c] : conns) {
      if (c->deferred) c->deferred->cancel(CancelReason::kShutdown);
      ::close(c->fd);
    }
    conns.clear();
    mailbox->close();
    pool.reset();  // runs what is queued (posts are dropped), joins
    if (listen_fd >= 0) ::close(listen_fd);
    ::close(epfd);
  }

  // ------------------------------------------------------------------ helpers
  Conn* find(uint64_t id) {
    auto it = conns.find(id);
    return it == conns.end() ? nullptr : it->second.get();
  }

  void set_events(Conn& c) {
    uint32_t want = EPOLLRDHUP;
    if (c.phase != Phase::kHandling) want |= EPOLLIN;
    if (c.out_off < c.out.size()) want |= EPOLLOUT;
    if (want == c.events) return;
    epoll_event ev{};
    ev.events = want;
    ev.data.u64 = c.id;
    epoll_ctl(epfd, EPOLL_CTL_MOD, c.fd, &ev);
    c.events = want;
  }

  void refresh_timer(Conn& c) {
    Timer want = Timer::kNone;
    Clock::time_point at{};
    if (c.out_off < c.out.size()) {
      want = Timer::kWrite;
      at = c.last_progress + std::chrono::duration_cast<Clock::duration>(
                                 std::chrono::duration<double>(opts.write_timeout_s));
    } else if (c.phase != Phase::kHandling) {
      want = Timer::kPhase;
      at = c.phase_deadline;
    }
    if (want == c.timer && at == c.timer_at) return;
    if (c.timer != Timer::kNone) timers.erase({c.timer_at, c.id});
    c.timer = want;
    c.timer_at = at;
    if (want != Timer::kNone) timers.insert({at, c.id});
  }

  static Clock::duration secs(double s) {
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
  }

  void close_now(Conn& c) {
    if (c.timer != Timer::kNone) timers.erase({c.timer_at, c.id});
    epoll_ctl(epfd, EPOLL_CTL_DEL, c.fd, nullptr);
    ::close(c.fd);
    if (c.in_flight) --in_flight;
    if (c.reject)
      --open_reject;
    else
      --open_normal;
    std::shared_ptr<Deferred> d = std::move(c.deferred);
    conns.erase(c.id);  // `c` is gone from here on
    if (d) d->cancel(CancelReason::kClientGone);
  }

  // The client went away (or cannot be written to) while it had a request.
  void client_gone(Conn& c) {
    if (c.in_flight) ++st.client_gone;
    close_now(c);
  }

  // Response sent (or refused): shut the write side and read what the client still sends
  // (a body we did not want), so the kernel does not answer it with a reset that could destroy
  // the response before the client read it.
  void close_gracefully(Conn& c) {
    ::shutdown(c.fd, SHUT_WR);
    c.phase = Phase::kLinger;
    c.phase_deadline = Clock::now() + kLinger;
    c.in.clear();
    set_events(c);
    refresh_timer(c);
  }

  // ------------------------------------------------------------------ output
  void queue_head(Conn& c, const Response& r, size_t content_length, bool stream) {
    std::string h = "HTTP/1.1 " + std::to_string(r.status) + " " + reason_phrase(r.status) + "\r\n";
    if (!r.content_type.empty()) h += "Content-Type: " + r.content_type + "\r\n";
    for (const auto& [k, v] : r.headers) h += k + ": " + v + "\r\n";
    if (stream) {
      if (c.chunked) h += "Transfer-Encoding: chunked\r\n";
    } else {
      h += "Content-Length: " + std::to_string(content_length) + "\r\n";
    }
    const bool close = c.close_after || !c.keep_alive || draining || (stream && !c.chunked);
    if (close) c.close_after = true;
    h += close ? "Connection: close\r\n"
               : (c.version_minor == 0 ? "Connection: keep-alive\r\n" : "");
    h += "\r\n";
    c.out += h;
    if (opts.on_response) opts.on_response(r.status);
  }

  void queue_response(Conn& c, const Response& r) {
    queue_head(c, r, r.body.size(), false);
    c.out += r.body;
    c.response_done = true;
  }

  Response error_response(int status, const std::string& message) {
    Response r;
    r.status = status;
    r.set_content(opts.error_body(status, message), "application/json");
    return r;
  }

  // Answers an error the server produced itself and closes after it.
  void fail_request(Conn& c, int status, const std::string& message) {
    c.phase = Phase::kHandling;  // stop reading
    c.close_after = true;
    queue_response(c, error_response(status, message));
    flush(c);
  }

  void append_chunk(Conn& c, const std::string& bytes) {
    if (bytes.empty()) return;
    if (c.chunked) {
      c.out += hex(bytes.size());
      c.out += "\r\n";
      c.out += bytes;
      c.out += "\r\n";
    } else {
      c.out += bytes;
    }
  }

  void end_stream(Conn& c) {
    if (c.chunked) c.out += "0\r\n\r\n";
    c.response_done = true;
  }

  // Writes what it can. May close the connection (then `c` is gone).
  void flush(Conn& c) {
    while (c.out_off < c.out.size()) {
      const ssize_t n =
          ::send(c.fd, c.out.data() + c.out_off, c.out.size() - c.out_off, MSG_NOSIGNAL);
      if (n > 0) {
        c.out_off += static_cast<size_t>(n);
        c.last_progress = Clock::now();
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      client_gone(c);
      return;
    }
    if (c.out_off == c.out.size()) {
      c.out.clear();
      c.out_off = 0;
      if (c.response_done) {
        c.response_done = false;
        end_request(c);
        return;
      }
    } else if (c.streaming && c.out.size() - c.out_off > opts.max_stream_buffer) {
      ++st.timeouts_write;  // a stream client that stopped reading
      client_gone(c);
      return;
    }
    set_events(c);
    refresh_timer(c);
  }

  void end_request(Conn& c) {
    if (c.in_flight) {
      c.in_flight = false;
      --in_flight;
    }
    c.deferred.reset();
    c.streaming = c.chunked = c.pumping = c.pump_again = c.cancelled = false;
    if (c.close_after || !c.keep_alive || draining) {
      close_gracefully(c);
      return;
    }
    c.phase = Phase::kIdle;
    c.fresh = false;
    c.parser.reset();
    c.phase_deadline = Clock::now() + secs(opts.idle_timeout_s);
    set_events(c);
    refresh_timer(c);
    if (!c.in.empty()) ready.push_back(c.id);
  }

  // ------------------------------------------------------------------ input
  void on_readable(Conn& c) {
    char buf[64 << 10];
    for (int round = 0; round < 64; ++round) {
      if (c.phase == Phase::kHandling) return;  // not reading while a request is handled
      const ssize_t n = ::recv(c.fd, buf, sizeof buf, 0);
      if (n > 0) {
        if (c.phase == Phase::kLinger) continue;  // discarded
        c.in.append(buf, static_cast<size_t>(n));
        const uint64_t id = c.id;
        process_input(c);
        if (!find(id)) return;
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      // EOF or error: a client between requests leaves; one in a request gave up.
      if (c.phase == Phase::kHead || c.phase == Phase::kBody) ++st.client_gone;
      close_now(c);
      return;
    }
  }

  void process_input(Conn& c) {
    while (!c.in.empty() &&
           (c.phase == Phase::kIdle || c.phase == Phase::kHead || c.phase == Phase::kBody)) {
      const auto now = Clock::now();
      if (c.phase == Phase::kIdle) {
        c.phase = Phase::kHead;
        if (!c.fresh) c.phase_deadline = now + secs(opts.head_timeout_s);
      }
      const size_t used = c.parser.feed(c.in);
      c.in.erase(0, used);
      if (c.parser.failed()) {
        const int s = c.parser.error_status();
        (s == 413 || s == 414 || s == 431 ? st.limit_errors : st.bad_requests)++;
        fail_request(c, s, c.parser.error_message());
        return;
      }
      if (c.phase == Phase::kHead && c.parser.head_done()) {
        c.phase = Phase::kBody;
        c.phase_deadline = now + secs(opts.body_timeout_s);
        if (c.reject) {
          fail_request(c, 503,
                       "the server is at its connection limit (" +
                           std::to_string(opts.max_connections) + "); retry later");
          return;
        }
        if (draining && !drain_exempt(c.parser.request())) {
          ++st.rejected_draining;
          fail_request(c, 503, "the server is shutting down");
          return;
        }
        if (c.parser.expects_continue() && c.parser.body_pending()) {
          c.out += "HTTP/1.1 100 Continue\r\n\r\n";
          const uint64_t id = c.id;
          flush(c);
          if (!find(id)) return;
        }
      }
      if (c.parser.done()) {
        dispatch(c);
        return;
      }
      if (used == 0) break;
    }
    set_events(c);
    refresh_timer(c);
  }

  bool drain_exempt(const Request& r) {
    std::map<std::string, std::string> params;
    int status = 0;
    const Route* route = router.match(r.method, r.path, params, status);
    return route && route->while_draining;
  }

  static void run_handler(const Route& route, const Request& req, Response& res,
                          const std::function<std::string(int, const std::string&)>& error_body) {
    try {
      route.handler(req, res);
    } catch (const std::exception& e) {
      res = Response();
      res.status = 500;
      res.set_content(error_body(500, std::string("internal error: ") + e.what()),
                      "application/json");
      log_line(LogLevel::kError, std::string("HTTP handler failed: ") + e.what());
    }
  }

  void dispatch(Conn& c) {
    Request req = std::move(c.parser.request());
    req.peer = c.peer;
    c.keep_alive = c.parser.keep_alive();
    c.version_minor = req.version_minor;
    c.phase = Phase::kHandling;
    c.in_flight = true;
    ++in_flight;
    ++c.seq;
    set_events(c);
    refresh_timer(c);
    int status = 404;
    const Route* route = router.match(req.method, req.path, req.params, status);
    if (!route) {
      Response r = error_response(status, status == 404 ? "not found" : "method not allowed");
      if (status == 405) r.set_header("Allow", router.allowed_methods(req.path));
      queue_response(c, r);
      flush(c);
      return;
    }
    if (route->inline_handler) {
      Response r;
      run_handler(*route, req, r, opts.error_body);
      handled(c, std::move(r));
      return;
    }
    pool->submit([mb = mailbox, id = c.id, seq = c.seq, route, req = std::move(req),
                  eb = opts.error_body]() mutable {
      Posted p;
      p.kind = Posted::Kind::kHandled;
      p.conn = id;
      p.seq = seq;
      run_handler(*route, req, p.response, eb);
      mb->post(std::move(p));
    });
  }

  // ------------------------------------------------------------------ responses from workers
  void handled(Conn& c, Response r) {
    if (!r.deferred) {
      queue_response(c, r);
      flush(c);
      return;
    }
    c.deferred = r.deferred;
    c.streaming = r.streaming;
    if (c.streaming) {
      c.chunked = c.version_minor >= 1;
      queue_head(c, r, 0, true);
    }
    c.wake_pending = std::make_shared<std::atomic<bool>>(false);
    c.deferred->start([mb = mailbox, id = c.id, seq = c.seq, flag = c.wake_pending] {
      if (flag->exchange(true)) return;  // a wake is already on its way
      Posted p;
      p.kind = Posted::Kind::kWake;
      p.conn = id;
      p.seq = seq;
      mb->post(std::move(p));
    });
    if (drain_cancelled) {
      c.cancelled = true;
      c.deferred->cancel(CancelReason::kShutdown);
    }
    schedule_pump(c);
    const uint64_t id = c.id;
    if (!c.out.empty()) flush(c);
    if (Conn* again = find(id)) set_events(*again);
  }

  void schedule_pump(Conn& c) {
    if (!c.deferred) return;
    if (c.pumping) {
      c.pump_again = true;
      return;
    }
    c.pumping = true;
    c.wake_pending->store(false);
    pool->submit([mb = mailbox, id = c.id, seq = c.seq, d = c.deferred] {
      Posted p;
      p.kind = Posted::Kind::kPumped;
      p.conn = id;
      p.seq = seq;
      try {
        p.done = d->pump(p.bytes, p.response);
      } catch (const std::exception& e) {
        p.done = true;
        p.error = e.what();
      }
      mb->post(std::move(p));
    });
  }

  void pumped(Conn& c, Posted& p) {
    c.pumping = false;
    if (!p.error.empty()) log_line(LogLevel::kError, "HTTP deferred response failed: " + p.error);
    if (c.streaming) {
      append_chunk(c, p.bytes);
      if (p.done) {
        if (!p.error.empty()) c.close_after = true;
        end_stream(c);
      }
    } else if (p.done) {
      queue_response(
          c, p.error.empty() ? p.response : error_response(500, "internal error: " + p.error));
    }
    if (p.done) {
      c.deferred.reset();
    } else if (c.pump_again) {
      c.pump_again = false;
      schedule_pump(c);
    }
    flush(c);
  }

  void on_mailbox() {
    for (Posted& p : mailbox->take()) {
      if (p.kind == Posted::Kind::kStop) {
        stop_requested = true;
        continue;
      }
      if (p.kind == Posted::Kind::kDrain) {
        start_drain(p.drain_ms);
        continue;
      }
      Conn* c = find(p.conn);
      if (!c || c->seq != p.seq) {
        // The client left meanwhile: whatever the handler started must stop.
        if (p.kind == Posted::Kind::kHandled && p.response.deferred)
          p.response.deferred->cancel(CancelReason::kClientGone);
        continue;
      }
      switch (p.kind) {
        case Posted::Kind::kHandled:
          handled(*c, std::move(p.response));
          break;
        case Posted::Kind::kPumped:
          pumped(*c, p);
          break;
        case Posted::Kind::kWake:
          schedule_pump(*c);
          break;
        default:
          break;
      }
    }
  }

  // ------------------------------------------------------------------ accept, timers, drain
  void on_accept() {
    for (;;) {
      sockaddr_storage sa{};
      socklen_t len = sizeof sa;
      const int fd = ::accept4(listen_fd, reinterpret_cast<sockaddr*>(&sa), &len,
                               SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        ++st.accept_errors;
        log_throttled(last_cap_log, std::string("HTTP: accept failed (") + std::strerror(errno) +
                                        "); pausing new connections for 100 ms");
        pause_listener();
        return;
      }
      ++st.connections_accepted;
      const bool reject = open_normal >= opts.max_connections;
      if (reject) {
        ++st.rejected_max_connections;
        log_throttled(last_cap_log,
                      "HTTP: connection limit reached (" + std::to_string(opts.max_connections) +
                          " open); new connections get 503 (" +
                          std::to_string(st.rejected_max_connections) + " refused so far)");
        if (open_reject >= kRejectLane) {
          ::close(fd);
          continue;
        }
      }
      const int yes = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof yes);  // SSE: no Nagle delay
      auto conn = std::make_unique<Conn>(opts.limits);
      Conn& c = *conn;
      c.id = next_id++;
      c.fd = fd;
      c.peer = peer_name(sa);
      c.reject = reject;
      (reject ? open_reject : open_normal)++;
      const auto now = Clock::now();
      c.last_progress = now;
      c.phase_deadline =
          now + (reject ? Clock::duration(kRejectHeadTimeout) : secs(opts.head_timeout_s));
      conns.emplace(c.id, std::move(conn));
      epoll_event ev{};
      ev.events = EPOLLIN | EPOLLRDHUP;
      ev.data.u64 = c.id;
      epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
      c.events = ev.events;
      refresh_timer(c);
    }
  }

  void pause_listener() {
    epoll_ctl(epfd, EPOLL_CTL_DEL, listen_fd, nullptr);
    listener_paused = true;
    listener_resume = Clock::now() + std::chrono::milliseconds(100);
  }

  void resume_listener() {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kListenerId;
    epoll_ctl(epfd, EPOLL_CTL_ADD, listen_fd, &ev);
    listener_paused = false;
  }

  void log_throttled(Clock::time_point& last, const std::string& msg) {
    const auto now = Clock::now();
    if (now - last < kLogEvery) return;
    last = now;
    log_line(LogLevel::kWarn, msg);
  }

  void on_timer(Conn& c) {
    c.timer = Timer::kNone;
    if (c.out_off < c.out.size()) {  // no write progress
      ++st.timeouts_write;
      client_gone(c);
      return;
    }
    switch (c.phase) {
      case Phase::kIdle:
        if (c.fresh) {
          ++st.timeouts_head;  // connected, never sent a request
        } else {
          ++st.timeouts_idle;
        }
        close_now(c);
        return;
      case Phase::kHead:
        ++st.timeouts_head;
        fail_request(
            c, 408,
            "request head not received within " + std::to_string(opts.head_timeout_s) + " s");
        return;
      case Phase::kBody:
        ++st.timeouts_body;
        fail_request(
            c, 408,
            "request body not received within " + std::to_string(opts.body_timeout_s) + " s");
        return;
      case Phase::kLinger:
        close_now(c);
        return;
      case Phase::kHandling:
        return;
    }
  }

  void expire_timers() {
    const auto now = Clock::now();
    while (!timers.empty() && timers.begin()->first <= now) {
      const uint64_t id = timers.begin()->second;
      timers.erase(timers.begin());
      if (Conn* c = find(id)) on_timer(*c);
    }
    const int64_t t = st.timeouts_head + st.timeouts_body;
    if (t > logged_timeouts && now - last_timeout_log >= kLogEvery) {
      log_line(LogLevel::kWarn, "HTTP: " + std::to_string(t - logged_timeouts) +
                                    " connection(s) closed for incomplete requests past their "
                                    "deadline (slow clients)");
      logged_timeouts = t;
      last_timeout_log = now;
    }
  }

  void start_drain(int64_t ms) {
    if (draining) return;
    draining = true;
    drain_deadline = Clock::now() + std::chrono::milliseconds(ms);
    log_line(LogLevel::kInfo, "HTTP: draining; " + std::to_string(in_flight) +
                                  " request(s) in flight, new requests get 503");
    // Idle keep-alive connections stay open: a request on one gets its 503 (closing them could
    // race with a request being sent); they close when serve() returns.
  }

  // Returns true when serve() should return.
  bool drain_step() {
    if (!draining) return false;
    if (in_flight == 0) return true;
    const auto now = Clock::now();
    if (!drain_cancelled && now >= drain_deadline) {
      drain_cancelled = true;
      grace_deadline = now + kDrainGrace;
      log_line(LogLevel::kWarn, "HTTP: drain timeout; aborting " + std::to_string(in_flight) +
                                    " request(s) still in flight");
      for (auto& [id, c] : conns)
        if (c->deferred && !c->cancelled) {
          c->cancelled = true;
          c->deferred->cancel(CancelReason::kShutdown);
        }
      return false;
    }
    if (drain_cancelled && now >= grace_deadline) {
      // Deferreds that did not end their responses in the grace period: end them here.
      std::vector<uint64_t> ids;
      for (auto& [id, c] : conns)
        if (c->in_flight) ids.push_back(id);
      for (uint64_t id : ids) {
        Conn* c = find(id);
        if (!c) continue;
        if (c->streaming) {
          end_stream(*c);
          c->close_after = true;
        } else if (c->out.empty()) {
          queue_response(*c, error_response(503, "the server is shutting down"));
        }
        flush(*c);
      }
      return true;
    }
    return false;
  }

  int wait_ms() const {
    Clock::time_point next = Clock::now() + std::chrono::seconds(1);
    if (!timers.empty()) next = std::min(next, timers.begin()->first);
    if (listener_paused) next = std::min(next, listener_resume);
    if (draining) next = std::min(next, drain_cancelled ? grace_deadline : drain_deadline);
    const auto d = std::chrono::duration_cast<std::chrono::milliseconds>(next - Clock::now());
    return static_cast<int>(std::max<int64_t>(0, d.count() + 1));
  }

  void publish() {
    st.connections_open = open_normal + open_reject;
    st.requests_in_flight = in_flight;
    st.draining = draining;
    std::lock_guard<std::mutex> lk(stats_mu);
    published = st;
  }

  void serve() {
    FC_CHECK(listen_fd >= 0, "HTTP server: serve() before a successful bind()");
    resume_listener();
    running = true;
    std::vector<epoll_event> evs(512);
    while (!stop_requested) {
      const int n = epoll_wait(epfd, evs.data(), static_cast<int>(evs.size()), wait_ms());
      if (n < 0 && errno != EINTR) {
        log_line(LogLevel::kError, std::string("HTTP: epoll_wait failed: ") + std::strerror(errno));
        break;
      }
      for (int i = 0; i < n; ++i) {
        const uint64_t id = evs[static_cast<size_t>(i)].data.u64;
        const uint32_t e = evs[static_cast<size_t>(i)].events;
        if (id == kListenerId) {
          on_accept();
          continue;
        }
        if (id == kMailboxId) {
          on_mailbox();
          continue;
        }
        Conn* c = find(id);
        if (!c) continue;
        if (e & (EPOLLERR | EPOLLHUP)) {
          c->phase == Phase::kLinger ? close_now(*c) : client_gone(*c);
          continue;
        }
        if (e & EPOLLIN) {
          on_readable(*c);
          if (!(c = find(id))) continue;
        }
        if ((e & EPOLLRDHUP) && c->phase == Phase::kHandling) {
          client_gone(*c);  // the client hung up while its request waits or streams
          continue;
        }
        if (e & EPOLLOUT) flush(*c);
      }
      while (!ready.empty()) {
        std::vector<uint64_t> now_ready;
        now_ready.swap(ready);
        for (uint64_t id : now_ready)
          if (Conn* c = find(id)) process_input(*c);
      }
      expire_timers();
      if (listener_paused && Clock::now() >= listener_resume) resume_listener();
      if (drain_step()) break;
      publish();
    }
    running = false;
    publish();
  }
};

Server::Server(ServerOptions opts) : impl_(std::make_unique<Impl>(std::move(opts))) {}

Server::~Server() = default;

void Server::add(Route r) {
  impl_->router.add(std::move(r));
}

BindResult Server::bind(const std::string& host, int port) {
  BindResult r;
  FC_CHECK(impl_->listen_fd < 0, "HTTP server: already bound");
  impl_->listen_fd = detail::listen_on(host, port, kBacklog, r);
  return r;
}

void Server::serve() {
  impl_->serve();
}

void Server::begin_drain(std::chrono::milliseconds timeout) {
  Posted p;
  p.kind = Posted::Kind::kDrain;
  p.drain_ms = timeout.count();
  impl_->mailbox->post(std::move(p));
}

void Server::stop() {
  Posted p;
  p.kind = Posted::Kind::kStop;
  impl_->mailbox->post(std::move(p));
}

ServerStats Server::stats() const {
  ServerStats s;
  {
    std::lock_guard<std::mutex> lk(impl_->stats_mu);
    s = impl_->published;
  }
  s.tasks_queued = impl_->pool ? impl_->pool->queued() : 0;
  return s;
}

}  // namespace fc::http
