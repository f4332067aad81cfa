// Parses a command job in any of the three syntax generations into a JobSpec, collecting every
// diagnostic on the way.
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <deque>
#include <functional>
#include <set>

#include "base/fs.h"
#include "base/util.h"
#include "spec/job_spec.h"
#include "spec/placeholders.h"
#include "spec/yaml_tree.h"
#include "sweep/search_space.h"

namespace cairn::spec {

namespace {

const std::vector<std::string> kTopKeys = {
    "$schema", "type", "name", "display_name", "experiment_name", "description", "tags",
    "properties", "command", "code", "environment", "environment_variables", "compute", "resources",
    "distribution", "limits", "inputs", "outputs", "services", "identity", "queue_settings",
    "parent_job_name", "is_deterministic",
    // read-only fields that `job show -o yaml` writes: accepted and ignored so a saved job resubmits
    "status", "creation_context", "id", "log_files", "parameters",
    // and Cairn's own additions to the job object
    "status_reason", "status_history", "start_time", "end_time", "duration_seconds", "exit_code",
    "error", "is_archived", "notes"};
// A sweep job: the top level (the three generations together) and its trial.
const std::vector<std::string> kSweepTopKeys = {
    "$schema", "type", "name", "display_name", "experiment_name", "description", "tags", "properties",
    "trial", "inputs", "outputs", "compute", "sampling_algorithm", "algorithm", "search_space", "objective",
    "limits", "early_termination", "max_total_trials", "max_concurrent_trials", "timeout_minutes",
    "queue_settings", "resources", "identity", "services",
    "status", "creation_context", "id", "log_files", "parameters", "status_reason", "status_history",
    "start_time", "end_time", "duration_seconds", "exit_code", "error", "is_archived", "notes"};
const std::vector<std::string> kTrialKeys = {"command", "code", "environment", "environment_variables",
                                             "distribution", "resources", "queue_settings", "inputs", "compute"};
const std::vector<std::string> kSweepOnlyKeys = {"type", "trial", "sampling_algorithm", "algorithm", "search_space",
                                                 "objective", "limits", "early_termination", "max_total_trials",
                                                 "max_concurrent_trials", "timeout_minutes"};

const std::vector<std::string> kInputTypes = {"uri_file", "uri_folder", "mltable",
                                              "mlflow_model", "custom_model", "triton_model"};
const std::vector<std::string> kInputModes = {"ro_mount", "download", "direct", "eval_mount",
                                              "eval_download", "mount", "rw_mount"};
const std::vector<std::string> kOutputModes = {"rw_mount", "upload", "mount", "direct"};

const std::vector<std::string> kPipelineTopKeys = {
    "$schema", "type", "name", "display_name", "experiment_name", "description", "tags", "properties", "inputs",
    "outputs", "settings", "jobs", "compute", "identity", "services",
    "status", "creation_context", "id", "log_files", "parameters", "status_reason", "status_history", "start_time",
    "end_time", "duration_seconds", "exit_code", "error", "is_archived", "notes", "steps"};
const std::vector<std::string> kStepKeys = {
    "type", "component", "command", "code", "environment", "environment_variables", "compute", "resources",
    "distribution", "limits", "inputs", "outputs", "display_name", "description", "tags", "properties",
    "retry_settings", "experiment_name", "services", "identity", "queue_settings", "is_deterministic"};
const std::vector<std::string> kSweepStepKeys = {
    "type", "trial", "inputs", "outputs", "compute", "sampling_algorithm", "search_space", "objective", "limits",
    "early_termination", "display_name", "description", "tags", "experiment_name", "resources", "identity",
    "queue_settings", "retry_settings", "is_deterministic"};
const std::vector<std::string> kComponentKeys = {
    "$schema", "type", "name", "version", "display_name", "description", "tags", "is_deterministic", "inputs",
    "outputs", "code", "environment", "command", "resources", "distribution", "environment_variables", "limits",
    "additional_includes", "properties"};

std::string ReplaceAll(std::string s, const std::string& from, const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) s.replace(at, from.size(), to);
  return s;
}

// A pipeline's step while it is read.
struct Step {
  std::string name, type;
  const YEntry* entry = nullptr;
  const YNode* component = nullptr;  // the component's root, when the step names one
  std::string component_id;          // "file:<path>", "<name>:<version>" or "inline"
  std::string component_name;        // a component file's own name:version
  std::string code_snapshot;         // a registered component's code
  std::map<std::string, std::string> outputs;  // what others may bind to: name -> type
  std::map<std::string, std::pair<std::string, std::string>> bindings;  // input -> (step, output)
  std::map<std::string, const YNode*> binding_nodes;
  nlohmann::json spec;
  bool is_deterministic = true;
  nlohmann::json retry = nlohmann::json::object();
};

class JobParser {
 public:
  JobParser(const std::string& base_dir, const ParseOptions& options, Diagnostics& diags)
      : base_dir_(base_dir), options_(options), d_(diags) {}

  // An environment YAML of its own (`cairn environment create -f`).
  void ParseEnvironmentDocument(const YNode& root, JobSpec& spec) { ParseEnvironmentMap(&root, spec, true); }

  std::optional<JobSpec> Parse(YNode& root) {
    if (!root.IsMap()) {
      Error(root, "a job file must be a mapping of keys to values, got " + root.TypeName());
      return std::nullopt;
    }
    std::string type = "command";
    if (const YNode* t = root.Get("type")) type = Str(*t, "type");
    if (type == "sweep" || type == "sweep_job") {
      if (type == "sweep_job") generation_p1_ = true;
      return ParseSweep(root);
    }
    if (type == "pipeline" || type == "pipeline_job") {
      if (type == "pipeline_job") generation_p1_ = true;
      return ParsePipeline(root);
    }
    if (type != "command" && type != "command_job") {
      Error(*root.Get("type"), "type: unknown job type '" + type + "' (expected 'command', 'sweep' or 'pipeline')");
      return std::nullopt;
    }
    return ParseCommandJob(root);
  }

  std::optional<JobSpec> ParseCommandJob(YNode& root) {
    JobSpec spec;
    CheckKeys(root, kTopKeys, "");

    if (auto* n = root.Get("name")) spec.name = Str(*n, "name");
    if (!options_.name.empty() && !in_step_) spec.name = options_.name;
    if (!spec.name.empty() && !IsValidName(spec.name)) {
      const YNode* n = root.Get("name");
      std::string msg = "name: '" + spec.name +
                        "' is not a valid job name (letters, digits, '_' and '-', starting with a "
                        "letter or digit, at most 255 characters)";
      if (n && options_.name.empty()) Error(*n, msg); else d_.Error("--name", 0, 0, msg);
    }
    if (auto* n = root.Get("display_name")) spec.display_name = Str(*n, "display_name");
    if (auto* n = root.Get("experiment_name")) spec.experiment_name = Str(*n, "experiment_name");
    if (auto* n = root.Get("description")) spec.description = Str(*n, "description");
    if (auto* n = root.Get("tags")) spec.tags = StringMap(*n, "tags", true);
    if (auto* n = root.Get("properties")) spec.properties = StringMap(*n, "properties", true);
    if (auto* n = root.Get("environment_variables"))
      spec.environment_variables = StringMap(*n, "environment_variables", false);

    ParseCode(root, spec);
    ParseCompute(root, spec);
    ParseResources(root, spec);
    ParseEnvironment(root, spec);
    ParseDistribution(root, spec);
    ParseLimits(root, spec);
    ParseInputs(root, spec);
    ParseOutputs(root, spec);
    for (const char* key : {"services", "identity", "queue_settings"}) {
      if (const YNode* n = root.Get(key)) {
        nlohmann::json j = ToJsonValue(*n);
        if (std::string(key) == "services") spec.services = j;
        if (std::string(key) == "identity") spec.identity = j;
        if (std::string(key) == "queue_settings") spec.queue_settings = j;
      }
    }
    ParseCommand(root, spec);
    spec.generation = generation_p1_ ? "preview 1" : generation_p2_ ? "preview 2" : "GA";
    if (d_.HasErrors()) return std::nullopt;
    return spec;
  }

  // A sweep: the trial's keys and the top level's are read as one command job (the trial's command may use
  // ${{search_space.<name>}}), and the sweep's own keys into spec.sweep.
  std::optional<JobSpec> ParseSweep(YNode& root) {
    std::vector<std::string> allowed = kSweepTopKeys;
    for (const char* k : {"command", "code", "environment", "environment_variables", "distribution"}) {
      allowed.push_back(k);
      for (const auto& e : root.map)
        if (e.key == k) ErrorAtKey(e, root, std::string(k) + ": in a sweep job this belongs under trial:");
    }
    CheckKeys(root, allowed, "");
    const YNode* trial = root.Get("trial");
    if (!trial || !trial->IsMap()) {
      if (trial) Error(*trial, "trial: expected a mapping with the trial's command, code and environment, got " + trial->TypeName());
      else d_.Error(root.file, 1, 1, "missing required key 'trial' (the command each trial runs)");
      return std::nullopt;
    }
    CheckKeys(*trial, kTrialKeys, "trial.");
    YNode merged = root;
    merged.map.clear();
    for (const auto& e : root.map)
      if (std::find(kSweepOnlyKeys.begin(), kSweepOnlyKeys.end(), e.key) == kSweepOnlyKeys.end()) merged.map.push_back(e);
    for (const auto& e : trial->map) {
      if (merged.Get(e.key)) {
        ErrorAtKey(e, *trial, "trial." + e.key + ": also given at the top level; give it once");
        continue;
      }
      merged.map.push_back(e);
    }
    nlohmann::json sweep = nlohmann::json::object();
    ParseSweepConfig(root, sweep);
    // Names as written, even when a distribution is invalid (that error is reported already).
    search_space_names_.clear();
    if (const YNode* ss = root.Get("search_space"); ss && ss->IsMap())
      for (const auto& e : ss->map) search_space_names_.push_back(e.key);
    in_sweep_ = true;
    YNode typed = merged;
    auto spec = ParseCommandJob(typed);
    if (!spec || d_.HasErrors()) return std::nullopt;
    spec->type = "sweep";
    if (sweep["limits"].contains("trial_timeout")) spec->timeout_seconds = sweep["limits"]["trial_timeout"];
    spec->sweep = sweep;
    return spec;
  }

  // Finds the node a "search_space.a.b" path names, for the error's place.
  const YNode& Locate(const YNode& root, const std::string& path) {
    const YNode* at = &root;
    for (const auto& part : Split(path, '.')) {
      std::string key = part.substr(0, part.find('['));
      const YNode* next = at->IsMap() ? at->Get(key) : nullptr;
      if (!next) break;
      at = next;
      size_t lb = part.find('[');
      if (lb != std::string::npos && at->IsSeq()) {
        size_t i = static_cast<size_t>(atoi(part.c_str() + lb + 1));
        if (i < at->seq.size()) at = &at->seq[i];
      }
    }
    return *at;
  }

