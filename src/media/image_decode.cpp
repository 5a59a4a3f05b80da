// Image decoders over Debian's libraries; colour conversions as PIL's (see image.h).
#include <algorithm>
#include <csetjmp>
#include <cstdio>
#include <cstring>

#include <gif_lib.h>
#include <jerror.h>
#include <jpeglib.h>
#include <libexif/exif-data.h>
#include <png.h>
#include <webp/decode.h>
#include <webp/demux.h>

#include "media/image.h"

namespace fc::media {
namespace {

void check_size(int64_t w, int64_t h, const DecodeOptions& o, const char* fmt) {
  if (w <= 0 || h <= 0)
    throw DecodeError(std::string("cannot identify image file: the ") + fmt +
                      " header gives a zero image size");
  if (w * h > o.max_pixels)
    throw DecodeError("Image size (" + std::to_string(w * h) + " pixels) exceeds limit of " +
                      std::to_string(o.max_pixels) +
                      " pixels, could be decompression bomb DOS attack.");
}

// PIL's paste(img, mask=alpha) over a solid background (Paste.c BLEND / DIV255).
inline uint8_t blend(uint8_t bg, uint8_t in, uint8_t a) {
  const int t = bg * (255 - a) + in * a + 128;
  return static_cast<uint8_t>(((t >> 8) + t) >> 8);
}

// PIL's fast a·b/255 (MULDIV255) and cmyk2rgb (Convert.c).
inline int muldiv255(int a, int b) {
  const int t = a * b + 128;
  return ((t >> 8) + t) >> 8;
}

// A tRNS / GIF transparency colour: vLLM's convert("RGB") keeps it as info["transparency"], and
// HF's convert_to_rgb turns pixels of exactly that colour transparent and composites them onto
// white (transformers image_transforms.py), so they end up (255, 255, 255).
void whiten_key(std::vector<uint8_t>& rgb, int r, int g, int b) {
  if (r > 255 || g > 255 || b > 255 || r < 0 || g < 0 || b < 0) return;  // 16-bit keys: no match
  for (size_t i = 0; i + 2 < rgb.size(); i += 3)
    if (rgb[i] == r && rgb[i + 1] == g && rgb[i + 2] == b) rgb[i] = rgb[i + 1] = rgb[i + 2] = 255;
}

RgbImage make(int w, int h, const char* format, const char* mode) {
  RgbImage img;
  img.width = w;
  img.height = h;
  img.format = format;
  img.mode = mode;
  img.rgb.resize(static_cast<size_t>(w) * h * 3);
  return img;
}

// ---- PNG (libpng) ----

struct PngReader {
  std::span<const uint8_t> data;
  size_t pos = 0;
  std::string error;
};

void png_read_fn(png_structp png, png_bytep out, png_size_t n) {
  auto* r = static_cast<PngReader*>(png_get_io_ptr(png));
  if (r->pos + n > r->data.size()) {
    r->error = "image file is truncated";
    png_error(png, "truncated");
  }
  std::memcpy(out, r->data.data() + r->pos, n);
  r->pos += n;
}

void png_error_fn(png_structp png, png_const_charp msg) {
  auto* r = static_cast<PngReader*>(png_get_io_ptr(png));
  if (r && r->error.empty()) r->error = msg;
  png_longjmp(png, 1);
}
void png_warn_fn(png_structp, png_const_charp) {}

// Decodes into `raw` (channels × bit depth as stored, palette expanded by us) then converts.
// Everything with a destructor lives in the caller's frame across the setjmp.
struct PngKey {
  bool on = false;
  int r = 0, g = 0, b = 0;  // colour to compare (raw tRNS values)
  int index = -1;           // palette: the one fully transparent entry
};

bool png_decode_raw(PngReader& rd, std::vector<uint8_t>& raw, png_uint_32& w, png_uint_32& h,
                    int& color, int& depth, std::vector<png_color>& palette, PngKey& key,
                    const DecodeOptions& o) {
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &rd, png_error_fn, png_warn_fn);
  if (!png) {
    rd.error = "out of memory";
    return false;
  }
  png_infop info = png_create_info_struct(png);
  if (!info) {
    png_destroy_read_struct(&png, nullptr, nullptr);
    rd.error = "out of memory";
    return false;
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    return false;
  }
  png_set_read_fn(png, &rd, png_read_fn);
  png_set_user_limits(png, 0x7fffffff, 0x7fffffff);
  png_set_chunk_malloc_max(png, 64u << 20);  // bounds zTXt/iCCP inflation
  png_read_info(png, info);
  w = png_get_image_width(png, info);
  h = png_get_image_height(png, info);
  color = png_get_color_type(png, info);
  depth = png_get_bit_depth(png, info);
  try {
    check_size(w, h, o, "PNG");
  } catch (const DecodeError& e) {
    rd.error = e.what();
    png_destroy_read_struct(&png, &info, nullptr);
    return false;
  }
  if (png_get_valid(png, info, PNG_INFO_tRNS)) {
    png_bytep alpha = nullptr;
    int n_alpha = 0;
    png_color_16p c = nullptr;
    png_get_tRNS(png, info, &alpha, &n_alpha, &c);
    if (color == PNG_COLOR_TYPE_PALETTE && alpha) {
      // PIL keeps a single index only when the entries are all 255 but one 0 (_simple_palette);
      // per-entry alphas become bytes, which convert("RGB") drops.
      int zeros = 0, other = 0, at = -1;
      for (int i = 0; i < n_alpha; ++i) {
        if (alpha[i] == 0) {
          ++zeros;
          at = i;
        } else if (alpha[i] != 255) {
          ++other;
        }
      }
      if (zeros == 1 && other == 0) {
        key.on = true;
        key.index = at;
      }
    } else if (c && color == PNG_COLOR_TYPE_GRAY && depth <= 8) {
      key = {true, c->gray, c->gray, c->gray, -1};
    } else if (c && color == PNG_COLOR_TYPE_RGB) {
      key = {true, c->red, c->green, c->blue, -1};
    }
  }
  if (color == PNG_COLOR_TYPE_PALETTE) {
    png_colorp pal = nullptr;
    int n = 0;
    if (png_get_PLTE(png, info, &pal, &n)) palette.assign(pal, pal + n);
    png_set_packing(png);  // indices as bytes
  } else if (depth < 8) {
    png_set_expand_gray_1_2_4_to_8(png);  // 0..2^d-1 scaled to 0..255, as PIL's L;1/L;2/L;4
  }
  // tRNS is ignored (PIL keeps it as info["transparency"]; convert("RGB") drops it).
  if (depth == 16) png_set_swap(png);  // little-endian 16-bit words
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  const size_t rowbytes = png_get_rowbytes(png, info);
  raw.resize(rowbytes * h);
  std::vector<png_bytep> rows(h);
  for (png_uint_32 y = 0; y < h; ++y) rows[y] = raw.data() + y * rowbytes;
  png_read_image(png, rows.data());
  png_read_end(png, nullptr);
  png_destroy_read_struct(&png, &info, nullptr);
  return true;
}

RgbImage decode_png_rgb(std::span<const uint8_t> bytes, const DecodeOptions& o, PngKey& key) {
  // The size from IHDR (bytes 16..23, big-endian) before libpng reads further: a bomb or a bare
  // header is refused by its size, not by running out of data.
  if (bytes.size() >= 24 && std::memcmp(bytes.data() + 12, "IHDR", 4) == 0) {
    auto be32 = [&](size_t at) {
      return (uint32_t{bytes[at]} << 24) | (uint32_t{bytes[at + 1]} << 16) |
             (uint32_t{bytes[at + 2]} << 8) | uint32_t{bytes[at + 3]};
    };
    check_size(be32(16), be32(20), o, "PNG");
  }
  PngReader rd{bytes, 0, {}};
  std::vector<uint8_t> raw;
  std::vector<png_color> palette;
  png_uint_32 w = 0, h = 0;
  int color = 0, depth = 0;
  if (!png_decode_raw(rd, raw, w, h, color, depth, palette, key, o))
    throw DecodeError(
        rd.error.rfind("Image size", 0) == 0 ? rd.error : "cannot decode PNG image: " + rd.error);
  const bool d16 = depth == 16;
  const size_t n = static_cast<size_t>(w) * h;
  auto px16 = [&](size_t i) { return static_cast<int>(raw[2 * i] | (raw[2 * i + 1] << 8)); };
  auto px = [&](size_t i) { return d16 ? px16(i) >> 8 : static_cast<int>(raw[i]); };
  switch (color) {
    case PNG_COLOR_TYPE_GRAY: {
      RgbImage img = make(static_cast<int>(w), static_cast<int>(h), "png", d16 ? "I;16" : "L");
      for (size_t i = 0; i < n; ++i) {
        // PIL opens 16-bit grey as I;16; convert("RGB") clips the value to 255.
        const int v = d16 ? std::min(px16(i), 255) : raw[i];
        std::memset(&img.rgb[3 * i], v, 3);
      }
      return img;
    }
    case PNG_COLOR_TYPE_GRAY_ALPHA: {  // PIL "LA": convert("RGB") drops alpha
      RgbImage img = make(static_cast<int>(w), static_cast<int>(h), "png", "LA");
      for (size_t i = 0; i < n; ++i) std::memset(&img.rgb[3 * i], px(2 * i), 3);
      return img;
    }
    case PNG_COLOR_TYPE_PALETTE: {
      if (key.on) {
        const png_color c = static_cast<size_t>(key.index) < palette.size()
                                ? palette[static_cast<size_t>(key.index)]
                                : png_color{0, 0, 0};
        key.r = c.red;
        key.g = c.green;
        key.b = c.blue;
      }
      RgbImage img = make(static_cast<int>(w), static_cast<int>(h), "png", "P");
      for (size_t i = 0; i < n; ++i) {
        const size_t k = raw[i];
        // An index past the palette reads black, as PIL's zero-filled 256-entry palette.
        const png_color c = k < palette.size() ? palette[k] : png_color{0, 0, 0};
        img.rgb[3 * i + 0] = c.red;
        img.rgb[3 * i + 1] = c.green;
        img.rgb[3 * i + 2] = c.blue;
      }
      return img;
    }
    case PNG_COLOR_TYPE_RGB: {
      RgbImage img = make(static_cast<int>(w), static_cast<int>(h), "png", "RGB");
      for (size_t i = 0; i < 3 * n; ++i) img.rgb[i] = static_cast<uint8_t>(px(i));
      return img;
    }
    case PNG_COLOR_TYPE_RGB_ALPHA: {
      RgbImage img = make(static_cast<int>(w), static_cast<int>(h), "png", "RGBA");
      for (size_t i = 0; i < n; ++i) {
        const uint8_t a = static_cast<uint8_t>(px(4 * i + 3));
        for (int c = 0; c < 3; ++c)
          img.rgb[3 * i + c] = blend(o.background[c], static_cast<uint8_t>(px(4 * i + c)), a);
      }
      return img;
    }
    default:
      throw DecodeError("cannot decode PNG image: unsupported colour type " +
                        std::to_string(color));
  }
}

RgbImage decode_png(std::span<const uint8_t> bytes, const DecodeOptions& o) {
  PngKey key;
  RgbImage img = decode_png_rgb(bytes, o, key);
  if (key.on) whiten_key(img.rgb, key.r, key.g, key.b);
  return img;
}

// ---- JPEG (libjpeg-turbo) ----

struct JpegErr {
  jpeg_error_mgr mgr;
  jmp_buf jmp;
  char msg[JMSG_LENGTH_MAX] = {0};
};

void jpeg_error_exit_fn(j_common_ptr c) {
  auto* e = reinterpret_cast<JpegErr*>(c->err);
  c->err->format_message(c, e->msg);
  std::longjmp(e->jmp, 1);
}

void jpeg_emit_fn(j_common_ptr c, int level) {
  // A premature end of data is a warning to libjpeg (it pads with grey); PIL refuses the image
  // ("image file is truncated"), so make it an error.
  if (level < 0 && c->err->msg_code == JWRN_JPEG_EOF) jpeg_error_exit_fn(c);
}

struct JpegOut {
  std::vector<uint8_t> pix;
  std::vector<uint8_t> exif;
  int w = 0, h = 0, comps = 0;
  J_COLOR_SPACE space = JCS_UNKNOWN;
  std::string size_error;
};

bool jpeg_decode_raw(std::span<const uint8_t> bytes, JpegOut& out, const DecodeOptions& o,
                     std::string& err) {
  jpeg_decompress_struct cinfo;
  JpegErr jerr;
  cinfo.err = jpeg_std_error(&jerr.mgr);
  jerr.mgr.error_exit = jpeg_error_exit_fn;
  jerr.mgr.emit_message = jpeg_emit_fn;
  if (setjmp(jerr.jmp)) {
    err = jerr.msg;
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, bytes.data(), static_cast<unsigned long>(bytes.size()));
  jpeg_save_markers(&cinfo, JPEG_APP0 + 1, 0xffff);
  jpeg_read_header(&cinfo, TRUE);
  out.w = static_cast<int>(cinfo.image_width);
  out.h = static_cast<int>(cinfo.image_height);
  if (out.w <= 0 || out.h <= 0 || static_cast<int64_t>(out.w) * out.h > o.max_pixels) {
    out.size_error = "size";
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  for (jpeg_saved_marker_ptr m = cinfo.marker_list; m; m = m->next)
    if (m->marker == JPEG_APP0 + 1 && m->data_length >= 6 &&
        std::memcmp(m->data, "Exif\0\0", 6) == 0)
      out.exif.assign(m->data, m->data + m->data_length);
  // PIL's defaults: islow DCT, fancy upsampling; output RGB, L or CMYK.
  if (cinfo.jpeg_color_space == JCS_GRAYSCALE) {
    cinfo.out_color_space = JCS_GRAYSCALE;
  } else if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
    cinfo.out_color_space = JCS_CMYK;
  } else {
    cinfo.out_color_space = JCS_RGB;
  }
  cinfo.dct_method = JDCT_ISLOW;
  jpeg_start_decompress(&cinfo);
  out.comps = cinfo.output_components;
  out.space = cinfo.out_color_space;
  const size_t stride = static_cast<size_t>(out.w) * out.comps;
  out.pix.resize(stride * out.h);
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = out.pix.data() + stride * cinfo.output_scanline;
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return true;
}

RgbImage decode_jpeg(std::span<const uint8_t> bytes, const DecodeOptions& o) {
  JpegOut j;
  std::string err;
  if (!jpeg_decode_raw(bytes, j, o, err)) {
    if (!j.size_error.empty()) check_size(j.w, j.h, o, "JPEG");
    throw DecodeError("cannot decode JPEG image: " + err);
  }
  const size_t n = static_cast<size_t>(j.w) * j.h;
  RgbImage img;
  if (j.space == JCS_GRAYSCALE) {
    img = make(j.w, j.h, "jpeg", "L");
    for (size_t i = 0; i < n; ++i) std::memset(&img.rgb[3 * i], j.pix[i], 3);
  } else if (j.space == JCS_CMYK) {
    // PIL reads CMYK JPEGs inverted ("CMYK;I", the Adobe convention), then cmyk2rgb.
    img = make(j.w, j.h, "jpeg", "CMYK");
    for (size_t i = 0; i < n; ++i) {
      const int k = 255 - j.pix[4 * i + 3];
      const int nk = 255 - k;
      for (int c = 0; c < 3; ++c) {
        const int v = 255 - j.pix[4 * i + c];
        img.rgb[3 * i + c] = static_cast<uint8_t>(std::clamp(nk - muldiv255(v, nk), 0, 255));
      }
    }
  } else {
    img = make(j.w, j.h, "jpeg", "RGB");
    img.rgb = std::move(j.pix);
  }
  if (o.exif_transpose && !j.exif.empty()) apply_orientation(img, exif_orientation(j.exif));
  return img;
}

// ---- WebP (libwebp; the animation decoder, as Pillow uses for every WebP) ----

RgbImage decode_webp(std::span<const uint8_t> bytes, const DecodeOptions& o) {
  WebPBitstreamFeatures f;
  if (WebPGetFeatures(bytes.data(), bytes.size(), &f) != VP8_STATUS_OK)
    throw DecodeError("cannot decode WebP image: bad bitstream header");
  WebPData data{bytes.data(), bytes.size()};
  WebPAnimDecoderOptions opt;
  WebPAnimDecoderOptionsInit(&opt);
  opt.color_mode = MODE_RGBA;
  opt.use_threads = 0;
  WebPAnimDecoder* dec = WebPAnimDecoderNew(&data, &opt);
  if (!dec) throw DecodeError("cannot decode WebP image: bad container");
  WebPAnimInfo info;
  if (!WebPAnimDecoderGetInfo(dec, &info)) {
    WebPAnimDecoderDelete(dec);
    throw DecodeError("cannot decode WebP image: bad container");
  }
  try {
    check_size(info.canvas_width, info.canvas_height, o, "WebP");
  } catch (...) {
    WebPAnimDecoderDelete(dec);
    throw;
  }
  uint8_t* buf = nullptr;
  int ts = 0;
  if (!WebPAnimDecoderGetNext(dec, &buf, &ts)) {
    WebPAnimDecoderDelete(dec);
    throw DecodeError("cannot decode WebP image: truncated or corrupt frame");
  }
  const int w = static_cast<int>(info.canvas_width), h = static_cast<int>(info.canvas_height);
  const bool alpha = f.has_alpha || f.has_animation;
  RgbImage img = make(w, h, "webp", alpha ? "RGBA" : "RGB");
  const size_t n = static_cast<size_t>(w) * h;
  for (size_t i = 0; i < n; ++i)
    for (int c = 0; c < 3; ++c)
      img.rgb[3 * i + c] =
          alpha ? blend(o.background[c], buf[4 * i + c], buf[4 * i + 3]) : buf[4 * i + c];
  WebPAnimDecoderDelete(dec);
  return img;
}

// ---- GIF (giflib): the first frame ----

struct GifReader {
  std::span<const uint8_t> data;
  size_t pos = 0;
};

int gif_read_fn(GifFileType* g, GifByteType* out, int n) {
  auto* r = static_cast<GifReader*>(g->UserData);
  const size_t k = std::min<size_t>(static_cast<size_t>(n), r->data.size() - r->pos);
  std::memcpy(out, r->data.data() + r->pos, k);
  r->pos += k;
  return static_cast<int>(k);
}

RgbImage decode_gif(std::span<const uint8_t> bytes, const DecodeOptions& o) {
  GifReader rd{bytes, 0};
  int err = 0;
  GifFileType* g = DGifOpen(&rd, gif_read_fn, &err);
  if (!g) throw DecodeError(std::string("cannot decode GIF image: ") + GifErrorString(err));
  struct Closer {
    GifFileType* g;
    ~Closer() {
      int e = 0;
      DGifCloseFile(g, &e);
    }
  } closer{g};
  check_size(g->SWidth, g->SHeight, o, "GIF");
  const int W = g->SWidth, H = g->SHeight;
  // Canvas outside the first frame: the background colour index (Pillow fills frame 0's canvas
  // with info["background"]).
  std::vector<uint8_t> idx(static_cast<size_t>(W) * H, static_cast<uint8_t>(g->SBackGroundColor));
  GifRecordType rec;
  int trns = -1;  // transparent index of the first frame (Pillow: info["transparency"])
  for (;;) {
    if (DGifGetRecordType(g, &rec) == GIF_ERROR)
      throw DecodeError(std::string("cannot decode GIF image: ") + GifErrorString(g->Error));
    if (rec == TERMINATE_RECORD_TYPE) throw DecodeError("cannot decode GIF image: no frame");
    if (rec == EXTENSION_RECORD_TYPE) {
      int code = 0;
      GifByteType* ext = nullptr;
      if (DGifGetExtension(g, &code, &ext) == GIF_ERROR)
        throw DecodeError("cannot decode GIF image: bad extension block");
      // Graphics control: [size 4][flags][delay lo][delay hi][transparent index].
      if (code == GRAPHICS_EXT_FUNC_CODE && ext && ext[0] >= 4 && (ext[1] & 1)) trns = ext[4];
      while (ext)
        if (DGifGetExtensionNext(g, &ext) == GIF_ERROR)
          throw DecodeError("cannot decode GIF image: bad extension block");
      continue;
    }
    if (rec != IMAGE_DESC_RECORD_TYPE) continue;
    if (DGifGetImageDesc(g) == GIF_ERROR)
      throw DecodeError(std::string("cannot decode GIF image: ") + GifErrorString(g->Error));
    const GifImageDesc& d = g->Image;
    if (d.Left < 0 || d.Top < 0 || d.Width <= 0 || d.Height <= 0 || d.Left + d.Width > W ||
        d.Top + d.Height > H)
      throw DecodeError("cannot decode GIF image: frame outside the logical screen");
    std::vector<GifPixelType> line(static_cast<size_t>(d.Width));
    auto read_row = [&](int y) {
      if (DGifGetLine(g, line.data(), d.Width) == GIF_ERROR)
        throw DecodeError("image file is truncated (GIF frame)");
      std::memcpy(&idx[static_cast<size_t>(d.Top + y) * W + d.Left], line.data(), line.size());
    };
    if (d.Interlace) {
      static const int start[4] = {0, 4, 2, 1}, step[4] = {8, 8, 4, 2};
      for (int pass = 0; pass < 4; ++pass)
        for (int y = start[pass]; y < d.Height; y += step[pass]) read_row(y);
    } else {
      for (int y = 0; y < d.Height; ++y) read_row(y);
    }
    const ColorMapObject* cm = d.ColorMap ? d.ColorMap : g->SColorMap;
    RgbImage img = make(W, H, "gif", "P");
    for (size_t i = 0; i < idx.size(); ++i) {
      GifColorType c{0, 0, 0};
      if (cm && idx[i] < cm->ColorCount) c = cm->Colors[idx[i]];
      img.rgb[3 * i + 0] = c.Red;
      img.rgb[3 * i + 1] = c.Green;
      img.rgb[3 * i + 2] = c.Blue;
    }
    if (trns >= 0 && cm && trns < cm->ColorCount)
      whiten_key(img.rgb, cm->Colors[trns].Red, cm->Colors[trns].Green, cm->Colors[trns].Blue);
    return img;
  }
}

}  // namespace

