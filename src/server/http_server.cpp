#include "server/http_server.h"

#include <cctype>

#include "core/json_limits.h"
#include "core/log.h"
#include "server/api_error.h"
#include "server/cors.h"
#include "server/info_routes.h"
#include "server/media_prefetch.h"
#include "server/model_files.h"
#include "server/responses.h"
#include "server/transcription.h"

namespace fc {

using nlohmann::json;

namespace {

std::string dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

void send_error(http::Response& res, int status, const std::string& message,
                const std::string& param = "") {
  res.status = status;
  res.set_content(dump(error_json(status, message, param)), "application/json");
}

// The media type of a Content-Type value, lower-cased, without parameters or spaces.
std::string media_type(const std::string& content_type) {
  std::string t = content_type.substr(0, content_type.find(';'));
  while (!t.empty() && (t.back() == ' ' || t.back() == '\t')) t.pop_back();
  for (char& c : t) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return t;
}

// A chat / completions / Responses job as the HTTP layer's Deferred: SSE events ("data: ...\n\n",
// then "data: [DONE]"; or the job's own "event: ..." frames) for streams, one JSON body (or an
// OpenAI error) otherwise.
class JobResponder final : public http::Deferred {
 public:
  explicit JobResponder(std::unique_ptr<ResponseJob> job) : job_(std::move(job)) {}

  void start(std::function<void()> wake) override { job_->on_output(std::move(wake)); }

  bool pump(std::string& bytes, http::Response& final) override {
    if (job_->streaming()) {
      const bool frames = job_->writes_frames();  // Responses API: named events, no [DONE]
      const SseSink sink = [&](const std::string& data) {
        bytes += frames ? data : "data: " + data + "\n\n";
        return true;
      };
      auto error = [&](const json& e) {
        const std::string text = dump(e);
        if (frames)
          bytes += "event: error\ndata: " + text + "\n\n";
        else
          sink(text);
      };
      bool done = false;
      try {
        done = job_->pump(sink);
      } catch (const ApiError& e) {
        error(error_json(e.status(), e.what(), e.param()));
        done = true;
      } catch (const std::exception& e) {
        error(error_json(500, e.what(), ""));
        done = true;
      }
      if (done && !frames) bytes += "data: [DONE]\n\n";
      return done;
    }
    try {
      if (!job_->pump({})) return false;
      final.set_content(dump(job_->result()), "application/json");
    } catch (const ApiError& e) {
      send_error(final, e.status(), e.what(), e.param());
    } catch (const std::exception& e) {
      log_line(LogLevel::kError, std::string("request failed: ") + e.what());
      send_error(final, 500, std::string("internal error: ") + e.what());
    }
    return true;
  }

  void cancel(http::CancelReason) override { job_->abort(); }