  void ParseSweepConfig(const YNode& root, nlohmann::json& sweep) {
    // sampling_algorithm (GA, preview 2) or algorithm (preview 1): a word or {type, seed, rule, logbase}.
    const YNode* alg = root.Get("sampling_algorithm");
    const char* alg_key = "sampling_algorithm";
    if (!alg) {
      alg = root.Get("algorithm");
      alg_key = "algorithm";
    }
    nlohmann::json algorithm = {{"type", "random"}, {"rule", "random"}};
    if (alg && alg->IsScalar()) {
      algorithm["type"] = ToLower(alg->scalar);
    } else if (alg && alg->IsMap()) {
      CheckKeys(*alg, {"type", "seed", "rule", "logbase"}, std::string(alg_key) + ".");
      if (const YNode* t = alg->Get("type")) algorithm["type"] = ToLower(Str(*t, std::string(alg_key) + ".type"));
      if (const YNode* sd = alg->Get("seed")) {
        if (auto v = NonNegativeInt(*sd, std::string(alg_key) + ".seed")) algorithm["seed"] = *v;
      }
      if (const YNode* r = alg->Get("rule")) {
        std::string rule = ToLower(Str(*r, std::string(alg_key) + ".rule"));
        if (rule != "random" && rule != "sobol") Error(*r, std::string(alg_key) + ".rule: expected 'random' or 'sobol', got '" + rule + "'");
        algorithm["rule"] = rule;
      }
    } else if (alg && !alg->IsNull()) {
      Error(*alg, std::string(alg_key) + ": expected random, grid or bayesian, got " + alg->TypeName());
    }
    std::string type = algorithm["type"];
    if (type != "random" && type != "grid" && type != "bayesian")
      Error(alg ? (alg->IsMap() && alg->Get("type") ? *alg->Get("type") : *alg) : root,
            std::string(alg_key) + ": unknown sampling algorithm '" + type + "' (random, grid or bayesian)");
    sweep["algorithm"] = algorithm;

    // search_space
    const YNode* ss = root.Get("search_space");
    sweep::Space space;
    if (!ss || ss->IsNull()) {
      d_.Error(root.file, 1, 1, "missing required key 'search_space' (the hyperparameters to sweep)");
    } else {
      nlohmann::json j = ToJsonValue(*ss);
      auto parsed = sweep::ParseSpace(j);
      if (!parsed.ok()) {
        const std::string& m = parsed.status().message();
        Error(Locate(root, m.substr(0, m.find(':'))), m);
      } else {
        space = *parsed;
        sweep["search_space"] = j;
        if (std::string e = sweep::CheckAlgorithm(space, type); !e.empty())
          Error(Locate(root, e.substr(0, e.find(':'))), e + " (" + alg_key + ": " + type + ")");
      }
    }

    // objective
    const YNode* obj = root.Get("objective");
    if (!obj || !obj->IsMap()) {
      if (obj) Error(*obj, "objective: expected {primary_metric: <name>, goal: maximize|minimize}, got " + obj->TypeName());
      else d_.Error(root.file, 1, 1, "missing required key 'objective' ({primary_metric: <name>, goal: maximize|minimize})");
    } else {
      CheckKeys(*obj, {"primary_metric", "goal"}, "objective.");
      const YNode* pm = obj->Get("primary_metric");
      const YNode* goal = obj->Get("goal");
      std::string metric = pm ? Str(*pm, "objective.primary_metric") : "";
      std::string g = goal ? ToLower(Str(*goal, "objective.goal")) : "";
      if (metric.empty()) Error(pm ? *pm : *obj, "objective.primary_metric: required, the metric each trial logs with mlflow");
      if (g != "maximize" && g != "minimize")
        Error(goal ? *goal : *obj, "objective.goal: expected 'maximize' or 'minimize'" + (g.empty() ? std::string() : ", got '" + g + "'"));
      sweep["objective"] = {{"primary_metric", metric}, {"goal", g}};
    }

    // limits: a map (GA, preview 2) or top-level keys (preview 1, with timeout in minutes).
    nlohmann::json limits = nlohmann::json::object();
    auto trials_limit = [&](const YNode& n, const std::string& field) -> std::optional<long long> {
      auto v = PositiveInt(n, field);
      if (v && *v > 1000) {
        Error(n, field + ": at most 1000, got " + std::to_string(*v));
        return std::nullopt;
      }
      return v;
    };
    if (const YNode* l = root.Get("limits"); l && !l->IsNull()) {
      if (!l->IsMap()) {
        Error(*l, "limits: expected a mapping, got " + l->TypeName());
      } else {
        CheckKeys(*l, {"max_total_trials", "max_concurrent_trials", "timeout", "trial_timeout"}, "limits.");
        for (const char* k : {"max_total_trials", "max_concurrent_trials"})
          if (const YNode* n = l->Get(k))
            if (auto v = trials_limit(*n, std::string("limits.") + k)) limits[k] = *v;
        for (const char* k : {"timeout", "trial_timeout"})
          if (const YNode* n = l->Get(k))
            if (auto v = PositiveInt(*n, std::string("limits.") + k)) limits[k] = *v;
      }
    }
    for (const char* k : {"max_total_trials", "max_concurrent_trials"})
      if (const YNode* n = root.Get(k)) {
        generation_p1_ = true;
        if (auto v = trials_limit(*n, k)) limits[k] = *v;
      }
    if (const YNode* n = root.Get("timeout_minutes")) {
      generation_p1_ = true;
      if (auto v = PositiveInt(*n, "timeout_minutes")) limits["timeout"] = *v * 60;
    }
    long long grid = sweep::GridSize(space);
    if (!limits.contains("max_total_trials"))
      limits["max_total_trials"] = type == "grid" && grid > 0 ? std::min<long long>(grid, 1000) : 1000;
    if (!limits.contains("max_concurrent_trials")) limits["max_concurrent_trials"] = limits["max_total_trials"];
    sweep["limits"] = limits;

    // early_termination
    if (const YNode* et = root.Get("early_termination"); et && !et->IsNull()) {
      if (!et->IsMap()) {
        Error(*et, "early_termination: expected a policy such as {type: bandit, slack_factor: 0.1}, got " + et->TypeName());
        return;
      }
      std::string pt = et->Get("type") ? ToLower(Str(*et->Get("type"), "early_termination.type")) : "";
      nlohmann::json policy = {{"type", pt}, {"evaluation_interval", 1}, {"delay_evaluation", 0}};
      std::vector<std::string> keys = {"type", "evaluation_interval", "delay_evaluation"};
      if (pt == "bandit") {
        keys.insert(keys.end(), {"slack_factor", "slack_amount"});
      } else if (pt == "truncation_selection") {
        keys.insert(keys.end(), {"truncation_percentage", "exclude_finished_jobs"});
      } else if (pt != "median_stopping") {
        Error(et->Get("type") ? *et->Get("type") : *et,
              "early_termination.type: expected bandit, median_stopping or truncation_selection" +
                  (pt.empty() ? std::string() : ", got '" + pt + "'"));
        return;
      }
      CheckKeys(*et, keys, "early_termination.");
      for (const char* k : {"evaluation_interval", "delay_evaluation"})
        if (const YNode* n = et->Get(k))
          if (auto v = NonNegativeInt(*n, std::string("early_termination.") + k)) policy[k] = *v;
      if (pt == "bandit") {
        const YNode* f = et->Get("slack_factor");
        const YNode* a = et->Get("slack_amount");
        if ((f != nullptr) == (a != nullptr))
          Error(*et, "early_termination: a bandit policy takes exactly one of slack_factor and slack_amount");
        for (auto [node, key] : {std::pair{f, "slack_factor"}, std::pair{a, "slack_amount"}}) {
          if (!node) continue;
          char* end = nullptr;
          double v = node->IsScalar() ? strtod(node->scalar.c_str(), &end) : -1;
          if (!node->IsScalar() || *end || v < 0)
            Error(*node, std::string("early_termination.") + key + ": expected a number of 0 or more");
          else
            policy[key] = v;
        }
      }
      if (pt == "truncation_selection") {
        const YNode* tp = et->Get("truncation_percentage");
        if (!tp) {
          Error(*et, "early_termination.truncation_percentage: required for truncation_selection (1 to 99)");
        } else if (auto v = PositiveInt(*tp, "early_termination.truncation_percentage")) {
          if (*v > 99) Error(*tp, "early_termination.truncation_percentage: 1 to 99, got " + std::to_string(*v));
          policy["truncation_percentage"] = *v;
        }
        if (const YNode* x = et->Get("exclude_finished_jobs")) {
          std::string b = ToLower(Str(*x, "early_termination.exclude_finished_jobs"));
          if (b != "true" && b != "false") Error(*x, "early_termination.exclude_finished_jobs: expected true or false");
          policy["exclude_finished_jobs"] = b == "true";
        }
      }
      if (type == "bayesian")
        Error(*et, "early_termination: bayesian sampling does not support early termination; remove the policy or "
                   "use random sampling");
      sweep["early_termination"] = policy;
    }
  }

