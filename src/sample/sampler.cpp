// Sampling pipeline (order and sources documented in sampler.h). The row is copied once into the
// thread's scratch and processed there in place; the caller's logits stay untouched so "raw"
// logprobs can be read from them afterwards.
#include "sample/sampler.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "core/error.h"
#include "core/thread_pool.h"
#include "sample/sample_ops.h"

namespace fc {

namespace ops = sample_ops;

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
// After min_p / top-k, when at most this many tokens survive, top-p and the draw run on the
// list of survivors instead of the whole row.
constexpr size_t kSparseMax = 4096;

uint64_t splitmix64(uint64_t& s) {
  s += 0x9E3779B97F4A7C15ull;
  uint64_t z = s;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t rotl(uint64_t x, int k) {
  return (x << k) | (x >> (64 - k));
}

uint64_t seed_from_random_device() {
  std::random_device rd;
  return (static_cast<uint64_t>(rd()) << 32) ^ static_cast<uint64_t>(rd());
}

}  // namespace

void validate_sampling_params(const SamplingParams& p) {
  // Ranges and messages follow vllm/sampling_params.py SamplingParams._verify_args.
  if (!(p.presence_penalty >= -2.0f && p.presence_penalty <= 2.0f))
    fail("presence_penalty must be in [-2, 2], got ", p.presence_penalty, ".");
  if (!(p.frequency_penalty >= -2.0f && p.frequency_penalty <= 2.0f))
    fail("frequency_penalty must be in [-2, 2], got ", p.frequency_penalty, ".");
  if (!std::isfinite(p.repetition_penalty))
    fail("repetition_penalty must be a finite number, got ", p.repetition_penalty, ".");
  if (!(p.repetition_penalty > 0.0f))
    fail("repetition_penalty must be greater than zero, got ", p.repetition_penalty, ".");
  if (!std::isfinite(p.temperature))
    fail("temperature must be a finite number, got ", p.temperature, ".");
  if (p.temperature < 0.0f) fail("temperature must be non-negative, got ", p.temperature, ".");
  if (p.temperature > 2.0f) fail("temperature must be in [0, 2], got ", p.temperature, ".");
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) fail("top_p must be in (0, 1], got ", p.top_p, ".");
  if (p.top_k < -1) fail("top_k must be 0 (disable), or at least 1, got ", p.top_k, ".");
  if (!(p.min_p >= 0.0f && p.min_p <= 1.0f)) fail("min_p must be in [0, 1], got ", p.min_p, ".");
  if (p.min_tokens < 0)
    fail("min_tokens must be greater than or equal to 0, got ", p.min_tokens, ".");
  for (const auto& [t, b] : p.logit_bias)
    if (!std::isfinite(b)) fail("logit_bias for token ", t, " must be a finite number.");
}

// ---- Rng ----

Rng::Rng(uint64_t seed) {
  uint64_t sm = seed;
  for (uint64_t& w : s_) w = splitmix64(sm);
}

