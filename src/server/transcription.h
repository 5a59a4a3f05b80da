// /v1/audio/transcriptions and /v1/audio/translations (docs/design.md "Transcription and
// translation endpoints"): a SpeechRequest (transcription_request.h) is split into clips of at
// most 30 s, each clip one chat request (start_chat: the user message with the clip's audio part
// and the model card's ASR / AST instruction), so a clip's text is exactly what the chat endpoint
// answers to that message. At most kWindow clips run at once, started in order; their texts are
// joined in order. The response: one body in the requested format, or (stream) vLLM's SSE
// objects {"object": "transcription.chunk" | "translation.chunk", "choices": [{"delta":
// {"content"}, "finish_reason", "stop_reason"}]} and then "data: [DONE]".
#pragma once

#include <memory>

#include "http/message.h"
#include "server/serving.h"
#include "server/transcription_request.h"

namespace fc {

// Starts the request's first clip (throwing ApiError for client errors, before any response is
// sent) and answers `res` with a deferred body or an SSE stream that runs the rest.
void respond_speech(ServingContext& ctx, SpeechRequest r, http::Response& res);

}  // namespace fc
