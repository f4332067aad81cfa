// The sweep controller: runs on the scheduler thread, one step per tick and per change. Its state
// is the workspace's own records: the sweep job, and its trials (child jobs <sweep>_<n>, each with
// its hyperparameters in its spec). Trial n of a random, Sobol or grid sweep depends only on (seed,
// n), so after a restart the controller issues exactly the trials an uninterrupted sweep would
// have, none twice.
#include <charconv>
#include <cmath>
#include <cstdio>
#include <optional>

#include "base/fs.h"
#include "base/util.h"
#include "compute/run_layout.h"
#include "scheduler/scheduler.h"
#include "spec/placeholders.h"
#include "sweep/policy.h"
#include "sweep/search_space.h"

namespace cairn::scheduler {

using nlohmann::json;
using store::JobRecord;

namespace {

std::string ValueText(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_float()) {  // the shortest text that reads back as the value the trial's params
                              // record
    char buf[32];
    auto r = std::to_chars(buf, buf + sizeof buf, v.get<double>());
    return std::string(buf, r.ptr);
  }
  return v.dump();
}

sweep::Policy PolicyOf(const json& j) {
  sweep::Policy p;
  if (!j.is_object()) return p;
  std::string type = j.value("type", "");
  p.type = type == "bandit"                 ? sweep::Policy::Type::kBandit
           : type == "median_stopping"      ? sweep::Policy::Type::kMedianStopping
           : type == "truncation_selection" ? sweep::Policy::Type::kTruncationSelection
                                            : sweep::Policy::Type::kNone;
  p.evaluation_interval = j.value("evaluation_interval", 1);
  p.delay_evaluation = j.value("delay_evaluation", 0);
  p.has_slack_factor = j.contains("slack_factor");
  p.slack_factor = j.value("slack_factor", 0.0);
  p.has_slack_amount = j.contains("slack_amount");
  p.slack_amount = j.value("slack_amount", 0.0);
  p.truncation_percentage = j.value("truncation_percentage", 0);
  p.exclude_finished_jobs = j.value("exclude_finished_jobs", false);
  return p;
}

// A trial's best report of the objective (NaN ignored); nullopt when it reported none.
std::optional<double> BestOf(const std::vector<double>& values, bool maximize) {
  std::optional<double> best;
  for (double v : values)
    if (!std::isnan(v) && (!best || (maximize ? v > *best : v < *best))) best = v;
  return best;
}

int TrialNumber(const std::string& sweep, const std::string& trial) {
  return atoi(trial.c_str() + sweep.size() + 1);
}

}  // namespace

// What a sweep's spec says of how it runs, read once per step.
struct SweepSettings {
  std::string alg, rule, metric;
  uint64_t seed = 0;
  bool maximize = true;
  long long max_total = 1000, max_concurrent = 1000, timeout = 0;
  sweep::Policy policy;
};

namespace {

SweepSettings SweepSettingsOf(const json& sw, const sweep::Space& space) {
  SweepSettings c;
  const json algorithm = sw.value("algorithm", json::object());
  c.alg = algorithm.value("type", "random");
  c.rule = algorithm.value("rule", "random");
  c.seed = algorithm.value("seed", 0ULL);
  const json objective = sw.value("objective", json::object());
  c.metric = objective.value("primary_metric", "");
  c.maximize = objective.value("goal", "maximize") == "maximize";
  const json limits = sw.value("limits", json::object());
  c.max_total = limits.value("max_total_trials", 1000LL);
  c.max_concurrent = limits.value("max_concurrent_trials", c.max_total);
  c.timeout = limits.value("timeout", 0LL);
  if (c.alg == "grid") c.max_total = std::min(c.max_total, sweep::GridSize(space));
  c.policy = PolicyOf(sw.value("early_termination", json()));
  return c;
}

}  // namespace

void Scheduler::SweepLog(const std::string& sweep, const std::string& line) {
  compute::RunLayout layout = compute::RunLayout::For(config_.workspace, sweep);
  (void)MakeDirs(Dirname(layout.UserLog()));
  FILE* f = fopen(layout.UserLog().c_str(), "a");
  if (!f) return;
  fprintf(f, "%s %s\n", IsoTime(NowMillis()).c_str(), line.c_str());
  fclose(f);
}

