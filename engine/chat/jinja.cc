#include "engine/chat/jinja.h"

#include <map>
#include <utility>
#include <vector>

#include "engine/chat/jinja_builtins.h"

namespace relayout::jinja {
namespace {

using Scope = std::map<std::string, Value, std::less<>>;

// Every filter and test a template names must exist, as jinja2 checks at
// compile time, except inside the branches of an {% if %}: there jinja2
// defers the check to render time (a template may guard a filter that some
// engines lack), and so does ApplyFilter/ApplyTest.
Status CheckNames(const Expr* e) {
  if (e == nullptr) return Status::OK();
  if (e->kind == Expr::Kind::kFilter && !IsFilter(e->name)) {
    return Status::InvalidArgument(
        "chat template", StrCat("line ", e->line, ": unsupported filter '", e->name, "'"));
  }
  if (e->kind == Expr::Kind::kTest && !IsTest(e->name)) {
    return Status::InvalidArgument("chat template",
                                   StrCat("line ", e->line, ": unsupported test '", e->name, "'"));
  }
  for (const ExprPtr& child : e->children) RETURN_IF_ERROR(CheckNames(child.get()));
  for (const auto& [name, value] : e->kwargs) RETURN_IF_ERROR(CheckNames(value.get()));
  return Status::OK();
}

Status CheckNames(const NodeList& nodes) {
  for (const auto& n : nodes) {
    RETURN_IF_ERROR(CheckNames(n->expr.get()));
    RETURN_IF_ERROR(CheckNames(n->filter.get()));
    if (n->kind == Node::Kind::kIf) {
      if (!n->branches.empty()) RETURN_IF_ERROR(CheckNames(n->branches.front().first.get()));
      continue;
    }
    for (const auto& [cond, body] : n->branches) {
      RETURN_IF_ERROR(CheckNames(cond.get()));
      RETURN_IF_ERROR(CheckNames(body));
    }
    for (const auto& [name, value] : n->params) RETURN_IF_ERROR(CheckNames(value.get()));
    RETURN_IF_ERROR(CheckNames(n->body));
    RETURN_IF_ERROR(CheckNames(n->else_body));
  }
  return Status::OK();
}

class Renderer {
 public:
  Renderer(const RenderLimits& limits, const ValueDict& variables) : limits_(limits) {
    builtin_limits_.max_string_bytes = limits.max_output_bytes;
    for (auto& [k, v] : GlobalFunctions().items) globals_[k.as_string()] = v;
    for (const auto& [k, v] : variables.items) globals_[k.Str()] = v;
    scopes_.push_back(std::make_shared<Scope>());
  }

  Result<std::string> Run(const NodeList& nodes) {
    std::string out;
    Status s = RenderNodes(nodes, &out);
    if (!s.ok()) {
      return Status::InvalidArgument("chat template",
                                     StrCat("line ", error_line_, ": ", s.message()));
    }
    return out;
  }

 private:
  enum class Flow { kNormal, kBreak, kContinue };

  // Records the innermost line an error passed through.
  Status Fail(Status s, int line) {
    if (error_line_ == 0) error_line_ = line;
    return s;
  }

  Status Step(int line) {
    if (++steps_ > limits_.max_steps) {
      return Fail(
          Status::InvalidArgument(StrCat("render limit: more than ", limits_.max_steps, " steps")),
          line);
    }
    return Status::OK();
  }

  Status Append(std::string_view text, std::string* out, int line) {
    if (out->size() + text.size() > limits_.max_output_bytes) {
      return Fail(Status::InvalidArgument(
                      StrCat("render limit: output above ", limits_.max_output_bytes, " bytes")),
                  line);
    }
    out->append(text);
    return Status::OK();
  }

  Status CheckValue(const Value& v, int line) {
    if (v.is_string() && v.as_string().size() > limits_.max_output_bytes) {
      return Fail(Status::InvalidArgument(
                      StrCat("render limit: a string above ", limits_.max_output_bytes, " bytes")),
                  line);
    }
    if (v.weight() > limits_.max_value_weight || v.depth() > limits_.max_value_depth) {
      return Fail(Status::InvalidArgument("render limit: a value too large or too deeply nested"),
                  line);
    }
    return Status::OK();
  }

