#include "server/rpc/kserve_messages.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <limits>
#include <map>
#include <optional>

#include "engine/text/json.h"

namespace relayout::server {
namespace {

using InputTensor = inference::ModelInferRequest::InferInputTensor;

// One input with its raw contents, when the request sent them raw.
struct Tensor {
  const InputTensor* input = nullptr;
  const std::string* raw = nullptr;  // null: input->contents
  int64_t count = 0;                 // elements, from the shape

  const std::string& name() const { return input->name(); }
  const std::string& datatype() const { return input->datatype(); }
};

Status Invalid(std::string_view name, std::string_view why) {
  return Status::InvalidArgument(name, why);
}

// The number of elements the shape holds, each dimension >= 0, at most
// kMaxTensorElements.
Result<int64_t> ElementCount(const InputTensor& input) {
  if (input.shape_size() == 0) return Invalid(input.name(), "no shape");
  int64_t count = 1;
  for (int64_t d : input.shape()) {
    if (d < 0) return Invalid(input.name(), StrCat("shape dimension ", d, " is negative"));
    if (d > kMaxTensorElements) {
      return Invalid(input.name(), StrCat("shape dimension ", d, " is above ", kMaxTensorElements));
    }
    count *= d;
    if (count > kMaxTensorElements) {
      return Invalid(input.name(), StrCat("more than ", kMaxTensorElements, " elements"));
    }
  }
  return count;
}

// Bytes per element of a fixed-size datatype; 0 for BYTES or unknown.
size_t ElementBytes(std::string_view dtype) {
  if (dtype == "BOOL" || dtype == "INT8" || dtype == "UINT8") return 1;
  if (dtype == "INT16" || dtype == "UINT16" || dtype == "FP16" || dtype == "BF16") return 2;
  if (dtype == "INT32" || dtype == "UINT32" || dtype == "FP32") return 4;
  if (dtype == "INT64" || dtype == "UINT64" || dtype == "FP64") return 8;
  return 0;
}

template <typename T>
T LoadLittleEndian(const char* p) {
  T value{};
  std::memcpy(&value, p, sizeof(T));  // the hosts we build for are little-endian
  return value;
}

Status CheckRawSize(const Tensor& t, size_t element_bytes) {
  const size_t want = static_cast<size_t>(t.count) * element_bytes;
  if (t.raw->size() != want) {
    return Invalid(t.name(), StrCat(t.raw->size(), " bytes of raw contents, expected ", want, " (",
                                    t.count, " ", t.datatype(), " elements)"));
  }
  return Status::OK();
}

Status ScalarShape(const Tensor& t) {
  if (t.count != 1) return Invalid(t.name(), StrCat(t.count, " elements, expected 1"));
  return Status::OK();
}

Status ContentCount(const Tensor& t, int64_t given) {
  if (given != t.count) {
    return Invalid(t.name(), StrCat(given, " elements in contents, the shape holds ", t.count));
  }
  return Status::OK();
}

Result<std::vector<std::string>> BytesElements(const Tensor& t) {
  if (t.datatype() != "BYTES") {
    return Invalid(t.name(), StrCat("datatype ", t.datatype(), ", expected BYTES"));
  }
  if (t.raw != nullptr) return DecodeRawBytesTensor(*t.raw, t.count, t.name());
  const auto& given = t.input->contents().bytes_contents();
  RETURN_IF_ERROR(ContentCount(t, given.size()));
  return std::vector<std::string>(given.begin(), given.end());
}

Result<bool> ScalarBool(const Tensor& t) {
  if (t.datatype() != "BOOL") {
    return Invalid(t.name(), StrCat("datatype ", t.datatype(), ", expected BOOL"));
  }
  RETURN_IF_ERROR(ScalarShape(t));
  if (t.raw != nullptr) {
    RETURN_IF_ERROR(CheckRawSize(t, 1));
    return (*t.raw)[0] != 0;
  }
  RETURN_IF_ERROR(ContentCount(t, t.input->contents().bool_contents_size()));
  return t.input->contents().bool_contents(0);
}

// An integer of any integer datatype, as int64 (UINT64 above INT64_MAX is
// an error).
Result<int64_t> ScalarInt(const Tensor& t) {
  RETURN_IF_ERROR(ScalarShape(t));
  const std::string& d = t.datatype();
  const auto& c = t.input->contents();
  const bool is_signed = d == "INT8" || d == "INT16" || d == "INT32" || d == "INT64";
  const bool is_unsigned = d == "UINT8" || d == "UINT16" || d == "UINT32" || d == "UINT64";
  if (!is_signed && !is_unsigned) {
    return Invalid(t.name(), StrCat("datatype ", d, ", expected an integer (INT32, INT64, ...)"));
  }
  if (t.raw != nullptr) {
    RETURN_IF_ERROR(CheckRawSize(t, ElementBytes(d)));
    const char* p = t.raw->data();
    if (d == "INT8") return LoadLittleEndian<int8_t>(p);
    if (d == "INT16") return LoadLittleEndian<int16_t>(p);
    if (d == "INT32") return LoadLittleEndian<int32_t>(p);
    if (d == "INT64") return LoadLittleEndian<int64_t>(p);
    if (d == "UINT8") return LoadLittleEndian<uint8_t>(p);
    if (d == "UINT16") return LoadLittleEndian<uint16_t>(p);
    if (d == "UINT32") return LoadLittleEndian<uint32_t>(p);
    const uint64_t u = LoadLittleEndian<uint64_t>(p);
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return Invalid(t.name(), StrCat(u, " is too large"));
    }
    return static_cast<int64_t>(u);
  }
  if (d == "INT64") {
    RETURN_IF_ERROR(ContentCount(t, c.int64_contents_size()));
    return c.int64_contents(0);
  }
  if (d == "UINT64") {
    RETURN_IF_ERROR(ContentCount(t, c.uint64_contents_size()));
    const uint64_t u = c.uint64_contents(0);
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return Invalid(t.name(), StrCat(u, " is too large"));
    }
    return static_cast<int64_t>(u);
  }
  if (is_signed) {
    RETURN_IF_ERROR(ContentCount(t, c.int_contents_size()));
    return c.int_contents(0);
  }
  RETURN_IF_ERROR(ContentCount(t, c.uint_contents_size()));
  return c.uint_contents(0);
}

