#include "server/media_fetch.h"

#include <curl/curl.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>

#include "server/api_error.h"

namespace fc {
namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

[[noreturn]] void unprocessable(const std::string& url, const std::string& why) {
  throw ApiError(422, "Failed to fetch media from URL: " + url + " (" + why + ")", "url");
}

std::vector<uint8_t> load_data_url(const std::string& url) {
  const size_t comma = url.find(',');
  if (comma == std::string::npos)
    throw ApiError::bad_request("Invalid data URL: missing ',' separator", "url");
  const std::string spec = url.substr(5, comma - 5);  // after "data:"
  const size_t semi = spec.find(';');
  if (semi == std::string::npos || spec.substr(semi + 1) != "base64")
    throw ApiError::bad_request("Only base64 data URLs are supported for now.", "url");
  std::vector<uint8_t> out;
  if (!base64_decode(url.substr(comma + 1), out))
    throw ApiError::bad_request("Invalid base64 data in the data URL", "url");
  return out;
}

std::vector<uint8_t> load_file_url(const std::string& url, const FetchOptions& o) {
  if (o.allowed_local_media_path.empty())
    throw ApiError::bad_request("Cannot load local files without `--allowed-local-media-path`.",
                                "url");
  std::string path = url.substr(7);  // file://PATH
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path root = fs::weakly_canonical(o.allowed_local_media_path, ec);
  const fs::path p = fs::weakly_canonical(path, ec);
  const std::string rs = root.string(), ps = p.string();
  if (ec || ps.compare(0, rs.size(), rs) != 0 || (ps.size() > rs.size() && ps[rs.size()] != '/'))
    throw ApiError::bad_request("The file path " + path + " must be a subpath of " +
                                    "`--allowed-local-media-path` " + o.allowed_local_media_path +
                                    ".",
                                "url");
  const auto size = fs::file_size(p, ec);
  if (ec) throw ApiError::bad_request("Cannot read the local file " + path, "url");
  if (static_cast<int64_t>(size) > o.max_bytes)
    unprocessable(url, "the file is larger than " + std::to_string(o.max_bytes) + " bytes");
  std::ifstream f(p, std::ios::binary);
  std::vector<uint8_t> out(size);
  if (!f.read(reinterpret_cast<char*>(out.data()), static_cast<std::streamsize>(size)))
    throw ApiError::bad_request("Cannot read the local file " + path, "url");
  return out;
}

struct Body {
  std::vector<uint8_t> data;
  int64_t max = 0;
  bool over = false;
};

size_t on_data(char* p, size_t sz, size_t n, void* ud) {
  Body* b = static_cast<Body*>(ud);
  const size_t k = sz * n;
  if (static_cast<int64_t>(b->data.size() + k) > b->max) {
    b->over = true;
    return 0;  // aborts the transfer
  }
  b->data.insert(b->data.end(), p, p + k);
  return k;
}

void check_domain(const std::string& url, const FetchOptions& o) {
  if (o.allowed_domains.empty()) return;
  CURLU* u = curl_url();
  char* host = nullptr;
  std::string h;
  if (curl_url_set(u, CURLUPART_URL, url.c_str(), 0) == CURLUE_OK &&
      curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
    h = lower(host);
    curl_free(host);
  }
  curl_url_cleanup(u);
  for (const std::string& d : o.allowed_domains)
    if (h == lower(d)) return;
  std::string list;
  for (const std::string& d : o.allowed_domains) list += (list.empty() ? "" : ", ") + d;
  throw ApiError::bad_request(
      "The URL must be from one of the allowed domains: [" + list + "]. Input URL domain: " + h,
      "url");
}

using Clock = std::chrono::steady_clock;

// One URL's transfer through its redirect hops (each hop one easy handle on the multi handle).
struct Transfer {
  std::string url0, url;  // as given; the current hop
  int hop = 0;
  Clock::time_point deadline;
  CURL* easy = nullptr;
  Body body;
  char err[CURL_ERROR_SIZE] = {0};
  FetchedMedia* out = nullptr;
};

void record_error(FetchedMedia& m, const ApiError& e) {
  m.bytes.clear();
  m.error_status = e.status();
  m.error_message = e.what();
  m.error_param = e.param();
}

// Starts the current hop of t on `multi`: the host check, then an easy handle with the time left.
void start_hop(CURLM* multi, Transfer& t, const FetchOptions& o) {
  check_domain(t.url, o);  // every hop, as vLLM checks each redirect
  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(t.deadline - Clock::now()).count();
  if (left <= 0)
    throw ApiError::bad_request("Failed to fetch media from URL: " + t.url0 + " (timed out after " +
                                    std::to_string(o.timeout_s) + " s)",
                                "url");
  t.easy = curl_easy_init();
  if (!t.easy) throw ApiError(500, "cannot start an HTTP fetch");
  t.body = Body{};
  t.body.max = o.max_bytes;
  t.err[0] = 0;
  CURL* c = t.easy;
  curl_easy_setopt(c, CURLOPT_URL, t.url.c_str());
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);  // followed here, one hop at a time
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(left));
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &t.body);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, t.err);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "fourcast");
  curl_easy_setopt(c, CURLOPT_PRIVATE, &t);
  curl_multi_add_handle(multi, c);
}

