// The pipeline controller: runs on the scheduler thread, one step per tick and per change of a step
// job. A pipeline's state is the workspace's own records: the pipeline job (its steps and bindings
// in its spec) and its step jobs (children named <pipeline>_<step>, a retry
// <pipeline>_<step>_attempt<n>, each with its step and attempt in its spec). A step is launched
// only when no job of that name exists, so after a restart the controller takes up exactly where
// the records say it was: no step run twice, none lost.
//
// Reuse follows Azure ML's rule: a deterministic step whose reuse key (its code snapshot,
// environment, command, inputs by content, outputs and run settings) matches a completed step's,
// with force_rerun off, is not run: its job is recorded Completed "reused from" the original, whose
// outputs its consumers read. Completed steps are kept in the store's step_runs table by key, and
// by what they are, so that a step that is not reused can say which field differed from its closest
// earlier run.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>

#include "base/fs.h"
#include "base/util.h"
#include "compute/run_layout.h"
#include "scheduler/scheduler.h"

namespace cairn::scheduler {

using nlohmann::json;
using store::JobRecord;
namespace fs = std::filesystem;

namespace {

std::string ChildName(const std::string& pipeline, const std::string& step, int attempt) {
  return attempt <= 1 ? pipeline + "_" + step
                      : pipeline + "_" + step + "_attempt" + std::to_string(attempt);
}

// The content of a file or folder as one hash: each file's path and bytes, in path order. Links are
// hashed as their target text, never followed (a step's output is the job's own writing).
std::string HashTree(const std::string& root) {
  std::vector<std::pair<std::string, std::string>> entries;
  auto hash_file = [](const std::string& path) -> std::string {
    int fd = open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return "unreadable";
    Sha256 h;
    char buf[1 << 16];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) h.Update(buf, static_cast<size_t>(n));
    close(fd);
    return h.HexDigest();
  };
  std::error_code ec;
  auto st = fs::symlink_status(root, ec);
  if (ec || !fs::exists(st)) return Sha256Hex("absent");
  if (fs::is_regular_file(st)) return hash_file(root);
  for (auto it = fs::recursive_directory_iterator(root, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    auto s = it->symlink_status(ec);
    std::string rel = it->path().lexically_relative(root).string();
    if (fs::is_symlink(s))
      entries.emplace_back(rel, "link:" + fs::read_symlink(it->path(), ec).string());
    else if (fs::is_regular_file(s))
      entries.emplace_back(rel, hash_file(it->path().string()));
  }
  std::sort(entries.begin(), entries.end());
  Sha256 h;
  for (const auto& [p, d] : entries) {
    std::string line = p + '\0' + d + '\n';
    h.Update(line.data(), line.size());
  }
  return h.HexDigest();
}

// What a file or folder is on disk without reading it: each entry's path, kind, size, inode,
// modification and change times, in path order, as one hash. Any write, rename, chmod or new link
// beneath it changes the change time, which only the kernel sets: a seal taken when a step
// completed tells, before its outputs are reused, whether anything touched them since.
std::string SealTree(const std::string& root) {
  std::vector<std::string> entries;
  auto entry = [&](const std::string& rel, const std::string& path) {
    struct stat st;
    if (lstat(path.c_str(), &st) != 0) return;
    entries.push_back(rel + '\0' + std::to_string(st.st_mode) + ' ' + std::to_string(st.st_size) +
                      ' ' + std::to_string(st.st_ino) + ' ' + std::to_string(st.st_mtim.tv_sec) +
                      '.' + std::to_string(st.st_mtim.tv_nsec) + ' ' +
                      std::to_string(st.st_ctim.tv_sec) + '.' + std::to_string(st.st_ctim.tv_nsec));
  };
  entry("", root);
  std::error_code ec;
  if (fs::is_directory(fs::symlink_status(root, ec)))
    for (auto it = fs::recursive_directory_iterator(root, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec))
      entry(it->path().lexically_relative(root).string(), it->path().string());
  std::sort(entries.begin(), entries.end());
  Sha256 h;
  for (const auto& e : entries) h.Update(e.data(), e.size()), h.Update("\n", 1);
  return h.HexDigest();
}

// An output path with `${{name}}` (the job's name, in Azure ML) filled in.
std::string WithJobName(const std::string& path, const std::string& name) {
  return ReplaceAll(ReplaceAll(path, "${{name}}", name), "${{ name }}", name);
}

// What a field's value looks like in "changed: a -> b": hashes shortened, long text cut.
std::string Short(const json& v) {
  std::string s = v.is_string() ? v.get<std::string>() : v.dump();
  if (StartsWith(s, "sha256:") && s.size() > 19) return s.substr(0, 19) + "...";
  if (s.size() > 60) return s.substr(0, 57) + "...";
  return s;
}

}  // namespace

void Scheduler::NotePipelineChild(const std::string& child, const std::string& status) {
  auto owner = step_pipeline_.find(child);
  if (owner == step_pipeline_.end()) return;
  auto it = pipelines_.find(owner->second);
  if (it == pipelines_.end()) return;
  for (auto& [step, attempts] : it->second.attempts)
    for (auto& a : attempts)
      if (a.job == child) a.status = status;
  if (store::IsTerminalStatus(status) && !it->second.step_pending) {
    it->second.step_pending = true;
    Post([this, p = owner->second] {
      if (auto s = pipelines_.find(p); s != pipelines_.end()) s->second.step_pending = false;
      PipelineStep(p);
    });
  }
}

// The job whose outputs a completed step stands for: itself, the run it reused, or a sweep's best
// trial.
std::string Scheduler::OutputJobOf(const std::string& step_job) {
  auto rec = store_->Get(step_job);
  if (!rec.ok()) return step_job;
  std::string reused = rec->properties.value("reused_from", "");
  std::string job = reused.empty() ? step_job : reused;
  if (rec->type == "sweep") {
    std::string best = rec->properties.value("best_child_run_id", "");
    if (!best.empty()) job = best;
  }
  return job;
}

std::optional<json> Scheduler::KnownOutputHashes(const std::string& job) {
  if (auto k = known_hashes_.find(job); k != known_hashes_.end()) return k->second;
  auto rec = store_->Get(job);
  if (!rec.ok()) return json::object();  // gone: nothing to wait for
  if (rec->properties.contains("output_hashes") && rec->properties["output_hashes"].is_string()) {
    json h = json::parse(rec->properties["output_hashes"].get<std::string>(), nullptr, false);
    if (h.is_object()) return known_hashes_[job] = h;
  }
  if (hashing_.insert(job).second) {
    HashRequest r{job, OutputPaths(*rec)};
    {
      std::lock_guard<std::mutex> l(hash_mu_);
      hash_queue_.push_back(std::move(r));
      if (!hash_thread_.joinable()) hash_thread_ = std::thread([this] { HashLoop(); });
    }
    hash_cv_.notify_one();
  }
  return std::nullopt;
}

std::vector<std::pair<std::string, std::string>> Scheduler::OutputPaths(const JobRecord& job) {
  std::vector<std::pair<std::string, std::string>> paths;
  compute::RunLayout layout = compute::RunLayout::For(config_.workspace, job.name);
  paths.emplace_back("artifacts", layout.Artifacts() + "/outputs");
  const json outs = job.spec.value("outputs", json::object());
  for (const auto& [out, o] : outs.items()) {
    std::string where = layout.Output(out);
    if (std::string ds = o.value("path", ""); !ds.empty())
      if (auto loc = Locate("outputs." + out, ds, "data"); loc.ok()) where = loc->local;
    paths.emplace_back(out, where);
  }
  return paths;
}

json Scheduler::SealOutputs(const JobRecord& job) {
  json seal = json::object();
  for (const auto& [out, path] : OutputPaths(job)) seal[out] = SealTree(path);
  return seal;
}

std::string Scheduler::TouchedOutputs(const std::string& job) {
  auto rec = store_->Get(job);
  if (!rec.ok()) return "it is gone";
  json seal = json::parse(rec->properties.value("output_seal", ""), nullptr, false);
  if (!seal.is_object()) return "its outputs were not sealed when it completed";
  json now = SealOutputs(*rec);
  for (const auto& [out, digest] : now.items())
    if (seal.value(out, "") != digest) return "outputs." + out + " changed after it completed";
  return "";
}

void Scheduler::HashLoop() {
  for (;;) {
    HashRequest next;
    {
      std::unique_lock<std::mutex> l(hash_mu_);
      hash_cv_.wait(l, [&] { return hash_stop_ || !hash_queue_.empty(); });
      if (hash_stop_) return;  // a restarted server asks again: nothing was recorded
      next = std::move(hash_queue_.front());
      hash_queue_.pop_front();
    }
    json h = json::object();
    for (const auto& [out, path] : next.paths) h[out] = "sha256:" + HashTree(path);
    Post([this, job = next.job, h] { OutputsHashed(job, h); });
  }
}

void Scheduler::OutputsHashed(const std::string& job, const json& hashes) {
  hashing_.erase(job);
  if (auto rec = store_->Get(job); rec.ok()) {
    JobRecord upd = *rec;
    upd.properties["output_hashes"] = hashes.dump();
    (void)store_->UpdateMeta(upd);
  }
  known_hashes_[job] = hashes;
  // The steps that waited for them can start now.
  std::vector<std::string> names;
  for (const auto& [n, _] : pipelines_) names.push_back(n);
  for (const auto& n : names) PipelineStep(n);
}

// The latest attempt of `step` (nullptr: none yet).
const Scheduler::StepAttempt* Scheduler::LatestAttempt(
    const std::map<std::string, std::vector<StepAttempt>>& attempts, const std::string& step) {
  auto it = attempts.find(step);
  return it == attempts.end() || it->second.empty() ? nullptr : &it->second.back();
}

namespace {
// How many retries a step may have.
int MaxRetries(const json& step) {
  return step.value("retry", json::object()).value("max_retries", 0);
}
}  // namespace

// A step has failed for good when its last attempt ended otherwise than Completed and no retry is
// left (none is, once the pipeline is being canceled).
bool Scheduler::StepFailedForGood(const PipelineState& st, const json& step, bool canceling) {
  const StepAttempt* a = LatestAttempt(st.attempts, step["name"]);
  return a && store::IsTerminalStatus(a->status) && a->status != "Completed" &&
         (a->attempt > MaxRetries(step) || canceling);
}

void Scheduler::ForgetPipeline(const std::string& name) {
  auto it = pipelines_.find(name);
  if (it == pipelines_.end()) return;
  for (const auto& [_, attempts] : it->second.attempts)
    for (const auto& a : attempts) step_pipeline_.erase(a.job);
  pipelines_.erase(it);
  if (pipelines_.empty()) known_hashes_.clear();  // a later pipeline reads them from the records
}

// The pipeline's spec, read once, and after a restart its step jobs from their records. False when
// its record cannot be read.
bool Scheduler::LoadPipeline(const std::string& name, PipelineState& st) {
  if (!st.spec_loaded) {
    auto full = store_->Get(name);
    if (!full.ok()) return false;
    st.pipeline = full->spec.value("pipeline", json::object());
    if (!st.pipeline.contains("steps")) st.pipeline["steps"] = json::array();
    if (!st.pipeline.contains("settings")) st.pipeline["settings"] = json::object();
    st.experiment_name = full->experiment_name;
    st.created_by = full->created_by;
    st.display_name = full->display_name;
    st.mlflow_experiment_id = full->spec.value("mlflow_experiment_id", "");
    st.spec_loaded = true;
  }
  if (!st.loaded) {  // after a restart: the step jobs from their records
    store::JobFilter f;
    f.parent = name;
    f.max_results = 0;
    for (const auto& c : store_->List(f)) {
      std::string step = c.spec.value("pipeline_step", "");
      if (step.empty()) continue;
      st.attempts[step].push_back({c.name, c.status, c.spec.value("attempt", 1)});
      step_pipeline_[c.name] = name;
      if (store::IsTerminalStatus(c.status))
        st.end_logged.insert(c.name);  // logged before the restart
    }
    for (auto& [_, a] : st.attempts)
      std::sort(a.begin(), a.end(),
                [](const StepAttempt& x, const StepAttempt& y) { return x.attempt < y.attempt; });
    st.loaded = true;
  }
  return true;
}

// Step jobs that ended since the last look: their end, and what they printed, in the pipeline's
// log.
void Scheduler::LogEndedSteps(const std::string& name, PipelineState& st) {
  for (const auto& [sname, attempts] : st.attempts)
    for (const auto& a : attempts) {
      if (!store::IsTerminalStatus(a.status) || st.end_logged.count(a.job)) continue;
      st.end_logged.insert(a.job);
      auto c = store_->Get(a.job);
      if (!c.ok() || !c->properties.value("reused_from", "").empty())
        continue;  // said when it was reused
      compute::RunLayout layout = compute::RunLayout::For(config_.workspace, a.job);
      constexpr long long kTail = 64 << 10;
      std::string text;
      if (int fd = open(layout.UserLog().c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC); fd >= 0) {
        struct stat sb;
        if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode)) {
          long long from = std::max(0LL, static_cast<long long>(sb.st_size) - kTail);
          text.resize(static_cast<size_t>(sb.st_size - from));
          ssize_t n = pread(fd, text.data(), text.size(), from);
          text.resize(n > 0 ? static_cast<size_t>(n) : 0);
          if (from > 0)
            text = "[... " + std::to_string(from) + " bytes before]\n" +
                   text.substr(std::min(text.size(), text.find('\n') + 1));
        }
        close(fd);
      }
      for (const auto& line : Split(text, '\n'))
        if (!line.empty()) SweepLog(name, sname + " | " + line);
      SweepLog(name, "done " + sname + ": " + a.job + " " + c->status + " (" +
                         (c->error.empty() ? c->status_reason : c->error) + ")");
    }
}