Result<double> ScalarFloat(const Tensor& t) {
  RETURN_IF_ERROR(ScalarShape(t));
  const std::string& d = t.datatype();
  if (d != "FP32" && d != "FP64") {
    return Invalid(t.name(), StrCat("datatype ", d, ", expected FP32 or FP64"));
  }
  if (t.raw != nullptr) {
    RETURN_IF_ERROR(CheckRawSize(t, ElementBytes(d)));
    return d == "FP32" ? static_cast<double>(LoadLittleEndian<float>(t.raw->data()))
                       : LoadLittleEndian<double>(t.raw->data());
  }
  const auto& c = t.input->contents();
  if (d == "FP32") {
    RETURN_IF_ERROR(ContentCount(t, c.fp32_contents_size()));
    return static_cast<double>(c.fp32_contents(0));
  }
  RETURN_IF_ERROR(ContentCount(t, c.fp64_contents_size()));
  return c.fp64_contents(0);
}

// ---- sampling_parameters (JSON) ----

std::string_view JsonTypeName(const JsonValue& v) { return JsonValue::TypeName(v.type()); }

// A number, or a string holding one (vLLM's clients send "0.7").
Result<double> JsonNumber(const JsonValue& v, const std::string& key) {
  if (v.is_number()) return v.as_double();
  if (v.is_string()) {
    const std::string& s = v.as_string();
    char* end = nullptr;
    errno = 0;
    const double d = std::strtod(s.c_str(), &end);
    if (!s.empty() && end == s.c_str() + s.size() && errno == 0 && std::isfinite(d)) return d;
    return Invalid(key, StrCat("expected a number, got the string \"", s.substr(0, 32), "\""));
  }
  return Invalid(key, StrCat("expected a number, got ", JsonTypeName(v)));
}

