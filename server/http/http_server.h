// HttpServer: an HTTP/1.1 server whose answers may be produced later, from
// any thread, and streamed in pieces: the transport of the OpenAI-compatible
// API (openai_api.h). Boost.Beast on an io_context run by a few threads; each
// connection runs on its own strand.
//
// A connection reads one request (headers up to max_header_bytes, body up to
// max_body_bytes, within idle_timeout), hands it to the handler with an
// HttpExchange, and answers it through that exchange: one whole response
// (Respond), or a streamed one (StartStream, Write..., End) sent with
// Transfer-Encoding: chunked (HTTP/1.0: no length, then the connection
// closes). Keep-alive is honoured; requests are answered one at a time, in
// order. A request that fails to parse is answered by the server itself
// (400, 413 past the body limit, 431 past the header limit, with
// options.error_body) and the connection closes. "Expect: 100-continue" is
// answered before the body is read, so a client learns of a 413 without
// sending it.
//
// While a response is pending the connection keeps reading, so that a
// client that goes away is noticed at once: the exchange is then aborted
// (its on_abort runs, so the handler can cancel the work behind it).
//
// Backpressure: bytes written to an exchange wait in memory until the
// socket takes them. Past options.max_queued_bytes waiting, the client is
// too slow: the exchange is aborted and the connection closed, so a stalled
// reader never grows the server's memory without bound. A write that makes
// no progress for idle_timeout also closes the connection.
//
// Thread safety: HttpExchange methods may be called from any thread; the
// handler runs on the connection's strand. Start and the destructor are
// called from the owning thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "engine/base/status.h"

namespace relayout::server {

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string path;    // the target without its query
  bool has_authorization = false;
  std::string authorization;  // the Authorization header's value
  std::string body;
};

struct HttpHeader {
  std::string name;
  std::string value;
};

// One request's answer, shared by the server and the handler. Exactly one
// of Respond or StartStream (then any number of Write, then End) is called;
// later calls are ignored.
class HttpExchange {
 public:
  // Called on the connection's strand; see SetOnAbort / SetOnComplete.
  using AbortCallback = std::function<void()>;
  using CompleteCallback = std::function<void(bool delivered)>;

  // A whole response with Content-Length.
  void Respond(int status, std::string_view content_type, std::string_view body,
               std::span<const HttpHeader> extra_headers = {});
  // The head of a streamed response.
  void StartStream(int status, std::string_view content_type,
                   std::span<const HttpHeader> extra_headers = {});
  // Queues a piece of the streamed body (empty pieces are dropped). False
  // once the exchange is aborted: the client left, or more than
  // max_queued_bytes would wait (which aborts it).
  bool Write(std::string_view bytes);
  // The end of the streamed body.
  void End();

  // Set by the handler before it returns. on_abort runs at most once, when
  // the client leaves or is too slow before the response was written whole.
  // on_complete runs exactly once: delivered true when the last byte was
  // written, false when aborted or when the server stopped first.
  void SetOnAbort(AbortCallback on_abort);
  void SetOnComplete(CompleteCallback on_complete);

  // True once aborted.
  bool aborted() const;

  // The server's side (http_server.cc). `wake` asks the connection to
  // collect the queued bytes.
  HttpExchange(int http_version, bool keep_alive, size_t max_queued_bytes,
               std::function<void()> wake);
  HttpExchange(const HttpExchange&) = delete;
  HttpExchange& operator=(const HttpExchange&) = delete;
  struct Taken {
    std::string bytes;
    bool ended = false;    // the response's last bytes are in `bytes` or were taken
    bool aborted = false;  // stop: close the connection
  };
  Taken Take();
  // Aborts (on_abort if not yet complete) and completes with delivered false.
  void Abort();
  // Completes with delivered true.
  void Complete();
  // Whether the connection may be reused after this response.
  bool keep_alive() const;

 private:
  // Appends and wakes the connection (outside the lock) when needed.
  void Queue(std::string bytes, bool ends);
  void FinishOnce(bool delivered);

  const int http_version_;  // 10 or 11
  const size_t max_queued_bytes_;
  const std::function<void()> wake_;

  mutable std::mutex mu_;
  bool keep_alive_;               // GUARDED_BY(mu_)
  bool started_ = false;          // GUARDED_BY(mu_): Respond or StartStream called
  bool chunked_ = false;          // GUARDED_BY(mu_)
  bool ended_ = false;            // GUARDED_BY(mu_)
  bool aborted_ = false;          // GUARDED_BY(mu_)
  bool completed_ = false;        // GUARDED_BY(mu_)
  bool wake_pending_ = false;     // GUARDED_BY(mu_)
  std::string queued_;            // GUARDED_BY(mu_)
  AbortCallback on_abort_;        // GUARDED_BY(mu_)
  CompleteCallback on_complete_;  // GUARDED_BY(mu_)
};

struct HttpServerOptions {
  std::string address = "127.0.0.1:8000";  // host:port; port 0 picks a free one
  std::string flag = "--http-listen";      // names the address in errors
  int threads = 2;                         // io threads (handlers only parse and queue)
  size_t max_header_bytes = 16 << 10;
  size_t max_body_bytes = 4 << 20;
  // Reading a request (from its first byte, or idle keep-alive), and each
  // write that makes no progress.
  std::chrono::milliseconds idle_timeout = std::chrono::seconds(60);
  // Bytes of one response that may wait for a slow client.
  size_t max_queued_bytes = 1 << 20;
  // The body and content type of the answers the server gives itself (a
  // request that fails to parse); plain text when unset.
  std::function<std::string(int status, std::string_view message)> error_body;
  std::string error_content_type = "text/plain; charset=utf-8";
};

class HttpServer {
 public:
  using Handler = std::function<void(const HttpRequest& request,
                                     const std::shared_ptr<HttpExchange>& exchange)>;

  // Listens and serves on new threads. InvalidArgument for a malformed
  // address or thread count, Unavailable "http: cannot listen on ..." when
  // the bind fails.
  static Result<std::unique_ptr<HttpServer>> Start(HttpServerOptions options, Handler handler);

  // Stops accepting, closes every connection (aborting pending exchanges:
  // their on_abort and on_complete run here) and joins the threads. Writes
  // to exchanges after this are ignored.
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  uint16_t port() const { return port_; }

 private:
  struct Impl;
  HttpServer(std::unique_ptr<Impl> impl, uint16_t port);

  std::unique_ptr<Impl> impl_;
  uint16_t port_;
  std::vector<std::thread> threads_;
};

}  // namespace relayout::server