// A hop ended with `rc`: records the body or the error, or starts the next hop. Throws ApiError
// for the URL's failure.
void finish_hop(CURLM* multi, Transfer& t, CURLcode rc, const FetchOptions& o) {
  long status = 0;
  curl_easy_getinfo(t.easy, CURLINFO_RESPONSE_CODE, &status);
  char* loc = nullptr;
  curl_easy_getinfo(t.easy, CURLINFO_REDIRECT_URL, &loc);
  const std::string next = loc ? loc : "";
  const std::string why = t.err[0] ? t.err : curl_easy_strerror(rc);
  curl_multi_remove_handle(multi, t.easy);
  curl_easy_cleanup(t.easy);
  t.easy = nullptr;
  if (t.body.over) unprocessable(t.url0, "larger than " + std::to_string(o.max_bytes) + " bytes");
  if (rc == CURLE_URL_MALFORMAT || rc == CURLE_UNSUPPORTED_PROTOCOL)
    unprocessable(t.url0, "invalid URL");
  if (rc != CURLE_OK)
    throw ApiError::bad_request("Failed to fetch media from URL: " + t.url0 + " (" + why + ")",
                                "url");
  if (status >= 300 && status < 400 && !next.empty()) {
    if (++t.hop > o.max_redirects) unprocessable(t.url0, "too many redirects");
    t.url = next;
    start_hop(multi, t, o);
    return;
  }
  if (status >= 400 && status < 500 && status != 408 && status != 429)
    unprocessable(t.url0, "HTTP " + std::to_string(status));
  if (status >= 400)
    throw ApiError::bad_request(
        "Failed to fetch media from URL: " + t.url0 + " (HTTP " + std::to_string(status) + ")",
        "url");
  t.out->bytes = std::move(t.body.data);
}

}  // namespace

bool is_remote_url(const std::string& url) {
  const std::string l = lower(url.substr(0, std::min<size_t>(url.size(), 8)));
  return l.rfind("http://", 0) == 0 || l.rfind("https://", 0) == 0;
}

PrefetchedMedia fetch_remote(const std::vector<std::string>& urls, const FetchOptions& o,
                             const std::function<bool()>& cancelled) {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  PrefetchedMedia result;
  std::vector<std::unique_ptr<Transfer>> ts;
  CURLM* multi = curl_multi_init();
  if (!multi) throw ApiError(500, "cannot start an HTTP fetch");
  const Clock::time_point deadline =
      Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(o.timeout_s * 1000));
  for (const std::string& u : urls) {
    if (result.items.count(u)) continue;  // each URL once
    auto t = std::make_unique<Transfer>();
    t->url0 = t->url = u;
    t->deadline = deadline;
    t->out = &result.items[u];
    try {
      start_hop(multi, *t, o);
    } catch (const ApiError& e) {
      record_error(*t->out, e);
    }
    ts.push_back(std::move(t));
  }
  auto active = [&] {
    for (const auto& t : ts)
      if (t->easy) return true;
    return false;
  };
  while (active()) {
    if (cancelled && cancelled()) {
      for (const auto& t : ts)
        if (t->easy) record_error(*t->out, ApiError(503, "the media fetch was cancelled", "url"));
      break;
    }
    int running = 0;
    curl_multi_perform(multi, &running);
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi, &left)) {
      if (msg->msg != CURLMSG_DONE) continue;
      Transfer* t = nullptr;
      curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, reinterpret_cast<char**>(&t));
      const CURLcode rc = msg->data.result;
      try {
        finish_hop(multi, *t, rc, o);
      } catch (const ApiError& e) {
        if (t->easy) {  // a failed start of the next hop
          curl_multi_remove_handle(multi, t->easy);
          curl_easy_cleanup(t->easy);
          t->easy = nullptr;
        }
        record_error(*t->out, e);
      }
    }
    if (active()) curl_multi_poll(multi, nullptr, 0, 100, nullptr);
  }
  for (const auto& t : ts)
    if (t->easy) {
      curl_multi_remove_handle(multi, t->easy);
      curl_easy_cleanup(t->easy);
    }
  curl_multi_cleanup(multi);
  return result;
}

namespace {

std::vector<uint8_t> load_http_url(const std::string& url, const FetchOptions& o,
                                   const PrefetchedMedia* prefetched) {
  PrefetchedMedia now;
  if (!prefetched || !prefetched->items.count(url)) {
    now = fetch_remote({url}, o);
    prefetched = &now;
  }
  const FetchedMedia& m = prefetched->items.at(url);
  if (m.error_status) throw ApiError(m.error_status, m.error_message, m.error_param);
  return m.bytes;
}

}  // namespace

bool base64_decode(const std::string& in, std::vector<uint8_t>& out) {
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
  };
  size_t n = in.size();
  while (n > 0 && in[n - 1] == '=') --n;
  if (in.size() - n > 2 || n % 4 == 1) return false;
  out.clear();
  out.reserve(n * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < n; ++i) {
    const int v = val(in[i]);
    if (v < 0) return false;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<uint8_t>(acc >> bits));
    }
  }
  return true;
}

std::vector<uint8_t> load_media_url(const std::string& url, const FetchOptions& opt,
                                    const PrefetchedMedia* prefetched) {
  const std::string l = lower(url.substr(0, std::min<size_t>(url.size(), 8)));
  if (l.rfind("data:", 0) == 0) return load_data_url(url);
  if (is_remote_url(url)) return load_http_url(url, opt, prefetched);
  if (l.rfind("file://", 0) == 0) return load_file_url(url, opt);
  throw ApiError::bad_request("The URL must be either a HTTP, data or file URL.", "url");
}

}  // namespace fc
