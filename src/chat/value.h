// Dynamic values of the Jinja engine, modelled on the Python objects jinja2 templates see:
// Undefined, None, bool, int (int64), float (double), str (UTF-8), list/tuple, dict (insertion
// ordered) and opaque objects (namespace, macro, loop, bound methods). Lists and dicts are
// immutable once built (the HF sandbox forbids mutating them), so copies share storage; only
// namespaces are mutable. Values never outlive one render call, so no locking is needed.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "chat/template_error.h"

namespace fc::chat {

class Value;
class Dict;
class Object;
class Interp;
using List = std::vector<Value>;

// Containers nest at most this deep (lists, tuples, dicts, namespaces at assignment): a template
// that wraps a value in a list a million times gets a kLimit error instead of a stack overflow
// when the chain is destroyed or walked. Far above the context's own bound (chat_template.cpp:
// JSON deeper than 512 levels is refused) and any real template.
inline constexpr int kMaxValueDepth = 1000;

class Value {
 public:
  enum class Kind : uint8_t {
    kUndefined,
    kNone,
    kBool,
    kInt,
    kFloat,
    kString,
    kList,
    kDict,
    kObject
  };

  Value() = default;  // undefined, no hint
  // `hint` is the message raised when the undefined value is used in an operation that needs a
  // real value; `unsafe` marks sandbox refusals (raised as ErrorKind::kSecurity).
  static Value undefined(std::string hint, bool unsafe = false);
  static Value none();
  static Value boolean(bool b);
  static Value integer(int64_t i);
  static Value number(double d);
  static Value string(std::string s);
  static Value list(List items);
  static Value tuple(List items);
  static Value dict(Dict d);
  static Value object(std::shared_ptr<Object> o);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_bool() const { return kind_ == Kind::kBool; }
  bool is_int() const { return kind_ == Kind::kInt; }
  bool is_float() const { return kind_ == Kind::kFloat; }
  // Python numbers.Number: bool, int and float.
  bool is_number() const { return kind_ == Kind::kBool || kind_ == Kind::kInt || is_float(); }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_list() const { return kind_ == Kind::kList; }  // list or tuple
  bool is_tuple() const { return kind_ == Kind::kList && flag_; }
  bool is_dict() const { return kind_ == Kind::kDict; }
  bool is_object() const { return kind_ == Kind::kObject; }

  bool get_bool() const { return std::get<bool>(data_); }
  int64_t get_int() const { return std::get<int64_t>(data_); }
  double get_float() const { return std::get<double>(data_); }
  // Integer view of bool/int (Python treats True as 1).
  int64_t int_value() const { return is_bool() ? (get_bool() ? 1 : 0) : get_int(); }
  // Float view of any number.
  double float_value() const;
  const std::string& str() const { return std::get<std::string>(data_); }
  const List& items() const { return *std::get<std::shared_ptr<const List>>(data_); }
  const Dict& dict_ref() const { return *std::get<std::shared_ptr<const Dict>>(data_); }
  const std::shared_ptr<Object>& obj() const { return std::get<std::shared_ptr<Object>>(data_); }
  const std::string& undefined_hint() const { return std::get<std::string>(data_); }
  bool undefined_unsafe() const { return flag_; }
  // Identity of the shared payload (Python `is` for containers and objects).
  const void* identity() const;
  // Container nesting: 0 for scalars, 1 + the deepest element for lists and dicts.
  int depth() const { return depth_; }

 private:
  Kind kind_ = Kind::kUndefined;
  bool flag_ = false;   // tuple (lists) or unsafe (undefined)
  uint16_t depth_ = 0;  // <= kMaxValueDepth
  std::variant<std::string, bool, int64_t, double, std::shared_ptr<const List>,
               std::shared_ptr<const Dict>, std::shared_ptr<Object>>
      data_;
};

// Insertion-ordered mapping with Python key equality (1 == 1.0 == True share one slot).
class Dict {
 public:
  using Entry = std::pair<Value, Value>;
  const Value* find(const Value& key) const;
  const Value* find(std::string_view key) const;
  // Inserts or replaces; a replaced key keeps its original position, as in Python.
  void set(Value key, Value value);
  const std::vector<Entry>& entries() const { return entries_; }
  size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }

 private:
  struct SvHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::vector<Entry> entries_;
  std::unordered_map<std::string, size_t, SvHash, std::equal_to<>> str_index_;
  std::unordered_map<std::string, size_t> other_index_;  // non-string keys, by canonical form
};

// Call arguments as the template wrote them: positional then keyword.
struct CallArgs {
  std::vector<Value> pos;
  std::vector<std::pair<std::string, Value>> kw;
};

class Namespace;

// Opaque template objects. Subclasses answer attribute lookups and (optionally) calls.
class Object : public std::enable_shared_from_this<Object> {
 public:
  virtual ~Object() = default;
  virtual std::string type_name() const = 0;  // Python class name, used in messages
  virtual std::string repr() const { return "<" + type_name() + " object>"; }
  // obj.name; returns an undefined value when there is no such attribute.
  virtual Value get_attr(const std::string& name) const;
  virtual bool is_callable() const { return false; }
  virtual Value call(Interp& in, CallArgs& args) const;
  virtual Namespace* as_namespace() { return nullptr; }
  // Nesting depth of the values the object holds (Value::depth of an object value).
  virtual int nesting() const { return 0; }
};

// jinja2.utils.Namespace as wrapped by transformers' TemplateNamespace: attributes settable with
// `{% set ns.attr = v %}`, names starting with '_' refused.
class Namespace : public Object {
 public:
  std::string type_name() const override { return "Namespace"; }
  std::string repr() const override;
  Value get_attr(const std::string& name) const override;
  Namespace* as_namespace() override { return this; }
  void set_attr(const std::string& name, Value v);
  const Dict& attrs() const { return attrs_; }
  int nesting() const override { return nesting_; }

 private:
  Dict attrs_;
  int nesting_ = 1;  // 1 + the deepest attribute value assigned so far
};

// Python semantics helpers.
bool truthy(const Value& v);
std::string to_str(const Value& v);           // str(v); undefined -> ""
std::string repr(const Value& v);             // repr(v)
bool equals(const Value& a, const Value& b);  // a == b
// Three-way compare for <, <=, >, >=; throws kType for unorderable pairs (`op` names the operator).
int compare(const Value& a, const Value& b, const char* op);
std::string type_name(const Value& v);  // 'int', 'str', 'NoneType', 'dict', ...
// Raises the error an undefined value carries (kUndefined, or kSecurity when unsafe).
[[noreturn]] void throw_undefined(const Value& v);
[[noreturn]] void throw_error(ErrorKind kind, std::string message);

}  // namespace fc::chat
