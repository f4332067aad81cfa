// The Slurm compute's side of the scheduler: submit, reconcile, cancel. Scheduler thread only.
#include <unistd.h>

#include <algorithm>
#include <cmath>

#include "base/fs.h"
#include "base/util.h"
#include "compute/distribution.h"
#include "compute/run_layout.h"
#include "compute/slurm.h"
#include "scheduler/scheduler.h"

namespace cairn::scheduler {

using nlohmann::json;
using store::JobRecord;

namespace {
// How long Cairn waits, once Slurm is done with a job, for the supervisor's exit record before it
// takes Slurm's word for the end (the record is written before Slurm sees the batch script end, but
// on a shared filesystem it may take a moment to show).
constexpr long long kExitRecordGraceMs = 3000;
// After asking the supervisor to stop (scancel --batch --signal=TERM), how long before Slurm's own
// cancel of every step. The supervisor gives the processes the kill grace twice (nodes, then
// itself).
long long ForcedCancelAfterMs(long long kill_grace_ms) { return 2 * kill_grace_ms + 5000; }
}  // namespace

int Scheduler::CapacityOf(const spec::ComputeSpec& c) const {
  if (c.type == "computeinstance") return 1;
  if (c.type == "local") return local_slots_;
  // Slurm queues; Cairn hands it every job at once (max_instances caps each job's nodes instead).
  if (c.type == "slurm" ||
      (c.type == "amlcompute" && (c.extra.contains("slurm") || !config_.slurm_conf.empty())))
    return 1 << 20;
  return c.max_instances;
}

std::optional<compute::SlurmTarget> SlurmTargetOf(const json& spec,
                                                  const std::string& default_conf) {
  std::string type = spec.value("type", "");
  json extra = spec.value("extra", json::object());
  json s = extra.value("slurm", json());
  if (type != "slurm" && !(type == "amlcompute" && (s.is_object() || !default_conf.empty())))
    return std::nullopt;
  if (!s.is_object()) s = json::object();
  compute::SlurmTarget t;
  t.conf = s.value("conf", default_conf);
  t.partition = s.value("partition", "");
  t.account = s.value("account", "");
  t.qos = s.value("qos", "");
  for (const auto& o : s.value("sbatch_options", json::array()))
    t.sbatch_options.push_back(o.get<std::string>());
  return t;
}

std::optional<compute::SlurmTarget> Scheduler::SlurmTargetFor(const std::string& compute) {
  if (compute == "local") return std::nullopt;
  auto rec = store_->GetCompute(compute);
  if (!rec.ok()) return std::nullopt;
  return SlurmTargetOf(rec->spec, config_.slurm_conf);
}

void Scheduler::StartSlurmJob(const JobRecord& job, json run, const compute::SlurmTarget& target) {
  compute::RunLayout layout = compute::RunLayout::For(config_.workspace, job.name);
  auto rec = store_->GetCompute(job.compute);
  json slurm = rec.ok() ? rec->spec.value("extra", json::object()).value("slurm", json::object())
                        : json::object();
  run["backend"] = "slurm";
  if (slurm.contains("mpirun_options")) run["mpirun_options"] = slurm["mpirun_options"];
  compute::DistPlan plan = compute::DistPlanFromJson(run["distribution"]);
  compute::BatchRequest req;
  req.job = job.name;
  req.run_dir = layout.root;
  req.cairn = slurm.value("cairn", config_.self_exe);
  req.nodes = plan.nodes;
  req.tasks_per_node = plan.OnNode(0);
  // What the job's shape asks of each node: its GPUs; and an instance type's own CPUs and memory
  // (an Azure size's are Azure's machines', which a cluster's nodes need not match: only its GPUs
  // are asked for).
  GpuRequest shape = RequestOf(job.spec, rec.ok() ? &rec->spec : nullptr);
  req.gpus_per_node = shape.per_instance;
  if (shape.cpus > 0)
    req.cpus_per_task =
        std::max(1, static_cast<int>(std::ceil(shape.cpus / std::max(1, req.tasks_per_node))));
  req.mem = spec::SlurmMemory(shape.memory);
  req.timeout_seconds = run.value("timeout_seconds", 0LL);
  req.staging = slurm.value("staging", "auto");
  req.server_url = slurm.value("server_url", config_.server_url);
  req.token = SupervisorCredential(config_.secret, job.token);
  req.output_tag = RandomHex(6);
  // A team server's job is the person's on Slurm too: submitted as them, its supervisor runs as
  // them (the job's processes in a user namespace). The run folder is the server's, so the
  // supervisor fetches the run and sends its files back over HTTP, as on a node without the
  // workspace's filesystem.
  if (const json who = run.value("run_as", json()); who.is_object() && geteuid() == 0) {
    req.uid = who.value("uid", -1LL);
    req.gid = who.value("gid", -1LL);
    req.staging = "http";
  }
  if (slurm.contains("server_url")) run["server_url"] = req.server_url;
  std::string script_path = layout.root + "/slurm_job.sh";
  Status s = MakeDirs(layout.SystemLogDir());
  if (s.ok()) s = MakeDirs(layout.Artifacts() + "/user_logs");
  if (s.ok()) s = WriteFile(layout.JobFile(), run.dump(2), 0600);
  if (s.ok()) s = WriteFile(script_path, compute::BatchScript(target, req), 0700);
  if (!s.ok()) {
    FailJob(job.name, "cannot write the run folder: " + s.message());
    return;
  }
  SlurmWatch w;
  w.target = target;
  w.state = "PENDING";
  slurm_[job.name] = w;
  (void)Transition(job.name, "Queued", "submitting to Slurm");
  {
    std::lock_guard<std::mutex> l(submit_mu_);
    submissions_.push_back({job.name, script_path, target, req.uid, req.gid});
    if (!submit_thread_.joinable()) submit_thread_ = std::thread([this] { SubmitLoop(); });
  }
  submit_cv_.notify_one();
}

void Scheduler::SubmitLoop() {
  for (;;) {
    SlurmSubmission next;
    {
      std::unique_lock<std::mutex> l(submit_mu_);
      submit_cv_.wait(l, [&] { return submit_stop_ || !submissions_.empty(); });
      if (submissions_.empty()) return;  // stopping, and nothing left to hand over
      next = std::move(submissions_.front());
      submissions_.pop_front();
    }
    auto id = compute::SlurmSubmit(next.target, next.script, next.uid, next.gid);
    if (id.ok()) {
      // The id is the job's link to Slurm across server restarts: on disk before anything else.
      compute::RunLayout layout = compute::RunLayout::For(config_.workspace, next.job);
      (void)WriteFileAtomic(layout.root + "/slurm_job_id", *id, 0644);
    }
    Post([this, job = next.job, id] { SlurmSubmitted(job, id); });
  }
}

void Scheduler::SlurmSubmitted(const std::string& name, const Result<std::string>& id) {
  auto it = slurm_.find(name);
  auto job = store_->Get(name);
  if (!id.ok()) {
    slurm_.erase(name);
    if (job.ok() && job->status == "CancelRequested") {
      (void)Transition(name, "Canceled", "canceled before Slurm started it", std::nullopt,
                       NowMillis());
      Release(*job);
      return;
    }
    FailJob(name, "sbatch refused the job: " + id.status().message());
    return;
  }
  if (it == slurm_.end() || !job.ok() || store::IsTerminalStatus(job->status)) {
    // Ended while sbatch ran (a sweep's end, a restart): Slurm must not run it.
    compute::SlurmTarget target = it != slurm_.end() ? it->second.target : compute::SlurmTarget{};
    if (auto t = SlurmTargetFor(job.ok() ? job->compute : "")) target = *t;
    (void)compute::SlurmCancel(target, *id, false);
    return;
  }
  SlurmWatch& w = it->second;
  w.id = *id;
  if (w.cancel_on_submit) {
    CancelSlurmJob(*job, cancel_reason_.count(name) ? cancel_reason_[name] : "");
    return;
  }
  if (job->status == "Queued")
    (void)Transition(name, "Queued",
                     "submitted to Slurm as job " + *id + "; waiting for Slurm to start it");
}

void Scheduler::CancelSlurmJob(const JobRecord& job, const std::string& reason) {
  SlurmWatch& w = slurm_[job.name];
  const std::string why = reason.empty() ? "cancel requested" : reason;
  if (!reason.empty()) cancel_reason_[job.name] = reason;
  if (job.status != "CancelRequested") (void)Transition(job.name, "CancelRequested", why);
  if (w.id.empty()) {  // sbatch is still running: the cancel follows its answer
    w.cancel_on_submit = true;
    return;
  }
  if (w.state == "PENDING" || job.status == "Queued") {
    // Nothing runs yet: Slurm's cancel is the whole story.
    Status s = compute::SlurmCancel(w.target, w.id, false);
    if (s.ok()) {
      (void)Transition(job.name, "Canceled",
                       reason.empty() ? "canceled before Slurm started it" : reason, std::nullopt,
                       NowMillis());
      cancel_reason_.erase(job.name);
      auto j = store_->Get(job.name);
      if (j.ok()) Release(*j);
      return;
    }
  }
  // Running: the supervisor stops every node its own way and records the outcome; Slurm's cancel
  // follows if it has not ended by then (PollSlurm).
  (void)compute::SlurmCancel(w.target, w.id, true);
  w.cancel_sent_at = NowMillis();
}

void Scheduler::PollSlurm() {
  last_slurm_poll_ = NowMillis();
  // One squeue per cluster for all of its jobs.
  std::map<std::string, std::vector<std::string>> by_conf;
  std::map<std::string, compute::SlurmTarget> targets;
  for (const auto& [name, w] : slurm_) {
    if (w.id.empty()) continue;
    by_conf[w.target.conf].push_back(w.id);
    targets[w.target.conf] = w.target;
  }
  std::map<std::string, std::map<std::string, compute::SlurmJobState>> seen;
  for (const auto& [conf, ids] : by_conf) {
    auto q = compute::SlurmQuery(targets[conf], ids);
    if (!q.ok()) continue;  // the controller is unreachable: nothing is known, nothing changes
    seen[conf] = *q;
  }
  std::vector<std::string> names;
  for (const auto& [name, _] : slurm_) names.push_back(name);
  long long now = NowMillis();
  for (const auto& name : names) {
    auto it = slurm_.find(name);
    if (it == slurm_.end()) continue;
    SlurmWatch& w = it->second;
    if (w.id.empty() || !seen.count(w.target.conf)) continue;
    auto job = store_->Get(name);
    if (!job.ok() || store::IsTerminalStatus(job->status)) {
      slurm_.erase(name);
      continue;
    }
    compute::RunLayout layout = compute::RunLayout::For(config_.workspace, name);
    const auto& states = seen[w.target.conf];
    auto st = states.find(w.id);
    bool known = st != states.end();
    std::string state = known ? st->second.state : "";
    if (known && !compute::SlurmStateIsFinal(state)) {
      if (state == "PENDING") {
        std::string why = "Slurm job " + w.id + " is pending (" + st->second.reason + ")";
        if (job->status == "Queued" && (w.state != state || w.reason != st->second.reason))
          (void)Transition(name, "Queued", why);
      } else if (job->status == "Queued") {
        (void)Transition(name, "Preparing",
                         "Slurm job " + w.id + " started on " + st->second.nodes);
      }
      w.state = state;
      w.reason = st->second.reason;
      if (!st->second.nodes.empty()) w.nodes = st->second.nodes;
      if (w.cancel_sent_at && now - w.cancel_sent_at > ForcedCancelAfterMs(config_.kill_grace_ms)) {
        (void)compute::SlurmCancel(w.target, w.id, false);
        w.cancel_sent_at = now;  // and again later, should the controller have missed it
      }
      // Ended by its supervisor, still held by Slurm: FinishFromExitFile decides when it is over.
      if (PathExists(layout.ExitFile())) FinishFromExitFile(name);
      continue;
    }
    // Slurm is done with it (or has forgotten it): the supervisor's record says how it ended.
    w.state = state;
    if (known) {
      w.reason = st->second.reason;
      if (!st->second.nodes.empty()) w.nodes = st->second.nodes;
    }
    if (PathExists(layout.ExitFile())) {
      FinishFromExitFile(name);
      continue;
    }
    if (!w.ended_at) {
      w.ended_at = now;
      continue;
    }
    if (now - w.ended_at < kExitRecordGraceMs) continue;
    std::string what =
        known ? state + (st->second.reason.empty() || st->second.reason == "None"
                             ? ""
                             : ", " + st->second.reason)
              : compute::SlurmAccounting(w.target, w.id).value_or("no record in squeue or sacct");
    if (job->status == "CancelRequested") {
      auto reason = cancel_reason_.find(name);
      (void)Transition(name, "Canceled",
                       reason != cancel_reason_.end() ? reason->second : "canceled by request",
                       std::nullopt, now);
      cancel_reason_.erase(name);
      Release(*job);
      continue;
    }
    FailJob(name, "Slurm job " + w.id + " ended (" + what +
                      ") before Cairn's supervisor recorded how the job " +
                      "ended; see system_logs/slurm-" + w.id + ".txt");
  }
}

bool Scheduler::ReconcileSlurmJob(const JobRecord& job) {
  compute::RunLayout layout = compute::RunLayout::For(config_.workspace, job.name);
  auto target = SlurmTargetFor(job.compute);
  if (!target) return false;
  auto id = ReadFile(layout.root + "/slurm_job_id");
  if (!id.ok()) {
    // The old server may have died between sbatch and writing the id down: Slurm knows it by name.
    auto found = compute::RunSlurmCommand(
        *target, {"squeue", "-h", "-t", "all", "-n", "cairn-" + job.name, "-o", "%i"});
    if (!found.ok() || Trim(*found).empty()) return false;
    id = Trim(Split(Trim(*found), '\n').front());
    (void)WriteFileAtomic(layout.root + "/slurm_job_id", *id, 0644);
  }
  SlurmWatch w;
  w.id = Trim(*id);
  w.target = *target;
  w.state = job.status == "Queued" ? "PENDING" : "RUNNING";
  slurm_[job.name] = w;
  if (PathExists(layout.ExitFile())) {
    FinishFromExitFile(job.name);
    return true;
  }
  // A cancel asked of the old server is carried on: the supervisor's own stop, then Slurm's.
  if (job.status == "CancelRequested") CancelSlurmJob(job, "");
  // Everything else is the next poll's: squeue says whether it still runs, sacct how it ended.
  return true;
}

}  // namespace cairn::scheduler
