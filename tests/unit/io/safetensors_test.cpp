#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "io/safetensors.h"

namespace fc {
namespace {

namespace fs = std::filesystem;

std::string le64(uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return s;
}

// A safetensors file: length prefix, `header` verbatim, then `data_size` bytes 0, 1, 2, ...
std::string st_bytes(const std::string& header, size_t data_size) {
  std::string s = le64(header.size()) + header;
  for (size_t i = 0; i < data_size; ++i) s.push_back(static_cast<char>(i & 0xff));
  return s;
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// The message of the fc::Error that f throws ("" plus a test failure if it throws none).
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected an fc::Error";
  return "";
}

void expect_has(const std::string& msg, const std::vector<std::string>& needles) {
  for (const std::string& n : needles)
    EXPECT_NE(msg.find(n), std::string::npos) << "message lacks \"" << n << "\": " << msg;
}

class IoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "fc_io_test_XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }

  // Writes `bytes` to NAME and checks that opening it fails naming the file and `needles`.
  void expect_open_fails(const std::string& name, const std::string& bytes,
                         const std::vector<std::string>& needles) {
    SCOPED_TRACE(name);
    const std::string p = path(name);
    write_bytes(p, bytes);
    const std::string msg = error_of([&] { SafetensorsFile::open(p); });
    expect_has(msg, {p});
    expect_has(msg, needles);
  }

