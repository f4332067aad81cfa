// The workspace server: `cairn server`. Owns the store (the only writer, through the scheduler),
// serves the REST API under /api/v1 to the CLI and to supervisors, and a placeholder studio page.
#pragma once

#include <string>

namespace cairn::server {

struct ServerOptions {
  std::string home;               // the workspace folder
  std::string host = "127.0.0.1";
  int port = 0;                   // 0: any free port, written to server.json
  int local_slots = 0;            // 0: one per CPU
};

// Runs until SIGTERM/SIGINT or POST /api/v1/shutdown. Returns the process exit code.
int RunServer(const ServerOptions& options);

}  // namespace cairn::server
