// Video decoding with FFmpeg's libavformat / libavcodec / libswscale (Debian's libav*-dev,
// scripts/install-deps.sh): container and codec from memory (a custom AVIOContext over the bytes,
// no temporary files), the stream's frame count / fps / duration, and the sampled frames as 8-bit
// RGB.
//
// What it reproduces is vLLM's default video loader (vllm/multimodal/video.py `VideoBackend`
// with the OpenCV codec, vllm/multimodal/video_decoders/opencv.py), which hands Gemma 4 its
// frames:
//  - frame count = the stream's nb_frames, else round(duration · fps) (OpenCV's
//    CAP_PROP_FRAME_COUNT for the FFmpeg backend); fps = av_guess_frame_rate; duration = the
//    container's, else the stream's;
//  - frame i = the i-th frame the decoder outputs from the start (OpenCV grab() reads
//    sequentially); sampled indices past the real end are skipped, as vLLM skips frames that
//    cannot be grabbed, and the caller gets the indices that were read;
//  - colour: swscale to RGB24 with SWS_BICUBIC and the stream's default (BT.601) matrix, as
//    OpenCV converts to BGR24.
// Decoding is sequential (no seeking): exact frame indices for every container, bounded by
// VideoLimits::max_decoded_frames.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "media/image.h"

namespace fc::media {

struct VideoLimits {
  int64_t max_bytes = int64_t{256} << 20;
  // vLLM's VLLM_MAX_IMAGE_PIXELS check on the frame size (check_frame_pixel_limit); the image
  // decoder's bomb limit.
  int64_t max_pixels = 178956970;
  int max_side = 16384;                           // width or height
  double max_duration_s = 3 * 3600.0;             // container / stream duration
  int64_t max_frames = 1000000;                   // the stream's (estimated) frame count
  int64_t max_decoded_frames = 20000;             // frames decoded to reach the last sampled one
  int64_t max_decoded_pixels = int64_t{1} << 34;  // Σ width·height over the decoded frames
};

struct VideoInfo {
  std::string
      container;      // libavformat's short name, e.g. "mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm"
  std::string codec;  // e.g. "h264", "vp9", "mjpeg"
  int width = 0, height = 0;
  int64_t total_frames = 0;  // as vLLM's OpenCV loader reports it
  double fps = 0;            // 0 when unknown
  double duration = 0;       // seconds; 0 when unknown
};

struct DecodedVideo {
  VideoInfo info;
  std::vector<int64_t> indices;  // the frame indices read (sorted, a subset of those asked for)
  std::vector<RgbImage> frames;  // one per index
};

// Picks the frame indices to decode from the stream's metadata (sorted ascending, unique).
using FrameSampler = std::function<std::vector<int64_t>(const VideoInfo&)>;

// Probes the bytes, asks `sample` for the indices and decodes them. Throws DecodeError naming the
// problem: not a video container, no video stream, unsupported codec, a limit exceeded, nothing
// decodable.
DecodedVideo decode_video(std::span<const uint8_t> bytes, const FrameSampler& sample,
                          const VideoLimits& limits = {});

// Only the metadata (no frame decoded).
VideoInfo probe_video(std::span<const uint8_t> bytes, const VideoLimits& limits = {});

}  // namespace fc::media