Result<int64_t> JsonInt(const JsonValue& v, const std::string& key) {
  if (v.is_number()) {
    if (std::optional<int64_t> i = v.as_int64()) return *i;
    return Invalid(key, "expected an integer");
  }
  if (v.is_string()) {
    const std::string& s = v.as_string();
    char* end = nullptr;
    errno = 0;
    const long long i = std::strtoll(s.c_str(), &end, 10);
    if (!s.empty() && end == s.c_str() + s.size() && errno == 0) return static_cast<int64_t>(i);
    return Invalid(key, StrCat("expected an integer, got the string \"", s.substr(0, 32), "\""));
  }
  return Invalid(key, StrCat("expected an integer, got ", JsonTypeName(v)));
}

Result<bool> JsonBool(const JsonValue& v, const std::string& key) {
  if (v.is_bool()) return v.as_bool();
  if (v.is_string()) {
    const std::string& s = v.as_string();
    if (s == "true" || s == "True" || s == "1") return true;
    if (s == "false" || s == "False" || s == "0") return false;
  }
  return Invalid(key, StrCat("expected true or false, got ", JsonTypeName(v)));
}

Result<float> FloatInRange(double d, const std::string& key) {
  if (!std::isfinite(d) || std::fabs(d) > std::numeric_limits<float>::max()) {
    return Invalid(key, StrCat(d, " is out of range"));
  }
  return static_cast<float>(d);
}

Result<uint32_t> MaxTokens(int64_t n, const std::string& key) {
  if (n < 1) return Invalid(key, StrCat(n, ", must be >= 1"));
  if (n > std::numeric_limits<uint32_t>::max()) return Invalid(key, StrCat(n, " is too large"));
  return static_cast<uint32_t>(n);
}

Result<int32_t> TopK(int64_t k, const std::string& key) {
  // vLLM: -1 is off; 0 also leaves it to the model's default here.
  if (k < -1) return Invalid(key, StrCat(k, ", must be -1 (off) or >= 1"));
  if (k > std::numeric_limits<int32_t>::max()) return Invalid(key, StrCat(k, " is too large"));
  return static_cast<int32_t>(k < 0 ? 0 : k);
}

Status ApplyFloat(const JsonValue& v, const std::string& key, v1::SamplingParams* s,
                  void (v1::SamplingParams::*set)(float)) {
  ASSIGN_OR_RETURN(double d, JsonNumber(v, key));
  ASSIGN_OR_RETURN(float f, FloatInRange(d, key));
  (s->*set)(f);
  return Status::OK();
}