void Scheduler::NoteTrialStatus(const std::string& trial, const std::string& status) {
  NotePipelineChild(trial, status);
  auto owner = trial_sweep_.find(trial);
  if (owner == trial_sweep_.end()) return;
  auto it = sweeps_.find(owner->second);
  if (it == sweeps_.end()) return;
  for (auto& t : it->second.trials)
    if (t.name == trial) t.status = status;
  // A trial's end lets the sweep start the next one now, not at the next tick. Posted (not
  // re-entrant), and once however many trials end together.
  if (store::IsTerminalStatus(status) && !it->second.step_pending) {
    it->second.step_pending = true;
    Post([this, sweep = owner->second] {
      if (auto s = sweeps_.find(sweep); s != sweeps_.end()) s->second.step_pending = false;
      SweepStep(sweep);
    });
  }
}

void Scheduler::ForgetSweep(const std::string& name) {
  auto it = sweeps_.find(name);
  if (it == sweeps_.end()) return;
  for (const auto& t : it->second.trials) trial_sweep_.erase(t.name);
  sweeps_.erase(it);
}

// After a restart: the trials from their records (their ends were logged before).
void Scheduler::LoadTrials(const std::string& name, SweepState& st) {
  store::JobFilter f;
  f.parent = name;
  f.max_results = 0;
  for (const auto& t : store_->List(f)) {
    SweepTrial x;
    x.name = t.name;
    x.status = t.status;
    x.hyperparameters = t.spec.value("hyperparameters", json::object());
    x.end_logged = store::IsTerminalStatus(t.status);
    x.stopped = t.status == "Canceled" &&
                StartsWith(t.status_reason, "stopped by the early-termination policy");
    st.trials.push_back(std::move(x));
  }
  std::sort(st.trials.begin(), st.trials.end(), [&](const SweepTrial& a, const SweepTrial& b) {
    return TrialNumber(name, a.name) < TrialNumber(name, b.name);
  });
  for (const auto& t : st.trials) trial_sweep_[t.name] = name;
  st.loaded = true;
}

// Reads the primary metric of the trials still running (and once more when one has ended), and
// stops those the early-termination policy says to.
void Scheduler::ApplyEarlyTermination(const std::string& name, SweepState& st,
                                      const SweepSettings& c, bool ending) {
  std::vector<SweepTrial>& trials = st.trials;
  const sweep::Policy& policy = c.policy;
  const bool maximize = c.maximize;
  const std::string& metric = c.metric;
  for (auto& t : trials) {
    if (t.values_final || !config_.metric_history || metric.empty()) continue;
    t.values = config_.metric_history(t.name, metric);
    if (store::IsTerminalStatus(t.status)) t.values_final = true;
  }
  std::vector<sweep::TrialCurve> curves;
  for (const auto& t : trials)
    curves.push_back({TrialNumber(name, t.name), t.values, store::IsTerminalStatus(t.status)});
  for (size_t i = 0; i < trials.size() && !ending && policy.type != sweep::Policy::Type::kNone;
       ++i) {
    SweepTrial& t = trials[i];
    if (store::IsTerminalStatus(t.status) || t.status == "CancelRequested") continue;
    const std::vector<double> all = t.values;
    for (size_t k = t.evaluated + 1; k <= all.size(); ++k) {
      curves[i].values.assign(all.begin(), all.begin() + static_cast<long>(k));
      sweep::Decision d = sweep::Evaluate(policy, maximize, curves, i);
      if (d.evaluated) SweepLog(name, (d.stop ? "stop: " : "keep: ") + d.reason);
      if (d.stop) {
        t.stopped = true;
        (void)DoCancel(t.name, "stopped by the early-termination policy: " + d.reason);
        break;
      }
    }
    curves[i].values = all;
    t.evaluated = all.size();
  }
}

// Trials that ended since the last step, in the sweep's log with their best report.
void Scheduler::LogEndedTrials(const std::string& name, SweepState& st, const SweepSettings& c) {
  const std::string& metric = c.metric;
  const bool maximize = c.maximize;
  for (auto& t : st.trials) {
    if (!store::IsTerminalStatus(t.status) || t.end_logged) continue;
    t.end_logged = true;
    std::string value = "no " + metric + " reported";
    if (auto b = BestOf(t.values, maximize)) {
      char buf[32];
      snprintf(buf, sizeof buf, "%.6g", *b);
      value = "best " + metric + " " + buf + " in " + std::to_string(t.values.size()) + " reports";
    }
    SweepLog(name, "done " + t.name + ": " + t.status + ", " + value);
  }
}