  // ---- pipelines ----
  // A pipeline: its own inputs, outputs and settings, and its steps, each read as a command (or sweep) job
  // made of its component's keys, the step's own and the pipeline's defaults, with its inputs bound.
  std::optional<JobSpec> ParsePipeline(YNode& root) {
    JobSpec spec;
    spec.type = "pipeline";
    CheckKeys(root, kPipelineTopKeys, "");
    if (auto* n = root.Get("name")) spec.name = Str(*n, "name");
    if (!options_.name.empty()) spec.name = options_.name;
    if (!spec.name.empty() && !IsValidName(spec.name)) {
      const YNode* n = root.Get("name");
      std::string msg = "name: '" + spec.name + "' is not a valid job name (letters, digits, '_' and '-')";
      if (n && options_.name.empty()) Error(*n, msg); else d_.Error("--name", 0, 0, msg);
    }
    if (auto* n = root.Get("display_name")) spec.display_name = Str(*n, "display_name");
    if (auto* n = root.Get("experiment_name")) spec.experiment_name = Str(*n, "experiment_name");
    if (auto* n = root.Get("description")) spec.description = Str(*n, "description");
    if (auto* n = root.Get("tags")) spec.tags = StringMap(*n, "tags", true);
    if (auto* n = root.Get("properties")) spec.properties = StringMap(*n, "properties", true);
    ParseInputs(root, spec);
    ParseOutputs(root, spec);
    ParseCompute(root, spec);
    const YNode* default_compute = root.Get("compute");
    const YNode* default_environment = nullptr;
    nlohmann::json settings = {{"continue_on_step_failure", false}, {"force_rerun", false}};
    if (const YNode* st = root.Get("settings"); st && !st->IsNull()) {
      if (!st->IsMap()) {
        Error(*st, "settings: expected a mapping, got " + st->TypeName());
      } else {
        CheckKeys(*st, {"default_compute", "default_datastore", "continue_on_step_failure", "force_rerun",
                        "environment", "continue_run_on_failed_optional_input", "default_environment"},
                  "settings.");
        if (const YNode* c = st->Get("default_compute")) {
          default_compute = c;
          YNode wrap;
          wrap.kind = YNode::Kind::kMap;
          wrap.map.push_back({"compute", c->line, c->column, *c});
          JobSpec tmp;
          ParseCompute(wrap, tmp);
          spec.compute = tmp.compute;
        }
        if (const YNode* e = st->Get("environment")) default_environment = e;
        if (const YNode* e = st->Get("default_environment")) default_environment = e;
        for (const char* k : {"continue_on_step_failure", "force_rerun", "continue_run_on_failed_optional_input"})
          if (const YNode* b = st->Get(k)) {
            auto v = AsBool(*b);
            if (!v) Error(*b, std::string("settings.") + k + ": expected true or false, got " + Describe(*b));
            else settings[k] = *v;
          }
        if (const YNode* ds = st->Get("default_datastore")) {
          std::string v = Str(*ds, "settings.default_datastore");
          if (StartsWith(v, "azureml:")) v = v.substr(8);
          settings["default_datastore"] = v;
        }
      }
    }
    const YNode* jobs = root.Get("jobs");
    if (!jobs || !jobs->IsMap() || jobs->map.empty()) {
      if (jobs && !jobs->IsMap()) Error(*jobs, "jobs: expected a mapping of step names to steps, got " + jobs->TypeName());
      else if (jobs) Error(*jobs, "jobs: a pipeline needs at least one step");
      else d_.Error(root.file, 1, 1, "missing required key 'jobs' (the pipeline's steps)");
      return std::nullopt;
    }
    const YNode* parent_inputs = root.Get("inputs");
    const YNode* parent_outputs = root.Get("outputs");

    // First pass: each step's component and the outputs it declares (what other steps may bind to).
    std::vector<Step> steps;
    for (const auto& e : jobs->map) {
      Step s;
      s.name = e.key;
      s.entry = &e;
      if (!IsValidStepName(e.key)) {
        ErrorAtKey(e, *jobs, "jobs." + e.key + ": not a valid step name (letters, digits, '_' and '-', starting with a letter)");
        continue;
      }
      if (!e.value.IsMap()) {
        Error(e.value, "jobs." + e.key + ": expected a step (a mapping with a command or a component), got " + e.value.TypeName());
        continue;
      }
      const YNode& v = e.value;
      s.type = v.Get("type") ? ToLower(Str(*v.Get("type"), "jobs." + e.key + ".type")) : "command";
      if (s.type != "command" && s.type != "sweep") {
        Error(*v.Get("type"), "jobs." + e.key + ".type: '" + s.type + "' steps are not supported (command or sweep)");
        continue;
      }
      CheckKeys(v, s.type == "sweep" ? kSweepStepKeys : kStepKeys, "jobs." + e.key + ".");
      const YNode* comp = v.Get(s.type == "sweep" ? "trial" : "component");
      if (s.type == "sweep" && !comp) {
        Error(v, "jobs." + e.key + ": a sweep step needs 'trial' (the component each trial runs)");
        continue;
      }
      if (comp && !LoadComponent(*comp, "jobs." + e.key + (s.type == "sweep" ? ".trial" : ".component"), s)) continue;
      // Outputs others may read: the component's, the step's own (inline), and its artifacts.
      s.outputs["artifacts"] = "uri_folder";
      s.outputs["default"] = "uri_folder";
      if (s.component && s.component->IsMap())
        if (const YNode* outs = s.component->Get("outputs"); outs && outs->IsMap())
          for (const auto& o : outs->map) s.outputs[o.key] = o.value.IsMap() && o.value.Get("type") ? o.value.Get("type")->scalar : "uri_folder";
      if (const YNode* outs = v.Get("outputs"); outs && outs->IsMap())
        for (const auto& o : outs->map) {
          if (s.outputs.count(o.key) && s.component) continue;
          std::string type = "uri_folder";
          if (o.value.IsMap() && o.value.Get("type")) type = o.value.Get("type")->scalar;
          if (auto b = ParseBinding(o.value); b && b->kind == "parent_output" && parent_outputs)
            if (const YNode* po = parent_outputs->Get(b->name); po && po->IsMap() && po->Get("type")) type = po->Get("type")->scalar;
          s.outputs[o.key] = type;
        }
      steps.push_back(std::move(s));
    }
    std::map<std::string, size_t> index;
    for (size_t i = 0; i < steps.size(); ++i) index[steps[i].name] = i;
    std::vector<std::string> step_names;
    for (const auto& s : steps) step_names.push_back(s.name);

    nlohmann::json out_map = nlohmann::json::object();
    // Second pass: each step as a job of its own.
    for (Step& s : steps) {
      const YNode& v = s.entry->value;
      const std::string field = "jobs." + s.name;
      YNode m;
      m.kind = YNode::Kind::kMap;
      m.file = v.file;
      m.line = v.line;
      m.column = v.column;
      auto put = [&](const std::string& key, const YNode& val, int line, int col) {
        for (auto& x : m.map)
          if (x.key == key) {
            x.value = val;
            return;
          }
        m.map.push_back({key, line, col, val});
      };
      static const std::vector<std::string> kFromComponent = {"command", "code", "environment", "environment_variables",
                                                              "resources", "distribution", "limits"};
      if (s.component)
        for (const auto& x : s.component->map)
          if (std::find(kFromComponent.begin(), kFromComponent.end(), x.key) != kFromComponent.end()) put(x.key, x.value, x.line, x.column);
      if (!s.code_snapshot.empty()) {
        YNode code;
        code.kind = YNode::Kind::kScalar;
        code.scalar = "azureml:snapshots/" + s.code_snapshot;
        code.file = s.component->file;
        put("code", code, 0, 0);
      }
      static const std::vector<std::string> kFromStep = {"command", "code", "environment", "environment_variables", "compute",
                                                         "resources", "distribution", "limits", "display_name", "description",
                                                         "tags", "properties", "services", "identity", "queue_settings",
                                                         "experiment_name"};
      for (const auto& x : v.map)
        if (std::find(kFromStep.begin(), kFromStep.end(), x.key) != kFromStep.end()) {
          if (x.key == "limits" && s.type == "sweep") continue;  // the sweep's limits, below
          put(x.key, x.value, x.line, x.column);
        }
      if (!m.Get("environment") && default_environment) put("environment", *default_environment, default_environment->line, default_environment->column);
      if (!m.Get("compute") && default_compute) put("compute", *default_compute, default_compute->line, default_compute->column);
      if (!m.Get("experiment_name") && !spec.experiment_name.empty()) {
        YNode x;
        x.kind = YNode::Kind::kScalar;
        x.scalar = spec.experiment_name;
        put("experiment_name", x, 0, 0);
      }

      // Inputs: the step's values and bindings, over the component's declarations and their defaults.
      YNode ins;
      ins.kind = YNode::Kind::kMap;
      ins.file = v.file;
      const YNode* decls = s.component && s.component->IsMap() ? s.component->Get("inputs") : nullptr;
      const YNode* given = v.Get("inputs");
      if (given && !given->IsNull() && !given->IsMap()) Error(*given, field + ".inputs: expected a mapping, got " + given->TypeName());
      if (decls && !decls->IsMap()) decls = nullptr;
      std::set<std::string> search_names;
      if (s.type == "sweep")
        if (const YNode* ss = v.Get("search_space"); ss && ss->IsMap())
          for (const auto& x : ss->map) search_names.insert(x.key);
      if (given && given->IsMap())
        for (const auto& x : given->map) {
          const YNode* decl = decls ? decls->Get(x.key) : nullptr;
          if (s.component && !decl && decls) {
            std::vector<std::string> names;
            for (const auto& d : decls->map) names.push_back(d.key);
            std::string near = ClosestMatch(x.key, names);
            ErrorAtKey(x, *given, field + ".inputs." + x.key + ": the component has no input '" + x.key + "'" +
                                      (near.empty() ? " (its inputs: " + Join(names, ", ") + ")" : " (did you mean '" + near + "'?)"));
            continue;
          }
          BindInput(s, x.key, x.value, decl, field + ".inputs." + x.key, parent_inputs, steps, index, step_names, ins);
          if (!ins.Get(x.key)) {  // refused (and said so): the command's use of it is not a second error
            YNode none;
            none.file = x.value.file;
            ins.map.push_back({x.key, x.line, x.column, none});
          }
        }
      if (decls)
        for (const auto& d : decls->map) {
          if (ins.Get(d.key) || search_names.count(d.key)) continue;
          if (given && given->IsMap() && given->Get(d.key)) continue;  // given, and reported if wrong
          const YNode* def = d.value.IsMap() ? d.value.Get("default") : nullptr;
          bool optional = d.value.IsMap() && d.value.Get("optional") && AsBool(*d.value.Get("optional")).value_or(false);
          if (def) {
            BindInput(s, d.key, *def, &d.value, field + ".inputs." + d.key, parent_inputs, steps, index, step_names, ins);
          } else if (optional) {  // absent: $[[ ... ]] around it in the command drops it
            YNode none;
            none.file = d.value.file;
            ins.map.push_back({d.key, d.line, d.column, none});
          } else {
            Error(given ? *given : v, field + ".inputs." + d.key + ": the component's input '" + d.key +
                                          "' is not bound and has no default (bind it with " + d.key +
                                          ": ${{parent.inputs.<name>}}, a step's output or a value)");
          }
        }
      put("inputs", ins, given ? given->line : v.line, given ? given->column : v.column);

      // Outputs: the component's declarations, the step's own, and where they go (a pipeline output).
      YNode outs;
      outs.kind = YNode::Kind::kMap;
      outs.file = v.file;
      if (s.component && s.component->IsMap())
        if (const YNode* od = s.component->Get("outputs"); od && od->IsMap())
          for (const auto& o : od->map) {
            YNode decl = o.value;
            if (decl.IsMap()) decl.map.erase(std::remove_if(decl.map.begin(), decl.map.end(), [](const YEntry& y) {
                                                return y.key == "description" || y.key == "optional";
                                              }), decl.map.end());
            outs.map.push_back({o.key, o.line, o.column, decl});
          }
      if (const YNode* so = v.Get("outputs"); so && !so->IsNull()) {
        if (!so->IsMap()) {
          Error(*so, field + ".outputs: expected a mapping, got " + so->TypeName());
        } else {
          for (const auto& o : so->map) {
            YNode val = o.value;
            if (auto b = ParseBinding(o.value)) {
              if (b->kind != "parent_output") {
                Error(o.value, field + ".outputs." + o.key + ": an output binds only to ${{parent.outputs.<name>}}, got ${{" + b->expression + "}}");
                continue;
              }
              const YNode* po = parent_outputs && parent_outputs->IsMap() ? parent_outputs->Get(b->name) : nullptr;
              if (!po) {
                Error(o.value, field + ".outputs." + o.key + ": ${{" + b->expression + "}} names no output of the pipeline" +
                                   Listing(parent_outputs, "outputs"));
                continue;
              }
              if (out_map.contains(b->name)) {
                Error(o.value, field + ".outputs." + o.key + ": the pipeline's output '" + b->name + "' is already bound to " +
                                   "jobs." + out_map[b->name]["step"].get<std::string>() + ".outputs." + out_map[b->name]["output"].get<std::string>());
                continue;
              }
              out_map[b->name] = {{"step", s.name}, {"output", o.key}};
              val = *po;
            } else if (o.value.IsScalar()) {
              Error(o.value, field + ".outputs." + o.key + ": expected a mapping, nothing, or ${{parent.outputs.<name>}}");
              continue;
            }
            bool replaced = false;
            for (auto& x : outs.map)
              if (x.key == o.key) {
                if (!val.IsNull()) x.value = val;
                replaced = true;
              }
            if (!replaced) outs.map.push_back({o.key, o.line, o.column, val});
          }
        }
      }
      // `artifacts` (and `default`) name the step's own artifacts, not a named output.
      outs.map.erase(std::remove_if(outs.map.begin(), outs.map.end(), [](const YEntry& y) {
                       return y.key == "artifacts" || y.key == "default";
                     }), outs.map.end());
      put("outputs", outs, 0, 0);

      // Read as a job of its own; its diagnostics say which step they are about.
      size_t mark = d_.size();
      std::optional<JobSpec> step_spec;
      in_step_ = true;
      if (s.type == "sweep") {
        YNode sw;
        sw.kind = YNode::Kind::kMap;
        sw.file = m.file;
        sw.line = m.line;
        sw.column = m.column;
        YNode trial;
        trial.kind = YNode::Kind::kMap;
        trial.file = m.file;
        for (auto& x : m.map) {
          if (x.key == "command" || x.key == "code" || x.key == "environment" || x.key == "environment_variables" ||
              x.key == "distribution" || x.key == "resources") {
            if (x.key == "command" && x.value.IsScalar())  // a component's inputs that the sweep samples
              for (const auto& n : search_names)
                x.value.scalar = ReplaceAll(ReplaceAll(x.value.scalar, "${{inputs." + n + "}}", "${{search_space." + n + "}}"),
                                            "${{ inputs." + n + " }}", "${{search_space." + n + "}}");
            trial.map.push_back(x);
          } else if (x.key != "limits") {
            sw.map.push_back(x);
          }
        }
        sw.map.push_back({"trial", m.line, m.column, trial});
        for (const char* k : {"sampling_algorithm", "search_space", "objective", "limits", "early_termination"})
          if (const YNode* x = v.Get(k)) sw.map.push_back({k, x->line, x->column, *x});
        step_spec = ParseSweep(sw);
      } else {
        step_spec = ParseCommandJob(m);
      }
      in_step_ = false;
      in_sweep_ = false;
      d_.PrefixSince(mark, field + ": ");
      if (!step_spec) continue;
      s.spec = ToJson(*step_spec);
      if (const YNode* det = s.component && s.component->IsMap() ? s.component->Get("is_deterministic") : nullptr)
        s.is_deterministic = AsBool(*det).value_or(true);
      if (const YNode* det = v.Get("is_deterministic")) s.is_deterministic = AsBool(*det).value_or(true);
      if (const YNode* r = v.Get("retry_settings"); r && !r->IsNull()) {
        if (!r->IsMap()) {
          Error(*r, field + ".retry_settings: expected {max_retries: N, timeout: seconds}, got " + r->TypeName());
        } else {
          CheckKeys(*r, {"max_retries", "timeout"}, field + ".retry_settings.");
          if (const YNode* mr = r->Get("max_retries"))
            if (auto x = NonNegativeInt(*mr, field + ".retry_settings.max_retries")) {
              if (*x > 100) Error(*mr, field + ".retry_settings.max_retries: at most 100, got " + std::to_string(*x));
              else s.retry["max_retries"] = *x;
            }
          if (const YNode* t = r->Get("timeout"))
            if (auto x = PositiveInt(*t, field + ".retry_settings.timeout")) s.retry["timeout"] = *x;
        }
      }
    }
    // A binding names a step: the steps form a graph, which must have no cycle.
    std::vector<size_t> order;
    {
      std::vector<int> state(steps.size(), 0);  // 0 new, 1 on the path, 2 done
      std::vector<size_t> path;
      bool cycle_reported = false;
      std::function<void(size_t)> visit = [&](size_t i) {
        state[i] = 1;
        path.push_back(i);
        for (const auto& [input, b] : steps[i].bindings) {
          auto it = index.find(b.first);
          if (it == index.end()) continue;
          size_t j = it->second;
          if (state[j] == 1 && !cycle_reported) {
            std::vector<std::string> names;
            auto from = std::find(path.begin(), path.end(), j);
            for (auto p = from; p != path.end(); ++p) names.push_back(steps[*p].name);
            names.push_back(steps[j].name);
            // Said where the cycle closes: the binding of the step that reads from one on its own path.
            Error(*steps[i].binding_nodes[input], "jobs." + steps[i].name + ".inputs." + input + ": the steps form a cycle: " +
                                                     Join(names, " -> ") + " (a step cannot read, directly or not, its own outputs)");
            cycle_reported = true;
          } else if (state[j] == 0) {
            visit(j);
          }
        }
        path.pop_back();
        state[i] = 2;
        order.push_back(i);  // after everything it reads from
      };
      for (size_t i = 0; i < steps.size(); ++i)
        if (state[i] == 0) visit(i);
    }
    if (parent_outputs && parent_outputs->IsMap())
      for (const auto& o : parent_outputs->map)
        if (!out_map.contains(o.key))
          Warning(o.value.IsNull() ? *parent_outputs : o.value, "outputs." + o.key + ": no step binds to this output (${{parent.outputs." + o.key + "}}); it stays empty");
    spec.generation = generation_p1_ ? "preview 1" : generation_p2_ ? "preview 2" : "GA";
    if (d_.HasErrors()) return std::nullopt;
    nlohmann::json js = nlohmann::json::array();
    for (size_t i : order) {
      const Step& s = steps[i];
      nlohmann::json bindings = nlohmann::json::object();
      std::set<std::string> after;
      for (const auto& [input, b] : s.bindings) {
        bindings[input] = {{"step", b.first}, {"output", b.second}};
        after.insert(b.first);
      }
      js.push_back({{"name", s.name}, {"type", s.type}, {"spec", s.spec}, {"component", s.component_id},
                    {"is_deterministic", s.is_deterministic}, {"retry", s.retry}, {"bindings", bindings},
                    {"after", nlohmann::json(std::vector<std::string>(after.begin(), after.end()))},
                    {"code", s.spec.value("code", "")}});
    }
    spec.pipeline = {{"settings", settings}, {"steps", js}, {"outputs", out_map}};
    return spec;
  }

