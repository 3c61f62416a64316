// A Jinja template engine for chat templates: compiles the source once
// (jinja_syntax.h), renders it many times with jinja2's semantics as
// Hugging Face's apply_chat_template runs it (jinja_builtins.h).
//
// Scoping follows jinja2: `set` inside a for loop lasts one iteration, inside
// an if it reaches the enclosing scope; a macro sees the template's top-level
// names and its own arguments; namespace() objects carry values out of loops.
//
// Render limits make a hostile template or input fail fast instead of hanging
// or exhausting memory: output size, work steps (expressions, loop
// iterations, macro calls), macro call depth, and the size and nesting of any
// value built. Exceeding one is InvalidArgument "chat template: render limit:
// <which>".
//
// Thread safety: a compiled Template is immutable; Render may run on any
// number of threads at once.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "engine/base/status.h"
#include "engine/chat/jinja_syntax.h"
#include "engine/chat/jinja_value.h"

namespace relayout::jinja {

struct RenderLimits {
  // The rendered text, and any one string built on the way.
  size_t max_output_bytes = 16u << 20;
  // Expressions evaluated plus loop iterations plus macro calls.
  int64_t max_steps = 20'000'000;
  // Nested macro calls (recursion).
  int max_call_depth = 64;
  // A built value's weight (Value::weight) and depth.
  uint64_t max_value_weight = 4'000'000;
  int max_value_depth = 128;
};

class Template {
 public:
  // InvalidArgument "chat template: line L: <what>" for a syntax error, an
  // unsupported statement, or an unknown filter or test.
  static Result<std::unique_ptr<const Template>> Compile(std::string_view source);

  // The text for these variables (the globals range, namespace, dict,
  // raise_exception and strftime_now are always there; variables override
  // them). InvalidArgument "chat template: line L: <what>" for a render
  // error; raise_exception's message is <what>.
  Result<std::string> Render(const ValueDict& variables, const RenderLimits& limits = {}) const;

 private:
  explicit Template(NodeList nodes) : nodes_(std::move(nodes)) {}
  NodeList nodes_;
};

}  // namespace relayout::jinja
