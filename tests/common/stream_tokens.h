// Reads a request's stream to its end: the generated token ids, in order. A stream that stays
// silent for timeout_ms, or finishes with finish_reason "error", is a test failure. `last`, when
// given, receives the final event (finish reason, counts, cache hits).
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "engine/engine.h"

namespace fc::test {

inline std::vector<int32_t> stream_tokens(RequestStream& s, RequestEvent* last = nullptr,
                                          int timeout_ms = 60000) {
  std::vector<int32_t> out;
  for (;;) {
    auto ev = s.next(timeout_ms);
    if (!ev) {
      ADD_FAILURE() << "timeout";
      return out;
    }
    out.insert(out.end(), ev->tokens.begin(), ev->tokens.end());
    if (ev->finished) {
      EXPECT_NE(ev->finish_reason, "error") << ev->error;
      if (last) *last = *ev;
      return out;
    }
  }
}

}  // namespace fc::test
