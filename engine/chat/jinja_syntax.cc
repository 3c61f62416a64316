#include "engine/chat/jinja_syntax.h"

#include <cerrno>
#include <cstdlib>
#include <string>

#include "engine/text/unicode.h"

namespace relayout::jinja {
namespace {

// ===========================================================================
// Lexer
// ===========================================================================

enum class Tok {
  kText,
  kVarBegin,
  kVarEnd,
  kBlockBegin,
  kBlockEnd,
  kName,
  kString,
  kInt,
  kFloat,
  kOp,
  kEof
};

struct Token {
  Tok type = Tok::kEof;
  int line = 1;
  std::string text;  // text, name, operator, or the string literal's value
  Value number;
};

Status SyntaxError(int line, std::string_view what) {
  return Status::InvalidArgument("chat template", StrCat("line ", line, ": ", what));
}

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

std::string_view RStrip(std::string_view s) {
  while (!s.empty() && IsSpace(s.back())) s.remove_suffix(1);
  return s;
}

bool IsNameStart(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

int CountLines(std::string_view s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

// A Python string literal's body (unicode-escape, as jinja2 decodes it).
std::string Unescape(std::string_view body) {
  std::string out;
  for (size_t i = 0; i < body.size(); ++i) {
    const char c = body[i];
    if (c != '\\' || i + 1 >= body.size()) {
      out += c;
      continue;
    }
    const char e = body[++i];
    auto hex = [&](size_t digits) -> bool {
      if (i + digits >= body.size()) return false;
      uint32_t cp = 0;
      for (size_t k = 1; k <= digits; ++k) {
        const char h = body[i + k];
        int d = -1;
        if (h >= '0' && h <= '9') d = h - '0';
        if (h >= 'a' && h <= 'f') d = h - 'a' + 10;
        if (h >= 'A' && h <= 'F') d = h - 'A' + 10;
        if (d < 0) return false;
        cp = cp * 16 + static_cast<uint32_t>(d);
      }
      AppendUtf8(static_cast<char32_t>(cp), &out);
      i += digits;
      return true;
    };
    switch (e) {
      case 'n':
        out += '\n';
        break;
      case 't':
        out += '\t';
        break;
      case 'r':
        out += '\r';
        break;
      case '\\':
        out += '\\';
        break;
      case '\'':
        out += '\'';
        break;
      case '"':
        out += '"';
        break;
      case 'a':
        out += '\a';
        break;
      case 'b':
        out += '\b';
        break;
      case 'f':
        out += '\f';
        break;
      case 'v':
        out += '\v';
        break;
      case '\n':
        break;  // line continuation
      case 'x':
        if (!hex(2)) out += "\\x";
        break;
      case 'u':
        if (!hex(4)) out += "\\u";
        break;
      case 'U':
        if (!hex(8)) out += "\\U";
        break;
      default:
        if (e >= '0' && e <= '7') {
          uint32_t cp = 0;
          size_t k = 0;
          while (k < 3 && i + k < body.size() && body[i + k] >= '0' && body[i + k] <= '7') {
            cp = cp * 8 + static_cast<uint32_t>(body[i + k] - '0');
            ++k;
          }
          i += k - 1;
          AppendUtf8(static_cast<char32_t>(cp), &out);
        } else {
          out += '\\';
          out += e;
        }
    }
  }
  return out;
}

class Lexer {
 public:
  explicit Lexer(std::string_view raw) {
    // Newlines normalised to \n; one trailing newline dropped.
    source_.reserve(raw.size());
    for (size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] == '\r') {
        source_ += '\n';
        if (i + 1 < raw.size() && raw[i + 1] == '\n') ++i;
      } else {
        source_ += raw[i];
      }
    }
    if (!source_.empty() && source_.back() == '\n') source_.pop_back();
  }

  Result<std::vector<Token>> Run() {
    size_t pos = 0;
    bool line_starting = true;
    const std::string_view s = source_;
    while (pos < s.size()) {
      size_t start = s.find('{', pos);
      while (start != std::string_view::npos && start + 1 < s.size() && s[start + 1] != '{' &&
             s[start + 1] != '%' && s[start + 1] != '#') {
        start = s.find('{', start + 1);
      }
      if (start == std::string_view::npos || start + 1 >= s.size()) {
        Emit(Tok::kText, std::string(s.substr(pos)));
        break;
      }
      const char kind = s[start + 1];
      const char sign = start + 2 < s.size() ? s[start + 2] : '\0';
      std::string_view text = s.substr(pos, start - pos);
      if (sign == '-') {
        text = RStrip(text);
      } else if (sign != '+' && kind != '{') {
        // lstrip_blocks: only white space between the line's start and the tag.
        const size_t nl = text.rfind('\n');
        const size_t l_pos = nl == std::string_view::npos ? 0 : nl + 1;
        if (l_pos > 0 || line_starting) {
          std::string_view tail = text.substr(l_pos);
          bool blank = !tail.empty();
          for (char c : tail) blank = blank && IsSpace(c);
          if (blank) text = text.substr(0, l_pos);
        }
      }
      if (!text.empty()) Emit(Tok::kText, std::string(text));
      line_ += CountLines(s.substr(pos, start - pos));
      pos = start + 2 + ((sign == '-' || sign == '+') ? 1 : 0);

      if (kind == '#') {
        const size_t end = s.find("#}", pos);
        if (end == std::string_view::npos) return SyntaxError(line_, "unclosed comment '{#'");
        line_ += CountLines(s.substr(pos, end - pos));
        const bool strip = end > pos && s[end - 1] == '-';
        const bool keep = end > pos && s[end - 1] == '+';
        pos = end + 2;
        line_starting = SkipAfterTag(strip, !keep, &pos);
        continue;
      }
      if (kind == '%') {
        Result<bool> raw = TryRaw(&pos, &line_starting);
        if (!raw.ok()) return raw.status();
        if (*raw) continue;
      }
      RETURN_IF_ERROR(
          LexTag(kind == '{' ? Tok::kVarBegin : Tok::kBlockBegin, &pos, &line_starting));
    }
    Emit(Tok::kEof, "");
    return std::move(tokens_);
  }

 private:
  void Emit(Tok type, std::string text) {
    Token t;
    t.type = type;
    t.line = line_;
    t.text = std::move(text);
    tokens_.push_back(std::move(t));
  }

  // After a tag: `-` strips all following white space; else trim_blocks
  // drops one newline (block and comment tags only). Whether the consumed
  // text ended a line (for lstrip_blocks at the next tag).
  bool SkipAfterTag(bool strip, bool trim, size_t* pos) {
    const std::string_view s = source_;
    bool ended_line = false;
    if (strip) {
      while (*pos < s.size() && IsSpace(s[*pos])) {
        ended_line = s[*pos] == '\n';
        line_ += s[*pos] == '\n';
        ++*pos;
      }
    } else if (trim && *pos < s.size() && s[*pos] == '\n') {
      ++*pos;
      ++line_;
      ended_line = true;
    }
    return ended_line;
  }

  // {% raw %}...{% endraw %}: the text between, verbatim.
  Result<bool> TryRaw(size_t* pos, bool* line_starting) {
    const std::string_view s = source_;
    size_t p = *pos;
    while (p < s.size() && IsSpace(s[p])) ++p;
    if (s.substr(p, 3) != "raw") return false;
    p += 3;
    while (p < s.size() && IsSpace(s[p])) ++p;
    const bool strip = p < s.size() && s[p] == '-';
    if (p < s.size() && (s[p] == '-' || s[p] == '+')) ++p;
    if (s.substr(p, 2) != "%}") return false;
    p += 2;
    line_ += CountLines(s.substr(*pos, p - *pos));
    SkipAfterTag(strip, true, &p);
    // The matching {% endraw %}.
    size_t search = p;
    while (true) {
      const size_t tag = s.find("{%", search);
      if (tag == std::string_view::npos) return SyntaxError(line_, "unclosed 'raw' block");
      size_t q = tag + 2;
      const bool strip_before = q < s.size() && s[q] == '-';
      if (q < s.size() && (s[q] == '-' || s[q] == '+')) ++q;
      while (q < s.size() && IsSpace(s[q])) ++q;
      if (s.substr(q, 6) != "endraw") {
        search = tag + 2;
        continue;
      }
      q += 6;
      while (q < s.size() && IsSpace(s[q])) ++q;
      const bool strip_after = q < s.size() && s[q] == '-';
      if (q < s.size() && (s[q] == '-' || s[q] == '+')) ++q;
      if (s.substr(q, 2) != "%}") {
        search = tag + 2;
        continue;
      }
      std::string_view text = s.substr(p, tag - p);
      if (strip_before) text = RStrip(text);
      if (!text.empty()) Emit(Tok::kText, std::string(text));
      line_ += CountLines(s.substr(p, q + 2 - p));
      *pos = q + 2;
      *line_starting = SkipAfterTag(strip_after, true, pos);
      return true;
    }
  }

  Status LexTag(Tok begin, size_t* pos, bool* line_starting) {
    const std::string_view s = source_;
    const bool is_var = begin == Tok::kVarBegin;
    const int begin_line = line_;
    Emit(begin, "");
    int balance = 0;
    size_t p = *pos;
    while (true) {
      while (p < s.size() && IsSpace(s[p])) {
        line_ += s[p] == '\n';
        ++p;
      }
      if (p >= s.size()) {
        return SyntaxError(begin_line, is_var ? "unclosed '{{'" : "unclosed '{%'");
      }
      const std::string_view end = is_var ? "}}" : "%}";
      if (balance == 0) {
        if ((s[p] == '-' || s[p] == '+') && s.substr(p + 1, 2) == end) {
          const bool strip = s[p] == '-';
          p += 3;
          Emit(is_var ? Tok::kVarEnd : Tok::kBlockEnd, "");
          *line_starting = SkipAfterTag(strip, false, &p);
          *pos = p;
          return Status::OK();
        }
        if (s.substr(p, 2) == end) {
          p += 2;
          Emit(is_var ? Tok::kVarEnd : Tok::kBlockEnd, "");
          *line_starting = SkipAfterTag(false, !is_var, &p);
          *pos = p;
          return Status::OK();
        }
      }
      const char c = s[p];
      if (IsNameStart(c)) {
        size_t q = p;
        while (q < s.size() && (IsNameStart(s[q]) || IsDigit(s[q]))) ++q;
        Emit(Tok::kName, std::string(s.substr(p, q - p)));
        p = q;
        continue;
      }
      if (IsDigit(c)) {
        size_t q = p;
        while (q < s.size() && (IsDigit(s[q]) || s[q] == '_')) ++q;
        bool is_float = false;
        if (q + 1 < s.size() && s[q] == '.' && IsDigit(s[q + 1])) {
          is_float = true;
          ++q;
          while (q < s.size() && (IsDigit(s[q]) || s[q] == '_')) ++q;
        }
        if (q < s.size() && (s[q] == 'e' || s[q] == 'E')) {
          size_t r = q + 1;
          if (r < s.size() && (s[r] == '+' || s[r] == '-')) ++r;
          if (r < s.size() && IsDigit(s[r])) {
            is_float = true;
            q = r;
            while (q < s.size() && (IsDigit(s[q]) || s[q] == '_')) ++q;
          }
        }
        std::string digits;
        for (char d : s.substr(p, q - p)) {
          if (d != '_') digits += d;
        }
        Token t;
        t.line = line_;
        t.text = digits;
        if (is_float) {
          t.type = Tok::kFloat;
          t.number = Value::Float(std::strtod(digits.c_str(), nullptr));
        } else {
          t.type = Tok::kInt;
          errno = 0;
          const long long v = std::strtoll(digits.c_str(), nullptr, 10);
          if (errno == ERANGE) return SyntaxError(line_, StrCat("integer ", digits, " too large"));
          t.number = Value::Int(v);
        }
        tokens_.push_back(std::move(t));
        p = q;
        continue;
      }
      if (c == '\'' || c == '"') {
        size_t q = p + 1;
        while (q < s.size() && s[q] != c) q += s[q] == '\\' ? 2 : 1;
        if (q >= s.size()) return SyntaxError(line_, "unterminated string literal");
        Token t;
        t.type = Tok::kString;
        t.line = line_;
        t.text = Unescape(s.substr(p + 1, q - p - 1));
        line_ += CountLines(s.substr(p, q - p));
        tokens_.push_back(std::move(t));
        p = q + 1;
        continue;
      }
      static constexpr std::string_view kOps[] = {"//", "**", "==", "!=", ">=", "<=", "+", "-", "/",
                                                  "*",  "%",  "~",  "[",  "]",  "(",  ")", "{", "}",
                                                  ">",  "<",  "=",  ".",  ":",  "|",  ",", ";"};
      bool matched = false;
      for (std::string_view op : kOps) {
        if (s.substr(p, op.size()) == op) {
          if (op == "(" || op == "[" || op == "{") ++balance;
          if (op == ")" || op == "]" || op == "}") --balance;
          Emit(Tok::kOp, std::string(op));
          p += op.size();
          matched = true;
          break;
        }
      }
      if (!matched)
        return SyntaxError(line_, StrCat("unexpected character '", std::string(1, c), "'"));
    }
  }

  std::string source_;
  std::vector<Token> tokens_;
  int line_ = 1;
};

// ===========================================================================
// Parser
// ===========================================================================

class Parser {
 public:
  Parser(std::vector<Token> tokens, const ParseLimits& limits)
      : tokens_(std::move(tokens)), limits_(limits) {}

