// Decoded images and the decoders (PNG: libpng, JPEG: libjpeg-turbo, WebP: libwebp, GIF: giflib,
// EXIF: libexif; Debian packages, see scripts/install-deps.sh). The result is what vLLM hands to
// the HF processor: ImageMediaIO(image_mode="RGB") (vllm/multimodal/media/image.py) converts with
// PIL before preprocessing, so the colour conversions here follow PIL's:
//  - RGBA (8 or 16 bit; 16 bit keeps the high byte, PIL rawmode "RGBA;16B") is pasted on a
//    background colour (default white) with alpha as the mask: out = (in·a + bg·(255−a) + 128)
//    then PIL's fast /255 (vllm/multimodal/image.py rgba_to_rgb; PIL Paste.c BLEND);
//  - every other mode goes through PIL convert("RGB"), which drops alpha: LA and palette or
//    tRNS transparency are ignored; L replicates; 16-bit grey clips to 255 (PIL "I;16" -> RGB);
//    16-bit RGB keeps the high byte; CMYK JPEGs are read inverted (Adobe convention, PIL
//    "CMYK;I") and converted with PIL's cmyk2rgb;
//  - GIF and animated WebP: the first frame.
// EXIF orientation is not applied by vLLM or HF; DecodeOptions::exif_transpose opts in.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/error.h"

namespace fc::media {

// 8-bit RGB, row-major HWC.
struct RgbImage {
  int width = 0, height = 0;
  std::vector<uint8_t> rgb;  // [height, width, 3]
  std::string format;        // "png", "jpeg", "webp", "gif"
  std::string mode;          // PIL's name of the decoded mode: RGB, RGBA, L, LA, P, I;16, CMYK
};

struct DecodeOptions {
  // PIL refuses images above 2 × Image.MAX_IMAGE_PIXELS (89478485) with DecompressionBombError;
  // the header's size is checked before any pixel memory is taken.
  int64_t max_pixels = 178956970;
  uint8_t background[3] = {255, 255, 255};  // vLLM's rgba_background_color
  bool exif_transpose = false;              // apply the EXIF orientation (PIL ImageOps)
};

// Thrown for bytes that are not a decodable image of a supported format, or exceed the limits;
// the message says which (the server answers 400).
class DecodeError : public fc::Error {
 public:
  explicit DecodeError(const std::string& what) : fc::Error(what) {}
};

// "png", "jpeg", "webp", "gif" from the magic bytes, or "" when none matches.
std::string sniff_image_format(std::span<const uint8_t> bytes);

RgbImage decode_image(std::span<const uint8_t> bytes, const DecodeOptions& options = {});

// EXIF orientation (1..8) of a JPEG APP1 payload starting with "Exif\0\0"; 1 when absent.
int exif_orientation(std::span<const uint8_t> app1);
// PIL ImageOps.exif_transpose for orientation 2..8.
void apply_orientation(RgbImage& img, int orientation);

}  // namespace fc::media
