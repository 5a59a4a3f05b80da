// The Responses store's bookkeeping: LRU order, entry cap, byte budget, TTL (fake clock).
#include <gtest/gtest.h>

#include "server/responses_store.h"

namespace fc {
namespace {

std::shared_ptr<ResponseRecord> rec(const std::string& text) {
  auto r = std::make_shared<ResponseRecord>();
  r->response = {{"text", text}};
  return r;
}

struct FakeClock {
  int64_t now = 1000;
  ResponsesStore::Clock fn() {
    return [this] { return now; };
  }
};

TEST(ResponsesStore, EntryCapEvictsLeastRecentlyUsed) {
  FakeClock clk;
  ResponsesStore s({3, 1 << 20, 0}, clk.fn());
  for (const char* id : {"a", "b", "c"}) ASSERT_TRUE(s.put(id, rec(id), 10));
  ASSERT_NE(s.get("a"), nullptr);  // a is now the most recent; b the least
  ASSERT_TRUE(s.put("d", rec("d"), 10));
  EXPECT_EQ(s.get("b"), nullptr);
  EXPECT_NE(s.get("a"), nullptr);
  EXPECT_NE(s.get("c"), nullptr);
  EXPECT_NE(s.get("d"), nullptr);
  EXPECT_EQ(s.get("d")->response["text"], "d");
  const ResponsesStoreStats st = s.stats();
  EXPECT_EQ(st.entries, 3u);
  EXPECT_EQ(st.bytes, 30u);
  EXPECT_EQ(st.evicted, 1u);
}

TEST(ResponsesStore, ThousandOverTheCapKeepsTheNewest) {
  FakeClock clk;
  ResponsesStore s({100, 1 << 30, 0}, clk.fn());
  for (int i = 0; i < 1000; ++i) s.put("r" + std::to_string(i), rec("x"), 50);
  for (int i = 0; i < 900; ++i) EXPECT_EQ(s.get("r" + std::to_string(i)), nullptr) << i;
  for (int i = 900; i < 1000; ++i) EXPECT_NE(s.get("r" + std::to_string(i)), nullptr) << i;
  EXPECT_EQ(s.stats().entries, 100u);
  EXPECT_EQ(s.stats().bytes, 5000u);
  EXPECT_EQ(s.stats().evicted, 900u);
}

TEST(ResponsesStore, ByteBudgetEvictsAndRejectsOversized) {
  FakeClock clk;
  ResponsesStore s({100, 100, 0}, clk.fn());
  ASSERT_TRUE(s.put("a", rec("a"), 40));
  ASSERT_TRUE(s.put("b", rec("b"), 40));
  ASSERT_TRUE(s.put("c", rec("c"), 40));  // 120 > 100: a goes
  EXPECT_EQ(s.get("a"), nullptr);
  EXPECT_EQ(s.stats().bytes, 80u);
  EXPECT_FALSE(s.put("huge", rec("h"), 101));  // larger than the whole budget
  EXPECT_EQ(s.get("huge"), nullptr);
  EXPECT_EQ(s.stats().rejected, 1u);
  EXPECT_NE(s.get("b"), nullptr);  // nothing else was evicted for it
  s.resize("b", 70);               // grew: c (least recent now) is evicted
  EXPECT_EQ(s.get("c"), nullptr);
  EXPECT_EQ(s.stats().bytes, 70u);
}

TEST(ResponsesStore, TtlExpiresByAgeNotUse) {
  FakeClock clk;
  ResponsesStore s({10, 1 << 20, 1000}, clk.fn());
  s.put("old", rec("o"), 1);
  clk.now += 600;
  s.put("new", rec("n"), 1);
  clk.now += 300;
  EXPECT_NE(s.get("old"), nullptr);  // 900 ms old
  clk.now += 100;
  EXPECT_EQ(s.get("old"), nullptr);  // 1000 ms: expired although just used
  EXPECT_NE(s.get("new"), nullptr);
  clk.now += 1000;
  s.put("x", rec("x"), 1);  // a put sweeps expired entries
  EXPECT_EQ(s.stats().entries, 1u);
  EXPECT_EQ(s.stats().expired, 2u);
}

TEST(ResponsesStore, EraseReplaceAndDisabled) {
  ResponsesStore s({10, 1000, 0});
  s.put("a", rec("1"), 10);
  s.put("a", rec("2"), 20);  // replaced, accounted once
  EXPECT_EQ(s.stats().entries, 1u);
  EXPECT_EQ(s.stats().bytes, 20u);
  EXPECT_EQ(s.get("a")->response["text"], "2");
  EXPECT_TRUE(s.erase("a"));
  EXPECT_FALSE(s.erase("a"));
  EXPECT_EQ(s.stats().bytes, 0u);
  ResponsesStore off({0, 1000, 0});
  EXPECT_FALSE(off.enabled());
  EXPECT_FALSE(off.put("a", rec("1"), 1));
  EXPECT_EQ(off.get("a"), nullptr);
}

TEST(ResponsesStore, RecordBytesCountsTexts) {
  ResponseRecord r;
  r.response = {{"k", std::string(1000, 'x')}};
  const size_t base = record_bytes(r);
  EXPECT_GT(base, 1000u);
  r.events.push_back(std::string(500, 'e'));
  EXPECT_EQ(record_bytes(r), base + 500);
}

}  // namespace
}  // namespace fc
