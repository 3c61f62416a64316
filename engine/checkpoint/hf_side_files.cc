#include "engine/checkpoint/hf_side_files.h"

#include <cmath>

#include "engine/text/json.h"

namespace relayout {
namespace {

constexpr uint64_t kMaxSideFileBytes = 16u << 20;

Status WrongType(std::string_view source, std::string_view key, std::string_view expected) {
  return Status::InvalidArgument(source, StrCat("key \"", key, "\" must be ", expected));
}

// A special token: a string, an AddedToken object ({"content": ...}), or null
// (not stated).
Status SpecialToken(const JsonValue& json, std::string_view key, std::string_view source,
                    std::optional<std::string>* out) {
  const JsonValue* v = json.Find(key);
  if (v == nullptr || v->is_null()) return Status::OK();
  if (v->is_object()) v = v->Find("content");
  if (v == nullptr || !v->is_string()) {
    return WrongType(source, key, "a string or an object with a string \"content\"");
  }
  *out = v->as_string();
  return Status::OK();
}

Status OptionalBool(const JsonValue& json, std::string_view key, std::string_view source,
                    std::optional<bool>* out) {
  const JsonValue* v = json.Find(key);
  if (v == nullptr || v->is_null()) return Status::OK();
  if (!v->is_bool()) return WrongType(source, key, "true or false");
  *out = v->as_bool();
  return Status::OK();
}

Status ChatTemplates(const JsonValue& json, std::string_view source,
                     std::vector<ChatTemplateSource>* out) {
  const JsonValue* v = json.Find("chat_template");
  if (v == nullptr || v->is_null()) return Status::OK();
  if (v->is_string()) {
    out->push_back({"default", v->as_string()});
    return Status::OK();
  }
  const std::string_view expected = "a string or a list of {\"name\", \"template\"} objects";
  if (!v->is_array()) return WrongType(source, "chat_template", expected);
  for (const JsonValue& entry : v->as_array()) {
    const JsonValue* name = entry.is_object() ? entry.Find("name") : nullptr;
    const JsonValue* text = entry.is_object() ? entry.Find("template") : nullptr;
    if (name == nullptr || !name->is_string() || text == nullptr || !text->is_string()) {
      return WrongType(source, "chat_template", expected);
    }
    out->push_back({name->as_string(), text->as_string()});
  }
  return Status::OK();
}

// A number in [lo, hi], or null; range words the rule for the message.
Status Bounded(const JsonValue& json, std::string_view key, std::string_view source, double lo,
               double hi, std::string_view range, std::optional<float>* out) {
  const JsonValue* v = json.Find(key);
  if (v == nullptr || v->is_null()) return Status::OK();
  if (!v->is_number()) return WrongType(source, key, "a number");
  const double x = v->as_double();
  if (!std::isfinite(x) || x < lo || x > hi) {
    return Status::InvalidArgument(source, StrCat("key \"", key, "\" is ", x, ", must be ", range));
  }
  *out = static_cast<float>(x);
  return Status::OK();
}

Result<std::optional<JsonValue>> ReadJsonIfPresent(Env* env, const std::string& path) {
  if (!env->FileExists(path)) return std::optional<JsonValue>();
  ASSIGN_OR_RETURN(std::string text, env->ReadSmallFile(path, kMaxSideFileBytes));
  Result<JsonValue> json = ParseJson(text);
  if (!json.ok()) return Status::InvalidArgument(path, json.status().message());
  if (!json->is_object()) return Status::InvalidArgument(path, "must be a JSON object");
  return std::optional<JsonValue>(std::move(*json));
}

}  // namespace

const ChatTemplateSource* HfTokenizerConfig::FindChatTemplate(std::string_view name) const {
  for (const ChatTemplateSource& t : chat_templates) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

Result<HfTokenizerConfig> HfTokenizerConfigFromJson(const JsonValue& json,
                                                    std::string_view source) {
  if (!json.is_object()) return Status::InvalidArgument(source, "must be a JSON object");
  HfTokenizerConfig c;
  RETURN_IF_ERROR(SpecialToken(json, "bos_token", source, &c.bos_token));
  RETURN_IF_ERROR(SpecialToken(json, "eos_token", source, &c.eos_token));
  RETURN_IF_ERROR(SpecialToken(json, "unk_token", source, &c.unk_token));
  RETURN_IF_ERROR(SpecialToken(json, "pad_token", source, &c.pad_token));
  RETURN_IF_ERROR(OptionalBool(json, "add_bos_token", source, &c.add_bos_token));
  RETURN_IF_ERROR(OptionalBool(json, "add_eos_token", source, &c.add_eos_token));
  RETURN_IF_ERROR(ChatTemplates(json, source, &c.chat_templates));
  return c;
}

Result<HfGenerationConfig> HfGenerationConfigFromJson(const JsonValue& json,
                                                      std::string_view source) {
  if (!json.is_object()) return Status::InvalidArgument(source, "must be a JSON object");
  HfGenerationConfig c;
  if (const JsonValue* eos = json.Find("eos_token_id"); eos != nullptr && !eos->is_null()) {
    const auto add = [&](const JsonValue& v) {
      if (!v.as_int64() || *v.as_int64() < 0) return false;
      c.eos_token_ids.push_back(*v.as_int64());
      return true;
    };
    bool ok = true;
    if (eos->is_array()) {
      for (const JsonValue& e : eos->as_array()) ok = ok && add(e);
    } else {
      ok = add(*eos);
    }
    if (!ok) return WrongType(source, "eos_token_id", "a token id or a list of token ids");
  }
  SamplingDefaults& s = c.sampling;
  RETURN_IF_ERROR(Bounded(json, "temperature", source, 0, HUGE_VAL, ">= 0", &s.temperature));
  RETURN_IF_ERROR(Bounded(json, "top_p", source, 0, 1, "in (0, 1]", &s.top_p));
  if (s.top_p && *s.top_p == 0) {
    return Status::InvalidArgument(source, "key \"top_p\" is 0, must be in (0, 1]");
  }
  if (const JsonValue* k = json.Find("top_k"); k != nullptr && !k->is_null()) {
    if (!k->as_int64() || *k->as_int64() < 0 || *k->as_int64() > INT32_MAX) {
      return WrongType(source, "top_k", "a non-negative integer");
    }
    s.top_k = static_cast<int32_t>(*k->as_int64());
  }
  return c;
}

Result<HfTokenizerConfig> ReadHfTokenizerConfig(Env* env, const std::string& dir) {
  const std::string path = JoinPath(dir, std::string(kHfTokenizerConfigFile));
  ASSIGN_OR_RETURN(std::optional<JsonValue> json, ReadJsonIfPresent(env, path));
  HfTokenizerConfig c;
  if (json) {
    ASSIGN_OR_RETURN(c, HfTokenizerConfigFromJson(*json, path));
  }
  const std::string jinja = JoinPath(dir, std::string(kHfChatTemplateFile));
  if (c.chat_templates.empty() && env->FileExists(jinja)) {
    ASSIGN_OR_RETURN(std::string text, env->ReadSmallFile(jinja, kMaxSideFileBytes));
    c.chat_templates.push_back({"default", std::move(text)});
  }
  return c;
}

Result<HfGenerationConfig> ReadHfGenerationConfig(Env* env, const std::string& dir) {
  const std::string path = JoinPath(dir, std::string(kHfGenerationConfigFile));
  ASSIGN_OR_RETURN(std::optional<JsonValue> json, ReadJsonIfPresent(env, path));
  if (!json) return HfGenerationConfig{};
  return HfGenerationConfigFromJson(*json, path);
}

}  // namespace relayout
