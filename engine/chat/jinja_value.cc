#include "engine/chat/jinja_value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "engine/text/unicode.h"

namespace relayout::jinja {

const Value* ValueDict::Find(const Value& key) const {
  for (const auto& [k, v] : items) {
    if (Equal(k, key)) return &v;
  }
  return nullptr;
}

const Value* ValueDict::Find(std::string_view key) const {
  for (const auto& [k, v] : items) {
    if (k.is_string() && k.as_string() == key) return &v;
  }
  return nullptr;
}

void ValueDict::Set(Value key, Value value) {
  for (auto& [k, v] : items) {
    if (Equal(k, key)) {
      v = std::move(value);
      return;
    }
  }
  items.emplace_back(std::move(key), std::move(value));
}

const Value* CallArgs::Get(size_t index, std::string_view name) const {
  for (const auto& [k, v] : keyword) {
    if (k == name) return &v;
  }
  return index < positional.size() ? &positional[index] : nullptr;
}

Value Value::List(std::vector<Value> items, bool is_tuple) {
  Value v(Kind::kList);
  v.is_tuple_ = is_tuple;
  for (const Value& item : items) v.Absorb(item);
  v.list_ = std::make_shared<const std::vector<Value>>(std::move(items));
  return v;
}

Value Value::Dict(ValueDict dict) {
  Value v(Kind::kDict);
  for (const auto& [key, value] : dict.items) {
    v.Absorb(key);
    v.Absorb(value);
  }
  v.dict_ = std::make_shared<ValueDict>(std::move(dict));
  return v;
}

Value Value::Namespace(ValueDict attributes) {
  Value v(Kind::kNamespace);
  v.dict_ = std::make_shared<ValueDict>(std::move(attributes));
  return v;
}

Value Value::Function(std::string name, NativeFunction function) {
  Value v(Kind::kCallable);
  v.callable_ = std::make_shared<const Callable>(Callable{std::move(name), std::move(function)});
  return v;
}

Value Value::FromJson(const JsonValue& json) {
  switch (json.type()) {
    case JsonValue::Type::kNull:
      return None();
    case JsonValue::Type::kBool:
      return Bool(json.as_bool());
    case JsonValue::Type::kNumber:
      if (json.as_int64()) return Int(*json.as_int64());
      return Float(json.as_double());
    case JsonValue::Type::kString:
      return String(json.as_string());
    case JsonValue::Type::kArray: {
      std::vector<Value> items;
      items.reserve(json.as_array().size());
      for (const JsonValue& item : json.as_array()) items.push_back(FromJson(item));
      return List(std::move(items));
    }
    case JsonValue::Type::kObject: {
      ValueDict dict;
      dict.items.reserve(json.as_object().size());
      for (const auto& [k, v] : json.as_object()) dict.items.emplace_back(String(k), FromJson(v));
      return Dict(std::move(dict));
    }
  }
  return None();
}

void Value::Absorb(const Value& item) {
  depth_ = std::max(depth_, item.depth_ + 1);
  weight_ = weight_ + item.weight_ < weight_ ? UINT64_MAX : weight_ + item.weight_;
}

bool Value::Truthy() const {
  switch (kind_) {
    case Kind::kUndefined:
    case Kind::kNone:
      return false;
    case Kind::kBool:
    case Kind::kInt:
      return int_ != 0;
    case Kind::kFloat:
      return float_ != 0;
    case Kind::kString:
      return !string_.empty();
    case Kind::kList:
      return !list_->empty();
    case Kind::kDict:
      return !dict_->items.empty();
    case Kind::kNamespace:
    case Kind::kCallable:
      return true;
  }
  return false;
}

std::string FloatRepr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d < 0 ? "-inf" : "inf";
  if (d == 0) return std::signbit(d) ? "-0.0" : "0.0";
  // Shortest round-trip digits, then Python's layout: positional for
  // exponents in [-4, 16), else d.ddde+XX.
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), d, std::chars_format::scientific);
  (void)ec;
  std::string_view sci(buf, static_cast<size_t>(end - buf));
  const bool negative = sci[0] == '-';
  if (negative) sci.remove_prefix(1);
  const size_t e_pos = sci.find('e');
  std::string digits;
  for (char c : sci.substr(0, e_pos)) {
    if (c != '.') digits += c;
  }
  const int exponent = std::stoi(std::string(sci.substr(e_pos + 1)));
  std::string out = negative ? "-" : "";
  if (exponent >= -4 && exponent < 16) {
    if (exponent < 0) {
      out += "0.";
      out.append(static_cast<size_t>(-exponent - 1), '0');
      out += digits;
    } else if (static_cast<size_t>(exponent) + 1 >= digits.size()) {
      out += digits;
      out.append(static_cast<size_t>(exponent) + 1 - digits.size(), '0');
      out += ".0";
    } else {
      out += digits.substr(0, static_cast<size_t>(exponent) + 1);
      out += '.';
      out += digits.substr(static_cast<size_t>(exponent) + 1);
    }
    return out;
  }
  out += digits[0];
  if (digits.size() > 1) {
    out += '.';
    out += digits.substr(1);
  }
  char exp[16];
  std::snprintf(exp, sizeof(exp), "e%c%02d", exponent < 0 ? '-' : '+', std::abs(exponent));
  out += exp;
  return out;
}

