#include "engine/tokenizer/gguf_tokenizer.h"

#include <algorithm>
#include <vector>

namespace relayout {
namespace {

constexpr std::string_view kPrefix = "tokenizer.ggml.";

std::string Key(std::string_view name) { return StrCat(kPrefix, name); }

Status WrongType(const std::string& source, const std::string& key, std::string_view expected) {
  return Status::InvalidArgument(source, StrCat("metadata key ", key, " is not ", expected));
}

// The array under key, or nullptr when absent. InvalidArgument when present
// but not an array.
Result<const std::vector<GgufValue>*> FindArray(const GgufMetadata& md, const std::string& source,
                                                const std::string& key) {
  const GgufValue* v = md.Find(key);
  if (v == nullptr) return static_cast<const std::vector<GgufValue>*>(nullptr);
  const std::vector<GgufValue>* array = v->AsArray();
  if (array == nullptr) return WrongType(source, key, "an array");
  return array;
}

Result<std::vector<std::string>> StringArray(const GgufMetadata& md, const std::string& source,
                                             const std::string& key) {
  ASSIGN_OR_RETURN(const std::vector<GgufValue>* array, FindArray(md, source, key));
  if (array == nullptr)
    return Status::NotFound(source, StrCat("metadata key ", key, " is missing"));
  std::vector<std::string> out;
  out.reserve(array->size());
  for (const GgufValue& e : *array) {
    const std::string* s = e.AsString();
    if (s == nullptr) return WrongType(source, key, "an array of strings");
    out.push_back(*s);
  }
  return out;
}

// An optional id: -1 when absent.
Result<int32_t> OptionalId(const GgufMetadata& md, const std::string& source, size_t n,
                           std::string_view name) {
  const std::string key = Key(name);
  const GgufValue* v = md.Find(key);
  if (v == nullptr) return -1;
  const std::optional<int64_t> id = v->AsInt();
  if (!id) return WrongType(source, key, "an integer");
  if (*id == -1) return -1;  // some converters write -1 for "none"
  if (*id < 0 || static_cast<uint64_t>(*id) >= n) {
    return Status::InvalidArgument(
        source, StrCat("metadata key ", key, " = ", *id, " is out of range [0, ", n, ")"));
  }
  return static_cast<int32_t>(*id);
}

Result<bool> OptionalBool(const GgufMetadata& md, const std::string& source, std::string_view name,
                          bool default_value) {
  const std::string key = Key(name);
  const GgufValue* v = md.Find(key);
  if (v == nullptr) return default_value;
  const std::optional<bool> b = v->AsBool();
  if (!b) return WrongType(source, key, "a bool");
  return *b;
}

}  // namespace

Result<TokenizerSpec> TokenizerSpecFromGguf(const GgufMetadata& md, const std::string& source) {
  TokenizerSpec spec;
  spec.source = source;
  Result<std::string> model = md.GetString(Key("model"));
  if (!model.ok()) return model.status().WithPrefix(source);
  const bool spm = *model == "llama";
  if (!spm && *model != "gpt2") {
    return Status::Unimplemented(source,
                                 StrCat("tokenizer model \"", *model, "\" is not supported"));
  }
  spec.algorithm = spm ? TokenizerAlgorithm::kSentencePieceBpe : TokenizerAlgorithm::kByteLevelBpe;
  ASSIGN_OR_RETURN(spec.pieces, StringArray(md, source, Key("tokens")));
  const size_t n = spec.pieces.size();

  ASSIGN_OR_RETURN(const std::vector<GgufValue>* scores, FindArray(md, source, Key("scores")));
  if (scores != nullptr) {
    if (scores->size() != n) {
      return Status::InvalidArgument(source, StrCat("metadata key ", Key("scores"), " has ",
                                                    scores->size(), " values for ", n, " tokens"));
    }
    spec.scores.reserve(n);
    for (const GgufValue& e : *scores) {
      const std::optional<double> f = e.AsFloat();
      if (!f) return WrongType(source, Key("scores"), "an array of floats");
      spec.scores.push_back(static_cast<float>(*f));
    }
  } else if (spm) {
    spec.scores.assign(n, 0.0f);
  }

  ASSIGN_OR_RETURN(const std::vector<GgufValue>* types, FindArray(md, source, Key("token_type")));
  if (types != nullptr) {
    if (types->size() != n) {
      return Status::InvalidArgument(source, StrCat("metadata key ", Key("token_type"), " has ",
                                                    types->size(), " values for ", n, " tokens"));
    }
    spec.types.reserve(n);
    for (const GgufValue& e : *types) {
      const std::optional<int64_t> t = e.AsInt();
      if (!t || *t < 1 || *t > 6) {
        return Status::InvalidArgument(
            source, StrCat("metadata key ", Key("token_type"),
                           " holds a value outside 1..6 at index ", spec.types.size()));
      }
      spec.types.push_back(static_cast<TokenType>(*t));
    }
  }

  if (!spm) {
    ASSIGN_OR_RETURN(std::vector<std::string> merges, StringArray(md, source, Key("merges")));
    spec.merges.reserve(merges.size());
    for (size_t i = 0; i < merges.size(); ++i) {
      // Pieces never start with a literal space in the byte alphabet, but a
      // merge's left part may be a lone space in other vocabularies: split
      // at the first space after the first byte, as llama.cpp does.
      const size_t space = merges[i].size() > 1 ? merges[i].find(' ', 1) : std::string::npos;
      if (space == std::string::npos) {
        return Status::InvalidArgument(
            source, StrCat("merge ", i, " \"", merges[i], "\" has no space between its parts"));
      }
      spec.merges.emplace_back(merges[i].substr(0, space), merges[i].substr(space + 1));
    }
    const GgufValue* pre = md.Find(Key("pre"));
    spec.pre = "default";
    if (pre != nullptr) {
      if (pre->AsString() == nullptr) return WrongType(source, Key("pre"), "a string");
      spec.pre = *pre->AsString();
    }
  }

  ASSIGN_OR_RETURN(spec.bos_id, OptionalId(md, source, n, "bos_token_id"));
  ASSIGN_OR_RETURN(spec.unk_id, OptionalId(md, source, n, "unknown_token_id"));
  for (std::string_view name : {"eos_token_id", "eot_token_id", "eom_token_id"}) {
    ASSIGN_OR_RETURN(int32_t id, OptionalId(md, source, n, name));
    if (id >= 0 && std::find(spec.eos_ids.begin(), spec.eos_ids.end(), id) == spec.eos_ids.end()) {
      spec.eos_ids.push_back(id);
    }
  }
  if (!spec.types.empty()) {
    for (size_t id = 0; id < n; ++id) {
      if (spec.types[id] != TokenType::kControl) continue;
      const std::string& p = spec.pieces[id];
      if (p == "<|im_end|>" || p == "<|endoftext|>" || p == "<|eot_id|>" || p == "<|eom_id|>" ||
          p == "<end_of_turn>" || p == "<|end|>") {
        const auto i = static_cast<int32_t>(id);
        if (std::find(spec.eos_ids.begin(), spec.eos_ids.end(), i) == spec.eos_ids.end()) {
          spec.eos_ids.push_back(i);
        }
      }
    }
  }
  if (spm && spec.unk_id < 0 && !spec.types.empty()) {
    for (size_t id = 0; id < n; ++id) {
      if (spec.types[id] == TokenType::kUnknown) {
        spec.unk_id = static_cast<int32_t>(id);
        break;
      }
    }
  }
  ASSIGN_OR_RETURN(spec.add_bos, OptionalBool(md, source, "add_bos_token", spm));
  ASSIGN_OR_RETURN(spec.add_space_prefix, OptionalBool(md, source, "add_space_prefix", spm));
  return spec;
}

Result<std::unique_ptr<Tokenizer>> CreateTokenizerFromGguf(const GgufMetadata& metadata,
                                                           const std::string& source) {
  ASSIGN_OR_RETURN(TokenizerSpec spec, TokenizerSpecFromGguf(metadata, source));
  return CreateTokenizer(std::move(spec));
}

}  // namespace relayout