  Result<NodeList> Run() {
    NodeList nodes;
    std::string end;
    RETURN_IF_ERROR(ParseBody({}, &nodes, &end));
    return nodes;
  }

 private:
  const Token& Peek(size_t ahead = 0) const {
    const size_t i = std::min(pos_ + ahead, tokens_.size() - 1);
    return tokens_[i];
  }
  const Token& Next() {
    const Token& t = tokens_[pos_];
    if (pos_ + 1 < tokens_.size()) ++pos_;
    return t;
  }
  bool IsOp(std::string_view op, size_t ahead = 0) const {
    return Peek(ahead).type == Tok::kOp && Peek(ahead).text == op;
  }
  bool IsName(std::string_view name, size_t ahead = 0) const {
    return Peek(ahead).type == Tok::kName && Peek(ahead).text == name;
  }
  static std::string Describe(const Token& t) {
    switch (t.type) {
      case Tok::kEof:
        return "end of template";
      case Tok::kVarEnd:
        return "'}}'";
      case Tok::kBlockEnd:
        return "'%}'";
      case Tok::kString:
        return "a string";
      case Tok::kText:
        return "text";
      default:
        return StrCat("'", t.text, "'");
    }
  }
  Status Unexpected(std::string_view wanted) const {
    return SyntaxError(Peek().line, StrCat("expected ", wanted, ", got ", Describe(Peek())));
  }
  Status ExpectOp(std::string_view op) {
    if (!IsOp(op)) return Unexpected(StrCat("'", op, "'"));
    Next();
    return Status::OK();
  }
  Status ExpectBlockEnd() {
    if (Peek().type != Tok::kBlockEnd) return Unexpected("'%}'");
    Next();
    return Status::OK();
  }
  Result<std::string> ExpectName() {
    if (Peek().type != Tok::kName) return Unexpected("a name");
    return Next().text;
  }

