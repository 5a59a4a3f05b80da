// Fuzzes the multipart/form-data parser (src/http/multipart.h), which reads upload bodies
// (/v1/audio/transcriptions). Input: a Content-Type value up to the first '\n', then the body.
// Only MultipartError may escape, with status 400 or 413 and a message; an accepted form must
// keep every limit, its parts must be views into the body, and writing the form out again with
// the same boundary (each part's header lines and content, CRLF-framed) must parse to the same
// parts. Small limits so that short inputs reach every one of them.
#include <string>
#include <string_view>

#include "http/multipart.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

fc::http::MultipartLimits limits() {
  fc::http::MultipartLimits l;
  l.max_total_bytes = 8192;
  l.max_parts = 8;
  l.max_header_bytes = 256;
  l.max_headers = 6;
  return l;
}

std::string serialize(const fc::http::MultipartForm& f, const std::string& b) {
  std::string s;
  for (const fc::http::FormPart& p : f.parts) {
    s += "--" + b + "\r\n";
    for (const auto& [name, value] : p.headers) s += name + ": " + value + "\r\n";
    s += "\r\n";
    s += p.data;
    s += "\r\n";
  }
  return s + "--" + b + "--\r\n";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const auto [ct, body] = fc::fuzz::split_once(in, "\n");
  const fc::http::MultipartLimits lim = limits();
  std::string boundary;
  try {
    boundary = fc::http::multipart_boundary(ct);
  } catch (const fc::http::MultipartError& e) {
    FUZZ_CHECK(e.status() == 400, "boundary error with status " + std::to_string(e.status()));
    FUZZ_CHECK(*e.what() != '\0', "boundary error without a message");
    return 0;
  }
  FUZZ_CHECK(!boundary.empty() && boundary.size() <= 70, "boundary length out of range");
  fc::http::MultipartForm form;
  try {
    form = fc::http::parse_multipart(body, boundary, lim);
  } catch (const fc::http::MultipartError& e) {
    FUZZ_CHECK(e.status() == 400 || e.status() == 413,
               "undocumented status " + std::to_string(e.status()));
    FUZZ_CHECK(*e.what() != '\0', "error without a message");
    FUZZ_CHECK(e.status() != 413 || body.size() > lim.max_total_bytes, "413 under the limit");
    return 0;
  }
  FUZZ_CHECK(body.size() <= lim.max_total_bytes, "accepted a body over max_total_bytes");
  FUZZ_CHECK(form.parts.size() <= lim.max_parts, "more than max_parts parts");
  for (const fc::http::FormPart& p : form.parts) {
    FUZZ_CHECK(p.headers.size() <= lim.max_headers, "more than max_headers header lines");
    FUZZ_CHECK(p.data.empty() || (p.data.data() >= body.data() &&
                                  p.data.data() + p.data.size() <= body.data() + body.size()),
               "part data outside the body");
  }
  const std::string again = serialize(form, boundary);
  fc::http::MultipartLimits big = lim;
  big.max_total_bytes = again.size();
  big.max_header_bytes = 1 << 20;  // re-written headers may be longer ("name: value")
  fc::http::MultipartForm f2;
  try {
    f2 = fc::http::parse_multipart(again, boundary, big);
  } catch (const fc::http::MultipartError& e) {
    FUZZ_CHECK(false, std::string("the re-written form does not parse: ") + e.what());
  }
  FUZZ_CHECK(f2.parts.size() == form.parts.size(), "re-written form has another part count");
  for (size_t i = 0; i < form.parts.size(); ++i) {
    const fc::http::FormPart &a = form.parts[i], &b = f2.parts[i];
    FUZZ_CHECK(a.name == b.name && a.filename == b.filename && a.content_type == b.content_type &&
                   a.headers == b.headers && a.data == b.data,
               "re-written part " + std::to_string(i) + " differs");
  }
  return 0;
}
