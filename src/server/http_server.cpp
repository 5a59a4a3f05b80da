#include "server/http_server.h"

#include <sys/socket.h>

#include <httplib.h>

#include <atomic>

#include "core/log.h"
#include "server/api_error.h"
#include "server/cors.h"
#include "server/info_routes.h"
#include "server/model_files.h"
#include "server/responses.h"

namespace fc {

using nlohmann::json;

struct HttpServer::Impl {
  ServingContext& ctx;
  httplib::Server http;
  // The listening socket, recorded when httplib creates it: cpp-httplib 0.11 (Debian's shared
  // library) listens with a backlog of 5, so bursts of connects were reset; Linux lets a second
  // listen() raise the backlog of a listening socket.
  int listen_fd = -1;
  ResponsesService responses;  // /v1/responses (server/responses.h)
  CorsPolicy cors;
  std::string tokenizer_config;  // tokenizer_config.json's text, for /tokenizer_info
  explicit Impl(ServingContext& c)
      : ctx(c), responses(c, responses_store_limits(c.opts)), cors(cors_options(c.opts)) {
    if (c.opts.enable_tokenizer_info_endpoint) try {
        tokenizer_config = read_text_file(c.opts.model + "/tokenizer_config.json");
      } catch (const Error&) {
      }
    http.set_socket_options([this](int sock) {
      int yes = 1;
      setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
      listen_fd = sock;
    });
  }
  void raise_backlog() {
    if (listen_fd >= 0) ::listen(listen_fd, kListenBacklog);
  }
  static constexpr int kListenBacklog = 1024;

  void send_error(httplib::Response& res, int status, const std::string& message,
                  const std::string& param = "") {
    res.status = status;
    res.set_content(
        error_json(status, message, param).dump(-1, ' ', false, json::error_handler_t::replace),
        "application/json");
  }

  bool authorized(const httplib::Request& req, httplib::Response& res) {
    if (ctx.opts.api_key.empty()) return true;
    if (req.get_header_value("Authorization") == "Bearer " + ctx.opts.api_key) return true;
    res.status = 401;
    res.set_content(R"({"error":"Unauthorized"})", "application/json");
    return false;
  }

  // Parses a JSON POST body (content type, size and syntax checked) into both a plain and an
  // order-preserving document.
  bool body(const httplib::Request& req, httplib::Response& res, json& out,
            nlohmann::ordered_json* ordered = nullptr) {
    const std::string ct = req.get_header_value("Content-Type");
    if (ct.rfind("application/json", 0) != 0) {
      send_error(res, 415, "Content-Type must be application/json, got '" + ct + "'");
      return false;
    }
    try {
      out = json::parse(req.body);
      if (ordered) *ordered = nlohmann::ordered_json::parse(req.body);
    } catch (const json::exception& e) {
      send_error(res, 400, std::string("invalid JSON body: ") + e.what());
      return false;
    }
    return true;
  }

  bool check_model(const std::string& model, httplib::Response& res) {
    if (model.empty()) return true;
    for (const std::string& n : ctx.opts.served_model_names)
      if (n == model) return true;
    send_error(res, 404, "The model `" + model + "` does not exist.", "model");
    return false;
  }

