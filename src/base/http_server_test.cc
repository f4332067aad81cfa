#include "base/http_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>

#include "base/http_client.h"

namespace cairn::http {
namespace {

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    svr_.Get(R"(/echo/(.+))", [](const Request& req, Response& res) {
      std::string out = "path=" + req.matches[1].str() + " q=" + req.get_param_value("q") +
                        " n=" + std::to_string(req.params.count("k"));
      res.set_content(out, "text/plain");
    });
    svr_.Post("/body", [](const Request& req, Response& res) {
      res.set_content(std::to_string(req.body.size()) + ":" + req.body.substr(0, 16), "text/plain");
    });
    svr_.Put("/stream", [](const Request&, Response& res, const ContentReader& reader) {
      size_t total = 0, calls = 0;
      bool ok = reader([&](const char*, size_t n) {
        total += n;
        ++calls;
        return true;
      });
      res.set_content(std::string(ok ? "ok " : "broken ") + std::to_string(total), "text/plain");
    });
    // The body into a file (spliced from a plain socket), then the file's size, last progress
    // report and a checksum of its bytes.
    svr_.Put("/tofile", [](const Request&, Response& res, const ContentReader& reader) {
      FILE* f = tmpfile();
      uint64_t reported = 0;
      bool write_failed = false;
      bool ok = reader.ToFile(
          fileno(f), [&](uint64_t n) { reported = n; }, &write_failed);
      std::string text;
      char buf[65536];
      rewind(f);
      unsigned long long sum = 0;
      size_t n, total = 0;
      while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
        for (size_t i = 0; i < n; ++i) sum = sum * 31 + static_cast<unsigned char>(buf[i]);
        total += n;
      }
      fclose(f);
      res.set_content(std::string(ok ? "ok " : "broken ") + std::to_string(total) + " " +
                          std::to_string(reported) + " " + std::to_string(sum),
                      "text/plain");
    });
    svr_.Put("/refuse", [](const Request&, Response& res, const ContentReader&) {
      res.status = 403;  // answers without reading the body
      res.set_content("no", "text/plain");
    });
    svr_.Get("/throw", [](const Request&, Response&) { throw std::runtime_error("boom"); });
    svr_.Get("/provider", [](const Request&, Response& res) {
      res.set_content_provider(10, "text/plain", [](size_t offset, size_t, DataSink& sink) {
        std::string part(offset < 5 ? "01234" : "56789");
        return sink.write(part.data(), part.size());
      });
    });
    svr_.Get("/events", [](const Request&, Response& res) {
      auto n = std::make_shared<int>(0);
      res.set_stream("text/event-stream", [n](DataSink& sink) {
        std::string event = "data: " + std::to_string((*n)++) + "\n\n";
        return *n <= 3 && sink.write(event.data(), event.size());
      });
    });
    svr_.Get("/forever", [this](const Request&, Response& res) {
      res.set_stream("text/event-stream", [this](DataSink& sink) {
        ++forever_ticks_;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
        return sink.write(": tick\n", 7);
      });
    });
    svr_.set_exception_handler([](const Request&, Response& res, std::exception_ptr ep) {
      try {
        std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        res.status = 500;
        res.set_content(e.what(), "text/plain");
      }
    });
    port_ = svr_.bind_to_any_port("127.0.0.1");
    ASSERT_GT(port_, 0);
    thread_ = std::thread([this] { svr_.listen_after_bind(); });
  }
  void TearDown() override {
    svr_.stop();
    thread_.join();
  }
  // A fresh connection to the server.
  int Connect() {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port_));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    return fd;
  }
  // Sends raw bytes on a fresh connection and returns everything the server sends until it closes.
  std::string Raw(const std::string& bytes, bool half_close = true) {
    int fd = Connect();
    EXPECT_EQ(write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
    if (half_close) shutdown(fd, SHUT_WR);
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
    close(fd);
    return out;
  }
  std::string Url() { return "http://127.0.0.1:" + std::to_string(port_); }
  Server svr_;
  std::atomic<int> forever_ticks_{0};  // ticks the /forever stream has sent
  int port_ = 0;
  std::thread thread_;
};

