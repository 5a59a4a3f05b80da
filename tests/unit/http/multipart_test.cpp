// The multipart/form-data parser (src/http/multipart.h): boundaries from Content-Type, framing
// (preamble, epilogue, padding, empty parts, boundary-like bytes inside content), part headers,
// every limit, and one clear error for each malformed case.
#include "http/multipart.h"

#include <gtest/gtest.h>

#include <string>

namespace fc::http {
namespace {

using namespace std::string_literals;

// The error message of parsing `body`, or "" when it parses.
std::string error_of(const std::string& body, const std::string& b = "B",
                     const MultipartLimits& lim = {}, int* status = nullptr) {
  try {
    parse_multipart(body, b, lim);
  } catch (const MultipartError& e) {
    if (status) *status = e.status();
    return e.what();
  }
  return "";
}

std::string boundary_error(const std::string& ct) {
  try {
    multipart_boundary(ct);
  } catch (const MultipartError& e) {
    EXPECT_EQ(e.status(), 400);
    return e.what();
  }
  return "";
}

TEST(MultipartBoundary, TokenQuotedAndCase) {
  EXPECT_EQ(multipart_boundary("multipart/form-data; boundary=abc123"), "abc123");
  EXPECT_EQ(multipart_boundary("Multipart/Form-Data;BOUNDARY=\"a b:c\""), "a b:c");
  EXPECT_EQ(multipart_boundary("multipart/form-data; charset=utf-8; boundary=\"x\\=y\""), "x=y");
  // curl's and browsers' forms.
  EXPECT_EQ(
      multipart_boundary("multipart/form-data; boundary=------------------------d74496d66958873e"),
      "------------------------d74496d66958873e");
  EXPECT_EQ(
      multipart_boundary("multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW"),
      "----WebKitFormBoundary7MA4YWxkTrZu0gW");
  EXPECT_EQ(multipart_boundary("multipart/form-data; boundary=" + std::string(70, 'z')),
            std::string(70, 'z'));
}

TEST(MultipartBoundary, Errors) {
  EXPECT_NE(boundary_error("application/json").find("must be multipart/form-data"),
            std::string::npos);
  EXPECT_NE(boundary_error("multipart/form-data").find("no boundary"), std::string::npos);
  EXPECT_NE(boundary_error("multipart/form-data; boundary=\"\"").find("1 to 70"),
            std::string::npos);
  EXPECT_NE(boundary_error("multipart/form-data; boundary=" + std::string(71, 'z')).find("1 to 70"),
            std::string::npos);
  EXPECT_NE(boundary_error("multipart/form-data; boundary=\"ab \"").find("end with a space"),
            std::string::npos);
  EXPECT_NE(boundary_error("multipart/form-data; boundary=a*b").find("does not allow"),
            std::string::npos);
  EXPECT_NE(boundary_error("multipart/form-data; boundary=\"abc").find("unterminated"),
            std::string::npos);
  EXPECT_NE(boundary_error("multipart/form-data; boundary=a; boundary=b").find("given twice"),
            std::string::npos);
  EXPECT_NE(boundary_error("multipart/form-data; =x").find("malformed parameter"),
            std::string::npos);
}

TEST(Multipart, FieldsAndFile) {
  const std::string body =
      "--B\r\n"
      "Content-Disposition: form-data; name=\"model\"\r\n\r\n"
      "tiny\r\n"
      "--B\r\n"
      "content-disposition: form-data; name=\"file\"; filename=\"a \\\"q\\\".wav\"\r\n"
      "Content-Type: audio/wav\r\n"
      "X-Extra:  kept  \r\n\r\n"
      "RIFF\0\r\n\x01\xff"s
      "\r\n--B--\r\n";
  const MultipartForm f = parse_multipart(body, "B");
  ASSERT_EQ(f.parts.size(), 2u);
  EXPECT_EQ(f.parts[0].name, "model");
  EXPECT_FALSE(f.parts[0].filename.has_value());
  EXPECT_EQ(f.parts[0].data, "tiny");
  EXPECT_EQ(f.parts[1].name, "file");
  EXPECT_EQ(f.parts[1].filename.value(), "a \"q\".wav");
  EXPECT_EQ(f.parts[1].content_type, "audio/wav");
  EXPECT_EQ(f.parts[1].data, "RIFF\0\r\n\x01\xff"s);
  ASSERT_EQ(f.parts[1].headers.size(), 3u);
  EXPECT_EQ(f.parts[1].headers[2].first, "x-extra");
  EXPECT_EQ(f.parts[1].headers[2].second, "kept");
  EXPECT_EQ(f.find("file"), &f.parts[1]);
  EXPECT_EQ(f.find("nope"), nullptr);
}

TEST(Multipart, PreambleEpiloguePaddingAndEmptyParts) {
  const std::string body =
      "this is a preamble\r\n--B not a delimiter\r\n"
      "--B \t\r\n"  // transport padding after the boundary
      "Content-Disposition: form-data; name=a\r\n\r\n"
      "\r\n--B\r\n"  // empty content
      "Content-Disposition: form-data; name=b\r\n\r\n"
      "\r\n\r\n"  // content of two blank lines
      "\r\n--B--  epilogue\r\n--B\r\nignored";
  const MultipartForm f = parse_multipart(body, "B");
  ASSERT_EQ(f.parts.size(), 2u);
  EXPECT_EQ(f.parts[0].name, "a");
  EXPECT_EQ(f.parts[0].data, "");
  EXPECT_EQ(f.parts[1].data, "\r\n\r\n");
  // Only the close delimiter: an empty form (the caller reports the missing field).
  EXPECT_TRUE(parse_multipart("--B--", "B").parts.empty());
}

TEST(Multipart, BoundaryPrefixesInsideContentAreContent) {
  // Binary data holding "--B" as the prefix of other bytes, with and without a CRLF before it,
  // and "\r\n--B" followed by neither CRLF nor "--".
  const std::string data = "x--B\r\n\r\n--BB\r\n--B-\r\n--Bz--\r\n--B\n\r\n--B\t!\r"s;
  const std::string body =
      "--B\r\nContent-Disposition: form-data; name=\"file\"; filename=f\r\n\r\n" + data +
      "\r\n--B--";
  const MultipartForm f = parse_multipart(body, "B");
  ASSERT_EQ(f.parts.size(), 1u);
  EXPECT_EQ(f.parts[0].data, data);
}

TEST(Multipart, DuplicateFieldsAreKeptInOrder) {
  const std::string body =
      "--B\r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n"
      "--B\r\nContent-Disposition: form-data; name=x\r\n\r\n2\r\n--B--";
  const MultipartForm f = parse_multipart(body, "B");
  EXPECT_EQ(f.count("x"), 2u);
  EXPECT_EQ(f.find("x")->data, "1");
  EXPECT_EQ(f.parts[1].data, "2");
}

TEST(Multipart, LongBoundaryAndEveryPrefixOfIt) {
  const std::string b(70, '-');
  std::string body = "--" + b + "\r\nContent-Disposition: form-data; name=f\r\n\r\n";
  std::string data;
  for (size_t n = 0; n <= b.size() + 1; ++n) data += "\r\n--" + b.substr(0, n) + "x";
  body += data + "\r\n--" + b + "--\r\n";
  const MultipartForm f = parse_multipart(body, b);
  ASSERT_EQ(f.parts.size(), 1u);
  EXPECT_EQ(f.parts[0].data, data);
}

TEST(Multipart, FramingErrors) {
  const std::string cd = "Content-Disposition: form-data; name=a\r\n\r\n";
  EXPECT_NE(error_of("").find("no opening boundary '--B'"), std::string::npos);
  EXPECT_NE(error_of("--C\r\n" + cd + "x\r\n--C--").find("no opening boundary"), std::string::npos);
  EXPECT_NE(error_of("--B\r\n" + cd + "x").find("ends without the closing boundary '--B--'"),
            std::string::npos);
  EXPECT_NE(error_of("--B\r\n" + cd + "x\r\n--B").find("closing boundary"), std::string::npos);
  EXPECT_NE(error_of("--B\r\nContent-Disposition: form-data; name=a\r\n")
                .find("inside the part's headers"),
            std::string::npos);
  EXPECT_NE(error_of("--B\r\n").find("inside the part's headers"), std::string::npos);
}

TEST(Multipart, LfOnlyLineEndsAreAnError) {
  const std::string lf = "--B\nContent-Disposition: form-data; name=a\n\nx\n--B--\n";
  EXPECT_NE(error_of(lf).find("bare LF"), std::string::npos) << error_of(lf);
  // CRLF delimiter lines but LF header lines.
  const std::string mixed = "--B\r\nContent-Disposition: form-data; name=a\n\nx\r\n--B--";
  EXPECT_NE(error_of(mixed).find("bare LF"), std::string::npos) << error_of(mixed);
  // CRLF head, LF before the closing delimiter.
  const std::string tail = "--B\r\nContent-Disposition: form-data; name=a\r\n\r\nx\n--B--\n";
  EXPECT_NE(error_of(tail).find("bare LF"), std::string::npos) << error_of(tail);
}

TEST(Multipart, HeaderErrors) {
  auto part = [](const std::string& headers) { return "--B\r\n" + headers + "\r\nx\r\n--B--"; };
  EXPECT_NE(error_of(part("Content-Type: text/plain\r\n")).find("part 1: no Content-Disposition"),
            std::string::npos);
  EXPECT_NE(error_of(part("Content-Disposition: attachment; name=a\r\n")).find("must be form-data"),
            std::string::npos);
  EXPECT_NE(error_of(part("Content-Disposition: form-data; filename=a\r\n")).find("no name"),
            std::string::npos);
  EXPECT_NE(error_of(part("Content-Disposition: form-data; name=a\r\nContent-Disposition: "
                          "form-data; name=b\r\n"))
                .find("given twice"),
            std::string::npos);
  EXPECT_NE(
      error_of(part("Content-Disposition: form-data; name=a; name=b\r\n")).find("given twice"),
      std::string::npos);
  EXPECT_NE(
      error_of(part("Content-Disposition: form-data; name=a\r\n  continued\r\n")).find("folded"),
      std::string::npos);
  EXPECT_NE(
      error_of(part("Content-Disposition form-data; name=a\r\n")).find("malformed header line"),
      std::string::npos);
  EXPECT_NE(error_of(part("Bad Name: x\r\nContent-Disposition: form-data; name=a\r\n"))
                .find("malformed header name"),
            std::string::npos);
  EXPECT_NE(error_of(part("Content-Disposition: form-data; name=\"a\r\n")).find("unterminated"),
            std::string::npos);
  // The second part's number is in its message.
  const std::string two =
      "--B\r\nContent-Disposition: form-data; name=a\r\n\r\nx\r\n--B\r\n\r\ny\r\n--B--";
  EXPECT_NE(error_of(two).find("multipart part 2: no Content-Disposition"), std::string::npos);
}

TEST(Multipart, Limits) {
  MultipartLimits lim;
  lim.max_total_bytes = 100;
  int status = 0;
  const std::string big =
      "--B\r\nContent-Disposition: form-data; name=a\r\n\r\n" + std::string(100, 'x') + "\r\n--B--";
  EXPECT_NE(error_of(big, "B", lim, &status).find("over the limit of 100"), std::string::npos);
  EXPECT_EQ(status, 413);

  lim = {};
  lim.max_parts = 2;
  std::string three;
  for (int i = 0; i < 3; ++i) three += "--B\r\nContent-Disposition: form-data; name=a\r\n\r\nx\r\n";
  status = 0;
  EXPECT_NE(error_of(three + "--B--", "B", lim, &status).find("more than 2 parts"),
            std::string::npos);
  EXPECT_EQ(status, 400);
  EXPECT_NO_THROW(parse_multipart(three.substr(0, three.size() / 3 * 2) + "--B--", "B", lim));

  lim = {};
  lim.max_header_bytes = 64;
  const std::string cd = "Content-Disposition: form-data; name=a\r\n";  // 40 bytes
  // 40 + 22 + the blank line's 2 = exactly 64 header bytes.
  EXPECT_NO_THROW(
      parse_multipart("--B\r\n" + cd + std::string(18, 'X') + ": \r\n\r\nx\r\n--B--", "B", lim));
  EXPECT_NE(error_of("--B\r\n" + cd + std::string(19, 'X') + ": \r\n\r\nx\r\n--B--", "B", lim)
                .find("headers over the limit of 64"),
            std::string::npos);
  EXPECT_NE(
      error_of("--B\r\n" + cd + "X-Long: " + std::string(40, 'v') + "\r\n\r\nx\r\n--B--", "B", lim)
          .find("headers over the limit of 64"),
      std::string::npos);
  // Headers that never end, longer than the limit: the limit, not "ends inside".
  EXPECT_NE(error_of("--B\r\n" + std::string(100, 'h'), "B", lim).find("over the limit"),
            std::string::npos);

  lim = {};
  lim.max_headers = 2;
  EXPECT_NE(error_of("--B\r\n" + cd + "A: 1\r\nB: 2\r\n\r\nx\r\n--B--", "B", lim)
                .find("more than 2 header lines"),
            std::string::npos);
}

}  // namespace
}  // namespace fc::http
