// One connection's life on the I/O thread: reading and parsing, dispatching to a handler,
// responses and streams from the workers, writing, keep-alive and closing (server_impl.h).
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "core/log.h"
#include "http/server_impl.h"

namespace fc::http {

using detail::Posted;
using namespace detail;

namespace {

std::string hex(size_t n) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%zx", n);
  return buf;
}

}  // namespace

Server::Impl::Conn* Server::Impl::find(uint64_t id) {
  auto it = conns.find(id);
  return it == conns.end() ? nullptr : it->second.get();
}

void Server::Impl::set_events(Conn& c) {
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

void Server::Impl::refresh_timer(Conn& c) {
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

Clock::duration Server::Impl::secs(double s) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

void Server::Impl::close_now(Conn& c) {
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

void Server::Impl::client_gone(Conn& c) {
  if (c.in_flight) ++st.client_gone;
  close_now(c);
}

void Server::Impl::close_gracefully(Conn& c) {
  ::shutdown(c.fd, SHUT_WR);
  c.phase = Phase::kLinger;
  c.phase_deadline = Clock::now() + kLinger;
  c.in.clear();
  set_events(c);
  refresh_timer(c);
}

void Server::Impl::queue_head(Conn& c, const Response& r, size_t content_length, bool stream) {
  std::string h = "HTTP/1.1 " + std::to_string(r.status) + " " + reason_phrase(r.status) + "\r\n";
  if (!r.content_type.empty()) h += "Content-Type: " + r.content_type + "\r\n";
  for (const auto& [k, v] : r.headers) h += k + ": " + v + "\r\n";
  for (const auto& [k, v] : c.extra_headers) h += k + ": " + v + "\r\n";
  if (stream) {
    if (c.chunked) h += "Transfer-Encoding: chunked\r\n";
  } else {
    h += "Content-Length: " + std::to_string(content_length) + "\r\n";
  }
  const bool close = c.close_after || !c.keep_alive || draining || (stream && !c.chunked);
  if (close) c.close_after = true;
  h += close ? "Connection: close\r\n" : (c.version_minor == 0 ? "Connection: keep-alive\r\n" : "");
  h += "\r\n";
  c.out += h;
  if (opts.on_response) opts.on_response(r.status);
}

void Server::Impl::queue_response(Conn& c, const Response& r) {
  queue_head(c, r, r.body.size(), false);
  c.out += r.body;
  c.response_done = true;
}

Response Server::Impl::error_response(int status, const std::string& message) {
  Response r;
  r.status = status;
  r.set_content(opts.error_body(status, message), "application/json");
  return r;
}

void Server::Impl::fail_request(Conn& c, int status, const std::string& message) {
  c.phase = Phase::kHandling;  // stop reading
  c.close_after = true;
  queue_response(c, error_response(status, message));
  flush(c);
}

void Server::Impl::append_chunk(Conn& c, const std::string& bytes) {
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

void Server::Impl::end_stream(Conn& c) {
  if (c.chunked) c.out += "0\r\n\r\n";
  c.response_done = true;
}

void Server::Impl::flush(Conn& c) {
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

void Server::Impl::end_request(Conn& c) {
  if (c.in_flight) {
    c.in_flight = false;
    --in_flight;
  }
  c.deferred.reset();
  c.extra_headers.clear();
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

void Server::Impl::on_readable(Conn& c) {
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

void Server::Impl::process_input(Conn& c) {
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

bool Server::Impl::drain_exempt(const Request& r) {
  std::map<std::string, std::string> params;
  int status = 0;
  const Route* route = router.match(r.method, r.path, params, status);
  return route && route->while_draining;
}

void Server::Impl::run_handler(
    const Route& route, const Request& req, Response& res,
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

void Server::Impl::dispatch(Conn& c) {
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
  c.extra_headers.clear();
  if (opts.before_routing) {
    Response pre;
    bool answered = false;
    try {
      answered = opts.before_routing(req, pre);
    } catch (const std::exception& e) {
      log_line(LogLevel::kError, std::string("HTTP before_routing hook failed: ") + e.what());
      pre = Response();
    }
    if (answered) {
      pre.deferred.reset();
      queue_response(c, pre);
      flush(c);
      return;
    }
    c.extra_headers = std::move(pre.headers);
  }
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

void Server::Impl::handled(Conn& c, Response r) {
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

void Server::Impl::schedule_pump(Conn& c) {
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

void Server::Impl::pumped(Conn& c, Posted& p) {
  c.pumping = false;
  if (!p.error.empty()) log_line(LogLevel::kError, "HTTP deferred response failed: " + p.error);
  if (c.streaming) {
    append_chunk(c, p.bytes);
    if (p.done) {
      if (!p.error.empty()) c.close_after = true;
      end_stream(c);
    }
  } else if (p.done && p.error.empty() && p.response.deferred) {
    // The deferred response continues as another one (message.h): handled as if a handler had
    // returned it (a stream's head goes out now; a drain already cancelling cancels it too).
    c.deferred.reset();
    c.pump_again = false;
    handled(c, std::move(p.response));
    return;
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

void Server::Impl::on_mailbox() {
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
      if ((p.kind == Posted::Kind::kHandled || p.kind == Posted::Kind::kPumped) &&
          p.response.deferred)
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

}  // namespace fc::http
