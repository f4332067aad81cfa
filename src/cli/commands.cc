#include "cli/commands.h"

#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>

#include "base/settings.h"
#include "base/fs.h"
#include "base/http_client.h"
#include "base/util.h"
#include "cli/assets.h"
#include "cli/people.h"
#include "cli/client.h"
#include "cli/globals.h"
#include "cli/output.h"
#include "cli/snapshot.h"
#include "cli/stream.h"
#include "compute/process.h"
#include "compute/spawner.h"
#include "compute/supervisor.h"
#include "server/workspace.h"
#include "spec/compute_spec.h"
#include "spec/job_spec.h"
#include "spec/yaml_tree.h"

namespace cairn::cli {

using nlohmann::json;

namespace {

struct Globals {
  std::string output = "json";
  std::string query;
};

int ExitCodeFor(const Status& s) {
  switch (s.code()) {
    case Code::kOk:
      return 0;
    case Code::kInvalidArgument:
      return 2;
    case Code::kNotFound:
      return 3;
    case Code::kUnavailable:
      return 4;
    default:
      return 1;
  }
}

int Fail(const Status& s) {
  fprintf(stderr, "ERROR: %s\n", s.message().c_str());
  return ExitCodeFor(s);
}

int Print(const Globals& g, const json& value, const std::vector<Column>& columns = {}) {
  auto fmt = ParseFormat(g.output);
  if (!fmt.ok()) return Fail(fmt.status());
  auto v = ApplyQuery(value, g.query);
  if (!v.ok()) return Fail(v.status());
  std::string out = Render(*v, *fmt, g.query.empty() ? columns : std::vector<Column>{});
  fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

const std::vector<Column> kJobColumns = {{"Name", "name"},
                                         {"Display name", "display_name"},
                                         {"Status", "status"},
                                         {"Experiment", "experiment_name"},
                                         {"Compute", "compute"},
                                         {"Created", "creation_context.created_at"},
                                         {"Duration", "duration_seconds", Column::kDuration}};
const std::vector<Column> kJobShowColumns = {{"name", "name"},
                                             {"display_name", "display_name"},
                                             {"status", "status"},
                                             {"reason", "status_reason"},
                                             {"experiment_name", "experiment_name"},
                                             {"compute", "compute"},
                                             {"created", "creation_context.created_at"},
                                             {"started", "start_time"},
                                             {"ended", "end_time"},
                                             {"duration", "duration_seconds", Column::kDuration},
                                             {"exit_code", "exit_code"},
                                             {"error", "error.message"},
                                             {"metrics", "metrics_summary"},
                                             {"params", "params_summary"},
                                             {"studio", "services.Studio.endpoint"}};

// "loss=0.2, acc=0.9": the latest metrics (or params) on one line for the table view.
void AddSummaries(json& job) {
  for (const char* field : {"metrics", "params"}) {
    if (!job.contains(field) || !job[field].is_object()) continue;
    std::vector<std::string> parts;
    for (const auto& [k, v] : job[field].items())
      parts.push_back(k + "=" + (v.is_string() ? v.get<std::string>() : v.dump()));
    job[std::string(field) + "_summary"] = Join(parts, ", ");
  }
}
const std::vector<Column> kComputeColumns = {
    {"Name", "name"},          {"Type", "type"},
    {"Size", "size"},          {"Min", "min_instances"},
    {"Max", "max_instances"},  {"In use", "in_use"},
    {"Queued", "queued_jobs"}, {"State", "provisioning_state"}};

Result<std::unique_ptr<Client>> ConnectOrFail() { return Connect(); }

// A studio address that signs the browser in: a one-time link (valid 5 minutes) that sets a session
// cookie and goes on to `page` ("/#/jobs/x"). The workspace token never appears in it.
std::string StudioLink(Client& client, const std::string& page) {
  auto code = client.Post("/api/v1/login-codes", json::object());
  if (!code.ok()) return client.url() + page;
  return code->value("url", "") + "&next=" + HttpClient::UrlEncode(page);
}

void LaunchBrowser(const std::string& url);

void OpenInBrowser(const std::string& url) {
  fprintf(stderr, "Studio: %s\n", url.c_str());
  LaunchBrowser(url);
}

// Opens `url` where there is a display to open it on; silent elsewhere.
void LaunchBrowser(const std::string& url) {
  if (!getenv("DISPLAY") && !getenv("WAYLAND_DISPLAY")) return;
  if (fork() == 0) {
    setsid();
    freopen("/dev/null", "w", stdout);
    freopen("/dev/null", "w", stderr);
    execlp("xdg-open", "xdg-open", url.c_str(), nullptr);
    _exit(127);
  }
}

struct ParsedJob {
  spec::JobSpec spec;
  std::string yaml;
};

// Parses and validates a job file locally; prints every diagnostic. nullopt on errors.
std::optional<ParsedJob> LoadJob(const std::string& file, const std::vector<std::string>& sets,
                                 const std::string& name, bool check_paths = true) {
  spec::Diagnostics d;
  spec::ParseOptions opt;
  opt.overrides = sets;
  opt.name = name;
  opt.check_local_paths = check_paths;
  // `component: azureml:<name>:<version>` in a pipeline: the workspace's registered component.
  opt.resolve_component = [](const std::string& name,
                             const std::string& version) -> Result<spec::ComponentSource> {
    auto client = ConnectOrFail();
    if (!client.ok()) return client.status();
    auto got =
        (*client)->Get("/api/v1/assets/component/" + HttpClient::UrlEncode(name) +
                       (version.empty() ? "" : "/versions/" + HttpClient::UrlEncode(version)));
    if (!got.ok()) {
      if (got.status().code() == Code::kNotFound)
        return NotFound("no component " + name + (version.empty() ? "" : " version " + version) +
                        " in this workspace (cairn component create -f <file> registers one)");
      return got.status();
    }
    return spec::ComponentSource{got->value("yaml", ""),
                                 "azureml:" + name + ":" + got->value("version", ""),
                                 got->value("code_snapshot", "")};
  };
  auto spec = spec::ParseJobFile(file, opt, d);
  std::string diags = d.ToString();
  if (!diags.empty()) fputs(diags.c_str(), stderr);
  if (!spec) return std::nullopt;
  auto yaml = ReadFile(file);
  return ParsedJob{*spec, yaml.ok() ? *yaml : ""};
}

// Uploads code and local inputs; returns the submit body.
Result<json> Prepare(Client& client, const ParsedJob& job) {
  json body = {{"spec", spec::ToJson(job.spec)}, {"source_yaml", job.yaml}};
  if (!job.spec.code.empty()) {
    auto id = UploadSnapshot(client, job.spec.code, true, "code");
    if (!id.ok()) return id.status();
    body["snapshot"] = *id;
  } else if (!job.spec.code_snapshot.empty()) {
    body["snapshot"] = job.spec.code_snapshot;  // the server refuses one it does not have
  }
  json inputs = json::object();
  for (const auto& [name, in] : job.spec.inputs) {
    if (in.literal || in.path_kind != spec::PathKind::kLocal || in.mode == "direct") continue;
    auto id = UploadSnapshot(client, in.path, false, "inputs." + name);
    if (!id.ok()) return id.status();
    inputs[name] = *id;
  }
  body["input_snapshots"] = inputs;
  // A pipeline's steps: each step's code and local inputs, as a command job's (the same folder
  // uploads once).
  if (job.spec.type == "pipeline") {
    json& steps = body["spec"]["pipeline"]["steps"];
    for (auto& step : steps) {
      const json& sp = step["spec"];
      const std::string field = "jobs." + step.value("name", "") + ".";
      if (std::string code = sp.value("code", ""); !code.empty()) {
        auto id = UploadSnapshot(client, code, true, field + "code");
        if (!id.ok()) return id.status();
        step["snapshot"] = *id;
      } else if (std::string snap = sp.value("code_snapshot", ""); !snap.empty()) {
        step["snapshot"] = snap;
      }
      json step_inputs = json::object();
      const json step_spec_inputs = sp.value("inputs", json::object());
      for (const auto& [name, in] : step_spec_inputs.items()) {
        if (in.value("literal", false) || in.value("path_kind", "") != "local" ||
            in.value("mode", "") == "direct")
          continue;
        auto id = UploadSnapshot(client, in.value("path", ""), false, field + "inputs." + name);
        if (!id.ok()) return id.status();
        step_inputs[name] = *id;
      }
      step["input_snapshots"] = step_inputs;
    }
  }
  return body;
}

bool IsTerminal(const std::string& s) {
  return s == "Completed" || s == "Failed" || s == "Canceled" || s == "NotResponding" ||
         s == "Paused";
}

// ---- job ----

struct JobArgs {
  std::string file, name, download_path = ".", output_name, status, experiment, parent, compute,
                          created_by;
  std::vector<std::string> sets, adds, removes;
  bool stream = false, all_ranks = false, web = false, skip_validation = false, all = false,
       include_archived = false, include_children = false, archived_only = false, no_wait = false,
       all_results = false;
  std::string save_as;
  int max_results = 50;
};

int JobCreate(const Globals& g, const JobArgs& a) {
  auto job = LoadJob(a.file, a.sets, a.name);
  if (!job) return 2;
  auto client = ConnectOrFail();
  if (!client.ok()) return Fail(client.status());
  auto body = Prepare(**client, *job);
  if (!body.ok()) return Fail(body.status());
  auto created = (*client)->Post("/api/v1/jobs", *body);
  if (!created.ok()) {
    Code code = created.status().code();
    if (code == Code::kFailedPrecondition || code == Code::kInvalidArgument ||
        code == Code::kAlreadyExists) {
      fprintf(stderr, "%s: error: %s\n", a.file.c_str(), created.status().message().c_str());
      return 2;
    }
    return Fail(created.status());
  }
  std::string name = created->value("name", "");
  if (!a.save_as.empty()) {
    json saved = *created;
    for (const char* k : {"status_reason", "status_history", "notes", "is_archived", "start_time",
                          "end_time", "duration_seconds", "exit_code", "error", "log_files"})
      saved.erase(k);
    saved["outputs"].erase("default");
    // What the workspace chose for an output (its default location) is not part of the job as
    // written.
    for (auto& [k, v] : saved["outputs"].items()) {
      if (!v.is_object()) continue;
      v.erase("job_output_uri");
      if (v.value("path", "") ==
          "azureml://datastores/workspaceblobstore/paths/azureml/" + name + "/" + k + "/")
        v.erase("path");
    }
    if (saved.contains("services") &&
        saved["services"].is_object()) {  // the job's own, not the endpoints
      saved["services"].erase("Tracking");
      saved["services"].erase("Studio");
      if (saved["services"].empty()) saved.erase("services");
    }
    Status s = WriteFileAtomic(a.save_as, ToYaml(saved));
    if (!s.ok()) return Fail(s);
  }
  if (a.web) OpenInBrowser(StudioLink(**client, "/#/jobs/" + name));
  if (a.stream) {
    auto done = StreamJob(**client, name, isatty(1), a.all_ranks, &*created);
    if (!done.ok()) return Fail(done.status());
    return done->value("status", "") == "Completed" ? 0 : 1;
  }
  return Print(g, *created, kJobShowColumns);
}

int JobValidate(const Globals& g, const JobArgs& a) {
  auto job = LoadJob(a.file, a.sets, a.name);
  if (!job) return 2;
  auto client = ConnectOrFail();
  if (!client.ok()) return Fail(client.status());
  json body = {{"spec", spec::ToJson(job->spec)}, {"dry_run", true}};
  auto checked = (*client)->Post("/api/v1/jobs", body);
  if (!checked.ok()) {
    fprintf(stderr, "%s: error: %s\n", a.file.c_str(), checked.status().message().c_str());
    return 2;
  }
  json out = {{"file", a.file},
              {"valid", true},
              {"type", job->spec.type},
              {"syntax", job->spec.generation},
              {"compute", (*checked)["compute"]},
              {"command", job->spec.command}};
  (void)g;
  if (g.output == "json" && g.query.empty()) {
    fprintf(stdout, "%s: valid %s job (%s syntax)\n", a.file.c_str(), job->spec.type.c_str(),
            job->spec.generation.c_str());
    return 0;
  }
  return Print(g, out);
}

// cairn job metrics: every metric's history of a job, or one metric's (--key), as csv or the usual
// formats.
int JobMetrics(const Globals& g, const JobArgs& ja) {
  auto client = ConnectOrFail();
  if (!client.ok()) return Fail(client.status());
  std::string path = "/api/v1/jobs/" + ja.name + "/metrics";
  if (!ja.status.empty()) path += "?key=" + HttpClient::UrlEncode(ja.status);
  auto r = (*client)->Get(path);
  if (!r.ok()) return Fail(r.status());
  if (g.output == "csv") {
    std::string out = "key,step,timestamp,value\n";
    for (const auto& [key, points] : (*r)["metrics"].items())
      for (const auto& p : points)
        out += key + "," + std::to_string(p["step"].get<long long>()) + "," +
               std::to_string(p["timestamp"].get<long long>()) + "," +
               (p["value"].is_string() ? p["value"].get<std::string>() : p["value"].dump()) + "\n";
    fputs(out.c_str(), stdout);
    return 0;
  }
  json rows = json::array();
  for (const auto& [key, points] : (*r)["metrics"].items())
    for (const auto& p : points)
      rows.push_back({{"key", key},
                      {"step", p["step"]},
                      {"timestamp", p["timestamp"]},
                      {"value", p["value"]}});
  return Print(g, g.output == "table" || g.output == "tsv" ? rows : (*r)["metrics"],
               {{"Key", "key"}, {"Step", "step"}, {"Timestamp", "timestamp"}, {"Value", "value"}});
}

int JobShow(const Globals& g, const JobArgs& a) {
  auto client = ConnectOrFail();
  if (!client.ok()) return Fail(client.status());
  auto job = (*client)->Get("/api/v1/jobs/" + a.name);
  if (!job.ok()) return Fail(job.status());
  if (a.web) OpenInBrowser(StudioLink(**client, "/#/jobs/" + a.name));
  if (g.output == "table") AddSummaries(*job);
  int rc = Print(g, *job, kJobShowColumns);
  if (rc == 0 && g.output == "table" && g.query.empty() && job->value("type", "") == "sweep") {
    // The trials, best first: hyperparameters, the objective, how often it was reported.
    const json objective = job->value("objective", json::object());
    std::string metric = objective.value("primary_metric", "");
    std::vector<Column> cols = {
        {"Trial", "name"}, {"Status", "status"}, {metric, "objective"}, {"Reports", "reports"}};
    json rows = json::array();
    for (const auto& t : job->value("trials", json::array())) {
      json row = {{"name", t["name"]},
                  {"status", t["status"]},
                  {"reports", t["reports"]},
                  {"objective", t.contains(metric) ? t[metric] : json("")}};
      for (auto& [k, v] : t["hyperparameters"].items()) {
        if (std::none_of(cols.begin(), cols.end(),
                         [&](const Column& c) { return c.path == "hp." + k; }))
          cols.push_back({k, "hp." + k});
        row["hp"][k] = v;
      }
      rows.push_back(row);
    }
    std::string best = job->value("properties", json::object()).value("best_child_run_id", "");
    printf("\nTrials, best first (%s, %s)%s:\n%s", metric.c_str(),
           objective.value("goal", "").c_str(), best.empty() ? "" : ("; best: " + best).c_str(),
           ToTable(rows, cols).c_str());
  }
  if (rc == 0 && g.output == "table" && g.query.empty() && job->value("type", "") == "pipeline") {
    // The steps in the order they run: status, duration, reused from, why not reused, attempts.
    std::vector<Column> cols = {{"Step", "step"},
                                {"Job", "job"},
                                {"Status", "status"},
                                {"Duration", "duration"},
                                {"Reused from", "reused_from"},
                                {"Why not reused", "why_not_reused"},
                                {"Attempts", "attempts"}};
    json rows = json::array();
    for (const auto& t : job->value("steps", json::array())) {
      json row = t;
      if (t.contains("duration_seconds")) {
        char buf[32];
        snprintf(buf, sizeof buf, "%.1fs", t["duration_seconds"].get<double>());
        row["duration"] = buf;
      }
      row["attempts"] = t.value("attempts", json::array()).size();
      if (t.contains("reused_from")) row["why_not_reused"] = "";
      rows.push_back(row);
    }
    printf("\nSteps:\n%s", ToTable(rows, cols).c_str());
  }
  return rc;
}

int JobList(const Globals& g, const JobArgs& a) {
  auto client = ConnectOrFail();
  if (!client.ok()) return Fail(client.status());
  std::string q = "/api/v1/jobs?max_results=" + std::to_string(a.all_results ? 0 : a.max_results);
  auto enc = [](const std::string& v) { return HttpClient::UrlEncode(v); };
  if (!a.status.empty()) q += "&status=" + enc(a.status);
  if (!a.experiment.empty()) q += "&experiment=" + enc(a.experiment);
  if (!a.parent.empty()) q += "&parent=" + enc(a.parent);
  // The table prints computes as azureml:<name>; either form selects them.
  if (!a.compute.empty())
    q += "&compute=" + enc(StartsWith(a.compute, "azureml:") ? a.compute.substr(8) : a.compute);
  if (a.include_archived) q += "&include_archived=true";
  if (a.archived_only) q += "&archived_only=true";
  if (a.include_children) q += "&include_children=true";
  if (!a.created_by.empty()) q += "&created_by=" + enc(a.created_by);
  auto jobs = (*client)->Get(q);
  if (!jobs.ok()) return Fail(jobs.status());
  if (!a.all_results && static_cast<int>(jobs->size()) == a.max_results && isatty(2))
    fprintf(stderr,
            "WARNING: showing at most %d jobs; use --max-results or --all-results for more\n",
            a.max_results);
  return Print(g, *jobs, kJobColumns);
}

int JobStream(const Globals&, const JobArgs& a) {
  auto client = ConnectOrFail();
  if (!client.ok()) return Fail(client.status());
  auto done = StreamJob(**client, a.name, isatty(1), a.all_ranks);
  if (!done.ok()) return Fail(done.status());
  return done->value("status", "") == "Completed" ? 0 : 1;
}

int JobDownload(const Globals&, const JobArgs& a) {
  auto client = ConnectOrFail();
  if (!client.ok()) return Fail(client.status());
  auto listing = (*client)->Get("/api/v1/jobs/" + a.name + "/files");
  if (!listing.ok()) return Fail(listing.status());
  std::string status = listing->value("status", "");
  if (!IsTerminal(status))
    return Fail(FailedPrecondition("This job is in state " + status +
                                   ". Download is allowed only in states ['Completed', 'Failed', "
                                   "'Canceled', 'NotResponding', 'Paused']"));
  auto job = (*client)->Get("/api/v1/jobs/" + a.name);
  if (!job.ok()) return Fail(job.status());
  if (!a.output_name.empty() && a.output_name != "default" &&
      !(*job)["outputs"].contains(a.output_name))
    return Fail(NotFound("job '" + a.name + "' has no output named '" + a.output_name + "'"));
  bool want_default = a.all || a.output_name.empty() || a.output_name == "default";
  int n = 0, refused = 0;
  for (const auto& f : (*listing)["files"]) {
    std::string rel = f.value("path", "");
    bool is_default = StartsWith(rel, "artifacts/");
    if (is_default && !want_default) continue;
    if (!is_default && !a.all && !StartsWith(rel, "named-outputs/" + a.output_name + "/")) continue;
    if (!is_default && a.output_name.empty() && !a.all) continue;
    if (f.value("type", "file") == "link") {
      if (!Az().only_show_errors)
        fprintf(stderr, "Warning: skipped %s: a link (links in a job's files are not followed)\n",
                rel.c_str());
      continue;
    }
    Status s = (*client)->Download(a.name, rel, a.download_path);
    if (!s.ok()) {
      // One refused file does not stop the rest.
      if (!Az().only_show_errors)
        fprintf(stderr, "Warning: skipped %s: %s\n", rel.c_str(), s.message().c_str());
      ++refused;
      continue;
    }
    ++n;
  }
  fprintf(stderr, "Downloaded %s of job %s to %s\n", Plural(n, "file").c_str(), a.name.c_str(),
          AbsPath(a.download_path).c_str());
  if (refused > 0)
    return Fail(Internal(std::to_string(refused) + " file(s) of job " + a.name +
                         " could not be downloaded"));
  // A sweep: its own log (above) and the best trial's files, in a folder named after the trial.
  std::string best = (*job).value("properties", json::object()).value("best_child_run_id", "");
  if ((*job).value("type", "") == "sweep" && !best.empty()) {
    JobArgs trial = a;
    trial.name = best;
    trial.download_path = JoinPath(a.download_path, best);
    return JobDownload(Globals{}, trial);
  }
  return 0;
}

int JobCancel(const Globals& g, const JobArgs& a) {
  auto client = ConnectOrFail();
  if (!client.ok()) return Fail(client.status());
  auto job = (*client)->Post("/api/v1/jobs/" + a.name + "/cancel", json::object());
  if (!job.ok()) return Fail(job.status());
  if (!a.no_wait) {
    long long deadline = NowMillis() + 60000;
    long long offset = 0;
    while (NowMillis() < deadline) {
      auto c = (*client)->Logs(a.name, offset, 1000);
      if (!c.ok()) break;
      offset = c->next_offset;
      if (c->terminal) break;
    }
    job = (*client)->Get("/api/v1/jobs/" + a.name);
    if (!job.ok()) return Fail(job.status());
  }
  return Print(g, *job, kJobShowColumns);
}

int JobArchive(const Globals& g, const JobArgs& a, bool archive) {
  auto client = ConnectOrFail();
  if (!client.ok()) return Fail(client.status());
  auto job = (*client)->Post("/api/v1/jobs/" + a.name + (archive ? "/archive" : "/restore"),
                             json::object());
  if (!job.ok()) return Fail(job.status());
  return Print(g, *job, kJobShowColumns);
}

int JobUpdate(const Globals& g, const JobArgs& a) {
  auto client = ConnectOrFail();
  if (!client.ok()) return Fail(client.status());
  auto job = (*client)->Get("/api/v1/jobs/" + a.name);
  if (!job.ok()) return Fail(job.status());
  json patch = json::object();
  for (const auto& set : a.sets) {
    size_t eq = set.find('=');
    if (eq == std::string::npos)
      return Fail(InvalidArgument("--set '" + set + "': expected KEY=VALUE"));
    std::string key = Trim(set.substr(0, eq)), value = set.substr(eq + 1);
    if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') &&
        value.back() == value.front())
      value = value.substr(1, value.size() - 2);
    auto parts = Split(key, '.');
    if (parts.size() == 1 &&
        (key == "display_name" || key == "description" || key == "experiment_name")) {
      patch[key] = value;
    } else if (parts.size() == 2 && (parts[0] == "tags" || parts[0] == "properties")) {
      if (!patch.contains(parts[0]))
        patch[parts[0]] = parts[0] == "tags" ? (*job)["tags"] : json::object();
      patch[parts[0]][parts[1]] = value;
    } else {
      return Fail(InvalidArgument("--set " + key +
                                  ": only tags.<key>, properties.<key>, display_name, "
                                  "description and experiment_name can be updated"));
    }
  }
  // az's generic update: --add <path> <value> (a mapping: key=value or a JSON object) and --remove
  // <path>.
  for (size_t i = 0; i + 1 < a.adds.size(); i += 2) {
    const std::string& path = a.adds[i];
    const std::string& value = a.adds[i + 1];
    if (path != "tags" && path != "properties")
      return Fail(InvalidArgument("--add " + path + ": only tags and properties take --add"));
    json add = json::object();
    if (!value.empty() && value[0] == '{') {
      add = json::parse(value, nullptr, false);
      if (!add.is_object())
        return Fail(InvalidArgument("--add " + path + ": '" + value + "' is not a JSON object"));
    } else {
      size_t eq = value.find('=');
      if (eq == std::string::npos)
        return Fail(InvalidArgument("--add " + path + " '" + value + "': expected KEY=VALUE"));
      add[value.substr(0, eq)] = value.substr(eq + 1);
    }
    if (!patch.contains(path)) patch[path] = path == "tags" ? (*job)["tags"] : json::object();
    for (const auto& [k, v] : add.items())
      patch[path][k] = v.is_string() ? v.get<std::string>() : v.dump();
  }
  for (const auto& r : a.removes) {
    auto parts = Split(r, '.');
    if (parts.size() != 2 || parts[0] != "tags") {
      return Fail(InvalidArgument("--remove " + r +
                                  (parts[0] == "properties" ? ": properties are append-only"
                                                            : ": only tags.<key> can be removed")));
    }
    if (!patch.contains("tags")) patch["tags"] = (*job)["tags"];
    if (!patch["tags"].contains(parts[1]))
      return Fail(
          NotFound("--remove " + r + ": job '" + a.name + "' has no tag '" + parts[1] + "'"));
    patch["tags"].erase(parts[1]);
  }
  if (patch.empty()) return Fail(InvalidArgument("job update: give --set, --add or --remove"));
  auto updated = (*client)->Patch("/api/v1/jobs/" + a.name, patch);
  if (!updated.ok()) return Fail(updated.status());
  return Print(g, *updated, kJobShowColumns);
}

// ---- compute ----

struct ComputeArgs {
  std::string file, name, type = "amlcompute", size, description, list_type;
  int min_instances = 0, max_instances = 4, idle = 120, max_results = 0;
  std::vector<std::string> sets;
  // Slurm: partition, account, qos, the cluster's slurm.conf, extra sbatch options.
  std::string partition, account, qos, slurm_conf;
  std::vector<std::string> sbatch_options;
};

json SlurmFlags(const ComputeArgs& a) {
  json s = json::object();
  if (!a.partition.empty()) s["partition"] = a.partition;
  if (!a.account.empty()) s["account"] = a.account;
  if (!a.qos.empty()) s["qos"] = a.qos;
  if (!a.slurm_conf.empty()) s["conf"] = std::filesystem::absolute(a.slurm_conf).string();
  if (!a.sbatch_options.empty()) s["sbatch_options"] = a.sbatch_options;
  return s;
}

int ComputeCreate(const Globals& g, const ComputeArgs& a) {
  spec::ComputeSpec c;
  spec::Diagnostics d;
  if (!a.file.empty()) {
    auto parsed = spec::ParseComputeFile(a.file, a.sets, d);
    if (!parsed) {
      fputs(d.ToString().c_str(), stderr);
      return 2;
    }
    c = *parsed;
    if (!a.name.empty()) c.name = a.name;
  } else {
    if (a.name.empty())
      return Fail(InvalidArgument("compute create: give --file, or --name and --type"));
    c.name = a.name;
    c.type = ToLower(a.type);
    c.size = a.size;
    c.min_instances = a.min_instances;
    c.max_instances = a.max_instances;
    // A compute instance is one machine (the default of 4 is amlcompute's).
    if (c.type == "computeinstance" && a.max_instances == 4) c.max_instances = 1;
    c.idle_time_before_scale_down = a.idle;
    c.description = a.description;
    if (json s = SlurmFlags(a); !s.empty() || c.type == "slurm") c.extra["slurm"] = s;
    spec::ValidateCompute(c, "--type/--name", d);
    if (d.HasErrors()) {
      fputs(d.ToString().c_str(), stderr);
      return 2;
    }
  }
  auto client = ConnectOrFail();
  if (!client.ok()) return Fail(client.status());
  auto created = (*client)->Post("/api/v1/computes", spec::ToJson(c));
  if (!created.ok()) return Fail(created.status());
  return Print(g, *created, kComputeColumns);
}

// `compute update`: the flags given change the compute; the rest stays as it is.
int ComputeUpdate(const Globals& g, const ComputeArgs& a, const CLI::App& cmd) {
  auto client = ConnectOrFail();
  if (!client.ok()) return Fail(client.status());
  auto current = (*client)->Get("/api/v1/computes/" + a.name);
  if (!current.ok()) return Fail(current.status());
  if (current->value("type", "") == "local")
    return Fail(InvalidArgument("the local compute is built in and cannot be changed"));
  json body = *current;
  json extra = json::object();
  if (body.contains("slurm")) extra["slurm"] = body["slurm"];
  for (const char* k : {"identity", "ssh_settings", "network_settings"})
    if (body.contains(k)) extra[k] = body[k];
  body["extra"] = extra;
  auto given = [&](const char* flag) { return cmd.count(flag) > 0; };
  if (given("--min-instances")) body["min_instances"] = a.min_instances;
  if (given("--max-instances")) body["max_instances"] = a.max_instances;
  if (given("--idle-time-before-scale-down")) body["idle_time_before_scale_down"] = a.idle;
  if (given("--description")) body["description"] = a.description;
  json s = SlurmFlags(a);
  for (const auto& [k, v] : s.items()) body["extra"]["slurm"][k] = v;
  auto parsed = spec::ComputeSpecFromJson(body);
  if (!parsed.ok()) return Fail(parsed.status());
  spec::Diagnostics d;
  spec::ValidateCompute(*parsed, "--name " + a.name, d);
  if (d.HasErrors()) {
    fputs(d.ToString().c_str(), stderr);
    return 2;
  }
  auto updated = (*client)->Post("/api/v1/computes", spec::ToJson(*parsed));
  if (!updated.ok()) return Fail(updated.status());
  return Print(g, *updated, kComputeColumns);
}

// `cairn supervise ...`: Cairn's own processes (a job's supervisor, a Slurm node's, the spawner),
// which never go through the command tree. nullopt when the command line is not one of them.
std::optional<int> RunInternalCommand(int argc, char** argv) {
  if (argc >= 5 && std::string(argv[1]) == "supervise" && std::string(argv[2]) == "--staged")
    return compute::RunStagedSupervisor(argv[3], argv[4],
                                        argc >= 6 && std::string(argv[5]) == "--node");
  if (argc >= 5 && std::string(argv[1]) == "supervise" && std::string(argv[2]) == "--spawner")
    return compute::RunSpawner(atoi(argv[3]), argc, argv);
  if (argc >= 3 && std::string(argv[1]) == "supervise") {
    if (argc >= 4 && std::string(argv[3]) == "--node") return compute::RunNodeSupervisor(argv[2]);
    return compute::RunSupervisor(argv[2]);
  }
  return std::nullopt;
}

// Before parsing: --version, and az's global arguments, taken out of the command line wherever they
// are (every verb accepts them, and adding them to each of CLI11's ~50 commands cost 1.5 ms per
// run). Fills `args` with the rest (argv[0] first, a null last); an exit code when the command line
// is --version.
std::optional<int> TakeAzGlobals(int argc, char** argv, AzGlobals& az, std::vector<char*>& args) {
  args = {argv[0]};
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--version" && i == 1) {
      printf(
          "cairn %s\n(the Azure ML CLI v2's `az ml` job, compute, data, model, environment and "
          "datastore verbs)\n",
          CAIRN_VERSION);
      return 0;
    }
    auto value = [&](const char* shortname, const char* longname, std::string& into) {
      std::string l = longname;
      if ((a == shortname || a == l) && i + 1 < argc) {
        into = argv[++i];
        return true;
      }
      if (StartsWith(a, l + "=")) {
        into = a.substr(l.size() + 1);
        return true;
      }
      return false;
    };
    std::string workspace_dir;
    if (value("--workspace", "--workspace", workspace_dir)) {
      // A team server's folder (its socket is there): the same as CAIRN_WORKSPACE=DIR.
      setenv("CAIRN_WORKSPACE", workspace_dir.c_str(), 1);
      continue;
    }
    if (value("-g", "--resource-group", az.resource_group) ||
        value("-w", "--workspace-name", az.workspace_name) ||
        value("--subscription", "--subscription", az.subscription))
      continue;
    if (a == "--debug")
      az.debug = true;
    else if (a == "--verbose")
      az.verbose = true;
    else if (a == "--only-show-errors")
      az.only_show_errors = true;
    else
      args.push_back(argv[i]);
  }
  args.push_back(nullptr);
  return std::nullopt;
}

