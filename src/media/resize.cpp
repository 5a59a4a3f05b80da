#include "media/resize.h"

#include <algorithm>
#include <cmath>

namespace fc::media {
namespace {

// Keys cubic convolution with a = −0.5, in the two spellings of the second branch (the double
// rounding differs in the last bits, which can move an int16 weight by one).
double cubic_torch(double x) {
  const double a = -0.5;
  x = std::fabs(x);
  if (x < 1.0) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2.0) return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
  return 0.0;
}
double cubic_pil(double x) {
  const double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

// Filter bounds and normalised double weights of one axis (both libraries compute these alike).
AxisWeights axis_weights(int in_size, int out_size, double (*filter)(double)) {
  AxisWeights a;
  const double scale = static_cast<double>(in_size) / out_size;
  const double fscale = scale >= 1.0 ? scale : 1.0;
  const double support = 2.0 * fscale;  // bicubic support 2, stretched when downsampling
  a.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  a.xmin.resize(static_cast<size_t>(out_size));
  a.size.resize(static_cast<size_t>(out_size));
  a.w.assign(static_cast<size_t>(out_size) * a.ksize, 0.0);
  const double inv = 1.0 / fscale;
  for (int i = 0; i < out_size; ++i) {
    const double center = scale * (i + 0.5);
    // Truncation toward zero, as the (int64_t) / (int) casts of both sources.
    const int xmin = std::max(static_cast<int>(center - support + 0.5), 0);
    const int xmax = std::min(static_cast<int>(center + support + 0.5), in_size);
    const int n = xmax - xmin;
    double* w = &a.w[static_cast<size_t>(i) * a.ksize];
    double total = 0.0;
    for (int j = 0; j < n; ++j) {
      w[j] = filter((j + xmin - center + 0.5) * inv);
      total += w[j];
    }
    if (total != 0.0)
      for (int j = 0; j < n; ++j) w[j] /= total;
    a.xmin[static_cast<size_t>(i)] = xmin;
    a.size[static_cast<size_t>(i)] = n;
  }
  return a;
}

// Integer weights: round half away from zero at `prec` fractional bits.
std::vector<int32_t> int_weights(const AxisWeights& a, int prec) {
  std::vector<int32_t> k(a.w.size());
  const double s = static_cast<double>(1 << prec);
  for (size_t i = 0; i < a.w.size(); ++i)
    k[i] = a.w[i] < 0 ? static_cast<int32_t>(-0.5 + a.w[i] * s)
                      : static_cast<int32_t>(0.5 + a.w[i] * s);
  return k;
}

// PyTorch's choice of precision for int16 weights (_compute_indices_int16_weights_aa).
int torch_precision(const AxisWeights& a) {
  double w_max = a.w[0];
  for (double v : a.w) w_max = std::max(w_max, v);
  int p = 0;
  for (; p < 22; ++p)
    if (static_cast<int>(0.5 + w_max * (1 << (p + 1))) >= (1 << 15)) break;
  return p;
}

inline uint8_t clamp_u8(int32_t v) {
  return static_cast<uint8_t>(std::clamp(v, 0, 255));
}

// One pass along an axis of an HWC image. `horizontal`: rows stay, columns resample.
void pass(const uint8_t* in, int in_h, int in_w, uint8_t* out, int out_h, int out_w,
          bool horizontal, const AxisWeights& a, const std::vector<int32_t>& k, int prec) {
  const int32_t half = 1 << (prec - 1);
  if (horizontal) {
    for (int y = 0; y < out_h; ++y) {
      const uint8_t* row = in + static_cast<size_t>(y) * in_w * 3;
      uint8_t* o = out + static_cast<size_t>(y) * out_w * 3;
      for (int x = 0; x < out_w; ++x) {
        const int32_t* kk = &k[static_cast<size_t>(x) * a.ksize];
        const uint8_t* p = row + static_cast<size_t>(a.xmin[static_cast<size_t>(x)]) * 3;
        int32_t s0 = half, s1 = half, s2 = half;
        for (int j = 0; j < a.size[static_cast<size_t>(x)]; ++j) {
          s0 += p[3 * j + 0] * kk[j];
          s1 += p[3 * j + 1] * kk[j];
          s2 += p[3 * j + 2] * kk[j];
        }
        o[3 * x + 0] = clamp_u8(s0 >> prec);
        o[3 * x + 1] = clamp_u8(s1 >> prec);
        o[3 * x + 2] = clamp_u8(s2 >> prec);
      }
    }
    return;
  }
  const size_t stride = static_cast<size_t>(in_w) * 3;
  for (int y = 0; y < out_h; ++y) {
    const int32_t* kk = &k[static_cast<size_t>(y) * a.ksize];
    const uint8_t* base = in + static_cast<size_t>(a.xmin[static_cast<size_t>(y)]) * stride;
    uint8_t* o = out + static_cast<size_t>(y) * stride;
    for (size_t c = 0; c < stride; ++c) {
      int32_t s = half;
      for (int j = 0; j < a.size[static_cast<size_t>(y)]; ++j) s += base[j * stride + c] * kk[j];
      o[c] = clamp_u8(s >> prec);
    }
  }
  (void)in_h;
}

}  // namespace

AxisWeights bicubic_aa_weights(int in_size, int out_size) {
  return axis_weights(in_size, out_size, cubic_torch);
}

RgbImage resize_bicubic(const RgbImage& src, int out_h, int out_w, ResizeBackend backend) {
  if (out_h <= 0 || out_w <= 0 || src.width <= 0 || src.height <= 0)
    throw DecodeError("resize: empty image or target size");
  RgbImage dst;
  dst.width = out_w;
  dst.height = out_h;
  dst.format = src.format;
  dst.mode = "RGB";
  const bool torch = backend == ResizeBackend::kTorchvision;
  auto filter = torch ? cubic_torch : cubic_pil;
  std::vector<uint8_t> cur = src.rgb;
  int h = src.height, w = src.width;
  if (out_w != w) {  // horizontal first, as both sources do
    const AxisWeights a = axis_weights(w, out_w, filter);
    const int prec = torch ? torch_precision(a) : 22;
    std::vector<uint8_t> tmp(static_cast<size_t>(h) * out_w * 3);
    pass(cur.data(), h, w, tmp.data(), h, out_w, true, a, int_weights(a, prec), prec);
    cur.swap(tmp);
    w = out_w;
  }
  if (out_h != h) {
    const AxisWeights a = axis_weights(h, out_h, filter);
    const int prec = torch ? torch_precision(a) : 22;
    std::vector<uint8_t> tmp(static_cast<size_t>(out_h) * w * 3);
    pass(cur.data(), h, w, tmp.data(), out_h, w, false, a, int_weights(a, prec), prec);
    cur.swap(tmp);
    h = out_h;
  }
  dst.rgb = std::move(cur);
  return dst;
}

std::vector<double> resize_reference(const RgbImage& src, int out_h, int out_w) {
  const AxisWeights ax = axis_weights(src.width, out_w, cubic_torch);
  const AxisWeights ay = axis_weights(src.height, out_h, cubic_torch);
  const int H = src.height;
  std::vector<double> tmp(static_cast<size_t>(H) * out_w * 3, 0.0);
  for (int y = 0; y < H; ++y)
    for (int x = 0; x < out_w; ++x)
      for (int c = 0; c < 3; ++c) {
        double s = 0.0;
        for (int j = 0; j < ax.size[static_cast<size_t>(x)]; ++j)
          s += ax.w[static_cast<size_t>(x) * ax.ksize + j] *
               src.rgb[(static_cast<size_t>(y) * src.width + ax.xmin[static_cast<size_t>(x)] + j) *
                           3 +
                       c];
        // Both libraries store the horizontal pass as uint8: round and clamp here too.
        tmp[(static_cast<size_t>(y) * out_w + x) * 3 + c] = std::clamp(std::round(s), 0.0, 255.0);
      }
  std::vector<double> out(static_cast<size_t>(out_h) * out_w * 3, 0.0);
  for (int y = 0; y < out_h; ++y)
    for (int x = 0; x < out_w; ++x)
      for (int c = 0; c < 3; ++c) {
        double s = 0.0;
        for (int j = 0; j < ay.size[static_cast<size_t>(y)]; ++j)
          s +=
              ay.w[static_cast<size_t>(y) * ay.ksize + j] *
              tmp[((static_cast<size_t>(ay.xmin[static_cast<size_t>(y)]) + j) * out_w + x) * 3 + c];
        out[(static_cast<size_t>(y) * out_w + x) * 3 + c] = s;
      }
  return out;
}

}  // namespace fc::media