  // A component file on its own (`cairn component create`): read as the command job it stands for, its
  // data inputs standing in for what steps will bind.
  std::optional<ComponentInfo> ParseComponent(YNode& root) {
    if (!root.IsMap()) {
      Error(root, "a component file must be a mapping, got " + root.TypeName());
      return std::nullopt;
    }
    CheckKeys(root, kComponentKeys, "");
    ComponentInfo info;
    if (const YNode* t = root.Get("type"); t && ToLower(t->scalar) != "command")
      Error(*t, "type: '" + t->scalar + "' components are not supported (a command component)");
    const YNode* nm = root.Get("name");
    if (!nm) d_.Error(root.file, 1, 1, "missing required key 'name' (the component's name)");
    else info.name = Str(*nm, "name");
    if (!options_.name.empty()) info.name = options_.name;
    if (!info.name.empty() && !IsValidName(info.name)) Error(nm ? *nm : root, "name: '" + info.name + "' is not a valid component name");
    if (const YNode* v = root.Get("version")) info.version = Str(*v, "version");
    if (const YNode* v = root.Get("display_name")) info.display_name = Str(*v, "display_name");
    if (const YNode* v = root.Get("description")) info.description = Str(*v, "description");
    if (const YNode* v = root.Get("is_deterministic")) {
      auto b = AsBool(*v);
      if (!b) Error(*v, "is_deterministic: expected true or false");
      else info.is_deterministic = *b;
    }
    YNode m;
    m.kind = YNode::Kind::kMap;
    m.file = root.file;
    m.line = root.line;
    m.column = root.column;
    for (const auto& x : root.map)
      if (x.key == "command" || x.key == "code" || x.key == "environment" || x.key == "environment_variables" ||
          x.key == "resources" || x.key == "distribution" || x.key == "limits" || x.key == "outputs")
        m.map.push_back(x);
    YNode ins;
    ins.kind = YNode::Kind::kMap;
    ins.file = root.file;
    info.inputs = nlohmann::json::object();
    if (const YNode* decls = root.Get("inputs"); decls && !decls->IsNull()) {
      if (!decls->IsMap()) {
        Error(*decls, "inputs: expected a mapping of input names to declarations, got " + decls->TypeName());
      } else {
        for (const auto& d : decls->map) {
          if (!d.value.IsMap()) {
            Error(d.value, "inputs." + d.key + ": expected a declaration such as {type: uri_folder} or {type: integer, default: 3}");
            continue;
          }
          CheckKeys(d.value, {"type", "default", "optional", "description", "min", "max", "enum"}, "inputs." + d.key + ".");
          std::string type = d.value.Get("type") ? d.value.Get("type")->scalar : "";
          if (type.empty()) {
            Error(d.value, "inputs." + d.key + ": missing required key 'type'");
            continue;
          }
          info.inputs[d.key] = YamlToJson(d.value);
          YNode in = d.value;
          if (!IsLiteralType(type)) {  // a stand-in for the data a step will bind
            in.map.clear();
            YNode t = *d.value.Get("type"), path = t;
            path.scalar = "azureml://jobs/component/outputs/" + d.key;
            in.map.push_back({"type", d.line, d.column, t});
            in.map.push_back({"path", d.line, d.column, path});
            if (const YNode* o = d.value.Get("optional")) in.map.push_back({"optional", d.line, d.column, *o});
          } else {
            in.map.erase(std::remove_if(in.map.begin(), in.map.end(), [](const YEntry& y) {
                           return y.key == "min" || y.key == "max" || y.key == "enum";
                         }), in.map.end());
          }
          ins.map.push_back({d.key, d.line, d.column, in});
        }
      }
    }
    m.map.push_back({"inputs", root.line, root.column, ins});
    info.outputs = nlohmann::json::object();
    if (const YNode* o = root.Get("outputs"); o && o->IsMap())
      for (const auto& x : o->map) info.outputs[x.key] = x.value.IsNull() ? nlohmann::json{{"type", "uri_folder"}} : YamlToJson(x.value);
    in_step_ = true;
    auto spec = ParseCommandJob(m);
    in_step_ = false;
    if (!spec || d_.HasErrors()) return std::nullopt;
    info.code = spec->code;
    info.code_snapshot = spec->code_snapshot;
    info.command = spec->command;
    return info;
  }

