// The "video" MediaLoader (media_request.h): a video_url part's bytes (data:, http(s) through
// media_prefetch, file:// under --allowed-local-media-path: the image rules and errors) decoded
// and sampled as vLLM does for Gemma 4 (media/gemma4_video.h), one MediaInput per frame at 70
// soft tokens, with the frames' timestamps; expand() renders them "mm:ss <|image>…<image|>".
//
// --media-io-kwargs '{"video": {"num_frames": N, "fps": F}}' (and per request media_io_kwargs)
// set vLLM's VideoMediaIO num_frames (default 32, -1 = every frame) and fps (default unset).
#pragma once

#include <nlohmann/json.hpp>

#include "server/media_request.h"

namespace fc {

LoadedMedia load_video(const MediaContext& ctx, const nlohmann::json& part,
                       const MediaRequestKwargs& kw);

}  // namespace fc