void AddGlobalOptions(CLI::App* c, Globals& g) {
  c->add_option("-o,--output", g.output, "json, yaml, table, tsv or none")->capture_default_str();
  c->add_option("--query", g.query, "a path into the result, e.g. name, status, [].name");
}

// cairn job ...: create, validate, show, list, metrics, stream, cancel, download, archive, update.
void AddJobCommands(CLI::App& app, Globals& g, JobArgs& ja, int& rc) {
  auto* job = app.add_subcommand("job", "Manage jobs")->require_subcommand(1);
  auto* create = job->add_subcommand("create", "Create (submit) a job from a YAML file");
  create->add_option("-f,--file", ja.file, "the job's YAML file")->required();
  create->add_option("-n,--name", ja.name, "the job's name (wins over the file's)");
  create->add_option("--set", ja.sets, "override a field: --set inputs.epochs=3")
      ->allow_extra_args(false);
  create->add_flag("-s,--stream", ja.stream, "stream the job's logs until it ends");
  create->add_flag("--all-ranks", ja.all_ranks,
                   "with --stream: every process's log of a distributed job, not only rank 0's");
  create->add_flag("-e,--web", ja.web, "print and open the job's studio page");
  create->add_flag("--skip-validation", ja.skip_validation, "accepted for compatibility");
  create->add_option("-a,--save-as", ja.save_as, "write the created job as YAML to this file");
  AddGlobalOptions(create, g);
  create->callback([&] { rc = JobCreate(g, ja); });

  auto* validate =
      job->add_subcommand("validate", "Check a job file: every diagnostic, nothing submitted");
  validate->add_option("-f,--file", ja.file, "the job's YAML file")->required();
  validate->add_option("--set", ja.sets, "override a field")->allow_extra_args(false);
  validate->add_option("-n,--name", ja.name, "the job's name");
  AddGlobalOptions(validate, g);
  validate->callback([&] { rc = JobValidate(g, ja); });

  auto* show = job->add_subcommand("show", "Show a job");
  show->add_option("-n,--name", ja.name, "the job's name")->required();
  show->add_flag("-e,--web", ja.web, "print and open the job's studio page");
  AddGlobalOptions(show, g);
  show->callback([&] { rc = JobShow(g, ja); });

  auto* list = job->add_subcommand("list", "List jobs, newest first");
  list->add_option("-r,--max-results", ja.max_results, "at most this many (default 50)");
  list->add_flag("--all-results", ja.all_results, "every job");
  list->add_option("--status", ja.status, "only jobs in this status");
  list->add_option("--experiment,--experiment-name", ja.experiment, "only jobs of this experiment");
  list->add_option("-p,--parent-job-name", ja.parent, "only the children of this job");
  list->add_option("--compute", ja.compute, "only jobs on this compute");
  list->add_option("--created-by", ja.created_by, "only jobs this person submitted (me: yours)");
  list->add_flag("--include-archived", ja.include_archived, "include archived jobs");
  list->add_flag("--archived-only", ja.archived_only, "only archived jobs");
  list->add_flag("--include-children", ja.include_children,
                 "list sweep trials too (else: -p SWEEP lists a sweep's)");
  AddGlobalOptions(list, g);
  list->callback([&] { rc = JobList(g, ja); });

  auto* metrics =
      job->add_subcommand("metrics", "Print a job's metric histories (logged through MLflow)");
  metrics->add_option("-n,--name", ja.name, "the job's name")->required();
  metrics->add_option("--key", ja.status, "only this metric");
  AddGlobalOptions(metrics, g);
  metrics->callback([&] { rc = JobMetrics(g, ja); });

  auto* stream = job->add_subcommand("stream", "Follow a job's logs until it ends");
  stream->add_option("-n,--name", ja.name, "the job's name")->required();
  stream->add_flag("--all-ranks", ja.all_ranks,
                   "every process's log of a distributed job, not only rank 0's");
  stream->callback([&] { rc = JobStream(g, ja); });

  auto* download = job->add_subcommand("download", "Download a finished job's logs and outputs");
  download->add_option("-n,--name", ja.name, "the job's name")->required();
  download->add_option("-p,--download-path", ja.download_path, "where to write (default: here)");
  download->add_option("--output-name", ja.output_name, "only this named output");
  download->add_flag("--all", ja.all, "the default artifacts and every named output");
  download->callback([&] { rc = JobDownload(g, ja); });

  auto* cancel = job->add_subcommand("cancel", "Cancel a job and every process it started");
  cancel->add_option("-n,--name", ja.name, "the job's name")->required();
  cancel->add_flag("--no-wait", ja.no_wait, "do not wait for the job to stop");
  AddGlobalOptions(cancel, g);
  cancel->callback([&] { rc = JobCancel(g, ja); });

  for (bool archive : {true, false}) {
    auto* c = job->add_subcommand(archive ? "archive" : "restore",
                                  archive ? "Hide a finished job from lists" : "Un-archive a job");
    c->add_option("-n,--name", ja.name, "the job's name")->required();
    AddGlobalOptions(c, g);
    c->callback([&, archive] { rc = JobArchive(g, ja, archive); });
  }

  auto* update =
      job->add_subcommand("update", "Update a job's tags, properties, display name or description");
  update->add_option("-n,--name", ja.name, "the job's name")->required();
  update
      ->add_option("--set", ja.sets, "tags.k=v, properties.k=v, display_name=..., description=...")
      ->allow_extra_args(false);
  update->add_option("--add", ja.adds, "add to a mapping: --add tags k=v (or a JSON object)")
      ->expected(2)
      ->allow_extra_args(false);
  update->add_option("--remove", ja.removes, "remove a tag: --remove tags.k")
      ->allow_extra_args(false);
  AddGlobalOptions(update, g);
  update->callback([&] { rc = JobUpdate(g, ja); });
}

