// The supervisor spawner: a small resident process (`cairn supervise --spawner`) that the server
// starts once and that forks each job's supervisor, instead of the server executing the `cairn`
// binary per job. A fork of a small single-threaded process costs a fraction of an exec (the
// dynamic loader, relocations, static initialisation and the page faults of a fresh image):
// about 1.3 ms of CPU and of latency per job on a 2-core machine (BENCHMARKS.md).
//
// What a supervisor gets is what an exec'd one got: its own session, stdin from /dev/null, stdout
// and stderr appended to its log, default signal dispositions and an empty mask, no descriptor of
// the spawner's, the environment and working directory the server had when it started the spawner,
// and a command line of
// `<cairn> supervise <run folder>` (written over the spawner's own, as setproctitle does), which is
// what the server's liveness check looks for. The spawner reaps the supervisors it forked; it ends
// when the server's end of the socket closes, and the supervisors go on (a restarted server finds
// them as before).
#pragma once

#include <sys/types.h>

#include <mutex>
#include <string>

#include "base/status.h"

namespace cairn::compute {

// The server's side. Thread-safe; Spawn() fails (and the caller falls back to SpawnDetached) when
// the spawner cannot be started or has died, and a later call starts a new one.
class SupervisorSpawner {
 public:
  explicit SupervisorSpawner(std::string cairn_exe) : exe_(std::move(cairn_exe)) {}
  ~SupervisorSpawner();
  SupervisorSpawner(const SupervisorSpawner&) = delete;
  SupervisorSpawner& operator=(const SupervisorSpawner&) = delete;

  // Starts `cairn supervise <run_dir>`'s equivalent with output appended to log_path; its pid. An
  // error with an empty message: the spawner could not be started moments ago (that error was
  // returned then).
  Result<pid_t> Spawn(const std::string& run_dir, const std::string& log_path);
  // The spawner process, or -1 when none runs.
  pid_t process() {
    std::lock_guard<std::mutex> l(mu_);
    return pid_;
  }

 private:
  Status StartLocked();
  void StopLocked();

  std::string exe_;
  std::mutex mu_;
  int fd_ = -1;
  pid_t pid_ = -1;
  long long retry_after_ms_ = 0;  // after a failed start, not before this
};

// The spawner process's side: serves requests on `fd` until it closes. argv/argc are the process's
// own, for the children's command lines.
int RunSpawner(int fd, int argc, char** argv);

}  // namespace cairn::compute
