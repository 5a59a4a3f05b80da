#include "http/internal.h"

#include <netdb.h>
#include <netinet/in.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/error.h"

namespace fc::http {

const char* reason_phrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 204:
      return "No Content";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 411:
      return "Length Required";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 415:
      return "Unsupported Media Type";
    case 417:
      return "Expectation Failed";
    case 422:
      return "Unprocessable Content";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 503:
      return "Service Unavailable";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Unknown";
  }
}

namespace detail {

TaskPool::TaskPool(int threads) {
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { run(); });
}

TaskPool::~TaskPool() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (std::thread& t : threads_) t.join();
}

void TaskPool::submit(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    q_.push_back(std::move(task));
  }
  cv_.notify_one();
}

int TaskPool::queued() const {
  std::lock_guard<std::mutex> lk(mu_);
  return static_cast<int>(q_.size());
}

void TaskPool::run() {
  for (;;) {
    std::function<void()> task;
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [&] { return stop_ || !q_.empty(); });
      if (q_.empty()) return;  // stopping, nothing left
      task = std::move(q_.front());
      q_.pop_front();
    }
    task();
  }
}

Mailbox::Mailbox() : fd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  FC_CHECK(fd_ >= 0, "eventfd failed: ", std::strerror(errno));
}

Mailbox::~Mailbox() {
  ::close(fd_);
}

void Mailbox::post(Posted p) {
  bool signal = false;
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (closed_) return;
    q_.push_back(std::move(p));
    signal = !signaled_;
    signaled_ = true;
  }
  if (signal) {
    const uint64_t one = 1;
    [[maybe_unused]] const ssize_t n = ::write(fd_, &one, sizeof one);
  }
}

std::vector<Posted> Mailbox::take() {
  uint64_t count = 0;
  [[maybe_unused]] const ssize_t n = ::read(fd_, &count, sizeof count);
  std::vector<Posted> out;
  std::lock_guard<std::mutex> lk(mu_);
  out.swap(q_);
  signaled_ = false;
  return out;
}

void Mailbox::close() {
  std::vector<Posted> dropped;
  {
    std::lock_guard<std::mutex> lk(mu_);
    closed_ = true;
    dropped.swap(q_);
  }
  // `dropped` (and any Deferred in it) is destroyed here, outside the lock.
}

int listen_on(const std::string& host, int port, int backlog, BindResult& result) {
  const std::string where = host + ":" + std::to_string(port);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  const std::string service = std::to_string(port);
  const int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &res);
  if (rc != 0) {
    result.error = "cannot resolve host '" + host + "': " + gai_strerror(rc);
    return -1;
  }
  int fd = -1, err = 0;
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      err = errno;
      continue;
    }
    const int yes = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    if (::bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && ::listen(fd, backlog) == 0) break;
    err = errno;
    ::close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  if (fd < 0) {
    if (err == EADDRINUSE)
      result.error = "port " + std::to_string(port) + " on " + host +
                     " is already in use (another process is listening there)";
    else if (err == EADDRNOTAVAIL)
      result.error = "cannot bind to " + where + ": " + std::strerror(err) +
                     " (the host is not an address of this machine)";
    else if (err == EACCES)
      result.error =
          "cannot bind to " + where + ": permission denied (ports below 1024 need " + "privileges)";
    else
      result.error = "cannot bind to " + where + ": " + std::strerror(err);
    return -1;
  }
  sockaddr_storage sa{};
  socklen_t len = sizeof sa;
  getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
  result.port = sa.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&sa)->sin6_port)
                                         : ntohs(reinterpret_cast<sockaddr_in*>(&sa)->sin_port);
  result.ok = true;
  return fd;
}

}  // namespace detail
}  // namespace fc::http