TEST_F(ServerTest, DecodesPathsAndRepeatedQueryKeys) {
  HttpClient c(Url());
  auto r = c.Request("GET", "/echo/a%20b%2Fc?q=x+y%26z&k=1&k=2");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "path=a b/c q=x y&z n=2");
  auto missing = c.Request("GET", "/nothing");
  ASSERT_TRUE(missing.ok());
  EXPECT_EQ(missing->status, 404);
}

TEST_F(ServerTest, KeepsTheConnectionForManyRequests) {
  HttpClient c(Url());
  for (int i = 0; i < 500; ++i) {
    auto r = c.Request("POST", "/body", std::string(static_cast<size_t>(i), 'x'), "text/plain");
    ASSERT_TRUE(r.ok());
    ASSERT_EQ(r->body.substr(0, r->body.find(':')), std::to_string(i));
  }
}

TEST_F(ServerTest, ReadsChunkedBodiesAndAnswersPipelinedRequests) {
  std::string req =
      "POST /body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nTrailer: t\r\n\r\n"
      "GET /echo/two HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  std::string out = Raw(req);
  EXPECT_NE(out.find("\r\n\r\n12:hello, world"), std::string::npos) << out;
  EXPECT_NE(out.find("path=two"), std::string::npos) << out;
  EXPECT_NE(out.find("Connection: close"), std::string::npos);
}

TEST_F(ServerTest, AnswersExpectContinueAndStreamsBodies) {
  std::string body(3 << 20, 'b');
  std::string out =
      Raw("PUT /stream HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: " +
          std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body);
  EXPECT_EQ(out.rfind("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n", 0), 0u)
      << out.substr(0, 200);
  EXPECT_NE(out.find("ok 3145728"), std::string::npos);
  HttpClient c(Url());
  auto r = c.Request("PUT", "/stream", std::string(5 << 20, 'c'), "application/octet-stream");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->body, "ok 5242880");
}

TEST_F(ServerTest, ABodyGoesIntoAFileWholeAndInOrder) {
  // Every byte differs from its neighbours, so a piece lost, doubled or out of order changes the
  // checksum; 5 MiB passes the first buffered piece and the spliced rest, and a second request on
  // the same connection finds its bytes untouched.
  std::string body(5 << 20, '\0');
  for (size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>((i * 7919) >> 3);
  unsigned long long sum = 0;
  for (unsigned char c : body) sum = sum * 31 + c;
  const std::string want = "ok " + std::to_string(body.size()) + " " + std::to_string(body.size()) +
                           " " + std::to_string(sum);
  HttpClient c(Url());
  auto r = c.Request("PUT", "/tofile", body, "application/octet-stream");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->body, want);
  auto again = c.Request("PUT", "/tofile", body, "application/octet-stream");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->body, want);
  auto next = c.Request("GET", "/echo/after");
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(next->body, "path=after q= n=0");
}

TEST_F(ServerTest, AnUnreadBodyDoesNotBreakTheNextRequest) {
  HttpClient c(Url());
  auto refused = c.Request("PUT", "/refuse", std::string(1000, 'z'), "text/plain");
  ASSERT_TRUE(refused.ok());
  EXPECT_EQ(refused->status, 403);
  auto next = c.Request("GET", "/echo/after");
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(next->body, "path=after q= n=0");
}

