#include "base/http_server.h"

#include "base/util.h"

#include <fcntl.h>
#include <poll.h>
#include <strings.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cerrno>
#include <cstring>
#include <future>
#include <list>
#include <optional>

namespace cairn::http {

namespace {
// All of [data, data + len) to fd; false when a write fails.
bool WriteAll(int fd, const char* data, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, data, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}
}  // namespace

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
  if (k.find_first_of("\r\n") != std::string::npos || v.find_first_of("\r\n") != std::string::npos)
    return;
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

bool ContentReader::ToFile(int fd, const Progress& progress, bool* write_failed) const {
  *write_failed = false;
  if (to_file_) return to_file_(fd, progress, write_failed);
  uint64_t written = 0;
  return read_([&](const char* data, size_t len) {
    if (!WriteAll(fd, data, len)) return !(*write_failed = true);
    written += len;
    if (progress) progress(written);
    return true;
  });
}

bool ParseTarget(const std::string& target, Request& req) {
  size_t q = target.find('?');
  req.path = PercentDecode(target.substr(0, q), false);
  if (!IsValidUtf8(req.path)) return false;
  if (q == std::string::npos) return true;
  std::string_view query(target);
  query.remove_prefix(q + 1);
  size_t i = 0;
  while (i <= query.size()) {
    size_t amp = query.find('&', i);
    if (amp == std::string::npos) amp = query.size();
    std::string kv(query.substr(i, amp - i));
    if (!kv.empty()) {
      size_t eq = kv.find('=');
      std::string k = PercentDecode(kv.substr(0, eq), true);
      std::string v = eq == std::string::npos ? "" : PercentDecode(kv.substr(eq + 1), true);
      if (!IsValidUtf8(k) || !IsValidUtf8(v)) return false;
      req.params.emplace(std::move(k), std::move(v));
    }
    i = amp + 1;
  }
  return true;
}

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using UnixStream = beast::basic_stream<asio::local::stream_protocol>;

namespace {

constexpr size_t kMaxHead = 64 << 10;
constexpr size_t kMaxTarget = 8 << 10;
constexpr size_t kChunk = 256 << 10;
constexpr int kMaxWorkers = 512;

const char* Reason(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 204:
      return "No Content";
    case 206:
      return "Partial Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 304:
      return "Not Modified";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 413:
      return "Payload Too Large";
    case 414:
      return "URI Too Long";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 503:
      return "Service Unavailable";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Unknown";
  }
}

const beast::error_category& HttpCategory() {
  return bhttp::make_error_code(bhttp::error::need_more).category();
}

std::string ErrorAnswer(int status, const std::string& why) {
  std::string body = "{\"error_code\":\"" +
                     std::string(status == 413 ? "RESOURCE_LIMIT_EXCEEDED" : "BAD_REQUEST") +
                     "\",\"message\":\"" + why + "\"}";
  return "HTTP/1.1 " + std::to_string(status) + " " + Reason(status) +
         "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\nConnection: close\r\n\r\n" + body;
}

std::string HeadOf(const Response& res, const std::string& length_line, bool keep_alive) {
  std::string head = "HTTP/1.1 " + std::to_string(res.status) + " " + Reason(res.status) + "\r\n";
  for (const auto& [k, v] : res.headers) {
    if (strcasecmp(k.c_str(), "Content-Length") == 0 || strcasecmp(k.c_str(), "Connection") == 0)
      continue;
    head += k;
    head += ": ";
    head += v;
    head += "\r\n";
  }
  head += length_line;
  head += keep_alive ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n";
  return head;
}

}  // namespace

// A connection the event loop can close when it sheds idle ones or stops.
class ConnectionBase {
 public:
  virtual ~ConnectionBase() = default;
  virtual void CloseIdle() = 0;  // event loop only
  // Ends the connection's reads (a head or body being waited for); an answer being written still
  // goes out.
  virtual void StopReading() = 0;  // event loop only
  // Closes a connection that has not proven a credential, to make room for a newer one from its
  // address: an idle one at once, one mid-request once its answer (if any) is out.
  virtual void Evict() = 0;  // event loop only
  std::list<std::weak_ptr<ConnectionBase>>::iterator all_it;
  // The peer's address, and the connection's place on that address's unproven list while it is on
  // it.
  std::string address;
  Peer peer;
  std::list<std::weak_ptr<ConnectionBase>>::iterator unproven_it;
  bool unproven = false;  // event loop only, and the destructor
};

struct Server::Impl {
  asio::io_context io{1};
  struct Listener {
    tcp::acceptor acceptor;
    bool tls;  // TLS when the server has it; a plain loopback listener never
  };
  std::vector<std::unique_ptr<Listener>> listeners;
  std::vector<std::unique_ptr<asio::local::stream_protocol::acceptor>> unix_listeners;
  asio::steady_timer retry{io};
  // Connections waiting for their next request, longest idle first (event loop only).
  std::list<std::weak_ptr<ConnectionBase>> idle;
  // Connections that have not proven a credential, by address, oldest first (event loop only). An
  // entry leaves when its connection proves one, is evicted, or is destroyed (posted by its
  // destructor).
  std::map<std::string, std::list<std::weak_ptr<ConnectionBase>>> unproven;
  // Every open connection, for stop().
  std::mutex all_mu;
  std::list<std::weak_ptr<ConnectionBase>> all;

  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::function<void()>> tasks;
  int workers = 0, idle_workers = 0;
  bool done = false;
  std::vector<std::thread> threads;