// cairn compute list-nodes, list-sizes, list-usage, list, show, delete.
void AddComputeReads(CLI::App* compute, Globals& g, ComputeArgs& ca, JobArgs& ja, int& rc) {
  // az ml compute list-nodes / list-sizes / list-usage.
  auto* cnodes = compute->add_subcommand(
      "list-nodes", "List a compute's nodes: this machine, or a Slurm cluster's");
  cnodes->add_option("-n,--name", ca.name, "the compute's name")->required();
  AddGlobalOptions(cnodes, g);
  // A GET printed as it comes.
  auto get_and_print = [&](const std::string& path, const std::vector<Column>& columns) {
    auto client = ConnectOrFail();
    if (!client.ok()) return Fail(client.status());
    auto r = (*client)->Get(path);
    return r.ok() ? Print(g, *r, columns) : Fail(r.status());
  };
  cnodes->callback([&, get_and_print] {
    rc = get_and_print("/api/v1/computes/" + HttpClient::UrlEncode(ca.name) + "/nodes",
                       {{"Node", "node_id"},
                        {"State", "node_state"},
                        {"Jobs", "join(', ', current_job_names || `[]`)"}});
  });
  auto* csizes =
      compute->add_subcommand("list-sizes", "List the shapes a job can have here (this machine's)");
  AddGlobalOptions(csizes, g);
  csizes->callback([&, get_and_print] {
    rc = get_and_print("/api/v1/sizes", {{"Name", "name"},
                                         {"vCPUs", "v_cpus"},
                                         {"Memory (GB)", "memory_gb"},
                                         {"GPUs", "gpus"},
                                         {"GPU", "gpu_model"},
                                         {"Fits here", "fits_here"}});
  });
  auto* cusage = compute->add_subcommand("list-usage", "Each compute's use against its limit");
  AddGlobalOptions(cusage, g);
  cusage->callback([&] {
    auto client = ConnectOrFail();
    if (!client.ok()) {
      rc = Fail(client.status());
      return;
    }
    auto r = (*client)->Get("/api/v1/computes");
    if (!r.ok()) {
      rc = Fail(r.status());
      return;
    }
    json out = json::array();
    for (const auto& c : *r)
      out.push_back(
          {{"name",
            {{"value", c.value("name", "")},
             {"localized_value", c.value("name", "") + " (" + c.value("type", "") + ")"}}},
           {"current_value", c.value("in_use", 0)},
           {"limit", c.value("max_instances", 0)},
           {"queued_jobs", c.value("queued_jobs", 0)},
           {"unit", "Count"}});
    rc = Print(g, out,
               {{"Name", "name.value"},
                {"In use", "current_value"},
                {"Limit", "limit"},
                {"Queued", "queued_jobs"}});
  });

  auto* clist = compute->add_subcommand("list", "List computes");
  clist->add_option("--type", ca.list_type, "only this type");
  clist->add_option("-r,--max-results", ca.max_results, "at most this many");
  AddGlobalOptions(clist, g);
  clist->callback([&] {
    auto client = ConnectOrFail();
    if (!client.ok()) {
      rc = Fail(client.status());
      return;
    }
    auto all = (*client)->Get("/api/v1/computes");
    if (!all.ok()) {
      rc = Fail(all.status());
      return;
    }
    json out = json::array();
    for (const auto& c : *all) {
      if (!ca.list_type.empty() && ToLower(c.value("type", "")) != ToLower(ca.list_type)) continue;
      if (ca.max_results > 0 && static_cast<int>(out.size()) >= ca.max_results) break;
      out.push_back(c);
    }
    rc = Print(g, out, kComputeColumns);
  });
  for (const char* verb : {"show", "delete"}) {
    bool del = std::string(verb) == "delete";
    auto* c = compute->add_subcommand(verb, del ? "Delete a compute" : "Show a compute");
    c->add_option("-n,--name", ca.name, "the compute's name")->required();
    if (del) c->add_flag("-y,--yes,--no-wait", ja.no_wait, "accepted for compatibility");
    AddGlobalOptions(c, g);
    c->callback([&, del] {
      auto client = ConnectOrFail();
      if (!client.ok()) {
        rc = Fail(client.status());
        return;
      }
      auto r = del ? (*client)->Delete("/api/v1/computes/" + ca.name)
                   : (*client)->Get("/api/v1/computes/" + ca.name);
      if (!r.ok()) {
        rc = Fail(r.status());
        return;
      }
      rc = del ? 0 : Print(g, *r, kComputeColumns);
    });
  }
}

