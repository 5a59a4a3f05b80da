#include "server/media_prefetch.h"

#include <nlohmann/json.hpp>

#include "server/api_error.h"

namespace fc {

MediaFetcher::MediaFetcher(FetchOptions opt, int threads, int max_pending)
    : opt_(std::move(opt)), max_pending_(max_pending) {
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { run(); });
}

MediaFetcher::~MediaFetcher() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (std::thread& t : threads_) t.join();
}

bool MediaFetcher::submit(Task task) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (stop_ || static_cast<int>(queue_.size()) + running_ >= max_pending_) return false;
    queue_.push_back(std::move(task));
  }
  cv_.notify_one();
  return true;
}

int MediaFetcher::pending() const {
  std::lock_guard<std::mutex> lk(mu_);
  return static_cast<int>(queue_.size()) + running_;
}

void MediaFetcher::run() {
  for (;;) {
    Task task;
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, nothing left
      task = std::move(queue_.front());
      queue_.pop_front();
      ++running_;
    }
    task(stop_);
    std::lock_guard<std::mutex> lk(mu_);
    --running_;
  }
}

namespace {

void set_error(http::Response& res, int status, const std::string& message) {
  res = http::Response();
  res.status = status;
  res.set_content(error_json(status, message, "").dump(), "application/json");
}

class MediaPrefetch final : public http::Deferred,
                            public std::enable_shared_from_this<MediaPrefetch> {
 public:
  MediaPrefetch(MediaFetcher& f, std::vector<std::string> urls, AfterFetch next)
      : fetcher_(f), urls_(std::move(urls)), next_(std::move(next)) {}

  void start(std::function<void()> wake) override {
    {
      std::lock_guard<std::mutex> lk(mu_);
      wake_ = std::move(wake);
    }
    std::shared_ptr<MediaPrefetch> self = shared_from_this();
    const bool queued = fetcher_.submit([self](const std::atomic<bool>& stopping) {
      std::shared_ptr<const PrefetchedMedia> got;
      if (!stopping && !self->cancelled_)
        got = std::make_shared<const PrefetchedMedia>(fetch_remote(
            self->urls_, self->fetcher_.options(), [&] { return stopping || self->cancelled_; }));
      self->finish(std::move(got), false);
    });
    if (!queued) finish(nullptr, true);
  }

  bool pump(std::string&, http::Response& final) override {
    std::shared_ptr<const PrefetchedMedia> got;
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (busy_) {
        set_error(final, 503, "too many requests are fetching media; try again later");
        return true;
      }
      if (!done_) return false;
      got = media_;
    }
    if (!got || cancelled_) {  // cancelled (the client left, the server stops)
      set_error(final, 503, "the request was cancelled while fetching its media");
      return true;
    }
    next_(std::move(got), final);  // may defer or stream again (the HTTP layer chains it)
    return true;
  }

  void cancel(http::CancelReason) override {
    cancelled_ = true;  // the fetch loop sees it within 100 ms and finishes
  }

 private:
  void finish(std::shared_ptr<const PrefetchedMedia> got, bool busy) {
    std::function<void()> w;
    {
      std::lock_guard<std::mutex> lk(mu_);
      media_ = std::move(got);
      busy_ = busy;
      done_ = true;
      w = wake_;
    }
    if (w) w();
  }

  MediaFetcher& fetcher_;
  const std::vector<std::string> urls_;
  AfterFetch next_;
  std::atomic<bool> cancelled_{false};
  std::mutex mu_;
  std::function<void()> wake_;
  std::shared_ptr<const PrefetchedMedia> media_;
  bool done_ = false, busy_ = false;
};

}  // namespace

std::shared_ptr<http::Deferred> prefetch_then(MediaFetcher& fetcher, std::vector<std::string> urls,
                                              AfterFetch next) {
  return std::make_shared<MediaPrefetch>(fetcher, std::move(urls), std::move(next));
}

}  // namespace fc
