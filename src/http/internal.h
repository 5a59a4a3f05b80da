// Internal pieces of the HTTP server (server.cpp): the worker pool, the mailbox through which
// workers and wake() calls reach the I/O thread, listening sockets.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "http/message.h"
#include "http/server.h"

namespace fc::http::detail {

// Worker threads taking tasks in FIFO order. Tasks never block (handlers and pumps are written
// so); destruction runs what is queued, then joins.
class TaskPool {
 public:
  explicit TaskPool(int threads);
  ~TaskPool();
  void submit(std::function<void()> task);
  int queued() const;

 private:
  void run();
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> q_;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

// What reaches the I/O thread from elsewhere.
struct Posted {
  enum class Kind { kHandled, kPumped, kWake, kDrain, kStop };
  Kind kind = Kind::kWake;
  uint64_t conn = 0;
  uint64_t seq = 0;   // request number on that connection (stale posts are dropped)
  Response response;  // kHandled: the handler's; kPumped: a deferred's final response
  std::string bytes;  // kPumped: stream bytes
  bool done = false;  // kPumped: the Deferred finished
  std::string error;  // kPumped: pump() threw this
  int64_t drain_ms = 0;
};

// A queue into the I/O thread, signalled through an eventfd (written only when the reader may
// be asleep: one write per batch). Shared by the server, its worker tasks and every wake
// closure handed to a Deferred; posts after close() are dropped.
class Mailbox {
 public:
  Mailbox();
  ~Mailbox();
  int fd() const { return fd_; }
  void post(Posted p);
  // The I/O thread: everything posted so far.
  std::vector<Posted> take();
  void close();

 private:
  int fd_;
  std::mutex mu_;
  std::vector<Posted> q_;
  bool signaled_ = false;
  bool closed_ = false;
};

// Listens on host:port; on failure `error` says what happened in a user's words.
int listen_on(const std::string& host, int port, int backlog, BindResult& result);

}  // namespace fc::http::detail
