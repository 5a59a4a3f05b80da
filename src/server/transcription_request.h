// The request side of /v1/audio/transcriptions and /v1/audio/translations (docs/design.md
// "Transcription and translation endpoints"): the multipart form (http/multipart.h) read into a
// SpeechRequest with OpenAI's and vLLM's fields (vllm/entrypoints/openai/speech_to_text/
// protocol.py), the audio decoded and split into clips of at most 30 s the way vLLM's
// speech_to_text.py _split_audio does, and each clip turned into the chat request the endpoint
// is defined as: one user message with the audio part and the Gemma 4 model card's ASR / AST
// instruction. Also the non-streaming response formats (json, text, verbose_json, srt, vtt).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "http/message.h"
#include "http/multipart.h"
#include "server/api_error.h"

namespace fc {

enum class SpeechTask { kTranscribe, kTranslate };

// Bounds (vLLM's where it has one).
struct SpeechLimits {
  size_t max_file_bytes = size_t{25} << 20;  // VLLM_MAX_AUDIO_CLIP_FILESIZE_MB (MiB)
  double max_seconds = 1800.0;               // decoded duration (fourcast's bound: 60 clips)
  int clip_samples = 30 * 16000;             // SpeechToTextConfig.max_audio_clip_s at 16 kHz
  int overlap_samples = 1 * 16000;           // overlap_chunk_second: the split search window
  int energy_window = 1600;                  // min_energy_split_window_size (100 ms)
};

struct SpeechRequest {
  SpeechTask task = SpeechTask::kTranscribe;
  std::string model;
  std::string language;     // ISO-639-1 code as sent ("" when absent)
  std::string to_language;  // translations: the target (default "en")
  std::string prompt;       // the client's prompt ("" when absent)
  std::string response_format = "json";
  bool stream = false;
  bool include_usage = false, continuous_usage_stats = false;
  // Sampling fields forwarded into each clip's chat request, already typed (temperature
  // defaults to 0 as in vLLM's protocol).
  nlohmann::json sampling = nlohmann::json::object();
  double temperature = 0.0;
  std::vector<float> samples;  // the decoded upload, 16 kHz mono
  std::vector<std::string> ignored;
};

// Reads the form: Content-Type must be multipart/form-data (http/multipart.h limits, the total
// bounded by the HTTP body limit), `file` a file part of at most max_file_bytes that decodes,
// every other field valid. ApiError 400 (422 for a `file` sent as a plain field, as vLLM) naming
// the field otherwise. `has_audio`: whether the model has an audio tower (checked before the
// audio is decoded); `model_path` names it in vLLM's refusal.
SpeechRequest parse_speech_request(const http::Request& req, SpeechTask task, bool has_audio,
                                   const std::string& model_path, const SpeechLimits& lim = {});

// One clip of the upload: samples [begin, end) at 16 kHz.
struct AudioClip {
  int64_t begin = 0, end = 0;
  double start_s() const { return static_cast<double>(begin) / 16000.0; }
  double end_s() const { return static_cast<double>(end) / 16000.0; }
};

// vLLM's split: clips of at most clip_samples; each cut at the quietest energy_window (RMS) in
// the overlap_samples before the clip limit (the first quietest one on a tie). Audio of at most
// clip_samples is one clip.
std::vector<AudioClip> split_audio(const std::vector<float>& samples, const SpeechLimits& lim = {});

// The text part of each clip's user message (model card ASR / AST prompts; the client's prompt,
// when given, follows after a blank line).
std::string speech_instruction(const SpeechRequest& r);

// The chat request body of one clip: {"model", "messages": [{"role": "user", "content":
// [input_audio (a float WAV of the clip), text]}], "temperature", sampling fields, "stream"}.
nlohmann::json clip_chat_body(const SpeechRequest& r, const AudioClip& clip, bool want_logprobs);

// A translation's answer is "<transcript>\n<Target>: <translation>" (the AST prompt's format):
// the part after the marker when it is there, else the whole text.
std::string speech_output_text(const SpeechRequest& r, const std::string& content);

// Joins the clips' texts: a space between non-empty texts (Gemma emits no leading space, unlike
// Whisper's tokens that vLLM joins with "").
std::string join_clip_texts(const std::vector<std::string>& texts);

// One clip's result for the response formats.
struct ClipResult {
  AudioClip clip;
  std::string text;
  std::vector<int32_t> tokens;
  double avg_logprob = 0.0;
};

struct SpeechBody {
  std::string body, content_type;
};
// The non-streaming response in r.response_format: json {"text"[, "usage"]}, text, verbose_json
// {"task", "language", "duration", "text", "segments" (one per clip)[, "usage"]}, srt / vtt (one
// cue per clip with text). Transcriptions report usage {"type": "duration", "seconds":
// ceil(duration)} as vLLM; translations none.
SpeechBody speech_response(const SpeechRequest& r, const std::vector<ClipResult>& clips);

}  // namespace fc