// The best trial so far (ties to the earlier trial), kept in the sweep's properties.
void Scheduler::RecordBestTrial(const std::string& name, const JobRecord& sweep_rec, SweepState& st,
                                const SweepSettings& c) {
  const std::vector<SweepTrial>& trials = st.trials;
  const bool maximize = c.maximize;
  const std::string& metric = c.metric;
  int best = -1;
  double best_value = 0;
  for (size_t i = 0; i < trials.size(); ++i)
    if (auto b = BestOf(trials[i].values, maximize);
        b && (best < 0 || (maximize ? *b > best_value : *b < best_value))) {
      best = static_cast<int>(i);
      best_value = *b;
    }
  if (best >= 0) {
    char buf[32];
    snprintf(buf, sizeof buf, "%.17g", best_value);
    const std::string& who = trials[static_cast<size_t>(best)].name;
    if (sweep_rec.properties.value("best_child_run_id", "") != who ||
        sweep_rec.properties.value("score", "") != buf) {
      if (sweep_rec.properties.value("best_child_run_id", "") != who)
        SweepLog(name, "best so far: " + who + " with " + metric + " = " + buf);
      JobRecord upd = sweep_rec;
      upd.properties["best_child_run_id"] = who;
      upd.properties["score"] = buf;
      (void)store_->UpdateMeta(upd);
      events_.Bump();
    }
  }
}

// Trial `n` of the sweep with `params`: its spec (the command's ${{search_space.x}} filled in, the
// values as AZUREML_PARAMETER_<x>), its MLflow run, and its submission.
Result<JobRecord> Scheduler::IssueTrial(const std::string& name, const JobRecord& sweep_rec,
                                        SweepState& st, const json& params, uint64_t n) {
  std::vector<SweepTrial>& trials = st.trials;
  std::string trial = name + "_" + std::to_string(n);
  json spec = sweep_rec.spec;
  spec.erase("sweep");
  spec["type"] = "command";
  spec["name"] = trial;
  spec["display_name"] = trial;
  spec["hyperparameters"] = params;
  // ${{search_space.x}} in the command; the values also as AZUREML_PARAMETER_<x>.
  auto cmd = spec::Substitute(
      spec.value("command", ""),
      [&](const std::string& ctx, const std::string& key) -> std::optional<std::string> {
        if (ctx == "search_space")
          return params.contains(key) ? std::optional<std::string>(ValueText(params[key]))
                                      : std::nullopt;
        return std::optional<std::string>("${{" + ctx + "." + key + "}}");
      });
  spec["command"] = cmd.ok() ? *cmd : spec.value("command", "");
  for (auto& [k, v] : params.items())
    spec["environment_variables"]["AZUREML_PARAMETER_" + k] = ValueText(v);
  if (config_.on_trial) {
    Status s =
        config_.on_trial(trial, name, sweep_rec.spec.value("mlflow_experiment_id", ""), params);
    if (!s.ok() && s.code() != Code::kAlreadyExists)
      SweepLog(name, "trial " + trial + " could not get its MLflow run: " + s.message());
  }
  SubmitRequest r;
  r.spec = spec;
  r.snapshot = sweep_rec.snapshot;
  if (sweep_rec.spec.contains("input_snapshots") && sweep_rec.spec["input_snapshots"].is_object())
    for (auto& [k, v] : sweep_rec.spec["input_snapshots"].items())
      r.input_manifests[k] = v.get<std::string>();
  r.mlflow_experiment_id = sweep_rec.spec.value("mlflow_experiment_id", "");
  r.parent = name;
  r.created_by = sweep_rec.created_by;
  // Known to the sweep before it exists, so that even its first transitions reach the cache.
  SweepTrial x;
  x.name = trial;
  x.status = "Starting";
  x.hyperparameters = params;
  trials.push_back(x);
  trial_sweep_[trial] = name;
  auto made = DoSubmit(r);
  if (!made.ok()) {
    trials.pop_back();
    trial_sweep_.erase(trial);
    return made.status();
  }
  for (auto& t : trials)
    if (t.name == trial) t.status = made->status;
  SweepLog(name, "start " + trial + ": " + params.dump());
  return made;
}