// Completed steps that ran are remembered for reuse (once: the record says it was done), their
// outputs sealed before any consumer starts.
void Scheduler::RememberCompletedSteps(PipelineState& st) {
  for (const auto& step : st.pipeline["steps"]) {
    const StepAttempt* a = LatestAttempt(st.attempts, step["name"]);
    if (!a || a->status != "Completed" || st.recorded.count(a->job)) continue;
    st.recorded.insert(a->job);
    auto c = store_->Get(a->job);
    if (!c.ok() || !c->properties.value("reused_from", "").empty()) continue;
    const json reuse = c->spec.value("reuse", json::object());
    if (reuse.value("key", "").empty()) continue;
    // Sealed before any consumer starts: a reuse checks its outputs are still what the step wrote.
    if (auto out = store_->Get(OutputJobOf(a->job));
        out.ok() && !out->properties.contains("output_seal")) {
      JobRecord upd = *out;
      upd.properties["output_seal"] = SealOutputs(*out).dump();
      (void)store_->UpdateMeta(upd);
    }
    (void)store_->PutStepRun({reuse["key"], reuse.value("ident", ""), a->job,
                              reuse.value("fields", json::object()), NowMillis()});
  }
}

// Launches the steps whose dependencies completed (and whose outputs are hashed), a batch at a
// time. Sets `waiting_for_hashes` when a step is ready but for those hashes. False when the
// pipeline ended (a step was refused) or the batch is full (the rest follow in a posted step):
// nothing more to do now.
bool Scheduler::LaunchReadySteps(const std::string& name, PipelineState& st,
                                 bool& waiting_for_hashes) {
  // Launched a batch at a time: the first steps start while the rest of a wide fan-out is still
  // being made (the scheduler's other work, the starts included, goes between two batches).
  constexpr int kLaunchBatch = 32;
  int launched = 0;
  for (const auto& step : st.pipeline["steps"]) {
    const std::string sname = step["name"];
    const StepAttempt* a = LatestAttempt(st.attempts, sname);
    if (a && !store::IsTerminalStatus(a->status)) continue;
    if (a && a->status == "Completed") continue;
    if (a && a->attempt > MaxRetries(step)) continue;  // failed for good
    bool ready = true;
    for (const auto& dep : step.value("after", json::array())) {
      const StepAttempt* d = LatestAttempt(st.attempts, dep.get<std::string>());
      // Completed, and what it wrote hashed (the consumer's reuse key reads it).
      if (!d || d->status != "Completed") {
        ready = false;
      } else if (!KnownOutputHashes(OutputJobOf(d->job))) {
        ready = false;
        waiting_for_hashes = true;
      }
    }
    if (!ready) continue;
    if (launched == kLaunchBatch) {
      if (!st.step_pending) {
        st.step_pending = true;
        Post([this, name] {
          if (auto p = pipelines_.find(name); p != pipelines_.end()) p->second.step_pending = false;
          PipelineStep(name);
        });
      }
      return false;
    }
    ++launched;
    int attempt = a ? a->attempt + 1 : 1;
    if (a)
      SweepLog(name, "retry " + sname + ": attempt " + std::to_string(attempt) + " of " +
                         std::to_string(MaxRetries(step) + 1) + " (" + a->job + " " + a->status +
                         ")");
    Status s = LaunchStep(name, step, attempt);
    if (!s.ok()) {
      SweepLog(name, "step " + sname + " was refused: " + s.message());
      ForgetPipeline(name);
      (void)Transition(name, "Failed", "step " + sname + " was refused: " + s.message(),
                       std::nullopt, NowMillis(), std::nullopt, s.message());
      return false;
    }
  }
  return true;
}

