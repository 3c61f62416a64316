// MetricsHttpServer on a loopback port, spoken to with raw bytes: malformed
// requests are answered (400, 431) before the connection closes, and a
// well-formed request after them is still served.
#include "server/observe/metrics_http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <string>

namespace relayout::server {
namespace {

// Sends `request` to 127.0.0.1:port, half-closes, and returns everything
// the server wrote back before closing.
std::string Exchange(uint16_t port, const std::string& request) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return "socket failed";
  timeval timeout{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return "connect failed";
  }
  size_t sent = 0;
  while (sent < request.size()) {
    const ssize_t n = send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += static_cast<size_t>(n);
  }
  shutdown(fd, SHUT_WR);
  std::string reply;
  char buffer[4096];
  for (ssize_t n; (n = recv(fd, buffer, sizeof(buffer), 0)) > 0;) reply.append(buffer, n);
  close(fd);
  return reply;
}

class MetricsHttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<std::unique_ptr<MetricsHttpServer>> s =
        MetricsHttpServer::Start("127.0.0.1:0", [](std::string_view path) {
          return HttpResponse{path == "/metrics" ? 200 : 404, "text/plain", "up 1\n"};
        });
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = std::move(*s);
  }
  std::unique_ptr<MetricsHttpServer> server_;
};

TEST_F(MetricsHttpServerTest, MalformedRequestLineGets400) {
  const std::string reply = Exchange(server_->port(), "NOT HTTP AT ALL\r\n\r\n");
  EXPECT_EQ(reply.rfind("HTTP/1.1 400 Bad Request\r\n", 0), 0u) << reply;
  EXPECT_NE(reply.find("Connection: close"), std::string::npos) << reply;
}

TEST_F(MetricsHttpServerTest, OversizedHeadersGet431) {
  const std::string reply = Exchange(
      server_->port(), "GET /metrics HTTP/1.1\r\nX-Big: " + std::string(20000, 'a') + "\r\n\r\n");
  EXPECT_EQ(reply.rfind("HTTP/1.1 431 Request Header Fields Too Large\r\n", 0), 0u) << reply;
}

TEST_F(MetricsHttpServerTest, WellFormedRequestsAreServedAfterBadOnes) {
  (void)Exchange(server_->port(), "\x01\x02\x03 garbage\r\n\r\n");
  const std::string reply =
      Exchange(server_->port(), "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(reply.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << reply;
  EXPECT_NE(reply.find("up 1"), std::string::npos) << reply;
}

TEST_F(MetricsHttpServerTest, AClientThatSendsNothingGetsNoAnswer) {
  EXPECT_EQ(Exchange(server_->port(), ""), "");
}

}  // namespace
}  // namespace relayout::server
