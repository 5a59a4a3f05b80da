// Value construction and the Python object protocol pieces the engine needs: truth value, str(),
// repr(), ==, ordering and dict keys. Semantics follow CPython 3.11 (Objects/object.c,
// Objects/listobject.c, Objects/dictobject.c) and jinja2.runtime.Undefined.
#include "chat/value.h"

#include <algorithm>
#include <cmath>

#include "chat/pystr.h"

namespace fc::chat {

void throw_error(ErrorKind kind, std::string message) {
  throw TemplateError(kind, std::move(message));
}

void throw_undefined(const Value& v) {
  const std::string& hint = v.undefined_hint();
  throw TemplateError(v.undefined_unsafe() ? ErrorKind::kSecurity : ErrorKind::kUndefined,
                      hint.empty() ? "undefined value" : hint);
}

Value Value::undefined(std::string hint, bool unsafe) {
  Value v;
  v.data_ = std::move(hint);
  v.flag_ = unsafe;
  return v;
}

Value Value::none() {
  Value v;
  v.kind_ = Kind::kNone;
  return v;
}

Value Value::boolean(bool b) {
  Value v;
  v.kind_ = Kind::kBool;
  v.data_ = b;
  return v;
}

Value Value::integer(int64_t i) {
  Value v;
  v.kind_ = Kind::kInt;
  v.data_ = i;
  return v;
}

Value Value::number(double d) {
  Value v;
  v.kind_ = Kind::kFloat;
  v.data_ = d;
  return v;
}

Value Value::string(std::string s) {
  Value v;
  v.kind_ = Kind::kString;
  v.data_ = std::move(s);
  return v;
}

namespace {

// 1 + the deepest of `depths`, refused past kMaxValueDepth.
uint16_t nested_depth(int deepest_child) {
  if (deepest_child + 1 > kMaxValueDepth)
    throw_error(ErrorKind::kLimit, "values nested deeper than " + std::to_string(kMaxValueDepth) +
                                       " levels (the limit)");
  return static_cast<uint16_t>(deepest_child + 1);
}

}  // namespace

Value Value::list(List items) {
  int deepest = 0;
  for (const Value& x : items) deepest = std::max(deepest, x.depth());
  Value v;
  v.kind_ = Kind::kList;
  v.depth_ = nested_depth(deepest);
  v.data_ = std::make_shared<const List>(std::move(items));
  return v;
}

Value Value::tuple(List items) {
  Value v = list(std::move(items));
  v.flag_ = true;
  return v;
}

Value Value::dict(Dict d) {
  int deepest = 0;
  for (const auto& [k, x] : d.entries()) deepest = std::max({deepest, k.depth(), x.depth()});
  Value v;
  v.kind_ = Kind::kDict;
  v.depth_ = nested_depth(deepest);
  v.data_ = std::make_shared<const Dict>(std::move(d));
  return v;
}

Value Value::object(std::shared_ptr<Object> o) {
  Value v;
  v.kind_ = Kind::kObject;
  v.depth_ = static_cast<uint16_t>(std::min(o ? o->nesting() : 0, kMaxValueDepth));
  v.data_ = std::move(o);
  return v;
}

double Value::float_value() const {
  if (is_float()) return get_float();
  return static_cast<double>(int_value());
}

const void* Value::identity() const {
  switch (kind_) {
    case Kind::kList:
      return std::get<std::shared_ptr<const List>>(data_).get();
    case Kind::kDict:
      return std::get<std::shared_ptr<const Dict>>(data_).get();
    case Kind::kObject:
      return obj().get();
    default:
      return nullptr;
  }
}

// ---- Dict ----

// Canonical text of a hashable non-string key such that Python-equal keys map to the same text.
static std::string canonical_key(const Value& k) {
  switch (k.kind()) {
    case Value::Kind::kNone:
      return "n";
    case Value::Kind::kBool:
    case Value::Kind::kInt:
      return "i" + std::to_string(k.int_value());
    case Value::Kind::kFloat: {
      double d = k.get_float();
      if (std::floor(d) == d && std::fabs(d) < 9.2e18)
        return "i" + std::to_string(static_cast<int64_t>(d));
      return "f" + py_repr_float(d);
    }
    case Value::Kind::kString:
      return "s" + std::to_string(k.str().size()) + ":" + k.str();
    case Value::Kind::kList: {
      if (!k.is_tuple()) throw_error(ErrorKind::kType, "unhashable type: 'list'");
      std::string out = "t(";
      for (const Value& x : k.items()) out += canonical_key(x) + ",";
      return out + ")";
    }
    case Value::Kind::kDict:
      throw_error(ErrorKind::kType, "unhashable type: 'dict'");
    case Value::Kind::kUndefined:
      return "u";
    case Value::Kind::kObject:
      return "o" + std::to_string(reinterpret_cast<uintptr_t>(k.identity()));
  }
  return "?";
}

const Value* Dict::find(const Value& key) const {
  if (key.is_string()) return find(std::string_view(key.str()));
  auto it = other_index_.find(canonical_key(key));
  return it == other_index_.end() ? nullptr : &entries_[it->second].second;
}

const Value* Dict::find(std::string_view key) const {
  auto it = str_index_.find(key);
  return it == str_index_.end() ? nullptr : &entries_[it->second].second;
}

void Dict::set(Value key, Value value) {
  if (key.is_string()) {
    auto it = str_index_.find(std::string_view(key.str()));
    if (it != str_index_.end()) {
      entries_[it->second].second = std::move(value);
      return;
    }
    str_index_.emplace(key.str(), entries_.size());
  } else {
    std::string ck = canonical_key(key);
    auto it = other_index_.find(ck);
    if (it != other_index_.end()) {
      entries_[it->second].second = std::move(value);
      return;
    }
    other_index_.emplace(std::move(ck), entries_.size());
  }
  entries_.emplace_back(std::move(key), std::move(value));
}

// ---- Objects ----

Value Object::get_attr(const std::string& name) const {
  return Value::undefined("'" + type_name() + " object' has no attribute '" + name + "'");
}

Value Object::call(Interp&, CallArgs&) const {
  throw_error(ErrorKind::kType, "'" + type_name() + "' object is not callable");
}

std::string Namespace::repr() const {
  return "<Namespace " + fc::chat::repr(Value::dict(attrs_)) + ">";
}

Value Namespace::get_attr(const std::string& name) const {
  const Value* v = attrs_.find(std::string_view(name));
  if (v) return *v;
  return Value::undefined("'Namespace object' has no attribute '" + name + "'");
}

void Namespace::set_attr(const std::string& name, Value v) {
  // transformers TemplateNamespace._check_name
  if (!name.empty() && name[0] == '_')
    throw_error(ErrorKind::kSecurity,
                "Chat templates cannot store underscore-prefixed attributes on a namespace, but "
                "got " +
                    py_repr_string(name) + ". Please rename the attribute.");
  nesting_ = std::max<int>(nesting_, nested_depth(v.depth()));
  attrs_.set(Value::string(name), std::move(v));
}

// ---- Python protocol ----

bool truthy(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone:
      return false;
    case Value::Kind::kBool:
      return v.get_bool();
    case Value::Kind::kInt:
      return v.get_int() != 0;
    case Value::Kind::kFloat:
      return v.get_float() != 0.0;
    case Value::Kind::kString:
      return !v.str().empty();
    case Value::Kind::kList:
      return !v.items().empty();
    case Value::Kind::kDict:
      return !v.dict_ref().empty();
    case Value::Kind::kObject:
      return true;
  }
  return false;
}

