// Token sampling from one row of logits, with vLLM's request parameters and semantics.
// Seeded per request: the same seed and the same logits give the same tokens.
//
// Order of application (vLLM V1, vllm/v1/sample/sampler.py `Sampler` docstring and forward()):
//   0. If logprobs are requested in a "raw" mode, they are taken from the logits as given (fp32,
//      before anything below). This is vLLM's default (`logprobs_mode = "raw_logprobs"`).
//   1. Penalties (vllm/model_executor/layers/utils.py apply_penalties, in this order):
//      a. repetition: for every token in prompt ∪ generated, logit > 0 ? logit / r : logit * r
//      b. frequency:  logit -= frequency_penalty * count_in_generated
//      c. presence:   logit -= presence_penalty * (count_in_generated > 0)
//   2. Greedy requests (temperature < 1e-5) stop here: argmax, lowest id on ties.
//   3. Temperature: logit /= temperature (vllm/v1/sample/sampler.py apply_temperature).
//   4. min_p (vllm/v1/sample/logits_processor/builtin.py MinPLogitsProcessor, an "argmax
//      invariant" processor applied after temperature): with probs = softmax(logits), tokens with
//      prob < min_p * max(prob) get -inf.
//   5. top-k (vllm/v1/sample/ops/topk_topp_sampler.py apply_top_k_top_p / apply_top_k_only):
//      tokens whose logit is < the k-th largest logit get -inf; ties with the k-th value survive,
//      so more than k tokens can remain. k <= 0 or k >= vocab means off.
//   6. top-p (same file): over the softmax of the top-k survivors, sorted ascending, tokens whose
//      ascending cumulative probability is <= 1 - top_p get -inf; the most likely token always
//      survives. Equivalently, walking from the most likely token down, a token survives iff the
//      probability mass strictly ahead of it is < top_p. Our order among equal logits is lower id
//      first (torch.sort is unstable there, so vLLM has no fixed order to match).
//   7. Draw from softmax of what survives.
//   Before step 1 (vLLM applies its other logits processors after taking raw logprobs and before
//   the penalties; they commute with each other): allowed_token_ids (every other token -inf),
//   logit_bias (added), min_tokens (the stop ids -inf while fewer tokens were generated)
//   [vllm/v1/sample/logits_processor/builtin.py LogitBiasLogitsProcessor,
//   MinTokensLogitsProcessor; vllm/v1/sample/sampler.py allowed_token_ids mask], and bad_words
//   (a word's last token -inf when the generated tokens end with the rest of it;
//   vllm/v1/sample/ops/bad_words.py).
//
// Random draws: every state owns a xoshiro256** generator (seeded through splitmix64), so the
// result depends only on (seed, number of earlier random draws of this request, logits). One
// uniform double in [0, 1) (53 bits) is drawn per random (non-greedy) token; greedy tokens draw
// nothing. The token is found by inverse CDF: the first token in ascending id order whose
// inclusive cumulative weight exp(logit - max) exceeds u * total. vLLM draws with the
// exponential-race trick on torch's generator instead, so token streams are statistically, not
// bitwise, equal to vLLM's.
//
// Threading: a SamplerState belongs to one request and a SamplerScratch to one thread; sample()
// touches only those two, so different requests may be sampled concurrently (see sample_batch).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

namespace fc {

class ThreadPool;

// A constraint on which tokens may come next (structured outputs, constraints.h): state
// advanced by every generated token, applied with the processors before step 1. It is
// authoritative: when another processor (allowed_token_ids, min_tokens, bad_words, logit_bias)
// would leave no token, the row keeps the constraint's mask alone (spec structured-output §7.6).
class TokenConstraint {
 public:
  virtual ~TokenConstraint() = default;
  // logits[t] = -inf for every token t that may not come next.
  virtual void mask(std::span<float> logits) const = 0;
  virtual void accept(int32_t token) = 0;
  // How many leading tokens would be accepted one after another; the state is unchanged
  // (speculative drafts are cut there).
  virtual size_t valid_prefix(std::span<const int32_t> tokens) { return tokens.size(); }
};

struct SamplingParams {
  float temperature = 1.0f;                // < 1e-5 means greedy (argmax, lowest id on ties)
  int top_k = 0;                           // 0 or -1: off (so is any k >= vocab)
  float top_p = 1.0f;                      // 1: off; must be in (0, 1]
  float min_p = 0.0f;                      // 0: off; must be in [0, 1]
  float repetition_penalty = 1.0f;         // 1: off; applies to prompt and generated tokens; > 0
  float presence_penalty = 0.0f;           // applies to generated tokens only; [-2, 2]
  float frequency_penalty = 0.0f;          // applies to generated tokens only; [-2, 2]
  std::optional<uint64_t> seed;            // none: seeded from a random device at request creation
  std::vector<int32_t> allowed_token_ids;  // non-empty: only these can be drawn
  std::vector<std::pair<int32_t, float>> logit_bias;  // (token, added to its logit)
  int min_tokens = 0;  // until this many tokens were generated, min_tokens_stop_ids are banned
  std::vector<int32_t> min_tokens_stop_ids;         // the request's stop tokens (eos included)
  std::vector<std::vector<int32_t>> bad_words_ids;  // token sequences that may not be generated
  // Makes the request's constraint (each SamplerState owns one); empty: none.
  std::function<std::unique_ptr<TokenConstraint>()> make_constraint;