TEST_F(ServerTest, RefusesMalformedRequestsWithoutServingThem) {
  EXPECT_EQ(Raw("NONSENSE\r\n\r\n").rfind("HTTP/1.1 400", 0), 0u);
  EXPECT_EQ(Raw("GET / HTTP/2.0\r\n\r\n").rfind("HTTP/1.1 400", 0), 0u);
  EXPECT_EQ(Raw("POST /body HTTP/1.1\r\nContent-Length: x\r\n\r\n").rfind("HTTP/1.1 400", 0), 0u);
  EXPECT_EQ(
      Raw("GET / HTTP/1.1\r\nX: " + std::string(70000, 'a') + "\r\n\r\n").rfind("HTTP/1.1 431", 0),
      0u);
  svr_.set_max_body(100);
  EXPECT_EQ(Raw("POST /body HTTP/1.1\r\nContent-Length: 101\r\n\r\n").rfind("HTTP/1.1 413", 0), 0u);
  // A truncated body: the connection ends, nothing is answered.
  EXPECT_EQ(Raw("POST /body HTTP/1.1\r\nContent-Length: 50\r\n\r\nshort"), "");
}

TEST_F(ServerTest, HandlerExceptionsAndProvidersAnswer) {
  HttpClient c(Url());
  auto boom = c.Request("GET", "/throw");
  ASSERT_TRUE(boom.ok());
  EXPECT_EQ(boom->status, 500);
  EXPECT_EQ(boom->body, "boom");
  auto p = c.Request("GET", "/provider");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->body, "0123456789");
}

TEST_F(ServerTest, StopEndsIdleKeepAliveConnections) {
  HttpClient c(Url());
  ASSERT_TRUE(
      c.Request("GET", "/echo/x").ok());  // the connection stays open, its worker waits in recv
  auto start = std::chrono::steady_clock::now();
  svr_.stop();
  thread_.join();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  thread_ = std::thread([] {});
}

}  // namespace
}  // namespace cairn::http

namespace cairn::http {
namespace {

TEST_F(ServerTest, StreamsEndWithTheConnection) {
  std::string out = Raw("GET /events HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(out.rfind("HTTP/1.1 200", 0), 0u) << out;
  EXPECT_NE(out.find("Content-Type: text/event-stream\r\n"), std::string::npos);
  EXPECT_NE(out.find("Connection: close\r\n"), std::string::npos);
  EXPECT_EQ(out.find("Content-Length"), std::string::npos);
  EXPECT_EQ(out.substr(out.find("\r\n\r\n") + 4), "data: 0\n\ndata: 1\n\ndata: 2\n\n");
}

TEST_F(ServerTest, StopEndsAStreamThatWouldNeverEnd) {
  std::thread reader([this] {
    EXPECT_NE(Raw("GET /forever HTTP/1.1\r\n\r\n", false).find(": tick"), std::string::npos);
  });
  while (forever_ticks_ == 0)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));  // the stream is on
  svr_.stop();  // TearDown joins the server, which must not wait for the stream forever
  reader.join();
}

}  // namespace
}  // namespace cairn::http

