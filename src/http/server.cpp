// The I/O loop: accept (with the connection cap), the mailbox from workers and wake() calls,
// timers, the drain, and the public Server API (server_impl.h).
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <cerrno>
#include <cstring>

#include "core/error.h"
#include "core/log.h"
#include "http/server_impl.h"

namespace fc::http {

using detail::Posted;
using namespace detail;

namespace {

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

}  // namespace

Server::Impl::Impl(ServerOptions o) : opts(std::move(o)) {
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

Server::Impl::~Impl() {
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

void Server::Impl::on_accept() {
  for (;;) {
    sockaddr_storage sa{};
    socklen_t len = sizeof sa;
    const int fd =
        ::accept4(listen_fd, reinterpret_cast<sockaddr*>(&sa), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
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

void Server::Impl::pause_listener() {
  epoll_ctl(epfd, EPOLL_CTL_DEL, listen_fd, nullptr);
  listener_paused = true;
  listener_resume = Clock::now() + std::chrono::milliseconds(100);
}

void Server::Impl::resume_listener() {
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kListenerId;
  epoll_ctl(epfd, EPOLL_CTL_ADD, listen_fd, &ev);
  listener_paused = false;
}

void Server::Impl::log_throttled(Clock::time_point& last, const std::string& msg) {
  const auto now = Clock::now();
  if (now - last < kLogEvery) return;
  last = now;
  log_line(LogLevel::kWarn, msg);
}

void Server::Impl::on_timer(Conn& c) {
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
          c, 408, "request head not received within " + std::to_string(opts.head_timeout_s) + " s");
      return;
    case Phase::kBody:
      ++st.timeouts_body;
      fail_request(
          c, 408, "request body not received within " + std::to_string(opts.body_timeout_s) + " s");
      return;
    case Phase::kLinger:
      close_now(c);
      return;
    case Phase::kHandling:
      return;
  }
}

void Server::Impl::expire_timers() {
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

void Server::Impl::start_drain(int64_t ms) {
  if (draining) return;
  draining = true;
  drain_deadline = Clock::now() + std::chrono::milliseconds(ms);
  log_line(LogLevel::kInfo, "HTTP: draining; " + std::to_string(in_flight) +
                                " request(s) in flight, new requests get 503");
  // Idle keep-alive connections stay open: a request on one gets its 503 (closing them could
  // race with a request being sent); they close when serve() returns.
}

bool Server::Impl::drain_step() {
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

int Server::Impl::wait_ms() const {
  Clock::time_point next = Clock::now() + std::chrono::seconds(1);
  if (!timers.empty()) next = std::min(next, timers.begin()->first);
  if (listener_paused) next = std::min(next, listener_resume);
  if (draining) next = std::min(next, drain_cancelled ? grace_deadline : drain_deadline);
  const auto d = std::chrono::duration_cast<std::chrono::milliseconds>(next - Clock::now());
  return static_cast<int>(std::max<int64_t>(0, d.count() + 1));
}

void Server::Impl::publish() {
  st.connections_open = open_normal + open_reject;
  st.requests_in_flight = in_flight;
  st.draining = draining;
  std::lock_guard<std::mutex> lk(stats_mu);
  published = st;
}

void Server::Impl::serve() {
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
