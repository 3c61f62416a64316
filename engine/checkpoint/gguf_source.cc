// GGUF byte layout (v2 and v3; all integers little-endian):
//
//   "GGUF"                      magic, 4 bytes
//   u32 version                 2 or 3 (v1 used 32-bit counts: not read)
//   u64 tensor_count
//   u64 kv_count
//   kv_count x {
//     string key                u64 length + bytes, no NUL
//     u32 value_type            GgufType
//     value                     fixed-size scalar | string |
//                               array: u32 element_type, u64 count, elements
//   }                           (an array's elements may be arrays)
//   tensor_count x {
//     string name
//     u32 n_dims                at most 4
//     u64 ne[n_dims]            innermost dimension first
//     u32 ggml_type             0 F32, 1 F16, 2 Q4_0, ... 30 BF16
//     u64 offset                relative to the data section
//   }
//   padding                     to a multiple of general.alignment (u32, default 32)
//   data section                each tensor at its offset, a multiple of the alignment
//
// The parser checks every count and length against the bytes left in the file
// before allocating for it, so a lying header costs at most its own size.
#include "engine/checkpoint/gguf_source.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <unordered_set>
#include <utility>

#include "engine/base/file_cursor.h"

namespace relayout {
namespace {

// Smallest encodings, for bounding counts by the bytes left: a key-value pair
// is a non-empty key, a type and at least a one-byte value; a tensor info has
// a non-empty name, n_dims, type and offset.
constexpr uint64_t kMinKvBytes = 8 + 1 + 4 + 1;
constexpr uint64_t kMinTensorInfoBytes = 8 + 1 + 4 + 4 + 8;
// GGUF's limit on key length.
constexpr uint64_t kMaxKeyBytes = 65535;

// Encoded size of a scalar value type; 0 for string, array and unknown types.
uint64_t ScalarBytes(GgufType t) {
  switch (t) {
    case GgufType::kUint8:
    case GgufType::kInt8:
    case GgufType::kBool:
      return 1;
    case GgufType::kUint16:
    case GgufType::kInt16:
      return 2;
    case GgufType::kUint32:
    case GgufType::kInt32:
    case GgufType::kFloat32:
      return 4;
    case GgufType::kUint64:
    case GgufType::kInt64:
    case GgufType::kFloat64:
      return 8;
    case GgufType::kString:
    case GgufType::kArray:
      return 0;
  }
  return 0;
}

bool IsKnownType(uint32_t t) { return t <= static_cast<uint32_t>(GgufType::kFloat64); }

// Smallest encoding of one value of type t (a string: its length; an array:
// its element type and count).
uint64_t MinValueBytes(GgufType t) {
  if (t == GgufType::kString) return 8;
  if (t == GgufType::kArray) return 4 + 8;
  return ScalarBytes(t);
}

uint64_t LoadLe(const uint8_t* p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v |= static_cast<uint64_t>(p[i]) << (8 * i);
  return v;
}

// "at least N bytes" for count * each, without wrapping around.
std::string AtLeastBytes(uint64_t count, uint64_t each) {
  if (each != 0 && count > UINT64_MAX / each) return "more than 2^64 bytes";
  return StrCat("at least ", count * each, " bytes");
}

std::string ArrayElementWords(GgufType t) {
  if (t == GgufType::kString) return "strings";
  if (t == GgufType::kArray) return "arrays";
  return StrCat(GgufTypeName(t), " values");
}

bool IsValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<uint8_t>(s[i]);
    size_t len;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      len = 2;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      len = 3;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > s.size()) return false;
    for (size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<uint8_t>(s[i + k]);
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    // Overlong forms, surrogates and values past U+10FFFF.
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) {
      return false;
    }
    i += len;
  }
  return true;
}

std::string Printable(std::string_view bytes) {
  std::string out;
  for (char c : bytes) {
    const auto u = static_cast<uint8_t>(c);
    if (u >= 0x20 && u < 0x7f && c != '"' && c != '\\') {
      out += c;
    } else {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[u >> 4];
      out += kHex[u & 15];
    }
  }
  return out;
}

}  // namespace

// Reads one file's header into a GgufSource. Errors name the file, then
// context_ (the entry being read), then the reason.
class GgufParser {
 public:
  GgufParser(const RandomAccessFile* file, GgufSource* out)
      : cur_(file), path_(file->path()), out_(out) {}

