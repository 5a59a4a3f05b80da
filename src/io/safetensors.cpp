// safetensors reading: mmap, strict header validation, and checkpoint directories.
#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <system_error>
#include <utility>

#include "core/error.h"
#include "core/json_limits.h"

namespace fc {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // same limit as the Rust reference reader
constexpr int kMaxHeaderDepth = 16;                // objects and arrays, the header being level 1

std::string errno_text(int e) {
  return std::generic_category().message(e);
}

uint64_t read_le64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// Parses `text` as JSON, rejecting duplicate object keys at any depth: nlohmann silently keeps
// the last one, while safetensors declares duplicates invalid. `where` prefixes every message.
// Syntax and nesting depth are checked first by the one bounded parser (core/json_limits.h, a
// valid header nests 3 levels: header, tensor entry, shape / offsets); the second, callback
// pass then only looks at keys, on text known to be shallow and well-formed.
json parse_json_no_dups(std::string_view text, const std::string& where) {
  json header = parse_json(text, where, kMaxHeaderDepth);
  struct Level {
    std::set<std::string> keys;
    std::string last;  // most recent key, names the parent of nested duplicates
  };
  std::vector<Level> stack;
  auto cb = [&](int /*depth*/, json::parse_event_t ev, json& parsed) -> bool {
    switch (ev) {
      case json::parse_event_t::object_start:
        stack.emplace_back();
        break;
      case json::parse_event_t::object_end:
        if (!stack.empty()) stack.pop_back();
        break;
      case json::parse_event_t::key: {
        std::string key = parsed.get<std::string>();
        Level& top = stack.back();
        if (!top.keys.insert(key).second) {
          if (stack.size() >= 2)
            fail(where, ": duplicate key '", key, "' inside '", stack[stack.size() - 2].last, "'");
          fail(where, ": duplicate key '", key, "'");
        }
        top.last = std::move(key);
        break;
      }
      default:
        break;
    }
    return true;
  };
  // Well-formed and shallow by now: only a duplicate (fc::Error from cb) can throw.
  const json again = json::parse(text.begin(), text.end(), cb);
  (void)again;
  return header;
}

template <typename... Args>
[[noreturn]] void tensor_fail(const std::string& path, std::string_view name, Args&&... args) {
  fail(path, ": tensor '", name, "': ", std::forward<Args>(args)...);
}

// A header entry after field validation, before the coverage check. Offsets are bytes relative
// to the start of the data buffer, end exclusive.
struct Entry {
  TensorInfo info;
  uint64_t begin = 0, end = 0;
};

Entry parse_entry(const std::string& path, const std::string& name, const json& v,
                  const uint8_t* buffer, uint64_t buffer_size) {
  if (!v.is_object()) tensor_fail(path, name, "entry is not an object but ", v.type_name());
  Entry e;
  TensorInfo& t = e.info;
  t.name = name;
  t.file = path;

  auto dt = v.find("dtype");
  if (dt == v.end()) tensor_fail(path, name, "missing 'dtype'");
  if (!dt->is_string()) tensor_fail(path, name, "'dtype' is not a string");
  const std::string& dname = dt->get_ref<const std::string&>();
  std::optional<DType> dtype = dtype_from_name(dname);
  if (!dtype) tensor_fail(path, name, "unknown dtype '", dname, "'");
  t.dtype = *dtype;

  auto sh = v.find("shape");
  if (sh == v.end()) tensor_fail(path, name, "missing 'shape'");
  if (!sh->is_array()) tensor_fail(path, name, "'shape' is not an array");
  t.numel = 1;
  for (const json& d : *sh) {
    if (!d.is_number_integer())
      tensor_fail(path, name, "shape element ", d.dump(), " is not an integer");
    int64_t dim;
    if (d.is_number_unsigned()) {
      const uint64_t u = d.get<uint64_t>();
      if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        tensor_fail(path, name, "dimension ", u, " is too large");
      dim = static_cast<int64_t>(u);
    } else {
      dim = d.get<int64_t>();
      if (dim < 0) tensor_fail(path, name, "negative dimension ", dim, " in shape ", sh->dump());
    }
    t.shape.push_back(dim);
    if (__builtin_mul_overflow(t.numel, static_cast<uint64_t>(dim), &t.numel))
      tensor_fail(path, name, "element count of shape ", shape_str(t.shape), " overflows 64 bits");
  }
  std::optional<uint64_t> nbytes = dtype_bytes_for(t.dtype, t.numel);
  if (!nbytes) {
    if (t.numel > std::numeric_limits<uint64_t>::max() / dtype_bits(t.dtype))
      tensor_fail(path, name, "byte size of ", dname, " ", shape_str(t.shape),
                  " overflows 64 bits");
    tensor_fail(path, name, t.numel, " elements of ", dname, " (shape ", shape_str(t.shape),
                ") do not fill a whole number of bytes");
  }
  t.nbytes = *nbytes;

  auto off = v.find("data_offsets");
  if (off == v.end()) tensor_fail(path, name, "missing 'data_offsets'");
  if (!off->is_array() || off->size() != 2)
    tensor_fail(path, name, "'data_offsets' must be an array [begin, end], got ", off->dump());
  uint64_t be[2];
  for (int i = 0; i < 2; ++i) {
    const json& x = (*off)[i];
    if (!x.is_number_integer() || (!x.is_number_unsigned() && x.get<int64_t>() < 0))
      tensor_fail(path, name, "'data_offsets' ", off->dump(), " are not non-negative integers");
    be[i] = x.get<uint64_t>();
  }
  e.begin = be[0];
  e.end = be[1];
  if (e.begin > e.end) tensor_fail(path, name, "data_offsets begin ", e.begin, " > end ", e.end);
  if (e.end > buffer_size)
    tensor_fail(path, name, "data_offsets end ", e.end, " is beyond the data buffer of ",
                buffer_size, " bytes (file truncated?)");
  if (e.end - e.begin != t.nbytes)
    tensor_fail(path, name, "data_offsets span ", e.end - e.begin, " bytes but ", dname, " ",
                shape_str(t.shape), " needs ", t.nbytes);
  t.data = buffer + e.begin;
  return e;
}

}  // namespace

