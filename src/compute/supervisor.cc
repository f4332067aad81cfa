#include "compute/supervisor.h"

#include "compute/job_cgroup.h"
#include "compute/sandbox.h"
#include "base/json_limits.h"

#include <arpa/inet.h>
#include <linux/sched.h>
#include <sys/syscall.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
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
#include <memory>
#include <map>
#include <nlohmann/json.hpp>

#include "base/fs.h"
#include "base/http_client.h"
#include "base/util.h"
#include "compute/container.h"
#include "compute/data_delivery.h"
#include "compute/distribution.h"
#include "compute/gpu.h"
#include "compute/system_metrics.h"
#include "compute/process.h"
#include "compute/slurm.h"
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

// Drains the signal pipe; true once a stop (TERM, INT, HUP) has arrived. A stop is written back, so the
// loop that watches the job's processes still sees it.
bool StopPending() {
  static bool stopped = false;
  unsigned char b;
  bool now = false;
  while (read(g_signal_pipe[0], &b, 1) == 1)
    if (b == SIGTERM || b == SIGINT || b == SIGHUP) now = true;
  if (now) {
    stopped = true;
    unsigned char term = SIGTERM;
    (void)!write(g_signal_pipe[1], &term, 1);
  }
  return stopped;
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

// The job's cgroup, "" when it has none, and its descriptor (set before any child is forked).
std::string g_cgroup;
int g_cgroup_fd = -1;
// The job's cgroup v1 limits (memory, pids), where the machine has them.
std::vector<std::string> g_limit_cgroups;

// Gives `uid` every file and folder beneath `root` (links themselves, never followed): what the job's
// own user must be able to write.
void ChownTree(const std::string& root, uid_t uid, gid_t gid) {
  std::error_code ec;
  if (lchown(root.c_str(), uid, gid) != 0) return;
  for (auto it = fs::recursive_directory_iterator(root, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec))
    (void)lchown(it->path().c_str(), uid, gid);
}

// Processes (threads included) a job may have at once by default; the job file's pids_max overrides it.
constexpr long long kDefaultPidsMax = 16384;

// Memory a job may use by default: the machine's, less a tenth (at least 512 MiB) for everything else.
long long DefaultJobMemory() {
  auto text = ReadFile("/proc/meminfo", 1 << 16);
  if (!text.ok()) return 0;
  size_t at = text->find("MemTotal:");
  if (at == std::string::npos) return 0;
  long long total = atoll(text->c_str() + at + 9) * 1024;
  return total - std::max(total / 10, 512LL << 20);
}

void ChmodReadOnly(const std::string& root) {
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, ec); !ec && it != fs::recursive_directory_iterator(); ++it)
    chmod(it->path().c_str(), it->is_directory() ? 0555 : 0444);
  chmod(root.c_str(), 0555);
}

// How a report went: taken, refused (the server answered no: the job has ended, the credential is not
// good; asking again changes nothing), or not heard (no server there yet).
enum class Posted { kTaken, kRefused, kUnheard };

// One keep-alive client per server address for the supervisor's reports: each new connection first
// proves the server can compute this job's credential (a squatter on a dead server's port cannot), so
// the credential goes only over connections that proved it, and a job's reports cost one proof.
HttpClient& ReportClient(const std::string& url, const json& job) {
  static std::map<std::string, std::unique_ptr<HttpClient>> clients;
  auto& c = clients[url];
  if (!c) {
    c = std::make_unique<HttpClient>(url, 10000);
    std::string name = job.value("name", ""), credential = job.value("supervisor_token", ""), port = PortOfUrl(url);
    c->SetIdentityCheck([name](const std::string& nonce) { return "/api/v1/identify?nonce=" + nonce + "&job=" + name; },
                        [credential, port](const std::string& body, const std::string& nonce) {
                          json proof = json::parse(body, nullptr, false);
                          return proof.is_object() && proof["job_proof"].is_string() &&
                                 proof["job_proof"].get<std::string>() == IdentityProof(credential, nonce, port);
                        });
    c->SetBearerToken(credential);
  }
  return *c;
}

Posted PostEvent(const std::string& url, const json& job, const std::string& event, const std::string& reason) {
  HttpClient& cli = ReportClient(url, job);
  json body = {{"event", event}};
  if (!reason.empty()) body["reason"] = reason;
  auto res = cli.Request("POST", "/api/v1/internal/jobs/" + job.value("name", "") + "/events", body.dump());
  if (!res.ok()) return Posted::kUnheard;
  if (res->status == 200) return Posted::kTaken;
  return res->status >= 400 && res->status < 500 ? Posted::kRefused : Posted::kUnheard;
}

