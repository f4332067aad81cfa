#include "compute/supervisor.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>


#include <cerrno>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "base/fs.h"
#include "base/http_client.h"
#include "base/util.h"
#include "compute/process.h"
#include "compute/run_layout.h"

extern char** environ;

namespace cairn::compute {

using nlohmann::json;
namespace fs = std::filesystem;

namespace {

int g_signal_pipe[2] = {-1, -1};

void OnSignal(int sig) {
  int saved = errno;
  unsigned char b = static_cast<unsigned char>(sig);
  (void)!write(g_signal_pipe[1], &b, 1);
  errno = saved;
}

class SystemLog {
 public:
  explicit SystemLog(const std::string& path) { fd_ = open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644); }
  ~SystemLog() { if (fd_ >= 0) close(fd_); }
  void Line(const std::string& msg) {
    std::string line = IsoTime(NowMillis()) + " " + msg + "\n";
    if (fd_ >= 0) (void)!write(fd_, line.data(), line.size());
  }

 private:
  int fd_ = -1;
};

// Copies the blobs of a manifest into `dir`; hard links when read-only delivery allows it.
Status Materialize(const json& manifest, const std::string& blob_root, const std::string& dir, bool link) {
  for (const auto& e : manifest) {
    std::string rel = e.at("path").get<std::string>();
    std::string sha = e.at("sha256").get<std::string>();
    std::string from = blob_root + "/" + sha.substr(0, 2) + "/" + sha;
    std::string to = dir + "/" + rel;
    Status s = MakeDirs(Dirname(to));
    if (!s.ok()) return s;
    if (link && ::link(from.c_str(), to.c_str()) == 0) continue;
    s = CopyFile(from, to);
    if (!s.ok()) return s;
    chmod(to.c_str(), e.value("executable", false) ? 0755 : 0644);
  }
  return Status::Ok();
}

// http(s) inputs are fetched with curl: TLS, redirects and proxies as the user's machine has them.
Status Download(const std::string& url, const std::string& to, long long max_bytes) {
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) return Internal("pipe failed");
  pid_t pid = fork();
  if (pid == 0) {
    dup2(out[1], 1);
    int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 2);
    std::string limit = std::to_string(max_bytes);
    execlp("curl", "curl", "-sSL", "--max-filesize", limit.c_str(), "--connect-timeout", "10", "-w",
           "%{http_code}", "-o", to.c_str(), url.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  close(out[1]);
  std::string code;
  char buf[256];
  ssize_t n;
  while ((n = read(out[0], buf, sizeof buf)) > 0) code.append(buf, static_cast<size_t>(n));
  close(out[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  int rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (rc == 127) return Unavailable("cannot download " + url + ": curl is not installed");
  if (rc == 63) return InvalidArgument(url + ": larger than " + std::to_string(max_bytes) + " bytes");
  if (rc != 0) return Unavailable("cannot download " + url + " (curl exit code " + std::to_string(rc) + ")");
  if (code != "200") return Unavailable("cannot download " + url + ": HTTP " + code);
  return Status::Ok();
}

// Makes `path` read-only for real: a read-only bind mount in the job's own mount namespace when we
// may (root), else permission bits. Runs in the child before exec.
void MakeReadOnlyInChild(const std::vector<std::string>& paths) {
  if (paths.empty()) return;
  if (geteuid() == 0 && unshare(CLONE_NEWNS) == 0 &&
      mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0) {
    for (const auto& p : paths) {
      if (mount(p.c_str(), p.c_str(), nullptr, MS_BIND | MS_REC, nullptr) == 0)
        mount(nullptr, p.c_str(), nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY, nullptr);
    }
  }
}

void ChmodReadOnly(const std::string& root) {
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, ec); !ec && it != fs::recursive_directory_iterator(); ++it)
    chmod(it->path().c_str(), it->is_directory() ? 0555 : 0444);
  chmod(root.c_str(), 0555);
}

bool PostEvent(const std::string& url, const json& job, const std::string& event) {
  HttpClient cli(url, 10000);
  cli.SetBearerToken(job.value("token", ""));
  auto res = cli.Request("POST", "/api/v1/internal/jobs/" + job.value("name", "") + "/events",
                         json{{"event", event}}.dump());
  return res.ok() && res->status == 200;
}

// Tells the server; when the one that started us is gone, the workspace's current server (a restart
// picks a new port) is read from server.json.
void Notify(const json& job, const std::string& event, SystemLog& log) {
  std::string url = job.value("server_url", "");
  if (url.empty()) return;
  if (PostEvent(url, job, event)) return;
  std::string ws = job.value("workspace", "");
  auto info = ReadFile(ws + "/server.json");
  if (info.ok()) {
    json j = json::parse(*info, nullptr, false);
    std::string current = j.is_object() ? j.value("url", "") : "";
    if (!current.empty() && current != url && PostEvent(current, job, event)) return;
  }
  log.Line("could not tell the server the job is " + event +
           "; it reads the run folder when it next looks");
}

// Whether any child (and so, for a subreaper, any descendant) is still there; reaps the finished ones.
bool HasChildren() {
  for (;;) {
    pid_t w = waitpid(-1, nullptr, WNOHANG);
    if (w > 0) continue;
    return !(w < 0 && errno == ECHILD);
  }
}

struct Outcome {
  std::string outcome = "failed";  // completed | failed | canceled | timeout
  std::string reason;
  std::optional<int> exit_code;
  std::optional<int> signal;
};

void WriteExit(const RunLayout& layout, const Outcome& o, long long started, SystemLog& log) {
  json j = {{"outcome", o.outcome}, {"reason", o.reason}, {"started_at", started},
            {"ended_at", NowMillis()}};
  j["exit_code"] = o.exit_code ? json(*o.exit_code) : json(nullptr);
  j["signal"] = o.signal ? json(*o.signal) : json(nullptr);
  // Not fsynced: after a power loss the job is lost either way, and the server then says so.
  Status s = WriteFileAtomic(layout.ExitFile(), j.dump(), 0644);
  if (!s.ok()) log.Line("cannot record the exit status: " + s.message());
  log.Line("outcome: " + o.outcome + (o.reason.empty() ? "" : " (" + o.reason + ")"));
}

// Moves whatever the snapshot had under wd/<name> into artifacts/<name>, then links the two so what
// the job writes there lands in the run's artifacts as it is written.
Status LinkSpecialFolder(const RunLayout& layout, const std::string& name) {
  std::string in_wd = layout.WorkDir() + "/" + name;
  std::string target = layout.Artifacts() + "/" + name;
  Status s = MakeDirs(target);
  if (!s.ok()) return s;
  struct stat st;
  if (lstat(in_wd.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) {
      s = CopyTree(in_wd, target);
      if (!s.ok()) return s;
    }
    std::error_code ec;
    fs::remove_all(in_wd, ec);
  }
  if (symlink(("../artifacts/" + name).c_str(), in_wd.c_str()) != 0)
    return Internal("cannot link " + in_wd + ": " + strerror(errno));
  return Status::Ok();
}

}  // namespace

