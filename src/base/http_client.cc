#include "base/http_client.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/util.h"

namespace cairn {

std::string HttpResponse::Header(const std::string& name) const {
  auto it = headers.find(ToLower(name));
  return it == headers.end() ? "" : it->second;
}

HttpClient::HttpClient(std::string base_url, int timeout_ms)
    : url_(std::move(base_url)), timeout_ms_(timeout_ms) {
  if (StartsWith(url_, "unix:")) {
    socket_path_ = url_.substr(5);
    host_ = "localhost";
    return;
  }
  std::string rest = StartsWith(url_, "http://") ? url_.substr(7) : url_;
  rest = rest.substr(0, rest.find('/'));
  size_t colon = rest.rfind(':');
  host_ = colon == std::string::npos ? rest : rest.substr(0, colon);
  if (colon != std::string::npos) port_ = atoi(rest.substr(colon + 1).c_str());
}

HttpClient::~HttpClient() { Close(); }

void HttpClient::Close() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
  buf_.clear();
  pos_ = 0;
}

Status HttpClient::Connect() {
  if (!socket_path_.empty()) {
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    if (socket_path_.size() >= sizeof a.sun_path)
      return InvalidArgument("socket path too long: " + socket_path_);
    memcpy(a.sun_path, socket_path_.data(), socket_path_.size());
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return Unavailable(std::string("socket: ") + strerror(errno));
    if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      Status s = Unavailable("cannot connect to " + socket_path_ + ": " + strerror(errno));
      close(fd);
      return s;
    }
    fd_ = fd;
    return Status::Ok();
  }
  addrinfo hints{}, *res = nullptr;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  if (getaddrinfo(host_.c_str(), std::to_string(port_).c_str(), &hints, &res) != 0 || !res)
    return Unavailable("cannot resolve " + host_);
  Status out = Unavailable("cannot connect to " + url_);
  for (addrinfo* a = res; a; a = a->ai_next) {
    int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      fd_ = fd;
      out = Status::Ok();
      break;
    }
    out = Unavailable("cannot connect to " + url_ + ": " + strerror(errno));
    close(fd);
  }
  freeaddrinfo(res);
  return out;
}

Status HttpClient::SendAll(const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = send(fd_, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Unavailable(std::string("send: ") + strerror(errno));
    }
    off += static_cast<size_t>(n);
  }
  return Status::Ok();
}

bool HttpClient::ReadMore() {
  if (pos_ > 0 && pos_ == buf_.size()) {
    buf_.clear();
    pos_ = 0;
  }
  pollfd p{fd_, POLLIN, 0};
  int r;
  do r = poll(&p, 1, timeout_ms_);
  while (r < 0 && errno == EINTR);
  if (r == 0) timed_out_ = true;
  if (r <= 0) return false;
  char tmp[65536];
  ssize_t n;
  do n = recv(fd_, tmp, sizeof tmp, 0);
  while (n < 0 && errno == EINTR);
  if (n <= 0) return false;
  buf_.append(tmp, static_cast<size_t>(n));
  return true;
}

