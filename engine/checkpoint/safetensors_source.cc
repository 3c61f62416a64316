// Reader of the safetensors checkpoint format.
//
// Byte layout of one file (all integers little-endian):
//
//   offset 0        u64 N: length of the header in bytes
//   offset 8        N bytes: UTF-8 JSON object, the header (may end in spaces)
//   offset 8 + N    the data section, up to the end of the file
//
// The header maps each tensor name to
//   {"dtype": "F32", "shape": [d0, d1, ...], "data_offsets": [begin, end]}
// with begin/end relative to the data section's start, so the tensor's bytes
// are [8 + N + begin, 8 + N + end) in the file, row-major, outermost
// dimension first. One optional key "__metadata__" maps strings to strings.
//
// A sharded checkpoint adds model.safetensors.index.json:
//   {"metadata": {...}, "weight_map": {"<tensor>": "<shard file>", ...}}
// with shard names relative to the index's directory.
//
// Everything in the header is untrusted: each size is checked against the
// file (and a 100 MiB cap for the header) before it is used to allocate or to
// read. docs/formats/safetensors.md lists the rules.
#include "engine/checkpoint/safetensors_source.h"

#include <algorithm>
#include <array>
#include <set>
#include <string_view>
#include <utility>

#include "engine/text/json.h"

namespace relayout {
namespace {

// Dtypes of the safetensors specification that DType has no value for. A file
// using them is valid but not supported here, so they get Unimplemented rather
// than DataLoss.
constexpr std::array<std::string_view, 7> kUnsupportedSafetensorsDTypes = {
    "F8_E4M3", "F8_E5M2", "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4", "C64"};

// The name in double quotes, with quotes, backslashes and non-printable bytes
// escaped so a hostile name cannot break the one-line error message.
std::string Quote(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  for (const char ch : s) {
    const unsigned char c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(ch);
    } else if (c < 0x20 || c == 0x7f) {
      out += "\\x";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    } else {
      out.push_back(ch);
    }
  }
  out.push_back('"');
  return out;
}

// For messages: integers by value, other values by their type.
std::string Describe(const JsonValue& v) {
  if (v.as_int64()) return std::to_string(*v.as_int64());
  if (v.as_uint64()) return std::to_string(*v.as_uint64());
  if (v.is_number()) return StrCat("the non-integer ", v.as_double());
  if (v.is_null()) return "null";
  const bool vowel = v.is_array() || v.is_object();
  return StrCat(vowel ? "an " : "a ", JsonValue::TypeName(v.type()));
}

struct ParsedFile {
  std::unique_ptr<RandomAccessFile> file;
  std::vector<TensorInfo> tensors;  // by offset
  std::map<std::string, std::string> metadata;
};

class HeaderParser {
 public:
  HeaderParser(const std::string& path, uint32_t file_index, uint64_t data_start,
               uint64_t data_size)
      : path_(path), file_index_(file_index), data_start_(data_start), data_size_(data_size) {}

  Status ParseMetadata(const JsonValue& value, std::map<std::string, std::string>* out) const {
    if (!value.is_object()) {
      return Status::DataLoss(path_, StrCat("\"__metadata__\" is ", Describe(value),
                                            ", expected an object of strings"));
    }
    for (const auto& [key, v] : value.as_object()) {
      if (!v.is_string()) {
        return Status::DataLoss(path_, StrCat("\"__metadata__\" key ", Quote(key), " is ",
                                              Describe(v), ", expected a string"));
      }
      (*out)[key] = v.as_string();
    }
    return Status::OK();
  }

