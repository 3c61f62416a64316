#include "engine/tokenizer/hf_tokenizer_json.h"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace relayout {
namespace {

constexpr std::string_view kSpaceSymbol = "\xE2\x96\x81";  // U+2581 "▁"
// tokenizer.json files are a few MB (Llama 3's is 9 MB).
constexpr uint64_t kMaxTokenizerJsonBytes = 256ull << 20;

// The parts of a spec that the sections below fill in turn.
struct Draft {
  TokenizerSpec spec;
  bool spm_normalizer = false;  // normalizer is SentencePiece's Prepend+Replace
  int32_t template_bos = -1;    // the post-processor's leading special token
  int32_t template_eos = -1;    // its trailing one
};

// Reads one tokenizer.json; each method handles one top-level section.
class HfJsonReader {
 public:
  explicit HfJsonReader(const std::string& source) : source_(source) {}

  Status Malformed(std::string_view key, std::string_view what) const {
    return Status::DataLoss(source_, StrCat(key, " ", what));
  }
  Status Unsupported(std::string_view key, std::string_view value) const {
    return Status::Unimplemented(source_, StrCat(key, " \"", value, "\" is not supported"));
  }

  // The member key of object, which must be of type want when present.
  // nullptr when absent or null.
  Result<const JsonValue*> Optional(const JsonValue& object, std::string_view path,
                                    std::string_view key, JsonValue::Type want) const {
    const JsonValue* v = object.Find(key);
    if (v == nullptr || v->is_null()) return static_cast<const JsonValue*>(nullptr);
    if (v->type() != want) {
      return Malformed(StrCat(path, path.empty() ? "" : ".", key),
                       StrCat("is not a JSON ", JsonValue::TypeName(want)));
    }
    return v;
  }
  Result<const JsonValue*> Required(const JsonValue& object, std::string_view path,
                                    std::string_view key, JsonValue::Type want) const {
    ASSIGN_OR_RETURN(const JsonValue* v, Optional(object, path, key, want));
    if (v == nullptr) {
      return Malformed(StrCat(path, path.empty() ? "" : ".", key), "is missing");
    }
    return v;
  }
  Result<bool> Bool(const JsonValue& object, std::string_view path, std::string_view key,
                    bool default_value) const {
    ASSIGN_OR_RETURN(const JsonValue* v, Optional(object, path, key, JsonValue::Type::kBool));
    return v == nullptr ? default_value : v->as_bool();
  }
  // The "type" member of a component object such as pre_tokenizer.
  Result<std::string> TypeOf(const JsonValue& object, std::string_view path) const {
    if (!object.is_object()) return Malformed(path, "is not a JSON object");
    ASSIGN_OR_RETURN(const JsonValue* type,
                     Required(object, path, "type", JsonValue::Type::kString));
    return type->as_string();
  }

  Status ReadModel(const JsonValue& root);
  Status ReadAddedTokens(const JsonValue& root, Draft* draft);
  Status ReadNormalizer(const JsonValue& root, Draft* draft);
  Status ReadPreTokenizer(const JsonValue& root, Draft* draft);
  Status ReadPostProcessor(const JsonValue& root, Draft* draft);
  Status ReadTemplate(const JsonValue& processor, const std::string& path, Draft* draft);
  Status ApplyModelSettings(Draft* draft);

