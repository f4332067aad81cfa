#include "compute/supervisor.h"

#include "compute/job_cgroup.h"
#include "compute/sandbox.h"
#include "base/settings.h"
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

// Drains the signal pipe; true once a stop (TERM, INT, HUP) has arrived. A stop is written back, so
// the loop that watches the job's processes still sees it.
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
  explicit SystemLog(const std::string& path) {
    fd_ = open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  }
  ~SystemLog() {
    if (fd_ >= 0) close(fd_);
  }
  void Line(const std::string& msg) {
    std::string line = IsoTime(NowMillis()) + " " + msg + "\n";
    if (fd_ >= 0) (void)!write(fd_, line.data(), line.size());
  }

 private:
  int fd_ = -1;
};

// Copies the blobs of a manifest into `dir`; hard links when read-only delivery allows it.
Status Materialize(const json& manifest, const std::string& blob_root, const std::string& dir,
                   bool link) {
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

// The job's cgroup ("" when it has none) and its descriptor (open before any child is forked); its
// cgroup v1 limits (memory), where the machine has them; the file that records them all for the
// server.
struct JobCgroup {
  std::string path;
  int fd = -1;
  std::vector<std::string> limits;
  std::string record;
};

// Gives `uid` every file and folder beneath `root` (links themselves, never followed): what the
// job's own user must be able to write.
void ChownTree(const std::string& root, uid_t uid, gid_t gid) {
  std::error_code ec;
  if (lchown(root.c_str(), uid, gid) != 0) return;
  for (auto it = fs::recursive_directory_iterator(root, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec))
    (void)lchown(it->path().c_str(), uid, gid);
}

// Processes (threads included) a job may have at once by default; the job file's pids_max overrides
// it.
constexpr long long kDefaultPidsMax = 16384;

// Memory a job may use by default: the machine's, less a tenth (at least 512 MiB) for everything
// else.
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
  for (auto it = fs::recursive_directory_iterator(root, ec);
       !ec && it != fs::recursive_directory_iterator(); ++it)
    chmod(it->path().c_str(), it->is_directory() ? 0555 : 0444);
  chmod(root.c_str(), 0555);
}

// How a report went: taken, refused (the server answered no: the job has ended, the credential is
// not good; asking again changes nothing), or not heard (no server there yet).
enum class Posted { kTaken, kRefused, kUnheard };

// Makes `c` speak for job `name`'s supervisor: the credential as its bearer token, sent only over
// connections on which the server first proved it can compute that credential (GET
// /api/v1/identify), so a squatter on a dead server's port never sees it.
void ActAsSupervisor(HttpClient& c, const std::string& url, const std::string& name,
                     const std::string& credential) {
  std::string port = PortOfUrl(url);
  c.SetIdentityCheck(
      [name](const std::string& nonce) {
        return "/api/v1/identify?nonce=" + nonce + "&job=" + name;
      },
      [credential, port](const std::string& body, const std::string& nonce) {
        json proof = json::parse(body, nullptr, false);
        return proof.is_object() && proof["job_proof"].is_string() &&
               proof["job_proof"].get<std::string>() == IdentityProof(credential, nonce, port);
      });
  c.SetBearerToken(credential);
}

// One keep-alive client per server address for the supervisor's reports: each new connection first
// proves the server can compute this job's credential (a squatter on a dead server's port cannot),
// so the credential goes only over connections that proved it, and a job's reports cost one proof.
HttpClient& ReportClient(const std::string& url, const json& job) {
  static std::map<std::string, std::unique_ptr<HttpClient>> clients;
  auto& c = clients[url];
  if (!c) {
    c = std::make_unique<HttpClient>(url, 10000);
    ActAsSupervisor(*c, url, job.value("name", ""), job.value("supervisor_token", ""));
  }
  return *c;
}

Posted PostEvent(const std::string& url, const json& job, const std::string& event,
                 const std::string& reason) {
  HttpClient& cli = ReportClient(url, job);
  json body = {{"event", event}};
  if (!reason.empty()) body["reason"] = reason;
  auto res = cli.Request("POST", "/api/v1/internal/jobs/" + job.value("name", "") + "/events",
                         body.dump());
  if (!res.ok()) return Posted::kUnheard;
  if (res->status == 200) return Posted::kTaken;
  return res->status >= 400 && res->status < 500 ? Posted::kRefused : Posted::kUnheard;
}

// Tells the server; when the one that started us is gone, the workspace's current server (a restart
// picks a new port) is read from server.json.
void Notify(const json& job, const std::string& event, SystemLog& log,
            const std::string& reason = "") {
  std::string url = job.value("server_url", "");
  if (url.empty()) return;
  // A server being restarted (killed, then started by the next CLI call) is back within moments on
  // the same port: try for a few seconds, so the job's status does not wait for its end to catch up
  // (the chaos test lost a "running" this way).
  for (int attempt = 0; attempt < 12; ++attempt) {
    if (attempt > 0) usleep(static_cast<useconds_t>(std::min(100000 * attempt, 500000)));
    Posted p = PostEvent(url, job, event, reason);
    if (p == Posted::kTaken) return;
    if (p == Posted::kRefused) {
      log.Line("the server refused the report that the job is " + event +
               " (the job has ended there)");
      return;
    }
    std::string ws = job.value("workspace", "");
    auto info = ReadFile(ws + "/server.json");
    if (info.ok()) {
      json j = ParseJsonOrDiscarded(*info);
      std::string current = j.is_object() ? j.value("url", "") : "";
      if (!current.empty() && current != url &&
          PostEvent(current, job, event, reason) == Posted::kTaken)
        return;
    }
  }
  log.Line("could not tell the server the job is " + event +
           "; it reads the run folder when it next looks");
}