namespace {

// Python's repr of a str: single quotes unless the text has a single quote
// and no double quote.
std::string StringRepr(const std::string& s) {
  const char quote =
      s.find('\'') != std::string::npos && s.find('"') == std::string::npos ? '"' : '\'';
  std::string out(1, quote);
  for (unsigned char c : s) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c == quote) {
          out += '\\';
          out += static_cast<char>(c);
        } else if (c < 0x20 || c == 0x7f) {
          char hex[8];
          std::snprintf(hex, sizeof(hex), "\\x%02x", c);
          out += hex;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += quote;
  return out;
}

}  // namespace

std::string Value::Str() const {
  switch (kind_) {
    case Kind::kUndefined:
      return "";
    case Kind::kString:
      return string_;
    default:
      return Repr();
  }
}

std::string Value::Repr() const {
  switch (kind_) {
    case Kind::kUndefined:
      return "";
    case Kind::kNone:
      return "None";
    case Kind::kBool:
      return int_ ? "True" : "False";
    case Kind::kInt:
      return std::to_string(int_);
    case Kind::kFloat:
      return FloatRepr(float_);
    case Kind::kString:
      return StringRepr(string_);
    case Kind::kList: {
      std::string out = is_tuple_ ? "(" : "[";
      for (size_t i = 0; i < list_->size(); ++i) {
        if (i > 0) out += ", ";
        out += (*list_)[i].Repr();
      }
      if (is_tuple_ && list_->size() == 1) out += ',';
      out += is_tuple_ ? ")" : "]";
      return out;
    }
    case Kind::kDict: {
      std::string out = "{";
      for (size_t i = 0; i < dict_->items.size(); ++i) {
        if (i > 0) out += ", ";
        out += dict_->items[i].first.Repr();
        out += ": ";
        out += dict_->items[i].second.Repr();
      }
      return out + "}";
    }
    case Kind::kNamespace:
      return "<Namespace>";
    case Kind::kCallable:
      return "<function " + callable_->name + ">";
  }
  return "";
}

std::string Value::TypeName() const {
  switch (kind_) {
    case Kind::kUndefined:
      return "Undefined";
    case Kind::kNone:
      return "NoneType object";
    case Kind::kBool:
      return "bool object";
    case Kind::kInt:
      return "int object";
    case Kind::kFloat:
      return "float object";
    case Kind::kString:
      return "str object";
    case Kind::kList:
      return is_tuple_ ? "tuple object" : "list object";
    case Kind::kDict:
      return "dict object";
    case Kind::kNamespace:
      return "Namespace object";
    case Kind::kCallable:
      return "function object";
  }
  return "object";
}

