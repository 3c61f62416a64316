// The values a Jinja template computes with, modelled on the Python objects
// the jinja2 package sees when Hugging Face renders a chat template:
//
//   undefined   jinja2's default Undefined: renders empty, is falsy,
//               iterates as empty; arithmetic, calls, attribute and item
//               access on it are errors ("'x' is undefined")
//   none, bool, int (64-bit), float (double), string (UTF-8; indexed,
//   sliced and measured in code points, as Python does)
//   list        also a tuple (is_tuple: renders "(1, 2)")
//   dict        keys in insertion order, as Python's dict
//   namespace   namespace(): the one mutable object, for `set ns.attr`
//   callable    macros, global functions, bound methods
//
// Text conversion follows Python's str() and repr(): None, True, 1.0, 1e+16,
// ['a', {'k': 1}]. Comparison follows Python: 1 == 1.0 == True, and
// ordering different kinds (but numbers) is a type error.
//
// Thread safety: values are immutable once built, except a namespace, which
// lives in one render only.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/base/status.h"
#include "engine/text/json.h"

namespace relayout::jinja {

class Value;

struct ValueDict {
  std::vector<std::pair<Value, Value>> items;

  // The value under key, or nullptr.
  const Value* Find(const Value& key) const;
  const Value* Find(std::string_view key) const;
  // Replaces the value under key, or appends the pair.
  void Set(Value key, Value value);
};

struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;

  // The keyword argument name, else positional[index], else nullptr.
  const Value* Get(size_t index, std::string_view name) const;
};

// A callable's body.
using NativeFunction = std::function<Result<Value>(const CallArgs&)>;

struct Callable {
  std::string name;
  NativeFunction function;
};

class Value {
 public:
  enum class Kind {
    kUndefined,
    kNone,
    kBool,
    kInt,
    kFloat,
    kString,
    kList,
    kDict,
    kNamespace,
    kCallable
  };

  Value() = default;  // undefined
  static Value Undefined(std::string hint) {
    Value v;
    v.string_ = std::move(hint);
    return v;
  }
  static Value None() { return Value(Kind::kNone); }
  static Value Bool(bool b) {
    Value v(Kind::kBool);
    v.int_ = b ? 1 : 0;
    return v;
  }
  static Value Int(int64_t i) {
    Value v(Kind::kInt);
    v.int_ = i;
    return v;
  }
  static Value Float(double d) {
    Value v(Kind::kFloat);
    v.float_ = d;
    return v;
  }
  static Value String(std::string s) {
    Value v(Kind::kString);
    v.weight_ = 1 + s.size() / 32;
    v.string_ = std::move(s);
    return v;
  }
  static Value List(std::vector<Value> items, bool is_tuple = false);
  static Value Dict(ValueDict dict);
  static Value Namespace(ValueDict attributes);
  static Value Function(std::string name, NativeFunction function);
  // From parsed JSON: objects become dicts, integers ints, other numbers floats.
  static Value FromJson(const JsonValue& json);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_bool() const { return kind_ == Kind::kBool; }
  bool is_int() const { return kind_ == Kind::kInt; }
  bool is_float() const { return kind_ == Kind::kFloat; }
  // int, float or bool (a Python bool is an int).
  bool is_number() const { return kind_ == Kind::kInt || kind_ == Kind::kFloat || is_bool(); }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_list() const { return kind_ == Kind::kList; }
  bool is_tuple() const { return kind_ == Kind::kList && is_tuple_; }
  bool is_dict() const { return kind_ == Kind::kDict; }
  bool is_namespace() const { return kind_ == Kind::kNamespace; }
  bool is_callable() const { return kind_ == Kind::kCallable; }

  // REQUIRES: the matching kind (as_int: int or bool; as_double: a number).
  bool as_bool() const { return int_ != 0; }
  int64_t as_int() const { return int_; }
  double as_double() const { return kind_ == Kind::kFloat ? float_ : static_cast<double>(int_); }
  const std::string& as_string() const { return string_; }
  const std::vector<Value>& as_list() const { return *list_; }
  const ValueDict& as_dict() const { return *dict_; }  // dict or namespace
  ValueDict& mutable_namespace() const { return *dict_; }
  const Callable& as_callable() const { return *callable_; }
  // Nesting depth (1 for a scalar) and weight (one per value plus one per 32
  // bytes of string, summed over a list or dict's items, saturating): what
  // the renderer bounds, so that printing or comparing a value built by a
  // template stays linear in the limits.
  int depth() const { return depth_; }
  uint64_t weight() const { return weight_; }

  // What an undefined value stands for, for error messages: "'x' is undefined".
  const std::string& undefined_hint() const { return string_; }

  // Python's truth value; undefined is false.
  bool Truthy() const;
  // Python's str(): what {{ value }} prints (undefined: empty).
  std::string Str() const;
  // Python's repr(): how the value prints inside a list or dict.
  std::string Repr() const;
  // "str object", "list object": jinja2's names in error messages.
  std::string TypeName() const;

 private:
  explicit Value(Kind kind) : kind_(kind) {}
  // Adds an item's depth and weight to a list's or dict's.
  void Absorb(const Value& item);

  Kind kind_ = Kind::kUndefined;
  bool is_tuple_ = false;
  int depth_ = 1;
  uint64_t weight_ = 1;
  int64_t int_ = 0;
  double float_ = 0;
  std::string string_;
  std::shared_ptr<const std::vector<Value>> list_;
  std::shared_ptr<ValueDict> dict_;
  std::shared_ptr<const Callable> callable_;
};

// Python's ==: numbers by value (1 == 1.0 == True), lists and dicts
// elementwise, undefined equal only to undefined.
bool Equal(const Value& a, const Value& b);

// Python's <, for numbers, strings (by code point) and lists; -1, 0 or 1.
// InvalidArgument "'<' not supported between ..." for other kinds.
Result<int> Compare(const Value& a, const Value& b);

// Python's float repr: 1.0, 0.1, 1e+16, 1.5e-05, inf, nan.
std::string FloatRepr(double d);

// The code points of s as strings (invalid bytes one each).
std::vector<std::string_view> SplitCodePoints(std::string_view s);

// json.dumps's arguments, as Hugging Face's tojson filter passes them.
struct JsonDumpOptions {
  bool ensure_ascii = false;  // \uXXXX for non-ASCII
  int indent = -1;            // < 0: None (one line)
  // Default: ", " and ": ", or "," and ": " with an indent.
  std::optional<std::pair<std::string, std::string>> separators;
  bool sort_keys = false;
};

// json.dumps(value, ...). InvalidArgument for a value JSON cannot hold
// (undefined, a callable, a namespace).
Result<std::string> ToJson(const Value& value, const JsonDumpOptions& options);

}  // namespace relayout::jinja