  std::string dir_;
};

// ------------------------------------------------------------------------------------------------
// MappedFile

TEST_F(IoTest, MappedFileMapsAndMoves) {
  write_bytes(path("f"), "hello");
  MappedFile a = MappedFile::open(path("f"));
  ASSERT_EQ(a.size(), 5u);
  EXPECT_EQ(std::memcmp(a.data(), "hello", 5), 0);
  MappedFile b(std::move(a));
  EXPECT_EQ(a.data(), nullptr);
  EXPECT_EQ(b.size(), 5u);
  MappedFile c;
  c = std::move(b);
  EXPECT_EQ(c.path(), path("f"));
  EXPECT_EQ(std::memcmp(c.data(), "hello", 5), 0);

  write_bytes(path("empty"), "");
  MappedFile e = MappedFile::open(path("empty"));
  EXPECT_EQ(e.size(), 0u);
  EXPECT_EQ(e.data(), nullptr);
}

TEST_F(IoTest, MappedFileErrorsNamePathAndErrno) {
  const std::string msg = error_of([&] { MappedFile::open(path("nope")); });
  expect_has(msg, {path("nope"), "No such file or directory"});
  expect_has(error_of([&] { MappedFile::open(dir_); }), {dir_, "not a regular file"});
}

// ------------------------------------------------------------------------------------------------
// Header length prefix

TEST_F(IoTest, RejectsBadLengthPrefix) {
  expect_open_fails("empty.st", "", {"too short"});
  expect_open_fails("five.st", "abcde", {"too short"});
  expect_open_fails("zero.st", le64(0) + "{}", {"header length is 0"});
  expect_open_fails("huge.st", le64(100'000'001) + "{}      ", {"100000001", "maximum"});
  expect_open_fails("past_end.st", le64(100) + "{}      ", {"runs past the end"});
  expect_open_fails("past_end_by_one.st", le64(9) + "{}      ", {"runs past the end"});
  const std::string missing = path("missing.st");
  expect_has(error_of([&] { SafetensorsFile::open(missing); }),
             {missing, "No such file or directory"});
}

// ------------------------------------------------------------------------------------------------
// Header contents

struct BadHeader {
  const char* name;
  std::string header;
  size_t data;
  std::vector<std::string> needles;
};

std::string entry(const std::string& dtype, const std::string& shape, const std::string& offsets) {
  return "{\"dtype\": \"" + dtype + "\", \"shape\": " + shape + ", \"data_offsets\": " + offsets +
         "}";
}

TEST_F(IoTest, RejectsBadHeaders) {
  const std::string w4 = entry("U8", "[4]", "[0, 4]");
  const std::vector<BadHeader> cases = {
      {"invalid_json", "{\"w\": ", 0, {"invalid JSON"}},
      {"bad_utf8", "{\"w\xff\": " + w4 + "}", 4, {"invalid JSON"}},
      {"not_object", "[1, 2]", 0, {"does not start with '{'"}},
      {"leading_space", " {}", 0, {"does not start with '{'"}},
      {"only_spaces", "        ", 0, {"does not start with '{'"}},
      {"trailing_garbage", "{} x", 0, {"invalid JSON"}},
      // 16 levels are allowed (the header is level 1); the 17th, or 10^5, are refused.
      {"too_deep",
       "{\"w\": " + std::string(16, '[') + std::string(16, ']') + "}",
       0,
       {"JSON nested deeper than 16 levels (the limit) at byte 21"}},
      {"far_too_deep", "{\"w\": " + std::string(100'000, '['), 0, {"nested deeper than 16 levels"}},
      {"dup_tensor",
       "{\"w\": " + w4 + ", \"w\": " + entry("U8", "[4]", "[4, 8]") + "}",
       8,
       {"duplicate key 'w'"}},
      {"dup_field",
       "{\"w\": {\"dtype\": \"U8\", \"dtype\": \"U8\", \"shape\": [4], \"data_offsets\": [0, 4]}}",
       4,
       {"duplicate key 'dtype'", "'w'"}},
      {"entry_not_object", "{\"w\": 5}", 0, {"'w'", "not an object"}},
      {"missing_dtype", "{\"w\": {\"shape\": [4], \"data_offsets\": [0, 4]}}", 4, {"'w'", "dtype"}},
      {"dtype_not_string",
       "{\"w\": " + entry("U8", "[4]", "[0, 4]").replace(10, 4, "5") + "}",
       4,
       {"'w'", "'dtype' is not a string"}},
      {"unknown_dtype",
       "{\"w\": " + entry("F17", "[4]", "[0, 4]") + "}",
       4,
       {"'w'", "unknown dtype 'F17'"}},
      {"lowercase_dtype",
       "{\"w\": " + entry("u8", "[4]", "[0, 4]") + "}",
       4,
       {"'w'", "unknown dtype 'u8'"}},
      {"missing_shape",
       "{\"w\": {\"dtype\": \"U8\", \"data_offsets\": [0, 4]}}",
       4,
       {"'w'", "shape"}},
      {"shape_not_array",
       "{\"w\": " + entry("U8", "4", "[0, 4]") + "}",
       4,
       {"'w'", "'shape' is not an array"}},
      {"shape_float",
       "{\"w\": " + entry("U8", "[4.0]", "[0, 4]") + "}",
       4,
       {"'w'", "not an integer"}},
      {"shape_string",
       "{\"w\": " + entry("U8", "[\"4\"]", "[0, 4]") + "}",
       4,
       {"'w'", "not an integer"}},
      {"negative_dim",
       "{\"w\": " + entry("U8", "[-1, 4]", "[0, 4]") + "}",
       4,
       {"'w'", "negative dimension -1"}},
      {"dim_too_large",
       "{\"w\": " + entry("U8", "[18446744073709551615]", "[0, 4]") + "}",
       4,
       {"'w'", "too large"}},
      {"numel_overflow",
       "{\"w\": " + entry("U8", "[4294967296, 4294967296, 2]", "[0, 4]") + "}",
       4,
       {"'w'", "overflows"}},
      {"bytes_overflow",
       "{\"w\": " + entry("F64", "[4611686018427387904]", "[0, 4]") + "}",
       4,
       {"'w'", "byte size of F64 [4611686018427387904] overflows"}},
      {"missing_offsets",
       "{\"w\": {\"dtype\": \"U8\", \"shape\": [4]}}",
       4,
       {"'w'", "data_offsets"}},
      {"offsets_not_array",
       "{\"w\": " + entry("U8", "[4]", "\"0-4\"") + "}",
       4,
       {"'w'", "data_offsets"}},
      {"offsets_one", "{\"w\": " + entry("U8", "[4]", "[4]") + "}", 4, {"'w'", "data_offsets"}},
      {"offsets_three",
       "{\"w\": " + entry("U8", "[4]", "[0, 4, 4]") + "}",
       4,
       {"'w'", "data_offsets"}},
      {"offsets_negative",
       "{\"w\": " + entry("U8", "[4]", "[-1, 3]") + "}",
       4,
       {"'w'", "non-negative integers"}},
      {"offsets_float",
       "{\"w\": " + entry("U8", "[4]", "[0, 4.0]") + "}",
       4,
       {"'w'", "non-negative integers"}},
      {"offsets_reversed",
       "{\"w\": " + entry("U8", "[4]", "[4, 0]") + "}",
       4,
       {"'w'", "begin 4 > end 0"}},
      {"end_beyond_buffer",
       "{\"w\": " + entry("U8", "[8]", "[0, 8]") + "}",
       4,
       {"'w'", "beyond the data buffer"}},
      {"size_mismatch", "{\"w\": " + entry("F32", "[2]", "[0, 4]") + "}", 4, {"'w'", "needs 8"}},
      {"f4_odd",
       "{\"w\": " + entry("F4", "[3]", "[0, 2]") + "}",
       2,
       {"'w'", "whole number of bytes"}},
      {"f6_partial",
       "{\"w\": " + entry("F6_E2M3", "[2]", "[0, 2]") + "}",
       2,
       {"'w'", "whole number of bytes"}},
      {"overlap",
       "{\"a\": " + w4 + ", \"b\": " + entry("U8", "[4]", "[2, 6]") + "}",
       6,
       {"'a'", "'b'", "overlaps"}},
      {"same_range", "{\"a\": " + w4 + ", \"b\": " + w4 + "}", 4, {"'a'", "'b'", "overlaps"}},
      {"hole_middle",
       "{\"a\": " + w4 + ", \"b\": " + entry("U8", "[4]", "[6, 10]") + "}",
       10,
       {"hole", "[4, 6)", "'b'"}},
      {"hole_leading",
       "{\"a\": " + entry("U8", "[4]", "[2, 6]") + "}",
       6,
       {"hole", "[0, 2)", "'a'"}},
      {"hole_trailing", "{\"a\": " + w4 + "}", 6, {"hole", "[4, 6)", "'a'"}},
      {"hole_no_tensors", "{}", 4, {"hole", "4 bytes"}},
      {"metadata_not_object", "{\"__metadata__\": [\"pt\"]}", 0, {"'__metadata__'", "object"}},
      {"metadata_null", "{\"__metadata__\": null}", 0, {"'__metadata__'", "object"}},
      {"metadata_not_string",
       "{\"__metadata__\": {\"format\": 1}}",
       0,
       {"'__metadata__'", "'format'", "not a string"}},
      {"metadata_dup",
       "{\"__metadata__\": {\"a\": \"x\", \"a\": \"y\"}}",
       0,
       {"duplicate key 'a'", "'__metadata__'"}},
  };
  for (const BadHeader& c : cases) expect_open_fails(c.name, st_bytes(c.header, c.data), c.needles);
}

TEST_F(IoTest, AcceptsSpacePaddedHeader) {
  write_bytes(path("pad.st"),
              st_bytes("{\"w\": " + entry("U8", "[3]", "[0, 3]") + "}" + std::string(13, ' '), 3));
  auto f = SafetensorsFile::open(path("pad.st"));
  ASSERT_EQ(f->tensors().size(), 1u);
  const TensorInfo* w = f->find("w");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->data[0], 0);
  EXPECT_EQ(w->data[2], 2);
  EXPECT_EQ(w->file, path("pad.st"));
  EXPECT_EQ(f->find("x"), nullptr);
}

TEST_F(IoTest, AcceptsScalarsZeroSizeAndEmpty) {
  // Zero-byte tensors share offsets with their neighbours; names sort differently from offsets.
  const std::string header =
      "{\"z\": " + entry("F32", "[]", "[0, 4]") + ", \"a\": " + entry("BF16", "[1]", "[4, 6]") +
      ", \"e0\": " + entry("U8", "[0]", "[0, 0]") +
      ", \"e1\": " + entry("F32", "[3, 0]", "[4, 4]") +
      ", \"e2\": " + entry("I64", "[0, 7]", "[6, 6]") +
      ", \"b\": {\"dtype\": \"F4\", \"shape\": [2, 2], \"data_offsets\": [6, 8], \"extra\": 1}" +
      ", \"c\": " + entry("F6_E3M2", "[4]", "[8, 11]") +
      ", \"__metadata__\": {\"format\": \"pt\"}}";
  write_bytes(path("ok.st"), st_bytes(header, 11));
  auto f = SafetensorsFile::open(path("ok.st"));
  EXPECT_EQ(f->tensors().size(), 7u);
  EXPECT_EQ(f->metadata().at("format"), "pt");
  const TensorInfo* z = f->find("z");
  EXPECT_EQ(z->shape.size(), 0u);
  EXPECT_EQ(z->numel, 1u);
  EXPECT_EQ(z->nbytes, 4u);
  EXPECT_EQ(z->dtype, DType::kF32);
  EXPECT_EQ(f->find("a")->numel, 1u);
  EXPECT_EQ(f->find("a")->data[0], 4);
  EXPECT_EQ(f->find("e1")->numel, 0u);
  EXPECT_EQ(f->find("e1")->nbytes, 0u);
  EXPECT_EQ(f->find("e2")->shape, (std::vector<int64_t>{0, 7}));
  EXPECT_EQ(f->find("b")->nbytes, 2u);
  EXPECT_EQ(f->find("c")->nbytes, 3u);
  EXPECT_EQ(f->find("c")->data[0], 8);
  // tensors() is in buffer order.
  for (size_t i = 1; i < f->tensors().size(); ++i)
    EXPECT_LE(f->tensors()[i - 1].data, f->tensors()[i].data);

  write_bytes(path("none.st"), st_bytes("{}", 0));
  EXPECT_TRUE(SafetensorsFile::open(path("none.st"))->tensors().empty());
}

TEST_F(IoTest, RejectsFileTruncatedMidData) {
  std::vector<float> a(16, 1.0f), b(16, 2.0f);
  write_safetensors(path("t.st"), {tensor_from_memory("a", DType::kF32, {16}, a.data()),
                                   tensor_from_memory("b", DType::kF32, {4, 4}, b.data())});
  fs::resize_file(path("t.st"), fs::file_size(path("t.st")) - 3);
  expect_has(error_of([&] { SafetensorsFile::open(path("t.st")); }),
             {path("t.st"), "'b'", "beyond the data buffer"});
  // Truncated inside the header.
  fs::resize_file(path("t.st"), 20);
  expect_has(error_of([&] { SafetensorsFile::open(path("t.st")); }),
             {path("t.st"), "runs past the end"});
}

// ------------------------------------------------------------------------------------------------
// Writer

TEST_F(IoTest, WriterRoundTripsEveryDtype) {
  struct Want {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    std::vector<uint8_t> bytes;
  };
  std::vector<Want> want;
  for (int i = 0; i <= static_cast<int>(DType::kF6_E3M2); ++i) {
    const DType d = static_cast<DType>(i);
    Want w{"t." + std::string(dtype_name(d)), d, {2, 4}, {}};
    w.bytes.resize(*dtype_bytes_for(d, 8));  // 8 elements fill whole bytes for every dtype
    for (size_t k = 0; k < w.bytes.size(); ++k) w.bytes[k] = static_cast<uint8_t>(i * 31 + k);
    want.push_back(std::move(w));
  }
  want.push_back({"scalar_0d", DType::kF32, {}, {1, 2, 3, 4}});
  want.push_back({"scalar_1", DType::kBF16, {1}, {5, 6}});
  want.push_back({"zero_dim", DType::kF16, {3, 0}, {}});
  want.push_back({"zero_1d", DType::kI64, {0}, {}});
  want.push_back({"after_zero", DType::kU8, {3}, {7, 8, 9}});
  std::vector<TensorSource> src;
  for (const Want& w : want)
    src.push_back(tensor_from_memory(w.name, w.dtype, w.shape, w.bytes.data()));
  const std::map<std::string, std::string> meta = {{"format", "pt"}, {"note", "h\xc3\xa9llo"}};
  write_safetensors(path("rt.st"), src, meta);

  EXPECT_FALSE(fs::exists(path("rt.st.tmp")));
  const std::string raw = read_bytes(path("rt.st"));
  uint64_t n = 0;
  std::memcpy(&n, raw.data(), 8);
  EXPECT_EQ(n % 8, 0u);
  const std::string header = raw.substr(8, n);
  EXPECT_EQ(header.rfind("{\"__metadata__\"", 0), 0u) << header;
  size_t last = 0;
  for (const Want& w : want) {  // keys in the given order
    const size_t at = header.find("\"" + w.name + "\"");
    ASSERT_NE(at, std::string::npos) << w.name;
    EXPECT_GT(at, last) << w.name;
    last = at;
  }

  auto f = SafetensorsFile::open(path("rt.st"));
  EXPECT_EQ(f->metadata(), meta);
  ASSERT_EQ(f->tensors().size(), want.size());
  for (const Want& w : want) {
    SCOPED_TRACE(w.name);
    const TensorInfo* t = f->find(w.name);
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->dtype, w.dtype);
    EXPECT_EQ(t->shape, w.shape);
    EXPECT_EQ(t->nbytes, w.bytes.size());
    EXPECT_EQ(std::vector<uint8_t>(t->data, t->data + t->nbytes), w.bytes);
  }
  EXPECT_EQ(f->find("scalar_0d")->numel, 1u);
  EXPECT_EQ(f->find("zero_dim")->numel, 0u);
}

TEST_F(IoTest, WriterWithoutMetadataOrTensors) {
  write_safetensors(path("empty.st"), {});
  const std::string raw = read_bytes(path("empty.st"));
  EXPECT_EQ(raw.size(), 16u);  // prefix + "{}" padded to 8
  auto f = SafetensorsFile::open(path("empty.st"));
  EXPECT_TRUE(f->tensors().empty());
  EXPECT_TRUE(f->metadata().empty());

  uint8_t x = 42;
  write_safetensors(path("one.st"), {tensor_from_memory("x", DType::kU8, {}, &x)});
  EXPECT_EQ(read_bytes(path("one.st")).find("__metadata__"), std::string::npos);
  EXPECT_EQ(SafetensorsFile::open(path("one.st"))->find("x")->data[0], 42);
}

TEST_F(IoTest, WriterStreamsInChunks) {
  const uint64_t size = 1000;
  std::vector<std::pair<uint64_t, uint64_t>> calls;
  TensorSource t{"big",
                 DType::kU8,
                 {static_cast<int64_t>(size)},
                 [&](uint8_t* dst, uint64_t off, uint64_t len) {
                   calls.emplace_back(off, len);
                   for (uint64_t i = 0; i < len; ++i) dst[i] = static_cast<uint8_t>((off + i) * 7);
                 }};
  write_safetensors(path("chunks.st"), {t}, {}, 64);
  uint64_t expect_off = 0;
  for (auto [off, len] : calls) {
    EXPECT_EQ(off, expect_off);
    EXPECT_LE(len, 64u);
    expect_off += len;
  }
  EXPECT_EQ(expect_off, size);
  EXPECT_EQ(calls.size(), 16u);
  auto f = SafetensorsFile::open(path("chunks.st"));
  const TensorInfo* b = f->find("big");
  for (uint64_t i = 0; i < size; ++i) ASSERT_EQ(b->data[i], static_cast<uint8_t>(i * 7)) << i;
}

TEST_F(IoTest, WriterFailureLeavesNoFile) {
  std::vector<uint8_t> ok(8, 1);
  TensorSource bad{"bad", DType::kU8, {100}, [](uint8_t*, uint64_t off, uint64_t) {
                     if (off >= 32) fail("source exploded");
                   }};
  const auto src =
      std::vector<TensorSource>{tensor_from_memory("ok", DType::kU8, {8}, ok.data()), bad};
  expect_has(error_of([&] { write_safetensors(path("x.st"), src, {}, 32); }), {"source exploded"});
  EXPECT_FALSE(fs::exists(path("x.st")));
  EXPECT_FALSE(fs::exists(path("x.st.tmp")));

  // A failed rewrite keeps the previous complete file.
  write_safetensors(path("x.st"), {src[0]});
  EXPECT_THROW(write_safetensors(path("x.st"), src, {}, 32), Error);
  EXPECT_EQ(SafetensorsFile::open(path("x.st"))->tensors().size(), 1u);
  EXPECT_FALSE(fs::exists(path("x.st.tmp")));
}

TEST_F(IoTest, WriterRejectsBadSources) {
  uint8_t buf[16] = {};
  const std::string p = path("w.st");
  expect_has(error_of([&] {
               write_safetensors(p, {tensor_from_memory("a", DType::kU8, {1}, buf),
                                     tensor_from_memory("a", DType::kU8, {1}, buf)});
             }),
             {p, "duplicate tensor name 'a'"});
  expect_has(error_of([&] {
               write_safetensors(p, {tensor_from_memory("neg", DType::kU8, {2, -1}, buf)});
             }),
             {p, "'neg'", "negative dimension"});
  expect_has(
      error_of([&] { write_safetensors(p, {tensor_from_memory("f4", DType::kF4, {3}, buf)}); }),
      {p, "'f4'", "whole number of bytes"});
  expect_has(error_of([&] {
               write_safetensors(p, {tensor_from_memory("__metadata__", DType::kU8, {1}, buf)});
             }),
             {p, "__metadata__"});
  EXPECT_FALSE(fs::exists(p));
}

// ------------------------------------------------------------------------------------------------
// Checkpoints

std::vector<float> iota_f32(size_t n, float start) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = start + static_cast<float>(i);
  return v;
}

TEST_F(IoTest, ShardedCheckpointRoundTrip) {
  const std::string ck = path("ck");
  const std::vector<std::string> names = {"m.e", "m.b", "m.d", "m.a", "m.c"};
  std::vector<std::vector<float>> data;
  std::vector<TensorSource> src;
  for (size_t i = 0; i < names.size(); ++i) data.push_back(iota_f32(100, 1000.0f * i));
  for (size_t i = 0; i < names.size(); ++i)
    src.push_back(tensor_from_memory(names[i], DType::kF32, {10, 10}, data[i].data()));
  write_checkpoint(ck, src, 1000, {{"format", "pt"}});  // 400-byte tensors: shards of 2, 2, 1

  for (const char* s : {"model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
                        "model-00003-of-00003.safetensors", "model.safetensors.index.json"})
    EXPECT_TRUE(fs::exists(ck + "/" + s)) << s;
  EXPECT_FALSE(fs::exists(ck + "/model.safetensors"));
  const auto index = nlohmann::json::parse(read_bytes(ck + "/model.safetensors.index.json"));
  EXPECT_EQ(index["metadata"]["total_size"], 2000);
  EXPECT_EQ(index["weight_map"]["m.e"], "model-00001-of-00003.safetensors");
  EXPECT_EQ(index["weight_map"]["m.d"], "model-00002-of-00003.safetensors");
  EXPECT_EQ(index["weight_map"]["m.c"], "model-00003-of-00003.safetensors");
  EXPECT_EQ(index["weight_map"].size(), 5u);

  auto c = Checkpoint::open_dir(ck);
  EXPECT_EQ(c->dir(), ck);
  EXPECT_EQ(c->total_bytes(), 2000u);
  const auto all = c->all();
  ASSERT_EQ(all.size(), 5u);
  for (size_t i = 0; i < all.size(); ++i)
    EXPECT_EQ(all[i]->name, std::string("m.") + char('a' + i));
  for (size_t i = 0; i < names.size(); ++i) {
    const TensorInfo& t = c->get(names[i]);
    EXPECT_EQ(std::memcmp(t.data, data[i].data(), 400), 0) << names[i];
  }
  EXPECT_EQ(c->get("m.c").file, ck + "/model-00003-of-00003.safetensors");
  EXPECT_EQ(c->find("m.z"), nullptr);
  expect_has(error_of([&] { c->get("m.z"); }), {"missing tensor m.z in " + ck});
}

TEST_F(IoTest, OversizedTensorGetsOwnShardAndSingleShardHasNoIndex) {
  const std::string ck = path("ck");
  auto big = iota_f32(100, 0), small = iota_f32(2, 0);
  write_checkpoint(ck,
                   {tensor_from_memory("small1", DType::kF32, {2}, small.data()),
                    tensor_from_memory("big", DType::kF32, {100}, big.data()),
                    tensor_from_memory("small2", DType::kF32, {2}, small.data())},
                   100);
  EXPECT_TRUE(fs::exists(ck + "/model-00003-of-00003.safetensors"));
  EXPECT_EQ(Checkpoint::open_dir(ck)->all().size(), 3u);

  // Rewriting as one file replaces the stale index so open_dir sees the new content.
  write_checkpoint(ck, {tensor_from_memory("only", DType::kF32, {2}, small.data())}, 1 << 20);
  EXPECT_TRUE(fs::exists(ck + "/model.safetensors"));
  EXPECT_FALSE(fs::exists(ck + "/model.safetensors.index.json"));
  auto c = Checkpoint::open_dir(ck);
  ASSERT_EQ(c->all().size(), 1u);
  EXPECT_EQ(c->get("only").file, ck + "/model.safetensors");
}

TEST_F(IoTest, OpenDirWithoutWeights) {
  expect_has(error_of([&] { Checkpoint::open_dir(dir_); }),
             {dir_, "neither model.safetensors.index.json nor model.safetensors"});
  expect_has(error_of([&] { Checkpoint::open_dir(path("absent")); }),
             {path("absent"), "does not exist"});
}

class IndexTest : public IoTest {
 protected:
  void SetUp() override {
    IoTest::SetUp();
    ck_ = path("ck");
    fs::create_directories(ck_);
    write_shard("A.safetensors", {"a"});
    write_shard("B.safetensors", {"b"});
  }
  void write_shard(const std::string& file, const std::vector<std::string>& names) {
    std::vector<TensorSource> src;
    for (const std::string& n : names) src.push_back(tensor_from_memory(n, DType::kU8, {4}, buf_));
    write_safetensors(ck_ + "/" + file, src);
  }
  void write_index(const std::string& text) {
    write_bytes(ck_ + "/model.safetensors.index.json", text);
  }
  std::string index_path() const { return ck_ + "/model.safetensors.index.json"; }
  std::string open_error() {
    return error_of([&] { Checkpoint::open_dir(ck_); });
  }