bool Equal(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.as_double() == b.as_double();
    return a.as_int() == b.as_int();
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone:
      return true;
    case Value::Kind::kString:
      return a.as_string() == b.as_string();
    case Value::Kind::kList: {
      if (a.is_tuple() != b.is_tuple()) return false;
      const auto& x = a.as_list();
      const auto& y = b.as_list();
      if (x.size() != y.size()) return false;
      for (size_t i = 0; i < x.size(); ++i) {
        if (!Equal(x[i], y[i])) return false;
      }
      return true;
    }
    case Value::Kind::kDict: {
      const auto& x = a.as_dict().items;
      const auto& y = b.as_dict();
      if (x.size() != y.items.size()) return false;
      for (const auto& [k, v] : x) {
        const Value* other = y.Find(k);
        if (other == nullptr || !Equal(v, *other)) return false;
      }
      return true;
    }
    case Value::Kind::kNamespace:
      return &a.as_dict() == &b.as_dict();
    case Value::Kind::kCallable:
      return &a.as_callable() == &b.as_callable();
    default:
      return false;
  }
}

Result<int> Compare(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) {
      const double x = a.as_double(), y = b.as_double();
      return x < y ? -1 : (x > y ? 1 : 0);
    }
    return a.as_int() < b.as_int() ? -1 : (a.as_int() > b.as_int() ? 1 : 0);
  }
  if (a.is_string() && b.is_string()) {
    // UTF-8 byte order is code point order.
    const int c = a.as_string().compare(b.as_string());
    return c < 0 ? -1 : (c > 0 ? 1 : 0);
  }
  if (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple()) {
    const auto& x = a.as_list();
    const auto& y = b.as_list();
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (Equal(x[i], y[i])) continue;
      return Compare(x[i], y[i]);
    }
    return x.size() < y.size() ? -1 : (x.size() > y.size() ? 1 : 0);
  }
  if (a.is_undefined() || b.is_undefined()) {
    return Status::InvalidArgument(a.is_undefined() ? a.undefined_hint() : b.undefined_hint());
  }
  return Status::InvalidArgument(
      StrCat("comparison not supported between ", a.TypeName(), " and ", b.TypeName()));
}

std::vector<std::string_view> SplitCodePoints(std::string_view s) {
  std::vector<std::string_view> out;
  out.reserve(s.size());
  size_t pos = 0;
  while (pos < s.size()) {
    const Utf8Char c = DecodeUtf8(s, pos);
    const size_t n = c.code_point == kInvalidCodePoint ? 1 : c.length;
    out.push_back(s.substr(pos, n));
    pos += n;
  }
  return out;
}