  void Submit(std::function<void()> task) {
    std::lock_guard<std::mutex> l(mu);
    tasks.push_back(std::move(task));
    if (static_cast<size_t>(idle_workers) < tasks.size() && workers < kMaxWorkers) {
      ++workers;
      threads.emplace_back([this] { Work(); });
    } else {
      cv.notify_one();
    }
  }
  void Work() {
    std::unique_lock<std::mutex> l(mu);
    for (;;) {
      ++idle_workers;
      cv.wait(l, [&] { return done || !tasks.empty(); });
      --idle_workers;
      if (tasks.empty()) return;
      auto task = std::move(tasks.front());
      tasks.pop_front();
      l.unlock();
      task();
      l.lock();
    }
  }
  // Puts a new connection on its address's unproven list, and evicts the oldest live ones past
  // `cap`.
  void ListUnproven(const std::shared_ptr<ConnectionBase>& c, size_t cap) {
    auto& list = unproven[c->address];
    c->unproven_it = list.insert(list.end(), c);
    c->unproven = true;
    size_t live = 0;
    for (const auto& w : list) live += !w.expired();
    for (auto it = list.begin(); live > cap && it != list.end();) {
      auto old = it->lock();
      ++it;                // before `old` leaves the list
      if (!old) continue;  // its destructor's erasure is on its way
      Unlist(*old);
      old->Evict();
      --live;
    }
  }
  // Takes a live connection off its address's list (it proved a credential, or was evicted).
  void Unlist(ConnectionBase& c) {
    if (!c.unproven) return;
    c.unproven = false;
    Erase(c.address, c.unproven_it);
  }
  void Erase(const std::string& address, std::list<std::weak_ptr<ConnectionBase>>::iterator it) {
    auto m = unproven.find(address);
    if (m == unproven.end()) return;
    m->second.erase(it);
    if (m->second.empty()) unproven.erase(m);
  }
  // Closes the longest-idle connection; false when none is idle.
  bool ShedOne() {
    while (!idle.empty()) {
      auto c = idle.front().lock();
      if (!c) {
        idle.pop_front();
        continue;
      }
      c->CloseIdle();  // takes itself off the list
      return true;
    }
    return false;
  }
};

template <class Stream>
class Connection : public ConnectionBase, public std::enable_shared_from_this<Connection<Stream>> {
 public:
  static constexpr bool kTls =
      !std::is_same_v<Stream, beast::tcp_stream> && !std::is_same_v<Stream, UnixStream>;

  template <class... Args>
  Connection(Server* s, Args&&... args)
      : s_(s), stream_(std::forward<Args>(args)...), idle_timer_(s->impl_->io) {
    s_->connections_.fetch_add(1, std::memory_order_relaxed);
  }
  ~Connection() override {
    s_->connections_.fetch_sub(1, std::memory_order_relaxed);
    if (unproven) {  // the list is the event loop's: it takes the entry off there
      asio::post(s_->impl_->io, [impl = s_->impl_.get(), address = address, it = unproven_it] {
        impl->Erase(address, it);
      });
    }
    std::lock_guard<std::mutex> l(s_->impl_->all_mu);
    s_->impl_->all.erase(all_it);
  }

  void StopReading() override {
    beast::error_code ec;
    Lowest().socket().shutdown(asio::socket_base::shutdown_receive, ec);
  }

  void Start() {
    {
      std::lock_guard<std::mutex> l(s_->impl_->all_mu);
      all_it = s_->impl_->all.insert(s_->impl_->all.end(), this->weak_from_this());
    }
    if constexpr (kTls) {
      Lowest().expires_after(std::chrono::seconds(s_->timeout_s_));
      stream_.async_handshake(asio::ssl::stream_base::server,
                              [self = this->shared_from_this()](beast::error_code ec) {
                                if (ec) return self->Lowest().close();
                                self->WaitRequest();
                              });
    } else {
      WaitRequest();
    }
  }

  void Evict() override {
    if (in_idle_) return CloseIdle();
    StopReading();
  }

  void CloseIdle() override {
    // Off the idle list too: a weak entry left there would keep the connection's memory
    // (make_shared).
    if (in_idle_) s_->impl_->idle.erase(idle_it_);
    in_idle_ = false;
    idle_timer_.cancel();
    beast::error_code ec;
    Lowest().socket().close(ec);
  }

 private:
  decltype(auto) Lowest() { return beast::get_lowest_layer(stream_); }

