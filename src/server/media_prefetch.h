// Remote media fetched off the HTTP workers (docs/design.md "Multimodal input", serving): a chat
// or /tokenize request whose parts name http(s) URLs does not fetch them on the worker that runs
// its handler. The handler answers with a MediaPrefetch (an http::Deferred) instead; its fetch
// runs on one of a few dedicated fetch threads (MediaFetcher), all of the request's URLs at once
// (fetch_remote: one libcurl multi handle, each URL bounded by the fetch timeout, size cap and
// redirect limit), and when it is done the request continues on an HTTP worker as the
// continuation decides - usually as the chat job's own deferred or streamed response (the HTTP
// layer chains a Deferred whose final response defers again, http/message.h).
//
// Bounds: kFetchThreads threads fetch; at most kMaxPending requests wait for or run a fetch, the
// next one is answered 503 at once; a request's fetch takes at most FetchOptions::timeout_s
// (every URL of it in parallel, redirects included). A client that leaves, or a server that
// stops, cancels the fetch within 100 ms.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "http/message.h"
#include "server/media_fetch.h"

namespace fc {

class MediaFetcher {
 public:
  static constexpr int kFetchThreads = 4;
  static constexpr int kMaxPending = 64;

  explicit MediaFetcher(FetchOptions opt, int threads = kFetchThreads,
                        int max_pending = kMaxPending);
  ~MediaFetcher();  // running fetches are cancelled, queued ones run cancelled; joins
  MediaFetcher(const MediaFetcher&) = delete;
  MediaFetcher& operator=(const MediaFetcher&) = delete;

  const FetchOptions& options() const { return opt_; }
  // Queues a task for a fetch thread; false (nothing queued) when max_pending tasks wait or run.
  // A task gets `stopping`, true once the fetcher is being destroyed (queued tasks still run
  // then, seeing it set, so that each can end its response).
  using Task = std::function<void(const std::atomic<bool>& stopping)>;
  bool submit(Task task);
  int pending() const;

 private:
  void run();
  FetchOptions opt_;
  int max_pending_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Task> queue_;
  int running_ = 0;
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
};

// What a request does once its media are fetched: runs on an HTTP worker and fills `res` as a
// handler would (an immediate answer, or res.defer / res.stream to continue).
using AfterFetch =
    std::function<void(std::shared_ptr<const PrefetchedMedia> media, http::Response& res)>;

// The Deferred a handler answers with when `urls` must be fetched first. Over the fetcher's
// bound: 503 "too many requests are fetching media".
std::shared_ptr<http::Deferred> prefetch_then(MediaFetcher& fetcher, std::vector<std::string> urls,
                                              AfterFetch next);

}  // namespace fc
