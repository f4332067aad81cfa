#include "compute/process.h"

#include <linux/sched.h>
#include <sys/syscall.h>

#include <dirent.h>
#include <poll.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>

#include "base/fs.h"
#include "base/util.h"

extern char** environ;

namespace cairn::compute {

Result<pid_t> SpawnDetached(const std::vector<std::string>& argv, const std::string& log_path,
                            const std::map<std::string, std::string>& extra_env, int pass_fd) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  // Nothing else of the server's reaches a supervisor: a listening socket it kept would answer no
  // one after the server died, and clients would wait on it instead of starting a new one.
  if (pass_fd >= 0) posix_spawn_file_actions_adddup2(&fa, pass_fd, 3);  // dup2 clears close-on-exec
  posix_spawn_file_actions_addclosefrom_np(&fa, pass_fd >= 0 ? 4 : 3);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t all, none;
  sigfillset(&all);
  sigemptyset(&none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);

  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<std::string> env_store;
  for (char** e = environ; *e; ++e) {
    std::string kv = *e;
    std::string key = kv.substr(0, kv.find('='));
    if (!extra_env.count(key)) env_store.push_back(kv);
  }
  for (const auto& [k, v] : extra_env) env_store.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& e : env_store) envp.push_back(e.data());
  envp.push_back(nullptr);

  pid_t pid = 0;
  int rc = posix_spawn(&pid, argv[0].c_str(), &fa, &attr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return Internal("cannot start " + argv[0] + ": " + strerror(rc));
  return pid;
}

bool OnPath(const std::string& exe) {
  const char* path = getenv("PATH");
  for (const auto& dir : Split(path ? path : "/usr/bin:/bin", ':'))
    if (!dir.empty() && access((dir + "/" + exe).c_str(), X_OK) == 0) return true;
  return false;
}

std::string CommandShell() {
  static const std::string shell = access("/bin/bash", X_OK) == 0 ? "/bin/bash" : "/bin/sh";
  return shell;
}

std::optional<DirectCommand> WithoutShell(const std::string& command, const std::string& path_env,
                                          const std::string& wd) {
  // Letters, digits and the punctuation bash gives no meaning to in a word (not ~ at a word's
  // start, which is left to bash with the rest of ~).
  auto plain = [](unsigned char c) {
    return std::isalnum(c) || std::strchr("_-./:,@%+=", c) != nullptr;
  };
  DirectCommand d;
  std::string word;
  for (size_t i = 0; i <= command.size(); ++i) {
    unsigned char c = i < command.size() ? static_cast<unsigned char>(command[i]) : ' ';
    if (c == ' ' || c == '\t') {
      if (!word.empty()) d.argv.push_back(std::move(word));
      word.clear();
    } else if (plain(c) && c != 0) {
      word += static_cast<char>(c);
    } else {
      return std::nullopt;  // a newline, quote, $, glob, operator, redirection, comment,
                            // non-ASCII...
    }
  }
  if (d.argv.empty() || d.argv[0].find('=') != std::string::npos) return std::nullopt;
  static const char* const kShellWords[] = {
      // bash's keywords and builtins: what the shell itself would do differently from a program of
      // that name.
      "!",      ".",       ":",        "alias",     "bg",       "bind",     "break",   "builtin",
      "caller", "case",    "cd",       "command",   "compgen",  "complete", "compopt", "continue",
      "coproc", "declare", "dirs",     "disown",    "do",       "done",     "elif",    "else",
      "enable", "esac",    "eval",     "exec",      "exit",     "export",   "fc",      "fg",
      "fi",     "for",     "function", "getopts",   "hash",     "help",     "history", "if",
      "in",     "jobs",    "kill",     "let",       "local",    "logout",   "mapfile", "popd",
      "pushd",  "pwd",     "read",     "readarray", "readonly", "return",   "select",  "set",
      "shift",  "shopt",   "source",   "suspend",   "test",     "then",     "time",    "times",
      "trap",   "type",    "typeset",  "ulimit",    "umask",    "unalias",  "unset",   "until",
      "wait",   "while"};
  for (const char* w : kShellWords)
    if (d.argv[0] == w) return std::nullopt;
  auto executable = [&](const std::string& f) {
    std::string at = f[0] == '/' ? f : wd + "/" + f;
    struct stat st;
    return stat(at.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(at.c_str(), X_OK) == 0;
  };
  if (d.argv[0].find('/') != std::string::npos) {
    if (!executable(d.argv[0]))
      return std::nullopt;  // bash says why ("No such file", "Permission denied")
    d.path = d.argv[0];
    return d;
  }
  for (const auto& dir : Split(path_env, ':')) {
    std::string f = (dir.empty() ? std::string(".") : dir) + "/" + d.argv[0];
    if (executable(f)) {
      d.path = f;
      return d;
    }
  }
  return std::nullopt;  // not found: bash's "command not found" and exit 127
}

const char kShellInImage[] =
    "if [ -x /bin/bash ]; then exec /bin/bash -c \"$0\"; fi; exec /bin/sh -c \"$0\"";

bool IsAliveWithMarker(pid_t pid, const std::string& marker) {
  if (pid <= 0 || kill(pid, 0) != 0) return false;
  auto cmd = ReadFile("/proc/" + std::to_string(pid) + "/cmdline");
  if (!cmd.ok()) return false;
  // A zombie has an empty command line: it is not alive for our purposes.
  std::string s = *cmd;
  for (char& c : s)
    if (c == '\0') c = ' ';
  return s.find(marker) != std::string::npos;
}

int LockRun(const std::string& lock_file, pid_t& holder) {
  holder = 0;
  int fd = open(lock_file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0600);
  if (fd < 0) return -1;
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return -1;
  }
  struct flock fl {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  if (fcntl(fd, F_SETLK, &fl) == 0) return fd;
  struct flock probe {};
  probe.l_type = F_WRLCK;
  probe.l_whence = SEEK_SET;
  if (fcntl(fd, F_GETLK, &probe) == 0 && probe.l_type != F_UNLCK) holder = probe.l_pid;
  close(fd);
  return -1;
}

std::optional<pid_t> RunLockHolder(const std::string& lock_file) {
  int fd = open(lock_file.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) return std::nullopt;
  std::optional<pid_t> holder;
  struct stat st;
  struct flock probe {};
  probe.l_type = F_WRLCK;
  probe.l_whence = SEEK_SET;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && fcntl(fd, F_GETLK, &probe) == 0 &&
      probe.l_type != F_UNLCK && probe.l_pid > 0)
    holder = probe.l_pid;
  close(fd);  // closing drops this process's locks on the file, and it holds none
  return holder;
}

