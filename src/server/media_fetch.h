// Loading the bytes a media URL names, with vLLM's rules and messages (vllm/multimodal/media/
// connector.py MediaConnector): data: URLs (base64 only), http(s) through libcurl (Debian's
// libcurl4-openssl-dev) with a timeout, a size cap and a redirect limit, every hop's host checked
// against --allowed-media-domains, and file: URLs only under --allowed-local-media-path.
#pragma once

#include <cstdint>
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

// Throws ApiError: 400 for a malformed or unsupported URL, a disallowed host or path, a file that
// cannot be read, a non-base64 data URL; 422 ("Failed to fetch media from URL: ...") for an HTTP
// 4xx answer (except 408 / 429) or a body over max_bytes, as vLLM's VLLMUnprocessableEntityError;
// 400 for timeouts, 5xx and network errors.
std::vector<uint8_t> load_media_url(const std::string& url, const FetchOptions& opt);

// RFC 4648 base64 (no whitespace; padding optional); false on any other character.
bool base64_decode(const std::string& in, std::vector<uint8_t>& out);

}  // namespace fc
