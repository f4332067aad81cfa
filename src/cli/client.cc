#include "cli/client.h"

#include "base/settings.h"
#include "base/json_limits.h"

#include "base/beneath.h"

#include <fcntl.h>
#include <unistd.h>

#include "base/fs.h"
#include "base/http_client.h"
#include "base/util.h"
#include "cli/globals.h"

namespace cairn::cli {

AzGlobals& Az() {
  static AzGlobals g;
  return g;
}

using nlohmann::json;

namespace {
Code CodeForHttp(int status) {
  switch (status) {
    case 400:
      return Code::kInvalidArgument;
    case 401:
      return Code::kUnauthenticated;
    case 403:
      return Code::kPermissionDenied;
    case 404:
      return Code::kNotFound;
    case 409:
      return Code::kFailedPrecondition;
    case 503:
      return Code::kUnavailable;
    default:
      return Code::kInternal;
  }
}

Status ErrorOf(const HttpResponse& res) {
  json body = ParseJsonOrDiscarded(res.body);
  std::string msg = "HTTP " + std::to_string(res.status);
  Code code = CodeForHttp(res.status);
  if (body.is_object() && body.contains("error") && body["error"].is_object()) {
    msg = body["error"].value("message", msg);
    if (body["error"].value("code", "") == "AlreadyExists") code = Code::kAlreadyExists;
  }
  return Status(code, msg);
}

Result<json> Decode(const Result<HttpResponse>& res, const std::string& url) {
  if (!res.ok())
    return Unavailable("cannot reach the workspace server at " + url + ": " +
                       res.status().message());
  if (res->status >= 200 && res->status < 300) {
    json body = res->body.empty() ? json::object() : ParseJsonOrDiscarded(res->body);
    if (body.is_discarded()) return Internal("the server sent a malformed answer");
    return body;
  }
  return ErrorOf(*res);
}
}  // namespace

Client::Client(server::ServerAddress addr, std::function<Result<server::ServerAddress>()> restart)
    : addr_(std::move(addr)),
      restart_(std::move(restart)),
      http_(std::make_unique<HttpClient>(addr_.url)) {
  // This machine's server (found through server.json): each connection proves it is the workspace's
  // before the token goes over it. A server named by CAIRN_WORKSPACE (TLS, elsewhere) is taken as
  // named.
  if (restart_) server::RequireWorkspaceIdentity(*http_, addr_);
  http_->SetBearerToken(addr_.token);
}

Result<HttpResponse> Client::Send(const std::string& method, const std::string& path,
                                  const std::string& body, const std::string& content_type,
                                  const std::function<bool(const char*, size_t)>& sink) {
  long long t0 = Az().debug ? NowMillis() : 0;
  auto res = http_->Request(method, path, body, content_type, sink);
  if (Az().debug)
    fprintf(stderr, "DEBUG: %s %s%s -> %s (%lld ms)\n", method.c_str(), addr_.url.c_str(),
            path.c_str(),
            res.ok() ? std::to_string(res->status).c_str() : res.status().message().c_str(),
            NowMillis() - t0);
  // No server at the address: start one (or find the one another CLI started) and send it there. A
  // GET may also be sent again when the server went away mid-request (killed, or restarting): it
  // changes nothing. A server that did not prove it is the workspace's counts as none (a squatter
  // on a dead server's port).
  if (!res.ok() && restart_ &&
      (http_->last_connect_failed() || http_->refused_identity() || method == "GET")) {
    auto addr = restart_();
    restart_ = nullptr;
    if (!addr.ok()) return addr.status();
    addr_ = *addr;
    http_ = std::make_unique<HttpClient>(addr_.url);
    server::RequireWorkspaceIdentity(*http_, addr_);
    http_->SetBearerToken(addr_.token);
    res = http_->Request(method, path, body, content_type, sink);
  }
  return res;
}

Client::~Client() = default;

Result<json> Client::Get(const std::string& path) { return Decode(Send("GET", path), addr_.url); }

Result<json> Client::Post(const std::string& path, const json& body) {
  return Decode(Send("POST", path, body.dump()), addr_.url);
}

Result<json> Client::Patch(const std::string& path, const json& body) {
  return Decode(Send("PATCH", path, body.dump()), addr_.url);
}

Result<json> Client::Put(const std::string& path, const json& body) {
  return Decode(Send("PUT", path, body.dump()), addr_.url);
}

Result<json> Client::Delete(const std::string& path) {
  return Decode(Send("DELETE", path), addr_.url);
}

Result<json> Client::PutBytes(const std::string& path, const std::string& body) {
  return Decode(Send("PUT", path, body, "application/octet-stream"), addr_.url);
}

Result<LogChunk> Client::Logs(const std::string& job, long long offset, int wait_ms,
                              const std::string& file, const std::string& seen_status,
                              bool want_final) {
  std::string path = "/api/v1/jobs/" + job + "/logs?offset=" + std::to_string(offset) +
                     "&wait_ms=" + std::to_string(wait_ms) + "&file=" + HttpClient::UrlEncode(file);
  if (!seen_status.empty()) path += "&status=" + seen_status;
  if (want_final) path += "&final=1";
  auto res = Send("GET", path);
  if (!res.ok())
    return Unavailable("cannot reach the workspace server at " + addr_.url + ": " +
                       res.status().message());
  if (res->status != 200) return ErrorOf(*res);
  LogChunk c;
  c.data = std::move(res->body);
  c.next_offset = atoll(res->Header("X-Cairn-Offset").c_str());
  c.size = atoll(res->Header("X-Cairn-Size").c_str());
  c.status = res->Header("X-Cairn-Status");
  c.reason = res->Header("X-Cairn-Reason");
  c.terminal = res->Header("X-Cairn-Terminal") == "true";
  if (std::string f = res->Header("X-Cairn-Final"); !f.empty()) {
    c.final = nlohmann::json::parse(f, nullptr, false);
    if (!c.final.is_object()) c.final = nullptr;
  }
  return c;
}

Status Client::Download(const std::string& job, const std::string& rel, const std::string& root) {
  return Fetch("/api/v1/jobs/" + job + "/files/" + HttpClient::UrlEncode(rel), rel, root, rel);
}

Status Client::Fetch(const std::string& path, const std::string& what, const std::string& root_dir,
                     const std::string& rel) {
  // The server names the path: it is written beneath the root, through no link, or not at all.
  if (rel.empty() || !Beneath::IsClean(rel))
    return InvalidArgument("refused to write '" + rel + "': it leaves " + root_dir);
  auto root = Beneath::OpenOrCreate(root_dir);
  if (!root.ok()) return root.status();
  size_t slash = rel.rfind('/');
  if (slash != std::string::npos)
    if (Status s = root->MakeDirs(rel.substr(0, slash)); !s.ok()) return s;
  std::string tmp = rel + ".cairn-partial";
  auto fd = root->OpenWrite(tmp, O_TRUNC);
  if (!fd.ok()) return fd.status();
  bool write_ok = true;
  int status = 0;
  auto res = Send("GET", path, "", "", [&](const char* data, size_t len) {
    write_ok = write(*fd, data, len) == static_cast<ssize_t>(len);
    return write_ok;
  });
  close(*fd);
  if (res.ok()) status = res->status;
  if (!res.ok() || status != 200 || !write_ok) {
    (void)root->Remove(tmp);
    if (!write_ok) return Internal("cannot write " + JoinPath(root_dir, rel));
    if (!res.ok())
      return Unavailable("cannot reach the workspace server: " + res.status().message());
    return Status(CodeForHttp(status),
                  "download of " + what + " failed (HTTP " + std::to_string(status) + ")");
  }
  return root->Rename(tmp, rel);
}

int ReportFailure(const Status& s) {
  fprintf(stderr, "ERROR: %s\n", s.message().c_str());
  switch (s.code()) {
    case Code::kInvalidArgument:
      return 2;
    case Code::kNotFound:
      return 3;
    case Code::kUnavailable:
      return 4;
    default:
      return 1;
  }
}

Result<std::unique_ptr<Client>> Connect() {
  if (auto w = settings::Get("CAIRN_WORKSPACE"); w && !w->empty()) {
    // A folder names a team server on this machine: its socket, where the kernel says who we are.
    if (StartsWith(*w, "/") || StartsWith(*w, ".")) {
      server::WorkspacePaths team{AbsPath(*w)};
      if (!PathExists(team.Socket()))
        return Unavailable("no team server at " + team.home + " (no " + team.Socket() +
                           "); an administrator starts one with: cairn server --team --home " +
                           team.home);
      return std::make_unique<Client>(server::ServerAddress{"unix:" + team.Socket(), ""});
    }
    return std::make_unique<Client>(
        server::ServerAddress{*w, settings::Get("CAIRN_TOKEN").value_or("")});
  }
  // Without CAIRN_HOME, this machine's team server when it has one.
  if (!settings::Get("CAIRN_HOME")) {
    server::WorkspacePaths team{server::kDefaultTeamHome};
    if (PathExists(team.Socket()))
      return std::make_unique<Client>(server::ServerAddress{"unix:" + team.Socket(), ""});
  }
  server::WorkspacePaths ws{server::DefaultHome()};
  // Trust server.json while its process lives, without a round trip; if it accepts no connection
  // after all, the first request starts a server and goes there.
  auto restart = [ws]() { return server::ConnectOrStart(ws); };
  auto local = [&ws](std::unique_ptr<Client> c) {
    if (IsDir(ws.Blobs()) && access(ws.Blobs().c_str(), W_OK) == 0)
      c->set_local_blob_root(ws.Blobs());
    return c;
  };
  if (auto addr = server::FindRunning(ws); addr.ok())
    return local(std::make_unique<Client>(*addr, restart));
  auto addr = server::ConnectOrStart(ws);
  if (!addr.ok()) return addr.status();
  return local(std::make_unique<Client>(*addr, restart));
}

}  // namespace cairn::cli
