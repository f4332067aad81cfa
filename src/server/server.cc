#include "server/server_impl.h"

#include <fcntl.h>
#include <grp.h>
#include <malloc.h>
#include <pwd.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/accounts.h"
#include "base/settings.h"
#include "base/beneath.h"
#include "base/json_limits.h"
#include "base/http_server.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "base/fs.h"
#include "base/json_writer.h"
#include "base/util.h"
#include "compute/container.h"
#include "compute/distribution.h"
#include "compute/image_cache.h"
#include "compute/process.h"
#include "compute/run_layout.h"
#include "scheduler/scheduler.h"
#include "server/access.h"
#include "server/assets_api.h"
#include "store/access_store.h"
#include "server/job_view.h"
#include "server/zip_stream.h"
#include "server/responses.h"
#include "server/mlflow_api.h"
#include "server/oidc.h"
#include "tracking/tracking_store.h"
#include "server/workspace.h"
#include "spec/job_spec.h"
#include "spec/vm_sizes.h"
#include "store/blob_store.h"
#include "tracking/downsample.h"

namespace cairn::server {

namespace fs = std::filesystem;

namespace {

bool IsLoopbackHost(const std::string& h) {
  return h == "localhost" || h == "::1" || StartsWith(h, "127.");
}

// A positive number of seconds from the settings table; its default otherwise.
long long EnvSeconds(const char* name, long long fallback) {
  long long n = settings::Integer(name);
  return n > 0 ? n : fallback;
}

std::string PythonHelperDir() {
  std::string exe_dir = Dirname(compute::SelfExe());
  for (const auto& d : {exe_dir + "/../python", exe_dir + "/../share/cairn/python"})
    if (PathExists(d + "/cairn_mlflow.py")) return AbsPath(d);
  return "";
}

}  // namespace

// A run-relative path as the CLI names it ("artifacts/user_logs/std_log.txt",
// "named-outputs/<name>/...") as a path beneath the run folder; empty when it names nothing there
// or would leave it.
std::string MapRunPath(const std::string& rel) {
  if (rel.empty() || !Beneath::IsClean(rel)) return "";
  if (StartsWith(rel, "artifacts/") || rel == "artifacts") return rel;
  if (StartsWith(rel, "named-outputs/") && rel.size() > 14) return "outputs/" + rel.substr(14);
  return "";
}
// Where a sign-in may send the browser: the studio's page itself, or one of its #/ routes. Nothing
// that a browser could read as another host ("//x", "/\\x", a scheme) and no control characters.
bool IsStudioRoute(const std::string& next) {
  if (next == "/") return true;
  if (!StartsWith(next, "/#/")) return false;
  for (unsigned char c : next)
    if (c < 0x21 || c == 0x7f || c == '\\') return false;
  return true;
}
std::string CookieOf(const http::Request& req, const std::string& name) {
  for (const auto& part : Split(req.get_header_value("Cookie"), ';')) {
    std::string c = Trim(part);
    if (StartsWith(c, name + "=")) return c.substr(name.size() + 1);
  }
  return "";
}

Server::Server(ServerOptions o, std::string token)
    : session_idle_ms_(EnvSeconds("CAIRN_SESSION_IDLE_SECONDS", 12 * 3600) * 1000),
      session_max_age_ms_(EnvSeconds("CAIRN_SESSION_MAX_AGE_SECONDS", 7 * 24 * 3600) * 1000),
      opt_(std::move(o)),
      token_(std::move(token)),
      ws_{opt_.home} {}

// Every route as the table declares it (registered, never served): for docs/rest-api.md's table
// and its test.
std::vector<RouteRow> Server::Table() {
  Routes();
  std::vector<RouteRow> out;
  for (const auto& r : svr_.routes())
    out.push_back({r.method, r.pattern,
                   r.tag < 0 ? "UNDECLARED" : AccessName(static_cast<Access>(r.tag)), r.max_body,
                   r.streams});
  for (const auto& [endpoint, access] : mlflow_.endpoints)
    out.push_back({"", "/api/2.0/mlflow/" + endpoint, AccessName(access), 0, false});
  return out;
}

int Server::Run() {
  // A team server's files are its own: the workspace folder only lets others reach the socket,
  // and its databases (which hold job tokens) are made 0600 before SQLite opens them (SQLite
  // gives its -wal and -shm files the database's mode).
  if (opt_.team) {
    chmod(opt_.home.c_str(), 0711);
    // Jobs' run folders and the blob store are reached by a job only through its sandbox, where
    // its own folders are bound back; nobody's shell reads another's.
    for (const auto& d : {ws_.Runs(), ws_.Blobs()}) {
      (void)MakeDirs(d);
      chmod(d.c_str(), 0700);
    }
    for (const auto& f : {ws_.Token(), ws_.Database(), ws_.AccessDb(), ws_.ServerInfo(),
                          opt_.home + "/tracking.db"}) {
      int fd = open(f.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
      if (fd >= 0) close(fd);
      chmod(f.c_str(), 0600);
    }
  }
  if (!TakeLock()) return 1;
  if (Status s = OpenAccess(); !s.ok()) {
    fprintf(stderr, "cairn server: %s\n", s.message().c_str());
    return 1;
  }
  auto store = store::JobStore::Open(ws_.Database());
  if (!store.ok()) {
    fprintf(stderr, "cairn server: %s\n", store.status().message().c_str());
    return 1;
  }
  if (int rc = ConfigureHttp()) return rc;
  if (!Bind()) return 1;
  if (opt_.team) {
    auto oidc = OidcFromSettings((tls_url_.empty() ? url_ : tls_url_) + "/oidc/callback");
    if (!oidc.ok()) {
      fprintf(stderr, "cairn server: %s\n", oidc.status().message().c_str());
      return 1;
    }
    if (oidc->enabled()) oidc_ = std::make_unique<Oidc>(*oidc);
  }
  auto cfg = MakeSchedulerConfig();
  if (!cfg.ok()) {
    fprintf(stderr, "cairn server: %s\n", cfg.status().message().c_str());
    return 1;
  }
  sched_ = std::make_unique<scheduler::Scheduler>(*cfg, std::move(store).value());
  sched_->Start();
  Routes();
  if (Status s = Announce(); !s.ok()) {
    fprintf(stderr, "cairn server: %s\n", s.message().c_str());
    return 1;
  }
  Serve();
  if (opt_.team) unlink(ws_.Socket().c_str());
  // Only remove the address if it is still ours.
  auto cur = ReadFile(ws_.ServerInfo());
  if (cur.ok() && cur->find("\"pid\":" + std::to_string(getpid())) != std::string::npos)
    unlink(ws_.ServerInfo().c_str());
  return 0;
}

// One server per workspace: the lock is held for the process's lifetime. False (said) when
// another server holds it.
bool Server::TakeLock() {
  lock_fd_ = open(ws_.ServerLock().c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  // A server that was asked to stop removes its address first and may hold the lock a while
  // longer, closing its databases: wait for that one (not for a server that is running).
  auto stopping = [&] {
    auto info = ReadFile(ws_.ServerInfo());
    json j = info.ok() ? json::parse(*info, nullptr, false) : json();
    long long pid = j.is_object() ? j.value("pid", 0LL) : 0;
    return !compute::IsAliveWithMarker(static_cast<pid_t>(pid), "server");
  };
  bool locked = lock_fd_ >= 0 && flock(lock_fd_, LOCK_EX | LOCK_NB) == 0;
  for (int i = 0; !locked && lock_fd_ >= 0 && i < 200 && stopping(); ++i) {
    usleep(50000);
    locked = flock(lock_fd_, LOCK_EX | LOCK_NB) == 0;
  }
  if (!locked) {
    fprintf(stderr, "cairn server: another server is already running for workspace %s\n",
            opt_.home.c_str());
    return false;
  }
  return true;
}

// Roles, tokens and the audit log. A team server's first Owner is whoever started it (root, and
// the administrator who ran it through sudo).
Status Server::OpenAccess() {
  auto a = store::AccessStore::Open(ws_.AccessDb());
  if (!a.ok()) return a.status();
  access_ = std::move(a).value();
  if (!opt_.team || access_->HasAssignments()) return Status::Ok();
  std::string first = UserName();
  if (const char* sudo = getenv("SUDO_USER"); sudo && *sudo && getuid() == 0) first = sudo;
  auto made = access_->Assign(first, "user", store::Role::kOwner, "cairn server --team");
  if (!made.ok()) return made.status();
  fprintf(stderr, "%s cairn server: %s is this workspace's first Owner\n",
          IsoTime(NowMillis()).c_str(), first.c_str());
  return access_->Audit({0, 0, first, "server", "", "role.assign", first, "Owner (first)"});
}

// Limits, TLS, and the refusal to listen beyond loopback without it. An exit code, 0 when all is
// set.
int Server::ConfigureHttp() {
  // JSON requests: 64 MiB at most (routes that take more say so).
  svr_.set_max_body(size_t{64} << 20);
  svr_.set_timeout_seconds(60);
  // Connections that have shown no credential yet: 64 from one address at most (a browser opens
  // 6, a CLI call 1, and each proves itself on its first request to /api); the 65th closes the
  // oldest.
  svr_.set_max_unproven_per_address(64);
  if (opt_.tls_cert.empty() != opt_.tls_key.empty()) {
    fprintf(stderr, "cairn server: --tls-cert and --tls-key go together\n");
    return 2;
  }
  if (!opt_.tls_cert.empty()) {
    if (Status s = svr_.set_tls(opt_.tls_cert, opt_.tls_key); !s.ok()) {
      fprintf(stderr, "cairn server: %s\n", s.message().c_str());
      return 2;
    }
  }
  // Whoever reaches the server can run commands as its user: beyond this machine only with TLS.
  if (!IsLoopbackHost(opt_.host) && !svr_.tls()) {
    fprintf(stderr,
            "cairn server: refusing to listen on %s without TLS: anyone who can reach it could "
            "read the token "
            "off the wire (give --tls-cert and --tls-key, or listen on 127.0.0.1)\n",
            opt_.host.c_str());
    return 2;
  }
  return 0;
}

// Listens: the previous port first (jobs that outlived the last server log to it), and with TLS a
// plain loopback listener beside it. Sets url_ and local_port_; false (said) when it cannot.
bool Server::Bind() {
  // The port this machine's clients and jobs use: the previous one first, since jobs that
  // outlived the last server log to it. Another process may have taken it meanwhile (then a new
  // port; supervisors find the server through server.json).
  auto bind_local = [&](const std::function<bool(int)>& try_port, const std::function<int()>& any) {
    auto last = ReadFile(ws_.ServerPort(), 16);
    int previous = last.ok() ? atoi(last->c_str()) : 0;
    int got = -1;
    if (previous > 0 && previous < 65536) {
      for (int i = 0; i < 4 && got < 0; ++i) {
        if (try_port(previous))
          got = previous;
        else
          usleep(50000);  // the old socket may be closing still
      }
      if (got < 0)
        fprintf(stderr, "cairn server: port %d (the last server's) is taken; choosing another\n",
                previous);
    }
    if (got < 0) got = any();
    if (got > 0) (void)WriteFileAtomic(ws_.ServerPort(), std::to_string(got) + "\n", 0600);
    return got;
  };
  int port = -1, local_port = -1;  // the listener's, and this machine's (the same without TLS)
  if (svr_.tls()) {
    port = opt_.port > 0 ? (svr_.bind_to_port(opt_.host, opt_.port) ? opt_.port : -1)
                         : svr_.bind_to_any_port(opt_.host);
    if (port > 0)
      local_port = bind_local([&](int p) { return svr_.add_plain_loopback_listener(p) == p; },
                              [&] { return svr_.add_plain_loopback_listener(0); });
  } else if (opt_.port > 0) {
    port = local_port = svr_.bind_to_port(opt_.host, opt_.port) ? opt_.port : -1;
  } else {
    port = local_port = bind_local([&](int p) { return svr_.bind_to_port(opt_.host, p); },
                                   [&] { return svr_.bind_to_any_port(opt_.host); });
  }
  if (port <= 0 || local_port <= 0) {
    fprintf(stderr, "cairn server: cannot listen on %s:%d\n", opt_.host.c_str(), opt_.port);
    return false;
  }
  std::string host =
      svr_.tls() || opt_.host == "0.0.0.0" || opt_.host == "::" ? "127.0.0.1" : opt_.host;
  url_ = "http://" + host + ":" + std::to_string(local_port);
  if (svr_.tls()) tls_url_ = "https://" + opt_.host + ":" + std::to_string(port);
  local_port_ = local_port;
  if (opt_.team) {
    if (Status s = svr_.add_unix_listener(ws_.Socket(), 0666); !s.ok()) {
      fprintf(stderr, "cairn server: %s\n", s.message().c_str());
      return false;
    }
  }

  return true;
}

// What the scheduler needs: the workspace, the server's address, slots and limits from the
// settings, the tracking store's hooks, this machine's GPUs.
Result<scheduler::SchedulerConfig> Server::MakeSchedulerConfig() {
  scheduler::SchedulerConfig cfg;
  cfg.workspace = opt_.home;
  cfg.server_url = url_;
  cfg.self_exe = Dirname(compute::SelfExe()) + "/cairn";  // supervisors are `cairn supervise`
  cfg.local_slots = opt_.local_slots;
  cfg.secret = token_;
  cfg.run_as_submitter = opt_.team;
  if (settings::Get("CAIRN_LOCAL_SLOTS"))
    cfg.local_slots = static_cast<int>(settings::Integer("CAIRN_LOCAL_SLOTS"));
  cfg.max_log_bytes = settings::Integer("CAIRN_MAX_LOG_BYTES");
  cfg.kill_grace_ms = settings::Integer("CAIRN_KILL_GRACE_MS");
  cfg.quotas = [a = access_.get()](const std::string& compute) {
    std::map<std::string, scheduler::Quota> out;
    for (const auto& q : a->Quotas(compute)) out[q.assignee] = {q.gpus, q.slots, q.jobs};
    return out;
  };
  cfg.fair_share_half_life_s =
      3600.0 *
      static_cast<double>(std::max(1LL, settings::Integer("CAIRN_FAIR_SHARE_HALF_LIFE_HOURS")));
  cfg.system_metrics_seconds = std::max(0LL, settings::Integer("CAIRN_SYSTEM_METRICS_SECONDS"));
  auto tracking = tracking::TrackingStore::Open(opt_.home + "/tracking.db");
  if (!tracking.ok()) return tracking.status();
  tracking_ = std::move(tracking).value();
  cfg.on_final = [t = tracking_.get()](const std::string& job, const std::string& status,
                                       long long at) {
    t->FinishRunAsync(job,
                      status == "Completed" ? "FINISHED"
                      : status == "Failed"  ? "FAILED"
                                            : "KILLED",
                      at);
  };
  cfg.python_helper_dir = PythonHelperDir();
  if (auto conf = settings::Get("CAIRN_SLURM_CONF")) cfg.slurm_conf = *conf;
  // This machine's GPUs, once: NVML, nvidia-smi, or CAIRN_GPUS.
  auto gpus = compute::DiscoverGpus();
  if (!gpus.ok()) return gpus.status();
  cfg.gpus = gpus->gpus;
  gpu_source_ = gpus->source;
  gpu_note_ = gpus->note;
  // A sweep trial's run: a child of the sweep's (mlflow.parentRunId), its hyperparameters as
  // params.
  cfg.on_trial = [t = tracking_.get()](const std::string& trial, const std::string& sweep,
                                       const std::string& experiment_id,
                                       const json& params) -> Status {
    std::vector<tracking::KeyValue> tags = {{"mlflow.parentRunId", sweep},
                                            {"mlflow.user", UserName()},
                                            {"mlflow.source.type", "JOB"},
                                            {"mlflow.source.name", "cairn"}};
    std::vector<tracking::KeyValue> kv;
    for (const auto& [k, v] : params.items())
      if (tracking::KeyError(k).empty())
        kv.push_back({k, v.is_string() ? v.get<std::string>() : v.dump()});
    auto run = t->CreateRun(experiment_id.empty() ? "0" : experiment_id, trial, trial, UserName(),
                            NowMillis(), tags, kv,
                            /*job_run=*/true);
    return run.ok() ? Status::Ok() : run.status();
  };
  cfg.metric_history = [t = tracking_.get()](const std::string& run, const std::string& key) {
    std::vector<double> out;
    if (auto h = t->GetHistory(run, key); h.ok())
      for (const auto& p : *h) out.push_back(p.value);
    return out;
  };
  return cfg;
}

// server.json: where this server is, for the CLI and the supervisors.
Status Server::Announce() {
  json info = {{"url", url_},
               {"port", local_port_},
               {"host", opt_.host},
               {"pid", getpid()},
               {"started_at", IsoTime(NowMillis())}};
  if (!tls_url_.empty()) info["tls_url"] = tls_url_;
  if (opt_.team) info["socket"] = ws_.Socket();
  if (oidc_) info["oidc_issuer"] = oidc_->config().issuer;
  if (Status s = WriteFileAtomic(ws_.ServerInfo(), info.dump(), 0600); !s.ok()) return s;
  fprintf(stderr, "%s cairn server %d listening on %s%s (workspace %s, %d local slots)\n",
          IsoTime(NowMillis()).c_str(), getpid(), url_.c_str(),
          tls_url_.empty() ? "" : (" and " + tls_url_ + " (TLS)").c_str(), opt_.home.c_str(),
          sched_->local_slots());

  return Status::Ok();
}

// Serves until a signal or a shutdown request: the signal watcher, the heap janitor and the image
// rechecker beside the HTTP loop; then stops the scheduler.
void Server::Serve() {
  // Signals end the server through a watcher thread. SIGCHLD keeps its default: the scheduler
  // reaps the supervisors it started, and the commands the server runs (podman, sbatch) report
  // their exit status (ignoring SIGCHLD made every one of them look successful).
  signal(SIGPIPE, SIG_IGN);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::thread([this, set] {
    int sig = 0;
    sigwait(&set, &sig);
    svr_.stop();
  }).detach();

  // Answers of megabytes (histories, searches) leave freed heap behind that glibc keeps (the trim
  // threshold is raised in main so busy periods reuse it): hand it back once requests have
  // stopped for a second.
  std::atomic<bool> done{false};
  std::thread janitor([this, &done] {
    unsigned long long seen = svr_.requests();
    bool trimmed = true;
    while (!done) {
      usleep(250000);
      unsigned long long now = svr_.requests();
      if (now != seen) {
        seen = now;
        trimmed = false;
      } else if (!trimmed) {
        malloc_trim(0);
        trimmed = true;
      }
    }
  });
  // Images remembered as absent are looked for again here, once their TTL has passed, never on a
  // job's path. Detached at shutdown (a pull may take its full minute): it holds only what it
  // owns.
  auto stop_rechecks = std::make_shared<std::atomic<bool>>(false);
  std::thread rechecker([home = opt_.home, stop_rechecks] {
    auto& done = *stop_rechecks;
    int64_t next = 0;
    while (!done) {
      usleep(250000);
      int64_t now = NowMillis();
      if (now < next) continue;
      next = now + 5000;
      std::string runtime = compute::ContainerRuntime();
      if (runtime.empty()) continue;
      for (const auto& a : compute::RememberedAbsences(home)) {
        if (done) break;
        if (a.runtime != runtime || now - a.checked_ms < compute::ImageRecheckMs()) continue;
        auto c = compute::CheckImageNow(home, runtime, a.image);
        fprintf(stderr, "%s image %s %s\n", IsoTime(NowMillis()).c_str(), a.image.c_str(),
                c.available
                    ? (c.pulled ? "pulled: jobs now run in it" : "is now local: jobs now run in it")
                    : ("is still not available (" + c.reason + ")").c_str());
      }
    }
  });
  svr_.listen_after_bind();
  done = true;
  janitor.join();
  *stop_rechecks = true;
  rechecker.detach();
  sched_->Stop();
}

store::JobStore& Server::Reader() {
  thread_local std::unique_ptr<store::JobStore> reader;
  thread_local std::string path;
  if (!reader || path != ws_.Database()) {
    auto r = store::JobStore::OpenReader(ws_.Database());
    if (!r.ok()) {
      fprintf(stderr, "cairn server: %s\n", r.status().message().c_str());
      abort();
    }
    reader = std::move(r).value();
    path = ws_.Database();
  }
  return *reader;
}

// Public: proves, without sending it, that this server holds the workspace's token (and a
// running job's supervisor credential, with ?job=), for the port the caller dialled (util.h,
// IdentityProof).
void Server::ProveIdentity(const http::Request& req, http::Response& res) {
  std::string nonce = req.get_param_value("nonce");
  if (nonce.size() < 16 || nonce.size() > 128 ||
      nonce.find_first_not_of("0123456789abcdef") != std::string::npos)
    return SendError(res, InvalidArgument("nonce: expected 16 to 128 lower-case hex digits"));
  std::string port = PortOfUrl(url_);
  json out = {{"proof", IdentityProof(token_, nonce, port)}};
  if (std::string name = req.get_param_value("job"); !name.empty() && IsValidName(name)) {
    // Proof of who answers, not leave to report: a finished job's credential is refused
    // after it.
    auto job = Reader().GetBrief(name);
    if (job.ok())
      out["job_proof"] =
          IdentityProof(scheduler::SupervisorCredential(token_, job->token), nonce, port);
  }
  SendJson(res, out);
}

void Server::Health(const http::Request&, http::Response& res) {
  SendJson(res, {{"status", "ok"},
                 {"pid", getpid()},
                 {"workspace", opt_.home},
                 {"url", url_},
                 {"local_slots", sched_->local_slots()}});
}

void Server::Shutdown(const http::Request&, http::Response& res) {
  SendJson(res, {{"status", "stopping"}});
  std::thread([this] { svr_.stop(); }).detach();
}

// The route table: every route, who may call it (access.h), its handler, and its body limit (0:
// the server's default of 64 MiB). docs/rest-api.md lists the same rows, checked by
// route_table_test. The MLflow API's rows are mlflow_api.cc's, the assets' assets_api.cc's.
const Server::Route Server::kRoutes[] = {
    {"GET", Access::kPublic, "/api/v1/identify", &Server::ProveIdentity},
    {"GET", Access::kRead, "/api/v1/health", &Server::Health},
    {"GET", Access::kRead, "/api/v1/images", &Server::ListImages},
    {"POST", Access::kWrite, "/api/v1/images/check", &Server::CheckImages},
    {"POST", Access::kOwner, "/api/v1/shutdown", &Server::Shutdown},
    {"POST", Access::kWrite, "/api/v1/blobs/missing", &Server::MissingBlobs},
    {"PUT", Access::kWrite, R"(/api/v1/blobs/([0-9a-f]{64}))", &Server::PutBlob, size_t{4} << 30},
    {"POST", Access::kWrite, "/api/v1/snapshots", &Server::CreateSnapshot},
    {"POST", Access::kWrite, "/api/v1/jobs", &Server::CreateJob},
    {"POST", Access::kWrite, R"(/api/v1/jobs/([^/]+)/rerun)", &Server::RerunJob},
    {"GET", Access::kRead, "/api/v1/jobs", &Server::ListJobs},
    {"GET", Access::kRead, R"(/api/v1/jobs/([^/]+))", &Server::GetJob},
    {"PATCH", Access::kWrite, R"(/api/v1/jobs/([^/]+))", &Server::UpdateJob},
    {"POST", Access::kWrite, R"(/api/v1/jobs/([^/]+)/cancel)", &Server::CancelJob},
    {"POST", Access::kWrite, R"(/api/v1/jobs/([^/]+)/archive)", &Server::ArchiveJob},
    {"POST", Access::kWrite, R"(/api/v1/jobs/([^/]+)/restore)", &Server::RestoreJob},
    {"GET", Access::kPublic, "/", &Server::StudioIndex},
    {"GET", Access::kPublic, R"(/(assets/[A-Za-z0-9._-]+|favicon\.svg))", &Server::StudioAsset},
    {"POST", Access::kRead, "/api/v1/login-codes", &Server::CreateLoginCode},
    {"GET", Access::kPublic, "/login", &Server::SignInWithCode},
    {"GET", Access::kRead, "/api/v1/events", &Server::JobEvents},
    {"GET", Access::kRead, R"(/api/v1/jobs/([^/]+)/logs)", &Server::JobLogs},
    {"GET", Access::kRead, R"(/api/v1/jobs/([^/]+)/metrics)", &Server::JobMetrics},
    {"GET", Access::kRead, R"(/api/v1/jobs/([^/]+)/files)", &Server::ListJobFiles},
    {"GET", Access::kRead, R"(/api/v1/jobs/([^/]+)/files/(.+))", &Server::GetJobFile},
    {"GET", Access::kRead, R"(/api/v1/jobs/([^/]+)/zip)", &Server::ZipJobFiles},
    {"GET", Access::kSupervisor, R"(/api/v1/internal/jobs/([^/]+)/run)", &Server::StageRunFile},
    {"GET", Access::kSupervisor, R"(/api/v1/internal/jobs/([^/]+)/blobs/([0-9a-f]{64}))",
     &Server::StageBlob},
    {"PUT", Access::kSupervisor, R"(/api/v1/internal/jobs/([^/]+)/files/(.+))",
     &Server::StageBackFile, size_t{256} << 20},
    {"POST", Access::kSupervisor, R"(/api/v1/internal/jobs/([^/]+)/events)",
     &Server::SupervisorEvent},
    {"POST", Access::kOwner, "/api/v1/computes", &Server::CreateCompute},
    {"GET", Access::kRead, "/api/v1/computes", &Server::ListComputes},
    {"GET", Access::kRead, R"(/api/v1/computes/([^/]+))", &Server::GetCompute},
    {"GET", Access::kRead, "/api/v1/sizes", &Server::ListSizes},
    {"GET", Access::kRead, R"(/api/v1/computes/([^/]+)/nodes)", &Server::ListNodes},
    {"DELETE", Access::kOwner, R"(/api/v1/computes/([^/]+))", &Server::DeleteCompute},
    {"GET", Access::kRead, R"(/api/v1/computes/([^/]+)/quotas)", &Server::ListQuotas},
    {"PUT", Access::kOwner, R"(/api/v1/computes/([^/]+)/quotas/([^/]+))", &Server::SetQuota},
    {"DELETE", Access::kOwner, R"(/api/v1/computes/([^/]+)/quotas/([^/]+))", &Server::DeleteQuota},
    {"GET", Access::kPerson, "/api/v1/whoami", &Server::WhoAmI},
    {"GET", Access::kRead, "/api/v1/role-assignments", &Server::ListRoleAssignments},
    {"POST", Access::kOwner, "/api/v1/role-assignments", &Server::CreateRoleAssignment},
    {"DELETE", Access::kOwner, "/api/v1/role-assignments", &Server::DeleteRoleAssignments},
    {"GET", Access::kPerson, "/api/v1/tokens", &Server::ListTokens},
    {"POST", Access::kPerson, "/api/v1/tokens", &Server::CreateToken},
    {"DELETE", Access::kPerson, R"(/api/v1/tokens/([^/]+))", &Server::RevokeToken},
    {"GET", Access::kOwner, "/api/v1/audit", &Server::ListAudit},
    {"GET", Access::kPublic, "/api/v1/sign-in", &Server::SignInOptions},
    {"GET", Access::kPublic, "/oidc/login", &Server::OidcLogin},
    {"GET", Access::kPublic, "/oidc/callback", &Server::OidcCallback},
};

void Server::Routes() {
  svr_.set_pre_routing_handler(
      [this](http::Request& req, http::Response& res) { return PreRoute(req, res); });
  svr_.set_exception_handler([](const http::Request&, http::Response& res, std::exception_ptr ep) {
    std::string what = "internal error";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    SendError(res, Internal(what));
  });

  mlflow_.store = tracking_.get();
  mlflow_.team = opt_.team;
  mlflow_.workspace = opt_.home;
  mlflow_.user_of = [this](const std::string& run_id) {
    auto run = tracking_->GetRun(run_id);
    return run.ok() ? run->info.user_id : std::string();
  };
  RegisterMlflowRoutes(svr_, mlflow_);
  assets_.sched = sched_.get();
  assets_.reader = [this]() -> store::JobStore& { return Reader(); };
  assets_.workspace = opt_.home;
  assets_.blobs = ws_.Blobs();
  assets_.resolve_runs = [this](const std::string& uri) { return RunsUriToPath(mlflow_, uri); };
  assets_.audit = [this](const http::Request& req, const std::string& action,
                         const std::string& target,
                         const std::string& detail) { Audit(req, action, target, detail); };
  RegisterAssetRoutes(svr_, assets_);

  for (const Route& r : kRoutes)
    svr_.Add(
        r.method, r.path,
        [this, h = r.handler](const http::Request& req, http::Response& res) {
          (this->*h)(req, res);
        },
        r.max_body, static_cast<int>(r.access));
}

std::vector<RouteRow> RouteTable() {
  ServerOptions o;
  o.home = "/nonexistent";
  return Server(o, "").Table();
}

int RunServer(const ServerOptions& options) {
  // One malloc arena per thread would let 32 worker threads hold tens of idle megabytes.
  mallopt(M_ARENA_MAX, 2);
  WorkspacePaths ws{options.home};
  auto token = EnsureWorkspace(ws);
  if (!token.ok()) {
    fprintf(stderr, "cairn server: %s\n", token.status().message().c_str());
    return 1;
  }
  Server s(options, *token);
  return s.Run();
}

}  // namespace cairn::server
