// KServe v2 tensors to and from the Generation service's messages: every
// input form tritonclient and genai-perf send, and every error path.
#include "server/rpc/kserve_messages.h"

#include <gtest/gtest.h>

#include "server/testing/kserve_requests.h"

namespace relayout::server {
namespace {

using testing::KserveRequestBuilder;
using testing::OutputText;

constexpr char kModel[] = "stories260K";

Result<KserveRequest> Parse(const KserveRequestBuilder& b) {
  return ParseInferRequest(b.request(), kModel);
}

// The error's message, which must name `subject`.
void ExpectInvalid(const KserveRequestBuilder& b, std::string_view subject) {
  Result<KserveRequest> r = Parse(b);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status();
  EXPECT_NE(r.status().message().find(subject), std::string::npos) << r.status();
}

TEST(KserveMessagesTest, VllmStyleRequestBecomesAPromptAndSamplingParams) {
  KserveRequestBuilder b;
  b.Id("req-7")
      .Bytes("text_input", {"Once upon a time"})
      .Bool("stream", true)
      .Bytes("sampling_parameters",
             {R"({"max_tokens": 20, "temperature": "0.5", "top_p": 0.9, "top_k": -1,
                  "seed": 3, "stop": ["\n", "The end"], "ignore_eos": true,
                  "min_p": 0.05, "repetition_penalty": "1.1"})"})
      .Bool("return_finish_reason", true)
      .Bool("return_num_output_tokens", true);
  Result<KserveRequest> r = Parse(b);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->id, "req-7");
  EXPECT_EQ(r->prompt.text(), "Once upon a time");
  EXPECT_FALSE(r->prompt.has_add_bos());  // the tokenizer's default
  EXPECT_EQ(r->sampling.max_new_tokens(), 20u);
  EXPECT_FLOAT_EQ(r->sampling.temperature(), 0.5f);
  EXPECT_FLOAT_EQ(r->sampling.top_p(), 0.9f);
  EXPECT_EQ(r->sampling.top_k(), 0);
  EXPECT_EQ(r->sampling.seed(), 3u);
  ASSERT_EQ(r->sampling.stop_size(), 2);
  EXPECT_EQ(r->sampling.stop(1), "The end");
  EXPECT_TRUE(r->sampling.ignore_eos());
  EXPECT_FLOAT_EQ(r->sampling.min_p(), 0.05f);
  EXPECT_FLOAT_EQ(r->sampling.repetition_penalty(), 1.1f);
  EXPECT_TRUE(r->options.stream);
  EXPECT_TRUE(r->options.exclude_input_in_output);  // the default when streaming
  EXPECT_TRUE(r->options.text_output);
  EXPECT_TRUE(r->options.finish_reason);
  EXPECT_FALSE(r->options.num_input_tokens);
  EXPECT_TRUE(r->options.num_output_tokens);
}

TEST(KserveMessagesTest, BytesContentsWorkAsRawContentsDo) {
  inference::ModelInferRequest request;
  request.set_model_name(kModel);
  auto* in = request.add_inputs();
  in->set_name("text_input");
  in->set_datatype("BYTES");
  in->add_shape(1);
  in->add_shape(1);
  in->mutable_contents()->add_bytes_contents("Hello");
  auto* stream = request.add_inputs();
  stream->set_name("stream");
  stream->set_datatype("BOOL");
  stream->add_shape(1);
  stream->mutable_contents()->add_bool_contents(false);
  Result<KserveRequest> r = ParseInferRequest(request, kModel);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->prompt.text(), "Hello");
  EXPECT_FALSE(r->options.stream);
}

TEST(KserveMessagesTest, MaxTokensDefaultsToVllms16) {
  Result<KserveRequest> r = Parse(KserveRequestBuilder().Bytes("text_input", {"Hi"}));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->sampling.max_new_tokens(), kDefaultMaxTokens);
  EXPECT_FALSE(r->sampling.has_temperature());
  EXPECT_FALSE(r->options.exclude_input_in_output);  // not streaming: prompt prepended
}