  // Event loop: between requests. A plain connection waits for readability with no buffer held; a
  // TLS one reads its next head directly (OpenSSL may hold decrypted bytes the socket no longer
  // shows).
  void WaitRequest() {
    if (s_->stopping_) return Close();
    if (buf_.size() > 0) return ReadHead();
    buf_.shrink_to_fit();
    auto& impl = *s_->impl_;
    idle_it_ = impl.idle.insert(impl.idle.end(), this->weak_from_this());
    in_idle_ = true;
    idle_timer_.expires_after(std::chrono::seconds(s_->idle_timeout_s_));
    idle_timer_.async_wait([self = this->shared_from_this()](beast::error_code ec) {
      if (!ec && self->in_idle_) self->CloseIdle();
    });
    if constexpr (kTls) {
      NewHead();
      bhttp::async_read_header(stream_, buf_, *head_,
                               [self = this->shared_from_this()](beast::error_code ec, size_t) {
                                 if (!self->in_idle_) return;  // shed or timed out: already closed
                                 self->LeaveIdle();
                                 self->OnHead(ec);
                               });
    } else {
      Lowest().socket().async_wait(asio::socket_base::wait_read,
                                   [self = this->shared_from_this()](beast::error_code ec) {
                                     if (!self->in_idle_)
                                       return;  // shed or timed out: already closed
                                     self->LeaveIdle();
                                     if (ec) return self->Close();
                                     self->ReadHead();
                                   });
    }
  }

  void LeaveIdle() {
    in_idle_ = false;
    idle_timer_.cancel();
    s_->impl_->idle.erase(idle_it_);
  }

  // The head's parser: limits the head; the body's limit is the route's, applied by the body's
  // parser.
  void NewHead() {
    // Beast reads into the buffer's free capacity (at least 512 bytes): give it room for large
    // reads.
    buf_.reserve(kChunk);
    head_.emplace();
    head_->header_limit(kMaxHead);
    head_->body_limit(std::numeric_limits<std::uint64_t>::max());
  }

  void ReadHead() {
    NewHead();
    Lowest().expires_after(std::chrono::seconds(s_->timeout_s_));
    bhttp::async_read_header(
        stream_, buf_, *head_,
        [self = this->shared_from_this()](beast::error_code ec, size_t) { self->OnHead(ec); });
  }

  void OnHead(beast::error_code ec) {
    Lowest().expires_never();
    if (ec == bhttp::error::body_limit) return Refuse(ErrorAnswer(413, "request body too large"));
    if (ec == bhttp::error::header_limit)
      return Refuse(ErrorAnswer(431, "request head over 64 KiB"));
    if (ec == bhttp::error::end_of_stream || ec == asio::error::eof ||
        ec == beast::error::timeout || ec == asio::error::operation_aborted ||
        ec == asio::error::connection_reset || ec == asio::ssl::error::stream_truncated)
      return Close();
    if (ec && ec.category() == HttpCategory())
      return Refuse(ErrorAnswer(400, "malformed request: " + ec.message()));
    if (ec) return Close();
    // The request goes to a worker; the work guard keeps the loop running while it is there.
    s_->impl_->Submit([self = this->shared_from_this(),
                       work = asio::make_work_guard(s_->impl_->io)] { self->Process(); });
  }

  // Event loop: writes a refusal and closes.
  void Refuse(std::string answer) {
    auto owned = std::make_shared<std::string>(std::move(answer));
    Lowest().expires_after(std::chrono::seconds(5));
    asio::async_write(stream_, asio::buffer(*owned),
                      [self = this->shared_from_this(), owned](beast::error_code, size_t) {
                        self->LingeringClose();
                      });
  }

  // A lingering close: closing with unread bytes makes the kernel send a reset, which can destroy
  // an error answer before the client reads it. Stop sending, then read what is left for a moment.
  void LingeringClose() {
    if constexpr (kTls) {
      return Close();
    } else {
      beast::error_code ec;
      Lowest().socket().shutdown(asio::socket_base::shutdown_send, ec);
      Lowest().expires_after(std::chrono::milliseconds(200));
      Drain(std::make_shared<std::array<char, 16384>>(), 0);
    }
  }
  void Drain(std::shared_ptr<std::array<char, 16384>> sink, size_t drained) {
    Lowest().async_read_some(asio::buffer(*sink), [self = this->shared_from_this(), sink, drained](
                                                      beast::error_code ec, size_t n) {
      if (ec || drained + n > (4u << 20)) return self->Close();
      self->Drain(sink, drained + n);
    });
  }

  void Close() {
    beast::error_code ec;
    Lowest().socket().shutdown(asio::socket_base::shutdown_both, ec);
    Lowest().close();
  }