// ------------------------------------------------------------------------------------------------
// MappedFile

MappedFile MappedFile::open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("cannot open ", path, ": ", errno_text(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const int e = errno;
    ::close(fd);
    fail("cannot stat ", path, ": ", errno_text(e));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    fail("cannot map ", path, ": not a regular file");
  }
  MappedFile m;
  m.path_ = path;
  m.size_ = static_cast<uint64_t>(st.st_size);
  if (m.size_ > 0) {  // mmap rejects length 0; an empty file maps to (nullptr, 0)
    void* p = ::mmap(nullptr, m.size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      const int e = errno;
      ::close(fd);
      fail("cannot mmap ", path, " (", m.size_, " bytes): ", errno_text(e));
    }
    m.data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);  // the mapping keeps the file referenced
  return m;
}

MappedFile::MappedFile(MappedFile&& o) noexcept
    : data_(std::exchange(o.data_, nullptr)),
      size_(std::exchange(o.size_, 0)),
      path_(std::move(o.path_)) {}

MappedFile& MappedFile::operator=(MappedFile&& o) noexcept {
  if (this != &o) {
    if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
    data_ = std::exchange(o.data_, nullptr);
    size_ = std::exchange(o.size_, 0);
    path_ = std::move(o.path_);
  }
  return *this;
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

// ------------------------------------------------------------------------------------------------
// SafetensorsFile

std::string shape_str(const std::vector<int64_t>& shape) {
  std::ostringstream os;
  os << '[';
  for (size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  os << ']';
  return os.str();
}

std::unique_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  auto f = std::make_unique<SafetensorsFile>();
  f->file_ = MappedFile::open(path);
  const uint8_t* base = f->file_.data();
  const uint64_t size = f->file_.size();
  if (size < 8)
    fail(path, ": file is ", size, " bytes, too short for the 8-byte header length prefix");
  const uint64_t n = read_le64(base);
  if (n == 0) fail(path, ": header length is 0");
  if (n > kMaxHeaderBytes)
    fail(path, ": header length ", n, " exceeds the maximum of ", kMaxHeaderBytes, " bytes");
  if (n > size - 8)
    fail(path, ": header length ", n, " runs past the end of the file (", size - 8,
         " bytes after the length prefix)");

  std::string_view header(reinterpret_cast<const char*>(base + 8), n);
  while (!header.empty() && header.back() == ' ') header.remove_suffix(1);  // writer padding
  if (header.empty() || header.front() != '{') fail(path, ": header does not start with '{'");
  const json root = parse_json_no_dups(header, path + ": header");
  if (!root.is_object()) fail(path, ": header is not a JSON object");

  const uint8_t* buffer = base + 8 + n;
  const uint64_t buffer_size = size - 8 - n;
  std::vector<Entry> entries;
  entries.reserve(root.size());
  for (const auto& [key, v] : root.items()) {
    if (key == "__metadata__") {
      if (!v.is_object()) fail(path, ": '__metadata__' is not an object but ", v.type_name());
      for (const auto& [mk, mv] : v.items()) {
        if (!mv.is_string())
          fail(path, ": '__metadata__' value of key '", mk, "' is not a string but ",
               mv.type_name());
        f->metadata_[mk] = mv.get<std::string>();
      }
      continue;
    }
    entries.push_back(parse_entry(path, key, v, buffer, buffer_size));
  }

  // Coverage: sorted by position, the non-empty tensors must tile [0, buffer_size) exactly.
  // Zero-byte tensors occupy no bytes, so they may sit at any in-range offset.
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    if (a.begin != b.begin) return a.begin < b.begin;
    if (a.end != b.end) return a.end < b.end;
    return a.info.name < b.info.name;
  });
  uint64_t cursor = 0;
  const Entry* prev = nullptr;
  for (const Entry& e : entries) {
    if (e.begin == e.end) continue;
    if (e.begin < cursor)
      fail(path, ": tensor '", e.info.name, "' (bytes [", e.begin, ", ", e.end,
           ")) overlaps tensor '", prev->info.name, "' (bytes [", prev->begin, ", ", prev->end,
           "))");
    if (e.begin > cursor)
      fail(path, ": hole in the data buffer: bytes [", cursor, ", ", e.begin, ") before tensor '",
           e.info.name, "' belong to no tensor");
    cursor = e.end;
    prev = &e;
  }
  if (cursor != buffer_size) {
    if (prev)
      fail(path, ": hole in the data buffer: bytes [", cursor, ", ", buffer_size,
           ") after the last tensor '", prev->info.name, "' belong to no tensor");
    fail(path, ": hole in the data buffer: its ", buffer_size, " bytes belong to no tensor");
  }

  f->tensors_.reserve(entries.size());
  for (Entry& e : entries) {
    f->index_.emplace(e.info.name, f->tensors_.size());
    f->tensors_.push_back(std::move(e.info));
  }
  return f;
}