// cairn compute ...: create and update here, the rest in AddComputeReads.
void AddComputeCommands(CLI::App& app, Globals& g, ComputeArgs& ca, JobArgs& ja, int& rc) {
  auto* compute = app.add_subcommand("compute", "Manage compute targets")->require_subcommand(1);
  auto* ccreate = compute->add_subcommand("create", "Create or update a compute");
  ccreate->add_option("-f,--file", ca.file, "a compute YAML file");
  ccreate->add_option("-n,--name", ca.name, "the compute's name");
  ccreate->add_option("-t,--type", ca.type,
                      "amlcompute (default), computeinstance, local or slurm");
  ccreate->add_option("--size", ca.size, "VM size (recorded)");
  ccreate->add_option("--min-instances", ca.min_instances, "minimum nodes (default 0)");
  ccreate->add_option("--max-instances", ca.max_instances, "maximum nodes (default 4)");
  ccreate->add_option("-d,--idle-time-before-scale-down", ca.idle, "seconds (default 120)");
  ccreate->add_option("--description", ca.description, "a description");
  ccreate->add_option("--set", ca.sets, "override a field of the file")->allow_extra_args(false);
  auto slurm_flags = [&](CLI::App* c) {
    c->add_option("--partition", ca.partition, "Slurm: the partition jobs go to");
    c->add_option("--account", ca.account, "Slurm: the account jobs are charged to");
    c->add_option("--qos", ca.qos, "Slurm: the quality of service");
    c->add_option("--slurm-conf", ca.slurm_conf,
                  "Slurm: the cluster's slurm.conf (how to reach the controller)");
    c->add_option("--sbatch-option", ca.sbatch_options,
                  "Slurm: an extra sbatch option (repeatable)")
        ->allow_extra_args(false);
  };
  slurm_flags(ccreate);
  AddGlobalOptions(ccreate, g);
  ccreate->callback([&] { rc = ComputeCreate(g, ca); });

  auto* cupdate = compute->add_subcommand("update", "Change a compute's limits or Slurm settings");
  cupdate->add_option("-n,--name", ca.name, "the compute's name")->required();
  cupdate->add_option("--min-instances", ca.min_instances, "minimum nodes");
  cupdate->add_option("--max-instances", ca.max_instances, "maximum nodes a job may take");
  cupdate->add_option("-d,--idle-time-before-scale-down", ca.idle, "seconds");
  cupdate->add_option("--description", ca.description, "a description");
  slurm_flags(cupdate);
  AddGlobalOptions(cupdate, g);
  cupdate->callback([&, cupdate] { rc = ComputeUpdate(g, ca, *cupdate); });
  AddComputeReads(compute, g, ca, ja, rc);
}