  // Worker, plain sockets only: waits until the socket is readable (or writable), within the I/O
  // timeout. The event loop has no operation on the socket while a worker holds the connection.
  bool WaitReady(short events) {
    pollfd pfd{Lowest().socket().native_handle(), events, 0};
    for (;;) {
      int n = poll(&pfd, 1, s_->timeout_s_ * 1000);
      if (n > 0) return true;
      if (n == 0 || errno != EINTR) return false;
    }
  }
  // Worker: `length` body bytes straight from the socket to `receiver`, a chunk at a time.
  bool ReadBodyDirect(uint64_t length, std::vector<char>& chunk,
                      const std::function<bool(const char*, size_t)>& receiver) {
    const int fd = Lowest().socket().native_handle();
    while (length > 0) {
      ssize_t n = recv(fd, chunk.data(), std::min<uint64_t>(chunk.size(), length), 0);
      if (n > 0) {
        length -= static_cast<uint64_t>(n);
        if (!receiver(chunk.data(), static_cast<size_t>(n))) return false;
      } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        if (!WaitReady(POLLIN)) return false;
      } else {
        return false;  // the client went away (or stop() shut the socket)
      }
    }
    return true;
  }
  // Worker: `length` body bytes from the socket into `out`, by splice through a pipe: the socket's
  // pages go to the file without a copy through user space. Adds to `written` and reports it.
  bool SpliceBodyDirect(uint64_t length, int out, uint64_t& written,
                        const ContentReader::Progress& progress, bool* write_failed) {
    const int fd = Lowest().socket().native_handle();
    int pipe_fds[2];
    if (pipe2(pipe_fds, O_CLOEXEC) != 0) return !(*write_failed = true);
    struct Closer {
      int* fds;
      ~Closer() {
        close(fds[0]);
        close(fds[1]);
      }
    } closer{pipe_fds};
    (void)fcntl(pipe_fds[1], F_SETPIPE_SZ, 1 << 20);
    const size_t room = static_cast<size_t>(std::max(fcntl(pipe_fds[1], F_GETPIPE_SZ), 65536));
    while (length > 0) {
      ssize_t n = splice(fd, nullptr, pipe_fds[1], nullptr, std::min<uint64_t>(room, length),
                         SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n > 0) {
        length -= static_cast<uint64_t>(n);
        // The pipe was empty, so it holds exactly these n bytes: all of them into the file.
        for (ssize_t left = n; left > 0;) {
          ssize_t m =
              splice(pipe_fds[0], nullptr, out, nullptr, static_cast<size_t>(left), SPLICE_F_MOVE);
          if (m < 0 && errno == EINTR) continue;
          if (m <= 0) return !(*write_failed = true);
          left -= m;
        }
        written += static_cast<uint64_t>(n);
        if (progress) progress(written);
      } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        if (!WaitReady(POLLIN)) return false;
      } else {
        return false;  // the client went away (or stop() shut the socket)
      }
    }
    return true;
  }
  // Worker: `length` bytes of `file_fd` from `offset`, by sendfile (no copy through user space).
  bool SendFileDirect(int file_fd, off_t offset, size_t length) {
    const int fd = Lowest().socket().native_handle();
    while (length > 0) {
      ssize_t n = sendfile(fd, file_fd, &offset, std::min<size_t>(length, size_t{1} << 30));
      if (n > 0) {
        length -= static_cast<size_t>(n);
      } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        if (!WaitReady(POLLOUT)) return false;
      } else {
        return false;  // the file shrank, or the client went away
      }
    }
    return true;
  }

  // Worker: runs `op(done)` on the event loop and waits for it to call done.
  template <class Op>
  beast::error_code OnLoop(Op op) {
    std::promise<beast::error_code> pr;
    auto fut = pr.get_future();
    asio::post(s_->impl_->io, [&] {
      Lowest().expires_after(std::chrono::seconds(s_->timeout_s_));
      op([&pr](beast::error_code ec) { pr.set_value(ec); });
    });
    return fut.get();
  }
  bool Write(const std::string& data) {
    if (data.empty()) return true;
    return !OnLoop([&](auto done) {
      asio::async_write(stream_, asio::buffer(data),
                        [done](beast::error_code ec, size_t) { done(ec); });
    });
  }
  // Parses what is already buffered into `p`, so a body that came with its head needs no trip to
  // the loop.
  template <class Parser>
  beast::error_code ParseBuffered(Parser& p) {
    beast::error_code ec;
    while (!p.is_done() && buf_.size() > 0) {
      size_t n = p.put(buf_.data(), ec);
      buf_.consume(n);
      if (ec == bhttp::error::need_more) return {};
      if (ec || n == 0) return ec;
    }
    return ec;
  }

  // Hands the connection back to the event loop after the answer `out` (already serialized).
  void Finish(std::shared_ptr<std::vector<std::string>> out, bool keep_alive) {
    asio::post(s_->impl_->io, [self = this->shared_from_this(), out, keep_alive] {
      std::vector<asio::const_buffer> bufs;
      for (const auto& b : *out) bufs.push_back(asio::buffer(b));
      self->Lowest().expires_after(std::chrono::seconds(self->s_->timeout_s_));
      asio::async_write(self->stream_, bufs, [self, out, keep_alive](beast::error_code ec, size_t) {
        self->Lowest().expires_never();
        if (ec) return self->Close();
        if (keep_alive) return self->WaitRequest();
        self->LingeringClose();
      });
    });
  }
  void FinishClosed() {
    asio::post(s_->impl_->io, [self = this->shared_from_this()] { self->LingeringClose(); });
  }

  // Worker: one request, from its head to its answer.
  // Worker: a route that streams its body (an upload): the handler reads it through a
  // ContentReader, chunk by chunk, within `limit`, after a 100 Continue when the client waits for
  // one.
  void RunStreamingRoute(const Server::Route& route, Request& req, Response& res, size_t limit,
                         bool& body_done, bool& body_failed,
                         const std::function<bool()>& send_continue) {
    bhttp::request_parser<bhttp::buffer_body> p(std::move(*head_));
    p.body_limit(limit);
    std::vector<char> chunk(kChunk);
    // Reads the body: to `receiver`, or (with out >= 0) spliced into the file `out` once only the
    // socket holds the rest of it.
    int out = -1;
    uint64_t written = 0;
    const ContentReader::Progress* progress = nullptr;
    bool* write_failed = nullptr;
    auto pump = [&](const ContentReader::Receiver& receiver) {
      if (body_done) return !body_failed;
      body_done = true;
      if (!send_continue()) return !(body_failed = true);
      while (!p.is_done()) {
        p.get().body().data = chunk.data();
        p.get().body().size = chunk.size();
        beast::error_code ec = ParseBuffered(p);
        if constexpr (!kTls) {
          // A body of known length with nothing left in the buffer: the rest is read straight from
          // the socket into the chunk, by this worker (no trip to the event loop per read, no pass
          // through the parser), never past the body's end (the next request's bytes stay unread).
          auto remaining = p.content_length_remaining();
          size_t got = chunk.size() - p.get().body().size;
          if (!ec && got == 0 && buf_.size() == 0 && !p.chunked() && remaining && *remaining > 0) {
            bool whole = out >= 0
                             ? SpliceBodyDirect(*remaining, out, written, *progress, write_failed)
                             : ReadBodyDirect(*remaining, chunk, receiver);
            if (!whole) return !(body_failed = true);
            break;
          }
        }
        if (!ec && !p.is_done() && p.get().body().size == chunk.size()) {
          ec = OnLoop([&](auto done) {
            bhttp::async_read_some(stream_, buf_, p,
                                   [done](beast::error_code e, size_t) { done(e); });
          });
        }
        if (ec == bhttp::error::need_buffer) ec = {};
        if (ec) {
          if (ec == bhttp::error::body_limit) limit_hit_ = true;
          return !(body_failed = true);
        }
        size_t got = chunk.size() - p.get().body().size;
        if (got > 0 && !receiver(chunk.data(), got)) return !(body_failed = true);
      }
      return true;
    };
    ContentReader reader(pump, [&](int fd, const ContentReader::Progress& report, bool* failed) {
      out = fd;
      progress = &report;
      write_failed = failed;
      return pump([&](const char* data, size_t len) {
        if (!WriteAll(fd, data, len)) return !(*failed = true);
        written += len;
        if (report) report(written);
        return true;
      });
    });
    route.reader(req, res, reader);
  }

  void Process() {
    limit_hit_ = false;
    auto& h = head_->get();
    Request req;
    req.peer = peer;
    req.method = std::string(h.method_string());
    req.target = std::string(h.target());
    if (h.version() != 11 && h.version() != 10)
      return Respond(ErrorAnswer(505, "unsupported HTTP version"));
    if (req.target.size() > kMaxTarget)
      return Respond(ErrorAnswer(414, "request target over 8 KiB"));
    if (req.target.empty() || (req.target[0] != '/' && req.target != "*"))
      return Respond(ErrorAnswer(400, "malformed request target"));
    if (!ParseTarget(req.target, req))
      return Respond(ErrorAnswer(400, "the request's path or query is not UTF-8"));
    for (const auto& f : h)
      req.headers.emplace(std::string(f.name_string()), std::string(f.value()));
    bool keep_alive = h.keep_alive();
    bool chunked = head_->chunked();
    auto length = head_->content_length();
    bool has_body = chunked || (length && *length > 0);
    bool expects_continue = strcasecmp(req.get_header_value("Expect").c_str(), "100-continue") == 0;

    const Server::Route* route = s_->FindRoute(req);
    if (route) {
      req.route_tag = route->tag;
      req.route_pattern = route->source;
    }
    size_t limit = route && route->max_body ? route->max_body : s_->max_body_;
    Response res;
    bool handled = false, body_done = !has_body, body_failed = false;
    bool continue_sent = false;
    auto send_continue = [&] {
      if (continue_sent || !expects_continue) return true;
      continue_sent = true;
      return Write("HTTP/1.1 100 Continue\r\n\r\n");
    };
    try {
      auto verdict = s_->pre_ ? s_->pre_(req, res) : Server::HandlerResponse::Unhandled;
      if (verdict == Server::HandlerResponse::Authorized && !proven_) {
        proven_ = true;
        asio::post(s_->impl_->io,
                   [self = this->shared_from_this()] { self->s_->impl_->Unlist(*self); });
      }
      if (verdict == Server::HandlerResponse::Handled) {
        handled = true;
      } else if (length && *length > limit) {
        return Respond(
            ErrorAnswer(413, "request body over the limit of " + std::to_string(limit) + " bytes"));
      } else if (route && route->reader) {
        RunStreamingRoute(*route, req, res, limit, body_done, body_failed, send_continue);
        handled = true;
      } else if (!route && has_body) {
        // Nothing would read it: answered at once, and the connection closed rather than the body
        // read.
        res.status = 404;
      } else {
        if (has_body) {
          bhttp::request_parser<bhttp::string_body> p(std::move(*head_));
          p.body_limit(limit);
          if (!send_continue()) return FinishClosed();
          beast::error_code ec = ParseBuffered(p);
          if (!ec && !p.is_done())
            ec = OnLoop([&](auto done) {
              bhttp::async_read(stream_, buf_, p, [done](beast::error_code e, size_t) { done(e); });
            });
          if (ec == bhttp::error::body_limit)
            return Respond(ErrorAnswer(
                413, "request body over the limit of " + std::to_string(limit) + " bytes"));
          if (ec && ec.category() == HttpCategory() && ec != bhttp::error::partial_message)
            return Respond(ErrorAnswer(400, "malformed request body: " + ec.message()));
          if (ec) return FinishClosed();
          req.body = std::move(p.get().body());
          body_done = true;
        }
        if (route) {
          route->handler(req, res);
          handled = true;
        }
      }
    } catch (...) {
      res = Response();
      if (s_->on_exception_) {
        try {
          s_->on_exception_(req, res, std::current_exception());
        } catch (...) {
          res.status = 500;
        }
      } else {
        res.status = 500;
      }
      handled = true;
    }
    head_.reset();
    if (limit_hit_ && res.status < 400) {
      res = Response();
      res.status = 413;
    }
    if (!handled && res.status == -1) res.status = 404;
    if (res.status == -1) res.status = 200;
    if (!body_done || body_failed) keep_alive = false;  // the rest of the body is never read
    if (s_->stopping_) keep_alive = false;
    s_->requests_.fetch_add(1, std::memory_order_relaxed);
    SendAnswer(res, keep_alive, req.method == "HEAD");
  }

  // Worker: writes the answer: a stream (until the connection ends), a file or a provider (by
  // chunks), or a body; then hands the connection back, kept alive or closed.
  void SendAnswer(Response& res, bool keep_alive, bool head_only) {
    if (res.stream && !head_only) {
      // No length: the body ends when the connection does.
      std::string head = HeadOf(res, "Cache-Control: no-cache\r\n", false);
      bool ok = Write(head);
      DataSink sink([&](const char* d, size_t n) { return Write(std::string(d, n)); });
      while (ok && !s_->stopping_ && res.stream(sink) && sink.ok()) {
      }
      return FinishClosed();
    }
    bool streamed = res.provider || res.file_fd >= 0;
    size_t content_length = streamed ? res.provider_length : res.body.size();
    std::string head =
        HeadOf(res, "Content-Length: " + std::to_string(content_length) + "\r\n", keep_alive);
    if (res.file_fd >= 0) {
      bool ok = Write(head);
      if constexpr (!kTls) {
        if (ok && !head_only) ok = SendFileDirect(res.file_fd, 0, content_length);
        close(res.file_fd);
        res.file_fd = -1;
        if (!ok) return FinishClosed();
        return Finish(std::make_shared<std::vector<std::string>>(), keep_alive);
      }
      std::string chunk;
      for (size_t off = 0; ok && !head_only && off < content_length;) {
        chunk.resize(std::min(kChunk, content_length - off));
        ssize_t n = pread(res.file_fd, chunk.data(), chunk.size(), static_cast<off_t>(off));
        if (n <= 0) {
          ok = false;
          break;
        }
        chunk.resize(static_cast<size_t>(n));
        ok = Write(chunk);
        off += static_cast<size_t>(n);
      }
      close(res.file_fd);
      res.file_fd = -1;
      if (!ok) return FinishClosed();
      return Finish(std::make_shared<std::vector<std::string>>(), keep_alive);
    }
    if (res.provider) {
      bool ok = Write(head);
      size_t offset = 0;
      DataSink sink([&](const char* d, size_t n) {
        if (!Write(std::string(d, n))) return false;
        offset += n;
        return true;
      });
      while (ok && !head_only && offset < content_length) {
        size_t before = offset;
        if (!res.provider(offset, content_length - offset, sink) || !sink.ok() || offset == before)
          ok = false;
      }
      if (res.release) res.release(ok);
      if (!ok) return FinishClosed();
      return Finish(std::make_shared<std::vector<std::string>>(), keep_alive);
    }
    auto out = std::make_shared<std::vector<std::string>>();
    out->push_back(std::move(head));
    if (!head_only) out->push_back(std::move(res.body));
    Finish(out, keep_alive);
  }

  void Respond(std::string answer) {
    head_.reset();
    s_->requests_.fetch_add(1, std::memory_order_relaxed);
    asio::post(s_->impl_->io, [self = this->shared_from_this(), a = std::move(answer)]() mutable {
      self->Refuse(std::move(a));
    });
  }

  Server* s_;
  Stream stream_;
  beast::flat_buffer buf_;
  std::optional<bhttp::request_parser<bhttp::empty_body>> head_;
  asio::steady_timer idle_timer_;
  std::list<std::weak_ptr<ConnectionBase>>::iterator idle_it_;
  bool in_idle_ = false;
  bool proven_ = false;  // a request of it was authorized (worker only)
  bool limit_hit_ = false;
};