std::string sniff_image_format(std::span<const uint8_t> b) {
  auto starts = [&](const char* m, size_t n, size_t at = 0) {
    return b.size() >= at + n && std::memcmp(b.data() + at, m, n) == 0;
  };
  if (starts("\x89PNG\r\n\x1a\n", 8)) return "png";
  if (starts("\xff\xd8\xff", 3)) return "jpeg";
  if (starts("RIFF", 4) && starts("WEBP", 4, 8)) return "webp";
  if (starts("GIF87a", 6) || starts("GIF89a", 6)) return "gif";
  return "";
}

RgbImage decode_image(std::span<const uint8_t> bytes, const DecodeOptions& options) {
  const std::string fmt = sniff_image_format(bytes);
  if (fmt == "png") return decode_png(bytes, options);
  if (fmt == "jpeg") return decode_jpeg(bytes, options);
  if (fmt == "webp") return decode_webp(bytes, options);
  if (fmt == "gif") return decode_gif(bytes, options);
  throw DecodeError(bytes.empty() ? "cannot identify image file: no data"
                                  : "cannot identify image file (not PNG, JPEG, WebP or GIF)");
}

int exif_orientation(std::span<const uint8_t> app1) {
  ExifData* ed = exif_data_new_from_data(app1.data(), static_cast<unsigned int>(app1.size()));
  if (!ed) return 1;
  int v = 1;
  if (ExifEntry* e = exif_content_get_entry(ed->ifd[EXIF_IFD_0], EXIF_TAG_ORIENTATION)) {
    if (e->format == EXIF_FORMAT_SHORT && e->components >= 1)
      v = exif_get_short(e->data, exif_data_get_byte_order(ed));
  }
  exif_data_unref(ed);
  return (v >= 1 && v <= 8) ? v : 1;
}