Status ApplySamplingJson(std::string_view text, v1::SamplingParams* s) {
  const std::string prefix = "sampling_parameters";
  if (text.size() > kMaxSamplingParametersBytes) {
    return Invalid(prefix,
                   StrCat(text.size(), " bytes, above the limit of ", kMaxSamplingParametersBytes));
  }
  JsonLimits limits;
  limits.max_bytes = kMaxSamplingParametersBytes;
  limits.max_depth = 8;
  Result<JsonValue> parsed = ParseJson(text, limits);
  if (!parsed.ok()) return Invalid(prefix, parsed.status().message());
  if (!parsed->is_object()) {
    return Invalid(prefix, StrCat("expected a JSON object, got ", JsonTypeName(*parsed)));
  }
  for (const auto& [name, v] : parsed->as_object()) {
    const std::string key = StrCat(prefix, ".", name);
    if (v.is_null()) continue;  // None in Python: unset
    if (name == "max_tokens") {
      ASSIGN_OR_RETURN(int64_t n, JsonInt(v, key));
      ASSIGN_OR_RETURN(uint32_t m, MaxTokens(n, key));
      s->set_max_new_tokens(m);
    } else if (name == "temperature") {
      RETURN_IF_ERROR(ApplyFloat(v, key, s, &v1::SamplingParams::set_temperature));
    } else if (name == "top_p") {
      RETURN_IF_ERROR(ApplyFloat(v, key, s, &v1::SamplingParams::set_top_p));
    } else if (name == "min_p") {
      RETURN_IF_ERROR(ApplyFloat(v, key, s, &v1::SamplingParams::set_min_p));
    } else if (name == "frequency_penalty") {
      RETURN_IF_ERROR(ApplyFloat(v, key, s, &v1::SamplingParams::set_frequency_penalty));
    } else if (name == "presence_penalty") {
      RETURN_IF_ERROR(ApplyFloat(v, key, s, &v1::SamplingParams::set_presence_penalty));
    } else if (name == "repetition_penalty") {
      RETURN_IF_ERROR(ApplyFloat(v, key, s, &v1::SamplingParams::set_repetition_penalty));
    } else if (name == "top_k") {
      ASSIGN_OR_RETURN(int64_t k, JsonInt(v, key));
      ASSIGN_OR_RETURN(int32_t top_k, TopK(k, key));
      s->set_top_k(top_k);
    } else if (name == "seed") {
      ASSIGN_OR_RETURN(int64_t seed, JsonInt(v, key));
      if (seed < 0) return Invalid(key, StrCat(seed, ", must be >= 0"));
      s->set_seed(static_cast<uint64_t>(seed));
    } else if (name == "ignore_eos") {
      ASSIGN_OR_RETURN(bool b, JsonBool(v, key));
      s->set_ignore_eos(b);
    } else if (name == "n" || name == "best_of") {
      ASSIGN_OR_RETURN(int64_t n, JsonInt(v, key));
      if (n != 1) return Invalid(key, StrCat(n, ": only 1 sequence per request is supported"));
    } else if (name == "stop") {
      s->clear_stop();
      if (v.is_string()) {
        s->add_stop(v.as_string());
      } else if (v.is_array()) {
        for (size_t i = 0; i < v.as_array().size(); ++i) {
          const JsonValue& e = v.as_array()[i];
          if (!e.is_string()) {
            return Invalid(StrCat(key, "[", i, "]"),
                           StrCat("expected a string, got ", JsonTypeName(e)));
          }
          s->add_stop(e.as_string());
        }
      } else {
        return Invalid(key,
                       StrCat("expected a string or a list of strings, got ", JsonTypeName(v)));
      }
    } else if (name == "stop_token_ids") {
      if (!v.is_array()) return Invalid(key, StrCat("expected a list, got ", JsonTypeName(v)));
      s->clear_stop_token_ids();
      for (size_t i = 0; i < v.as_array().size(); ++i) {
        const std::string element = StrCat(key, "[", i, "]");
        ASSIGN_OR_RETURN(int64_t id, JsonInt(v.as_array()[i], element));
        if (id < 0 || id > std::numeric_limits<int32_t>::max()) {
          return Invalid(element, StrCat(id, " is not a token id"));
        }
        s->add_stop_token_ids(static_cast<int32_t>(id));
      }
    }
    // Other keys (vLLM's many) are ignored, as the vLLM backend ignores
    // what it does not use.
  }
  return Status::OK();
}

// ---- flat (TensorRT-LLM) inputs ----

Status ApplyFlatFloat(const Tensor& t, v1::SamplingParams* s,
                      void (v1::SamplingParams::*set)(float)) {
  ASSIGN_OR_RETURN(double d, ScalarFloat(t));
  ASSIGN_OR_RETURN(float f, FloatInRange(d, t.name()));
  (s->*set)(f);
  return Status::OK();
}

// The inputs a request may name, in the order they are applied (the JSON
// first, so that flat inputs override it).
constexpr std::string_view kInputs[] = {
    "text_input",
    "sampling_parameters",
    "stream",
    "exclude_input_in_output",
    "return_finish_reason",
    "return_num_input_tokens",
    "return_num_output_tokens",
    "max_tokens",
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "random_seed",
    "repetition_penalty",
    "presence_penalty",
    "frequency_penalty",
    "ignore_eos",
    "end_id",
    "pad_id",
    "beam_width",
    "stop_words",
    "bad_words",
};

bool KnownInput(std::string_view name) {
  for (std::string_view k : kInputs) {
    if (k == name) return true;
  }
  return false;
}

constexpr std::string_view kOutputs[] = {"text_output", "finish_reason", "num_input_tokens",
                                         "num_output_tokens"};

void AddRawOutput(std::string_view name, std::string_view datatype, std::string raw,
                  inference::ModelInferResponse* response) {
  inference::ModelInferResponse::InferOutputTensor* out = response->add_outputs();
  out->set_name(std::string(name));
  out->set_datatype(std::string(datatype));
  out->add_shape(1);
  response->add_raw_output_contents(std::move(raw));
}

std::string RawUint32(int64_t value) {
  const uint32_t v = value < 0 ? 0
                     : value > std::numeric_limits<uint32_t>::max()
                         ? std::numeric_limits<uint32_t>::max()
                         : static_cast<uint32_t>(value);
  std::string raw(4, '\0');
  std::memcpy(raw.data(), &v, 4);
  return raw;
}

}  // namespace