  // A command component (a file of its own, or a registered one) as the step that uses it: its YAML root.
  bool LoadComponent(const YNode& ref, const std::string& field, Step& s) {
    if (ref.IsMap()) {  // inline component
      s.component = &ref;
      s.component_id = "inline";
      CheckKeys(ref, kComponentKeys, field + ".");
      return true;
    }
    if (!ref.IsScalar()) {
      Error(ref, field + ": expected file:<path>, azureml:<name>:<version> or azureml:<name>@latest, got " + ref.TypeName());
      return false;
    }
    std::string r = Trim(ref.scalar);
    std::string text, file, base;
    if (StartsWith(r, "azureml:")) {
      std::string rest = r.substr(8);
      std::string name = rest, version;
      if (size_t at = rest.find('@'); at != std::string::npos) {
        name = rest.substr(0, at);
        version = rest.substr(at + 1);
        if (version != "latest") {
          Error(ref, field + ": '@" + version + "' is not a label Cairn knows (azureml:<name>@latest or azureml:<name>:<version>)");
          return false;
        }
        version = "";
      } else if (size_t colon = rest.find(':'); colon != std::string::npos) {
        name = rest.substr(0, colon);
        version = rest.substr(colon + 1);
      }
      if (!options_.resolve_component) {
        Error(ref, field + ": '" + r + "' is a registered component; validating it needs the workspace");
        return false;
      }
      auto got = options_.resolve_component(name, version);
      if (!got.ok()) {
        Error(ref, field + ": " + got.status().message());
        return false;
      }
      text = got->text;
      file = got->id;
      s.code_snapshot = got->code_snapshot;
      s.component_id = got->id.substr(8);
    } else {
      std::string path = LocalPath(r, &ref);
      auto read = ReadFile(path, YamlLimits().max_bytes);
      if (!read.ok()) {
        Error(ref, field + ": cannot read the component file '" + r + "' (looked for " + path + ")");
        return false;
      }
      text = *read;
      file = path;
      base_of_file_[path] = Dirname(path);
      s.component_id = "file:" + path;
    }
    auto root = ParseYaml(text, file, d_);
    if (!root) return false;
    if (!root->IsMap()) {
      Error(*root, field + ": the component must be a mapping, got " + root->TypeName());
      return false;
    }
    components_.push_back(std::move(*root));
    const YNode& c = components_.back();
    CheckKeys(c, kComponentKeys, "");
    if (const YNode* t = c.Get("type"); t && ToLower(t->scalar) != "command") {
      Error(*t, "type: '" + t->scalar + "' components are not supported (a command component)");
      return false;
    }
    s.component = &c;
    if (const YNode* nm = c.Get("name"); nm && s.component_id.rfind("file:", 0) == 0) {
      std::string ver = c.Get("version") ? c.Get("version")->scalar : "";
      s.component_name = nm->scalar + (ver.empty() ? "" : ":" + ver);
    }
    return true;
  }

  struct Binding {
    std::string kind;  // parent_input | parent_output | step_output
    std::string name;  // the input or output
    std::string step;
    std::string expression;
  };
  // A value that is a whole ${{...}} binding (GA's parent.*, the second preview's inputs.* and jobs.*).
  static std::optional<Binding> ParseBinding(const YNode& n) {
    if (!n.IsScalar()) return std::nullopt;
    std::string t = Trim(n.scalar);
    if (!StartsWith(t, "${{") || !EndsWith(t, "}}") || t.find("${{", 3) != std::string::npos) return std::nullopt;
    Binding b;
    b.expression = Trim(t.substr(3, t.size() - 5));
    auto parts = Split(b.expression, '.');
    size_t i = 0;
    if (!parts.empty() && parts[0] == "parent") i = 1;
    if (parts.size() == i + 2 && parts[i] == "inputs") {
      b.kind = "parent_input";
      b.name = parts[i + 1];
    } else if (parts.size() == i + 2 && parts[i] == "outputs") {
      b.kind = "parent_output";
      b.name = parts[i + 1];
    } else if (parts.size() == i + 4 && parts[i] == "jobs" && parts[i + 2] == "outputs") {
      b.kind = "step_output";
      b.step = parts[i + 1];
      b.name = parts[i + 3];
    } else {
      b.kind = "unknown";
    }
    return b;
  }

  static bool IsLiteralType(const std::string& t) {
    return t == "string" || t == "integer" || t == "number" || t == "boolean";
  }

  std::string Listing(const YNode* map, const std::string& what) {
    if (!map || !map->IsMap() || map->map.empty()) return " (the pipeline has no " + what + ")";
    std::vector<std::string> names;
    for (const auto& e : map->map) names.push_back(e.key);
    return " (its " + what + ": " + Join(names, ", ") + ")";
  }

  // One input of a step: a binding (to the pipeline's input or another step's output), a literal or data.
  void BindInput(Step& s, const std::string& name, const YNode& value, const YNode* decl, const std::string& field,
                 const YNode* parent_inputs, const std::vector<Step>& steps, const std::map<std::string, size_t>& index,
                 const std::vector<std::string>& step_names, YNode& ins) {
    std::string decl_type = decl && decl->IsMap() && decl->Get("type") ? decl->Get("type")->scalar : "";
    const YNode* bound = &value;
    std::string mode;
    if (value.IsMap() && value.Get("path") && ParseBinding(*value.Get("path"))) {
      bound = value.Get("path");
      if (const YNode* md = value.Get("mode")) mode = md->scalar;
      if (const YNode* ty = value.Get("type"); ty && decl_type.empty()) decl_type = ty->scalar;
    }
    auto b = ParseBinding(*bound);
    if (b && !StartsWith(b->expression, "parent.")) generation_p2_ = true;  // the second preview's ${{inputs.x}}
    if (!b && value.IsScalar() && value.scalar.find("${{") != std::string::npos) {
      Error(value, field + ": a binding must be the whole value, as ${{parent.inputs.<name>}} or "
                           "${{parent.jobs.<step>.outputs.<name>}}; got \"" + value.scalar + "\"");
      return;
    }
    if (!b) {  // a value of the step's own
      if (decl && !decl_type.empty() && !IsLiteralType(decl_type) && value.IsScalar()) {
        YNode in;
        in.kind = YNode::Kind::kMap;
        in.file = value.file;
        in.line = value.line;
        in.column = value.column;
        YNode t = value;
        t.scalar = decl_type;
        in.map.push_back({"type", value.line, value.column, t});
        in.map.push_back({"path", value.line, value.column, value});
        ins.map.push_back({name, value.line, value.column, in});
        return;
      }
      if (decl && IsLiteralType(decl_type) && value.IsMap()) {
        Error(value, field + ": the component declares a " + decl_type + " input; give a value, not a mapping");
        return;
      }
      YNode lit = value;
      if (decl_type == "string" && lit.IsScalar()) lit.quoted = true;
      ins.map.push_back({name, value.line, value.column, lit});
      return;
    }
    if (b->kind == "parent_input") {
      const YNode* pi = parent_inputs && parent_inputs->IsMap() ? parent_inputs->Get(b->name) : nullptr;
      if (!pi) {
        std::vector<std::string> names;
        if (parent_inputs && parent_inputs->IsMap())
          for (const auto& e : parent_inputs->map) names.push_back(e.key);
        std::string near = ClosestMatch(b->name, names);
        Error(*bound, field + ": ${{" + b->expression + "}} names no input of the pipeline" +
                          (near.empty() ? Listing(parent_inputs, "inputs") : " (did you mean '" + near + "'?)"));
        return;
      }
      bool parent_literal = pi->IsScalar() || pi->IsNull() || (pi->IsMap() && pi->Get("type") && IsLiteralType(pi->Get("type")->scalar));
      std::string parent_type = pi->IsMap() && pi->Get("type") ? pi->Get("type")->scalar : parent_literal ? "string" : "uri_folder";
      if (!decl_type.empty() && IsLiteralType(decl_type) != parent_literal)
        Error(*bound, field + ": type mismatch: the pipeline's input '" + b->name + "' is " +
                          (parent_literal ? "a value" : "data (" + parent_type + ")") + " but the component's input is " +
                          (IsLiteralType(decl_type) ? "a " + decl_type : "data (" + decl_type + ")"));
      else if (!decl_type.empty() && !parent_literal && !CompatibleData(parent_type, decl_type))
        Error(*bound, field + ": type mismatch: the pipeline's input '" + b->name + "' is " + parent_type +
                          " but the component's input is " + decl_type);
      YNode copy = *pi;
      if (copy.IsMap() && !mode.empty())
        for (auto& x : copy.map)
          if (x.key == "mode") x.value.scalar = mode;
      if (parent_literal && copy.IsMap() && copy.Get("default")) copy = *copy.Get("default");
      ins.map.push_back({name, value.line, value.column, copy});
      return;
    }
    if (b->kind == "step_output") {
      auto it = index.find(b->step);
      if (it == index.end()) {
        std::string near = ClosestMatch(b->step, step_names);
        Error(*bound, field + ": ${{" + b->expression + "}} names no step" +
                          (near.empty() ? " (the steps: " + Join(step_names, ", ") + ")" : " (did you mean '" + near + "'?)"));
        return;
      }
      if (b->step == s.name) {
        Error(*bound, field + ": the steps form a cycle: " + s.name + " -> " + s.name + " (a step cannot read its own outputs)");
        return;
      }
      const Step& from = steps[it->second];
      auto o = from.outputs.find(b->name);
      if (o == from.outputs.end()) {
        std::vector<std::string> names;
        for (const auto& [k, _] : from.outputs)
          if (k != "default") names.push_back(k);
        std::string near = ClosestMatch(b->name, names);
        Error(*bound, field + ": ${{" + b->expression + "}}: step '" + b->step + "' has no output '" + b->name + "'" +
                          (near.empty() ? " (its outputs: " + Join(names, ", ") + ")" : " (did you mean '" + near + "'?)"));
        return;
      }
      if (!decl_type.empty() && (IsLiteralType(decl_type) || !CompatibleData(o->second, decl_type))) {
        Error(*bound, field + ": type mismatch: jobs." + b->step + ".outputs." + b->name + " is " + o->second +
                          " but the input is " + decl_type);
        return;
      }
      s.bindings[name] = {b->step, b->name};
      s.binding_nodes[name] = bound;
      // Where it will be is known once the step has run: a job-output path the pipeline fills in.
      YNode in;
      in.kind = YNode::Kind::kMap;
      in.file = bound->file;
      in.line = bound->line;
      in.column = bound->column;
      auto scalar = [&](const std::string& v) {
        YNode x = *bound;
        x.kind = YNode::Kind::kScalar;
        x.scalar = v;
        x.quoted = true;
        return x;
      };
      in.map.push_back({"type", bound->line, bound->column, scalar(decl_type.empty() ? o->second : decl_type)});
      in.map.push_back({"path", bound->line, bound->column, scalar("azureml://jobs/" + b->step + "/outputs/" + b->name)});
      if (!mode.empty()) in.map.push_back({"mode", bound->line, bound->column, scalar(mode)});
      ins.map.push_back({name, value.line, value.column, in});
      return;
    }
    Error(*bound, field + ": ${{" + b->expression + "}} is not an input binding (use ${{parent.inputs.<name>}} or "
                          "${{parent.jobs.<step>.outputs.<name>}})");
  }

  static bool CompatibleData(const std::string& produced, const std::string& wanted) {
    if (produced == wanted) return true;
    // A folder may hold an MLTable or a model; a file is not a folder.
    if (produced == "uri_folder") return wanted == "mltable" || wanted == "mlflow_model" || wanted == "custom_model" || wanted == "triton_model";
    if (wanted == "uri_folder") return produced != "uri_file";
    return false;
  }

