#include "server/http/http_server.h"

#include <optional>
#include <utility>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "server/observe/metrics_http_server.h"

namespace relayout::server {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

// The io_context, for as long as the server runs: an engine thread may
// write to an exchange after it is gone. (An exchange holds no executor of
// its own: a strand executor that outlives its io_context touches freed
// memory when destroyed.)
struct LiveFlag {
  std::mutex mu;
  asio::io_context* io = nullptr;  // GUARDED_BY(mu); null once stopping
};

std::string StatusLine(int http_version, int status) {
  const auto reason = http::obsolete_reason(static_cast<http::status>(status));
  return StrCat(http_version == 10 ? "HTTP/1.0 " : "HTTP/1.1 ", status, " ",
                std::string_view(reason.data(), reason.size()), "\r\n");
}

void AppendHeaders(std::span<const HttpHeader> headers, std::string* out) {
  for (const HttpHeader& h : headers) *out += StrCat(h.name, ": ", h.value, "\r\n");
}

std::string ChunkSize(size_t n) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string digits;
  do {
    digits.insert(digits.begin(), kHex[n & 15]);
    n >>= 4;
  } while (n != 0);
  return digits;
}

}  // namespace

// ---- HttpExchange ----------------------------------------------------------

HttpExchange::HttpExchange(int http_version, bool keep_alive, size_t max_queued_bytes,
                           std::function<void()> wake)
    : http_version_(http_version),
      max_queued_bytes_(max_queued_bytes),
      wake_(std::move(wake)),
      keep_alive_(keep_alive) {}

void HttpExchange::Respond(int status, std::string_view content_type, std::string_view body,
                           std::span<const HttpHeader> extra_headers) {
  std::string bytes;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (started_) return;
    started_ = true;
    bytes = StatusLine(http_version_, status);
    bytes += StrCat("Content-Type: ", content_type, "\r\nContent-Length: ", body.size(), "\r\n");
    AppendHeaders(extra_headers, &bytes);
    if (!keep_alive_) {
      bytes += "Connection: close\r\n";
    } else if (http_version_ == 10) {
      bytes += "Connection: keep-alive\r\n";
    }
    bytes += "\r\n";
  }
  bytes.append(body);
  Queue(std::move(bytes), /*ends=*/true);
}

void HttpExchange::StartStream(int status, std::string_view content_type,
                               std::span<const HttpHeader> extra_headers) {
  std::string bytes;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (started_) return;
    started_ = true;
    // HTTP/1.0 has no chunked encoding: the body ends when the connection does.
    chunked_ = http_version_ == 11;
    if (!chunked_) keep_alive_ = false;
    bytes = StatusLine(http_version_, status);
    bytes += StrCat("Content-Type: ", content_type, "\r\nCache-Control: no-cache\r\n");
    AppendHeaders(extra_headers, &bytes);
    if (chunked_) bytes += "Transfer-Encoding: chunked\r\n";
    if (!keep_alive_) bytes += "Connection: close\r\n";
    bytes += "\r\n";
  }
  Queue(std::move(bytes), /*ends=*/false);
}

bool HttpExchange::Write(std::string_view piece) {
  if (piece.empty()) return !aborted();
  std::string bytes;
  bool wake = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (aborted_) return false;
    if (!started_ || ended_) return true;
    if (chunked_) {
      bytes = StrCat(ChunkSize(piece.size()), "\r\n", piece, "\r\n");
    } else {
      bytes.assign(piece);
    }
    if (queued_.size() + bytes.size() > max_queued_bytes_) {
      // The client reads slower than we produce: stop rather than buffer
      // without bound. The connection closes when it collects this.
      aborted_ = true;
      queued_.clear();
    } else {
      queued_ += bytes;
    }
    if (!wake_pending_) wake = wake_pending_ = true;
  }
  if (wake) wake_();
  return !aborted();
}

void HttpExchange::End() {
  bool chunked = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!started_ || ended_) return;
    chunked = chunked_;
  }
  Queue(chunked ? "0\r\n\r\n" : "", /*ends=*/true);
}