// cairn studio: a sign-in link to `page`.
void AddStudioCommand(CLI::App& app, std::string& page, int& rc) {
  auto* studio = app.add_subcommand(
      "studio", "Print (and open, where a browser is) a sign-in link to the studio");
  studio->add_option("--page", page, "the page to land on (default /#/jobs)");
  studio->callback([&] {
    auto client = ConnectOrFail();
    if (!client.ok()) {
      rc = Fail(client.status());
      return;
    }
    std::string link = StudioLink(**client, page);
    printf("%s\n", link.c_str());
    LaunchBrowser(link);
    rc = 0;
  });
}

struct ServerArgs {
  int port = 0;
  std::string host = "127.0.0.1";
  int local_slots = 0;
  std::string tls_cert, tls_key;
  bool team = false;
  std::string home;
};

// cairn server [stop | status]: run the workspace's server in this process's place, stop it, or say
// where it is.
void AddServerCommand(CLI::App& app, Globals& g, ServerArgs& so, int& rc) {
  auto* srv =
      app.add_subcommand("server", "Run the workspace server (the CLI starts it on demand)");
  srv->add_option("--port", so.port, "port (0: any free one)");
  srv->add_option("--host", so.host, "address to listen on (default 127.0.0.1)");
  srv->add_option("--slots", so.local_slots, "local compute slots (default: one per CPU)");
  srv->add_option("--tls-cert", so.tls_cert,
                  "serve TLS with this certificate chain (PEM); needed beyond loopback");
  srv->add_option("--tls-key", so.tls_key, "the certificate's private key (PEM)");
  srv->add_flag(
      "--team", so.team,
      "serve everyone on this machine through <home>/cairn.sock (run as root; docs/team.md)");
  srv->add_option(
      "--home", so.home,
      "the workspace folder (default: $CAIRN_HOME or ~/.cairn; /var/lib/cairn with --team)");
  auto* stop = srv->add_subcommand("stop", "Stop the workspace's server");
  auto* status = srv->add_subcommand("status", "Print the workspace's server address");
  srv->callback([&, stop, status] {
    server::WorkspacePaths ws{!so.home.empty() ? AbsPath(so.home)
                              : so.team        ? std::string(server::kDefaultTeamHome)
                                               : server::DefaultHome()};
    if (stop->parsed() || status->parsed()) {
      auto info = ReadFile(ws.ServerInfo());
      auto token = ReadFile(ws.Token());
      if (!info.ok() || !token.ok()) {
        fprintf(stderr, "no server is running for workspace %s\n", ws.home.c_str());
        rc = status->parsed() ? 1 : 0;
        return;
      }
      json j = json::parse(*info, nullptr, false);
      server::ServerAddress addr{j.value("url", ""), Trim(*token)};
      if (!server::Healthy(addr, 1000)) {
        fprintf(stderr, "no server answers for workspace %s\n", ws.home.c_str());
        rc = status->parsed() ? 1 : 0;
        return;
      }
      if (status->parsed()) {
        rc = Print(g, j);
        return;
      }
      Client c(addr);
      auto r = c.Post("/api/v1/shutdown", json::object());
      if (!r.ok()) {
        rc = Fail(r.status());
        return;
      }
      // Done when the process is gone (it may still be checkpointing its databases): a command
      // that follows at once then starts a fresh server instead of finding the old one's lock
      // held.
      long long pid = j.value("pid", 0LL);
      auto alive = [&] {
        return compute::IsAliveWithMarker(static_cast<pid_t>(pid), "server");
      };  // not a zombie
      for (int i = 0; alive() && i < 600; ++i) usleep(20000);
      if (alive()) fprintf(stderr, "warning: server %lld is still stopping after 30 s\n", pid);
      rc = 0;
      return;
    }
    // The server is its own binary (see ARCHITECTURE.md: start-up time); run it in this process's
    // place.
    std::string exe = server::ServerExe();
    std::vector<std::string> args = {exe,
                                     "--home",
                                     ws.home,
                                     "--port",
                                     std::to_string(so.port),
                                     "--host",
                                     so.host,
                                     "--slots",
                                     std::to_string(so.local_slots)};
    if (!so.tls_cert.empty()) args.insert(args.end(), {"--tls-cert", so.tls_cert});
    if (!so.tls_key.empty()) args.insert(args.end(), {"--tls-key", so.tls_key});
    if (so.team) args.push_back("--team");
    std::vector<char*> argv2;
    for (auto& a : args) argv2.push_back(a.data());
    argv2.push_back(nullptr);
    execv(exe.c_str(), argv2.data());
    fprintf(stderr, "ERROR: cannot run %s: %s\n", exe.c_str(), strerror(errno));
    rc = 1;
  });
}

