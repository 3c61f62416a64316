// A blocking HTTP/1.1 client over one loopback connection, for the tests of
// the HTTP server and the OpenAI API: raw requests out, whole responses
// (chunked bodies decoded) or raw bytes in. Reads give up after a timeout
// so that a broken server fails a test instead of hanging it.
#pragma once

#include <sys/socket.h>
#include <sys/time.h>

#include <cstdint>
#include <string>
#include <string_view>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "engine/base/status.h"

namespace relayout::server::testing {

class TestHttpClient {
 public:
  struct Response {
    int status = 0;  // 0: no response (the connection closed or timed out)
    boost::beast::http::response<boost::beast::http::string_body> message;
    std::string header(std::string_view name) const {
      auto it = message.find(boost::beast::string_view(name.data(), name.size()));
      return it == message.end() ? "" : std::string(it->value());
    }
    const std::string& body() const { return message.body(); }
  };

  explicit TestHttpClient(uint16_t port, int timeout_ms = 10000) : socket_(io_) {
    boost::system::error_code ec;
    socket_.connect({boost::asio::ip::make_address("127.0.0.1"), port}, ec);
    timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    setsockopt(socket_.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }

  // "POST /v1/chat/completions" with a body and optional extra header lines
  // ("Authorization: Bearer x\r\n").
  static std::string Request(std::string_view method, std::string_view path,
                             std::string_view body = {}, std::string_view extra_headers = {}) {
    std::string r = StrCat(method, " ", path, " HTTP/1.1\r\nHost: 127.0.0.1\r\n", extra_headers);
    if (!body.empty() || method == "POST") {
      r += StrCat("Content-Type: application/json\r\nContent-Length: ", body.size(), "\r\n");
    }
    return StrCat(r, "\r\n", body);
  }

  bool Send(std::string_view bytes) {
    boost::system::error_code ec;
    boost::asio::write(socket_, boost::asio::buffer(bytes.data(), bytes.size()), ec);
    return !ec;
  }

  // One whole response (a chunked body decoded).
  Response Read() {
    Response r;
    boost::system::error_code ec;
    boost::beast::http::read(socket_, buffer_, r.message, ec);
    if (!ec) r.status = static_cast<int>(r.message.result_int());
    return r;
  }

  Response Roundtrip(std::string_view method, std::string_view path, std::string_view body = {},
                     std::string_view extra_headers = {}) {
    if (!Send(Request(method, path, body, extra_headers))) return {};
    return Read();
  }

  // Raw bytes until `needle` appears in what was read so far (all of it is
  // returned), or "" when the connection ends or times out first.
  std::string ReadUntil(std::string_view needle) {
    while (raw_.find(needle) == std::string::npos) {
      char chunk[4096];
      boost::system::error_code ec;
      const size_t n = socket_.read_some(boost::asio::buffer(chunk), ec);
      if (ec) return "";
      raw_.append(chunk, n);
    }
    return raw_;
  }

  // True when the server closed the connection (a read sees its end).
  bool PeerClosed() {
    char c;
    boost::system::error_code ec;
    for (;;) {
      socket_.read_some(boost::asio::buffer(&c, 1), ec);
      if (ec == boost::asio::error::eof || ec == boost::asio::error::connection_reset) return true;
      if (ec) return false;  // timed out
    }
  }

  void Close() {
    boost::system::error_code ec;
    socket_.shutdown(boost::asio::ip::tcp::socket::shutdown_both, ec);
    socket_.close(ec);
  }

 private:
  boost::asio::io_context io_;
  boost::asio::ip::tcp::socket socket_;
  boost::beast::flat_buffer buffer_;
  std::string raw_;
};

}  // namespace relayout::server::testing
