#include "media/video_decode.h"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/imgutils.h>
#include <libavutil/log.h>
#include <libswscale/swscale.h>
}

#include <algorithm>
#include <cmath>
#include <cstring>
#include <mutex>

namespace fc::media {
namespace {

constexpr int kIoBuffer = 1 << 16;

std::string av_error(int e) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {};
  av_strerror(e, buf, sizeof buf);
  return buf;
}

// The bytes as a read-only, seekable AVIOContext source.
struct MemoryReader {
  const uint8_t* data = nullptr;
  int64_t size = 0;
  int64_t pos = 0;

  static int read(void* opaque, uint8_t* buf, int n) {
    auto* r = static_cast<MemoryReader*>(opaque);
    const int64_t left = r->size - r->pos;
    if (left <= 0) return AVERROR_EOF;
    const int k = static_cast<int>(std::min<int64_t>(n, left));
    std::memcpy(buf, r->data + r->pos, static_cast<size_t>(k));
    r->pos += k;
    return k;
  }
  static int64_t seek(void* opaque, int64_t offset, int whence) {
    auto* r = static_cast<MemoryReader*>(opaque);
    whence &= ~AVSEEK_FORCE;
    if (whence == AVSEEK_SIZE) return r->size;
    int64_t base = 0;
    if (whence == SEEK_CUR)
      base = r->pos;
    else if (whence == SEEK_END)
      base = r->size;
    else if (whence != SEEK_SET)
      return AVERROR(EINVAL);
    const int64_t p = base + offset;
    if (p < 0 || p > r->size) return AVERROR(EINVAL);
    r->pos = p;
    return p;
  }
};

// A demuxer must never open another resource (HLS playlists, concat lists, image sequences
// name files and URLs): every nested open is refused.
int refuse_nested_open(AVFormatContext*, AVIOContext**, const char*, int, AVDictionary**) {
  return AVERROR(EPERM);
}

// FFmpeg logs corrupt-stream diagnostics to stderr; the errors thrown here carry what matters.
void quiet_ffmpeg_log() {
  static std::once_flag once;
  std::call_once(once, [] { av_log_set_level(AV_LOG_QUIET); });
}

// Everything one decode holds, released in the right order.
class Session {
 public:
  Session(std::span<const uint8_t> bytes, const VideoLimits& lim) : lim_(lim) {
    quiet_ffmpeg_log();
    if (bytes.empty()) throw DecodeError("the video is empty (0 bytes)");
    if (static_cast<int64_t>(bytes.size()) > lim.max_bytes)
      throw DecodeError("the video is " + std::to_string(bytes.size()) +
                        " bytes, over the limit of " + std::to_string(lim.max_bytes));
    reader_.data = bytes.data();
    reader_.size = static_cast<int64_t>(bytes.size());
    auto* buf = static_cast<unsigned char*>(av_malloc(kIoBuffer));
    if (!buf) throw DecodeError("out of memory opening the video");
    pb_ = avio_alloc_context(buf, kIoBuffer, 0, &reader_, &MemoryReader::read, nullptr,
                             &MemoryReader::seek);
    if (!pb_) {
      av_free(buf);
      throw DecodeError("out of memory opening the video");
    }
    fmt_ = avformat_alloc_context();
    if (!fmt_) throw DecodeError("out of memory opening the video");
    fmt_->pb = pb_;
    fmt_->flags |= AVFMT_FLAG_CUSTOM_IO;
    fmt_->io_open = &refuse_nested_open;
    int e = avformat_open_input(&fmt_, nullptr, nullptr, nullptr);  // frees fmt_ on failure
    if (e < 0) throw DecodeError("not a video container FFmpeg can read (" + av_error(e) + ")");
    // Sizes the container states (MP4 sample entries, Matroska tracks) are checked before any
    // frame is decoded, with vLLM's message.
    for (unsigned i = 0; i < fmt_->nb_streams; ++i) {
      const AVCodecParameters* cp = fmt_->streams[i]->codecpar;
      if (cp->codec_type == AVMEDIA_TYPE_VIDEO && cp->width > 0 && cp->height > 0)
        check_size(cp->width, cp->height);
    }
    // find_stream_info decodes a few frames with its own decoders: bound their frame size too
    // (AVCodecContext.max_pixels), so a bomb's header size is refused below, not allocated.
    std::vector<AVDictionary*> opts(fmt_->nb_streams, nullptr);
    for (AVDictionary*& d : opts) {
      av_dict_set_int(&d, "max_pixels", lim.max_pixels, 0);
      av_dict_set(&d, "threads", "1", 0);
    }
    e = avformat_find_stream_info(fmt_, opts.empty() ? nullptr : opts.data());
    for (AVDictionary*& d : opts) av_dict_free(&d);
    if (e < 0)
      throw DecodeError("cannot read the video's stream information (" + av_error(e) + ")");
    const AVCodec* codec = nullptr;
    stream_ = av_find_best_stream(fmt_, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
    if (stream_ == AVERROR_STREAM_NOT_FOUND)
      throw DecodeError(std::string("the ") + fmt_->iformat->name +
                        " container has no video stream");
    AVStream* st = fmt_->streams[stream_ < 0 ? 0 : stream_];
    if (stream_ < 0 || !codec)
      throw DecodeError(std::string("unsupported video codec '") +
                        avcodec_get_name(st->codecpar->codec_id) + "'");
    info_.container = fmt_->iformat->name;
    info_.codec = avcodec_get_name(st->codecpar->codec_id);
    info_.width = st->codecpar->width;
    info_.height = st->codecpar->height;
    check_size(info_.width, info_.height);
    // OpenCV's CvCapture_FFMPEG get_duration_sec / get_fps / get_total_frames.
    if (fmt_->duration != AV_NOPTS_VALUE && fmt_->duration > 0)
      info_.duration = static_cast<double>(fmt_->duration) / AV_TIME_BASE;
    else if (st->duration != AV_NOPTS_VALUE && st->duration > 0)
      info_.duration = static_cast<double>(st->duration) * av_q2d(st->time_base);
    const AVRational rate = av_guess_frame_rate(fmt_, st, nullptr);
    if (rate.num > 0 && rate.den > 0) info_.fps = av_q2d(rate);
    if (!(info_.duration <= lim.max_duration_s))
      throw DecodeError("the video lasts " + std::to_string(info_.duration) +
                        " s, over the limit of " + std::to_string(lim.max_duration_s) + " s");
    const double est = std::floor(info_.duration * info_.fps + 0.5);
    if (st->nb_frames > 0)
      info_.total_frames = st->nb_frames;
    else if (est > static_cast<double>(lim.max_frames))
      info_.total_frames = lim.max_frames + 1;
    else
      info_.total_frames = static_cast<int64_t>(est);
    if (info_.total_frames > lim.max_frames)
      throw DecodeError("the video has " + std::to_string(info_.total_frames) +
                        " frames, over the limit of " + std::to_string(lim.max_frames));
    codec_ = codec;
  }

  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  const VideoInfo& info() const { return info_; }

  DecodedVideo decode(std::vector<int64_t> want) {
    DecodedVideo out;
    out.info = info_;
    std::sort(want.begin(), want.end());
    want.erase(std::unique(want.begin(), want.end()), want.end());
    while (!want.empty() && want.front() < 0) want.erase(want.begin());
    if (want.empty()) return out;
    if (want.back() >= lim_.max_decoded_frames)
      throw DecodeError("reaching frame " + std::to_string(want.back()) + " needs more than " +
                        std::to_string(lim_.max_decoded_frames) + " decoded frames (the limit)");
    dec_ = avcodec_alloc_context3(codec_);
    if (!dec_) throw DecodeError("out of memory opening the video decoder");
    int e = avcodec_parameters_to_context(dec_, fmt_->streams[stream_]->codecpar);
    if (e < 0) throw DecodeError("bad " + info_.codec + " parameters (" + av_error(e) + ")");
    dec_->thread_count = 1;  // deterministic, and the server's cores belong to the model
    dec_->max_pixels = lim_.max_pixels;
    e = avcodec_open2(dec_, codec_, nullptr);
    if (e < 0)
      throw DecodeError("cannot open the " + info_.codec + " decoder (" + av_error(e) + ")");
    pkt_ = av_packet_alloc();
    frame_ = av_frame_alloc();
    if (!pkt_ || !frame_) throw DecodeError("out of memory decoding the video");

    size_t next = 0;     // next wanted index (position in `want`)
    int64_t index = 0;   // frames output so far
    int64_t pixels = 0;  // Σ w·h decoded
    bool draining = false;
    auto take_frames = [&]() {
      while (next < want.size()) {
        const int r = avcodec_receive_frame(dec_, frame_);
        if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) return r;
        if (r < 0) return r;  // a broken frame: treated as the end, as OpenCV's grab fails
        check_size(frame_->width, frame_->height);
        pixels += static_cast<int64_t>(frame_->width) * frame_->height;
        if (pixels > lim_.max_decoded_pixels)
          throw DecodeError("decoding the video needs more than " +
                            std::to_string(lim_.max_decoded_pixels) + " pixels (the limit)");
        if (index == want[next]) {
          out.frames.push_back(to_rgb(frame_));
          out.indices.push_back(index);
          ++next;
        }
        av_frame_unref(frame_);
        ++index;
      }
      return 0;
    };
    while (next < want.size()) {
      if (!draining) {
        e = av_read_frame(fmt_, pkt_);
        if (e < 0) {  // end of file, or a truncated / corrupt container: drain what is buffered
          draining = true;
          avcodec_send_packet(dec_, nullptr);
        } else if (pkt_->stream_index != stream_) {
          av_packet_unref(pkt_);
          continue;
        } else {
          e = avcodec_send_packet(dec_, pkt_);
          av_packet_unref(pkt_);
          (void)e;  // an undecodable packet is skipped (the decoder resyncs on the next one)
        }
      }
      const int r = take_frames();
      if (draining && r != AVERROR(EAGAIN)) break;  // EOF or an error after the flush
    }
    if (out.frames.empty())
      throw DecodeError("no frame could be decoded from the " + info_.codec +
                        " stream (truncated or corrupt?)");
    return out;
  }