  // Nodes until a block tag whose name is one of `ends` (left after the
  // name, in *end); at top level (ends empty) until the end of input.
  Status ParseBody(const std::vector<std::string_view>& ends, NodeList* out, std::string* end) {
    if (++depth_ > limits_.max_depth) {
      return SyntaxError(Peek().line, "statements nested too deeply");
    }
    const int start_line = Peek().line;
    while (true) {
      const Token& t = Peek();
      if (t.type == Tok::kEof) {
        if (ends.empty()) break;
        return SyntaxError(start_line, StrCat("unclosed block: expected '", ends.back(), "'"));
      }
      if (t.type == Tok::kText) {
        auto node = std::make_unique<Node>();
        node->kind = Node::Kind::kText;
        node->line = t.line;
        node->text = t.text;
        out->push_back(std::move(node));
        Next();
        continue;
      }
      if (t.type == Tok::kVarBegin) {
        Next();
        auto node = std::make_unique<Node>();
        node->kind = Node::Kind::kOutput;
        node->line = t.line;
        ASSIGN_OR_RETURN(node->expr, ParseExpression(true));
        if (Peek().type != Tok::kVarEnd) return Unexpected("'}}'");
        Next();
        out->push_back(std::move(node));
        continue;
      }
      if (t.type != Tok::kBlockBegin) return Unexpected("text or a tag");
      Next();
      if (Peek().type != Tok::kName) return Unexpected("a statement name");
      const std::string name = Peek().text;
      for (std::string_view e : ends) {
        if (name == e) {
          Next();
          *end = name;
          --depth_;
          // An end tag closes here; elif and else go on in the caller.
          if (name.rfind("end", 0) == 0) return ExpectBlockEnd();
          return Status::OK();
        }
      }
      ASSIGN_OR_RETURN(std::unique_ptr<Node> node, ParseStatement());
      out->push_back(std::move(node));
    }
    --depth_;
    return Status::OK();
  }