// Ends the pipeline when no step job is in progress and no step can start: Completed, Failed (the
// first failures said) or Canceled, with a count of its steps.
void Scheduler::FinishPipelineIfDone(const std::string& name, PipelineState& st, bool ending,
                                     bool stopping, const std::string& first_failed) {
  const json& steps = st.pipeline["steps"];
  std::string end_reason = ending ? "canceled" : "";
  for (const auto& [_, attempts] : st.attempts)
    for (const auto& a : attempts)
      if (!store::IsTerminalStatus(a.status)) return;
  int completed = 0, reused = 0, failed = 0, canceled = 0, not_run = 0;
  std::vector<std::string> failures, cancels;
  for (const auto& step : steps) {
    const StepAttempt* a = LatestAttempt(st.attempts, step["name"]);
    if (!a) {
      ++not_run;
      continue;
    }
    if (a->status == "Completed") {
      ++completed;
      if (auto c = store_->Get(a->job); c.ok() && !c->properties.value("reused_from", "").empty())
        ++reused;
    } else if (StepFailedForGood(st, step, ending)) {
      auto c = store_->Get(a->job);
      std::string why = c.ok() ? (c->error.empty() ? c->status_reason : c->error) : a->status;
      if (a->attempt > 1)
        why += " (attempt " + std::to_string(a->attempt) + " of " +
               std::to_string(MaxRetries(step) + 1) + ")";
      std::string line = "step " + step["name"].get<std::string>() + " " +
                         (a->status == "Failed" ? "failed" : ToLower(a->status)) + ": " + why;
      // What the pipeline's own ending canceled is not why it failed.
      if (a->status == "Canceled") {
        ++canceled;
        if (cancels.size() < 3) cancels.push_back(line);
      } else {
        ++failed;
        if (failures.size() < 3) failures.push_back(line);
      }
    } else {
      return;  // a retry is due (the loop above launched it, or will at the next step)
    }
  }
  // With steps still to run and nothing stopping, the loop above launched them: not done yet.
  if (!stopping && completed + failed + canceled < static_cast<int>(steps.size()) &&
      first_failed.empty())
    return;
  std::string summary =
      Plural(static_cast<long long>(steps.size()), "step") + ": " + std::to_string(completed) +
      " completed (" + std::to_string(reused) + " reused), " + std::to_string(failed) +
      " failed, " + std::to_string(canceled) + " canceled, " + std::to_string(not_run) + " not run";
  if (failures.empty()) failures = cancels;  // a step canceled on its own fails the pipeline too
  std::string status = ending                                         ? "Canceled"
                       : failed == 0 && canceled == 0 && not_run == 0 ? "Completed"
                                                                      : "Failed";
  std::string reason = ending             ? end_reason + "; " + summary
                       : failures.empty() ? summary
                                          : Join(failures, "; ") + "; " + summary;
  SweepLog(name, "pipeline " + status + ": " + reason);
  ForgetPipeline(name);
  (void)Transition(name, status, reason, std::nullopt, NowMillis(), std::nullopt,
                   status == "Failed" ? (failures.empty() ? summary : failures.front()) : "");
}