  bool is_greedy() const { return temperature < 1e-5f; }
  bool has_penalties() const {
    return repetition_penalty != 1.0f || presence_penalty != 0.0f || frequency_penalty != 0.0f;
  }
};

// Throws fc::Error naming the parameter when a value is outside the range vLLM accepts
// (vllm/sampling_params.py SamplingParams._verify_args): presence/frequency in [-2, 2],
// repetition finite and > 0, temperature finite in [0, 2], top_p in (0, 1], top_k >= -1,
// min_p in [0, 1].
void validate_sampling_params(const SamplingParams& p);

// Which numbers logprobs report (vLLM's --logprobs-mode; vllm/config/model.py LogprobsMode).
enum class LogprobsMode {
  kRawLogprobs,        // log_softmax of the logits as given (vLLM's default)
  kRawLogits,          // the logits as given
  kProcessedLogprobs,  // log_softmax after penalties, temperature, min_p, top-k, top-p
  kProcessedLogits,    // the logits after those steps (masked tokens are -inf)
};

struct LogprobsOptions {
  int top_n = 0;  // alternatives to report besides the chosen token (OpenAI top_logprobs), >= 0
  LogprobsMode mode = LogprobsMode::kRawLogprobs;
};

struct TokenLogprob {
  int32_t token = 0;
  float logprob = 0.0f;  // in the units of LogprobsOptions::mode; -inf for masked tokens
};

struct SampleResult {
  int32_t token = -1;
  bool has_logprobs = false;  // set when LogprobsOptions were given
  float logprob = 0.0f;       // the chosen token's value
  int64_t rank = 0;           // number of tokens whose value is >= the chosen one's (1 = best),
                              // as vLLM's batched_count_greater_than (v1/sample/ops/logprobs.py)
  std::vector<TokenLogprob> top;  // top_n best values, best first, lower id first on ties
};

// xoshiro256** (Blackman & Vigna), state filled from the seed by splitmix64.
class Rng {
 public:
  explicit Rng(uint64_t seed);
  uint64_t next_u64();
  double next_double();  // uniform in [0, 1) with 53 random bits

 private:
  uint64_t s_[4];
};

// Per-request sampler state: parameters, RNG and the token history the penalties need.
class SamplerState {
 public:
  // prompt_tokens: the request's prompt ids (only kept when repetition_penalty != 1).
  // vocab_size: the length of the logits rows that will be sampled. Validates params.
  SamplerState(const SamplingParams& params, std::span<const int32_t> prompt_tokens,
               int32_t vocab_size);

  // Records one generated token (for the penalties). O(1) amortized; call it for every token the
  // request emits, in order, including tokens that end the request.
  void accept(int32_t token);

  // The processors before step 1 (allowed_token_ids, logit_bias, min_tokens, bad_words), in
  // place.
  void apply_processors(std::span<float> logits) const;
  // Step 1 of the pipeline, in place on logits [vocab_size]. Touches only penalized tokens.
  void apply_penalties(std::span<float> logits) const;

  // The constraint mask alone (the fallback when the processors together allow nothing).
  void apply_constraint(std::span<float> logits) const;
  TokenConstraint* constraint() const { return constraint_.get(); }

  const SamplingParams& params() const { return params_; }
  uint64_t seed() const { return seed_; }  // the seed in use (drawn when params had none)
  int32_t vocab_size() const { return vocab_size_; }
  int64_t num_generated() const { return num_generated_; }
  int32_t generated_count(int32_t token) const;  // 0 when not tracked (no presence/frequency)
  Rng& rng() { return rng_; }

 private:
  void add_repetition_token(int32_t token);

  SamplingParams params_;
  int32_t vocab_size_;
  uint64_t seed_;
  Rng rng_;
  int64_t num_generated_ = 0;
  bool track_repetition_ = false;    // repetition_penalty != 1
  bool track_counts_ = false;        // presence or frequency penalty != 0
  std::vector<uint64_t> rep_seen_;   // bitmap [ceil(vocab/64)] of ids in prompt ∪ generated
  std::vector<int32_t> rep_ids_;     // those ids, each once, first-seen order
  std::vector<int32_t> out_ids_;     // distinct generated ids, first-seen order
  std::vector<int32_t> out_counts_;  // out_counts_[j]: occurrences of out_ids_[j]
  std::unordered_map<int32_t, int32_t> out_slot_;  // id -> j
  std::vector<uint64_t> allowed_;                  // bitmap of allowed_token_ids (empty: all)
  std::vector<int32_t> generated_;                 // every generated token (bad_words only)
  std::unique_ptr<TokenConstraint> constraint_;    // from params.make_constraint
};

// Reusable working memory for one thread: vocab-sized rows, histograms, index lists. Grows on
// first use and is then reused, so sampling allocates no vocab-sized buffer per call (only the
// top_n-sized logprobs list). After sample() returns, processed() holds that call's processed
// logits row: penalized for greedy requests; penalized, divided by the temperature and masked
// (-inf) by min_p / top-k / top-p otherwise (see LogprobsMode::kProcessedLogits).
class SamplerScratch {
 public:
  std::span<const float> processed() const { return {x_.data(), static_cast<size_t>(n_)}; }

