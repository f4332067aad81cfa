// Parses a command job in any of the three syntax generations into a JobSpec, collecting every
// diagnostic on the way: the fields every job has, command jobs and sweeps. Pipelines and
// components are pipeline_parser.cc's; the class they share is job_parser_internal.h's. Over a
// thousand lines because every field of the three generations is read here, each in one place with
// its checks and its messages.
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <set>

#include "base/fs.h"
#include "base/util.h"
#include "spec/job_parser_internal.h"
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
    // read-only fields that `job show -o yaml` writes: accepted and ignored so a saved job
    // resubmits
    "status", "creation_context", "id", "log_files", "parameters",
    // and Cairn's own additions to the job object
    "status_reason", "status_history", "start_time", "end_time", "duration_seconds", "exit_code",
    "error", "is_archived", "notes"};
// A sweep job: the top level (the three generations together) and its trial.
const std::vector<std::string> kSweepTopKeys = {"$schema",
                                                "type",
                                                "name",
                                                "display_name",
                                                "experiment_name",
                                                "description",
                                                "tags",
                                                "properties",
                                                "trial",
                                                "inputs",
                                                "outputs",
                                                "compute",
                                                "sampling_algorithm",
                                                "algorithm",
                                                "search_space",
                                                "objective",
                                                "limits",
                                                "early_termination",
                                                "max_total_trials",
                                                "max_concurrent_trials",
                                                "timeout_minutes",
                                                "queue_settings",
                                                "resources",
                                                "identity",
                                                "services",
                                                "status",
                                                "creation_context",
                                                "id",
                                                "log_files",
                                                "parameters",
                                                "status_reason",
                                                "status_history",
                                                "start_time",
                                                "end_time",
                                                "duration_seconds",
                                                "exit_code",
                                                "error",
                                                "is_archived",
                                                "notes"};
const std::vector<std::string> kTrialKeys = {
    "command",        "code",   "environment", "environment_variables", "distribution", "resources",
    "queue_settings", "inputs", "compute"};
const std::vector<std::string> kSweepOnlyKeys = {
    "type",           "trial",  "sampling_algorithm", "algorithm",        "search_space",
    "objective",      "limits", "early_termination",  "max_total_trials", "max_concurrent_trials",
    "timeout_minutes"};

const std::vector<std::string> kInputTypes = {"uri_file",     "uri_folder",   "mltable",
                                              "mlflow_model", "custom_model", "triton_model"};
const std::vector<std::string> kInputModes = {"ro_mount",      "download", "direct",  "eval_mount",
                                              "eval_download", "mount",    "rw_mount"};
const std::vector<std::string> kOutputModes = {"rw_mount", "upload", "mount", "direct"};

}  // namespace

namespace detail {

std::optional<JobSpec> JobParser::Parse(YNode& root) {
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
    Error(*root.Get("type"),
          "type: unknown job type '" + type + "' (expected 'command', 'sweep' or 'pipeline')");
    return std::nullopt;
  }
  return ParseCommandJob(root);
}