Server::Server() : impl_(std::make_unique<Impl>()) {}

Server::~Server() {
  stop();
  {
    std::lock_guard<std::mutex> l(impl_->mu);
    impl_->done = true;
    impl_->cv.notify_all();
  }
  for (auto& t : impl_->threads)
    if (t.joinable()) t.join();
}

Server& Server::Add(const std::string& method, const std::string& pattern, Handler h,
                    size_t max_body, int tag) {
  routes_[method].push_back({std::regex(pattern), std::move(h), nullptr, max_body, tag, pattern});
  return *this;
}

Server& Server::AddReader(const std::string& method, const std::string& pattern, ReaderHandler h,
                          size_t max_body, int tag) {
  routes_[method].push_back({std::regex(pattern), nullptr, std::move(h), max_body, tag, pattern});
  return *this;
}

std::vector<Server::RouteInfo> Server::routes() const {
  std::vector<RouteInfo> out;
  for (const auto& [method, list] : routes_)
    for (const auto& r : list)
      out.push_back({method, r.source, r.tag, r.max_body, static_cast<bool>(r.reader)});
  return out;
}

const Server::Route* Server::FindRoute(Request& req) const {
  auto methods = routes_.find(req.method);
  if (methods == routes_.end()) return nullptr;
  for (const auto& r : methods->second)
    if (std::regex_match(req.path, req.matches, r.pattern)) return &r;
  return nullptr;
}

