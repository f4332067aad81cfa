#include "scheduler/scheduler.h"

#include <limits>

#include <sys/wait.h>

#include "compute/job_cgroup.h"

#include <malloc.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>

#include "base/settings.h"
#include "base/json_limits.h"
#include "base/accounts.h"
#include "base/fs.h"
#include "base/util.h"
#include "compute/distribution.h"
#include "compute/process.h"
#include "compute/run_layout.h"
#include "spec/compute_spec.h"
#include "spec/job_spec.h"
#include "spec/placeholders.h"

namespace cairn::scheduler {

std::string SupervisorCredential(const std::string& secret, const std::string& job_token) {
  return Sha256Hex("cairn-supervisor\n" + secret + "\n" + job_token);
}

using nlohmann::json;
using store::JobRecord;

// ---- JobEvents ----

long long JobEvents::Version() {
  std::lock_guard<std::mutex> l(mu_);
  return version_;
}

void JobEvents::Bump() {
  {
    std::lock_guard<std::mutex> l(mu_);
    ++version_;
  }
  cv_.notify_all();
}

long long JobEvents::WaitPast(long long seen, int timeout_ms) {
  std::unique_lock<std::mutex> l(mu_);
  cv_.wait_for(l, std::chrono::milliseconds(timeout_ms), [&] { return version_ > seen; });
  return version_;
}

// ---- thread plumbing ----

Scheduler::Scheduler(SchedulerConfig config, std::unique_ptr<store::JobStore> store)
    : config_(std::move(config)), store_(std::move(store)), blobs_(config_.workspace + "/blobs") {
  local_slots_ = config_.local_slots > 0
                     ? config_.local_slots
                     : std::max(1, static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN)));
  usage_ = UsageLedger(config_.fair_share_half_life_s);
}

Scheduler::~Scheduler() { Stop(); }

void Scheduler::Start() {
  Reconcile();
  thread_ = std::thread([this] { Loop(); });
}

