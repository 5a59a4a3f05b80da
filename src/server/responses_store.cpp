#include "server/responses_store.h"

#include <chrono>

namespace fc {

ResponsesStore::ResponsesStore(ResponsesStoreLimits limits, Clock now)
    : limits_(limits), now_(std::move(now)) {
  if (!now_)
    now_ = [] {
      return std::chrono::duration_cast<std::chrono::milliseconds>(
                 std::chrono::steady_clock::now().time_since_epoch())
          .count();
    };
}

bool ResponsesStore::expired(const Entry& e, int64_t now) const {
  return limits_.ttl_ms > 0 && now - e.created_ms >= limits_.ttl_ms;
}

void ResponsesStore::drop(std::unordered_map<std::string, Entry>::iterator it) {
  bytes_ -= it->second.bytes;
  lru_.erase(it->second.lru);
  map_.erase(it);
}

void ResponsesStore::enforce_limits() {
  // Expired records first (from the least recently used end: a record used recently can still
  // be old, so this scans all of them; the map is bounded by max_entries).
  const int64_t now = now_();
  if (limits_.ttl_ms > 0) {
    for (auto it = map_.begin(); it != map_.end();) {
      auto next = std::next(it);
      if (expired(it->second, now)) {
        drop(it);
        ++counters_.expired;
      }
      it = next;
    }
  }
  while (!lru_.empty() && (map_.size() > limits_.max_entries || bytes_ > limits_.max_bytes)) {
    drop(map_.find(lru_.back()));
    ++counters_.evicted;
  }
}

bool ResponsesStore::put(const std::string& id, std::shared_ptr<ResponseRecord> rec, size_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto it = map_.find(id); it != map_.end()) drop(it);
  if (!enabled() || bytes > limits_.max_bytes) {
    ++counters_.rejected;
    return false;
  }
  lru_.push_front(id);
  map_[id] = Entry{std::move(rec), bytes, now_(), lru_.begin()};
  bytes_ += bytes;
  enforce_limits();
  return true;
}

std::shared_ptr<ResponseRecord> ResponsesStore::get(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = map_.find(id);
  if (it == map_.end()) return nullptr;
  if (expired(it->second, now_())) {
    drop(it);
    ++counters_.expired;
    return nullptr;
  }
  lru_.splice(lru_.begin(), lru_, it->second.lru);
  return it->second.rec;
}

void ResponsesStore::resize(const std::string& id, size_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = map_.find(id);
  if (it == map_.end()) return;
  bytes_ = bytes_ - it->second.bytes + bytes;
  it->second.bytes = bytes;
  if (bytes > limits_.max_bytes) {
    drop(it);
    ++counters_.rejected;
    return;
  }
  enforce_limits();
}

bool ResponsesStore::erase(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = map_.find(id);
  if (it == map_.end()) return false;
  drop(it);
  return true;
}

ResponsesStoreStats ResponsesStore::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  ResponsesStoreStats s = counters_;
  s.entries = map_.size();
  s.bytes = bytes_;
  return s;
}

void ResponseRecord::watch(std::weak_ptr<const std::function<void()>> wake) {
  std::lock_guard<std::mutex> lock(watch_mu_);
  watchers_.push_back(std::move(wake));
}

void ResponseRecord::wake_watchers() {
  std::vector<std::shared_ptr<const std::function<void()>>> live;
  {
    std::lock_guard<std::mutex> lock(watch_mu_);
    std::vector<std::weak_ptr<const std::function<void()>>> keep;
    for (const auto& w : watchers_)
      if (auto f = w.lock()) {
        live.push_back(std::move(f));
        keep.push_back(w);
      }
    watchers_.swap(keep);
  }
  for (const auto& f : live) (*f)();
}

size_t record_bytes(const ResponseRecord& rec) {
  // Approximate heap use: the serialized texts (nlohmann's trees take a small multiple of this;
  // the budget counts the text so it is reproducible).
  size_t n = rec.response.dump().size() + rec.messages.dump().size() + sizeof(ResponseRecord);
  for (const std::string& e : rec.events) n += e.size();
  return n;
}

}  // namespace fc