// A parse error of the command line, said as az says it: a group without its command, or a command
// it does not have, lists the group's commands. Returns the exit code.
int ExplainParseError(CLI::App& app, const CLI::ParseError& e, int argc, char** argv) {
  // The deepest command the arguments reached, to list what it offers when a subcommand is missing
  // or unknown.
  auto deepest = [&]() {
    CLI::App* at = &app;
    for (;;) {
      CLI::App* next = nullptr;
      for (auto* sub : at->get_subcommands([](CLI::App*) { return true; }))
        if (sub->parsed()) next = sub;
      if (!next) return at;
      at = next;
    }
  };
  CLI::App* at = deepest();
  bool missing = dynamic_cast<const CLI::RequiredError*>(&e) &&
                 !at->get_subcommands([](CLI::App*) { return true; }).empty() &&
                 std::string(e.what()).find("subcommand") != std::string::npos;
  bool unknown = dynamic_cast<const CLI::ExtrasError*>(&e) &&
                 !at->get_subcommands([](CLI::App*) { return true; }).empty();
  if (!missing && !unknown) {
    int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  std::string path;
  int depth = 0;
  for (CLI::App* p = at; p; p = p->get_parent(), ++depth)
    path = p->get_name() + (path.empty() ? "" : " " + path);
  // "cairn compute frobnicate": the word after the command path that is not an option is the
  // unknown one.
  std::string word;
  for (int i = 1, seen = 1; i < argc; ++i) {
    std::string t = argv[i];
    if (t.empty() || t[0] == '-') continue;
    if (seen++ < depth) continue;
    word = t;
    break;
  }
  if (missing && !word.empty()) {
    missing = false;
    unknown = true;
  }
  if (missing)
    fprintf(stderr, "ERROR: '%s' needs a command.\n", path.c_str());
  else {
    std::string w = e.what();
    size_t colon = w.rfind(": ");
    if (word.empty()) word = colon == std::string::npos ? w : w.substr(colon + 2);
    fprintf(stderr, "ERROR: '%s' has no command '%s'.\n", path.c_str(), word.c_str());
  }
  fprintf(stderr, "\nCommands of '%s':\n", path.c_str());
  for (auto* sub : at->get_subcommands([](CLI::App*) { return true; }))
    fprintf(stderr, "    %-16s: %s\n", sub->get_name().c_str(), sub->get_description().c_str());
  fprintf(stderr, "\nMore: %s --help\n", path.c_str());
  return 2;
}

}  // namespace

