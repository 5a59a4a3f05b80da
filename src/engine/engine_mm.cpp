// The engine's encoder step (docs/design.md "Multimodal input"): the scheduler has chosen which
// media items to encode this step (within the encoder budget, into encoder-cache space); they are
// encoded here, one encoder call per encoder over every item it got, and the chunks of the step
// then read their soft tokens from the cache.
#include <algorithm>
#include <map>

#include "core/error.h"
#include "core/log.h"
#include "engine/engine.h"

namespace fc {

gemma4::MediaEncoder* Engine::encoder_for(const std::string& modality) const {
  for (gemma4::MediaEncoder* e : cfg_.encoders)
    for (const std::string& m : e->modalities())
      if (m == modality) return e;
  return nullptr;
}

void Engine::run_encoders(const SchedulerOutput& plan) {
  for (uint64_t key : plan.evicted) enc_out_.erase(key);  // before this step's outputs land
  struct Job {
    RequestId id;
    const EngineMedia* m;
  };
  std::map<gemma4::MediaEncoder*, std::vector<Job>> jobs;
  for (const ScheduledSeq& s : plan.seqs) {
    if (s.encode.empty()) continue;
    auto it = live_.find(s.id);
    FC_CHECK(it != live_.end(), "engine: scheduled request ", s.id, " is not live");
    for (int idx : s.encode) {
      const EngineMedia& m = it->second.req.media.at(static_cast<size_t>(idx));
      jobs[encoder_for(m.input->modality)].push_back({s.id, &m});
    }
  }
  const int64_t H = model_.config().hidden_size;
  for (auto& [enc, list] : jobs) {
    std::vector<const gemma4::MediaInput*> inputs;
    int64_t rows = 0;
    for (const Job& j : list) {
      inputs.push_back(j.m->input.get());
      rows += j.m->input->num_tokens;
    }
    std::vector<float> out(static_cast<size_t>(rows * H));
    try {
      FC_CHECK(enc && enc->embed_dim() == H, "engine: no encoder of width ", H, " for ",
               list.front().m->input->modality);
      enc->encode(inputs, out.data());
    } catch (const std::exception& e) {
      // The requests whose media failed end with the error; the step goes on without them.
      log_line(LogLevel::kError, std::string("encoder failed: ") + e.what());
      for (const Job& j : list) {
        sched_->encoder_cache().erase(j.m->key);
        auto it = live_.find(j.id);
        if (it == live_.end()) continue;
        finish(j.id, it->second, "error", std::string("multimodal encoder: ") + e.what());
        live_.erase(it);
      }
      continue;
    }
    int64_t row = 0;
    for (const Job& j : list) {
      const int64_t n = j.m->input->num_tokens;
      enc_out_[j.m->key].assign(out.begin() + row * H, out.begin() + (row + n) * H);
      row += n;
      ++mm_items_encoded_;
    }
  }
}

void Engine::attach_media(const ScheduledSeq& s, gemma4::SeqInput& in) {
  auto it = live_.find(s.id);
  if (it == live_.end()) return;
  const std::vector<EngineMedia>& media = it->second.req.media;
  if (media.empty()) return;
  const int64_t H = model_.config().hidden_size;
  const int b = s.pos0, e = s.pos0 + s.num_tokens - s.num_drafts;
  for (const EngineMedia& m : media) {
    const int mb = m.offset, me = m.offset + m.input->num_tokens;
    if (me <= b || mb >= e) continue;
    auto out = enc_out_.find(m.key);
    FC_CHECK(out != enc_out_.end(), "engine: the encoder output of a media item at ", mb,
             " is not cached");
    const int lo = std::max(mb, b), hi = std::min(me, e);
    in.soft_tokens.push_back({lo, hi - lo, out->second.data() + static_cast<size_t>(lo - mb) * H});
    if (m.bidirectional) in.bidi_blocks.emplace_back(mb, me);
  }
}

}  // namespace fc