// Tells the server; when the one that started us is gone, the workspace's current server (a restart
// picks a new port) is read from server.json.
void Notify(const json& job, const std::string& event, SystemLog& log, const std::string& reason = "") {
  std::string url = job.value("server_url", "");
  if (url.empty()) return;
  // A server being restarted (killed, then started by the next CLI call) is back within moments on the
  // same port: try for a few seconds, so the job's status does not wait for its end to catch up (the
  // chaos test lost a "running" this way).
  for (int attempt = 0; attempt < 12; ++attempt) {
    if (attempt > 0) usleep(static_cast<useconds_t>(std::min(100000 * attempt, 500000)));
    Posted p = PostEvent(url, job, event, reason);
    if (p == Posted::kTaken) return;
    if (p == Posted::kRefused) {
      log.Line("the server refused the report that the job is " + event + " (the job has ended there)");
      return;
    }
    std::string ws = job.value("workspace", "");
    auto info = ReadFile(ws + "/server.json");
    if (info.ok()) {
      json j = ParseJsonOrDiscarded(*info);
      std::string current = j.is_object() ? j.value("url", "") : "";
      if (!current.empty() && current != url && PostEvent(current, job, event, reason) == Posted::kTaken) return;
    }
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

Status WriteExit(const RunLayout& layout, const Outcome& o, long long started, SystemLog& log) {
  json j = {{"outcome", o.outcome}, {"reason", o.reason}, {"started_at", started},
            {"ended_at", NowMillis()}};
  j["exit_code"] = o.exit_code ? json(*o.exit_code) : json(nullptr);
  j["signal"] = o.signal ? json(*o.signal) : json(nullptr);
  // Not fsynced: after a power loss the job is lost either way, and the server then says so.
  Status s = WriteFileAtomic(layout.ExitFile(), j.dump(), 0644);
  if (!s.ok()) log.Line("cannot record the exit status: " + s.message());
  log.Line("outcome: " + o.outcome + (o.reason.empty() ? "" : " (" + o.reason + ")"));
  return s;
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

void InstallSignalHandlers() {
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  for (int s : {SIGTERM, SIGINT, SIGHUP, SIGCHLD}) sigaction(s, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
  // Orphaned descendants of the job re-parent to us, so the tree walk on cancel finds them all.
  prctl(PR_SET_CHILD_SUBREAPER, 1);
}

// A TCP port free on this host now, for a distributed job's rendezvous.
int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 29500;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_ANY);
  socklen_t len = sizeof a;
  int port = 29500;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  close(fd);
  return port;
}

// The allocation's nodes in node-rank order, each as the address its daemons are reached at
// (Slurm's NodeAddr: the host name on most clusters, an IP where names do not resolve). Two scontrol
// calls, whatever the number of nodes.
std::vector<std::string> SlurmHosts() {
  std::vector<std::string> hosts;
  const char* list = getenv("SLURM_JOB_NODELIST");
  if (!list) return hosts;
  std::map<std::string, std::string> addr;
  auto nodes = RunSlurmCommand({}, {"scontrol", "show", "node", "-o", list});
  for (const auto& line : Split(nodes.ok() ? *nodes : "", '\n')) {
    size_t n = line.find("NodeName="), a = line.find("NodeAddr=");
    if (n == std::string::npos || a == std::string::npos) continue;
    auto field = [&](size_t at, size_t skip) { return line.substr(at + skip, line.find(' ', at + skip) - at - skip); };
    addr[field(n, 9)] = field(a, 9);
  }
  auto names = RunSlurmCommand({}, {"scontrol", "show", "hostnames", list});
  for (const auto& name : Split(names.ok() ? *names : "", '\n')) {
    std::string n = Trim(name);
    if (n.empty()) continue;
    hosts.push_back(addr.count(n) ? addr[n] : n);
  }
  return hosts;
}

// Staging over HTTP, for a supervisor on a node that does not see the workspace's filesystem: the run
// file and the blobs it names come from the server into a node-local run folder, and the run's logs,
// outputs and records go back as they grow (every second) and in full at the end.
class Stager {
 public:
  Stager(std::string url, std::string job, std::string token)
      : cli_(std::move(url), 60000), job_(std::move(job)) {
    cli_.SetBearerToken(std::move(token));
  }

  // Writes the run file, remapped from the server's run folder to `local_root`, with its blobs beside it.
  Status Fetch(const std::string& local_root) {
    auto r = cli_.Request("GET", "/api/v1/internal/jobs/" + job_ + "/run");
    if (!r.ok()) return r.status();
    if (r->status != 200) return Unavailable("the server refused the run file: HTTP " + std::to_string(r->status));
    std::string server_root = r->Header("x-cairn-run-root");
    std::string text = r->body;
    if (!server_root.empty()) {
      for (size_t at = text.find(server_root); at != std::string::npos; at = text.find(server_root, at + local_root.size()))
        text.replace(at, server_root.size(), local_root);
    }
    json job = json::parse(text, nullptr, false);
    if (!job.is_object()) return Internal("the server sent a malformed run file");
    std::string blob_root = local_root + "/blobs";
    job["blob_root"] = blob_root;
    std::vector<std::string> shas;
    auto collect = [&](const json& manifest) {
      for (const auto& e : manifest) shas.push_back(e.value("sha256", ""));
    };
    if (job.contains("snapshot") && job["snapshot"].is_array()) collect(job["snapshot"]);
    for (const auto& in : job.value("inputs", json::array()))
      if (in.value("kind", "") == "blobs") collect(in["manifest"]);
    for (const auto& sha : shas) {
      if (sha.size() < 2) continue;
      std::string path = blob_root + "/" + sha.substr(0, 2) + "/" + sha;
      if (PathExists(path)) continue;
      Status s = MakeDirs(Dirname(path));
      if (!s.ok()) return s;
      auto b = cli_.Request("GET", "/api/v1/internal/jobs/" + job_ + "/blobs/" + sha);
      if (!b.ok()) return b.status();
      if (b->status != 200) return Unavailable("cannot fetch blob " + sha + ": HTTP " + std::to_string(b->status));
      s = WriteFileAtomic(path, b->body, 0644);
      if (!s.ok()) return s;
    }
    job["staged_from"] = server_root;
    return WriteFile(local_root + "/job.json", job.dump(2), 0600);
  }

  // Sends what grew since the last push: the live logs, or with `final` everything the run produced.
  void Push(const RunLayout& layout, bool final) {
    std::vector<std::pair<std::string, std::string>> roots = {{layout.Artifacts() + "/user_logs", "artifacts/user_logs"},
                                                              {layout.Artifacts() + "/logs", "artifacts/logs"},
                                                              {layout.SystemLogDir(), "artifacts/system_logs"}};
    if (final) {
      roots = {{layout.Artifacts(), "artifacts"}, {layout.root + "/outputs", "outputs"}};
    }
    for (const auto& [dir, prefix] : roots) {
      std::error_code ec;
      if (!fs::is_directory(dir, ec)) continue;
      for (auto it = fs::recursive_directory_iterator(dir, fs::directory_options::follow_directory_symlink, ec);
           !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (!it->is_regular_file(ec)) continue;
        std::string rel = prefix + "/" + it->path().lexically_relative(dir).string();
        PushFile(it->path().string(), rel);
      }
    }
  }

  Status PushExit(const RunLayout& layout) {
    auto text = ReadFile(layout.ExitFile());
    if (!text.ok()) return text.status();
    auto r = cli_.Request("PUT", "/api/v1/internal/jobs/" + job_ + "/files/exit.json?offset=0", *text,
                          "application/octet-stream");
    if (!r.ok()) return r.status();
    return r->status == 200 ? Status::Ok() : Unavailable("HTTP " + std::to_string(r->status));
  }

 private:
  void PushFile(const std::string& path, const std::string& rel) {
    auto [entry, fresh] = pushed_.try_emplace(rel, 0);
    long long& done = entry->second;
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    struct stat st;
    if (fstat(fd, &st) != 0 || (!fresh && st.st_size == done)) {  // nothing new
      close(fd);
      return;
    }
    if (st.st_size < done) done = 0;  // rewritten: send it again
    std::string chunk(1 << 20, '\0');
    for (;;) {
      ssize_t n = pread(fd, chunk.data(), chunk.size(), static_cast<off_t>(done));
      if (n <= 0 && done > 0) break;
      std::string body = chunk.substr(0, n > 0 ? static_cast<size_t>(n) : 0);
      auto r = cli_.Request("PUT", "/api/v1/internal/jobs/" + job_ + "/files/" + rel + "?offset=" + std::to_string(done),
                            body, "application/octet-stream");
      if (!r.ok() || r->status != 200) break;  // the next push tries again from the same offset
      done += static_cast<long long>(body.size());
      if (n <= 0) break;  // an empty file, created
    }
    close(fd);
  }

  HttpClient cli_;
  std::string job_;
  std::map<std::string, long long> pushed_;
};

// One process of the job: the rank's command, or a launcher (srun, mpirun) whose own output goes to
// the system log. Each in its own process group, output into a pipe the loop copies to its log.
struct Child {
  pid_t pid = -1;
  int rank = -1;  // -1 for a launcher
  std::string label;
  int out = -1;
  int log_fd = -1;
  long long written = 0;
  bool truncated = false;
  bool pipe_open = true;
  bool done = false;
  int wstatus = 0;
};

// A "K=V" environment's value of `key` ("" when unset), and setting it (replacing the entry).
std::string EnvValue(const std::vector<std::string>& env, const std::string& key) {
  for (auto it = env.rbegin(); it != env.rend(); ++it)
    if (it->size() > key.size() && it->compare(0, key.size(), key) == 0 && (*it)[key.size()] == '=')
      return it->substr(key.size() + 1);
  return "";
}
void SetEnv(std::vector<std::string>& env, const std::string& key, const std::string& value) {
  std::erase_if(env, [&](const std::string& e) { return e.size() > key.size() && e.compare(0, key.size(), key) == 0 && e[key.size()] == '='; });
  env.push_back(key + "=" + value);
}

// The PWD bash gives a program it starts in `wd`: the inherited PWD when it names that folder, else the
// folder's physical path.
std::string LogicalCwd(const std::string& inherited, const std::string& wd) {
  struct stat a, b;
  if (!inherited.empty() && inherited[0] == '/' && stat(inherited.c_str(), &a) == 0 && stat(wd.c_str(), &b) == 0 &&
      a.st_dev == b.st_dev && a.st_ino == b.st_ino)
    return inherited;
  char* real = realpath(wd.c_str(), nullptr);
  std::string out = real ? real : wd;
  free(real);
  return out;
}

// `direct`, when set, is the file to execute with `argv` (a command run without a shell); should that fail
// in the child (a script with no #! line, a file the sandbox hides), `argv` of the shell is `shell_argv`.
// With `sandbox`, the process starts inside the job's sandbox (sandbox.h) and without any privilege;
// without, as the supervisor's user (a launcher: srun, podman).
Result<pid_t> SpawnChild(const std::vector<std::string>& argv, std::vector<std::string> env, const std::string& wd,
                 int out_w, const Sandbox* sandbox, const std::string& direct = "",
                 const std::vector<std::string>& shell_argv = {}) {
  std::vector<char*> envp;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<char*> args, shell_args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  for (const auto& a : shell_argv) shell_args.push_back(const_cast<char*>(a.c_str()));
  shell_args.push_back(nullptr);
  auto in_child = [&](bool in_cgroup) {
    setpgid(0, 0);
    // Should the supervisor die without stopping it (killed outright, e.g. by a Slurm step's teardown), the
    // process goes too rather than live on as an orphan nobody tracks.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGCHLD, SIGPIPE}) signal(sig, SIG_DFL);
    if (!in_cgroup) JoinCgroupInChild(g_cgroup);
    int devnull = open("/dev/null", O_RDONLY);
    dup2(devnull, 0);
    dup2(out_w, 1);
    dup2(out_w, 2);
    if (sandbox) sandbox->DropInChild(2);
    if (chdir(wd.c_str()) != 0) _exit(126);
    if (!direct.empty()) {
      execve(direct.c_str(), args.data(), envp.data());
      if (shell_args[0]) execvpe(shell_args[0], shell_args.data(), envp.data());
      _exit(127);
    }
    execvpe(args[0], args.data(), envp.data());
    _exit(127);
  };
  if (sandbox) {
    auto child = sandbox->Spawn(g_cgroup_fd, [&] { in_child(true); });
    if (child.ok()) setpgid(*child, *child);
    return child;
  }
  bool in_cgroup = false;
  pid_t child = ForkIntoCgroup(g_cgroup_fd, in_cgroup);
  if (child < 0) return Internal(std::string("fork: ") + strerror(errno));
  if (child > 0) {
    setpgid(child, child);
    return child;
  }
  in_child(in_cgroup);
  _exit(127);
}

std::string DescribeEnd(int wstatus) {
  if (WIFEXITED(wstatus)) return "exited with code " + std::to_string(WEXITSTATUS(wstatus));
  int sig = WIFSIGNALED(wstatus) ? WTERMSIG(wstatus) : 0;
  return "was killed by signal " + std::to_string(sig) + " (" + strsignal(sig) + ")";
}

bool EndedWell(int wstatus) { return WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0; }

// What a job's processes see (the run's own folders and the views they were given, beneath a workspace
// they cannot see), which devices, limits and uid they have.
SandboxSpec JobSandbox(const json& job, const RunLayout& layout, const std::vector<std::string>& read_only) {
  SandboxSpec box;
  box.uid = JobUid(getpid());
  box.gid = static_cast<gid_t>(box.uid);
  if (std::string ws = job.value("workspace", ""); !ws.empty() && IsWithin(layout.root, ws)) box.workspace = ws;
  for (const char* d : {"/wd", "/artifacts", "/outputs", "/inputs"})
    if (IsDir(layout.root + d)) box.keep.push_back(layout.root + d);
  for (const auto& o : job.value("outputs", json::array()))
    if (o.is_string() && !IsWithin(o.get<std::string>(), layout.root)) box.keep.push_back(o.get<std::string>());
  box.read_only = read_only;
  // The server's MLflow helper on the job's PYTHONPATH, read-only, wherever it is (a checkout under /tmp
  // would be covered by the job's own /tmp). Only the server's: a folder the job's file names is not bound.
  if (std::string helper = job.value("python_helper_dir", ""); !helper.empty() && helper[0] == '/' && IsDir(helper))
    box.read_only.push_back(helper);
  if (job.contains("gpus") && job["gpus"].is_array() && !job.value("hide_gpus", false)) {
    for (const auto& instance : job["gpus"])
      for (const auto& g : instance) box.devices.push_back("/dev/nvidia" + std::to_string(g.value("index", 0)));
    if (!box.devices.empty())
      for (const char* d : {"/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools", "/dev/nvidia-modeset"})
        box.devices.push_back(d);
  }
  box.cgroups = g_limit_cgroups;
  box.max_processes = job.value("pids_max", kDefaultPidsMax);
  return box;
}

// Gives the job's own user (`uid`, root supervisor) what it writes: its working folder, outputs, logs and
// private copies of inputs, never a read-only view. With `mpi`, the log files Open MPI's ranks write
// themselves, in a folder that stays root's.
void GiveJobItsFiles(const json& job, const RunLayout& layout, const std::vector<std::string>& read_only,
                     const DistPlan* mpi, uid_t uid) {
  const gid_t gid = static_cast<gid_t>(uid);
  for (int rank = 0; mpi && rank < mpi->Total(); ++rank) {
    std::string path = layout.Artifacts() + "/" + RankLogName(*mpi, rank);
    int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd >= 0) {
      (void)!fchown(fd, uid, gid);
      close(fd);
    }
  }
  for (const auto& dir : {layout.WorkDir(), layout.Artifacts() + "/outputs", layout.Artifacts() + "/logs",
                          layout.root + "/outputs"})
    if (PathExists(dir)) ChownTree(dir, uid, gid);
  for (const auto& in : job.value("inputs", json::array())) {
    std::string dir = layout.Input(in.value("name", ""));
    if (std::find(read_only.begin(), read_only.end(), dir) == read_only.end() && IsDir(dir) &&
        in.value("mode", "ro_mount") != "ro_mount")
      ChownTree(dir, uid, gid);
  }
  for (const auto& o : job.value("outputs", json::array()))
    if (o.is_string() && !IsWithin(o.get<std::string>(), layout.root)) ChownTree(o.get<std::string>(), uid, gid);
}

// Starts the job's processes and watches them to the end: the whole job (local compute, `node` -1),
// or one node's share of it (a Slurm node supervisor, `node` >= 0). One process failing stops the
// others; cancel (a signal) and the timeout stop them all. Returns the supervisor's exit code.
int RunProcesses(const json& job, const RunLayout& layout, SystemLog& log, long long started,
                 const std::vector<std::string>& read_only, int node, Stager* stager) {
  const bool node_mode = node >= 0;
  const bool slurm = job.value("backend", "local") == "slurm";
  // A container environment (local compute): each process runs in the image, under a name that is
  // removed however the job ends.
  const std::string image = job.value("container_image", "");
  const std::string runtime = job.value("container_runtime", "");
  std::vector<std::string> containers;
  // Every process of a local job goes in a cgroup of its own (where the machine has one for us): the
  // server kills it should this supervisor be killed outright. Slurm keeps its jobs' processes itself.
  const std::string cgroup_record = layout.root + "/cgroup";
  if (!slurm && !node_mode) {
    g_cgroup = CreateJobCgroup(job.value("name", ""), cgroup_record);
    // Processes are limited by the job's own uid (sandbox.h): only memory needs a cgroup move.
    g_limit_cgroups = CreateJobLimitCgroups(job.value("name", ""), cgroup_record,
                                            job.value("memory_limit_bytes", DefaultJobMemory()), 0);
  }
  if (!g_cgroup.empty()) g_cgroup_fd = open(g_cgroup.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  Sandbox sandbox;
  auto finish = [&](Outcome o) {
    sandbox.Stop();
    if (g_cgroup_fd >= 0) {
      close(g_cgroup_fd);
      g_cgroup_fd = -1;
    }
    if (!g_cgroup.empty()) {
      // What is left (a daemon the job started) ends with the job.
      // Emptied rather than removed: an inode freed per job makes later files slower to create on ext4
      // without a journal (its allocator skips recently freed inodes).
      bool gone = KillCgroup(g_cgroup);
      for (const auto& limits : g_limit_cgroups) gone = KillCgroup(limits) && gone;
      if (gone) (void)!truncate(cgroup_record.c_str(), 0);
      g_cgroup.clear();
      g_limit_cgroups.clear();
      // Those it killed were ours (a subreaper's): reap them, so none is left even as a zombie when the
      // job is reported ended.
      for (int i = 0; i < 200 && HasChildren(); ++i) usleep(5000);
    }
    // A job that was stopped may have stopped a container mid-creation: its removal is checked.
    for (const auto& c : containers) RemoveContainer(runtime, c, /*verify=*/o.outcome != "completed");
    if (node_mode) {
      json j = {{"outcome", o.outcome}, {"reason", o.reason}};
      (void)WriteFileAtomic(layout.SystemLogDir() + "/node_" + std::to_string(node) + ".json", j.dump(), 0644);
      log.Line("node outcome: " + o.outcome + (o.reason.empty() ? "" : " (" + o.reason + ")"));
      if (stager) stager->Push(layout, true);
      return o.outcome == "completed" ? 0 : 1;
    }
    Status recorded = WriteExit(layout, o, started, log);
    if (stager) {
      stager->Push(layout, true);
      if (Status s = stager->PushExit(layout); !s.ok()) log.Line("cannot send the exit record: " + s.message());
    }
    // With no record (a full disk) the server is told why; it fails the job with that reason.
    Notify(job, "exited", log,
           recorded.ok() ? "" : "the supervisor could not record how the job ended (" + recorded.message() + ")");
    return 0;
  };
  auto fail = [&](const std::string& reason) {
    Outcome o;
    o.reason = reason;
    return finish(o);
  };

  // Where the processes run and meet.
  DistPlan plan = DistPlanFromJson(job.value("distribution", json::object()));
  if (node_mode) {
    const char* p = getenv("CAIRN_INTERNAL_PLAN");
    if (p) plan = DistPlanFromJson(json::parse(p, nullptr, false));
  } else if (slurm && plan.nodes == 1) {
    // One node: every process is here, so they meet on loopback and Slurm need not be asked.
    plan.hosts = {"127.0.0.1"};
    plan.master_port = FreePort();
  } else if (slurm) {
    plan.hosts = SlurmHosts();
    if (static_cast<int>(plan.hosts.size()) != plan.nodes)
      log.Line("Slurm gave " + std::to_string(plan.hosts.size()) + " nodes for " + std::to_string(plan.nodes));
    if (plan.hosts.empty()) plan.hosts.assign(static_cast<size_t>(plan.nodes), "127.0.0.1");
    plan.master_port = FreePort();
  } else {
    // The local compute: every "instance" is this machine, each with its own node rank.
    plan.hosts.assign(static_cast<size_t>(plan.nodes), "127.0.0.1");
    plan.master_port = FreePort();
  }

  std::vector<std::string> base_env;
  json job_env = job.value("env", json::object());
  for (char** e = environ; *e; ++e) {
    std::string kv = *e;
    std::string key = kv.substr(0, kv.find('='));
    if (StartsWith(key, "CAIRN_INTERNAL_") || job_env.contains(key)) continue;
    base_env.push_back(kv);
  }
  std::string command = job.value("command", "");
  std::string wd = layout.WorkDir();
  long long max_log = job.value("max_log_bytes", 1LL << 30);
  long long grace_ms = job.value("kill_grace_ms", 5000LL);
  auto merged_env = [&](int n, int local) {
    json merged = job_env;
    for (const auto& [k, v] : RankEnv(plan, n, local)) merged[k] = v;
    if ((!slurm || plan.nodes == 1) && plan.type == "pytorch" && !merged.contains("GLOO_SOCKET_IFNAME"))
      merged["GLOO_SOCKET_IFNAME"] = "lo";  // every rank is on this machine
    // The instance's GPUs (each process of it sees them all and picks its LOCAL_RANK's), or none where the
    // machine has GPUs and the job holds none. On Slurm, Slurm's own CUDA_VISIBLE_DEVICES stands.
    if (!slurm) {
      const json& gpus = job.contains("gpus") ? job["gpus"] : json();
      if (gpus.is_array() && n < static_cast<int>(gpus.size()) && !gpus[static_cast<size_t>(n)].empty()) {
        std::vector<Gpu> held;
        for (const auto& g : gpus[static_cast<size_t>(n)]) held.push_back({g.value("index", 0), g.value("uuid", ""), "", 0});
        merged["CUDA_VISIBLE_DEVICES"] = CudaVisibleDevices(held);
      } else if (job.value("hide_gpus", false)) {
        merged["CUDA_VISIBLE_DEVICES"] = "";
      }
    }
    std::vector<std::string> env;
    for (const auto& [k, v] : merged.items()) env.push_back(k + "=" + v.get<std::string>());
    return env;
  };
  auto env_for = [&](int n, int local) {
    std::vector<std::string> env = base_env;
    for (auto& kv : merged_env(n, local)) env.push_back(std::move(kv));
    // A job with a user of its own has no home of its own: its /tmp (private to it) stands in.
    if (geteuid() == 0 && !job_env.contains("HOME")) SetEnv(env, "HOME", "/tmp");
    return env;
  };
  // What a container sees of this machine: the run folder, the inputs (read-only), outputs kept elsewhere
  // (a datastore), the MLflow helper; each at its own path, so every path the job was given holds.
  ContainerRun crun;
  bool gpu_cdi = false;  // the host can hand the container its GPUs
  if (!image.empty()) {
    crun.runtime = runtime;
    crun.image = image;
    crun.workdir = layout.WorkDir();
    crun.command = job.value("command", "");
    // The run's own folders only: its job.json (the supervisor's credential) and exit.json stay outside.
    for (const char* d : {"/wd", "/artifacts", "/outputs", "/inputs"})
      if (IsDir(layout.root + d)) crun.mounts.push_back(layout.root + d);
    if (geteuid() == 0) crun.user = std::to_string(JobUid(getpid()));
    crun.pids_limit = job.value("pids_max", kDefaultPidsMax);
    for (const auto& p : read_only)
      if (!IsWithin(p, layout.root)) crun.mounts.push_back(p + ":ro");
    for (const auto& o : job.value("outputs", json::array()))
      if (!IsWithin(o.get<std::string>(), layout.root)) crun.mounts.push_back(o.get<std::string>());
    for (const auto& d : Split(job_env.value("PYTHONPATH", ""), ':'))
      if (!d.empty() && IsDir(d)) crun.mounts.push_back(d + ":ro");
    if (job.contains("gpus") && job["gpus"].is_array() && !job["gpus"].empty()) gpu_cdi = HasNvidiaCdiSpec();
    json limits = job.value("container_limits", json::object());
    crun.memory = limits.value("memory", "");
    crun.cpus = limits.value("cpus", "");
    crun.shm_size = limits.value("shm_size", "");
  }

  // The sandbox: what the job's processes see and who they are. Launchers (srun, podman) run outside it.
  bool sealed = image.empty() && !(slurm && !node_mode && plan.nodes > 1);
  SandboxSpec box = JobSandbox(job, layout, read_only);
  if (geteuid() == 0 && (sealed || !image.empty()))
    GiveJobItsFiles(job, layout, read_only, sealed && plan.type == "mpi" && !node_mode ? &plan : nullptr, box.uid);
  if (sealed) {
    Status made = sandbox.Start(box, g_cgroup_fd);
    if (!made.ok() && geteuid() == 0) return fail("cannot make the job's sandbox: " + made.message());
    if (!made.ok()) {
      log.Line("note: the job runs without a sandbox, as the supervisor's user (" + made.message() + ")");
      sealed = false;
    } else {
      log.Line("sandbox: holder " + std::to_string(sandbox.holder()) + ", the job runs as uid " +
               std::to_string(sandbox.user_namespace() ? geteuid() : box.uid) +
               (sandbox.user_namespace() ? " in a user namespace" : ""));
    }
  }
  std::vector<Child> children;
  auto start = [&](const std::vector<std::string>& argv, std::vector<std::string> env, int rank,
                   const std::string& label, const std::string& log_path, const std::string& direct = "",
                   const std::vector<std::string>& shell_argv = {}) -> Status {
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) return Internal(std::string("pipe: ") + strerror(errno));
    Child c;
    c.rank = rank;
    c.label = label;
    c.log_fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (c.log_fd < 0) {
      close(p[0]);
      close(p[1]);
      return Internal("cannot open " + log_path);
    }
    // Node supervisors (srun) and podman run outside; the job's own processes in its sandbox.
    auto pid = SpawnChild(argv, std::move(env), wd, p[1], sealed ? &sandbox : nullptr, direct, shell_argv);
    close(p[1]);
    if (!pid.ok()) {
      close(p[0]);
      close(c.log_fd);
      return Status(pid.status().code(), "cannot start " + label + ": " + pid.status().message());
    }
    c.pid = *pid;
    c.out = p[0];
    log.Line("started " + label + " as pid " + std::to_string(c.pid));
    children.push_back(c);
    return Status::Ok();
  };

  const std::string artifacts = layout.Artifacts();
  bool launcher = false;
  Status s = Status::Ok();
  if (plan.type == "mpi" && !node_mode) {
    // Open MPI starts the ranks; on the local compute they all run here, in a Slurm allocation on
    // every node (mpirun reads the allocation and starts its daemons through srun).
    std::string host_slots = slurm ? "" : "localhost:" + std::to_string(plan.Total());
    std::vector<std::string> extra;
    for (const auto& a : job.value("mpirun_options", json::array())) extra.push_back(a.get<std::string>());
    auto env = env_for(0, 0);
    s = start(MpirunArgv(plan, command, artifacts + "/user_logs", host_slots, extra), env, -1, "mpirun",
              layout.SupervisorLog());
    launcher = true;
  } else if (slurm && !node_mode && plan.nodes > 1) {
    // One node supervisor per node, started by srun; each starts its node's processes.
    std::vector<std::string> env = base_env;
    env.push_back("CAIRN_INTERNAL_PLAN=" + ToJson(plan).dump());
    if (const char* token = getenv("CAIRN_INTERNAL_TOKEN"); token && stager)
      env.push_back(std::string("CAIRN_INTERNAL_TOKEN=") + token);  // the node supervisors fetch with it too
    sealed = false;
    std::vector<std::string> argv = {"srun", "--kill-on-bad-exit=1", "--nodes=" + std::to_string(plan.nodes),
                                     "--ntasks=" + std::to_string(plan.nodes), "--ntasks-per-node=1", SelfExe(),
                                     "supervise"};
    if (stager) argv.insert(argv.end(), {"--staged", job.value("server_url", ""), job.value("name", ""), "--node"});
    else argv.insert(argv.end(), {layout.root, "--node"});
    s = start(argv, env, -1, "srun (a node supervisor on each of " + std::to_string(plan.nodes) + " nodes)",
              layout.SupervisorLog());
    launcher = true;
  } else {
    std::vector<int> nodes;
    if (node_mode) nodes = {node};
    else for (int n = 0; n < plan.nodes; ++n) nodes.push_back(n);
    for (int n : nodes) {
      for (int local = 0; local < plan.OnNode(n) && s.ok(); ++local) {
        int rank = plan.Rank(n, local);
        std::vector<std::string> env = image.empty() ? env_for(n, local) : std::vector<std::string>{};
        // A plain command (`python train.py --lr 0.1`, `true`) is executed as bash would, without bash's start.
        // CAIRN_DIRECT_EXEC=off always starts the shell (for comparison).
        std::optional<DirectCommand> direct;
        const char* direct_exec = getenv("CAIRN_DIRECT_EXEC");
        if (image.empty() && !(direct_exec && std::string(direct_exec) == "off"))
          direct = WithoutShell(command, EnvValue(env, "PATH"), wd);
        std::string label = plan.Distributed() ? "process " + std::to_string(rank) + " (node " + std::to_string(n) +
                                                     ", local rank " + std::to_string(local) + ")"
                            : direct ? direct->path + " (the command needs no shell)"
                                     : CommandShell() + " -c <command>";
        if (image.empty() && direct) {
          // What bash would have put in the environment of the program it executes.
          SetEnv(env, "PWD", LogicalCwd(EnvValue(env, "PWD"), wd));
          if (EnvValue(env, "SHLVL").empty()) SetEnv(env, "SHLVL", "0");
          SetEnv(env, "_", direct->path);
          s = start(direct->argv, std::move(env), rank, label, artifacts + "/" + RankLogName(plan, rank), direct->path,
                    {CommandShell(), "-c", command});
        } else if (image.empty()) {
          s = start({CommandShell(), "-c", command}, std::move(env), rank, label, artifacts + "/" + RankLogName(plan, rank));
        } else {
          crun.name = "cairn-" + job.value("name", "") + "-" + std::to_string(rank);
          crun.env = merged_env(n, local);
          // The instance's GPUs, as CDI devices where the host describes them; otherwise the container has
          // none (said once, in the log and the job's notes).
          crun.devices.clear();
          if (job.contains("gpus") && job["gpus"].is_array() && n < static_cast<int>(job["gpus"].size()) && gpu_cdi)
            for (const auto& g : job["gpus"][static_cast<size_t>(n)])
              crun.devices.push_back("nvidia.com/gpu=" + std::to_string(g.value("index", 0)));
          containers.push_back(crun.name);
          RemoveContainer(runtime, crun.name, false);  // a leftover of a supervisor that died
          s = start(ContainerArgv(crun), base_env, rank, label + " in " + image, artifacts + "/" + RankLogName(plan, rank));
        }
      }
    }
  }
  // The holder made the job's view while the processes were started; they waited for it.
  if (s.ok() && sandbox.active()) {
    if (Status ready = sandbox.Ready(); !ready.ok()) s = Status(ready.code(), "cannot make the job's sandbox: " + ready.message());
  }
  if (!s.ok()) {
    sandbox.Stop();
    for (auto& c : children) SignalTree(getpid(), c.pid, SIGKILL);
    while (waitpid(-1, nullptr, 0) > 0) {
    }
    return fail(s.message());
  }
  if (!node_mode) Notify(job, "running", log, job.value("preparing_note", ""));

  long long timeout_ms = node_mode ? 0 : job.value("timeout_seconds", 0LL) * 1000;
  long long deadline = timeout_ms > 0 ? NowMillis() + timeout_ms : 0;
  // A launcher passes the stop on to the node supervisors, which need their own grace first.
  long long kill_after = launcher ? 2 * grace_ms + 2000 : grace_ms;
  std::string stop;  // "canceled" | "timeout" | "failed" once we decided to stop the job
  const Child* first_failed = nullptr;
  long long kill_at = 0;
  long long drain_until = 0;
  char buf[65536];

  auto signal_all = [&](int sig) {
    // A container's processes are not ours to signal (conmon holds them): the runtime is asked.
    for (const auto& c : containers) SignalContainer(runtime, c, sig);
    SignalTree(getpid(), 0, sig);
    for (const auto& c : children)
      if (!c.done) kill(-c.pid, sig);
  };
  auto stop_all = [&](const std::string& why) {
    if (!stop.empty()) return;
    stop = why;
    signal_all(SIGTERM);
    kill_at = NowMillis() + kill_after;
    log.Line(why == "timeout" ? "limits.timeout reached: stopping the job's processes"
             : why == "failed" ? first_failed->label + " " + DescribeEnd(first_failed->wstatus) +
                                     ": stopping the other processes"
                               : "cancel requested: stopping the job's processes");
  };
  // Whether anything of the job is left once its processes ended: in a sandbox, what re-parented to its
  // holder; without, any child of ours (we are a subreaper). Reaps the finished ones.
  auto leftovers = [&] { return sandbox.active() ? (HasChildren(), !sandbox.Stragglers().empty()) : HasChildren(); };
  auto all_done = [&] {
    return std::all_of(children.begin(), children.end(), [](const Child& c) { return c.done; });
  };
  auto any_pipe = [&] {
    return std::any_of(children.begin(), children.end(), [](const Child& c) { return c.pipe_open; });
  };

  std::vector<pollfd> fds;
  long long pushed_at = NowMillis();
  // System metrics of the job's own processes, into its MLflow run (local jobs; 0 s turns them off).
  long long metrics_every = slurm || node_mode ? 0 : job.value("system_metrics_seconds", 0LL) * 1000;
  std::unique_ptr<SystemMetrics> metrics;
  std::unique_ptr<HttpClient> metrics_client;
  long long next_sample = 0, step = 0;
  if (metrics_every > 0 && !job.value("server_url", "").empty()) {
    std::vector<int> held;
    if (job.contains("gpus") && job["gpus"].is_array())
      for (const auto& instance : job["gpus"])
        for (const auto& g : instance) held.push_back(g.value("index", 0));
    metrics = std::make_unique<SystemMetrics>(g_cgroup, held);
    metrics_client = std::make_unique<HttpClient>(job.value("server_url", ""), 2000);
    metrics_client->SetBearerToken(job.value("env", json::object()).value("MLFLOW_TRACKING_TOKEN", ""));
    (void)metrics->Sample(NowMillis());  // the CPU share's starting point
    next_sample = NowMillis() + metrics_every;
  }
  auto sample = [&](long long now) {
    json batch = json::array();
    for (const auto& [key, value] : metrics->Sample(now))
      batch.push_back({{"key", key}, {"value", value}, {"timestamp", now}, {"step", step}});
    ++step;
    json body = {{"run_id", job.value("name", "")}, {"metrics", batch}};
    // Best effort: a server being restarted misses a sample, the job does not wait for it.
    (void)metrics_client->Request("POST", "/api/2.0/mlflow/runs/log-batch", body.dump());
  };
  while (any_pipe() || !all_done()) {
    long long now = NowMillis();
    if (metrics && now >= next_sample && !all_done()) {
      sample(now);
      next_sample = now + metrics_every;
    }
    if (stager && now - pushed_at >= 1000) {  // live logs for a node without the workspace's filesystem
      stager->Push(layout, false);
      pushed_at = now;
    }
    if (deadline && now >= deadline && !all_done()) stop_all("timeout");
    if (kill_at && now >= kill_at) {
      signal_all(SIGKILL);
      kill_at = 0;
    }
    if (all_done() && drain_until && now >= drain_until && any_pipe()) {
      // Something the job left behind still holds its output open: it goes with the job.
      SignalTree(getpid(), 0, SIGKILL);
      drain_until = now + 1000;
    }
    long long wait = 1000;
    if (stager) wait = std::max(0LL, std::min(wait, pushed_at + 1000 - now));
    if (deadline && !all_done()) wait = std::min(wait, std::max(0LL, deadline - now));
    if (kill_at) wait = std::min(wait, std::max(0LL, kill_at - now));
    if (drain_until) wait = std::min(wait, std::max(0LL, drain_until - now));
    if (metrics && !all_done()) wait = std::min(wait, std::max(0LL, next_sample - now));
    fds.assign(1, {g_signal_pipe[0], POLLIN, 0});
    for (const auto& c : children) fds.push_back({c.pipe_open ? c.out : -1, POLLIN, 0});
    int r = poll(fds.data(), fds.size(), static_cast<int>(wait));
    if (r < 0 && errno != EINTR) break;
    if (fds[0].revents & POLLIN) {
      unsigned char sigs[64];
      ssize_t n = read(g_signal_pipe[0], sigs, sizeof sigs);
      for (ssize_t i = 0; i < n; ++i)
        if (sigs[i] != SIGCHLD && !all_done()) stop_all("canceled");
    }
    for (size_t i = 0; i < children.size(); ++i) {
      Child& c = children[i];
      if (!c.pipe_open || !(fds[i + 1].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t n = read(c.out, buf, sizeof buf);
      if (n > 0) {
        if (c.rank < 0 || c.written + n <= max_log) {
          (void)!write(c.log_fd, buf, static_cast<size_t>(n));
          c.written += n;
        } else if (!c.truncated) {
          long long room = max_log - c.written;
          if (room > 0) (void)!write(c.log_fd, buf, static_cast<size_t>(room));
          std::string note = "\n[cairn] log truncated: the job wrote more than " + std::to_string(max_log) +
                             " bytes to stdout/stderr; the rest is discarded\n";
          (void)!write(c.log_fd, note.data(), note.size());
          log.Line(c.label + ": user log truncated at " + std::to_string(max_log) + " bytes");
          c.written = max_log;
          c.truncated = true;
        }
      } else if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
        c.pipe_open = false;
        close(c.out);
        close(c.log_fd);
      }
    }
    for (auto& c : children) {
      if (c.done) continue;
      if (waitpid(c.pid, &c.wstatus, WNOHANG) != c.pid) continue;
      c.done = true;
      log.Line(c.label + " " + DescribeEnd(c.wstatus));
      if (!EndedWell(c.wstatus) && stop.empty()) {
        first_failed = &c;
        stop_all("failed");
      }
    }
    if (all_done() && !drain_until) {
      // Stop whatever the processes left running in the background. We are a subreaper, so when we
      // have no children left there is no descendant at all, and no /proc scan is needed.
      if (leftovers()) SignalTree(getpid(), 0, SIGTERM);
      drain_until = NowMillis() + 1000;
    }
    // Reap re-parented orphans, but only once every process's own status is in hand: waitpid(-1)
    // could otherwise take one, and the loop would wait for an exit it can no longer see.
    if (all_done()) {
      while (waitpid(-1, nullptr, WNOHANG) > 0) {
      }
    }
  }
  // Anything still alive of the job's tree goes now: no orphaned processes.
  sandbox.Stop();  // the kernel ends whatever is left in the job's PID namespace
  if (HasChildren()) SignalTree(getpid(), 0, SIGKILL);
  while (waitpid(-1, nullptr, WNOHANG) > 0) {
  }

  Outcome outcome;
  const Child& main = first_failed ? *first_failed : children.front();
  if (WIFEXITED(main.wstatus)) outcome.exit_code = WEXITSTATUS(main.wstatus);
  if (WIFSIGNALED(main.wstatus)) outcome.signal = WTERMSIG(main.wstatus);
  if (stop == "timeout") {
    outcome.outcome = "timeout";
    outcome.reason = "limits.timeout of " + std::to_string(timeout_ms / 1000) + " s reached";
  } else if (stop == "canceled") {
    outcome.outcome = "canceled";
    outcome.reason = "canceled by request";
  } else if (stop.empty()) {
    outcome.outcome = "completed";
  } else if (main.rank < 0) {
    // The launcher failed: the node supervisors (or Open MPI) know which process it was.
    outcome.outcome = "failed";
    outcome.reason = main.label.substr(0, main.label.find(' ')) + " " + DescribeEnd(main.wstatus);
    for (int n = 0; n < plan.nodes && launcher && plan.type != "mpi"; ++n) {
      auto t = ReadFile(layout.SystemLogDir() + "/node_" + std::to_string(n) + ".json");
      json j = t.ok() ? json::parse(*t, nullptr, false) : json();
      if (j.is_object() && j.value("outcome", "") == "failed") {
        outcome.reason = "node " + std::to_string(n) + ": " + j.value("reason", "");
        break;
      }
    }
    if (plan.type == "mpi") outcome.reason += " (see user_logs/std_log_process_<rank>.txt)";
  } else {
    outcome.outcome = "failed";
    std::string who = plan.Distributed() ? main.label.substr(0, main.label.find(" (")) : "the command";
    outcome.reason = who + " " + DescribeEnd(main.wstatus);
    if (outcome.exit_code == 127) outcome.reason += " (command not found; see " + RankLogName(plan, main.rank) + ")";
    if (outcome.exit_code == 126) outcome.reason += " (command not executable)";
    if (plan.Total() > 1) outcome.reason += "; the other processes were stopped";
  }
  return finish(outcome);
}

// Prepares the run folder: the working directory with the code, ./outputs and ./logs linked into the
// artifacts, the inputs, the named outputs' folders. Fills `read_only` with what the job may not change.
Status Prepare(const json& job, const RunLayout& layout, SystemLog& log, std::vector<std::string>& read_only) {
  // Prepare: folders, code, inputs, outputs.
  // Only what every job needs is created here: each inode costs, at hundreds of jobs a second.
  for (const char* d : {"/artifacts/user_logs"}) {
    Status s = MakeDirs(layout.root + d);
    if (!s.ok()) return s;
  }
  std::error_code ec;
  if (PathExists(layout.WorkDir())) fs::remove_all(layout.WorkDir(), ec);  // a rerun after a crash starts clean
  Status s = MakeDirs(layout.WorkDir());
  if (!s.ok()) return s;
  std::string blob_root = job.value("blob_root", "");
  if (job.contains("snapshot") && job["snapshot"].is_array()) {
    s = Materialize(job["snapshot"], blob_root, layout.WorkDir(), false);
    if (!s.ok()) return Status(s.code(), "cannot materialise the code snapshot: " + s.message());
    log.Line("code: " + Plural(static_cast<long long>(job["snapshot"].size()), "file") + " in " + layout.WorkDir());
  }
  for (const char* name : {"outputs", "logs"}) {
    s = LinkSpecialFolder(layout, name);
    if (!s.ok()) return s;
  }
  DeliveryContext ctx;
  ctx.workspace = job.value("workspace", "");
  ctx.blob_root = blob_root;
  ctx.cancel_fd = g_signal_pipe[0];
  ctx.stop_requested = StopPending;
  for (const auto& in : job.value("inputs", json::array())) {
    std::string name = in.value("name", "");
    std::string kind = in.value("kind", "");
    std::string dir = layout.Input(name);
    std::string mode = in.value("mode", "ro_mount");
    ctx.log = [&](const std::string& line) { log.Line("inputs." + name + ": " + line); };
    if (kind == "blobs") {
      // The manifest travelled with the run (a Slurm node): the files are linked or copied from the blobs.
      fs::remove_all(dir, ec);
      s = MakeDirs(dir);
      if (!s.ok()) return s;
      s = Materialize(in["manifest"], blob_root, dir, mode == "ro_mount");
      if (!s.ok()) return Status(s.code(), "inputs." + name + ": " + s.message());
      if (mode == "ro_mount") {
        read_only.push_back(dir);
        if (geteuid() != 0) ChmodReadOnly(dir);
      }
    } else {
      s = DeliverInput(in, dir, ctx, read_only);
      if (!s.ok()) return Status(s.code(), "inputs." + name + ": " + s.message());
    }
    log.Line("inputs." + name + ": " + mode + " at " + in.value("target", dir));
  }
  for (const auto& o : job.value("outputs", json::array())) {
    s = MakeDirs(o.get<std::string>());
    if (!s.ok()) return s;
  }

  return Status::Ok();
}

}  // namespace

namespace {
int Supervise(const std::string& run_dir, Stager* stager) {
  // Its memory holds the supervisor's credential: not readable through /proc, not attachable.
  prctl(PR_SET_DUMPABLE, 0);
  RunLayout layout(run_dir);
  long long started = NowMillis();
  (void)MakeDirs(layout.SystemLogDir());
  SystemLog log(layout.SupervisorLog());
  // One supervisor per job: a server killed between starting this one and recording its pid starts
  // another when it comes back (and finds this one by the lock instead, when it is here first).
  pid_t holder = 0;
  int lock = LockRun(layout.SupervisorLock(), holder);
  if (lock < 0 && holder > 0) {
    log.Line("supervisor " + std::to_string(holder) + " already runs this job; supervisor " +
             std::to_string(getpid()) + " stops");
    return 0;
  }
  if (lock < 0) log.Line("cannot lock " + layout.SupervisorLock() + ": " + strerror(errno));
  if (PathExists(layout.ExitFile())) {  // an earlier supervisor ran the job to its end: not twice
    log.Line("the job has already run (" + layout.ExitFile() + " is there); supervisor " +
             std::to_string(getpid()) + " stops");
    return 0;
  }
  auto text = ReadFile(layout.JobFile());
  if (!text.ok()) {
    log.Line("cannot read the job: " + text.status().message());
    Outcome o;
    o.reason = "the supervisor could not read " + layout.JobFile();
    (void)WriteExit(layout, o, started, log);
    return 1;
  }
  json job = json::parse(*text, nullptr, false);
  if (job.is_discarded()) {
    Outcome o;
    o.reason = "malformed " + layout.JobFile();
    (void)WriteExit(layout, o, started, log);
    return 1;
  }

  // Signals arrive through a pipe so the main loop handles them in order with the job's output.
  if (pipe2(g_signal_pipe, O_CLOEXEC | O_NONBLOCK) != 0) return 1;
  InstallSignalHandlers();

  log.Line("supervisor " + std::to_string(getpid()) + " for job " + job.value("name", "?"));
  for (const auto& n : job.value("notices", json::array())) log.Line(n.get<std::string>());

  auto fail = [&](const std::string& reason) {
    Outcome o;
    o.reason = reason;
    // Stopped while preparing (a download given up because of it): canceled, not failed.
    if (StopPending()) {
      o.outcome = "canceled";
      o.reason = "canceled while preparing the job: " + reason;
    }
    Status recorded = WriteExit(layout, o, started, log);
    if (stager) {
      stager->Push(layout, true);
      (void)stager->PushExit(layout);
    }
    Notify(job, "exited", log,
           recorded.ok() ? "" : "the supervisor could not record how the job ended (" + recorded.message() + ")");
    return 0;
  };

  std::vector<std::string> read_only;
  if (Status s = Prepare(job, layout, log, read_only); !s.ok()) return fail(s.message());
  if (job.contains("container")) {
    // The environment: an image to run in, or this host (no runtime, or the image cannot be had) unless
    // the compute is strict. Each step is said in the log and as the job's status reason.
    const json& c = job["container"];
    std::string runtime = ContainerRuntime();
    std::string why;
    std::string image;
    if (runtime.empty()) {
      why = "no container runtime (podman or docker) on this machine";
    } else {
      // PrepareImage says "resolving" when it has to ask the runtime (not for an image known absent).
      ImageSteps steps{[&](const std::string& l) { log.Line(l); },
                       [&](const std::string& r) { Notify(job, "preparing", log, r); }};
      if (c.contains("build_manifest")) {
        Status v = EnsureView(c.value("build_context", ""), c.value("build_manifest", ""), job.value("blob_root", ""));
        if (!v.ok()) return fail("environment: the build context: " + v.message());
      }
      auto got = PrepareImage(runtime, c, steps, why, job.value("workspace", ""));
      if (!got.ok()) return fail(got.status().message());
      image = *got;
    }
    if (image.empty()) {
      if (c.value("strict", false)) return fail("environment " + c.value("describe", std::string()) + ": " + why + " (the compute is strict)");
      log.Line("environment: " + why + "; the job runs on this host");
      // Told with "running" (one report fewer on the job's path); the server records it as the last
      // Preparing reason before Running.
      job["preparing_note"] = "environment " + c.value("describe", std::string()) + ": " + why + "; the job runs on this host";
    } else {
      job["container_image"] = image;
      job["container_limits"] = c.value("limits", json::object());
      job["container_runtime"] = runtime;
      std::string gpu_note;
      if (job.contains("gpus") && job["gpus"].is_array() && !job["gpus"].empty() && !HasNvidiaCdiSpec())
        gpu_note = "; the container gets no GPU: this host has no CDI spec for NVIDIA GPUs (nvidia-ctk cdi generate "
                   "--output=/etc/cdi/nvidia.yaml writes one)";
      Notify(job, "preparing", log, "environment: starting the container (" + image + ")" + gpu_note);
    }
  }
  return RunProcesses(job, layout, log, started, read_only, /*node=*/-1, stager);
}

int SuperviseNode(const std::string& run_dir, Stager* stager) {
  prctl(PR_SET_DUMPABLE, 0);
  // One node of a Slurm job: the coordinator prepared the run folder; this starts the node's processes.
  RunLayout layout(run_dir);
  long long started = NowMillis();
  const char* node_id = getenv("SLURM_NODEID");
  int node = node_id ? atoi(node_id) : 0;
  SystemLog log(layout.SystemLogDir() + "/cairn_node_" + std::to_string(node) + ".log");
  auto text = ReadFile(layout.JobFile());
  json job = text.ok() ? json::parse(*text, nullptr, false) : json();
  if (!job.is_object()) {
    log.Line("cannot read " + layout.JobFile());
    return 1;
  }
  if (pipe2(g_signal_pipe, O_CLOEXEC | O_NONBLOCK) != 0) return 1;
  InstallSignalHandlers();
  std::vector<std::string> read_only;
  log.Line("node supervisor " + std::to_string(getpid()) + " for node " + std::to_string(node) + " of job " +
           job.value("name", "?"));
  if (stager) {
    // A node-local copy of its own: prepared here, as the coordinator prepared its.
    if (Status s = Prepare(job, layout, log, read_only); !s.ok()) {
      log.Line("cannot prepare the node: " + s.message());
      json j = {{"outcome", "failed"}, {"reason", "node " + std::to_string(node) + ": " + s.message()}};
      (void)WriteFileAtomic(layout.SystemLogDir() + "/node_" + std::to_string(node) + ".json", j.dump(), 0644);
      stager->Push(layout, true);
      return 1;
    }
  } else {
    for (const auto& in : job.value("inputs", json::array()))
      if (in.value("mode", "ro_mount") == "ro_mount") read_only.push_back(layout.Input(in.value("name", "")));
  }
  return RunProcesses(job, layout, log, started, read_only, node, stager);
}
}  // namespace

int RunSupervisor(const std::string& run_dir) { return Supervise(run_dir, nullptr); }

int RunNodeSupervisor(const std::string& run_dir) { return SuperviseNode(run_dir, nullptr); }

int RunStagedSupervisor(const std::string& server_url, const std::string& job, bool node) {
  const char* token = getenv("CAIRN_INTERNAL_TOKEN");
  const char* slurm_job = getenv("SLURM_JOB_ID");
  const char* node_id = getenv("SLURM_NODEID");
  const char* tmp = getenv("TMPDIR");
  std::string root = std::string(tmp && *tmp ? tmp : "/tmp") + "/cairn-run-" + job + "-" +
                     (slurm_job ? slurm_job : std::to_string(getpid())) +
                     (node ? "-node" + std::string(node_id ? node_id : "0") : "");
  RunLayout layout(root);
  Stager stager(server_url, job, token ? token : "");
  Status s = MakeDirs(layout.SystemLogDir());
  if (s.ok()) s = stager.Fetch(root);
  int rc;
  if (!s.ok()) {
    // Nothing to run: say so where the workspace will see it.
    SystemLog log(layout.SupervisorLog());
    log.Line("cannot stage the run from " + server_url + ": " + s.message());
    if (node) {
      stager.Push(layout, true);
      return 1;
    }
    Outcome o;
    o.reason = "the node could not fetch the job from the workspace server (" + s.message() + ")";
    (void)WriteExit(layout, o, NowMillis(), log);
    stager.Push(layout, true);
    (void)stager.PushExit(layout);
    Notify(json{{"server_url", server_url}, {"name", job}, {"supervisor_token", token ? token : ""}}, "exited", log);
    rc = 0;
  } else {
    rc = node ? SuperviseNode(root, &stager) : Supervise(root, &stager);
  }
  std::error_code ec;
  fs::remove_all(root, ec);  // everything went back to the workspace
  return rc;
}

}  // namespace cairn::compute