  static bool IsValidStepName(const std::string& s) {
    if (s.empty() || s.size() > 100 || !isalpha(static_cast<unsigned char>(s[0]))) return false;
    return std::all_of(s.begin(), s.end(), [](char c) { return isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-'; });
  }

  static std::string Describe(const YNode& n) { return n.IsScalar() ? "\"" + n.scalar + "\"" : n.TypeName(); }

 private:
  void Error(const YNode& at, const std::string& msg) { d_.Error(at.file, at.line, at.column, msg); }
  void Warning(const YNode& at, const std::string& msg) { d_.Warning(at.file, at.line, at.column, msg); }
  void ErrorAtKey(const YEntry& e, const YNode& parent, const std::string& msg) {
    d_.Error(parent.file, e.line, e.column, msg);
  }

  void CheckKeys(const YNode& map, const std::vector<std::string>& allowed, const std::string& prefix) {
    for (const auto& e : map.map) {
      if (std::find(allowed.begin(), allowed.end(), e.key) != allowed.end()) continue;
      std::string msg = "unknown key '" + prefix + e.key + "'";
      std::string near = ClosestMatch(e.key, allowed);
      if (!near.empty()) msg += " (did you mean '" + prefix + near + "'?)";
      d_.Error(map.file, e.line, e.column, msg);
    }
  }

  std::string Str(const YNode& n, const std::string& field) {
    if (n.IsScalar()) return n.scalar;
    if (n.IsNull()) return "";
    Error(n, field + ": expected a string, got " + n.TypeName());
    return "";
  }

  std::map<std::string, std::string> StringMap(const YNode& n, const std::string& field, bool allow_null) {
    std::map<std::string, std::string> out;
    if (n.IsNull()) return out;
    if (!n.IsMap()) {
      Error(n, field + ": expected a mapping of names to strings, got " + n.TypeName());
      return out;
    }
    for (const auto& e : n.map) {
      if (e.value.IsScalar()) {
        out[e.key] = e.value.scalar;
      } else if (e.value.IsNull() && allow_null) {
        out[e.key] = "";
      } else {
        Error(e.value, field + "." + e.key + ": expected a string, got " + e.value.TypeName());
      }
    }
    return out;
  }

  nlohmann::json ToJsonValue(const YNode& n) { return YamlToJson(n); }

  std::optional<long long> PositiveInt(const YNode& n, const std::string& field) {
    auto v = AsInt(n);
    if (!v && n.IsScalar() && !n.quoted) {
      // 2.0 is an integer in spirit
      if (auto x = AsNumber(n); x && *x == static_cast<long long>(*x)) v = static_cast<long long>(*x);
    }
    if (!v || *v <= 0) {
      Error(n, field + ": expected a positive integer, got " +
                   (n.IsScalar() ? "\"" + n.scalar + "\"" : n.TypeName()));
      return std::nullopt;
    }
    return v;
  }

  std::optional<long long> NonNegativeInt(const YNode& n, const std::string& field) {
    auto v = AsInt(n);
    if (!v || *v < 0) {
      Error(n, field + ": expected an integer of 0 or more, got " +
                   (n.IsScalar() ? "\"" + n.scalar + "\"" : n.TypeName()));
      return std::nullopt;
    }
    return v;
  }

  // A local path as written in the file, made absolute against the file's folder.
  // Relative to the folder of the file `at` came from (a pipeline's step may mix its component's keys
  // with the pipeline file's).
  std::string LocalPath(std::string p, const YNode* at = nullptr) {
    if (StartsWith(p, "file:")) p = p.substr(5);
    if (at)
      if (auto it = base_of_file_.find(at->file); it != base_of_file_.end()) return AbsPath(p, it->second);
    return AbsPath(p, base_dir_);
  }

  void CheckLocalFolder(const YNode& at, const std::string& field, const std::string& abs) {
    if (!options_.check_local_paths) return;
    struct stat st;
    if (stat(abs.c_str(), &st) != 0) {
      if (errno == EACCES)
        Error(at, field + ": '" + at.scalar + "' cannot be reached: permission denied (" + abs + ")");
      else
        Error(at, field + ": '" + at.scalar + "' does not exist (looked for " + abs + ")");
    } else if (!S_ISDIR(st.st_mode)) {
      Error(at, field + ": '" + at.scalar + "' is not a folder (" + abs + ")");
    } else if (access(abs.c_str(), R_OK | X_OK) != 0) {
      Error(at, field + ": folder '" + at.scalar + "' is not readable (" + abs + ")");
    }
  }

  void CheckLocalPath(const YNode& at, const std::string& field, const std::string& abs) {
    if (!options_.check_local_paths) return;
    if (access(abs.c_str(), R_OK) != 0)
      Error(at, field + ": '" + at.scalar + "' does not exist or is not readable (looked for " + abs + ")");
  }

  void ParseCode(const YNode& root, JobSpec& spec) {
    const YNode* n = root.Get("code");
    if (!n || n->IsNull()) return;
    const YNode* path = n;
    if (n->IsMap()) {  // preview: {local_path: src}
      generation_p2_ = true;
      CheckKeys(*n, {"local_path", "path"}, "code.");
      path = n->Get("local_path");
      if (!path) path = n->Get("path");
      if (!path) {
        Error(*n, "code: missing required key 'local_path'");
        return;
      }
    }
    if (!path->IsScalar()) {
      Error(*path, "code: expected a path to a local folder, got " + path->TypeName());
      return;
    }
    std::string p = path->scalar;
    if (StartsWith(p, "azureml:snapshots/")) {
      // A code snapshot already in the workspace: what `job show` and `--save-as` write for a job's code.
      std::string sha = p.substr(18);
      bool hex = sha.size() == 64 && std::all_of(sha.begin(), sha.end(), [](char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
      });
      if (!hex) Error(*path, "code: expected azureml:snapshots/<sha256 of 64 hex digits>, got '" + p + "'");
      else spec.code_snapshot = sha;
      return;
    }
    if (StartsWith(p, "git+") || StartsWith(p, "azureml:") || StartsWith(p, "http")) {
      Error(*path, "code: '" + p + "' is not supported; give a local folder");
      return;
    }
    spec.code = LocalPath(p, path);
    CheckLocalFolder(*path, "code", spec.code);
  }

  void ParseCompute(const YNode& root, JobSpec& spec) {
    const YNode* n = root.Get("compute");
    if (!n || n->IsNull()) return;
    const YNode* target = n;
    if (n->IsMap()) {  // preview 1: {target, instance_count, ...}
      generation_p1_ = true;
      CheckKeys(*n, {"target", "instance_count", "instance_type", "location", "properties"}, "compute.");
      target = n->Get("target");
      if (const YNode* ic = n->Get("instance_count"))
        if (auto v = PositiveInt(*ic, "compute.instance_count")) spec.instance_count = static_cast<int>(*v);
      if (const YNode* it = n->Get("instance_type")) spec.instance_type = Str(*it, "compute.instance_type");
      if (!target) return;
    }
    if (!target->IsScalar()) {
      Error(*target, "compute: expected a compute name such as 'azureml:cpu-cluster' or 'local', got " +
                         target->TypeName());
      return;
    }
    std::string c = Trim(target->scalar);
    if (StartsWith(c, "azureml:")) {
      c = c.substr(8);
      // The ARM id form ends in /computes/<name>.
      size_t slash = c.rfind("/computes/");
      if (slash != std::string::npos) c = c.substr(slash + 10);
    }
    if (c == "serverless") c = "";
    if (!c.empty() && !IsValidName(c)) {
      Error(*target, "compute: '" + target->scalar + "' is not a valid compute name");
      return;
    }
    spec.compute = c;
  }

  void ParseResources(const YNode& root, JobSpec& spec) {
    const YNode* n = root.Get("resources");
    if (!n || n->IsNull()) return;
    if (!n->IsMap()) {
      Error(*n, "resources: expected a mapping, got " + n->TypeName());
      return;
    }
    CheckKeys(*n, {"instance_count", "instance_type", "shm_size", "docker_args", "locations",
                   "max_instance_count", "properties"}, "resources.");
    if (const YNode* ic = n->Get("instance_count"))
      if (auto v = PositiveInt(*ic, "resources.instance_count")) spec.instance_count = static_cast<int>(*v);
    if (const YNode* it = n->Get("instance_type")) spec.instance_type = Str(*it, "resources.instance_type");
    if (const YNode* s = n->Get("shm_size")) {
      spec.shm_size = Str(*s, "resources.shm_size");
      static const std::string kUnits = "bkmgBKMG";
      bool ok = spec.shm_size.size() >= 2 && kUnits.find(spec.shm_size.back()) != std::string::npos &&
                std::all_of(spec.shm_size.begin(), spec.shm_size.end() - 1, ::isdigit);
      if (!ok) Error(*s, "resources.shm_size: expected <number><unit> with unit b, k, m or g (e.g. 2g), got \"" +
                             spec.shm_size + "\"");
    }
    if (const YNode* p = n->Get("properties")) {
      if (!p->IsMap()) Error(*p, "resources.properties: expected a mapping, got " + p->TypeName());
      else spec.resources_properties = ToJsonValue(*p);
    }
  }

  void ParseEnvironment(const YNode& root, JobSpec& spec) {
    const YNode* n = root.Get("environment");
    if (!n || n->IsNull()) {
      if (in_step_) d_.Error(root.file, root.line, root.column, "missing required key 'environment' (give it to the step, its component, or settings.environment)");
      else d_.Error(root.file, root.line ? 1 : 0, 1, "missing required key 'environment'");
      return;
    }
    EnvironmentSpec& env = spec.environment;
    if (n->IsScalar()) {
      std::string v = Trim(n->scalar);
      if (StartsWith(v, "azureml:")) {
        env.reference = v;
      } else if (StartsWith(v, "file:")) {
        ParseEnvironmentFile(*n, v, spec);
      } else {
        Error(*n, "environment: expected 'azureml:<name>:<version>', 'azureml:<name>@latest', a registry "
                  "URI or an inline environment, got \"" + v + "\"");
      }
      return;
    }
    ParseEnvironmentMap(n, spec);
  }

  // `environment: file:./env.yml`: an environment YAML beside the job, its paths relative to itself.
  void ParseEnvironmentFile(const YNode& at, const std::string& ref, JobSpec& spec) {
    std::string path = LocalPath(ref, &at);
    if (!options_.check_local_paths && !PathExists(path)) return;
    auto text = ReadFile(path, YamlLimits().max_bytes);
    if (!text.ok()) {
      Error(at, "environment: cannot read '" + ref + "' (" + path + ")");
      return;
    }
    auto root = ParseYaml(*text, path, d_);
    if (!root) return;
    if (root->IsMap() && (root->Get("channels") || root->Get("dependencies"))) {
      Error(at, "environment: '" + ref + "' is a conda file, not an environment specification; "
                "use environment: {image: ..., conda_file: " + ref.substr(5) + "}");
      return;
    }
    std::string saved = base_dir_;
    base_dir_ = Dirname(path);
    ParseEnvironmentMap(&*root, spec, true);
    base_dir_ = saved;
  }

  void ParseEnvironmentMap(const YNode* n, JobSpec& spec, bool from_file = false) {
    EnvironmentSpec& env = spec.environment;
    if (!n->IsMap()) {
      Error(*n, "environment: expected a reference or a mapping, got " + n->TypeName());
      return;
    }
    CheckKeys(*n, {"image", "conda_file", "build", "docker", "name", "version", "os_type", "description",
                   "tags", "inference_config", "datastore", "environment_variables", "$schema"},
              "environment.");
    for (const char* k : {"name", "version"}) {
      if (const YNode* x = n->Get(k); x && !from_file)
        Warning(*x, std::string("environment.") + k +
                        ": an inline environment is anonymous; the name/version is ignored");
    }
    const YNode* image = n->Get("image");
    const YNode* build = n->Get("build");
    if (const YNode* docker = n->Get("docker")) {  // preview 1
      generation_p1_ = true;
      if (!docker->IsMap()) {
        Error(*docker, "environment.docker: expected a mapping, got " + docker->TypeName());
      } else {
        CheckKeys(*docker, {"image", "build"}, "environment.docker.");
        if (!image) image = docker->Get("image");
        if (!build) build = docker->Get("build");
      }
    }
    if (image && build) {
      Error(*build, "environment: give either 'image' or 'build', not both");
    } else if (!image && !build) {
      Error(*n, "environment: an inline environment needs 'image' or 'build'");
    }
    if (image) {
      env.image = Trim(Str(*image, "environment.image"));
      if (env.image.empty()) Error(*image, "environment.image: must not be empty");
    }
    if (build) {
      if (!build->IsMap()) {
        Error(*build, "environment.build: expected a mapping with 'path', got " + build->TypeName());
      } else {
        CheckKeys(*build, {"path", "local_path", "dockerfile_path", "dockerfile"}, "environment.build.");
        const YNode* path = build->Get("path");
        if (!path) path = build->Get("local_path");
        if (const YNode* df = build->Get("dockerfile")) {  // preview 1: dockerfile: file:Dockerfile
          std::string f = LocalPath(Str(*df, "environment.build.dockerfile"), df);
          env.build_path = Dirname(f);
          env.dockerfile_path = Basename(f);
          CheckLocalPath(*df, "environment.build.dockerfile", f);
        } else if (!path) {
          Error(*build, "environment.build: missing required key 'path'");
        }
        if (path) {
          std::string p = Str(*path, "environment.build.path");
          if (StartsWith(p, "http://") || StartsWith(p, "https://")) {
            env.build_path = p;
          } else {
            env.build_path = LocalPath(p, path);
            CheckLocalFolder(*path, "environment.build.path", env.build_path);
          }
          env.dockerfile_path = "Dockerfile";
          if (const YNode* dfp = build->Get("dockerfile_path"))
            env.dockerfile_path = Str(*dfp, "environment.build.dockerfile_path");
        }
      }
    }
    if (const YNode* conda = n->Get("conda_file")) {
      if (!image && !build) {
        // already reported
      } else if (!image && !n->Get("docker")) {  // preview 1 built a Dockerfile and applied conda on top
        Error(*conda, "environment.conda_file: needs 'image' (a conda file is applied on top of an image)");
      }
      if (conda->IsScalar()) {
        env.conda_file = LocalPath(conda->scalar, conda);
        CheckLocalPath(*conda, "environment.conda_file", env.conda_file);
      } else if (!conda->IsMap()) {
        Error(*conda, "environment.conda_file: expected a path or an inline conda specification");
      }
    }
    if (const YNode* os = n->Get("os_type")) {
      std::string v = ToLower(Str(*os, "environment.os_type"));
      if (v != "linux" && v != "windows")
        Error(*os, "environment.os_type: expected 'linux' or 'windows', got \"" + os->scalar + "\"");
      else if (v == "windows")
        Error(*os, "environment.os_type: windows environments cannot run on this Linux workspace");
    }
  }

  void ParseDistribution(const YNode& root, JobSpec& spec) {
    const YNode* n = root.Get("distribution");
    if (!n || n->IsNull()) return;
    if (!n->IsMap()) {
      Error(*n, "distribution: expected a mapping with 'type', got " + n->TypeName());
      return;
    }
    const YNode* t = n->Get("type");
    if (!t) {
      Error(*n, "distribution: missing required key 'type' (mpi, pytorch, tensorflow or ray)");
      return;
    }
    std::string type = ToLower(Str(*t, "distribution.type"));
    nlohmann::json d = {{"type", type}};
    if (type == "pytorch" || type == "mpi") {
      CheckKeys(*n, {"type", "process_count_per_instance", "process_count"}, "distribution.");
      // Left out, it stays out: on a GPU size it is then the instance's GPU count (the scheduler), else 1.
      long long per = 0;
      if (const YNode* p = n->Get("process_count_per_instance")) {
        if (auto v = PositiveInt(*p, "distribution.process_count_per_instance")) per = *v;
      } else if (const YNode* p1 = n->Get("process_count")) {
        // Preview 1 counted processes in total.
        generation_p1_ = true;
        if (auto v = PositiveInt(*p1, "distribution.process_count")) {
          if (*v % spec.instance_count != 0) {
            Error(*p1, "distribution.process_count: " + std::to_string(*v) +
                           " processes cannot be split evenly over " +
                           std::to_string(spec.instance_count) + " instances");
          }
          per = std::max<long long>(1, *v / spec.instance_count);
        }
      }
      if (per > 0) d["process_count_per_instance"] = per;
    } else if (type == "tensorflow") {
      CheckKeys(*n, {"type", "worker_count", "parameter_server_count"}, "distribution.");
      long long workers = spec.instance_count, ps = 0;
      if (const YNode* w = n->Get("worker_count"))
        if (auto v = PositiveInt(*w, "distribution.worker_count")) workers = *v;
      if (const YNode* p = n->Get("parameter_server_count")) {
        auto v = AsInt(*p);
        if (!v || *v < 0) Error(*p, "distribution.parameter_server_count: expected an integer >= 0");
        else ps = *v;
      }
      d["worker_count"] = workers;
      d["parameter_server_count"] = ps;
    } else if (type == "ray") {
      CheckKeys(*n, {"type", "address", "port", "dashboard_port", "include_dashboard",
                     "head_node_additional_args", "worker_node_additional_args"}, "distribution.");
      d = ToJsonValue(*n);
    } else {
      Error(*t, "distribution.type: unknown type '" + t->scalar +
                    "' (expected mpi, pytorch, tensorflow or ray)");
      return;
    }
    spec.distribution = d;
  }

  void ParseLimits(const YNode& root, JobSpec& spec) {
    const YNode* n = root.Get("limits");
    if (!n || n->IsNull()) return;
    if (!n->IsMap()) {
      Error(*n, "limits: expected a mapping, got " + n->TypeName());
      return;
    }
    CheckKeys(*n, {"timeout"}, "limits.");
    if (const YNode* t = n->Get("timeout"))
      if (auto v = PositiveInt(*t, "limits.timeout")) spec.timeout_seconds = *v;
  }

  void ParseInputs(const YNode& root, JobSpec& spec) {
    const YNode* n = root.Get("inputs");
    if (!n || n->IsNull()) return;
    if (!n->IsMap()) {
      Error(*n, "inputs: expected a mapping of input names to values, got " + n->TypeName());
      return;
    }
    for (const auto& e : n->map) {
      if (!IsValidInputName(e.key)) {
        ErrorAtKey(e, *n, "inputs." + e.key + ": not a valid input name (letters, digits and '_')");
        continue;
      }
      InputSpec in;
      const YNode& v = e.value;
      std::string field = "inputs." + e.key;
      if (v.IsScalar() || v.IsNull()) {
        in.literal = true;
        in.value = v.scalar;
        in.literal_type = v.quoted ? "string" : AsBool(v) ? "boolean" : AsInt(v) ? "integer"
                                              : AsNumber(v) ? "number" : "string";
        if (v.IsNull()) {
          in.optional = true;
          in.literal_type = "string";
        }
        spec.inputs[e.key] = in;
        continue;
      }
      if (!v.IsMap()) {
        Error(v, field + ": expected a literal value or an input mapping, got " + v.TypeName());
        continue;
      }
      const YNode* path = v.Get("path");
      in.type = "uri_folder";
      in.mode = "ro_mount";
      if (const YNode* data = v.Get("data")) {  // preview 1
        generation_p1_ = true;
        CheckKeys(v, {"data", "mode"}, field + ".");
        if (data->IsScalar()) {
          path = data;
        } else if (data->IsMap()) {
          CheckKeys(*data, {"path", "local_path", "datastore"}, field + ".data.");
          path = data->Get("path");
          if (!path) path = data->Get("local_path");
          if (!path) Error(*data, field + ".data: missing required key 'path' or 'local_path'");
        } else {
          Error(*data, field + ".data: expected a path or a mapping");
        }
        if (path && path->IsScalar()) in.type = GuessType(path->scalar);
      } else if (v.Get("file") || v.Get("folder") || v.Get("dataset")) {  // preview 2
        generation_p2_ = true;
        CheckKeys(v, {"file", "folder", "dataset", "mode"}, field + ".");
        if ((path = v.Get("file"))) in.type = "uri_file";
        else if ((path = v.Get("folder"))) in.type = "uri_folder";
        else {
          path = v.Get("dataset");
          if (path->IsMap()) {
            CheckKeys(*path, {"local_path", "path"}, field + ".dataset.");
            const YNode* lp = path->Get("local_path");
            if (!lp) lp = path->Get("path");
            if (!lp) {
              Error(*path, field + ".dataset: missing required key 'local_path'");
              continue;
            }
            path = lp;
          }
          in.type = "uri_folder";
        }
      } else {
        CheckKeys(v, {"type", "path", "mode", "datastore", "description", "optional", "default", "min",
                      "max", "enum"}, field + ".");
        if (const YNode* t = v.Get("type")) {
          std::string type = Str(*t, field + ".type");
          static const std::vector<std::string> kLiteralTypes = {"string", "integer", "number", "boolean"};
          if (std::find(kLiteralTypes.begin(), kLiteralTypes.end(), type) != kLiteralTypes.end()) {
            // A typed literal: {type: integer, default: 3}
            in.literal = true;
            in.literal_type = type;
            if (const YNode* def = v.Get("default")) in.value = def->scalar;
            if (const YNode* o = v.Get("optional")) in.optional = AsBool(*o).value_or(false);
            spec.inputs[e.key] = in;
            continue;
          }
          if (std::find(kInputTypes.begin(), kInputTypes.end(), type) == kInputTypes.end()) {
            std::string near = ClosestMatch(type, kInputTypes);
            Error(*t, field + ".type: unknown input type '" + type + "'" +
                          (near.empty() ? " (expected uri_file, uri_folder, mltable, mlflow_model, "
                                          "custom_model or triton_model)"
                                        : " (did you mean '" + near + "'?)"));
          }
          in.type = type;
        }
        if (const YNode* o = v.Get("optional")) in.optional = AsBool(*o).value_or(false);
        if (const YNode* dsc = v.Get("description")) in.description = Str(*dsc, field + ".description");
        if (!path && !in.optional) {
          Error(v, field + ": missing required key 'path'");
          continue;
        }
      }
      if (const YNode* m = v.Get("mode")) {
        std::string mode = Str(*m, field + ".mode");
        if (mode == "mount") mode = "ro_mount";  // preview 1
        if (mode == "rw_mount") mode = "download";  // preview 2 allowed writable inputs: a private copy
        if (std::find(kInputModes.begin(), kInputModes.end(), mode) == kInputModes.end()) {
          Error(*m, field + ".mode: unknown mode '" + m->scalar +
                        "' (expected ro_mount, download, direct, eval_mount or eval_download)");
        } else if ((mode == "eval_mount" || mode == "eval_download") && in.type != "mltable") {
          Error(*m, field + ".mode: '" + mode + "' is only for mltable inputs");
        }
        in.mode = mode;
      }
      if (path) {
        if (!path->IsScalar()) {
          Error(*path, field + ".path: expected a path or URI, got " + path->TypeName());
          continue;
        }
        in.path = Trim(path->scalar);
        in.path_kind = ClassifyPath(in.path);
        if (in.path_kind == PathKind::kLocal) {
          in.path = LocalPath(in.path, path);
          CheckLocalPath(*path, field + ".path", in.path);
          if (options_.check_local_paths && in.type == "uri_file" && IsDir(in.path))
            Error(*path, field + ".path: '" + path->scalar + "' is a folder but the input's type is uri_file");
        }
      }
      spec.inputs[e.key] = in;
    }
  }

  static bool IsValidInputName(const std::string& s) {
    if (s.empty() || !(isalpha(static_cast<unsigned char>(s[0])) || s[0] == '_')) return false;
    return std::all_of(s.begin(), s.end(), [](char c) { return isalnum(static_cast<unsigned char>(c)) || c == '_'; });
  }

  static std::string GuessType(const std::string& path) {
    // Preview 1 had no type: a path ending in '/' or without an extension is a folder.
    std::string base = Basename(path);
    if (EndsWith(path, "/") || base.find('.') == std::string::npos) return "uri_folder";
    return "uri_file";
  }

  void ParseOutputs(const YNode& root, JobSpec& spec) {
    const YNode* n = root.Get("outputs");
    if (!n || n->IsNull()) return;
    if (!n->IsMap()) {
      Error(*n, "outputs: expected a mapping of output names to specifications, got " + n->TypeName());
      return;
    }
    for (const auto& e : n->map) {
      std::string field = "outputs." + e.key;
      if (!IsValidInputName(e.key)) {
        ErrorAtKey(e, *n, field + ": not a valid output name (letters, digits and '_')");
        continue;
      }
      if (e.key == "default") {
        const YNode* p = e.value.IsMap() ? e.value.Get("path") : nullptr;
        if (p && StartsWith(p->scalar, "azureml://datastores/workspaceartifactstore/")) continue;  // read-only
        ErrorAtKey(e, *n, field + ": 'default' is reserved for the job's artifacts (./outputs and logs)");
        continue;
      }
      OutputSpec out;
      const YNode& v = e.value;
      if (v.IsMap()) {
        CheckKeys(v, {"type", "mode", "path", "name", "version", "description", "folder", "file"}, field + ".");
        if (const YNode* t = v.Get("type")) {
          out.type = Str(*t, field + ".type");
          if (std::find(kInputTypes.begin(), kInputTypes.end(), out.type) == kInputTypes.end())
            Error(*t, field + ".type: unknown output type '" + out.type + "'");
        }
        if (const YNode* m = v.Get("mode")) {
          out.mode = Str(*m, field + ".mode");
          if (std::find(kOutputModes.begin(), kOutputModes.end(), out.mode) == kOutputModes.end())
            Error(*m, field + ".mode: unknown mode '" + out.mode + "' (expected rw_mount or upload)");
          if (out.mode == "mount") out.mode = "rw_mount";
        }
        const YNode* p = v.Get("path");
        if (!p) p = v.Get("folder");
        if (p) {
          out.path = Str(*p, field + ".path");
          if (!StartsWith(out.path, "azureml://datastores/"))
            Error(*p, field + ".path: an output path must be a datastore URI "
                          "(azureml://datastores/<name>/paths/<path>)");
        }
        if (const YNode* nm = v.Get("name")) out.asset_name = Str(*nm, field + ".name");
        if (const YNode* ver = v.Get("version")) out.asset_version = Str(*ver, field + ".version");
        if (const YNode* dsc = v.Get("description")) out.description = Str(*dsc, field + ".description");
      } else if (!v.IsNull()) {
        Error(v, field + ": expected a mapping or nothing, got " + v.TypeName());
        continue;
      }
      spec.outputs[e.key] = out;
    }
  }

  void ParseCommand(const YNode& root, JobSpec& spec) {
    const YNode* n = root.Get("command");
    if (!n || n->IsNull()) {
      d_.Error(root.file, in_step_ ? root.line : 1, in_step_ ? root.column : 1, "missing required key 'command'");
      return;
    }
    if (!n->IsScalar()) {
      Error(*n, "command: expected a string, got " + n->TypeName());
      return;
    }
    int legacy = 0;
    spec.command = NormalizeLegacyPlaceholders(n->scalar, &legacy);
    if (legacy) generation_p1_ = true;
    if (Trim(spec.command).empty()) Error(*n, "command: must not be empty");
    for (const auto& p : FindPlaceholders(spec.command)) {
      if (p.context == "inputs") {
        if (!spec.inputs.count(p.name)) {
          std::vector<std::string> names;
          for (const auto& [k, _] : spec.inputs) names.push_back(k);
          std::string near = ClosestMatch(p.name, names);
          Error(*n, "command: ${{" + p.expression + "}} names no input" +
                        (near.empty() ? (names.empty() ? " (the job has no inputs)"
                                                       : " (inputs are: " + Join(names, ", ") + ")")
                                      : " (did you mean 'inputs." + near + "'?)"));
        }
      } else if (p.context == "outputs") {
        if (!spec.outputs.count(p.name)) {
          std::vector<std::string> names;
          for (const auto& [k, _] : spec.outputs) names.push_back(k);
          std::string near = ClosestMatch(p.name, names);
          Error(*n, "command: ${{" + p.expression + "}} names no output" +
                        (near.empty() ? (names.empty() ? " (the job has no outputs)"
                                                       : " (outputs are: " + Join(names, ", ") + ")")
                                      : " (did you mean 'outputs." + near + "'?)"));
        }
      } else if (p.context == "search_space") {
        if (!in_sweep_) {
          Error(*n, "command: ${{" + p.expression + "}} is only allowed in a sweep job's trial");
        } else if (std::find(search_space_names_.begin(), search_space_names_.end(), p.name) == search_space_names_.end()) {
          std::string near = ClosestMatch(p.name, search_space_names_);
          Error(*n, "command: ${{" + p.expression + "}} names no hyperparameter" +
                        (near.empty() ? " (search_space has: " + Join(search_space_names_, ", ") + ")"
                                      : " (did you mean 'search_space." + near + "'?)"));
        }
      } else {
        Error(*n, "command: unknown expression ${{" + p.expression +
                      "}} (a command job may use ${{inputs.<name>}} and ${{outputs.<name>}})");
      }
    }
    // A missing optional input outside $[[ ]] would leave a hole in the command.
    auto check = Substitute(spec.command, [&](const std::string& ctx, const std::string& name)
                                              -> std::optional<std::string> {
      if (ctx == "inputs") {
        auto it = spec.inputs.find(name);
        if (it == spec.inputs.end()) return "x";
        if (it->second.optional && it->second.value.empty() && it->second.path.empty()) return std::nullopt;
      }
      return "x";
    });
    if (!check.ok())
      Error(*n, "command: " + check.status().message() +
                    "; wrap the optional part in $[[ ... ]] so it is dropped when the input is absent");
  }

  std::string base_dir_;
  const ParseOptions& options_;
  Diagnostics& d_;
  bool generation_p1_ = false;
  bool generation_p2_ = false;
  bool in_sweep_ = false;
  bool in_step_ = false;  // reading a pipeline's step
  std::vector<std::string> search_space_names_;
  std::deque<YNode> components_;                      // component files read for steps (nodes point into them)
  std::map<std::string, std::string> base_of_file_;   // a component file -> its folder
};

}  // namespace

const char* PathKindName(PathKind k) {
  switch (k) {
    case PathKind::kLocal: return "local";
    case PathKind::kHttp: return "http";
    case PathKind::kAsset: return "asset";
    case PathKind::kDatastore: return "datastore";
    case PathKind::kJobOutput: return "job_output";
    case PathKind::kRuns: return "runs";
    case PathKind::kCloud: return "cloud";
    case PathKind::kNone: return "none";
  }
  return "none";
}

PathKind ClassifyPath(const std::string& p) {
  if (StartsWith(p, "http://") || StartsWith(p, "https://")) return PathKind::kHttp;
  if (StartsWith(p, "azureml://datastores/")) return PathKind::kDatastore;
  if (StartsWith(p, "azureml://jobs/")) return PathKind::kJobOutput;
  if (StartsWith(p, "azureml:")) return PathKind::kAsset;
  if (StartsWith(p, "runs:/")) return PathKind::kRuns;
  for (const char* s : {"wasb://", "wasbs://", "abfs://", "abfss://", "adl://", "s3://", "gs://"})
    if (StartsWith(p, s)) return PathKind::kCloud;
  return PathKind::kLocal;
}

std::optional<EnvironmentSpec> ParseEnvironmentNode(const YNode& root, const std::string& base_dir,
                                                    Diagnostics& diags) {
  ParseOptions options;
  JobParser parser(base_dir, options, diags);
  JobSpec spec;
  parser.ParseEnvironmentDocument(root, spec);
  if (diags.HasErrors()) return std::nullopt;
  return spec.environment;
}

namespace {
// The YAML root with the --set overrides applied; nullopt (and errors said) when it does not parse.
std::optional<YNode> ReadRoot(const std::string& text, const std::string& file, const ParseOptions& options,
                              Diagnostics& diags) {
  auto root = ParseYaml(text, file, diags);
  if (root)
    for (const auto& o : options.overrides) ApplyOverride(*root, o, diags);
  return root;
}
}  // namespace

std::optional<ComponentInfo> ParseComponentText(const std::string& text, const std::string& file,
                                               const std::string& base_dir, const ParseOptions& options,
                                               Diagnostics& diags) {
  auto root = ReadRoot(text, file, options, diags);
  if (!root) return std::nullopt;
  JobParser parser(base_dir, options, diags);
  return parser.ParseComponent(*root);
}

std::optional<JobSpec> ParseJobText(const std::string& text, const std::string& file,
                                    const std::string& base_dir, const ParseOptions& options,
                                    Diagnostics& diags) {
  auto root = ReadRoot(text, file, options, diags);
  if (!root) return std::nullopt;
  JobParser parser(base_dir, options, diags);
  return parser.Parse(*root);
}

std::optional<JobSpec> ParseJobFile(const std::string& path, const ParseOptions& options,
                                    Diagnostics& diags) {
  if (IsDir(path)) {
    diags.Error(path, 0, 0, "is a folder, not a job file");
    return std::nullopt;
  }
  struct stat st;
  if (stat(path.c_str(), &st) == 0 && static_cast<size_t>(st.st_size) > YamlLimits().max_bytes) {
    diags.Error(path, 0, 0, "file is " + std::to_string(st.st_size) + " bytes; a job file may be at most " +
                                std::to_string(YamlLimits().max_bytes) + " bytes");
    return std::nullopt;
  }
  auto text = ReadFile(path, YamlLimits().max_bytes);
  if (!text.ok()) {
    diags.Error(path, 0, 0, text.status().code() == Code::kNotFound ? "no such file" : text.status().message());
    return std::nullopt;
  }
  return ParseJobText(*text, path, Dirname(AbsPath(path)), options, diags);
}

std::string EnvironmentSpec::Describe() const {
  if (!reference.empty()) return "registered environment " + reference;
  if (!image.empty()) return "image " + image + (conda_file.empty() ? "" : " with conda file " + conda_file);
  if (!build_path.empty()) return "build context " + build_path;
  return "none";
}

}  // namespace cairn::spec