  std::string ck_;
  uint8_t buf_[4] = {1, 2, 3, 4};
};

TEST_F(IndexTest, ConsistentIndexOpens) {
  write_index(R"({"metadata": {"total_size": 8, "x": "y"},
                  "weight_map": {"a": "A.safetensors", "b": "B.safetensors"}})");
  auto c = Checkpoint::open_dir(ck_);
  EXPECT_EQ(c->all().size(), 2u);
  EXPECT_EQ(c->get("b").file, ck_ + "/B.safetensors");
}

TEST_F(IndexTest, TensorListedButNotInShard) {
  write_index(
      R"({"weight_map": {"a": "A.safetensors", "b": "B.safetensors", "c": "A.safetensors"}})");
  expect_has(open_error(),
             {"tensor 'c' listed in index " + index_path(),
              "for shard " + ck_ + "/A.safetensors but not found in " + ck_ + "/A.safetensors"});
}

TEST_F(IndexTest, TensorInWrongShard) {
  write_index(R"({"weight_map": {"a": "B.safetensors", "b": "B.safetensors"}})");
  expect_has(open_error(), {"tensor 'a'", index_path(), "not found in " + ck_ + "/B.safetensors"});
}

TEST_F(IndexTest, ShardTensorMissingFromIndex) {
  write_shard("A.safetensors", {"a", "x"});
  write_index(R"({"weight_map": {"a": "A.safetensors", "b": "B.safetensors"}})");
  expect_has(open_error(), {"tensor 'x'", ck_ + "/A.safetensors", "not listed", index_path()});
}

