#include "engine/checkpoint/gguf_metadata.h"

#include <limits>

namespace relayout {
namespace {

bool IsUnsignedType(GgufType t) {
  return t == GgufType::kUint8 || t == GgufType::kUint16 || t == GgufType::kUint32 ||
         t == GgufType::kUint64;
}
bool IsSignedType(GgufType t) {
  return t == GgufType::kInt8 || t == GgufType::kInt16 || t == GgufType::kInt32 ||
         t == GgufType::kInt64;
}
bool IsFloatType(GgufType t) { return t == GgufType::kFloat32 || t == GgufType::kFloat64; }

std::string KeySubject(std::string_view key) { return StrCat("metadata key \"", key, "\""); }

// Messages read "metadata key \"K\" is ...", as the header documents.
Status Missing(std::string_view key) {
  return Status::NotFound(StrCat(KeySubject(key), " is missing"));
}

Status TypeMismatch(std::string_view key, GgufType actual, std::string_view expected) {
  return Status::InvalidArgument(
      StrCat(KeySubject(key), " is ", GgufTypeName(actual), ", expected ", expected));
}

void AppendValue(const GgufValue& v, size_t max_elements, std::string* out) {
  switch (v.type()) {
    case GgufType::kString:
      *out += '"';
      *out += *v.AsString();
      *out += '"';
      return;
    case GgufType::kBool:
      *out += *v.AsBool() ? "true" : "false";
      return;
    case GgufType::kFloat32:
    case GgufType::kFloat64:
      *out += StrCat(*v.AsFloat());
      return;
    case GgufType::kArray: {
      const std::vector<GgufValue>& elems = *v.AsArray();
      *out += StrCat(GgufTypeName(v.array_type()), "[", elems.size(), "] [");
      for (size_t i = 0; i < elems.size() && i < max_elements; ++i) {
        if (i) *out += ", ";
        AppendValue(elems[i], max_elements, out);
      }
      if (elems.size() > max_elements) *out += ", ...";
      *out += ']';
      return;
    }
    default:
      if (IsSignedType(v.type())) {
        *out += StrCat(*v.AsInt());
      } else if (IsUnsignedType(v.type())) {
        *out += StrCat(*v.AsUint());
      } else {
        *out += "?";
      }
      return;
  }
}

}  // namespace

std::string_view GgufTypeName(GgufType type) {
  switch (type) {
    case GgufType::kUint8:
      return "UINT8";
    case GgufType::kInt8:
      return "INT8";
    case GgufType::kUint16:
      return "UINT16";
    case GgufType::kInt16:
      return "INT16";
    case GgufType::kUint32:
      return "UINT32";
    case GgufType::kInt32:
      return "INT32";
    case GgufType::kFloat32:
      return "FLOAT32";
    case GgufType::kBool:
      return "BOOL";
    case GgufType::kString:
      return "STRING";
    case GgufType::kArray:
      return "ARRAY";
    case GgufType::kUint64:
      return "UINT64";
    case GgufType::kInt64:
      return "INT64";
    case GgufType::kFloat64:
      return "FLOAT64";
  }
  return "UNKNOWN";
}

GgufValue GgufValue::Unsigned(GgufType type, uint64_t v) {
  GgufValue out;
  out.type_ = type;
  out.u_ = v;
  return out;
}

GgufValue GgufValue::Signed(GgufType type, int64_t v) {
  GgufValue out;
  out.type_ = type;
  out.i_ = v;
  return out;
}

GgufValue GgufValue::Float(GgufType type, double v) {
  GgufValue out;
  out.type_ = type;
  out.f_ = v;
  return out;
}

GgufValue GgufValue::Bool(bool v) {
  GgufValue out;
  out.type_ = GgufType::kBool;
  out.b_ = v;
  return out;
}

GgufValue GgufValue::String(std::string v) {
  GgufValue out;
  out.type_ = GgufType::kString;
  out.s_ = std::move(v);
  return out;
}

GgufValue GgufValue::Array(GgufType element_type, std::vector<GgufValue> elements) {
  GgufValue out;
  out.type_ = GgufType::kArray;
  out.array_type_ = element_type;
  out.array_ = std::move(elements);
  return out;
}

std::optional<uint64_t> GgufValue::AsUint() const {
  if (IsUnsignedType(type_)) return u_;
  if (IsSignedType(type_) && i_ >= 0) return static_cast<uint64_t>(i_);
  return std::nullopt;
}

std::optional<int64_t> GgufValue::AsInt() const {
  if (IsSignedType(type_)) return i_;
  if (IsUnsignedType(type_) && u_ <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return static_cast<int64_t>(u_);
  }
  return std::nullopt;
}

std::optional<double> GgufValue::AsFloat() const {
  if (IsFloatType(type_)) return f_;
  if (IsUnsignedType(type_)) return static_cast<double>(u_);
  if (IsSignedType(type_)) return static_cast<double>(i_);
  return std::nullopt;
}

std::optional<bool> GgufValue::AsBool() const {
  if (type_ == GgufType::kBool) return b_;
  return std::nullopt;
}

const std::string* GgufValue::AsString() const {
  return type_ == GgufType::kString ? &s_ : nullptr;
}

const std::vector<GgufValue>* GgufValue::AsArray() const {
  return type_ == GgufType::kArray ? &array_ : nullptr;
}

std::string GgufValue::ToString(size_t max_array_elements) const {
  std::string out;
  AppendValue(*this, max_array_elements, &out);
  return out;
}

Status GgufMetadata::Add(std::string key, GgufValue value) {
  if (index_.count(key) != 0) {
    return Status::InvalidArgument(KeySubject(key), "duplicate key");
  }
  index_.emplace(key, entries_.size());
  entries_.emplace_back(std::move(key), std::move(value));
  return Status::OK();
}

const GgufValue* GgufMetadata::Find(std::string_view key) const {
  auto it = index_.find(key);
  return it == index_.end() ? nullptr : &entries_[it->second].second;
}

Result<uint64_t> GgufMetadata::GetUint(std::string_view key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return Missing(key);
  if (std::optional<uint64_t> u = v->AsUint()) return *u;
  if (IsSignedType(v->type())) {
    return Status::InvalidArgument(StrCat(KeySubject(key), " is ", GgufTypeName(v->type()), " ",
                                          *v->AsInt(), ", expected a non-negative integer"));
  }
  return TypeMismatch(key, v->type(), "an unsigned integer");
}

Result<double> GgufMetadata::GetFloat(std::string_view key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return Missing(key);
  if (std::optional<double> f = v->AsFloat()) return *f;
  return TypeMismatch(key, v->type(), "a number");
}

Result<bool> GgufMetadata::GetBool(std::string_view key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return Missing(key);
  if (std::optional<bool> b = v->AsBool()) return *b;
  return TypeMismatch(key, v->type(), "BOOL");
}

Result<std::string> GgufMetadata::GetString(std::string_view key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return Missing(key);
  if (const std::string* s = v->AsString()) return *s;
  return TypeMismatch(key, v->type(), "STRING");
}

}  // namespace relayout
