// What a Jinja template can do to values, with jinja2's semantics (as run by
// Hugging Face's apply_chat_template in an ImmutableSandboxedEnvironment):
// operators, attribute and item access (jinja2's getattr/getitem: a missing
// key or index is undefined, not an error), iteration, the filters, the tests,
// the methods of str, dict and list, and the global functions (range,
// namespace, dict, raise_exception, strftime_now).
//
// Errors are InvalidArgument with jinja2's kind of message ("'x' is
// undefined", "unsupported operand types for +: 'str object' and 'int
// object'"); the renderer adds the line. A raise_exception call is
// InvalidArgument with its message alone.
//
// Thread safety: free functions.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "engine/base/status.h"
#include "engine/chat/jinja_value.h"

namespace relayout::jinja {

// The size every string a builtin builds is checked against before it is
// built, so `'a' * 10**12` or a join of a huge separator fails at once.
struct BuiltinLimits {
  size_t max_string_bytes = 16u << 20;
};

bool IsFilter(std::string_view name);
bool IsTest(std::string_view name);

Result<Value> ApplyFilter(std::string_view name, const Value& input, const CallArgs& args,
                          const BuiltinLimits& limits);
Result<bool> ApplyTest(std::string_view name, const Value& input, const CallArgs& args,
                       const BuiltinLimits& limits);

// obj.name: a method (bound), else the item; undefined when neither.
// An error when obj is undefined.
Result<Value> GetAttr(const Value& obj, std::string_view name, const BuiltinLimits& limits);
// obj[key]: the item, else the attribute for a string key; undefined when
// neither. An error when obj is undefined.
Result<Value> GetItem(const Value& obj, const Value& key, const BuiltinLimits& limits);
// obj[start:stop:step] on a string or list (undefined parts omitted).
Result<Value> Slice(const Value& obj, const Value& start, const Value& stop, const Value& step);

// The items a for loop walks: a list's items, a dict's keys, a string's
// characters, nothing for undefined. An error for anything else.
Result<std::vector<Value>> Iterate(const Value& value);

// a op b for op in + - * / // % ** ~ (and the comparisons == != < > <= >=,
// in, "not in"), with Python's rules.
Result<Value> BinaryOp(std::string_view op, const Value& a, const Value& b,
                       const BuiltinLimits& limits);

// The globals every render sees.
ValueDict GlobalFunctions();

}  // namespace relayout::jinja
