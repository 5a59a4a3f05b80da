// Loading the bytes a media URL names, with vLLM's rules and messages (vllm/multimodal/media/
// connector.py MediaConnector): data: URLs (base64 only), http(s) through libcurl (Debian's
// libcurl4-openssl-dev) with a timeout, a size cap and a redirect limit, every hop's host checked
// against --allowed-media-domains, and file: URLs only under --allowed-local-media-path.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace fc {

struct FetchOptions {
  std::vector<std::string> allowed_domains;  // empty: any host
  std::string allowed_local_media_path;      // empty: file: URLs refused
  double timeout_s = 5.0;                    // VLLM_IMAGE_FETCH_TIMEOUT's default
  int64_t max_bytes = 64ll << 20;            // body cap
  int max_redirects = 5;
};

// One remote URL's outcome: the body, or the ApiError fetching it raised (status != 0).
struct FetchedMedia {
  std::vector<uint8_t> bytes;
  int error_status = 0;
  std::string error_message, error_param;
};
// Remote media fetched ahead of a request's preparation (server/media_prefetch.h), by URL.
struct PrefetchedMedia {
  std::map<std::string, FetchedMedia> items;
};

// Throws ApiError: 400 for a malformed or unsupported URL, a disallowed host or path, a file that
// cannot be read, a non-base64 data URL; 422 ("Failed to fetch media from URL: ...") for an HTTP
// 4xx answer (except 408 / 429) or a body over max_bytes, as vLLM's VLLMUnprocessableEntityError;
// 400 for timeouts, 5xx and network errors. An http(s) URL found in `prefetched` is not fetched
// again (its stored error is thrown); one that is not is fetched now, on the calling thread.
std::vector<uint8_t> load_media_url(const std::string& url, const FetchOptions& opt,
                                    const PrefetchedMedia* prefetched = nullptr);

// True for http:// and https:// URLs (any case): what fetch_remote fetches.
bool is_remote_url(const std::string& url);

// Fetches every http(s) URL concurrently on the calling thread (one libcurl multi handle): each
// URL has opt.timeout_s for all its redirect hops, every hop's host is checked against the
// allowed domains, bodies are capped at opt.max_bytes. `cancelled` is polled at least every
// 100 ms; once it returns true the transfers stop and the remaining URLs record a 503. Never
// throws for a URL's failure: it is recorded as that URL's error.
PrefetchedMedia fetch_remote(const std::vector<std::string>& urls, const FetchOptions& opt,
                             const std::function<bool()>& cancelled = {});

// RFC 4648 base64 (no whitespace; padding optional); false on any other character.
bool base64_decode(const std::string& in, std::vector<uint8_t>& out);

}  // namespace fc
