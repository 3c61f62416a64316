// The syntax of the Jinja subset chat templates use: the lexer (tags,
// whitespace control) and the parser into a tree the renderer walks.
//
// Lexing follows jinja2 as Hugging Face's apply_chat_template configures it:
// trim_blocks (the first newline after a block or comment tag is dropped),
// lstrip_blocks (spaces and tabs from the start of a line up to a block or
// comment tag are dropped), `-` on a tag's inner side strips all white space
// on that side, `+` turns lstrip_blocks or trim_blocks off for that tag,
// newlines are normalised to "\n" and one trailing newline of the source is
// dropped (keep_trailing_newline=False).
//
// Supported statements: if/elif/else, for (with `if` filter, else,
// recursive is refused), set (plain, tuple, namespace attribute, block),
// macro, filter blocks, with, break/continue, raw, and `generation` (Hugging
// Face's assistant-mask block, rendered as its body). Anything else is an
// error naming it. Errors are InvalidArgument "chat template: line L: <what>".
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/base/status.h"
#include "engine/chat/jinja_value.h"

namespace relayout::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Kind {
    kLiteral,    // literal
    kName,       // name
    kList,       // children
    kTuple,      // children
    kDict,       // children: key, value, key, value...
    kUnary,      // name ("-", "+", "not"), children[0]
    kBinary,     // name (+ - * / // % ** ~ and or in "not in"), children[0..1]
    kCompare,    // children[0] ops[i] children[i+1], chained as Python
    kCondition,  // children: value, test, else (null: undefined)
    kGetAttr,    // children[0] . name
    kGetItem,    // children[0] [ children[1] ]
    kSlice,      // children[0] [ children[1] : children[2] : children[3] ] (null: omitted)
    kCall,       // children[0] ( children[1..], kwargs )
    kFilter,     // children[0] (null in a filter block) | name ( children[1..], kwargs )
    kTest,       // children[0] is [not] name ( children[1..], kwargs ); negated
  };
  Kind kind = Kind::kLiteral;
  int line = 0;
  Value literal;
  std::string name;
  std::vector<ExprPtr> children;
  std::vector<std::string> ops;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  bool negated = false;
};

struct Node;
using NodeList = std::vector<std::unique_ptr<Node>>;

struct Node {
  enum class Kind {
    kText,         // text
    kOutput,       // {{ expr }}
    kIf,           // branches (cond null: else)
    kFor,          // targets in expr [if filter] body [else else_body]
    kSet,          // targets (or targets[0].attr) = expr
    kSetBlock,     // targets[0] = rendered body, through filter (may be null)
    kMacro,        // name(params) body
    kFilterBlock,  // body through filter (a kFilter chain with null input)
    kWith,         // params as assignments, body in a new scope
    kBreak,
    kContinue,
    kBody,  // body (the `generation` block)
  };
  Kind kind = Kind::kText;
  int line = 0;
  std::string text;
  std::string name;
  std::string attr;
  ExprPtr expr;
  ExprPtr filter;
  std::vector<std::string> targets;
  std::vector<std::pair<ExprPtr, NodeList>> branches;
  std::vector<std::pair<std::string, ExprPtr>> params;
  NodeList body;
  NodeList else_body;
};

struct ParseLimits {
  int max_depth = 128;  // nested expressions and statements
};

// The template's tree. InvalidArgument "chat template: line L: <what>".
Result<NodeList> ParseTemplate(std::string_view source, const ParseLimits& limits = {});

}  // namespace relayout::jinja