 private:
  friend struct SamplerImpl;
  int64_t n_ = 0;
  std::vector<float> x_;           // [vocab] logits being processed
  std::vector<int32_t> cand_;      // surviving token ids, ascending (sparse path)
  std::vector<int32_t> order_;     // ids sorted by value (top-p on a small candidate set)
  std::vector<float> heap_;        // top-k selection heap
  std::vector<uint32_t> count_;    // [65536] radix histogram of counts
  std::vector<double> mass_;       // [65536] radix histogram of probability mass
  std::vector<double> block_sum_;  // [vocab / 256] inverse-CDF block sums
};

// Samples one token from logits [state.vocab_size()] (fp32, not modified) following the order
// documented above. Advances state.rng() once for non-greedy requests; does NOT call accept().
// logprobs: when non-null, fills result.logprob / rank / top. Throws fc::Error when no token can
// be sampled (every logit -inf or NaN).
void sample(std::span<const float> logits, SamplerState& state, SamplerScratch& scratch,
            const LogprobsOptions* logprobs, SampleResult& result);
SampleResult sample(std::span<const float> logits, SamplerState& state, SamplerScratch& scratch,
                    const LogprobsOptions* logprobs = nullptr);

// ---- The pipeline without the draw (speculative verification, spec/rejection.h) ----

// A row after process_logits(): the numbers sample() normalises with.
struct ProcessedRow {
  float max = 0.0f;    // largest processed logit; -inf when every token is masked (greedy only)
  double total = 0.0;  // sum over the processed row of exp(logit - max), summed as sample() does

  // The probability sample() gives a token whose processed logit is `processed_logit` (random
  // requests; exp(x - max) / total with sample()'s exp). 0 when total is 0.
  double prob(float processed_logit) const;
  // log(sum(exp(processed row))): the offset of LogprobsMode::kProcessedLogprobs.
  double log_norm() const;
};

// Everything sample() does before its draw: the row copied into the scratch, penalties (with
// state's history), and for random requests temperature, min_p, top-k and top-p; the result is
// in scratch.processed() as after sample(). Touches neither the RNG nor the history. Throws
// like sample() for a random request whose row is all -inf or NaN.
ProcessedRow process_logits(std::span<const float> logits, const SamplerState& state,
                            SamplerScratch& scratch);

// Sets result.token = token and its logprob / rank / top exactly as sample() reports them had it
// drawn `token` from this row: logits is the row as given to process_logits(), and scratch still
// holds that call's processed row, with `row` its result.
void token_logprobs(std::span<const float> logits, const SamplerScratch& scratch,
                    const ProcessedRow& row, int32_t token, const LogprobsOptions& options,
                    SampleResult& result);

// Prompt logprobs (vLLM's prompt_logprobs, always from the raw logits): result.token = token, its
// log_softmax value, rank and the top_n best alternatives, as sample() reports them in
// LogprobsMode::kRawLogprobs.
void raw_token_logprobs(std::span<const float> logits, int32_t token, int top_n,
                        SampleResult& result);

// One request's row of a batch.
struct SampleJob {
  std::span<const float> logits;  // [vocab]
  SamplerState* state = nullptr;
  const LogprobsOptions* logprobs = nullptr;  // null: no logprobs
  SampleResult* result = nullptr;
};

// sample() for every job, spread over the pool; scratch.size() must be >= pool.size() (one per
// thread). Results do not depend on the thread count or on scheduling.
void sample_batch(ThreadPool& pool, std::span<const SampleJob> jobs,
                  std::span<SamplerScratch> scratch);

// ---- Individual steps on a logits row, exposed for tests and custom pipelines. All in place. ----

// argmax, lowest id on ties. n >= 1.
int32_t argmax(std::span<const float> logits);

// Step 4: -inf where exp(logit - max) < min_p (that is prob < min_p * max_prob). min_p in (0, 1].
void apply_min_p(std::span<float> logits, float min_p);

// Step 5: -inf where logit < the k-th largest logit. k <= 0 or k >= size: no-op.
void apply_top_k(std::span<float> logits, int64_t k, SamplerScratch& scratch);

// Step 6 on its own (softmax taken over the row as given). top_p >= 1: no-op; top_p in (0, 1).
void apply_top_p(std::span<float> logits, float top_p, SamplerScratch& scratch);

// log(sum(exp(logits))) in double; -inf when every logit is -inf.
double log_sum_exp(std::span<const float> logits);

// The n largest values (n <= size) as (token, value - offset), best first, lower id first on ties.
void top_n_values(std::span<const float> values, int n, double offset,
                  std::vector<TokenLogprob>& out);

}  // namespace fc