void Scheduler::PipelineStep(const std::string& name) {
  auto rec = store_->GetBrief(name);  // the status; the spec is read once, by LoadPipeline
  auto state_it = pipelines_.find(name);
  if (!rec.ok() || store::IsTerminalStatus(rec->status) || state_it == pipelines_.end()) {
    ForgetPipeline(name);
    return;
  }
  PipelineState& st = state_it->second;
  if (!LoadPipeline(name, st)) return;
  const json& steps = st.pipeline["steps"];
  const bool keep_going = st.pipeline["settings"].value("continue_on_step_failure", false);
  LogEndedSteps(name, st);
  RememberCompletedSteps(st);

  bool ending = rec->status == "CancelRequested";
  std::string first_failed;
  for (const auto& step : steps)
    if (StepFailedForGood(st, step, ending)) {
      first_failed = step["name"];
      break;
    }
  bool stopping = ending || (!first_failed.empty() && !keep_going);
  bool waiting_for_hashes = false;  // a step is ready but for its inputs' hashes: not done
  if (stopping) {
    std::string why = ending
                          ? "the pipeline " + name + " was canceled"
                          : "the pipeline " + name + " is ending: step " + first_failed + " failed";
    for (auto& [step, attempts] : st.attempts)
      for (auto& a : attempts)
        if (!store::IsTerminalStatus(a.status) && a.status != "CancelRequested") {
          SweepLog(name, "cancel " + step + " (" + a.job + "): " + why);
          (void)DoCancel(a.job, why);
        }
  } else if (!LaunchReadySteps(name, st, waiting_for_hashes)) {
    return;
  }
  if (waiting_for_hashes) return;
  FinishPipelineIfDone(name, st, ending, stopping, first_failed);
}