  Status Parse() {
    RETURN_IF_ERROR(ParsePreamble());
    for (uint64_t i = 0; i < kv_count_; ++i) RETURN_IF_ERROR(ParseKeyValue(i));
    RETURN_IF_ERROR(ParseAlignment());
    context_ = "header";
    if (tensor_count_ > cur_.remaining() / kMinTensorInfoBytes) {
      return Corrupt(StrCat("tensor_count ", tensor_count_, " needs ",
                            AtLeastBytes(tensor_count_, kMinTensorInfoBytes), ", ",
                            cur_.remaining(), " left after the metadata"));
    }
    out_->tensors_.reserve(tensor_count_);
    for (uint64_t i = 0; i < tensor_count_; ++i) RETURN_IF_ERROR(ParseTensorInfo(i));
    return PlaceTensors();
  }

 private:
  Status Corrupt(std::string_view reason) const {
    return Status::DataLoss(
        path_, context_.empty() ? std::string(reason) : StrCat(context_, ": ", reason));
  }

  // Reads n bytes of the field named what + what2: DataLoss naming it when
  // the file ends first; the file's error, with context_, on an I/O error.
  // (The name is built only on error: this runs for every value of a
  // vocabulary.)
  Status ReadRaw(void* dst, uint64_t n, std::string_view what, std::string_view what2 = {}) {
    if (n > cur_.remaining()) {
      return Corrupt(StrCat(what, what2, " needs ", n, " bytes at offset ", cur_.position(), ", ",
                            cur_.remaining(), " left"));
    }
    Status s = cur_.Read(dst, n);
    if (!s.ok()) return s.WithPrefix(context_);
    return Status::OK();
  }

  Result<uint64_t> ReadUint(size_t n, std::string_view what, std::string_view what2 = {}) {
    uint8_t buf[8];
    RETURN_IF_ERROR(ReadRaw(buf, n, what, what2));
    return LoadLe(buf, n);
  }

  // A GGUF string: u64 length, then that many bytes.
  Result<std::string> ReadString(std::string_view what, uint64_t max_len = UINT64_MAX) {
    ASSIGN_OR_RETURN(uint64_t len, ReadUint(8, what, " length"));
    if (len > max_len) return Corrupt(StrCat(what, " length ", len, " exceeds ", max_len));
    if (len > cur_.remaining()) {
      return Corrupt(StrCat(what, " of ", len, " bytes at offset ", cur_.position(),
                            " passes end of file, ", cur_.remaining(), " left"));
    }
    std::string s(static_cast<size_t>(len), '\0');
    RETURN_IF_ERROR(ReadRaw(s.data(), len, what));
    return s;
  }

  Status ParsePreamble() {
    context_ = "header";
    char magic[4];
    RETURN_IF_ERROR(ReadRaw(magic, 4, "magic"));
    if (std::memcmp(magic, "GGUF", 4) != 0) {
      return Corrupt(
          StrCat("not a GGUF file: magic is \"", Printable({magic, 4}), "\", expected \"GGUF\""));
    }
    ASSIGN_OR_RETURN(uint64_t version, ReadUint(4, "version"));
    const auto swapped = __builtin_bswap32(static_cast<uint32_t>(version));
    if (version == 1) {
      return Status::Unimplemented(path_, "GGUF version 1 is not supported (only 2 and 3)");
    }
    if (version != 2 && version != 3) {
      if (swapped >= 1 && swapped <= 3) {
        return Status::Unimplemented(
            path_, StrCat("big-endian GGUF (version ", swapped, ") is not supported"));
      }
      return Status::Unimplemented(
          path_, StrCat("GGUF version ", version, " is not supported (only 2 and 3)"));
    }
    out_->version_ = static_cast<uint32_t>(version);
    ASSIGN_OR_RETURN(tensor_count_, ReadUint(8, "tensor_count"));
    ASSIGN_OR_RETURN(kv_count_, ReadUint(8, "kv_count"));
    if (kv_count_ > cur_.remaining() / kMinKvBytes) {
      return Corrupt(StrCat("kv_count ", kv_count_, " needs ", AtLeastBytes(kv_count_, kMinKvBytes),
                            ", ", cur_.remaining(), " left"));
    }
    if (tensor_count_ > cur_.remaining() / kMinTensorInfoBytes) {
      return Corrupt(StrCat("tensor_count ", tensor_count_, " needs ",
                            AtLeastBytes(tensor_count_, kMinTensorInfoBytes), ", ",
                            cur_.remaining(), " left"));
    }
    return Status::OK();
  }

