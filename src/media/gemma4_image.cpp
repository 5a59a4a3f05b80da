#include "media/gemma4_image.h"

#include <cmath>
#include <string>

namespace fc::media {

bool valid_max_soft_tokens(int n) {
  return n == 70 || n == 140 || n == 280 || n == 560 || n == 1120;
}

std::string invalid_max_soft_tokens_message(int n) {
  return "Unsupported max_soft_tokens value: " + std::to_string(n) +
         ". Valid values are (70, 140, 280, 560, 1120).";
}

std::pair<int, int> aspect_ratio_preserving_size(int64_t height, int64_t width, int patch_size,
                                                 int max_patches, int pooling_kernel_size) {
  // Python's arithmetic: int products, true division, math.sqrt and math.floor on doubles.
  const int64_t total_px = height * width;
  const int64_t target_px = static_cast<int64_t>(max_patches) * patch_size * patch_size;
  const double factor = std::sqrt(static_cast<double>(target_px) / static_cast<double>(total_px));
  const double ideal_h = factor * static_cast<double>(height);
  const double ideal_w = factor * static_cast<double>(width);
  const int64_t side = static_cast<int64_t>(pooling_kernel_size) * patch_size;
  int64_t th = static_cast<int64_t>(std::floor(ideal_h / static_cast<double>(side))) * side;
  int64_t tw = static_cast<int64_t>(std::floor(ideal_w / static_cast<double>(side))) * side;
  if (th == 0 && tw == 0)
    throw DecodeError(
        "Attempting to resize to a 0 x 0 image. Resized height should be divisible by "
        "`pooling_kernel_size * patch_size`=" +
        std::to_string(side) + ".");
  const int64_t max_side = (max_patches / (pooling_kernel_size * pooling_kernel_size)) * side;
  if (th == 0) {
    th = side;
    tw = std::min<int64_t>(
        static_cast<int64_t>(std::floor(static_cast<double>(width) / static_cast<double>(height))) *
            side,
        max_side);
  } else if (tw == 0) {
    tw = side;
    th = std::min<int64_t>(
        static_cast<int64_t>(std::floor(static_cast<double>(height) / static_cast<double>(width))) *
            side,
        max_side);
  }
  if (th * tw > target_px)
    throw DecodeError("Resizing [" + std::to_string(height) + "x" + std::to_string(width) +
                      "] to [" + std::to_string(th) + "x" + std::to_string(tw) +
                      "] but this exceeds " + std::to_string(max_patches) +
                      " patches with patch_size " + std::to_string(patch_size));
  return {static_cast<int>(th), static_cast<int>(tw)};
}

int vllm_num_soft_tokens(int64_t height, int64_t width, int max_soft_tokens, int patch_size,
                         int pooling_kernel_size) {
  const double max_patches =
      static_cast<double>(max_soft_tokens) * pooling_kernel_size * pooling_kernel_size;
  const int64_t side = static_cast<int64_t>(patch_size) * pooling_kernel_size;
  const double scale = std::sqrt(max_patches / ((static_cast<double>(height) / patch_size) *
                                                (static_cast<double>(width) / patch_size)));
  const int64_t hr =
      std::max<int64_t>(side, static_cast<int64_t>(std::floor(static_cast<double>(height) * scale /
                                                              static_cast<double>(side))) *
                                  side);
  const int64_t wr =
      std::max<int64_t>(side, static_cast<int64_t>(std::floor(static_cast<double>(width) * scale /
                                                              static_cast<double>(side))) *
                                  side);
  const int64_t n = (hr / patch_size) * (wr / patch_size) /
                    (static_cast<int64_t>(pooling_kernel_size) * pooling_kernel_size);
  return static_cast<int>(std::min<int64_t>(n, max_soft_tokens));
}

int num_soft_tokens(int64_t height, int64_t width, const ImageProcessorConfig& cfg) {
  const int k2 = cfg.pooling_kernel_size * cfg.pooling_kernel_size;
  const auto [h, w] = aspect_ratio_preserving_size(
      height, width, cfg.patch_size, cfg.max_soft_tokens * k2, cfg.pooling_kernel_size);
  return (h / cfg.patch_size) * (w / cfg.patch_size) / k2;
}

PatchGrid preprocess_gemma4_image(const RgbImage& img, const ImageProcessorConfig& cfg) {
  if (!valid_max_soft_tokens(cfg.max_soft_tokens))
    throw DecodeError(invalid_max_soft_tokens_message(cfg.max_soft_tokens));
  const int p = cfg.patch_size, k = cfg.pooling_kernel_size;
  const auto [th, tw] =
      aspect_ratio_preserving_size(img.height, img.width, p, cfg.max_soft_tokens * k * k, k);
  const RgbImage resized =
      (th == img.height && tw == img.width) ? img : resize_bicubic(img, th, tw, cfg.backend);
  PatchGrid g;
  g.grid_h = th / p;
  g.grid_w = tw / p;
  g.patch_dim = 3 * p * p;
  g.num_soft_tokens = g.grid_h * g.grid_w / (k * k);
  const size_t n_patches = static_cast<size_t>(g.grid_h) * g.grid_w;
  g.pixels.resize(n_patches * static_cast<size_t>(g.patch_dim));
  g.positions.resize(n_patches * 2);
  // The rescale as each backend computes it: torch multiplies in fp32 by fl32(1/255); NumPy in
  // float64, then the array is cast to fp32.
  float lut[256];
  for (int v = 0; v < 256; ++v)
    lut[v] = cfg.backend == ResizeBackend::kTorchvision
                 ? static_cast<float>(v) * static_cast<float>(1.0 / 255.0)
                 : static_cast<float>(static_cast<double>(v) * (1.0 / 255.0));
  for (int py = 0; py < g.grid_h; ++py)
    for (int px = 0; px < g.grid_w; ++px) {
      const size_t pi = static_cast<size_t>(py) * g.grid_w + px;
      float* dst = &g.pixels[pi * static_cast<size_t>(g.patch_dim)];
      for (int y = 0; y < p; ++y)
        for (int x = 0; x < p; ++x) {
          const uint8_t* src =
              &resized
                   .rgb[(static_cast<size_t>(py * p + y) * tw + static_cast<size_t>(px * p + x)) *
                        3];
          for (int c = 0; c < 3; ++c) dst[(y * p + x) * 3 + c] = lut[src[c]];
        }
      g.positions[pi * 2 + 0] = px;
      g.positions[pi * 2 + 1] = py;
    }
  return g;
}

}  // namespace fc::media
