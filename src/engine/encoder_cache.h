// Bookkeeping of the encoder-output cache (vLLM's EncoderCacheManager,
// vllm/v1/core/encoder_cache_manager.py): entries are keyed by a media item's identity (content
// hash or client uuid), sized in embedding rows, shared by every request that references them and
// evictable once none does; eviction happens only when space is needed, least recently used
// first. Pure bookkeeping (the engine holds the rows themselves); not thread-safe.
#pragma once

#include <cstdint>
#include <list>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace fc {

class EncoderCache {
 public:
  explicit EncoderCache(int64_t capacity_rows) : capacity_(capacity_rows) {}

  int64_t capacity() const { return capacity_; }
  int64_t used() const { return used_; }
  bool contains(uint64_t key) const { return entries_.count(key) != 0; }
  // Whether `rows` more rows fit now, counting unreferenced entries as free.
  bool can_allocate(int64_t rows) const { return capacity_ - used_ + evictable_ >= rows; }
  // Makes room (evicting unreferenced entries, oldest first) and records the entry; returns the
  // evicted keys. Requires can_allocate(rows) and !contains(key).
  std::vector<uint64_t> allocate(uint64_t key, int64_t rows);
  // Request `req` uses the entry (idempotent); a referenced entry is never evicted.
  void add_ref(uint64_t key, int64_t req);
  // Drops every reference `req` holds, or its reference to one entry (an item it consumed).
  void release(int64_t req);
  void release(uint64_t key, int64_t req);
  // Forgets an entry (its rows could not be produced); its references go too.
  void erase(uint64_t key);

  // Lookups of items a scheduled step needs: `hit` when the entry already existed.
  void count_query(bool hit) {
    ++queries_;
    hits_ += hit;
  }
  int64_t queries() const { return queries_; }
  int64_t hits() const { return hits_; }

  void check_invariants() const;  // tests

 private:
  struct Entry {
    int64_t rows = 0;
    std::unordered_set<int64_t> refs;
    std::list<uint64_t>::iterator lru;  // position in lru_ while unreferenced
  };
  int64_t capacity_ = 0, used_ = 0, evictable_ = 0;
  std::unordered_map<uint64_t, Entry> entries_;
  std::list<uint64_t> lru_;  // unreferenced entries, oldest first
  std::unordered_map<int64_t, std::unordered_set<uint64_t>> by_req_;
  int64_t queries_ = 0, hits_ = 0;
};

}  // namespace fc
