// Processes as Cairn needs them: started detached (their own session, so a dying server does not
// take them along), checked for life, and killed together with every descendant. Thread-safe.
#pragma once

#include <sys/types.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"

namespace cairn::compute {

// Starts argv[0] (a path) in a new session with stdin from /dev/null and stdout/stderr appended to
// `log_path`, signal dispositions reset to default. The caller need not wait for it. Nothing else
// of this process's descriptors reaches it but `pass_fd`, when given, as its descriptor 3.
Result<pid_t> SpawnDetached(const std::vector<std::string>& argv, const std::string& log_path,
                            const std::map<std::string, std::string>& extra_env = {},
                            int pass_fd = -1);

// Whether `pid` is alive and its command line contains `marker` (guards against a recycled pid).
bool IsAliveWithMarker(pid_t pid, const std::string& marker);

// A run's supervisor holds a write lock on the run's lock file for its whole life (an fcntl lock:
// its children do not inherit it, and it goes when the supervisor does, however it ends). So at
// most one supervisor runs a job, and a server that lost a supervisor's pid (killed between the
// spawn and the record) finds the one that runs. LockRun takes it: the descriptor to keep open, or
// -1 with `holder` the pid that has it (0 when the file cannot be opened or locked at all).
int LockRun(const std::string& lock_file, pid_t& holder);
// The pid that holds the lock, without taking it (F_GETLK: a probe cannot make a starting
// supervisor think another one runs); nullopt when nobody does or the file is not a plain file.
std::optional<pid_t> RunLockHolder(const std::string& lock_file);

// fork(), straight into the cgroup `cgroup_fd` (a cgroup2 folder's descriptor; -1: none) with
// clone3(CLONE_INTO_CGROUP): moving a process there after fork takes the kernel's cgroup lock the
// slow way (7-10 ms for each new cgroup, measured; 0.1 ms this way). `in_cgroup` says whether it
// went there (an older kernel: a plain fork). The caller must have no other threads if the child
// allocates.
pid_t ForkIntoCgroup(int cgroup_fd, bool& in_cgroup);

// Every descendant of `root` (children, grandchildren, ...), read from /proc.
std::vector<pid_t> Descendants(pid_t root);

// Sends `sig` to every descendant of `root` (not root itself) and to the process group `pgid` when
// positive. Returns how many processes were signalled.
int SignalTree(pid_t root, pid_t pgid, int sig);

// Whether `exe` (a bare name) is an executable file in a folder of PATH.
bool OnPath(const std::string& exe);

// The absolute path of the running executable.
std::string SelfExe();
// The shell a job's command runs in on this host: bash where it is installed (Azure ML runs
// commands with bash: `source`, `[[ ]]`), else /bin/sh.
std::string CommandShell();
// A command that needs no shell, run as bash would run it but without starting bash (GNU make's
// fast path): words of plain characters only (no quotes, expansions, globs, redirections,
// operators, comments or assignments), the first naming an executable file found on `path_env` (the
// job's PATH) and not a shell keyword or builtin, except true, false, echo and printf, whose
// programs do the same for such words. Relative names are looked up from `wd`, where the command
// runs. `path` is the file to execute (relative to `wd` where the name was); argv[0] stays the word
// as written.
struct DirectCommand {
  std::string path;
  std::vector<std::string> argv;
};
std::optional<DirectCommand> WithoutShell(const std::string& command, const std::string& path_env,
                                          const std::string& wd);
// The same, decided inside a container image: an entrypoint script for `/bin/sh -c`, given the
// command as $0.
extern const char kShellInImage[];
// Runs `argv` to its end with stdin from /dev/null and this process's environment plus `set_env`
// ("K=V", replacing the same keys); returns its stdout. An exit other than 0 is Unavailable with
// its stderr; a run past `timeout_ms` is killed ("did not answer in time").
Result<std::string> RunCommand(const std::vector<std::string>& argv,
                               const std::vector<std::string>& set_env, long long timeout_ms);

}  // namespace cairn::compute