TEST(KserveMessagesTest, TensorRtLlmFlatInputsOverrideTheJson) {
  KserveRequestBuilder b;
  b.Bytes("text_input", {"Hi"}, {1, 1})
      .Bytes("sampling_parameters", {R"({"max_tokens": 5, "temperature": 1.5})"})
      .Int32("max_tokens", 40)
      .Fp32("temperature", 0.0f)
      .Fp32("top_p", 0.5f)
      .Int32("top_k", 7)
      .Uint64("random_seed", 99)
      .Int32("end_id", 2)
      .Int32("pad_id", 0)
      .Int32("beam_width", 1)
      .Bytes("stop_words", {"", "stop here"}, {1, 2})
      .Bytes("bad_words", {""}, {1, 1});
  Result<KserveRequest> r = Parse(b);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->sampling.max_new_tokens(), 40u);
  EXPECT_FLOAT_EQ(r->sampling.temperature(), 0.0f);
  EXPECT_FLOAT_EQ(r->sampling.top_p(), 0.5f);
  EXPECT_EQ(r->sampling.top_k(), 7);
  EXPECT_EQ(r->sampling.seed(), 99u);
  ASSERT_EQ(r->sampling.stop_token_ids_size(), 1);
  EXPECT_EQ(r->sampling.stop_token_ids(0), 2);
  ASSERT_EQ(r->sampling.stop_size(), 1);
  EXPECT_EQ(r->sampling.stop(0), "stop here");
}

TEST(KserveMessagesTest, StopMayBeOneString) {
  Result<KserveRequest> r = Parse(KserveRequestBuilder()
                                      .Bytes("text_input", {"Hi"})
                                      .Bytes("sampling_parameters", {R"({"stop": "."})"}));
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->sampling.stop_size(), 1);
  EXPECT_EQ(r->sampling.stop(0), ".");
}

TEST(KserveMessagesTest, UnknownJsonKeysAndNullsAreIgnored) {
  Result<KserveRequest> r =
      Parse(KserveRequestBuilder()
                .Bytes("text_input", {"Hi"})
                .Bytes("sampling_parameters",
                       {R"({"skip_special_tokens": true, "logprobs": 2, "top_p": null, "n": 1})"}));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->sampling.has_top_p());
}

TEST(KserveMessagesTest, MissingTextInput) {
  ExpectInvalid(KserveRequestBuilder().Bool("stream", true), "text_input: missing");
}

TEST(KserveMessagesTest, TextInputOfTheWrongDatatype) {
  ExpectInvalid(KserveRequestBuilder().Int32("text_input", 5),
                "text_input: datatype INT32, expected BYTES");
}

TEST(KserveMessagesTest, TwoPromptsInOneRequest) {
  ExpectInvalid(KserveRequestBuilder().Bytes("text_input", {"a", "b"}), "text_input: 2 elements");
}

TEST(KserveMessagesTest, StreamOfTheWrongDatatype) {
  ExpectInvalid(KserveRequestBuilder().Bytes("text_input", {"a"}).Int32("stream", 1),
                "stream: datatype INT32, expected BOOL");
}

TEST(KserveMessagesTest, FloatInputGivenAsBytes) {
  ExpectInvalid(KserveRequestBuilder().Bytes("text_input", {"a"}).Bytes("temperature", {"0.5"}),
                "temperature: datatype BYTES, expected FP32 or FP64");
}

TEST(KserveMessagesTest, UnknownInput) {
  ExpectInvalid(KserveRequestBuilder().Bytes("text_input", {"a"}).Bool("frobnicate", true),
                "unknown input \"frobnicate\"");
}

TEST(KserveMessagesTest, InputGivenTwice) {
  ExpectInvalid(KserveRequestBuilder().Bytes("text_input", {"a"}).Bytes("text_input", {"b"}),
                "text_input: given twice");
}