// What every job has: its name (--name wins over the file's), display name, experiment,
// description, tags and properties.
void JobParser::ParseIdentity(const YNode& root, JobSpec& spec) {
  if (auto* n = root.Get("name")) spec.name = Str(*n, "name");
  if (!options_.name.empty() && !in_step_) spec.name = options_.name;
  if (!spec.name.empty() && !IsValidName(spec.name)) {
    const YNode* n = root.Get("name");
    std::string msg = "name: '" + spec.name +
                      "' is not a valid job name (letters, digits, '_' and '-', starting with a "
                      "letter or digit, at most 255 characters)";
    if (n && options_.name.empty())
      Error(*n, msg);
    else
      d_.Error("--name", 0, 0, msg);
  }
  if (auto* n = root.Get("display_name")) spec.display_name = Str(*n, "display_name");
  if (auto* n = root.Get("experiment_name")) spec.experiment_name = Str(*n, "experiment_name");
  if (auto* n = root.Get("description")) spec.description = Str(*n, "description");
  if (auto* n = root.Get("tags")) {
    spec.tags = StringMap(*n, "tags", true);
    if (spec.tags.size() > kMaxTags)
      Error(*n, "tags: at most " + std::to_string(kMaxTags) + " tags, got " +
                    std::to_string(spec.tags.size()));
  }
  if (auto* n = root.Get("properties")) {
    spec.properties = StringMap(*n, "properties", true);
    // Cairn's own settings live among the properties, so that the file stays valid for az.
    for (const char* key : {"cairn.max_retries"}) {
      auto it = spec.properties.find(key);
      if (it == spec.properties.end()) continue;
      const YNode* v = n->Get(key);
      const std::string& text = it->second;
      bool ok = !text.empty() && text.size() <= 3 &&
                text.find_first_not_of("0123456789") == std::string::npos && std::stoi(text) <= 100;
      if (!ok)
        Error(v ? *v : *n, std::string("properties.") + key +
                               ": expected a number of retries from 0 to 100, got '" +
                               text.substr(0, 40) + "'");
    }
    if (auto it = spec.properties.find("cairn.retry_exit_codes"); it != spec.properties.end()) {
      for (const auto& code : Split(it->second, ',')) {
        std::string c = Trim(code);
        if (c.empty() || c.size() > 3 || c.find_first_not_of("0123456789") != std::string::npos ||
            std::stoi(c) > 255) {
          const YNode* v = n->Get("cairn.retry_exit_codes");
          Error(v ? *v : *n,
                "properties.cairn.retry_exit_codes: expected exit codes (0-255) "
                "separated by commas, got '" +
                    it->second.substr(0, 80) + "'");
          break;
        }
      }
    }
  }
}

std::optional<JobSpec> JobParser::ParseCommandJob(YNode& root) {
  JobSpec spec;
  CheckKeys(root, kTopKeys, "");

  ParseIdentity(root, spec);
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
  ParseQueueSettings(root, spec);
  for (const char* key : {"services", "identity"}) {
    if (const YNode* n = root.Get(key)) {
      nlohmann::json j = ToJsonValue(*n);
      if (std::string(key) == "services") spec.services = j;
      if (std::string(key) == "identity") spec.identity = j;
    }
  }
  ParseCommand(root, spec);
  spec.generation = generation_p1_ ? "preview 1" : generation_p2_ ? "preview 2" : "GA";
  if (d_.HasErrors()) return std::nullopt;
  return spec;
}

// A sweep: the trial's keys and the top level's are read as one command job (the trial's command
// may use
// ${{search_space.<name>}}), and the sweep's own keys into spec.sweep.
std::optional<JobSpec> JobParser::ParseSweep(YNode& root) {
  std::vector<std::string> allowed = kSweepTopKeys;
  for (const char* k :
       {"command", "code", "environment", "environment_variables", "distribution"}) {
    allowed.push_back(k);
    for (const auto& e : root.map)
      if (e.key == k)
        ErrorAtKey(e, root, std::string(k) + ": in a sweep job this belongs under trial:");
  }
  CheckKeys(root, allowed, "");
  const YNode* trial = root.Get("trial");
  if (!trial || !trial->IsMap()) {
    if (trial)
      Error(*trial,
            "trial: expected a mapping with the trial's command, code and environment, got " +
                trial->TypeName());
    else
      d_.Error(root.file, 1, 1, "missing required key 'trial' (the command each trial runs)");
    return std::nullopt;
  }
  CheckKeys(*trial, kTrialKeys, "trial.");
  YNode merged = root;
  merged.map.clear();
  for (const auto& e : root.map)
    if (std::find(kSweepOnlyKeys.begin(), kSweepOnlyKeys.end(), e.key) == kSweepOnlyKeys.end())
      merged.map.push_back(e);
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
  if (sweep["limits"].contains("trial_timeout"))
    spec->timeout_seconds = sweep["limits"]["trial_timeout"];
  spec->sweep = sweep;
  return spec;
}

