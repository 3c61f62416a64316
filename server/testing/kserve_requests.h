// Test helpers: KServe v2 requests built the way tritonclient builds them
// (every input in raw_input_contents, little-endian).
#pragma once

#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <string>
#include <string_view>

#include "inference/grpc_service.pb.h"
#include "server/rpc/kserve_messages.h"

namespace relayout::server::testing {

class KserveRequestBuilder {
 public:
  explicit KserveRequestBuilder(std::string model = "stories260K") {
    request_.set_model_name(std::move(model));
  }

  KserveRequestBuilder& Id(std::string id) {
    request_.set_id(std::move(id));
    return *this;
  }
  KserveRequestBuilder& Bytes(std::string_view name, std::initializer_list<std::string_view> values,
                              std::initializer_list<int64_t> shape = {}) {
    std::string raw;
    for (std::string_view v : values) raw += EncodeRawBytesElement(v);
    return Raw(name, "BYTES", raw, shape, static_cast<int64_t>(values.size()));
  }
  KserveRequestBuilder& Bool(std::string_view name, bool value) {
    return Raw(name, "BOOL", std::string(1, value ? '\1' : '\0'), {}, 1);
  }
  KserveRequestBuilder& Int32(std::string_view name, int32_t value) {
    return Raw(name, "INT32", Le(value), {}, 1);
  }
  KserveRequestBuilder& Uint64(std::string_view name, uint64_t value) {
    return Raw(name, "UINT64", Le(value), {}, 1);
  }
  KserveRequestBuilder& Fp32(std::string_view name, float value) {
    return Raw(name, "FP32", Le(value), {}, 1);
  }
  KserveRequestBuilder& Param(const std::string& key, bool value) {
    (*request_.mutable_parameters())[key].set_bool_param(value);
    return *this;
  }
  KserveRequestBuilder& Output(std::string name) {
    request_.add_outputs()->set_name(std::move(name));
    return *this;
  }
  // Any tensor: `shape` empty means [count].
  KserveRequestBuilder& Raw(std::string_view name, std::string_view datatype, std::string raw,
                            std::initializer_list<int64_t> shape, int64_t count) {
    auto* in = request_.add_inputs();
    in->set_name(std::string(name));
    in->set_datatype(std::string(datatype));
    if (shape.size() == 0) {
      in->add_shape(count);
    } else {
      for (int64_t d : shape) in->add_shape(d);
    }
    request_.add_raw_input_contents(std::move(raw));
    return *this;
  }

  const inference::ModelInferRequest& request() const { return request_; }
  inference::ModelInferRequest* mutable_request() { return &request_; }

 private:
  template <typename T>
  static std::string Le(T value) {
    std::string raw(sizeof(T), '\0');
    std::memcpy(raw.data(), &value, sizeof(T));
    return raw;
  }
  inference::ModelInferRequest request_;
};

// The first element of a BYTES output, or of a UINT32 output as text; ""
// when the response has no such output.
inline std::string OutputText(const inference::ModelInferResponse& r, std::string_view name) {
  for (int i = 0; i < r.outputs_size(); ++i) {
    if (r.outputs(i).name() != name) continue;
    const std::string& raw = r.raw_output_contents(i);
    if (r.outputs(i).datatype() == "UINT32") {
      uint32_t v = 0;
      std::memcpy(&v, raw.data(), 4);
      return std::to_string(v);
    }
    return raw.substr(4);
  }
  return "";
}

inline bool HasOutput(const inference::ModelInferResponse& r, std::string_view name) {
  for (const auto& o : r.outputs()) {
    if (o.name() == name) return true;
  }
  return false;
}

}  // namespace relayout::server::testing