  Value Lookup(std::string_view name) const {
    for (auto it = scopes_.rbegin(); it != scopes_.rend(); ++it) {
      auto found = (*it)->find(name);
      if (found != (*it)->end()) return found->second;
    }
    auto found = globals_.find(name);
    if (found != globals_.end()) return found->second;
    return Value::Undefined(StrCat("'", name, "' is undefined"));
  }

  void Assign(const std::string& name, Value v) { (*scopes_.back())[name] = std::move(v); }

  Status AssignTargets(const std::vector<std::string>& targets, const Value& v, int line) {
    if (targets.size() == 1) {
      Assign(targets[0], v);
      return Status::OK();
    }
    Result<std::vector<Value>> items = Iterate(v);
    if (!items.ok()) return Fail(items.status(), line);
    if (items->size() != targets.size()) {
      return Fail(
          Status::InvalidArgument(StrCat(items->size() < targets.size() ? "not enough" : "too many",
                                         " values to unpack (expected ", targets.size(), ")")),
          line);
    }
    for (size_t i = 0; i < targets.size(); ++i) Assign(targets[i], (*items)[i]);
    return Status::OK();
  }

  Status RenderNodes(const NodeList& nodes, std::string* out) {
    for (const auto& n : nodes) {
      RETURN_IF_ERROR(RenderNode(*n, out));
      if (flow_ != Flow::kNormal) break;
    }
    return Status::OK();
  }

  Status RenderNode(const Node& n, std::string* out) {
    switch (n.kind) {
      case Node::Kind::kText:
        return Append(n.text, out, n.line);
      case Node::Kind::kOutput: {
        ASSIGN_OR_RETURN(Value v, Eval(*n.expr));
        return Append(v.Str(), out, n.line);
      }
      case Node::Kind::kIf:
        for (const auto& [cond, body] : n.branches) {
          bool take = cond == nullptr;
          if (!take) {
            ASSIGN_OR_RETURN(Value v, Eval(*cond));
            take = v.Truthy();
          }
          if (take) return RenderNodes(body, out);
        }
        return Status::OK();
      case Node::Kind::kFor:
        return RenderFor(n, out);
      case Node::Kind::kSet: {
        ASSIGN_OR_RETURN(Value v, Eval(*n.expr));
        if (!n.attr.empty()) {
          Value target = Lookup(n.targets[0]);
          if (!target.is_namespace()) {
            return Fail(Status::InvalidArgument("can only assign attributes on a namespace()"),
                        n.line);
          }
          target.mutable_namespace().Set(Value::String(n.attr), std::move(v));
          return Status::OK();
        }
        return AssignTargets(n.targets, v, n.line);
      }
      case Node::Kind::kSetBlock: {
        std::string captured;
        RETURN_IF_ERROR(RenderNodes(n.body, &captured));
        Value v = Value::String(std::move(captured));
        if (n.filter) {
          ASSIGN_OR_RETURN(v, EvalWithBlockInput(*n.filter, v));
        }
        Assign(n.targets[0], std::move(v));
        return Status::OK();
      }
      case Node::Kind::kMacro: {
        const Node* macro = &n;
        Assign(n.name, Value::Function(n.name, [this, macro](const CallArgs& args) {
                 return CallMacro(*macro, args);
               }));
        return Status::OK();
      }
      case Node::Kind::kFilterBlock: {
        std::string captured;
        RETURN_IF_ERROR(RenderNodes(n.body, &captured));
        ASSIGN_OR_RETURN(Value v,
                         EvalWithBlockInput(*n.filter, Value::String(std::move(captured))));
        return Append(v.Str(), out, n.line);
      }
      case Node::Kind::kWith: {
        std::vector<Value> values;
        for (const auto& [name, expr] : n.params) {
          ASSIGN_OR_RETURN(Value v, Eval(*expr));
          values.push_back(std::move(v));
        }
        scopes_.push_back(std::make_shared<Scope>());
        for (size_t i = 0; i < values.size(); ++i) Assign(n.params[i].first, values[i]);
        Status s = RenderNodes(n.body, out);
        scopes_.pop_back();
        return s;
      }
      case Node::Kind::kBreak:
        flow_ = Flow::kBreak;
        return Status::OK();
      case Node::Kind::kContinue:
        flow_ = Flow::kContinue;
        return Status::OK();
      case Node::Kind::kBody:
        return RenderNodes(n.body, out);
    }
    return Status::OK();
  }

