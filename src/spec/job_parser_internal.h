// The job parser's class, shared by the files that implement it: job_parser.cc (command and sweep
// jobs, and the fields every job has) and pipeline_parser.cc (pipelines, their steps and
// components). Internal to spec/: the interface is job_spec.h. Not thread-safe: one parser reads
// one document.
#pragma once

#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "spec/diagnostics.h"
#include "spec/job_spec.h"
#include "spec/yaml_tree.h"
#include "sweep/search_space.h"

namespace cairn::spec::detail {

// A pipeline's step while it is read.
struct Step {
  std::string name, type;
  const YEntry* entry = nullptr;
  const YNode* component = nullptr;            // the component's root, when the step names one
  std::string component_id;                    // "file:<path>", "<name>:<version>" or "inline"
  std::string component_name;                  // a component file's own name:version
  std::string code_snapshot;                   // a registered component's code
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
  void ParseEnvironmentDocument(const YNode& root, JobSpec& spec) {
    ParseEnvironmentMap(&root, spec, true);
  }

  std::optional<JobSpec> Parse(YNode& root);

  std::optional<JobSpec> ParseCommandJob(YNode& root);

  // A sweep: the trial's keys and the top level's are read as one command job (the trial's command
  // may use
  // ${{search_space.<name>}}), and the sweep's own keys into spec.sweep.
  std::optional<JobSpec> ParseSweep(YNode& root);

  // Finds the node a "search_space.a.b" path names, for the error's place.
  const YNode& Locate(const YNode& root, const std::string& path);

  void ParseSweepConfig(const YNode& root, nlohmann::json& sweep);
  // ParseSweepConfig's parts, in order (job_parser.cc).
  std::string ParseSweepAlgorithm(const YNode& root, nlohmann::json& sweep, std::string& alg_key);
  cairn::sweep::Space ParseSearchSpace(const YNode& root, nlohmann::json& sweep,
                                       const std::string& type, const std::string& alg_key);
  void ParseObjective(const YNode& root, nlohmann::json& sweep);
  void ParseSweepLimits(const YNode& root, nlohmann::json& sweep, const std::string& type,
                        const cairn::sweep::Space& space);
  void ParseEarlyTermination(const YNode& root, nlohmann::json& sweep, const std::string& type);

  // Pipelines (pipeline_parser.cc).
  // A pipeline: its own inputs, outputs and settings, and its steps, each read as a command (or
  // sweep) job made of its component's keys, the step's own and the pipeline's defaults, with its
  // inputs bound.
  std::optional<JobSpec> ParsePipeline(YNode& root);
  // What ParsePipeline's passes share: the pipeline's defaults, inputs and outputs, its steps by
  // name, and which step output each pipeline output is bound to.
  struct PipelineContext {
    const YNode* default_compute = nullptr;
    const YNode* default_environment = nullptr;
    const YNode* parent_inputs = nullptr;
    const YNode* parent_outputs = nullptr;
    const std::vector<Step>* steps = nullptr;
    std::map<std::string, size_t> index;
    std::vector<std::string> step_names;
    nlohmann::json out_map = nlohmann::json::object();
  };
  nlohmann::json ParsePipelineSettings(const YNode& root, JobSpec& spec, PipelineContext& ctx);
  std::vector<Step> DeclareSteps(const YNode& jobs, const YNode* parent_outputs);
  YNode StepAsJob(const Step& s, const JobSpec& spec, const PipelineContext& ctx);
  YNode StepInputs(Step& s, const std::set<std::string>& search_names, const PipelineContext& ctx);
  YNode StepOutputs(const Step& s, PipelineContext& ctx);
  void ReadStep(Step& s, YNode& m, const std::set<std::string>& search_names);
  std::vector<size_t> StepOrder(const std::vector<Step>& steps,
                                const std::map<std::string, size_t>& index);

  // A component file on its own (`cairn component create`): read as the command job it stands for,
  // its data inputs standing in for what steps will bind.
  std::optional<ComponentInfo> ParseComponent(YNode& root);

  // A command component (a file of its own, or a registered one) as the step that uses it: its YAML
  // root.
  bool LoadComponent(const YNode& ref, const std::string& field, Step& s);