namespace {

void AppendJsonChar(unsigned char c, std::string* out) {
  switch (c) {
    case '"':
      *out += "\\\"";
      return;
    case '\\':
      *out += "\\\\";
      return;
    case '\n':
      *out += "\\n";
      return;
    case '\r':
      *out += "\\r";
      return;
    case '\t':
      *out += "\\t";
      return;
    case '\b':
      *out += "\\b";
      return;
    case '\f':
      *out += "\\f";
      return;
    default:
      if (c < 0x20) {
        char hex[8];
        std::snprintf(hex, sizeof(hex), "\\u%04x", c);
        *out += hex;
      } else {
        *out += static_cast<char>(c);
      }
  }
}

void AppendJsonString(std::string_view s, bool ensure_ascii, std::string* out) {
  *out += '"';
  size_t pos = 0;
  while (pos < s.size()) {
    const unsigned char byte = static_cast<unsigned char>(s[pos]);
    if (!ensure_ascii || byte < 0x80) {
      AppendJsonChar(byte, out);
      ++pos;
      continue;
    }
    const Utf8Char c = DecodeUtf8(s, pos);
    uint32_t cp = 0xFFFD;
    size_t length = 1;
    if (c.code_point != kInvalidCodePoint) {
      cp = static_cast<uint32_t>(c.code_point);
      length = c.length;
    }
    char hex[16];
    if (cp >= 0x10000) {
      std::snprintf(hex, sizeof(hex), "\\u%04x\\u%04x", 0xD800 + ((cp - 0x10000) >> 10),
                    0xDC00 + ((cp - 0x10000) & 0x3FF));
    } else {
      std::snprintf(hex, sizeof(hex), "\\u%04x", cp);
    }
    *out += hex;
    pos += length;
  }
  *out += '"';
}

Status AppendJson(const Value& v, const JsonDumpOptions& o, int depth, std::string* out) {
  if (depth > 256) return Status::InvalidArgument("tojson: nesting too deep");
  const int indent = o.indent;
  auto newline = [&](int level) {
    if (indent < 0) return;
    *out += '\n';
    out->append(static_cast<size_t>(indent) * static_cast<size_t>(level), ' ');
  };
  const std::string item_separator = o.separators ? o.separators->first : (indent < 0 ? ", " : ",");
  const std::string key_separator = o.separators ? o.separators->second : ": ";
  switch (v.kind()) {
    case Value::Kind::kNone:
      *out += "null";
      return Status::OK();
    case Value::Kind::kBool:
      *out += v.as_bool() ? "true" : "false";
      return Status::OK();
    case Value::Kind::kInt:
      *out += std::to_string(v.as_int());
      return Status::OK();
    case Value::Kind::kFloat: {
      const double d = v.as_double();
      if (std::isnan(d)) {
        *out += "NaN";
      } else if (std::isinf(d)) {
        *out += d < 0 ? "-Infinity" : "Infinity";
      } else {
        *out += FloatRepr(d);
      }
      return Status::OK();
    }
    case Value::Kind::kString:
      AppendJsonString(v.as_string(), o.ensure_ascii, out);
      return Status::OK();
    case Value::Kind::kList: {
      const auto& items = v.as_list();
      if (items.empty()) {
        *out += "[]";
        return Status::OK();
      }
      *out += '[';
      for (size_t i = 0; i < items.size(); ++i) {
        if (i > 0) *out += item_separator;
        newline(depth + 1);
        RETURN_IF_ERROR(AppendJson(items[i], o, depth + 1, out));
      }
      newline(depth);
      *out += ']';
      return Status::OK();
    }
    case Value::Kind::kDict: {
      std::vector<const std::pair<Value, Value>*> items;
      for (const auto& item : v.as_dict().items) items.push_back(&item);
      if (items.empty()) {
        *out += "{}";
        return Status::OK();
      }
      if (o.sort_keys) {
        Status error;
        std::stable_sort(items.begin(), items.end(), [&](const auto* a, const auto* b) {
          Result<int> c = Compare(a->first, b->first);
          if (!c.ok()) {
            error = c.status();
            return false;
          }
          return *c < 0;
        });
        RETURN_IF_ERROR(error);
      }
      *out += '{';
      for (size_t i = 0; i < items.size(); ++i) {
        if (i > 0) *out += item_separator;
        newline(depth + 1);
        const Value& key = items[i]->first;
        if (key.is_string()) {
          AppendJsonString(key.as_string(), o.ensure_ascii, out);
        } else if (key.is_none()) {
          *out += "\"null\"";
        } else if (key.is_bool()) {
          *out += key.as_bool() ? "\"true\"" : "\"false\"";
        } else if (key.is_int() || key.is_float()) {
          *out += '"';
          RETURN_IF_ERROR(AppendJson(key, JsonDumpOptions(), depth + 1, out));
          *out += '"';
        } else {
          return Status::InvalidArgument(
              StrCat("tojson: keys must be str, int, float, bool or None, not ", key.TypeName()));
        }
        *out += key_separator;
        RETURN_IF_ERROR(AppendJson(items[i]->second, o, depth + 1, out));
      }
      newline(depth);
      *out += '}';
      return Status::OK();
    }
    case Value::Kind::kUndefined:
      return Status::InvalidArgument(StrCat("tojson: ", v.undefined_hint()));
    default:
      return Status::InvalidArgument(StrCat("tojson: ", v.TypeName(), " is not JSON serializable"));
  }
}

}  // namespace

Result<std::string> ToJson(const Value& value, const JsonDumpOptions& options) {
  std::string out;
  RETURN_IF_ERROR(AppendJson(value, options, 0, &out));
  return out;
}

}  // namespace relayout::jinja