Result<std::vector<std::string>> DecodeRawBytesTensor(std::string_view raw, int64_t count,
                                                      std::string_view name) {
  std::vector<std::string> elements;
  size_t pos = 0;
  for (int64_t i = 0; i < count; ++i) {
    if (raw.size() - pos < 4) {
      return Invalid(name, StrCat("raw contents end inside the length of element ", i));
    }
    const uint32_t length = LoadLittleEndian<uint32_t>(raw.data() + pos);
    pos += 4;
    if (raw.size() - pos < length) {
      return Invalid(
          name, StrCat("element ", i, " claims ", length, " bytes, ", raw.size() - pos, " remain"));
    }
    elements.emplace_back(raw.substr(pos, length));
    pos += length;
  }
  if (pos != raw.size()) {
    return Invalid(
        name, StrCat(raw.size() - pos, " bytes after the ", count, " elements the shape holds"));
  }
  return elements;
}

std::string EncodeRawBytesElement(std::string_view bytes) {
  const uint32_t length = static_cast<uint32_t>(bytes.size());
  std::string raw(4, '\0');
  std::memcpy(raw.data(), &length, 4);
  raw.append(bytes);
  return raw;
}

Result<KserveRequest> ParseInferRequest(const inference::ModelInferRequest& request,
                                        std::string_view model_name) {
  if (request.model_name() != model_name) {
    return Status::NotFound(
        "model_name", StrCat("\"", request.model_name().substr(0, 128),
                             "\" is not served here; this server serves \"", model_name, "\""));
  }
  if (!request.model_version().empty() && request.model_version() != kKserveModelVersion) {
    return Status::NotFound("model_version", StrCat("\"", request.model_version().substr(0, 32),
                                                    "\" is not served here; the only version is \"",
                                                    kKserveModelVersion, "\""));
  }
  if (request.inputs_size() > kMaxInputs) {
    return Invalid("inputs", StrCat(request.inputs_size(), " inputs, at most ", kMaxInputs));
  }
  const bool raw = request.raw_input_contents_size() > 0;
  if (raw && request.raw_input_contents_size() != request.inputs_size()) {
    return Invalid("raw_input_contents", StrCat(request.raw_input_contents_size(), " entries for ",
                                                request.inputs_size(), " inputs"));
  }
  std::map<std::string_view, Tensor> tensors;
  for (int i = 0; i < request.inputs_size(); ++i) {
    const InputTensor& input = request.inputs(i);
    if (!KnownInput(input.name())) {
      return Invalid(StrCat("inputs[", i, "]"),
                     StrCat("unknown input \"", input.name().substr(0, 64),
                            "\"; expected text_input, sampling_parameters, stream, ..."));
    }
    if (raw && input.has_contents()) {
      return Invalid(input.name(), "has contents and raw_input_contents; give one");
    }
    Tensor t{&input, raw ? &request.raw_input_contents(i) : nullptr, 0};
    ASSIGN_OR_RETURN(t.count, ElementCount(input));
    if (!tensors.emplace(input.name(), t).second) {
      return Invalid(input.name(), "given twice");
    }
  }

  KserveRequest out;
  out.id = request.id();
  auto find = [&](std::string_view name) -> const Tensor* {
    auto it = tensors.find(name);
    return it == tensors.end() ? nullptr : &it->second;
  };

  const Tensor* text = find("text_input");
  if (text == nullptr) return Invalid("text_input", "missing: the prompt is required");
  ASSIGN_OR_RETURN(std::vector<std::string> prompt, BytesElements(*text));
  if (prompt.size() != 1) {
    return Invalid("text_input",
                   StrCat(prompt.size(), " elements, expected 1 (one prompt per request)"));
  }
  out.prompt.set_text(std::move(prompt[0]));

  v1::SamplingParams& s = out.sampling;
  s.set_max_new_tokens(kDefaultMaxTokens);
  if (const Tensor* t = find("sampling_parameters")) {
    ASSIGN_OR_RETURN(std::vector<std::string> json, BytesElements(*t));
    if (json.size() != 1) {
      return Invalid(t->name(), StrCat(json.size(), " elements, expected 1"));
    }
    RETURN_IF_ERROR(ApplySamplingJson(json[0], &s));
  }
  if (const Tensor* t = find("max_tokens")) {
    ASSIGN_OR_RETURN(int64_t n, ScalarInt(*t));
    ASSIGN_OR_RETURN(uint32_t m, MaxTokens(n, t->name()));
    s.set_max_new_tokens(m);
  }
  if (const Tensor* t = find("temperature")) {
    RETURN_IF_ERROR(ApplyFlatFloat(*t, &s, &v1::SamplingParams::set_temperature));
  }
  if (const Tensor* t = find("top_p")) {
    RETURN_IF_ERROR(ApplyFlatFloat(*t, &s, &v1::SamplingParams::set_top_p));
  }
  if (const Tensor* t = find("min_p")) {
    RETURN_IF_ERROR(ApplyFlatFloat(*t, &s, &v1::SamplingParams::set_min_p));
  }
  if (const Tensor* t = find("repetition_penalty")) {
    RETURN_IF_ERROR(ApplyFlatFloat(*t, &s, &v1::SamplingParams::set_repetition_penalty));
  }
  if (const Tensor* t = find("presence_penalty")) {
    RETURN_IF_ERROR(ApplyFlatFloat(*t, &s, &v1::SamplingParams::set_presence_penalty));
  }
  if (const Tensor* t = find("frequency_penalty")) {
    RETURN_IF_ERROR(ApplyFlatFloat(*t, &s, &v1::SamplingParams::set_frequency_penalty));
  }
  if (const Tensor* t = find("top_k")) {
    ASSIGN_OR_RETURN(int64_t k, ScalarInt(*t));
    ASSIGN_OR_RETURN(int32_t top_k, TopK(k, t->name()));
    s.set_top_k(top_k);
  }
  if (const Tensor* t = find("random_seed")) {
    ASSIGN_OR_RETURN(int64_t seed, ScalarInt(*t));
    if (seed < 0) return Invalid(t->name(), StrCat(seed, ", must be >= 0"));
    s.set_seed(static_cast<uint64_t>(seed));
  }
  if (const Tensor* t = find("ignore_eos")) {
    ASSIGN_OR_RETURN(bool b, ScalarBool(*t));
    s.set_ignore_eos(b);
  }
  if (const Tensor* t = find("end_id")) {
    ASSIGN_OR_RETURN(int64_t id, ScalarInt(*t));
    if (id < 0 || id > std::numeric_limits<int32_t>::max()) {
      return Invalid(t->name(), StrCat(id, " is not a token id"));
    }
    s.add_stop_token_ids(static_cast<int32_t>(id));
  }
  if (const Tensor* t = find("pad_id")) {
    ASSIGN_OR_RETURN(int64_t ignored, ScalarInt(*t));
    (void)ignored;
  }
  if (const Tensor* t = find("beam_width")) {
    ASSIGN_OR_RETURN(int64_t width, ScalarInt(*t));
    if (width != 1) return Invalid(t->name(), StrCat(width, ": only 1 (no beam search)"));
  }
  if (const Tensor* t = find("stop_words")) {
    ASSIGN_OR_RETURN(std::vector<std::string> words, BytesElements(*t));
    for (std::string& w : words) {
      if (!w.empty()) s.add_stop(std::move(w));
    }
  }
  if (const Tensor* t = find("bad_words")) {
    ASSIGN_OR_RETURN(std::vector<std::string> words, BytesElements(*t));
    for (const std::string& w : words) {
      if (!w.empty()) return Invalid(t->name(), "not supported (give only empty elements)");
    }
  }

  KserveOptions& o = out.options;
  if (const Tensor* t = find("stream")) {
    ASSIGN_OR_RETURN(o.stream, ScalarBool(*t));
  }
  // As the vLLM backend: the prompt is prepended unless excluded, and a
  // stream excludes it (it cannot prepend to deltas).
  if (const Tensor* t = find("exclude_input_in_output")) {
    ASSIGN_OR_RETURN(o.exclude_input_in_output, ScalarBool(*t));
    if (o.stream && !o.exclude_input_in_output) {
      return Invalid(t->name(), "false is not allowed when streaming");
    }
  } else {
    o.exclude_input_in_output = o.stream;
  }
  if (const Tensor* t = find("return_finish_reason")) {
    ASSIGN_OR_RETURN(o.finish_reason, ScalarBool(*t));
  }
  if (const Tensor* t = find("return_num_input_tokens")) {
    ASSIGN_OR_RETURN(o.num_input_tokens, ScalarBool(*t));
  }
  if (const Tensor* t = find("return_num_output_tokens")) {
    ASSIGN_OR_RETURN(o.num_output_tokens, ScalarBool(*t));
  }
  if (request.outputs_size() > 0) {
    o.text_output = o.finish_reason = o.num_input_tokens = o.num_output_tokens = false;
    for (int i = 0; i < request.outputs_size(); ++i) {
      const std::string& name = request.outputs(i).name();
      if (name == "text_output") {
        o.text_output = true;
      } else if (name == "finish_reason") {
        o.finish_reason = true;
      } else if (name == "num_input_tokens") {
        o.num_input_tokens = true;
      } else if (name == "num_output_tokens") {
        o.num_output_tokens = true;
      } else {
        return Invalid(StrCat("outputs[", i, "]"),
                       StrCat("unknown output \"", name.substr(0, 64),
                              "\"; expected text_output, finish_reason, num_input_tokens or "
                              "num_output_tokens"));
      }
    }
  }
  if (auto it = request.parameters().find("triton_enable_empty_final_response");
      it != request.parameters().end()) {
    if (it->second.parameter_choice_case() != inference::InferParameter::kBoolParam) {
      return Invalid("parameters.triton_enable_empty_final_response", "expected a bool");
    }
    o.empty_final_response = it->second.bool_param();
  }
  return out;
}

