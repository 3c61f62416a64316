// SmolLM2's byte-level BPE, as loaded from its GGUF, against the reference
// ids of tests/data/smollm2_tokenizer_vectors.json. Set RELAYOUT_SMOLLM2_GGUF
// to SmolLM2-135M-Instruct.Q4_1.gguf to run (tools/test.sh does).
#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <string>

#include "engine/checkpoint/gguf_source.h"
#include "engine/tokenizer/gguf_tokenizer.h"
#include "engine/tokenizer/tokenizer_vectors_test_util.h"

namespace relayout {
namespace {

TEST(GgufTokenizerSmolLm2Test, EncodingsEqualReferenceVectors) {
  const char* path = std::getenv("RELAYOUT_SMOLLM2_GGUF");
  if (path == nullptr || *path == '\0') GTEST_SKIP() << "RELAYOUT_SMOLLM2_GGUF is not set";
  Result<std::unique_ptr<GgufSource>> source = GgufSource::Open(Env::Default(), path);
  ASSERT_TRUE(source.ok()) << source.status();
  Result<std::unique_ptr<Tokenizer>> tok = CreateTokenizerFromGguf((*source)->metadata(), path);
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ((*tok)->vocab_size(), 49152);
  EXPECT_FALSE((*tok)->add_bos());
  // 330 texts, each encoded with and without parse_special.
  EXPECT_GE(testing::ExpectMatchesVectors(**tok, testing::SmolLm2VectorsPath()), 600);
}

}  // namespace
}  // namespace relayout