// Finds the node a "search_space.a.b" path names, for the error's place.
const YNode& JobParser::Locate(const YNode& root, const std::string& path) {
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

// sampling_algorithm (GA, preview 2) or algorithm (preview 1): a word or {type, seed, rule,
// logbase}. Returns the algorithm's type; `alg_key` is the key it was given under.
std::string JobParser::ParseSweepAlgorithm(const YNode& root, nlohmann::json& sweep,
                                           std::string& alg_key_out) {
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
    if (const YNode* t = alg->Get("type"))
      algorithm["type"] = ToLower(Str(*t, std::string(alg_key) + ".type"));
    if (const YNode* sd = alg->Get("seed")) {
      if (auto v = NonNegativeInt(*sd, std::string(alg_key) + ".seed")) algorithm["seed"] = *v;
    }
    if (const YNode* r = alg->Get("rule")) {
      std::string rule = ToLower(Str(*r, std::string(alg_key) + ".rule"));
      if (rule != "random" && rule != "sobol")
        Error(*r, std::string(alg_key) + ".rule: expected 'random' or 'sobol', got '" + rule + "'");
      algorithm["rule"] = rule;
    }
  } else if (alg && !alg->IsNull()) {
    Error(*alg,
          std::string(alg_key) + ": expected random, grid or bayesian, got " + alg->TypeName());
  }
  std::string type = algorithm["type"];
  if (type != "random" && type != "grid" && type != "bayesian")
    Error(alg ? (alg->IsMap() && alg->Get("type") ? *alg->Get("type") : *alg) : root,
          std::string(alg_key) + ": unknown sampling algorithm '" + type +
              "' (random, grid or bayesian)");
  sweep["algorithm"] = algorithm;

  alg_key_out = alg_key;
  return type;
}

// search_space: each hyperparameter's distribution, checked against the algorithm.
cairn::sweep::Space JobParser::ParseSearchSpace(const YNode& root, nlohmann::json& sweep,
                                                const std::string& type,
                                                const std::string& alg_key) {
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

  return space;
}

// objective: the metric each trial logs, and whether more is better.
void JobParser::ParseObjective(const YNode& root, nlohmann::json& sweep) {
  const YNode* obj = root.Get("objective");
  if (!obj || !obj->IsMap()) {
    if (obj)
      Error(*obj, "objective: expected {primary_metric: <name>, goal: maximize|minimize}, got " +
                      obj->TypeName());
    else
      d_.Error(
          root.file, 1, 1,
          "missing required key 'objective' ({primary_metric: <name>, goal: maximize|minimize})");
  } else {
    CheckKeys(*obj, {"primary_metric", "goal"}, "objective.");
    const YNode* pm = obj->Get("primary_metric");
    const YNode* goal = obj->Get("goal");
    std::string metric = pm ? Str(*pm, "objective.primary_metric") : "";
    std::string g = goal ? ToLower(Str(*goal, "objective.goal")) : "";
    if (metric.empty())
      Error(pm ? *pm : *obj,
            "objective.primary_metric: required, the metric each trial logs with mlflow");
    if (g != "maximize" && g != "minimize")
      Error(goal ? *goal : *obj, "objective.goal: expected 'maximize' or 'minimize'" +
                                     (g.empty() ? std::string() : ", got '" + g + "'"));
    sweep["objective"] = {{"primary_metric", metric}, {"goal", g}};
  }
}

// limits: a map (GA, preview 2) or top-level keys (preview 1, with timeout in minutes).
void JobParser::ParseSweepLimits(const YNode& root, nlohmann::json& sweep, const std::string& type,
                                 const cairn::sweep::Space& space) {
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
      CheckKeys(*l, {"max_total_trials", "max_concurrent_trials", "timeout", "trial_timeout"},
                "limits.");
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
    limits["max_total_trials"] =
        type == "grid" && grid > 0 ? std::min<long long>(grid, 1000) : 1000;
  if (!limits.contains("max_concurrent_trials"))
    limits["max_concurrent_trials"] = limits["max_total_trials"];
  sweep["limits"] = limits;
}

