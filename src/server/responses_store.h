// The Responses API's stored responses: a bounded in-memory map from response id to record,
// evicting the least recently used record past an entry cap or a byte budget, and records older
// than a TTL. vLLM keeps them in an unbounded dict behind VLLM_ENABLE_RESPONSES_API_STORE
// [vllm-project/vllm: vllm/entrypoints/openai/responses/serving.py `response_store`,
// `msg_store`]; the bounds are fourcast's (--responses-store-max-entries, -max-mb, -ttl).
// Pure bookkeeping: the clock is injected, nothing here knows HTTP or the engine.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <unordered_map>
#include <vector>

namespace fc {

// One response as stored. A background response is updated while it runs: its fields are
// guarded by `mu`, and the jobs following it (stream readers, a cancel waiting for the end) are
// woken after every change. Nobody blocks on a record.
struct ResponseRecord {
  std::mutex mu;
  nlohmann::json response;  // the Response object as last reported (status, output, usage)
  // The chat messages this response's prompt was built from, without the system message made
  // from `instructions` (they do not carry over, as in vLLM): previous_response_id continues
  // from them plus `response.output`.
  nlohmann::json messages = nlohmann::json::array();
  // Background streaming: every event (JSON text) in order, replayed by GET ?stream=true.
  bool keep_events = false;
  std::vector<std::string> events;
  bool done = true;                 // no more changes (false while a background job runs)
  std::atomic<bool> cancel{false};  // set by POST .../cancel; the job stops at its next step

  // A follower's wake function (quick, thread-safe; it must not call back into the record). It
  // is called after changes until the follower drops its shared_ptr.
  void watch(std::weak_ptr<const std::function<void()>> wake);
  // Calls the live followers' wakes (never with `mu` held by this call) and forgets dead ones.
  void wake_watchers();

 private:
  std::mutex watch_mu_;
  std::vector<std::weak_ptr<const std::function<void()>>> watchers_;
};

struct ResponsesStoreLimits {
  size_t max_entries = 10000;
  size_t max_bytes = size_t{512} << 20;
  int64_t ttl_ms = int64_t{24} * 3600 * 1000;  // 0: no expiry
};

struct ResponsesStoreStats {
  size_t entries = 0;
  size_t bytes = 0;
  uint64_t evicted = 0;   // LRU evictions (cap or budget)
  uint64_t expired = 0;   // TTL expiries
  uint64_t rejected = 0;  // records larger than the whole budget, not stored
};

class ResponsesStore {
 public:
  using Clock = std::function<int64_t()>;  // milliseconds, monotonic
  explicit ResponsesStore(ResponsesStoreLimits limits, Clock now = {});

  // Stores (or replaces) `id`, accounted at `bytes`, as the most recently used; evicts what the
  // limits then require. Returns false when the record alone exceeds the byte budget (or the
  // store is disabled by a zero cap): it is not stored.
  bool put(const std::string& id, std::shared_ptr<ResponseRecord> rec, size_t bytes);
  // The record, marked most recently used; null when absent or expired (then dropped).
  std::shared_ptr<ResponseRecord> get(const std::string& id);
  // Re-accounts a stored record whose contents grew or shrank (no-op when absent).
  void resize(const std::string& id, size_t bytes);
  bool erase(const std::string& id);
  ResponsesStoreStats stats() const;
  bool enabled() const { return limits_.max_entries > 0 && limits_.max_bytes > 0; }

 private:
  struct Entry {
    std::shared_ptr<ResponseRecord> rec;
    size_t bytes = 0;
    int64_t created_ms = 0;
    std::list<std::string>::iterator lru;  // position in lru_ (front: most recent)
  };
  void drop(std::unordered_map<std::string, Entry>::iterator it);
  void enforce_limits();  // lock held
  bool expired(const Entry& e, int64_t now) const;

  ResponsesStoreLimits limits_;
  Clock now_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Entry> map_;
  std::list<std::string> lru_;
  size_t bytes_ = 0;
  ResponsesStoreStats counters_;
};

// The bytes a record is accounted at: its JSON texts and events.
size_t record_bytes(const ResponseRecord& rec);

}  // namespace fc