namespace cairn::http {
namespace {

TEST_F(ServerTest, RefusesSmugglingShapesAndAnswersHeadsSentInPieces) {
  // Content-Length with chunked, two Content-Lengths, an overflowing chunk size: refused, nothing
  // more served.
  std::string te =
      Raw("POST /body HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
          "GET /echo/smuggled HTTP/1.1\r\n\r\n");
  EXPECT_EQ(te.rfind("HTTP/1.1 400", 0), 0u) << te;
  EXPECT_EQ(te.find("smuggled"), std::string::npos);
  EXPECT_EQ(Raw("POST /body HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nab")
                .rfind("HTTP/1.1 400", 0),
            0u);
  EXPECT_EQ(Raw("POST /body HTTP/1.1\r\nTransfer-Encoding: "
                "chunked\r\n\r\nfffffffffffffffffff1\r\nx\r\n0\r\n\r\n")
                .rfind("HTTP/1.1 4", 0),
            0u);
  // A head in two writes is one head.
  int fd = Connect();
  std::string head = "GET /echo/split?q=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  ASSERT_EQ(write(fd, head.data(), 10), 10);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_EQ(write(fd, head.data() + 10, head.size() - 10), static_cast<ssize_t>(head.size() - 10));
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  close(fd);
  EXPECT_NE(out.find("path=split q=1"), std::string::npos) << out;
}

TEST_F(ServerTest, RefusesPathsAndQueriesThatAreNotUtf8) {
  EXPECT_EQ(Raw("GET /echo/%ff HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 400", 0), 0u);
  EXPECT_EQ(Raw("GET /echo/x?q=%c0%af HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 400", 0), 0u);
  std::string ok = Raw("GET /echo/%C3%A9?q=%E2%82%AC HTTP/1.1\r\nConnection: close\r\n\r\n");
  EXPECT_NE(ok.find("path=\xC3\xA9 q=\xE2\x82\xAC"), std::string::npos) << ok;
}

TEST_F(ServerTest, ThePreRoutingHandlerRefusesBeforeTheBodyIsRead) {
  svr_.set_pre_routing_handler([](Request& req, Response& res) {
    if (req.get_header_value("Authorization") == "ok") return Server::HandlerResponse::Unhandled;
    res.status = 401;
    return Server::HandlerResponse::Handled;
  });
  auto start = std::chrono::steady_clock::now();
  // A body of 1 GiB announced and never sent: the answer comes at once, from the head.
  std::string out = Raw("POST /body HTTP/1.1\r\nContent-Length: 1073741824\r\n\r\nxxxx");
  EXPECT_EQ(out.rfind("HTTP/1.1 401", 0), 0u) << out;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  // Past the route's limit: 413 on the head.
  svr_.set_max_body(1000);
  EXPECT_EQ(Raw("POST /body HTTP/1.1\r\nAuthorization: ok\r\nContent-Length: 4294967296\r\n\r\n")
                .rfind("HTTP/1.1 413", 0),
            0u);
}

}  // namespace
}  // namespace cairn::http

