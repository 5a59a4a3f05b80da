#include "server/output_processor.h"

#include <algorithm>

namespace fc {

namespace {

// Length of the longest prefix of s[0, n) that ends on a UTF-8 character boundary.
size_t utf8_floor(const std::string& s, size_t n) {
  while (n > 0 && n < s.size() && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return n;
}

nlohmann::json bytes_of(const std::string& s) {
  nlohmann::json b = nlohmann::json::array();
  for (unsigned char c : s) b.push_back(static_cast<int>(c));
  return b;
}

}  // namespace

OutputProcessor::OutputProcessor(const tok::Tokenizer& tok, OutputOptions opt)
    : tok_(tok),
      opt_(std::move(opt)),
      decoder_(tok, !(opt_.reasoning || opt_.tools) && opt_.skip_special_tokens) {
  if (opt_.reasoning || opt_.tools) {
    chat::gemma4::ParseOptions po;
    po.reasoning = opt_.reasoning;
    po.tools = opt_.tools;
    po.start_in_reasoning = opt_.start_in_reasoning;
    parser_ = std::make_unique<chat::gemma4::StreamParser>(po);
    filter_specials_ = opt_.skip_special_tokens;
    for (std::string_view m : chat::gemma4::consumed_markers(po))
      if (std::optional<int32_t> id = tok_.token_to_id(m)) parser_specials_.push_back(*id);
  }
  for (const std::string& s : opt_.stop) max_stop_ = std::max(max_stop_, s.size());
  if (!opt_.forced_prefix.empty()) {
    emit(opt_.forced_prefix, prefix_step_);
  }
}

void OutputProcessor::emit(std::string_view raw, OutputStep& step) {
  if (raw.empty()) return;
  if (!parser_) {
    step.delta.content.append(raw);
    text_.append(raw);
    return;
  }
  chat::gemma4::Delta d = parser_->feed(raw);
  step.delta.reasoning += d.reasoning;
  step.delta.content += d.content;
  text_ += d.content;
  for (auto& tc : d.tool_calls) step.delta.tool_calls.push_back(std::move(tc));
}

nlohmann::json logprob_entry(const tok::Tokenizer& tok, int32_t token, const SampleResult& r) {
  const std::string t = tok.decode(std::span<const int32_t>(&token, 1));
  nlohmann::json top = nlohmann::json::array();
  for (const TokenLogprob& tl : r.top) {
    const std::string tt = tok.decode(std::span<const int32_t>(&tl.token, 1));
    top.push_back(
        {{"token", tt}, {"logprob", std::max(tl.logprob, -9999.0f)}, {"bytes", bytes_of(tt)}});
  }
  return {{"token", t},
          {"logprob", std::max(r.logprob, -9999.0f)},
          {"bytes", bytes_of(t)},
          {"top_logprobs", top}};
}

void OutputProcessor::add_logprobs(const std::vector<int32_t>& ids,
                                   const std::vector<SampleResult>& lps, OutputStep& step) {
  for (size_t i = 0; i < ids.size() && i < lps.size(); ++i)
    step.logprobs.push_back(logprob_entry(tok_, ids[i], lps[i]));
}

OutputStep OutputProcessor::push(const std::vector<int32_t>& ids,
                                 const std::vector<SampleResult>& logprobs, bool drop_last_text) {
  OutputStep step = std::move(prefix_step_);
  prefix_step_ = OutputStep{};
  if (stopped_) return step;
  if (opt_.logprobs) add_logprobs(ids, logprobs, step);
  const size_t n_text = drop_last_text && !ids.empty() ? ids.size() - 1 : ids.size();
  // vLLM checks stop strings only once min_tokens tokens were generated (its StopChecker runs
  // per token): the ids before that point are fed without a search.
  const int64_t before = tokens_;
  tokens_ += static_cast<int64_t>(ids.size());
  const size_t quiet = static_cast<size_t>(
      std::clamp<int64_t>(opt_.min_tokens - before - 1, 0, static_cast<int64_t>(n_text)));
  feed(std::span<const int32_t>(ids.data(), quiet), false, step);
  if (!stopped_) feed(std::span<const int32_t>(ids.data() + quiet, n_text - quiet), true, step);
  return step;
}

void OutputProcessor::feed(std::span<const int32_t> ids, bool search, OutputStep& step) {
  text_ids_.clear();
  for (const int32_t id : ids) {
    if (filter_specials_ && tok_.is_special(id) &&
        std::find(parser_specials_.begin(), parser_specials_.end(), id) == parser_specials_.end())
      continue;
    text_ids_.push_back(id);
  }
  pending_ += decoder_.push(std::span<const int32_t>(text_ids_));
  if (max_stop_ == 0) {
    emit(pending_, step);
    pending_.clear();
    return;
  }
  if (search) {
    // Earliest stop string in the pending text (earlier text was checked when it was pending).
    size_t best = std::string::npos, best_len = 0;
    for (const std::string& s : opt_.stop) {
      const size_t p = pending_.find(s);
      if (p != std::string::npos && p < best) best = p, best_len = s.size();
    }
    if (best != std::string::npos) {
      const std::string hit = pending_.substr(best, best_len);
      emit(std::string_view(pending_).substr(
               0, best + (opt_.include_stop_str_in_output ? best_len : 0)),
           step);
      pending_.clear();
      stopped_ = true;
      step.stop_hit = hit;
      return;
    }
  }
  // Keep the last max_stop-1 bytes: they may start a stop string.
  const size_t keep = std::min(pending_.size(), max_stop_ - 1);
  const size_t out = utf8_floor(pending_, pending_.size() - keep);
  emit(std::string_view(pending_).substr(0, out), step);
  pending_.erase(0, out);
}

OutputStep OutputProcessor::finish() {
  OutputStep step = std::move(prefix_step_);
  prefix_step_ = OutputStep{};
  if (!stopped_) pending_ += decoder_.finish();
  emit(pending_, step);
  pending_.clear();
  if (parser_) {
    chat::gemma4::Delta d = parser_->finish();
    step.delta.reasoning += d.reasoning;
    step.delta.content += d.content;
    text_ += d.content;
    for (auto& tc : d.tool_calls) step.delta.tool_calls.push_back(std::move(tc));
  }
  return step;
}

}  // namespace fc
