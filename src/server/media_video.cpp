#include "server/media_video.h"

#include <cmath>
#include <string>

#include "media/gemma4_video.h"
#include "server/api_error.h"

namespace fc {

using nlohmann::json;

namespace {

media::VideoSampling sampling_of(const MediaContext& ctx, const MediaRequestKwargs& kw) {
  json io = ctx.server_io_kwargs().value("video", json::object());
  if (kw.media_io_kwargs.is_object() && kw.media_io_kwargs.contains("video") &&
      kw.media_io_kwargs["video"].is_object())
    io.update(kw.media_io_kwargs["video"]);
  media::VideoSampling s;
  if (io.contains("num_frames")) {
    const json& n = io["num_frames"];
    if (!n.is_number_integer() || (n.get<int64_t>() < 1 && n.get<int64_t>() != -1) ||
        n.get<int64_t>() > 100000)
      throw ApiError::bad_request(
          "media_io_kwargs.video.num_frames must be -1 (every frame) or an integer in [1, 100000]",
          "media_io_kwargs");
    s.num_frames = n.get<int>();
  }
  if (io.contains("fps")) {
    const json& f = io["fps"];
    if (!f.is_number() || !std::isfinite(f.get<double>()))
      throw ApiError::bad_request("media_io_kwargs.video.fps must be a number", "media_io_kwargs");
    s.fps = f.get<double>();
  }
  return s;
}

}  // namespace

LoadedMedia load_video(const MediaContext& ctx, const json& part, const MediaRequestKwargs& kw) {
  const gemma4::VisionConfig& v = *ctx.config().mm.vision;
  const std::string url = media_part_url(part, "video");
  const media::VideoSampling s = sampling_of(ctx, kw);
  const std::vector<uint8_t> bytes = load_media_url(url, ctx.fetch(), kw.prefetched.get());
  media::ImageProcessorConfig pc;
  pc.patch_size = v.patch_size;
  pc.pooling_kernel_size = v.pooling_kernel_size;
  media::Gemma4Video video;
  try {
    video = media::load_gemma4_video(bytes, s, pc);
  } catch (const media::DecodeError& e) {
    throw ApiError::bad_request(std::string("Failed to load the video: ") + e.what(), "messages");
  }
  LoadedMedia m;
  m.modality = "video";
  m.timestamps = video.timestamps;
  for (media::PatchGrid& g : video.frames) {
    auto in = std::make_shared<gemma4::MediaInput>();
    in->modality = "video";
    in->num_tokens = g.num_soft_tokens;
    in->grid_h = g.grid_h;
    in->grid_w = g.grid_w;
    in->features = std::move(g.pixels);
    in->positions = std::move(g.positions);
    m.inputs.push_back(std::move(in));
  }
  // What changes the frames: the sampling options (the per-frame budget is always 70).
  m.key = media_item_key(part, bytes,
                         "video/" + std::to_string(s.num_frames) + "/" + std::to_string(s.fps));
  return m;
}

}  // namespace fc