  Result<TensorInfo> ParseTensor(const std::string& name, const JsonValue& entry) const {
    const std::string subject = StrCat(path_, ": tensor ", Quote(name));
    if (!entry.is_object()) {
      return Status::DataLoss(subject,
                              StrCat("entry is ", Describe(entry), ", expected an object"));
    }
    for (const auto& [key, v] : entry.as_object()) {
      if (key != "dtype" && key != "shape" && key != "data_offsets") {
        return Status::DataLoss(subject, StrCat("unknown key ", Quote(key)));
      }
    }
    for (const char* key : {"dtype", "shape", "data_offsets"}) {
      if (entry.Find(key) == nullptr) {
        return Status::DataLoss(subject, StrCat("missing key \"", key, "\""));
      }
    }

    TensorInfo info;
    info.name = name;
    info.file_index = file_index_;

    const JsonValue& dtype = *entry.Find("dtype");
    if (!dtype.is_string()) {
      return Status::DataLoss(subject, StrCat("dtype is ", Describe(dtype), ", expected a string"));
    }
    const std::optional<DType> parsed = DTypeFromName(dtype.as_string());
    if (!parsed || Traits(*parsed).is_quantized) {
      for (std::string_view known : kUnsupportedSafetensorsDTypes) {
        if (dtype.as_string() == known) {
          return Status::Unimplemented(subject,
                                       StrCat("dtype ", Quote(known), " is not supported"));
        }
      }
      return Status::DataLoss(subject, StrCat("unknown dtype ", Quote(dtype.as_string())));
    }
    info.dtype = *parsed;

    const JsonValue& shape = *entry.Find("shape");
    if (!shape.is_array()) {
      return Status::DataLoss(subject, StrCat("shape is ", Describe(shape), ", expected an array"));
    }
    for (size_t i = 0; i < shape.as_array().size(); ++i) {
      const JsonValue& dim = shape.as_array()[i];
      if (!dim.as_int64() || *dim.as_int64() < 0) {
        return Status::DataLoss(subject, StrCat("shape[", i, "] is ", Describe(dim),
                                                ", expected a non-negative integer"));
      }
      info.shape.push_back(*dim.as_int64());
    }
    Result<uint64_t> byte_size = ByteSizeOf(info.dtype, info.shape);
    if (!byte_size.ok()) return Status::DataLoss(subject, byte_size.status().message());
    info.byte_size = *byte_size;

    const JsonValue& offsets = *entry.Find("data_offsets");
    if (!offsets.is_array() || offsets.as_array().size() != 2 ||
        !offsets.as_array()[0].as_uint64() || !offsets.as_array()[1].as_uint64()) {
      return Status::DataLoss(subject,
                              "data_offsets must be an array of two non-negative integers");
    }
    const uint64_t begin = *offsets.as_array()[0].as_uint64();
    const uint64_t end = *offsets.as_array()[1].as_uint64();
    const std::string range = StrCat("data_offsets [", begin, ", ", end, "]");
    if (begin > end) return Status::DataLoss(subject, StrCat(range, " begin after end"));
    if (end - begin != info.byte_size) {
      return Status::DataLoss(
          subject, StrCat(range, " hold ", end - begin, " bytes, but ", DTypeName(info.dtype), " ",
                          ShapeToString(info.shape), " needs ", info.byte_size));
    }
    if (end > data_size_) {
      return Status::DataLoss(
          subject, StrCat(range, " past the end of the data section (", data_size_, " bytes)"));
    }
    info.file_offset = data_start_ + begin;  // no overflow: end <= data_size_
    return info;
  }

 private:
  const std::string& path_;
  uint32_t file_index_;
  uint64_t data_start_;
  uint64_t data_size_;
};

// Orders tensors by offset and rejects overlapping byte ranges. Empty tensors
// overlap nothing. Gaps (alignment padding) are allowed.
Status SortAndCheckOverlaps(const std::string& path, uint64_t data_start,
                            std::vector<TensorInfo>* tensors) {
  std::stable_sort(tensors->begin(), tensors->end(), [](const TensorInfo& a, const TensorInfo& b) {
    return a.file_offset != b.file_offset ? a.file_offset < b.file_offset
                                          : a.byte_size < b.byte_size;
  });
  const TensorInfo* prev = nullptr;
  for (const TensorInfo& t : *tensors) {
    if (t.byte_size == 0) continue;
    if (prev != nullptr && prev->file_offset + prev->byte_size > t.file_offset) {
      const uint64_t begin = t.file_offset - data_start;
      const uint64_t prev_begin = prev->file_offset - data_start;
      return Status::DataLoss(
          StrCat(path, ": tensor ", Quote(t.name)),
          StrCat("data_offsets [", begin, ", ", begin + t.byte_size, "] overlap tensor ",
                 Quote(prev->name), " at [", prev_begin, ", ", prev_begin + prev->byte_size, "]"));
    }
    prev = &t;
  }
  return Status::OK();
}

Result<ParsedFile> ParseFile(Env* env, const std::string& path, uint32_t file_index) {
  ParsedFile parsed;
  ASSIGN_OR_RETURN(parsed.file, env->OpenForRead(path));
  const uint64_t file_size = parsed.file->size();
  if (file_size < 8) {
    return Status::DataLoss(
        path, StrCat("file is ", file_size, " bytes, too short for the 8-byte header length"));
  }
  std::array<std::byte, 8> prefix{};
  RETURN_IF_ERROR(parsed.file->ReadAt(0, prefix));
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = header_len << 8 | std::to_integer<uint64_t>(prefix[i]);
  if (header_len > file_size - 8) {
    return Status::DataLoss(path, StrCat("header length ", header_len,
                                         " passes the end of the file (", file_size, " bytes)"));
  }
  if (header_len > SafetensorsSource::kMaxHeaderBytes) {
    return Status::DataLoss(path, StrCat("header length ", header_len, " is above the limit of ",
                                         SafetensorsSource::kMaxHeaderBytes));
  }
  std::string header(static_cast<size_t>(header_len), '\0');
  RETURN_IF_ERROR(parsed.file->ReadAt(8, std::as_writable_bytes(std::span(header))));

  JsonLimits limits;
  limits.max_bytes = SafetensorsSource::kMaxHeaderBytes;
  Result<JsonValue> json = ParseJson(header, limits);
  if (!json.ok()) {
    return Status::DataLoss(path, StrCat("header is not valid JSON: ", json.status().message()));
  }
  if (!json->is_object()) {
    return Status::DataLoss(path,
                            StrCat("header is ", Describe(*json), ", expected a JSON object"));
  }

  const uint64_t data_start = 8 + header_len;
  HeaderParser parser(path, file_index, data_start, file_size - data_start);
  for (const auto& [name, entry] : json->as_object()) {
    if (name == "__metadata__") {
      RETURN_IF_ERROR(parser.ParseMetadata(entry, &parsed.metadata));
      continue;
    }
    ASSIGN_OR_RETURN(TensorInfo info, parser.ParseTensor(name, entry));
    parsed.tensors.push_back(std::move(info));
  }
  RETURN_IF_ERROR(SortAndCheckOverlaps(path, data_start, &parsed.tensors));
  return parsed;
}

// Shard names come from an untrusted index: keep them inside its directory.
bool IsSafeShardName(const std::string& name) {
  if (name.empty() || name.front() == '/') return false;
  size_t start = 0;
  while (start <= name.size()) {
    size_t slash = name.find('/', start);
    if (slash == std::string::npos) slash = name.size();
    const std::string_view part(name.data() + start, slash - start);
    if (part.empty() || part == "." || part == "..") return false;
    start = slash + 1;
  }
  return true;
}

}  // namespace