  Result<std::unique_ptr<Node>> ParseStatement() {
    const Token& t = Next();
    const std::string name = t.text;
    auto node = std::make_unique<Node>();
    node->line = t.line;
    std::string end;
    if (name == "if") {
      node->kind = Node::Kind::kIf;
      ASSIGN_OR_RETURN(ExprPtr cond, ParseExpression(true));
      while (true) {
        RETURN_IF_ERROR(ExpectBlockEnd());
        NodeList body;
        RETURN_IF_ERROR(ParseBody({"elif", "else", "endif"}, &body, &end));
        node->branches.emplace_back(std::move(cond), std::move(body));
        if (end == "endif") break;
        if (end == "else") {
          RETURN_IF_ERROR(ExpectBlockEnd());
          NodeList else_body;
          RETURN_IF_ERROR(ParseBody({"endif"}, &else_body, &end));
          node->branches.emplace_back(nullptr, std::move(else_body));
          break;
        }
        ASSIGN_OR_RETURN(cond, ParseExpression(true));
      }
    } else if (name == "for") {
      node->kind = Node::Kind::kFor;
      RETURN_IF_ERROR(ParseTargets(&node->targets));
      if (!IsName("in")) return Unexpected("'in'");
      Next();
      ASSIGN_OR_RETURN(node->expr, ParseExpression(false));
      if (IsName("if")) {
        Next();
        ASSIGN_OR_RETURN(node->filter, ParseExpression(true));
      }
      if (IsName("recursive")) return SyntaxError(t.line, "unsupported 'recursive' for loop");
      RETURN_IF_ERROR(ExpectBlockEnd());
      ++loop_depth_;
      Status body = ParseBody({"else", "endfor"}, &node->body, &end);
      --loop_depth_;
      RETURN_IF_ERROR(body);
      if (end == "else") {
        RETURN_IF_ERROR(ExpectBlockEnd());
        RETURN_IF_ERROR(ParseBody({"endfor"}, &node->else_body, &end));
      }
    } else if (name == "set") {
      RETURN_IF_ERROR(ParseTargets(&node->targets));
      if (node->targets.size() == 1 && IsOp(".")) {
        Next();
        ASSIGN_OR_RETURN(node->attr, ExpectName());
      }
      if (IsOp("=")) {
        Next();
        node->kind = Node::Kind::kSet;
        ASSIGN_OR_RETURN(node->expr, ParseExpression(true));
        if (IsOp(",")) {
          auto tuple = std::make_unique<Expr>();
          tuple->kind = Expr::Kind::kTuple;
          tuple->line = t.line;
          tuple->children.push_back(std::move(node->expr));
          while (IsOp(",")) {
            Next();
            if (Peek().type == Tok::kBlockEnd) break;
            ASSIGN_OR_RETURN(ExprPtr item, ParseExpression(true));
            tuple->children.push_back(std::move(item));
          }
          node->expr = std::move(tuple);
        }
      } else {
        if (node->targets.size() != 1 || !node->attr.empty()) {
          return SyntaxError(t.line, "a block set takes one plain name");
        }
        node->kind = Node::Kind::kSetBlock;
        if (IsOp("|")) {
          ASSIGN_OR_RETURN(node->filter, ParseFilterChain(nullptr));
        }
      }
      if (node->kind == Node::Kind::kSet) {
        RETURN_IF_ERROR(ExpectBlockEnd());
      } else {
        RETURN_IF_ERROR(ExpectBlockEnd());
        RETURN_IF_ERROR(ParseBody({"endset"}, &node->body, &end));
      }
    } else if (name == "macro") {
      node->kind = Node::Kind::kMacro;
      ASSIGN_OR_RETURN(node->name, ExpectName());
      RETURN_IF_ERROR(ExpectOp("("));
      while (!IsOp(")")) {
        ASSIGN_OR_RETURN(std::string param, ExpectName());
        ExprPtr default_value;
        if (IsOp("=")) {
          Next();
          ASSIGN_OR_RETURN(default_value, ParseExpression(true));
        }
        node->params.emplace_back(std::move(param), std::move(default_value));
        if (!IsOp(",")) break;
        Next();
      }
      RETURN_IF_ERROR(ExpectOp(")"));
      RETURN_IF_ERROR(ExpectBlockEnd());
      const int outer_loops = loop_depth_;
      loop_depth_ = 0;
      Status body = ParseBody({"endmacro"}, &node->body, &end);
      loop_depth_ = outer_loops;
      RETURN_IF_ERROR(body);
    } else if (name == "filter") {
      node->kind = Node::Kind::kFilterBlock;
      ASSIGN_OR_RETURN(node->filter, ParseFilterChain(nullptr, /*first_has_pipe=*/false));
      RETURN_IF_ERROR(ExpectBlockEnd());
      RETURN_IF_ERROR(ParseBody({"endfilter"}, &node->body, &end));
    } else if (name == "with") {
      node->kind = Node::Kind::kWith;
      while (Peek().type != Tok::kBlockEnd) {
        ASSIGN_OR_RETURN(std::string target, ExpectName());
        RETURN_IF_ERROR(ExpectOp("="));
        ASSIGN_OR_RETURN(ExprPtr value, ParseExpression(true));
        node->params.emplace_back(std::move(target), std::move(value));
        if (!IsOp(",")) break;
        Next();
      }
      RETURN_IF_ERROR(ExpectBlockEnd());
      RETURN_IF_ERROR(ParseBody({"endwith"}, &node->body, &end));
    } else if (name == "break" || name == "continue") {
      if (loop_depth_ == 0) return SyntaxError(t.line, "'" + name + "' outside a loop");
      node->kind = name == "break" ? Node::Kind::kBreak : Node::Kind::kContinue;
      RETURN_IF_ERROR(ExpectBlockEnd());
    } else if (name == "generation") {
      node->kind = Node::Kind::kBody;
      RETURN_IF_ERROR(ExpectBlockEnd());
      RETURN_IF_ERROR(ParseBody({"endgeneration"}, &node->body, &end));
    } else {
      return SyntaxError(t.line, StrCat("unsupported statement '", name, "'"));
    }
    return node;
  }

