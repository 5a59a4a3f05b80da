// The event-driven HTTP server over loopback sockets: keep-alive and pipelining, deferred
// responses and streams that hold no thread, deadlines that trickling bytes do not extend, the
// immediate 413, the connection cap's 503, cancellation when a client leaves, the drain, and the
// before-routing hook (CORS).
#include "http/server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

namespace fc::http {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

double since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

int connect_to(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

void send_all(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    const ssize_t n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

// Everything until the peer closes (or the 10 s receive timeout).
std::string read_all(int fd) {
  std::string out;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

// Reads until `needle` has arrived (or the peer closes).
std::string read_until(int fd, const std::string& needle, std::string* have = nullptr) {
  std::string out = have ? *have : "";
  char buf[4096];
  while (out.find(needle) == std::string::npos) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

int status_of(const std::string& response) {
  return response.size() > 12 ? std::stoi(response.substr(9, 3)) : -1;
}

// A deferred response finished from outside (another thread) through finish().
class Later : public Deferred {
 public:
  void start(std::function<void()> wake) override {
    std::lock_guard<std::mutex> lk(mu_);
    wake_ = std::move(wake);
  }
  bool pump(std::string& stream_bytes, Response& final) override {
    ++pumps;
    std::lock_guard<std::mutex> lk(mu_);
    if (cancel_reason == 2) {  // shutdown: end with an error status
      final.status = 503;
      final.set_content("{\"error\":\"shutting down\"}", "application/json");
      return true;
    }
    if (!ready_) return false;
    final.set_content(text_, "text/plain");
    return true;
  }
  void cancel(CancelReason why) override {
    std::function<void()> w;
    {
      std::lock_guard<std::mutex> lk(mu_);
      // The time first: the test reads cancelled_at once it sees cancel_reason set (the atomic
      // store publishes it; the other order was a data race TSan reported).
      cancelled_at = Clock::now();
      cancel_reason = why == CancelReason::kClientGone ? 1 : 2;
      w = wake_;
    }
    if (w) w();
  }
  void finish(std::string text) {
    std::function<void()> w;
    {
      std::lock_guard<std::mutex> lk(mu_);
      ready_ = true;
      text_ = std::move(text);
      w = wake_;
    }
    if (w) w();
  }
  bool started() {
    std::lock_guard<std::mutex> lk(mu_);
    return static_cast<bool>(wake_);
  }
  std::atomic<int> pumps{0};
  std::atomic<int> cancel_reason{0};  // 0 none, 1 client gone, 2 shutdown
  Clock::time_point cancelled_at;

 private:
  std::mutex mu_;
  std::function<void()> wake_;
  bool ready_ = false;
  std::string text_;
};

// A stream of `n` pieces, one per finish_piece() call.
class Pieces : public Deferred {
 public:
  void start(std::function<void()> wake) override { wake_ = std::move(wake); }
  bool pump(std::string& bytes, Response&) override {
    const int upto = released.load();
    while (sent < upto) bytes += "piece " + std::to_string(sent++) + "\n";
    return sent >= 3;
  }
  void cancel(CancelReason) override {}
  void release() {
    ++released;
    wake_();
  }
  std::atomic<int> released{0};
  int sent = 0;
  std::function<void()> wake_;
};

// A deferred response that, once go() is called, hands over to `next` (streamed or deferred).
class Handover : public Deferred {
 public:
  Handover(std::shared_ptr<Deferred> next, bool stream) : next_(std::move(next)), stream_(stream) {}
  void start(std::function<void()> wake) override {
    std::lock_guard<std::mutex> lk(mu_);
    wake_ = std::move(wake);
  }
  bool pump(std::string&, Response& final) override {
    if (!ready_) return false;
    if (stream_) {
      final.set_header("X-Handed-Over", "1");
      final.stream(next_, "text/event-stream");
    } else {
      final.defer(next_);
    }
    return true;
  }
  void cancel(CancelReason) override {}
  void go() {
    ready_ = true;
    std::lock_guard<std::mutex> lk(mu_);
    if (wake_) wake_();
  }
  bool started() {
    std::lock_guard<std::mutex> lk(mu_);
    return static_cast<bool>(wake_);
  }

 private:
  std::shared_ptr<Deferred> next_;
  bool stream_;
  std::atomic<bool> ready_{false};
  std::mutex mu_;
  std::function<void()> wake_;
};

struct Fixture {
  explicit Fixture(ServerOptions o = {}) : server(std::move(o)) {
    server.add({"GET", "/fast",
                [](const Request&, Response& r) { r.set_content("ok", "text/plain"); }, true});
    server.add({"POST", "/echo", [](const Request& q, Response& r) {
                  r.set_content(q.header_value("content-type") + "|" + q.body, "text/plain");
                }});
    server.add({"GET", "/later", [this](const Request&, Response& r) {
                  auto d = std::make_shared<Later>();
                  {
                    std::lock_guard<std::mutex> lk(mu);
                    laters.push_back(d);
                  }
                  r.defer(d);
                }});
    server.add({"GET", "/stream", [this](const Request&, Response& r) {
                  pieces = std::make_shared<Pieces>();
                  r.set_header("Cache-Control", "no-cache");
                  r.stream(pieces, "text/event-stream");
                }});
    server.add({"GET", "/metrics",
                [](const Request&, Response& r) { r.set_content("m", "text/plain"); }, true, true});
    server.add({"GET", "/handover-stream", [this](const Request&, Response& r) {
                  std::lock_guard<std::mutex> lk(mu);
                  pieces = std::make_shared<Pieces>();
                  handover = std::make_shared<Handover>(pieces, true);
                  r.defer(handover);
                }});
    server.add({"GET", "/handover-later", [this](const Request&, Response& r) {
                  auto d = std::make_shared<Later>();
                  std::lock_guard<std::mutex> lk(mu);
                  laters.push_back(d);
                  handover = std::make_shared<Handover>(d, false);
                  r.defer(handover);
                }});
    BindResult b = server.bind("127.0.0.1", 0);
    EXPECT_TRUE(b.ok) << b.error;
    port = b.port;
    thread = std::thread([this] { server.serve(); });
  }
  ~Fixture() {
    server.stop();
    thread.join();
  }
  std::string get(const std::string& path) {
    const int fd = connect_to(port);
    send_all(fd, "GET " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    std::string r = read_all(fd);
    ::close(fd);
    return r;
  }
  // Opens a connection with a GET /later waiting on it; returns the Later (fd set).
  std::shared_ptr<Later> waiting_request(int& fd) {
    size_t i = 0;
    {
      std::lock_guard<std::mutex> lk(mu);
      i = laters.size();
    }
    fd = connect_to(port);
    send_all(fd, "GET /later HTTP/1.1\r\n\r\n");
    return later(i);
  }
  std::shared_ptr<Later> later(size_t i) {
    for (int k = 0; k < 500; ++k) {
      {
        std::lock_guard<std::mutex> lk(mu);
        if (laters.size() > i && laters[i]->started()) return laters[i];
      }
      std::this_thread::sleep_for(2ms);
    }
    return nullptr;
  }
  Server server;
  int port = 0;
  std::thread thread;
  std::mutex mu;
  std::vector<std::shared_ptr<Later>> laters;
  std::shared_ptr<Pieces> pieces;
  std::shared_ptr<Handover> handover;
  // The latest handover, once the server started it.
  std::shared_ptr<Handover> started_handover(const std::shared_ptr<Handover>& not_this = nullptr) {
    for (int k = 0; k < 500; ++k) {
      {
        std::lock_guard<std::mutex> lk(mu);
        if (handover && handover != not_this && handover->started()) return handover;
      }
      std::this_thread::sleep_for(2ms);
    }
    return nullptr;
  }
};

TEST(HttpServer, KeepAlivePipeliningAndCaseInsensitiveHeaders) {
  Fixture f;
  const int fd = connect_to(f.port);
  // Two requests in one write; the second closes.
  send_all(fd,
           "POST /echo HTTP/1.1\r\nCONTENT-type: Application/JSON\r\nContent-Length: 2\r\n\r\n{}"
           "GET /fast HTTP/1.1\r\nConnection: close\r\n\r\n");
  const std::string r = read_all(fd);
  ::close(fd);
  EXPECT_NE(r.find("HTTP/1.1 200 OK"), std::string::npos) << r;
  EXPECT_NE(r.find("Application/JSON|{}"), std::string::npos) << r;
  EXPECT_NE(r.find("\r\n\r\nok"), std::string::npos) << r;
  EXPECT_NE(r.find("Connection: close"), std::string::npos) << r;
  EXPECT_EQ(status_of(f.get("/nope")), 404);
  const std::string m = f.get("/echo");
  EXPECT_EQ(status_of(m), 405);
  EXPECT_NE(m.find("Allow: POST"), std::string::npos) << m;
}

TEST(HttpServer, DeferredResponsesHoldNoThread) {
  ServerOptions o;
  o.workers = 1;  // one worker: if a waiting request held it, nothing else would run
  Fixture f(o);
  std::vector<int> fds;
  for (int i = 0; i < 50; ++i) {
    fds.push_back(connect_to(f.port));
    send_all(fds.back(), "GET /later HTTP/1.1\r\n\r\n");
  }
  for (size_t i = 0; i < 50; ++i) ASSERT_NE(f.later(i), nullptr) << i;
  // 50 requests wait; a POST (run on the single worker) is still answered at once.
  const int fd = connect_to(f.port);
  const auto t0 = Clock::now();
  send_all(fd, "POST /echo HTTP/1.1\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx");
  EXPECT_NE(read_all(fd).find("|x"), std::string::npos);
  EXPECT_LT(since(t0), 0.5);
  ::close(fd);
  for (size_t i = 0; i < 50; ++i) f.later(i)->finish("done " + std::to_string(i));
  for (size_t i = 0; i < 50; ++i) {
    const std::string r = read_until(fds[i], "done");
    EXPECT_NE(r.find("done " + std::to_string(i)), std::string::npos) << r;
    ::close(fds[i]);
  }
  // A client can read its last byte before the event loop has counted the request done: wait
  // (bounded) for the count to settle instead of reading it at once.
  for (int i = 0; i < 200 && f.server.stats().requests_in_flight > 0; ++i)
    std::this_thread::sleep_for(10ms);
  EXPECT_EQ(f.server.stats().requests_in_flight, 0);
}

TEST(HttpServer, StreamPiecesArriveAsProduced) {
  Fixture f;
  const int fd = connect_to(f.port);
  send_all(fd, "GET /stream HTTP/1.1\r\n\r\n");
  std::string got = read_until(fd, "\r\n\r\n");
  EXPECT_NE(got.find("Transfer-Encoding: chunked"), std::string::npos) << got;
  EXPECT_NE(got.find("Content-Type: text/event-stream"), std::string::npos) << got;
  for (int i = 0; i < 3; ++i) {
    f.pieces->release();
    got = read_until(fd, "piece " + std::to_string(i) + "\n", &got);
    EXPECT_NE(got.find("piece " + std::to_string(i)), std::string::npos);
  }
  got = read_until(fd, "0\r\n\r\n", &got);
  EXPECT_NE(got.find("\r\n0\r\n\r\n"), std::string::npos) << got;
  ::close(fd);
}

TEST(HttpServer, DeferredResponsesCanHandOverToAStreamOrAnotherDeferred) {
  Fixture f;
  // Deferred -> stream: nothing is sent before the handover, then the stream's head and pieces.
  int fd = connect_to(f.port);
  send_all(fd, "GET /handover-stream HTTP/1.1\r\n\r\n");
  const std::shared_ptr<Handover> h1 = f.started_handover();
  ASSERT_NE(h1, nullptr);
  char c;
  EXPECT_EQ(::recv(fd, &c, 1, MSG_DONTWAIT), -1);  // no byte yet
  h1->go();
  std::string got = read_until(fd, "\r\n\r\n");
  EXPECT_EQ(status_of(got), 200) << got;
  EXPECT_NE(got.find("Transfer-Encoding: chunked"), std::string::npos) << got;
  EXPECT_NE(got.find("X-Handed-Over: 1"), std::string::npos) << got;
  for (int i = 0; i < 3; ++i) f.pieces->release();
  got = read_until(fd, "0\r\n\r\n", &got);
  EXPECT_NE(got.find("piece 2"), std::string::npos) << got;
  ::close(fd);
  // Deferred -> deferred: the second one's body.
  fd = connect_to(f.port);
  send_all(fd, "GET /handover-later HTTP/1.1\r\nConnection: close\r\n\r\n");
  const std::shared_ptr<Handover> h2 = f.started_handover(h1);
  ASSERT_NE(h2, nullptr);
  h2->go();
  std::shared_ptr<Later> later = f.later(0);
  ASSERT_NE(later, nullptr);  // started by the handover
  later->finish("second");
  const std::string r = read_all(fd);
  EXPECT_EQ(status_of(r), 200) << r;
  EXPECT_NE(r.find("\r\n\r\nsecond"), std::string::npos) << r;
  ::close(fd);
  for (int i = 0; i < 100 && f.server.stats().requests_in_flight > 0; ++i)
    std::this_thread::sleep_for(5ms);
  EXPECT_EQ(f.server.stats().requests_in_flight, 0);
}

TEST(HttpServer, SlowDripHeadIsCutAtTheDeadline) {
  ServerOptions o;
  o.head_timeout_s = 0.6;
  Fixture f(o);
  const int fd = connect_to(f.port);
  const auto t0 = Clock::now();
  // One byte every 50 ms: each byte arrives well inside any per-read timeout.
  const std::string head = "GET /fast HTTP/1.1\r\nX-Slow: " + std::string(100, 'a');
  std::atomic<bool> stop{false};
  std::thread drip([&] {
    for (char c : head) {
      if (stop || ::send(fd, &c, 1, MSG_NOSIGNAL) != 1) return;
      std::this_thread::sleep_for(50ms);
    }
  });
  const std::string r = read_all(fd);
  const double t = since(t0);
  stop = true;
  drip.join();
  ::close(fd);
  EXPECT_EQ(status_of(r), 408) << r;
  EXPECT_GT(t, 0.55);
  EXPECT_LT(t, 1.5);
  EXPECT_GE(f.server.stats().timeouts_head, 1);
}

TEST(HttpServer, OverLimitContentLengthIs413AtOnce) {
  ServerOptions o;
  o.limits.max_body_bytes = 1000;
  Fixture f(o);
  const int fd = connect_to(f.port);
  const auto t0 = Clock::now();
  send_all(fd, "POST /echo HTTP/1.1\r\nContent-Length: 1000000\r\n\r\n");  // no body sent
  const std::string r = read_until(fd, "}");
  EXPECT_LT(since(t0), 0.5);
  ::close(fd);
  EXPECT_EQ(status_of(r), 413) << r;
  EXPECT_NE(r.find("1000 bytes (the limit)"), std::string::npos) << r;
}

TEST(HttpServer, ConnectionCapAnswers503) {
  ServerOptions o;
  o.max_connections = 2;
  Fixture f(o);
  const int a = connect_to(f.port), b = connect_to(f.port);
  send_all(a, "GET /fast HTTP/1.1\r\n\r\n");
  send_all(b, "GET /fast HTTP/1.1\r\n\r\n");
  EXPECT_EQ(status_of(read_until(a, "ok")), 200);
  EXPECT_EQ(status_of(read_until(b, "ok")), 200);
  const std::string r = f.get("/fast");  // third connection while a and b stay open
  EXPECT_EQ(status_of(r), 503) << r;
  EXPECT_NE(r.find("connection limit (2)"), std::string::npos) << r;
  EXPECT_EQ(f.server.stats().rejected_max_connections, 1);
  ::close(a);
  // With one slot free again, a new connection is served.
  for (int i = 0; i < 100 && f.server.stats().connections_open > 1; ++i)
    std::this_thread::sleep_for(5ms);
  EXPECT_EQ(status_of(f.get("/fast")), 200);
  ::close(b);
}

TEST(HttpServer, ClientLeavingCancelsItsDeferredAtOnce) {
  Fixture f;
  int fd = -1;
  std::shared_ptr<Later> d = f.waiting_request(fd);
  ASSERT_NE(d, nullptr);
  const auto t0 = Clock::now();
  ::close(fd);
  while (d->cancel_reason == 0 && since(t0) < 2) std::this_thread::sleep_for(1ms);
  EXPECT_EQ(d->cancel_reason, 1);
  EXPECT_LT(std::chrono::duration<double>(d->cancelled_at - t0).count(), 0.1);
  for (int i = 0; i < 100 && f.server.stats().requests_in_flight > 0; ++i)
    std::this_thread::sleep_for(5ms);
  EXPECT_EQ(f.server.stats().requests_in_flight, 0);
  EXPECT_EQ(f.server.stats().client_gone, 1);
}

TEST(HttpServer, DrainFinishesInFlightAndRefusesNewRequests) {
  Fixture f;
  int fd = -1;
  std::shared_ptr<Later> d = f.waiting_request(fd);
  ASSERT_NE(d, nullptr);
  f.server.begin_drain(5s);
  for (int i = 0; i < 100 && !f.server.stats().draining; ++i) std::this_thread::sleep_for(2ms);
  EXPECT_EQ(status_of(f.get("/fast")), 503);
  EXPECT_EQ(status_of(f.get("/metrics")), 200);  // exempt from the drain
  d->finish("finished");
  const std::string r = read_until(fd, "finished");
  EXPECT_EQ(status_of(r), 200) << r;
  EXPECT_NE(r.find("Connection: close"), std::string::npos);
  ::close(fd);
  f.thread.join();  // serve() returned by itself once nothing was in flight
  f.thread = std::thread([] {});
  EXPECT_EQ(d->cancel_reason, 0);
}

TEST(HttpServer, DrainTimeoutCancelsWithAnErrorStatus) {
  Fixture f;
  int fd = -1;
  std::shared_ptr<Later> d = f.waiting_request(fd);
  ASSERT_NE(d, nullptr);
  const auto t0 = Clock::now();
  f.server.begin_drain(300ms);
  const std::string r = read_until(fd, "shutting down");
  EXPECT_EQ(status_of(r), 503) << r;
  EXPECT_EQ(d->cancel_reason, 2);
  EXPECT_GT(since(t0), 0.25);
  ::close(fd);
  f.thread.join();
  f.thread = std::thread([] {});
}

TEST(HttpServer, BeforeRoutingAnswersOrAddsHeadersToEveryResponse) {
  ServerOptions o;
  std::atomic<int> calls{0};
  o.before_routing = [&](const Request& q, Response& r) {
    ++calls;
    if (q.method == "OPTIONS") {  // answered for any path, routed or not
      r.status = 204;
      r.set_header("X-Pre", q.path);
      return true;
    }
    if (q.header("x-tag")) r.set_header("X-Tag", q.header_value("x-tag"));
    return false;
  };
  Fixture f(o);
  auto request = [&](const std::string& head) {
    const int fd = connect_to(f.port);
    send_all(fd, head + "Connection: close\r\n\r\n");
    std::string r = read_all(fd);
    ::close(fd);
    return r;
  };
  const std::string pre = request("OPTIONS /nowhere HTTP/1.1\r\n");
  EXPECT_EQ(status_of(pre), 204) << pre;
  EXPECT_NE(pre.find("X-Pre: /nowhere"), std::string::npos) << pre;
  // Not answered: the hook's headers come with the handler's answer, a 404 and a 405 ...
  for (const char* path : {"/fast", "/nope", "/echo"}) {
    const std::string r = request(std::string("GET ") + path + " HTTP/1.1\r\nX-Tag: t1\r\n");
    EXPECT_NE(r.find("X-Tag: t1\r\n"), std::string::npos) << r;
  }
  EXPECT_EQ(request("GET /fast HTTP/1.1\r\n").find("X-Tag"), std::string::npos);
  // ... a stream's head, and a deferred response; a keep-alive follow-up does not inherit them.
  int fd = connect_to(f.port);
  send_all(fd, "GET /stream HTTP/1.1\r\nX-Tag: s\r\n\r\n");
  std::string got = read_until(fd, "\r\n\r\n");
  EXPECT_NE(got.find("X-Tag: s\r\n"), std::string::npos) << got;
  for (int i = 0; i < 3; ++i) f.pieces->release();
  got = read_until(fd, "\r\n0\r\n\r\n", &got);
  send_all(fd, "GET /fast HTTP/1.1\r\nConnection: close\r\n\r\n");
  const std::string next = read_all(fd);
  EXPECT_EQ(status_of(next), 200) << next;
  EXPECT_EQ(next.find("X-Tag"), std::string::npos) << next;
  ::close(fd);
  std::shared_ptr<Later> d;
  fd = connect_to(f.port);
  send_all(fd, "GET /later HTTP/1.1\r\nX-Tag: d\r\n\r\n");
  ASSERT_NE(d = f.later(0), nullptr);
  d->finish("late");
  const std::string late = read_until(fd, "late");
  EXPECT_NE(late.find("X-Tag: d\r\n"), std::string::npos) << late;
  ::close(fd);
  EXPECT_EQ(calls, 8);
}

TEST(HttpServer, BindErrorsSayWhatHappened) {
  Server a{ServerOptions{}}, b{ServerOptions{}};
  BindResult ra = a.bind("127.0.0.1", 0);
  ASSERT_TRUE(ra.ok);
  BindResult rb = b.bind("127.0.0.1", ra.port);
  EXPECT_FALSE(rb.ok);
  EXPECT_NE(rb.error.find("already in use"), std::string::npos) << rb.error;
  Server c{ServerOptions{}};
  BindResult rc = c.bind("no-such-host.invalid", 8000);
  EXPECT_FALSE(rc.ok);
  EXPECT_NE(rc.error.find("cannot resolve host 'no-such-host.invalid'"), std::string::npos)
      << rc.error;
  Server d{ServerOptions{}};
  BindResult rd = d.bind("192.0.2.1", 0);  // TEST-NET-1: not an address of this machine
  EXPECT_FALSE(rd.ok);
  EXPECT_NE(rd.error.find("not an address of this machine"), std::string::npos) << rd.error;
}

}  // namespace
}  // namespace fc::http
