// Device memory of the paged KV cache: for every layer that owns K/V, one K and one V array of
// [num_blocks, block_size, num_kv_heads, head_dim] in `dtype` (F32, BF16 or F8_E4M3), indexed by
// the block ids of its group's block tables (kv_manager.h). KV-shared layers have no arrays; they
// read their source layer's.
#pragma once

#include <cstdint>
#include <vector>

#include "backend/backend.h"

namespace fc::kv {

struct GroupLayout {
  int sliding_window = 0;  // 0: full attention
  int num_kv_heads = 0;
  int head_dim = 0;
  std::vector<int> layers;  // layers owning K/V in this group
};

class KVStorage {
 public:
  // num_blocks[g] blocks of block_size tokens for every layer of group g.
  KVStorage(Backend& backend, std::vector<GroupLayout> groups, int block_size,
            std::vector<int> num_blocks, DType dtype = DType::kF32);
  ~KVStorage();
  KVStorage(const KVStorage&) = delete;
  KVStorage& operator=(const KVStorage&) = delete;

  const std::vector<GroupLayout>& groups() const { return groups_; }
  int block_size() const { return block_size_; }
  int num_blocks(int group) const { return num_blocks_[static_cast<size_t>(group)]; }
  int group_of(int layer) const;  // -1 if the layer owns no K/V
  void* k(int layer) const;
  void* v(int layer) const;
  DType dtype() const { return dtype_; }
  // Bytes per token of one group (all its layers, K and V) at `dtype`.
  static int64_t bytes_per_token(const GroupLayout& g, DType dtype = DType::kF32);
  int64_t total_bytes() const;

 private:
  Backend& backend_;
  std::vector<GroupLayout> groups_;
  int block_size_;
  std::vector<int> num_blocks_;
  std::vector<int> group_of_;  // [layer]
  DType dtype_;
  std::vector<void*> k_, v_;  // [layer]
};

}  // namespace fc::kv