std::string type_name(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return "Undefined";
    case Value::Kind::kNone:
      return "NoneType";
    case Value::Kind::kBool:
      return "bool";
    case Value::Kind::kInt:
      return "int";
    case Value::Kind::kFloat:
      return "float";
    case Value::Kind::kString:
      return "str";
    case Value::Kind::kList:
      return v.is_tuple() ? "tuple" : "list";
    case Value::Kind::kDict:
      return "dict";
    case Value::Kind::kObject:
      return v.obj()->type_name();
  }
  return "object";
}

static void repr_into(const Value& v, std::string& out, int depth) {
  // Python raises RecursionError on self-containing structures; namespaces can contain themselves.
  if (depth > 200)
    throw_error(ErrorKind::kLimit, "maximum recursion depth exceeded while getting the repr");
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      out += "Undefined";
      return;
    case Value::Kind::kNone:
      out += "None";
      return;
    case Value::Kind::kBool:
      out += v.get_bool() ? "True" : "False";
      return;
    case Value::Kind::kInt:
      out += std::to_string(v.get_int());
      return;
    case Value::Kind::kFloat:
      out += py_repr_float(v.get_float());
      return;
    case Value::Kind::kString:
      out += py_repr_string(v.str());
      return;
    case Value::Kind::kList: {
      const List& xs = v.items();
      out += v.is_tuple() ? '(' : '[';
      for (size_t i = 0; i < xs.size(); ++i) {
        if (i) out += ", ";
        repr_into(xs[i], out, depth + 1);
      }
      if (v.is_tuple() && xs.size() == 1) out += ',';
      out += v.is_tuple() ? ')' : ']';
      return;
    }
    case Value::Kind::kDict: {
      out += '{';
      bool first = true;
      for (const auto& [k, x] : v.dict_ref().entries()) {
        if (!first) out += ", ";
        first = false;
        repr_into(k, out, depth + 1);
        out += ": ";
        repr_into(x, out, depth + 1);
      }
      out += '}';
      return;
    }
    case Value::Kind::kObject: {
      if (Namespace* ns = v.obj()->as_namespace()) {
        out += "<Namespace ";
        repr_into(Value::dict(ns->attrs()), out, depth + 1);
        out += '>';
        return;
      }
      out += v.obj()->repr();
      return;
    }
  }
}