  Status ParseKeyValue(uint64_t i) {
    context_ = StrCat("metadata entry ", i, " of ", kv_count_);
    ASSIGN_OR_RETURN(std::string key, ReadString("key", kMaxKeyBytes));
    if (key.empty()) return Corrupt("empty key");
    if (!IsValidUtf8(key)) return Corrupt(StrCat("key \"", Printable(key), "\" is not UTF-8"));
    context_ = StrCat("metadata key \"", key, "\"");
    if (out_->metadata_.Find(key) != nullptr) return Corrupt("duplicate key");
    ASSIGN_OR_RETURN(uint64_t type, ReadUint(4, "value type"));
    ASSIGN_OR_RETURN(GgufValue value, ParseValue(static_cast<uint32_t>(type), 0));
    return out_->metadata_.Add(std::move(key), std::move(value));
  }

  bool Fits(uint64_t n) const { return n <= GgufSource::kMaxMetadataValues - values_; }
  Status TooManyValues() const {
    return Status::ResourceExhausted(path_, StrCat(context_, ": metadata holds more than ",
                                                   GgufSource::kMaxMetadataValues, " values"));
  }

  Result<GgufValue> ParseValue(uint32_t raw_type, int depth) {
    if (!IsKnownType(raw_type)) return Corrupt(StrCat("unknown value type ", raw_type));
    const auto type = static_cast<GgufType>(raw_type);
    if (!Fits(1)) return TooManyValues();
    ++values_;
    const uint64_t bytes = ScalarBytes(type);
    switch (type) {
      case GgufType::kUint8:
      case GgufType::kUint16:
      case GgufType::kUint32:
      case GgufType::kUint64: {
        ASSIGN_OR_RETURN(uint64_t v, ReadUint(bytes, GgufTypeName(type), " value"));
        return GgufValue::Unsigned(type, v);
      }
      case GgufType::kInt8:
      case GgufType::kInt16:
      case GgufType::kInt32:
      case GgufType::kInt64: {
        ASSIGN_OR_RETURN(uint64_t v, ReadUint(bytes, GgufTypeName(type), " value"));
        const int shift = static_cast<int>(64 - 8 * bytes);  // sign-extend
        return GgufValue::Signed(type, static_cast<int64_t>(v << shift) >> shift);
      }
      case GgufType::kFloat32: {
        ASSIGN_OR_RETURN(uint64_t v, ReadUint(4, "FLOAT32 value"));
        const auto bits = static_cast<uint32_t>(v);
        float f;
        std::memcpy(&f, &bits, 4);
        return GgufValue::Float(type, f);
      }
      case GgufType::kFloat64: {
        ASSIGN_OR_RETURN(uint64_t bits, ReadUint(8, "FLOAT64 value"));
        double f;
        std::memcpy(&f, &bits, 8);
        return GgufValue::Float(type, f);
      }
      case GgufType::kBool: {
        ASSIGN_OR_RETURN(uint64_t v, ReadUint(1, "BOOL value"));
        if (v > 1) return Corrupt(StrCat("BOOL value ", v, " is neither 0 nor 1"));
        return GgufValue::Bool(v == 1);
      }
      case GgufType::kString: {
        ASSIGN_OR_RETURN(std::string s, ReadString("STRING value"));
        return GgufValue::String(std::move(s));
      }
      case GgufType::kArray:
        return ParseArray(depth);
    }
    return Corrupt(StrCat("unknown value type ", raw_type));
  }