Result<HttpResponse> HttpClient::ReadResponse(
    const std::function<bool(const char*, size_t)>& sink) {
  HttpResponse res;
  size_t end;
  while ((end = buf_.find("\r\n\r\n", pos_)) == std::string::npos)
    if (!ReadMore()) return Unavailable("the server closed the connection");
  std::string head = buf_.substr(pos_, end - pos_);
  pos_ = end + 4;
  auto lines = Split(head, '\n');
  if (lines.empty() || sscanf(lines[0].c_str(), "HTTP/%*d.%*d %d", &res.status) != 1)
    return Internal("malformed HTTP status line");
  for (size_t i = 1; i < lines.size(); ++i) {
    size_t colon = lines[i].find(':');
    if (colon == std::string::npos) continue;
    res.headers[ToLower(Trim(lines[i].substr(0, colon)))] = Trim(lines[i].substr(colon + 1));
  }
  auto emit = [&](const char* p, size_t n) {
    return sink ? sink(p, n) : (res.body.append(p, n), true);
  };
  bool chunked = ToLower(res.Header("transfer-encoding")).find("chunked") != std::string::npos;
  if (chunked) {
    for (;;) {
      size_t eol;
      while ((eol = buf_.find("\r\n", pos_)) == std::string::npos)
        if (!ReadMore()) return Unavailable("truncated chunked body");
      size_t len = strtoul(buf_.substr(pos_, eol - pos_).c_str(), nullptr, 16);
      pos_ = eol + 2;
      while (buf_.size() - pos_ < len + 2)
        if (!ReadMore()) return Unavailable("truncated chunk");
      if (len == 0) {
        pos_ += 2;
        break;
      }
      if (!emit(buf_.data() + pos_, len)) return Internal("aborted");
      pos_ += len + 2;
    }
  } else if (!res.Header("content-length").empty()) {
    size_t left = strtoull(res.Header("content-length").c_str(), nullptr, 10);
    while (left > 0) {
      if (pos_ == buf_.size() && !ReadMore()) return Unavailable("truncated body");
      size_t take = std::min(left, buf_.size() - pos_);
      if (!emit(buf_.data() + pos_, take)) return Internal("aborted");
      pos_ += take;
      left -= take;
    }
  }
  if (pos_ == buf_.size()) {
    buf_.clear();
    pos_ = 0;
  }
  if (ToLower(res.Header("connection")) == "close") Close();
  return res;
}

Result<HttpResponse> HttpClient::Request(const std::string& method, const std::string& path,
                                         const std::string& body, const std::string& content_type,
                                         const std::function<bool(const char*, size_t)>& sink) {
  std::string req = method + " " + path + " HTTP/1.1\r\nHost: " + host_ + ":" +
                    std::to_string(port_) + "\r\nConnection: keep-alive\r\n";
  if (!token_.empty()) req += "Authorization: Bearer " + token_ + "\r\n";
  if (!body.empty() || method == "POST" || method == "PUT" || method == "PATCH")
    req += "Content-Type: " + content_type + "\r\nContent-Length: " + std::to_string(body.size()) +
           "\r\n";
  req += "\r\n";
  // Small bodies go in the same send as the head; big ones (uploads) are sent from where they are.
  bool separate = body.size() > (64u << 10);
  if (!separate) req += body;
  // A kept-alive connection the server has since closed fails on first use: retry once, fresh.
  for (int attempt = 0; attempt < 2; ++attempt) {
    bool reused = fd_ >= 0;
    timed_out_ = false;
    connect_failed_ = false;
    if (!reused) {
      Status s = Connect();
      if (!s.ok()) {
        connect_failed_ = true;
        return s;
      }
      if (identity_path_) {
        // Before the token: the peer on this new connection proves who it is.
        refused_identity_ = false;
        std::string nonce = RandomHex(16);
        std::string ask = "GET " + identity_path_(nonce) + " HTTP/1.1\r\nHost: " + host_ + ":" +
                          std::to_string(port_) + "\r\nConnection: keep-alive\r\n\r\n";
        s = SendAll(ask);
        auto answer = s.ok() ? ReadResponse(nullptr) : Result<HttpResponse>(s);
        if (!answer.ok() || answer->status != 200 || answer->body.size() > 4096 ||
            !identity_accept_(answer->body, nonce)) {
          Close();
          refused_identity_ = answer.ok();
          return Unavailable("the server at " + url_ +
                             " did not prove it holds this workspace's secret");
        }
      }
    }
    Status s = SendAll(req);
    if (s.ok() && separate) s = SendAll(body);
    if (s.ok()) {
      auto res = ReadResponse(sink);
      if (res.ok()) return res;
      s = res.status();
    }
    Close();
    if (timed_out_)
      return Unavailable("no answer from " + url_ + " within " +
                         std::to_string(timeout_ms_ / 1000) + " s");
    if (!reused) return s;
  }
  return Unavailable("cannot reach " + url_);
}

std::string HttpClient::UrlEncode(const std::string& s) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == '/') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

}  // namespace cairn
