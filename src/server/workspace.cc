#include "server/workspace.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <nlohmann/json.hpp>
#include <thread>

#include "base/settings.h"
#include "base/fs.h"
#include "base/http_client.h"
#include "base/util.h"
#include "compute/process.h"

namespace cairn::server {

std::string ServerExe() {
  if (auto e = settings::Get("CAIRN_SERVER_BIN"); e && !e->empty()) return AbsPath(*e);
  return Dirname(compute::SelfExe()) + "/cairn-server";
}

std::string DefaultHome() {
  if (auto h = settings::Get("CAIRN_HOME"); h && !h->empty()) return AbsPath(*h);
  const char* home = getenv("HOME");
  return AbsPath(std::string(home && *home ? home : "/tmp") + "/.cairn");
}

Result<std::string> EnsureWorkspace(const WorkspacePaths& ws) {
  for (const auto& d : {ws.home, ws.Blobs(), ws.Runs()}) {
    Status s = MakeDirs(d);
    if (!s.ok()) return s;
  }
  chmod(ws.home.c_str(), 0700);
  auto token = ReadFile(ws.Token());
  if (token.ok() && !Trim(*token).empty()) return Trim(*token);
  // O_EXCL: when two processes race, one writes and both read the same token.
  std::string fresh = RandomHex(32);
  int fd = open(ws.Token().c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd >= 0) {
    (void)!write(fd, fresh.data(), fresh.size());
    fsync(fd);
    close(fd);
    return fresh;
  }
  for (int i = 0; i < 100; ++i) {
    token = ReadFile(ws.Token());
    if (token.ok() && !Trim(*token).empty()) return Trim(*token);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return Internal("cannot create the workspace token " + ws.Token());
}

void RequireWorkspaceIdentity(HttpClient& cli, const ServerAddress& addr) {
  std::string port = PortOfUrl(addr.url);
  cli.SetIdentityCheck(
      [](const std::string& nonce) { return "/api/v1/identify?nonce=" + nonce; },
      [token = addr.token, port](const std::string& body, const std::string& nonce) {
        auto j = nlohmann::json::parse(body, nullptr, false);
        return j.is_object() && j["proof"].is_string() &&
               j["proof"].get<std::string>() == IdentityProof(token, nonce, port);
      });
}

bool Healthy(const ServerAddress& addr, int timeout_ms) {
  HttpClient cli(addr.url, timeout_ms);
  RequireWorkspaceIdentity(cli, addr);
  cli.SetBearerToken(addr.token);
  auto res = cli.Request("GET", "/api/v1/health");
  return res.ok() && res->status == 200;
}

namespace {
Result<ServerAddress> ReadAddress(const WorkspacePaths& ws, const std::string& token) {
  auto info = ReadFile(ws.ServerInfo());
  if (!info.ok()) return info.status();
  auto j = nlohmann::json::parse(*info, nullptr, false);
  if (!j.is_object() || !j.contains("url")) return Unavailable("malformed " + ws.ServerInfo());
  return ServerAddress{j["url"].get<std::string>(), token};
}
}  // namespace

Result<ServerAddress> FindRunning(const WorkspacePaths& ws) {
  auto token = ReadFile(ws.Token());
  auto info = ReadFile(ws.ServerInfo());
  if (!token.ok() || !info.ok()) return Unavailable("no server");
  auto j = nlohmann::json::parse(*info, nullptr, false);
  if (!j.is_object() || !j.contains("url") || !j["pid"].is_number_integer())
    return Unavailable("no server");
  pid_t pid = j["pid"].get<pid_t>();
  if (pid <= 0 || (kill(pid, 0) != 0 && errno != EPERM)) return Unavailable("no server");
  return ServerAddress{j["url"].get<std::string>(), Trim(*token)};
}

Result<ServerAddress> ConnectOrStart(const WorkspacePaths& ws) {
  auto token = EnsureWorkspace(ws);
  if (!token.ok()) return token.status();
  if (auto addr = ReadAddress(ws, *token); addr.ok() && Healthy(*addr, 1000)) return addr;

  int lock = open(ws.StartLock().c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock < 0) return Internal("cannot open " + ws.StartLock());
  flock(lock, LOCK_EX);
  // Another CLI may have started it while we waited for the lock.
  if (auto addr = ReadAddress(ws, *token); addr.ok() && Healthy(*addr, 1000)) {
    close(lock);
    return addr;
  }
  unlink(ws.ServerInfo().c_str());
  auto pid = compute::SpawnDetached({ServerExe(), "--port", "0"}, ws.ServerLog(),
                                    {{"CAIRN_HOME", ws.home}});
  if (!pid.ok()) {
    close(lock);
    return pid.status();
  }
  long long deadline = NowMillis() + 15000;
  while (NowMillis() < deadline) {
    if (auto addr = ReadAddress(ws, *token); addr.ok() && Healthy(*addr, 1000)) {
      close(lock);
      return addr;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  close(lock);
  return Unavailable("the workspace server did not start within 15 s; see " + ws.ServerLog());
}

}  // namespace cairn::server