  // name, or name, name, ... (parenthesised or not).
  Status ParseTargets(std::vector<std::string>* targets) {
    const bool paren = IsOp("(");
    if (paren) Next();
    while (true) {
      ASSIGN_OR_RETURN(std::string name, ExpectName());
      targets->push_back(std::move(name));
      if (!IsOp(",")) break;
      Next();
    }
    if (paren) RETURN_IF_ERROR(ExpectOp(")"));
    return Status::OK();
  }

  ExprPtr Make(Expr::Kind kind, int line) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = line;
    return e;
  }

  // with_condexpr: whether `a if b else c` is allowed at this level (not in
  // a for loop's iterable, where `if` starts the loop filter).
  Result<ExprPtr> ParseExpression(bool with_condexpr) {
    if (++depth_ > limits_.max_depth)
      return SyntaxError(Peek().line, "expression nested too deeply");
    ASSIGN_OR_RETURN(ExprPtr expr, ParseOr());
    while (with_condexpr && IsName("if")) {
      const int line = Next().line;
      auto cond = Make(Expr::Kind::kCondition, line);
      ASSIGN_OR_RETURN(ExprPtr test, ParseOr());
      ExprPtr otherwise;
      if (IsName("else")) {
        Next();
        ASSIGN_OR_RETURN(otherwise, ParseExpression(true));
      }
      cond->children.push_back(std::move(expr));
      cond->children.push_back(std::move(test));
      cond->children.push_back(std::move(otherwise));
      expr = std::move(cond);
    }
    --depth_;
    return expr;
  }

