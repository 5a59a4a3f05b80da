// Gemma 4 video input: which frames are sampled, their timestamps, and each frame's tower input
// (docs/design.md "Video"). There is no video tower; every sampled frame goes through the image
// preprocessing at 70 soft tokens and the image tower.
//
// Serving follows vLLM (the reference for serving): its default video loader
// (vllm/multimodal/video.py VideoBackend.compute_frames_index_to_sample; VideoMediaIO's
// num_frames = 32, fps unset) picks the frames, and gemma4_mm.py runs each one through the
// Gemma 4 *image* processor with max_soft_tokens = 70, timestamp = index / fps (24 when the fps
// is unknown). transformers' Gemma4VideoProcessor samples differently (hf_sample_frame_indices)
// and refuses clips with fewer frames than it wants; both are here so the tests can pin each.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "media/gemma4_image.h"
#include "media/video_decode.h"

namespace fc::media {

// vLLM's soft tokens per video frame (gemma4_mm.py _VIDEO_MAX_SOFT_TOKENS) and frames per video
// (VideoMediaIO's default num_frames, gemma4_mm.py _VIDEO_MAX_FRAMES).
inline constexpr int kVideoSoftTokensPerFrame = 70;
inline constexpr int kVideoDefaultFrames = 32;

// vLLM: n = min(num_frames, total) when num_frames > 0 (else total), n = min(n, floor(duration ·
// fps)) when fps > 0, n = max(1, n); all frames when n == total, else
// np.linspace(0, total − 1, n, dtype=int).
std::vector<int64_t> vllm_sample_frame_indices(int64_t total_frames, double duration,
                                               int num_frames, double fps);
// transformers' default_sample_indices_fn with num_frames: arange(n) · total // n; throws
// DecodeError (HF's ValueError text) when n > total.
std::vector<int64_t> hf_sample_frame_indices(int64_t total_frames, int num_frames);

// Seconds of each frame: index / fps, with fps 24 when unknown (<= 0), as HF and vLLM do.
std::vector<double> frame_timestamps(const std::vector<int64_t>& indices, double fps);
// HF's "mm:ss": f"{int(s // 60):02d}:{int(s % 60):02d}".
std::string timestamp_mmss(double seconds);

struct VideoSampling {
  int num_frames = kVideoDefaultFrames;  // -1: every frame
  double fps = -1;                       // > 0: at most duration · fps frames
};

struct Gemma4Video {
  VideoInfo info;
  std::vector<int64_t> indices;
  std::vector<double> timestamps;  // seconds, one per frame
  std::vector<PatchGrid> frames;   // the tower input of each frame (70-token budget)
};

// Decode, sample (vLLM's rule), and preprocess every frame with `image` (its max_soft_tokens is
// replaced by 70). Throws DecodeError.
Gemma4Video load_gemma4_video(std::span<const uint8_t> bytes, const VideoSampling& sampling,
                              ImageProcessorConfig image, const VideoLimits& limits = {});

}  // namespace fc::media
