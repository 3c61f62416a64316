// MetricsHttpServer: a small HTTP/1.1 server on its own port and thread for
// Prometheus scrapes and HTTP probes, on Boost.Beast. (prometheus-cpp's
// civetweb Exposer is not used: civetweb's threads fail to start beside
// cuBLAS's thread-local storage, and it takes seconds to stop.)
//
// Every GET or HEAD request is answered by the handler from the request
// target's path (query dropped); other methods get 405. Keep-alive is
// honoured; a connection idle for 30 s or sending a request over 8 KiB is
// closed.
//
// Thread safety: the handler runs on the server's one thread; Start and the
// destructor are called from the owning thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include <boost/asio/ip/tcp.hpp>
#include <boost/system/error_code.hpp>

#include "engine/base/status.h"

namespace relayout::server {

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

// host:port -> (host, port). "[::1]:9464" and "127.0.0.1:0" are accepted;
// InvalidArgument "<flag>: ..." otherwise.
Status SplitHostPort(std::string_view address, std::string_view flag, std::string* host,
                     uint16_t* port);

// Opens, binds and listens `acceptor` on `address` (host:port, port 0 picks
// a free one); shared by the HTTP servers of the daemon. InvalidArgument
// "<flag>: ..." for a malformed address, Unavailable "<what>: cannot listen
// on ...: <step>: <reason>" when the bind fails.
Status ListenOn(boost::asio::ip::tcp::acceptor* acceptor, std::string_view address,
                std::string_view flag, std::string_view what);

// The status a request that Beast failed to parse gets (431 past the header
// limit, 413 past the body limit, 400 for malformed HTTP); none when the
// connection simply ended (closed, reset, timed out).
std::optional<int> HttpParseErrorStatus(const boost::system::error_code& ec);

class MetricsHttpServer {
 public:
  using Handler = std::function<HttpResponse(std::string_view path)>;

  // Listens on `address` ("127.0.0.1:9464"; port 0 picks a free one) and
  // serves on a new thread. InvalidArgument for a malformed address,
  // Unavailable "metrics: cannot listen on ...: <reason>" when the bind fails.
  static Result<std::unique_ptr<MetricsHttpServer>> Start(const std::string& address,
                                                          Handler handler);

  // Stops accepting, closes connections and joins the thread.
  ~MetricsHttpServer();
  MetricsHttpServer(const MetricsHttpServer&) = delete;
  MetricsHttpServer& operator=(const MetricsHttpServer&) = delete;

  // The bound port (the chosen one when 0 was asked).
  uint16_t port() const { return port_; }

 private:
  struct Impl;
  explicit MetricsHttpServer(std::unique_ptr<Impl> impl, uint16_t port);

  std::unique_ptr<Impl> impl_;
  uint16_t port_;
  std::thread thread_;
};

}  // namespace relayout::server