int RunSupervisor(const std::string& run_dir) {
  RunLayout layout(run_dir);
  long long started = NowMillis();
  (void)MakeDirs(layout.SystemLogDir());
  SystemLog log(layout.SupervisorLog());
  auto text = ReadFile(layout.JobFile());
  if (!text.ok()) {
    log.Line("cannot read the job: " + text.status().message());
    Outcome o;
    o.reason = "the supervisor could not read " + layout.JobFile();
    WriteExit(layout, o, started, log);
    return 1;
  }
  json job = json::parse(*text, nullptr, false);
  if (job.is_discarded()) {
    Outcome o;
    o.reason = "malformed " + layout.JobFile();
    WriteExit(layout, o, started, log);
    return 1;
  }

  // Signals arrive through a pipe so the main loop handles them in order with the job's output.
  if (pipe2(g_signal_pipe, O_CLOEXEC | O_NONBLOCK) != 0) return 1;
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  for (int s : {SIGTERM, SIGINT, SIGHUP, SIGCHLD}) sigaction(s, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
  // Orphaned descendants of the job re-parent to us, so the tree walk on cancel finds them all.
  prctl(PR_SET_CHILD_SUBREAPER, 1);

  log.Line("supervisor " + std::to_string(getpid()) + " for job " + job.value("name", "?"));
  for (const auto& n : job.value("notices", json::array())) log.Line(n.get<std::string>());

  auto fail = [&](const std::string& reason) {
    Outcome o;
    o.reason = reason;
    WriteExit(layout, o, started, log);
    Notify(job, "exited", log);
    return 0;
  };

  // Prepare: folders, code, inputs, outputs.
  // Only what every job needs is created here: each inode costs, at hundreds of jobs a second.
  for (const char* d : {"/artifacts/user_logs"}) {
    Status s = MakeDirs(run_dir + d);
    if (!s.ok()) return fail(s.message());
  }
  std::error_code ec;
  if (PathExists(layout.WorkDir())) fs::remove_all(layout.WorkDir(), ec);  // a rerun after a crash starts clean
  Status s = MakeDirs(layout.WorkDir());
  if (!s.ok()) return fail(s.message());
  std::string blob_root = job.value("blob_root", "");
  if (job.contains("snapshot") && job["snapshot"].is_array()) {
    s = Materialize(job["snapshot"], blob_root, layout.WorkDir(), false);
    if (!s.ok()) return fail("cannot materialise the code snapshot: " + s.message());
    log.Line("code: " + std::to_string(job["snapshot"].size()) + " files in " + layout.WorkDir());
  }
  for (const char* name : {"outputs", "logs"}) {
    s = LinkSpecialFolder(layout, name);
    if (!s.ok()) return fail(s.message());
  }
  std::vector<std::string> read_only;
  for (const auto& in : job.value("inputs", json::array())) {
    std::string name = in.value("name", "");
    std::string kind = in.value("kind", "");
    std::string dir = layout.Input(name);
    std::string mode = in.value("mode", "ro_mount");
    fs::remove_all(dir, ec);
    s = MakeDirs(dir);
    if (!s.ok()) return fail(s.message());
    if (kind == "blobs") {
      s = Materialize(in["manifest"], blob_root, dir, mode == "ro_mount");
      if (!s.ok()) return fail("inputs." + name + ": " + s.message());
    } else if (kind == "http") {
      std::string url = in.value("url", "");
      log.Line("inputs." + name + ": downloading " + url);
      s = Download(url, dir + "/" + in.value("file_name", "data"), in.value("max_bytes", 1LL << 34));
      if (!s.ok()) return fail("inputs." + name + ": " + s.message());
    }
    if (mode == "ro_mount") {
      read_only.push_back(dir);
      if (geteuid() != 0) ChmodReadOnly(dir);
    }
    log.Line("inputs." + name + ": " + mode + " at " + in.value("target", dir));
  }
  for (const auto& o : job.value("outputs", json::array())) {
    s = MakeDirs(o.get<std::string>());
    if (!s.ok()) return fail(s.message());
  }

  // Start the command.
  int out_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0) return fail(std::string("pipe: ") + strerror(errno));
  std::vector<std::string> env_store;
  json job_env = job.value("env", json::object());
  for (char** e = environ; *e; ++e) {
    std::string kv = *e;
    std::string key = kv.substr(0, kv.find('='));
    if (StartsWith(key, "CAIRN_INTERNAL_") || job_env.contains(key)) continue;
    env_store.push_back(kv);
  }
  for (const auto& [k, v] : job_env.items()) env_store.push_back(k + "=" + v.get<std::string>());
  std::vector<char*> envp;
  for (auto& e : env_store) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::string command = job.value("command", "");
  std::string wd = layout.WorkDir();
  int log_fd = open(layout.UserLog().c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) return fail("cannot open " + layout.UserLog());

  pid_t child = fork();
  if (child < 0) return fail(std::string("fork: ") + strerror(errno));
  if (child == 0) {
    setpgid(0, 0);
    for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGCHLD, SIGPIPE}) signal(sig, SIG_DFL);
    MakeReadOnlyInChild(read_only);
    int devnull = open("/dev/null", O_RDONLY);
    dup2(devnull, 0);
    dup2(out_pipe[1], 1);
    dup2(out_pipe[1], 2);
    if (chdir(wd.c_str()) != 0) _exit(126);
    const char* argv[] = {"/bin/sh", "-c", command.c_str(), nullptr};
    execve("/bin/sh", const_cast<char**>(argv), envp.data());
    _exit(127);
  }
  setpgid(child, child);
  close(out_pipe[1]);
  log.Line("started: /bin/sh -c <command> as pid " + std::to_string(child) + " in " + wd);
  Notify(job, "running", log);

  long long timeout_ms = job.value("timeout_seconds", 0LL) * 1000;
  long long deadline = timeout_ms > 0 ? NowMillis() + timeout_ms : 0;
  long long max_log = job.value("max_log_bytes", 1LL << 30);
  long long grace_ms = job.value("kill_grace_ms", 5000LL);
  long long written = 0;
  bool truncated = false;
  bool pipe_open = true;
  bool child_done = false;
  int wstatus = 0;
  Outcome outcome;
  std::string stop;  // "canceled" | "timeout" once we decided to stop the job
  long long kill_at = 0;
  long long drain_until = 0;
  char buf[65536];

  auto stop_tree = [&](const std::string& why) {
    if (!stop.empty()) return;
    stop = why;
    SignalTree(getpid(), child, SIGTERM);
    kill_at = NowMillis() + grace_ms;
    log.Line(why == "timeout" ? "limits.timeout reached: stopping the job's processes"
                              : "cancel requested: stopping the job's processes");
  };

  while (pipe_open || !child_done) {
    long long now = NowMillis();
    if (deadline && now >= deadline && !child_done) stop_tree("timeout");
    if (kill_at && now >= kill_at) {
      SignalTree(getpid(), child, SIGKILL);
      kill_at = 0;
    }
    if (child_done && drain_until && now >= drain_until && pipe_open) {
      // Something the job left behind still holds its output open: it goes with the job.
      SignalTree(getpid(), child, SIGKILL);
      drain_until = now + 1000;
    }
    long long wait = 1000;
    if (deadline && !child_done) wait = std::min(wait, std::max(0LL, deadline - now));
    if (kill_at) wait = std::min(wait, std::max(0LL, kill_at - now));
    if (drain_until) wait = std::min(wait, std::max(0LL, drain_until - now));
    pollfd fds[2] = {{g_signal_pipe[0], POLLIN, 0}, {pipe_open ? out_pipe[0] : -1, POLLIN, 0}};
    int r = poll(fds, 2, static_cast<int>(wait));
    if (r < 0 && errno != EINTR) break;
    if (fds[0].revents & POLLIN) {
      unsigned char sigs[64];
      ssize_t n = read(g_signal_pipe[0], sigs, sizeof sigs);
      for (ssize_t i = 0; i < n; ++i)
        if (sigs[i] != SIGCHLD && !child_done) stop_tree("canceled");
    }
    if (pipe_open && (fds[1].revents & (POLLIN | POLLHUP | POLLERR))) {
      ssize_t n = read(out_pipe[0], buf, sizeof buf);
      if (n > 0) {
        if (written + n <= max_log) {
          (void)!write(log_fd, buf, static_cast<size_t>(n));
          written += n;
        } else if (!truncated) {
          long long room = max_log - written;
          if (room > 0) (void)!write(log_fd, buf, static_cast<size_t>(room));
          std::string note = "\n[cairn] log truncated: the job wrote more than " + std::to_string(max_log) +
                             " bytes to stdout/stderr; the rest is discarded\n";
          (void)!write(log_fd, note.data(), note.size());
          log.Line("user log truncated at " + std::to_string(max_log) + " bytes");
          written = max_log;
          truncated = true;
        }
      } else if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
        pipe_open = false;
        close(out_pipe[0]);
      }
    }
    if (!child_done) {
      pid_t w = waitpid(child, &wstatus, WNOHANG);
      if (w == child) {
        child_done = true;
        // Stop whatever the command left running in the background. We are a subreaper, so when we
        // have no children left there is no descendant at all, and no /proc scan is needed.
        if (HasChildren()) SignalTree(getpid(), child, SIGTERM);
        drain_until = NowMillis() + 1000;
      }
    }
    // Reap re-parented orphans, but only once the command's own status is in hand: waitpid(-1) could
    // otherwise take it, and the loop would wait for an exit it can no longer see.
    if (child_done) {
      while (waitpid(-1, nullptr, WNOHANG) > 0) {
      }
    }
  }
  close(log_fd);
  // Anything still alive of the job's tree goes now: no orphaned processes.
  if (HasChildren()) SignalTree(getpid(), child, SIGKILL);
  while (waitpid(-1, nullptr, WNOHANG) > 0) {
  }

  if (WIFEXITED(wstatus)) outcome.exit_code = WEXITSTATUS(wstatus);
  if (WIFSIGNALED(wstatus)) outcome.signal = WTERMSIG(wstatus);
  if (stop == "timeout") {
    outcome.outcome = "timeout";
    outcome.reason = "limits.timeout of " + std::to_string(timeout_ms / 1000) + " s reached";
  } else if (stop == "canceled") {
    outcome.outcome = "canceled";
    outcome.reason = "canceled by request";
  } else if (outcome.exit_code && *outcome.exit_code == 0) {
    outcome.outcome = "completed";
  } else if (outcome.exit_code) {
    outcome.outcome = "failed";
    int code = *outcome.exit_code;
    outcome.reason = "the command exited with code " + std::to_string(code);
    if (code == 127) outcome.reason += " (command not found; see user_logs/std_log.txt)";
    if (code == 126) outcome.reason += " (command not executable)";
  } else {
    outcome.outcome = "failed";
    outcome.reason = "the command was killed by signal " + std::to_string(outcome.signal.value_or(0)) +
                     " (" + strsignal(outcome.signal.value_or(0)) + ")";
  }
  WriteExit(layout, outcome, started, log);
  Notify(job, "exited", log);
  return 0;
}

}  // namespace cairn::compute