Result<std::unique_ptr<SafetensorsSource>> SafetensorsSource::Open(Env* env,
                                                                   const std::string& path) {
  ASSIGN_OR_RETURN(ParsedFile parsed, ParseFile(env, path, 0));
  std::unique_ptr<SafetensorsSource> source(new SafetensorsSource());
  source->paths_.push_back(path);
  source->files_.push_back(std::move(parsed.file));
  source->tensors_ = std::move(parsed.tensors);
  source->metadata_ = std::move(parsed.metadata);
  return source;
}

Result<std::unique_ptr<SafetensorsSource>> SafetensorsSource::OpenSharded(
    Env* env, const std::string& index_json_path) {
  const std::string& index = index_json_path;
  ASSIGN_OR_RETURN(std::unique_ptr<RandomAccessFile> index_file, env->OpenForRead(index));
  if (index_file->size() > kMaxHeaderBytes) {
    return Status::DataLoss(index, StrCat("index is ", index_file->size(),
                                          " bytes, above the limit of ", kMaxHeaderBytes));
  }
  std::string text(static_cast<size_t>(index_file->size()), '\0');
  RETURN_IF_ERROR(index_file->ReadAt(0, std::as_writable_bytes(std::span(text))));
  Result<JsonValue> json = ParseJson(text);
  if (!json.ok()) {
    return Status::DataLoss(index, StrCat("index is not valid JSON: ", json.status().message()));
  }
  if (!json->is_object()) {
    return Status::DataLoss(index,
                            StrCat("index is ", Describe(*json), ", expected a JSON object"));
  }
  const JsonValue* index_metadata = json->Find("metadata");
  if (index_metadata != nullptr && !index_metadata->is_object()) {
    return Status::DataLoss(
        index, StrCat("\"metadata\" is ", Describe(*index_metadata), ", expected an object"));
  }
  const JsonValue* weight_map = json->Find("weight_map");
  if (weight_map == nullptr || !weight_map->is_object()) {
    return Status::DataLoss(index, "missing \"weight_map\" object");
  }
  if (weight_map->as_object().empty()) return Status::DataLoss(index, "\"weight_map\" is empty");

  // tensor -> shard name, and the shards sorted by name (the file order).
  std::map<std::string, std::string> shard_of;
  std::set<std::string> shard_set;
  for (const auto& [tensor, shard] : weight_map->as_object()) {
    if (!shard.is_string() || !IsSafeShardName(shard.as_string())) {
      return Status::DataLoss(index, StrCat("weight_map entry for tensor ", Quote(tensor),
                                            " must be a relative file name inside the index's "
                                            "directory"));
    }
    shard_of[tensor] = shard.as_string();
    shard_set.insert(shard.as_string());
  }

  // Parse every shard before cross-checking, so that a tensor in two shards
  // is reported as such whichever shard weight_map names.
  const std::string dir = DirName(index);
  std::vector<ParsedFile> shards;
  std::vector<std::string> shard_names;
  for (const std::string& shard : shard_set) {
    const auto file_index = static_cast<uint32_t>(shards.size());
    Result<ParsedFile> parsed = ParseFile(env, JoinPath(dir, shard), file_index);
    // A shard's content errors name the shard file already; an open error
    // also says which index named it.
    if (!parsed.ok() && (parsed.status().IsDataLoss() || parsed.status().IsUnimplemented())) {
      return parsed.status();
    }
    if (!parsed.ok()) return parsed.status().WithPrefix(StrCat(index, ": shard ", Quote(shard)));
    shards.push_back(std::move(parsed).value());
    shard_names.push_back(shard);
  }

  std::map<std::string, uint32_t> holder;  // tensor -> index of the shard that holds it
  for (uint32_t i = 0; i < shards.size(); ++i) {
    for (const TensorInfo& t : shards[i].tensors) {
      auto [it, inserted] = holder.emplace(t.name, i);
      if (!inserted) {
        return Status::DataLoss(
            index, StrCat("tensor ", Quote(t.name), " is in both shard ",
                          Quote(shard_names[it->second]), " and shard ", Quote(shard_names[i])));
      }
    }
  }
  for (const auto& [tensor, i] : holder) {
    auto listed = shard_of.find(tensor);
    if (listed == shard_of.end()) {
      return Status::DataLoss(index, StrCat("shard ", Quote(shard_names[i]), " holds tensor ",
                                            Quote(tensor), ", which weight_map does not list"));
    }
    if (listed->second != shard_names[i]) {
      return Status::DataLoss(
          index, StrCat("shard ", Quote(shard_names[i]), " holds tensor ", Quote(tensor),
                        ", which weight_map assigns to shard ", Quote(listed->second)));
    }
  }
  for (const auto& [tensor, shard] : shard_of) {
    if (holder.count(tensor) == 0) {
      return Status::DataLoss(
          index, StrCat("weight_map assigns tensor ", Quote(tensor), " to shard ", Quote(shard),
                        ", which does not hold it"));
    }
  }

  std::unique_ptr<SafetensorsSource> source(new SafetensorsSource());
  for (uint32_t i = 0; i < shards.size(); ++i) {
    for (const auto& [key, value] : shards[i].metadata) {
      auto [it, inserted] = source->metadata_.emplace(key, value);
      if (!inserted && it->second != value) {
        return Status::DataLoss(
            index, StrCat("shard ", Quote(shard_names[i]), " has \"__metadata__\" key ", Quote(key),
                          " = ", Quote(value), ", but an earlier shard has ", Quote(it->second)));
      }
    }
    source->paths_.push_back(JoinPath(dir, shard_names[i]));
    source->files_.push_back(std::move(shards[i].file));
    for (TensorInfo& t : shards[i].tensors) source->tensors_.push_back(std::move(t));
  }
  return source;
}

