#include "engine/encoder_cache.h"

#include <algorithm>

#include "core/error.h"

namespace fc {

std::vector<uint64_t> EncoderCache::allocate(uint64_t key, int64_t rows) {
  FC_CHECK(!contains(key), "EncoderCache: entry ", key, " exists");
  FC_CHECK(rows >= 0 && can_allocate(rows), "EncoderCache: ", rows, " rows do not fit (",
           capacity_ - used_, " free, ", evictable_, " evictable)");
  std::vector<uint64_t> evicted;
  while (capacity_ - used_ < rows) {
    const uint64_t victim = lru_.front();
    lru_.pop_front();
    const Entry& e = entries_.at(victim);
    used_ -= e.rows;
    evictable_ -= e.rows;
    entries_.erase(victim);
    evicted.push_back(victim);
  }
  Entry e;
  e.rows = rows;
  e.lru = lru_.insert(lru_.end(), key);  // unreferenced until add_ref
  entries_.emplace(key, std::move(e));
  used_ += rows;
  evictable_ += rows;
  return evicted;
}

void EncoderCache::add_ref(uint64_t key, int64_t req) {
  auto it = entries_.find(key);
  FC_CHECK(it != entries_.end(), "EncoderCache: no entry ", key);
  Entry& e = it->second;
  if (!e.refs.insert(req).second) return;
  if (e.refs.size() == 1) {
    lru_.erase(e.lru);
    evictable_ -= e.rows;
  }
  by_req_[req].insert(key);
}

void EncoderCache::release(int64_t req) {
  auto it = by_req_.find(req);
  if (it == by_req_.end()) return;
  for (uint64_t key : it->second) {
    Entry& e = entries_.at(key);
    e.refs.erase(req);
    if (e.refs.empty()) {
      e.lru = lru_.insert(lru_.end(), key);
      evictable_ += e.rows;
    }
  }
  by_req_.erase(it);
}

void EncoderCache::release(uint64_t key, int64_t req) {
  auto r = by_req_.find(req);
  if (r == by_req_.end() || !r->second.erase(key)) return;
  if (r->second.empty()) by_req_.erase(r);
  Entry& e = entries_.at(key);
  e.refs.erase(req);
  if (e.refs.empty()) {
    e.lru = lru_.insert(lru_.end(), key);
    evictable_ += e.rows;
  }
}

void EncoderCache::erase(uint64_t key) {
  auto it = entries_.find(key);
  if (it == entries_.end()) return;
  Entry& e = it->second;
  for (int64_t req : e.refs) by_req_[req].erase(key);
  if (e.refs.empty()) {
    lru_.erase(e.lru);
    evictable_ -= e.rows;
  }
  used_ -= e.rows;
  entries_.erase(it);
}

void EncoderCache::check_invariants() const {
  int64_t used = 0, evictable = 0;
  for (const auto& [key, e] : entries_) {
    used += e.rows;
    if (e.refs.empty()) evictable += e.rows;
    for (int64_t req : e.refs)
      FC_CHECK(by_req_.count(req) && by_req_.at(req).count(key), "EncoderCache: ref of ", req,
               " to ", key, " not indexed");
  }
  FC_CHECK(used == used_ && evictable == evictable_ && used_ <= capacity_,
           "EncoderCache: accounting ", used_, "/", evictable_, " vs ", used, "/", evictable);
  FC_CHECK(lru_.size() == static_cast<size_t>(
                              std::count_if(entries_.begin(), entries_.end(),
                                            [](const auto& kv) { return kv.second.refs.empty(); })),
           "EncoderCache: LRU list out of step");
}

}  // namespace fc
