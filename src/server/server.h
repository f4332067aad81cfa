// The workspace server: `cairn server`. Owns the store (the only writer, through the scheduler),
// serves the REST API under /api/v1 to the CLI and to supervisors, and a placeholder studio page.
#pragma once

#include <string>
#include <vector>

namespace cairn::server {

struct ServerOptions {
  std::string home;  // the workspace folder
  std::string host = "127.0.0.1";
  int port = 0;         // 0: any free port, written to server.json
  int local_slots = 0;  // 0: one per CPU
  // TLS (PEM files): the server listens with TLS on host:port, and plain HTTP on a loopback port
  // for this machine's CLI and jobs. Without them it listens only on loopback addresses.
  std::string tls_cert, tls_key;
  // A team server (cairn server --team): serves everyone on the machine through the Unix socket
  // <home>/cairn.sock, knows people by their uid, and gives each the role assigned to them; jobs
  // run as the person who submitted them.
  bool team = false;
};

// One row of the route table: who may call it (access.h's names) and its body limit (0: the
// server's default of 64 MiB). MLflow's endpoints have no method of their own (GET and POST reach
// the same handler; one that changes something answers 405 to GET).
struct RouteRow {
  std::string method, path, access;
  size_t max_body = 0;
  bool streams = false;
};
std::vector<RouteRow> RouteTable();

// Runs until SIGTERM/SIGINT or POST /api/v1/shutdown. Returns the process exit code.
int RunServer(const ServerOptions& options);

}  // namespace cairn::server