 private:
  std::unique_ptr<ResponseJob> job_;
};

void respond_with(http::Response& res, std::unique_ptr<ResponseJob> job) {
  const bool streaming = job->streaming();
  auto d = std::make_shared<JobResponder>(std::move(job));
  if (streaming) {
    res.set_header("Cache-Control", "no-cache");
    res.stream(std::move(d), "text/event-stream");
  } else {
    res.defer(std::move(d));
  }
}

http::ServerOptions server_options(const ServeOptions& o, Metrics& metrics) {
  http::ServerOptions s;
  s.limits.max_body_bytes = static_cast<size_t>(o.max_request_bytes);
  s.max_connections = o.max_connections;
  s.workers = o.http_workers;
  s.head_timeout_s = o.http_head_timeout_s;
  s.body_timeout_s = o.http_body_timeout_s;
  s.error_body = [](int status, const std::string& message) {
    return dump(error_json(status, message, ""));
  };
  s.on_response = [&metrics](int status) { metrics.count_http(status); };
  return s;
}

// The request's CORS view (server/cors.h).
CorsRequest cors_request(const http::Request& req) {
  CorsRequest c;
  c.method = req.method;
  auto opt = [&](const char* name) {
    const std::string* v = req.header(name);
    return v ? std::optional<std::string>(*v) : std::nullopt;
  };
  c.origin = opt("origin");
  c.request_method = opt("access-control-request-method");
  c.request_headers = opt("access-control-request-headers");
  c.has_cookie = req.header("cookie") != nullptr;
  return c;
}

// Tokenizer_config.json's text for /tokenizer_info ("" when off or absent).
std::string read_tokenizer_config(const ServeOptions& o) {
  if (!o.enable_tokenizer_info_endpoint) return "";
  try {
    return read_text_file(o.model + "/tokenizer_config.json");
  } catch (const Error&) {
    return "";
  }
}

}  // namespace

struct HttpServer::Impl {
  // Declared before `http`, which is destroyed first: its in-flight jobs may use these.
  ServingContext& ctx;
  CorsPolicy cors;
  std::string tokenizer_config;  // tokenizer_config.json's text, for /tokenizer_info
  ResponsesService responses;    // /v1/responses (server/responses.h)
  // http(s) media are fetched on its threads, not on the HTTP workers (media_prefetch.h); null
  // when the model takes no media. Declared before `http` so it outlives the server's use of it.
  std::unique_ptr<MediaFetcher> fetcher;
  http::Server http;

  explicit Impl(ServingContext& c)
      : ctx(c),
        cors(cors_options(c.opts)),
        tokenizer_config(read_tokenizer_config(c.opts)),
        responses(c, responses_store_limits(c.opts)),
        http(with_cors(server_options(c.opts, c.metrics))) {
    if (c.media) fetcher = std::make_unique<MediaFetcher>(c.media->fetch());
  }

  // CORS as a before-routing hook of the HTTP layer: a preflight is answered for any path,
  // before routing and before the API key check (browsers send no credentials with it); every
  // other response to a request with an Origin gets the simple headers, errors included.
  http::ServerOptions with_cors(http::ServerOptions s) {
    s.before_routing = [this](const http::Request& req, http::Response& res) {
      const CorsRequest c = cors_request(req);
      if (std::optional<CorsPreflight> p = cors.preflight(c)) {
        res.status = p->status;
        for (auto& [k, v] : p->headers) res.set_header(k, v);
        res.set_content(p->body, "text/plain; charset=utf-8");
        return true;
      }
      for (auto& [k, v] : cors.response_headers(c)) res.set_header(k, v);
      return false;
    };
    return s;
  }

  // A request whose media parts name http(s) URLs: answers with a deferred fetch and runs
  // `then` (on a worker, with the fetched bytes in the request) once it is done. False: nothing
  // to fetch, the caller goes on at once.
  template <typename Req, typename Then>
  bool fetch_first(const Req& r, http::Response& res, Then then) {
    if (!fetcher) return false;
    std::vector<std::string> urls = remote_media_urls(ctx.media.get(), r.messages);
    if (urls.empty()) return false;
    res.defer(prefetch_then(*fetcher, std::move(urls),
                            [this, req = Req(r), then](std::shared_ptr<const PrefetchedMedia> m,
                                                       http::Response& out) mutable {
                              req.prefetched_media = std::move(m);
                              guarded(out, [&] { then(req, out); });
                            }));
    return true;
  }

  bool authorized(const http::Request& req, http::Response& res) {
    if (ctx.opts.api_key.empty()) return true;
    if (req.header_value("authorization") == "Bearer " + ctx.opts.api_key) return true;
    res.status = 401;
    res.set_content(R"({"error":"Unauthorized"})", "application/json");
    return false;
  }

