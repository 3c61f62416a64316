#include "engine/tokenizer/sentencepiece_model.h"

#include <cstring>
#include <utility>

namespace relayout {
namespace {

enum WireType : uint32_t { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };

// One field as read from a message: its number, wire type, and either the
// integer value (varint, fixed32, fixed64) or the payload bytes.
struct Field {
  uint32_t number = 0;
  uint32_t wire_type = 0;
  uint64_t value = 0;
  std::string_view payload;
  size_t payload_offset = 0;  // in the file, for nested error messages
};

// Walks the fields of one message. base is the message's offset in the file
// so that errors name absolute offsets.
class WireReader {
 public:
  WireReader(std::string_view message, size_t base, const std::string& name)
      : data_(message), base_(base), name_(name) {}

  bool done() const { return pos_ >= data_.size(); }

  // REQUIRES: !done().
  Result<Field> Next() {
    Field f;
    const size_t tag_offset = pos_;
    ASSIGN_OR_RETURN(uint64_t tag, ReadVarint());
    f.number = static_cast<uint32_t>(tag >> 3);
    f.wire_type = static_cast<uint32_t>(tag & 7);
    if (f.number == 0 || tag > UINT32_MAX) {
      return Error(tag_offset, StrCat("invalid field tag ", tag));
    }
    switch (f.wire_type) {
      case kVarint: {
        ASSIGN_OR_RETURN(f.value, ReadVarint());
        break;
      }
      case kFixed64:
      case kFixed32: {
        const size_t n = f.wire_type == kFixed32 ? 4 : 8;
        if (data_.size() - pos_ < n) return Error(pos_, "truncated fixed-width field");
        uint64_t v = 0;
        std::memcpy(&v, data_.data() + pos_, n);  // little-endian host
        f.value = v;
        pos_ += n;
        break;
      }
      case kLengthDelimited: {
        const size_t len_offset = pos_;
        ASSIGN_OR_RETURN(uint64_t len, ReadVarint());
        if (len > data_.size() - pos_) {
          return Error(len_offset, StrCat("length ", len, " passes the end of its message (",
                                          data_.size() - pos_, " bytes left)"));
        }
        f.payload = data_.substr(pos_, static_cast<size_t>(len));
        f.payload_offset = base_ + pos_;
        pos_ += static_cast<size_t>(len);
        break;
      }
      default:
        return Error(tag_offset,
                     StrCat("unsupported wire type ", f.wire_type, " of field ", f.number));
    }
    return f;
  }

  Status Error(size_t local_offset, std::string_view what) const {
    return Status::DataLoss(name_, StrCat(what, " at offset ", base_ + local_offset));
  }

 private:
  Result<uint64_t> ReadVarint() {
    const size_t start = pos_;
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= data_.size()) return Error(start, "truncated varint");
      const auto b = static_cast<unsigned char>(data_[pos_++]);
      v |= static_cast<uint64_t>(b & 0x7F) << shift;
      if ((b & 0x80) == 0) return v;
    }
    return Error(start, "varint longer than 10 bytes");
  }

  std::string_view data_;
  size_t base_;
  const std::string& name_;
  size_t pos_ = 0;
};

float FloatFromBits(uint64_t bits) {
  const auto b32 = static_cast<uint32_t>(bits);
  float f;
  std::memcpy(&f, &b32, sizeof(f));
  return f;
}

// int32 fields carry negative values sign-extended to 64 bits.
int32_t Int32FromVarint(uint64_t v) { return static_cast<int32_t>(static_cast<int64_t>(v)); }

Status ReadPiece(const Field& outer, const std::string& name, TokenizerSpec* spec) {
  WireReader r(outer.payload, outer.payload_offset, name);
  std::string piece;
  float score = 0;
  uint64_t type = static_cast<uint64_t>(TokenType::kNormal);
  while (!r.done()) {
    ASSIGN_OR_RETURN(Field f, r.Next());
    if (f.number == 1 && f.wire_type == kLengthDelimited) {
      piece.assign(f.payload);
    } else if (f.number == 2 && f.wire_type == kFixed32) {
      score = FloatFromBits(f.value);
    } else if (f.number == 3 && f.wire_type == kVarint) {
      type = f.value;
      if (type < 1 || type > 6) {
        return Status::DataLoss(name,
                                StrCat("piece ", spec->pieces.size(), " has token type ", type,
                                       " outside 1..6 at offset ", outer.payload_offset));
      }
    }
  }
  spec->pieces.push_back(std::move(piece));
  spec->scores.push_back(score);
  spec->types.push_back(static_cast<TokenType>(type));
  return Status::OK();
}

}  // namespace

Result<TokenizerSpec> ParseSentencePieceModel(std::string_view bytes, const std::string& name) {
  TokenizerSpec spec;
  spec.algorithm = TokenizerAlgorithm::kSentencePieceBpe;
  spec.source = name;
  uint64_t model_type = 1;  // proto default: UNIGRAM
  int32_t unk_id = 0, bos_id = 1, eos_id = 2;
  bool add_dummy_prefix = true;

  WireReader top(bytes, 0, name);
  while (!top.done()) {
    ASSIGN_OR_RETURN(Field f, top.Next());
    if (f.wire_type != kLengthDelimited) continue;
    if (f.number == 1) {
      RETURN_IF_ERROR(ReadPiece(f, name, &spec));
    } else if (f.number == 2) {
      WireReader r(f.payload, f.payload_offset, name);
      while (!r.done()) {
        ASSIGN_OR_RETURN(Field t, r.Next());
        if (t.wire_type != kVarint) continue;
        if (t.number == 3) model_type = t.value;
        if (t.number == 40) unk_id = Int32FromVarint(t.value);
        if (t.number == 41) bos_id = Int32FromVarint(t.value);
        if (t.number == 42) eos_id = Int32FromVarint(t.value);
      }
    } else if (f.number == 3) {
      WireReader r(f.payload, f.payload_offset, name);
      while (!r.done()) {
        ASSIGN_OR_RETURN(Field n, r.Next());
        if (n.number == 3 && n.wire_type == kVarint) add_dummy_prefix = n.value != 0;
      }
    }
  }
  if (spec.pieces.empty()) return Status::DataLoss(name, "no pieces in the model");
  if (model_type != 2) {
    return Status::Unimplemented(
        name, StrCat("model type ", model_type, " is not BPE (2); only BPE models are supported"));
  }
  const auto n = static_cast<int64_t>(spec.pieces.size());
  const std::pair<const char*, int32_t> ids[] = {
      {"unk_id", unk_id}, {"bos_id", bos_id}, {"eos_id", eos_id}};
  for (const auto& [field, id] : ids) {
    if (id < -1 || id >= n) {
      return Status::InvalidArgument(name, StrCat(field, " ", id, " out of range [0, ", n, ")"));
    }
  }
  spec.unk_id = unk_id;
  spec.bos_id = bos_id;
  if (eos_id >= 0) spec.eos_ids.push_back(eos_id);
  spec.add_bos = bos_id >= 0;
  spec.add_space_prefix = add_dummy_prefix;
  return spec;
}

}  // namespace relayout