 private:
  void check_size(int w, int h) const {
    if (w <= 0 || h <= 0)  // also what a bomb's frames leave once max_pixels refused them
      throw DecodeError("the video stream has no usable frame size (" + std::to_string(w) + "x" +
                        std::to_string(h) +
                        "): its frames cannot be decoded, or exceed the maximum of " +
                        std::to_string(lim_.max_pixels) + " pixels");
    const int64_t px = static_cast<int64_t>(w) * h;
    if (px > lim_.max_pixels || w > lim_.max_side || h > lim_.max_side)
      // vLLM's check_frame_pixel_limit message (vllm/multimodal/video_decoders/base.py)
      throw DecodeError("Video frame dimensions " + std::to_string(w) + "x" + std::to_string(h) +
                        " (" + std::to_string(px) + " pixels) exceed the maximum of " +
                        std::to_string(std::min<int64_t>(
                            lim_.max_pixels, static_cast<int64_t>(lim_.max_side) * lim_.max_side)) +
                        " pixels.");
  }

  RgbImage to_rgb(const AVFrame* f) {
    const int w = f->width, h = f->height;
    sws_ = sws_getCachedContext(sws_, w, h, static_cast<AVPixelFormat>(f->format), w, h,
                                AV_PIX_FMT_RGB24, SWS_BICUBIC, nullptr, nullptr, nullptr);
    if (!sws_)
      throw DecodeError(std::string("cannot convert pixel format '") +
                        (av_get_pix_fmt_name(static_cast<AVPixelFormat>(f->format))
                             ? av_get_pix_fmt_name(static_cast<AVPixelFormat>(f->format))
                             : "?") +
                        "' to RGB");
    // swscale may write a little past a row's end: convert into a padded, aligned buffer.
    uint8_t* dst[4] = {};
    int stride[4] = {};
    if (av_image_alloc(dst, stride, w, h, AV_PIX_FMT_RGB24, 64) < 0)
      throw DecodeError("out of memory converting a video frame");
    sws_scale(sws_, f->data, f->linesize, 0, h, dst, stride);
    RgbImage img;
    img.width = w;
    img.height = h;
    img.format = info_.codec;
    img.mode = "RGB";
    img.rgb.resize(static_cast<size_t>(w) * h * 3);
    for (int y = 0; y < h; ++y)
      std::memcpy(&img.rgb[static_cast<size_t>(y) * w * 3],
                  dst[0] + static_cast<ptrdiff_t>(y) * stride[0], static_cast<size_t>(w) * 3);
    av_freep(&dst[0]);
    return img;
  }