int RunCli(int argc, char** argv) {
  if (auto rc = RunInternalCommand(argc, argv)) return *rc;
  AzGlobals& az = Az();
  std::vector<char*> args;
  if (auto rc = TakeAzGlobals(argc, argv, az, args)) return *rc;
  argc = static_cast<int>(args.size()) - 1;
  argv = args.data();
  // A named workspace is <home>/workspaces/<name> when it exists; otherwise -w is accepted and the
  // default workspace is used (an az script names its Azure workspace on every line).
  if (const std::string& name = az.workspace_name; !name.empty()) {
    std::string named = server::DefaultHome() + "/workspaces/" + name;
    if (name.find('/') == std::string::npos && name != "." && name != ".." && IsDir(named))
      setenv("CAIRN_HOME", named.c_str(), 1);
  }

  // Only the group the command line names is built (the whole tree of ~50 commands for help, for no
  // group or for a word that names none), and the tree is never torn down: CLI11's set-up and
  // destruction of every command was about a millisecond of each run, a job's submission included.
  static const char* const kGroups[] = {"job",       "compute",   "data",   "model",  "environment",
                                        "component", "datastore", "studio", "server", "role",
                                        "token",     "audit",     "whoami", "quota"};
  std::string first = argc > 1 ? argv[1] : "";
  bool every = std::find(std::begin(kGroups), std::end(kGroups), first) == std::end(kGroups);
  auto wanted = [&](const std::string& group) { return every || group == first; };
  static CLI::App* const kept =
      new CLI::App{"Cairn: Azure ML-compatible training jobs on your own machines", "cairn"};
  CLI::App& app = *kept;
  app.require_subcommand(1);
  app.footer(
      "Every command also takes az's global arguments: -g/--resource-group, -w/--workspace-name, "
      "--subscription, --debug, --verbose, --only-show-errors (docs/cli.md).");
  Globals g;
  if (auto o = settings::Get("CAIRN_OUTPUT")) g.output = *o;

  JobArgs ja;
  ComputeArgs ca;
  ServerArgs so;
  std::string studio_page = "/#/jobs";
  int rc = 0;
  if (wanted("job")) AddJobCommands(app, g, ja, rc);
  if (wanted("compute")) AddComputeCommands(app, g, ca, ja, rc);
  AddAssetCommands(app,
                   {[&g](CLI::App* c) { AddGlobalOptions(c, g); },
                    [&](const json& v, const std::vector<Column>& c) { return Print(g, v, c); }},
                   rc, wanted);
  AddPeopleCommands(app,
                    {[&g](CLI::App* c) { AddGlobalOptions(c, g); },
                     [&](const json& v, const std::vector<Column>& c) { return Print(g, v, c); }},
                    rc, wanted);
  if (wanted("studio")) AddStudioCommand(app, studio_page, rc);
  if (wanted("server")) AddServerCommand(app, g, so, rc);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return ExplainParseError(app, e, argc, argv);
  }
  if (az.verbose) fprintf(stderr, "INFO: workspace %s\n", server::DefaultHome().c_str());
  return rc;
}

}  // namespace cairn::cli
