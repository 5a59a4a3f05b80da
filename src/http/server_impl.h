// Internal: the server's state (server.cpp: I/O loop, accept, timers, drain; server_conn.cpp:
// one connection's input, output and responses). Every connection is a small state machine owned by
// the I/O thread:
//
//   kIdle (keep-alive, waiting) -> kHead -> kBody -> kHandling (handler, deferred or stream)
//        ^____________________________________________|  response flushed, keep-alive
//   any phase -> kLinger (response sent, write side shut, draining the client's leftovers) ->
//   closed
//
// One timer per connection at a time (the earliest that applies): the phase deadline (head,
// body, idle, linger; fixed when the phase starts, never pushed back by trickling bytes) or,
// while output is pending, the write-progress deadline. Workers never touch a connection: they
#pragma once

#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "http/internal.h"
#include "http/server.h"

namespace fc::http {

using Clock = std::chrono::steady_clock;

namespace detail {
inline constexpr uint64_t kListenerId = 0, kMailboxId = 1;
inline constexpr int kBacklog = 4096;
// Connections over the cap still get a 503 (read their head, answer, close) up to this many at a
// time; beyond that they are closed at once.
inline constexpr int kRejectLane = 256;
inline constexpr auto kLinger = std::chrono::seconds(2);
inline constexpr auto kRejectHeadTimeout = std::chrono::seconds(2);
inline constexpr auto kDrainGrace = std::chrono::seconds(3);
inline constexpr auto kLogEvery = std::chrono::seconds(10);
}  // namespace detail

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
    // Header fields opts.before_routing gave for the request in flight, added to its response.
    std::vector<std::pair<std::string, std::string>> extra_headers;
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

  explicit Impl(ServerOptions o);

  ~Impl();

  // ------------------------------------------------------------------ helpers
  Conn* find(uint64_t id);

  void set_events(Conn& c);

  void refresh_timer(Conn& c);

  static Clock::duration secs(double s);

  void close_now(Conn& c);

  // The client went away (or cannot be written to) while it had a request.
  void client_gone(Conn& c);

  // Response sent (or refused): shut the write side and read what the client still sends
  // (a body we did not want), so the kernel does not answer it with a reset that could destroy
  // the response before the client read it.
  void close_gracefully(Conn& c);

  // ------------------------------------------------------------------ output
  void queue_head(Conn& c, const Response& r, size_t content_length, bool stream);

  void queue_response(Conn& c, const Response& r);

  Response error_response(int status, const std::string& message);

  // Answers an error the server produced itself and closes after it.
  void fail_request(Conn& c, int status, const std::string& message);

  void append_chunk(Conn& c, const std::string& bytes);

  void end_stream(Conn& c);

  // Writes what it can. May close the connection (then `c` is gone).
  void flush(Conn& c);

  void end_request(Conn& c);

  // ------------------------------------------------------------------ input
  void on_readable(Conn& c);

  void process_input(Conn& c);

  bool drain_exempt(const Request& r);

  static void run_handler(const Route& route, const Request& req, Response& res,
                          const std::function<std::string(int, const std::string&)>& error_body);

  void dispatch(Conn& c);

  // ------------------------------------------------------------------ responses from workers
  void handled(Conn& c, Response r);

  void schedule_pump(Conn& c);

  void pumped(Conn& c, detail::Posted& p);

  void on_mailbox();

  // ------------------------------------------------------------------ accept, timers, drain
  void on_accept();

  void pause_listener();

  void resume_listener();

  void log_throttled(Clock::time_point& last, const std::string& msg);

  void on_timer(Conn& c);

  void expire_timers();

  void start_drain(int64_t ms);

  // Returns true when serve() should return.
  bool drain_step();

  int wait_ms() const;

  void publish();

  void serve();
};

}  // namespace fc::http
