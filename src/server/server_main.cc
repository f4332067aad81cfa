// cairn-server: the workspace server. `cairn server` runs it; the CLI starts it on demand.
#include <CLI/CLI.hpp>
#include <malloc.h>

#include "server/server.h"
#include "server/workspace.h"

int main(int argc, char** argv) {
  CLI::App app{"Cairn workspace server", "cairn-server"};
  cairn::server::ServerOptions so;
  std::string home;
  app.add_option("--port", so.port, "port (0: any free one)");
  app.add_option("--host", so.host, "address to listen on (default 127.0.0.1)");
  app.add_option("--slots", so.local_slots, "local compute slots (default: one per CPU)");
  app.add_option(
      "--home", home,
      "the workspace folder (default $CAIRN_HOME or ~/.cairn; /var/lib/cairn with --team)");
  app.add_flag("--team", so.team,
               "serve everyone on this machine through <home>/cairn.sock (docs/team.md)");
  app.add_option("--tls-cert", so.tls_cert, "serve TLS with this certificate chain (PEM)");
  app.add_option("--tls-key", so.tls_key, "the certificate's private key (PEM)");
  CLI11_PARSE(app, argc, argv);
  so.home = !home.empty() ? home
            : so.team     ? std::string(cairn::server::kDefaultTeamHome)
                          : cairn::server::DefaultHome();
  // Metric histories and search answers are buffers of megabytes: taken from the heap they are
  // reused, where an mmap each would be faulted in and zeroed page by page on every request (a
  // third of a get-history). The scheduler hands the heap back when the server is idle
  // (malloc_trim), so idle memory stays small.
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  mallopt(M_TRIM_THRESHOLD,
          128 << 20);  // and freed heap is kept for the next request, not unmapped at once
  return cairn::server::RunServer(so);
}