  Result<GgufValue> ParseArray(int depth) {
    if (depth >= GgufSource::kMaxArrayNesting) {
      return Corrupt(StrCat("arrays nested deeper than ", GgufSource::kMaxArrayNesting, " levels"));
    }
    ASSIGN_OR_RETURN(uint64_t raw_elem, ReadUint(4, "array element type"));
    if (!IsKnownType(static_cast<uint32_t>(raw_elem))) {
      return Corrupt(StrCat("unknown array element type ", raw_elem));
    }
    const auto elem = static_cast<GgufType>(raw_elem);
    ASSIGN_OR_RETURN(uint64_t count, ReadUint(8, "array count"));
    const uint64_t min_bytes = MinValueBytes(elem);
    if (count > cur_.remaining() / min_bytes) {
      return Corrupt(StrCat("array of ", count, " ", ArrayElementWords(elem), " needs ",
                            AtLeastBytes(count, min_bytes), ", ", cur_.remaining(), " left"));
    }
    // Checked up front so a huge array fails before its vector is reserved.
    if (!Fits(count)) return TooManyValues();
    std::vector<GgufValue> elements;
    elements.reserve(static_cast<size_t>(count));
    for (uint64_t k = 0; k < count; ++k) {
      ASSIGN_OR_RETURN(GgufValue v, ParseValue(static_cast<uint32_t>(elem), depth + 1));
      elements.push_back(std::move(v));
    }
    return GgufValue::Array(elem, std::move(elements));
  }

  Status ParseAlignment() {
    const GgufValue* v = out_->metadata_.Find("general.alignment");
    if (v == nullptr) return Status::OK();
    context_ = "metadata key \"general.alignment\"";
    if (v->type() != GgufType::kUint32) {
      return Corrupt(StrCat("is ", GgufTypeName(v->type()), ", expected UINT32"));
    }
    const uint64_t a = *v->AsUint();
    if (a == 0 || (a & (a - 1)) != 0) {
      return Corrupt(StrCat("alignment ", a, " is not a nonzero power of two"));
    }
    out_->alignment_ = a;
    return Status::OK();
  }

  Status ParseTensorInfo(uint64_t i) {
    context_ = StrCat("tensor info ", i, " of ", tensor_count_);
    ASSIGN_OR_RETURN(std::string name, ReadString("name"));
    if (name.empty()) return Corrupt("empty tensor name");
    context_ = StrCat("tensor \"", Printable(name), "\"");
    if (!names_.insert(name).second) return Corrupt("duplicate tensor name");
    ASSIGN_OR_RETURN(uint64_t n_dims, ReadUint(4, "n_dims"));
    if (n_dims > GgufSource::kMaxDims) {
      return Corrupt(StrCat("n_dims ", n_dims, " exceeds ", GgufSource::kMaxDims));
    }
    std::vector<int64_t> shape(static_cast<size_t>(n_dims));
    for (uint64_t d = 0; d < n_dims; ++d) {
      ASSIGN_OR_RETURN(uint64_t ne, ReadUint(8, "dimension"));
      if (ne > static_cast<uint64_t>(INT64_MAX)) {
        return Corrupt(StrCat("dimension ", d, " is ", ne, ", above 2^63 - 1"));
      }
      shape[n_dims - 1 - d] = static_cast<int64_t>(ne);  // GGUF lists innermost first
    }
    ASSIGN_OR_RETURN(uint64_t type, ReadUint(4, "type"));
    ASSIGN_OR_RETURN(uint64_t offset, ReadUint(8, "offset"));
    const std::string_view type_name = GgmlTypeName(static_cast<uint32_t>(type));
    if (type_name.empty()) return Corrupt(StrCat("unknown tensor type ", type));
    const std::optional<DType> dtype = DTypeFromGgmlType(static_cast<uint32_t>(type));
    if (!dtype) {
      return Status::Unimplemented(
          path_, StrCat(context_, ": unsupported tensor type ", type, " (", type_name, ")"));
    }
    Result<uint64_t> size = ByteSizeOf(*dtype, shape);
    if (!size.ok()) {
      return Corrupt(StrCat(type_name, " ", ShapeToString(shape), ": ", size.status().message()));
    }
    if (offset % out_->alignment_ != 0) {
      return Corrupt(
          StrCat("offset ", offset, " is not a multiple of the alignment ", out_->alignment_));
    }
    TensorInfo info;
    info.name = std::move(name);
    info.dtype = *dtype;
    info.shape = std::move(shape);
    info.byte_size = *size;
    info.file_offset = offset;  // relative until the data section is placed
    out_->tensors_.push_back(std::move(info));
    return Status::OK();
  }