// Ends the sweep once every trial it will issue has ended: Completed when one did, Canceled when
// it was ending, else Failed with the first failed trial's own reason.
void Scheduler::FinishSweep(const std::string& name, SweepState& st, bool ending,
                            const std::string& end_reason) {
  const std::vector<SweepTrial>& trials = st.trials;
  int completed = 0, failed = 0, canceled = 0, stopped = 0;
  for (const auto& t : trials) {
    completed += t.status == "Completed";
    failed += t.status == "Failed";
    canceled += t.status == "Canceled";
    stopped += t.status == "Canceled" && t.stopped;
  }
  std::string summary = Plural(static_cast<long long>(trials.size()), "trial") + ": " +
                        std::to_string(completed) + " completed, " + std::to_string(failed) +
                        " failed, " + std::to_string(canceled) + " canceled (" +
                        std::to_string(stopped) + " stopped early)";
  std::string status = ending ? "Canceled" : completed > 0 ? "Completed" : "Failed";
  std::string reason = ending ? end_reason + "; " + summary : summary;
  std::string error;
  if (status == "Failed") {
    // Why: the first failed trial's own reason (what a user fixes), not only that none completed.
    error = "no trial completed";
    for (const auto& t : trials) {
      if (t.status != "Failed") continue;
      auto tj = store_->Get(t.name);
      if (tj.ok()) {
        std::string why = tj->error.empty() ? tj->status_reason : tj->error;
        error += "; the first failed trial, " + t.name + ": " + why;
        reason += "; " + t.name + ": " + why;
      }
      break;
    }
  }
  SweepLog(name, "sweep " + status + ": " + reason);
  ForgetSweep(name);
  (void)Transition(name, status, reason, std::nullopt, NowMillis(), std::nullopt, error);
}

void Scheduler::SweepStep(const std::string& name) {
  auto rec = store_->Get(name);
  auto state_it = sweeps_.find(name);
  if (!rec.ok() || store::IsTerminalStatus(rec->status) || state_it == sweeps_.end()) {
    ForgetSweep(name);
    return;
  }
  SweepState& st = state_it->second;
  const json& sw = rec->spec.value("sweep", json::object());
  auto space = sweep::ParseSpace(sw.value("search_space", json::object()));
  if (!space.ok()) {  // validated at submit; only a hand-edited record gets here
    (void)Transition(name, "Failed", "search_space: " + space.status().message(), std::nullopt,
                     NowMillis());
    ForgetSweep(name);
    return;
  }
  const SweepSettings c = SweepSettingsOf(sw, *space);
  if (!st.loaded) {
    LoadTrials(name, st);
    st.loaded = true;
  }
  std::vector<SweepTrial>& trials = st.trials;
  long long now = NowMillis();
  bool ending = rec->status == "CancelRequested";
  std::string end_reason = ending ? "canceled" : "";
  if (!ending && c.timeout > 0 && rec->start_time && now - *rec->start_time > c.timeout * 1000) {
    ending = true;
    end_reason = "limits.timeout of " + std::to_string(c.timeout) + " s reached";
  }
  ApplyEarlyTermination(name, st, c, ending);
  LogEndedTrials(name, st, c);
  RecordBestTrial(name, *rec, st, c);

  long long active = 0;
  for (const auto& t : trials) active += !store::IsTerminalStatus(t.status);
  if (ending) {
    for (const auto& t : trials)
      if (!store::IsTerminalStatus(t.status) && t.status != "CancelRequested") {
        SweepLog(name, "cancel " + t.name + ": the sweep is ending (" + end_reason + ")");
        (void)DoCancel(t.name, "the sweep " + name + " ended: " + end_reason);
      }
  }

  // New trials, up to the limits.
  long long issued = static_cast<long long>(trials.size());
  std::vector<sweep::Observation> observed;
  if (c.alg == "bayesian")
    for (const auto& t : trials)
      if (auto b = BestOf(t.values, c.maximize); b && store::IsTerminalStatus(t.status))
        observed.push_back({t.hyperparameters, *b});
  while (!ending && issued < c.max_total && active < c.max_concurrent) {
    uint64_t n = static_cast<uint64_t>(issued);
    json params = c.alg == "grid"       ? sweep::SampleGrid(*space, n)
                  : c.alg == "bayesian" ? sweep::SampleTpe(*space, c.seed, n, observed, c.maximize)
                  : c.rule == "sobol"   ? sweep::SampleSobol(*space, c.seed, n)
                                        : sweep::SampleRandom(*space, c.seed, n);
    auto made = IssueTrial(name, *rec, st, params, n);
    if (!made.ok()) {
      std::string trial = name + "_" + std::to_string(n);
      SweepLog(name, "trial " + trial + " was refused: " + made.status().message());
      (void)Transition(name, "Failed",
                       "trial " + trial + " was refused: " + made.status().message(), std::nullopt,
                       NowMillis(), std::nullopt, made.status().message());
      ForgetSweep(name);
      return;
    }
    ++issued;
    if (!store::IsTerminalStatus(made->status)) ++active;
  }

  // Done: every trial issued (or the sweep ending) and none still running.
  if ((issued >= c.max_total || ending) && active == 0) FinishSweep(name, st, ending, end_reason);
}

}  // namespace cairn::scheduler