TEST(KserveMessagesTest, BadJson) {
  ExpectInvalid(KserveRequestBuilder()
                    .Bytes("text_input", {"a"})
                    .Bytes("sampling_parameters", {R"({"temperature": 0.5,)"}),
                "sampling_parameters: JSON at byte");
}

TEST(KserveMessagesTest, JsonThatIsNotAnObject) {
  ExpectInvalid(
      KserveRequestBuilder().Bytes("text_input", {"a"}).Bytes("sampling_parameters", {"[1]"}),
      "sampling_parameters: expected a JSON object, got array");
}

TEST(KserveMessagesTest, JsonValueOfTheWrongTypeNamesTheKey) {
  ExpectInvalid(KserveRequestBuilder()
                    .Bytes("text_input", {"a"})
                    .Bytes("sampling_parameters", {R"({"temperature": {"x": 1}})"}),
                "sampling_parameters.temperature: expected a number, got object");
  ExpectInvalid(KserveRequestBuilder()
                    .Bytes("text_input", {"a"})
                    .Bytes("sampling_parameters", {R"({"max_tokens": "many"})"}),
                "sampling_parameters.max_tokens: expected an integer");
  ExpectInvalid(KserveRequestBuilder()
                    .Bytes("text_input", {"a"})
                    .Bytes("sampling_parameters", {R"({"max_tokens": 2.5})"}),
                "sampling_parameters.max_tokens: expected an integer");
  ExpectInvalid(KserveRequestBuilder()
                    .Bytes("text_input", {"a"})
                    .Bytes("sampling_parameters", {R"({"stop": [".", 3]})"}),
                "sampling_parameters.stop[1]: expected a string, got number");
  ExpectInvalid(KserveRequestBuilder()
                    .Bytes("text_input", {"a"})
                    .Bytes("sampling_parameters", {R"({"ignore_eos": 7})"}),
                "sampling_parameters.ignore_eos: expected true or false");
}

TEST(KserveMessagesTest, OutOfRangeJsonValues) {
  ExpectInvalid(KserveRequestBuilder()
                    .Bytes("text_input", {"a"})
                    .Bytes("sampling_parameters", {R"({"max_tokens": 0})"}),
                "sampling_parameters.max_tokens: 0, must be >= 1");
  ExpectInvalid(KserveRequestBuilder()
                    .Bytes("text_input", {"a"})
                    .Bytes("sampling_parameters", {R"({"top_k": -5})"}),
                "sampling_parameters.top_k: -5");
  ExpectInvalid(KserveRequestBuilder()
                    .Bytes("text_input", {"a"})
                    .Bytes("sampling_parameters", {R"({"n": 2})"}),
                "sampling_parameters.n: 2");
  ExpectInvalid(KserveRequestBuilder()
                    .Bytes("text_input", {"a"})
                    .Bytes("sampling_parameters", {R"({"temperature": 1e300})"}),
                "sampling_parameters.temperature");
}

TEST(KserveMessagesTest, HugeSamplingParameters) {
  const std::string big = R"({"x": ")" + std::string(kMaxSamplingParametersBytes, 'a') + R"("})";
  ExpectInvalid(
      KserveRequestBuilder().Bytes("text_input", {"a"}).Bytes("sampling_parameters", {big}),
      "sampling_parameters: ");
}

TEST(KserveMessagesTest, BeamSearchIsRefused) {
  ExpectInvalid(KserveRequestBuilder().Bytes("text_input", {"a"}).Int32("beam_width", 4),
                "beam_width: 4");
}

TEST(KserveMessagesTest, BadWordsAreRefused) {
  ExpectInvalid(KserveRequestBuilder().Bytes("text_input", {"a"}).Bytes("bad_words", {"bad"}),
                "bad_words: not supported");
}