void HttpExchange::Queue(std::string bytes, bool ends) {
  bool wake = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (aborted_ || ended_) return;
    queued_ += bytes;
    if (ends) ended_ = true;
    if (!wake_pending_) wake = wake_pending_ = true;
  }
  if (wake) wake_();
}

void HttpExchange::SetOnAbort(AbortCallback on_abort) {
  std::lock_guard<std::mutex> lock(mu_);
  on_abort_ = std::move(on_abort);
}

void HttpExchange::SetOnComplete(CompleteCallback on_complete) {
  std::lock_guard<std::mutex> lock(mu_);
  on_complete_ = std::move(on_complete);
}

bool HttpExchange::aborted() const {
  std::lock_guard<std::mutex> lock(mu_);
  return aborted_;
}

bool HttpExchange::keep_alive() const {
  std::lock_guard<std::mutex> lock(mu_);
  return keep_alive_;
}

HttpExchange::Taken HttpExchange::Take() {
  std::lock_guard<std::mutex> lock(mu_);
  wake_pending_ = false;
  Taken t;
  t.bytes = std::move(queued_);
  queued_.clear();
  t.ended = ended_;
  t.aborted = aborted_;
  return t;
}

void HttpExchange::Abort() {
  AbortCallback on_abort;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (completed_) return;
    aborted_ = true;
    queued_.clear();
    on_abort = std::move(on_abort_);
  }
  if (on_abort) on_abort();
  FinishOnce(false);
}

void HttpExchange::Complete() { FinishOnce(true); }

void HttpExchange::FinishOnce(bool delivered) {
  CompleteCallback on_complete;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (completed_) return;
    completed_ = true;
    on_complete = std::move(on_complete_);
    on_abort_ = nullptr;
  }
  if (on_complete) on_complete(delivered);
}

// ---- Connection ------------------------------------------------------------

struct HttpServer::Impl {
  Impl(HttpServerOptions o, Handler h)
      : options(std::move(o)), handler(std::move(h)), io(options.threads), acceptor(io) {
    live->io = &io;
  }

  void Accept();

  const HttpServerOptions options;
  const Handler handler;
  const std::shared_ptr<LiveFlag> live = std::make_shared<LiveFlag>();
  asio::io_context io;  // destroyed before the members above: connections die with it
  tcp::acceptor acceptor;
};