namespace {
// Why a step is not reused, told against its closest earlier run: the first field, in the order a
// user reads a step, that differs from the recent run of this step that differs in the fewest
// fields (the newest of those).
std::string DifferenceFromClosestRun(const json& fields,
                                     const std::vector<store::StepRun>& recent) {
  std::string why_not;
  auto order_of = [&](const json& other) {
    std::vector<std::string> order = {"code", "environment", "command", "type", "sweep"};
    for (const auto& [k, _] : fields.items())
      if (StartsWith(k, "inputs.")) order.push_back(k);
    for (const auto& [k, _] : other.items())
      if (StartsWith(k, "inputs.") && !fields.contains(k)) order.push_back(k);
    for (const char* k :
         {"outputs", "environment_variables", "resources", "distribution", "limits", "compute"})
      order.push_back(k);
    return order;
  };
  const store::StepRun* closest = nullptr;
  size_t fewest = 0;
  for (const auto& r : recent) {
    size_t differ = 0;
    for (const auto& k : order_of(r.fields))
      differ += fields.value(k, json()) != r.fields.value(k, json());
    if (!closest || differ < fewest) {
      closest = &r;
      fewest = differ;
    }
  }
  for (const auto& k : order_of(closest->fields)) {
    json now_v = fields.value(k, json()), then_v = closest->fields.value(k, json());
    if (now_v == then_v) continue;
    if (then_v.is_null())
      why_not = k + " is new since " + closest->job;
    else if (now_v.is_null())
      why_not = k + " was removed since " + closest->job;
    else
      why_not = k + " changed: " + Short(then_v) + " -> " + Short(now_v) + " (since " +
                closest->job + ")";
    break;
  }
  if (why_not.empty()) why_not = "no completed run with the same key";
  return why_not;
}
}  // namespace

