#include "quantizer/calib.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <iterator>

#include "core/error.h"

namespace fc::quantizer {

namespace {

uint64_t splitmix(uint64_t& s) {
  uint64_t z = (s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

// Progress line on stderr: "what: i/n (ETA s)".
class Progress {
 public:
  Progress(const char* what, int64_t n, bool on) : what_(what), n_(n), on_(on) {}
  void step(int64_t done, int64_t units_done, int64_t units_total) {
    if (!on_) return;
    const double el = std::chrono::duration<double>(Clock::now() - t0_).count();
    const double eta = units_done > 0 ? el * static_cast<double>(units_total - units_done) /
                                            static_cast<double>(units_done)
                                      : 0.0;
    std::fprintf(stderr, "\r%s: %lld/%lld sequences, %lld tokens, %.1f s, ETA %.1f s   ", what_,
                 static_cast<long long>(done), static_cast<long long>(n_),
                 static_cast<long long>(units_done), el, eta);
    if (done == n_) std::fprintf(stderr, "\n");
  }

 private:
  using Clock = std::chrono::steady_clock;
  const char* what_;
  int64_t n_;
  bool on_;
  Clock::time_point t0_ = Clock::now();
};

// One prefill per sequence over a KV cache large enough for the longest sequence.
template <typename OnOutput>
void run_sequences(gemma4::Model& model, Backend& backend,
                   const std::vector<std::vector<int32_t>>& seqs, bool want_logits, bool progress,
                   const char* what, const std::function<void(kv::KVStorage&)>& on_storage,
                   OnOutput&& on_output) {
  const int B = 16;
  size_t max_len = 1;
  int64_t total = 0;
  for (const auto& s : seqs) {
    max_len = std::max(max_len, s.size());
    total += static_cast<int64_t>(s.size());
  }
  const int nb = static_cast<int>((max_len + B - 1) / B);
  const auto& layout = model.kv_layout();
  kv::KVStorage kv(backend, layout, B, std::vector<int>(layout.size(), nb), DType::kF32);
  if (on_storage) on_storage(kv);
  std::vector<int32_t> table(static_cast<size_t>(nb));
  for (int i = 0; i < nb; ++i) table[static_cast<size_t>(i)] = i;
  Progress prog(what, static_cast<int64_t>(seqs.size()), progress);
  int64_t done_tokens = 0;
  for (size_t i = 0; i < seqs.size(); ++i) {
    const auto& s = seqs[i];
    if (s.empty()) continue;
    gemma4::ForwardBatch batch;
    gemma4::SeqInput in;
    in.tokens = s.data();
    in.n = static_cast<int>(s.size());
    in.pos0 = 0;
    in.block_tables.assign(layout.size(), &table);
    if (want_logits)
      for (int r = 0; r < in.n; ++r) in.logit_rows.push_back(r);
    batch.seqs.push_back(std::move(in));
    gemma4::ForwardOutput out;
    model.forward(batch, kv, out);
    on_output(out);
    done_tokens += static_cast<int64_t>(s.size());
    prog.step(static_cast<int64_t>(i + 1), done_tokens, total);
  }
}

// Deterministic template sentences ("<subject> <verb> <object> <ending>."): a large, varied
// stream from one distribution, so calibration and held-out evaluation text can come from the
// same source with different seeds.
std::string generated_text(uint64_t seed, int sentences) {
  static const char* const subj[] = {
      "The teacher",   "My neighbour",  "A small robot",     "The old farmer", "Our team",
      "The scientist", "A young girl",  "The city council",  "His brother",    "The pilot",
      "Every student", "The chef",      "A tired traveller", "The river",      "Her grandmother",
      "The company",   "A curious cat", "The engineer",      "The orchestra",  "Nobody"};
  static const char* const verb[] = {"carefully opened",
                                     "quickly finished",
                                     "never forgot",
                                     "slowly painted",
                                     "proudly showed",
                                     "accidentally broke",
                                     "happily shared",
                                     "quietly repaired",
                                     "finally found",
                                     "often visits",
                                     "wrote about",
                                     "bought",
                                     "cleaned",
                                     "measured",
                                     "explained",
                                     "described",
                                     "counted",
                                     "watched",
                                     "moved",
                                     "planned"};
  static const char* const obj[] = {
      "the red door",     "a long letter",     "three apples",        "the broken bicycle",
      "an old map",       "the new bridge",    "a cup of coffee",     "the garden fence",
      "twelve books",     "the evening news",  "a difficult problem", "the kitchen table",
      "a wooden boat",    "the first chapter", "the train schedule",  "a warm blanket",
      "the museum guide", "seven paintings",   "the weather report",  "a bag of rice"};
  static const char* const end[] = {" before lunch",          " after the storm",
                                    " in the morning",        " on Friday",
                                    " last summer",           " with great care",
                                    " for the whole village", " without any help",
                                    " near the station",      ""};
  std::string t;
  uint64_t st = seed;
  auto pick = [&](size_t n) { return static_cast<size_t>(splitmix(st) % n); };
  for (int i = 0; i < sentences; ++i) {
    t += subj[pick(std::size(subj))];
    t += ' ';
    t += verb[pick(std::size(verb))];
    t += ' ';
    t += obj[pick(std::size(obj))];
    t += end[pick(std::size(end))];
    t += i % 7 == 6 ? "!\n" : ". ";
  }
  return t;
}

}  // namespace

void ActStats::add(const float* x, int64_t T, int64_t ldx, int64_t cap) {
  for (int64_t t = 0; t < T; ++t) {
    const float* row = x + t * ldx;
    for (int64_t c = 0; c < cols; ++c) {
      const float a = std::fabs(row[c]);
      ch_amax[static_cast<size_t>(c)] = std::max(ch_amax[static_cast<size_t>(c)], a);
      ch_abs_sum[static_cast<size_t>(c)] += a;
      amax = std::max(amax, a);
    }
    // Reservoir sampling (Algorithm R) with a per-module deterministic generator.
    int64_t slot = -1;
    if (sample_rows < cap) {
      slot = sample_rows++;
      sample.resize(static_cast<size_t>(sample_rows * cols));
    } else if (cap > 0) {
      const uint64_t j = splitmix(rng) % static_cast<uint64_t>(rows_seen + 1);
      if (j < static_cast<uint64_t>(cap)) slot = static_cast<int64_t>(j);
    }
    if (slot >= 0) std::copy(row, row + cols, sample.begin() + slot * cols);
    ++rows_seen;
  }
}

std::vector<float> ActStats::mean_abs() const {
  std::vector<float> m(static_cast<size_t>(cols), 0.0f);
  if (rows_seen == 0) return m;
  for (int64_t c = 0; c < cols; ++c)
    m[static_cast<size_t>(c)] =
        static_cast<float>(ch_abs_sum[static_cast<size_t>(c)] / static_cast<double>(rows_seen));
  return m;
}

ActStats& RecordingBackend::stats_for(const std::string& module, int64_t cols) {
  auto [it, inserted] = stats_.linear.try_emplace(module);
  ActStats& s = it->second;
  if (inserted) {
    s.cols = cols;
    s.ch_amax.assign(static_cast<size_t>(cols), 0.0f);
    s.ch_abs_sum.assign(static_cast<size_t>(cols), 0.0);
    s.rng = fnv1a(module);
  }
  FC_CHECK(s.cols == cols, "calibration: ", module, " seen with input widths ", s.cols, " and ",
           cols);
  return s;
}

void RecordingBackend::linear(const float* x, int64_t T, int64_t ldx, const Weight& w, float* y,
                              int64_t ldy, bool accumulate) {
  stats_for(module_of(w.name), w.cols).add(x, T, ldx, cap_);
  ForwardingBackend::linear(x, T, ldx, w, y, ldy, accumulate);
}

void RecordingBackend::kv_write(const float* k, int64_t ldk, const float* v, int64_t ldv, int64_t T,
                                int64_t row_elems, const int32_t* slots, void* k_cache,
                                void* v_cache, DType cache_dtype, float k_scale, float v_scale) {
  auto it = kv_layer_of.find(k_cache);
  if (it != kv_layer_of.end()) {
    float ka = 0.0f, va = 0.0f;
    for (int64_t t = 0; t < T; ++t) {
      if (slots[t] < 0) continue;
      for (int64_t i = 0; i < row_elems; ++i) {
        ka = std::max(ka, std::fabs(k[t * ldk + i]));
        va = std::max(va, std::fabs(v[t * ldv + i]));
      }
    }
    float& K = stats_.k_amax[it->second];
    float& V = stats_.v_amax[it->second];
    K = std::max(K, ka);
    V = std::max(V, va);
  }
  ForwardingBackend::kv_write(k, ldk, v, ldv, T, row_elems, slots, k_cache, v_cache, cache_dtype,
                              k_scale, v_scale);
}

void RecordingBackend::moe_experts(const float* x, int64_t ldx, int64_t T, const int32_t* idx,
                                   const float* weights, int k, const Weight* gate,
                                   const Weight* up, const Weight* down, int E, float* out,
                                   int64_t ldo) {
  const int64_t H = gate[0].cols, I = gate[0].rows;
  std::vector<float> xs, g, u, act;
  for (int e = 0; e < E; ++e) {
    std::vector<int64_t> rows;
    for (int64_t t = 0; t < T; ++t)
      for (int j = 0; j < k; ++j)
        if (idx[t * k + j] == e) {
          rows.push_back(t);
          break;
        }
    if (rows.empty()) continue;
    const int64_t n = static_cast<int64_t>(rows.size());
    xs.resize(static_cast<size_t>(n * H));
    for (int64_t r = 0; r < n; ++r)
      std::copy(x + rows[static_cast<size_t>(r)] * ldx, x + rows[static_cast<size_t>(r)] * ldx + H,
                xs.begin() + r * H);
    stats_for(expert_module(gate[0].name, e, "gate_proj"), H).add(xs.data(), n, H, cap_);
    stats_for(expert_module(gate[0].name, e, "up_proj"), H).add(xs.data(), n, H, cap_);
    g.resize(static_cast<size_t>(n * I));
    u.resize(static_cast<size_t>(n * I));
    act.resize(static_cast<size_t>(n * I));
    inner().linear(xs.data(), n, H, gate[e], g.data(), I, false);
    inner().linear(xs.data(), n, H, up[e], u.data(), I, false);
    inner().gelu_mul(g.data(), I, u.data(), I, n, I, act.data(), I);
    stats_for(expert_module(gate[0].name, e, "down_proj"), I).add(act.data(), n, I, cap_);
  }
  ForwardingBackend::moe_experts(x, ldx, T, idx, weights, k, gate, up, down, E, out, ldo);
}

void calibrate(gemma4::Model& model, Backend& backend,
               const std::vector<std::vector<int32_t>>& seqs, RecordingBackend* rec,
               const CalibOptions& opt) {
  auto map_kv = [&](kv::KVStorage& kv) {
    if (!rec) return;
    for (const auto& g : model.kv_layout())
      for (int l : g.layers) rec->kv_layer_of[kv.k(l)] = l;
  };
  run_sequences(model, backend, seqs, false, opt.progress, "calibrate", map_kv,
                [](const gemma4::ForwardOutput&) {});
}

std::vector<float> all_logits(gemma4::Model& model, Backend& backend,
                              const std::vector<std::vector<int32_t>>& seqs, bool progress,
                              const char* what) {
  std::vector<float> logits;
  run_sequences(model, backend, seqs, true, progress, what, nullptr,
                [&](const gemma4::ForwardOutput& o) {
                  logits.insert(logits.end(), o.logits.begin(), o.logits.end());
                });
  return logits;
}

std::vector<std::vector<int32_t>> chunk_tokens(const std::vector<int32_t>& ids, int seq_len,
                                               int64_t max_tokens, int32_t bos) {
  FC_CHECK(seq_len >= 2, "sequence length must be >= 2");
  std::vector<std::vector<int32_t>> out;
  int64_t used = 0;
  size_t i = 0;
  while (i < ids.size() && used < max_tokens) {
    const int64_t lead = bos >= 0 ? 1 : 0;
    const int64_t room = std::min<int64_t>(seq_len, max_tokens - used) - lead;
    if (room <= 0) break;
    const size_t take = std::min(ids.size() - i, static_cast<size_t>(room));
    // Sized up front (GCC 12 misreads an insert after a push_back as an overflow).
    std::vector<int32_t> s(static_cast<size_t>(lead) + take);
    if (bos >= 0) s[0] = bos;
    std::copy_n(ids.begin() + static_cast<std::ptrdiff_t>(i), take, s.begin() + lead);
    i += take;
    used += static_cast<int64_t>(s.size());
    out.push_back(std::move(s));
  }
  return out;
}

const std::string& builtin_calib_text() {
  static const std::string t =
      "The quick brown fox jumps over the lazy dog. "
      "A journey of a thousand miles begins with a single step. "
      "Water boils at one hundred degrees Celsius at sea level. "
      "The capital of France is Paris, and the capital of Japan is Tokyo. "
      "She opened the window and the cold morning air filled the room. "
      "Photosynthesis converts light energy into chemical energy stored in sugar. "
      "To make a cup of tea, boil water, add the leaves and wait three minutes. "
      "The committee will meet on Tuesday to discuss the annual budget. "
      "Prime numbers such as 2, 3, 5, 7 and 11 have exactly two divisors. "
      "He wrote a short program that prints the numbers from one to ten. "
      "Rivers carry sediment from the mountains down to the sea. "
      "The library is open from nine in the morning until eight at night. "
      "Good morning! How are you today? I am fine, thank you. "
      "def add(a, b):\n    return a + b\n\nprint(add(2, 3))\n"
      "The train to Berlin leaves at 7:45 from platform four. "
      "Mix the flour, sugar and eggs, then bake for twenty-five minutes. "
      "Light travels about three hundred thousand kilometres per second. "
      "Please summarise the following article in three sentences. "
      "The old lighthouse stood on the cliff for more than two centuries. "
      "Question: What is 12 times 12? Answer: 144. "
      "Birds migrate south in autumn to find food and warmer weather. "
      "The market opened higher after the central bank held interest rates steady. "
      "Count to five: 1, 2, 3, 4, 5. "
      "Translate 'thank you' into Spanish: gracias. "
      "In 1969 the first humans walked on the Moon. "
      "The museum's new exhibition features paintings from the nineteenth century. "
      "Always back up your files before installing a major update. "
      "What is the capital of Italy? Rome is the capital of Italy. "
      "The children played football in the park until it got dark. "
      "An apple a day keeps the doctor away, or so the saying goes. " +
      generated_text(1, 400);
  return t;
}

const std::string& builtin_eval_text() {
  static const std::string t =
      "Hello! I am a small language model. "
      "The weather today is sunny with a light breeze from the west. "
      "What is the capital of Germany? Berlin is the capital of Germany. "
      "Two plus two is four, and three plus three is six. "
      "The cat slept on the warm windowsill all afternoon. "
      "Scientists measure temperature in kelvin, Celsius or Fahrenheit. "
      "for i in range(3):\n    print(i)\n"
      "The bakery on the corner sells fresh bread every morning. "
      "Mountains are formed when tectonic plates collide over millions of years. "
      "Please write a short poem about the sea. "
      "The meeting was moved to Thursday because of the holiday. "
      "Count to three: 1, 2, 3. "
      "A good night's sleep helps the brain store new memories. "
      "The orchestra played a symphony by Beethoven. "
      "Electric cars use batteries instead of petrol engines. " +
      generated_text(2, 160);
  return t;
}

}  // namespace fc::quantizer