  Status RenderFor(const Node& n, std::string* out) {
    ASSIGN_OR_RETURN(Value iterable, Eval(*n.expr));
    Result<std::vector<Value>> all = Iterate(iterable);
    if (!all.ok()) return Fail(all.status(), n.line);
    std::vector<Value> items;
    if (n.filter) {
      for (Value& item : *all) {
        RETURN_IF_ERROR(Step(n.line));
        scopes_.push_back(std::make_shared<Scope>());
        Status s = AssignTargets(n.targets, item, n.line);
        Result<Value> keep = s.ok() ? Eval(*n.filter) : Result<Value>(s);
        scopes_.pop_back();
        if (!keep.ok()) return keep.status();
        if (keep->Truthy()) items.push_back(std::move(item));
      }
    } else {
      items = std::move(*all);
    }
    const int64_t length = static_cast<int64_t>(items.size());
    for (int64_t i = 0; i < length; ++i) {
      RETURN_IF_ERROR(Step(n.line));
      const size_t k = static_cast<size_t>(i);
      ValueDict loop;
      auto set = [&](const char* name, Value v) {
        loop.items.emplace_back(Value::String(name), std::move(v));
      };
      set("index", Value::Int(i + 1));
      set("index0", Value::Int(i));
      set("revindex", Value::Int(length - i));
      set("revindex0", Value::Int(length - i - 1));
      set("first", Value::Bool(i == 0));
      set("last", Value::Bool(i == length - 1));
      set("length", Value::Int(length));
      set("depth", Value::Int(1));
      set("depth0", Value::Int(0));
      set("previtem", i > 0 ? items[k - 1] : Value::Undefined("there is no previous item"));
      set("nextitem", i + 1 < length ? items[k + 1] : Value::Undefined("there is no next item"));
      set("cycle", Value::Function("cycle", [i](const CallArgs& a) -> Result<Value> {
            if (a.positional.empty()) return Status::InvalidArgument("no items for cycling given");
            return a.positional[static_cast<size_t>(i) % a.positional.size()];
          }));
      scopes_.push_back(std::make_shared<Scope>());
      Status s = AssignTargets(n.targets, items[k], n.line);
      if (s.ok()) {
        Assign("loop", Value::Dict(std::move(loop)));
        s = RenderNodes(n.body, out);
      }
      scopes_.pop_back();
      RETURN_IF_ERROR(s);
      const Flow flow = flow_;
      flow_ = Flow::kNormal;
      if (flow == Flow::kBreak) break;
    }
    if (length == 0) return RenderNodes(n.else_body, out);
    return Status::OK();
  }

  Result<Value> CallMacro(const Node& macro, const CallArgs& args) {
    if (call_depth_ >= limits_.max_call_depth) {
      return Fail(Status::InvalidArgument(StrCat("render limit: macro calls nested deeper than ",
                                                 limits_.max_call_depth)),
                  macro.line);
    }
    RETURN_IF_ERROR(Step(macro.line));
    if (args.positional.size() > macro.params.size()) {
      return Status::InvalidArgument(StrCat("macro '", macro.name, "' takes not more than ",
                                            macro.params.size(), " argument(s)"));
    }
    for (const auto& [key, value] : args.keyword) {
      bool known = false;
      for (const auto& param : macro.params) known = known || param.first == key;
      if (!known) {
        return Status::InvalidArgument(
            StrCat("macro '", macro.name, "' takes no keyword argument '", key, "'"));
      }
    }
    std::vector<std::shared_ptr<Scope>> saved = std::move(scopes_);
    scopes_ = {saved.front(), std::make_shared<Scope>()};
    Status s;
    for (size_t i = 0; i < macro.params.size() && s.ok(); ++i) {
      const auto& [name, default_value] = macro.params[i];
      const Value* given = args.Get(i, name);
      if (i < args.positional.size()) given = &args.positional[i];
      if (given != nullptr) {
        Assign(name, *given);
      } else if (default_value) {
        Result<Value> v = Eval(*default_value);
        if (v.ok()) {
          Assign(name, *v);
        } else {
          s = v.status();
        }
      } else {
        Assign(name, Value::Undefined(StrCat("parameter '", name, "' was not provided")));
      }
    }
    std::string out;
    if (s.ok()) {
      ++call_depth_;
      s = RenderNodes(macro.body, &out);
      --call_depth_;
    }
    flow_ = Flow::kNormal;
    scopes_ = std::move(saved);
    RETURN_IF_ERROR(s);
    return Value::String(std::move(out));
  }