  // Parses a JSON POST body (content type and syntax checked, nesting bounded while parsing)
  // into a plain and, when asked, an order-preserving document.
  bool body(const http::Request& req, http::Response& res, json& out,
            nlohmann::ordered_json* ordered = nullptr) {
    const std::string ct = req.header_value("content-type");
    if (media_type(ct) != "application/json") {
      send_error(res, 415, "Content-Type must be application/json, got '" + ct + "'");
      return false;
    }
    try {
      out = parse_json(req.body);
      if (ordered) *ordered = parse_ordered_json(req.body);
    } catch (const JsonError& e) {
      send_error(res, 400, std::string("invalid JSON body: ") + e.what());
      return false;
    }
    return true;
  }

  bool check_model(const std::string& model, http::Response& res) {
    if (model.empty()) return true;
    for (const std::string& n : ctx.opts.served_model_names)
      if (n == model) return true;
    send_error(res, 404, "The model `" + model + "` does not exist.", "model");
    return false;
  }

  // Runs a handler body, mapping exceptions to error responses.
  template <typename F>
  void guarded(http::Response& res, F&& f) {
    try {
      f();
    } catch (const ApiError& e) {
      send_error(res, e.status(), e.what(), e.param());
    } catch (const Error& e) {
      send_error(res, 400, e.what());
    } catch (const std::exception& e) {
      log_line(LogLevel::kError, std::string("request failed: ") + e.what());
      send_error(res, 500, std::string("internal error: ") + e.what());
    }
  }

  void health(const http::Request&, http::Response& res) {
    if (!ctx.engine.alive()) send_error(res, 503, "the engine is not running");
  }

  void models(const http::Request& req, http::Response& res) {
    if (!authorized(req, res)) return;
    json data = json::array();
    for (const std::string& n : ctx.opts.served_model_names) data.push_back(model_card(ctx, n));
    res.set_content(json{{"object", "list"}, {"data", data}}.dump(), "application/json");
  }

  void model(const http::Request& req, http::Response& res) {
    if (!authorized(req, res)) return;
    const std::string& id = req.params.at("id");
    if (std::optional<json> card = find_model_card(ctx, id))
      res.set_content(dump(*card), "application/json");
    else
      send_error(res, 404, "The model `" + id + "` does not exist.", "model");
  }

  // The Responses API: the logic is in server/responses.h; these are only the bindings.
  void reply(http::Response& res, ResponsesService::Reply r) {
    if (r.job)
      respond_with(res, std::move(r.job));
    else
      res.set_content(dump(r.body), "application/json");
  }

  void responses_create(const http::Request& req, http::Response& res) {
    if (!authorized(req, res)) return;
    guarded(res, [&] {
      json b;
      nlohmann::ordered_json ob;
      if (body(req, res, b, &ob)) reply(res, responses.create(b, ob));
    });
  }

  // A query parameter's raw value ("" when absent; Responses ids and these values need no
  // percent-decoding).
  static std::string query_value(const http::Request& req, const std::string& key) {
    size_t i = 0;
    while (i <= req.query.size()) {
      size_t amp = req.query.find('&', i);
      if (amp == std::string::npos) amp = req.query.size();
      const std::string kv = req.query.substr(i, amp - i);
      const size_t eq = kv.find('=');
      if (kv.substr(0, eq) == key) return eq == std::string::npos ? "" : kv.substr(eq + 1);
      i = amp + 1;
    }
    return "";
  }

  void responses_get(const http::Request& req, http::Response& res) {
    if (!authorized(req, res)) return;
    guarded(res, [&] {
      reply(res, responses.retrieve(req.params.at("id"), query_value(req, "stream"),
                                    query_value(req, "starting_after")));
    });
  }

  void responses_delete(const http::Request& req, http::Response& res) {
    if (!authorized(req, res)) return;
    guarded(res, [&] {
      res.set_content(dump(responses.remove(req.params.at("id"))), "application/json");
    });
  }

  void responses_cancel(const http::Request& req, http::Response& res) {
    if (!authorized(req, res)) return;
    guarded(res, [&] { reply(res, responses.cancel(req.params.at("id"))); });
  }