void ToInferResponse(const KserveRequest& request, std::string_view model_name,
                     const KserveOutput& output, inference::ModelInferResponse* response) {
  response->set_model_name(std::string(model_name));
  response->set_model_version(kKserveModelVersion);
  response->set_id(request.id);
  const KserveOptions& o = request.options;
  if (o.text_output) {
    const bool prepend = !o.exclude_input_in_output && request.prompt.has_text();
    AddRawOutput("text_output", "BYTES",
                 EncodeRawBytesElement(prepend ? request.prompt.text() + output.text : output.text),
                 response);
  }
  if (o.finish_reason && output.finished) {
    AddRawOutput("finish_reason", "BYTES", EncodeRawBytesElement(FinishReasonText(output.finish)),
                 response);
  }
  if (o.num_input_tokens) {
    AddRawOutput("num_input_tokens", "UINT32", RawUint32(output.input_tokens), response);
  }
  if (o.num_output_tokens) {
    AddRawOutput("num_output_tokens", "UINT32", RawUint32(output.output_tokens), response);
  }
}

void SetFinalResponseFlag(bool final, inference::ModelInferResponse* response) {
  (*response->mutable_parameters())["triton_final_response"].set_bool_param(final);
}

std::string_view FinishReasonText(FinishReason reason) {
  switch (reason) {
    case FinishReason::kNone:
      return "";
    case FinishReason::kMaxTokens:
    case FinishReason::kContextFull:
      return "length";
    case FinishReason::kEndOfGeneration:
    case FinishReason::kStopString:
    case FinishReason::kStopToken:
      return "stop";
    case FinishReason::kCancelled:
      return "abort";
  }
  return "";
}