 private:
  const std::string& source_;
  // What ReadModel found, applied once ReadAddedTokens has laid out the
  // vocabulary by id.
  std::vector<std::pair<int64_t, std::string>> vocab_;
  std::vector<std::pair<std::string, std::string>> merges_;
  bool byte_fallback_ = false;
  std::optional<std::string> unk_token_;
};

bool IsBytePiece(std::string_view p);

Status HfJsonReader::ReadModel(const JsonValue& root) {
  ASSIGN_OR_RETURN(const JsonValue* model, Required(root, "", "model", JsonValue::Type::kObject));
  ASSIGN_OR_RETURN(const JsonValue* type,
                   Optional(*model, "model", "type", JsonValue::Type::kString));
  // Older files have no "type": the merges required below tell BPE apart.
  if (type != nullptr && type->as_string() != "BPE") {
    return Unsupported("model.type", type->as_string());
  }
  if (const JsonValue* dropout = model->Find("dropout");
      dropout != nullptr && !dropout->is_null()) {
    return Status::Unimplemented(source_, "model.dropout is not supported");
  }
  for (std::string_view key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    ASSIGN_OR_RETURN(const JsonValue* v, Optional(*model, "model", key, JsonValue::Type::kString));
    if (v != nullptr && !v->as_string().empty()) {
      return Unsupported(StrCat("model.", key), v->as_string());
    }
  }
  ASSIGN_OR_RETURN(bool ignore_merges, Bool(*model, "model", "ignore_merges", false));
  if (ignore_merges)
    return Status::Unimplemented(source_, "model.ignore_merges true is not supported");
  ASSIGN_OR_RETURN(byte_fallback_, Bool(*model, "model", "byte_fallback", false));
  ASSIGN_OR_RETURN(const JsonValue* unk,
                   Optional(*model, "model", "unk_token", JsonValue::Type::kString));
  if (unk != nullptr) unk_token_ = unk->as_string();

  ASSIGN_OR_RETURN(const JsonValue* vocab,
                   Required(*model, "model", "vocab", JsonValue::Type::kObject));
  vocab_.reserve(vocab->as_object().size());
  for (const auto& [piece, id] : vocab->as_object()) {
    if (!id.as_int64()) {
      return Malformed(StrCat("model.vocab[\"", piece, "\"]"), "is not an integer id");
    }
    vocab_.emplace_back(*id.as_int64(), piece);
  }

  ASSIGN_OR_RETURN(const JsonValue* merges,
                   Required(*model, "model", "merges", JsonValue::Type::kArray));
  merges_.reserve(merges->as_array().size());
  for (size_t i = 0; i < merges->as_array().size(); ++i) {
    const JsonValue& m = merges->as_array()[i];
    if (m.is_string()) {
      // A left part may itself be a lone space in some vocabularies: split at
      // the first space after the first byte, as the GGUF loader does.
      const std::string& s = m.as_string();
      const size_t space = s.size() > 1 ? s.find(' ', 1) : std::string::npos;
      if (space != std::string::npos) {
        merges_.emplace_back(s.substr(0, space), s.substr(space + 1));
        continue;
      }
    } else if (m.is_array() && m.as_array().size() == 2 && m.as_array()[0].is_string() &&
               m.as_array()[1].is_string()) {
      merges_.emplace_back(m.as_array()[0].as_string(), m.as_array()[1].as_string());
      continue;
    }
    return Malformed(StrCat("model.merges[", i, "]"), "is not a \"left right\" string or a pair");
  }
  return Status::OK();
}

Status HfJsonReader::ReadAddedTokens(const JsonValue& root, Draft* draft) {
  ASSIGN_OR_RETURN(const JsonValue* added,
                   Optional(root, "", "added_tokens", JsonValue::Type::kArray));
  const size_t n_added = added == nullptr ? 0 : added->as_array().size();
  // Ids must cover 0..n-1 exactly, so n is bounded by the entries the file
  // actually holds: an id beyond that is rejected before anything is sized by it.
  const size_t bound = vocab_.size() + n_added;
  int64_t max_id = -1;
  for (const auto& [id, piece] : vocab_) {
    if (id < 0 || static_cast<uint64_t>(id) >= bound) {
      return Malformed(StrCat("model.vocab[\"", piece, "\"]"),
                       StrCat("= ", id, " is out of range [0, ", bound, ")"));
    }
    max_id = std::max(max_id, id);
  }
  struct Added {
    int64_t id;
    const std::string* content;
    bool special;
  };
  std::vector<Added> tokens;
  for (size_t i = 0; i < n_added; ++i) {
    const std::string path = StrCat("added_tokens[", i, "]");
    const JsonValue& t = added->as_array()[i];
    if (!t.is_object()) return Malformed(path, "is not a JSON object");
    ASSIGN_OR_RETURN(const JsonValue* id, Required(t, path, "id", JsonValue::Type::kNumber));
    if (!id->as_int64() || *id->as_int64() < 0 || static_cast<uint64_t>(*id->as_int64()) >= bound) {
      return Malformed(StrCat(path, ".id"), StrCat("is not an id in [0, ", bound, ")"));
    }
    ASSIGN_OR_RETURN(const JsonValue* content,
                     Required(t, path, "content", JsonValue::Type::kString));
    if (content->as_string().empty()) return Malformed(StrCat(path, ".content"), "is empty");
    ASSIGN_OR_RETURN(bool special, Bool(t, path, "special", false));
    // These make the match depend on the surrounding white space, which the
    // special-token splitter does not model.
    for (std::string_view key : {"lstrip", "rstrip", "single_word"}) {
      ASSIGN_OR_RETURN(bool on, Bool(t, path, key, false));
      if (on)
        return Status::Unimplemented(source_, StrCat(path, ".", key, " true is not supported"));
    }
    tokens.push_back({*id->as_int64(), &content->as_string(), special});
    max_id = std::max(max_id, *id->as_int64());
  }

  TokenizerSpec& spec = draft->spec;
  const auto n = static_cast<size_t>(max_id + 1);
  spec.pieces.assign(n, std::string());
  spec.types.assign(n, TokenType::kNormal);
  std::vector<bool> filled(n, false);
  for (auto& [id, piece] : vocab_) {
    const auto i = static_cast<size_t>(id);
    if (filled[i]) {
      return Malformed(StrCat("model.vocab[\"", piece, "\"]"),
                       StrCat("reuses id ", id, " of \"", spec.pieces[i], "\""));
    }
    filled[i] = true;
    spec.pieces[i] = std::move(piece);
  }
  for (const Added& t : tokens) {
    const auto i = static_cast<size_t>(t.id);
    if (filled[i] && spec.pieces[i] != *t.content) {
      return Malformed("added_tokens",
                       StrCat("give id ", t.id, " to \"", *t.content,
                              "\", which model.vocab gives to \"", spec.pieces[i], "\""));
    }
    filled[i] = true;
    spec.pieces[i] = *t.content;
    spec.types[i] = t.special ? TokenType::kControl : TokenType::kUserDefined;
  }
  const auto hole = std::find(filled.begin(), filled.end(), false);
  if (hole != filled.end()) {
    return Malformed("model.vocab", StrCat("has no token for id ", hole - filled.begin(),
                                           " (nor has added_tokens)"));
  }
  if (spec.pieces.empty()) return Malformed("model.vocab", "is empty");
  return Status::OK();
}

Status HfJsonReader::ReadNormalizer(const JsonValue& root, Draft* draft) {
  const JsonValue* normalizer = root.Find("normalizer");
  if (normalizer == nullptr || normalizer->is_null()) return Status::OK();
  ASSIGN_OR_RETURN(std::string type, TypeOf(*normalizer, "normalizer"));
  if (type != "Sequence") return Unsupported("normalizer.type", type);
  ASSIGN_OR_RETURN(const JsonValue* parts,
                   Required(*normalizer, "normalizer", "normalizers", JsonValue::Type::kArray));
  // The one sequence SentencePiece conversions write: the dummy prefix, then
  // spaces as "▁".
  bool prepend = false;
  bool replace = false;
  for (size_t i = 0; i < parts->as_array().size(); ++i) {
    const std::string path = StrCat("normalizer.normalizers[", i, "]");
    const JsonValue& part = parts->as_array()[i];
    ASSIGN_OR_RETURN(std::string part_type, TypeOf(part, path));
    if (part_type == "Prepend" && i == 0) {
      ASSIGN_OR_RETURN(const JsonValue* p,
                       Required(part, path, "prepend", JsonValue::Type::kString));
      if (p->as_string() != kSpaceSymbol)
        return Unsupported(StrCat(path, ".prepend"), p->as_string());
      prepend = true;
    } else if (part_type == "Replace") {
      ASSIGN_OR_RETURN(const JsonValue* pattern,
                       Required(part, path, "pattern", JsonValue::Type::kObject));
      ASSIGN_OR_RETURN(const JsonValue* from, Required(*pattern, StrCat(path, ".pattern"), "String",
                                                       JsonValue::Type::kString));
      ASSIGN_OR_RETURN(const JsonValue* to,
                       Required(part, path, "content", JsonValue::Type::kString));
      if (from->as_string() != " " || to->as_string() != kSpaceSymbol) {
        return Unsupported(StrCat(path, ".pattern"), from->as_string());
      }
      replace = true;
    } else {
      return Unsupported(StrCat(path, ".type"), part_type);
    }
  }
  if (!replace)
    return Status::Unimplemented(source_,
                                 "normalizer without Replace(\" \", \"▁\") is not supported");
  draft->spm_normalizer = true;
  draft->spec.add_space_prefix = prepend;
  return Status::OK();
}

Status HfJsonReader::ReadPreTokenizer(const JsonValue& root, Draft* draft) {
  TokenizerSpec& spec = draft->spec;
  const JsonValue* pre = root.Find("pre_tokenizer");
  if (pre == nullptr || pre->is_null()) {
    if (!draft->spm_normalizer)
      return Status::Unimplemented(source_, "pre_tokenizer null is not supported");
    spec.algorithm = TokenizerAlgorithm::kSentencePieceBpe;
    return Status::OK();
  }
  const auto byte_level = [&](const JsonValue& part, const std::string& path) -> Status {
    ASSIGN_OR_RETURN(bool prefix, Bool(part, path, "add_prefix_space", true));
    if (prefix)
      return Status::Unimplemented(source_,
                                   StrCat(path, ".add_prefix_space true is not supported"));
    ASSIGN_OR_RETURN(bool regex, Bool(part, path, "use_regex", true));
    if (!regex)
      return Status::Unimplemented(source_, StrCat(path, ".use_regex false is not supported"));
    return Status::OK();
  };
  ASSIGN_OR_RETURN(std::string type, TypeOf(*pre, "pre_tokenizer"));
  if (draft->spm_normalizer) return Unsupported("pre_tokenizer.type", type);
  spec.algorithm = TokenizerAlgorithm::kByteLevelBpe;
  if (type == "ByteLevel") {
    RETURN_IF_ERROR(byte_level(*pre, "pre_tokenizer"));
    spec.pre = "gpt2";
    return Status::OK();
  }
  if (type == "Sequence") {
    ASSIGN_OR_RETURN(const JsonValue* parts,
                     Required(*pre, "pre_tokenizer", "pretokenizers", JsonValue::Type::kArray));
    const std::vector<JsonValue>& list = parts->as_array();
    if (list.size() != 2) {
      return Status::Unimplemented(
          source_, StrCat("pre_tokenizer.pretokenizers of ", list.size(),
                          " parts is not supported (only [digits split, ByteLevel])"));
    }
    const std::string first = "pre_tokenizer.pretokenizers[0]";
    ASSIGN_OR_RETURN(std::string first_type, TypeOf(list[0], first));
    if (first_type == "Digits") {
      ASSIGN_OR_RETURN(bool individual, Bool(list[0], first, "individual_digits", false));
      if (!individual) {
        return Status::Unimplemented(source_,
                                     StrCat(first, ".individual_digits false is not supported"));
      }
    } else if (first_type == "Split") {
      ASSIGN_OR_RETURN(const JsonValue* pattern,
                       Required(list[0], first, "pattern", JsonValue::Type::kObject));
      const JsonValue* regex = pattern->Find("Regex");
      if (regex == nullptr || !regex->is_string() || regex->as_string() != "\\p{N}") {
        return Status::Unimplemented(
            source_, StrCat(first, ".pattern is not supported (only Regex \\p{N})"));
      }
      ASSIGN_OR_RETURN(const JsonValue* behavior,
                       Required(list[0], first, "behavior", JsonValue::Type::kString));
      if (behavior->as_string() != "Isolated") {
        return Unsupported(StrCat(first, ".behavior"), behavior->as_string());
      }
      ASSIGN_OR_RETURN(bool invert, Bool(list[0], first, "invert", false));
      if (invert)
        return Status::Unimplemented(source_, StrCat(first, ".invert true is not supported"));
    } else {
      return Unsupported(StrCat(first, ".type"), first_type);
    }
    const std::string second = "pre_tokenizer.pretokenizers[1]";
    ASSIGN_OR_RETURN(std::string second_type, TypeOf(list[1], second));
    if (second_type != "ByteLevel") return Unsupported(StrCat(second, ".type"), second_type);
    RETURN_IF_ERROR(byte_level(list[1], second));
    spec.pre = "smollm";
    return Status::OK();
  }
  if (type == "Metaspace") {
    spec.algorithm = TokenizerAlgorithm::kSentencePieceBpe;
    ASSIGN_OR_RETURN(const JsonValue* replacement,
                     Optional(*pre, "pre_tokenizer", "replacement", JsonValue::Type::kString));
    if (replacement != nullptr && replacement->as_string() != kSpaceSymbol) {
      return Unsupported("pre_tokenizer.replacement", replacement->as_string());
    }
    ASSIGN_OR_RETURN(const JsonValue* scheme,
                     Optional(*pre, "pre_tokenizer", "prepend_scheme", JsonValue::Type::kString));
    if (scheme != nullptr) {
      // "first" differs from "always" only in text after a special token
      // parsed with parse_special, which the SentencePiece encoder always
      // prefixes, as llama.cpp does.
      if (scheme->as_string() != "always" && scheme->as_string() != "first" &&
          scheme->as_string() != "never") {
        return Unsupported("pre_tokenizer.prepend_scheme", scheme->as_string());
      }
      spec.add_space_prefix = scheme->as_string() != "never";
    } else {
      // Files before prepend_scheme existed.
      ASSIGN_OR_RETURN(spec.add_space_prefix,
                       Bool(*pre, "pre_tokenizer", "add_prefix_space", true));
    }
    return Status::OK();
  }
  return Unsupported("pre_tokenizer.type", type);
}

Status HfJsonReader::ReadTemplate(const JsonValue& processor, const std::string& path,
                                  Draft* draft) {
  ASSIGN_OR_RETURN(const JsonValue* single,
                   Required(processor, path, "single", JsonValue::Type::kArray));
  // Special tokens by name as the template spells them; their ids come from
  // the processor's special_tokens table when present, else the vocabulary.
  const auto special_id = [&](const JsonValue& item, size_t i) -> Result<int32_t> {
    const std::string item_path = StrCat(path, ".single[", i, "].SpecialToken");
    const JsonValue* st = item.Find("SpecialToken");
    if (st == nullptr) return -1;
    if (!st->is_object()) return Malformed(item_path, "is not a JSON object");
    ASSIGN_OR_RETURN(const JsonValue* name,
                     Required(*st, item_path, "id", JsonValue::Type::kString));
    const JsonValue* table = processor.Find("special_tokens");
    const JsonValue* entry = table == nullptr ? nullptr : table->Find(name->as_string());
    const JsonValue* ids = entry == nullptr ? nullptr : entry->Find("ids");
    if (ids != nullptr && ids->is_array() && ids->as_array().size() == 1 &&
        ids->as_array()[0].as_int64()) {
      const int64_t id = *ids->as_array()[0].as_int64();
      if (id < 0 || static_cast<uint64_t>(id) >= draft->spec.pieces.size()) {
        return Malformed(
            StrCat(path, ".special_tokens[\"", name->as_string(), "\"].ids"),
            StrCat("holds id ", id, ", out of range [0, ", draft->spec.pieces.size(), ")"));
      }
      return static_cast<int32_t>(id);
    }
    const auto it =
        std::find(draft->spec.pieces.begin(), draft->spec.pieces.end(), name->as_string());
    if (it == draft->spec.pieces.end()) {
      return Malformed(StrCat(item_path, ".id"),
                       StrCat("\"", name->as_string(), "\" is not a token"));
    }
    return static_cast<int32_t>(it - draft->spec.pieces.begin());
  };
  const std::vector<JsonValue>& items = single->as_array();
  if (items.empty()) return Status::OK();
  ASSIGN_OR_RETURN(draft->template_bos, special_id(items.front(), 0));
  if (items.size() > 1) {
    ASSIGN_OR_RETURN(draft->template_eos, special_id(items.back(), items.size() - 1));
  }
  return Status::OK();
}

Status HfJsonReader::ReadPostProcessor(const JsonValue& root, Draft* draft) {
  const JsonValue* post = root.Find("post_processor");
  if (post == nullptr || post->is_null()) return Status::OK();
  ASSIGN_OR_RETURN(std::string type, TypeOf(*post, "post_processor"));
  if (type == "ByteLevel") return Status::OK();  // offsets only
  if (type == "TemplateProcessing") return ReadTemplate(*post, "post_processor", draft);
  if (type != "Sequence") return Unsupported("post_processor.type", type);
  ASSIGN_OR_RETURN(const JsonValue* parts,
                   Required(*post, "post_processor", "processors", JsonValue::Type::kArray));
  for (size_t i = 0; i < parts->as_array().size(); ++i) {
    const std::string path = StrCat("post_processor.processors[", i, "]");
    const JsonValue& part = parts->as_array()[i];
    ASSIGN_OR_RETURN(std::string part_type, TypeOf(part, path));
    if (part_type == "TemplateProcessing") {
      RETURN_IF_ERROR(ReadTemplate(part, path, draft));
    } else if (part_type != "ByteLevel") {
      return Unsupported(StrCat(path, ".type"), part_type);
    }
  }
  return Status::OK();
}

bool IsBytePiece(std::string_view p) {
  const auto hex = [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F') || (c >= 'a' && c <= 'f');
  };
  return p.size() == 6 && p.substr(0, 3) == "<0x" && hex(p[3]) && hex(p[4]) && p[5] == '>';
}

// The model's merges, unk token and byte fallback, once the vocabulary is laid
// out by id.
Status HfJsonReader::ApplyModelSettings(Draft* draft) {
  TokenizerSpec& spec = draft->spec;
  spec.merges = std::move(merges_);
  if (unk_token_) {
    const auto it = std::find(spec.pieces.begin(), spec.pieces.end(), *unk_token_);
    if (it == spec.pieces.end()) {
      return Malformed("model.unk_token", StrCat("\"", *unk_token_, "\" is not a token"));
    }
    spec.unk_id = static_cast<int32_t>(it - spec.pieces.begin());
    spec.types[static_cast<size_t>(spec.unk_id)] = TokenType::kUnknown;
  }
  if (byte_fallback_) {
    for (size_t i = 0; i < spec.pieces.size(); ++i) {
      if (spec.types[i] == TokenType::kNormal && IsBytePiece(spec.pieces[i])) {
        spec.types[i] = TokenType::kByte;
      }
    }
  }
  return Status::OK();
}

// A piece's score for the SentencePiece encoder: minus the rank of the first
// merge producing it. Pieces no merge produces (single characters, bytes)
// never take part in a merge's score, so they get the lowest one.
std::vector<float> ScoresFromMerges(const TokenizerSpec& spec) {
  const auto lowest = -static_cast<float>(spec.merges.size());
  std::vector<float> scores(spec.pieces.size(), lowest);
  std::unordered_map<std::string_view, size_t> id_of;
  id_of.reserve(spec.pieces.size());
  for (size_t i = 0; i < spec.pieces.size(); ++i) id_of.emplace(spec.pieces[i], i);
  std::vector<bool> scored(spec.pieces.size(), false);
  std::string joined;
  for (size_t rank = 0; rank < spec.merges.size(); ++rank) {
    joined = spec.merges[rank].first;
    joined += spec.merges[rank].second;
    const auto it = id_of.find(joined);
    if (it == id_of.end() || scored[it->second]) continue;
    scored[it->second] = true;
    scores[it->second] = -static_cast<float>(rank);
  }
  return scores;
}

// Special tokens that end a turn in the common chat templates.
bool IsEndMarker(std::string_view p) {
  return p == "</s>" || p == "<|endoftext|>" || p == "<|im_end|>" || p == "<|eot_id|>" ||
         p == "<|eom_id|>" || p == "<end_of_turn>" || p == "<|end|>" || p == "<eos>";
}

}  // namespace