TEST(KserveMessagesTest, ExcludeInputFalseWhileStreamingIsRefused) {
  ExpectInvalid(KserveRequestBuilder()
                    .Bytes("text_input", {"a"})
                    .Bool("stream", true)
                    .Bool("exclude_input_in_output", false),
                "exclude_input_in_output: false is not allowed when streaming");
}

TEST(KserveMessagesTest, TruncatedRawBytes) {
  KserveRequestBuilder b;
  b.Raw("text_input", "BYTES", std::string("\x09\0\0\0abc", 7), {}, 1);
  ExpectInvalid(b, "text_input: element 0 claims 9 bytes, 3 remain");
}

TEST(KserveMessagesTest, RawBytesWithTrailingGarbage) {
  KserveRequestBuilder b;
  b.Raw("text_input", "BYTES", EncodeRawBytesElement("abc") + "zz", {}, 1);
  ExpectInvalid(b, "text_input: 2 bytes after the 1 elements");
}

TEST(KserveMessagesTest, RawScalarOfTheWrongSize) {
  KserveRequestBuilder b;
  b.Bytes("text_input", {"a"}).Raw("max_tokens", "INT32", std::string("\1\0", 2), {}, 1);
  ExpectInvalid(b, "max_tokens: 2 bytes of raw contents, expected 4");
}

TEST(KserveMessagesTest, RawContentsForOnlySomeInputs) {
  KserveRequestBuilder b;
  b.Bytes("text_input", {"a"}).Bool("stream", false);
  b.mutable_request()->mutable_raw_input_contents()->RemoveLast();
  ExpectInvalid(b, "raw_input_contents: 1 entries for 2 inputs");
}

TEST(KserveMessagesTest, HugeShapes) {
  KserveRequestBuilder b;
  b.Raw("text_input", "BYTES", "", {1000000, 1000000}, 0);
  ExpectInvalid(b, "text_input: shape dimension 1000000 is above 64");
  KserveRequestBuilder negative;
  negative.Raw("text_input", "BYTES", "", {-1}, 0);
  ExpectInvalid(negative, "text_input: shape dimension -1 is negative");
}

TEST(KserveMessagesTest, UnknownModelOrVersionIsNotFound) {
  KserveRequestBuilder other("gpt-9");
  other.Bytes("text_input", {"a"});
  EXPECT_EQ(Parse(other).status().code(), StatusCode::kNotFound);
  KserveRequestBuilder version;
  version.Bytes("text_input", {"a"});
  version.mutable_request()->set_model_version("2");
  EXPECT_EQ(Parse(version).status().code(), StatusCode::kNotFound);
  version.mutable_request()->set_model_version("1");
  EXPECT_TRUE(Parse(version).ok());
}

TEST(KserveMessagesTest, RequestedOutputsAreExactlyTheOnesSent) {
  Result<KserveRequest> r =
      Parse(KserveRequestBuilder().Bytes("text_input", {"a"}).Output("num_input_tokens"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->options.text_output);
  EXPECT_TRUE(r->options.num_input_tokens);
  ExpectInvalid(KserveRequestBuilder().Bytes("text_input", {"a"}).Output("logits"),
                "unknown output \"logits\"");
}

TEST(KserveMessagesTest, EmptyFinalResponseIsARequestParameter) {
  Result<KserveRequest> r = Parse(KserveRequestBuilder()
                                      .Bytes("text_input", {"a"})
                                      .Param("triton_enable_empty_final_response", true));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->options.empty_final_response);
}

