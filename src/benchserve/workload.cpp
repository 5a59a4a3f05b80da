#include "benchserve/workload.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "core/error.h"
#include "core/json_limits.h"

namespace fc::benchserve {

namespace {

// Short, frequent English words: each is a single token (with its leading space) in large BPE
// vocabularies, so word count tracks token count.
constexpr const char* kWords[] = {
    "the",   "of",     "and",     "to",      "in",     "is",     "that",   "for",     "it",
    "as",    "was",    "with",    "be",      "by",     "on",     "not",    "he",      "this",
    "are",   "or",     "his",     "from",    "at",     "which",  "but",    "have",    "an",
    "had",   "they",   "you",     "were",    "their",  "one",    "all",    "we",      "can",
    "her",   "has",    "there",   "been",    "if",     "more",   "when",   "will",    "would",
    "who",   "so",     "no",      "she",     "other",  "its",    "may",    "these",   "what",
    "them",  "than",   "some",    "him",     "time",   "into",   "only",   "do",      "two",
    "first", "any",    "new",     "like",    "then",   "could",  "our",    "my",      "also",
    "over",  "about",  "after",   "most",    "made",   "should", "people", "such",    "many",
    "very",  "before", "must",    "through", "years",  "where",  "much",   "your",    "way",
    "well",  "down",   "because", "each",    "just",   "those",  "how",    "work",    "good",
    "long",  "day",    "life",    "world",   "same",   "state",  "great",  "water",   "house",
    "under", "never",  "place",   "back",    "still",  "found",  "again",  "number",  "part",
    "small", "large",  "right",   "old",     "every",  "group",  "high",   "between", "home",
    "city",  "school", "name",    "night",   "hand",   "light",  "power",  "market",  "family",
    "point", "order",  "line",    "end",     "story",  "paper",  "music",  "river",   "table",
    "field", "money",  "book",    "road",    "tree",   "open",   "green",  "blue",    "black",
    "white", "red",    "young",   "early",   "short",  "ready",  "clear",  "fast",    "slow",
    "north", "south",  "east",    "west",    "car",    "door",   "room",   "game",    "team",
    "war",   "land",   "sea",     "air",     "fire",   "friend", "child",  "woman",   "man",
    "week",  "month",  "year",    "hour",    "minute", "letter", "word",   "voice",   "heart",
    "body",  "mind",   "idea",    "plan",    "rule",   "law",    "test",   "data",    "model",
    "value", "case",   "fact",    "reason",  "result", "change", "form",   "level",   "price",
    "cost",  "rate",   "sound",   "color",   "wind",   "stone",  "glass",  "bread",   "milk",
    "horse", "bird",   "fish",    "dog",     "cat",    "apple",  "garden", "summer",  "winter",
};
constexpr size_t kNumWords = sizeof(kWords) / sizeof(kWords[0]);

// Uniform integer in [lo, hi] from a 64-bit draw (modulo bias is irrelevant at these ranges and
// keeps the sequence identical across standard libraries).
int64_t uniform_int(std::mt19937_64& rng, int64_t lo, int64_t hi) {
  if (hi <= lo) return lo;
  return lo + static_cast<int64_t>(rng() % static_cast<uint64_t>(hi - lo + 1));
}

// Uniform double in [0, 1) with 53 random bits.
double uniform01(std::mt19937_64& rng) {
  return static_cast<double>(rng() >> 11) * (1.0 / 9007199254740992.0);
}

}  // namespace

LengthRange length_range(int64_t len, double range_ratio, int64_t min_lo) {
  FC_CHECK(range_ratio >= 0.0 && range_ratio < 1.0, "--random-range-ratio must be in [0, 1), got ",
           range_ratio);
  LengthRange r;
  r.lo = std::max<int64_t>(min_lo, static_cast<int64_t>(std::floor(len * (1.0 - range_ratio))));
  r.hi = std::max<int64_t>(min_lo, static_cast<int64_t>(std::ceil(len * (1.0 + range_ratio))));
  return r;
}

std::vector<WorkItem> random_workload(int n, int64_t input_len, int64_t output_len,
                                      double range_ratio, uint64_t seed) {
  FC_CHECK(input_len >= 1, "--random-input-len must be at least 1");
  FC_CHECK(output_len >= 1, "--random-output-len must be at least 1");
  const LengthRange in = length_range(input_len, range_ratio, 1);
  const LengthRange out = length_range(output_len, range_ratio, 1);
  std::mt19937_64 rng(seed);
  std::vector<WorkItem> items(static_cast<size_t>(n));
  // Lengths first, then text, so the lengths for a seed do not depend on the word list.
  for (WorkItem& w : items) w.est_prompt_tokens = uniform_int(rng, in.lo, in.hi);
  for (WorkItem& w : items) w.max_tokens = uniform_int(rng, out.lo, out.hi);
  for (WorkItem& w : items) {
    std::string& p = w.prompt;
    p.reserve(static_cast<size_t>(w.est_prompt_tokens) * 6);
    for (int64_t k = 0; k < w.est_prompt_tokens; ++k) {
      if (k) p.push_back(' ');
      p += kWords[rng() % kNumWords];
    }
  }
  return items;
}

int64_t count_words(const std::string& s) {
  int64_t n = 0;
  bool in_word = false;
  for (unsigned char c : s) {
    const bool space = std::isspace(c) != 0;
    if (!space && !in_word) ++n;
    in_word = !space;
  }
  return n;
}

std::vector<WorkItem> file_workload(const std::string& path, int n, int64_t output_len) {
  std::ifstream f(path);
  FC_CHECK(f.good(), "--dataset-path: cannot open ", path);
  std::vector<WorkItem> found;
  std::string line;
  int line_no = 0;
  int mode = 0;  // 0 undecided, 1 JSONL, 2 plain text
  while (std::getline(f, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    if (mode == 0) {
      nlohmann::json j;
      try {
        j = parse_json(line);
      } catch (const JsonError&) {
      }
      mode = j.is_object() ? 1 : 2;
    }
    WorkItem w;
    w.max_tokens = output_len;
    if (mode == 2) {
      w.prompt = line;
    } else {
      const nlohmann::json j = parse_json(line, str_cat(path, ":", line_no));
      FC_CHECK(j.is_object(), path, ":", line_no,
               ": not a JSON object (the file's first line made it JSONL)");
      auto p = j.find("prompt");
      FC_CHECK(p != j.end() && p->is_string(), path, ":", line_no, ": no string \"prompt\"");
      w.prompt = p->get<std::string>();
      for (const char* key : {"output_len", "max_tokens"}) {
        auto o = j.find(key);
        if (o == j.end()) continue;
        FC_CHECK(o->is_number_integer() && o->get<int64_t>() >= 1, path, ":", line_no, ": \"", key,
                 "\" must be a positive integer");
        w.max_tokens = o->get<int64_t>();
      }
    }
    w.est_prompt_tokens = count_words(w.prompt);
    found.push_back(std::move(w));
  }
  FC_CHECK(!found.empty(), "--dataset-path: ", path, " has no prompts");
  std::vector<WorkItem> items;
  items.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) items.push_back(found[static_cast<size_t>(i) % found.size()]);
  return items;
}

std::vector<double> arrival_times(int n, double rate, double burstiness, uint64_t seed) {
  FC_CHECK(rate > 0, "--request-rate must be positive (or inf), got ", rate);
  FC_CHECK(burstiness > 0, "--burstiness must be positive, got ", burstiness);
  std::vector<double> t(static_cast<size_t>(n), 0.0);
  if (n == 0 || std::isinf(rate)) return t;
  std::mt19937_64 rng(seed);
  std::gamma_distribution<double> gamma(burstiness, 1.0 / (rate * burstiness));
  double acc = 0;
  for (double& x : t) {
    double gap;
    if (burstiness == 1.0) {
      gap = -std::log1p(-uniform01(rng)) / rate;  // exponential by inversion
    } else {
      gap = gamma(rng);
    }
    acc += gap;
    x = acc;
  }
  if (acc > 0) {
    const double scale = (static_cast<double>(n) / rate) / acc;
    for (double& x : t) x *= scale;
  }
  return t;
}

}  // namespace fc::benchserve
