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

// One metric's points as columns: {"total": n, "step": [...], "timestamp": [...], "value": [...]},
// NaN and infinities as null; only the points `pick` names when `picked`.
void AppendColumns(std::string& body, const std::vector<tracking::Point>& h,
                   const std::vector<size_t>& pick, bool picked) {
  const size_t n = picked ? pick.size() : h.size();
  auto at = [&](size_t i) -> const tracking::Point& { return h[picked ? pick[i] : i]; };
  body += "{\"total\":" + std::to_string(h.size()) + ",\"step\":[";
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

// A job as the jobs table shows it (GET /api/v1/jobs?view=summary), written directly: its latest
// metric values and its params (a sweep shows its best trial's), up to `keys` of each.
void AppendSummary(std::string& body, const store::JobSummary& j,
                   const std::unordered_map<std::string, std::vector<tracking::Metric>>& latest,
                   const std::unordered_map<std::string, std::vector<tracking::KeyValue>>& params,
                   size_t keys) {
  body += "{";
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
    for (size_t k = 0; k < m->second.size() && k < keys; ++k) {
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

}  // namespace

// Submits a job: {spec, source_yaml?, snapshot?, input_snapshots?, dry_run?}. Its MLflow run is
// made first (its id is the job's name) and erased again if the scheduler refuses the job.
void Server::SubmitJob(const http::Request& req, json body, http::Response& res) {
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
Result<json> Server::RerunBody(const store::JobRecord& orig, const std::string& yaml,
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
    for (const auto& st : orig.spec.value("pipeline", json::object()).value("steps", json::array()))
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

json Server::View(const store::JobRecord& j) {
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
void Server::AddGpuView(const store::JobRecord& j, json& v) {
  if (j.type == "sweep") return;
  std::vector<std::string> ids, names;
  for (const auto& instance : j.gpus)
    for (const auto& g : instance) {
      if (!g.is_number_integer()) continue;
      int idx = g.get<int>();
      ids.push_back(std::to_string(idx));
      for (const auto& known : sched_->gpus())
        if (known.index == idx && std::find(names.begin(), names.end(), known.name) == names.end())
          names.push_back(known.name);
    }
  if (!ids.empty())
    v["gpus"] = Join(ids, ",") + (names.empty() ? "" : " (" + Join(names, ", ") + ")");
  auto c = j.compute == "local" ? Result<store::ComputeRecord>(NotFound(""))
                                : Reader().GetCompute(j.compute);
  if (j.compute != "local" &&
      (!c.ok() || scheduler::SlurmTargetOf(c->spec, sched_->config().slurm_conf)))
    return;
  scheduler::GpuRequest req = scheduler::Scheduler::RequestOf(j.spec, c.ok() ? &c->spec : nullptr);
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

// Whether the caller may change job `name` (a Contributor: only their own); the refusal, or the
// job.
Result<store::JobRecord> Server::JobToChange(const http::Request& req, const std::string& name) {
  auto job = Reader().Get(name);
  if (!job.ok()) return job.status();
  if (Status s = MayChange(CallerOf(req), job->created_by, "job '" + name + "'"); !s.ok()) return s;
  return job;
}

// A sweep's trials, best first by the objective (Cairn's addition to the sweep job object): each
// with its hyperparameters, its best value of the primary metric, how many times it reported it,
// and its status.
json Server::SweepTrials(const store::JobRecord& sweep) {
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
json Server::PipelineSteps(const store::JobRecord& p) {
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

// Long poll: returns as soon as the log has bytes past `offset`, the job ends, or `wait_ms`
// passes.
void Server::JobLogs(const http::Request& req, http::Response& res) {
  std::string name = req.matches[1];
  long long offset = req.has_param("offset") ? atoll(req.get_param_value("offset").c_str()) : 0;
  int wait_ms = req.has_param("wait_ms")
                    ? std::clamp(atoi(req.get_param_value("wait_ms").c_str()), 0, 30000)
                    : 0;
  std::string file = req.has_param("file") ? req.get_param_value("file") : "user_logs/std_log.txt";
  // The status the client last saw: a change answers at once, so a live status line stays live.
  std::string seen_status = req.get_param_value("status");
  compute::RunLayout layout = compute::RunLayout::For(opt_.home, name);
  if (!IsDir(layout.root))  // a reused pipeline step has no run folder: its logs are its original's
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

// Jobs.
void Server::CreateJob(const http::Request& req, http::Response& res) {
  SubmitJob(req, ParseJsonOrDiscarded(req.body), res);
}

// A job resubmitted from its YAML as edited in the studio: what was uploaded for the original
// (its code, its local inputs; a pipeline's per step) stands for the local paths the YAML
// names.
void Server::RerunJob(const http::Request& req, http::Response& res) {
  auto orig = Reader().Get(req.matches[1]);
  if (!orig.ok()) return SendError(res, orig.status());
  json body = ParseJsonOrDiscarded(req.body);
  if (!body.is_object() || !body["yaml"].is_string())
    return SendError(res, InvalidArgument("expected {\"yaml\": ...}"));
  auto rerun = RerunBody(*orig, body["yaml"], body.value("name", ""));
  if (!rerun.ok()) return SendError(res, rerun.status());
  SubmitJob(req, std::move(rerun).value(), res);
}

void Server::ListJobs(const http::Request& req, http::Response& res) {
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
      body += first ? "" : ",";
      first = false;
      AppendSummary(body, j, latest, params, kSummaryKeys);
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
}

void Server::GetJob(const http::Request& req, http::Response& res) {
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
}

void Server::UpdateJob(const http::Request& req, http::Response& res) {
  json body = ParseJsonOrDiscarded(req.body);
  if (!body.is_object()) return SendError(res, InvalidArgument("expected a JSON object"));
  if (auto mine = JobToChange(req, req.matches[1]); !mine.ok())
    return SendError(res, mine.status());
  auto job = sched_->Update(req.matches[1], body);
  if (!job.ok()) return SendError(res, job.status());
  Audit(req, "job.update", req.matches[1], body.dump().substr(0, 512));
  SendJson(res, View(*job));
}

void Server::CancelJob(const http::Request& req, http::Response& res) {
  if (auto mine = JobToChange(req, req.matches[1]); !mine.ok())
    return SendError(res, mine.status());
  Status s = sched_->Cancel(req.matches[1]);
  if (!s.ok()) return SendError(res, s);
  Audit(req, "job.cancel", req.matches[1]);
  auto job = Reader().Get(req.matches[1]);
  SendJson(res, job.ok() ? View(*job) : json::object());
}

// Archived jobs leave the default lists; restored, they come back (az ml job archive|restore).
void Server::SetArchived(const http::Request& req, http::Response& res, bool archived) {
  if (auto mine = JobToChange(req, req.matches[1]); !mine.ok())
    return SendError(res, mine.status());
  Status s = sched_->SetArchived(req.matches[1], archived);
  if (!s.ok()) return SendError(res, s);
  Audit(req, archived ? "job.archive" : "job.restore", req.matches[1]);
  auto job = Reader().Get(req.matches[1]);
  SendJson(res, job.ok() ? View(*job) : json::object());
}

void Server::ArchiveJob(const http::Request& req, http::Response& res) {
  SetArchived(req, res, true);
}

void Server::RestoreJob(const http::Request& req, http::Response& res) {
  SetArchived(req, res, false);
}

// Server-sent events: "jobs" whenever any job changes (status, a new job, an end), so a page
// re-reads what it shows instead of polling. A comment every 15 s keeps proxies from closing a
// quiet stream; the stream ends after 10 minutes (EventSource reconnects on its own) or when
// the server stops.
void Server::JobEvents(const http::Request&, http::Response& res) {
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
}

void Server::JobMetrics(const http::Request& req, http::Response& res) {
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
  size_t max_points =
      req.has_param("max_points")
          ? static_cast<size_t>(std::max(0LL, atoll(req.get_param_value("max_points").c_str())))
          : 0;
  tracking::XAxis axis = req.get_param_value("x") == "timestamp" ? tracking::XAxis::kTimestamp
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
      return SendError(res,
                       InvalidArgument(std::string(key) + ": expected a number, got '" + v + "'"));
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
      if (any) body += ",";
      any = true;
      AppendJsonString(body, k);
      body += ':';
      AppendColumns(
          body, *h,
          max_points > 0 ? tracking::MinMaxDownsample(*h, max_points, axis) : std::vector<size_t>(),
          max_points > 0);
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
}

void Server::SupervisorEvent(const http::Request& req, http::Response& res) {
  json body = ParseJsonOrDiscarded(req.body);
  if (!body.is_object()) return SendError(res, InvalidArgument("expected {\"event\": ...}"));
  Status s =
      sched_->SupervisorEvent(req.matches[1], body.value("event", ""), body.value("reason", ""));
  if (!s.ok()) return SendError(res, s);
  SendJson(res, {{"ok", true}});
}

}  // namespace cairn::server