namespace {

// One connection, on its strand. States: reading a request; then a response
// pending (the handler's exchange), during which a "watch" read notices the
// client leaving; then the next request (keep-alive) or the end.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(tcp::socket socket, const HttpServerOptions* options,
             const HttpServer::Handler* handler, std::shared_ptr<LiveFlag> live)
      : stream_(std::move(socket)),
        linger_(stream_.get_executor()),
        options_(options),
        handler_(handler),
        live_(std::move(live)) {}
  ~Connection() {
    if (exchange_ != nullptr) exchange_->Abort();
  }

  void Start() {
    asio::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->Read(); });
  }

 private:
  void Read() {
    if (closed_) return;
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(options_->max_header_bytes));
    parser_->body_limit(options_->max_body_bytes);
    stream_.expires_after(options_->idle_timeout);
    http::async_read_header(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnHeader(ec); });
  }

  void OnHeader(beast::error_code ec) {
    if (ec) {
      OnReadError(ec);
      return;
    }
    const auto expect = parser_->get()[http::field::expect];
    if (beast::iequals(expect, "100-continue")) {
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      asio::async_write(stream_, asio::buffer(kContinue.data(), kContinue.size()),
                        [self = shared_from_this()](beast::error_code write_ec, size_t) {
                          if (write_ec) {
                            self->Close();
                            return;
                          }
                          self->ReadBody();
                        });
      return;
    }
    ReadBody();
  }

  void ReadBody() {
    stream_.expires_after(options_->idle_timeout);
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, size_t) {
                       if (ec) {
                         self->OnReadError(ec);
                         return;
                       }
                       self->Dispatch();
                     });
  }

  // A request that failed to parse is told why, then the connection closes;
  // one that ended (closed, reset, timed out) just closes.
  void OnReadError(beast::error_code ec) {
    const std::optional<int> status = HttpParseErrorStatus(ec);
    if (!status) {
      Close();
      return;
    }
    exchange_ = MakeExchange(11, /*keep_alive=*/false);
    const std::string body = options_->error_body ? options_->error_body(*status, ec.message())
                                                  : StrCat(ec.message(), "\n");
    exchange_->Respond(*status, options_->error_content_type, body);
    Pump();
  }

  std::shared_ptr<HttpExchange> MakeExchange(int version, bool keep_alive) {
    std::weak_ptr<Connection> weak = weak_from_this();
    auto wake = [weak, live = live_] {
      std::lock_guard<std::mutex> lock(live->mu);
      if (live->io == nullptr) return;
      asio::post(*live->io, [weak] {
        if (std::shared_ptr<Connection> self = weak.lock()) {
          asio::dispatch(self->stream_.get_executor(), [self] { self->Pump(); });
        }
      });
    };
    return std::make_shared<HttpExchange>(version, keep_alive, options_->max_queued_bytes,
                                          std::move(wake));
  }

  void Dispatch() {
    const http::request<http::string_body>& r = parser_->get();
    HttpRequest request;
    request.method.assign(r.method_string().data(), r.method_string().size());
    std::string_view target(r.target().data(), r.target().size());
    if (const size_t query = target.find('?'); query != std::string_view::npos) {
      target = target.substr(0, query);
    }
    request.path.assign(target);
    if (auto it = r.find(http::field::authorization); it != r.end()) {
      request.has_authorization = true;
      request.authorization.assign(it->value().data(), it->value().size());
    }
    request.body = std::move(parser_->get().body());
    exchange_ = MakeExchange(r.version() == 10 ? 10 : 11, r.keep_alive());
    (*handler_)(request, exchange_);
    Watch();
    Pump();
  }

  // While a response is pending: read on, so that a client that leaves is
  // noticed (its bytes, a pipelined request, are kept for the next Read).
  // The pending operation is also what keeps the connection alive while the
  // response waits (the exchange holds only a weak reference): with
  // max_header_bytes already buffered, it waits for the socket to fail
  // instead of reading more.
  void Watch() {
    if (watching_ || closed_) return;
    watching_ = true;
    stream_.expires_never();  // only the read's timer when a write is pending
    if (buffer_.size() >= options_->max_header_bytes) {
      stream_.socket().async_wait(
          tcp::socket::wait_error, [self = shared_from_this()](beast::error_code ec) {
            // Completed without an error: the socket has one (reset, hang-up).
            self->OnWatch(ec ? ec : beast::error_code(asio::error::connection_reset), 0);
          });
      return;
    }
    stream_.async_read_some(
        buffer_.prepare(4096),
        [self = shared_from_this()](beast::error_code ec, size_t n) { self->OnWatch(ec, n); });
  }

  void OnWatch(beast::error_code ec, size_t n) {
    watching_ = false;
    buffer_.commit(n);
    if (closed_) {
      linger_.cancel();
      return;
    }
    if (read_after_watch_) {  // the response is done: read the next request
      read_after_watch_ = false;
      if (ec && ec != asio::error::operation_aborted) {
        Close();
        return;
      }
      Read();
      return;
    }
    if (ec) {  // the client left while its response was pending
      // Unless its last bytes are being written: that write's completion
      // (which may be queued behind this) says whether they were delivered.
      if (writing_ && final_taken_) {
        peer_gone_ = true;
        return;
      }
      Close();
      return;
    }
    Watch();
  }

  // Collects what the exchange queued and writes it, one write at a time.
  void Pump() {
    if (closed_ || writing_ || exchange_ == nullptr) return;
    HttpExchange::Taken taken = exchange_->Take();
    if (taken.aborted) {
      Close();
      return;
    }
    if (taken.ended) final_taken_ = true;
    if (taken.bytes.empty()) {
      if (final_taken_) ResponseDone();
      return;
    }
    writing_ = true;
    write_buffer_ = std::move(taken.bytes);
    stream_.expires_after(options_->idle_timeout);  // the write's timer: a read may be pending
    asio::async_write(stream_, asio::buffer(write_buffer_),
                      [self = shared_from_this()](beast::error_code ec, size_t) {
                        self->writing_ = false;
                        self->write_buffer_.clear();
                        if (ec) {
                          self->Close();
                          return;
                        }
                        self->Pump();
                      });
  }

  void ResponseDone() {
    final_taken_ = false;
    const bool keep_alive = exchange_->keep_alive();
    std::shared_ptr<HttpExchange> done = std::move(exchange_);
    done->Complete();
    if (peer_gone_) {
      Close();
      return;
    }
    if (!keep_alive) {
      closed_ = true;
      beast::error_code ignored;
      stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
      // The client closes its side once it has read the response (the watch
      // then ends, and the connection with it); one that does not is closed
      // after idle_timeout, since the watch has no timer.
      if (watching_) {
        linger_.expires_after(options_->idle_timeout);
        linger_.async_wait([self = shared_from_this()](beast::error_code ec) {
          if (ec) return;
          beast::error_code ignored_close;
          self->stream_.socket().close(ignored_close);
        });
      }
      return;
    }
    if (watching_) {
      read_after_watch_ = true;
      beast::error_code ignored;
      stream_.socket().cancel(ignored);
      return;
    }
    Read();
  }

  // Aborts a pending exchange and closes the socket (pending operations
  // then complete with errors and do nothing).
  void Close() {
    if (closed_) return;
    closed_ = true;
    if (exchange_ != nullptr) {
      std::shared_ptr<HttpExchange> aborted = std::move(exchange_);
      aborted->Abort();
    }
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.socket().close(ignored);
  }

  beast::tcp_stream stream_;
  asio::steady_timer linger_;  // a closing connection's wait for the client's close
  const HttpServerOptions* options_;
  const HttpServer::Handler* handler_;
  const std::shared_ptr<LiveFlag> live_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::shared_ptr<HttpExchange> exchange_;  // the pending response
  std::string write_buffer_;                // the write in flight
  bool writing_ = false;
  bool watching_ = false;
  bool read_after_watch_ = false;
  bool final_taken_ = false;
  bool peer_gone_ = false;  // the watch read ended while the last write was in flight
  bool closed_ = false;
};

}  // namespace