  Result<Value> EvalWithBlockInput(const Expr& filter, Value input) {
    const Value* saved = block_input_;
    block_input_ = &input;
    Result<Value> v = Eval(filter);
    block_input_ = saved;
    return v;
  }

  Result<CallArgs> EvalArgs(const Expr& e) {
    CallArgs args;
    for (size_t i = 1; i < e.children.size(); ++i) {
      ASSIGN_OR_RETURN(Value v, Eval(*e.children[i]));
      args.positional.push_back(std::move(v));
    }
    for (const auto& [key, expr] : e.kwargs) {
      ASSIGN_OR_RETURN(Value v, Eval(*expr));
      args.keyword.emplace_back(key, std::move(v));
    }
    return args;
  }

  Result<Value> Eval(const Expr& e) {
    RETURN_IF_ERROR(Step(e.line));
    Result<Value> v = EvalInner(e);
    if (!v.ok()) return Fail(v.status(), e.line);
    RETURN_IF_ERROR(CheckValue(*v, e.line));
    return v;
  }

  Result<Value> EvalInner(const Expr& e) {
    switch (e.kind) {
      case Expr::Kind::kLiteral:
        return e.literal;
      case Expr::Kind::kName:
        return Lookup(e.name);
      case Expr::Kind::kList:
      case Expr::Kind::kTuple: {
        std::vector<Value> items;
        for (const ExprPtr& child : e.children) {
          ASSIGN_OR_RETURN(Value v, Eval(*child));
          items.push_back(std::move(v));
        }
        return Value::List(std::move(items), e.kind == Expr::Kind::kTuple);
      }
      case Expr::Kind::kDict: {
        ValueDict dict;
        for (size_t i = 0; i + 1 < e.children.size(); i += 2) {
          ASSIGN_OR_RETURN(Value key, Eval(*e.children[i]));
          ASSIGN_OR_RETURN(Value value, Eval(*e.children[i + 1]));
          if (key.is_undefined() || key.is_list() || key.is_dict()) {
            return Status::InvalidArgument(StrCat("unhashable dict key: ", Quoted(key)));
          }
          dict.Set(std::move(key), std::move(value));
        }
        return Value::Dict(std::move(dict));
      }
      case Expr::Kind::kUnary: {
        ASSIGN_OR_RETURN(Value v, Eval(*e.children[0]));
        if (e.name == "not") return Value::Bool(!v.Truthy());
        if (v.is_undefined()) return Status::InvalidArgument(v.undefined_hint());
        if (!v.is_number()) {
          return Status::InvalidArgument(
              StrCat("bad operand type for unary ", e.name, ": ", Quoted(v)));
        }
        if (e.name == "+") return v.is_float() ? v : Value::Int(v.as_int());
        if (v.is_float()) return Value::Float(-v.as_double());
        if (v.as_int() == INT64_MIN) return Status::InvalidArgument("integer overflow");
        return Value::Int(-v.as_int());
      }
      case Expr::Kind::kBinary: {
        ASSIGN_OR_RETURN(Value a, Eval(*e.children[0]));
        if (e.name == "and") return a.Truthy() ? Eval(*e.children[1]) : a;
        if (e.name == "or") return a.Truthy() ? a : Eval(*e.children[1]);
        ASSIGN_OR_RETURN(Value b, Eval(*e.children[1]));
        return BinaryOp(e.name, a, b, builtin_limits_);
      }
      case Expr::Kind::kCompare: {
        ASSIGN_OR_RETURN(Value left, Eval(*e.children[0]));
        for (size_t i = 0; i < e.ops.size(); ++i) {
          ASSIGN_OR_RETURN(Value right, Eval(*e.children[i + 1]));
          ASSIGN_OR_RETURN(Value r, BinaryOp(e.ops[i], left, right, builtin_limits_));
          if (!r.Truthy()) return Value::Bool(false);
          left = std::move(right);
        }
        return Value::Bool(true);
      }
      case Expr::Kind::kCondition: {
        ASSIGN_OR_RETURN(Value test, Eval(*e.children[1]));
        if (test.Truthy()) return Eval(*e.children[0]);
        if (e.children[2]) return Eval(*e.children[2]);
        return Value::Undefined(StrCat("the inline if-expression on line ", e.line,
                                       " evaluated to false and no else section was defined."));
      }
      case Expr::Kind::kGetAttr: {
        ASSIGN_OR_RETURN(Value obj, Eval(*e.children[0]));
        return GetAttr(obj, e.name, builtin_limits_);
      }
      case Expr::Kind::kGetItem: {
        ASSIGN_OR_RETURN(Value obj, Eval(*e.children[0]));
        ASSIGN_OR_RETURN(Value key, Eval(*e.children[1]));
        return GetItem(obj, key, builtin_limits_);
      }
      case Expr::Kind::kSlice: {
        ASSIGN_OR_RETURN(Value obj, Eval(*e.children[0]));
        Value parts[3];
        for (size_t i = 0; i < 3; ++i) {
          if (e.children[i + 1]) {
            ASSIGN_OR_RETURN(parts[i], Eval(*e.children[i + 1]));
          }
        }
        return Slice(obj, parts[0], parts[1], parts[2]);
      }
      case Expr::Kind::kCall: {
        ASSIGN_OR_RETURN(Value callee, Eval(*e.children[0]));
        ASSIGN_OR_RETURN(CallArgs args, EvalArgs(e));
        if (callee.is_undefined()) return Status::InvalidArgument(callee.undefined_hint());
        if (!callee.is_callable()) {
          return Status::InvalidArgument(StrCat(Quoted(callee), " is not callable"));
        }
        return callee.as_callable().function(args);
      }
      case Expr::Kind::kFilter: {
        Value input;
        if (e.children[0]) {
          ASSIGN_OR_RETURN(input, Eval(*e.children[0]));
        } else if (block_input_ != nullptr) {
          input = *block_input_;
        }
        ASSIGN_OR_RETURN(CallArgs args, EvalArgs(e));
        return ApplyFilter(e.name, input, args, builtin_limits_);
      }
      case Expr::Kind::kTest: {
        ASSIGN_OR_RETURN(Value input, Eval(*e.children[0]));
        ASSIGN_OR_RETURN(CallArgs args, EvalArgs(e));
        ASSIGN_OR_RETURN(bool pass, ApplyTest(e.name, input, args, builtin_limits_));
        return Value::Bool(pass != e.negated);
      }
    }
    return Value();
  }

  static std::string Quoted(const Value& v) { return "'" + v.TypeName() + "'"; }

  RenderLimits limits_;
  BuiltinLimits builtin_limits_;
  Scope globals_;
  std::vector<std::shared_ptr<Scope>> scopes_;
  Flow flow_ = Flow::kNormal;
  const Value* block_input_ = nullptr;
  int64_t steps_ = 0;
  int call_depth_ = 0;
  int error_line_ = 0;
};

}  // namespace

Result<std::unique_ptr<const Template>> Template::Compile(std::string_view source) {
  ASSIGN_OR_RETURN(NodeList nodes, ParseTemplate(source));
  RETURN_IF_ERROR(CheckNames(nodes));
  return std::unique_ptr<const Template>(new Template(std::move(nodes)));
}

Result<std::string> Template::Render(const ValueDict& variables, const RenderLimits& limits) const {
  Renderer renderer(limits, variables);
  return renderer.Run(nodes_);
}

}  // namespace relayout::jinja
