#include "media/gemma4_video.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace fc::media {

std::vector<int64_t> vllm_sample_frame_indices(int64_t total_frames, double duration,
                                               int num_frames, double fps) {
  int64_t n = total_frames;
  if (num_frames > 0) n = std::min<int64_t>(num_frames, total_frames);
  if (fps > 0) n = std::min<int64_t>(n, static_cast<int64_t>(std::floor(duration * fps)));
  n = std::max<int64_t>(1, n);
  std::vector<int64_t> idx(static_cast<size_t>(n));
  if (n == total_frames) {
    for (int64_t i = 0; i < n; ++i) idx[static_cast<size_t>(i)] = i;
    return idx;
  }
  // np.linspace(0, stop, n): step = stop / (n − 1) in float64, y_i = i · step, the last value
  // set to stop exactly; dtype=int floors (NumPy >= 2; the values are >= 0 so this is also the
  // truncation of older NumPy).
  const double stop = static_cast<double>(total_frames - 1);
  if (n == 1) return {0};
  const double step = stop / static_cast<double>(n - 1);
  for (int64_t i = 0; i < n; ++i) {
    const double y = (step == 0) ? static_cast<double>(i) / static_cast<double>(n - 1) * stop
                                 : static_cast<double>(i) * step;
    idx[static_cast<size_t>(i)] = static_cast<int64_t>(std::floor(y));
  }
  idx.back() = static_cast<int64_t>(stop);
  return idx;
}

std::vector<int64_t> hf_sample_frame_indices(int64_t total_frames, int num_frames) {
  if (num_frames > total_frames)
    throw DecodeError("When loading the video with num_frames=" + std::to_string(num_frames) +
                      ", the requested number of frames exceeds total_num_frames=" +
                      std::to_string(total_frames) +
                      ". Please set num_frames or fps to a smaller value.");
  std::vector<int64_t> idx(static_cast<size_t>(std::max(0, num_frames)));
  for (int i = 0; i < num_frames; ++i) idx[static_cast<size_t>(i)] = i * total_frames / num_frames;
  return idx;
}

std::vector<double> frame_timestamps(const std::vector<int64_t>& indices, double fps) {
  const double f = fps > 0 ? fps : 24.0;
  std::vector<double> t;
  t.reserve(indices.size());
  for (int64_t i : indices) t.push_back(static_cast<double>(i) / f);
  return t;
}

std::string timestamp_mmss(double seconds) {
  const double m = std::floor(seconds / 60.0);
  const double s = seconds - 60.0 * m;  // Python's float % for a positive divisor
  char buf[32];
  std::snprintf(buf, sizeof buf, "%02lld:%02d", static_cast<long long>(m), static_cast<int>(s));
  return buf;
}

Gemma4Video load_gemma4_video(std::span<const uint8_t> bytes, const VideoSampling& sampling,
                              ImageProcessorConfig image, const VideoLimits& limits) {
  image.max_soft_tokens = kVideoSoftTokensPerFrame;
  const DecodedVideo v = decode_video(
      bytes,
      [&](const VideoInfo& info) {
        return vllm_sample_frame_indices(info.total_frames, info.duration, sampling.num_frames,
                                         sampling.fps);
      },
      limits);
  Gemma4Video out;
  out.info = v.info;
  out.indices = v.indices;
  out.timestamps = frame_timestamps(v.indices, v.info.fps);
  out.frames.reserve(v.frames.size());
  for (const RgbImage& f : v.frames) out.frames.push_back(preprocess_gemma4_image(f, image));
  return out;
}

}  // namespace fc::media
