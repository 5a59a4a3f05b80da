// One entry point for every constraint kind: a ConstraintSpec compiles (once, then from an LRU
// cache keyed by kind, text and options) to a CompiledConstraint on the compiler's vocabulary.
// Thread-safe; compile on request threads, never the engine thread. Sizes are bounded by
// Limits (and by max_text_bytes for the input), so bad input gives an fc::Error, not a hang.
#pragma once

#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "grammar/gemma_tools.h"
#include "grammar/json_schema.h"
#include "grammar/mask.h"
#include "grammar/token_matcher.h"

namespace fc::grammar {

struct ConstraintSpec {
  enum class Kind { kJsonSchema, kJsonObject, kRegex, kGrammar, kChoice, kToolCalls };
  Kind kind = Kind::kJsonObject;
  std::string text;                 // schema JSON, regex, grammar text, or choices as a JSON array
  JsonSchemaOptions json;           // JSON kinds (and tool arguments)
  std::vector<ToolSpec> tools;      // kToolCalls
  ToolGrammarOptions tool_options;  // kToolCalls
  std::string key() const;          // cache key
};

const char* kind_name(ConstraintSpec::Kind k);

class ConstraintCompiler {
 public:
  // token_by_text: special token text -> id (-1 when absent), for grammars and tool calls.
  ConstraintCompiler(std::shared_ptr<const Vocab> vocab,
                     std::function<int32_t(const std::string&)> token_by_text,
                     GemmaToolIds tool_ids, size_t cache_entries = 256);

  // Throws fc::Error describing what is invalid or unsupported.
  std::shared_ptr<const CompiledConstraint> compile(const ConstraintSpec& spec);
  // The IR alone (no compilation): for --print-grammar and tests.
  Grammar build(const ConstraintSpec& spec, std::vector<std::string>* warnings) const;

  const Vocab& vocab() const { return *vocab_; }
  std::shared_ptr<const Vocab> vocab_ptr() const { return vocab_; }
  std::shared_ptr<LeafMaskCache> leaf_cache() const { return leaf_cache_; }
  size_t max_text_bytes = 1 << 20;
  bool keep_grammar_text = false;  // fill CompiledConstraint::grammar_text (--print-grammar)
  Limits limits;

 private:
  std::shared_ptr<const Vocab> vocab_;
  std::function<int32_t(const std::string&)> token_by_text_;
  GemmaToolIds tool_ids_;
  std::shared_ptr<LeafMaskCache> leaf_cache_;
  size_t cache_entries_;
  std::mutex mu_;
  std::list<std::pair<std::string, std::shared_ptr<const CompiledConstraint>>> lru_;
  std::map<std::string, decltype(lru_)::iterator> index_;
};

}  // namespace fc::grammar
