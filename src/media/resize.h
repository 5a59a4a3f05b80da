// Antialiased bicubic resize of 8-bit RGB images, bit-exact with the two HF image-processor
// backends of Gemma 4:
//  - torchvision (transformers' default Gemma4ImageProcessor): tvF.resize(bicubic,
//    antialias=True) on a uint8 tensor runs PyTorch's native uint8 `_upsample_bicubic2d_aa`
//    (aten/src/ATen/native/cpu/UpSampleKernel.cpp, UpSampleKernelAVXAntialias.h): Keys cubic
//    with a = −0.5 stretched by the scale when downsampling, weights normalised in double, then
//    rounded to int16 at the largest precision p < 22 with round(w_max·2^(p+1)) < 2^15; each pass
//    sums (1 << (p−1)) + Σ k·x in int32, shifts right by p and clamps to [0, 255]; horizontal
//    pass first (into uint8), then vertical; a pass whose size is unchanged is skipped.
//  - PIL (Gemma4ImageProcessorPil): Image.resize(BICUBIC), PIL's ImagingResample (libImaging
//    Resample.c): the same filter and bounds, weights at a fixed 22 bits (PRECISION_BITS = 32 − 8
//    − 2), the same rounding and pass order.
// resize_reference computes the same filter with double weights (the slow obvious form; the
// horizontal pass rounded and clamped to [0, 255] as both libraries store it): the integer paths
// stay within two levels of it (one from the stored pass, carried by the vertical filter).
#pragma once

#include <cstdint>
#include <vector>

#include "media/image.h"

namespace fc::media {

enum class ResizeBackend { kTorchvision, kPil };

RgbImage resize_bicubic(const RgbImage& src, int out_h, int out_w,
                        ResizeBackend backend = ResizeBackend::kTorchvision);

// Double-precision two-pass form of the same filter (double weights; the horizontal pass rounded
// to [0, 255]); the result unrounded and unclamped, [out_h, out_w, 3].
std::vector<double> resize_reference(const RgbImage& src, int out_h, int out_w);

// The separable filter of one axis: output i reads inputs [xmin[i], xmin[i] + size[i]) with
// weights w[i * ksize + j] (normalised to sum 1). Exposed for tests.
struct AxisWeights {
  int ksize = 0;
  std::vector<int> xmin, size;
  std::vector<double> w;
};
AxisWeights bicubic_aa_weights(int in_size, int out_size);

}  // namespace fc::media