// early_termination: a bandit, median-stopping or truncation-selection policy (not with bayesian).
void JobParser::ParseEarlyTermination(const YNode& root, nlohmann::json& sweep,
                                      const std::string& type) {
  const YNode* et = root.Get("early_termination");
  if (!et || et->IsNull()) return;
  if (!et->IsMap()) {
    Error(*et,
          "early_termination: expected a policy such as {type: bandit, slack_factor: 0.1}, got " +
              et->TypeName());
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
      Error(*et,
            "early_termination: a bandit policy takes exactly one of slack_factor and "
            "slack_amount");
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
      Error(*et,
            "early_termination.truncation_percentage: required for truncation_selection (1 to 99)");
    } else if (auto v = PositiveInt(*tp, "early_termination.truncation_percentage")) {
      if (*v > 99)
        Error(*tp, "early_termination.truncation_percentage: 1 to 99, got " + std::to_string(*v));
      policy["truncation_percentage"] = *v;
    }
    if (const YNode* x = et->Get("exclude_finished_jobs")) {
      std::string b = ToLower(Str(*x, "early_termination.exclude_finished_jobs"));
      if (b != "true" && b != "false")
        Error(*x, "early_termination.exclude_finished_jobs: expected true or false");
      policy["exclude_finished_jobs"] = b == "true";
    }
  }
  if (type == "bayesian")
    Error(*et,
          "early_termination: bayesian sampling does not support early termination; remove the "
          "policy or "
          "use random sampling");
  sweep["early_termination"] = policy;
}

void JobParser::ParseSweepConfig(const YNode& root, nlohmann::json& sweep) {
  std::string alg_key;
  const std::string type = ParseSweepAlgorithm(root, sweep, alg_key);
  sweep::Space space = ParseSearchSpace(root, sweep, type, alg_key);
  ParseObjective(root, sweep);
  ParseSweepLimits(root, sweep, type, space);
  ParseEarlyTermination(root, sweep, type);
}

void JobParser::ErrorAtKey(const YEntry& e, const YNode& parent, const std::string& msg) {
  d_.Error(parent.file, e.line, e.column, msg);
}

void JobParser::CheckKeys(const YNode& map, const std::vector<std::string>& allowed,
                          const std::string& prefix) {
  for (const auto& e : map.map) {
    if (std::find(allowed.begin(), allowed.end(), e.key) != allowed.end()) continue;
    std::string msg = "unknown key '" + prefix + e.key + "'";
    std::string near = ClosestMatch(e.key, allowed);
    if (!near.empty()) msg += " (did you mean '" + prefix + near + "'?)";
    d_.Error(map.file, e.line, e.column, msg);
  }
}

std::string JobParser::Str(const YNode& n, const std::string& field) {
  if (n.IsScalar()) return n.scalar;
  if (n.IsNull()) return "";
  Error(n, field + ": expected a string, got " + n.TypeName());
  return "";
}