bool Server::DispatchForTest(Request& req, Response& res) {
  if (!ParseTarget(req.target, req)) return false;
  const Route* route = FindRoute(req);
  if (!route || !route->handler) return false;
  route->handler(req, res);
  return true;
}

Status Server::set_tls(const std::string& cert_file, const std::string& key_file) {
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
  beast::error_code ec;
  ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                       asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                       asio::ssl::context::no_tlsv1_1,
                   ec);
  ctx->use_certificate_chain_file(cert_file, ec);
  if (ec) return InvalidArgument("--tls-cert " + cert_file + ": " + ec.message());
  ctx->use_private_key_file(key_file, asio::ssl::context::pem, ec);
  if (ec) return InvalidArgument("--tls-key " + key_file + ": " + ec.message());
  // Idle TLS connections keep no read or write buffers.
  SSL_CTX_set_mode(ctx->native_handle(), SSL_MODE_RELEASE_BUFFERS);
  tls_ = ctx;
  return Status::Ok();
}

bool Server::Bind(const std::string& host, int port, bool plain) {
  beast::error_code ec;
  auto addr = asio::ip::make_address(host == "localhost" ? "127.0.0.1" : host, ec);
  if (ec) return false;
  tcp::acceptor a(impl_->io);
  tcp::endpoint ep(addr, static_cast<unsigned short>(port));
  a.open(ep.protocol(), ec);
  if (!ec) a.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) a.bind(ep, ec);
  if (!ec) a.listen(1024, ec);
  if (ec) return false;
  // Asio opens and accepts without close-on-exec: no process the server starts may keep a socket.
  fcntl(a.native_handle(), F_SETFD, FD_CLOEXEC);
  impl_->listeners.push_back(
      std::make_unique<Impl::Listener>(Impl::Listener{std::move(a), !plain}));
  return true;
}

