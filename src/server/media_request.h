// Multimodal request handling for the OpenAI endpoints (docs/design.md "Multimodal input"):
// vLLM's content parts and limits (vllm/entrypoints/chat_utils.py, vllm/config/multimodal.py),
// media loading (media_fetch.h), decoding and Gemma 4 preprocessing (src/media), identity
// hashing (xxHash XXH3-64 over the bytes and the processor kwargs, or the part's uuid), and the
// expansion of each placeholder the chat template rendered into the soft-token run the engine
// fills (HF Gemma4Processor / vLLM's PromptReplacement).
//
// Modality-agnostic: a MediaLoader per modality turns a content part into MediaInputs; images and
// video are registered here, audio registers its own loader the same way.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "chat/gemma4/normalize.h"
#include "engine/engine.h"
#include "model/gemma4/config.h"
#include "model/gemma4/media.h"
#include "server/media_fetch.h"
#include "server/serve_options.h"
#include "tokenizer/tokenizer.h"

namespace fc {

// One loaded media item: an image is one MediaInput; a video is one per sampled frame (each its
// own soft-token run, rendered "mm:ss <|image>…<image|>"); audio one clip.
struct LoadedMedia {
  std::string modality;  // "image", "video", "audio"
  std::vector<std::shared_ptr<const gemma4::MediaInput>> inputs;
  std::vector<double> timestamps;  // video: seconds of each frame
  uint64_t key = 0;                // identity (per frame: key mixed with the frame index)
};

struct MediaRequestKwargs {
  nlohmann::json mm_processor_kwargs;  // the request's (merged over the server's)
  nlohmann::json media_io_kwargs;
  // Remote URLs fetched before the request was prepared (media_prefetch.h); others are fetched
  // when loaded.
  std::shared_ptr<const PrefetchedMedia> prefetched;
};

class MediaContext;
// Loads one content part of its modality (the part as the client sent it).
using MediaLoader = std::function<LoadedMedia(const MediaContext&, const nlohmann::json& part,
                                              const MediaRequestKwargs& kw)>;

class MediaContext {
 public:
  // From the serve flags (--limit-mm-per-prompt, --mm-processor-kwargs, --media-io-kwargs,
  // --allowed-local-media-path, --allowed-media-domains) and the model's config; throws
  // fc::Error naming the flag for bad values. Image and video loaders are registered when the
  // model has a vision tower.
  MediaContext(const ServeOptions& o, const gemma4::Config& cfg);

  const gemma4::Config& config() const { return cfg_; }
  const FetchOptions& fetch() const { return fetch_; }
  int limit(const std::string& modality) const;
  void add_loader(const std::string& modality, MediaLoader loader) {
    loaders_[modality] = std::move(loader);
  }
  bool supports(const std::string& modality) const { return loaders_.count(modality) != 0; }

  // The checks that need no media bytes: every modality supported, --limit-mm-per-prompt (vLLM's
  // message). Throws ApiError 400.
  void check_counts(const std::vector<chat::gemma4::MediaItem>& parts) const;
  // Every media part of a chat request: check_counts first, then each part loaded. Throws
  // ApiError (400 / 422) with vLLM's messages.
  std::vector<LoadedMedia> load_all(const std::vector<chat::gemma4::MediaItem>& parts,
                                    const MediaRequestKwargs& kw) const;
  // One part (e.g. the Responses API's input_image): {"type": "input_image", "image_url": ...}
  // or {"type": "image_url", "image_url": {"url": ...}}, optional "uuid".
  LoadedMedia load_part(const std::string& modality, const nlohmann::json& part,
                        const MediaRequestKwargs& kw) const;

  // Replaces the placeholder token of each item (image_token_id / video_token_id /
  // audio_token_id, in prompt order) by its run: boi + N × placeholder + eoi per image or frame
  // (frames prefixed by their timestamp text and joined by a space), boa + N + eoa for audio.
  // Returns the engine's media list; throws ApiError 400 when the placeholder count does not
  // match the items.
  std::vector<EngineMedia> expand(const tok::Tokenizer& tok, std::vector<int32_t>& ids,
                                  const std::vector<LoadedMedia>& items) const;

  // Image soft-token budget for a request (mm_processor_kwargs.max_soft_tokens over the
  // server's); throws ApiError with vLLM's message for unsupported values.
  int image_budget(const MediaRequestKwargs& kw) const;
  const nlohmann::json& server_mm_kwargs() const { return mm_kwargs_; }
  const nlohmann::json& server_io_kwargs() const { return io_kwargs_; }

 private:
  gemma4::Config cfg_;
  FetchOptions fetch_;
  std::map<std::string, int> limits_;
  std::map<std::string, MediaLoader> loaders_;
  nlohmann::json mm_kwargs_ = nlohmann::json::object();
  nlohmann::json io_kwargs_ = nlohmann::json::object();
  std::string model_name_;  // --model: vLLM names it in the no-audio-tower message
};

// Identity of an item: XXH3-64 of the client's uuid, else of the bytes; both seeded with `salt`
// (what else changes the encoder output). Never 0.
uint64_t media_key(const nlohmann::json& part, const std::vector<uint8_t>& bytes,
                   const std::string& salt);

// The media part of a chat request loaded and placed (prepare_chat calls this after the chat
// template and the tokenizer ran).
std::vector<LoadedMedia> load_chat_media(const MediaContext* ctx,
                                         const std::vector<chat::gemma4::MediaItem>& parts,
                                         const MediaRequestKwargs& kw);

// The http(s) URLs of a chat request's media parts (each once, in order), after check_counts:
// what the HTTP layer fetches off its workers before prepare_chat runs (media_prefetch.h). Empty
// when there are none, when the model takes no media, or when the messages or a part are
// malformed (prepare_chat then reports that with its usual error).
std::vector<std::string> remote_media_urls(const MediaContext* ctx, const nlohmann::json& messages);

// The image loader (also what the Responses API's input_image uses through load_part). The chat
// path takes {"type": "image_url", "image_url": {"url": U, "detail": D}} (detail ignored, as
// vLLM does) and {"type": "input_image", "image_url": U}: the Responses API's
// input_image_to_chat_part gives the former.
LoadedMedia load_image(const MediaContext& ctx, const nlohmann::json& part,
                       const MediaRequestKwargs& kw);

// An item's identity (the encoder-cache and prefix-cache key): the part's "uuid" when it has
// one, else XXH3-64 of the bytes; both seeded with `salt` (the modality and the kwargs that
// change the encoder input).
uint64_t media_item_key(const nlohmann::json& part, const std::vector<uint8_t>& bytes,
                        const std::string& salt);

// The URL of a media part ({"image_url": {"url": U}} or {"image_url": U}, "input_image"'s
// "image_url", "video_url"), or throws ApiError 400.
std::string media_part_url(const nlohmann::json& part, const std::string& modality);

}  // namespace fc