  // Fixes the data section after the tensor infos, then checks every tensor's
  // range against the file and its neighbours, and orders them by offset.
  Status PlaceTensors() {
    context_ = "header";
    const uint64_t end = cur_.position();
    const uint64_t a = out_->alignment_;
    const uint64_t rem = end % a;
    if (rem != 0 && a - rem > UINT64_MAX - end) return Corrupt("data offset overflows");
    out_->data_offset_ = rem == 0 ? end : end + (a - rem);
    std::vector<TensorInfo>& tensors = out_->tensors_;
    if (tensors.empty()) return Status::OK();
    const uint64_t size = cur_.size();
    if (out_->data_offset_ > size) {
      return Corrupt(StrCat("data section at offset ", out_->data_offset_,
                            " starts past end of file (", size, " bytes)"));
    }
    const uint64_t data_bytes = size - out_->data_offset_;
    for (TensorInfo& t : tensors) {
      if (t.file_offset > data_bytes || t.byte_size > data_bytes - t.file_offset) {
        return Status::DataLoss(
            path_,
            StrCat("tensor \"", Printable(t.name), "\": ", t.byte_size, " bytes at data offset ",
                   t.file_offset, " past end of file (", data_bytes, " bytes of data)"));
      }
      t.file_offset += out_->data_offset_;
    }
    std::stable_sort(tensors.begin(), tensors.end(), [](const TensorInfo& x, const TensorInfo& y) {
      return x.file_offset != y.file_offset ? x.file_offset < y.file_offset
                                            : x.byte_size < y.byte_size;
    });
    const TensorInfo* furthest = nullptr;  // the tensor ending last so far
    for (const TensorInfo& t : tensors) {
      if (furthest != nullptr && t.byte_size != 0 &&
          t.file_offset < furthest->file_offset + furthest->byte_size) {
        return Status::DataLoss(
            path_, StrCat("tensor \"", Printable(t.name), "\": bytes [", t.file_offset, ", ",
                          t.file_offset + t.byte_size, ") overlap tensor \"",
                          Printable(furthest->name), "\" [", furthest->file_offset, ", ",
                          furthest->file_offset + furthest->byte_size, ")"));
      }
      if (furthest == nullptr ||
          t.file_offset + t.byte_size > furthest->file_offset + furthest->byte_size) {
        furthest = &t;
      }
    }
    return Status::OK();
  }

  FileCursor cur_;
  const std::string& path_;
  GgufSource* out_;
  std::string context_;
  uint64_t tensor_count_ = 0;
  uint64_t kv_count_ = 0;
  uint64_t values_ = 0;
  std::unordered_set<std::string> names_;
};

Result<std::unique_ptr<GgufSource>> GgufSource::Open(Env* env, const std::string& path) {
  ASSIGN_OR_RETURN(std::unique_ptr<RandomAccessFile> file, env->OpenForRead(path));
  std::unique_ptr<GgufSource> source(new GgufSource());
  GgufParser parser(file.get(), source.get());
  RETURN_IF_ERROR(parser.Parse());
  source->paths_.push_back(path);
  source->file_ = std::move(file);
  return source;
}

Status GgufSource::ReadTensor(size_t index, std::span<std::byte> dst) const {
  if (index >= tensors_.size()) {
    return Status::OutOfRange(
        paths_[0], StrCat("tensor index ", index, " out of range (", tensors_.size(), " tensors)"));
  }
  const TensorInfo& t = tensors_[index];
  if (dst.size() != t.byte_size) {
    return Status::InvalidArgument(paths_[0], StrCat("tensor \"", t.name, "\" is ", t.byte_size,
                                                     " bytes, destination is ", dst.size()));
  }
  Status s = file_->ReadAt(t.file_offset, dst);
  if (!s.ok()) return s.WithPrefix(StrCat("reading tensor \"", t.name, "\""));
  return Status::OK();
}

Status GgufSource::ReadFileRange(uint32_t /*file_index*/, uint64_t offset, std::span<std::byte> dst,
                                 std::string_view subject) const {
  const Status s = file_->ReadAt(offset, dst);
  return s.ok() ? s : s.WithPrefix(subject);
}

}  // namespace relayout
