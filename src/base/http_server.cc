#include "base/http_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <strings.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace cairn::http {

bool CaseLess::operator()(const std::string& a, const std::string& b) const {
  return strcasecmp(a.c_str(), b.c_str()) < 0;
}

std::string Request::get_param_value(const std::string& k) const {
  auto it = params.find(k);
  return it == params.end() ? "" : it->second;
}

std::string Request::get_header_value(const std::string& k) const {
  auto it = headers.find(k);
  return it == headers.end() ? "" : it->second;
}

void Response::set_header(const std::string& k, const std::string& v) {
  if (k.find_first_of("\r\n") != std::string::npos || v.find_first_of("\r\n") != std::string::npos) return;
  headers.emplace(k, v);
}

void Response::set_content(const std::string& s, const std::string& type) {
  body = s;
  headers.erase("Content-Type");
  set_header("Content-Type", type);
}

void Response::set_content(const char* s, size_t n, const std::string& type) {
  body.assign(s, n);
  headers.erase("Content-Type");
  set_header("Content-Type", type);
}

void Response::set_stream(const std::string& type, std::function<bool(DataSink& sink)> step) {
  set_header("Content-Type", type);
  stream = std::move(step);
}

void Response::set_content_provider(size_t length, const std::string& type, ContentProvider p,
                                    std::function<void(bool)> r) {
  provider_length = length;
  provider = std::move(p);
  release = std::move(r);
  headers.erase("Content-Type");
  set_header("Content-Type", type);
}

void Response::set_file_content(int fd, size_t length, const std::string& type) {
  if (file_fd >= 0) close(file_fd);
  file_fd = fd;
  provider_length = length;
  headers.erase("Content-Type");
  set_header("Content-Type", type);
}

std::string PercentDecode(const std::string& s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '%' && i + 2 < s.size() && isxdigit(static_cast<unsigned char>(s[i + 1])) &&
        isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

namespace {

constexpr size_t kReadSize = 256 << 10;
constexpr size_t kMaxHead = 64 << 10;

const char* Reason(int status) {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    default: return "Unknown";
  }
}

bool SendAll(int fd, const char* data, size_t n) {
  while (n > 0) {
    ssize_t w = send(fd, data, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    data += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

bool SendTwo(int fd, const std::string& head, const std::string& body) {
  iovec iov[2] = {{const_cast<char*>(head.data()), head.size()}, {const_cast<char*>(body.data()), body.size()}};
  size_t total = head.size() + body.size(), done = 0;
  while (done < total) {
    msghdr msg{};
    size_t skip = done;
    iovec v[2];
    int n = 0;
    for (auto& x : iov) {
      if (skip >= x.iov_len) {
        skip -= x.iov_len;
        continue;
      }
      v[n++] = {static_cast<char*>(x.iov_base) + skip, x.iov_len - skip};
      skip = 0;
    }
    msg.msg_iov = v;
    msg.msg_iovlen = static_cast<size_t>(n);
    ssize_t w = sendmsg(fd, &msg, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    done += static_cast<size_t>(w);
  }
  return true;
}

// Reads more of the connection into `buf`; false at the end or on an error or timeout.
bool ReadMore(int fd, std::string& buf) {
  ssize_t got = 0;
  // Grows the string without zero-filling the 256 KiB first (a memset per request otherwise).
  buf.resize_and_overwrite(buf.size() + kReadSize, [&](char* p, size_t n) {
    size_t at = n - kReadSize;
    do got = recv(fd, p + at, kReadSize, 0);
    while (got < 0 && errno == EINTR);
    return at + static_cast<size_t>(std::max<ssize_t>(got, 0));
  });
  return got > 0;
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.pop_back();
  size_t i = 0;
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
  return s.substr(i);
}

}  // namespace

Server::Server() = default;

Server::~Server() {
  stop();
  if (listen_fd_ >= 0) close(listen_fd_);
}

Server& Server::Add(const std::string& method, const std::string& pattern, Handler h) {
  routes_[method].push_back({std::regex(pattern), std::move(h), nullptr});
  return *this;
}

Server& Server::Put(const std::string& pattern, ReaderHandler h) {
  routes_["PUT"].push_back({std::regex(pattern), nullptr, std::move(h)});
  return *this;
}

bool Server::Bind(const std::string& host, int port) {
  addrinfo hints{}, *res = nullptr;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res) != 0) return false;
  int fd = -1;
  for (addrinfo* a = res; a; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 && listen(fd, 512) == 0) break;
    close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  if (fd < 0) return false;
  listen_fd_ = fd;
  return true;
}

bool Server::bind_to_port(const std::string& host, int port) { return Bind(host, port); }

int Server::bind_to_any_port(const std::string& host) {
  if (!Bind(host, 0)) return -1;
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return -1;
  if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  return ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
}

void Server::stop() {
  if (stopping_.exchange(true)) return;
  if (listen_fd_ >= 0) shutdown(listen_fd_, SHUT_RDWR);
  std::lock_guard<std::mutex> l(mu_);
  // Connections waiting for their next request end now; one being answered finishes its answer first.
  for (int fd : open_) shutdown(fd, SHUT_RD);
  cv_.notify_all();
}

bool Server::listen_after_bind() {
  if (listen_fd_ < 0) return false;
  while (!stopping_) {
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE || errno == ENFILE) {
        if (errno == EMFILE || errno == ENFILE) usleep(10000);
        continue;
      }
      break;
    }
    std::lock_guard<std::mutex> l(mu_);
    if (stopping_) {
      close(fd);
      break;
    }
    pending_.push_back(fd);
    // A worker serves one connection until it closes (keep-alive, event streams), so every waiting
    // connection needs an idle worker of its own: idle_ counts workers that have not woken yet too, so
    // it is compared with all that wait, not with zero (two quick connections and one idle worker would
    // leave the second waiting for a busy worker's connection to end).
    if (pending_.size() > static_cast<size_t>(idle_) && workers_ < kMaxWorkers) {
      ++workers_;
      threads_.emplace_back([this] { Worker(); });
    } else {
      cv_.notify_one();
    }
  }
  stopping_ = true;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (int fd : open_) shutdown(fd, SHUT_RD);
    cv_.notify_all();
  }
  for (auto& t : threads_) t.join();
  threads_.clear();
  std::lock_guard<std::mutex> l(mu_);
  for (int fd : pending_) close(fd);
  pending_.clear();
  return true;
}

