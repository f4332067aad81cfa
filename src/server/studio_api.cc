#include "server/server_impl.h"

#include <fcntl.h>
#include <grp.h>
#include <malloc.h>
#include <pwd.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/accounts.h"
#include "base/settings.h"
#include "base/beneath.h"
#include "base/json_limits.h"
#include "base/http_server.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "base/fs.h"
#include "base/json_writer.h"
#include "base/util.h"
#include "compute/container.h"
#include "compute/distribution.h"
#include "compute/image_cache.h"
#include "compute/process.h"
#include "compute/run_layout.h"
#include "scheduler/scheduler.h"
#include "server/access.h"
#include "server/assets_api.h"
#include "store/access_store.h"
#include "server/job_view.h"
#include "server/zip_stream.h"
#include "server/responses.h"
#include "server/mlflow_api.h"
#include "server/oidc.h"
#include "tracking/tracking_store.h"
#include "server/workspace.h"
#include "spec/job_spec.h"
#include "spec/vm_sizes.h"
#include "store/blob_store.h"
#include "tracking/downsample.h"

namespace cairn::server {

namespace fs = std::filesystem;

namespace {

// cairn_mlflow.py, the dependency-free helper: beside the binaries in a build tree, or installed.
// The studio's built files (ui/dist in a build tree, share/cairn/ui when installed; CAIRN_UI_DIR to
// override), or "" when it was not built.
std::string UiDir() {
  if (auto d = settings::Get("CAIRN_UI_DIR"); d && !d->empty()) return *d;
  std::string exe_dir = Dirname(compute::SelfExe());
  for (const auto& d : {exe_dir + "/../ui/dist", exe_dir + "/../share/cairn/ui"})
    if (PathExists(d + "/index.html")) return AbsPath(d);
  return "";
}

std::string ContentTypeOf(const std::string& path) {
  static const std::map<std::string, std::string> kTypes = {
      {".html", "text/html; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".svg", "image/svg+xml"},
      {".png", "image/png"},
      {".ico", "image/x-icon"},
      {".json", "application/json"},
      {".woff2", "font/woff2"},
      {".map", "application/json"}};
  size_t dot = path.rfind('.');
  auto it = dot == std::string::npos ? kTypes.end() : kTypes.find(path.substr(dot));
  return it == kTypes.end() ? "application/octet-stream" : it->second;
}

}  // namespace

void Server::SendUiFile(http::Response& res, const std::string& rel) {
  std::string dir = UiDir();
  if (dir.empty()) {
    res.status = rel == "index.html" ? 200 : 404;
    res.set_content(
        "<!doctype html><title>Cairn</title><p>The studio is not built here: <code>make "
        "build</code> "
        "builds it (npm), and the REST API at /api/v1 works without it.</p>",
        "text/html; charset=utf-8");
    return;
  }
  std::string path = dir + "/" + rel;
  struct stat st;
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 || fstat(fd, &st) != 0) {
    if (fd >= 0) close(fd);
    return SendError(res, NotFound("no file " + rel));
  }
  // Built assets carry their content hash in their names: they never change.
  if (StartsWith(rel, "assets/"))
    res.set_header("Cache-Control", "public, max-age=31536000, immutable");
  else
    res.set_header("Cache-Control", "no-cache");
  res.set_file_content(fd, static_cast<size_t>(st.st_size), ContentTypeOf(rel));
}

// The studio: its files need no sign-in (they hold no data); its API calls do, through a
// session cookie that a one-time link (POST /api/v1/login-codes, then GET /login?code=) sets.
void Server::StudioIndex(const http::Request&, http::Response& res) {
  SendUiFile(res, "index.html");
}

void Server::StudioAsset(const http::Request& req, http::Response& res) {
  SendUiFile(res, req.matches[1]);
}

void Server::CreateLoginCode(const http::Request& req, http::Response& res) {
  std::string code = RandomHex(24);
  {
    std::lock_guard<std::mutex> l(auth_mu_);
    long long now = NowMillis();
    for (auto it = login_codes_.begin(); it != login_codes_.end();)
      it = it->second.expires < now ? login_codes_.erase(it) : std::next(it);
    // The link signs in whoever asked for it (the studio then acts as them).
    login_codes_[code] = {now + 5 * 60 * 1000, CallerOf(req).name};
  }
  SendJson(res, {{"code", code}, {"expires_in", 300}, {"url", url_ + "/login?code=" + code}}, 201);
}

void Server::SignInWithCode(const http::Request& req, http::Response& res) {
  std::string code = req.get_param_value("code");
  // The studio's own pages only.
  const std::string next =
      IsStudioRoute(req.get_param_value("next")) ? req.get_param_value("next") : std::string("/");
  std::string session;
  {
    std::lock_guard<std::mutex> l(auth_mu_);
    auto it = login_codes_.find(code);
    if (it != login_codes_.end() && it->second.expires >= NowMillis()) {
      session = RandomHex(32);
      long long now = NowMillis();
      for (auto s = sessions_.begin(); s != sessions_.end();)
        s = now - s->second.last_used > session_idle_ms_ ||
                    now - s->second.created > session_max_age_ms_
                ? sessions_.erase(s)
                : std::next(s);
      sessions_[session] = {now, now, it->second.person, false, {}, "", 0};
    }
    if (it != login_codes_.end()) login_codes_.erase(it);  // one use, valid or not
  }
  if (session.empty()) {
    res.status = 403;
    res.set_content(
        "<!doctype html><title>Cairn</title><p>This sign-in link has expired or was already "
        "used. "
        "Run <code>cairn studio</code> for a new one.</p>",
        "text/html; charset=utf-8");
    return;
  }
  res.status = 302;
  res.set_header("Set-Cookie", "cairn_session=" + session + "; Path=/; HttpOnly; SameSite=Strict" +
                                   (svr_.tls() ? "; Secure" : ""));
  res.set_header("Location", next);
}

}  // namespace cairn::server