const TensorInfo* SafetensorsFile::find(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

// ------------------------------------------------------------------------------------------------
// Checkpoint

std::unique_ptr<Checkpoint> Checkpoint::open_files(const std::vector<std::string>& files) {
  if (files.empty()) fail("Checkpoint::open_files: no files given");
  auto c = std::make_unique<Checkpoint>();
  // dir_ names the checkpoint in messages: the common parent directory, else the file list.
  std::string parent = fs::path(files[0]).parent_path().string();
  for (const std::string& f : files)
    if (fs::path(f).parent_path().string() != parent) parent.clear();
  if (parent.empty()) {
    for (size_t i = 0; i < files.size(); ++i) c->dir_ += (i ? ", " : "") + files[i];
  } else {
    c->dir_ = parent;
  }
  for (const std::string& path : files) {
    std::unique_ptr<SafetensorsFile> f = SafetensorsFile::open(path);
    for (const TensorInfo& t : f->tensors()) {
      auto [it, inserted] = c->by_name_.emplace(t.name, &t);
      if (!inserted)
        fail("tensor '", t.name, "' appears in both ", it->second->file, " and ", t.file);
    }
    c->files_.push_back(std::move(f));  // TensorInfo addresses survive: the vector is not moved
  }
  return c;
}

std::unique_ptr<Checkpoint> Checkpoint::open_dir(const std::string& dir) {
  const fs::path d(dir);
  const std::string index_path = (d / "model.safetensors.index.json").string();
  const std::string single_path = (d / "model.safetensors").string();
  std::error_code ec;
  if (!fs::is_directory(d, ec)) fail("checkpoint directory ", dir, " does not exist");

  if (!fs::exists(index_path, ec)) {
    if (!fs::exists(single_path, ec))
      fail("neither model.safetensors.index.json nor model.safetensors exists in ", dir);
    auto c = open_files({single_path});
    c->dir_ = dir;
    return c;
  }

  std::ifstream in(index_path, std::ios::binary);
  if (!in) fail("cannot open ", index_path, ": ", errno_text(errno));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) fail("cannot read ", index_path);
  const json root = parse_json_no_dups(text.str(), index_path);
  if (!root.is_object()) fail(index_path, ": not a JSON object");
  auto wm = root.find("weight_map");
  if (wm == root.end()) fail(index_path, ": missing 'weight_map'");
  if (!wm->is_object()) fail(index_path, ": 'weight_map' is not an object");
  if (wm->empty()) fail(index_path, ": 'weight_map' is empty");

  std::map<std::string, std::string, std::less<>> shard_of;  // tensor -> shard path
  std::set<std::string> shards;
  for (const auto& [name, v] : wm->items()) {
    if (!v.is_string() || v.get_ref<const std::string&>().empty())
      fail(index_path, ": weight_map entry '", name, "' is not a non-empty file name string");
    const std::string shard = (d / v.get<std::string>()).string();
    shards.insert(shard);
    shard_of.emplace(name, shard);
  }
  auto c = open_files(std::vector<std::string>(shards.begin(), shards.end()));
  c->dir_ = dir;
  for (const auto& [name, shard] : shard_of) {
    const TensorInfo* t = c->find(name);
    if (!t || t->file != shard)
      fail("tensor '", name, "' listed in index ", index_path, " for shard ", shard,
           " but not found in ", shard, t ? str_cat(" (it is in ", t->file, ")") : "");
  }
  for (const auto& [name, t] : c->by_name_)
    if (shard_of.find(name) == shard_of.end())
      fail("tensor '", name, "' in ", t->file, " is not listed in the weight_map of ", index_path);
  return c;
}

const TensorInfo* Checkpoint::find(std::string_view name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

const TensorInfo& Checkpoint::get(std::string_view name) const {
  const TensorInfo* t = find(name);
  if (!t) fail("missing tensor ", name, " in ", dir_);
  return *t;
}

std::vector<const TensorInfo*> Checkpoint::all() const {
  std::vector<const TensorInfo*> out;
  out.reserve(by_name_.size());
  for (const auto& [name, t] : by_name_) out.push_back(t);
  return out;
}

uint64_t Checkpoint::total_bytes() const {
  uint64_t total = 0;
  for (const auto& [name, t] : by_name_) total += t->nbytes;
  return total;
}

}  // namespace fc