TEST(KserveMessagesTest, ResponsePrependsThePromptUnlessExcluded) {
  Result<KserveRequest> r = Parse(KserveRequestBuilder()
                                      .Id("7")
                                      .Bytes("text_input", {"Once"})
                                      .Bool("return_finish_reason", true)
                                      .Bool("return_num_input_tokens", true)
                                      .Bool("return_num_output_tokens", true));
  ASSERT_TRUE(r.ok()) << r.status();
  inference::ModelInferResponse response;
  ToInferResponse(*r, kModel, {" upon", 1, 3, true, FinishReason::kMaxTokens}, &response);
  EXPECT_EQ(response.id(), "7");
  EXPECT_EQ(response.model_name(), kModel);
  ASSERT_EQ(response.outputs_size(), response.raw_output_contents_size());
  EXPECT_EQ(OutputText(response, "text_output"), "Once upon");
  EXPECT_EQ(OutputText(response, "finish_reason"), "length");
  EXPECT_EQ(OutputText(response, "num_input_tokens"), "3");
  EXPECT_EQ(OutputText(response, "num_output_tokens"), "1");

  r->options.exclude_input_in_output = true;
  inference::ModelInferResponse partial;
  ToInferResponse(*r, kModel, {" upon", 1, 3, false, FinishReason::kNone}, &partial);
  EXPECT_EQ(OutputText(partial, "text_output"), " upon");
  EXPECT_FALSE(testing::HasOutput(partial, "finish_reason"));  // not finished yet
}

TEST(KserveMessagesTest, FinishReasonsAreVllms) {
  EXPECT_EQ(FinishReasonText(FinishReason::kMaxTokens), "length");
  EXPECT_EQ(FinishReasonText(FinishReason::kContextFull), "length");
  EXPECT_EQ(FinishReasonText(FinishReason::kEndOfGeneration), "stop");
  EXPECT_EQ(FinishReasonText(FinishReason::kStopString), "stop");
  EXPECT_EQ(FinishReasonText(FinishReason::kStopToken), "stop");
  EXPECT_EQ(FinishReasonText(FinishReason::kCancelled), "abort");
}

TEST(KserveMessagesTest, RawBytesRoundTrip) {
  const std::string raw = EncodeRawBytesElement("ab") + EncodeRawBytesElement("") +
                          EncodeRawBytesElement(std::string("\0z", 2));
  Result<std::vector<std::string>> elements = DecodeRawBytesTensor(raw, 3, "t");
  ASSERT_TRUE(elements.ok()) << elements.status();
  EXPECT_EQ(*elements, (std::vector<std::string>{"ab", "", std::string("\0z", 2)}));
}

TEST(KserveMessagesTest, ServedModelNameIsTheCheckpointsName) {
  EXPECT_EQ(ServedModelName("/models/SmolLM2-135M-Instruct.Q4_1.gguf"),
            "SmolLM2-135M-Instruct.Q4_1");
  EXPECT_EQ(ServedModelName("/work/shared/models/stories260K/model.gguf"), "stories260K");
  EXPECT_EQ(ServedModelName("/hf/Qwen2.5-0.5B/"), "Qwen2.5-0.5B");
  EXPECT_EQ(ServedModelName("model.safetensors"), "model");
  EXPECT_EQ(ServedModelName(""), "model");
}

TEST(KserveMessagesTest, ModelConfigIsDecoupledWithoutABatchDimension) {
  inference::ModelConfig config;
  ToModelConfig(kModel, &config);
  EXPECT_EQ(config.name(), kModel);
  EXPECT_EQ(config.max_batch_size(), 0);
  EXPECT_TRUE(config.model_transaction_policy().decoupled());
  ASSERT_GT(config.input_size(), 0);
  EXPECT_EQ(config.input(0).name(), "text_input");
  EXPECT_EQ(config.input(0).data_type(), inference::TYPE_STRING);
  EXPECT_FALSE(config.input(0).optional());
  inference::ModelMetadataResponse metadata;
  ToModelMetadata(kModel, &metadata);
  EXPECT_EQ(metadata.inputs_size(), config.input_size());
  EXPECT_EQ(metadata.outputs(0).name(), "text_output");
  EXPECT_EQ(metadata.outputs(0).datatype(), "BYTES");
}

}  // namespace
}  // namespace relayout::server