std::string repr(const Value& v) {
  std::string out;
  repr_into(v, out, 0);
  return out;
}

std::string to_str(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return "";
    case Value::Kind::kString:
      return v.str();
    default:
      return repr(v);
  }
}

static bool equals_depth(const Value& a, const Value& b, int depth) {
  if (depth > 200) throw_error(ErrorKind::kLimit, "maximum recursion depth exceeded in comparison");
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.float_value() == b.float_value();
    return a.int_value() == b.int_value();
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone:
      return true;
    case Value::Kind::kString:
      return a.str() == b.str();
    case Value::Kind::kList: {
      if (a.is_tuple() != b.is_tuple()) return false;
      const List &x = a.items(), &y = b.items();
      if (x.size() != y.size()) return false;
      for (size_t i = 0; i < x.size(); ++i)
        if (!equals_depth(x[i], y[i], depth + 1)) return false;
      return true;
    }
    case Value::Kind::kDict: {
      const Dict &x = a.dict_ref(), &y = b.dict_ref();
      if (x.size() != y.size()) return false;
      for (const auto& [k, v] : x.entries()) {
        const Value* other = y.find(k);
        if (!other || !equals_depth(v, *other, depth + 1)) return false;
      }
      return true;
    }
    case Value::Kind::kObject:
      return a.identity() == b.identity();
    default:
      return false;
  }
}

bool equals(const Value& a, const Value& b) {
  return equals_depth(a, b, 0);
}

int compare(const Value& a, const Value& b, const char* op) {
  if (a.is_undefined()) throw_undefined(a);
  if (b.is_undefined()) throw_undefined(b);
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) {
      double x = a.float_value(), y = b.float_value();
      return x < y ? -1 : (x > y ? 1 : 0);  // NaN compares as equal-ish: all orderings false
    }
    int64_t x = a.int_value(), y = b.int_value();
    return x < y ? -1 : (x > y ? 1 : 0);
  }
  if (a.is_string() && b.is_string()) {
    int c = a.str().compare(b.str());  // UTF-8 byte order == code point order
    return c < 0 ? -1 : (c > 0 ? 1 : 0);
  }
  if (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple()) {
    const List &x = a.items(), &y = b.items();
    for (size_t i = 0; i < x.size() && i < y.size(); ++i)
      if (!equals(x[i], y[i])) return compare(x[i], y[i], op);
    return x.size() < y.size() ? -1 : (x.size() > y.size() ? 1 : 0);
  }
  throw_error(ErrorKind::kType, std::string("'") + op + "' not supported between instances of '" +
                                    type_name(a) + "' and '" + type_name(b) + "'");
}

}  // namespace fc::chat
