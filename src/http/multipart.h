// A bounded multipart/form-data parser (RFC 7578 over RFC 2046 §5.1), for the upload endpoints
// (/v1/audio/transcriptions). The request body is already complete and bounded by the server's
// body limit, so this parses one buffer; the parts point into it (no copy of a 25 MB upload).
//
// What is accepted:
//  - the boundary from the Content-Type ("multipart/form-data; boundary=B", B a token or a quoted
//    string with backslash escapes), 1..70 characters of RFC 2046's bchars, not ending in a space;
//  - an optional preamble (ignored), then "--B", transport padding (spaces / tabs), CRLF;
//  - each part: header lines "Name: value" (names case-insensitive), a blank line, the content up
//    to the next CRLF "--B" that is followed by padding and CRLF or by "--". A "--B" followed by
//    anything else is content (binary data may hold the boundary as a prefix of other bytes);
//  - the close delimiter "--B--", then anything (the epilogue, ignored). A body with only the
//    close delimiter is an empty form (RFC 2046 wants one part; the caller then reports the
//    missing field, a clearer error).
//  - part headers: Content-Disposition "form-data" with name (required) and filename (optional;
//    tokens or quoted strings, backslash-escaped), other parameters ignored; Content-Type
//    (optional, kept as sent); other headers kept.
// What is an error (MultipartError with a message naming the part and the problem): no or a bad
// boundary, no opening or closing delimiter, LF-only line ends (RFC 2046 requires CRLF; every
// client library sends it, so a bare LF means a broken client and is reported as such), a part
// without a blank line after its headers, folded or malformed header lines, a missing or non
// form-data Content-Disposition, a part without a name, a repeated Content-Disposition or
// parameter, and every limit below (413 for the total size, 400 for the others).
#pragma once

#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace fc::http {

struct MultipartLimits {
  size_t max_total_bytes = 32 << 20;  // the whole body
  size_t max_parts = 64;
  size_t max_header_bytes = 8 << 10;  // one part's header block, up to its blank line
  size_t max_headers = 16;            // header lines of one part
};

class MultipartError : public std::runtime_error {
 public:
  MultipartError(int status, const std::string& message)
      : std::runtime_error(message), status_(status) {}
  int status() const { return status_; }  // 400, or 413 for max_total_bytes

 private:
  int status_;
};

struct FormPart {
  std::string name;                     // Content-Disposition's name
  std::optional<std::string> filename;  // present when the part is a file
  std::string content_type;             // as sent ("" when absent)
  // Header lines of the part, names lower-cased, values trimmed, in order.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string_view data;  // the content, a view into the parsed body
};

struct MultipartForm {
  std::vector<FormPart> parts;  // in body order; names may repeat
  // The first part called `name`, or null.
  const FormPart* find(std::string_view name) const;
  size_t count(std::string_view name) const;
};

// The boundary of a Content-Type value; throws MultipartError (400) when the type is not
// multipart/form-data or the boundary parameter is missing or invalid.
std::string multipart_boundary(std::string_view content_type);

// Parses `body` (which must outlive the result: parts point into it). Throws MultipartError.
MultipartForm parse_multipart(std::string_view body, std::string_view boundary,
                              const MultipartLimits& limits = {});

}  // namespace fc::http
