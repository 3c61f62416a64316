// The KServe v2 (Open Inference Protocol) messages of GRPCInferenceService
// to and from what the Generation service takes: a request's tensors become
// a v1::Prompt and v1::SamplingParams, which ToGenerationRequest
// (generation_messages.h) then checks against the model and the
// ServingLimits, so limits and their errors are those of relayout.v1.
//
// The model's tensors, as Triton's vLLM backend declares them (every input
// but text_input optional; a scalar is any shape of one element, e.g. [1]
// or [1,1]):
//   text_input               BYTES  the prompt (one element; BOS added as
//                                   the tokenizer asks)
//   stream                   BOOL   ModelStreamInfer: one response per group
//                                   of tokens (default false: one response)
//   sampling_parameters      BYTES  a JSON object: max_tokens (default 16,
//                                   as vLLM), temperature, top_p, top_k (-1:
//                                   off), min_p, seed, stop (a string or a
//                                   list), stop_token_ids, ignore_eos,
//                                   frequency_penalty, presence_penalty,
//                                   repetition_penalty, n (1 only); numbers
//                                   may be given as strings ("0.7"); other
//                                   keys are ignored
//   exclude_input_in_output  BOOL   default: false (the prompt is prepended
//                                   to text_output) unless streaming, where
//                                   false is an error
//   return_finish_reason, return_num_input_tokens, return_num_output_tokens
//                            BOOL   add those outputs
// and the flat inputs of Triton's TensorRT-LLM backend: max_tokens (INT32),
// temperature, top_p, repetition_penalty, presence_penalty,
// frequency_penalty, min_p (FP32), top_k (INT32), random_seed (UINT64),
// end_id (a stop token), pad_id (ignored), beam_width (1 only), ignore_eos
// (BOOL), stop_words (BYTES, each element a stop string; empty elements
// ignored), bad_words (BYTES; only empty elements). A flat input overrides
// the same setting in sampling_parameters. Integer inputs take any integer
// datatype and float inputs FP32 or FP64; anything else is an error.
//
// Outputs: text_output (BYTES [1]: the text since the previous response
// when streaming, else the whole text), finish_reason (BYTES [1], on the
// response that ends the request: "stop", "length" or "abort", as vLLM
// names them), num_input_tokens (UINT32 [1], BOS included),
// num_output_tokens (UINT32 [1], the tokens of this response). A request
// that names outputs gets exactly those. Every output is sent in
// raw_output_contents, as Triton does.
//
// Tensor data comes from `contents` or `raw_input_contents` (one entry per
// input, little-endian; BYTES elements each behind a 4-byte little-endian
// length). Errors are InvalidArgument naming the input (and the JSON key),
// e.g. "sampling_parameters.temperature: expected a number, got object";
// NotFound for a model or version this server does not serve.
//
// Thread safety: free functions on their arguments.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "engine/base/status.h"
#include "engine/model/finish_reason.h"
#include "inference/grpc_service.pb.h"
#include "relayout/v1/generation.pb.h"

namespace relayout::server {

// Bounds on what a request may carry beyond the prompt (whose size
// ToGenerationRequest bounds): elements per tensor and JSON bytes.
inline constexpr int64_t kMaxTensorElements = 64;
inline constexpr size_t kMaxSamplingParametersBytes = 64 << 10;
inline constexpr int kMaxInputs = 32;
// vLLM's default when a request names no max_tokens.
inline constexpr uint32_t kDefaultMaxTokens = 16;

// What "platform" and ServerMetadata's "name" say.
inline constexpr char kKservePlatform[] = "relayoutd";
// ServerMetadata's version: the project's (project() in CMakeLists.txt).
inline constexpr char kKserveServerVersion[] = "0.1.0";
// The only model version: "" or this.
inline constexpr char kKserveModelVersion[] = "1";

// How a request wants its responses.
struct KserveOptions {
  bool stream = false;
  bool exclude_input_in_output = false;
  // triton_enable_empty_final_response: ModelStreamInfer ends each request
  // with an empty response whose parameter triton_final_response is true
  // (the others carry false).
  bool empty_final_response = false;
  // Which outputs the responses carry.
  bool text_output = true;
  bool finish_reason = false;
  bool num_input_tokens = false;
  bool num_output_tokens = false;
};

struct KserveRequest {
  std::string id;  // echoed in every response
  v1::Prompt prompt;
  v1::SamplingParams sampling;
  KserveOptions options;
};

// Checks the model name and version against `model_name` and converts the
// request's tensors and parameters (see above).
Result<KserveRequest> ParseInferRequest(const inference::ModelInferRequest& request,
                                        std::string_view model_name);

// One response's content: the text and tokens since the previous response
// of the same request (all of them for a request that does not stream).
struct KserveOutput {
  std::string text;
  int64_t output_tokens = 0;
  int64_t input_tokens = 0;
  bool finished = false;  // this response ends the request: finish is set
  FinishReason finish = FinishReason::kNone;
};

// Fills `response` with the outputs `request.options` asks for.
// finish_reason is only sent on a finished response.
void ToInferResponse(const KserveRequest& request, std::string_view model_name,
                     const KserveOutput& output, inference::ModelInferResponse* response);

// Sets the response parameter triton_final_response.
void SetFinalResponseFlag(bool final, inference::ModelInferResponse* response);

// vLLM's names: "stop" (end of generation, a stop string or stop token),
// "length" (max tokens or a full context), "abort" (cancelled); "" for
// kNone.
std::string_view FinishReasonText(FinishReason reason);

void ToModelMetadata(std::string_view model_name, inference::ModelMetadataResponse* out);
void ToModelConfig(std::string_view model_name, inference::ModelConfig* out);

// The name a model is served under: the checkpoint's file name without its
// extension (.gguf, .safetensors, .bin), or its folder's name for a
// Hugging Face folder or a file named model.*. "model" when the path is
// empty.
std::string ServedModelName(std::string_view model_path);

// A BYTES tensor's raw contents: `count` elements, each a 4-byte
// little-endian length then its bytes, and nothing after.
// InvalidArgument "<name>: ..." otherwise.
Result<std::vector<std::string>> DecodeRawBytesTensor(std::string_view raw, int64_t count,
                                                      std::string_view name);
// One element as DecodeRawBytesTensor reads it.
std::string EncodeRawBytesElement(std::string_view bytes);

}  // namespace relayout::server
