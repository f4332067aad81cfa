// The internal model of a command job, the same whichever of the three YAML syntax generations it
// was written in. Plain values: copyable, not thread-safe. JSON is the wire form between CLI and
// server.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "spec/diagnostics.h"

namespace cairn::spec {

// Bounds on what one job file can ask for, checked where it is parsed (a count names processes to
// start, memory to reserve and rows every list shows; an unbounded one took the server to 14.8 GB).
constexpr long long kMaxProcessesPerInstance = 1024;  // distribution.process_count_per_instance
constexpr long long kMaxInstances = 1024;             // resources.instance_count
constexpr size_t kMaxTags = 256;                      // tags

// Where an input's path points; decides how the runtime delivers it.
enum class PathKind { kLocal, kHttp, kAsset, kDatastore, kJobOutput, kRuns, kCloud, kNone };
const char* PathKindName(PathKind k);
PathKind ClassifyPath(const std::string& path);

struct InputSpec {
  bool literal = false;
  std::string value;         // a literal's text as the command sees it
  std::string literal_type;  // string | integer | number | boolean
  std::string type;  // uri_file | uri_folder | mltable | mlflow_model | custom_model | triton_model
  std::string path;  // as written; local paths made absolute by the parser
  PathKind path_kind = PathKind::kNone;
  std::string mode;  // ro_mount | download | direct | eval_mount | eval_download
  bool optional = false;
  std::string description;
};

struct OutputSpec {
  std::string type = "uri_folder";
  std::string mode = "rw_mount";
  std::string path;  // datastore URI, when given
  std::string asset_name;
  std::string asset_version;
  std::string description;
};

struct EnvironmentSpec {
  std::string reference;   // azureml:<name>:<ver>, azureml:<name>@latest, azureml://registries/...
  std::string image;       // inline image
  std::string conda_file;  // absolute local path, when given as a file
  std::string build_path;  // absolute local folder or URL
  std::string dockerfile_path;  // relative to build_path
  std::map<std::string, std::string>
      variables;                 // environment_variables of an env YAML (unused yet)
  std::string Describe() const;  // one line for logs: "image python:3.11", "registered azureml:x:1"
};

struct JobSpec {
  std::string type = "command";
  std::string generation;  // "GA", "preview 2" or "preview 1": what the file was recognised as
  std::string name;
  std::string display_name;
  std::string experiment_name;
  std::string description;
  std::map<std::string, std::string> tags;
  std::map<std::string, std::string> properties;
  std::string command;  // placeholders normalised to ${{...}}
  std::string code;     // absolute local folder, "" when none
  std::string
      code_snapshot;  // code: azureml:snapshots/<sha>: a snapshot the workspace has (no upload)
  EnvironmentSpec environment;
  std::map<std::string, std::string> environment_variables;
  std::string compute;  // a compute name, "local", or "" for the workspace default
  int instance_count = 1;
  std::string instance_type;
  std::string shm_size;
  nlohmann::json resources_properties = nlohmann::json::object();
  nlohmann::json distribution;  // null when none; {"type": "pytorch", ...} normalised
  long long timeout_seconds = 0;
  std::map<std::string, InputSpec> inputs;
  std::map<std::string, OutputSpec> outputs;
  nlohmann::json services;  // kept as written, for later
  nlohmann::json identity;
  nlohmann::json queue_settings;
  // type "sweep": the command and the fields above are the trial's; this holds the rest,
  // normalised: {algorithm: {type, seed?, rule}, search_space, objective: {primary_metric, goal},
  // limits:
  //  {max_total_trials, max_concurrent_trials, timeout?, trial_timeout?}, early_termination?}.
  nlohmann::json sweep;
  // type "pipeline": the steps and how they are wired (the pipeline's own inputs and outputs are
  // the fields above; it has no command). Normalised: {settings: {continue_on_step_failure,
  // force_rerun, default_datastore}, steps: [{name, spec (a command or sweep JobSpec), component,
  // is_deterministic, retry: {max_retries, timeout}, bindings: {input: {step, output}}, after:
  // [steps]}] in an order that runs, outputs: {pipeline output: {step, output}}}.
  nlohmann::json pipeline;
};

nlohmann::json ToJson(const JobSpec& spec);
Result<JobSpec> JobSpecFromJson(const nlohmann::json& j);

// A registered component (`component: azureml:train:1`), as the workspace keeps it: its YAML and
// the code snapshot that stands for its code.
struct ComponentSource {
  std::string text;           // the component YAML as registered
  std::string id;             // "azureml:train:1", for diagnostics
  std::string code_snapshot;  // "" when it has no code
};

struct ParseOptions {
  std::vector<std::string> overrides;  // --set KEY=VALUE, applied before validation
  std::string name;                    // --name wins over the file
  bool check_local_paths = true;       // code and local inputs must exist
  // Finds a registered component for `component: azureml:<name>:<version>` or
  // `azureml:<name>@latest`; an error names what was wrong. Unset: such references are refused.
  std::function<Result<ComponentSource>(const std::string& name, const std::string& version)>
      resolve_component;
};

// Reads, parses and validates a job file. Returns nullopt when any error was added to `diags`;
// warnings may be added either way.
std::optional<JobSpec> ParseJobFile(const std::string& path, const ParseOptions& options,
                                    Diagnostics& diags);
struct YNode;
// An environment's fields (image | build, conda_file, os_type, ...) from an environment YAML's
// root; local paths resolve against `base_dir`.
std::optional<EnvironmentSpec> ParseEnvironmentNode(const YNode& root, const std::string& base_dir,
                                                    Diagnostics& diags);
// A command component (`cairn component create -f`): what the workspace keeps of it.
struct ComponentInfo {
  std::string name, version, display_name, description, command;
  std::string code;           // absolute local folder, "" when none
  std::string code_snapshot;  // code: azureml:snapshots/<sha>
  bool is_deterministic = true;
  nlohmann::json inputs;   // the declarations as written: name -> {type, default, optional, ...}
  nlohmann::json outputs;  // name -> {type, mode, ...}
};
std::optional<ComponentInfo> ParseComponentText(const std::string& text, const std::string& file,
                                                const std::string& base_dir,
                                                const ParseOptions& options, Diagnostics& diags);

// The same, for text already read; `file` names it in diagnostics and `base_dir` anchors relative
// paths.
std::optional<JobSpec> ParseJobText(const std::string& text, const std::string& file,
                                    const std::string& base_dir, const ParseOptions& options,
                                    Diagnostics& diags);

}  // namespace cairn::spec