// Whether any child (and so, for a subreaper, any descendant) is still there; reaps the finished
// ones.
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
  json j = {{"outcome", o.outcome},
            {"reason", o.reason},
            {"started_at", started},
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
// (Slurm's NodeAddr: the host name on most clusters, an IP where names do not resolve). Two
// scontrol calls, whatever the number of nodes.
std::vector<std::string> SlurmHosts() {
  std::vector<std::string> hosts;
  const char* list = getenv("SLURM_JOB_NODELIST");
  if (!list) return hosts;
  std::map<std::string, std::string> addr;
  auto nodes = RunSlurmCommand({}, {"scontrol", "show", "node", "-o", list});
  for (const auto& line : Split(nodes.ok() ? *nodes : "", '\n')) {
    size_t n = line.find("NodeName="), a = line.find("NodeAddr=");
    if (n == std::string::npos || a == std::string::npos) continue;
    auto field = [&](size_t at, size_t skip) {
      return line.substr(at + skip, line.find(' ', at + skip) - at - skip);
    };
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

// Staging over HTTP, for a supervisor on a node that does not see the workspace's filesystem: the
// run file and the blobs it names come from the server into a node-local run folder, and the run's
// logs, outputs and records go back as they grow (every second) and in full at the end.
class Stager {
 public:
  // `token`: the job's supervisor credential, sent only to a server that proves it holds it.
  Stager(const std::string& url, std::string job, const std::string& token)
      : cli_(url, 60000), job_(std::move(job)) {
    ActAsSupervisor(cli_, url, job_, token);
  }

  // Writes the run file, remapped from the server's run folder to `local_root`, with its blobs
  // beside it.
  Status Fetch(const std::string& local_root) {
    auto r = cli_.Request("GET", "/api/v1/internal/jobs/" + job_ + "/run");
    if (!r.ok()) return r.status();
    if (r->status != 200)
      return Unavailable("the server refused the run file: HTTP " + std::to_string(r->status));
    std::string server_root = r->Header("x-cairn-run-root");
    std::string text = r->body;
    if (!server_root.empty()) {
      for (size_t at = text.find(server_root); at != std::string::npos;
           at = text.find(server_root, at + local_root.size()))
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
      if (b->status != 200)
        return Unavailable("cannot fetch blob " + sha + ": HTTP " + std::to_string(b->status));
      s = WriteFileAtomic(path, b->body, 0644);
      if (!s.ok()) return s;
    }
    job["staged_from"] = server_root;
    return WriteFile(local_root + "/job.json", job.dump(2), 0600);
  }

  // Sends what grew since the last push: the live logs, or with `final` everything the run
  // produced.
  void Push(const RunLayout& layout, bool final) {
    std::vector<std::pair<std::string, std::string>> roots = {
        {layout.Artifacts() + "/user_logs", "artifacts/user_logs"},
        {layout.Artifacts() + "/logs", "artifacts/logs"},
        {layout.SystemLogDir(), "artifacts/system_logs"}};
    if (final) {
      roots = {{layout.Artifacts(), "artifacts"}, {layout.root + "/outputs", "outputs"}};
    }
    for (const auto& [dir, prefix] : roots) {
      std::error_code ec;
      if (!fs::is_directory(dir, ec)) continue;
      for (auto it = fs::recursive_directory_iterator(
               dir, fs::directory_options::follow_directory_symlink, ec);
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
    auto r = cli_.Request("PUT", "/api/v1/internal/jobs/" + job_ + "/files/exit.json?offset=0",
                          *text, "application/octet-stream");
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
      auto r = cli_.Request(
          "PUT",
          "/api/v1/internal/jobs/" + job_ + "/files/" + rel + "?offset=" + std::to_string(done),
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
  std::erase_if(env, [&](const std::string& e) {
    return e.size() > key.size() && e.compare(0, key.size(), key) == 0 && e[key.size()] == '=';
  });
  env.push_back(key + "=" + value);
}

// The PWD bash gives a program it starts in `wd`: the inherited PWD when it names that folder, else
// the folder's physical path.
std::string LogicalCwd(const std::string& inherited, const std::string& wd) {
  struct stat a, b;
  if (!inherited.empty() && inherited[0] == '/' && stat(inherited.c_str(), &a) == 0 &&
      stat(wd.c_str(), &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino)
    return inherited;
  char* real = realpath(wd.c_str(), nullptr);
  std::string out = real ? real : wd;
  free(real);
  return out;
}

// `direct`, when set, is the file to execute with `argv` (a command run without a shell); should
// that fail in the child (a script with no #! line, a file the sandbox hides), `argv` of the shell
// is `shell_argv`. With `sandbox`, the process starts inside the job's sandbox (sandbox.h) and
// without any privilege; without, as the supervisor's user (a launcher: srun, podman).
Result<pid_t> SpawnChild(const std::vector<std::string>& argv, std::vector<std::string> env,
                         const std::string& wd, int out_w, const JobCgroup& cgroup,
                         const Sandbox* sandbox, const std::string& direct = "",
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
    // Should the supervisor die without stopping it (killed outright, e.g. by a Slurm step's
    // teardown), the process goes too rather than live on as an orphan nobody tracks.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGCHLD, SIGPIPE}) signal(sig, SIG_DFL);
    if (!in_cgroup) JoinCgroupInChild(cgroup.path);
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
    auto child = sandbox->Spawn(cgroup.fd, [&] { in_child(true); });
    if (child.ok()) setpgid(*child, *child);
    return child;
  }
  bool in_cgroup = false;
  pid_t child = ForkIntoCgroup(cgroup.fd, in_cgroup);
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

// What a job's processes see (the run's own folders and the views they were given, beneath a
// workspace they cannot see), which devices, limits and uid they have.
SandboxSpec JobSandbox(const json& job, const RunLayout& layout,
                       const std::vector<std::string>& read_only,
                       const std::vector<std::string>& limit_cgroups) {
  SandboxSpec box;
  box.uid = JobUid(getpid());
  box.gid = static_cast<gid_t>(box.uid);
  // A team server's job runs as the person who submitted it, with their groups.
  if (const json who = job.value("run_as", json()); who.is_object()) {
    box.uid = who.value("uid", box.uid);
    box.gid = who.value("gid", box.gid);
    for (const auto& g : who.value("groups", json::array()))
      if (g.is_number_unsigned()) box.groups.push_back(g.get<gid_t>());
  }
  if (std::string ws = job.value("workspace", ""); !ws.empty() && IsWithin(layout.root, ws))
    box.workspace = ws;
  for (const char* d : {"/wd", "/artifacts", "/outputs", "/inputs"})
    if (IsDir(layout.root + d)) box.keep.push_back(layout.root + d);
  for (const auto& o : job.value("outputs", json::array()))
    if (o.is_string() && !IsWithin(o.get<std::string>(), layout.root))
      box.keep.push_back(o.get<std::string>());
  box.read_only = read_only;
  // The server's MLflow helper on the job's PYTHONPATH, read-only, wherever it is (a checkout under
  // /tmp would be covered by the job's own /tmp). Only the server's: a folder the job's file names
  // is not bound.
  if (std::string helper = job.value("python_helper_dir", "");
      !helper.empty() && helper[0] == '/' && IsDir(helper))
    box.read_only.push_back(helper);
  if (job.contains("gpus") && job["gpus"].is_array() && !job.value("hide_gpus", false)) {
    for (const auto& instance : job["gpus"])
      for (const auto& g : instance)
        box.devices.push_back("/dev/nvidia" + std::to_string(g.value("index", 0)));
    if (!box.devices.empty())
      for (const char* d :
           {"/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools", "/dev/nvidia-modeset"})
        box.devices.push_back(d);
  }
  box.cgroups = limit_cgroups;
  box.max_processes = job.value("pids_max", kDefaultPidsMax);
  return box;
}

// Gives the job's own user (`uid`, root supervisor) what it writes: its working folder, outputs,
// logs and private copies of inputs, never a read-only view. With `mpi`, the log files Open MPI's
// ranks write themselves, in a folder that stays root's.
void GiveJobItsFiles(const json& job, const RunLayout& layout,
                     const std::vector<std::string>& read_only, const DistPlan* mpi, uid_t uid,
                     gid_t gid) {
  for (int rank = 0; mpi && rank < mpi->Total(); ++rank) {
    std::string path = layout.Artifacts() + "/" + RankLogName(*mpi, rank);
    int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd >= 0) {
      (void)!fchown(fd, uid, gid);
      close(fd);
    }
  }
  for (const auto& dir : {layout.WorkDir(), layout.Artifacts() + "/outputs",
                          layout.Artifacts() + "/logs", layout.root + "/outputs"})
    if (PathExists(dir)) ChownTree(dir, uid, gid);
  for (const auto& in : job.value("inputs", json::array())) {
    std::string dir = layout.Input(in.value("name", ""));
    if (std::find(read_only.begin(), read_only.end(), dir) == read_only.end() && IsDir(dir) &&
        in.value("mode", "ro_mount") != "ro_mount")
      ChownTree(dir, uid, gid);
  }
  for (const auto& o : job.value("outputs", json::array()))
    if (o.is_string() && !IsWithin(o.get<std::string>(), layout.root))
      ChownTree(o.get<std::string>(), uid, gid);
}

// One job's processes on this supervisor, from the start to the recorded end: the whole job (local
// compute, `node` -1), or one node's share of it (a Slurm node supervisor, `node` >= 0). One
// process failing stops the others; cancel (a signal) and the timeout stop them all. Each step is a
// method, run in order by Run(); what they share is the state below, never a global.
class JobRun {
 public:
  JobRun(const json& job, const RunLayout& layout, SystemLog& log, long long started,
         const std::vector<std::string>& read_only, int node, Stager* stager)
      : job_(job),
        layout_(layout),
        log_(log),
        started_(started),
        read_only_(read_only),
        node_(node),
        node_mode_(node >= 0),
        slurm_(job.value("backend", "local") == "slurm"),
        stager_(stager),
        image_(job.value("container_image", "")),
        runtime_(job.value("container_runtime", "")),
        job_env_(job.value("env", json::object())),
        command_(job.value("command", "")),
        wd_(layout.WorkDir()),
        max_log_(job.value("max_log_bytes", 1LL << 30)),
        grace_ms_(job.value("kill_grace_ms", 5000LL)) {
    cgroup_.record = layout.root + "/cgroup";
  }

  // Returns the supervisor's exit code.
  int Run() {
    MakeCgroups();
    PlanPlaces();
    CollectBaseEnv();
    DescribeContainer();
    if (Status sealed = MakeSandbox(); !sealed.ok()) return Fail(sealed.message());
    Status started = StartProcesses();
    // The holder made the job's view while the processes were started; they waited for it.
    if (started.ok() && sandbox_.active()) {
      if (Status ready = sandbox_.Ready(); !ready.ok())
        started = Status(ready.code(), "cannot make the job's sandbox: " + ready.message());
    }
    if (!started.ok()) {
      KillStarted();
      return Fail(started.message());
    }
    if (!node_mode_) Notify(job_, "running", log_, job_.value("preparing_note", ""));
    StartMetrics();
    Watch();
    EndWhatIsLeft();
    return Finish(Judge());
  }

 private:
  // Every process of a local job goes in a cgroup of its own (where the machine has one for us):
  // the server kills it should this supervisor be killed outright. Slurm keeps its jobs' processes
  // itself.
  void MakeCgroups() {
    if (!slurm_ && !node_mode_) {
      cgroup_.path = CreateJobCgroup(job_.value("name", ""), cgroup_.record);
      // Processes are limited by the job's own uid (sandbox.h): only memory needs a cgroup move.
      cgroup_.limits =
          CreateJobLimitCgroups(job_.value("name", ""), cgroup_.record,
                                job_.value("memory_limit_bytes", DefaultJobMemory()), 0);
    }
    if (!cgroup_.path.empty())
      cgroup_.fd = open(cgroup_.path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  }

  // Where the processes run and meet.
  void PlanPlaces() {
    plan_ = DistPlanFromJson(job_.value("distribution", json::object()));
    if (node_mode_) {
      if (auto p = settings::Get("CAIRN_INTERNAL_PLAN"))
        plan_ = DistPlanFromJson(json::parse(*p, nullptr, false));
    } else if (slurm_ && plan_.nodes == 1) {
      // One node: every process is here, so they meet on loopback and Slurm need not be asked.
      plan_.hosts = {"127.0.0.1"};
      plan_.master_port = FreePort();
    } else if (slurm_) {
      plan_.hosts = SlurmHosts();
      if (static_cast<int>(plan_.hosts.size()) != plan_.nodes)
        log_.Line("Slurm gave " + std::to_string(plan_.hosts.size()) + " nodes for " +
                  std::to_string(plan_.nodes));
      if (plan_.hosts.empty()) plan_.hosts.assign(static_cast<size_t>(plan_.nodes), "127.0.0.1");
      plan_.master_port = FreePort();
    } else {
      // The local compute: every "instance" is this machine, each with its own node rank.
      plan_.hosts.assign(static_cast<size_t>(plan_.nodes), "127.0.0.1");
      plan_.master_port = FreePort();
    }
  }

  // The supervisor's environment less its own internals and what the job sets itself.
  void CollectBaseEnv() {
    for (char** e = environ; *e; ++e) {
      std::string kv = *e;
      std::string key = kv.substr(0, kv.find('='));
      if (StartsWith(key, "CAIRN_INTERNAL_") || job_env_.contains(key)) continue;
      base_env_.push_back(kv);
    }
  }

  // The job's own variables for process `local` of instance `n`: its env, its rank's, its GPUs.
  std::vector<std::string> JobEnv(int n, int local) const {
    json merged = job_env_;
    for (const auto& [k, v] : RankEnv(plan_, n, local)) merged[k] = v;
    if ((!slurm_ || plan_.nodes == 1) && plan_.type == "pytorch" &&
        !merged.contains("GLOO_SOCKET_IFNAME"))
      merged["GLOO_SOCKET_IFNAME"] = "lo";  // every rank is on this machine
    // The instance's GPUs (each process of it sees them all and picks its LOCAL_RANK's), or none
    // where the machine has GPUs and the job holds none. On Slurm, Slurm's own CUDA_VISIBLE_DEVICES
    // stands.
    if (!slurm_) {
      const json& gpus = job_.contains("gpus") ? job_["gpus"] : json();
      if (gpus.is_array() && n < static_cast<int>(gpus.size()) &&
          !gpus[static_cast<size_t>(n)].empty()) {
        std::vector<Gpu> held;
        for (const auto& g : gpus[static_cast<size_t>(n)])
          held.push_back({g.value("index", 0), g.value("uuid", ""), "", 0});
        merged["CUDA_VISIBLE_DEVICES"] = CudaVisibleDevices(held);
      } else if (job_.value("hide_gpus", false)) {
        merged["CUDA_VISIBLE_DEVICES"] = "";
      }
    }
    std::vector<std::string> env;
    for (const auto& [k, v] : merged.items()) env.push_back(k + "=" + v.get<std::string>());
    return env;
  }

  // The whole environment of a process on the host.
  std::vector<std::string> HostEnv(int n, int local) const {
    std::vector<std::string> env = base_env_;
    for (auto& kv : JobEnv(n, local)) env.push_back(std::move(kv));
    // A job with a user of its own has no home of its own: its /tmp (private to it) stands in.
    if (geteuid() == 0 && !job_env_.contains("HOME")) SetEnv(env, "HOME", "/tmp");
    return env;
  }

  // What a container sees of this machine: the run folder, the inputs (read-only), outputs kept
  // elsewhere (a datastore), the MLflow helper; each at its own path, so every path the job was
  // given holds.
  void DescribeContainer() {
    if (image_.empty()) return;
    crun_.runtime = runtime_;
    crun_.image = image_;
    crun_.workdir = wd_;
    crun_.command = command_;
    // The run's own folders only: its job.json (the supervisor's credential) and exit.json stay
    // outside.
    for (const char* d : {"/wd", "/artifacts", "/outputs", "/inputs"})
      if (IsDir(layout_.root + d)) crun_.mounts.push_back(layout_.root + d);
    if (geteuid() == 0) {
      const json who = job_.value("run_as", json());
      crun_.user = who.is_object() ? std::to_string(who.value("uid", 0u)) + ":" +
                                         std::to_string(who.value("gid", 0u))
                                   : std::to_string(JobUid(getpid()));
    }
    crun_.pids_limit = job_.value("pids_max", kDefaultPidsMax);
    for (const auto& p : read_only_)
      if (!IsWithin(p, layout_.root)) crun_.mounts.push_back(p + ":ro");
    for (const auto& o : job_.value("outputs", json::array()))
      if (!IsWithin(o.get<std::string>(), layout_.root))
        crun_.mounts.push_back(o.get<std::string>());
    for (const auto& d : Split(job_env_.value("PYTHONPATH", ""), ':'))
      if (!d.empty() && IsDir(d)) crun_.mounts.push_back(d + ":ro");
    if (job_.contains("gpus") && job_["gpus"].is_array() && !job_["gpus"].empty())
      gpu_cdi_ = HasNvidiaCdiSpec();
    json limits = job_.value("container_limits", json::object());
    crun_.memory = limits.value("memory", "");
    crun_.cpus = limits.value("cpus", "");
    crun_.shm_size = limits.value("shm_size", "");
  }

  // The sandbox: what the job's processes see and who they are. Launchers (srun, podman) run
  // outside it. Fails only where the supervisor is root (a person's own server without user
  // namespaces runs the job as themselves, and says so).
  Status MakeSandbox() {
    sealed_ = image_.empty() && !(slurm_ && !node_mode_ && plan_.nodes > 1);
    SandboxSpec box = JobSandbox(job_, layout_, read_only_, cgroup_.limits);
    if (geteuid() == 0 && (sealed_ || !image_.empty()))
      GiveJobItsFiles(job_, layout_, read_only_,
                      sealed_ && plan_.type == "mpi" && !node_mode_ ? &plan_ : nullptr, box.uid,
                      box.gid);
    if (!sealed_) return Status::Ok();
    Status made = sandbox_.Start(box, cgroup_.fd);
    if (!made.ok() && geteuid() == 0)
      return Status(made.code(), "cannot make the job's sandbox: " + made.message());
    if (!made.ok()) {
      log_.Line("note: the job runs without a sandbox, as the supervisor's user (" +
                made.message() + ")");
      sealed_ = false;
      return Status::Ok();
    }
    log_.Line("sandbox: holder " + std::to_string(sandbox_.holder()) + ", the job runs as uid " +
              std::to_string(sandbox_.user_namespace() ? geteuid() : box.uid) +
              (sandbox_.user_namespace() ? " in a user namespace" : ""));
    return Status::Ok();
  }

  Status StartProcesses() {
    if (plan_.type == "mpi" && !node_mode_) return StartMpirun();
    if (slurm_ && !node_mode_ && plan_.nodes > 1) return StartNodeSupervisors();
    std::vector<int> nodes;
    if (node_mode_)
      nodes = {node_};
    else
      for (int n = 0; n < plan_.nodes; ++n) nodes.push_back(n);
    for (int n : nodes)
      for (int local = 0; local < plan_.OnNode(n); ++local)
        if (Status s = StartRank(n, local); !s.ok()) return s;
    return Status::Ok();
  }

  // Open MPI starts the ranks; on the local compute they all run here, in a Slurm allocation on
  // every node (mpirun reads the allocation and starts its daemons through srun).
  Status StartMpirun() {
    std::string host_slots = slurm_ ? "" : "localhost:" + std::to_string(plan_.Total());
    std::vector<std::string> extra;
    for (const auto& a : job_.value("mpirun_options", json::array()))
      extra.push_back(a.get<std::string>());
    launcher_ = true;
    return Start(MpirunArgv(plan_, command_, layout_.Artifacts() + "/user_logs", host_slots, extra),
                 HostEnv(0, 0), -1, "mpirun", layout_.SupervisorLog());
  }

  // One node supervisor per node, started by srun; each starts its node's processes.
  Status StartNodeSupervisors() {
    std::vector<std::string> env = base_env_;
    env.push_back("CAIRN_INTERNAL_PLAN=" + ToJson(plan_).dump());
    if (auto token = settings::Get("CAIRN_INTERNAL_TOKEN"); token && stager_)
      env.push_back("CAIRN_INTERNAL_TOKEN=" + *token);  // the node supervisors fetch with it too
    std::vector<std::string> argv = {"srun",
                                     "--kill-on-bad-exit=1",
                                     "--nodes=" + std::to_string(plan_.nodes),
                                     "--ntasks=" + std::to_string(plan_.nodes),
                                     "--ntasks-per-node=1",
                                     SelfExe(),
                                     "supervise"};
    if (stager_)
      argv.insert(argv.end(),
                  {"--staged", job_.value("server_url", ""), job_.value("name", ""), "--node"});
    else
      argv.insert(argv.end(), {layout_.root, "--node"});
    launcher_ = true;
    return Start(argv, env, -1,
                 "srun (a node supervisor on each of " + std::to_string(plan_.nodes) + " nodes)",
                 layout_.SupervisorLog());
  }

  // Process `local` of instance `n`: on the host (without a shell where the command needs none), or
  // in the job's image.
  Status StartRank(int n, int local) {
    const int rank = plan_.Rank(n, local);
    const std::string log_path = layout_.Artifacts() + "/" + RankLogName(plan_, rank);
    if (!image_.empty()) return StartContainer(n, local, rank, log_path);
    std::vector<std::string> env = HostEnv(n, local);
    // A plain command (`python train.py --lr 0.1`, `true`) is executed as bash would, without
    // bash's start. CAIRN_DIRECT_EXEC=off always starts the shell (for comparison).
    std::optional<DirectCommand> direct;
    if (!settings::Is("CAIRN_DIRECT_EXEC", "off"))
      direct = WithoutShell(command_, EnvValue(env, "PATH"), wd_);
    std::string label = plan_.Distributed() ? RankLabel(n, local, rank)
                        : direct            ? direct->path + " (the command needs no shell)"
                                            : CommandShell() + " -c <command>";
    if (!direct)
      return Start({CommandShell(), "-c", command_}, std::move(env), rank, label, log_path);
    // What bash would have put in the environment of the program it executes.
    SetEnv(env, "PWD", LogicalCwd(EnvValue(env, "PWD"), wd_));
    if (EnvValue(env, "SHLVL").empty()) SetEnv(env, "SHLVL", "0");
    SetEnv(env, "_", direct->path);
    return Start(direct->argv, std::move(env), rank, label, log_path, direct->path,
                 {CommandShell(), "-c", command_});
  }

  Status StartContainer(int n, int local, int rank, const std::string& log_path) {
    crun_.name = "cairn-" + job_.value("name", "") + "-" + std::to_string(rank);
    crun_.env = JobEnv(n, local);
    // The instance's GPUs, as CDI devices where the host describes them; otherwise the container
    // has none (said once, in the log and the job's notes).
    crun_.devices.clear();
    if (job_.contains("gpus") && job_["gpus"].is_array() &&
        n < static_cast<int>(job_["gpus"].size()) && gpu_cdi_)
      for (const auto& g : job_["gpus"][static_cast<size_t>(n)])
        crun_.devices.push_back("nvidia.com/gpu=" + std::to_string(g.value("index", 0)));
    containers_.push_back(crun_.name);
    RemoveContainer(runtime_, crun_.name, false);  // a leftover of a supervisor that died
    std::string label =
        plan_.Distributed() ? RankLabel(n, local, rank) : CommandShell() + " -c <command>";
    return Start(ContainerArgv(crun_), base_env_, rank, label + " in " + image_, log_path);
  }

  static std::string RankLabel(int n, int local, int rank) {
    return "process " + std::to_string(rank) + " (node " + std::to_string(n) + ", local rank " +
           std::to_string(local) + ")";
  }

  // One process, its output into a pipe the watch copies to `log_path`. Node supervisors (srun) and
  // podman run outside the sandbox; the job's own processes in it.
  Status Start(const std::vector<std::string>& argv, std::vector<std::string> env, int rank,
               const std::string& label, const std::string& log_path,
               const std::string& direct = "", const std::vector<std::string>& shell_argv = {}) {
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
    auto pid = SpawnChild(argv, std::move(env), wd_, p[1], cgroup_, sealed_ ? &sandbox_ : nullptr,
                          direct, shell_argv);
    close(p[1]);
    if (!pid.ok()) {
      close(p[0]);
      close(c.log_fd);
      return Status(pid.status().code(), "cannot start " + label + ": " + pid.status().message());
    }
    c.pid = *pid;
    c.out = p[0];
    log_.Line("started " + label + " as pid " + std::to_string(c.pid));
    children_.push_back(c);
    return Status::Ok();
  }

  // A start that failed part-way: what did start goes, and is reaped.
  void KillStarted() {
    sandbox_.Stop();
    for (auto& c : children_) SignalTree(getpid(), c.pid, SIGKILL);
    while (waitpid(-1, nullptr, 0) > 0) {
    }
  }

  // System metrics of the job's own processes, into its MLflow run (local jobs; 0 s turns them
  // off).
  void StartMetrics() {
    metrics_every_ = slurm_ || node_mode_ ? 0 : job_.value("system_metrics_seconds", 0LL) * 1000;
    if (metrics_every_ <= 0 || job_.value("server_url", "").empty()) return;
    std::vector<int> held;
    if (job_.contains("gpus") && job_["gpus"].is_array())
      for (const auto& instance : job_["gpus"])
        for (const auto& g : instance) held.push_back(g.value("index", 0));
    metrics_ = std::make_unique<SystemMetrics>(cgroup_.path, held);
    metrics_client_ = std::make_unique<HttpClient>(job_.value("server_url", ""), 2000);
    metrics_client_->SetBearerToken(job_env_.value("MLFLOW_TRACKING_TOKEN", ""));
    (void)metrics_->Sample(NowMillis());  // the CPU share's starting point
    next_sample_ = NowMillis() + metrics_every_;
  }

  void Sample(long long now) {
    json batch = json::array();
    for (const auto& [key, value] : metrics_->Sample(now))
      batch.push_back({{"key", key}, {"value", value}, {"timestamp", now}, {"step", step_}});
    ++step_;
    json body = {{"run_id", job_.value("name", "")}, {"metrics", batch}};
    // Best effort: a server being restarted misses a sample, the job does not wait for it.
    (void)metrics_client_->Request("POST", "/api/2.0/mlflow/runs/log-batch", body.dump());
  }

  // Copies the processes' output to their logs and waits for them to end, stopping them all on a
  // cancel, the timeout or one failing; then stops what they left behind.
  void Watch() {
    timeout_ms_ = node_mode_ ? 0 : job_.value("timeout_seconds", 0LL) * 1000;
    deadline_ = timeout_ms_ > 0 ? NowMillis() + timeout_ms_ : 0;
    // A launcher passes the stop on to the node supervisors, which need their own grace first.
    kill_after_ = launcher_ ? 2 * grace_ms_ + 2000 : grace_ms_;
    pushed_at_ = NowMillis();
    std::vector<pollfd> fds;
    while (AnyPipe() || !AllDone()) {
      Tick(NowMillis());
      fds.assign(1, {g_signal_pipe[0], POLLIN, 0});
      for (const auto& c : children_) fds.push_back({c.pipe_open ? c.out : -1, POLLIN, 0});
      int r = poll(fds.data(), fds.size(), static_cast<int>(NextWait(NowMillis())));
      if (r < 0 && errno != EINTR) break;
      if (fds[0].revents & POLLIN) ReadSignals();
      for (size_t i = 0; i < children_.size(); ++i)
        if (children_[i].pipe_open && (fds[i + 1].revents & (POLLIN | POLLHUP | POLLERR)))
          CopyOutput(children_[i]);
      ReapProcesses();
      if (AllDone() && !drain_until_) {
        // Stop whatever the processes left running in the background. We are a subreaper, so when
        // we have no children left there is no descendant at all, and no /proc scan is needed.
        if (Leftovers()) SignalTree(getpid(), 0, SIGTERM);
        drain_until_ = NowMillis() + 1000;
      }
      // Reap re-parented orphans, but only once every process's own status is in hand: waitpid(-1)
      // could otherwise take one, and the loop would wait for an exit it can no longer see.
      if (AllDone()) {
        while (waitpid(-1, nullptr, WNOHANG) > 0) {
        }
      }
    }
  }

  // What is due at `now`: a metrics sample, a push of the live logs, the timeout, the kill after
  // the grace, the end of what holds the output open after the processes ended.
  void Tick(long long now) {
    if (metrics_ && now >= next_sample_ && !AllDone()) {
      Sample(now);
      next_sample_ = now + metrics_every_;
    }
    if (stager_ &&
        now - pushed_at_ >= 1000) {  // live logs for a node without the workspace's filesystem
      stager_->Push(layout_, false);
      pushed_at_ = now;
    }
    if (deadline_ && now >= deadline_ && !AllDone()) StopAll("timeout");
    if (kill_at_ && now >= kill_at_) {
      SignalAll(SIGKILL);
      kill_at_ = 0;
    }
    if (AllDone() && drain_until_ && now >= drain_until_ && AnyPipe()) {
      // Something the job left behind still holds its output open: it goes with the job.
      SignalTree(getpid(), 0, SIGKILL);
      drain_until_ = now + 1000;
    }
  }

  // How long the watch may sleep: until the next thing Tick has to do, a second at most.
  long long NextWait(long long now) const {
    long long wait = 1000;
    if (stager_) wait = std::max(0LL, std::min(wait, pushed_at_ + 1000 - now));
    if (deadline_ && !AllDone()) wait = std::min(wait, std::max(0LL, deadline_ - now));
    if (kill_at_) wait = std::min(wait, std::max(0LL, kill_at_ - now));
    if (drain_until_) wait = std::min(wait, std::max(0LL, drain_until_ - now));
    if (metrics_ && !AllDone()) wait = std::min(wait, std::max(0LL, next_sample_ - now));
    return wait;
  }

  // A signal to the supervisor (cancel, a stop) stops the job; SIGCHLD only wakes the watch.
  void ReadSignals() {
    unsigned char sigs[64];
    ssize_t n = read(g_signal_pipe[0], sigs, sizeof sigs);
    for (ssize_t i = 0; i < n; ++i)
      if (sigs[i] != SIGCHLD && !AllDone()) StopAll("canceled");
  }

  // What process `c` wrote, into its log up to the job's log limit (a launcher's log has none).
  void CopyOutput(Child& c) {
    ssize_t n = read(c.out, buf_, sizeof buf_);
    if (n > 0) {
      if (c.rank < 0 || c.written + n <= max_log_) {
        (void)!write(c.log_fd, buf_, static_cast<size_t>(n));
        c.written += n;
      } else if (!c.truncated) {
        long long room = max_log_ - c.written;
        if (room > 0) (void)!write(c.log_fd, buf_, static_cast<size_t>(room));
        std::string note = "\n[cairn] log truncated: the job wrote more than " +
                           std::to_string(max_log_) +
                           " bytes to stdout/stderr; the rest is discarded\n";
        (void)!write(c.log_fd, note.data(), note.size());
        log_.Line(c.label + ": user log truncated at " + std::to_string(max_log_) + " bytes");
        c.written = max_log_;
        c.truncated = true;
      }
    } else if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
      c.pipe_open = false;
      close(c.out);
      close(c.log_fd);
    }
  }

  // Takes each ended process's status; the first to fail stops the others.
  void ReapProcesses() {
    for (size_t i = 0; i < children_.size(); ++i) {
      Child& c = children_[i];
      if (c.done || waitpid(c.pid, &c.wstatus, WNOHANG) != c.pid) continue;
      c.done = true;
      log_.Line(c.label + " " + DescribeEnd(c.wstatus));
      if (!EndedWell(c.wstatus) && stop_.empty()) {
        first_failed_ = static_cast<int>(i);
        StopAll("failed");
      }
    }
  }

  void SignalAll(int sig) {
    // A container's processes are not ours to signal (conmon holds them): the runtime is asked.
    for (const auto& c : containers_) SignalContainer(runtime_, c, sig);
    SignalTree(getpid(), 0, sig);
    for (const auto& c : children_)
      if (!c.done) kill(-c.pid, sig);
  }

  // Stops the job once, for `why` ("canceled" | "timeout" | "failed"): SIGTERM now, SIGKILL after
  // the grace.
  void StopAll(const std::string& why) {
    if (!stop_.empty()) return;
    stop_ = why;
    SignalAll(SIGTERM);
    kill_at_ = NowMillis() + kill_after_;
    log_.Line(why == "timeout" ? "limits.timeout reached: stopping the job's processes"
              : why == "failed"
                  ? children_[static_cast<size_t>(first_failed_)].label + " " +
                        DescribeEnd(children_[static_cast<size_t>(first_failed_)].wstatus) +
                        ": stopping the other processes"
                  : "cancel requested: stopping the job's processes");
  }

  // Whether anything of the job is left once its processes ended: in a sandbox, what re-parented to
  // its holder; without, any child of ours (we are a subreaper). Reaps the finished ones.
  bool Leftovers() {
    return sandbox_.active() ? (HasChildren(), !sandbox_.Stragglers().empty()) : HasChildren();
  }
  bool AllDone() const {
    return std::all_of(children_.begin(), children_.end(), [](const Child& c) { return c.done; });
  }
  bool AnyPipe() const {
    return std::any_of(children_.begin(), children_.end(),
                       [](const Child& c) { return c.pipe_open; });
  }

  // Anything still alive of the job's tree goes now: no orphaned processes.
  void EndWhatIsLeft() {
    sandbox_.Stop();  // the kernel ends whatever is left in the job's PID namespace
    if (HasChildren()) SignalTree(getpid(), 0, SIGKILL);
    while (waitpid(-1, nullptr, WNOHANG) > 0) {
    }
  }

  // How the job ended, from the process that decided it: the first to fail, else the first started.
  Outcome Judge() const {
    Outcome outcome;
    const Child& main = children_[first_failed_ >= 0 ? static_cast<size_t>(first_failed_) : 0];
    if (WIFEXITED(main.wstatus)) outcome.exit_code = WEXITSTATUS(main.wstatus);
    if (WIFSIGNALED(main.wstatus)) outcome.signal = WTERMSIG(main.wstatus);
    if (stop_ == "timeout") {
      outcome.outcome = "timeout";
      outcome.reason = "limits.timeout of " + std::to_string(timeout_ms_ / 1000) + " s reached";
    } else if (stop_ == "canceled") {
      outcome.outcome = "canceled";
      outcome.reason = "canceled by request";
    } else if (stop_.empty()) {
      outcome.outcome = "completed";
    } else if (main.rank < 0) {
      outcome.outcome = "failed";
      outcome.reason = LauncherFailure(main);
    } else {
      outcome.outcome = "failed";
      std::string who =
          plan_.Distributed() ? main.label.substr(0, main.label.find(" (")) : "the command";
      outcome.reason = who + " " + DescribeEnd(main.wstatus);
      if (outcome.exit_code == 127)
        outcome.reason += " (command not found; see " + RankLogName(plan_, main.rank) + ")";
      if (outcome.exit_code == 126) outcome.reason += " (command not executable)";
      if (plan_.Total() > 1) outcome.reason += "; the other processes were stopped";
    }
    return outcome;
  }

  // The launcher failed: the node supervisors (or Open MPI) know which process it was.
  std::string LauncherFailure(const Child& launcher) const {
    std::string reason =
        launcher.label.substr(0, launcher.label.find(' ')) + " " + DescribeEnd(launcher.wstatus);
    for (int n = 0; n < plan_.nodes && launcher_ && plan_.type != "mpi"; ++n) {
      auto t = ReadFile(layout_.SystemLogDir() + "/node_" + std::to_string(n) + ".json");
      json j = t.ok() ? json::parse(*t, nullptr, false) : json();
      if (j.is_object() && j.value("outcome", "") == "failed")
        return "node " + std::to_string(n) + ": " + j.value("reason", "");
    }
    if (plan_.type == "mpi") reason += " (see user_logs/std_log_process_<rank>.txt)";
    return reason;
  }

  // Ends what the job left (its cgroup, its containers) and records the outcome: a node's for its
  // job's supervisor, the job's for the server. Returns the supervisor's exit code.
  int Finish(const Outcome& o) {
    sandbox_.Stop();
    EmptyCgroups();
    // A job that was stopped may have stopped a container mid-creation: its removal is checked.
    for (const auto& c : containers_)
      RemoveContainer(runtime_, c, /*verify=*/o.outcome != "completed");
    if (node_mode_) {
      json j = {{"outcome", o.outcome}, {"reason", o.reason}};
      (void)WriteFileAtomic(layout_.SystemLogDir() + "/node_" + std::to_string(node_) + ".json",
                            j.dump(), 0644);
      log_.Line("node outcome: " + o.outcome + (o.reason.empty() ? "" : " (" + o.reason + ")"));
      if (stager_) stager_->Push(layout_, true);
      return o.outcome == "completed" ? 0 : 1;
    }
    Status recorded = WriteExit(layout_, o, started_, log_);
    if (stager_) {
      stager_->Push(layout_, true);
      if (Status s = stager_->PushExit(layout_); !s.ok())
        log_.Line("cannot send the exit record: " + s.message());
    }
    // With no record (a full disk) the server is told why; it fails the job with that reason.
    Notify(job_, "exited", log_,
           recorded.ok()
               ? ""
               : "the supervisor could not record how the job ended (" + recorded.message() + ")");
    return 0;
  }

  int Fail(const std::string& reason) {
    Outcome o;
    o.reason = reason;
    return Finish(o);
  }

  // What is left in the job's cgroups (a daemon the job started) ends with the job.
  void EmptyCgroups() {
    if (cgroup_.fd >= 0) {
      close(cgroup_.fd);
      cgroup_.fd = -1;
    }
    if (cgroup_.path.empty()) return;
    // Emptied rather than removed: an inode freed per job makes later files slower to create on
    // ext4 without a journal (its allocator skips recently freed inodes).
    bool gone = KillCgroup(cgroup_.path);
    for (const auto& limits : cgroup_.limits) gone = KillCgroup(limits) && gone;
    if (gone) (void)!truncate(cgroup_.record.c_str(), 0);
    cgroup_.path.clear();
    cgroup_.limits.clear();
    // Those it killed were ours (a subreaper's): reap them, so none is left even as a zombie when
    // the job is reported ended.
    for (int i = 0; i < 200 && HasChildren(); ++i) usleep(5000);
  }

  // What the job was given.
  const json& job_;
  const RunLayout& layout_;
  SystemLog& log_;
  const long long started_;
  const std::vector<std::string>& read_only_;
  const int node_;
  const bool node_mode_;
  const bool slurm_;
  Stager* const stager_;
  const std::string image_, runtime_;
  const json job_env_;
  const std::string command_, wd_;
  const long long max_log_, grace_ms_;

  // Where and how its processes run.
  JobCgroup cgroup_;
  DistPlan plan_;
  std::vector<std::string> base_env_;
  ContainerRun crun_;
  bool gpu_cdi_ = false;  // the host can hand the container its GPUs
  std::vector<std::string> containers_;
  Sandbox sandbox_;
  bool sealed_ = false;    // the job's own processes start in sandbox_
  bool launcher_ = false;  // the first process is mpirun or srun, not a rank
  std::vector<Child> children_;

  // The watch.
  std::string stop_;       // "canceled" | "timeout" | "failed" once the job is being stopped
  int first_failed_ = -1;  // index in children_
  long long timeout_ms_ = 0, deadline_ = 0, kill_after_ = 0, kill_at_ = 0, drain_until_ = 0,
            pushed_at_ = 0;
  long long metrics_every_ = 0, next_sample_ = 0, step_ = 0;
  std::unique_ptr<SystemMetrics> metrics_;
  std::unique_ptr<HttpClient> metrics_client_;
  char buf_[65536];
};

// Prepares the run folder: the working directory with the code, ./outputs and ./logs linked into
// the artifacts, the inputs, the named outputs' folders. Fills `read_only` with what the job may
// not change.
Status Prepare(const json& job, const RunLayout& layout, SystemLog& log,
               std::vector<std::string>& read_only) {
  // Prepare: folders, code, inputs, outputs.
  // Only what every job needs is created here: each inode costs, at hundreds of jobs a second.
  for (const char* d : {"/artifacts/user_logs"}) {
    Status s = MakeDirs(layout.root + d);
    if (!s.ok()) return s;
  }
  std::error_code ec;
  if (PathExists(layout.WorkDir()))
    fs::remove_all(layout.WorkDir(), ec);  // a rerun after a crash starts clean
  Status s = MakeDirs(layout.WorkDir());
  if (!s.ok()) return s;
  std::string blob_root = job.value("blob_root", "");
  if (job.contains("snapshot") && job["snapshot"].is_array()) {
    s = Materialize(job["snapshot"], blob_root, layout.WorkDir(), false);
    if (!s.ok()) return Status(s.code(), "cannot materialise the code snapshot: " + s.message());
    log.Line("code: " + Plural(static_cast<long long>(job["snapshot"].size()), "file") + " in " +
             layout.WorkDir());
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
      // The manifest travelled with the run (a Slurm node): the files are linked or copied from the
      // blobs.
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
           recorded.ok()
               ? ""
               : "the supervisor could not record how the job ended (" + recorded.message() + ")");
    return 0;
  };

  std::vector<std::string> read_only;
  if (Status s = Prepare(job, layout, log, read_only); !s.ok()) return fail(s.message());
  if (job.contains("container")) {
    // The environment: an image to run in, or this host (no runtime, or the image cannot be had)
    // unless the compute is strict. Each step is said in the log and as the job's status reason.
    const json& c = job["container"];
    std::string runtime = ContainerRuntime();
    std::string why;
    std::string image;
    if (runtime.empty()) {
      why = "no container runtime (podman or docker) on this machine";
    } else {
      // PrepareImage says "resolving" when it has to ask the runtime (not for an image known
      // absent).
      ImageSteps steps{[&](const std::string& l) { log.Line(l); },
                       [&](const std::string& r) { Notify(job, "preparing", log, r); }};
      if (c.contains("build_manifest")) {
        Status v = EnsureView(c.value("build_context", ""), c.value("build_manifest", ""),
                              job.value("blob_root", ""));
        if (!v.ok()) return fail("environment: the build context: " + v.message());
      }
      auto got = PrepareImage(runtime, c, steps, why, job.value("workspace", ""));
      if (!got.ok()) return fail(got.status().message());
      image = *got;
    }
    if (image.empty()) {
      if (c.value("strict", false))
        return fail("environment " + c.value("describe", std::string()) + ": " + why +
                    " (the compute is strict)");
      log.Line("environment: " + why + "; the job runs on this host");
      // Told with "running" (one report fewer on the job's path); the server records it as the last
      // Preparing reason before Running.
      job["preparing_note"] = "environment " + c.value("describe", std::string()) + ": " + why +
                              "; the job runs on this host";
    } else {
      job["container_image"] = image;
      job["container_limits"] = c.value("limits", json::object());
      job["container_runtime"] = runtime;
      std::string gpu_note;
      if (job.contains("gpus") && job["gpus"].is_array() && !job["gpus"].empty() &&
          !HasNvidiaCdiSpec())
        gpu_note =
            "; the container gets no GPU: this host has no CDI spec for NVIDIA GPUs (nvidia-ctk "
            "cdi generate "
            "--output=/etc/cdi/nvidia.yaml writes one)";
      Notify(job, "preparing", log,
             "environment: starting the container (" + image + ")" + gpu_note);
    }
  }
  return JobRun(job, layout, log, started, read_only, /*node=*/-1, stager).Run();
}

int SuperviseNode(const std::string& run_dir, Stager* stager) {
  prctl(PR_SET_DUMPABLE, 0);
  // One node of a Slurm job: the coordinator prepared the run folder; this starts the node's
  // processes.
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
  log.Line("node supervisor " + std::to_string(getpid()) + " for node " + std::to_string(node) +
           " of job " + job.value("name", "?"));
  if (stager) {
    // A node-local copy of its own: prepared here, as the coordinator prepared its.
    if (Status s = Prepare(job, layout, log, read_only); !s.ok()) {
      log.Line("cannot prepare the node: " + s.message());
      json j = {{"outcome", "failed"},
                {"reason", "node " + std::to_string(node) + ": " + s.message()}};
      (void)WriteFileAtomic(layout.SystemLogDir() + "/node_" + std::to_string(node) + ".json",
                            j.dump(), 0644);
      stager->Push(layout, true);
      return 1;
    }
  } else {
    for (const auto& in : job.value("inputs", json::array()))
      if (in.value("mode", "ro_mount") == "ro_mount")
        read_only.push_back(layout.Input(in.value("name", "")));
  }
  return JobRun(job, layout, log, started, read_only, node, stager).Run();
}
}  // namespace

int RunSupervisor(const std::string& run_dir) { return Supervise(run_dir, nullptr); }

int RunNodeSupervisor(const std::string& run_dir) { return SuperviseNode(run_dir, nullptr); }

int RunStagedSupervisor(const std::string& server_url, const std::string& job, bool node) {
  const std::string token = settings::Get("CAIRN_INTERNAL_TOKEN").value_or("");
  const char* slurm_job = getenv("SLURM_JOB_ID");
  const char* node_id = getenv("SLURM_NODEID");
  const char* tmp = getenv("TMPDIR");
  std::string root = std::string(tmp && *tmp ? tmp : "/tmp") + "/cairn-run-" + job + "-" +
                     (slurm_job ? slurm_job : std::to_string(getpid())) +
                     (node ? "-node" + std::string(node_id ? node_id : "0") : "");
  RunLayout layout(root);
  Stager stager(server_url, job, token);
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
    Notify(json{{"server_url", server_url}, {"name", job}, {"supervisor_token", token}}, "exited",
           log);
    rc = 0;
  } else {
    rc = node ? SuperviseNode(root, &stager) : Supervise(root, &stager);
  }
  std::error_code ec;
  fs::remove_all(root, ec);  // everything went back to the workspace
  return rc;
}

}  // namespace cairn::compute
