// CORS answers against Starlette's CORSMiddleware rules (starlette/middleware/cors.py), with
// vLLM's defaults (all origins, methods and headers; no credentials).
#include <gtest/gtest.h>

#include "core/error.h"
#include "server/cors.h"

namespace fc {
namespace {

std::optional<std::string> header(const HeaderList& h, const std::string& k) {
  for (const auto& [n, v] : h)
    if (n == k) return v;
  return std::nullopt;
}

CorsRequest preflight_req(const std::string& origin, const std::string& method = "POST",
                          std::optional<std::string> headers = std::nullopt) {
  CorsRequest r;
  r.method = "OPTIONS";
  r.origin = origin;
  r.request_method = method;
  r.request_headers = std::move(headers);
  return r;
}

TEST(Cors, DefaultsAllowEveryOriginWithAStar) {
  CorsPolicy p(CorsOptions{});
  auto pf = p.preflight(preflight_req("http://a.example", "POST", "content-type,authorization"));
  ASSERT_TRUE(pf);
  EXPECT_EQ(pf->status, 200);
  EXPECT_EQ(pf->body, "OK");
  EXPECT_EQ(header(pf->headers, "Access-Control-Allow-Origin"), "*");
  EXPECT_EQ(header(pf->headers, "Access-Control-Allow-Methods"),
            "DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT");
  EXPECT_EQ(header(pf->headers, "Access-Control-Allow-Headers"), "content-type,authorization");
  EXPECT_EQ(header(pf->headers, "Access-Control-Max-Age"), "600");
  EXPECT_FALSE(header(pf->headers, "Access-Control-Allow-Credentials"));
  CorsRequest get;
  get.method = "GET";
  get.origin = "http://a.example";
  const HeaderList h = p.response_headers(get);
  EXPECT_EQ(header(h, "Access-Control-Allow-Origin"), "*");
  get.has_cookie = true;  // with cookies the origin itself is echoed
  EXPECT_EQ(header(p.response_headers(get), "Access-Control-Allow-Origin"), "http://a.example");
  EXPECT_EQ(header(p.response_headers(get), "Vary"), "Origin");
}

TEST(Cors, NamedOriginsEchoAllowedAndRefuseOthers) {
  CorsOptions o;
  o.allowed_origins = {"http://good.example"};
  o.allowed_methods = {"GET", "POST"};
  o.allowed_headers = {"Authorization"};
  o.allow_credentials = true;
  CorsPolicy p(o);
  auto ok =
      p.preflight(preflight_req("http://good.example", "POST", "Authorization, Content-Type"));
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
  EXPECT_EQ(header(ok->headers, "Access-Control-Allow-Origin"), "http://good.example");
  EXPECT_EQ(header(ok->headers, "Vary"), "Origin");
  EXPECT_EQ(header(ok->headers, "Access-Control-Allow-Credentials"), "true");
  EXPECT_EQ(header(ok->headers, "Access-Control-Allow-Methods"), "GET, POST");
  EXPECT_EQ(header(ok->headers, "Access-Control-Allow-Headers"),
            "Accept, Accept-Language, Authorization, Content-Language, Content-Type");

  auto bad = p.preflight(preflight_req("http://evil.example", "DELETE", "x-custom"));
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400);
  EXPECT_EQ(bad->body, "Disallowed CORS origin, method, headers");
  EXPECT_FALSE(header(bad->headers, "Access-Control-Allow-Origin"));

  CorsRequest post;
  post.method = "POST";
  post.origin = "http://evil.example";
  EXPECT_FALSE(header(p.response_headers(post), "Access-Control-Allow-Origin"));
  post.origin = "http://good.example";
  EXPECT_EQ(header(p.response_headers(post), "Access-Control-Allow-Origin"), "http://good.example");
}

TEST(Cors, NotCorsOrNotPreflight) {
  CorsPolicy p(CorsOptions{});
  CorsRequest r;
  r.method = "OPTIONS";  // no Origin
  r.request_method = "POST";
  EXPECT_FALSE(p.preflight(r));
  EXPECT_TRUE(p.response_headers(r).empty());
  r.origin = "http://a.example";
  r.request_method.reset();  // an OPTIONS request that is not a preflight is routed
  EXPECT_FALSE(p.preflight(r));
}

TEST(Cors, FlagListsAreJson) {
  EXPECT_EQ(parse_cors_list("--allowed-origins", R"(["http://a", "http://b"])"),
            (std::vector<std::string>{"http://a", "http://b"}));
  EXPECT_THROW(parse_cors_list("--allowed-origins", "http://a"), Error);
  EXPECT_THROW(parse_cors_list("--allowed-origins", "[1]"), Error);
}

}  // namespace
}  // namespace fc
