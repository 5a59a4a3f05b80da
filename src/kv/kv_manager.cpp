#include "kv/kv_manager.h"

#include <algorithm>

#include "core/error.h"

namespace fc::kv {

namespace {

// splitmix64's finalizer (Steele, Lea, Flood 2014): a bijection on 64 bits with full avalanche.
uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

}  // namespace

uint64_t hash_block_tokens(uint64_t parent, const int32_t* tokens, int n) {
  uint64_t h = mix64(parent ^ (0x9e3779b97f4a7c15ull * static_cast<uint64_t>(n + 1)));
  for (int i = 0; i < n; ++i) h = mix64(h ^ static_cast<uint32_t>(tokens[i]));
  return h;
}

KVManager::KVManager(ManagerConfig cfg) : cfg_(std::move(cfg)) {
  FC_CHECK(cfg_.block_size > 0, "KVManager: block_size must be positive");
  FC_CHECK(cfg_.max_rollback >= 0, "KVManager: max_rollback must be >= 0");
  for (const GroupSpec& g : cfg_.groups) pools_.emplace_back(g.num_blocks);
}

KVManager::Seq& KVManager::seq(SeqId id) {
  auto it = seqs_.find(id);
  FC_CHECK(it != seqs_.end(), "KVManager: unknown sequence ", id);
  return it->second;
}
const KVManager::Seq& KVManager::seq(SeqId id) const {
  auto it = seqs_.find(id);
  FC_CHECK(it != seqs_.end(), "KVManager: unknown sequence ", id);
  return it->second;
}

void KVManager::add_sequence(SeqId id) {
  FC_CHECK(!seqs_.count(id), "KVManager: sequence ", id, " already exists");
  Seq s;
  s.tables.resize(cfg_.groups.size());
  s.released.assign(cfg_.groups.size(), 0);
  seqs_.emplace(id, std::move(s));
}

void KVManager::remove_sequence(SeqId id) {
  Seq& s = seq(id);
  // Last block first: the evictable list then drops a prefix's tail before its head (a hit needs
  // the head), as vLLM's KVCacheManager.free does.
  for (size_t g = 0; g < s.tables.size(); ++g)
    for (auto it = s.tables[g].rbegin(); it != s.tables[g].rend(); ++it)
      if (*it >= 0) pools_[g].release(*it);
  seqs_.erase(id);
}

int KVManager::length(SeqId id) const {
  return seq(id).length;
}

int KVManager::keep_from(int length, int group) const {
  const int w = cfg_.groups[static_cast<size_t>(group)].sliding_window;
  if (w <= 0) return 0;
  // The next query is at position >= length - max_rollback and sees back to q - (w - 1).
  return std::max(0, length - cfg_.max_rollback - (w - 1));
}

int KVManager::blocks_needed(SeqId id, int new_len) const {
  const Seq& s = seq(id);
  const int want = (new_len + cfg_.block_size - 1) / cfg_.block_size;
  int need = 0;
  for (size_t g = 0; g < s.tables.size(); ++g)
    need = std::max(need, want - static_cast<int>(s.tables[g].size()));
  return need;
}

bool KVManager::grow(SeqId id, int new_len) {
  Seq& s = seq(id);
  FC_CHECK(new_len >= s.length, "KVManager::grow: new length ", new_len, " < current ", s.length);
  const int want = (new_len + cfg_.block_size - 1) / cfg_.block_size;
  for (size_t g = 0; g < s.tables.size(); ++g) {
    // Blocks released below count as free for this check.
    const int extra = want - static_cast<int>(s.tables[g].size());
    if (extra > pools_[g].num_free()) {
      // Only blocks this sequence holds alone return to the pool (others are shared through the
      // prefix cache).
      int releasable = 0;
      const int keep_blocks = keep_from(s.length, static_cast<int>(g)) / cfg_.block_size;
      for (int b = s.released[g]; b < keep_blocks; ++b)
        releasable += pools_[g].refcount(s.tables[g][static_cast<size_t>(b)]) == 1;
      if (extra > pools_[g].num_free() + releasable) return false;
    }
  }
  for (size_t g = 0; g < s.tables.size(); ++g) {
    const int keep_blocks = keep_from(s.length, static_cast<int>(g)) / cfg_.block_size;
    for (int b = s.released[g]; b < keep_blocks; ++b) {
      pools_[g].release(s.tables[g][static_cast<size_t>(b)]);
      s.tables[g][static_cast<size_t>(b)] = -1;
    }
    s.released[g] = std::max(s.released[g], keep_blocks);
    while (static_cast<int>(s.tables[g].size()) < want) {
      const int b = pools_[g].allocate();
      FC_CHECK(b >= 0, "KVManager::grow: pool ", g, " ran out after the capacity check");
      s.tables[g].push_back(b);
    }
  }
  s.length = new_len;
  return true;
}

void KVManager::truncate(SeqId id, int new_len) {
  Seq& s = seq(id);
  FC_CHECK(new_len >= 0 && new_len <= s.length, "KVManager::truncate: length ", new_len,
           " outside [0, ", s.length, "]");
  const int bs = cfg_.block_size;
  // The block holding new_len - 1 stays and gets its tail rewritten: it must not be shared.
  const size_t partial = static_cast<size_t>(new_len / bs);
  const bool has_partial = new_len % bs != 0;
  for (size_t g = 0; g < s.tables.size(); ++g) {
    const int w = cfg_.groups[g].sliding_window;
    const int first_kept = s.released[g] * bs;
    if (w > 0 && std::max(0, new_len - (w - 1)) < first_kept)
      fail("KVManager::truncate: sequence ", id, " cannot go back to ", new_len,
           " tokens: its sliding-window blocks before position ", first_kept,
           " were released (raise max_rollback)");
    if (has_partial && partial < s.tables[g].size()) {
      const int32_t b = s.tables[g][partial];
      if (b >= 0 && pools_[g].is_registered(b) && pools_[g].refcount(b) > 1)
        fail("KVManager::truncate: sequence ", id, " cannot go back to ", new_len,
             " tokens: block ", partial, " was committed and is shared through the prefix cache");
    }
  }
  for (size_t g = 0; g < s.tables.size(); ++g) {
    const size_t keep = static_cast<size_t>((new_len + bs - 1) / bs);
    while (s.tables[g].size() > keep) {
      const int32_t b = s.tables[g].back();
      if (b >= 0) pools_[g].release(b);  // a registered block keeps valid K/V: stays cached
      s.tables[g].pop_back();
    }
    if (has_partial && partial < s.tables[g].size() && s.tables[g][partial] >= 0)
      pools_[g].unregister(s.tables[g][partial]);
  }
  s.hashes.resize(std::min(s.hashes.size(), static_cast<size_t>(new_len / bs)));
  s.length = new_len;
}

const std::vector<int32_t>& KVManager::block_table(SeqId id, int group) const {
  return seq(id).tables.at(static_cast<size_t>(group));
}

// --- prefix caching ---

uint64_t KVManager::block_hash(uint64_t parent, const std::vector<int32_t>& tokens, size_t i,
                               const std::vector<uint64_t>* block_keys) const {
  uint64_t h = hash_block_tokens(parent, tokens.data() + i * static_cast<size_t>(cfg_.block_size),
                                 cfg_.block_size);
  if (block_keys && i < block_keys->size() && (*block_keys)[i] != 0)
    h = mix64(h ^ mix64((*block_keys)[i] + 0x632be59bd9b4e019ull));
  return h;
}

std::vector<uint64_t> KVManager::chain_hashes(const std::vector<int32_t>& tokens, int n_blocks,
                                              const std::vector<uint64_t>* block_keys) const {
  std::vector<uint64_t> h(static_cast<size_t>(n_blocks));
  uint64_t parent = kRootBlockHash;
  for (int i = 0; i < n_blocks; ++i) {
    parent = block_hash(parent, tokens, static_cast<size_t>(i), block_keys);
    h[static_cast<size_t>(i)] = parent;
  }
  return h;
}

int KVManager::find_cached_prefix(const std::vector<int32_t>& tokens, int max_len,
                                  const std::vector<uint64_t>* block_keys) const {
  const int bs = cfg_.block_size;
  if (tokens.size() < 2 || pools_.empty() || max_len < bs) return 0;
  // At most (len - 1) / B blocks: the last token is recomputed for its logits.
  int max_blocks = static_cast<int>(
      std::min((tokens.size() - 1) / static_cast<size_t>(bs), static_cast<size_t>(max_len / bs)));
  if (max_blocks == 0) return 0;
  const std::vector<uint64_t> hashes = chain_hashes(tokens, max_blocks, block_keys);
  // Full groups: the leading run of cached blocks bounds the hit.
  for (size_t g = 0; g < pools_.size(); ++g) {
    if (cfg_.groups[g].sliding_window > 0) continue;
    int k = 0;
    while (k < max_blocks && pools_[g].lookup(hashes[static_cast<size_t>(k)]) >= 0) ++k;
    max_blocks = k;
  }
  // Sliding groups: run[g][i] = cached blocks in a row ending at block i. A hit of k blocks needs
  // blocks [keep_from(kB) / B, k) cached. Scanning k downward finds the longest P every group
  // serves at once (the fixed point vLLM's HybridKVCacheCoordinator iterates to).
  std::vector<std::vector<int>> run;
  std::vector<size_t> sliding;
  for (size_t g = 0; g < pools_.size(); ++g) {
    if (cfg_.groups[g].sliding_window <= 0) continue;
    std::vector<int> r(static_cast<size_t>(max_blocks));
    for (int i = 0; i < max_blocks; ++i) {
      const bool hit = pools_[g].lookup(hashes[static_cast<size_t>(i)]) >= 0;
      r[static_cast<size_t>(i)] = hit ? (i > 0 ? r[static_cast<size_t>(i - 1)] : 0) + 1 : 0;
    }
    sliding.push_back(g);
    run.push_back(std::move(r));
  }
  for (int k = max_blocks; k > 0; --k) {
    bool ok = true;
    for (size_t j = 0; j < sliding.size() && ok; ++j) {
      const int need = k - keep_from(k * bs, static_cast<int>(sliding[j])) / bs;
      ok = need <= 0 || run[j][static_cast<size_t>(k - 1)] >= need;
    }
    if (ok) return k * bs;
  }
  return 0;
}

bool KVManager::can_admit(const std::vector<int32_t>& tokens, int prefix_len, int new_len,
                          const std::vector<uint64_t>* block_keys) const {
  const int bs = cfg_.block_size;
  FC_CHECK(prefix_len >= 0 && prefix_len % bs == 0 && prefix_len <= new_len &&
               static_cast<size_t>(prefix_len) <= tokens.size(),
           "KVManager::can_admit: bad prefix ", prefix_len, " for new length ", new_len);
  const int k = prefix_len / bs;
  const std::vector<uint64_t> hashes = chain_hashes(tokens, k, block_keys);
  const int fresh = (new_len + bs - 1) / bs - k;
  for (size_t g = 0; g < pools_.size(); ++g) {
    int revive = 0;  // evictable prefix blocks leave the free count when attached
    for (int i = keep_from(prefix_len, static_cast<int>(g)) / bs; i < k; ++i) {
      const int b = pools_[g].lookup(hashes[static_cast<size_t>(i)]);
      FC_CHECK(b >= 0, "KVManager::can_admit: block ", i, " of the prefix is not cached");
      revive += pools_[g].refcount(b) == 0;
    }
    if (revive + fresh > pools_[g].num_free()) return false;
  }
  return true;
}

void KVManager::attach_prefix(SeqId id, const std::vector<int32_t>& tokens, int prefix_len,
                              const std::vector<uint64_t>* block_keys) {
  Seq& s = seq(id);
  const int bs = cfg_.block_size;
  FC_CHECK(s.length == 0 && s.hashes.empty(), "KVManager::attach_prefix: sequence ", id,
           " is not fresh");
  FC_CHECK(prefix_len >= 0 && prefix_len % bs == 0 &&
               (prefix_len == 0 || static_cast<size_t>(prefix_len) < tokens.size()),
           "KVManager::attach_prefix: bad prefix length ", prefix_len, " for ", tokens.size(),
           " tokens");
  const int k = prefix_len / bs;
  std::vector<uint64_t> hashes = chain_hashes(tokens, k, block_keys);
  // Check every group before taking anything, so a failure changes nothing.
  for (size_t g = 0; g < pools_.size(); ++g)
    for (int i = keep_from(prefix_len, static_cast<int>(g)) / bs; i < k; ++i)
      FC_CHECK(pools_[g].lookup(hashes[static_cast<size_t>(i)]) >= 0,
               "KVManager::attach_prefix: block ", i, " of group ", g, " is not cached");
  for (size_t g = 0; g < pools_.size(); ++g) {
    const int first = keep_from(prefix_len, static_cast<int>(g)) / bs;
    std::vector<int32_t>& table = s.tables[g];
    table.assign(static_cast<size_t>(first), -1);
    for (int i = first; i < k; ++i)
      table.push_back(pools_[g].acquire_cached(hashes[static_cast<size_t>(i)]));
    s.released[g] = first;
  }
  s.hashes = std::move(hashes);
  s.length = prefix_len;
  stats_.query_tokens += static_cast<int64_t>(tokens.size());
  stats_.hit_tokens += prefix_len;
}

void KVManager::commit(SeqId id, const std::vector<int32_t>& tokens, int num_computed,
                       const std::vector<uint64_t>* block_keys) {
  Seq& s = seq(id);
  const int bs = cfg_.block_size;
  FC_CHECK(num_computed >= 0 && num_computed <= s.length &&
               static_cast<size_t>(num_computed) <= tokens.size(),
           "KVManager::commit: ", num_computed, " computed tokens for sequence ", id, " of length ",
           s.length, " with ", tokens.size(), " tokens");
  const size_t full = static_cast<size_t>(num_computed / bs);
  while (s.hashes.size() < full) {
    const size_t i = s.hashes.size();
    const uint64_t parent = i == 0 ? kRootBlockHash : s.hashes.back();
    const uint64_t h = block_hash(parent, tokens, i, block_keys);
    for (size_t g = 0; g < pools_.size(); ++g) {
      const int32_t b = s.tables[g][i];
      // -1: a sliding group released it before it was committed; a duplicate hash keeps the
      // block already cached.
      if (b >= 0) pools_[g].register_block(b, h);
    }
    s.hashes.push_back(h);
  }
}

void KVManager::check_invariants() const {
  const int bs = cfg_.block_size;
  std::vector<std::vector<int>> refs(pools_.size());
  for (size_t g = 0; g < pools_.size(); ++g) {
    pools_[g].check_invariants();
    refs[g].assign(static_cast<size_t>(pools_[g].num_blocks()), 0);
  }
  for (const auto& [id, s] : seqs_) {
    const size_t want = static_cast<size_t>((s.length + bs - 1) / bs);
    FC_CHECK(s.hashes.size() <= static_cast<size_t>(s.length / bs), "KVManager: sequence ", id,
             " has hashes past its full blocks");
    for (size_t g = 0; g < pools_.size(); ++g) {
      const std::vector<int32_t>& t = s.tables[g];
      const int w = cfg_.groups[g].sliding_window;
      FC_CHECK(t.size() == want, "KVManager: sequence ", id, " group ", g, " has ", t.size(),
               " blocks for length ", s.length);
      FC_CHECK(s.released[g] >= 0 && static_cast<size_t>(s.released[g]) <= t.size() &&
                   (w > 0 || s.released[g] == 0),
               "KVManager: sequence ", id, " group ", g, " released count ", s.released[g]);
      if (w > 0)
        FC_CHECK(s.released[g] * bs <= std::max(0, s.length - (w - 1)), "KVManager: sequence ", id,
                 " group ", g, " released positions its next query reads");
      for (size_t i = 0; i < t.size(); ++i) {
        const bool released = static_cast<int>(i) < s.released[g];
        FC_CHECK(released == (t[i] < 0), "KVManager: sequence ", id, " group ", g, " entry ", i,
                 " is ", t[i], released ? " but released" : " but live");
        if (t[i] < 0) continue;
        FC_CHECK(t[i] < pools_[g].num_blocks(), "KVManager: bad block id ", t[i]);
        ++refs[g][static_cast<size_t>(t[i])];
        // A registered block names the K/V of this sequence's prefix: the hash must agree, and
        // blocks not yet committed must not be registered (they will be written).
        if (i < s.hashes.size())
          FC_CHECK(!pools_[g].is_registered(t[i]) || pools_[g].hash_of(t[i]) == s.hashes[i],
                   "KVManager: sequence ", id, " group ", g, " block ", i, " hash mismatch");
        else
          FC_CHECK(!pools_[g].is_registered(t[i]), "KVManager: sequence ", id, " group ", g,
                   " uncommitted block ", i, " is registered");
      }
    }
  }
  for (size_t g = 0; g < pools_.size(); ++g)
    for (int b = 0; b < pools_[g].num_blocks(); ++b)
      FC_CHECK(pools_[g].refcount(b) == refs[g][static_cast<size_t>(b)], "KVManager: group ", g,
               " block ", b, " refcount ", pools_[g].refcount(b), " but ",
               refs[g][static_cast<size_t>(b)], " table references");
}

}  // namespace fc::kv