std::map<std::string, std::string> JobParser::StringMap(const YNode& n, const std::string& field,
                                                        bool allow_null) {
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

std::optional<long long> JobParser::PositiveInt(const YNode& n, const std::string& field) {
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

std::optional<long long> JobParser::Count(const YNode& n, const std::string& field, long long max) {
  auto v = PositiveInt(n, field);
  if (v && *v > max) {
    Error(n, field + ": at most " + std::to_string(max) + ", got " + std::to_string(*v));
    return std::nullopt;
  }
  return v;
}

std::optional<long long> JobParser::NonNegativeInt(const YNode& n, const std::string& field) {
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
std::string JobParser::LocalPath(std::string p, const YNode* at) {
  if (StartsWith(p, "file:")) p = p.substr(5);
  if (at)
    if (auto it = base_of_file_.find(at->file); it != base_of_file_.end())
      return AbsPath(p, it->second);
  return AbsPath(p, base_dir_);
}

void JobParser::CheckLocalFolder(const YNode& at, const std::string& field,
                                 const std::string& abs) {
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

void JobParser::CheckLocalPath(const YNode& at, const std::string& field, const std::string& abs) {
  if (!options_.check_local_paths) return;
  if (access(abs.c_str(), R_OK) != 0)
    Error(at, field + ": '" + at.scalar + "' does not exist or is not readable (looked for " + abs +
                  ")");
}

void JobParser::ParseCode(const YNode& root, JobSpec& spec) {
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
    // A code snapshot already in the workspace: what `job show` and `--save-as` write for a job's
    // code.
    std::string sha = p.substr(18);
    bool hex = sha.size() == 64 && std::all_of(sha.begin(), sha.end(), [](char c) {
                 return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
               });
    if (!hex)
      Error(*path, "code: expected azureml:snapshots/<sha256 of 64 hex digits>, got '" + p + "'");
    else
      spec.code_snapshot = sha;
    return;
  }
  if (StartsWith(p, "git+") || StartsWith(p, "azureml:") || StartsWith(p, "http")) {
    Error(*path, "code: '" + p + "' is not supported; give a local folder");
    return;
  }
  spec.code = LocalPath(p, path);
  CheckLocalFolder(*path, "code", spec.code);
}

void JobParser::ParseCompute(const YNode& root, JobSpec& spec) {
  const YNode* n = root.Get("compute");
  if (!n || n->IsNull()) return;
  const YNode* target = n;
  if (n->IsMap()) {  // preview 1: {target, instance_count, ...}
    generation_p1_ = true;
    CheckKeys(*n, {"target", "instance_count", "instance_type", "location", "properties"},
              "compute.");
    target = n->Get("target");
    if (const YNode* ic = n->Get("instance_count"))
      if (auto v = Count(*ic, "compute.instance_count", kMaxInstances))
        spec.instance_count = static_cast<int>(*v);
    if (const YNode* it = n->Get("instance_type"))
      spec.instance_type = Str(*it, "compute.instance_type");
    if (!target) return;
  }
  if (!target->IsScalar()) {
    Error(*target,
          "compute: expected a compute name such as 'azureml:cpu-cluster' or 'local', got " +
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

void JobParser::ParseResources(const YNode& root, JobSpec& spec) {
  const YNode* n = root.Get("resources");
  if (!n || n->IsNull()) return;
  if (!n->IsMap()) {
    Error(*n, "resources: expected a mapping, got " + n->TypeName());
    return;
  }
  CheckKeys(*n,
            {"instance_count", "instance_type", "shm_size", "docker_args", "locations",
             "max_instance_count", "properties"},
            "resources.");
  if (const YNode* ic = n->Get("instance_count"))
    if (auto v = Count(*ic, "resources.instance_count", kMaxInstances))
      spec.instance_count = static_cast<int>(*v);
  if (const YNode* it = n->Get("instance_type"))
    spec.instance_type = Str(*it, "resources.instance_type");
  if (const YNode* s = n->Get("shm_size")) {
    spec.shm_size = Str(*s, "resources.shm_size");
    static const std::string kUnits = "bkmgBKMG";
    bool ok = spec.shm_size.size() >= 2 && kUnits.find(spec.shm_size.back()) != std::string::npos &&
              std::all_of(spec.shm_size.begin(), spec.shm_size.end() - 1, ::isdigit);
    if (!ok)
      Error(*s,
            "resources.shm_size: expected <number><unit> with unit b, k, m or g (e.g. 2g), got \"" +
                spec.shm_size + "\"");
  }
  if (const YNode* p = n->Get("properties")) {
    if (!p->IsMap())
      Error(*p, "resources.properties: expected a mapping, got " + p->TypeName());
    else
      spec.resources_properties = ToJsonValue(*p);
  }
}

void JobParser::ParseEnvironment(const YNode& root, JobSpec& spec) {
  const YNode* n = root.Get("environment");
  if (!n || n->IsNull()) {
    if (in_step_)
      d_.Error(root.file, root.line, root.column,
               "missing required key 'environment' (give it to the step, its component, or "
               "settings.environment)");
    else
      d_.Error(root.file, root.line ? 1 : 0, 1, "missing required key 'environment'");
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
      Error(*n,
            "environment: expected 'azureml:<name>:<version>', 'azureml:<name>@latest', a registry "
            "URI or an inline environment, got \"" +
                v + "\"");
    }
    return;
  }
  ParseEnvironmentMap(n, spec);
}

// `environment: file:./env.yml`: an environment YAML beside the job, its paths relative to itself.
void JobParser::ParseEnvironmentFile(const YNode& at, const std::string& ref, JobSpec& spec) {
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
    Error(at, "environment: '" + ref +
                  "' is a conda file, not an environment specification; "
                  "use environment: {image: ..., conda_file: " +
                  ref.substr(5) + "}");
    return;
  }
  std::string saved = base_dir_;
  base_dir_ = Dirname(path);
  ParseEnvironmentMap(&*root, spec, true);
  base_dir_ = saved;
}

void JobParser::ParseEnvironmentMap(const YNode* n, JobSpec& spec, bool from_file) {
  EnvironmentSpec& env = spec.environment;
  if (!n->IsMap()) {
    Error(*n, "environment: expected a reference or a mapping, got " + n->TypeName());
    return;
  }
  CheckKeys(*n,
            {"image", "conda_file", "build", "docker", "name", "version", "os_type", "description",
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
      CheckKeys(*build, {"path", "local_path", "dockerfile_path", "dockerfile"},
                "environment.build.");
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
    } else if (!image &&
               !n->Get("docker")) {  // preview 1 built a Dockerfile and applied conda on top
      Error(*conda,
            "environment.conda_file: needs 'image' (a conda file is applied on top of an image)");
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

void JobParser::ParseDistribution(const YNode& root, JobSpec& spec) {
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
    // Left out, it stays out: on a GPU size it is then the instance's GPU count (the scheduler),
    // else 1.
    long long per = 0;
    if (const YNode* p = n->Get("process_count_per_instance")) {
      if (auto v = Count(*p, "distribution.process_count_per_instance", kMaxProcessesPerInstance))
        per = *v;
    } else if (const YNode* p1 = n->Get("process_count")) {
      // Preview 1 counted processes in total.
      generation_p1_ = true;
      if (auto v =
              Count(*p1, "distribution.process_count", kMaxProcessesPerInstance * kMaxInstances)) {
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
      if (!v || *v < 0)
        Error(*p, "distribution.parameter_server_count: expected an integer >= 0");
      else
        ps = *v;
    }
    d["worker_count"] = workers;
    d["parameter_server_count"] = ps;
  } else if (type == "ray") {
    CheckKeys(*n,
              {"type", "address", "port", "dashboard_port", "include_dashboard",
               "head_node_additional_args", "worker_node_additional_args"},
              "distribution.");
    d = ToJsonValue(*n);
  } else {
    Error(*t, "distribution.type: unknown type '" + t->scalar +
                  "' (expected mpi, pytorch, tensorflow or ray)");
    return;
  }
  spec.distribution = d;
}

void JobParser::ParseLimits(const YNode& root, JobSpec& spec) {
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

// queue_settings: {priority: low|medium|high, job_tier: spot|basic|standard|premium}, as Azure ML
// takes them (any case, kept in lower case); the scheduler orders and preempts by them.
void JobParser::ParseQueueSettings(const YNode& root, JobSpec& spec) {
  const YNode* n = root.Get("queue_settings");
  if (!n || n->IsNull()) return;
  if (!n->IsMap()) {
    Error(*n, "queue_settings: expected a mapping, got " + n->TypeName());
    return;
  }
  CheckKeys(*n, {"priority", "job_tier"}, "queue_settings.");
  nlohmann::json out = nlohmann::json::object();
  struct Field {
    const char* key;
    std::vector<std::string> allowed;
  };
  for (const Field& f : {Field{"priority", {"low", "medium", "high"}},
                         Field{"job_tier", {"spot", "basic", "standard", "premium"}}}) {
    const YNode* v = n->Get(f.key);
    if (!v || v->IsNull()) continue;
    std::string value = v->IsScalar() ? ToLower(v->scalar) : "";
    if (std::find(f.allowed.begin(), f.allowed.end(), value) == f.allowed.end()) {
      Error(*v, std::string("queue_settings.") + f.key + ": expected one of " +
                    Join(f.allowed, ", ") + ", got " +
                    (v->IsScalar() ? "'" + v->scalar + "'" : v->TypeName()));
      continue;
    }
    out[f.key] = value;
  }
  spec.queue_settings = out;
}

// Where an input mapping's data is (`path`) and its type, in whichever generation's form: preview
// 1's data:, preview 2's file:, folder: or dataset:, GA's type: and path:. False when the input is
// complete without a path (a typed literal, recorded) or was refused (said).
bool JobParser::InputSource(const std::string& name, const YNode& v, const std::string& field,
                            InputSpec& in, const YNode*& path, JobSpec& spec) {
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
    if ((path = v.Get("file")))
      in.type = "uri_file";
    else if ((path = v.Get("folder")))
      in.type = "uri_folder";
    else {
      path = v.Get("dataset");
      if (path->IsMap()) {
        CheckKeys(*path, {"local_path", "path"}, field + ".dataset.");
        const YNode* lp = path->Get("local_path");
        if (!lp) lp = path->Get("path");
        if (!lp) {
          Error(*path, field + ".dataset: missing required key 'local_path'");
          return false;
        }
        path = lp;
      }
      in.type = "uri_folder";
    }
  } else {
    CheckKeys(v,
              {"type", "path", "mode", "datastore", "description", "optional", "default", "min",
               "max", "enum"},
              field + ".");
    if (const YNode* t = v.Get("type")) {
      std::string type = Str(*t, field + ".type");
      static const std::vector<std::string> kLiteralTypes = {"string", "integer", "number",
                                                             "boolean"};
      if (std::find(kLiteralTypes.begin(), kLiteralTypes.end(), type) != kLiteralTypes.end()) {
        // A typed literal: {type: integer, default: 3}
        in.literal = true;
        in.literal_type = type;
        if (const YNode* def = v.Get("default")) in.value = def->scalar;
        if (const YNode* o = v.Get("optional")) in.optional = AsBool(*o).value_or(false);
        spec.inputs[name] = in;
        return false;
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
      return false;
    }
  }
  return true;
}

// One input: a literal (typed by its YAML form) or a mapping, its mode and its path.
void JobParser::ParseInput(const YEntry& e, JobSpec& spec) {
  InputSpec in;
  const YNode& v = e.value;
  std::string field = "inputs." + e.key;
  if (v.IsScalar() || v.IsNull()) {
    in.literal = true;
    in.value = v.scalar;
    in.literal_type = v.quoted      ? "string"
                      : AsBool(v)   ? "boolean"
                      : AsInt(v)    ? "integer"
                      : AsNumber(v) ? "number"
                                    : "string";
    if (v.IsNull()) {
      in.optional = true;
      in.literal_type = "string";
    }
    spec.inputs[e.key] = in;
    return;
  }
  if (!v.IsMap()) {
    Error(v, field + ": expected a literal value or an input mapping, got " + v.TypeName());
    return;
  }
  const YNode* path = v.Get("path");
  in.type = "uri_folder";
  in.mode = "ro_mount";
  if (!InputSource(e.key, v, field, in, path, spec)) return;
  if (const YNode* m = v.Get("mode")) {
    std::string mode = Str(*m, field + ".mode");
    if (mode == "mount") mode = "ro_mount";     // preview 1
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
      return;
    }
    in.path = Trim(path->scalar);
    in.path_kind = ClassifyPath(in.path);
    if (in.path_kind == PathKind::kLocal) {
      in.path = LocalPath(in.path, path);
      CheckLocalPath(*path, field + ".path", in.path);
      if (options_.check_local_paths && in.type == "uri_file" && IsDir(in.path))
        Error(*path,
              field + ".path: '" + path->scalar + "' is a folder but the input's type is uri_file");
    }
  }
  spec.inputs[e.key] = in;
}

void JobParser::ParseInputs(const YNode& root, JobSpec& spec) {
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
    ParseInput(e, spec);
  }
}

bool JobParser::IsValidInputName(const std::string& s) {
  if (s.empty() || !(isalpha(static_cast<unsigned char>(s[0])) || s[0] == '_')) return false;
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return isalnum(static_cast<unsigned char>(c)) || c == '_'; });
}

std::string JobParser::GuessType(const std::string& path) {
  // Preview 1 had no type: a path ending in '/' or without an extension is a folder.
  std::string base = Basename(path);
  if (EndsWith(path, "/") || base.find('.') == std::string::npos) return "uri_folder";
  return "uri_file";
}

void JobParser::ParseOutputs(const YNode& root, JobSpec& spec) {
  const YNode* n = root.Get("outputs");
  if (!n || n->IsNull()) return;
  if (!n->IsMap()) {
    Error(*n,
          "outputs: expected a mapping of output names to specifications, got " + n->TypeName());
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
      if (p && StartsWith(p->scalar, "azureml://datastores/workspaceartifactstore/"))
        continue;  // read-only
      ErrorAtKey(e, *n,
                 field + ": 'default' is reserved for the job's artifacts (./outputs and logs)");
      continue;
    }
    OutputSpec out;
    const YNode& v = e.value;
    if (v.IsMap()) {
      CheckKeys(v, {"type", "mode", "path", "name", "version", "description", "folder", "file"},
                field + ".");
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
          Error(*p, field +
                        ".path: an output path must be a datastore URI "
                        "(azureml://datastores/<name>/paths/<path>)");
      }
      if (const YNode* nm = v.Get("name")) out.asset_name = Str(*nm, field + ".name");
      if (const YNode* ver = v.Get("version")) out.asset_version = Str(*ver, field + ".version");
      if (const YNode* dsc = v.Get("description"))
        out.description = Str(*dsc, field + ".description");
    } else if (!v.IsNull()) {
      Error(v, field + ": expected a mapping or nothing, got " + v.TypeName());
      continue;
    }
    spec.outputs[e.key] = out;
  }
}

void JobParser::ParseCommand(const YNode& root, JobSpec& spec) {
  const YNode* n = root.Get("command");
  if (!n || n->IsNull()) {
    d_.Error(root.file, in_step_ ? root.line : 1, in_step_ ? root.column : 1,
             "missing required key 'command'");
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
      } else if (std::find(search_space_names_.begin(), search_space_names_.end(), p.name) ==
                 search_space_names_.end()) {
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
  auto check = Substitute(
      spec.command,
      [&](const std::string& ctx, const std::string& name) -> std::optional<std::string> {
        if (ctx == "inputs") {
          auto it = spec.inputs.find(name);
          if (it == spec.inputs.end()) return "x";
          if (it->second.optional && it->second.value.empty() && it->second.path.empty())
            return std::nullopt;
        }
        return "x";
      });
  if (!check.ok())
    Error(*n,
          "command: " + check.status().message() +
              "; wrap the optional part in $[[ ... ]] so it is dropped when the input is absent");
}

}  // namespace detail

using detail::JobParser;

const char* PathKindName(PathKind k) {
  switch (k) {
    case PathKind::kLocal:
      return "local";
    case PathKind::kHttp:
      return "http";
    case PathKind::kAsset:
      return "asset";
    case PathKind::kDatastore:
      return "datastore";
    case PathKind::kJobOutput:
      return "job_output";
    case PathKind::kRuns:
      return "runs";
    case PathKind::kCloud:
      return "cloud";
    case PathKind::kNone:
      return "none";
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
std::optional<YNode> ReadRoot(const std::string& text, const std::string& file,
                              const ParseOptions& options, Diagnostics& diags) {
  auto root = ParseYaml(text, file, diags);
  if (root)
    for (const auto& o : options.overrides) ApplyOverride(*root, o, diags);
  return root;
}
}  // namespace

std::optional<ComponentInfo> ParseComponentText(const std::string& text, const std::string& file,
                                                const std::string& base_dir,
                                                const ParseOptions& options, Diagnostics& diags) {
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
    diags.Error(path, 0, 0,
                "file is " + std::to_string(st.st_size) + " bytes; a job file may be at most " +
                    std::to_string(YamlLimits().max_bytes) + " bytes");
    return std::nullopt;
  }
  auto text = ReadFile(path, YamlLimits().max_bytes);
  if (!text.ok()) {
    diags.Error(path, 0, 0,
                text.status().code() == Code::kNotFound ? "no such file" : text.status().message());
    return std::nullopt;
  }
  return ParseJobText(*text, path, Dirname(AbsPath(path)), options, diags);
}

std::string EnvironmentSpec::Describe() const {
  if (!reference.empty()) return "registered environment " + reference;
  if (!image.empty())
    return "image " + image + (conda_file.empty() ? "" : " with conda file " + conda_file);
  if (!build_path.empty()) return "build context " + build_path;
  return "none";
}

}  // namespace cairn::spec
