// The request side of the speech endpoints (server/transcription_request.h): vLLM's clip split,
// the form's field validation, the response formats, the translation marker.
#include "server/transcription_request.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace fc {
namespace {

std::vector<float> tone(int64_t n) {
  std::vector<float> x(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) x[static_cast<size_t>(i)] = 0.5f * std::sin(0.05f * i);
  return x;
}

TEST(SplitAudio, UpTo30sIsOneClip) {
  for (int64_t n : {1, 16000, 480000}) {
    const std::vector<AudioClip> c = split_audio(tone(n));
    ASSERT_EQ(c.size(), 1u) << n;
    EXPECT_EQ(c[0].begin, 0);
    EXPECT_EQ(c[0].end, n);
  }
}

TEST(SplitAudio, CutsAtTheQuietestWindowOfTheLastSecond) {
  // 70 s; quiet 100 ms windows at 29.3 s (the first window of 29.0-30.0 s at a multiple of
  // 1600 samples from 29.0 s is at 29.0 + 0.1 k) and, in the second clip, at 29.3 + 29.8 s.
  std::vector<float> x = tone(70 * 16000);
  const int64_t q1 = 29 * 16000 + 3 * 1600;
  for (int64_t i = q1; i < q1 + 1600; ++i) x[static_cast<size_t>(i)] *= 0.01f;
  const int64_t q2 = q1 + 29 * 16000 + 8 * 1600;  // the last window the search looks at
  for (int64_t i = q2; i < q2 + 1600; ++i) x[static_cast<size_t>(i)] = 0.0f;
  const std::vector<AudioClip> c = split_audio(x);
  ASSERT_EQ(c.size(), 3u);
  EXPECT_EQ(c[0].begin, 0);
  EXPECT_EQ(c[0].end, q1);
  EXPECT_EQ(c[1].begin, q1);
  EXPECT_EQ(c[1].end, q2);
  EXPECT_EQ(c[2].end, 70 * 16000);
  EXPECT_DOUBLE_EQ(c[0].end_s(), 29.3);
}

TEST(SplitAudio, TiesTakeTheFirstWindowAndNanCannotStall) {
  std::vector<float> x(45 * 16000, 0.0f);  // all silent: every window ties
  std::vector<AudioClip> c = split_audio(x);
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0].end, 29 * 16000);
  std::fill(x.begin(), x.end(), std::numeric_limits<float>::quiet_NaN());
  c = split_audio(x);  // no window is quieter than +inf: cut at the search start
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0].end, 29 * 16000);
}

SpeechRequest request(const std::string& format, SpeechTask task = SpeechTask::kTranscribe) {
  SpeechRequest r;
  r.task = task;
  r.response_format = format;
  r.samples.assign(16000 * 61 + 8000, 0.0f);  // 61.5 s
  if (task == SpeechTask::kTranslate) r.to_language = "en";
  return r;
}

std::vector<ClipResult> two_clips() {
  ClipResult a, b;
  a.clip = {0, 29 * 16000};
  a.text = "hello";
  a.tokens = {5, 6};
  a.avg_logprob = -0.5;
  b.clip = {29 * 16000, 16000 * 61 + 8000};
  b.text = "world";
  ClipResult empty;
  empty.clip = {b.clip.end, b.clip.end};
  return {a, b, empty};
}

TEST(SpeechResponse, Formats) {
  const std::vector<ClipResult> clips = two_clips();
  SpeechBody b = speech_response(request("json"), clips);
  EXPECT_EQ(b.content_type, "application/json");
  EXPECT_EQ(b.body, R"({"text":"hello world","usage":{"seconds":62,"type":"duration"}})");
  EXPECT_EQ(speech_response(request("json", SpeechTask::kTranslate), clips).body,
            R"({"text":"hello world"})");
  b = speech_response(request("text"), clips);
  EXPECT_EQ(b.body, "hello world");
  EXPECT_EQ(b.content_type, "text/plain; charset=utf-8");
  EXPECT_EQ(speech_response(request("srt"), clips).body,
            "1\n00:00:00,000 --> 00:00:29,000\nhello\n\n"
            "2\n00:00:29,000 --> 00:01:01,500\nworld\n\n");
  EXPECT_EQ(speech_response(request("vtt"), clips).body,
            "WEBVTT\n\n00:00:00.000 --> 00:00:29.000\nhello\n\n"
            "00:00:29.000 --> 00:01:01.500\nworld\n\n");
  const nlohmann::json v =
      nlohmann::json::parse(speech_response(request("verbose_json"), clips).body);
  EXPECT_EQ(v["task"], "transcribe");
  EXPECT_EQ(v["duration"], 61.5);
  EXPECT_EQ(v["text"], "hello world");
  ASSERT_EQ(v["segments"].size(), 3u);
  EXPECT_EQ(v["segments"][1]["start"], 29.0);
  EXPECT_EQ(v["segments"][1]["end"], 61.5);
  EXPECT_EQ(v["segments"][1]["seek"], 29 * 100);
  EXPECT_EQ(v["segments"][0]["tokens"], nlohmann::json::array({5, 6}));
  EXPECT_EQ(v["segments"][0]["avg_logprob"], -0.5);
  // zlib of "hello" is 13 bytes: 5 / 13.
  EXPECT_NEAR(v["segments"][0]["compression_ratio"].get<double>(), 5.0 / 13.0, 1e-12);
}

TEST(SpeechText, TranslationMarkerAndJoin) {
  const SpeechRequest t = request("json", SpeechTask::kTranslate);
  EXPECT_EQ(speech_output_text(t, "Hallo Welt\nEnglish: Hello world"), "Hello world");
  EXPECT_EQ(speech_output_text(t, "no marker"), "no marker");
  EXPECT_EQ(speech_output_text(request("json"), "a\nEnglish: b"), "a\nEnglish: b");
  EXPECT_EQ(join_clip_texts({"", "a", "", "b c", ""}), "a b c");
}

TEST(SpeechInstruction, ModelCardPrompts) {
  SpeechRequest r = request("json");
  r.language = "DE";
  EXPECT_EQ(speech_instruction(r).substr(0, 77),
            "Transcribe the following speech segment in German into German text.\n\nFollow t");
  SpeechRequest t = request("json", SpeechTask::kTranslate);
  t.prompt = "Context.";
  EXPECT_EQ(speech_instruction(t),
            "Transcribe the following speech segment in its original language, then translate "
            "it into English.\nWhen formatting the answer, first output the transcription in its "
            "original language, then one newline, then output the string 'English: ', then the "
            "translation in English.\n\nContext.");
  r.language = "xx";
  EXPECT_THROW(speech_instruction(r), ApiError);
}

}  // namespace
}  // namespace fc
