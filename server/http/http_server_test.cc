// HttpServer over a real loopback socket: whole and streamed responses,
// keep-alive, the limits, and what a client that leaves or stops reading
// does to its exchange.
#include "server/http/http_server.h"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <thread>

#include "server/http/http_test_client.h"

namespace relayout::server {
namespace {

using testing::TestHttpClient;

class HttpServerTest : public ::testing::Test {
 protected:
  void Start(HttpServer::Handler handler) {
    options_.address = "127.0.0.1:0";
    options_.error_body = [](int status, std::string_view message) {
      return StrCat("{\"status\":", status, ",\"message\":\"", message, "\"}");
    };
    options_.error_content_type = "application/json";
    Result<std::unique_ptr<HttpServer>> s = HttpServer::Start(options_, std::move(handler));
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = std::move(*s);
  }

  // Answers every request with its method, path and body.
  void StartEcho() {
    Start([](const HttpRequest& r, const std::shared_ptr<HttpExchange>& exchange) {
      exchange->Respond(200, "text/plain",
                        StrCat(r.method, " ", r.path, " ", r.body, " auth=", r.authorization));
    });
  }

  HttpServerOptions options_;
  std::unique_ptr<HttpServer> server_;
};

TEST_F(HttpServerTest, AnswersTwoRequestsOnOneKeptAliveConnection) {
  StartEcho();
  TestHttpClient client(server_->port());
  TestHttpClient::Response first =
      client.Roundtrip("POST", "/a?x=1", "hello", "Authorization: Bearer t\r\n");
  EXPECT_EQ(first.status, 200);
  EXPECT_EQ(first.body(), "POST /a hello auth=Bearer t");
  EXPECT_EQ(first.header("Content-Type"), "text/plain");
  TestHttpClient::Response second = client.Roundtrip("GET", "/b");
  EXPECT_EQ(second.status, 200);
  EXPECT_EQ(second.body(), "GET /b  auth=");
}

TEST_F(HttpServerTest, StreamsEachPieceWhenItIsWrittenThenEnds) {
  std::promise<std::shared_ptr<HttpExchange>> exchange_promise;
  Start([&](const HttpRequest&, const std::shared_ptr<HttpExchange>& exchange) {
    exchange->StartStream(200, "text/event-stream");
    exchange_promise.set_value(exchange);
  });
  TestHttpClient client(server_->port());
  ASSERT_TRUE(client.Send(TestHttpClient::Request("GET", "/s")));
  std::shared_ptr<HttpExchange> exchange = exchange_promise.get_future().get();
  EXPECT_TRUE(exchange->Write("data: one\n\n"));
  // The first piece arrives before the second is written.
  const std::string head = client.ReadUntil("data: one");
  ASSERT_FALSE(head.empty());
  EXPECT_NE(head.find("Transfer-Encoding: chunked"), std::string::npos) << head;
  EXPECT_NE(head.find("Content-Type: text/event-stream"), std::string::npos) << head;
  EXPECT_TRUE(exchange->Write("data: two\n\n"));
  exchange->End();
  EXPECT_FALSE(client.ReadUntil("0\r\n\r\n").empty());
  // The connection is still usable.
  exchange.reset();
}

TEST_F(HttpServerTest, CompletesTheExchangeOnceTheLastByteIsWritten) {
  std::promise<bool> delivered;
  Start([&](const HttpRequest&, const std::shared_ptr<HttpExchange>& exchange) {
    exchange->SetOnComplete([&](bool d) { delivered.set_value(d); });
    exchange->Respond(200, "text/plain", "done");
  });
  TestHttpClient client(server_->port());
  EXPECT_EQ(client.Roundtrip("GET", "/").status, 200);
  EXPECT_TRUE(delivered.get_future().get());
}

TEST_F(HttpServerTest, ABodyAboveTheLimitGets413WithTheErrorBodyAndTheConnectionCloses) {
  options_.max_body_bytes = 100;
  StartEcho();
  TestHttpClient client(server_->port());
  TestHttpClient::Response r = client.Roundtrip("POST", "/", std::string(1000, 'x'));
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(r.header("Content-Type"), "application/json");
  EXPECT_NE(r.body().find("\"status\":413"), std::string::npos) << r.body();
  EXPECT_TRUE(client.PeerClosed());
}

TEST_F(HttpServerTest, ExpectContinueIsRefusedWith413BeforeTheBodyIsSent) {
  options_.max_body_bytes = 100;
  StartEcho();
  TestHttpClient client(server_->port());
  ASSERT_TRUE(client.Send(
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\nExpect: 100-continue\r\n\r\n"));
  EXPECT_EQ(client.Read().status, 413);
}

TEST_F(HttpServerTest, ExpectContinueGets100ThenTheAnswer) {
  StartEcho();
  TestHttpClient client(server_->port());
  ASSERT_TRUE(client.Send(
      "POST /c HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n"));
  EXPECT_FALSE(client.ReadUntil("HTTP/1.1 100 Continue\r\n\r\n").empty());
  ASSERT_TRUE(client.Send("hi"));
  EXPECT_FALSE(client.ReadUntil("POST /c hi").empty());
}

TEST_F(HttpServerTest, MalformedHttpGets400) {
  StartEcho();
  TestHttpClient client(server_->port());
  ASSERT_TRUE(client.Send("NOT HTTP AT ALL\r\n\r\n"));
  EXPECT_EQ(client.Read().status, 400);
}

TEST_F(HttpServerTest, HeadersAboveTheLimitGet431) {
  options_.max_header_bytes = 1024;
  StartEcho();
  TestHttpClient client(server_->port());
  TestHttpClient::Response r =
      client.Roundtrip("GET", "/", "", StrCat("X-Big: ", std::string(2000, 'y'), "\r\n"));
  EXPECT_EQ(r.status, 431);
}

TEST_F(HttpServerTest, AClientThatLeavesAbortsItsPendingExchange) {
  std::promise<void> aborted;
  std::promise<bool> completed;
  std::shared_ptr<HttpExchange> kept;
  Start([&](const HttpRequest&, const std::shared_ptr<HttpExchange>& exchange) {
    exchange->SetOnAbort([&] { aborted.set_value(); });
    exchange->SetOnComplete([&](bool d) { completed.set_value(d); });
    kept = exchange;  // never answered
  });
  {
    TestHttpClient client(server_->port());
    ASSERT_TRUE(client.Send(TestHttpClient::Request("POST", "/", "{}")));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    client.Close();
  }
  EXPECT_EQ(aborted.get_future().wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_FALSE(completed.get_future().get());
  EXPECT_TRUE(kept->aborted());
  EXPECT_FALSE(kept->Write("late"));
}

// A pipelined request larger than the header limit fills the buffer the
// watch reads into while the first response is pending: the connection
// still lives to send that response, then answers the second request.
TEST_F(HttpServerTest, APendingResponseOutlivesAPipelinedRequestThatFillsTheBuffer) {
  std::promise<std::shared_ptr<HttpExchange>> first_promise;
  std::atomic<int> requests{0};
  Start([&](const HttpRequest& r, const std::shared_ptr<HttpExchange>& exchange) {
    if (requests++ == 0) {
      first_promise.set_value(exchange);  // answered later
      return;
    }
    exchange->Respond(200, "text/plain", StrCat(r.path, " ", r.body.size()));
  });
  TestHttpClient client(server_->port());
  const std::string big(options_.max_header_bytes * 2, 'x');
  ASSERT_TRUE(client.Send(TestHttpClient::Request("POST", "/first", "{}") +
                          TestHttpClient::Request("POST", "/second", big)));
  std::shared_ptr<HttpExchange> first = first_promise.get_future().get();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the watch reads on
  EXPECT_FALSE(first->aborted());
  first->Respond(200, "text/plain", "first");
  TestHttpClient::Response a = client.Read();
  EXPECT_EQ(a.status, 200);
  EXPECT_EQ(a.body(), "first");
  TestHttpClient::Response b = client.Read();
  EXPECT_EQ(b.status, 200);
  EXPECT_EQ(b.body(), StrCat("/second ", big.size()));
}

// After a Connection: close response the server waits for the client to
// close its side, but not forever: a client that keeps the connection open
// (holding a descriptor) is closed after idle_timeout.
TEST_F(HttpServerTest, AClosingConnectionIsClosedAfterTheIdleTimeoutIfTheClientKeepsIt) {
  options_.idle_timeout = std::chrono::milliseconds(200);
  StartEcho();
  TestHttpClient client(server_->port());
  TestHttpClient::Response r = client.Roundtrip("GET", "/", "", "Connection: close\r\n");
  ASSERT_EQ(r.status, 200);
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  // A socket the server closed answers the first write with a reset, and
  // the next write fails; one it still reads takes both.
  client.Send("x");
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_FALSE(client.Send("y"));
}

TEST_F(HttpServerTest, AReaderTooSlowForTheQueueLimitIsCutOff) {
  options_.max_queued_bytes = 64 << 10;
  std::promise<std::shared_ptr<HttpExchange>> exchange_promise;
  std::promise<void> aborted;
  Start([&](const HttpRequest&, const std::shared_ptr<HttpExchange>& exchange) {
    exchange->SetOnAbort([&] { aborted.set_value(); });
    exchange->StartStream(200, "text/event-stream");
    exchange_promise.set_value(exchange);
  });
  TestHttpClient client(server_->port());  // sends, then never reads
  ASSERT_TRUE(client.Send(TestHttpClient::Request("GET", "/")));
  std::shared_ptr<HttpExchange> exchange = exchange_promise.get_future().get();
  const std::string piece(4096, 'z');
  size_t written = 0;
  // The kernel's socket buffers take a few MiB; then the queue fills.
  while (exchange->Write(piece) && written < (512u << 20)) written += piece.size();
  EXPECT_LT(written, 512u << 20);
  EXPECT_EQ(aborted.get_future().wait_for(std::chrono::seconds(5)), std::future_status::ready);
}

TEST_F(HttpServerTest, StoppingTheServerCompletesPendingExchangesUndelivered) {
  std::promise<bool> completed;
  std::promise<void> handled;
  std::shared_ptr<HttpExchange> kept;
  Start([&](const HttpRequest&, const std::shared_ptr<HttpExchange>& exchange) {
    exchange->SetOnComplete([&](bool d) { completed.set_value(d); });
    kept = exchange;
    handled.set_value();
  });
  TestHttpClient client(server_->port());
  ASSERT_TRUE(client.Send(TestHttpClient::Request("GET", "/")));
  handled.get_future().wait();
  server_.reset();
  EXPECT_FALSE(completed.get_future().get());
  EXPECT_FALSE(kept->Write("after the server"));
}

TEST_F(HttpServerTest, Http10StreamHasNoChunksAndEndsWithTheConnection) {
  Start([](const HttpRequest&, const std::shared_ptr<HttpExchange>& exchange) {
    exchange->StartStream(200, "text/event-stream");
    exchange->Write("data: a\n\n");
    exchange->End();
  });
  TestHttpClient client(server_->port());
  ASSERT_TRUE(client.Send("GET / HTTP/1.0\r\n\r\n"));
  const std::string raw = client.ReadUntil("data: a\n\n");
  EXPECT_EQ(raw.find("chunked"), std::string::npos) << raw;
  EXPECT_NE(raw.find("Connection: close"), std::string::npos) << raw;
  EXPECT_TRUE(client.PeerClosed());
}

TEST_F(HttpServerTest, ABadAddressIsRefused) {
  HttpServerOptions options;
  options.address = "not-an-address";
  EXPECT_TRUE(HttpServer::Start(options, {}).status().IsInvalidArgument());
  options.address = "127.0.0.1:0";
  options.threads = 0;
  EXPECT_TRUE(HttpServer::Start(options, {}).status().IsInvalidArgument());
}

}  // namespace
}  // namespace relayout::server
