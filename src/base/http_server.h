// The workspace server's HTTP/1.1 server, on Boost.Beast's parser over Asio (a well-kept, fuzzed
// implementation: strict request lines and fields, Content-Length/Transfer-Encoding conflicts
// refused, chunk sizes checked against the body limit).
//
// One event-loop thread owns every socket: it accepts, waits for a connection to become readable
// (an idle keep-alive connection holds no buffer and no thread), reads each request's head under a
// header limit and a deadline, and writes answers. A request whose head has arrived goes to a
// worker thread (a pool that grows on demand), which runs the pre-routing handler (the token check)
// on the head alone, then reads the body, within the route's limit, only for a request that was let
// through, and runs the handler. A worker never blocks on a socket: it hands reads and writes to
// the event loop and waits for them, each under the I/O timeout, so a stalled client costs one
// worker for at most that long.
//
// When the connection limit (or the process's descriptor limit) is reached, the longest-idle
// keep-alive connection is closed to make room. A connection counts as unproven until the
// pre-routing handler authorizes one of its requests (HandlerResponse::Authorized); past
// set_max_unproven_per_address such connections from one address, the oldest of them is closed for
// the new one, so one address holds at most that many of the server's slots without a credential.
// With TLS (set_tls) every connection is TLS.
//
// Requests: percent-decoded paths, query parameters with repeated keys, `Expect: 100-continue`,
// streamed bodies for uploads. Paths and query parameters must be UTF-8 (400 otherwise). Routes are
// std::regex patterns matched against the whole path, tried in the order they were added. The
// interface follows cpp-httplib's, which the server used first, so handlers read the same.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <map>
#include <mutex>
#include <regex>
#include <set>
#include <string>
#include <memory>
#include <thread>
#include <vector>

#include "base/status.h"

namespace cairn::http {

struct CaseLess {
  bool operator()(const std::string& a, const std::string& b) const;
};
using Headers = std::multimap<std::string, std::string, CaseLess>;
using Params = std::multimap<std::string, std::string>;

// Who is on the other end of a connection. On the Unix socket (add_unix_listener) the kernel says
// which process, user and group connected (SO_PEERCRED, read once at accept); over TCP only the
// address is known.
struct Peer {
  bool unix_socket = false;
  unsigned uid = ~0u, gid = ~0u;
  int pid = 0;
  std::string address;  // the IP address, or "unix:<uid>"
};

struct Request {
  std::string method;
  std::string path;    // percent-decoded, without the query
  std::string target;  // as sent
  Headers headers;
  Params params;
  std::string body;  // empty for routes that read the body themselves
  std::smatch matches;
  Peer peer;
  // The matched route's pattern and tag (Add's `tag`), set before the pre-routing handler runs; -1
  // and "" when no route matched.
  int route_tag = -1;
  std::string route_pattern;
  // What the pre-routing handler learned about the caller, for the handler (the server's own
  // type).
  std::shared_ptr<const void> auth;

  bool has_param(const std::string& k) const { return params.count(k) > 0; }
  std::string get_param_value(const std::string& k) const;
  bool has_header(const std::string& k) const { return headers.count(k) > 0; }
  std::string get_header_value(const std::string& k) const;
};

class DataSink {
 public:
  explicit DataSink(std::function<bool(const char*, size_t)> fn) : fn_(std::move(fn)) {}
  bool write(const char* data, size_t n) { return ok_ = ok_ && fn_(data, n); }
  bool ok() const { return ok_; }

 private:
  std::function<bool(const char*, size_t)> fn_;
  bool ok_ = true;
};

using ContentProvider = std::function<bool(size_t offset, size_t length, DataSink& sink)>;

struct Response {
  int status = -1;
  Headers headers;
  std::string body;