TEST_F(IndexTest, DuplicateAcrossShards) {
  write_shard("B.safetensors", {"a", "b"});
  write_index(R"({"weight_map": {"a": "A.safetensors", "b": "B.safetensors"}})");
  expect_has(open_error(), {"tensor 'a'", ck_ + "/A.safetensors", ck_ + "/B.safetensors"});
}

TEST_F(IndexTest, MissingOrCorruptShard) {
  write_index(R"({"weight_map": {"a": "A.safetensors", "b": "C.safetensors"}})");
  expect_has(open_error(), {ck_ + "/C.safetensors", "No such file or directory"});
  write_bytes(ck_ + "/C.safetensors", "garbage!garbage!");
  expect_has(open_error(), {ck_ + "/C.safetensors"});
}

TEST_F(IndexTest, MalformedIndex) {
  write_index(R"({"weight_map": {"a": "A.safetensors",)");
  expect_has(open_error(), {index_path(), "invalid JSON"});
  write_index(R"({"metadata": {}})");
  expect_has(open_error(), {index_path(), "'weight_map'"});
  write_index(R"({"weight_map": ["A.safetensors"]})");
  expect_has(open_error(), {index_path(), "'weight_map'"});
  write_index(R"({"weight_map": {"a": "A.safetensors", "b": 3}})");
  expect_has(open_error(), {index_path(), "'b'"});
  write_index(
      R"({"weight_map": {"a": "A.safetensors", "b": "B.safetensors", "a": "A.safetensors"}})");
  expect_has(open_error(), {index_path(), "duplicate key 'a'", "'weight_map'"});
  write_index(R"({"weight_map": {}})");
  expect_has(open_error(), {index_path(), "empty"});
}

TEST_F(IndexTest, OpenFiles) {
  auto c = Checkpoint::open_files({ck_ + "/A.safetensors", ck_ + "/B.safetensors"});
  EXPECT_EQ(c->all().size(), 2u);
  EXPECT_EQ(c->dir(), ck_);
  write_shard("A2.safetensors", {"a"});
  expect_has(error_of([&] {
               Checkpoint::open_files({ck_ + "/A.safetensors", ck_ + "/A2.safetensors"});
             }),
             {"tensor 'a'", ck_ + "/A.safetensors", ck_ + "/A2.safetensors"});
}

}  // namespace
}  // namespace fc
