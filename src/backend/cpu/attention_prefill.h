// Prefill attention on the CPU in query tiles (attention_prefill.cpp): the rows of one sequence
// in tiles of kAttnTileRows consecutive positions, all query heads of one KV head together, so
// every key and value row is read once per tile instead of once per query row and head.
#pragma once

#include <cstdint>
#include <vector>

#include "backend/backend.h"
#include "core/thread_pool.h"

namespace fc::cpu {

// Sequences with at least this many query rows in a step take the tiled path.
inline constexpr int kAttnTileRows = 4;

// Runs the sequences of `a` that have >= kAttnTileRows query rows, with the same math as
// attention_ref (scores summed in another order), on an F32 or BF16 cache where the CPU has
// AVX2 + FMA. done (resized to a.n_seqs): 1 for the sequences it ran, 0 for the others (all of
// them where it does not apply: another cache dtype or CPU).
void attention_prefill(ThreadPool& pool, const AttentionArgs& a, std::vector<uint8_t>& done);

}  // namespace fc::cpu
