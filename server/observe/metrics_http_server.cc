#include "server/observe/metrics_http_server.h"

#include <charconv>
#include <chrono>
#include <optional>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace relayout::server {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

constexpr auto kIdleTimeout = std::chrono::seconds(30);
constexpr uint32_t kMaxRequestBytes = 8192;

// One connection: read a request, answer it, repeat while keep-alive.
class HttpSession : public std::enable_shared_from_this<HttpSession> {
 public:
  HttpSession(tcp::socket socket, const MetricsHttpServer::Handler* handler)
      : stream_(std::move(socket)), handler_(handler) {}

  void Read() {
    parser_.emplace();
    parser_->header_limit(kMaxRequestBytes);
    parser_->body_limit(kMaxRequestBytes);
    stream_.expires_after(kIdleTimeout);
    http::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
  }

 private:
  void OnRead(beast::error_code ec) {
    if (ec) {
      // A client that spoke malformed HTTP gets told why before the
      // connection closes; one that went away or idled out does not.
      const std::optional<int> code = HttpParseErrorStatus(ec);
      if (!code) {
        beast::error_code ignored;
        stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
        return;
      }
      response_ = {};
      response_.version(11);
      response_.keep_alive(false);
      const auto answer = static_cast<http::status>(*code);
      response_.result(answer);
      response_.set(http::field::content_type, "text/plain; charset=utf-8");
      const auto reason = http::obsolete_reason(answer);
      response_.body() =
          StrCat(std::string(reason.data(), reason.size()), ": ", ec.message(), "\n");
      Write();
      return;
    }
    const http::request<http::string_body>& request = parser_->get();
    response_ = {};
    response_.version(request.version());
    response_.keep_alive(request.keep_alive());
    if (request.method() != http::verb::get && request.method() != http::verb::head) {
      response_.result(http::status::method_not_allowed);
      response_.set(http::field::allow, "GET, HEAD");
      response_.set(http::field::content_type, "text/plain; charset=utf-8");
      response_.body() = "method not allowed\n";
    } else {
      std::string_view target(request.target().data(), request.target().size());
      const size_t query = target.find('?');
      if (query != std::string_view::npos) target = target.substr(0, query);
      HttpResponse r = (*handler_)(target);
      response_.result(static_cast<http::status>(r.status));
      response_.set(http::field::content_type, r.content_type);
      if (request.method() != http::verb::head) response_.body() = std::move(r.body);
    }
    Write();
  }

  void Write() {
    response_.prepare_payload();
    http::async_write(stream_, response_,
                      [self = shared_from_this()](beast::error_code write_ec, size_t) {
                        if (write_ec || !self->response_.keep_alive()) {
                          beast::error_code ignored;
                          self->stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
                          return;
                        }
                        self->Read();
                      });
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> response_;
  const MetricsHttpServer::Handler* handler_;
};

}  // namespace

std::optional<int> HttpParseErrorStatus(const boost::system::error_code& ec) {
  if (ec == http::error::header_limit) {
    return static_cast<int>(http::status::request_header_fields_too_large);
  }
  if (ec == http::error::body_limit) return static_cast<int>(http::status::payload_too_large);
  if (ec.category() == http::make_error_code(http::error::bad_method).category() &&
      ec != http::error::end_of_stream && ec != http::error::partial_message) {
    return static_cast<int>(http::status::bad_request);
  }
  return std::nullopt;
}

struct MetricsHttpServer::Impl {
  explicit Impl(Handler h) : handler(std::move(h)), acceptor(io) {}

  void Accept() {
    acceptor.async_accept(io, [this](beast::error_code ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
      if (!ec) std::make_shared<HttpSession>(std::move(socket), &handler)->Read();
      Accept();
    });
  }

  Handler handler;
  asio::io_context io{1};
  tcp::acceptor acceptor;
};

Status SplitHostPort(std::string_view address, std::string_view flag, std::string* host,
                     uint16_t* port) {
  const size_t colon = address.rfind(':');
  if (colon == std::string_view::npos) {
    return Status::InvalidArgument(flag, StrCat("\"", address, "\" is not host:port"));
  }
  std::string_view h = address.substr(0, colon);
  const std::string_view p = address.substr(colon + 1);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), value);
  if (p.empty() || ec != std::errc() || end != p.data() + p.size() || value > 65535) {
    return Status::InvalidArgument(flag, StrCat("\"", address, "\": bad port"));
  }
  *host = h.empty() ? "0.0.0.0" : std::string(h);
  *port = static_cast<uint16_t>(value);
  return Status::OK();
}

Status ListenOn(tcp::acceptor* acceptor, std::string_view address, std::string_view flag,
                std::string_view what) {
  std::string host;
  uint16_t port = 0;
  RETURN_IF_ERROR(SplitHostPort(address, flag, &host, &port));
  beast::error_code ec;
  const asio::ip::address ip = asio::ip::make_address(host, ec);
  if (ec) return Status::InvalidArgument(flag, StrCat("\"", host, "\" is not an IP address"));
  const tcp::endpoint endpoint(ip, port);
  const auto fail = [&](const char* step) {
    return Status::Unavailable(
        what, StrCat("cannot listen on ", address, ": ", step, ": ", ec.message()));
  };
  if (acceptor->open(endpoint.protocol(), ec); ec) return fail("open");
  if (acceptor->set_option(asio::socket_base::reuse_address(true), ec); ec) {
    return fail("reuse_address");
  }
  if (acceptor->bind(endpoint, ec); ec) return fail("bind");
  if (acceptor->listen(asio::socket_base::max_listen_connections, ec); ec) return fail("listen");
  return Status::OK();
}

Result<std::unique_ptr<MetricsHttpServer>> MetricsHttpServer::Start(const std::string& address,
                                                                    Handler handler) {
  auto impl = std::make_unique<Impl>(std::move(handler));
  RETURN_IF_ERROR(ListenOn(&impl->acceptor, address, "--metrics-listen", "metrics"));
  beast::error_code ec;
  const uint16_t bound = impl->acceptor.local_endpoint(ec).port();
  if (ec) return Status::Unavailable("metrics", StrCat("local_endpoint: ", ec.message()));
  impl->Accept();
  std::unique_ptr<MetricsHttpServer> server(new MetricsHttpServer(std::move(impl), bound));
  return server;
}

MetricsHttpServer::MetricsHttpServer(std::unique_ptr<Impl> impl, uint16_t port)
    : impl_(std::move(impl)), port_(port) {
  thread_ = std::thread([io = &impl_->io] { io->run(); });
}

MetricsHttpServer::~MetricsHttpServer() {
  // Stopping the loop abandons the sessions' pending operations; they are
  // destroyed with the io_context, the acceptor closes with Impl.
  impl_->io.stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace relayout::server