void apply_orientation(RgbImage& img, int o) {
  if (o < 2 || o > 8) return;
  const int W = img.width, H = img.height;
  const bool swap = o >= 5;  // 5..8 transpose the axes
  const int OW = swap ? H : W, OH = swap ? W : H;
  std::vector<uint8_t> out(img.rgb.size());
  for (int y = 0; y < OH; ++y)
    for (int x = 0; x < OW; ++x) {
      int sx = 0, sy = 0;  // source pixel shown at (x, y) (PIL ImageOps.exif_transpose)
      switch (o) {
        case 2:
          sx = W - 1 - x;
          sy = y;
          break;  // mirror
        case 3:
          sx = W - 1 - x;
          sy = H - 1 - y;
          break;  // rotate 180
        case 4:
          sx = x;
          sy = H - 1 - y;
          break;  // flip
        case 5:
          sx = y;
          sy = x;
          break;  // transpose
        case 6:
          sx = y;
          sy = H - 1 - x;
          break;  // rotate 270 (90 CW)
        case 7:
          sx = W - 1 - y;
          sy = H - 1 - x;
          break;  // transverse
        case 8:
          sx = W - 1 - y;
          sy = x;
          break;  // rotate 90 (CCW)
      }
      std::memcpy(&out[(static_cast<size_t>(y) * OW + x) * 3],
                  &img.rgb[(static_cast<size_t>(sy) * W + sx) * 3], 3);
    }
  img.rgb.swap(out);
  img.width = OW;
  img.height = OH;
}

}  // namespace fc::media