  Result<ExprPtr> Binary(std::string op, ExprPtr left, ExprPtr right, int line) {
    auto e = Make(Expr::Kind::kBinary, line);
    e->name = std::move(op);
    e->children.push_back(std::move(left));
    e->children.push_back(std::move(right));
    return e;
  }

  Result<ExprPtr> ParseOr() {
    ASSIGN_OR_RETURN(ExprPtr left, ParseAnd());
    while (IsName("or")) {
      const int line = Next().line;
      ASSIGN_OR_RETURN(ExprPtr right, ParseAnd());
      ASSIGN_OR_RETURN(left, Binary("or", std::move(left), std::move(right), line));
    }
    return left;
  }

  Result<ExprPtr> ParseAnd() {
    ASSIGN_OR_RETURN(ExprPtr left, ParseNot());
    while (IsName("and")) {
      const int line = Next().line;
      ASSIGN_OR_RETURN(ExprPtr right, ParseNot());
      ASSIGN_OR_RETURN(left, Binary("and", std::move(left), std::move(right), line));
    }
    return left;
  }

  Result<ExprPtr> ParseNot() {
    if (IsName("not")) {
      if (++depth_ > limits_.max_depth)
        return SyntaxError(Peek().line, "expression nested too deeply");
      const int line = Next().line;
      auto e = Make(Expr::Kind::kUnary, line);
      e->name = "not";
      ASSIGN_OR_RETURN(ExprPtr operand, ParseNot());
      e->children.push_back(std::move(operand));
      --depth_;
      return e;
    }
    return ParseCompare();
  }

  Result<ExprPtr> ParseCompare() {
    const int line = Peek().line;
    ASSIGN_OR_RETURN(ExprPtr first, ParseMath1());
    ExprPtr cmp;
    while (true) {
      std::string op;
      if (Peek().type == Tok::kOp &&
          (IsOp("==") || IsOp("!=") || IsOp("<") || IsOp(">") || IsOp("<=") || IsOp(">="))) {
        op = Next().text;
      } else if (IsName("in")) {
        Next();
        op = "in";
      } else if (IsName("not") && IsName("in", 1)) {
        Next();
        Next();
        op = "not in";
      } else {
        break;
      }
      ASSIGN_OR_RETURN(ExprPtr right, ParseMath1());
      if (!cmp) {
        cmp = Make(Expr::Kind::kCompare, line);
        cmp->children.push_back(std::move(first));
      }
      cmp->ops.push_back(op);
      cmp->children.push_back(std::move(right));
    }
    return cmp ? std::move(cmp) : std::move(first);
  }

  Result<ExprPtr> ParseMath1() {
    ASSIGN_OR_RETURN(ExprPtr left, ParseConcat());
    while (IsOp("+") || IsOp("-")) {
      const Token& t = Next();
      const std::string op = t.text;
      ASSIGN_OR_RETURN(ExprPtr right, ParseConcat());
      ASSIGN_OR_RETURN(left, Binary(op, std::move(left), std::move(right), t.line));
    }
    return left;
  }

  Result<ExprPtr> ParseConcat() {
    ASSIGN_OR_RETURN(ExprPtr left, ParseMath2());
    while (IsOp("~")) {
      const int line = Next().line;
      ASSIGN_OR_RETURN(ExprPtr right, ParseMath2());
      ASSIGN_OR_RETURN(left, Binary("~", std::move(left), std::move(right), line));
    }
    return left;
  }

  Result<ExprPtr> ParseMath2() {
    ASSIGN_OR_RETURN(ExprPtr left, ParsePow());
    while (IsOp("*") || IsOp("/") || IsOp("//") || IsOp("%")) {
      const Token& t = Next();
      const std::string op = t.text;
      ASSIGN_OR_RETURN(ExprPtr right, ParsePow());
      ASSIGN_OR_RETURN(left, Binary(op, std::move(left), std::move(right), t.line));
    }
    return left;
  }

  Result<ExprPtr> ParsePow() {
    ASSIGN_OR_RETURN(ExprPtr left, ParseUnary(true));
    while (IsOp("**")) {
      const int line = Next().line;
      ASSIGN_OR_RETURN(ExprPtr right, ParseUnary(true));
      ASSIGN_OR_RETURN(left, Binary("**", std::move(left), std::move(right), line));
    }
    return left;
  }

