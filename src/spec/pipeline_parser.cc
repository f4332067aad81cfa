// Pipelines and components, for the job parser (job_parser_internal.h): a pipeline's steps, each
// read as the command (or sweep) job it is made of (its component's keys, its own, the pipeline's
// defaults), its inputs bound to the pipeline's or to other steps' outputs, the graph checked for
// cycles and put in an order that runs; and a component file on its own.
#include <algorithm>
#include <functional>
#include <set>

#include "base/fs.h"
#include "base/util.h"
#include "spec/job_parser_internal.h"
#include "spec/placeholders.h"

namespace cairn::spec::detail {

namespace {

const std::vector<std::string> kPipelineTopKeys = {"$schema",
                                                   "type",
                                                   "name",
                                                   "display_name",
                                                   "experiment_name",
                                                   "description",
                                                   "tags",
                                                   "properties",
                                                   "inputs",
                                                   "outputs",
                                                   "settings",
                                                   "jobs",
                                                   "compute",
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
                                                   "notes",
                                                   "steps"};
const std::vector<std::string> kStepKeys = {"type",           "component",
                                            "command",        "code",
                                            "environment",    "environment_variables",
                                            "compute",        "resources",
                                            "distribution",   "limits",
                                            "inputs",         "outputs",
                                            "display_name",   "description",
                                            "tags",           "properties",
                                            "retry_settings", "experiment_name",
                                            "services",       "identity",
                                            "queue_settings", "is_deterministic"};
const std::vector<std::string> kSweepStepKeys = {"type",
                                                 "trial",
                                                 "inputs",
                                                 "outputs",
                                                 "compute",
                                                 "sampling_algorithm",
                                                 "search_space",
                                                 "objective",
                                                 "limits",
                                                 "early_termination",
                                                 "display_name",
                                                 "description",
                                                 "tags",
                                                 "experiment_name",
                                                 "resources",
                                                 "identity",
                                                 "queue_settings",
                                                 "retry_settings",
                                                 "is_deterministic"};
const std::vector<std::string> kComponentKeys = {"$schema",      "type",
                                                 "name",         "version",
                                                 "display_name", "description",
                                                 "tags",         "is_deterministic",
                                                 "inputs",       "outputs",
                                                 "code",         "environment",
                                                 "command",      "resources",
                                                 "distribution", "environment_variables",
                                                 "limits",       "additional_includes",
                                                 "properties"};

}  // namespace

// A pipeline: its own inputs, outputs and settings, and its steps, each read as a command (or
// sweep) job made of its component's keys, the step's own and the pipeline's defaults, with its
// inputs bound.
namespace {
// Sets `key` of the mapping `m` to `val` (replacing it, or added at the end).
void PutKey(YNode& m, const std::string& key, const YNode& val, int line, int col) {
  for (auto& x : m.map)
    if (x.key == key) {
      x.value = val;
      return;
    }
  m.map.push_back({key, line, col, val});
}
}  // namespace

// The pipeline's settings: its default compute and environment (kept in `ctx` for the steps) and
// the flags it passes on to the scheduler.
nlohmann::json JobParser::ParsePipelineSettings(const YNode& root, JobSpec& spec,
                                                PipelineContext& ctx) {
  const YNode*& default_compute = ctx.default_compute;
  const YNode*& default_environment = ctx.default_environment;
  nlohmann::json settings = {{"continue_on_step_failure", false}, {"force_rerun", false}};
  if (const YNode* st = root.Get("settings"); st && !st->IsNull()) {
    if (!st->IsMap()) {
      Error(*st, "settings: expected a mapping, got " + st->TypeName());
    } else {
      CheckKeys(*st,
                {"default_compute", "default_datastore", "continue_on_step_failure", "force_rerun",
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
      for (const char* k :
           {"continue_on_step_failure", "force_rerun", "continue_run_on_failed_optional_input"})
        if (const YNode* b = st->Get(k)) {
          auto v = AsBool(*b);
          if (!v)
            Error(*b,
                  std::string("settings.") + k + ": expected true or false, got " + Describe(*b));
          else
            settings[k] = *v;
        }
      if (const YNode* ds = st->Get("default_datastore")) {
        std::string v = Str(*ds, "settings.default_datastore");
        if (StartsWith(v, "azureml:")) v = v.substr(8);
        settings["default_datastore"] = v;
      }
    }
  }
  return settings;
}

// First pass: each step's component and the outputs it declares (what other steps may bind to).
std::vector<Step> JobParser::DeclareSteps(const YNode& jobs_node, const YNode* parent_outputs) {
  const YNode* jobs = &jobs_node;
  std::vector<Step> steps;
  for (const auto& e : jobs->map) {
    Step s;
    s.name = e.key;
    s.entry = &e;
    if (!IsValidStepName(e.key)) {
      ErrorAtKey(
          e, *jobs,
          "jobs." + e.key +
              ": not a valid step name (letters, digits, '_' and '-', starting with a letter)");
      continue;
    }
    if (!e.value.IsMap()) {
      Error(e.value, "jobs." + e.key +
                         ": expected a step (a mapping with a command or a component), got " +
                         e.value.TypeName());
      continue;
    }
    const YNode& v = e.value;
    s.type = v.Get("type") ? ToLower(Str(*v.Get("type"), "jobs." + e.key + ".type")) : "command";
    if (s.type != "command" && s.type != "sweep") {
      Error(*v.Get("type"),
            "jobs." + e.key + ".type: '" + s.type + "' steps are not supported (command or sweep)");
      continue;
    }
    CheckKeys(v, s.type == "sweep" ? kSweepStepKeys : kStepKeys, "jobs." + e.key + ".");
    const YNode* comp = v.Get(s.type == "sweep" ? "trial" : "component");
    if (s.type == "sweep" && !comp) {
      Error(v, "jobs." + e.key + ": a sweep step needs 'trial' (the component each trial runs)");
      continue;
    }
    if (comp &&
        !LoadComponent(*comp, "jobs." + e.key + (s.type == "sweep" ? ".trial" : ".component"), s))
      continue;
    // Outputs others may read: the component's, the step's own (inline), and its artifacts.
    s.outputs["artifacts"] = "uri_folder";
    s.outputs["default"] = "uri_folder";
    if (s.component && s.component->IsMap())
      if (const YNode* outs = s.component->Get("outputs"); outs && outs->IsMap())
        for (const auto& o : outs->map)
          s.outputs[o.key] =
              o.value.IsMap() && o.value.Get("type") ? o.value.Get("type")->scalar : "uri_folder";
    if (const YNode* outs = v.Get("outputs"); outs && outs->IsMap())
      for (const auto& o : outs->map) {
        if (s.outputs.count(o.key) && s.component) continue;
        std::string type = "uri_folder";
        if (o.value.IsMap() && o.value.Get("type")) type = o.value.Get("type")->scalar;
        if (auto b = ParseBinding(o.value); b && b->kind == "parent_output" && parent_outputs)
          if (const YNode* po = parent_outputs->Get(b->name); po && po->IsMap() && po->Get("type"))
            type = po->Get("type")->scalar;
        s.outputs[o.key] = type;
      }
    steps.push_back(std::move(s));
  }
  return steps;
}

// A step as the job it stands for: the component's keys, the step's own over them, the pipeline's
// defaults where neither says.
YNode JobParser::StepAsJob(const Step& s, const JobSpec& spec, const PipelineContext& ctx) {
  const YNode* default_environment = ctx.default_environment;
  const YNode* default_compute = ctx.default_compute;
  const YNode& v = s.entry->value;
  const std::string field = "jobs." + s.name;
  YNode m;
  m.kind = YNode::Kind::kMap;
  m.file = v.file;
  m.line = v.line;
  m.column = v.column;
  static const std::vector<std::string> kFromComponent = {
      "command",   "code",         "environment", "environment_variables",
      "resources", "distribution", "limits"};
  if (s.component)
    for (const auto& x : s.component->map)
      if (std::find(kFromComponent.begin(), kFromComponent.end(), x.key) != kFromComponent.end())
        PutKey(m, x.key, x.value, x.line, x.column);
  if (!s.code_snapshot.empty()) {
    YNode code;
    code.kind = YNode::Kind::kScalar;
    code.scalar = "azureml:snapshots/" + s.code_snapshot;
    code.file = s.component->file;
    PutKey(m, "code", code, 0, 0);
  }
  static const std::vector<std::string> kFromStep = {
      "command",      "code",        "environment",    "environment_variables",
      "compute",      "resources",   "distribution",   "limits",
      "display_name", "description", "tags",           "properties",
      "services",     "identity",    "queue_settings", "experiment_name"};
  for (const auto& x : v.map)
    if (std::find(kFromStep.begin(), kFromStep.end(), x.key) != kFromStep.end()) {
      if (x.key == "limits" && s.type == "sweep") continue;  // the sweep's limits, below
      PutKey(m, x.key, x.value, x.line, x.column);
    }
  if (!m.Get("environment") && default_environment)
    PutKey(m, "environment", *default_environment, default_environment->line,
           default_environment->column);
  if (!m.Get("compute") && default_compute)
    PutKey(m, "compute", *default_compute, default_compute->line, default_compute->column);
  if (!m.Get("experiment_name") && !spec.experiment_name.empty()) {
    YNode x;
    x.kind = YNode::Kind::kScalar;
    x.scalar = spec.experiment_name;
    PutKey(m, "experiment_name", x, 0, 0);
  }

  return m;
}

// The step's inputs: its values and bindings, over the component's declarations and their defaults.
YNode JobParser::StepInputs(Step& s, const std::set<std::string>& search_names,
                            const PipelineContext& ctx) {
  const YNode& v = s.entry->value;
  const std::string field = "jobs." + s.name;
  const YNode* parent_inputs = ctx.parent_inputs;
  const std::vector<Step>& steps = *ctx.steps;
  const std::map<std::string, size_t>& index = ctx.index;
  const std::vector<std::string>& step_names = ctx.step_names;
  YNode ins;
  ins.kind = YNode::Kind::kMap;
  ins.file = v.file;
  const YNode* decls = s.component && s.component->IsMap() ? s.component->Get("inputs") : nullptr;
  const YNode* given = v.Get("inputs");
  if (given && !given->IsNull() && !given->IsMap())
    Error(*given, field + ".inputs: expected a mapping, got " + given->TypeName());
  if (decls && !decls->IsMap()) decls = nullptr;
  if (given && given->IsMap())
    for (const auto& x : given->map) {
      const YNode* decl = decls ? decls->Get(x.key) : nullptr;
      if (s.component && !decl && decls) {
        std::vector<std::string> names;
        for (const auto& d : decls->map) names.push_back(d.key);
        std::string near = ClosestMatch(x.key, names);
        ErrorAtKey(x, *given,
                   field + ".inputs." + x.key + ": the component has no input '" + x.key + "'" +
                       (near.empty() ? " (its inputs: " + Join(names, ", ") + ")"
                                     : " (did you mean '" + near + "'?)"));
        continue;
      }
      BindInput(s, x.key, x.value, decl, field + ".inputs." + x.key, parent_inputs, steps, index,
                step_names, ins);
      if (!ins.Get(
              x.key)) {  // refused (and said so): the command's use of it is not a second error
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
      bool optional = d.value.IsMap() && d.value.Get("optional") &&
                      AsBool(*d.value.Get("optional")).value_or(false);
      if (def) {
        BindInput(s, d.key, *def, &d.value, field + ".inputs." + d.key, parent_inputs, steps, index,
                  step_names, ins);
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

  return ins;
}

// The step's outputs: the component's declarations, the step's own, and where they go (a pipeline
// output, recorded in ctx.out_map).
YNode JobParser::StepOutputs(const Step& s, PipelineContext& ctx) {
  const YNode& v = s.entry->value;
  const std::string field = "jobs." + s.name;
  const YNode* parent_outputs = ctx.parent_outputs;
  nlohmann::json& out_map = ctx.out_map;
  YNode outs;
  outs.kind = YNode::Kind::kMap;
  outs.file = v.file;
  if (s.component && s.component->IsMap())
    if (const YNode* od = s.component->Get("outputs"); od && od->IsMap())
      for (const auto& o : od->map) {
        YNode decl = o.value;
        if (decl.IsMap())
          decl.map.erase(std::remove_if(decl.map.begin(), decl.map.end(),
                                        [](const YEntry& y) {
                                          return y.key == "description" || y.key == "optional";
                                        }),
                         decl.map.end());
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
            Error(o.value, field + ".outputs." + o.key +
                               ": an output binds only to ${{parent.outputs.<name>}}, got ${{" +
                               b->expression + "}}");
            continue;
          }
          const YNode* po =
              parent_outputs && parent_outputs->IsMap() ? parent_outputs->Get(b->name) : nullptr;
          if (!po) {
            Error(o.value, field + ".outputs." + o.key + ": ${{" + b->expression +
                               "}} names no output of the pipeline" +
                               Listing(parent_outputs, "outputs"));
            continue;
          }
          if (out_map.contains(b->name)) {
            Error(o.value, field + ".outputs." + o.key + ": the pipeline's output '" + b->name +
                               "' is already bound to " + "jobs." +
                               out_map[b->name]["step"].get<std::string>() + ".outputs." +
                               out_map[b->name]["output"].get<std::string>());
            continue;
          }
          out_map[b->name] = {{"step", s.name}, {"output", o.key}};
          val = *po;
        } else if (o.value.IsScalar()) {
          Error(o.value, field + ".outputs." + o.key +
                             ": expected a mapping, nothing, or ${{parent.outputs.<name>}}");
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
  outs.map.erase(
      std::remove_if(outs.map.begin(), outs.map.end(),
                     [](const YEntry& y) { return y.key == "artifacts" || y.key == "default"; }),
      outs.map.end());

  return outs;
}

// The step, made into job `m`, read as a job of its own (its diagnostics say which step they are
// about); then its reuse and retry settings.
void JobParser::ReadStep(Step& s, YNode& m, const std::set<std::string>& search_names) {
  const YNode& v = s.entry->value;
  const std::string field = "jobs." + s.name;
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
      if (x.key == "command" || x.key == "code" || x.key == "environment" ||
          x.key == "environment_variables" || x.key == "distribution" || x.key == "resources") {
        if (x.key == "command" &&
            x.value.IsScalar())  // a component's inputs that the sweep samples
          for (const auto& n : search_names)
            x.value.scalar = ReplaceAll(
                ReplaceAll(x.value.scalar, "${{inputs." + n + "}}", "${{search_space." + n + "}}"),
                "${{ inputs." + n + " }}", "${{search_space." + n + "}}");
        trial.map.push_back(x);
      } else if (x.key != "limits") {
        sw.map.push_back(x);
      }
    }
    sw.map.push_back({"trial", m.line, m.column, trial});
    for (const char* k :
         {"sampling_algorithm", "search_space", "objective", "limits", "early_termination"})
      if (const YNode* x = v.Get(k)) sw.map.push_back({k, x->line, x->column, *x});
    step_spec = ParseSweep(sw);
  } else {
    step_spec = ParseCommandJob(m);
  }
  in_step_ = false;
  in_sweep_ = false;
  d_.PrefixSince(mark, field + ": ");
  if (!step_spec) return;
  s.spec = ToJson(*step_spec);
  if (const YNode* det =
          s.component && s.component->IsMap() ? s.component->Get("is_deterministic") : nullptr)
    s.is_deterministic = AsBool(*det).value_or(true);
  if (const YNode* det = v.Get("is_deterministic"))
    s.is_deterministic = AsBool(*det).value_or(true);
  if (const YNode* r = v.Get("retry_settings"); r && !r->IsNull()) {
    if (!r->IsMap()) {
      Error(*r, field + ".retry_settings: expected {max_retries: N, timeout: seconds}, got " +
                    r->TypeName());
    } else {
      CheckKeys(*r, {"max_retries", "timeout"}, field + ".retry_settings.");
      if (const YNode* mr = r->Get("max_retries"))
        if (auto x = NonNegativeInt(*mr, field + ".retry_settings.max_retries")) {
          if (*x > 100)
            Error(*mr,
                  field + ".retry_settings.max_retries: at most 100, got " + std::to_string(*x));
          else
            s.retry["max_retries"] = *x;
        }
      if (const YNode* t = r->Get("timeout"))
        if (auto x = PositiveInt(*t, field + ".retry_settings.timeout")) s.retry["timeout"] = *x;
    }
  }
}

// A binding names a step: the steps form a graph, which must have no cycle (said where it closes).
// The steps in an order where each comes after every step it reads from.
std::vector<size_t> JobParser::StepOrder(const std::vector<Step>& steps,
                                         const std::map<std::string, size_t>& index) {
  std::vector<size_t> order;
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
        // Said where the cycle closes: the binding of the step that reads from one on its own
        // path.
        Error(*steps[i].binding_nodes.at(input),
              "jobs." + steps[i].name + ".inputs." + input + ": the steps form a cycle: " +
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
  return order;
}

std::optional<JobSpec> JobParser::ParsePipeline(YNode& root) {
  JobSpec spec;
  spec.type = "pipeline";
  CheckKeys(root, kPipelineTopKeys, "");
  ParseIdentity(root, spec);
  ParseInputs(root, spec);
  ParseOutputs(root, spec);
  ParseCompute(root, spec);
  PipelineContext ctx;
  ctx.default_compute = root.Get("compute");
  nlohmann::json settings = ParsePipelineSettings(root, spec, ctx);
  const YNode* jobs = root.Get("jobs");
  if (!jobs || !jobs->IsMap() || jobs->map.empty()) {
    if (jobs && !jobs->IsMap())
      Error(*jobs, "jobs: expected a mapping of step names to steps, got " + jobs->TypeName());
    else if (jobs)
      Error(*jobs, "jobs: a pipeline needs at least one step");
    else
      d_.Error(root.file, 1, 1, "missing required key 'jobs' (the pipeline's steps)");
    return std::nullopt;
  }
  ctx.parent_inputs = root.Get("inputs");
  ctx.parent_outputs = root.Get("outputs");
  std::vector<Step> steps = DeclareSteps(*jobs, ctx.parent_outputs);
  ctx.steps = &steps;
  for (size_t i = 0; i < steps.size(); ++i) ctx.index[steps[i].name] = i;
  for (const auto& s : steps) ctx.step_names.push_back(s.name);

  // Second pass: each step as a job of its own.
  for (Step& s : steps) {
    const YNode& v = s.entry->value;
    std::set<std::string> search_names;  // a sweep step's: the inputs it samples
    if (s.type == "sweep")
      if (const YNode* ss = v.Get("search_space"); ss && ss->IsMap())
        for (const auto& x : ss->map) search_names.insert(x.key);
    YNode m = StepAsJob(s, spec, ctx);
    const YNode* given = v.Get("inputs");
    PutKey(m, "inputs", StepInputs(s, search_names, ctx), given ? given->line : v.line,
           given ? given->column : v.column);
    PutKey(m, "outputs", StepOutputs(s, ctx), 0, 0);
    ReadStep(s, m, search_names);
  }
  std::vector<size_t> order = StepOrder(steps, ctx.index);
  const YNode* parent_outputs = ctx.parent_outputs;
  const nlohmann::json& out_map = ctx.out_map;
  if (parent_outputs && parent_outputs->IsMap())
    for (const auto& o : parent_outputs->map)
      if (!out_map.contains(o.key))
        Warning(o.value.IsNull() ? *parent_outputs : o.value,
                "outputs." + o.key + ": no step binds to this output (${{parent.outputs." + o.key +
                    "}}); it stays empty");
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
    js.push_back({{"name", s.name},
                  {"type", s.type},
                  {"spec", s.spec},
                  {"component", s.component_id},
                  {"is_deterministic", s.is_deterministic},
                  {"retry", s.retry},
                  {"bindings", bindings},
                  {"after", nlohmann::json(std::vector<std::string>(after.begin(), after.end()))},
                  {"code", s.spec.value("code", "")}});
  }
  spec.pipeline = {{"settings", settings}, {"steps", js}, {"outputs", out_map}};
  return spec;
}

// A component file on its own (`cairn component create`): read as the command job it stands for,
// its data inputs standing in for what steps will bind.
std::optional<ComponentInfo> JobParser::ParseComponent(YNode& root) {
  if (!root.IsMap()) {
    Error(root, "a component file must be a mapping, got " + root.TypeName());
    return std::nullopt;
  }
  CheckKeys(root, kComponentKeys, "");
  ComponentInfo info;
  if (const YNode* t = root.Get("type"); t && ToLower(t->scalar) != "command")
    Error(*t, "type: '" + t->scalar + "' components are not supported (a command component)");
  const YNode* nm = root.Get("name");
  if (!nm)
    d_.Error(root.file, 1, 1, "missing required key 'name' (the component's name)");
  else
    info.name = Str(*nm, "name");
  if (!options_.name.empty()) info.name = options_.name;
  if (!info.name.empty() && !IsValidName(info.name))
    Error(nm ? *nm : root, "name: '" + info.name + "' is not a valid component name");
  if (const YNode* v = root.Get("version")) info.version = Str(*v, "version");
  if (const YNode* v = root.Get("display_name")) info.display_name = Str(*v, "display_name");
  if (const YNode* v = root.Get("description")) info.description = Str(*v, "description");
  if (const YNode* v = root.Get("is_deterministic")) {
    auto b = AsBool(*v);
    if (!b)
      Error(*v, "is_deterministic: expected true or false");
    else
      info.is_deterministic = *b;
  }
  YNode m;
  m.kind = YNode::Kind::kMap;
  m.file = root.file;
  m.line = root.line;
  m.column = root.column;
  for (const auto& x : root.map)
    if (x.key == "command" || x.key == "code" || x.key == "environment" ||
        x.key == "environment_variables" || x.key == "resources" || x.key == "distribution" ||
        x.key == "limits" || x.key == "outputs")
      m.map.push_back(x);
  YNode ins;
  ins.kind = YNode::Kind::kMap;
  ins.file = root.file;
  info.inputs = nlohmann::json::object();
  if (const YNode* decls = root.Get("inputs"); decls && !decls->IsNull()) {
    if (!decls->IsMap()) {
      Error(*decls,
            "inputs: expected a mapping of input names to declarations, got " + decls->TypeName());
    } else {
      for (const auto& d : decls->map) {
        if (!d.value.IsMap()) {
          Error(d.value, "inputs." + d.key +
                             ": expected a declaration such as {type: uri_folder} or {type: "
                             "integer, default: 3}");
          continue;
        }
        CheckKeys(d.value, {"type", "default", "optional", "description", "min", "max", "enum"},
                  "inputs." + d.key + ".");
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
          if (const YNode* o = d.value.Get("optional"))
            in.map.push_back({"optional", d.line, d.column, *o});
        } else {
          in.map.erase(std::remove_if(in.map.begin(), in.map.end(),
                                      [](const YEntry& y) {
                                        return y.key == "min" || y.key == "max" || y.key == "enum";
                                      }),
                       in.map.end());
        }
        ins.map.push_back({d.key, d.line, d.column, in});
      }
    }
  }
  m.map.push_back({"inputs", root.line, root.column, ins});
  info.outputs = nlohmann::json::object();
  if (const YNode* o = root.Get("outputs"); o && o->IsMap())
    for (const auto& x : o->map)
      info.outputs[x.key] =
          x.value.IsNull() ? nlohmann::json{{"type", "uri_folder"}} : YamlToJson(x.value);
  in_step_ = true;
  auto spec = ParseCommandJob(m);
  in_step_ = false;
  if (!spec || d_.HasErrors()) return std::nullopt;
  info.code = spec->code;
  info.code_snapshot = spec->code_snapshot;
  info.command = spec->command;
  return info;
}

// A command component (a file of its own, or a registered one) as the step that uses it: its YAML
// root.
bool JobParser::LoadComponent(const YNode& ref, const std::string& field, Step& s) {
  if (ref.IsMap()) {  // inline component
    s.component = &ref;
    s.component_id = "inline";
    CheckKeys(ref, kComponentKeys, field + ".");
    return true;
  }
  if (!ref.IsScalar()) {
    Error(ref,
          field +
              ": expected file:<path>, azureml:<name>:<version> or azureml:<name>@latest, got " +
              ref.TypeName());
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
        Error(
            ref,
            field + ": '@" + version +
                "' is not a label Cairn knows (azureml:<name>@latest or azureml:<name>:<version>)");
        return false;
      }
      version = "";
    } else if (size_t colon = rest.find(':'); colon != std::string::npos) {
      name = rest.substr(0, colon);
      version = rest.substr(colon + 1);
    }
    if (!options_.resolve_component) {
      Error(ref,
            field + ": '" + r + "' is a registered component; validating it needs the workspace");
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

// A value that is a whole ${{...}} binding (GA's parent.*, the second preview's inputs.* and
// jobs.*).
std::optional<JobParser::Binding> JobParser::ParseBinding(const YNode& n) {
  if (!n.IsScalar()) return std::nullopt;
  std::string t = Trim(n.scalar);
  if (!StartsWith(t, "${{") || !EndsWith(t, "}}") || t.find("${{", 3) != std::string::npos)
    return std::nullopt;
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

bool JobParser::IsLiteralType(const std::string& t) {
  return t == "string" || t == "integer" || t == "number" || t == "boolean";
}

std::string JobParser::Listing(const YNode* map, const std::string& what) {
  if (!map || !map->IsMap() || map->map.empty()) return " (the pipeline has no " + what + ")";
  std::vector<std::string> names;
  for (const auto& e : map->map) names.push_back(e.key);
  return " (its " + what + ": " + Join(names, ", ") + ")";
}

// One input of a step: a binding (to the pipeline's input or another step's output), a literal or
// data.
void JobParser::BindInput(Step& s, const std::string& name, const YNode& value, const YNode* decl,
                          const std::string& field, const YNode* parent_inputs,
                          const std::vector<Step>& steps,
                          const std::map<std::string, size_t>& index,
                          const std::vector<std::string>& step_names, YNode& ins) {
  std::string decl_type =
      decl && decl->IsMap() && decl->Get("type") ? decl->Get("type")->scalar : "";
  const YNode* bound = &value;
  std::string mode;
  if (value.IsMap() && value.Get("path") && ParseBinding(*value.Get("path"))) {
    bound = value.Get("path");
    if (const YNode* md = value.Get("mode")) mode = md->scalar;
    if (const YNode* ty = value.Get("type"); ty && decl_type.empty()) decl_type = ty->scalar;
  }
  auto b = ParseBinding(*bound);
  if (b && !StartsWith(b->expression, "parent."))
    generation_p2_ = true;  // the second preview's ${{inputs.x}}
  if (!b && value.IsScalar() && value.scalar.find("${{") != std::string::npos) {
    Error(value, field +
                     ": a binding must be the whole value, as ${{parent.inputs.<name>}} or "
                     "${{parent.jobs.<step>.outputs.<name>}}; got \"" +
                     value.scalar + "\"");
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
      Error(value, field + ": the component declares a " + decl_type +
                       " input; give a value, not a mapping");
      return;
    }
    YNode lit = value;
    if (decl_type == "string" && lit.IsScalar()) lit.quoted = true;
    ins.map.push_back({name, value.line, value.column, lit});
    return;
  }
  if (b->kind == "parent_input") {
    const YNode* pi =
        parent_inputs && parent_inputs->IsMap() ? parent_inputs->Get(b->name) : nullptr;
    if (!pi) {
      std::vector<std::string> names;
      if (parent_inputs && parent_inputs->IsMap())
        for (const auto& e : parent_inputs->map) names.push_back(e.key);
      std::string near = ClosestMatch(b->name, names);
      Error(*bound, field + ": ${{" + b->expression + "}} names no input of the pipeline" +
                        (near.empty() ? Listing(parent_inputs, "inputs")
                                      : " (did you mean '" + near + "'?)"));
      return;
    }
    bool parent_literal =
        pi->IsScalar() || pi->IsNull() ||
        (pi->IsMap() && pi->Get("type") && IsLiteralType(pi->Get("type")->scalar));
    std::string parent_type = pi->IsMap() && pi->Get("type") ? pi->Get("type")->scalar
                              : parent_literal               ? "string"
                                                             : "uri_folder";
    if (!decl_type.empty() && IsLiteralType(decl_type) != parent_literal)
      Error(*bound, field + ": type mismatch: the pipeline's input '" + b->name + "' is " +
                        (parent_literal ? "a value" : "data (" + parent_type + ")") +
                        " but the component's input is " +
                        (IsLiteralType(decl_type) ? "a " + decl_type : "data (" + decl_type + ")"));
    else if (!decl_type.empty() && !parent_literal && !CompatibleData(parent_type, decl_type))
      Error(*bound, field + ": type mismatch: the pipeline's input '" + b->name + "' is " +
                        parent_type + " but the component's input is " + decl_type);
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
                        (near.empty() ? " (the steps: " + Join(step_names, ", ") + ")"
                                      : " (did you mean '" + near + "'?)"));
      return;
    }
    if (b->step == s.name) {
      Error(*bound, field + ": the steps form a cycle: " + s.name + " -> " + s.name +
                        " (a step cannot read its own outputs)");
      return;
    }
    const Step& from = steps[it->second];
    auto o = from.outputs.find(b->name);
    if (o == from.outputs.end()) {
      std::vector<std::string> names;
      for (const auto& [k, _] : from.outputs)
        if (k != "default") names.push_back(k);
      std::string near = ClosestMatch(b->name, names);
      Error(*bound, field + ": ${{" + b->expression + "}}: step '" + b->step + "' has no output '" +
                        b->name + "'" +
                        (near.empty() ? " (its outputs: " + Join(names, ", ") + ")"
                                      : " (did you mean '" + near + "'?)"));
      return;
    }
    if (!decl_type.empty() && (IsLiteralType(decl_type) || !CompatibleData(o->second, decl_type))) {
      Error(*bound, field + ": type mismatch: jobs." + b->step + ".outputs." + b->name + " is " +
                        o->second + " but the input is " + decl_type);
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
    in.map.push_back(
        {"type", bound->line, bound->column, scalar(decl_type.empty() ? o->second : decl_type)});
    in.map.push_back({"path", bound->line, bound->column,
                      scalar("azureml://jobs/" + b->step + "/outputs/" + b->name)});
    if (!mode.empty()) in.map.push_back({"mode", bound->line, bound->column, scalar(mode)});
    ins.map.push_back({name, value.line, value.column, in});
    return;
  }
  Error(*bound, field + ": ${{" + b->expression +
                    "}} is not an input binding (use ${{parent.inputs.<name>}} or "
                    "${{parent.jobs.<step>.outputs.<name>}})");
}

bool JobParser::CompatibleData(const std::string& produced, const std::string& wanted) {
  if (produced == wanted) return true;
  // A folder may hold an MLTable or a model; a file is not a folder.
  if (produced == "uri_folder")
    return wanted == "mltable" || wanted == "mlflow_model" || wanted == "custom_model" ||
           wanted == "triton_model";
  if (wanted == "uri_folder") return produced != "uri_file";
  return false;
}

bool JobParser::IsValidStepName(const std::string& s) {
  if (s.empty() || s.size() > 100 || !isalpha(static_cast<unsigned char>(s[0]))) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
  });
}

}  // namespace cairn::spec::detail
