#include "server/transcription_request.h"

#include <zlib.h>

#include <cctype>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "audio/decode.h"
#include "core/error.h"
#include "server/audio_request.h"

namespace fc {

using nlohmann::json;

namespace {

// ISO-639-1 codes the endpoints take, with the English names the prompts use (a subset of the
// languages Gemma 4's model card lists for ASR / AST; Whisper's list in vLLM is of this kind).
struct Language {
  const char* code;
  const char* name;
};
constexpr Language kLanguages[] = {
    {"af", "Afrikaans"},  {"am", "Amharic"},    {"ar", "Arabic"},     {"az", "Azerbaijani"},
    {"be", "Belarusian"}, {"bg", "Bulgarian"},  {"bn", "Bengali"},    {"bs", "Bosnian"},
    {"ca", "Catalan"},    {"cs", "Czech"},      {"cy", "Welsh"},      {"da", "Danish"},
    {"de", "German"},     {"el", "Greek"},      {"en", "English"},    {"es", "Spanish"},
    {"et", "Estonian"},   {"eu", "Basque"},     {"fa", "Persian"},    {"fi", "Finnish"},
    {"fil", "Filipino"},  {"fr", "French"},     {"ga", "Irish"},      {"gl", "Galician"},
    {"gu", "Gujarati"},   {"he", "Hebrew"},     {"hi", "Hindi"},      {"hr", "Croatian"},
    {"hu", "Hungarian"},  {"hy", "Armenian"},   {"id", "Indonesian"}, {"is", "Icelandic"},
    {"it", "Italian"},    {"ja", "Japanese"},   {"ka", "Georgian"},   {"kk", "Kazakh"},
    {"km", "Khmer"},      {"kn", "Kannada"},    {"ko", "Korean"},     {"lo", "Lao"},
    {"lt", "Lithuanian"}, {"lv", "Latvian"},    {"mk", "Macedonian"}, {"ml", "Malayalam"},
    {"mn", "Mongolian"},  {"mr", "Marathi"},    {"ms", "Malay"},      {"my", "Burmese"},
    {"ne", "Nepali"},     {"nl", "Dutch"},      {"no", "Norwegian"},  {"pa", "Punjabi"},
    {"pl", "Polish"},     {"pt", "Portuguese"}, {"ro", "Romanian"},   {"ru", "Russian"},
    {"si", "Sinhala"},    {"sk", "Slovak"},     {"sl", "Slovenian"},  {"sq", "Albanian"},
    {"sr", "Serbian"},    {"sv", "Swedish"},    {"sw", "Swahili"},    {"ta", "Tamil"},
    {"te", "Telugu"},     {"th", "Thai"},       {"tl", "Tagalog"},    {"tr", "Turkish"},
    {"uk", "Ukrainian"},  {"ur", "Urdu"},       {"uz", "Uzbek"},      {"vi", "Vietnamese"},
    {"yue", "Cantonese"}, {"zh", "Chinese"},    {"zu", "Zulu"},
};

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// The language name of a code ("" for ""); ApiError naming `field` for an unknown code (vLLM's
// SupportsTranscription.validate_language message).
std::string language_name(const std::string& code, const char* field) {
  if (code.empty()) return "";
  const std::string c = lower(code);
  for (const Language& l : kLanguages)
    if (c == l.code) return l.name;
  std::string all;
  for (const Language& l : kLanguages) all += std::string(all.empty() ? "" : ", ") + l.code;
  throw ApiError::bad_request(
      "Unsupported language: " + code + ". Language should be one of: " + all, field);
}

const http::FormPart* single(const http::MultipartForm& f, const char* name) {
  if (f.count(name) > 1)
    throw ApiError::bad_request(std::string("field '") + name + "' given more than once", name);
  return f.find(name);
}

std::optional<std::string> text_field(const http::MultipartForm& f, const char* name) {
  const http::FormPart* p = single(f, name);
  if (!p) return std::nullopt;
  return std::string(p->data);
}

double number_field(const std::string& v, const char* name) {
  const char* s = v.c_str();
  char* end = nullptr;
  errno = 0;
  const double d = std::strtod(s, &end);
  if (v.empty() || end != s + v.size() || errno == ERANGE || !std::isfinite(d) ||
      std::isspace(static_cast<unsigned char>(v[0])))
    throw ApiError::bad_request(
        std::string(name) + ": Input should be a valid number, got '" + v + "'", name);
  return d;
}

int64_t integer_field(const std::string& v, const char* name) {
  const double d = number_field(v, name);
  if (d != std::floor(d) || std::fabs(d) > 9.007199254740992e15)
    throw ApiError::bad_request(
        std::string(name) + ": Input should be a valid integer, got '" + v + "'", name);
  return static_cast<int64_t>(d);
}

// Pydantic's bool strings.
bool bool_field(const std::string& v, const char* name) {
  const std::string l = lower(v);
  for (const char* t : {"true", "1", "yes", "on", "t", "y"})
    if (l == t) return true;
  for (const char* f : {"false", "0", "no", "off", "f", "n"})
    if (l == f) return false;
  throw ApiError::bad_request(
      std::string(name) + ": Input should be a valid boolean, got '" + v + "'", name);
}

const char* kFormats[] = {"json", "text", "srt", "verbose_json", "vtt"};

std::string base64_encode(const std::string& in) {
  static const char* tbl = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const uint32_t v =
        (uint32_t(uint8_t(in[i])) << 16) | (uint32_t(uint8_t(in[i + 1])) << 8) | uint8_t(in[i + 2]);
    for (int k = 3; k >= 0; --k) out += tbl[(v >> (6 * k)) & 63];
  }
  if (i < in.size()) {
    uint32_t v = uint32_t(uint8_t(in[i])) << 16;
    if (i + 1 < in.size()) v |= uint32_t(uint8_t(in[i + 1])) << 8;
    out += tbl[(v >> 18) & 63];
    out += tbl[(v >> 12) & 63];
    out += i + 1 < in.size() ? tbl[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

void put_u32(std::string& s, uint32_t v) {
  for (int k = 0; k < 4; ++k) s += static_cast<char>((v >> (8 * k)) & 0xff);
}
void put_u16(std::string& s, uint16_t v) {
  s += static_cast<char>(v & 0xff);
  s += static_cast<char>(v >> 8);
}

// A mono 16 kHz IEEE-float WAV of samples [begin, end): lossless, so the chat path decodes the
// very samples the clip holds.
std::string float_wav(const std::vector<float>& x, int64_t begin, int64_t end) {
  const uint32_t data = static_cast<uint32_t>((end - begin) * 4);
  std::string s = "RIFF";
  put_u32(s, 4 + (8 + 18) + (8 + data));
  s += "WAVEfmt ";
  put_u32(s, 18);
  put_u16(s, 3);  // WAVE_FORMAT_IEEE_FLOAT
  put_u16(s, 1);
  put_u32(s, 16000);
  put_u32(s, 16000 * 4);
  put_u16(s, 4);
  put_u16(s, 32);
  put_u16(s, 0);  // cbSize
  s += "data";
  put_u32(s, data);
  const size_t at = s.size();
  s.resize(at + data);
  static_assert(sizeof(float) == 4);
  std::memcpy(&s[at], x.data() + begin, data);  // little-endian hosts (x86-64, aarch64)
  return s;
}

std::string timestamp(double s, char frac_sep) {
  const int64_t ms = static_cast<int64_t>(std::llround(s * 1000.0));
  char buf[32];
  std::snprintf(buf, sizeof buf, "%02lld:%02lld:%02lld%c%03lld",
                static_cast<long long>(ms / 3600000), static_cast<long long>(ms / 60000 % 60),
                static_cast<long long>(ms / 1000 % 60), frac_sep,
                static_cast<long long>(ms % 1000));
  return buf;
}

// len(text) / len(zlib.compress(text)), as vLLM's segments report it (1 for empty text).
double compression_ratio(const std::string& text) {
  if (text.empty()) return 1.0;
  uLongf n = compressBound(static_cast<uLong>(text.size()));
  std::string out(n, '\0');
  if (compress2(reinterpret_cast<Bytef*>(out.data()), &n,
                reinterpret_cast<const Bytef*>(text.data()), static_cast<uLong>(text.size()),
                Z_DEFAULT_COMPRESSION) != Z_OK ||
      n == 0)
    return 1.0;
  return static_cast<double>(text.size()) / static_cast<double>(n);
}

}  // namespace

SpeechRequest parse_speech_request(const http::Request& req, SpeechTask task, bool has_audio,
                                   const std::string& model_path, const SpeechLimits& lim) {
  http::MultipartForm form;
  try {
    const std::string boundary = http::multipart_boundary(req.header_value("content-type"));
    http::MultipartLimits ml;
    ml.max_total_bytes = req.body.size();  // already bounded by the HTTP body limit
    form = http::parse_multipart(req.body, boundary, ml);
  } catch (const http::MultipartError& e) {
    throw ApiError(e.status(), e.what(), "file");
  }
  SpeechRequest r;
  r.task = task;
  const http::FormPart* file = single(form, "file");
  if (!file)
    throw ApiError::bad_request("Field required: 'file' (the audio file, as a multipart file part)",
                                "file");
  if (!file->filename)  // vLLM's validate_transcription_request
    throw ApiError(422, "Expected 'file' to be a file-like object, not 'str'.", "file");

  static const char* known[] = {"file",
                                "model",
                                "language",
                                "prompt",
                                "response_format",
                                "temperature",
                                "stream",
                                "stream_include_usage",
                                "stream_continuous_usage_stats",
                                "to_language",
                                "timestamp_granularities[]",
                                "top_p",
                                "top_k",
                                "min_p",
                                "seed",
                                "frequency_penalty",
                                "presence_penalty",
                                "repetition_penalty",
                                "max_completion_tokens"};
  for (const http::FormPart& p : form.parts) {
    bool k = false;
    for (const char* n : known) k = k || p.name == n;
    if (!k) r.ignored.push_back(p.name);
  }

  r.model = text_field(form, "model").value_or("");
  r.language = text_field(form, "language").value_or("");
  language_name(r.language, "language");
  r.to_language = text_field(form, "to_language").value_or("");
  if (task == SpeechTask::kTranslate && r.to_language.empty()) r.to_language = "en";
  language_name(r.to_language, "to_language");
  r.prompt = text_field(form, "prompt").value_or("");
  r.response_format = text_field(form, "response_format").value_or("json");
  bool format_ok = false;
  for (const char* f : kFormats) format_ok = format_ok || r.response_format == f;
  if (!format_ok)
    throw ApiError::bad_request(
        "response_format: Input should be 'json', 'text', 'srt', "
        "'verbose_json' or 'vtt', got '" +
            r.response_format + "'",
        "response_format");
  for (const http::FormPart& p : form.parts)  // a list field: each value checked
    if (p.name == "timestamp_granularities[]" && p.data != "segment" && p.data != "word")
      throw ApiError::bad_request("timestamp_granularities[]: Input should be 'word' or 'segment'",
                                  "timestamp_granularities[]");
  if (auto s = text_field(form, "stream")) r.stream = bool_field(*s, "stream");
  if (auto s = text_field(form, "stream_include_usage"))
    r.include_usage = bool_field(*s, "stream_include_usage");
  if (auto s = text_field(form, "stream_continuous_usage_stats"))
    r.continuous_usage_stats = bool_field(*s, "stream_continuous_usage_stats");
  if ((r.include_usage || r.continuous_usage_stats) && !r.stream)
    throw ApiError::bad_request(
        "Stream options can only be defined when `stream=True`.",
        r.include_usage ? "stream_include_usage" : "stream_continuous_usage_stats");
  if (r.stream && r.response_format == "verbose_json")
    throw ApiError::bad_request("verbose_json format doesn't support streaming case",
                                "response_format");
  if (r.stream && r.response_format != "json" && r.response_format != "text")
    throw ApiError::bad_request("stream is only supported with response_format json or text",
                                "response_format");
  for (const char* f : {"temperature", "top_p", "min_p", "frequency_penalty", "presence_penalty",
                        "repetition_penalty"})
    if (auto s = text_field(form, f)) r.sampling[f] = number_field(*s, f);
  for (const char* f : {"top_k", "seed", "max_completion_tokens"})
    if (auto s = text_field(form, f)) r.sampling[f] = integer_field(*s, f);
  if (!r.sampling.contains("temperature")) r.sampling["temperature"] = 0.0;  // vLLM's default
  r.temperature = r.sampling["temperature"].get<double>();

  if (!has_audio) throw no_audio_tower(model_path);
  if (file->data.size() > lim.max_file_bytes)  // vLLM: len / 1024**2 > 25
    throw ApiError::bad_request("Maximum file size exceeded", "audio_filesize_mb");
  try {
    audio::DecodeLimits dl;
    dl.max_bytes = lim.max_file_bytes;
    dl.max_seconds = lim.max_seconds;
    r.samples = audio::load_audio(file->data.data(), file->data.size(), "the file", dl);
  } catch (const Error& e) {
    throw ApiError::bad_request(std::string("Invalid or unsupported audio file. ") + e.what(),
                                "file");
  }
  return r;
}

std::vector<AudioClip> split_audio(const std::vector<float>& x, const SpeechLimits& lim) {
  std::vector<AudioClip> out;
  const int64_t n = static_cast<int64_t>(x.size());
  int64_t i = 0;
  while (i < n) {
    if (i + lim.clip_samples >= n) {
      out.push_back({i, n});
      break;
    }
    const int64_t from = i + lim.clip_samples - lim.overlap_samples;
    const int64_t to = std::min<int64_t>(i + lim.clip_samples, n);
    // The quietest window (RMS over energy_window samples, windows at multiples of it; only
    // windows that end before `to`, as vLLM's range(0, len - w, w)); the search start when none
    // is quieter than +inf (NaN samples).
    int64_t split = from;
    double best = std::numeric_limits<double>::infinity();
    for (int64_t k = 0; k < to - from - lim.energy_window; k += lim.energy_window) {
      double e = 0;
      for (int64_t j = 0; j < lim.energy_window; ++j) {
        const double v = x[static_cast<size_t>(from + k + j)];
        e += v * v;
      }
      e = std::sqrt(e / lim.energy_window);
      if (e < best) {
        best = e;
        split = from + k;
      }
    }
    out.push_back({i, split});
    i = split;
  }
  return out;
}

std::string speech_instruction(const SpeechRequest& r) {
  const std::string src = r.language.empty() ? "" : language_name(r.language, "language");
  std::string s;
  if (r.task == SpeechTask::kTranscribe) {
    s = src.empty()
            ? "Transcribe the following speech segment in its original language."
            : "Transcribe the following speech segment in " + src + " into " + src + " text.";
    s += "\n\nFollow these specific instructions for formatting the answer:\n"
         "* Only output the transcription, with no newlines.\n"
         "* When transcribing numbers, write the digits, i.e. write 1.7 and not one point seven, "
         "and write 3 instead of three.";
  } else {
    const std::string from = src.empty() ? "its original language" : src;
    const std::string to = language_name(r.to_language, "to_language");
    s = "Transcribe the following speech segment in " + from + ", then translate it into " + to +
        ".\nWhen formatting the answer, first output the transcription in " + from +
        ", then one newline, then output the string '" + to + ": ', then the translation in " + to +
        ".";
  }
  if (!r.prompt.empty()) s += "\n\n" + r.prompt;
  return s;
}

json clip_chat_body(const SpeechRequest& r, const AudioClip& clip, bool want_logprobs) {
  json audio = {
      {"type", "input_audio"},
      {"input_audio",
       {{"data", base64_encode(float_wav(r.samples, clip.begin, clip.end))}, {"format", "wav"}}}};
  json text = {{"type", "text"}, {"text", speech_instruction(r)}};
  json b = {
      {"messages", json::array({{{"role", "user"}, {"content", json::array({audio, text})}}})},
      {"stream", r.stream}};
  if (!r.model.empty()) b["model"] = r.model;
  for (auto it = r.sampling.begin(); it != r.sampling.end(); ++it) b[it.key()] = it.value();
  if (r.stream) b["stream_options"] = {{"include_usage", true}};
  if (want_logprobs) {
    b["logprobs"] = true;
    b["return_token_ids"] = true;
  }
  return b;
}

std::string speech_output_text(const SpeechRequest& r, const std::string& content) {
  if (r.task != SpeechTask::kTranslate) return content;
  const std::string marker = "\n" + language_name(r.to_language, "to_language") + ": ";
  const size_t at = content.find(marker);
  return at == std::string::npos ? content : content.substr(at + marker.size());
}

std::string join_clip_texts(const std::vector<std::string>& texts) {
  std::string out;
  for (const std::string& t : texts) {
    if (t.empty()) continue;
    if (!out.empty()) out += ' ';
    out += t;
  }
  return out;
}

SpeechBody speech_response(const SpeechRequest& r, const std::vector<ClipResult>& clips) {
  std::vector<std::string> texts;
  for (const ClipResult& c : clips) texts.push_back(c.text);
  const std::string text = join_clip_texts(texts);
  const double duration = static_cast<double>(r.samples.size()) / 16000.0;
  const json usage = {{"type", "duration"}, {"seconds", static_cast<int64_t>(std::ceil(duration))}};
  auto dump = [](const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); };
  const bool transcribe = r.task == SpeechTask::kTranscribe;
  if (r.response_format == "json") {
    json j = {{"text", text}};
    if (transcribe) j["usage"] = usage;  // vLLM: no usage for translations
    return {dump(j), "application/json"};
  }
  if (r.response_format == "text") return {text, "text/plain; charset=utf-8"};
  if (r.response_format == "verbose_json") {
    json segs = json::array();
    for (size_t k = 0; k < clips.size(); ++k) {
      const ClipResult& c = clips[k];
      segs.push_back({{"id", k},
                      {"seek", c.clip.begin / 160},  // in 10 ms feature frames
                      {"start", c.clip.start_s()},
                      {"end", c.clip.end_s()},
                      {"text", c.text},
                      {"tokens", c.tokens},
                      {"temperature", r.temperature},
                      {"avg_logprob", c.avg_logprob},
                      {"compression_ratio", compression_ratio(c.text)},
                      {"no_speech_prob", nullptr}});
    }
    json j = {{"task", transcribe ? "transcribe" : "translate"},
              {"language", r.language},
              {"duration", duration},
              {"text", text},
              {"segments", segs}};
    if (transcribe) j["usage"] = usage;
    return {dump(j), "application/json"};
  }
  // srt / vtt: one cue per clip with text (Gemma 4 has no timestamp tokens).
  const bool srt = r.response_format == "srt";
  std::string out = srt ? "" : "WEBVTT\n\n";
  int cue = 0;
  for (const ClipResult& c : clips) {
    if (c.text.empty()) continue;
    if (srt) out += std::to_string(++cue) + "\n";
    out += timestamp(c.clip.start_s(), srt ? ',' : '.') + " --> " +
           timestamp(c.clip.end_s(), srt ? ',' : '.') + "\n" + c.text + "\n\n";
  }
  return {out, srt ? "text/plain; charset=utf-8" : "text/vtt; charset=utf-8"};
}

}  // namespace fc
