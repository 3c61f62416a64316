#include "engine/tokenizer/streaming_decoder.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "engine/base/env.h"
#include "engine/tokenizer/tokenizer.h"

namespace relayout {
namespace {

const std::string kShared = RELAYOUT_SHARED_DIR;
constexpr char kEmoji[] = "\xF0\x9F\x99\x82";  // U+1F642, 4 bytes
constexpr char kReplacement[] = "\xEF\xBF\xBD";

std::unique_ptr<Tokenizer> LoadOrNull(const std::string& relative) {
  Result<std::unique_ptr<Tokenizer>> tok =
      LoadTokenizerFile(Env::Default(), JoinPath(kShared, relative));
  return tok.ok() ? std::move(tok).value() : nullptr;
}

// Byte token of b in the llama2.c vocabularies: <0x00> is id 3.
int32_t ByteToken(unsigned char b) { return 3 + b; }

class StreamingDecoderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tok_ = LoadOrNull("models/stories260K/tok512.bin");
    if (tok_ == nullptr) GTEST_SKIP() << "stories260K/tok512.bin is not present";
  }
  std::unique_ptr<Tokenizer> tok_;
};

TEST_F(StreamingDecoderTest, EmojiSplitIntoByteTokensIsHeldUntilComplete) {
  StreamingDecoder decoder(tok_.get());
  EXPECT_EQ(decoder.Next(ByteToken(0xF0)), "");
  EXPECT_EQ(decoder.Next(ByteToken(0x9F)), "");
  EXPECT_EQ(decoder.Next(ByteToken(0x99)), "");
  EXPECT_EQ(decoder.Next(ByteToken(0x82)), kEmoji);
  EXPECT_EQ(decoder.Flush(), "");
}

TEST_F(StreamingDecoderTest, HeldBytesAreReleasedWithTheNextPiece) {
  StreamingDecoder decoder(tok_.get());
  EXPECT_EQ(decoder.Next(ByteToken(0xC3)), "");
  EXPECT_EQ(decoder.Next(ByteToken(0xBC)), "\xC3\xBC");  // ü
  EXPECT_EQ(decoder.Next(403), " Once");
}

TEST_F(StreamingDecoderTest, InterruptedCharacterBecomesReplacement) {
  StreamingDecoder decoder(tok_.get());
  EXPECT_EQ(decoder.Next(ByteToken(0xF0)), "");
  EXPECT_EQ(decoder.Next(ByteToken(0x9F)), "");
  EXPECT_EQ(decoder.Next(ByteToken('\n')), std::string(kReplacement) + kReplacement + "\n");
  EXPECT_EQ(decoder.Next(ByteToken(0xE6)), "");
  EXPECT_EQ(decoder.Flush(), kReplacement);
}

TEST_F(StreamingDecoderTest, StrayContinuationByteBecomesReplacement) {
  StreamingDecoder decoder(tok_.get());
  EXPECT_EQ(decoder.Next(ByteToken(0x82)), kReplacement);
}

TEST_F(StreamingDecoderTest, SpaceAfterBosIsStrippedOnlyThere) {
  StreamingDecoder decoder(tok_.get());
  EXPECT_EQ(decoder.Next(1), "");  // BOS prints nothing
  EXPECT_EQ(decoder.Next(403), "Once");
  EXPECT_EQ(decoder.Next(407), " upon");
  EXPECT_EQ(decoder.Next(2), "");  // EOS prints nothing

  StreamingDecoder after_bos(tok_.get(), /*previous_token=*/1);
  EXPECT_EQ(after_bos.Next(403), "Once");
  StreamingDecoder mid_text(tok_.get(), /*previous_token=*/403);
  EXPECT_EQ(mid_text.Next(407), " upon");
}

TEST_F(StreamingDecoderTest, OutOfRangeIdsPrintNothing) {
  StreamingDecoder decoder(tok_.get());
  EXPECT_EQ(decoder.Next(-5), "");
  EXPECT_EQ(decoder.Next(100000), "");
}

// The golden texts are llama2.c's printed output for the generated ids that
// its trace lists: decoding those ids must print the same text.
void ExpectTraceDecodesToGolden(const std::string& model, const std::string& trace,
                                const std::string& golden) {
  std::unique_ptr<Tokenizer> tok = LoadOrNull(JoinPath("models/" + model, "tok512.bin"));
  Result<std::string> trace_text =
      Env::Default()->ReadSmallFile(JoinPath(kShared, "reference/" + model + "/" + trace), 1 << 20);
  Result<std::string> golden_text = Env::Default()->ReadSmallFile(
      JoinPath(kShared, "reference/" + model + "/" + golden), 1 << 20);
  if (tok == nullptr || !trace_text.ok() || !golden_text.ok()) GTEST_SKIP() << model;
  std::vector<int32_t> ids = {tok->bos_id()};
  for (size_t pos = 0; (pos = trace_text->find(" next=", pos)) != std::string::npos;) {
    pos += 6;
    ids.push_back(std::stoi(trace_text->substr(pos)));
  }
  ASSERT_GT(ids.size(), 60u);
  StreamingDecoder decoder(tok.get());
  std::string text;
  for (int32_t id : ids) text += decoder.Next(id);
  text += decoder.Flush();
  EXPECT_EQ(text + "\n", *golden_text);
  EXPECT_EQ(tok->Decode(ids) + "\n", *golden_text);
}

TEST(StreamingDecoderGoldenTest, StoriesTraceDecodesToLlama2cText) {
  ExpectTraceDecodesToGolden("stories260K", "trace_once_upon_a_time_n64.txt",
                             "greedy_once_upon_a_time_n64.txt");
  ExpectTraceDecodesToGolden("stories260K", "trace_noprompt_n256.txt", "greedy_noprompt_n256.txt");
}

TEST(StreamingDecoderGoldenTest, Llama2xsTraceDecodesToLlama2cText) {
  ExpectTraceDecodesToGolden("llama2xs260K", "trace_once_upon_a_time_n64.txt",
                             "greedy_once_upon_a_time_n64.txt");
}

TEST(StreamingDecoderGoldenTest, AidreamsTraceDecodesToLlama2cText) {
  ExpectTraceDecodesToGolden("aidreams260K", "trace_i_dreamed_n64.txt", "greedy_i_dreamed_n64.txt");
}

}  // namespace
}  // namespace relayout