void Scheduler::Stop() {
  {
    std::lock_guard<std::mutex> l(submit_mu_);
    submit_stop_ = true;
  }
  submit_cv_.notify_all();
  if (submit_thread_.joinable()) submit_thread_.join();
  {
    std::lock_guard<std::mutex> l(hash_mu_);
    hash_stop_ = true;
  }
  hash_cv_.notify_all();
  if (hash_thread_.joinable()) hash_thread_.join();
  {
    std::lock_guard<std::mutex> l(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Scheduler::Post(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> l(mu_);
    tasks_.push_back(std::move(fn));
  }
  cv_.notify_one();
}

void Scheduler::Loop() {
  long long next_tick = NowMillis() + 500;
  for (;;) {
    std::function<void()> task;
    {
      std::unique_lock<std::mutex> l(mu_);
      cv_.wait_until(l, std::chrono::system_clock::time_point(std::chrono::milliseconds(next_tick)),
                     [&] { return stopping_ || !tasks_.empty(); });
      if (stopping_ && tasks_.empty()) return;
      if (!tasks_.empty()) {
        task = std::move(tasks_.front());
        tasks_.pop_front();
      }
    }
    if (task) {
      task();
      last_task_at_ = NowMillis();
      trimmed_ = false;
    }
    if (NowMillis() >= next_tick) {
      Tick();
      next_tick = NowMillis() + 500;
    }
  }
}

// A supervisor that died without telling us (killed, or the machine's OOM killer) is found here.
void Scheduler::Tick() {
  // Hand memory freed after a burst of jobs back to the system (glibc keeps it otherwise), once the
  // scheduler has been quiet for a second.
  if (!trimmed_ && NowMillis() - last_task_at_ > 1000) {
    malloc_trim(0);
    trimmed_ = true;
  }
  // Supervisors this server started are reaped here (the server keeps SIGCHLD's default so that
  // commands it runs itself, podman's and Slurm's, report their exit status), so ESRCH below means
  // gone.
  for (auto it = children_.begin(); it != children_.end();) {
    pid_t r = waitpid(static_cast<pid_t>(*it), nullptr, WNOHANG);
    it = (r == static_cast<pid_t>(*it) || (r < 0 && errno == ECHILD)) ? children_.erase(it)
                                                                      : std::next(it);
  }
  std::vector<std::pair<std::string, long long>> gone;
  long long now = NowMillis();
  for (const auto& [name, pid] : running_pids_) {
    // The command-line check guards against a recycled pid, but only once the child has had time to
    // exec: right after the spawn it still shows the server's command line.
    if (kill(static_cast<pid_t>(pid), 0) != 0) {
      gone.emplace_back(name, pid);
      continue;
    }
    auto spawned = spawned_at_.find(name);
    bool settled = spawned == spawned_at_.end() || now - spawned->second > 5000;
    std::string run_dir = compute::RunLayout::For(config_.workspace, name).root;
    if (settled && !compute::IsAliveWithMarker(static_cast<pid_t>(pid), run_dir))
      gone.emplace_back(name, pid);
  }
  for (const auto& [name, pid] : gone) {
    if (auto holder = LockHolderOf(name, pid)) {
      auto job = store_->Get(name);
      Adopt(name, *holder, job.ok() ? job->gpus : json::array());
      continue;
    }
    // Nothing of the job outlives its supervisor: its cgroup goes with it.
    compute::KillRecordedCgroup(compute::RunLayout::For(config_.workspace, name).root + "/cgroup");
    if (PathExists(compute::RunLayout::For(config_.workspace, name).ExitFile())) {
      FinishFromExitFile(name);
    } else {
      FailJob(name, "the supervisor (pid " + std::to_string(pid) +
                        ") ended without recording how the job ended");
    }
  }
  for (auto it = requeue_after_exit_.begin(); it != requeue_after_exit_.end();) {
    std::string run_dir = compute::RunLayout::For(config_.workspace, it->first).root;
    if (compute::IsAliveWithMarker(static_cast<pid_t>(it->second), run_dir)) {
      ++it;
      continue;
    }
    std::string name = it->first;
    it = requeue_after_exit_.erase(it);
    EnqueueAgain(name);
  }
  if (!slurm_.empty() && now - last_slurm_poll_ >= 500) PollSlurm();
  std::vector<std::string> sweeps;
  for (const auto& [n, _] : sweeps_) sweeps.push_back(n);
  for (const auto& n : sweeps) SweepStep(n);
  std::vector<std::string> pipelines;
  for (const auto& [n, _] : pipelines_) pipelines.push_back(n);
  for (const auto& n : pipelines) PipelineStep(n);
}

// ---- public API: post and wait ----

void Scheduler::Nudge(const std::string& compute) {
  Post([this, compute] {
    if (pools_.count(compute)) Schedule(compute);
  });
}

Result<JobRecord> Scheduler::Submit(SubmitRequest request) {
  return Call<Result<JobRecord>>([this, r = std::move(request)]() mutable { return DoSubmit(r); });
}

Status Scheduler::Cancel(const std::string& name) {
  return Call<Status>([this, name] { return DoCancel(name); });
}

Status Scheduler::SupervisorEvent(const std::string& name, const std::string& event,
                                  const std::string& reason) {
  return Call<Status>([this, name, event, reason]() -> Status {
    auto job = store_->GetBrief(name);
    if (!job.ok()) return job.status();
    if (store::IsTerminalStatus(job->status)) return Status::Ok();
    if (event == "preparing") {
      if (job->status != "Preparing" || reason.empty()) return Status::Ok();
      return Transition(name, "Preparing", reason);
    }
    if (event == "running") {
      // A Slurm job can start between two looks at squeue: its supervisor is the first to tell.
      if (job->status == "Queued" && slurm_.count(name)) {
        (void)Transition(name, "Preparing", "Slurm job " + slurm_[name].id + " started");
        slurm_[name].state = "RUNNING";
        job->status = "Preparing";
      }
      if (job->status == "Preparing" && !reason.empty())
        (void)Transition(name, "Preparing", reason);
      // Its timeout runs from now (and it is ended a kill grace after).
      if (auto t = timeout_ms_.find(name); t != timeout_ms_.end())
        expected_end_[name] = NowMillis() + t->second + config_.kill_grace_ms;
      if (job->status == "Preparing")
        return Transition(name, "Running", "the command is running", NowMillis());
      return Status::Ok();
    }
    if (event == "exited") {
      FinishFromExitFile(name, reason);
      return Status::Ok();
    }
    return InvalidArgument("unknown supervisor event '" + event + "'");
  });
}

Result<JobRecord> Scheduler::Update(const std::string& name, const json& patch) {
  return Call<Result<JobRecord>>([this, name, patch]() -> Result<JobRecord> {
    auto job = store_->Get(name);
    if (!job.ok()) return job.status();
    JobRecord r = *job;
    for (const auto& [k, v] : patch.items()) {
      if (k == "display_name" || k == "description" || k == "experiment_name") {
        if (!v.is_string()) return InvalidArgument(k + ": expected a string");
        if (k == "display_name") r.display_name = v;
        if (k == "description") r.description = v;
        if (k == "experiment_name") {
          if (!job->experiment_name.empty() && v != job->experiment_name &&
              !store::IsTerminalStatus(job->status))
            return FailedPrecondition("experiment_name cannot change while the job is in progress");
          r.experiment_name = v;
        }
      } else if (k == "tags") {
        if (!v.is_object()) return InvalidArgument("tags: expected a mapping of strings");
        json tags = json::object();
        for (const auto& [tk, tv] : v.items()) {
          if (tv.is_null()) continue;
          tags[tk] = tv.is_string() ? tv.get<std::string>() : tv.dump();
        }
        r.tags = tags;
      } else if (k == "properties") {
        if (!v.is_object()) return InvalidArgument("properties: expected a mapping of strings");
        for (const auto& [pk, pv] : v.items()) {
          std::string val = pv.is_string() ? pv.get<std::string>() : pv.dump();
          if (r.properties.contains(pk) && r.properties[pk] != val)
            return InvalidArgument("properties are append-only: '" + pk + "' is already set to '" +
                                   r.properties[pk].get<std::string>() + "'");
          r.properties[pk] = val;
        }
      } else {
        return InvalidArgument(
            "'" + k +
            "' cannot be updated (only tags, properties, display_name, description "
            "and experiment_name can)");
      }
    }
    Status s = store_->UpdateMeta(r);
    if (!s.ok()) return s;
    events_.Bump();
    return store_->Get(name);
  });
}

Status Scheduler::SetArchived(const std::string& name, bool archived) {
  return Call<Status>([this, name, archived]() -> Status {
    auto job = store_->Get(name);
    if (!job.ok()) return job.status();
    if (archived && !store::IsTerminalStatus(job->status))
      return FailedPrecondition("job '" + name + "' is " + job->status +
                                "; only a finished job can be archived (cancel it first)");
    Status s = store_->SetArchived(name, archived);
    events_.Bump();
    return s;
  });
}

Result<json> Scheduler::CreateCompute(const json& spec_json) {
  return Call<Result<json>>([this, spec_json]() -> Result<json> {
    auto parsed = spec::ComputeSpecFromJson(spec_json);
    if (!parsed.ok()) return parsed.status();
    spec::ComputeSpec c = *parsed;
    spec::Diagnostics d;
    spec::ValidateCompute(c, "compute", d);
    if (c.name.empty()) return InvalidArgument("compute: a name is required");
    if (d.HasErrors()) return InvalidArgument(Trim(d.ToString()));
    store::ComputeRecord rec{c.name, c.type, spec::ToJson(c), NowMillis()};
    if (auto old = store_->GetCompute(c.name); old.ok()) rec.created_at = old->created_at;
    Status s = store_->PutCompute(rec);
    if (!s.ok()) return s;
    if (c.type == "slurm" || (c.type == "amlcompute" && c.extra.contains("slurm"))) {
      // Say now, not at the first job, when the cluster cannot be reached.
      auto target = SlurmTargetFor(c.name);
      if (target && !target->conf.empty() && !PathExists(target->conf)) {
        (void)store_->DeleteCompute(c.name);
        return InvalidArgument("compute '" + c.name + "': slurm.conf: no such file " +
                               target->conf + " on the workspace server's machine");
      }
      if (target) {
        auto probe = compute::RunSlurmCommand(*target, {"sinfo", "-h", "-o", "%P"});
        if (!probe.ok()) {
          (void)store_->DeleteCompute(c.name);
          return FailedPrecondition("compute '" + c.name + "': cannot reach the Slurm cluster: " +
                                    probe.status().message());
        }
      }
    }
    Pool& p = pools_[c.name];
    p.capacity = CapacityOf(c);
    Schedule(c.name);
    return rec.spec;
  });
}

Status Scheduler::DeleteCompute(const std::string& name) {
  return Call<Status>([this, name]() -> Status {
    auto c = store_->GetCompute(name);
    if (!c.ok()) return c.status();
    auto it = pools_.find(name);
    if (it != pools_.end() && (it->second.in_use > 0 || !it->second.queue.empty()))
      return FailedPrecondition("compute '" + name +
                                "' has jobs running or queued; cancel them first");
    pools_.erase(name);
    return store_->DeleteCompute(name);
  });
}

Status Scheduler::PutSnapshot(const std::string& id, const std::string& manifest) {
  return Call<Status>([this, id, manifest] { return store_->PutSnapshot(id, manifest); });
}

std::pair<int, int> Scheduler::PoolUsage(const std::string& compute) {
  return Call<std::pair<int, int>>([this, compute]() -> std::pair<int, int> {
    Pool* p = PoolFor(compute);
    if (!p) return {0, 0};
    return {p->in_use, static_cast<int>(p->queue.size())};
  });
}

// ---- the state machine (scheduler thread only) ----

Status Scheduler::Transition(const std::string& name, const std::string& status,
                             const std::string& reason, std::optional<long long> start,
                             std::optional<long long> end, std::optional<long long> exit_code,
                             const std::string& error) {
  Status s = store_->Transition(name, {status, reason, NowMillis()}, start, end, exit_code, error);
  events_.Bump();
  if (store::IsTerminalStatus(status) && config_.on_final)
    config_.on_final(name, status, NowMillis());
  NoteTrialStatus(name, status);  // FinishFromExitFile, which ends most jobs, does the same
  return s;
}

Scheduler::Pool* Scheduler::PoolFor(const std::string& compute) {
  auto it = pools_.find(compute);
  if (it != pools_.end()) return &it->second;
  if (compute == "local") {
    Pool& p = pools_["local"];
    p.capacity = local_slots_;
    return &p;
  }
  auto c = store_->GetCompute(compute);
  if (!c.ok()) return nullptr;
  auto parsed = spec::ComputeSpecFromJson(c->spec);
  if (!parsed.ok())
    return nullptr;  // a record this server wrote; unreadable only if the file was edited
  spec::ComputeSpec cs = *parsed;
  Pool& p = pools_[compute];
  p.capacity = CapacityOf(cs);
  return &p;
}

namespace {
// How long Slurm may go on holding a job whose supervisor recorded its end before Cairn ends it
// anyway.
constexpr long long kSlurmCompletingGraceMs = 10000;

// A job takes one slot per instance, or what resources.properties.slots asks for.
int SlotsFor(const spec::JobSpec& s) {
  if (s.resources_properties.contains("slots") &&
      s.resources_properties["slots"].is_number_integer())
    return std::max(1, s.resources_properties["slots"].get<int>());
  return s.instance_count;
}

std::string DatastoreName(const std::string& uri) {
  // azureml://datastores/<name>/paths/...
  std::string rest = uri.substr(std::string("azureml://datastores/").size());
  return rest.substr(0, rest.find('/'));
}
}  // namespace

namespace {
// How many later jobs may start before one that waits for GPUs; then the queue waits for it (no
// starving).
constexpr int kMaxPassed = 8;
}  // namespace

std::string Scheduler::QueueReason(const std::string& compute, int need, size_t ahead) {
  Pool& p = pools_[compute];
  std::string unit = compute == "local" ? "CPU slot" : "node";
  return "waiting for " + std::to_string(need) + " " + unit + (need == 1 ? "" : "s") + " on " +
         compute + " (" + std::to_string(p.in_use) + " of " + std::to_string(p.capacity) +
         " in use" + (ahead > 0 ? ", " + std::to_string(ahead) + " queued ahead" : "") + ")";
}

void Scheduler::QueueInfo(const JobRecord& job, Queued& q) const {
  // Fair share is between people on a team server; a person's own server shares between their
  // experiments.
  q.owner = config_.run_as_submitter ? job.created_by : "experiment " + job.experiment_name;
  json qs = job.spec.value("queue_settings", json::object());
  if (!qs.is_object()) return;
  if (auto p = ParsePriority(qs.value("priority", ""))) q.priority = *p;
  if (auto t = ParseTier(qs.value("job_tier", ""))) q.tier = *t;
}

void Scheduler::Enqueue(const std::string& compute, const JobRecord& job, int slots, int gpus,
                        long long timeout_s) {
  Pool* pool = PoolFor(compute);
  const std::string& name = job.name;
  Queued q;
  q.name = name;
  q.slots = slots;
  q.gpus = gpus;
  q.timeout_ms = timeout_s > 0 ? timeout_s * 1000 : 0;
  QueueInfo(job, q);
  q.enqueued_ms = NowMillis();
  pool->queue.push_back(std::move(q));
  std::lock_guard<std::mutex> l(live_.mu);
  long long t = live_.next_ticket++;
  live_.ticket_of[name] = {compute, t, slots};
  live_.tickets[compute].insert(t);
  if (gpus > 0) live_.gpus_needed[name] = gpus;
}

void Scheduler::Dequeued(const std::string& name) {
  std::lock_guard<std::mutex> l(live_.mu);
  live_.gpus_needed.erase(name);
  live_.policy_reason.erase(name);
  auto it = live_.ticket_of.find(name);
  if (it == live_.ticket_of.end()) return;
  live_.tickets[std::get<0>(it->second)].erase(std::get<1>(it->second));
  live_.ticket_of.erase(it);
}

void Scheduler::PublishUsage(const std::string& compute) {
  Pool* pool = PoolFor(compute);
  if (!pool) return;
  std::lock_guard<std::mutex> l(live_.mu);
  live_.usage[compute] = {pool->in_use, pool->capacity};
}

std::string Scheduler::LiveQueueReason(const std::string& job) {
  std::lock_guard<std::mutex> l(live_.mu);
  auto it = live_.ticket_of.find(job);
  if (it == live_.ticket_of.end()) return "";
  const auto& [compute, ticket, need] = it->second;
  if (auto r = live_.policy_reason.find(job); r != live_.policy_reason.end()) return r->second;
  const auto& set = live_.tickets[compute];
  size_t ahead = static_cast<size_t>(std::distance(set.begin(), set.lower_bound(ticket)));
  auto [in_use, capacity] = live_.usage[compute];
  if (auto g = live_.gpus_needed.find(job);
      g != live_.gpus_needed.end() && in_use + need <= capacity) {
    // Its slots are there: it waits for GPUs.
    int busy = 0;
    std::vector<std::string> holders;
    for (const auto& h : live_.gpus)
      if (!h.job.empty()) {
        ++busy;
        if (std::find(holders.begin(), holders.end(), h.job) == holders.end())
          holders.push_back(h.job);
      }
    // Or its GPUs are free, and the queue waits for an older job's.
    if (auto r = live_.reserved.find(compute);
        r != live_.reserved.end() && r->second.ticket < ticket &&
        g->second <= static_cast<int>(live_.gpus.size()) - busy) {
      const auto& res = r->second;
      std::string pass;
      if (res.shadow != std::numeric_limits<long long>::max()) {
        long long left = std::max(0LL, (res.shadow - NowMillis()) / 1000);
        pass = "; a job whose limits.timeout ends it within " + std::to_string(left) +
               " s (when the running jobs' "
               "timeouts free its GPUs) may pass it";
      } else {
        pass =
            "; the jobs holding GPUs have no limits.timeout, so no job that needs GPUs passes it";
      }
      return "waiting behind " + res.job + ", which needs " + Plural(res.gpus, "GPU") + " on " +
             compute + " and goes first (" + std::to_string(kMaxPassed) +
             " later jobs have passed it)" + pass;
    }
    return "waiting for " + Plural(g->second, "GPU") + " on " + compute + " (" +
           std::to_string(busy) + " of " + std::to_string(live_.gpus.size()) + " in use" +
           (holders.empty() ? "" : " by " + Join(holders, ", ")) +
           (ahead > 0 ? ", " + std::to_string(ahead) + " queued ahead" : "") + ")";
  }
  std::string unit = compute == "local" ? "CPU slot" : "node";
  return "waiting for " + std::to_string(need) + " " + unit + (need == 1 ? "" : "s") + " on " +
         compute + " (" + std::to_string(in_use) + " of " + std::to_string(capacity) + " in use" +
         (ahead > 0 ? ", " + std::to_string(ahead) + " queued ahead" : "") + ")";
}

// The name a new job gets: its own (checked: valid, not taken), or a generated one.
Result<std::string> Scheduler::NameFor(const spec::JobSpec& s, bool dry_run) {
  std::string name = s.name;
  if (name.empty() && dry_run) {
    name = "validation";  // a name is given when the job is made
  } else if (name.empty()) {
    do name = GenerateJobName();
    while (store_->Get(name).ok());
  } else if (!IsValidName(name)) {
    return InvalidArgument("'" + name + "' is not a valid job name");
  } else if (store_->Get(name).ok()) {
    return AlreadyExists("a job named '" + name +
                         "' already exists in this workspace; choose another --name");
  }
  return name;
}

// Whether `s` can ever run on `compute`: the compute exists, the job fits its slots or nodes and
// this machine's GPUs. Sets the CPU slots and GPUs it will hold.
Status Scheduler::CheckPlacement(const spec::JobSpec& s, const json& raw_spec,
                                 const std::string& compute, int& slots, int& gpus) {
  Pool* pool = PoolFor(compute);
  if (!pool) {
    return FailedPrecondition("compute '" + compute +
                              "' does not exist in this workspace; create it with: "
                              "cairn compute create --name " +
                              compute + " --type amlcompute --min-instances 0 --max-instances 4");
  }
  if (s.distribution.is_object() && s.distribution.value("type", "") == "ray") {
    return InvalidArgument(
        "distribution.type: ray is not supported yet (supported: pytorch, tensorflow, mpi)");
  }
  slots = SlotsFor(s);
  if (auto target = SlurmTargetFor(compute)) {
    auto c = store_->GetCompute(compute);
    int max_nodes = c.ok() ? c->spec.value("max_instances", 4) : 4;
    if (s.instance_count > max_nodes)
      return InvalidArgument("resources.instance_count: the job asks for " +
                             std::to_string(s.instance_count) + " nodes but compute '" + compute +
                             "' allows at most " + std::to_string(max_nodes) + " (max_instances)");
  }
  if (slots > pool->capacity) {
    return InvalidArgument("resources.instance_count: the job needs " + std::to_string(slots) +
                           " " + (compute == "local" ? "CPU slots" : "nodes") + " but compute '" +
                           compute + "' has at most " + std::to_string(pool->capacity));
  }
  // GPUs: a job that asks for more than this machine has can never start.
  gpus = 0;
  if (RunsHere(compute)) {
    auto c = compute == "local" ? Result<store::ComputeRecord>(NotFound(""))
                                : store_->GetCompute(compute);
    GpuRequest g = RequestOf(raw_spec, c.ok() ? &c->spec : nullptr);
    gpus = g.Total();
    if (gpus > static_cast<int>(config_.gpus.size()))
      return InvalidArgument(
          g.from + ": " + g.shape + " asks for " + Plural(g.per_instance, "GPU") + " per instance" +
          (g.instances > 1
               ? " (" + std::to_string(gpus) + " for " + std::to_string(g.instances) + " instances)"
               : "") +
          " but compute '" + compute + "' has " +
          Plural(static_cast<long long>(config_.gpus.size()), "GPU") +
          " (this machine's; CAIRN_GPUS declares them where discovery cannot see them)");
    // On the local compute a GPU job is bounded by its GPUs, not by CPU slots: CPU-only jobs keep
    // theirs (4 GPUs and 2 CPUs run two 2-GPU jobs and two CPU jobs at once).
    if (gpus > 0 && compute == "local") slots = 0;
  }
  return Status::Ok();
}

// Each input can be delivered: uploaded local data, a URL of the right kind, an asset, datastore or
// job output that resolves, cloud storage only passed as is.
Status Scheduler::CheckInputs(const spec::JobSpec& s, SubmitRequest& r) {
  for (const auto& [in_name, in] : s.inputs) {
    if (in.literal) continue;
    std::string f = "inputs." + in_name;
    switch (in.path_kind) {
      case spec::PathKind::kLocal:
        if (r.dry_run) break;  // validation uploads nothing
        if (!r.input_manifests.count(in_name) ||
            !store_->GetSnapshot(r.input_manifests[in_name]).ok())
          return InvalidArgument(f + ": the local data at " + in.path +
                                 " was not uploaded with the job");
        break;
      case spec::PathKind::kHttp:
        if (in.type == "uri_folder" && in.mode != "direct")
          return InvalidArgument(f + ": a uri_folder cannot be read from an http(s) URL (" +
                                 in.path + "); use type: uri_file, or mode: direct");
        break;
      case spec::PathKind::kAsset:
      case spec::PathKind::kDatastore:
      case spec::PathKind::kJobOutput:
      case spec::PathKind::kRuns: {
        bool model =
            in.type == "mlflow_model" || in.type == "custom_model" || in.type == "triton_model";
        auto loc = Locate(f, in.path, model ? "model" : "data");
        if (!loc.ok()) return loc.status();
        if ((in.mode == "eval_mount" || in.mode == "eval_download") && loc->kind == "http")
          return InvalidArgument(f + ": an MLTable is a folder; " + in.path + " is a URL");
        break;
      }
      case spec::PathKind::kCloud:
        if (in.mode != "direct")
          return FailedPrecondition(
              f + ": cloud storage (" + in.path +
              ") cannot be reached from this workspace; use a local path or an "
              "http(s) URL, or mode: direct to pass the URI as is");
        break;
      case spec::PathKind::kNone:
        if (!in.optional) return InvalidArgument(f + ": no path");
        break;
    }
  }
  return Status::Ok();
}

// Each named output's path, when it has one, is a folder of an existing datastore.
Status Scheduler::CheckOutputs(const spec::JobSpec& s) {
  for (const auto& [out_name, out] : s.outputs) {
    if (out.path.empty()) continue;
    if (spec::ClassifyPath(out.path) != spec::PathKind::kDatastore)
      return InvalidArgument("outputs." + out_name +
                             ".path: an output's path must be a datastore URI "
                             "(azureml://datastores/<name>/paths/<path>), got \"" +
                             out.path + "\"");
    if (DatastoreFolder(DatastoreName(out.path)).empty())
      return FailedPrecondition("outputs." + out_name + ".path: datastore '" +
                                DatastoreName(out.path) + "' does not exist in this workspace (" +
                                out.path + ")");
    if (out.path.find("/paths/") == std::string::npos ||
        std::string("/" + out.path + "/").find("/../") != std::string::npos)
      return InvalidArgument("outputs." + out_name +
                             ".path: expected azureml://datastores/<name>/paths/<path>, got \"" +
                             out.path + "\"");
  }
  return Status::Ok();
}

// The record of a new job, from its parsed spec and what the request brought with it.
JobRecord Scheduler::RecordFor(spec::JobSpec& s, const SubmitRequest& r, const std::string& name,
                               const std::string& compute, int slots) {
  JobRecord job;
  job.name = name;
  job.type = s.type;
  job.display_name = s.display_name.empty() ? name : s.display_name;
  job.experiment_name = s.experiment_name.empty() ? "Default" : s.experiment_name;
  job.description = s.description;
  job.compute = compute;
  s.name = name;
  json spec_json = spec::ToJson(s);
  spec_json["input_snapshots"] = r.input_manifests;
  if (r.spec.contains("hyperparameters"))
    spec_json["hyperparameters"] = r.spec["hyperparameters"];  // a trial's
  for (const char* k : {"pipeline_step", "attempt", "reuse"})  // a pipeline step's
    if (r.spec.contains(k)) spec_json[k] = r.spec[k];
  if (!r.mlflow_experiment_id.empty()) spec_json["mlflow_experiment_id"] = r.mlflow_experiment_id;
  job.spec = spec_json;
  job.source_yaml = r.source_yaml;
  job.snapshot = r.snapshot;
  job.tags = s.tags;
  job.properties = s.properties;
  job.slots = slots;
  if (!r.dry_run) job.token = RandomHex(24);
  job.created_at = NowMillis();
  job.status = "Starting";
  job.parent = r.parent;
  job.created_by = r.created_by;
  if (s.type == "sweep" || s.type == "pipeline")
    job.slots = 0;  // the trials (steps) take the slots
  return job;
}

// A sweep or pipeline: recorded Running at once, its first trials or steps launched.
Result<JobRecord> Scheduler::StartParent(const JobRecord& job, const spec::JobSpec& s) {
  const std::string& name = job.name;
  if (s.type == "pipeline") {
    long long now = NowMillis();
    Status st = store_->Insert(job, {{"NotStarted", "submitted", job.created_at},
                                     {"Starting", "accepted by the workspace", job.created_at}});
    if (!st.ok()) return st;
    (void)Transition(
        name, "Running",
        "pipeline started: " +
            Plural(static_cast<long long>(s.pipeline.value("steps", json::array()).size()), "step"),
        now);
    pipelines_[name].loaded = true;  // a new pipeline has no step jobs yet
    PipelineStep(name);
    return store_->Get(name);
  }
  if (s.type == "sweep") {
    long long now = NowMillis();
    Status st = store_->Insert(job, {{"NotStarted", "submitted", job.created_at},
                                     {"Starting", "accepted by the workspace", job.created_at}});
    if (!st.ok()) return st;
    (void)Transition(name, "Running", "sweep started", now);
    sweeps_[name].loaded = true;  // a new sweep has no trials yet
    SweepStep(name);
    return store_->Get(name);
  }
  return store_->Get(name);
}

// A command job: recorded, then queued on its compute, started now or told why it waits.
Result<JobRecord> Scheduler::Admit(const JobRecord& job, const std::string& compute, int slots,
                                   int gpus, long long timeout_seconds) {
  const std::string& name = job.name;
  Pool* pool = PoolFor(compute);
  Status st = store_->Insert(job, {{"NotStarted", "submitted", job.created_at},
                                   {"Starting", "accepted by the workspace", job.created_at}});
  if (!st.ok()) return st;
  events_.Bump();
  Enqueue(compute, job, slots, gpus, timeout_seconds);
  // A job that can start at once is started right after its answer goes out (the next task of this
  // thread), so the client has the job while its supervisor starts; one that must wait is Queued
  // now.
  if (Pool* p = PoolFor(compute);
      p && p->queue.size() == 1 && p->in_use + slots <= p->capacity && gpus <= FreeGpus()) {
    Post([this, compute] { Schedule(compute); });
    return store_->Get(name);
  }
  Schedule(compute);
  if (live_.ticket_of.count(name)) {  // still waiting; reads of live_ from this thread need no lock
    bool slots_free = pool->in_use + slots <= pool->capacity;
    (void)Transition(name, "Queued",
                     slots_free && gpus > FreeGpus()
                         ? GpuWaitReason(compute, gpus)
                         : QueueReason(compute, slots, pool->queue.size() - 1));
  }
  return store_->Get(name);
}

Result<JobRecord> Scheduler::DoSubmit(SubmitRequest& r) {
  auto parsed = spec::JobSpecFromJson(r.spec);
  if (!parsed.ok()) return parsed.status();
  spec::JobSpec s = std::move(parsed).value();
  auto name = NameFor(s, r.dry_run);
  if (!name.ok()) return name.status();
  std::string compute = s.compute.empty() ? "local" : s.compute;
  int slots = 0, gpus = 0;
  if (Status placed = CheckPlacement(s, r.spec, compute, slots, gpus); !placed.ok()) return placed;
  if (Status in = CheckInputs(s, r); !in.ok()) return in;
  if (Status out = CheckOutputs(s); !out.ok()) return out;
  if (!r.dry_run && !r.snapshot.empty() && !store_->GetSnapshot(r.snapshot).ok())
    return InvalidArgument("code snapshot " + r.snapshot + " was not uploaded");
  JobRecord job = RecordFor(s, r, *name, compute, slots);
  if (s.type == "pipeline") {
    if (Status v = ValidatePipeline(s, r); !v.ok()) return v;
  }
  if (r.dry_run) return job;
  if (s.type == "pipeline" || s.type == "sweep") return StartParent(job, s);
  return Admit(job, compute, slots, gpus, s.timeout_seconds);
}

void Scheduler::ChargeUsage(long long now) {
  if (charged_at_ > 0 && now > charged_at_) {
    double dt = static_cast<double>(now - charged_at_) / 1000.0;
    for (const auto& [name, h] : holding_)
      usage_.Charge(h.job.owner, h.job.gpus * dt, h.job.slots * dt, now);
  }
  charged_at_ = now;
}

void Scheduler::Schedule(const std::string& compute) {
  Pool* pool = PoolFor(compute);
  if (!pool) return;
  // The policy (policy.h) decides from the pool as it is: what runs (this pool's slots, and the
  // machine's GPUs whichever pool holds them), what waits, and each owner's usage.
  long long now = NowMillis();
  ChargeUsage(now);
  PoolState s;
  s.compute = compute;
  s.now_ms = now;
  s.slot_capacity = pool->capacity;
  s.gpu_capacity = static_cast<int>(config_.gpus.size());
  s.kill_grace_ms = config_.kill_grace_ms;
  s.max_passed = kMaxPassed;
  s.usage = usage_.All(now);
  if (config_.quotas) s.quotas = config_.quotas(compute);
  int slots_known = 0, gpus_known = 0;
  for (const auto& [name, h] : holding_) {
    RunningJob r = h.job;
    if (h.compute != compute) r.slots = 0;
    slots_known += r.slots;
    gpus_known += r.gpus;
    auto e = expected_end_.find(name);
    r.expected_end_ms = e == expected_end_.end() ? 0 : e->second;
    s.running.push_back(std::move(r));
  }
  // What runs that this server did not start (adopted after a restart): held, never taken.
  RunningJob other;
  other.job = "(running before this server started)";
  other.tier = Tier::kPremium;
  other.slots = std::max(0, pool->in_use - slots_known);
  other.gpus = std::max(0, static_cast<int>(gpu_holder_.size()) - gpus_known);
  if (other.slots > 0 || other.gpus > 0) s.running.push_back(other);
  s.stopping.assign(preempting_.begin(), preempting_.end());
  for (const Queued& q : pool->queue)
    s.waiting.push_back({q.name, q.owner, q.priority, q.tier, q.slots, q.gpus, q.enqueued_ms,
                         q.timeout_ms, q.passed});
  Plan plan = PlanPool(s);
  for (const auto& victim : plan.preempt) Preempt(victim, plan.preempt_for);
  // A job the policy holds back (its owner's quota) that was about to start is Queued, with why.
  for (const auto& [name, why] : plan.reasons)
    if (auto j = store_->GetBrief(name); j.ok() && j->status == "Starting")
      (void)Transition(name, "Queued", why);
  for (auto& q : pool->queue)
    if (auto p = plan.passed.find(q.name); p != plan.passed.end()) q.passed += p->second;
  for (const auto& name : plan.start) {
    // Starting one may end another (a failed start releases it, which schedules again): each is
    // looked for in the queue as it is now.
    auto it = std::find_if(pool->queue.begin(), pool->queue.end(),
                           [&](const Queued& q) { return q.name == name; });
    if (it == pool->queue.end()) continue;
    Queued next = *it;
    pool->queue.erase(it);
    Dequeued(next.name);
    auto job = store_->Get(next.name);
    if (!job.ok() || store::IsTerminalStatus(job->status) || job->status == "CancelRequested")
      continue;
    pool->in_use += next.slots;
    holding_[next.name] = {
        compute, {next.name, next.owner, next.priority, next.tier, next.slots, next.gpus, now, 0}};
    StartJob(*job);
  }
  PublishUsage(compute);
  std::lock_guard<std::mutex> l(live_.mu);
  for (const Queued& q : pool->queue) {
    if (auto r = plan.reasons.find(q.name); r != plan.reasons.end())
      live_.policy_reason[q.name] = r->second;
    else
      live_.policy_reason.erase(q.name);
  }
  if (!plan.reservation) {
    live_.reserved.erase(compute);
  } else if (auto t = live_.ticket_of.find(plan.reservation->job); t != live_.ticket_of.end()) {
    live_.reserved[compute] = {
        plan.reservation->job, std::get<1>(t->second), plan.reservation->gpus,
        plan.reservation->shadow_ms > 0 ? plan.reservation->shadow_ms
                                        : std::numeric_limits<long long>::max()};
  }
}

void Scheduler::StartJob(const JobRecord& job) {
  std::vector<std::string> notices;
  std::vector<std::vector<int>> held;
  if (RunsHere(job.compute)) held = HoldGpus(job.name, RequestFor(job));
  auto run = BuildRunFile(job, notices, held);
  if (!run.ok()) {
    FailJob(job.name, run.status().message());
    return;
  }
  std::string reason = notices.empty() ? "preparing the working directory" : notices.front();
  (void)Transition(job.name, "Preparing", reason);
  compute::RunLayout layout = compute::RunLayout::For(config_.workspace, job.name);
  if (auto target = SlurmTargetFor(job.compute)) {
    StartSlurmJob(job, std::move(*run), *target);
    return;
  }
  Status s = MakeDirs(layout.SystemLogDir());
  // Written in place: nothing reads it before the supervisor starts, and a rerun rewrites it.
  if (s.ok()) s = WriteFile(layout.JobFile(), run->dump(2), 0600);
  if (!s.ok()) {
    FailJob(job.name, "cannot write the run folder: " + s.message());
    return;
  }
  Result<pid_t> pid = Unavailable("");
  if (!spawner_) {
    if (!settings::Is("CAIRN_SPAWNER", "off"))
      spawner_ = std::make_unique<compute::SupervisorSpawner>(config_.self_exe);
  }
  if (spawner_) pid = spawner_->Spawn(layout.root, layout.SupervisorLog());
  if (!pid.ok()) {
    if (spawner_ && !pid.status().message().empty())
      fprintf(stderr, "%s cairn server: %s; starting the supervisor directly\n",
              IsoTime(NowMillis()).c_str(), pid.status().message().c_str());
    pid = compute::SpawnDetached({config_.self_exe, "supervise", layout.root},
                                 layout.SupervisorLog());
    if (pid.ok()) children_.insert(*pid);
  }
  if (!pid.ok()) {
    FailJob(job.name, pid.status().message());
    return;
  }
  json gpus = json::array();
  for (const auto& instance : held) gpus.push_back(instance);
  (void)store_->SetSupervisorPid(job.name, *pid,
                                 held.empty() || gpus[0].empty() ? json::array() : gpus);
  if (long long t = run->value("timeout_seconds", 0LL); t > 0 && gpus_of_.count(job.name)) {
    timeout_ms_[job.name] = t * 1000;
    expected_end_[job.name] = std::numeric_limits<long long>::max();
  }
  running_pids_[job.name] = *pid;
  spawned_at_[job.name] = NowMillis();
}

// The GPUs each instance holds (index and UUID): its processes see those only. Sets the most any
// instance holds.
json Scheduler::HeldGpus(const std::vector<std::vector<int>>& gpus, size_t& per_instance) {
  per_instance = 0;
  json held = json::array();
  for (const auto& instance : gpus) {
    json list = json::array();
    for (int idx : instance) {
      auto g = std::find_if(config_.gpus.begin(), config_.gpus.end(),
                            [&](const compute::Gpu& x) { return x.index == idx; });
      list.push_back({{"index", idx}, {"uuid", g == config_.gpus.end() ? "" : g->uuid}});
    }
    per_instance = std::max(per_instance, instance.size());
    held.push_back(list);
  }
  return held;
}

// Where each input is delivered, for the supervisor (`inputs`), and what the command and the
// environment see of it (`values`, `env`).
Status Scheduler::RunInputs(const JobRecord& job, const spec::JobSpec& s,
                            const compute::RunLayout& layout, std::vector<std::string>& notices,
                            std::map<std::string, std::string>& values, json& env, json& inputs) {
  json snapshots = job.spec.value("input_snapshots", json::object());
  bool on_slurm = SlurmTargetFor(job.compute).has_value();
  for (const auto& [name, in] : s.inputs) {
    std::string key = "inputs." + name;
    if (in.literal) {
      if (!(in.optional && in.value.empty())) values[key] = in.value;
      continue;
    }
    std::string dir = layout.Input(name);
    std::string target;
    json item;
    if (in.path_kind == spec::PathKind::kNone) continue;
    if (in.mode == "direct" &&
        (in.path_kind == spec::PathKind::kHttp || in.path_kind == spec::PathKind::kCloud)) {
      target = in.path;  // the URI as is: the command reads it itself
    } else {
      DataLocation loc;
      if (in.path_kind == spec::PathKind::kLocal) {
        loc.kind = "blobs";
        loc.snapshot = snapshots.value(name, "");
      } else {
        bool model =
            in.type == "mlflow_model" || in.type == "custom_model" || in.type == "triton_model";
        auto l = Locate("inputs." + name, in.path, model ? "model" : "data");
        if (!l.ok()) return l.status();
        loc = *l;
        if (!loc.asset.empty())
          notices.push_back("inputs." + name + ": " + in.path + " is " + loc.asset);
      }
      auto it = InputItem(name, in, loc, dir, on_slurm, target);
      if (!it.ok()) return it.status();
      item = *it;
    }
    if (item.contains("kind")) {
      item["target"] = target;
      inputs.push_back(item);
    }
    values[key] = target;
    env["AZURE_ML_INPUT_" + name] = target;
    env["AZUREML_DATAREFERENCE_" + name] = target;
  }
  return Status::Ok();
}

// Each named output's folder (its datastore path, or the run's own), and what the command and the
// environment see of it.
json Scheduler::RunOutputs(const spec::JobSpec& s, const compute::RunLayout& layout,
                           std::map<std::string, std::string>& values, json& env) {
  json outputs = json::array();
  for (const auto& [name, out] : s.outputs) {
    std::string dir = layout.Output(name);
    if (!out.path.empty()) {
      // A datastore path: the job writes there directly (rw_mount), and the output is read from
      // there.
      std::string rest = out.path.substr(out.path.find("/paths/") + 7);
      while (!rest.empty() && rest.back() == '/') rest.pop_back();
      dir = DatastoreFolder(DatastoreName(out.path)) + (rest.empty() ? "" : "/" + rest);
    }
    outputs.push_back(dir);
    std::string target = out.type == "uri_file" ? dir + "/" + name : dir;
    values["outputs." + name] = target;
    env["AZURE_ML_OUTPUT_" + name] = target;
  }
  return outputs;
}

// The job's environment: its own variables, Azure ML's, its MLflow run's, the helper on PYTHONPATH.
void Scheduler::AddJobEnvironment(const JobRecord& job, const spec::JobSpec& s,
                                  const compute::RunLayout& layout, json& env, json& run) {
  for (const auto& [k, v] : s.environment_variables) env[k] = v;
  std::string compute_name = job.compute;
  env["AZUREML_RUN_ID"] = job.name;
  // Which attempt this is (1, then one more each time the job is preempted and resumes): a script
  // that saves checkpoints in outputs/ resumes from its last one when this is above 1.
  env["CAIRN_JOB_ATTEMPT"] = std::to_string(job.properties.value("attempt", 1));
  env["AZUREML_ARM_SUBSCRIPTION"] = "00000000-0000-0000-0000-000000000000";
  env["AZUREML_ARM_RESOURCEGROUP"] = "cairn";
  env["AZUREML_ARM_WORKSPACE_NAME"] = "cairn";
  env["AZUREML_ARM_PROJECT_NAME"] = job.experiment_name;
  env["AZUREML_EXPERIMENT_ID"] = job.experiment_name;
  env["AZUREML_RUN_TOKEN"] = job.token;
  env["AZUREML_SERVICE_ENDPOINT"] = config_.server_url;
  env["AZUREML_DISCOVERY_SERVICE_ENDPOINT"] = config_.server_url;
  env["AZUREML_CR_COMPUTE_CONTEXT"] = json{{"cluster_name", compute_name}}.dump();
  env["AZUREML_CR_NODE_RANK"] = "0";
  env["AZUREML_CR_EXECUTION_WORKING_DIR_PATH"] = layout.WorkDir();
  env["AZUREML_CR_HT_CAP_user_logs_PATH"] = layout.Artifacts() + "/user_logs";
  env["AZUREML_CR_HT_CAP_logs_PATH"] = layout.Artifacts() + "/logs";
  env["AZUREML_COMPUTE_USE_COMMON_RUNTIME"] = "true";
  env["AZUREML_NODE_COUNT"] = std::to_string(s.instance_count);
  env["AZ_BATCHAI_CLUSTER_NAME"] = compute_name;
  env["AZ_BATCH_NODE_ID"] = "node-0";
  // The job's MLflow run: the unmodified mlflow client logs to it with no configuration.
  env["MLFLOW_TRACKING_URI"] = config_.server_url;
  env["MLFLOW_RUN_ID"] = job.name;
  env["MLFLOW_EXPERIMENT_NAME"] = job.experiment_name;
  if (job.spec.contains("mlflow_experiment_id"))
    env["MLFLOW_EXPERIMENT_ID"] = job.spec["mlflow_experiment_id"];
  env["MLFLOW_TRACKING_TOKEN"] = job.token;
  if (!config_.python_helper_dir.empty()) {
    // The job's own PYTHONPATH (environment_variables) first, then the helper, then the server's.
    std::string path;
    auto add = [&](const std::string& p) {
      if (!p.empty()) path += (path.empty() ? "" : ":") + p;
    };
    auto own = s.environment_variables.find("PYTHONPATH");
    if (own != s.environment_variables.end()) add(own->second);
    add(config_.python_helper_dir);
    const char* pp = getenv("PYTHONPATH");
    if (own == s.environment_variables.end() && pp) add(pp);
    env["PYTHONPATH"] = path;
    run["python_helper_dir"] =
        config_.python_helper_dir;  // the sandbox shows it to the job, read-only
  }
  env["CAIRN_JOB_NAME"] = job.name;
  env["CAIRN_RUN_DIR"] = layout.root;
}

Result<json> Scheduler::BuildRunFile(const JobRecord& job, std::vector<std::string>& notices,
                                     const std::vector<std::vector<int>>& gpus) {
  auto parsed = spec::JobSpecFromJson(job.spec);
  if (!parsed.ok()) return parsed.status();
  spec::JobSpec s = std::move(parsed).value();
  // Where the machine has GPUs, a job that holds none sees none (CUDA_VISIBLE_DEVICES empty), as
  // Slurm and Kubernetes hide unrequested devices.
  size_t per_instance = 0;
  json held = HeldGpus(gpus, per_instance);
  compute::RunLayout layout = compute::RunLayout::For(config_.workspace, job.name);
  json run;
  run["name"] = job.name;
  run["server_url"] = config_.server_url;
  run["workspace"] = config_.workspace;
  run["supervisor_token"] = SupervisorCredential(config_.secret, job.token);
  if (config_.run_as_submitter) {
    auto who = AccountOf(job.created_by);
    if (!who.ok())
      return FailedPrecondition(
          "the job runs as the person who submitted it, and " +
          (job.created_by.empty() ? std::string("it names nobody") : who.status().message()));
    run["run_as"] = {
        {"user", job.created_by}, {"uid", who->uid}, {"gid", who->gid}, {"groups", who->groups}};
  }
  run["blob_root"] = config_.workspace + "/blobs";
  run["timeout_seconds"] = s.timeout_seconds;
  run["max_log_bytes"] = config_.max_log_bytes;
  run["system_metrics_seconds"] = config_.system_metrics_seconds;
  run["kill_grace_ms"] = config_.kill_grace_ms;
  if (!job.snapshot.empty()) {
    auto m = store_->GetSnapshot(job.snapshot);
    if (!m.ok()) return m.status();
    run["snapshot"] = json::parse(*m);
  }
  if (json c = ContainerFor(job, s, notices); !c.empty()) run["container"] = c;

  std::map<std::string, std::string> values;  // "inputs.x" -> what the command sees
  json env = json::object();
  json inputs = json::array();
  if (Status in = RunInputs(job, s, layout, notices, values, env, inputs); !in.ok()) return in;
  json outputs = RunOutputs(s, layout, values, env);
  auto command = spec::Substitute(
      s.command, [&](const std::string& ctx, const std::string& n) -> std::optional<std::string> {
        auto it = values.find(ctx + "." + n);
        if (it == values.end()) return std::nullopt;
        return it->second;
      });
  if (!command.ok()) return InvalidArgument("command: " + command.status().message());
  run["command"] = *command;
  // Azure ML's advice for GPU sizes: one process per GPU, so an omitted process_count_per_instance
  // is the instance's GPU count.
  json dist = s.distribution;
  if (per_instance > 0 && dist.is_object() && !dist.contains("process_count_per_instance") &&
      (dist.value("type", "") == "pytorch" || dist.value("type", "") == "mpi"))
    dist["process_count_per_instance"] = static_cast<int>(per_instance);
  run["distribution"] = compute::ToJson(compute::PlanFor(dist, s.instance_count));
  if (per_instance > 0) run["gpus"] = held;
  if (!config_.gpus.empty() && RunsHere(job.compute)) run["hide_gpus"] = true;
  run["inputs"] = inputs;
  run["outputs"] = outputs;
  run["notices"] = notices;

  AddJobEnvironment(job, s, layout, env, run);
  run["env"] = env;
  return run;
}

void Scheduler::Release(const JobRecord& job) {
  bool was_running = running_pids_.erase(job.name) > 0;
  was_running = slurm_.erase(job.name) > 0 || was_running;
  spawned_at_.erase(job.name);
  expected_end_.erase(job.name);
  timeout_ms_.erase(job.name);
  FreeGpusOf(job.name);
  holding_.erase(job.name);
  Pool* pool = PoolFor(job.compute);
  if (!pool) return;
  if (was_running) pool->in_use = std::max(0, pool->in_use - job.slots);
  pool->queue.erase(std::remove_if(pool->queue.begin(), pool->queue.end(),
                                   [&](const Queued& q) { return q.name == job.name; }),
                    pool->queue.end());
  Dequeued(job.name);
  Schedule(job.compute);
}

void Scheduler::Preempt(const std::string& name, const std::string& for_job) {
  if (preempting_.count(name)) return;
  auto job = store_->Get(name);
  auto pid = running_pids_.find(name);
  if (!job.ok() || pid == running_pids_.end() || job->status == "CancelRequested") return;
  preempting_.insert(name);
  job->properties["preempted_for"] = for_job;
  (void)store_->UpdateMeta(*job);
  fprintf(stderr, "%s cairn server: job %s is preempted for %s\n", IsoTime(NowMillis()).c_str(),
          name.c_str(), for_job.c_str());
  std::string run_dir = compute::RunLayout::For(config_.workspace, name).root;
  if (compute::IsAliveWithMarker(static_cast<pid_t>(pid->second), run_dir))
    kill(static_cast<pid_t>(pid->second), SIGTERM);
}

std::optional<std::string> Scheduler::RetryReason(const JobRecord& job, const std::string& outcome,
                                                  std::optional<long long> code,
                                                  const std::string& why) {
  if (outcome != "failed" && outcome != "timeout") return std::nullopt;
  json props = job.spec.value("properties", json::object());
  if (!props.is_object()) return std::nullopt;
  int max = atoi(props.value("cairn.max_retries", "0").c_str());
  int done = job.properties.value("retries", 0);
  if (done >= max) return std::nullopt;
  // Only the exit codes it names, when it names some (a job whose node was lost has none: tried
  // again).
  if (std::string codes = props.value("cairn.retry_exit_codes", ""); !codes.empty() && code) {
    bool listed = false;
    for (const auto& c : Split(codes, ','))
      if (atoll(Trim(c).c_str()) == *code) listed = true;
    if (!listed) return std::nullopt;
  }
  return (outcome == "timeout" ? "timed out" : "failed") + std::string(" (") + why.substr(0, 300) +
         "); retry " + std::to_string(done + 1) + " of " + std::to_string(max);
}

void Scheduler::Requeue(const JobRecord& given, const std::string& reason, bool retry) {
  JobRecord job = given;
  const std::string& name = job.name;
  auto old = running_pids_.find(name);
  long long last_supervisor = old == running_pids_.end() ? 0 : old->second;
  preempting_.erase(name);
  running_pids_.erase(name);
  spawned_at_.erase(name);
  expected_end_.erase(name);
  timeout_ms_.erase(name);
  FreeGpusOf(name);
  holding_.erase(name);
  Pool* pool = PoolFor(job.compute);
  if (pool) pool->in_use = std::max(0, pool->in_use - job.slots);
  compute::RunLayout layout = compute::RunLayout::For(config_.workspace, name);
  unlink(layout.ExitFile().c_str());
  int attempt = job.properties.value("attempt", 1) + 1;
  job.properties["attempt"] = attempt;
  if (retry) job.properties["retries"] = job.properties.value("retries", 0) + 1;
  job.properties.erase("preempted_for");
  (void)store_->UpdateMeta(job);
  (void)Transition(name, "Queued", reason + " (attempt " + std::to_string(attempt) + " follows)");
  events_.Bump();
  if (last_supervisor > 0 &&
      compute::IsAliveWithMarker(static_cast<pid_t>(last_supervisor), layout.root)) {
    requeue_after_exit_[name] = last_supervisor;
    return;
  }
  EnqueueAgain(name);
}

void Scheduler::EnqueueAgain(const std::string& name) {
  auto job = store_->Get(name);
  if (!job.ok() || job->status != "Queued") return;  // canceled meanwhile
  json limits = job->spec.value("limits", json::object());
  Enqueue(job->compute, *job, job->slots, RunsHere(job->compute) ? RequestFor(*job).Total() : 0,
          limits.is_object() ? limits.value("timeout", 0LL) : 0);
  Schedule(job->compute);
}

void Scheduler::FinishFromExitFile(const std::string& name, const std::string& unrecorded) {
  auto job = store_->Get(name);
  if (!job.ok() || store::IsTerminalStatus(job->status)) return;
  compute::RunLayout layout = compute::RunLayout::For(config_.workspace, name);
  auto text = ReadFile(layout.ExitFile());
  json exit = text.ok() ? ParseJsonOrDiscarded(*text) : json();
  if (!exit.is_object()) {
    FailJob(name, unrecorded.empty() ? "the supervisor left no readable exit record" : unrecorded);
    return;
  }
  std::string outcome = exit.value("outcome", "failed");
  std::string reason = exit.value("reason", "");
  // Stopped for a job that needed its GPUs: back to the queue, in the same run (a job that ended
  // on its own meanwhile ends as it did).
  if (std::string for_job = job->properties.value("preempted_for", "");
      !for_job.empty() && outcome == "canceled" && job->status != "CancelRequested") {
    Requeue(*job, "preempted for " + for_job + ", a job that needed its GPUs");
    return;
  }
  // A job that asked for retries (properties cairn.max_retries) goes back to the queue in the same
  // run, as a preempted one does. Not a Slurm compute's (Slurm requeues its own way).
  if (job->status != "CancelRequested" && !slurm_.count(name)) {
    std::optional<long long> exit_code;
    if (exit["exit_code"].is_number_integer()) exit_code = exit["exit_code"].get<long long>();
    if (auto why = RetryReason(*job, outcome, exit_code, reason)) {
      Requeue(*job, *why, /*retry=*/true);
      return;
    }
  }
  if (auto w = slurm_.find(name); w != slurm_.end() && !w->second.id.empty()) {
    // A Slurm job's processes are gone only once Slurm is done with it: until then the next poll of
    // Slurm finishes the job. After a grace Cairn takes the supervisor's word (a dead node never
    // confirms its cleanup, and Slurm may hold such a job RUNNING or COMPLETING for minutes). What
    // Slurm last said, from the poll (PollSlurm asks about every job at once; a query per finishing
    // job here would hold up the scheduler thread). "" when Slurm has forgotten the job.
    SlurmWatch& sw = w->second;
    compute::SlurmJobState st{sw.state, sw.reason, sw.nodes};
    bool known = !st.state.empty();
    if (known && !compute::SlurmStateIsFinal(st.state)) {
      if (!sw.completing_since) sw.completing_since = NowMillis();
      if (NowMillis() - sw.completing_since < kSlurmCompletingGraceMs) return;
    }
    if (outcome == "canceled" && job->status != "CancelRequested") {
      // Nobody asked Cairn to cancel: Slurm stopped the job (a node failed, its time limit,
      // preemption).
      std::string what = st.state;
      if (!st.reason.empty() && st.reason != "None") what += ", " + st.reason;
      if (what.empty()) what = compute::SlurmAccounting(sw.target, sw.id).value_or("");
      std::string down = compute::SlurmDownNodes(sw.target, st.nodes);
      if (!down.empty()) what += (what.empty() ? "" : "; ") + std::string("down nodes: ") + down;
      outcome = "failed";
      reason = "Slurm ended job " + sw.id + (what.empty() ? "" : " (" + what + ")") +
               " without a cancel from Cairn; its processes were stopped";
    }
  }
  long long ended = exit.value("ended_at", NowMillis());
  std::optional<long long> code;
  if (exit["exit_code"].is_number_integer()) code = exit["exit_code"].get<long long>();
  std::optional<long long> started;
  if (!job->start_time) started = exit.value("started_at", ended);
  // Finalizing and the final status land together: outputs are already in place when the supervisor
  // reports (./outputs is linked into the run's artifacts), so there is nothing to do in between.
  long long now = NowMillis();
  store::StatusEvent finalizing{"Finalizing", "the command ended; keeping outputs and logs", now};
  std::string error;
  store::StatusEvent last;
  if (outcome == "completed") {
    last = {"Completed", "the command exited with code 0", now};
  } else if (outcome == "canceled" || outcome == "timeout") {
    // A cancel with a reason of its own (a sweep's policy or its end) keeps it as the final reason.
    if (auto c = cancel_reason_.find(name); c != cancel_reason_.end() && outcome != "timeout")
      reason = c->second;
    cancel_reason_.erase(name);
    last = {"Canceled", reason, now};
    if (outcome == "timeout") error = reason;
  } else {
    last = {"Failed", reason, now};
    error = reason;
  }
  if (Status st = store_->Transition(name, std::vector<store::StatusEvent>{finalizing, last},
                                     started, ended, code, error);
      !st.ok()) {
    // Not recorded (a full disk): the job stays where it is, and the next tick, which finds its
    // supervisor gone, tries again, so it ends as soon as the store can take it.
    fprintf(stderr, "%s cairn server: cannot record the end of job %s: %s\n",
            IsoTime(NowMillis()).c_str(), name.c_str(), st.message().c_str());
    return;
  }
  if (last.status == "Completed") RegisterOutputAssets(*job);
  events_.Bump();
  if (config_.on_final) config_.on_final(name, last.status, now);
  Release(*job);
  NoteTrialStatus(name, last.status);
}

void Scheduler::FailJob(const std::string& name, const std::string& reason) {
  auto job = store_->Get(name);
  if (!job.ok() || store::IsTerminalStatus(job->status)) return;
  if (Status st =
          Transition(name, "Failed", reason, std::nullopt, NowMillis(), std::nullopt, reason);
      !st.ok()) {
    // Kept for the next tick to try again (see FinishFromExitFile).
    fprintf(stderr, "%s cairn server: cannot record that job %s failed: %s\n",
            IsoTime(NowMillis()).c_str(), name.c_str(), st.message().c_str());
    return;
  }
  Release(*job);
}

Status Scheduler::DoCancel(const std::string& name, const std::string& reason) {
  auto job = store_->Get(name);
  if (!job.ok()) return job.status();
  if (store::IsTerminalStatus(job->status))
    return FailedPrecondition("job '" + name + "' is already " + job->status +
                              "; only a job in progress can be canceled");
  const std::string why = reason.empty() ? "cancel requested" : reason;
  if (job->type == "sweep") {  // its trials are canceled by the sweep's next step, then it ends
    if (job->status != "CancelRequested") (void)Transition(name, "CancelRequested", why);
    SweepStep(name);
    return Status::Ok();
  }
  if (job->type == "pipeline") {  // likewise its steps
    if (job->status != "CancelRequested") (void)Transition(name, "CancelRequested", why);
    PipelineStep(name);
    return Status::Ok();
  }
  if (slurm_.count(name)) {
    CancelSlurmJob(*job, reason);
    return Status::Ok();
  }
  auto it = running_pids_.find(name);
  if (it == running_pids_.end()) {
    (void)Transition(name, "CancelRequested", why);
    (void)Transition(name, "Canceled", reason.empty() ? "canceled before it started" : reason,
                     std::nullopt, NowMillis());
    Release(*job);
    return Status::Ok();
  }
  if (job->status != "CancelRequested") (void)Transition(name, "CancelRequested", why);
  if (!reason.empty()) cancel_reason_[name] = reason;
  std::string run_dir = compute::RunLayout::For(config_.workspace, name).root;
  if (compute::IsAliveWithMarker(static_cast<pid_t>(it->second), run_dir)) {
    kill(static_cast<pid_t>(it->second), SIGTERM);
  } else if (PathExists(compute::RunLayout::For(config_.workspace, name).ExitFile())) {
    FinishFromExitFile(name);
  }
  return Status::Ok();
}

GpuRequest Scheduler::RequestOf(const json& job_spec, const json* compute_spec) {
  GpuRequest r;
  json res = job_spec.value("resources", json::object());
  if (!res.is_object()) res = json::object();
  r.instances = std::max(1, res.value("instance_count", 1));
  std::string it = res.value("instance_type", "");
  json extra = compute_spec ? compute_spec->value("extra", json::object()) : json::object();
  std::string size = compute_spec ? compute_spec->value("size", "") : "";
  spec::InstanceShape shape = spec::ShapeFor(extra, size, it);
  r.shape = shape.name;
  r.from = shape.from;
  r.gpu_model = shape.gpu_model;
  r.per_instance = shape.gpus;
  r.cpus = shape.cpus;
  r.memory = shape.memory;
  if (!shape.known && shape.from == "resources.instance_type")
    r.note = "resources.instance_type '" + it +
             "' is neither an instance type of the compute nor an Azure VM size "
             "Cairn knows (cairn compute list-sizes); the job gets no GPU";
  return r;
}

bool Scheduler::RunsHere(const std::string& compute) {
  return !SlurmTargetFor(compute).has_value();
}

GpuRequest Scheduler::RequestFor(const JobRecord& job) {
  if (job.compute == "local") return RequestOf(job.spec, nullptr);
  auto c = store_->GetCompute(job.compute);
  return c.ok() ? RequestOf(job.spec, &c->spec) : RequestOf(job.spec, nullptr);
}

int Scheduler::FreeGpus() const {
  return static_cast<int>(config_.gpus.size() - gpu_holder_.size());
}

std::vector<std::vector<int>> Scheduler::HoldGpus(const std::string& job, const GpuRequest& req) {
  // The lowest free indices, instance by instance: two instances never share one.
  std::vector<std::vector<int>> out(static_cast<size_t>(req.instances));
  if (req.per_instance <= 0) return out;
  size_t next = 0;
  for (auto& instance : out) {
    while (static_cast<int>(instance.size()) < req.per_instance && next < config_.gpus.size()) {
      int idx = config_.gpus[next++].index;
      if (gpu_holder_.count(idx)) continue;
      gpu_holder_[idx] = job;
      gpus_of_[job].push_back(idx);
      instance.push_back(idx);
    }
  }
  PublishGpus();
  return out;
}

void Scheduler::FreeGpusOf(const std::string& job) {
  auto it = gpus_of_.find(job);
  if (it == gpus_of_.end()) return;
  for (int idx : it->second)
    if (auto h = gpu_holder_.find(idx); h != gpu_holder_.end() && h->second == job)
      gpu_holder_.erase(h);
  gpus_of_.erase(it);
  PublishGpus();
}

void Scheduler::PublishGpus() {
  std::vector<GpuHolding> table;
  for (const auto& g : config_.gpus) {
    auto h = gpu_holder_.find(g.index);
    table.push_back({g, h == gpu_holder_.end() ? "" : h->second});
  }
  std::lock_guard<std::mutex> l(live_.mu);
  live_.gpus = std::move(table);
}

std::vector<GpuHolding> Scheduler::GpuHoldings() {
  std::lock_guard<std::mutex> l(live_.mu);
  return live_.gpus;  // published by Reconcile before the server answers, then on every change
}

std::string Scheduler::GpuWaitReason(const std::string& compute, int need) {
  std::vector<std::string> holders;
  for (const auto& [_, job] : gpu_holder_)
    if (std::find(holders.begin(), holders.end(), job) == holders.end()) holders.push_back(job);
  return "waiting for " + Plural(need, "GPU") + " on " + compute + " (" +
         std::to_string(gpu_holder_.size()) + " of " + std::to_string(config_.gpus.size()) +
         " in use" + (holders.empty() ? "" : " by " + Join(holders, ", ")) + ")";
}

std::optional<long long> Scheduler::LockHolderOf(const std::string& name, long long recorded) {
  compute::RunLayout layout = compute::RunLayout::For(config_.workspace, name);
  auto holder = compute::RunLockHolder(layout.SupervisorLock());
  if (!holder || *holder == recorded || !compute::IsAliveWithMarker(*holder, layout.root))
    return std::nullopt;
  return *holder;
}

void Scheduler::Adopt(const std::string& name, long long pid, const json& gpus) {
  (void)store_->SetSupervisorPid(name, pid, gpus.is_array() ? gpus : json::array());
  running_pids_[name] = pid;
  spawned_at_.erase(name);
  fprintf(stderr, "%s cairn server: job %s: supervisor %lld runs it (found by its run lock)\n",
          IsoTime(NowMillis()).c_str(), name.c_str(), pid);
}

void Scheduler::Reconcile() {
  for (JobRecord job : store_->NonTerminal()) {
    if (job.type ==
        "sweep") {  // no process of its own: its first step loads its trials and goes on
      sweeps_[job.name];
      continue;
    }
    if (job.type == "pipeline") {  // likewise its step jobs
      pipelines_[job.name];
      continue;
    }
    Pool* pool = PoolFor(job.compute);
    compute::RunLayout layout = compute::RunLayout::For(config_.workspace, job.name);
    if (!pool) {
      FailJob(job.name, "compute '" + job.compute + "' no longer exists");
      continue;
    }
    if (SlurmTargetFor(job.compute)) {
      pool->in_use += job.slots;  // first: a job found finished releases them at once
      if (ReconcileSlurmJob(job)) continue;
      pool->in_use -= job.slots;
    }
    std::optional<long long> recorded = job.supervisor_pid;
    if (!recorded && job.status != "Queued" && job.status != "NotStarted") {
      // Killed between starting its supervisor and recording the pid: the supervisor that runs it
      // holds the run's lock (and its GPUs are in the run file).
      if (auto holder = LockHolderOf(job.name, 0)) {
        json held = json::array();
        auto run = ReadFile(layout.JobFile());
        json r = run.ok() ? ParseJsonOrDiscarded(*run) : json();
        if (r.is_object() && r.contains("gpus") && r["gpus"].is_array())
          for (const auto& instance : r["gpus"]) {
            json list = json::array();
            if (instance.is_array())
              for (const auto& g : instance)
                if (g.is_object() && g.contains("index") && g["index"].is_number_integer())
                  list.push_back(g["index"]);
            held.push_back(list);
          }
        Adopt(job.name, *holder, held);
        job.gpus = held;
        recorded = holder;
      } else if (PathExists(layout.ExitFile()) && PathExists(layout.SupervisorLock())) {
        FinishFromExitFile(job.name);  // and it ended while no server was there
        continue;
      }
    }
    if (recorded) {
      pid_t pid = static_cast<pid_t>(*recorded);
      running_pids_[job.name] = pid;
      pool->in_use += job.slots;
      // Its GPUs are held again before anything queued can be given them.
      for (const auto& instance : job.gpus)
        for (const auto& g : instance)
          if (g.is_number_integer()) {
            gpu_holder_[g.get<int>()] = job.name;
            gpus_of_[job.name].push_back(g.get<int>());
          }
      if (PathExists(layout.ExitFile())) {
        FinishFromExitFile(job.name);
      } else if (compute::IsAliveWithMarker(pid, layout.root)) {
        if (job.status == "CancelRequested") kill(pid, SIGTERM);
        // Running jobs stay running; the supervisor reports to the new server.
      } else if (PathExists(layout.ExitFile())) {
        // It ended between the two looks (found by the chaos test): its record is there now.
        FinishFromExitFile(job.name);
      } else if (auto holder = LockHolderOf(job.name, pid)) {
        Adopt(job.name, *holder,
              job.gpus);  // the second of two supervisors, which stopped for the first
      } else {
        compute::KillRecordedCgroup(layout.root + "/cgroup");
        FailJob(job.name, "the supervisor (pid " + std::to_string(pid) +
                              ") is gone and left no exit record (was the machine restarted?)");
      }
    } else if (job.status == "CancelRequested") {
      (void)Transition(job.name, "Canceled", "canceled before it started", std::nullopt,
                       NowMillis());
    } else {
      json limits = job.spec.value("limits", json::object());
      Enqueue(job.compute, job, job.slots, RunsHere(job.compute) ? RequestFor(job).Total() : 0,
              limits.is_object() ? limits.value("timeout", 0LL) : 0);
    }
  }
  PublishGpus();
  std::vector<std::string> names;
  for (const auto& [n, _] : pools_) names.push_back(n);
  for (const auto& n : names) Schedule(n);
  std::vector<std::string> sweeps;
  for (const auto& [n, _] : sweeps_) sweeps.push_back(n);
  for (const auto& n : sweeps) SweepStep(n);
  std::vector<std::string> pipelines;
  for (const auto& [n, _] : pipelines_) pipelines.push_back(n);
  for (const auto& n : pipelines) PipelineStep(n);
}

}  // namespace cairn::scheduler