// A step reused: recorded Completed at once, pointing at the original (`orig`), whose outputs its
// consumers read; nothing runs.
Status Scheduler::RecordReusedStep(const std::string& pipe_name, const json& step, int attempt,
                                   const json& spec, const JobRecord& orig) {
  const std::string sname = step["name"];
  const std::string child = ChildName(pipe_name, sname, attempt);
  PipelineState& st = pipelines_[pipe_name];
  long long now = NowMillis();
  JobRecord job;
  job.name = child;
  job.type = spec.value("type", "command");
  job.display_name = spec.value("display_name", sname);
  job.experiment_name = spec.value("experiment_name", "Default");
  job.compute = orig.compute;
  job.spec = spec;
  job.snapshot = step.value("snapshot", "");
  job.parent = pipe_name;
  job.created_by = st.created_by;
  job.properties = {{"reused_from", orig.name}, {"azureml.isreused", "true"}};
  if (orig.properties.contains("output_hashes"))
    job.properties["output_hashes"] = orig.properties["output_hashes"];
  job.slots = 0;
  job.token = RandomHex(24);
  job.created_at = now;
  job.status = "Starting";
  st.attempts[sname].push_back({child, "Starting", attempt});
  step_pipeline_[child] = pipe_name;
  st.recorded.insert(child);
  Status s = store_->Insert(job, {{"NotStarted", "submitted by pipeline " + pipe_name, now}});
  if (!s.ok()) {
    st.attempts[sname].pop_back();
    return s;
  }
  SweepLog(pipe_name, "reused " + sname + ": " + orig.name +
                          " (same code, environment, command, inputs and settings)");
  (void)Transition(child, "Completed", "reused " + orig.name + ": the same step completed before",
                   now, now, 0);
  return Status::Ok();
}