uint64_t Rng::next_u64() {
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

double Rng::next_double() {
  return static_cast<double>(next_u64() >> 11) * 0x1.0p-53;
}

// ---- SamplerState ----

SamplerState::SamplerState(const SamplingParams& params, std::span<const int32_t> prompt_tokens,
                           int32_t vocab_size)
    : params_(params),
      vocab_size_(vocab_size),
      seed_(params.seed ? *params.seed : seed_from_random_device()),
      rng_(seed_) {
  validate_sampling_params(params_);
  FC_CHECK(vocab_size_ > 0, "SamplerState: vocab_size must be positive, got ", vocab_size_);
  track_repetition_ = params_.repetition_penalty != 1.0f;
  track_counts_ = params_.presence_penalty != 0.0f || params_.frequency_penalty != 0.0f;
  for (size_t i = 0; i < prompt_tokens.size(); ++i) {
    const int32_t t = prompt_tokens[i];
    FC_CHECK(t >= 0 && t < vocab_size_, "SamplerState: prompt token ", i, " has id ", t,
             ", outside the vocabulary [0, ", vocab_size_, ")");
  }
  if (track_repetition_) {
    rep_seen_.assign((static_cast<size_t>(vocab_size_) + 63) / 64, 0);
    for (int32_t t : prompt_tokens) add_repetition_token(t);
  }
  auto check_id = [&](int32_t t, const char* what) {
    FC_CHECK(t >= 0 && t < vocab_size_, what, " contains token id ", t,
             ", outside the vocabulary [0, ", vocab_size_, ")");
  };
  for (int32_t t : params_.allowed_token_ids) check_id(t, "allowed_token_ids");
  for (const auto& [t, b] : params_.logit_bias) check_id(t, "logit_bias");
  for (const auto& w : params_.bad_words_ids) {
    FC_CHECK(!w.empty(), "bad_words: a word has no tokens");
    for (int32_t t : w) check_id(t, "bad_words");
  }
  if (params_.make_constraint) constraint_ = params_.make_constraint();
  if (!params_.allowed_token_ids.empty()) {
    allowed_.assign((static_cast<size_t>(vocab_size_) + 63) / 64, 0);
    for (int32_t t : params_.allowed_token_ids)
      allowed_[static_cast<size_t>(t) >> 6] |= uint64_t{1} << (t & 63);
  }
}

void SamplerState::apply_processors(std::span<float> logits) const {
  if (constraint_) constraint_->mask(logits);
  if (!allowed_.empty())
    for (size_t i = 0; i < logits.size(); ++i)
      if (!(allowed_[i >> 6] >> (i & 63) & 1)) logits[i] = -std::numeric_limits<float>::infinity();
  for (const auto& [t, b] : params_.logit_bias) logits[static_cast<size_t>(t)] += b;
  if (num_generated_ < params_.min_tokens)
    for (int32_t t : params_.min_tokens_stop_ids)
      if (t >= 0 && t < vocab_size_)
        logits[static_cast<size_t>(t)] = -std::numeric_limits<float>::infinity();
  for (const std::vector<int32_t>& w : params_.bad_words_ids) {
    const size_t pre = w.size() - 1;  // tokens that must already end the output
    if (pre > generated_.size() ||
        !std::equal(w.begin(), w.begin() + static_cast<std::ptrdiff_t>(pre),
                    generated_.end() - static_cast<std::ptrdiff_t>(pre)))
      continue;
    logits[static_cast<size_t>(w.back())] = -std::numeric_limits<float>::infinity();
  }
}

void SamplerState::apply_constraint(std::span<float> logits) const {
  if (constraint_) constraint_->mask(logits);
}

void SamplerState::add_repetition_token(int32_t token) {
  uint64_t& word = rep_seen_[static_cast<size_t>(token) >> 6];
  const uint64_t bit = uint64_t{1} << (token & 63);
  if (word & bit) return;
  word |= bit;
  rep_ids_.push_back(token);
}

void SamplerState::accept(int32_t token) {
  FC_CHECK(token >= 0 && token < vocab_size_, "SamplerState::accept: token id ", token,
           " outside the vocabulary [0, ", vocab_size_, ")");
  ++num_generated_;
  if (constraint_) constraint_->accept(token);
  if (!params_.bad_words_ids.empty()) generated_.push_back(token);
  if (track_repetition_) add_repetition_token(token);
  if (track_counts_) {
    auto [it, inserted] = out_slot_.try_emplace(token, static_cast<int32_t>(out_ids_.size()));
    if (inserted) {
      out_ids_.push_back(token);
      out_counts_.push_back(0);
    }
    ++out_counts_[static_cast<size_t>(it->second)];
  }
}

int32_t SamplerState::generated_count(int32_t token) const {
  auto it = out_slot_.find(token);
  return it == out_slot_.end() ? 0 : out_counts_[static_cast<size_t>(it->second)];
}

void SamplerState::apply_penalties(std::span<float> logits) const {
  FC_CHECK(logits.size() == static_cast<size_t>(vocab_size_), "apply_penalties: logits have ",
           logits.size(), " entries, vocabulary is ", vocab_size_);
  // vllm/model_executor/layers/utils.py apply_penalties: repetition on prompt ∪ output first,
  // then `logits -= frequency * counts`, then `logits -= presence * (counts > 0)`.
  if (track_repetition_) {
    const float r = params_.repetition_penalty;
    for (int32_t id : rep_ids_) {
      float& v = logits[static_cast<size_t>(id)];
      v = v > 0.0f ? v / r : v * r;
    }
  }
  if (track_counts_) {
    const float f = params_.frequency_penalty;
    const float pres = params_.presence_penalty;
    for (size_t j = 0; j < out_ids_.size(); ++j) {
      float& v = logits[static_cast<size_t>(out_ids_[j])];
      v -= f * static_cast<float>(out_counts_[j]);
      v -= pres;
    }
  }
}

// ---- Pipeline ----

struct SamplerImpl {
  static float* row(SamplerScratch& sc, int64_t n) {
    if (sc.x_.size() < static_cast<size_t>(n)) sc.x_.resize(static_cast<size_t>(n));
    sc.n_ = n;
    return sc.x_.data();
  }

  static void top_k(float* x, int64_t n, int64_t k, SamplerScratch& sc) {
    const float t = ops::kth_largest(x, n, k, sc.heap_, sc.count_);
    ops::row_mask_below(x, n, t);
  }

  static void top_p(float* x, int64_t n, float m, double p, SamplerScratch& sc) {
    ops::top_p_dense(x, n, m, p, sc.mass_);
  }

  // Collects the finite entries of x in ascending id order into sc.cand_; false (list
  // abandoned) when there are more than kSparseMax.
  static bool collect_finite(const float* x, int64_t n, SamplerScratch& sc) {
    sc.cand_.clear();
    int64_t i = 0;
    for (; i + ops::kLanes <= n; i += ops::kLanes) {
      if (!ops::any_greater(x + i, kNegInf)) continue;
      for (int j = 0; j < ops::kLanes; ++j) {
        if (x[i + j] > kNegInf) sc.cand_.push_back(static_cast<int32_t>(i + j));
      }
      if (sc.cand_.size() > kSparseMax) return false;
    }
    for (; i < n; ++i) {
      if (x[i] > kNegInf) sc.cand_.push_back(static_cast<int32_t>(i));
    }
    return sc.cand_.size() <= kSparseMax;
  }

  // Top-p over the candidate list (same rule as ops::top_p_dense): sort by (value desc, id asc),
  // keep while the weight ahead is < p * S. Masks x and drops the losers from sc.cand_.
  static void top_p_sparse(float* x, float m, double p, SamplerScratch& sc) {
    sc.order_ = sc.cand_;
    std::sort(sc.order_.begin(), sc.order_.end(),
              [x](int32_t a, int32_t b) { return x[a] > x[b] || (x[a] == x[b] && a < b); });
    double total = 0.0;
    for (int32_t id : sc.order_) total += ops::exp_nonpos(x[id] - m);
    const double target = p * total;
    double ahead = 0.0;
    for (int32_t id : sc.order_) {
      const double w = ops::exp_nonpos(x[id] - m);
      if (!(ahead < target)) x[id] = kNegInf;
      ahead += w;
    }
    std::erase_if(sc.cand_, [x](int32_t id) { return x[id] == kNegInf; });
  }

  // Inverse CDF over the candidate list in ascending id order (same rule as ops::sample_dense).
  static int64_t sample_sparse(const float* x, float m, double u, const SamplerScratch& sc,
                               double* total) {
    double s = 0.0;
    for (int32_t id : sc.cand_) s += ops::exp_nonpos(x[id] - m);
    *total = s;
    if (!(s > 0.0)) return -1;
    const double target = u * s;
    double cum = 0.0;
    int64_t last_positive = -1;
    for (int32_t id : sc.cand_) {
      const float w = ops::exp_nonpos(x[id] - m);
      if (!(w > 0.0f)) continue;
      last_positive = id;
      cum += w;
      if (cum > target) return id;
    }
    return last_positive;
  }

  static void fill_logprobs(std::span<const float> raw, const float* processed, int64_t n,
                            double processed_lse, const LogprobsOptions& lo, SampleResult& res) {
    FC_CHECK(lo.top_n >= 0, "logprobs: top_n must be >= 0, got ", lo.top_n);
    const bool is_raw =
        lo.mode == LogprobsMode::kRawLogprobs || lo.mode == LogprobsMode::kRawLogits;
    const float* values = is_raw ? raw.data() : processed;
    double offset = 0.0;
    if (lo.mode == LogprobsMode::kRawLogprobs) {
      const float m = ops::row_max(values, n);
      offset = static_cast<double>(m) + std::log(ops::row_sum_exp(values, n, m));
    } else if (lo.mode == LogprobsMode::kProcessedLogprobs) {
      offset = processed_lse;
    }
    const float chosen = values[res.token];
    res.has_logprobs = true;
    res.logprob = static_cast<float>(static_cast<double>(chosen) - offset);
    res.rank = ops::row_count_ge(values, n, chosen);
    std::vector<ops::Scored> best;
    ops::top_n(values, n, lo.top_n, best);
    res.top.clear();
    for (const ops::Scored& s : best) {
      res.top.push_back({s.id, static_cast<float>(static_cast<double>(s.value) - offset)});
    }
  }

  // Steps 1 and 3-6 on a copy of the row in the scratch. Greedy requests stop after the
  // penalties (max is then not computed and left -inf). Random requests: max is the processed
  // row's largest logit (checked finite); sparse says whether the survivors are listed, in
  // ascending id order, in sc.cand_.
  struct Processed {
    float max = kNegInf;
    bool sparse = false;
  };

  static Processed process(std::span<const float> logits, const SamplerState& st,
                           SamplerScratch& sc) {
    const int64_t n = st.vocab_size();
    FC_CHECK(logits.size() == static_cast<size_t>(n), "sample: logits have ", logits.size(),
             " entries, vocabulary is ", n);
    const SamplingParams& p = st.params();
    float* x = row(sc, n);
    std::memcpy(x, logits.data(), static_cast<size_t>(n) * sizeof(float));
    st.apply_processors({x, static_cast<size_t>(n)});
    if (st.constraint() && !(ops::row_max(x, n) > kNegInf)) {
      // The constraint is authoritative: the other processors together left no token.
      std::memcpy(x, logits.data(), static_cast<size_t>(n) * sizeof(float));
      st.apply_constraint({x, static_cast<size_t>(n)});
    }
    st.apply_penalties({x, static_cast<size_t>(n)});
    Processed out;
    if (p.is_greedy()) return out;
    // vLLM divides every random row by its temperature (a no-op for 1.0).
    if (p.temperature != 1.0f) ops::row_divide(x, n, p.temperature);
    const float m = ops::row_max(x, n);
    FC_CHECK(m > kNegInf, "sample: every logit is -inf or NaN");
    bool masked = false;
    if (p.min_p > 0.0f) {
      ops::row_min_p(x, n, m, p.min_p);
      masked = true;
    }
    if (p.top_k > 0 && p.top_k < n) {
      top_k(x, n, p.top_k, sc);
      masked = true;
    }
    const bool sparse = masked && collect_finite(x, n, sc);
    if (p.top_p < 1.0f) {
      if (sparse) {
        top_p_sparse(x, m, p.top_p, sc);
      } else {
        top_p(x, n, m, p.top_p, sc);
      }
    }
    out.max = m;
    out.sparse = sparse;
    return out;
  }

  static void run(std::span<const float> logits, SamplerState& st, SamplerScratch& sc,
                  const LogprobsOptions* lo, SampleResult& res) {
    const Processed pr = process(logits, st, sc);
    const int64_t n = st.vocab_size();
    float* x = sc.x_.data();
    int64_t token = -1;
    double processed_lse = 0.0;
    if (st.params().is_greedy()) {
      token = ops::row_argmax(x, n);
      if (lo && lo->mode == LogprobsMode::kProcessedLogprobs) {
        const float m = ops::row_max(x, n);
        FC_CHECK(m > kNegInf, "sample: every logit is -inf or NaN");
        processed_lse = static_cast<double>(m) + std::log(ops::row_sum_exp(x, n, m));
      }
    } else {
      const double u = st.rng().next_double();
      double total = 0.0;
      token = pr.sparse ? sample_sparse(x, pr.max, u, sc, &total)
                        : ops::sample_dense(x, n, pr.max, u, sc.block_sum_, &total);
      FC_CHECK(token >= 0, "sample: no token has positive probability");
      processed_lse = static_cast<double>(pr.max) + std::log(total);
    }
    res.token = static_cast<int32_t>(token);
    res.has_logprobs = false;
    res.logprob = 0.0f;
    res.rank = 0;
    res.top.clear();
    if (lo) fill_logprobs(logits, x, n, processed_lse, *lo, res);
  }

  // process() plus the normaliser sample() would use. The sums are taken exactly as sample()
  // takes them (dense: ops::row_sum_exp adds the same float block sums in the same order as
  // ops::sample_dense; sparse: the candidate list in double, as sample_sparse), so logprobs
  // derived from them are bit-identical to sample()'s.
  static ProcessedRow process_row(std::span<const float> logits, const SamplerState& st,
                                  SamplerScratch& sc) {
    const Processed pr = process(logits, st, sc);
    const int64_t n = st.vocab_size();
    const float* x = sc.x_.data();
    ProcessedRow out;
    if (st.params().is_greedy()) {
      out.max = ops::row_max(x, n);
      if (out.max > kNegInf) out.total = ops::row_sum_exp(x, n, out.max);
    } else if (pr.sparse) {
      out.max = pr.max;
      for (int32_t id : sc.cand_) out.total += ops::exp_nonpos(x[id] - pr.max);
    } else {
      out.max = pr.max;
      out.total = ops::row_sum_exp(x, n, pr.max);
    }
    return out;
  }
};

void sample(std::span<const float> logits, SamplerState& state, SamplerScratch& scratch,
            const LogprobsOptions* logprobs, SampleResult& result) {
  SamplerImpl::run(logits, state, scratch, logprobs, result);
}

SampleResult sample(std::span<const float> logits, SamplerState& state, SamplerScratch& scratch,
                    const LogprobsOptions* logprobs) {
  SampleResult r;
  SamplerImpl::run(logits, state, scratch, logprobs, r);
  return r;
}

double ProcessedRow::prob(float processed_logit) const {
  if (!(total > 0.0)) return 0.0;
  return static_cast<double>(ops::exp_nonpos(processed_logit - max)) / total;
}

double ProcessedRow::log_norm() const {
  if (!(total > 0.0)) return -std::numeric_limits<double>::infinity();
  return static_cast<double>(max) + std::log(total);
}

ProcessedRow process_logits(std::span<const float> logits, const SamplerState& state,
                            SamplerScratch& scratch) {
  return SamplerImpl::process_row(logits, state, scratch);
}

void token_logprobs(std::span<const float> logits, const SamplerScratch& scratch,
                    const ProcessedRow& row, int32_t token, const LogprobsOptions& options,
                    SampleResult& result) {
  const std::span<const float> x = scratch.processed();
  const int64_t n = static_cast<int64_t>(x.size());
  FC_CHECK(logits.size() == x.size(), "token_logprobs: logits have ", logits.size(),
           " entries, the processed row ", x.size());
  FC_CHECK(token >= 0 && token < n, "token_logprobs: token ", token, " outside [0, ", n, ")");
  // sample() refuses an all -inf row before it reports processed logprobs.
  if (options.mode == LogprobsMode::kProcessedLogprobs) {
    FC_CHECK(row.max > kNegInf, "sample: every logit is -inf or NaN");
  }
  result.token = token;
  SamplerImpl::fill_logprobs(logits, x.data(), n, row.log_norm(), options, result);
}

void raw_token_logprobs(std::span<const float> logits, int32_t token, int top_n,
                        SampleResult& result) {
  const int64_t n = static_cast<int64_t>(logits.size());
  FC_CHECK(token >= 0 && token < n, "raw_token_logprobs: token ", token, " outside [0, ", n, ")");
  LogprobsOptions lo;
  lo.top_n = top_n;
  lo.mode = LogprobsMode::kRawLogprobs;
  result.token = token;
  SamplerImpl::fill_logprobs(logits, nullptr, n, 0.0, lo, result);
}

void sample_batch(ThreadPool& pool, std::span<const SampleJob> jobs,
                  std::span<SamplerScratch> scratch) {
  FC_CHECK(scratch.size() >= static_cast<size_t>(pool.size()), "sample_batch: ", scratch.size(),
           " scratch buffers for ", pool.size(), " threads");
  for (const SampleJob& j : jobs) {
    FC_CHECK(j.state && j.result, "sample_batch: job without state or result");
  }
  pool.parallel_for(static_cast<int64_t>(jobs.size()), 1, [&](int64_t b, int64_t e, int t) {
    for (int64_t i = b; i < e; ++i) {
      const SampleJob& j = jobs[static_cast<size_t>(i)];
      SamplerImpl::run(j.logits, *j.state, scratch[static_cast<size_t>(t)], j.logprobs, *j.result);
    }
  });
}

// ---- Individual steps ----

int32_t argmax(std::span<const float> logits) {
  FC_CHECK(!logits.empty(), "argmax of an empty row");
  return static_cast<int32_t>(ops::row_argmax(logits.data(), static_cast<int64_t>(logits.size())));
}

void apply_min_p(std::span<float> logits, float min_p) {
  const int64_t n = static_cast<int64_t>(logits.size());
  if (!(min_p > 0.0f) || n == 0) return;
  const float m = ops::row_max(logits.data(), n);
  if (!(m > kNegInf)) return;
  ops::row_min_p(logits.data(), n, m, min_p);
}

void apply_top_k(std::span<float> logits, int64_t k, SamplerScratch& scratch) {
  const int64_t n = static_cast<int64_t>(logits.size());
  if (k <= 0 || k >= n) return;
  SamplerImpl::top_k(logits.data(), n, k, scratch);
}

void apply_top_p(std::span<float> logits, float top_p, SamplerScratch& scratch) {
  const int64_t n = static_cast<int64_t>(logits.size());
  if (top_p >= 1.0f || n == 0) return;
  FC_CHECK(top_p > 0.0f, "top_p must be in (0, 1], got ", top_p);
  const float m = ops::row_max(logits.data(), n);
  FC_CHECK(m > kNegInf, "apply_top_p: every logit is -inf or NaN");
  SamplerImpl::top_p(logits.data(), n, m, top_p, scratch);
}

double log_sum_exp(std::span<const float> logits) {
  const int64_t n = static_cast<int64_t>(logits.size());
  const float m = n ? ops::row_max(logits.data(), n) : kNegInf;
  if (!(m > kNegInf)) return -std::numeric_limits<double>::infinity();
  return static_cast<double>(m) + std::log(ops::row_sum_exp(logits.data(), n, m));
}

void top_n_values(std::span<const float> values, int n, double offset,
                  std::vector<TokenLogprob>& out) {
  std::vector<ops::Scored> best;
  ops::top_n(values.data(), static_cast<int64_t>(values.size()), n, best);
  out.clear();
  for (const ops::Scored& s : best) {
    out.push_back({s.id, static_cast<float>(static_cast<double>(s.value) - offset)});
  }
}

}  // namespace fc