  // The FFmpeg objects, released in order also when the constructor throws.
  struct Handles {
    AVIOContext* pb = nullptr;
    AVFormatContext* fmt = nullptr;
    AVCodecContext* dec = nullptr;
    AVPacket* pkt = nullptr;
    AVFrame* frame = nullptr;
    SwsContext* sws = nullptr;
    Handles() = default;
    Handles(const Handles&) = delete;
    Handles& operator=(const Handles&) = delete;
    ~Handles() {
      sws_freeContext(sws);
      av_frame_free(&frame);
      av_packet_free(&pkt);
      avcodec_free_context(&dec);
      avformat_close_input(&fmt);  // leaves a custom pb alone
      if (pb) av_freep(&pb->buffer);
      avio_context_free(&pb);
    }
  };

  VideoLimits lim_;
  MemoryReader reader_;
  Handles h_;
  AVIOContext*& pb_ = h_.pb;
  AVFormatContext*& fmt_ = h_.fmt;
  AVCodecContext*& dec_ = h_.dec;
  AVPacket*& pkt_ = h_.pkt;
  AVFrame*& frame_ = h_.frame;
  SwsContext*& sws_ = h_.sws;
  int stream_ = -1;
  const AVCodec* codec_ = nullptr;
  VideoInfo info_;
};

}  // namespace

VideoInfo probe_video(std::span<const uint8_t> bytes, const VideoLimits& limits) {
  Session s(bytes, limits);
  return s.info();
}

DecodedVideo decode_video(std::span<const uint8_t> bytes, const FrameSampler& sample,
                          const VideoLimits& limits) {
  Session s(bytes, limits);
  return s.decode(sample(s.info()));
}

}  // namespace fc::media