// What decides what a step computes, field by field: its code, environment, command, type, sweep,
// each input by content (a bound output's hash, an uploaded snapshot's, a located folder's, or a
// literal), outputs, variables, resources, distribution, limits and compute. The reuse key hashes
// it.
json Scheduler::ReuseFieldsOf(const json& step, const json& spec, const json& hashes) {
  json fields = json::object();
  fields["code"] = step.value("snapshot", "");
  fields["environment"] = spec.value("environment", json::object());
  fields["command"] = spec.value("command", "");
  fields["type"] = spec.value("type", "command");
  if (spec.contains("sweep")) fields["sweep"] = spec["sweep"];
  const json input_snapshots = step.value("input_snapshots", json::object());
  const json inputs = spec.value("inputs", json::object());
  for (const auto& [input, in] : inputs.items()) {
    std::string f = "inputs." + input;
    if (in.value("literal", false)) {
      fields[f] = in.value("value", "");
    } else if (hashes.contains(input)) {
      fields[f] = hashes[input];
    } else if (input_snapshots.contains(input)) {
      fields[f] = "sha256:" + input_snapshots[input].get<std::string>();
    } else {
      std::string path = in.value("path", "");
      auto loc = Locate(f, path, "data");
      fields[f] = loc.ok() && !loc->snapshot.empty() ? "sha256:" + loc->snapshot
                  : loc.ok() && !loc->local.empty()  ? "sha256:" + HashTree(loc->local)
                                                     : path;
    }
  }
  fields["outputs"] = spec.value("outputs", json::object());
  fields["environment_variables"] = spec.value("environment_variables", json::object());
  fields["resources"] = spec.value("resources", json::object());
  fields["distribution"] = spec.value("distribution", json());
  fields["limits"] = spec.value("limits", json::object());
  const std::string compute = spec.value("compute", "");
  fields["compute"] =
      compute.empty() ? "local" : compute;  // the workspace default is the local compute
  return fields;
}