bool Server::bind_to_port(const std::string& host, int port) { return Bind(host, port, false); }

int Server::bind_to_any_port(const std::string& host) {
  if (!Bind(host, 0, false)) return -1;
  return impl_->listeners.back()->acceptor.local_endpoint().port();
}

int Server::add_plain_loopback_listener(int port) {
  if (!Bind("127.0.0.1", port, true)) return -1;
  return impl_->listeners.back()->acceptor.local_endpoint().port();
}

Status Server::add_unix_listener(const std::string& path, unsigned mode) {
  using local = asio::local::stream_protocol;
  beast::error_code ec;
  // A socket file left by a server that died is replaced; anything else at the path is not.
  struct stat st {};
  if (lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode))
      return FailedPrecondition(path + " exists and is not a socket; not replacing it");
    unlink(path.c_str());
  }
  auto a = std::make_unique<local::acceptor>(impl_->io);
  a->open(local(), ec);
  if (!ec) a->bind(local::endpoint(path), ec);
  if (!ec && chmod(path.c_str(), mode) != 0) ec.assign(errno, boost::system::system_category());
  if (!ec) a->listen(1024, ec);
  if (ec) return Unavailable("cannot listen on " + path + ": " + ec.message());
  fcntl(a->native_handle(), F_SETFD, FD_CLOEXEC);
  impl_->unix_listeners.push_back(std::move(a));
  return Status::Ok();
}