namespace {

struct TensorSpec {
  std::string_view name;
  std::string_view datatype;  // the wire name
  inference::DataType type;
  int64_t dim;  // one dimension: 1, or -1 (any)
  bool optional;
};

constexpr TensorSpec kInputSpecs[] = {
    {"text_input", "BYTES", inference::TYPE_STRING, 1, false},
    {"stream", "BOOL", inference::TYPE_BOOL, 1, true},
    {"sampling_parameters", "BYTES", inference::TYPE_STRING, 1, true},
    {"exclude_input_in_output", "BOOL", inference::TYPE_BOOL, 1, true},
    {"return_finish_reason", "BOOL", inference::TYPE_BOOL, 1, true},
    {"return_num_input_tokens", "BOOL", inference::TYPE_BOOL, 1, true},
    {"return_num_output_tokens", "BOOL", inference::TYPE_BOOL, 1, true},
    {"max_tokens", "INT32", inference::TYPE_INT32, 1, true},
    {"temperature", "FP32", inference::TYPE_FP32, 1, true},
    {"top_p", "FP32", inference::TYPE_FP32, 1, true},
    {"top_k", "INT32", inference::TYPE_INT32, 1, true},
    {"min_p", "FP32", inference::TYPE_FP32, 1, true},
    {"random_seed", "UINT64", inference::TYPE_UINT64, 1, true},
    {"repetition_penalty", "FP32", inference::TYPE_FP32, 1, true},
    {"presence_penalty", "FP32", inference::TYPE_FP32, 1, true},
    {"frequency_penalty", "FP32", inference::TYPE_FP32, 1, true},
    {"ignore_eos", "BOOL", inference::TYPE_BOOL, 1, true},
    {"end_id", "INT32", inference::TYPE_INT32, 1, true},
    {"pad_id", "INT32", inference::TYPE_INT32, 1, true},
    {"beam_width", "INT32", inference::TYPE_INT32, 1, true},
    {"stop_words", "BYTES", inference::TYPE_STRING, -1, true},
    {"bad_words", "BYTES", inference::TYPE_STRING, -1, true},
};

constexpr TensorSpec kOutputSpecs[] = {
    {"text_output", "BYTES", inference::TYPE_STRING, -1, false},
    {"finish_reason", "BYTES", inference::TYPE_STRING, -1, false},
    {"num_input_tokens", "UINT32", inference::TYPE_UINT32, 1, false},
    {"num_output_tokens", "UINT32", inference::TYPE_UINT32, -1, false},
};

static_assert(std::size(kInputSpecs) == std::size(kInputs), "every accepted input is declared");
static_assert(std::size(kOutputSpecs) == std::size(kOutputs), "every output is declared");

}  // namespace