Result<TokenizerSpec> TokenizerSpecFromHfJson(const JsonValue& json, const std::string& source) {
  if (!json.is_object()) return Status::DataLoss(source, "the document is not a JSON object");
  HfJsonReader reader(source);
  Draft draft;
  draft.spec.source = source;
  RETURN_IF_ERROR(reader.ReadModel(json));
  RETURN_IF_ERROR(reader.ReadAddedTokens(json, &draft));
  RETURN_IF_ERROR(reader.ReadNormalizer(json, &draft));
  RETURN_IF_ERROR(reader.ReadPreTokenizer(json, &draft));
  RETURN_IF_ERROR(reader.ReadPostProcessor(json, &draft));

  RETURN_IF_ERROR(reader.ApplyModelSettings(&draft));

  TokenizerSpec& spec = draft.spec;

  spec.add_bos = draft.template_bos >= 0;
  spec.bos_id = draft.template_bos;
  for (int32_t id = 0; spec.bos_id < 0 && id < static_cast<int32_t>(spec.pieces.size()); ++id) {
    const std::string& p = spec.pieces[static_cast<size_t>(id)];
    if (spec.types[static_cast<size_t>(id)] == TokenType::kControl &&
        (p == "<s>" || p == "<|begin_of_text|>" || p == "<bos>")) {
      spec.bos_id = id;
    }
  }
  if (draft.template_eos >= 0) spec.eos_ids.push_back(draft.template_eos);
  for (size_t id = 0; id < spec.pieces.size(); ++id) {
    const auto i = static_cast<int32_t>(id);
    if (spec.types[id] == TokenType::kControl && IsEndMarker(spec.pieces[id]) &&
        std::find(spec.eos_ids.begin(), spec.eos_ids.end(), i) == spec.eos_ids.end()) {
      spec.eos_ids.push_back(i);
    }
  }

  if (spec.algorithm == TokenizerAlgorithm::kSentencePieceBpe) {
    spec.scores = ScoresFromMerges(spec);
    spec.merges.clear();
  } else {
    spec.add_space_prefix = false;
  }
  return std::move(draft.spec);
}

Result<TokenizerSpec> ReadHfTokenizerJsonSpec(Env* env, const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, env->ReadSmallFile(path, kMaxTokenizerJsonBytes));
  JsonLimits limits;
  limits.max_bytes = kMaxTokenizerJsonBytes;
  Result<JsonValue> json = ParseJson(text, limits);
  if (!json.ok()) return Status::DataLoss(path, json.status().message());
  return TokenizerSpecFromHfJson(*json, path);
}

Result<std::unique_ptr<Tokenizer>> LoadHfTokenizerJson(Env* env, const std::string& path) {
  ASSIGN_OR_RETURN(TokenizerSpec spec, ReadHfTokenizerJsonSpec(env, path));
  return CreateTokenizer(std::move(spec));
}

}  // namespace relayout