void Server::Worker() {
  std::unique_lock<std::mutex> l(mu_);
  for (;;) {
    ++idle_;
    cv_.wait(l, [&] { return stopping_ || !pending_.empty(); });
    --idle_;
    if (pending_.empty()) return;  // stopping
    int fd = pending_.front();
    pending_.pop_front();
    open_.insert(fd);
    if (stopping_) shutdown(fd, SHUT_RD);
    l.unlock();
    Serve(fd);
    l.lock();
    open_.erase(fd);
    close(fd);
  }
}

void Server::Serve(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  timeval tv{timeout_s_, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  std::string buf;
  size_t pos = 0;
  while (!stopping_ && ServeOne(fd, buf, pos)) {
  }
  // A lingering close: closing with unread bytes makes the kernel send a reset, which can destroy an error
  // answer (400, 413, 431) before the client reads it. Stop sending, then read what is left for a moment.
  shutdown(fd, SHUT_WR);
  timeval brief{0, 200000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &brief, sizeof brief);
  char sink[16384];
  for (size_t drained = 0; drained < (4u << 20);) {
    ssize_t n = recv(fd, sink, sizeof sink, 0);
    if (n <= 0) break;
    drained += static_cast<size_t>(n);
  }
}

bool Server::ServeOne(int fd, std::string& buf, size_t& pos) {
  // The head.
  size_t end;
  for (;;) {
    end = buf.find("\r\n\r\n", pos);
    if ((end != std::string::npos && end - pos > kMaxHead) || (end == std::string::npos && buf.size() - pos > kMaxHead)) {
      static const char k431[] = "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
      (void)SendAll(fd, k431, sizeof k431 - 1);
      return false;
    }
    if (end != std::string::npos) break;
    if (pos > 0) {
      buf.erase(0, pos);
      pos = 0;
    }
    if (!ReadMore(fd, buf)) return false;
  }
  auto bad = [&](const char* why) {
    std::string body = std::string("{\"error\":\"") + why + "\"}";
    std::string head = "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: " +
                       std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n";
    (void)SendTwo(fd, head, body);
    return false;
  };
  Request req;
  std::string version;
  {
    std::string_view head(buf.data() + pos, end - pos);
    size_t eol = head.find("\r\n");
    std::string_view line = head.substr(0, eol);
    size_t sp1 = line.find(' '), sp2 = line.rfind(' ');
    if (sp1 == std::string_view::npos || sp2 == sp1) return bad("malformed request line");
    req.method = std::string(line.substr(0, sp1));
    req.target = std::string(line.substr(sp1 + 1, sp2 - sp1 - 1));
    version = std::string(line.substr(sp2 + 1));
    if (version != "HTTP/1.1" && version != "HTTP/1.0") return bad("unsupported HTTP version");
    size_t at = eol == std::string_view::npos ? head.size() : eol + 2;
    while (at < head.size()) {
      size_t e = head.find("\r\n", at);
      if (e == std::string_view::npos) e = head.size();
      std::string_view h = head.substr(at, e - at);
      size_t colon = h.find(':');
      if (colon == std::string_view::npos || colon == 0) return bad("malformed header");
      req.headers.emplace(std::string(h.substr(0, colon)), Trim(std::string(h.substr(colon + 1))));
      at = e + 2;
    }
  }
  pos = end + 4;
  size_t q = req.target.find('?');
  req.path = PercentDecode(req.target.substr(0, q), false);
  if (q != std::string::npos) {
    std::string query = req.target.substr(q + 1);
    size_t i = 0;
    while (i <= query.size()) {
      size_t amp = query.find('&', i);
      if (amp == std::string::npos) amp = query.size();
      std::string kv = query.substr(i, amp - i);
      if (!kv.empty()) {
        size_t eq = kv.find('=');
        req.params.emplace(PercentDecode(kv.substr(0, eq), true),
                           eq == std::string::npos ? "" : PercentDecode(kv.substr(eq + 1), true));
      }
      i = amp + 1;
    }
  }
  std::string connection = req.get_header_value("Connection");
  bool keep_alive = version == "HTTP/1.1" ? strcasecmp(connection.c_str(), "close") != 0
                                          : strcasecmp(connection.c_str(), "keep-alive") == 0;
  bool chunked = strcasestr(req.get_header_value("Transfer-Encoding").c_str(), "chunked") != nullptr;
  size_t length = 0;
  if (!chunked && req.has_header("Content-Length")) {
    std::string cl = req.get_header_value("Content-Length");
    char* e = nullptr;
    errno = 0;
    unsigned long long n = strtoull(cl.c_str(), &e, 10);
    if (cl.empty() || *e || errno) return bad("malformed Content-Length");
    length = static_cast<size_t>(n);
  }
  if (length > max_body_) {
    std::string head = "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    (void)SendAll(fd, head.data(), head.size());
    return false;
  }
  bool has_body = chunked || length > 0;
  bool continue_sent = false;
  auto send_continue = [&] {
    if (continue_sent || !has_body) return true;
    continue_sent = true;
    if (strcasecmp(req.get_header_value("Expect").c_str(), "100-continue") != 0) return true;
    static const char k100[] = "HTTP/1.1 100 Continue\r\n\r\n";
    return SendAll(fd, k100, sizeof k100 - 1);
  };
  // Which route: one that reads the body itself gets it streamed; the others get it whole.
  const Route* route = nullptr;
  auto methods = routes_.find(req.method);
  if (methods != routes_.end())
    for (const auto& r : methods->second)
      if (std::regex_match(req.path, req.matches, r.pattern)) {
        route = &r;
        break;
      }
  // Reads `n` more bytes of the body into `out` (after what is buffered).
  auto read_exact = [&](size_t n, const std::function<bool(const char*, size_t)>& sink) -> bool {
    while (n > 0) {
      if (pos < buf.size()) {
        size_t take = std::min(n, buf.size() - pos);
        bool ok = sink(buf.data() + pos, take);
        pos += take;
        n -= take;
        if (!ok) return false;
        continue;
      }
      buf.clear();
      pos = 0;
      if (!ReadMore(fd, buf)) return false;
    }
    return true;
  };
  auto read_line = [&](std::string* line) -> bool {
    for (;;) {
      size_t e = buf.find("\r\n", pos);
      if (e != std::string::npos) {
        line->assign(buf, pos, e - pos);
        pos = e + 2;
        return true;
      }
      if (buf.size() - pos > 4096) return false;
      buf.erase(0, pos);
      pos = 0;
      if (!ReadMore(fd, buf)) return false;
    }
  };
  auto read_body = [&](const std::function<bool(const char*, size_t)>& sink) -> bool {
    if (!send_continue()) return false;
    if (!chunked) return read_exact(length, sink);
    size_t total = 0;
    for (;;) {
      std::string line;
      if (!read_line(&line)) return false;
      char* e = nullptr;
      unsigned long long n = strtoull(line.c_str(), &e, 16);
      if (e == line.c_str()) return false;
      total += n;
      if (total > max_body_) return false;
      if (n == 0) {
        for (;;) {  // trailers, up to the empty line
          if (!read_line(&line)) return false;
          if (line.empty()) return true;
        }
      }
      if (!read_exact(n, sink)) return false;
      if (!read_line(&line) || !line.empty()) return false;
    }
  };
  bool body_done = !has_body;
  if (!route || !route->reader) {
    if (has_body) {
      if (!chunked) req.body.reserve(length);
      if (!read_body([&](const char* d, size_t n) {
            req.body.append(d, n);
            return true;
          }))
        return false;
      body_done = true;
    }
  }

  Response res;
  bool handled = false;
  try {
    if (pre_ && pre_(req, res) == HandlerResponse::Handled) {
      handled = true;
    } else if (route && route->reader) {
      ContentReader reader = [&](const std::function<bool(const char*, size_t)>& receiver) {
        if (body_done) return true;
        body_done = true;
        return read_body(receiver);
      };
      route->reader(req, res, reader);
      handled = true;
    } else if (route) {
      route->handler(req, res);
      handled = true;
    }
  } catch (...) {
    res = Response();
    if (on_exception_) on_exception_(req, res, std::current_exception());
    else res.status = 500;
    handled = true;
  }
  if (!handled && res.status == -1) res.status = 404;
  if (res.status == -1) res.status = 200;
  // A body nobody read: small ones are drained to keep the connection, big ones close it.
  if (!body_done) {
    bool waits_for_continue = strcasecmp(req.get_header_value("Expect").c_str(), "100-continue") == 0 && !continue_sent;
    if (!chunked && length <= (1u << 20) && !waits_for_continue) {
      body_done = read_exact(length, [](const char*, size_t) { return true; });
    }
    if (!body_done) keep_alive = false;
  }
  if (stopping_) keep_alive = false;

  requests_.fetch_add(1, std::memory_order_relaxed);
  if (res.stream && req.method != "HEAD") {
    // No length: the body ends when the connection does.
    std::string head = "HTTP/1.1 " + std::to_string(res.status) + " " + Reason(res.status) + "\r\n";
    for (const auto& [k, v] : res.headers) {
      if (strcasecmp(k.c_str(), "Content-Length") == 0 || strcasecmp(k.c_str(), "Connection") == 0) continue;
      head += k + ": " + v + "\r\n";
    }
    head += "Cache-Control: no-cache\r\nConnection: close\r\n\r\n";
    bool ok = SendAll(fd, head.data(), head.size());
    DataSink sink([&](const char* d, size_t n) { return SendAll(fd, d, n); });
    while (ok && !stopping_ && res.stream(sink) && sink.ok()) {
    }
    return false;
  }
  bool streamed = res.provider || res.file_fd >= 0;
  size_t content_length = streamed ? res.provider_length : res.body.size();
  std::string head = "HTTP/1.1 " + std::to_string(res.status) + " " + Reason(res.status) + "\r\n";
  for (const auto& [k, v] : res.headers) {
    if (strcasecmp(k.c_str(), "Content-Length") == 0 || strcasecmp(k.c_str(), "Connection") == 0) continue;
    head += k;
    head += ": ";
    head += v;
    head += "\r\n";
  }
  head += "Content-Length: " + std::to_string(content_length) + "\r\n";
  head += keep_alive ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n";
  bool head_only = req.method == "HEAD";
  bool ok;
  if (res.file_fd >= 0) {
    ok = SendAll(fd, head.data(), head.size());
    off_t off = 0;
    while (ok && !head_only && static_cast<size_t>(off) < content_length) {
      ssize_t n = sendfile(fd, res.file_fd, &off, content_length - static_cast<size_t>(off));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) ok = false;
    }
    close(res.file_fd);
  } else if (res.provider) {
    ok = SendAll(fd, head.data(), head.size());
    size_t offset = 0;
    DataSink sink([&](const char* d, size_t n) {
      if (!SendAll(fd, d, n)) return false;
      offset += n;
      return true;
    });
    while (ok && !head_only && offset < content_length) {
      size_t before = offset;
      if (!res.provider(offset, content_length - offset, sink) || !sink.ok() || offset == before) ok = false;
    }
    if (res.release) res.release(ok);
  } else {
    ok = head_only ? SendAll(fd, head.data(), head.size()) : SendTwo(fd, head, res.body);
  }
  return ok && keep_alive;
}

}  // namespace cairn::http