  void tokenizer_info_route(const http::Request&, http::Response& res) {
    res.set_content(dump(tokenizer_info(ctx, tokenizer_config)), "application/json");
  }

  void chat(const http::Request& req, http::Response& res) {
    if (!authorized(req, res)) return;
    guarded(res, [&] {
      json b;
      nlohmann::ordered_json ob;
      if (!body(req, res, b, &ob)) return;
      ChatRequest cr = parse_chat_request(b);
      if (!check_model(cr.model, res)) return;
      if (ob.contains("tools") && ob["tools"].is_array() && !ob["tools"].empty())
        cr.tools_ordered = ob["tools"];
      cr.structured = parse_structured_request(ob);  // schema property order kept
      auto go = [this](const ChatRequest& r, http::Response& out) {
        respond_with(out, start_chat(ctx, r));
      };
      if (!fetch_first(cr, res, go)) go(cr, res);
    });
  }

  void completions(const http::Request& req, http::Response& res) {
    if (!authorized(req, res)) return;
    guarded(res, [&] {
      json b;
      nlohmann::ordered_json ob;
      if (!body(req, res, b, &ob)) return;
      CompletionRequest cr = parse_completion_request(b);
      if (!check_model(cr.model, res)) return;
      cr.structured = parse_structured_request(ob);  // schema property order kept
      respond_with(res, start_completion(ctx, cr));
    });
  }

  // /v1/audio/transcriptions and /v1/audio/translations (server/transcription.h): a multipart
  // upload, answered like the chat requests its clips are.
  void speech(const http::Request& req, http::Response& res, SpeechTask task) {
    if (!authorized(req, res)) return;
    guarded(res, [&] {
      const bool has_audio = ctx.media && ctx.media->config().mm.has_audio;
      SpeechRequest sr = parse_speech_request(req, task, has_audio, ctx.opts.model);
      if (!check_model(sr.model, res)) return;
      respond_speech(ctx, std::move(sr), res);
    });
  }

  // /tokenize's answer for these ids.
  void tokenized(const std::vector<int32_t>& ids, bool strs, http::Response& res) {
    json out = {{"count", ids.size()}, {"max_model_len", ctx.max_model_len}, {"tokens", ids}};
    if (strs) {
      json list = json::array();
      for (int32_t id : ids) list.push_back(ctx.tok.id_to_token(id).value_or(""));
      out["token_strs"] = list;
    }
    res.set_content(dump(out), "application/json");
  }

  void tokenize(const http::Request& req, http::Response& res) {
    guarded(res, [&] {
      json b;
      nlohmann::ordered_json ob;
      if (!body(req, res, b, &ob)) return;
      const bool strs = b.value("return_token_strs", false);
      if (b.contains("messages")) {
        json cb = b;
        if (!cb.contains("add_generation_prompt")) cb["add_generation_prompt"] = true;
        ChatRequest cr = parse_chat_request(cb);
        if (ob.contains("tools") && ob["tools"].is_array() && !ob["tools"].empty())
          cr.tools_ordered = ob["tools"];
        auto go = [this, strs](const ChatRequest& r, http::Response& out) {
          tokenized(prepare_chat(ctx, r).ids, strs, out);
        };
        if (!fetch_first(cr, res, go)) go(cr, res);
      } else if (b.contains("prompt") && b["prompt"].is_string()) {
        tok::EncodeOptions eo;
        eo.add_special_tokens = b.value("add_special_tokens", true);
        tokenized(ctx.tok.encode(b["prompt"].get<std::string>(), eo), strs, res);
      } else {
        throw ApiError::bad_request("give \"prompt\" (a string) or \"messages\"", "prompt");
      }
    });
  }

