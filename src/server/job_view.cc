#include "server/job_view.h"

#include "compute/distribution.h"

#include <pwd.h>
#include <unistd.h>

#include "base/util.h"
#include "compute/distribution.h"

namespace cairn::server {

using nlohmann::json;

namespace {
std::string Cut(const std::string& s, size_t n) {
  if (s.size() <= n) return s;
  size_t at = n;
  while (at > 0 && (static_cast<unsigned char>(s[at]) & 0xC0) == 0x80)
    --at;  // not inside a UTF-8 sequence
  return s.substr(0, at) + "...";
}
}  // namespace

json ListTags(const json& tags) {
  json out = json::object();
  if (!tags.is_object()) return out;
  for (const auto& [k, v] : tags.items()) {
    if (out.size() == kListTags) break;
    out[Cut(k, kListText)] = Cut(v.is_string() ? v.get<std::string>() : v.dump(), kListText);
  }
  return out;
}

std::string ListTagsJson(const std::string& stored) {
  if (stored.empty()) return "{}";
  // Small enough that no bound can bite: as stored.
  if (stored.size() <= kListText) return stored;
  json tags = json::parse(stored, nullptr, false);
  return ListTags(tags).dump();
}

void BoundForList(json& view) {
  if (view.contains("tags")) view["tags"] = ListTags(view["tags"]);
  if (view.contains("description") && view["description"].is_string())
    view["description"] = Cut(view["description"].get<std::string>(), kListDescription);
}

std::string UserName() {
  // Once per process: it is asked on every request of a private server, and getpwuid reads
  // /etc/passwd (about 20 us).
  static const std::string name = [] {
    if (const char* u = getenv("USER"); u && *u) return std::string(u);
    if (passwd* pw = getpwuid(getuid())) return std::string(pw->pw_name);
    return std::string("unknown");
  }();
  return name;
}

namespace {

json InputView(const json& in) {
  if (in.value("literal", false)) {
    std::string type = in.value("type", "string");
    std::string v = in.value("value", "");
    if (type == "integer") {
      try {
        return std::stoll(v);
      } catch (...) {
      }
    } else if (type == "number") {
      try {
        return std::stod(v);
      } catch (...) {
      }
    } else if (type == "boolean") {
      return v == "true" || v == "True" || v == "TRUE";
    }
    return v;
  }
  return {{"type", in.value("type", "uri_folder")},
          {"path", in.value("path", "")},
          {"mode", in.value("mode", "ro_mount")}};
}
}  // namespace

json LogFiles(const compute::DistPlan& plan, const std::string& job,
              const std::string& server_url) {
  json logs = json::object();
  for (int rank = 0; rank < plan.Total(); ++rank) {
    std::string f = compute::RankLogName(plan, rank);
    logs[f] = server_url + "/api/v1/jobs/" + job + "/files/artifacts/" + f;
  }
  return logs;
}

// An environment as a job file writes it: a reference, or {image | build, conda_file}.
static json EnvironmentView(const json& env) {
  if (!env.value("reference", "").empty()) return env["reference"];
  json e = json::object();
  if (!env.value("image", "").empty()) e["image"] = env["image"];
  if (!env.value("conda_file", "").empty()) e["conda_file"] = env["conda_file"];
  if (!env.value("build_path", "").empty())
    e["build"] = {{"path", env["build_path"]},
                  {"dockerfile_path", env.value("dockerfile_path", "Dockerfile")}};
  return e;
}

json JobView(const store::JobRecord& job, const std::vector<store::StatusEvent>& history,
             const std::string& server_url) {
  const json& s = job.spec;
  json j;
  j["$schema"] = "https://azuremlschemas.azureedge.net/latest/commandJob.schema.json";
  j["name"] = job.name;
  j["display_name"] = job.display_name;
  j["type"] = job.type;
  j["status"] = job.status;
  j["status_reason"] = job.status_reason;
  j["experiment_name"] = job.experiment_name;
  j["description"] = job.description;
  j["tags"] = job.tags;
  j["properties"] = job.properties;
  j["command"] = s.value("command", "");
  if (!job.snapshot.empty()) j["code"] = "azureml:snapshots/" + job.snapshot;
  j["environment"] = EnvironmentView(s.value("environment", json::object()));
  if (!s.value("environment_variables", json::object()).empty())
    j["environment_variables"] = s["environment_variables"];
  j["compute"] = job.compute == "local" ? "local" : "azureml:" + job.compute;
  json res = {{"instance_count", s["resources"].value("instance_count", 1)}};
  if (!s["resources"].value("instance_type", "").empty())
    res["instance_type"] = s["resources"]["instance_type"];
  res["shm_size"] =
      s["resources"].value("shm_size", "").empty() ? "2g" : s["resources"]["shm_size"];
  j["resources"] = res;
  if (s.contains("distribution") && !s["distribution"].is_null())
    j["distribution"] = s["distribution"];
  if (s["limits"].value("timeout", 0LL) > 0) j["limits"] = {{"timeout", s["limits"]["timeout"]}};
  json inputs = json::object();
  const json spec_inputs = s.value("inputs", json::object());
  for (const auto& [k, v] : spec_inputs.items()) inputs[k] = InputView(v);
  j["inputs"] = inputs;
  json outputs = json::object();
  outputs["default"] = {
      {"type", "uri_folder"},
      {"path", "azureml://datastores/workspaceartifactstore/ExperimentRun/dcid." + job.name},
      {"mode", "rw_mount"}};
  const json spec_outputs = s.value("outputs", json::object());
  for (const auto& [k, v] : spec_outputs.items()) {
    // Where it is: the datastore path the job named, else Azure ML's default location (both resolve
    // as an input), and the job-output form.
    std::string at = v.value("path", "");
    if (at.empty())
      at = "azureml://datastores/workspaceblobstore/paths/azureml/" + job.name + "/" + k + "/";
    outputs[k] = {{"type", v.value("type", "uri_folder")},
                  {"path", at},
                  {"job_output_uri", "azureml://jobs/" + job.name + "/outputs/" + k},
                  {"mode", v.value("mode", "rw_mount")}};
  }
  j["outputs"] = outputs;
  if (!job.parent.empty()) j["parent_job_name"] = job.parent;
  j["id"] =
      "azureml:/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/cairn/providers/"
      "Microsoft.MachineLearningServices/workspaces/cairn/jobs/" +
      job.name;
  j["creation_context"] = {{"created_at", IsoTime(job.created_at)},
                           {"created_by", job.created_by.empty() ? UserName() : job.created_by},
                           {"created_by_type", "User"}};
  // The job's own services (jupyter_lab, vs_code, tensor_board, ssh: kept as written; not run yet)
  // beside the two every job has.
  json services =
      s.contains("services") && s["services"].is_object() ? s["services"] : json::object();
  services["Tracking"] = {{"endpoint", server_url}, {"type", "Tracking"}};
  services["Studio"] = {{"endpoint", server_url + "/#/jobs/" + job.name}, {"type", "Studio"}};
  j["services"] = services;
  // As written (checked and lower-cased): the scheduler orders and preempts by them, and --save-as
  // keeps them.
  if (s.contains("queue_settings") && s["queue_settings"].is_object() &&
      !s["queue_settings"].empty())
    j["queue_settings"] = s["queue_settings"];
  j["is_archived"] = job.archived;
  j["start_time"] = job.start_time ? json(IsoTime(*job.start_time)) : json(nullptr);
  j["end_time"] = job.end_time ? json(IsoTime(*job.end_time)) : json(nullptr);
  if (job.start_time && job.end_time)
    j["duration_seconds"] = static_cast<double>(*job.end_time - *job.start_time) / 1000.0;
  j["exit_code"] = job.exit_code ? json(*job.exit_code) : json(nullptr);
  if (!job.error.empty()) j["error"] = {{"code", "UserError"}, {"message", job.error}};
  json hist = json::array();
  for (const auto& e : history)
    hist.push_back({{"status", e.status}, {"reason", e.reason}, {"time", IsoTime(e.at)}});
  j["status_history"] = hist;
  // Where the job's environment could not be had and it ran on this host instead, say so.
  json notes = json::array();
  for (const auto& e : history)
    if (e.status == "Preparing" && (e.reason.find("runs on this host") != std::string::npos ||
                                    e.reason.find("gets no GPU") != std::string::npos))
      notes.push_back(e.reason);
  if (!notes.empty()) j["notes"] = notes;
  // One log per process for a distributed job (std_log_process_<rank>.txt), else std_log.txt.
  compute::DistPlan plan =
      compute::PlanFor(s.value("distribution", json()), s["resources"].value("instance_count", 1));
  j["log_files"] = LogFiles(plan, job.name, server_url);
  if (job.type == "sweep") {
    // Azure ML's sweep job shape: the command job's fields are the trial's.
    j["$schema"] = "https://azuremlschemas.azureedge.net/latest/sweepJob.schema.json";
    json trial = json::object();
    for (const char* k :
         {"command", "code", "environment", "environment_variables", "distribution", "resources"})
      if (j.contains(k)) {
        trial[k] = j[k];
        j.erase(k);
      }
    j["trial"] = trial;
    const json sw = s.value("sweep", json::object());
    j["sampling_algorithm"] = sw.value("algorithm", json::object());
    j["search_space"] = sw.value("search_space", json::object());
    j["objective"] = sw.value("objective", json::object());
    j["limits"] = sw.value("limits", json::object());
    if (sw.contains("early_termination")) j["early_termination"] = sw["early_termination"];
  }
  if (job.type == "pipeline") {
    // Azure ML's pipeline job shape: settings and jobs (each step as written, its bindings as
    // expressions).
    j["$schema"] = "https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json";
    for (const char* k : {"command", "code", "environment", "environment_variables", "distribution",
                          "resources", "limits", "log_files"})
      j.erase(k);
    static const json kNone = json::object(), kNoSteps = json::array();
    auto field = [](const json& j, const char* k, const json& def) -> const json& {
      auto it = j.find(k);
      return it == j.end() ? def : *it;
    };
    const json& pipe = field(s, "pipeline", kNone);
    json settings = pipe.value("settings", json::object());
    if (!job.compute.empty()) settings["default_compute"] = "azureml:" + job.compute;
    j["settings"] = settings;
    json jobs = json::object();
    for (const auto& step : field(pipe, "steps", kNoSteps)) {
      const json& sp = field(step, "spec", kNone);
      json v = {{"type", step.value("type", "command")}};
      std::string component = step.value("component", "");
      if (!component.empty() && component != "inline")
        v["component"] = StartsWith(component, "file:") ? component : "azureml:" + component;
      v["command"] = sp.value("command", "");
      if (!step.value("snapshot", "").empty())
        v["code"] = "azureml:snapshots/" + step.value("snapshot", "");
      if (sp.contains("environment")) v["environment"] = EnvironmentView(sp["environment"]);
      // What the step sets beyond the defaults, so that a saved pipeline resubmits as it ran.
      if (const json& ev = field(sp, "environment_variables", kNone); !ev.empty())
        v["environment_variables"] = ev;
      if (const json& d = field(sp, "distribution", kNone); d.is_object() && !d.empty())
        v["distribution"] = d;
      if (const json& r = field(sp, "resources", kNone);
          r.value("instance_count", 1) != 1 || !r.value("instance_type", "").empty()) {
        json res = {{"instance_count", r.value("instance_count", 1)}};
        if (!r.value("instance_type", "").empty()) res["instance_type"] = r["instance_type"];
        v["resources"] = res;
      }
      if (long long t = field(sp, "limits", kNone).value("timeout", 0LL);
          t > 0 && !field(step, "retry", kNone).contains("timeout"))
        v["limits"] = {{"timeout", t}};
      if (!sp.value("compute", "").empty()) v["compute"] = "azureml:" + sp.value("compute", "");
      json ins = json::object();
      const json& bindings = field(step, "bindings", kNone);
      const json& step_inputs = field(sp, "inputs", kNone);
      for (const auto& [k, in] : step_inputs.items()) {
        if (bindings.contains(k)) {
          ins[k] = "${{parent.jobs." + bindings[k].value("step", "") + ".outputs." +
                   bindings[k].value("output", "") + "}}";
        } else if (in.value("literal", false)) {
          ins[k] = in.value("value", "");
        } else {
          ins[k] = {{"type", in.value("type", "")},
                    {"path", in.value("path", "")},
                    {"mode", in.value("mode", "")}};
        }
      }
      v["inputs"] = ins;
      json outs = json::object();
      const json& step_outputs = field(sp, "outputs", kNone);
      const json& pipe_outputs = field(pipe, "outputs", kNone);
      for (const auto& [k, o] : step_outputs.items())
        outs[k] = {{"type", o.value("type", "uri_folder")}};
      for (const auto& [po, b] : pipe_outputs.items())
        if (b.value("step", "") == step.value("name", ""))
          outs[b.value("output", "")] = "${{parent.outputs." + po + "}}";
      v["outputs"] = outs;
      if (const json& retry = field(step, "retry", kNone); !retry.empty())
        v["retry_settings"] = retry;
      if (!step.value("is_deterministic", true)) v["is_deterministic"] = false;
      jobs[step.value("name", "")] = v;
    }
    j["jobs"] = jobs;
  }
  if (std::string from = job.properties.value("reused_from", ""); !from.empty())
    j["reused_from"] = from;
  if (job.spec.contains("pipeline_step")) {
    j["pipeline_step"] = job.spec["pipeline_step"];
    j["attempt"] = job.spec.value("attempt", 1);
  }
  return j;
}

json ComputeView(const store::ComputeRecord& c, int in_use, int queued, bool workspace_slurm) {
  json j = c.spec;
  std::string type = j.value("type", "");
  bool slurm =
      type == "slurm" || (type == "amlcompute" &&
                          (j.value("extra", json::object()).contains("slurm") || workspace_slurm));
  json extra = j.value("extra", json::object());
  j.erase("extra");
  for (const auto& [k, v] : extra.items()) j[k] = v;
  j["$schema"] = "https://azuremlschemas.azureedge.net/latest/amlCompute.schema.json";
  j["id"] =
      "azureml:/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/cairn/providers/"
      "Microsoft.MachineLearningServices/workspaces/cairn/computes/" +
      c.name;
  j["provisioning_state"] = "Succeeded";
  j["created_on"] = IsoTime(c.created_at);
  j["backend"] = slurm ? "slurm" : "local";
  j["in_use"] = in_use;
  j["queued_jobs"] = queued;
  return j;
}

}  // namespace cairn::server
