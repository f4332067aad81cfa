// A small blocking HTTP/1.1 client for loopback calls (CLI -> server, supervisor -> server): one
// keep-alive connection, Content-Length and chunked bodies, no TLS. It exists so that the CLI and
// the supervisor, which start once per job, need not load an HTTP library with OpenSSL behind it
// (that alone doubled their start-up time). Not thread-safe.
#pragma once

#include <functional>
#include <map>
#include <string>

#include "base/status.h"

namespace cairn {

struct HttpResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
  std::string Header(const std::string& name) const;
};

class HttpClient {
 public:
  // `base_url` is http://host:port (host a name or an IPv4 address), or unix:/path/to/socket.
  explicit HttpClient(std::string base_url, int timeout_ms = 120000);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  void SetBearerToken(const std::string& token) { token_ = token; }
  // Makes every new connection prove who answers before anything else goes over it: `path(nonce)`
  // is asked (GET, without the bearer token) with a fresh random nonce, and the connection is used
  // only if `accept(body, nonce)` is true (else the request fails as Unavailable, with
  // `refused_identity()` set). A connection kept alive is not asked again: it is the one that
  // proved itself.
  void SetIdentityCheck(
      std::function<std::string(const std::string& nonce)> path,
      std::function<bool(const std::string& body, const std::string& nonce)> accept) {
    identity_path_ = std::move(path);
    identity_accept_ = std::move(accept);
  }
  bool refused_identity() const { return refused_identity_; }
  void SetTimeout(int ms) { timeout_ms_ = ms; }

  // Sends a request. `sink`, when given, receives the body as it arrives (and `body` stays empty);
  // returning false from it aborts. Unavailable when the server cannot be reached.
  Result<HttpResponse> Request(const std::string& method, const std::string& path,
                               const std::string& body = "",
                               const std::string& content_type = "application/json",
                               const std::function<bool(const char*, size_t)>& sink = nullptr);

  static std::string UrlEncode(const std::string& s);
  // Whether the last Request failed before sending anything because nothing accepted the connection
  // (so it is safe to retry elsewhere).
  bool last_connect_failed() const { return connect_failed_; }

 private:
  Status Connect();
  void Close();
  Status SendAll(const std::string& data);
  Result<HttpResponse> ReadResponse(const std::function<bool(const char*, size_t)>& sink);
  bool ReadMore();  // appends to buf_; false on EOF or error

  std::string url_, host_, socket_path_;
  int port_ = 80;
  int timeout_ms_;
  std::string token_;
  int fd_ = -1;
  bool timed_out_ = false;
  bool connect_failed_ = false;
  std::string buf_;
  size_t pos_ = 0;
  std::function<std::string(const std::string&)> identity_path_;
  std::function<bool(const std::string&, const std::string&)> identity_accept_;
  bool refused_identity_ = false;
};

}  // namespace cairn
