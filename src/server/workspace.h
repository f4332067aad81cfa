// The workspace on disk ($CAIRN_HOME, default ~/.cairn) and how a CLI finds or starts its server.
// Functions are thread-safe; they coordinate processes through lock files.
#pragma once

#include <string>

#include "base/http_client.h"

#include "base/status.h"

namespace cairn::server {

struct WorkspacePaths {
  std::string home;
  std::string Token() const { return home + "/token"; }
  std::string ServerInfo() const { return home + "/server.json"; }
  // The port the workspace's server last listened on: a restarted server takes it again, so running
  // jobs' MLFLOW_TRACKING_URI still reaches it.
  std::string ServerPort() const { return home + "/server.port"; }
  std::string ServerLock() const { return home + "/server.lock"; }
  std::string StartLock() const { return home + "/start.lock"; }
  std::string ServerLog() const { return home + "/server.log"; }
  std::string Database() const { return home + "/cairn.db"; }
  std::string Blobs() const { return home + "/blobs"; }
  std::string Runs() const { return home + "/runs"; }
  // Roles, personal access tokens and the audit log.
  std::string AccessDb() const { return home + "/access.db"; }
  // A team server's socket, which everyone on the machine may connect to.
  std::string Socket() const { return home + "/cairn.sock"; }
};

// Where a team server lives unless told otherwise (cairn server --team).
constexpr const char* kDefaultTeamHome = "/var/lib/cairn";

// The server binary: cairn-server beside the running cairn (or $CAIRN_SERVER_BIN).
std::string ServerExe();
// $CAIRN_HOME, else ~/.cairn, made absolute.
std::string DefaultHome();
// Creates the workspace folders and its token (a 0600 file) when missing; returns the token.
Result<std::string> EnsureWorkspace(const WorkspacePaths& ws);

struct ServerAddress {
  std::string url;    // http://127.0.0.1:PORT
  std::string token;  // bearer token
};

// Finds the workspace's running server, or starts one in the background (once, even when several
// CLIs ask at the same moment) and waits until it answers.
Result<ServerAddress> ConnectOrStart(const WorkspacePaths& ws);
// Makes every connection `cli` opens prove (api/v1/identify) that the server holds `addr`'s token
// before the token goes over it: a process squatting on a dead server's port cannot
// (HttpClient::SetIdentityCheck).
void RequireWorkspaceIdentity(HttpClient& cli, const ServerAddress& addr);
// The address in server.json when its process is alive; no request is made.
Result<ServerAddress> FindRunning(const WorkspacePaths& ws);
// Whether a server answers at `addr` with this token.
bool Healthy(const ServerAddress& addr, int timeout_ms);

}  // namespace cairn::server