Status Scheduler::LaunchStep(const std::string& pipe_name, const json& step, int attempt) {
  const std::string sname = step["name"];
  const std::string child = ChildName(pipe_name, sname, attempt);
  PipelineState& st = pipelines_[pipe_name];
  struct {
    const std::string& name;
    const std::string& experiment_name;
    const std::string& display_name;
  } pipe{pipe_name, st.experiment_name, st.display_name};
  json spec = step["spec"];
  spec["name"] = child;
  if (spec.value("display_name", "").empty()) spec["display_name"] = sname;
  spec["pipeline_step"] = sname;
  spec["attempt"] = attempt;
  if (spec.value("experiment_name", "").empty()) spec["experiment_name"] = pipe.experiment_name;
  const json retry = step.value("retry", json::object());
  if (retry.contains("timeout")) spec["limits"]["timeout"] = retry["timeout"];
  // Bound inputs: where the steps they read from left their outputs (a reused step's are its
  // original's).
  json hashes = json::object();
  const json bindings = step.value("bindings", json::object());
  for (const auto& [input, b] : bindings.items()) {
    std::string from = b.value("step", "");
    auto it = st.attempts.find(from);
    if (it == st.attempts.end() || it->second.empty())
      return FailedPrecondition("inputs." + input + ": step " + from + " has not run");
    std::string out = b.value("output", "");
    if (out == "default") out = "artifacts";
    std::string job = OutputJobOf(it->second.back().job);
    spec["inputs"][input]["path"] = "azureml://jobs/" + job + "/outputs/" + out;
    spec["inputs"][input]["path_kind"] = "job_output";
    json h = KnownOutputHashes(job).value_or(json::object());
    hashes[input] = h.value(out, "");
  }
  for (auto& [out, o] : spec["outputs"].items()) {
    o["path"] = WithJobName(o.value("path", ""), pipe.name);
  }

  // The reuse key: everything that decides what the step computes.
  const json fields = ReuseFieldsOf(step, spec, hashes);
  const json input_snapshots = step.value("input_snapshots", json::object());
  const std::string key = Sha256Hex(fields.dump());
  std::string component = step.value("component", "");
  // What the step is, across pipelines: a registered component by name (any version), a component
  // file by its path, an inline step by its pipeline and name.
  std::string ident;
  if (component.empty() || component == "inline")
    ident = "step:" + pipe.experiment_name + "/" + pipe.display_name + "/" + sname;
  else if (StartsWith(component, "file:"))
    ident = "component:" + component;
  else
    ident = "component:" + component.substr(0, component.find(':'));
  spec["reuse"] = {{"key", key}, {"ident", ident}, {"fields", fields}};

  const bool deterministic = step.value("is_deterministic", true);
  const bool force = st.pipeline["settings"].value("force_rerun", false);
  std::string why_not;
  if (!deterministic) {
    why_not = "the component is not deterministic (is_deterministic: false)";
  } else if (force) {
    why_not = "settings.force_rerun is true";
  } else if (attempt > 1) {
    why_not = "a retry (attempt " + std::to_string(attempt) + ")";
  } else if (auto prior = store_->StepRunByKey(key); prior.ok()) {
    auto orig = store_->Get(prior->job);
    std::string touched =
        orig.ok() && orig->status == "Completed" ? TouchedOutputs(OutputJobOf(orig->name)) : "";
    if (!touched.empty()) {
      why_not = "the run with the same key, " + prior->job + ", cannot stand for it: " + touched;
    } else if (orig.ok() && orig->status == "Completed") {
      return RecordReusedStep(pipe_name, step, attempt, spec, *orig);
    } else {
      why_not = "the run with the same key, " + prior->job + ", is " +
                (orig.ok() ? orig->status : std::string("gone"));
    }
  } else if (auto recent = store_->RecentStepRuns(ident, 20); !recent.empty()) {
    why_not = DifferenceFromClosestRun(fields, recent);
  } else {
    why_not = "no earlier run of this step";
  }
  spec["properties"]["why_not_reused"] = why_not;

  SubmitRequest r;
  r.spec = spec;
  r.snapshot = step.value("snapshot", "");
  for (const auto& [k, v] : input_snapshots.items())
    if (v.is_string()) r.input_manifests[k] = v.get<std::string>();
  r.mlflow_experiment_id = st.mlflow_experiment_id;
  r.parent = pipe.name;
  r.created_by = st.created_by;
  if (config_.on_trial) {
    json params = json::object();
    const json inputs = spec.value("inputs", json::object());
    for (const auto& [input, in] : inputs.items())
      if (in.value("literal", false)) params[input] = in.value("value", "");
    Status s = config_.on_trial(child, pipe.name, r.mlflow_experiment_id, params);
    if (!s.ok() && s.code() != Code::kAlreadyExists)
      SweepLog(pipe.name, "step " + sname + " could not get its MLflow run: " + s.message());
  }
  // Known to the pipeline before it exists, so that even its first transitions reach the cache.
  st.attempts[sname].push_back({child, "Starting", attempt});
  step_pipeline_[child] = pipe.name;
  auto made = DoSubmit(r);
  if (!made.ok()) {
    st.attempts[sname].pop_back();
    step_pipeline_.erase(child);
    return made.status();
  }
  for (auto& a : st.attempts[sname])
    if (a.job == child) a.status = made->status;
  SweepLog(pipe.name, "start " + sname + ": " + child + " (not reused: " + why_not + ")");
  return Status::Ok();
}

// A pipeline's steps checked as the jobs they will be, before anything runs: computes, inputs,
// outputs.
Status Scheduler::ValidatePipeline(const spec::JobSpec& s, const SubmitRequest& r) {
  for (const auto& step : s.pipeline.value("steps", json::array())) {
    SubmitRequest check;
    check.spec = step["spec"];
    check.spec["name"] = "";
    const json bindings = step.value("bindings", json::object());
    for (const auto& [input, _] : bindings.items()) check.spec["inputs"].erase(input);
    for (auto& [out, o] : check.spec["outputs"].items()) {
      o["path"] = WithJobName(o.value("path", ""), "x");
    }
    check.dry_run = true;
    auto v = DoSubmit(check);
    if (!v.ok())
      return Status(v.status().code(),
                    "jobs." + step.value("name", "") + ": " + v.status().message());
    if (!r.dry_run) {
      std::string snap = step.value("snapshot", "");
      if (!snap.empty() && !store_->GetSnapshot(snap).ok())
        return InvalidArgument("jobs." + step.value("name", "") + ": code snapshot " + snap +
                               " was not uploaded");
    }
  }
  return Status::Ok();
}

}  // namespace cairn::scheduler