void ToModelMetadata(std::string_view model_name, inference::ModelMetadataResponse* out) {
  out->set_name(std::string(model_name));
  out->add_versions(kKserveModelVersion);
  out->set_platform(kKservePlatform);
  for (const TensorSpec& s : kInputSpecs) {
    auto* t = out->add_inputs();
    t->set_name(std::string(s.name));
    t->set_datatype(std::string(s.datatype));
    t->add_shape(s.dim);
  }
  for (const TensorSpec& s : kOutputSpecs) {
    auto* t = out->add_outputs();
    t->set_name(std::string(s.name));
    t->set_datatype(std::string(s.datatype));
    t->add_shape(s.dim);
  }
}

void ToModelConfig(std::string_view model_name, inference::ModelConfig* out) {
  out->set_name(std::string(model_name));
  out->set_platform(kKservePlatform);
  out->set_backend(kKservePlatform);
  out->set_max_batch_size(0);
  for (const TensorSpec& s : kInputSpecs) {
    inference::ModelInput* in = out->add_input();
    in->set_name(std::string(s.name));
    in->set_data_type(s.type);
    in->add_dims(s.dim);
    in->set_optional(s.optional);
  }
  for (const TensorSpec& s : kOutputSpecs) {
    inference::ModelOutput* o = out->add_output();
    o->set_name(std::string(s.name));
    o->set_data_type(s.type);
    o->add_dims(s.dim);
  }
  out->mutable_model_transaction_policy()->set_decoupled(true);
}

std::string ServedModelName(std::string_view path) {
  while (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  const size_t slash = path.rfind('/');
  std::string_view base = slash == std::string_view::npos ? path : path.substr(slash + 1);
  std::string_view parent;
  if (slash != std::string_view::npos && slash > 0) {
    std::string_view dir = path.substr(0, slash);
    const size_t up = dir.rfind('/');
    parent = up == std::string_view::npos ? dir : dir.substr(up + 1);
  }
  for (std::string_view ext : {".gguf", ".safetensors", ".bin"}) {
    if (base.size() > ext.size() && base.substr(base.size() - ext.size()) == ext) {
      base.remove_suffix(ext.size());
      if (base == "model" && !parent.empty()) base = parent;
      break;
    }
  }
  if (base.empty() || base == "/") return "model";
  return std::string(base);
}

}  // namespace relayout::server