  struct Binding {
    std::string kind;  // parent_input | parent_output | step_output
    std::string name;  // the input or output
    std::string step;
    std::string expression;
  };
  // A value that is a whole ${{...}} binding (GA's parent.*, the second preview's inputs.* and
  // jobs.*).
  static std::optional<Binding> ParseBinding(const YNode& n);

  static bool IsLiteralType(const std::string& t);

  std::string Listing(const YNode* map, const std::string& what);

  // One input of a step: a binding (to the pipeline's input or another step's output), a literal or
  // data.
  void BindInput(Step& s, const std::string& name, const YNode& value, const YNode* decl,
                 const std::string& field, const YNode* parent_inputs,
                 const std::vector<Step>& steps, const std::map<std::string, size_t>& index,
                 const std::vector<std::string>& step_names, YNode& ins);

  static bool CompatibleData(const std::string& produced, const std::string& wanted);

  static bool IsValidStepName(const std::string& s);

  static std::string Describe(const YNode& n) {
    return n.IsScalar() ? "\"" + n.scalar + "\"" : n.TypeName();
  }

 private:
  void ParseIdentity(const YNode& root, JobSpec& spec);
  void Error(const YNode& at, const std::string& msg) {
    d_.Error(at.file, at.line, at.column, msg);
  }
  void Warning(const YNode& at, const std::string& msg) {
    d_.Warning(at.file, at.line, at.column, msg);
  }
  void ErrorAtKey(const YEntry& e, const YNode& parent, const std::string& msg);

  void CheckKeys(const YNode& map, const std::vector<std::string>& allowed,
                 const std::string& prefix);

  std::string Str(const YNode& n, const std::string& field);

  std::map<std::string, std::string> StringMap(const YNode& n, const std::string& field,
                                               bool allow_null);

  nlohmann::json ToJsonValue(const YNode& n) { return YamlToJson(n); }

  std::optional<long long> PositiveInt(const YNode& n, const std::string& field);
  // A positive count that names processes or machines to start: at most `max` (bounded where it is
  // read).
  std::optional<long long> Count(const YNode& n, const std::string& field, long long max);

  std::optional<long long> NonNegativeInt(const YNode& n, const std::string& field);

  // A local path as written in a file, made absolute against the folder of the file `at` came from
  // (a pipeline's step mixes its component file's keys with the pipeline file's), else the
  // document's.
  std::string LocalPath(std::string p, const YNode* at = nullptr);

  void CheckLocalFolder(const YNode& at, const std::string& field, const std::string& abs);

  void CheckLocalPath(const YNode& at, const std::string& field, const std::string& abs);

  void ParseCode(const YNode& root, JobSpec& spec);

  void ParseCompute(const YNode& root, JobSpec& spec);

  void ParseResources(const YNode& root, JobSpec& spec);

  void ParseEnvironment(const YNode& root, JobSpec& spec);

  // `environment: file:./env.yml`: an environment YAML beside the job, its paths relative to
  // itself.
  void ParseEnvironmentFile(const YNode& at, const std::string& ref, JobSpec& spec);

  void ParseEnvironmentMap(const YNode* n, JobSpec& spec, bool from_file = false);

  void ParseDistribution(const YNode& root, JobSpec& spec);

  void ParseLimits(const YNode& root, JobSpec& spec);
  void ParseQueueSettings(const YNode& root, JobSpec& spec);

  void ParseInputs(const YNode& root, JobSpec& spec);
  void ParseInput(const YEntry& e, JobSpec& spec);
  bool InputSource(const std::string& name, const YNode& v, const std::string& field, InputSpec& in,
                   const YNode*& path, JobSpec& spec);

  static bool IsValidInputName(const std::string& s);

  static std::string GuessType(const std::string& path);

  void ParseOutputs(const YNode& root, JobSpec& spec);

  void ParseCommand(const YNode& root, JobSpec& spec);

  std::string base_dir_;
  const ParseOptions& options_;
  Diagnostics& d_;
  bool generation_p1_ = false;
  bool generation_p2_ = false;
  bool in_sweep_ = false;
  bool in_step_ = false;  // reading a pipeline's step
  std::vector<std::string> search_space_names_;
  std::deque<YNode> components_;  // component files read for steps (nodes point into them)
  std::map<std::string, std::string> base_of_file_;  // a component file -> its folder
};

}  // namespace cairn::spec::detail
