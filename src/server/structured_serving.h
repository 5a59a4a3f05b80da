// Structured outputs in the serving path: which compiled constraint (if any) a chat or
// completion request runs under, and its installation into the engine requests. Chat adds the
// tool-call constraint (tool_choice "required" / named, and "auto" when a tool is strict) in
// Gemma 4's own call syntax, and the reasoning gate (the thought block stays unconstrained).
#pragma once

#include <memory>
#include <string>

#include "engine/engine.h"
#include "grammar/compiler.h"
#include "sample/constraints.h"
#include "server/openai_request.h"
#include "tokenizer/tokenizer.h"

namespace fc {

struct ServingContext;

struct ConstraintPlan {
  std::shared_ptr<const grammar::CompiledConstraint> compiled;  // null: unconstrained
  GrammarConstraintOptions options;                             // stop ids filled per request
  std::string param;                                            // for errors
};

// The compiler over the tokenizer's bytes (byte-fallback pieces as their byte), with masks of
// vocab_size (the model's logits row).
std::shared_ptr<grammar::ConstraintCompiler> make_constraint_compiler(const tok::Tokenizer& tok,
                                                                      int32_t vocab_size);

// Throws ApiError(400) for bad constraints and vLLM's combination errors.
ConstraintPlan plan_chat_constraint(ServingContext& ctx, const ChatRequest& req,
                                    bool start_in_reasoning);
ConstraintPlan plan_completion_constraint(ServingContext& ctx, const CommonRequest& req);

// Sets er.sampling.make_constraint (stops = er.stop_token_ids). Throws ApiError(400) when the
// request can never stop (ignore_eos without stop_token_ids).
void install_constraint(const ConstraintPlan& plan, EngineRequest& er);

}  // namespace fc