  void set_header(const std::string& k, const std::string& v);
  void set_content(const std::string& s, const std::string& type);
  void set_content(const char* s, size_t n, const std::string& type);
  // A body of `length` bytes produced piecewise; `release` runs once it is done or abandoned.
  void set_content_provider(size_t length, const std::string& type, ContentProvider provider,
                            std::function<void(bool)> release = nullptr);
  // A body read from `fd` (sent with sendfile; the server closes the descriptor).
  void set_file_content(int fd, size_t length, const std::string& type);
  // A body of unknown length, ended by closing the connection (server-sent events): `step` is
  // called until it returns false or a write fails; each call writes what it has, waiting as it
  // likes.
  void set_stream(const std::string& type, std::function<bool(DataSink& sink)> step);

  // Used by the server.
  size_t provider_length = 0;
  ContentProvider provider;
  std::function<void(bool)> release;
  int file_fd = -1;
  std::function<bool(DataSink& sink)> stream;
};

// A streamed request body, read once: piece by piece to a receiver, or straight into a file.
class ContentReader {
 public:
  using Receiver = std::function<bool(const char*, size_t)>;
  using Progress = std::function<void(uint64_t written)>;
  // `to_file` (optional) writes the body to a file descriptor itself (the server splices it from
  // a plain socket); without it, ToFile writes what `read` hands over.
  explicit ContentReader(std::function<bool(const Receiver&)> read,
                         std::function<bool(int, const Progress&, bool*)> to_file = nullptr)
      : read_(std::move(read)), to_file_(std::move(to_file)) {}
  // Hands the body to `receiver` piece by piece; false when the client stopped sending (or the
  // receiver refused a piece).
  bool operator()(const Receiver& receiver) const { return read_(receiver); }
  // Appends the body to `fd` at its offset, calling `progress` with the bytes written so far after
  // each piece. False when the body did not all arrive or a write failed (then *write_failed).
  bool ToFile(int fd, const Progress& progress, bool* write_failed) const;

 private:
  std::function<bool(const Receiver&)> read_;
  std::function<bool(int, const Progress&, bool*)> to_file_;
};
using Handler = std::function<void(const Request&, Response&)>;
using ReaderHandler = std::function<void(const Request&, Response&, const ContentReader&)>;

class Server {
 public:
  // Unhandled lets the request through; Authorized too, and it proved a credential (its connection
  // is no longer counted against its address's unproven connections); Handled answers it there.
  enum class HandlerResponse { Handled, Unhandled, Authorized };

  Server();
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // `max_body` bounds the route's request body (0: the server's default, set_max_body); a longer
  // one is answered 413 before it is read. `tag` is the caller's own label for the route (who may
  // call it), handed to the pre-routing handler as Request::route_tag.
  Server& Add(const std::string& method, const std::string& pattern, Handler h, size_t max_body = 0,
              int tag = -1);
  Server& AddReader(const std::string& method, const std::string& pattern, ReaderHandler h,
                    size_t max_body = 0, int tag = -1);
  Server& Get(const std::string& pattern, Handler h) {
    return Add("GET", pattern, std::move(h), 0);
  }
  Server& Post(const std::string& pattern, Handler h, size_t max_body = 0) {
    return Add("POST", pattern, std::move(h), max_body);
  }
  Server& Put(const std::string& pattern, Handler h, size_t max_body = 0) {
    return Add("PUT", pattern, std::move(h), max_body);
  }
  Server& Put(const std::string& pattern, ReaderHandler h, size_t max_body = 0) {
    return AddReader("PUT", pattern, std::move(h), max_body);
  }
  Server& Patch(const std::string& pattern, Handler h, size_t max_body = 0) {
    return Add("PATCH", pattern, std::move(h), max_body);
  }
  Server& Delete(const std::string& pattern, Handler h) {
    return Add("DELETE", pattern, std::move(h), 0);
  }
  // Every route as added: for the table the server documents and its test.
  struct RouteInfo {
    std::string method, pattern;
    int tag;
    size_t max_body;
    bool streams;
  };
  std::vector<RouteInfo> routes() const;