Status SafetensorsSource::ReadTensor(size_t index, std::span<std::byte> dst) const {
  if (index >= tensors_.size()) {
    return Status::InvalidArgument("ReadTensor", StrCat("tensor index ", index, " out of range (",
                                                        tensors_.size(), " tensors)"));
  }
  const TensorInfo& t = tensors_[index];
  const std::string& path = paths_[t.file_index];
  const std::string subject = StrCat(path, ": tensor ", Quote(t.name));
  if (dst.size() != t.byte_size) {
    return Status::InvalidArgument(
        subject, StrCat("destination is ", dst.size(), " bytes, the tensor is ", t.byte_size));
  }
  const Status s = files_[t.file_index]->ReadAt(t.file_offset, dst);
  if (s.ok()) return s;
  // The file's message already starts with the path; keep one "path: tensor: reason".
  std::string_view reason = s.message();
  const std::string own_prefix = path + ": ";
  if (reason.substr(0, own_prefix.size()) == own_prefix) reason.remove_prefix(own_prefix.size());
  return Status::FromCode(s.code(), subject, reason);
}

Status SafetensorsSource::ReadFileRange(uint32_t file_index, uint64_t offset,
                                        std::span<std::byte> dst, std::string_view subject) const {
  const Status s = files_[file_index]->ReadAt(offset, dst);
  return s.ok() ? s : s.WithPrefix(subject);
}

}  // namespace relayout
