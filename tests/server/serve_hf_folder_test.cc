// `relayoutd serve --model DIR` on a Hugging Face folder as published
// (tests/hf_fixture.h): it starts, and its greedy stream and first-step
// best alternative agree with a server on the GGUF the folder was made
// from. Needs the SmolLM2 GGUF and the .venv; skips without.
#include <gtest/gtest.h>

#include <vector>

#include "tests/hf_fixture.h"
#include "tests/server/serve_test_util.h"

namespace relayout {
namespace {

using namespace relayout::testing;  // NOLINT: test helpers

struct Served {
  std::unique_ptr<ServerProcess> server;
  std::unique_ptr<v1::Generation::Stub> stub;
};

Served Serve(const std::string& model) {
  Served s;
  s.server = StartServer({"--model", model});
  if (s.server == nullptr) return s;
  std::shared_ptr<grpc::Channel> channel = Insecure(*s.server);
  if (!WaitServing(channel, 120)) {
    ADD_FAILURE() << model << " did not reach SERVING";
    return s;
  }
  s.stub = v1::Generation::NewStub(channel);
  return s;
}

TEST(ServeHfFolderTest, ServesTheFolderAsTheGguf) {
  const std::string gguf = SmolLm2Gguf();
  if (gguf.empty()) GTEST_SKIP() << "no SmolLM2 GGUF (RELAYOUT_SMOLLM2_GGUF)";
  const std::string folder = SmolLm2HfFolder();
  if (folder.empty()) GTEST_SKIP() << "no " << RELAYOUT_PYTHON;
  Served hf = Serve(folder);
  Served gg = Serve(gguf);
  ASSERT_TRUE(hf.stub != nullptr && gg.stub != nullptr);

  // Over the first tokens (tests/hf_folder_test.cc says why not more), with
  // the first step's alternatives: the same best token on both servers.
  v1::GenerateRequest request = GreedyRequest("The capital of France is", 4);
  request.mutable_sampling()->set_top_logprobs(5);
  grpc::ClientContext ctx_a, ctx_b;
  auto reader_a = gg.stub->Generate(&ctx_a, request);
  auto reader_b = hf.stub->Generate(&ctx_b, request);
  v1::GenerateResponse ra, rb;
  ASSERT_TRUE(reader_a->Read(&ra) && reader_b->Read(&rb));
  ASSERT_GE(ra.tokens_size(), 1);
  ASSERT_GE(rb.tokens_size(), 1);
  ASSERT_EQ(ra.tokens(0).top_logprobs_size(), 5);
  ASSERT_EQ(rb.tokens(0).top_logprobs_size(), 5);
  EXPECT_EQ(rb.tokens(0).top_logprobs(0).id(), ra.tokens(0).top_logprobs(0).id());
  std::vector<int32_t> ids_a, ids_b;
  do {
    for (const v1::Token& t : ra.tokens()) ids_a.push_back(t.id());
  } while (reader_a->Read(&ra));
  do {
    for (const v1::Token& t : rb.tokens()) ids_b.push_back(t.id());
  } while (reader_b->Read(&rb));
  EXPECT_TRUE(reader_a->Finish().ok());
  EXPECT_TRUE(reader_b->Finish().ok());
  EXPECT_EQ(ids_a.size(), 4u);
  EXPECT_EQ(ids_b, ids_a);
}

}  // namespace
}  // namespace relayout