  Result<ExprPtr> ParseUnary(bool with_filter) {
    if (++depth_ > limits_.max_depth)
      return SyntaxError(Peek().line, "expression nested too deeply");
    ExprPtr node;
    if (IsOp("-") || IsOp("+")) {
      const Token& t = Next();
      node = Make(Expr::Kind::kUnary, t.line);
      node->name = t.text;
      ASSIGN_OR_RETURN(ExprPtr operand, ParseUnary(false));
      node->children.push_back(std::move(operand));
    } else {
      ASSIGN_OR_RETURN(node, ParsePrimary());
      ASSIGN_OR_RETURN(node, ParsePostfix(std::move(node)));
    }
    if (with_filter) {
      ASSIGN_OR_RETURN(node, ParseFilterExpr(std::move(node)));
    }
    --depth_;
    return node;
  }

  Result<ExprPtr> ParsePrimary() {
    const Token& t = Peek();
    switch (t.type) {
      case Tok::kName: {
        Next();
        auto e = Make(Expr::Kind::kLiteral, t.line);
        if (t.text == "true" || t.text == "True") {
          e->literal = Value::Bool(true);
        } else if (t.text == "false" || t.text == "False") {
          e->literal = Value::Bool(false);
        } else if (t.text == "none" || t.text == "None") {
          e->literal = Value::None();
        } else {
          e->kind = Expr::Kind::kName;
          e->name = t.text;
        }
        return e;
      }
      case Tok::kString: {
        auto e = Make(Expr::Kind::kLiteral, t.line);
        std::string text;
        while (Peek().type == Tok::kString) text += Next().text;  // adjacent literals join
        e->literal = Value::String(std::move(text));
        return e;
      }
      case Tok::kInt:
      case Tok::kFloat: {
        Next();
        auto e = Make(Expr::Kind::kLiteral, t.line);
        e->literal = t.number;
        return e;
      }
      case Tok::kOp:
        if (t.text == "(") {
          Next();
          auto tuple = Make(Expr::Kind::kTuple, t.line);
          bool is_tuple = false;
          while (!IsOp(")")) {
            ASSIGN_OR_RETURN(ExprPtr item, ParseExpression(true));
            tuple->children.push_back(std::move(item));
            if (!IsOp(",")) break;
            is_tuple = true;
            Next();
          }
          RETURN_IF_ERROR(ExpectOp(")"));
          if (!is_tuple && tuple->children.size() == 1) return std::move(tuple->children[0]);
          return tuple;
        }
        if (t.text == "[") {
          Next();
          auto list = Make(Expr::Kind::kList, t.line);
          while (!IsOp("]")) {
            ASSIGN_OR_RETURN(ExprPtr item, ParseExpression(true));
            list->children.push_back(std::move(item));
            if (!IsOp(",")) break;
            Next();
          }
          RETURN_IF_ERROR(ExpectOp("]"));
          return list;
        }
        if (t.text == "{") {
          Next();
          auto dict = Make(Expr::Kind::kDict, t.line);
          while (!IsOp("}")) {
            ASSIGN_OR_RETURN(ExprPtr key, ParseExpression(true));
            RETURN_IF_ERROR(ExpectOp(":"));
            ASSIGN_OR_RETURN(ExprPtr value, ParseExpression(true));
            dict->children.push_back(std::move(key));
            dict->children.push_back(std::move(value));
            if (!IsOp(",")) break;
            Next();
          }
          RETURN_IF_ERROR(ExpectOp("}"));
          return dict;
        }
        break;
      default:
        break;
    }
    return Unexpected("an expression");
  }

  Result<ExprPtr> ParsePostfix(ExprPtr node) {
    while (true) {
      if (IsOp(".")) {
        const int line = Next().line;
        auto e = Make(Expr::Kind::kGetAttr, line);
        if (Peek().type == Tok::kName) {
          e->name = Next().text;
        } else if (Peek().type == Tok::kInt) {
          // x.0 is x[0].
          e->kind = Expr::Kind::kGetItem;
          auto index = Make(Expr::Kind::kLiteral, line);
          index->literal = Next().number;
          e->children.push_back(std::move(node));
          e->children.push_back(std::move(index));
          node = std::move(e);
          continue;
        } else {
          return Unexpected("an attribute name");
        }
        e->children.push_back(std::move(node));
        node = std::move(e);
      } else if (IsOp("[")) {
        ASSIGN_OR_RETURN(node, ParseSubscript(std::move(node)));
      } else if (IsOp("(")) {
        ASSIGN_OR_RETURN(node, ParseCall(std::move(node)));
      } else {
        return node;
      }
    }
  }

