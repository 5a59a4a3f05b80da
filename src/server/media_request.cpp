#include "server/media_request.h"

#include <xxhash.h>

#include <algorithm>
#include <cmath>
#include <sstream>

#include "media/gemma4_image.h"
#include "media/gemma4_video.h"
#include "media/image.h"
#include "server/api_error.h"
#include "server/audio_request.h"
#include "server/media_video.h"

namespace fc {

using nlohmann::json;

namespace {

constexpr int kUnlimited = 999;  // vLLM's default limit for a supported modality

uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

}  // namespace

uint64_t media_key(const json& part, const std::vector<uint8_t>& bytes, const std::string& salt) {
  uint64_t k;
  const std::string s = "fourcast-media:" + salt;
  const uint64_t seed = XXH3_64bits(s.data(), s.size());
  if (part.contains("uuid") && part["uuid"].is_string()) {
    const std::string u = part["uuid"].get<std::string>();
    k = XXH3_64bits_withSeed(u.data(), u.size(), seed ^ 0x75756964ull);  // "uuid"
  } else {
    k = XXH3_64bits_withSeed(bytes.data(), bytes.size(), seed);
  }
  return k == 0 ? 1 : k;
}

namespace {

int parse_limit(const json& v, const std::string& modality) {
  int n = -1;
  if (v.is_number_integer()) n = v.get<int>();
  if (v.is_object() && v.contains("count") && v["count"].is_number_integer())
    n = v["count"].get<int>();
  if (n < 0)
    fail("flag --limit-mm-per-prompt: '", modality,
         "' must be a count >= 0 or an object with a count, got ", v.dump());
  return n;
}

int budget_of(const json& kw, const char* where) {
  const json* v = nullptr;
  if (kw.is_object() && kw.contains("max_soft_tokens")) v = &kw["max_soft_tokens"];
  if (kw.is_object() && kw.contains("images_kwargs") && kw["images_kwargs"].is_object() &&
      kw["images_kwargs"].contains("max_soft_tokens"))
    v = &kw["images_kwargs"]["max_soft_tokens"];
  if (!v) return 0;
  if (!v->is_number_integer() || !media::valid_max_soft_tokens(v->get<int>()))
    throw ApiError::bad_request(
        media::invalid_max_soft_tokens_message(v->is_number_integer() ? v->get<int>() : -1), where);
  return v->get<int>();
}

}  // namespace

uint64_t media_item_key(const json& part, const std::vector<uint8_t>& bytes,
                        const std::string& salt) {
  return media_key(part, bytes, salt);
}

std::string media_part_url(const json& part, const std::string& modality) {
  for (const char* key : {"image_url", "video_url", "audio_url"}) {
    auto it = part.find(key);
    if (it == part.end()) continue;
    if (it->is_string()) return it->get<std::string>();  // input_image's form
    if (it->is_object() && it->contains("url") && (*it)["url"].is_string())
      return (*it)["url"].get<std::string>();
    throw ApiError::bad_request(std::string(key) + " must hold a url string", "messages");
  }
  throw ApiError::bad_request("a " + modality + " part needs an URL (" + modality + "_url.url)",
                              "messages");
}

MediaContext::MediaContext(const ServeOptions& o, const gemma4::Config& cfg)
    : cfg_(cfg), model_name_(o.model) {
  for (const std::string& d : o.allowed_media_domains) {
    std::string cur;
    for (char c : d + ",") {
      if (c == ',' || c == ' ') {
        if (!cur.empty()) fetch_.allowed_domains.push_back(cur);
        cur.clear();
      } else {
        cur += c;
      }
    }
  }
  fetch_.allowed_local_media_path = o.allowed_local_media_path;
  if (!o.mm_processor_kwargs.is_null()) {
    if (!o.mm_processor_kwargs.is_object())
      fail("flag --mm-processor-kwargs must be a JSON object");
    mm_kwargs_ = o.mm_processor_kwargs;
    try {
      budget_of(mm_kwargs_, "mm_processor_kwargs");
    } catch (const ApiError& e) {
      fail("flag --mm-processor-kwargs: ", e.what());
    }
  }
  if (!o.media_io_kwargs.is_null()) {
    if (!o.media_io_kwargs.is_object()) fail("flag --media-io-kwargs must be a JSON object");
    io_kwargs_ = o.media_io_kwargs;
  }
  if (cfg.mm.vision) {
    add_loader("image", load_image);
    add_loader("video", load_video);  // media_video.h
  }
  if (cfg.mm.has_audio) add_loader("audio", load_audio);  // server/audio_request.h
  if (!o.limit_mm_per_prompt.is_null()) {
    if (!o.limit_mm_per_prompt.is_object())
      fail("flag --limit-mm-per-prompt must be a JSON object, e.g. '{\"image\": 2}'");
    for (auto it = o.limit_mm_per_prompt.begin(); it != o.limit_mm_per_prompt.end(); ++it) {
      if (it.key() != "image" && it.key() != "video" && it.key() != "audio")
        fail("flag --limit-mm-per-prompt: unknown modality '", it.key(), "' (image, video, audio)");
      limits_[it.key()] = parse_limit(it.value(), it.key());
    }
  }
}

int MediaContext::limit(const std::string& modality) const {
  if (!supports(modality)) return 0;
  auto it = limits_.find(modality);
  return it == limits_.end() ? kUnlimited : it->second;
}

int MediaContext::image_budget(const MediaRequestKwargs& kw) const {
  int b = budget_of(kw.mm_processor_kwargs, "mm_processor_kwargs");
  if (b == 0) b = budget_of(mm_kwargs_, "mm_processor_kwargs");
  if (b == 0) b = cfg_.mm.vision ? cfg_.mm.vision->default_output_length : 280;
  if (!media::valid_max_soft_tokens(b))
    throw ApiError::bad_request(media::invalid_max_soft_tokens_message(b), "mm_processor_kwargs");
  return b;
}

LoadedMedia load_image(const MediaContext& ctx, const json& part, const MediaRequestKwargs& kw) {
  const gemma4::VisionConfig& v = *ctx.config().mm.vision;
  const std::string url = media_part_url(part, "image");
  const std::vector<uint8_t> bytes = load_media_url(url, ctx.fetch(), kw.prefetched.get());
  media::DecodeOptions d;
  json io = ctx.server_io_kwargs().value("image", json::object());
  if (kw.media_io_kwargs.is_object() && kw.media_io_kwargs.contains("image"))
    io.update(kw.media_io_kwargs["image"]);
  if (io.contains("rgba_background_color")) {
    const json& c = io["rgba_background_color"];
    bool ok = c.is_array() && c.size() == 3;
    for (size_t i = 0; ok && i < 3; ++i) {
      ok = c[i].is_number_integer() && c[i].get<int>() >= 0 && c[i].get<int>() <= 255;
      if (ok) d.background[i] = static_cast<uint8_t>(c[i].get<int>());
    }
    if (!ok)
      throw ApiError::bad_request(
          "rgba_background_color must be a list or tuple of 3 integers in the range [0, 255].",
          "media_io_kwargs");
  }
  d.exif_transpose = io.value("exif_transpose", false);
  media::ImageProcessorConfig pc;
  pc.patch_size = v.patch_size;
  pc.pooling_kernel_size = v.pooling_kernel_size;
  pc.max_soft_tokens = ctx.image_budget(kw);
  media::PatchGrid g;
  try {
    const media::RgbImage img = media::decode_image(bytes, d);
    g = media::preprocess_gemma4_image(img, pc);
  } catch (const media::DecodeError& e) {
    throw ApiError::bad_request(std::string("Failed to load the image: ") + e.what(), "messages");
  }
  auto in = std::make_shared<gemma4::MediaInput>();
  in->modality = "image";
  in->num_tokens = g.num_soft_tokens;
  in->grid_h = g.grid_h;
  in->grid_w = g.grid_w;
  in->features = std::move(g.pixels);
  in->positions = std::move(g.positions);
  LoadedMedia m;
  m.modality = "image";
  m.inputs.push_back(std::move(in));
  const json bg = {d.background[0], d.background[1], d.background[2]};
  m.key = media_key(part, bytes,
                    "image/" + std::to_string(pc.max_soft_tokens) + "/" + bg.dump() +
                        (d.exif_transpose ? "/exif" : ""));
  return m;
}

LoadedMedia MediaContext::load_part(const std::string& modality, const json& part,
                                    const MediaRequestKwargs& kw) const {
  auto it = loaders_.find(modality);
  if (it == loaders_.end())
    throw ApiError::bad_request(modality + " input is not supported by this model", "messages");
  return it->second(*this, part, kw);
}

void MediaContext::check_counts(const std::vector<chat::gemma4::MediaItem>& parts) const {
  std::map<std::string, int> count;
  for (const chat::gemma4::MediaItem& p : parts) ++count[p.modality];
  for (const auto& [modality, n] : count) {
    if (modality == "audio" && !cfg_.mm.has_audio) throw no_audio_tower(model_name_);
    if (!supports(modality))
      throw ApiError::bad_request(modality + " input is not supported by this model", "messages");
    const int lim = limit(modality);
    if (n > lim)  // vLLM's validate_num_items
      throw ApiError::bad_request(
          "At most " + std::to_string(lim) + " " + modality + "(s) may be provided in one prompt." +
              (lim < kUnlimited ? " Set `--limit-mm-per-prompt` to increase this limit." : ""),
          "messages");
  }
}

std::vector<LoadedMedia> MediaContext::load_all(const std::vector<chat::gemma4::MediaItem>& parts,
                                                const MediaRequestKwargs& kw) const {
  check_counts(parts);
  std::vector<LoadedMedia> out;
  for (const chat::gemma4::MediaItem& p : parts) {
    if (p.part.value("type", "") == "image_embeds" || p.part.contains("image_embeds"))
      throw ApiError::bad_request("image_embeds are not supported by Gemma 4 (vLLM refuses them)",
                                  "messages");
    out.push_back(load_part(p.modality, p.part, kw));
  }
  return out;
}

std::vector<LoadedMedia> load_chat_media(const MediaContext* ctx,
                                         const std::vector<chat::gemma4::MediaItem>& parts,
                                         const MediaRequestKwargs& kw) {
  if (parts.empty()) return {};
  if (!ctx)
    throw ApiError::bad_request("image, audio and video inputs are not supported by this model",
                                "messages");
  return ctx->load_all(parts, kw);
}

std::vector<std::string> remote_media_urls(const MediaContext* ctx, const json& messages) {
  if (!ctx) return {};
  chat::gemma4::NormalizedMessages nm;
  try {
    nm = chat::gemma4::normalize_messages(messages);
  } catch (const chat::gemma4::InvalidRequest&) {
    return {};  // prepare_chat says what is wrong
  }
  if (nm.media.empty()) return {};
  ctx->check_counts(nm.media);  // before fetching anything
  std::vector<std::string> urls;
  for (const chat::gemma4::MediaItem& p : nm.media) {
    std::string url;
    try {
      url = media_part_url(p.part, p.modality);
    } catch (const ApiError&) {
      continue;
    }
    if (is_remote_url(url) && std::find(urls.begin(), urls.end(), url) == urls.end())
      urls.push_back(url);
  }
  return urls;
}

std::vector<EngineMedia> MediaContext::expand(const tok::Tokenizer& tok, std::vector<int32_t>& ids,
                                              const std::vector<LoadedMedia>& items) const {
  const gemma4::MultimodalConfig& mm = cfg_.mm;
  auto placeholder = [&](const std::string& m) {
    return m == "image" ? mm.image_token_id : m == "video" ? mm.video_token_id : mm.audio_token_id;
  };
  // Items in prompt order per placeholder id.
  std::map<int32_t, std::vector<const LoadedMedia*>> queue;
  for (const LoadedMedia& m : items) queue[placeholder(m.modality)].push_back(&m);
  std::map<int32_t, size_t> used;
  for (int32_t t : ids)
    if (queue.count(t) || t == mm.image_token_id || t == mm.video_token_id ||
        t == mm.audio_token_id)
      ++used[t];
  for (const auto& [id, list] : queue)
    if (used[id] != list.size())
      throw ApiError::bad_request(
          "the prompt has " + std::to_string(used[id]) + " placeholder(s) for " +
              std::to_string(list.size()) + " " + list.front()->modality +
              " item(s); each item needs exactly one placeholder in the rendered prompt",
          "messages");
  const bool bidi = cfg_.use_bidirectional_attention == "vision";
  std::vector<int32_t> out;
  std::vector<EngineMedia> media;
  std::map<int32_t, size_t> next;
  tok::EncodeOptions eo;
  eo.add_special_tokens = false;
  for (int32_t t : ids) {
    auto q = queue.find(t);
    if (q == queue.end()) {
      out.push_back(t);
      continue;
    }
    const LoadedMedia& m = *q->second[next[t]++];
    for (size_t f = 0; f < m.inputs.size(); ++f) {
      const bool video = m.modality == "video";
      if (video) {  // "mm:ss " before each frame, frames joined by " " (HF Gemma4Processor)
        const std::string ts = (f ? " " : "") + media::timestamp_mmss(m.timestamps[f]) + " ";
        for (int32_t x : tok.encode(ts, eo)) out.push_back(x);
      }
      const bool audio = m.modality == "audio";
      out.push_back(audio ? mm.boa_token_id : mm.boi_token_id);
      EngineMedia em;
      em.input = m.inputs[f];
      em.key = m.inputs.size() == 1 ? m.key : mix64(m.key + f + 1);
      em.offset = static_cast<int>(out.size());
      em.bidirectional = bidi && !audio;
      media.push_back(em);
      out.insert(out.end(), static_cast<size_t>(m.inputs[f]->num_tokens), t);
      out.push_back(audio ? mm.eoa_token_id : mm.eoi_token_id);
    }
  }
  ids.swap(out);
  return media;
}

}  // namespace fc
