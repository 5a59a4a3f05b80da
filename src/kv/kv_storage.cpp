#include "kv/kv_storage.h"

#include <algorithm>

#include "core/error.h"

namespace fc::kv {

KVStorage::KVStorage(Backend& backend, std::vector<GroupLayout> groups, int block_size,
                     std::vector<int> num_blocks, DType dtype)
    : backend_(backend),
      groups_(std::move(groups)),
      block_size_(block_size),
      num_blocks_(std::move(num_blocks)),
      dtype_(dtype) {
  FC_CHECK(dtype_ == DType::kF32 || dtype_ == DType::kBF16 || dtype_ == DType::kF8_E4M3,
           "KVStorage: dtype ", dtype_name(dtype_), " is not supported (F32, BF16, F8_E4M3)");
  FC_CHECK(num_blocks_.size() == groups_.size(), "KVStorage: one block count per group");
  int max_layer = -1;
  for (const GroupLayout& g : groups_)
    for (int l : g.layers) max_layer = std::max(max_layer, l);
  group_of_.assign(static_cast<size_t>(max_layer + 1), -1);
  k_.assign(group_of_.size(), nullptr);
  v_.assign(group_of_.size(), nullptr);
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    const GroupLayout& g = groups_[gi];
    const size_t bytes = static_cast<size_t>(num_blocks_[gi]) * static_cast<size_t>(block_size_) *
                         static_cast<size_t>(g.num_kv_heads) * static_cast<size_t>(g.head_dim) *
                         static_cast<size_t>(dtype_bits(dtype_) / 8);
    for (int l : g.layers) {
      FC_CHECK(group_of_[static_cast<size_t>(l)] < 0, "KVStorage: layer ", l, " in two groups");
      group_of_[static_cast<size_t>(l)] = static_cast<int>(gi);
      k_[static_cast<size_t>(l)] = backend_.alloc(bytes);
      v_[static_cast<size_t>(l)] = backend_.alloc(bytes);
    }
  }
}

KVStorage::~KVStorage() {
  for (void* p : k_)
    if (p) backend_.free(p);
  for (void* p : v_)
    if (p) backend_.free(p);
}

int KVStorage::group_of(int layer) const {
  return layer >= 0 && layer < static_cast<int>(group_of_.size())
             ? group_of_[static_cast<size_t>(layer)]
             : -1;
}

void* KVStorage::k(int layer) const {
  FC_CHECK(group_of(layer) >= 0, "KVStorage: layer ", layer, " owns no KV cache");
  return k_[static_cast<size_t>(layer)];
}
void* KVStorage::v(int layer) const {
  FC_CHECK(group_of(layer) >= 0, "KVStorage: layer ", layer, " owns no KV cache");
  return v_[static_cast<size_t>(layer)];
}

int64_t KVStorage::bytes_per_token(const GroupLayout& g, DType dtype) {
  return int64_t{2} * g.num_kv_heads * g.head_dim * (dtype_bits(dtype) / 8) *
         static_cast<int64_t>(g.layers.size());
}

int64_t KVStorage::total_bytes() const {
  int64_t total = 0;
  for (size_t gi = 0; gi < groups_.size(); ++gi)
    total += bytes_per_token(groups_[gi], dtype_) * num_blocks_[gi] * block_size_;
  return total;
}

}  // namespace fc::kv