  void detokenize(const http::Request& req, http::Response& res) {
    guarded(res, [&] {
      json b;
      if (!body(req, res, b)) return;
      if (!b.contains("tokens") || !b["tokens"].is_array())
        throw ApiError::bad_request("\"tokens\" must be a list of token ids", "tokens");
      std::vector<int32_t> ids;
      for (const json& t : b["tokens"]) {
        if (!t.is_number_integer() || t.get<int64_t>() < 0 ||
            t.get<int64_t>() >= ctx.tok.id_bound())
          throw ApiError::bad_request(
              "\"tokens\" must be token ids in [0, " + std::to_string(ctx.tok.id_bound()) + ")",
              "tokens");
        ids.push_back(t.get<int32_t>());
      }
      res.set_content(dump(json{{"prompt", ctx.tok.decode(ids)}}), "application/json");
    });
  }

  // The route table. inline: cheap, runs on the I/O thread (answers even when every worker is
  // busy); while_draining: still served after SIGTERM. A known path with another method is a
  // 405, an unknown path a 404 (the HTTP layer answers both).
  void routes() {
    using R = http::Request;
    using S = http::Response;
    auto bind = [this](void (Impl::*f)(const R&, S&)) {
      return [this, f](const R& q, S& s) { (this->*f)(q, s); };
    };
    const http::Route table[] = {
        {"GET", "/health", bind(&Impl::health), true},
        {"GET", "/ping", bind(&Impl::health), true},
        {"POST", "/ping", bind(&Impl::health), true},
        {"GET", "/version",
         [](const R&, S& s) {
           s.set_content(R"({"version":"fourcast 0.1.0"})", "application/json");
         },
         true},
        {"GET", "/metrics",
         [this](const R&, S& s) {
           s.set_content(ctx.metrics.render(ctx.engine.stats(), ctx.model_name) +
                             ctx.metrics.render_http(http.stats()) + responses.metrics_text(),
                         "text/plain; version=0.0.4");
         },
         true, true},
        {"GET", "/v1/models", bind(&Impl::models), true},
        {"GET", "/v1/models/{id...}", bind(&Impl::model), true},  // names may contain '/'
        {"POST", "/v1/chat/completions", bind(&Impl::chat)},
        {"POST", "/v1/completions", bind(&Impl::completions)},
        {"POST", "/v1/responses", bind(&Impl::responses_create)},
        {"GET", "/v1/responses/{id}", bind(&Impl::responses_get)},
        {"DELETE", "/v1/responses/{id}", bind(&Impl::responses_delete)},
        {"POST", "/v1/responses/{id}/cancel", bind(&Impl::responses_cancel)},
        {"POST", "/v1/audio/transcriptions",
         [this](const R& q, S& s) { speech(q, s, SpeechTask::kTranscribe); }},
        {"POST", "/v1/audio/translations",
         [this](const R& q, S& s) { speech(q, s, SpeechTask::kTranslate); }},
        {"POST", "/tokenize", bind(&Impl::tokenize)},
        {"POST", "/detokenize", bind(&Impl::detokenize)},
    };
    for (const http::Route& r : table) http.add(r);
    if (ctx.opts.enable_tokenizer_info_endpoint)  // vLLM: off by default (then a 404)
      http.add({"GET", "/tokenizer_info", bind(&Impl::tokenizer_info_route), true});
  }
};

HttpServer::HttpServer(ServingContext& ctx) : impl_(std::make_unique<Impl>(ctx)) {
  impl_->routes();
}

HttpServer::~HttpServer() = default;

int HttpServer::bind(const std::string& host, int port) {
  const http::BindResult r = impl_->http.bind(host, port);
  if (!r.ok) fail(r.error);
  return r.port;
}

void HttpServer::serve() {
  impl_->http.serve();
}

void HttpServer::begin_drain(double timeout_s) {
  impl_->http.begin_drain(std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000)));
}

void HttpServer::stop() {
  impl_->http.stop();
}

http::ServerStats HttpServer::stats() const {
  return impl_->http.stats();
}

}  // namespace fc