void Server::stop() {
  if (stopping_.exchange(true)) return;
  asio::post(impl_->io, [this] {
    beast::error_code ec;
    for (auto& l : impl_->listeners) l->acceptor.close(ec);
    for (auto& l : impl_->unix_listeners) l->close(ec);
    impl_->retry.cancel();
    while (impl_->ShedOne()) {
    }
    std::vector<std::shared_ptr<ConnectionBase>> open;
    {
      std::lock_guard<std::mutex> l(impl_->all_mu);
      for (auto& w : impl_->all)
        if (auto c = w.lock()) open.push_back(c);
    }
    for (auto& c : open) c->StopReading();
  });
}

bool Server::listen_after_bind() {
  if (impl_->listeners.empty() && impl_->unix_listeners.empty()) return false;
  // Each connection is a descriptor: use what the process may have, and keep a reserve for files.
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  size_t limit = max_connections_;
  if (limit == 0)
    limit = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur > 512 ? rl.rlim_cur - 256 : 256;
  auto on_socket = [this](tcp::socket sock, bool tls) {
    beast::error_code ec;
    fcntl(sock.native_handle(), F_SETFD, FD_CLOEXEC);
    sock.set_option(tcp::no_delay(true), ec);
    std::string address = sock.remote_endpoint(ec).address().to_string();
    auto start = [&](auto c) {
      c->address = address;
      c->peer.address = std::move(address);
      if (size_t cap = max_unproven_per_address_.load(); cap > 0) impl_->ListUnproven(c, cap);
      c->Start();
    };
    if (tls && tls_) {
      auto& ctx = *std::static_pointer_cast<asio::ssl::context>(tls_);
      start(std::make_shared<Connection<beast::ssl_stream<beast::tcp_stream>>>(
          this, std::move(sock), ctx));
    } else {
      start(std::make_shared<Connection<beast::tcp_stream>>(this, std::move(sock)));
    }
  };
  std::function<void(Impl::Listener*)> accept = [&](Impl::Listener* l) {
    l->acceptor.async_accept([&, l](beast::error_code ec, tcp::socket sock) {
      if (stopping_ || ec == asio::error::operation_aborted) return;
      if (ec == asio::error::no_descriptors || ec.value() == ENFILE || ec.value() == EMFILE) {
        // Out of descriptors: make room by closing the longest-idle connection, or wait a moment.
        if (impl_->ShedOne()) return accept(l);
        auto retry = std::make_shared<asio::steady_timer>(impl_->io, std::chrono::milliseconds(10));
        retry->async_wait([&, l, retry](beast::error_code e) {
          if (!e && !stopping_) accept(l);
        });
        return;
      }
      if (!ec) {
        if (connections_.load() >= limit && !impl_->ShedOne())
          sock.close(ec);
        else
          on_socket(std::move(sock), l->tls);
      }
      accept(l);
    });
  };
  for (auto& l : impl_->listeners) accept(l.get());
  // The Unix socket: the kernel names each caller; connections count against their user's cap.
  std::function<void(asio::local::stream_protocol::acceptor*)> accept_unix =
      [&](asio::local::stream_protocol::acceptor* l) {
        l->async_accept([&, l](beast::error_code ec, asio::local::stream_protocol::socket sock) {
          if (stopping_ || ec == asio::error::operation_aborted) return;
          if (ec == asio::error::no_descriptors || ec.value() == ENFILE || ec.value() == EMFILE) {
            if (impl_->ShedOne()) return accept_unix(l);
            auto retry =
                std::make_shared<asio::steady_timer>(impl_->io, std::chrono::milliseconds(10));
            retry->async_wait([&, l, retry](beast::error_code e) {
              if (!e && !stopping_) accept_unix(l);
            });
            return;
          }
          if (!ec) {
            ucred cred{};
            socklen_t len = sizeof cred;
            fcntl(sock.native_handle(), F_SETFD, FD_CLOEXEC);
            if ((connections_.load() >= limit && !impl_->ShedOne()) ||
                getsockopt(sock.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
              sock.close(ec);
            } else {
              auto c = std::make_shared<Connection<UnixStream>>(this, std::move(sock));
              c->peer.unix_socket = true;
              c->peer.uid = cred.uid;
              c->peer.gid = cred.gid;
              c->peer.pid = cred.pid;
              c->peer.address = "unix:" + std::to_string(cred.uid);
              c->address = c->peer.address;
              if (size_t cap = max_unproven_per_address_.load(); cap > 0)
                impl_->ListUnproven(c, cap);
              c->Start();
            }
          }
          accept_unix(l);
        });
      };
  for (auto& l : impl_->unix_listeners) accept_unix(l.get());
  impl_->io.run();
  {
    std::lock_guard<std::mutex> l(impl_->mu);
    impl_->done = true;
    impl_->cv.notify_all();
  }
  for (auto& t : impl_->threads)
    if (t.joinable()) t.join();
  impl_->threads.clear();
  return true;
}

}  // namespace cairn::http