namespace cairn::http {
namespace {

// Whether the server closed `fd`: a read that ends (0 bytes or a reset) within `ms`.
bool ClosedWithin(int fd, int ms) {
  timeval tv{ms / 1000, (ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char c;
  ssize_t n = read(fd, &c, 1);
  return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

TEST_F(ServerTest, OneAddressHoldsAtMostTheCapOfConnectionsWithoutACredential) {
  svr_.set_pre_routing_handler([](Request& req, Response&) {
    return req.get_header_value("Authorization") == "Bearer ok"
               ? Server::HandlerResponse::Authorized
               : Server::HandlerResponse::Unhandled;
  });
  svr_.set_max_unproven_per_address(4);
  // A connection that proved itself, then left idle.
  int proven = Connect();
  std::string req = "GET /echo/p HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ok\r\n\r\n";
  ASSERT_EQ(write(proven, req.data(), req.size()), static_cast<ssize_t>(req.size()));
  char buf[4096];
  ASSERT_GT(read(proven, buf, sizeof buf), 0);
  // One that asked for a public page without a credential, and ten that never said anything.
  int asked = Connect();
  std::string page = "GET /echo/q HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_EQ(write(asked, page.data(), page.size()), static_cast<ssize_t>(page.size()));
  ASSERT_GT(read(asked, buf, sizeof buf), 0);
  std::vector<int> silent;
  for (int i = 0; i < 10; ++i) silent.push_back(Connect());
  // The oldest seven unproven ones are closed (the page's first), the newest four stay, and so does
  // the proven one, which is still served.
  EXPECT_TRUE(ClosedWithin(asked, 2000));
  for (int i = 0; i < 6; ++i) EXPECT_TRUE(ClosedWithin(silent[static_cast<size_t>(i)], 2000)) << i;
  for (int i = 6; i < 10; ++i) EXPECT_FALSE(ClosedWithin(silent[static_cast<size_t>(i)], 200)) << i;
  ASSERT_EQ(write(proven, req.data(), req.size()), static_cast<ssize_t>(req.size()));
  ASSERT_GT(read(proven, buf, sizeof buf), 0);
  EXPECT_EQ(std::string(buf, 12), "HTTP/1.1 200");
  // A newcomer that proves itself at once is served, and its connection no longer counts.
  HttpClient c(Url());
  c.SetBearerToken("ok");
  auto r = c.Request("GET", "/echo/n");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 200);
  for (int fd : silent) close(fd);
  close(asked);
  close(proven);
}

}  // namespace
}  // namespace cairn::http

namespace cairn::http {
namespace {

// A server on a Unix socket: each request names the user of the process that connected, as the
// kernel saw it, and the tag of the route it matched.
class UnixSocketTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/cairn-unix-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    chmod(dir_.c_str(), 0755);  // another user reaches the socket through it
    path_ = dir_ + "/test.sock";
    svr_.Add(
        "GET", "/who",
        [](const Request& req, Response& res) {
          res.set_content("uid=" + std::to_string(req.peer.uid) +
                              " unix=" + std::to_string(req.peer.unix_socket) +
                              " tag=" + std::to_string(req.route_tag),
                          "text/plain");
        },
        0, 7);
    ASSERT_TRUE(svr_.add_unix_listener(path_, 0666).ok());
    thread_ = std::thread([this] { svr_.listen_after_bind(); });
  }
  void TearDown() override {
    svr_.stop();
    thread_.join();
    unlink(path_.c_str());
    rmdir(dir_.c_str());
  }
  Server svr_;
  std::thread thread_;
  std::string dir_, path_;
};

TEST_F(UnixSocketTest, EachRequestNamesTheUserWhoConnected) {
  HttpClient c("unix:" + path_);
  auto r = c.Request("GET", "/who");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->body, "uid=" + std::to_string(getuid()) + " unix=1 tag=7");
  struct stat st {};
  ASSERT_EQ(stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0666u);
  if (getuid() != 0) GTEST_SKIP() << "changing to another user needs root";
  // A child that becomes uid 4242 before it connects is named as 4242, whatever it sends.
  int pipefd[2];
  ASSERT_EQ(pipe(pipefd), 0);
  pid_t pid = fork();
  if (pid == 0) {
    close(pipefd[0]);
    if (setresgid(4242, 4242, 4242) != 0 || setresuid(4242, 4242, 4242) != 0) _exit(2);
    HttpClient other("unix:" + path_);
    auto o = other.Request("GET", "/who");
    std::string body = o.ok() ? o->body : "error " + o.status().message();
    (void)!write(pipefd[1], body.data(), body.size());
    _exit(0);
  }
  close(pipefd[1]);
  std::string got;
  char buf[256];
  for (ssize_t n; (n = read(pipefd[0], buf, sizeof buf)) > 0;) got.append(buf, n);
  close(pipefd[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_EQ(got, "uid=4242 unix=1 tag=7");
}

TEST_F(UnixSocketTest, ListsRoutesWithTheirTags) {
  auto routes = svr_.routes();
  ASSERT_EQ(routes.size(), 1u);
  EXPECT_EQ(routes[0].method, "GET");
  EXPECT_EQ(routes[0].pattern, "/who");
  EXPECT_EQ(routes[0].tag, 7);
}

TEST(UnixSocket, RefusesToReplaceAFileThatIsNotASocket) {
  char tmpl[] = "/tmp/cairn-unix-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  std::string path = std::string(tmpl) + "/plain";
  FILE* f = fopen(path.c_str(), "w");
  ASSERT_NE(f, nullptr);
  fclose(f);
  Server s;
  Status st = s.add_unix_listener(path, 0600);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("not a socket"), std::string::npos) << st.message();
  unlink(path.c_str());
  rmdir(tmpl);
}

}  // namespace
}  // namespace cairn::http
