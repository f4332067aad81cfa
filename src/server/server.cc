#include "server/server.h"

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

using nlohmann::json;
namespace fs = std::filesystem;

namespace {

bool SameToken(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

std::string BearerOf(const http::Request& req) {
  std::string h = req.get_header_value("Authorization");
  return StartsWith(h, "Bearer ") ? h.substr(7) : "";
}

// A run-relative path as the CLI names it ("artifacts/user_logs/std_log.txt",
// "named-outputs/<name>/...") as a path beneath the run folder; empty when it names nothing there
// or would leave it.
std::string MapRunPath(const std::string& rel) {
  if (rel.empty() || !Beneath::IsClean(rel)) return "";
  if (StartsWith(rel, "artifacts/") || rel == "artifacts") return rel;
  if (StartsWith(rel, "named-outputs/") && rel.size() > 14) return "outputs/" + rel.substr(14);
  return "";
}

// The files below `dir` (a path beneath the run folder) as {path, size}; links as {path, type:
// "link"}, never followed.
void ListFiles(const Beneath& run, const std::string& dir, const std::string& prefix, json& out) {
  (void)run.Walk(dir, [&](const Beneath::Entry& e) {
    if (e.type == Beneath::Type::kFile)
      out.push_back({{"path", prefix + e.path}, {"size", e.size}});
    else if (e.type == Beneath::Type::kLink)
      out.push_back({{"path", prefix + e.path}, {"type", "link"}});
  });
}

// cairn_mlflow.py, the dependency-free helper: beside the binaries in a build tree, or installed.
// The studio's built files (ui/dist in a build tree, share/cairn/ui when installed; CAIRN_UI_DIR to
// override), or "" when it was not built.
std::string UiDir() {
  if (auto d = settings::Get("CAIRN_UI_DIR"); d && !d->empty()) return *d;
  std::string exe_dir = Dirname(compute::SelfExe());
  for (const auto& d : {exe_dir + "/../ui/dist", exe_dir + "/../share/cairn/ui"})
    if (PathExists(d + "/index.html")) return AbsPath(d);
  return "";
}

std::string ContentTypeOf(const std::string& path) {
  static const std::map<std::string, std::string> kTypes = {
      {".html", "text/html; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".svg", "image/svg+xml"},
      {".png", "image/png"},
      {".ico", "image/x-icon"},
      {".json", "application/json"},
      {".woff2", "font/woff2"},
      {".map", "application/json"}};
  size_t dot = path.rfind('.');
  auto it = dot == std::string::npos ? kTypes.end() : kTypes.find(path.substr(dot));
  return it == kTypes.end() ? "application/octet-stream" : it->second;
}

bool IsLoopbackHost(const std::string& h) {
  return h == "localhost" || h == "::1" || StartsWith(h, "127.");
}

// A positive number of seconds from the settings table; its default otherwise.
long long EnvSeconds(const char* name, long long fallback) {
  long long n = settings::Integer(name);
  return n > 0 ? n : fallback;
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

std::string SessionOf(const http::Request& req) { return CookieOf(req, "cairn_session"); }

std::string PythonHelperDir() {
  std::string exe_dir = Dirname(compute::SelfExe());
  for (const auto& d : {exe_dir + "/../python", exe_dir + "/../share/cairn/python"})
    if (PathExists(d + "/cairn_mlflow.py")) return AbsPath(d);
  return "";
}

class Server {
 public:
  Server(ServerOptions o, std::string token)
      : opt_(std::move(o)), token_(std::move(token)), ws_{opt_.home} {}

  // Every route as the table declares it (registered, never served): for docs/rest-api.md's table
  // and its test.
  std::vector<RouteRow> Table() {
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

  int Run() {
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

 private:
  // One server per workspace: the lock is held for the process's lifetime. False (said) when
  // another server holds it.
  bool TakeLock() {
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
  Status OpenAccess() {
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
  int ConfigureHttp() {
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
  bool Bind() {
    // The port this machine's clients and jobs use: the previous one first, since jobs that
    // outlived the last server log to it. Another process may have taken it meanwhile (then a new
    // port; supervisors find the server through server.json).
    auto bind_local = [&](const std::function<bool(int)>& try_port,
                          const std::function<int()>& any) {
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
  Result<scheduler::SchedulerConfig> MakeSchedulerConfig() {
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
  Status Announce() {
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
  void Serve() {
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
                  c.available ? (c.pulled ? "pulled: jobs now run in it"
                                          : "is now local: jobs now run in it")
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

 private:
  // The folder of a job's named output written to a datastore path (outputs.<name>.path:
  // azureml://datastores/<ds>/paths/<rel>); "" when the output is in the run folder or cannot be
  // found.
  std::string OutputDatastoreFolder(const store::JobRecord& job, const std::string& name) {
    auto parsed = scheduler::ParseDatastoreUri(
        job.spec.value("outputs", json::object()).value(name, json::object()).value("path", ""));
    if (!parsed) return "";
    const auto& [ds, rel] = *parsed;
    if (!rel.empty() && !Beneath::IsClean(rel)) return "";
    std::string folder;
    if (auto d = Reader().GetDatastore(ds); d.ok())
      folder = d->spec.value("path", "");
    else if (scheduler::IsBuiltinDatastore(ds))
      folder = scheduler::BuiltinDatastoreFolder(opt_.home, ds);
    if (folder.empty()) return "";
    return rel.empty() ? folder : folder + "/" + rel;
  }

  store::JobStore& Reader() {
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

  // A sweep's trials, best first by the objective (Cairn's addition to the sweep job object): each
  // with its hyperparameters, its best value of the primary metric, how many times it reported it,
  // and its status.
  json SweepTrials(const store::JobRecord& sweep) {
    const json objective =
        sweep.spec.value("sweep", json::object()).value("objective", json::object());
    const std::string metric = objective.value("primary_metric", "");
    const bool maximize = objective.value("goal", "maximize") == "maximize";
    store::JobFilter f;
    f.parent = sweep.name;
    f.max_results = 0;
    std::vector<json> rows;
    for (const auto& t : Reader().List(f)) {
      json row = {{"name", t.name},
                  {"status", t.status},
                  {"hyperparameters", t.spec.value("hyperparameters", json::object())},
                  {"reports", 0}};
      if (t.status == "Canceled") row["status_reason"] = t.status_reason;
      if (auto h = tracking_->GetHistory(t.name, metric); h.ok() && !h->empty()) {
        std::optional<double> best;
        for (const auto& p : *h)
          if (!std::isnan(p.value) && (!best || (maximize ? p.value > *best : p.value < *best)))
            best = p.value;
        if (best) row[metric] = *best;
        row["reports"] = h->size();
      }
      rows.push_back(row);
    }
    // Ties go to the earlier trial, as the controller picks the best.
    auto number = [&](const json& r) {
      return atoll(r["name"].get<std::string>().c_str() + sweep.name.size() + 1);
    };
    std::sort(rows.begin(), rows.end(), [&](const json& a, const json& b) {
      bool ha = a.contains(metric), hb = b.contains(metric);
      if (ha != hb) return ha;
      if (ha && a[metric] != b[metric])
        return maximize ? a[metric].get<double>() > b[metric].get<double>()
                        : a[metric].get<double>() < b[metric].get<double>();
      return number(a) < number(b);
    });
    return rows;
  }

  // A pipeline's steps in the order they run: each step's latest job, its status, duration and
  // reuse, and its attempts (Cairn's addition to the pipeline job object).
  json PipelineSteps(const store::JobRecord& p) {
    store::JobFilter f;
    f.parent = p.name;
    f.max_results = 0;
    std::map<std::string, std::vector<store::JobRecord>> by_step;
    for (auto& c : Reader().List(f))
      by_step[c.spec.value("pipeline_step", "")].push_back(std::move(c));
    json rows = json::array();
    const json steps = p.spec.value("pipeline", json::object()).value("steps", json::array());
    for (const auto& step : steps) {
      const std::string sname = step.value("name", "");
      json row = {
          {"step", sname}, {"status", "NotStarted"}, {"after", step.value("after", json::array())}};
      auto it = by_step.find(sname);
      if (it == by_step.end() || it->second.empty()) {
        row["status_reason"] =
            store::IsTerminalStatus(p.status) ? "not run" : "waiting for the steps it reads from";
        rows.push_back(row);
        continue;
      }
      auto& attempts = it->second;
      std::sort(attempts.begin(), attempts.end(),
                [](const store::JobRecord& a, const store::JobRecord& b) {
                  return a.spec.value("attempt", 1) < b.spec.value("attempt", 1);
                });
      const store::JobRecord& c = attempts.back();
      row["job"] = c.name;
      row["status"] = c.status;
      row["status_reason"] = c.status_reason;
      if (c.start_time) row["start_time"] = IsoTime(*c.start_time);
      if (c.start_time && c.end_time)
        row["duration_seconds"] = static_cast<double>(*c.end_time - *c.start_time) / 1000.0;
      if (std::string r = c.properties.value("reused_from", ""); !r.empty()) row["reused_from"] = r;
      if (std::string w = c.spec.value("properties", json::object()).value("why_not_reused", "");
          !w.empty())
        row["why_not_reused"] = w;
      json tries = json::array();
      for (const auto& a : attempts)
        tries.push_back(
            {{"job", a.name}, {"status", a.status}, {"attempt", a.spec.value("attempt", 1)}});
      row["attempts"] = tries;
      rows.push_back(row);
    }
    return rows;
  }

  // Whose files a job's file routes read: a reused step's are its original's; a pipeline's named
  // outputs are the outputs of the steps bound to them. Rewrites `path` (named-outputs/<name>/...)
  // to match.
  store::JobRecord FilesOf(const store::JobRecord& job, std::string* path = nullptr) {
    if (std::string from = job.properties.value("reused_from", ""); !from.empty())
      if (auto orig = Reader().Get(from); orig.ok()) return *orig;
    if (job.type != "pipeline" || !path || !StartsWith(*path, "named-outputs/")) return job;
    std::string rest = path->substr(14);
    std::string out = rest.substr(0, rest.find('/'));
    const json outs = job.spec.value("pipeline", json::object()).value("outputs", json::object());
    if (!outs.contains(out)) return job;
    const std::string step = outs[out].value("step", ""), step_out = outs[out].value("output", "");
    for (const auto& row : PipelineSteps(job)) {
      if (row.value("step", "") != step || row.value("status", "") != "Completed") continue;
      auto c = Reader().Get(row.value("job", ""));
      if (!c.ok()) break;
      store::JobRecord owner = FilesOf(*c);
      if (owner.type == "sweep")
        if (auto best = Reader().Get(owner.properties.value("best_child_run_id", "")); best.ok())
          owner = *best;
      *path = "named-outputs/" + step_out + rest.substr(out.size());
      return owner;
    }
    return job;
  }

  // A job's files as the files route lists them: {path, size} under artifacts/ and
  // named-outputs/<name>/ (a datastore output from its folder, a reused step's from its original, a
  // pipeline's outputs from the steps bound to them).
  json JobFiles(const store::JobRecord& given) {
    json files = json::array();
    if (given.type == "pipeline") {
      if (auto run = Beneath::Open(compute::RunLayout::For(opt_.home, given.name).root); run.ok())
        ListFiles(*run, "artifacts", "artifacts/", files);
      const json outs =
          given.spec.value("pipeline", json::object()).value("outputs", json::object());
      for (const auto& [out, _] : outs.items()) {
        std::string path = "named-outputs/" + out + "/";
        store::JobRecord owner = FilesOf(given, &path);
        if (owner.name == given.name) continue;
        std::string step_out = path.substr(14, path.find('/', 14) - 14);
        std::string folder = OutputDatastoreFolder(owner, step_out);
        auto root = Beneath::Open(
            folder.empty() ? compute::RunLayout::For(opt_.home, owner.name).root : folder);
        if (root.ok())
          ListFiles(*root, folder.empty() ? "outputs/" + step_out : "",
                    "named-outputs/" + out + "/", files);
      }
      return files;
    }
    store::JobRecord job = FilesOf(given);
    compute::RunLayout layout = compute::RunLayout::For(opt_.home, job.name);
    if (auto run = Beneath::Open(layout.root); run.ok()) {
      ListFiles(*run, "artifacts", "artifacts/", files);
      const json outputs = job.spec.value("outputs", json::object());
      for (const auto& [name, _] : outputs.items()) {
        if (!Beneath::IsClean(name) || name.find('/') != std::string::npos) continue;
        std::string folder = OutputDatastoreFolder(job, name);
        if (folder.empty()) {
          ListFiles(*run, "outputs/" + name, "named-outputs/" + name + "/", files);
        } else if (auto ds = Beneath::Open(folder); ds.ok()) {
          ListFiles(*ds, "", "named-outputs/" + name + "/", files);
        }
      }
    }
    return files;
  }

  // One file of that listing, opened beneath its root without following links.
  Result<int> OpenJobFile(const store::JobRecord& given, const std::string& path) {
    std::string asked = path;
    store::JobRecord job = FilesOf(given, &asked);
    std::string rel = MapRunPath(asked);
    std::string root = compute::RunLayout::For(opt_.home, job.name).root;
    if (StartsWith(rel, "outputs/")) {
      // outputs/<name>/<file>: from the datastore folder when the job wrote that output there.
      std::string name = rel.substr(
          8, rel.find('/', 8) == std::string::npos ? std::string::npos : rel.find('/', 8) - 8);
      std::string folder = OutputDatastoreFolder(job, name);
      if (!folder.empty()) {
        root = folder;
        rel = rel.size() > 8 + name.size() + 1 ? rel.substr(8 + name.size() + 1) : "";
      }
    }
    auto run = Beneath::Open(root);
    auto fd = rel.empty() || !run.ok() ? Result<int>(NotFound("")) : run->OpenRead(rel);
    if (!fd.ok()) return NotFound("job '" + given.name + "' has no file " + path);
    return fd;
  }

  // Submits a job: {spec, source_yaml?, snapshot?, input_snapshots?, dry_run?}. Its MLflow run is
  // made first (its id is the job's name) and erased again if the scheduler refuses the job.
  void SubmitJob(const http::Request& req, json body, http::Response& res) {
    const Caller& who = CallerOf(req);
    const std::string user = who.name.empty() ? UserName() : who.name;
    if (!body.is_object() || !body.contains("spec"))
      return SendError(res, InvalidArgument("expected {\"spec\": {...}}"));
    scheduler::SubmitRequest r;
    r.spec = body["spec"];
    r.source_yaml = body.value("source_yaml", "");
    r.snapshot = body.value("snapshot", "");
    r.dry_run = body.value("dry_run", false);
    r.created_by = user;
    if (body.contains("input_snapshots") && body["input_snapshots"].is_object())
      for (const auto& [k, v] : body["input_snapshots"].items())
        r.input_manifests[k] = v.get<std::string>();
    // The job's MLflow run exists before the job can start (its id is the job's name).
    std::string run_id;
    if (!r.dry_run) {
      std::string name = r.spec.value("name", "");
      if (name.empty()) {
        do name = GenerateJobName();
        while (Reader().Get(name).ok());
        r.spec["name"] = name;
      }
      if (IsValidName(name) && !Reader().Get(name).ok()) {
        std::string exp_name = r.spec.value("experiment_name", "");
        auto exp = tracking_->EnsureExperiment(exp_name.empty() ? "Default" : exp_name);
        if (!exp.ok()) return SendError(res, exp.status());
        std::vector<tracking::KeyValue> tags = {
            {"mlflow.user", user}, {"mlflow.source.type", "JOB"}, {"mlflow.source.name", "cairn"}};
        if (r.spec.contains("tags") && r.spec["tags"].is_object())
          for (const auto& [k, v] : r.spec["tags"].items())
            if (v.is_string() && tracking::KeyError(k).empty() && k != "mlflow.user")
              tags.push_back({k, v});
        std::string display = r.spec.value("display_name", "");
        auto run = tracking_->CreateRun(*exp, name, display.empty() ? name : display, user,
                                        NowMillis(), tags, {},
                                        /*job_run=*/true);
        if (run.ok()) {
          run_id = name;
          r.mlflow_experiment_id = *exp;
        } else if (run.status().code() != Code::kAlreadyExists) {
          return SendError(res, run.status());
        }
      }
    }
    auto job = sched_->Submit(std::move(r));
    if (!job.ok()) {
      if (!run_id.empty()) (void)tracking_->EraseRun(run_id);  // nothing half-written
      return SendError(res, job.status());
    }
    if (body.value("dry_run", false)) return SendJson(res, JobView(*job, {}, url_));
    Audit(req, "job.submit", job->name, job->type);
    SendJson(res, View(*job), 201);
  }

  // The submit body for a job's YAML as edited: parsed here (local paths are not checked: they are
  // the user's machine's), its code and local inputs taken from what the original uploaded.
  Result<json> RerunBody(const store::JobRecord& orig, const std::string& yaml,
                         const std::string& name) {
    spec::ParseOptions opt;
    opt.check_local_paths = false;
    opt.name = name;
    spec::Diagnostics d;
    auto parsed = spec::ParseJobText(yaml, "the edited YAML", "/", opt, d);
    if (!parsed) return InvalidArgument(Trim(d.ToString()));
    spec::JobSpec sp = *parsed;
    json body = {{"source_yaml", yaml}, {"input_snapshots", json::object()}};
    const json orig_inputs = orig.spec.value("input_snapshots", json::object());
    if (!sp.code.empty()) {
      if (orig.snapshot.empty())
        return InvalidArgument(
            "code: the original job had no code; a local folder cannot be read by the workspace");
      body["snapshot"] = orig.snapshot;
      sp.code.clear();
    } else if (!sp.code_snapshot.empty()) {
      body["snapshot"] = sp.code_snapshot;
    }
    for (auto& [in_name, in] : sp.inputs) {
      if (in.literal || in.path_kind != spec::PathKind::kLocal || in.mode == "direct") continue;
      if (!orig_inputs.contains(in_name))
        return InvalidArgument("inputs." + in_name + ": a local path (" + in.path +
                               ") cannot be read by the workspace; "
                               "keep the original's input, or use a datastore, an asset or a URL");
      body["input_snapshots"][in_name] = orig_inputs[in_name];
    }
    json spec_json = spec::ToJson(sp);
    if (sp.type == "pipeline") {
      // Each step takes the original step's uploads (by step name), as it would have from the CLI.
      std::map<std::string, json> before;
      for (const auto& st :
           orig.spec.value("pipeline", json::object()).value("steps", json::array()))
        before[st.value("name", "")] = st;
      for (auto& st : spec_json["pipeline"]["steps"]) {
        const std::string sname = st.value("name", "");
        const json& old = before.count(sname) ? before[sname] : json::object();
        json& ssp = st["spec"];
        if (!ssp.value("code", "").empty()) {
          if (old.value("snapshot", "").empty())
            return InvalidArgument("jobs." + sname +
                                   ".code: a local folder cannot be read by the workspace");
          st["snapshot"] = old["snapshot"];
          ssp["code"] = "";
        } else if (!ssp.value("code_snapshot", "").empty()) {
          st["snapshot"] = ssp["code_snapshot"];
        }
        json step_inputs = json::object();
        const json old_inputs = old.value("input_snapshots", json::object());
        const json step_inputs_now = ssp.value("inputs", json::object());
        for (const auto& [in_name, in] : step_inputs_now.items()) {
          if (in.value("literal", false) || in.value("path_kind", "") != "local" ||
              in.value("mode", "") == "direct")
            continue;
          if (!old_inputs.contains(in_name))
            return InvalidArgument("jobs." + sname + ".inputs." + in_name +
                                   ": a local path cannot be read by the workspace");
          step_inputs[in_name] = old_inputs[in_name];
        }
        st["input_snapshots"] = step_inputs;
      }
    }
    body["spec"] = spec_json;
    return body;
  }

  json View(const store::JobRecord& j) {
    json v = JobView(j, Reader().History(j.name), url_);
    if (j.status == "Queued") {
      std::string live = sched_->LiveQueueReason(j.name);
      if (!live.empty()) v["status_reason"] = live;
    }
    AddGpuView(j, v);
    return v;
  }

  // The GPUs a job holds ("gpus": "0,1 (NVIDIA H200)"), what it asked for, and a note when it asked
  // for none on a machine that has some, or named a shape nobody knows.
  void AddGpuView(const store::JobRecord& j, json& v) {
    if (j.type == "sweep") return;
    std::vector<std::string> ids, names;
    for (const auto& instance : j.gpus)
      for (const auto& g : instance) {
        if (!g.is_number_integer()) continue;
        int idx = g.get<int>();
        ids.push_back(std::to_string(idx));
        for (const auto& known : sched_->gpus())
          if (known.index == idx &&
              std::find(names.begin(), names.end(), known.name) == names.end())
            names.push_back(known.name);
      }
    if (!ids.empty())
      v["gpus"] = Join(ids, ",") + (names.empty() ? "" : " (" + Join(names, ", ") + ")");
    auto c = j.compute == "local" ? Result<store::ComputeRecord>(NotFound(""))
                                  : Reader().GetCompute(j.compute);
    if (j.compute != "local" &&
        (!c.ok() || scheduler::SlurmTargetOf(c->spec, sched_->config().slurm_conf)))
      return;
    scheduler::GpuRequest req =
        scheduler::Scheduler::RequestOf(j.spec, c.ok() ? &c->spec : nullptr);
    if (req.per_instance > 0)
      v["gpus_requested"] = {{"per_instance", req.per_instance},
                             {"instances", req.instances},
                             {"shape", req.shape},
                             {"from", req.from}};
    // A process count left out is one process per GPU of a GPU size, as the job runs (and so its
    // logs).
    if (req.per_instance > 1 && v.contains("distribution") && v["distribution"].is_object()) {
      json& d = v["distribution"];
      std::string type = d.value("type", "");
      if ((type == "pytorch" || type == "mpi") && !d.contains("process_count_per_instance")) {
        d["process_count_per_instance"] = req.per_instance;
        v["log_files"] = LogFiles(compute::PlanFor(d, req.instances), j.name, url_);
      }
    }
    json notes = v.value("notes", json::array());
    if (!req.note.empty())
      notes.push_back(req.note);
    else if (req.per_instance == 0 && !sched_->gpus().empty())
      notes.push_back(
          "the job asked for no GPU, so its processes see none (CUDA_VISIBLE_DEVICES is empty); "
          "name a "
          "GPU size in resources.instance_type to get some");
    if (!notes.empty()) v["notes"] = notes;
  }

  // Whether the Host a request names is this server: a loopback name (any port) when it listens on
  // loopback, which a page on another name that resolves here (DNS rebinding) does not send; beyond
  // loopback (TLS), the names people use for the machine are not known, and a rebound page has no
  // cookie.
  bool HostAllowed(const std::string& host_header) const {
    if (opt_.host != "127.0.0.1" && opt_.host != "localhost" && opt_.host != "::1") return true;
    if (host_header.empty()) return true;  // not a browser's (every browser sends one)
    std::string host = host_header;
    if (StartsWith(host, "["))
      host = host.substr(1, host.find(']') == std::string::npos ? 0 : host.find(']') - 1);
    else
      host = host.substr(0, host.find(':'));
    return host == "127.0.0.1" || host == "localhost" || host == "::1";
  }

  // Why a studio request (a session cookie) that changes something is refused, "" when it may go
  // on: it must carry X-Cairn-Studio (a header no form can send, and no other origin's script
  // without a CORS preflight this server never grants), and the browser's own Origin and
  // Sec-Fetch-Site must say the page is this server's.
  static std::string CrossSiteReason(const http::Request& req) {
    if (req.method == "GET" || req.method == "HEAD") return "";
    std::string site = req.get_header_value("Sec-Fetch-Site");
    if (!site.empty() && site != "same-origin")
      return "refused: a studio request from another site or origin (Sec-Fetch-Site: " +
             site.substr(0, 40) + ")";
    std::string origin = req.get_header_value("Origin");
    if (!origin.empty()) {
      std::string bare =
          origin.substr(origin.find("://") == std::string::npos ? 0 : origin.find("://") + 3);
      if (bare != req.get_header_value("Host"))
        return "refused: a studio request from another origin (" + origin.substr(0, 200) + ")";
    }
    if (req.get_header_value("X-Cairn-Studio") != "1")
      return "refused: a studio request that changes something must come from the studio "
             "(X-Cairn-Studio header)";
    return "";
  }

  static bool HasBody(const http::Request& req) {
    if (req.has_header("Transfer-Encoding")) return true;
    std::string length = req.get_header_value("Content-Length");
    return !length.empty() && length != "0";
  }

  // On every answer: no framing by other pages, no guessing of types, scripts and styles only from
  // here.
  static void AddSecurityHeaders(http::Response& res) {
    res.set_header("X-Frame-Options", "DENY");
    res.set_header("X-Content-Type-Options", "nosniff");
    res.set_header("Referrer-Policy", "no-referrer");
    res.set_header(
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'");
  }

  // A row of the route table: who may call it (access.h), then the handler.
  void On(const char* method, Access access, const std::string& pattern, http::Handler h,
          size_t max_body = 0) {
    svr_.Add(method, pattern, std::move(h), max_body, static_cast<int>(access));
  }
  void OnReader(const char* method, Access access, const std::string& pattern,
                http::ReaderHandler h, size_t max_body = 0) {
    svr_.AddReader(method, pattern, std::move(h), max_body, static_cast<int>(access));
  }

  // A person's Unix identity (their name and their groups' names), looked up by uid or by name and
  // kept 10 s, so that a request pays no /etc/passwd read.
  struct UnixPerson {
    bool known = false;
    std::string name;
    std::vector<std::string> groups;
    long long at = 0;
  };
  UnixPerson LookUpPerson(const std::string& name, unsigned uid) {
    std::string key = name.empty() ? "#" + std::to_string(uid) : name;
    long long now = NowMillis();
    {
      std::lock_guard<std::mutex> l(people_mu_);
      if (auto it = people_.find(key); it != people_.end() && now - it->second.at < 10000)
        return it->second;
    }
    UnixPerson p;
    p.at = now;
    auto account = name.empty() ? AccountOfUid(uid) : AccountOf(name);
    if (account.ok()) {
      p.known = true;
      p.name = account->name;
      p.groups = account->group_names;
    } else {
      p.name = name.empty() ? "uid " + std::to_string(uid) : name;
    }
    std::lock_guard<std::mutex> l(people_mu_);
    if (people_.size() > 4096) people_.clear();
    people_[key] = p;
    return p;
  }

  // A person as the server names them, with the role they hold now: on a private server its one
  // person is the Owner; on a team server root is, and everyone else holds what is assigned to them
  // or to one of their groups.
  Caller PersonCaller(const std::string& name, unsigned uid, const std::string& via,
                      const std::string& address,
                      const std::vector<std::string>& provider_groups = {}) {
    Caller c;
    c.kind = Caller::Kind::kPerson;
    c.via = via;
    c.address = address;
    if (!opt_.team) {
      c.name = name.empty() ? UserName() : name;
      c.role = store::Role::kOwner;
      return c;
    }
    UnixPerson p = LookUpPerson(name, uid);
    c.name = p.name;
    // Root is an Owner when the kernel or the workspace token says so, never by a name a token or
    // a provider carries.
    if ((via == "socket" && uid == 0) || via == "workspace-token") {
      c.role = store::Role::kOwner;
      return c;
    }
    std::vector<std::string> groups = p.groups;
    groups.insert(groups.end(), provider_groups.begin(), provider_groups.end());
    c.role = access_->RoleOf(p.name, groups);
    return c;
  }

  // Who is calling, from what the request shows (the socket's peer, a bearer token, the studio's
  // session): a nobody when it shows nothing this server knows. `refusal` is set when the request
  // must be answered at once (a studio request from another site).
  Caller Identify(const http::Request& req, Status* refusal) {
    if (req.peer.unix_socket) return PersonCaller("", req.peer.uid, "socket", req.peer.address);
    std::string bearer = BearerOf(req);
    if (!bearer.empty() && SameToken(bearer, token_))
      return PersonCaller(opt_.team ? "root" : "", 0, "workspace-token", req.peer.address);
    if (StartsWith(bearer, "cairn_pat_") && access_) {
      std::string owner = access_->TokenOwner(bearer, NowMillis());
      if (!owner.empty()) return PersonCaller(owner, 0, "access-token", req.peer.address);
      return Caller();
    }
    // The studio: a browser signed in through a one-time link carries a session cookie.
    if (std::string session = SessionOf(req); !session.empty()) {
      std::string person, refresh;
      std::vector<std::string> groups;
      bool stale = false;
      {
        std::lock_guard<std::mutex> l(auth_mu_);
        if (auto it = sessions_.find(session); it != sessions_.end()) {
          long long now = NowMillis();
          if (now - it->second.last_used <= session_idle_ms_ &&
              now - it->second.created <= session_max_age_ms_) {
            it->second.last_used = now;
            person = it->second.person;
            groups = it->second.groups;
            refresh = it->second.refresh_token;
            stale = it->second.oidc && now >= it->second.refresh_at;
          } else {
            sessions_.erase(it);  // expired: idle too long, or past its absolute age
          }
        }
      }
      // A provider's sign-in is asked again now and then: a person disabled there is signed out.
      if (stale && oidc_) {
        auto fresh = oidc_->Refresh(refresh);
        std::lock_guard<std::mutex> l(auth_mu_);
        auto it = sessions_.find(session);
        if (!fresh.ok() || it == sessions_.end()) {
          if (it != sessions_.end()) sessions_.erase(it);
          fprintf(stderr, "%s studio session of %s ended: %s\n", IsoTime(NowMillis()).c_str(),
                  person.c_str(), fresh.ok() ? "gone" : fresh.status().message().c_str());
          return Caller();
        }
        it->second.refresh_token = *fresh;
        it->second.refresh_at = NowMillis() + oidc_->config().refresh_seconds * 1000;
      }
      if (!person.empty()) {
        // A cookie goes with any page's request: a change must prove it comes from the studio
        // itself.
        if (std::string why = CrossSiteReason(req); !why.empty()) {
          *refusal = Status(Code::kPermissionDenied, why);
          return Caller();
        }
        return PersonCaller(person, 0, "studio", req.peer.address, groups);
      }
    }
    if (bearer.empty()) return Caller();
    // A job's MLflow client authenticates with the job's token and may write only to the job's run.
    if (StartsWith(req.path, "/api/2.0/")) {
      if (std::string job = Reader().JobByToken(bearer); !job.empty()) {
        Caller c;
        c.kind = Caller::Kind::kJob;
        c.job = job;
        c.via = "job-token";
        c.address = req.peer.address;
        return c;
      }
      return Caller();
    }
    // A supervisor reports on its own job with that job's credential, only while the job has not
    // ended: a finished job's credential writes nothing more.
    static const std::string kInternal = "/api/v1/internal/jobs/";
    if (StartsWith(req.path, kInternal)) {
      std::string name = req.path.substr(kInternal.size());
      name = name.substr(0, name.find('/'));
      auto job = Reader().GetBrief(name);
      if (job.ok() && !store::IsTerminalStatus(job->status) &&
          SameToken(bearer, scheduler::SupervisorCredential(token_, job->token))) {
        Caller c;
        c.kind = Caller::Kind::kSupervisor;
        c.job = name;
        c.via = "supervisor";
        c.address = req.peer.address;
        return c;
      }
    }
    return Caller();
  }

  // Before any of the body is read: the host, then who is calling, then whether the route's row
  // lets them. Attaches the caller for the handler.
  http::Server::HandlerResponse PreRoute(http::Request& req, http::Response& res) {
    AddSecurityHeaders(res);
    if (!HostAllowed(req.get_header_value("Host"))) {
      SendError(res, Status(Code::kPermissionDenied,
                            "this server does not answer for host '" +
                                req.get_header_value("Host").substr(0, 200) + "'"));
      res.status = 421;
      return http::Server::HandlerResponse::Handled;
    }
    const bool api = StartsWith(req.path, "/api/");
    // A path no row names: beyond /api/ a page (404, public); under it, only for someone known.
    Access access = req.route_tag >= 0 ? static_cast<Access>(req.route_tag)
                    : api              ? Access::kRead
                                       : Access::kPublic;
    if (access == Access::kPublic) {
      // Pages, assets, the sign-in link and identify: public, and so they take no body (none is
      // read).
      if (!HasBody(req)) return http::Server::HandlerResponse::Unhandled;
      SendError(res, InvalidArgument(req.path.substr(0, 200) + " takes no request body"));
      return http::Server::HandlerResponse::Handled;
    }
    Status refusal;
    Caller caller = Identify(req, &refusal);
    if (!refusal.ok()) {
      SendError(res, refusal);
      return http::Server::HandlerResponse::Handled;
    }
    if (Status s = Check(access, caller); !s.ok()) {
      if (s.code() == Code::kUnauthenticated) {
        std::string why = opt_.team ? "missing, wrong, expired or revoked credential (on this "
                                      "machine, the CLI needs none; elsewhere, a personal access "
                                      "token: cairn token create)"
                                    : "missing or wrong bearer token (the workspace token is in " +
                                          ws_.Token() + ")";
        if (StartsWith(req.path, "/api/2.0/")) {
          res.status = 401;
          res.set_content(json{{"error_code", "UNAUTHENTICATED"}, {"message", why}}.dump(),
                          "application/json");
        } else {
          SendError(res, Status(Code::kUnauthenticated, why));
        }
      } else {
        SendError(res, s);
      }
      return http::Server::HandlerResponse::Handled;
    }
    bool known = caller.kind != Caller::Kind::kNobody;
    SetCaller(req, std::move(caller));
    return known ? http::Server::HandlerResponse::Authorized
                 : http::Server::HandlerResponse::Unhandled;
  }

  // An entry in the audit log: who did `action` to `target`, from where.
  void Audit(const http::Request& req, const std::string& action, const std::string& target,
             const std::string& detail = "") {
    if (!access_) return;
    const Caller& c = CallerOf(req);
    store::AuditEntry e;
    e.who = c.IsPerson() ? c.name : c.job.empty() ? "?" : "job " + c.job;
    e.via = c.via;
    e.address = c.address;
    e.action = action;
    e.target = target;
    e.detail = detail;
    if (Status s = access_->Audit(e); !s.ok())
      fprintf(stderr, "cairn server: audit log: %s\n", s.message().c_str());
  }

  // Whether the caller may change job `name` (a Contributor: only their own); the refusal, or the
  // job.
  Result<store::JobRecord> JobToChange(const http::Request& req, const std::string& name) {
    auto job = Reader().Get(name);
    if (!job.ok()) return job.status();
    if (Status s = MayChange(CallerOf(req), job->created_by, "job '" + name + "'"); !s.ok())
      return s;
    return job;
  }

  void Routes() {
    svr_.set_pre_routing_handler(
        [this](http::Request& req, http::Response& res) { return PreRoute(req, res); });
    svr_.set_exception_handler(
        [](const http::Request&, http::Response& res, std::exception_ptr ep) {
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

    // Public: proves, without sending it, that this server holds the workspace's token (and a
    // running job's supervisor credential, with ?job=), for the port the caller dialled (util.h,
    // IdentityProof).
    On("GET", Access::kPublic, "/api/v1/identify",
       [this](const http::Request& req, http::Response& res) {
         std::string nonce = req.get_param_value("nonce");
         if (nonce.size() < 16 || nonce.size() > 128 ||
             nonce.find_first_not_of("0123456789abcdef") != std::string::npos)
           return SendError(res,
                            InvalidArgument("nonce: expected 16 to 128 lower-case hex digits"));
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
       });
    On("GET", Access::kRead, "/api/v1/health", [this](const http::Request&, http::Response& res) {
      SendJson(res, {{"status", "ok"},
                     {"pid", getpid()},
                     {"workspace", opt_.home},
                     {"url", url_},
                     {"local_slots", sched_->local_slots()}});
    });
    // The image cache (compute/image_cache.h): what is remembered as absent, and a look now.
    auto absence_json = [](const compute::ImageAbsence& a) {
      return json{{"image", a.image},
                  {"runtime", a.runtime},
                  {"available", false},
                  {"reason", a.reason},
                  {"checked_at", IsoTime(a.checked_ms)}};
    };
    On("GET", Access::kRead, "/api/v1/images",
       [this, absence_json](const http::Request&, http::Response& res) {
         json out = json::array();
         for (const auto& a : compute::RememberedAbsences(opt_.home))
           out.push_back(absence_json(a));
         SendJson(res, {{"runtime", compute::ContainerRuntime()}, {"value", out}});
       });
    On("POST", Access::kWrite, "/api/v1/images/check",
       [this](const http::Request& req, http::Response& res) {
         json body = ParseJsonOrDiscarded(req.body);
         if (!body.is_object())
           return SendError(res, InvalidArgument("expected {\"image\": ...} or {}"));
         std::string runtime = compute::ContainerRuntime();
         if (runtime.empty())
           return SendError(res,
                            FailedPrecondition(
                                "no container runtime (podman or docker) on the server's machine"));
         std::vector<std::string> images;
         if (body.contains("image")) {
           if (!body["image"].is_string() || body["image"].get<std::string>().empty() ||
               body["image"].get<std::string>().size() > 1024)
             return SendError(res, InvalidArgument("image: expected an image reference"));
           images.push_back(body["image"]);
         } else {
           for (const auto& a : compute::RememberedAbsences(opt_.home))
             if (a.runtime == runtime) images.push_back(a.image);
         }
         json out = json::array();
         for (const auto& image : images) {
           auto c = compute::CheckImageNow(opt_.home, runtime, image);
           json j = {{"image", image},
                     {"runtime", runtime},
                     {"available", c.available},
                     {"checked_at", IsoTime(NowMillis())}};
           if (c.available)
             j["source"] = c.pulled ? "pulled" : "local";
           else
             j["reason"] = c.reason;
           out.push_back(j);
         }
         SendJson(res, {{"runtime", runtime}, {"value", out}});
       });
    On("POST", Access::kOwner, "/api/v1/shutdown",
       [this](const http::Request&, http::Response& res) {
         SendJson(res, {{"status", "stopping"}});
         std::thread([this] { svr_.stop(); }).detach();
       });

    // Blobs and snapshots: the CLI asks which blobs are missing, uploads those, then names a
    // manifest.
    On("POST", Access::kWrite, "/api/v1/blobs/missing",
       [this](const http::Request& req, http::Response& res) {
         json body = ParseJsonOrDiscarded(req.body);
         if (!body.is_object() || !body["sha256"].is_array())
           return SendError(res, InvalidArgument("expected {\"sha256\": [...]}"));
         store::BlobStore blobs(ws_.Blobs());
         json missing = json::array();
         for (const auto& h : body["sha256"]) {
           if (!h.is_string() || !store::IsValidSha256(h))
             return SendError(res, InvalidArgument("not a SHA-256 digest: " + h.dump()));
           if (!blobs.Has(h)) missing.push_back(h);
         }
         SendJson(res, {{"missing", missing}});
       });
    On(
        "PUT", Access::kWrite, R"(/api/v1/blobs/([0-9a-f]{64}))",
        [this](const http::Request& req, http::Response& res) {
          store::BlobStore blobs(ws_.Blobs());
          // Not synced one by one: the snapshot that names it syncs them all before it is
          // recorded.
          Status s = blobs.Put(req.matches[1], req.body, /*durable=*/false);
          if (!s.ok()) return SendError(res, s);
          SendJson(res, {{"sha256", req.matches[1].str()}}, 201);
        },
        size_t{4} << 30);
    On("POST", Access::kWrite, "/api/v1/snapshots",
       [this](const http::Request& req, http::Response& res) {
         json body = ParseJsonOrDiscarded(req.body);
         if (!body.is_object())
           return SendError(res, InvalidArgument("expected {\"manifest\": [...]}"));
         auto m = store::ManifestFromJson(body.value("manifest", json()));
         if (!m.ok()) return SendError(res, m.status());
         store::BlobStore blobs(ws_.Blobs());
         for (const auto& e : *m) {
           if (!blobs.Has(e.sha256))
             return SendError(
                 res, InvalidArgument("blob " + e.sha256 + " (" + e.path + ") was not uploaded"));
           // A CLI on this machine copies blobs in itself: at least their sizes must be what the
           // manifest says.
           struct stat st;
           if (stat(blobs.PathOf(e.sha256).c_str(), &st) != 0 || st.st_size != e.size)
             return SendError(res, InvalidArgument("blob " + e.sha256 + " (" + e.path +
                                                   ") does not have the manifest's " +
                                                   std::to_string(e.size) + " bytes"));
         }
         std::string id = store::ManifestId(*m);
         // Every blob it names is on disk before the snapshot is (the uploads were not synced one
         // by one).
         if (Status synced = blobs.Sync(); !synced.ok()) return SendError(res, synced);
         Status s = sched_->PutSnapshot(id, store::ManifestToJson(*m).dump());
         if (!s.ok()) return SendError(res, s);
         SendJson(res, {{"id", id}, {"files", m->size()}}, 201);
       });

    // Jobs.
    On("POST", Access::kWrite, "/api/v1/jobs",
       [this](const http::Request& req, http::Response& res) {
         SubmitJob(req, ParseJsonOrDiscarded(req.body), res);
       });
    // A job resubmitted from its YAML as edited in the studio: what was uploaded for the original
    // (its code, its local inputs; a pipeline's per step) stands for the local paths the YAML
    // names.
    On("POST", Access::kWrite, R"(/api/v1/jobs/([^/]+)/rerun)",
       [this](const http::Request& req, http::Response& res) {
         auto orig = Reader().Get(req.matches[1]);
         if (!orig.ok()) return SendError(res, orig.status());
         json body = ParseJsonOrDiscarded(req.body);
         if (!body.is_object() || !body["yaml"].is_string())
           return SendError(res, InvalidArgument("expected {\"yaml\": ...}"));
         auto rerun = RerunBody(*orig, body["yaml"], body.value("name", ""));
         if (!rerun.ok()) return SendError(res, rerun.status());
         SubmitJob(req, std::move(rerun).value(), res);
       });
    On("GET", Access::kRead, "/api/v1/jobs", [this](const http::Request& req, http::Response& res) {
      store::JobFilter f;
      if (req.has_param("max_results"))
        f.max_results = std::max(0, atoi(req.get_param_value("max_results").c_str()));
      f.status = req.get_param_value("status");
      f.experiment = req.get_param_value("experiment");
      f.parent = req.get_param_value("parent");
      f.compute = req.get_param_value("compute");
      f.created_by = req.get_param_value("created_by");
      if (f.created_by == "me") f.created_by = CallerOf(req).name;
      if (StartsWith(f.compute, "azureml:")) f.compute = f.compute.substr(8);  // as jobs show it
      f.include_archived = req.get_param_value("include_archived") == "true";
      f.archived_only = req.get_param_value("archived_only") == "true";
      // Like az ml job list: the jobs a user submitted; a sweep's trials with -p SWEEP (or
      // include_children).
      f.top_level_only = f.parent.empty() && req.get_param_value("include_children") != "true";
      if (req.get_param_value("view") == "summary") {
        // What a table of jobs shows, and nothing that costs a read per job (the studio's jobs
        // page). Each job's latest metric values and its params (the key metrics and the column
        // chooser's columns), up to kSummaryKeys of each, long param values cut; each read for all
        // runs at once.
        constexpr size_t kSummaryKeys = 32;
        auto latest = tracking_->LatestMetricsOfAllRuns();
        auto params = tracking_->ParamsOfAllRuns(kSummaryKeys, 256);
        std::string body = "[";
        bool first = true;
        for (const auto& j : Reader().ListSummaries(f)) {
          body += first ? "{" : ",{";
          first = false;
          body += "\"name\":";
          AppendJsonString(body, j.name);
          body += ",\"display_name\":";
          AppendJsonString(body, j.display_name);
          body += ",\"type\":";
          AppendJsonString(body, j.type);
          body += ",\"status\":";
          AppendJsonString(body, j.status);
          body += ",\"experiment_name\":";
          AppendJsonString(body, j.experiment_name);
          body += ",\"compute\":";
          AppendJsonString(body, j.compute == "local" ? "local" : "azureml:" + j.compute);
          body += ",\"parent_job_name\":";
          AppendJsonString(body, j.parent);
          body += ",\"creation_context\":{\"created_at\":";
          AppendJsonString(body, IsoTime(j.created_at));
          body += ",\"created_by\":";
          AppendJsonString(body, j.created_by.empty() ? UserName() : j.created_by);
          body += "}";
          if (j.start_time && j.end_time) {
            body += ",\"duration_seconds\":";
            AppendJsonDouble(body, static_cast<double>(*j.end_time - *j.start_time) / 1000.0);
          }
          // A sweep shows its best trial's (Azure ML's "best child run").
          auto m = latest.find(j.name);
          if (m == latest.end() && j.type == "sweep" && !j.best_child.empty())
            m = latest.find(j.best_child);
          if (m != latest.end()) {
            body += ",\"metrics\":{";
            for (size_t k = 0; k < m->second.size() && k < kSummaryKeys; ++k) {
              if (k) body += ',';
              AppendJsonString(body, m->second[k].key);
              body += ':';
              double v = m->second[k].value;
              if (std::isfinite(v))
                AppendJsonDouble(body, v);
              else
                body += std::isnan(v) ? "\"NaN\"" : v > 0 ? "\"Infinity\"" : "\"-Infinity\"";
            }
            body += '}';
          }
          auto p = params.find(j.name);
          if (p == params.end() && j.type == "sweep" && !j.best_child.empty())
            p = params.find(j.best_child);
          if (p != params.end()) {
            body += ",\"params\":{";
            for (size_t k = 0; k < p->second.size(); ++k) {
              if (k) body += ',';
              AppendJsonString(body, p->second[k].key);
              body += ':';
              AppendJsonString(body, p->second[k].value);
            }
            body += '}';
          }
          body += ",\"tags\":" + ListTagsJson(j.tags_json) + "}";
        }
        body += "]";
        res.set_content(body, "application/json");
        return;
      }
      json out = json::array();
      for (const auto& j : Reader().List(f)) {
        json v = View(j);
        BoundForList(v);
        out.push_back(std::move(v));
      }
      SendJson(res, out);
    });
    On("GET", Access::kRead, R"(/api/v1/jobs/([^/]+))",
       [this](const http::Request& req, http::Response& res) {
         auto job = Reader().Get(req.matches[1]);
         if (!job.ok()) return SendError(res, job.status());
         json v = View(*job);
         if (req.get_param_value("include") == "yaml") v["source_yaml"] = job->source_yaml;
         if (auto run = tracking_->GetRun(FilesOf(*job).name);
             run.ok()) {  // a reused step's are its original's
           json metrics = json::object(), params = json::object();
           for (const auto& m : run->metrics)
             metrics[m.key] = std::isnan(m.value) ? json("NaN") : json(m.value);
           for (const auto& p : run->params) params[p.key] = p.value;
           v["metrics"] = metrics;
           v["params"] = params;
         }
         if (job->type == "sweep") v["trials"] = SweepTrials(*job);
         if (job->type == "pipeline") v["steps"] = PipelineSteps(*job);
         SendJson(res, v);
       });
    On("PATCH", Access::kWrite, R"(/api/v1/jobs/([^/]+))",
       [this](const http::Request& req, http::Response& res) {
         json body = ParseJsonOrDiscarded(req.body);
         if (!body.is_object()) return SendError(res, InvalidArgument("expected a JSON object"));
         if (auto mine = JobToChange(req, req.matches[1]); !mine.ok())
           return SendError(res, mine.status());
         auto job = sched_->Update(req.matches[1], body);
         if (!job.ok()) return SendError(res, job.status());
         Audit(req, "job.update", req.matches[1], body.dump().substr(0, 512));
         SendJson(res, View(*job));
       });
    On("POST", Access::kWrite, R"(/api/v1/jobs/([^/]+)/cancel)",
       [this](const http::Request& req, http::Response& res) {
         if (auto mine = JobToChange(req, req.matches[1]); !mine.ok())
           return SendError(res, mine.status());
         Status s = sched_->Cancel(req.matches[1]);
         if (!s.ok()) return SendError(res, s);
         Audit(req, "job.cancel", req.matches[1]);
         auto job = Reader().Get(req.matches[1]);
         SendJson(res, job.ok() ? View(*job) : json::object());
       });
    for (const char* verb : {"archive", "restore"}) {
      bool archive = std::string(verb) == "archive";
      On("POST", Access::kWrite, std::string(R"(/api/v1/jobs/([^/]+)/)") + verb,
         [this, archive](const http::Request& req, http::Response& res) {
           if (auto mine = JobToChange(req, req.matches[1]); !mine.ok())
             return SendError(res, mine.status());
           Status s = sched_->SetArchived(req.matches[1], archive);
           if (!s.ok()) return SendError(res, s);
           Audit(req, archive ? "job.archive" : "job.restore", req.matches[1]);
           auto job = Reader().Get(req.matches[1]);
           SendJson(res, job.ok() ? View(*job) : json::object());
         });
    }
    // The studio: its files need no sign-in (they hold no data); its API calls do, through a
    // session cookie that a one-time link (POST /api/v1/login-codes, then GET /login?code=) sets.
    On("GET", Access::kPublic, "/",
       [this](const http::Request&, http::Response& res) { SendUiFile(res, "index.html"); });
    On("GET", Access::kPublic, R"(/(assets/[A-Za-z0-9._-]+|favicon\.svg))",
       [this](const http::Request& req, http::Response& res) { SendUiFile(res, req.matches[1]); });
    On("POST", Access::kRead, "/api/v1/login-codes",
       [this](const http::Request& req, http::Response& res) {
         std::string code = RandomHex(24);
         {
           std::lock_guard<std::mutex> l(auth_mu_);
           long long now = NowMillis();
           for (auto it = login_codes_.begin(); it != login_codes_.end();)
             it = it->second.expires < now ? login_codes_.erase(it) : std::next(it);
           // The link signs in whoever asked for it (the studio then acts as them).
           login_codes_[code] = {now + 5 * 60 * 1000, CallerOf(req).name};
         }
         SendJson(res, {{"code", code}, {"expires_in", 300}, {"url", url_ + "/login?code=" + code}},
                  201);
       });
    On("GET", Access::kPublic, "/login", [this](const http::Request& req, http::Response& res) {
      std::string code = req.get_param_value("code");
      std::string next = req.get_param_value("next");
      if (!IsStudioRoute(next)) next = "/";  // the studio's own pages only
      std::string session;
      {
        std::lock_guard<std::mutex> l(auth_mu_);
        auto it = login_codes_.find(code);
        if (it != login_codes_.end() && it->second.expires >= NowMillis()) {
          session = RandomHex(32);
          long long now = NowMillis();
          for (auto s = sessions_.begin(); s != sessions_.end();)
            s = now - s->second.last_used > session_idle_ms_ ||
                        now - s->second.created > session_max_age_ms_
                    ? sessions_.erase(s)
                    : std::next(s);
          sessions_[session] = {now, now, it->second.person, false, {}, "", 0};
        }
        if (it != login_codes_.end()) login_codes_.erase(it);  // one use, valid or not
      }
      if (session.empty()) {
        res.status = 403;
        res.set_content(
            "<!doctype html><title>Cairn</title><p>This sign-in link has expired or was already "
            "used. "
            "Run <code>cairn studio</code> for a new one.</p>",
            "text/html; charset=utf-8");
        return;
      }
      res.status = 302;
      res.set_header("Set-Cookie", "cairn_session=" + session +
                                       "; Path=/; HttpOnly; SameSite=Strict" +
                                       (svr_.tls() ? "; Secure" : ""));
      res.set_header("Location", next);
    });

    PeopleRoutes();
    OidcRoutes();

    // Server-sent events: "jobs" whenever any job changes (status, a new job, an end), so a page
    // re-reads what it shows instead of polling. A comment every 15 s keeps proxies from closing a
    // quiet stream; the stream ends after 10 minutes (EventSource reconnects on its own) or when
    // the server stops.
    On("GET", Access::kRead, "/api/v1/events", [this](const http::Request&, http::Response& res) {
      auto seen = std::make_shared<long long>(-1);
      auto last_write = std::make_shared<long long>(NowMillis());
      long long until = NowMillis() + 10 * 60 * 1000;
      res.set_stream("text/event-stream", [this, seen, last_write, until](http::DataSink& sink) {
        long long now = NowMillis();
        if (now >= until || svr_.stopping()) return false;
        std::string out;
        if (*seen < 0) {
          *seen = sched_->events().Version();
          out = "retry: 1000\nevent: hello\ndata: {\"version\":" + std::to_string(*seen) + "}\n\n";
        } else {
          long long v = sched_->events().WaitPast(*seen, 500);
          if (v != *seen) {
            *seen = v;
            out = "event: jobs\ndata: {\"version\":" + std::to_string(v) + "}\n\n";
          } else if (now - *last_write >= 15000) {
            out = ": keep-alive\n\n";
          }
        }
        if (out.empty()) return true;
        *last_write = now;
        return sink.write(out.data(), out.size());
      });
    });
    On("GET", Access::kRead, R"(/api/v1/jobs/([^/]+)/logs)",
       [this](const http::Request& req, http::Response& res) { LogChunk(req, res); });
    On("GET", Access::kRead, R"(/api/v1/jobs/([^/]+)/metrics)",
       [this](const http::Request& req, http::Response& res) {
         auto job = Reader().Get(req.matches[1]);
         if (!job.ok()) return SendError(res, job.status());
         if (!job->properties.value("reused_from", "").empty())
           job = FilesOf(*job);  // a reused step's are its original's
         std::vector<std::string> keys;
         if (req.has_param("key"))
           keys.push_back(req.get_param_value("key"));
         else
           keys = tracking_->MetricKeys(job->name);
         // max_points: a chart's worth, downsampled on the server keeping every column's extremes
         // (tracking/downsample.h); x: the chart's axis, step (default) or timestamp.
         size_t max_points = req.has_param("max_points")
                                 ? static_cast<size_t>(std::max(
                                       0LL, atoll(req.get_param_value("max_points").c_str())))
                                 : 0;
         tracking::XAxis axis = req.get_param_value("x") == "timestamp"
                                    ? tracking::XAxis::kTimestamp
                                    : tracking::XAxis::kStep;
         // from/to: only the points whose x (step, or timestamp in ms) lies in [from, to]: a zoomed
         // chart's range, downsampled on its own, so zooming in reaches full resolution.
         double from = -INFINITY, to = INFINITY;
         for (auto [key, bound] : {std::pair{"from", &from}, std::pair{"to", &to}}) {
           if (!req.has_param(key)) continue;
           std::string v = req.get_param_value(key);
           char* end = nullptr;
           double d = strtod(v.c_str(), &end);
           if (v.empty() || *end || !std::isfinite(d))
             return SendError(
                 res, InvalidArgument(std::string(key) + ": expected a number, got '" + v + "'"));
           *bound = d;
         }
         const bool ranged = req.has_param("from") || req.has_param("to");
         if (req.get_param_value("format") == "columns") {
           // Columns, written directly: {"step": [...], "timestamp": [...], "value": [...]} per
           // key, NaN as null. A chart reads arrays; a million points need no million objects.
           std::string body = "{\"name\":";
           AppendJsonString(body, job->name);
           body += ",\"metrics\":{";
           bool any = false;
           for (const auto& k : keys) {
             auto h = tracking_->GetHistory(job->name, k);
             if (!h.ok()) continue;
             if (ranged) {
               auto& pts = *h;
               pts.erase(std::remove_if(pts.begin(), pts.end(),
                                        [&](const tracking::Point& p) {
                                          double x = axis == tracking::XAxis::kStep
                                                         ? static_cast<double>(p.step)
                                                         : static_cast<double>(p.timestamp);
                                          return x < from || x > to;
                                        }),
                         pts.end());
             }
             std::vector<size_t> pick;
             if (max_points > 0) pick = tracking::MinMaxDownsample(*h, max_points, axis);
             const size_t n = max_points > 0 ? pick.size() : h->size();
             auto at = [&](size_t i) -> const tracking::Point& {
               return (*h)[max_points > 0 ? pick[i] : i];
             };
             if (any) body += ",";
             any = true;
             AppendJsonString(body, k);
             body += ":{\"total\":" + std::to_string(h->size()) + ",\"step\":[";
             for (size_t i = 0; i < n; ++i) {
               if (i) body += ",";
               AppendJsonInt(body, at(i).step);
             }
             body += "],\"timestamp\":[";
             for (size_t i = 0; i < n; ++i) {
               if (i) body += ",";
               AppendJsonInt(body, at(i).timestamp);
             }
             body += "],\"value\":[";
             for (size_t i = 0; i < n; ++i) {
               if (i) body += ",";
               double v = at(i).value;
               if (std::isfinite(v))
                 AppendJsonDouble(body, v);
               else
                 body += "null";
             }
             body += "]}";
           }
           body += "}}";
           if (req.has_param("key") && !any)
             return SendError(res, NotFound("job '" + job->name + "' has no metric '" +
                                            req.get_param_value("key") + "'"));
           res.set_content(body, "application/json");
           return;
         }
         json out = json::object(), totals = json::object();
         for (const auto& k : keys) {
           auto h = tracking_->GetHistory(job->name, k);
           if (!h.ok()) continue;
           json arr = json::array();
           auto add = [&](const tracking::Point& m) {
             arr.push_back({{"step", m.step},
                            {"timestamp", m.timestamp},
                            {"value", std::isnan(m.value) ? json("NaN") : json(m.value)}});
           };
           if (max_points > 0) {
             for (size_t i : tracking::MinMaxDownsample(*h, max_points, axis)) add((*h)[i]);
           } else {
             for (const auto& m : *h) add(m);
           }
           totals[k] = h->size();
           out[k] = arr;
         }
         if (req.has_param("key") && out.empty())
           return SendError(res, NotFound("job '" + job->name + "' has no metric '" +
                                          req.get_param_value("key") + "'"));
         json body = {{"name", job->name}, {"metrics", out}};
         if (max_points > 0) body["total_points"] = totals;
         SendJson(res, body);
       });
    On("GET", Access::kRead, R"(/api/v1/jobs/([^/]+)/files)",
       [this](const http::Request& req, http::Response& res) {
         auto job = Reader().Get(req.matches[1]);
         if (!job.ok()) return SendError(res, job.status());
         SendJson(res, {{"status", job->status}, {"files", JobFiles(*job)}});
       });
    On("GET", Access::kRead, R"(/api/v1/jobs/([^/]+)/files/(.+))",
       [this](const http::Request& req, http::Response& res) {
         auto job = Reader().Get(req.matches[1]);
         if (!job.ok()) return SendError(res, job.status());
         auto fd = OpenJobFile(*job, req.matches[2]);
         if (!fd.ok()) return SendError(res, fd.status());
         struct stat st;
         fstat(*fd, &st);
         res.set_file_content(*fd, static_cast<size_t>(st.st_size), "application/octet-stream");
       });
    // A folder of a job's files as one zip (stored, not compressed), streamed: ?path=<folder of the
    // listing>.
    On("GET", Access::kRead, R"(/api/v1/jobs/([^/]+)/zip)",
       [this](const http::Request& req, http::Response& res) {
         auto job = Reader().Get(req.matches[1]);
         if (!job.ok()) return SendError(res, job.status());
         std::string folder = req.get_param_value("path");
         while (!folder.empty() && folder.back() == '/') folder.pop_back();
         while (!folder.empty() && folder.front() == '/') folder.erase(folder.begin());
         std::vector<ZipEntry> entries;
         long long total = 0;
         for (const auto& f : JobFiles(*job)) {
           std::string path = f.value("path", "");
           if (!folder.empty() && !StartsWith(path, folder + "/")) continue;
           long long size = f.value("size", 0LL);
           total += size;
           // Named for the folder's own name and below it, as a folder downloaded from a file
           // browser is.
           std::string base = folder.empty() ? job->name : Basename(folder);
           entries.push_back(
               {base + "/" + path.substr(folder.empty() ? 0 : folder.size() + 1), path, size});
         }
         if (entries.empty())
           return SendError(
               res, NotFound("job '" + job->name + "' has no files under '" + folder + "'"));
         if (total >= (1LL << 32) - 1 || entries.size() >= 65535)
           return SendError(
               res, FailedPrecondition("the folder is too large for one zip (4 GiB or 65,535 "
                                       "files); download it with cairn job download"));
         res.set_header("Content-Disposition", "attachment; filename=\"" +
                                                   (folder.empty() ? job->name : Basename(folder)) +
                                                   ".zip\"");
         auto writer = std::make_shared<ZipStream>(
             std::move(entries),
             [this, j = *job](const std::string& path) { return OpenJobFile(j, path); });
         res.set_stream("application/zip",
                        [writer](http::DataSink& sink) { return writer->Next(sink); });
       });
    // Staging, for supervisors on nodes that do not share the workspace's filesystem (a Slurm
    // cluster's): the run file, the blobs it names, and the run's files written back as they grow.
    On("GET", Access::kSupervisor, R"(/api/v1/internal/jobs/([^/]+)/run)",
       [this](const http::Request& req, http::Response& res) {
         compute::RunLayout layout = compute::RunLayout::For(opt_.home, req.matches[1]);
         auto text = ReadFile(layout.JobFile());
         if (!text.ok()) return SendError(res, text.status());
         res.set_header("X-Cairn-Run-Root", layout.root);
         res.set_content(*text, "application/json");
       });
    On("GET", Access::kSupervisor, R"(/api/v1/internal/jobs/([^/]+)/blobs/([0-9a-f]{64}))",
       [this](const http::Request& req, http::Response& res) {
         // Only what the job's run file names: a job's token reads its own code and inputs,
         // nothing else.
         compute::RunLayout layout = compute::RunLayout::For(opt_.home, req.matches[1]);
         auto text = ReadFile(layout.JobFile());
         if (!text.ok() || text->find(req.matches[2].str()) == std::string::npos)
           return SendError(res, NotFound("job '" + req.matches[1].str() + "' has no blob " +
                                          req.matches[2].str()));
         store::BlobStore blobs(ws_.Blobs());
         std::string path = blobs.PathOf(req.matches[2]);
         struct stat st;
         int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
         if (fd < 0 || fstat(fd, &st) != 0) {
           if (fd >= 0) close(fd);
           return SendError(
               res, NotFound("blob " + req.matches[2].str() + " is missing from the workspace"));
         }
         res.set_file_content(fd, static_cast<size_t>(st.st_size), "application/octet-stream");
       });
    On(
        "PUT", Access::kSupervisor, R"(/api/v1/internal/jobs/([^/]+)/files/(.+))",
        [this](const http::Request& req, http::Response& res) {
          compute::RunLayout layout = compute::RunLayout::For(opt_.home, req.matches[1]);
          std::string rel = req.matches[2];
          std::string path;
          if (rel == "exit.json")
            path = "exit.json";
          else if (StartsWith(rel, "outputs/"))
            path = MapRunPath("named-outputs/" + rel.substr(8));
          else
            path = MapRunPath(rel);
          if (path.empty())
            return SendError(res, InvalidArgument("cannot write '" + rel + "' in a run folder"));
          long long offset =
              req.has_param("offset") ? atoll(req.get_param_value("offset").c_str()) : 0;
          if (offset < 0) return SendError(res, InvalidArgument("offset must not be negative"));
          auto run = Beneath::OpenOrCreate(layout.root);
          if (!run.ok()) return SendError(res, run.status());
          if (path.find('/') != std::string::npos)
            if (Status s = run->MakeDirs(Dirname(path)); !s.ok()) return SendError(res, s);
          // Offset 0 starts the file over; a later offset appends where the node left off.
          auto fd = run->OpenWrite(path, offset == 0 ? O_TRUNC : 0);
          if (!fd.ok()) return SendError(res, fd.status());
          ssize_t n = pwrite(*fd, req.body.data(), req.body.size(), static_cast<off_t>(offset));
          close(*fd);
          if (n != static_cast<ssize_t>(req.body.size()))
            return SendError(res, Internal("short write to " + rel));
          SendJson(res, {{"size", offset + static_cast<long long>(req.body.size())}});
        },
        size_t{256} << 20);
    On("POST", Access::kSupervisor, R"(/api/v1/internal/jobs/([^/]+)/events)",
       [this](const http::Request& req, http::Response& res) {
         json body = ParseJsonOrDiscarded(req.body);
         if (!body.is_object()) return SendError(res, InvalidArgument("expected {\"event\": ...}"));
         Status s = sched_->SupervisorEvent(req.matches[1], body.value("event", ""),
                                            body.value("reason", ""));
         if (!s.ok()) return SendError(res, s);
         SendJson(res, {{"ok", true}});
       });

    // Computes.
    On("POST", Access::kOwner, "/api/v1/computes",
       [this](const http::Request& req, http::Response& res) {
         json body = ParseJsonOrDiscarded(req.body);
         if (!body.is_object()) return SendError(res, InvalidArgument("expected a compute object"));
         auto c = sched_->CreateCompute(body);
         if (!c.ok()) return SendError(res, c.status());
         auto rec = Reader().GetCompute(body.value("name", ""));
         if (!rec.ok()) return SendError(res, rec.status());
         Audit(req, "compute.create", rec->name, rec->type);
         SendJson(res, ComputeView(*rec, 0, 0, !sched_->config().slurm_conf.empty()), 201);
       });
    On("GET", Access::kRead, "/api/v1/computes", [this](const http::Request&, http::Response& res) {
      json out = json::array();
      out.push_back(LocalCompute());
      for (const auto& c : Reader().ListComputes()) {
        auto [in_use, queued] = sched_->PoolUsage(c.name);
        out.push_back(ComputeView(c, in_use, queued, !sched_->config().slurm_conf.empty()));
      }
      SendJson(res, out);
    });
    On("GET", Access::kRead, R"(/api/v1/computes/([^/]+))",
       [this](const http::Request& req, http::Response& res) {
         if (req.matches[1] == "local") return SendJson(res, LocalCompute());
         auto c = Reader().GetCompute(req.matches[1]);
         if (!c.ok()) return SendError(res, c.status());
         auto [in_use, queued] = sched_->PoolUsage(c->name);
         SendJson(res, ComputeView(*c, in_use, queued, !sched_->config().slurm_conf.empty()));
       });
    // az ml compute list-sizes: the shapes jobs can get here (this machine's).
    On("GET", Access::kRead, "/api/v1/sizes", [this](const http::Request&, http::Response& res) {
      long cpus = sysconf(_SC_NPROCESSORS_ONLN);
      int gpus = static_cast<int>(sched_->gpus().size());
      json out = json::array(
          {{{"name", "local"},
            {"family", "this machine"},
            {"v_cpus", cpus},
            {"memory_gb", MachineMemoryGb()},
            {"gpus", gpus},
            {"slots", sched_->local_slots()},
            {"fits_here", true},
            {"supported_compute_types", json::array({"local", "amlcompute", "computeinstance"})}}});
      // The Azure sizes a job may name (resources.instance_type, compute --size): what each gives
      // here. A size fits when this machine has its GPUs; its CPUs and memory are shared, not
      // reserved.
      for (const auto& v : spec::VmSizes())
        out.push_back({{"name", v.name},
                       {"family", v.family},
                       {"v_cpus", v.v_cpus},
                       {"memory_gb", v.memory_gib},
                       {"gpus", v.gpus},
                       {"gpu_model", v.gpu_model},
                       {"fits_here", v.WholeGpus() <= gpus},
                       {"source", v.source}});
      SendJson(res, out);
    });
    // az ml compute list-nodes: this machine is one node; a Slurm compute's nodes are sinfo's.
    On("GET", Access::kRead, R"(/api/v1/computes/([^/]+)/nodes)",
       [this](const http::Request& req, http::Response& res) {
         std::string name = req.matches[1];
         std::optional<compute::SlurmTarget> slurm;
         if (name != "local") {
           auto c = Reader().GetCompute(name);
           if (!c.ok()) return SendError(res, c.status());
           slurm = scheduler::SlurmTargetOf(c->spec, sched_->config().slurm_conf);
         }
         store::JobFilter f;
         f.max_results = 0;
         f.status = "Running";
         f.compute = name;
         std::vector<std::string> running;
         for (const auto& j : Reader().List(f)) running.push_back(j.name);
         json nodes = json::array();
         if (slurm) {
           auto out = compute::RunSlurmCommand(*slurm, {"sinfo", "-N", "-h", "-o", "%N|%T|%c|%m"});
           if (!out.ok()) return SendError(res, Unavailable("sinfo: " + out.status().message()));
           for (const auto& line : Split(*out, '\n')) {
             auto p = Split(Trim(line), '|');
             if (p.size() < 4) continue;
             nodes.push_back({{"node_id", p[0]},
                              {"node_state", p[1]},
                              {"cpus", atoi(p[2].c_str())},
                              {"memory_mb", atoll(p[3].c_str())}});
           }
         } else {
           nodes.push_back({{"node_id", "node-0"},
                            {"private_ip_address", "127.0.0.1"},
                            {"public_ip_address", nullptr},
                            {"port", nullptr},
                            {"node_state", running.empty() ? "idle" : "running"},
                            {"current_job_names", running}});
         }
         SendJson(res, nodes);
       });
    On("DELETE", Access::kOwner, R"(/api/v1/computes/([^/]+))",
       [this](const http::Request& req, http::Response& res) {
         if (req.matches[1] == "local")
           return SendError(res,
                            InvalidArgument("the local compute is built in and cannot be deleted"));
         Status s = sched_->DeleteCompute(req.matches[1]);
         if (!s.ok()) return SendError(res, s);
         Audit(req, "compute.delete", req.matches[1]);
         SendJson(res, {{"name", req.matches[1].str()}, {"deleted", true}});
       });
  }

  // This machine's memory in GB, one decimal (compute show -n local, list-sizes).
  // Who one is, role assignments (az role assignment), personal access tokens, the audit log.
  void PeopleRoutes() {
    On("GET", Access::kPerson, "/api/v1/whoami",
       [this](const http::Request& req, http::Response& res) {
         const Caller& c = CallerOf(req);
         SendJson(res, {{"name", c.name},
                        {"role", store::RoleName(c.role)},
                        {"via", c.via},
                        {"team", opt_.team}});
       });
    On("GET", Access::kRead, "/api/v1/role-assignments",
       [this](const http::Request& req, http::Response& res) {
         std::string assignee = req.get_param_value("assignee");
         std::string role = req.get_param_value("role");
         json out = json::array();
         for (const auto& a : access_->Assignments()) {
           if (!assignee.empty() && a.assignee != assignee) continue;
           if (!role.empty() && ToLower(role) != ToLower(store::RoleName(a.role))) continue;
           out.push_back(AssignmentView(a));
         }
         SendJson(res, out);
       });
    On("POST", Access::kOwner, "/api/v1/role-assignments",
       [this](const http::Request& req, http::Response& res) {
         json body = ParseJsonOrDiscarded(req.body);
         if (!body.is_object())
           return SendError(res, InvalidArgument("expected {\"assignee\", \"role\"}"));
         auto role = store::ParseRole(body.value("role", ""));
         if (!role)
           return SendError(res,
                            InvalidArgument("--role: expected Owner, Contributor or Reader, got '" +
                                            body.value("role", "").substr(0, 64) + "'"));
         std::string type = ToLower(body.value("assignee_principal_type", "User"));
         auto made = access_->Assign(body.value("assignee", ""), type, *role, CallerOf(req).name);
         if (!made.ok()) return SendError(res, made.status());
         Audit(req, "role.assign", made->assignee, store::RoleName(made->role));
         SendJson(res, AssignmentView(*made), 201);
       });
    On("DELETE", Access::kOwner, "/api/v1/role-assignments",
       [this](const http::Request& req, http::Response& res) {
         std::string assignee = req.get_param_value("assignee");
         std::string id = req.get_param_value("id");
         std::optional<store::Role> role;
         if (req.has_param("role")) {
           role = store::ParseRole(req.get_param_value("role"));
           if (!role)
             return SendError(res,
                              InvalidArgument("--role: expected Owner, Contributor or Reader"));
         }
         if (assignee.empty() && id.empty())
           return SendError(res, InvalidArgument("give --assignee or --ids"));
         auto n = access_->Unassign(assignee, role, id);
         if (!n.ok()) return SendError(res, n.status());
         Audit(req, "role.delete", assignee.empty() ? id : assignee,
               role ? store::RoleName(*role) : "every role");
         SendJson(res, {{"deleted", *n}});
       });
    On("GET", Access::kPerson, "/api/v1/tokens",
       [this](const http::Request& req, http::Response& res) {
         const Caller& c = CallerOf(req);
         bool all = req.get_param_value("all") == "true";
         if (all && !c.IsOwner())
           return SendError(
               res, Status(Code::kPermissionDenied, "only an Owner lists everyone's tokens"));
         json out = json::array();
         for (const auto& t : access_->Tokens(all ? "" : c.name)) out.push_back(TokenView(t));
         SendJson(res, out);
       });
    On("POST", Access::kPerson, "/api/v1/tokens",
       [this](const http::Request& req, http::Response& res) {
         const Caller& c = CallerOf(req);
         // A token makes no other: a leaked one cannot mint itself a longer life.
         if (c.via == "access-token")
           return SendError(res,
                            Status(Code::kPermissionDenied,
                                   "a personal access token cannot create tokens; run cairn token "
                                   "create on the machine, or from the studio"));
         json body = ParseJsonOrDiscarded(req.body);
         if (!body.is_object()) body = json::object();
         long long days = body.value("expires_in_days", 30LL);
         if (days < 1 || days > 366)
           return SendError(
               res, InvalidArgument("--expires-in: 1 to 366 days, got " + std::to_string(days)));
         auto made = access_->CreateToken(c.name, body.value("description", ""),
                                          NowMillis() + days * 86400000LL);
         if (!made.ok()) return SendError(res, made.status());
         Audit(req, "token.create", made->first.id, made->first.description);
         json v = TokenView(made->first);
         v["token"] = made->second;  // shown once
         SendJson(res, v, 201);
       });
    On("DELETE", Access::kPerson, R"(/api/v1/tokens/([^/]+))",
       [this](const http::Request& req, http::Response& res) {
         const Caller& c = CallerOf(req);
         Status s = access_->RevokeToken(req.matches[1], c.IsOwner() ? "" : c.name);
         if (!s.ok()) return SendError(res, s);
         Audit(req, "token.revoke", req.matches[1]);
         SendJson(res, {{"id", req.matches[1].str()}, {"revoked", true}});
       });
    On("GET", Access::kOwner, "/api/v1/audit",
       [this](const http::Request& req, http::Response& res) {
         store::AuditFilter f;
         f.who = req.get_param_value("who");
         f.action = req.get_param_value("action");
         f.target = req.get_param_value("target");
         if (req.has_param("max_results"))
           f.max_results = std::clamp(atoi(req.get_param_value("max_results").c_str()), 1, 100000);
         json out = json::array();
         for (const auto& e : access_->AuditLog(f))
           out.push_back({{"seq", e.seq},
                          {"at", IsoTime(e.at)},
                          {"who", e.who},
                          {"via", e.via},
                          {"address", e.address},
                          {"action", e.action},
                          {"target", e.target},
                          {"detail", e.detail}});
         SendJson(res, out);
       });
  }

  // Signing in with the team's OpenID provider: /oidc/login sends the browser there (PKCE, state
  // and nonce), /oidc/callback checks what comes back and opens a studio session.
  void OidcRoutes() {
    // Public: how a browser may sign in here, for the studio's "not signed in" page.
    On("GET", Access::kPublic, "/api/v1/sign-in",
       [this](const http::Request&, http::Response& res) {
         json out = {{"oidc", static_cast<bool>(oidc_)}, {"link", "cairn studio"}};
         if (oidc_) out["issuer"] = oidc_->config().issuer;
         SendJson(res, out);
       });
    On("GET", Access::kPublic, "/oidc/login",
       [this](const http::Request& req, http::Response& res) {
         if (!oidc_)
           return SendError(res, NotFound("this server has no OpenID provider configured"));
         std::string next = req.get_param_value("next");
         if (!IsStudioRoute(next)) next = "/";
         auto start = oidc_->Begin(next);
         if (!start.ok()) return SendError(res, start.status());
         // Lax: the provider's redirect back is a top-level navigation from its site.
         res.set_header("Set-Cookie", "cairn_oidc_state=" + start->state +
                                          "; Path=/oidc; Max-Age=600; HttpOnly; SameSite=Lax" +
                                          (svr_.tls() ? "; Secure" : ""));
         res.status = 302;
         res.set_header("Location", start->url);
       });
    On("GET", Access::kPublic, "/oidc/callback",
       [this](const http::Request& req, http::Response& res) {
         if (!oidc_)
           return SendError(res, NotFound("this server has no OpenID provider configured"));
         auto refuse = [&](const std::string& why) {
           res.status = 403;
           std::string text;
           for (char c : why.substr(0, 500))
             text += c == '<' ? "&lt;" : c == '&' ? "&amp;" : std::string(1, c);
           res.set_content("<!doctype html><title>Cairn</title><p>" + text +
                               "</p><p><a href=\"/oidc/login\">Sign in again</a></p>",
                           "text/html; charset=utf-8");
         };
         if (std::string err = req.get_param_value("error"); !err.empty())
           return refuse("the OpenID provider refused the sign-in: " + err);
         auto who = oidc_->Finish(req.get_param_value("code"), req.get_param_value("state"),
                                  CookieOf(req, "cairn_oidc_state"));
         if (!who.ok()) return refuse(who.status().message());
         std::string session = RandomHex(32);
         long long now = NowMillis();
         {
           std::lock_guard<std::mutex> l(auth_mu_);
           Session s{now,
                     now,
                     who->name,
                     true,
                     who->groups,
                     who->refresh_token,
                     now + oidc_->config().refresh_seconds * 1000};
           sessions_[session] = std::move(s);
         }
         http::Request as = req;
         SetCaller(as, PersonCaller(who->name, 0, "oidc", req.peer.address, who->groups));
         Audit(as, "session.oidc", who->name, "subject " + who->subject);
         res.status = 302;
         res.headers.emplace("Set-Cookie", "cairn_oidc_state=; Path=/oidc; Max-Age=0");
         res.headers.emplace("Set-Cookie", "cairn_session=" + session +
                                               "; Path=/; HttpOnly; SameSite=Strict" +
                                               (svr_.tls() ? "; Secure" : ""));
         res.set_header("Location", IsStudioRoute(who->next) ? who->next : "/");
       });
  }

  static json AssignmentView(const store::RoleAssignment& a) {
    return {{"id", a.id},
            {"assignee", a.assignee},
            {"principal_type", a.assignee_type == "group" ? "Group" : "User"},
            {"role_definition_name", store::RoleName(a.role)},
            {"scope", "workspace"},
            {"created_by", a.created_by},
            {"created_at", IsoTime(a.created_at)}};
  }
  static json TokenView(const store::AccessToken& t) {
    json v = {{"id", t.id},
              {"owner", t.owner},
              {"description", t.description},
              {"created_at", IsoTime(t.created_at)},
              {"expires_at", IsoTime(t.expires_at)},
              {"state", t.revoked_at                  ? "revoked"
                        : t.expires_at <= NowMillis() ? "expired"
                                                      : "active"}};
    if (t.last_used_at) v["last_used_at"] = IsoTime(*t.last_used_at);
    return v;
  }

  static double MachineMemoryGb() {
    long long mem_kb = 0;
    if (auto m = ReadFile("/proc/meminfo", 1 << 16); m.ok())
      for (const auto& line : Split(*m, '\n'))
        if (StartsWith(line, "MemTotal:")) mem_kb = atoll(line.substr(9).c_str());
    return std::round(static_cast<double>(mem_kb) / 1048576.0 * 10) / 10;
  }

  json LocalCompute() {
    auto [in_use, queued] = sched_->PoolUsage("local");
    json out = {{"name", "local"},
                {"type", "local"},
                {"max_instances", sched_->local_slots()},
                {"min_instances", 0},
                {"provisioning_state", "Succeeded"},
                {"in_use", in_use},
                {"queued_jobs", queued},
                {"description", "this machine (built in)"}};
    out["cpus"] = sysconf(_SC_NPROCESSORS_ONLN);
    out["memory_gb"] = MachineMemoryGb();
    out["gpus"] = GpuTable();
    out["gpu_discovery"] = gpu_note_.empty() ? gpu_source_ : gpu_source_ + " (" + gpu_note_ + ")";
    return out;
  }

  // This machine's GPUs and who holds each: index, name, memory, UUID, job.
  json GpuTable() {
    json gpus = json::array();
    for (const auto& h : sched_->GpuHoldings()) {
      json g = {{"index", h.gpu.index},
                {"name", h.gpu.name},
                {"uuid", h.gpu.uuid},
                {"memory_mib", h.gpu.memory_mib}};
      g["job"] = h.job.empty() ? json(nullptr) : json(h.job);
      gpus.push_back(g);
    }
    return gpus;
  }

  // Long poll: returns as soon as the log has bytes past `offset`, the job ends, or `wait_ms`
  // passes.
  void LogChunk(const http::Request& req, http::Response& res) {
    std::string name = req.matches[1];
    long long offset = req.has_param("offset") ? atoll(req.get_param_value("offset").c_str()) : 0;
    int wait_ms = req.has_param("wait_ms")
                      ? std::clamp(atoi(req.get_param_value("wait_ms").c_str()), 0, 30000)
                      : 0;
    std::string file =
        req.has_param("file") ? req.get_param_value("file") : "user_logs/std_log.txt";
    // The status the client last saw: a change answers at once, so a live status line stays live.
    std::string seen_status = req.get_param_value("status");
    compute::RunLayout layout = compute::RunLayout::For(opt_.home, name);
    if (!IsDir(
            layout.root))  // a reused pipeline step has no run folder: its logs are its original's
      if (auto full = Reader().Get(name); full.ok())
        layout = compute::RunLayout::For(opt_.home, FilesOf(*full).name);
    std::string rel = MapRunPath("artifacts/" + file);
    if (rel.empty()) return SendError(res, InvalidArgument("bad log file name '" + file + "'"));
    long long deadline = NowMillis() + wait_ms;
    auto run =
        Beneath::Open(layout.root);  // the run folder is the server's; what lies in it is the job's
    for (;;) {
      long long version = sched_->events().Version();
      auto job = Reader().GetBrief(name);
      if (!job.ok()) return SendError(res, job.status());
      bool terminal = store::IsTerminalStatus(job->status);
      // Opened beneath the run folder each time: a job may replace its log with a link.
      if (!run.ok()) run = Beneath::Open(layout.root);
      auto fd = run.ok() ? run->OpenRead(rel) : Result<int>(NotFound(""));
      UniqueFd closer(fd.ok() ? *fd : -1);
      struct stat st;
      long long size = fd.ok() && fstat(*fd, &st) == 0 ? st.st_size : 0;
      bool changed = !seen_status.empty() && seen_status != job->status;
      if (size > offset || terminal || changed || NowMillis() >= deadline) {
        std::string data;
        if (size > offset) {
          long long want = std::min<long long>(size - offset, 4 << 20);
          if (fd.ok()) {
            data.resize(static_cast<size_t>(want));
            ssize_t n =
                pread(*fd, data.data(), static_cast<size_t>(want), static_cast<off_t>(offset));
            data.resize(n > 0 ? static_cast<size_t>(n) : 0);
          }
        }
        res.set_header("X-Cairn-Status", job->status);
        std::string reason = job->status == "Queued" ? sched_->LiveQueueReason(name) : "";
        res.set_header("X-Cairn-Reason", reason.empty() ? job->status_reason : reason);
        res.set_header("X-Cairn-Terminal", terminal ? "true" : "false");
        if (terminal && req.has_param("final")) {
          // What the stream's summary shows, so it needs no request of its own for the job at its
          // end.
          if (auto full = Reader().Get(name); full.ok()) {
            json v = View(*full);
            json summary = {{"status", v.value("status", "")},
                            {"status_reason", v.value("status_reason", "")}};
            for (const char* k : {"notes", "error"})
              if (v.contains(k)) summary[k] = v[k];
            res.set_header("X-Cairn-Final", summary.dump(-1, ' ', /*ensure_ascii=*/true));
          }
        }
        res.set_header("X-Cairn-Offset",
                       std::to_string(offset + static_cast<long long>(data.size())));
        res.set_header("X-Cairn-Size", std::to_string(size));
        res.set_content(data, "application/octet-stream");
        return;
      }
      sched_->events().WaitPast(version,
                                static_cast<int>(std::min<long long>(15, deadline - NowMillis())));
    }
  }

  void SendUiFile(http::Response& res, const std::string& rel) {
    std::string dir = UiDir();
    if (dir.empty()) {
      res.status = rel == "index.html" ? 200 : 404;
      res.set_content(
          "<!doctype html><title>Cairn</title><p>The studio is not built here: <code>make "
          "build</code> "
          "builds it (npm), and the REST API at /api/v1 works without it.</p>",
          "text/html; charset=utf-8");
      return;
    }
    std::string path = dir + "/" + rel;
    struct stat st;
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0) {
      if (fd >= 0) close(fd);
      return SendError(res, NotFound("no file " + rel));
    }
    // Built assets carry their content hash in their names: they never change.
    if (StartsWith(rel, "assets/"))
      res.set_header("Cache-Control", "public, max-age=31536000, immutable");
    else
      res.set_header("Cache-Control", "no-cache");
    res.set_file_content(fd, static_cast<size_t>(st.st_size), ContentTypeOf(rel));
  }

  std::string gpu_source_,
      gpu_note_;  // how the GPUs were found, and why none were where discovery looked
  std::mutex people_mu_;
  std::map<std::string, UnixPerson> people_;    // by name, or "#<uid>"
  std::unique_ptr<store::AccessStore> access_;  // roles, tokens, the audit log (a team server's)
  std::mutex auth_mu_;
  struct LoginCode {
    long long expires;
    std::string person;  // whom the link signs in
  };
  std::map<std::string, LoginCode> login_codes_;  // one-time sign-in codes
  struct Session {
    long long created, last_used;
    std::string person;
    // Signed in with the OpenID provider: the groups its ID token listed, and when to refresh.
    bool oidc = false;
    std::vector<std::string> groups;
    std::string refresh_token;
    long long refresh_at = 0;
  };
  std::unique_ptr<Oidc> oidc_;  // a team server's OpenID Connect sign-in, when configured
  std::map<std::string, Session> sessions_;  // the studio's signed-in browsers, until idle or old
  // Sign-in sessions end after 12 hours unused or 7 days in all (CAIRN_SESSION_IDLE_SECONDS,
  // CAIRN_SESSION_MAX_AGE_SECONDS).
  long long session_idle_ms_ = EnvSeconds("CAIRN_SESSION_IDLE_SECONDS", 12 * 3600) * 1000;
  long long session_max_age_ms_ = EnvSeconds("CAIRN_SESSION_MAX_AGE_SECONDS", 7 * 24 * 3600) * 1000;
  ServerOptions opt_;
  std::string token_;
  std::string tls_url_;  // https://host:port when serving TLS
  int local_port_ = -1;  // the plain loopback port this machine's CLI and jobs use
  WorkspacePaths ws_;
  std::string url_;
  int lock_fd_ = -1;
  http::Server svr_;
  std::unique_ptr<tracking::TrackingStore> tracking_;
  MlflowContext mlflow_;
  AssetContext assets_;
  std::unique_ptr<scheduler::Scheduler> sched_;
};

}  // namespace

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