  Result<ExprPtr> ParseSubscript(ExprPtr node) {
    const int line = Next().line;  // [
    ExprPtr parts[3];
    int colons = 0;
    while (true) {
      if (IsOp(":")) {
        Next();
        if (++colons > 2) return Unexpected("']'");
        continue;
      }
      if (IsOp("]")) break;
      if (parts[colons]) return Unexpected("':' or ']'");
      ASSIGN_OR_RETURN(parts[colons], ParseExpression(true));
    }
    Next();  // ]
    if (colons == 0) {
      if (!parts[0]) return SyntaxError(line, "empty subscript");
      auto e = Make(Expr::Kind::kGetItem, line);
      e->children.push_back(std::move(node));
      e->children.push_back(std::move(parts[0]));
      return e;
    }
    auto e = Make(Expr::Kind::kSlice, line);
    e->children.push_back(std::move(node));
    for (ExprPtr& part : parts) e->children.push_back(std::move(part));
    return e;
  }

  // ( args ) into e->children (after what is there) and e->kwargs.
  Status ParseArgs(Expr* e) {
    RETURN_IF_ERROR(ExpectOp("("));
    while (!IsOp(")")) {
      if (Peek().type == Tok::kName && IsOp("=", 1)) {
        std::string key = Next().text;
        Next();
        ASSIGN_OR_RETURN(ExprPtr value, ParseExpression(true));
        e->kwargs.emplace_back(std::move(key), std::move(value));
      } else {
        if (!e->kwargs.empty()) {
          return SyntaxError(Peek().line, "positional argument after a keyword argument");
        }
        ASSIGN_OR_RETURN(ExprPtr value, ParseExpression(true));
        e->children.push_back(std::move(value));
      }
      if (!IsOp(",")) break;
      Next();
    }
    return ExpectOp(")");
  }

  Result<ExprPtr> ParseCall(ExprPtr callee) {
    auto e = Make(Expr::Kind::kCall, Peek().line);
    e->children.push_back(std::move(callee));
    RETURN_IF_ERROR(ParseArgs(e.get()));
    return e;
  }

  Result<ExprPtr> ParseFilterExpr(ExprPtr node) {
    while (true) {
      if (IsOp("|")) {
        ASSIGN_OR_RETURN(node, ParseFilterChain(std::move(node), true, /*one=*/true));
      } else if (IsName("is")) {
        const int line = Next().line;
        auto e = Make(Expr::Kind::kTest, line);
        if (IsName("not")) {
          Next();
          e->negated = true;
        }
        ASSIGN_OR_RETURN(e->name, ExpectName());
        while (IsOp(".")) {  // dotted test names
          Next();
          ASSIGN_OR_RETURN(std::string part, ExpectName());
          e->name += "." + part;
        }
        e->children.push_back(std::move(node));
        if (IsOp("(")) {
          RETURN_IF_ERROR(ParseArgs(e.get()));
        } else if ((Peek().type == Tok::kName || Peek().type == Tok::kString ||
                    Peek().type == Tok::kInt || Peek().type == Tok::kFloat || IsOp("[") ||
                    IsOp("{")) &&
                   !IsName("else") && !IsName("or") && !IsName("and")) {
          // One argument without parentheses: `x is divisibleby 3`.
          ASSIGN_OR_RETURN(ExprPtr arg, ParsePrimary());
          ASSIGN_OR_RETURN(arg, ParsePostfix(std::move(arg)));
          e->children.push_back(std::move(arg));
        }
        node = std::move(e);
      } else if (IsOp("(")) {
        ASSIGN_OR_RETURN(node, ParseCall(std::move(node)));
      } else {
        return node;
      }
    }
  }

  // | name(args) | name ... applied to input (null: a filter block's body).
  Result<ExprPtr> ParseFilterChain(ExprPtr input, bool first_has_pipe = true, bool one = false) {
    bool first = true;
    while (true) {
      if (!first || first_has_pipe) {
        if (!IsOp("|")) break;
        Next();
      }
      first = false;
      auto e = Make(Expr::Kind::kFilter, Peek().line);
      ASSIGN_OR_RETURN(e->name, ExpectName());
      while (IsOp(".")) {
        Next();
        ASSIGN_OR_RETURN(std::string part, ExpectName());
        e->name += "." + part;
      }
      e->children.push_back(std::move(input));
      if (IsOp("(")) RETURN_IF_ERROR(ParseArgs(e.get()));
      input = std::move(e);
      if (one) break;
    }
    return input;
  }

  std::vector<Token> tokens_;
  size_t pos_ = 0;
  ParseLimits limits_;
  int depth_ = 0;
  int loop_depth_ = 0;  // for bodies around the statement being parsed
};

}  // namespace

Result<NodeList> ParseTemplate(std::string_view source, const ParseLimits& limits) {
  Lexer lexer(source);
  ASSIGN_OR_RETURN(std::vector<Token> tokens, lexer.Run());
  Parser parser(std::move(tokens), limits);
  return parser.Run();
}

}  // namespace relayout::jinja
