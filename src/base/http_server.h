// The workspace server's HTTP/1.1 server: blocking, a worker thread per open connection (from a pool that
// grows on demand), keep-alive without a request cap, TCP_NODELAY, 256 KiB socket reads, one writev per
// answer and sendfile for files. Replaces cpp-httplib, whose Debian build read request bodies 4 KiB at a
// time, polled before every read and wrote headers and body in separate calls (measured: uploads capped at
// ~450 MB/s and a third of a small request's server time in those calls). The interface follows httplib's
// where the server used it, so handlers read the same.
//
// Requests: Content-Length or chunked bodies, `Expect: 100-continue`, percent-decoded paths, query
// parameters with repeated keys. Routes are std::regex patterns matched against the whole path, tried in
// the order they were added.
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
#include <thread>
#include <vector>

namespace cairn::http {

struct CaseLess {
  bool operator()(const std::string& a, const std::string& b) const;
};
using Headers = std::multimap<std::string, std::string, CaseLess>;
using Params = std::multimap<std::string, std::string>;

struct Request {
  std::string method;
  std::string path;    // percent-decoded, without the query
  std::string target;  // as sent
  Headers headers;
  Params params;
  std::string body;  // empty for routes that read the body themselves
  std::smatch matches;

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
  // A body of unknown length, ended by closing the connection (server-sent events): `step` is called
  // until it returns false or a write fails; each call writes what it has, waiting as it likes.
  void set_stream(const std::string& type, std::function<bool(DataSink& sink)> step);

  // Used by the server.
  size_t provider_length = 0;
  ContentProvider provider;
  std::function<void(bool)> release;
  int file_fd = -1;
  std::function<bool(DataSink& sink)> stream;
};

// Hands the request body to `receiver` piece by piece; false when the client stopped sending.
using ContentReader = std::function<bool(const std::function<bool(const char*, size_t)>& receiver)>;
using Handler = std::function<void(const Request&, Response&)>;
using ReaderHandler = std::function<void(const Request&, Response&, const ContentReader&)>;

class Server {
 public:
  enum class HandlerResponse { Handled, Unhandled };

  Server();
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  Server& Get(const std::string& pattern, Handler h) { return Add("GET", pattern, std::move(h)); }
  Server& Post(const std::string& pattern, Handler h) { return Add("POST", pattern, std::move(h)); }
  Server& Put(const std::string& pattern, Handler h) { return Add("PUT", pattern, std::move(h)); }
  Server& Put(const std::string& pattern, ReaderHandler h);
  Server& Patch(const std::string& pattern, Handler h) { return Add("PATCH", pattern, std::move(h)); }
  Server& Delete(const std::string& pattern, Handler h) { return Add("DELETE", pattern, std::move(h)); }

  // Runs before routing; Handled answers with what it put in the response.
  void set_pre_routing_handler(std::function<HandlerResponse(const Request&, Response&)> h) { pre_ = std::move(h); }
  void set_exception_handler(std::function<void(const Request&, Response&, std::exception_ptr)> h) { on_exception_ = std::move(h); }
  void set_max_body(size_t n) { max_body_ = n; }
  void set_timeout_seconds(int s) { timeout_s_ = s; }

  bool bind_to_port(const std::string& host, int port);
  int bind_to_any_port(const std::string& host);  // the port, or -1
  // Accepts until stop(); then waits for the connections' workers to finish.
  bool listen_after_bind();
  void stop();
  // Requests answered so far (the server uses it to tell when it has gone quiet).
  unsigned long long requests() const { return requests_.load(std::memory_order_relaxed); }
  // Whether stop() was called: long-lived responses end when it is.
  bool stopping() const { return stopping_.load(); }

 private:
  struct Route {
    std::regex pattern;
    Handler handler;
    ReaderHandler reader;
  };
  Server& Add(const std::string& method, const std::string& pattern, Handler h);
  bool Bind(const std::string& host, int port);
  void Worker();
  void Serve(int fd);
  // Serves one request from the connection; false when the connection must close.
  bool ServeOne(int fd, std::string& buf, size_t& pos);
  bool Dispatch(Request& req, Response& res, const ContentReader* reader, const Route** reader_route);

  std::map<std::string, std::vector<Route>> routes_;
  std::function<HandlerResponse(const Request&, Response&)> pre_;
  std::function<void(const Request&, Response&, std::exception_ptr)> on_exception_;
  size_t max_body_ = size_t{1} << 32;
  int timeout_s_ = 60;

  int listen_fd_ = -1;
  std::atomic<bool> stopping_{false};
  std::atomic<unsigned long long> requests_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<int> pending_;  // accepted connections no worker has taken yet
  std::set<int> open_;       // connections being served
  int workers_ = 0, idle_ = 0;
  static constexpr int kMaxWorkers = 128;
  std::vector<std::thread> threads_;
};

std::string PercentDecode(const std::string& s, bool plus_is_space);

}  // namespace cairn::http
