// Engine stats are published after each step, so a reader may briefly see the step before the
// last event: wait (bounded, 5 s) until the engine is idle and every KV block is free again.
#pragma once

#include <chrono>
#include <thread>

#include "engine/engine.h"

namespace fc::test {

inline EngineStats idle_stats(const Engine& e) {
  EngineStats st = e.stats();
  for (int i = 0; i < 500 && (st.running || st.waiting || st.kv_blocks_free != st.kv_blocks_total);
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    st = e.stats();
  }
  return st;
}

}  // namespace fc::test