std::vector<pid_t> Descendants(pid_t root) {
  std::multimap<pid_t, pid_t> children;
  DIR* d = opendir("/proc");
  if (!d) return {};
  while (dirent* e = readdir(d)) {
    char* end;
    long pid = strtol(e->d_name, &end, 10);
    if (*end != '\0' || pid <= 0) continue;
    auto stat = ReadFile(std::string("/proc/") + e->d_name + "/stat");
    if (!stat.ok()) continue;
    // Field 4 (ppid) follows the command name in parentheses, which may itself contain ") ".
    size_t close = stat->rfind(')');
    if (close == std::string::npos) continue;
    char state = 0;
    long ppid = 0;
    if (sscanf(stat->c_str() + close + 1, " %c %ld", &state, &ppid) != 2) continue;
    children.emplace(static_cast<pid_t>(ppid), static_cast<pid_t>(pid));
  }
  closedir(d);
  std::vector<pid_t> out, frontier = {root};
  while (!frontier.empty()) {
    pid_t p = frontier.back();
    frontier.pop_back();
    auto [b, e] = children.equal_range(p);
    for (auto it = b; it != e; ++it) {
      out.push_back(it->second);
      frontier.push_back(it->second);
    }
  }
  return out;
}

pid_t ForkIntoCgroup(int cgroup_fd, bool& in_cgroup) {
  in_cgroup = false;
  if (cgroup_fd >= 0) {
    clone_args ca{};
    ca.flags = CLONE_INTO_CGROUP;
    ca.exit_signal = SIGCHLD;
    ca.cgroup = static_cast<uint64_t>(cgroup_fd);
    pid_t child = static_cast<pid_t>(syscall(SYS_clone3, &ca, sizeof ca));
    if (child >= 0) {
      in_cgroup = true;
      return child;
    }
  }
  return fork();
}

int SignalTree(pid_t root, pid_t pgid, int sig) {
  int n = 0;
  if (pgid > 0 && kill(-pgid, sig) == 0) ++n;
  for (pid_t p : Descendants(root))
    if (kill(p, sig) == 0) ++n;
  return n;
}

std::string SelfExe() {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "cairn";
  buf[n] = '\0';
  return buf;
}

Result<std::string> RunCommand(const std::vector<std::string>& argv,
                               const std::vector<std::string>& set_env, long long timeout_ms) {
  int out[2], err[2];
  if (pipe2(out, O_CLOEXEC) != 0) return Internal("pipe failed");
  if (pipe2(err, O_CLOEXEC) != 0) {
    close(out[0]);
    close(out[1]);
    return Internal("pipe failed");
  }
  std::vector<std::string> env_store;
  for (char** e = environ; *e; ++e) {
    std::string kv = *e;
    bool replaced = std::any_of(set_env.begin(), set_env.end(), [&](const std::string& s) {
      return kv.compare(0, s.find('=') + 1, s, 0, s.find('=') + 1) == 0;
    });
    if (!replaced) env_store.push_back(kv);
  }
  env_store.insert(env_store.end(), set_env.begin(), set_env.end());
  std::vector<char*> envp;
  for (auto& e : env_store) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = fork();
  if (pid < 0) return Internal(std::string("fork: ") + strerror(errno));
  if (pid == 0) {
    int devnull = open("/dev/null", O_RDONLY);
    dup2(devnull, 0);
    dup2(out[1], 1);
    dup2(err[1], 2);
    execvpe(args[0], args.data(), envp.data());
    _exit(127);
  }
  close(out[1]);
  close(err[1]);
  std::string text, errors;
  pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  char buf[8192];
  int open_fds = 2;
  long long deadline = NowMillis() + timeout_ms;
  bool timed_out = false;
  while (open_fds > 0) {
    long long left = deadline - NowMillis();
    if (left <= 0) {
      timed_out = true;
      kill(pid, SIGKILL);
      break;
    }
    int r = poll(fds, 2, static_cast<int>(left));
    if (r < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t n = read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        (i == 0 ? text : errors).append(buf, static_cast<size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  for (auto& f : fds)
    if (f.fd >= 0) close(f.fd);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out) return Unavailable(argv[0] + " did not answer in time");
  if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
    return Unavailable(argv[0] + " is not installed");
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return Unavailable(argv[0] + " failed: " + Trim(errors.empty() ? text : errors));
  return text;
}

}  // namespace cairn::compute