  // Runs a handler body, mapping exceptions to error responses.
  template <typename F>
  void guarded(httplib::Response& res, F&& f) {
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

  void stream(httplib::Response& res, std::shared_ptr<StreamJob> job) {
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider("text/event-stream", [job](size_t, httplib::DataSink& sink) {
      const bool frames = job->writes_frames();  // Responses API: named events, no [DONE]
      auto write = [&](const std::string& data) {
        if (data.empty()) return sink.is_writable();
        const std::string ev = frames ? data : "data: " + data + "\n\n";
        return sink.is_writable() && sink.write(ev.data(), ev.size());
      };
      auto error = [&](const json& e) {
        write(frames ? "event: error\ndata: " + e.dump() + "\n\n" : e.dump());
      };
      try {
        job->run(write);
      } catch (const ApiError& e) {
        error(error_json(e.status(), e.what(), e.param()));
      } catch (const std::exception& e) {
        error(error_json(500, e.what(), ""));
      }
      if (!frames) write("[DONE]");
      sink.done();
      return true;
    });
  }

  void send_json(httplib::Response& res, const json& j) {
    res.set_content(j.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
  }

  // The Responses API, GET /v1/models/{id}, /tokenizer_info and CORS: the logic is in
  // server/responses.h, info_routes.h and cors.h; these are only the bindings.
  void routes_responses_and_info() {
    auto reply = [this](httplib::Response& res, ResponsesService::Reply r) {
      if (r.stream)
        stream(res, std::move(r.stream));
      else
        send_json(res, r.body);
    };
    http.Post("/v1/responses", [this, reply](const httplib::Request& req, httplib::Response& res) {
      if (!authorized(req, res)) return;
      guarded(res, [&] {
        json b;
        nlohmann::ordered_json ob;
        if (body(req, res, b, &ob)) reply(res, responses.create(b, ob));
      });
    });
    const char* one = R"(/v1/responses/([^/]+))";
    http.Get(one, [this, reply](const httplib::Request& req, httplib::Response& res) {
      if (!authorized(req, res)) return;
      guarded(res, [&] {
        reply(res, responses.retrieve(req.matches[1], req.get_param_value("stream"),
                                      req.get_param_value("starting_after")));
      });
    });
    http.Delete(one, [this](const httplib::Request& req, httplib::Response& res) {
      if (!authorized(req, res)) return;
      guarded(res, [&] { send_json(res, responses.remove(req.matches[1])); });
    });
    http.Post(R"(/v1/responses/([^/]+)/cancel)",
              [this](const httplib::Request& req, httplib::Response& res) {
                if (!authorized(req, res)) return;
                guarded(res, [&] { send_json(res, responses.cancel(req.matches[1])); });
              });
    http.Get(R"(/v1/models/(.+))", [this](const httplib::Request& req, httplib::Response& res) {
      if (!authorized(req, res)) return;
      if (auto card = find_model_card(ctx, req.matches[1]))
        send_json(res, *card);
      else
        send_error(res, 404, "The model `" + std::string(req.matches[1]) + "` does not exist.",
                   "model");
    });
    if (ctx.opts.enable_tokenizer_info_endpoint)
      http.Get("/tokenizer_info", [this](const httplib::Request&, httplib::Response& res) {
        send_json(res, tokenizer_info(ctx, tokenizer_config));
      });
    auto cors_req = [](const httplib::Request& req) {
      CorsRequest c;
      c.method = req.method;
      auto opt = [&](const char* h) {
        return req.has_header(h) ? std::optional<std::string>(req.get_header_value(h))
                                 : std::nullopt;
      };
      c.origin = opt("Origin");
      c.request_method = opt("Access-Control-Request-Method");
      c.request_headers = opt("Access-Control-Request-Headers");
      c.has_cookie = req.has_header("Cookie");
      return c;
    };
    http.set_pre_routing_handler(
        [this, cors_req](const httplib::Request& req, httplib::Response& res) {
          const std::optional<CorsPreflight> p = cors.preflight(cors_req(req));
          if (!p) return httplib::Server::HandlerResponse::Unhandled;
          res.status = p->status;
          for (const auto& [k, v] : p->headers) res.set_header(k, v);
          res.set_content(p->body, "text/plain; charset=utf-8");
          return httplib::Server::HandlerResponse::Handled;
        });
    http.set_post_routing_handler(
        [this, cors_req](const httplib::Request& req, httplib::Response& res) {
          if (req.method == "OPTIONS" && req.has_header("Access-Control-Request-Method")) return;
          for (const auto& [k, v] : cors.response_headers(cors_req(req))) res.set_header(k, v);
        });
  }

  void routes() {
    auto health = [this](const httplib::Request&, httplib::Response& res) {
      if (ctx.engine.alive())
        res.status = 200;
      else
        send_error(res, 503, "the engine is not running");
    };
    http.Get("/health", health);
    http.Get("/ping", health);
    http.Post("/ping", health);
    http.Get("/version", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(R"({"version":"fourcast 0.1.0"})", "application/json");
    });
    http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(
          ctx.metrics.render(ctx.engine.stats(), ctx.model_name) + responses.metrics_text(),
          "text/plain; version=0.0.4");
    });
    http.Get("/v1/models", [this](const httplib::Request& req, httplib::Response& res) {
      if (!authorized(req, res)) return;
      json data = json::array();
      for (const std::string& n : ctx.opts.served_model_names) data.push_back(model_card(ctx, n));
      res.set_content(json{{"object", "list"}, {"data", data}}.dump(), "application/json");
    });
    routes_responses_and_info();
    http.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
      if (!authorized(req, res)) return;
      guarded(res, [&] {
        json b;
        nlohmann::ordered_json ob;
        if (!body(req, res, b, &ob)) return;
        ChatRequest cr = parse_chat_request(b);
        if (!check_model(cr.model, res)) return;
        if (ob.contains("tools") && ob["tools"].is_array() && !ob["tools"].empty())
          cr.tools_ordered = ob["tools"];
        if (cr.stream) {
          stream(res, start_chat_stream(ctx, cr));
        } else {
          res.set_content(serve_chat(ctx, cr).dump(-1, ' ', false, json::error_handler_t::replace),
                          "application/json");
        }
      });
    });
    http.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
      if (!authorized(req, res)) return;
      guarded(res, [&] {
        json b;
        if (!body(req, res, b)) return;
        CompletionRequest cr = parse_completion_request(b);
        if (!check_model(cr.model, res)) return;
        if (cr.stream) {
          stream(res, start_completion_stream(ctx, cr));
        } else {
          res.set_content(
              serve_completion(ctx, cr).dump(-1, ' ', false, json::error_handler_t::replace),
              "application/json");
        }
      });
    });
    http.Post("/tokenize", [this](const httplib::Request& req, httplib::Response& res) {
      guarded(res, [&] {
        json b;
        nlohmann::ordered_json ob;
        if (!body(req, res, b, &ob)) return;
        std::vector<int32_t> ids;
        if (b.contains("messages")) {
          json cb = b;
          if (!cb.contains("add_generation_prompt")) cb["add_generation_prompt"] = true;
          ChatRequest cr = parse_chat_request(cb);
          if (ob.contains("tools") && ob["tools"].is_array() && !ob["tools"].empty())
            cr.tools_ordered = ob["tools"];
          ids = prepare_chat(ctx, cr).ids;
        } else if (b.contains("prompt") && b["prompt"].is_string()) {
          tok::EncodeOptions eo;
          eo.add_special_tokens = b.value("add_special_tokens", true);
          ids = ctx.tok.encode(b["prompt"].get<std::string>(), eo);
        } else {
          throw ApiError::bad_request("give \"prompt\" (a string) or \"messages\"", "prompt");
        }
        json out = {{"count", ids.size()}, {"max_model_len", ctx.max_model_len}, {"tokens", ids}};
        if (b.value("return_token_strs", false)) {
          json strs = json::array();
          for (int32_t id : ids) strs.push_back(ctx.tok.id_to_token(id).value_or(""));
          out["token_strs"] = strs;
        }
        res.set_content(out.dump(-1, ' ', false, json::error_handler_t::replace),
                        "application/json");
      });
    });
    http.Post("/detokenize", [this](const httplib::Request& req, httplib::Response& res) {
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
        res.set_content(json{{"prompt", ctx.tok.decode(ids)}}.dump(-1, ' ', false,
                                                                   json::error_handler_t::replace),
                        "application/json");
      });
    });
    // Known routes with the wrong method: 405, as FastAPI answers.
    for (const char* path :
         {"/v1/chat/completions", "/v1/completions", "/tokenize", "/detokenize", "/v1/responses"})
      http.Get(path, [this](const httplib::Request&, httplib::Response& res) {
        send_error(res, 405, "method not allowed");
      });
    for (const char* path : {"/v1/models", "/health", "/version", "/metrics"})
      http.Post(path, [this](const httplib::Request&, httplib::Response& res) {
        send_error(res, 405, "method not allowed");
      });
    // Errors httplib produces itself (404 route, 413 body too large, ...) in OpenAI's shape.
    http.set_error_handler([this](const httplib::Request&, httplib::Response& res) {
      if (!res.body.empty()) return;
      const int st = res.status;
      const std::string msg = st == 404   ? "not found"
                              : st == 413 ? "request body too large"
                              : st == 405 ? "method not allowed"
                                          : "request failed";
      send_error(res, st, msg);
    });
    http.set_logger([this](const httplib::Request&, const httplib::Response& res) {
      ctx.metrics.count_http(res.status);
    });
    http.set_payload_max_length(static_cast<size_t>(ctx.opts.max_request_bytes));
    // Streams are latency-sensitive (no Nagle delay), and one worker per concurrent client: a
    // streaming request holds its thread for its whole life.
    http.set_tcp_nodelay(true);
    http.new_task_queue = [] { return new httplib::ThreadPool(256); };
    http.set_read_timeout(60, 0);
    http.set_write_timeout(60, 0);
  }
};

HttpServer::HttpServer(ServingContext& ctx) : impl_(std::make_unique<Impl>(ctx)) {
  impl_->routes();
}
HttpServer::~HttpServer() {
  stop();
}

bool HttpServer::listen(const std::string& host, int port) {
  return bind(host, port) && serve();
}
int HttpServer::bind_any_port(const std::string& host) {
  const int port = impl_->http.bind_to_any_port(host);
  if (port > 0) impl_->raise_backlog();
  return port;
}
bool HttpServer::bind(const std::string& host, int port) {
  if (!impl_->http.bind_to_port(host, port)) return false;
  impl_->raise_backlog();
  return true;
}
bool HttpServer::serve() {
  return impl_->http.listen_after_bind();
}
void HttpServer::stop() {
  impl_->http.stop();
}

}  // namespace fc