  // Runs on the head, before any of the body is read, on the thread that then runs the route's
  // handler; Handled answers with what it put in the response (and the body is never read). It may
  // set Request::auth for the handler.
  void set_pre_routing_handler(std::function<HandlerResponse(Request&, Response&)> h) {
    pre_ = std::move(h);
  }
  void set_exception_handler(std::function<void(const Request&, Response&, std::exception_ptr)> h) {
    on_exception_ = std::move(h);
  }
  // The default body limit of routes that name none.
  void set_max_body(size_t n) { max_body_ = n; }
  // Each read or write of a request in progress must make progress within this long.
  void set_timeout_seconds(int s) { timeout_s_ = s; }
  // A keep-alive connection with no request in progress is closed after this long.
  void set_idle_timeout_seconds(int s) { idle_timeout_s_ = s; }
  // At most this many open connections; past it the longest-idle one is closed for a new one.
  void set_max_connections(size_t n) { max_connections_ = n; }
  // At most this many connections from one address that have not yet proven a credential (0: no
  // cap); past it the oldest of them is closed.
  void set_max_unproven_per_address(size_t n) { max_unproven_per_address_ = n; }
  // Serves TLS with this certificate chain and key (PEM files). Call before bind.
  Status set_tls(const std::string& cert_file, const std::string& key_file);
  bool tls() const { return tls_ != nullptr; }

  bool bind_to_port(const std::string& host, int port);
  int bind_to_any_port(const std::string& host);  // the port, or -1
  // A second listener, plain HTTP on 127.0.0.1 (port 0: any), beside a TLS one: for this machine's
  // CLI and jobs, which speak plain HTTP. The port, or -1.
  int add_plain_loopback_listener(int port);
  // A listener on the Unix socket `path` (a stale socket file there is replaced), its file given
  // `mode`: each connection's Request::peer names the connecting process's user (SO_PEERCRED).
  Status add_unix_listener(const std::string& path, unsigned mode);
  // Accepts until stop(); then waits for the connections' workers to finish.
  bool listen_after_bind();
  void stop();
  // Routes `req` (method, target) and runs its handler as a request from a socket would, without
  // the pre-routing handler: for fuzz targets and tests. False when no route matches or the route
  // streams.
  bool DispatchForTest(Request& req, Response& res);
  // Open connections (the event loop's count).
  size_t connections() const { return connections_.load(std::memory_order_relaxed); }
  // Requests answered so far (the server uses it to tell when it has gone quiet).
  unsigned long long requests() const { return requests_.load(std::memory_order_relaxed); }
  // Whether stop() was called: long-lived responses end when it is.
  bool stopping() const { return stopping_.load(); }

 private:
  struct Route {
    std::regex pattern;
    Handler handler;
    ReaderHandler reader;
    size_t max_body = 0;
    int tag = -1;
    std::string source;  // the pattern as written
  };
  struct Impl;
  template <class Stream>
  friend class Connection;
  bool Bind(const std::string& host, int port, bool plain);
  const Route* FindRoute(Request& req) const;

  std::map<std::string, std::vector<Route>> routes_;
  std::function<HandlerResponse(Request&, Response&)> pre_;
  std::function<void(const Request&, Response&, std::exception_ptr)> on_exception_;
  size_t max_body_ = size_t{64} << 20;
  int timeout_s_ = 60;
  int idle_timeout_s_ = 120;
  size_t max_connections_ = 0;  // 0: from the descriptor limit
  std::atomic<size_t> max_unproven_per_address_{0};
  std::atomic<bool> stopping_{false};
  std::atomic<unsigned long long> requests_{0};
  std::atomic<size_t> connections_{0};
  std::unique_ptr<Impl> impl_;
  std::shared_ptr<void> tls_;  // the ssl::context, when set
};

std::string PercentDecode(const std::string& s, bool plus_is_space);
// Parses a request target into `req` (path, params); false when it is not UTF-8 once decoded.
bool ParseTarget(const std::string& target, Request& req);

}  // namespace cairn::http
