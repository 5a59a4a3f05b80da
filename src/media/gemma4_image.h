// Gemma 4 image preprocessing (transformers models/gemma4/image_processing_gemma4.py, default
// torchvision backend, or image_processing_pil_gemma4.py; spec multimodal.md §2): resize to the
// largest size of 48-pixel multiples (patch × pooling) within the soft-token budget, keeping the
// aspect ratio, rescale to [0, 1], cut into patches with their (x = column, y = row) positions.
// No padding: the tower runs on the real patches only (padding patches are masked out of
// attention and pooling in HF, so the result is the same).
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "media/image.h"
#include "media/resize.h"

namespace fc::media {

// The budgets HF accepts (_SUPPORTED_SOFT_TOKENS); anything else is an error.
bool valid_max_soft_tokens(int n);
// vLLM's message for another value: "Unsupported max_soft_tokens value: X. Valid values are
// (70, 140, 280, 560, 1120)."
std::string invalid_max_soft_tokens_message(int n);

struct ImageProcessorConfig {
  int patch_size = 16;
  int pooling_kernel_size = 3;
  int max_soft_tokens = 280;
  ResizeBackend backend = ResizeBackend::kTorchvision;
};

// HF get_aspect_ratio_preserving_size: (H_r, W_r); throws DecodeError with HF's messages for a
// 0 x 0 target or one over the budget.
std::pair<int, int> aspect_ratio_preserving_size(int64_t height, int64_t width, int patch_size,
                                                 int max_patches, int pooling_kernel_size);
// vLLM's own soft-token count (gemma4_mm.py _compute_num_soft_tokens), used for its
// placeholders; equal to HF's in every case the golden tests cover.
int vllm_num_soft_tokens(int64_t height, int64_t width, int max_soft_tokens, int patch_size = 16,
                         int pooling_kernel_size = 3);

// Soft tokens of an image of this size (HF's count: patches of the resized image / pooling²).
int num_soft_tokens(int64_t height, int64_t width, const ImageProcessorConfig& cfg);

// The tower's input for one image.
struct PatchGrid {
  int grid_h = 0, grid_w = 0;  // patches per column / row (multiples of the pooling kernel)
  int patch_dim = 0;           // 3 · patch²
  int num_soft_tokens = 0;     // grid_h · grid_w / pooling²
  // [grid_h · grid_w, patch_dim] in [0, 1], row-major patches; inside a patch (py, px, c).
  std::vector<float> pixels;
  // [grid_h · grid_w, 2]: (x = patch column, y = patch row).
  std::vector<int32_t> positions;
};

// Resize (skipped when the size is already right), rescale (×fl32(1/255) in fp32 for
// torchvision, ×(1/255) in double then fp32 for PIL, as each backend does) and patchify.
PatchGrid preprocess_gemma4_image(const RgbImage& img, const ImageProcessorConfig& cfg);

}  // namespace fc::media