void HttpServer::Impl::Accept() {
  acceptor.async_accept(asio::make_strand(io), [this](beast::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
    if (!ec) {
      beast::error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);  // SSE chunks go out as written
      std::make_shared<Connection>(std::move(socket), &options, &handler, live)->Start();
    }
    Accept();
  });
}

Result<std::unique_ptr<HttpServer>> HttpServer::Start(HttpServerOptions options, Handler handler) {
  if (options.threads < 1 || options.threads > 64) {
    return Status::InvalidArgument("http threads", StrCat(options.threads, ", must be 1..64"));
  }
  auto impl = std::make_unique<Impl>(std::move(options), std::move(handler));
  RETURN_IF_ERROR(ListenOn(&impl->acceptor, impl->options.address, impl->options.flag, "http"));
  beast::error_code ec;
  const uint16_t port = impl->acceptor.local_endpoint(ec).port();
  if (ec) return Status::Unavailable("http", StrCat("local_endpoint: ", ec.message()));
  impl->Accept();
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl), port));
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl, uint16_t port)
    : impl_(std::move(impl)), port_(port) {
  for (int i = 0; i < impl_->options.threads; ++i) {
    threads_.emplace_back([io = &impl_->io] { io->run(); });
  }
}

HttpServer::~HttpServer() {
  {
    std::lock_guard<std::mutex> lock(impl_->live->mu);
    impl_->live->io = nullptr;
  }
  impl_->io.stop();
  for (std::thread& t : threads_) t.join();
  // The io_context's destruction drops the pending handlers, and with them
  // the connections, whose exchanges are aborted.
  impl_.reset();
}

}  // namespace relayout::server
