#include "spec/compute_spec.h"

#include <algorithm>
#include <cctype>
#include <filesystem>

#include "base/fs.h"
#include "base/util.h"
#include "spec/vm_sizes.h"
#include "spec/yaml_tree.h"

namespace cairn::spec {

using nlohmann::json;

json ToJson(const ComputeSpec& c) {
  return {{"name", c.name},
          {"type", c.type},
          {"size", c.size},
          {"min_instances", c.min_instances},
          {"max_instances", c.max_instances},
          {"idle_time_before_scale_down", c.idle_time_before_scale_down},
          {"tier", c.tier},
          {"location", c.location},
          {"description", c.description},
          {"tags", c.tags},
          {"extra", c.extra}};
}

Result<ComputeSpec> ComputeSpecFromJson(const json& j) {
  if (!j.is_object()) return InvalidArgument("a compute must be a JSON object");
  try {
    ComputeSpec c;
    c.name = j.value("name", "");
    c.type = ToLower(j.value("type", "amlcompute"));
    c.size = j.value("size", "");
    c.min_instances = j.value("min_instances", 0);
    c.max_instances = j.value("max_instances", 4);
    c.idle_time_before_scale_down = j.value("idle_time_before_scale_down", 120);
    c.tier = j.value("tier", "dedicated");
    c.location = j.value("location", "");
    c.description = j.value("description", "");
    if (j.contains("tags") && j["tags"].is_object())
      c.tags = j["tags"].get<std::map<std::string, std::string>>();
    if (j.contains("extra")) c.extra = j["extra"];
    return c;
  } catch (const json::exception& e) {
    return InvalidArgument(std::string("malformed compute: ") + e.what());
  }
}

namespace {
const std::vector<std::string> kKeys = {"$schema",
                                        "name",
                                        "type",
                                        "size",
                                        "min_instances",
                                        "max_instances",
                                        "idle_time_before_scale_down",
                                        "tier",
                                        "location",
                                        "description",
                                        "tags",
                                        "identity",
                                        "ssh_settings",
                                        "ssh_public_access_enabled",
                                        "network_settings",
                                        "enable_node_public_ip",
                                        "resource_id",
                                        "schedules",
                                        "create_on_behalf_of",
                                        "idle_time_before_shutdown_minutes",
                                        "idle_time_before_shutdown",
                                        "setup_scripts",
                                        "slurm",
                                        "containers",
                                        "instance_types",
                                        "default_instance_type"};

const std::vector<std::string> kSlurmKeys = {"partition",      "account", "qos",
                                             "sbatch_options", "conf",    "mpirun_options",
                                             "cairn",          "staging", "server_url"};

// `slurm:` of a compute: how jobs reach the cluster. Strings, and lists of strings for the options.
json ParseSlurm(const YNode& n, Diagnostics& d) {
  json out = json::object();
  if (!n.IsMap()) {
    d.Error(n.file, n.line, n.column,
            "slurm: expected a mapping (partition, account, qos, sbatch_options, conf, "
            "mpirun_options, cairn), got " +
                n.TypeName());
    return out;
  }
  for (const auto& e : n.map) {
    if (std::find(kSlurmKeys.begin(), kSlurmKeys.end(), e.key) == kSlurmKeys.end()) {
      std::string near = ClosestMatch(e.key, kSlurmKeys);
      d.Error(n.file, e.line, e.column,
              "slurm: unknown key '" + e.key + "'" +
                  (near.empty() ? "" : " (did you mean '" + near + "'?)"));
      continue;
    }
    const YNode& v = e.value;
    if (e.key == "sbatch_options" || e.key == "mpirun_options") {
      json list = json::array();
      if (v.IsScalar()) {
        for (const auto& part : Split(v.scalar, ' '))
          if (!part.empty()) list.push_back(part);
      } else if (v.IsSeq()) {
        for (const auto& item : v.seq) {
          if (!item.IsScalar()) {
            d.Error(item.file, item.line, item.column,
                    "slurm." + e.key + ": expected strings, got " + item.TypeName());
            continue;
          }
          list.push_back(item.scalar);
        }
      } else {
        d.Error(v.file, v.line, v.column,
                "slurm." + e.key + ": expected a list of options, got " + v.TypeName());
      }
      out[e.key] = list;
    } else if (!v.IsScalar()) {
      d.Error(v.file, v.line, v.column,
              "slurm." + e.key + ": expected a string, got " + v.TypeName());
    } else if (e.key == "staging" && v.scalar != "auto" && v.scalar != "http") {
      d.Error(v.file, v.line, v.column,
              "slurm.staging: expected auto (the workspace folder when the nodes see "
              "it, else over HTTP) or http, got \"" +
                  v.scalar + "\"");
    } else {
      out[e.key] = v.scalar;
    }
  }
  return out;
}

// `instance_types:` of a compute, as Azure ML's Kubernetes compute defines them: name -> {gpus,
// cpus, memory}.
json ParseInstanceTypes(const YNode& n, Diagnostics& d) {
  json out = json::object();
  if (!n.IsMap()) {
    d.Error(
        n.file, n.line, n.column,
        "instance_types: expected a mapping of names to {gpus, cpus, memory}, got " + n.TypeName());
    return out;
  }
  for (const auto& e : n.map) {
    const YNode& v = e.value;
    std::string where = "instance_types." + e.key;
    if (!IsValidName(e.key))
      d.Error(n.file, e.line, e.column, where + ": not a valid instance type name");
    if (!v.IsMap()) {
      d.Error(v.file, v.line, v.column,
              where + ": expected a mapping (gpus, cpus, memory), got " + v.TypeName());
      continue;
    }
    json t = {{"gpus", 0}};
    for (const auto& f : v.map) {
      const YNode& x = f.value;
      if (f.key == "gpus") {
        auto g = AsInt(x);
        if (!g || *g < 0 || *g > 1024)
          d.Error(x.file, x.line, x.column,
                  where + ".gpus: expected a whole number of GPUs, got " +
                      (x.IsScalar() ? "\"" + x.scalar + "\"" : x.TypeName()));
        else
          t["gpus"] = *g;
      } else if (f.key == "cpus") {
        char* end = nullptr;
        double c = x.IsScalar() ? strtod(x.scalar.c_str(), &end) : -1;
        if (!x.IsScalar() || *end != '\0' || !(c > 0))
          d.Error(x.file, x.line, x.column,
                  where + ".cpus: expected a number of CPUs above 0, got " +
                      (x.IsScalar() ? "\"" + x.scalar + "\"" : x.TypeName()));
        else
          t["cpus"] = c;
      } else if (f.key == "memory") {
        if (!x.IsScalar() || x.scalar.empty())
          d.Error(x.file, x.line, x.column,
                  where + ".memory: expected a size such as 128Gi, got " + x.TypeName());
        else
          t["memory"] = x.scalar;
      } else {
        std::string near = ClosestMatch(f.key, {"gpus", "cpus", "memory"});
        d.Error(v.file, f.line, f.column,
                where + ": unknown key '" + f.key + "'" +
                    (near.empty() ? "" : " (did you mean '" + near + "'?)"));
      }
    }
    out[e.key] = t;
  }
  return out;
}

// On error the field keeps `fallback`, so one mistake is reported once, not again by a later check.
int IntField(const YNode& n, const std::string& field, Diagnostics& d, int fallback) {
  auto v = AsInt(n);
  if (!v || *v < 0) {
    d.Error(n.file, n.line, n.column,
            field + ": expected an integer >= 0, got " +
                (n.IsScalar() ? "\"" + n.scalar + "\"" : n.TypeName()));
    return fallback;
  }
  return static_cast<int>(*v);
}
}  // namespace

std::optional<ComputeSpec> ParseComputeText(const std::string& text, const std::string& file,
                                            const std::vector<std::string>& overrides,
                                            Diagnostics& d) {
  auto root = ParseYaml(text, file, d);
  if (!root) return std::nullopt;
  for (const auto& o : overrides) ApplyOverride(*root, o, d);
  if (!root->IsMap()) {
    d.Error(file, root->line, root->column, "a compute file must be a mapping");
    return std::nullopt;
  }
  ComputeSpec c;
  for (const auto& e : root->map) {
    const YNode& v = e.value;
    if (std::find(kKeys.begin(), kKeys.end(), e.key) == kKeys.end()) {
      std::string near = ClosestMatch(e.key, kKeys);
      d.Error(
          file, e.line, e.column,
          "unknown key '" + e.key + "'" + (near.empty() ? "" : " (did you mean '" + near + "'?)"));
      continue;
    }
    if (e.key == "name")
      c.name = v.scalar;
    else if (e.key == "type")
      c.type = ToLower(v.scalar);
    else if (e.key == "size")
      c.size = v.scalar;
    else if (e.key == "min_instances")
      c.min_instances = IntField(v, e.key, d, c.min_instances);
    else if (e.key == "max_instances")
      c.max_instances = IntField(v, e.key, d, c.max_instances);
    else if (e.key == "idle_time_before_scale_down")
      c.idle_time_before_scale_down = IntField(v, e.key, d, c.idle_time_before_scale_down);
    else if (e.key == "tier")
      c.tier = v.scalar;
    else if (e.key == "location")
      c.location = v.scalar;
    else if (e.key == "description")
      c.description = v.scalar;
    else if (e.key == "tags") {
      for (const auto& t : v.map) c.tags[t.key] = t.value.scalar;
    } else if (e.key == "containers") {
      // auto: a job's image environment runs in a container where a runtime is, else on the host;
      // strict: never on the host.
      if (!v.IsScalar() || (v.scalar != "auto" && v.scalar != "strict"))
        d.Error(file, v.line, v.column,
                "containers: expected auto or strict, got " +
                    (v.IsScalar() ? "\"" + v.scalar + "\"" : v.TypeName()));
      else
        c.extra["containers"] = v.scalar;
    } else if (e.key == "instance_types") {
      c.extra["instance_types"] = ParseInstanceTypes(v, d);
    } else if (e.key == "default_instance_type") {
      if (!v.IsScalar())
        d.Error(file, v.line, v.column,
                "default_instance_type: expected a name, got " + v.TypeName());
      else
        c.extra["default_instance_type"] = v.scalar;
    } else if (e.key == "slurm") {
      c.extra["slurm"] = ParseSlurm(v, d);
      // A relative slurm.conf is relative to the compute file, as the file's other paths are.
      std::string conf = c.extra["slurm"].value("conf", "");
      if (!conf.empty() && conf[0] != '/')
        c.extra["slurm"]["conf"] =
            std::filesystem::absolute(std::filesystem::path(file).parent_path() / conf)
                .lexically_normal()
                .string();
    } else if (e.key != "$schema") {
      c.extra[e.key] = YamlToJson(v);  // identity, schedules, ...: kept as written
    }
  }
  // A compute instance is one machine.
  if (c.type == "computeinstance" && !root->Get("max_instances")) c.max_instances = 1;
  if (!root->Get("name")) d.Error(file, 1, 1, "missing required key 'name'");
  if (!root->Get("type")) d.Error(file, 1, 1, "missing required key 'type'");
  ValidateCompute(c, file, d);
  if (d.HasErrors()) return std::nullopt;
  return c;
}

std::optional<ComputeSpec> ParseComputeFile(const std::string& path,
                                            const std::vector<std::string>& overrides,
                                            Diagnostics& d) {
  auto text = ReadFile(path, YamlLimits().max_bytes + 1);
  if (!text.ok()) {
    d.Error(path, 0, 0,
            text.status().code() == Code::kNotFound ? "no such file" : text.status().message());
    return std::nullopt;
  }
  return ParseComputeText(*text, path, overrides, d);
}

void ValidateCompute(const ComputeSpec& c, const std::string& file, Diagnostics& d) {
  if (!c.name.empty() && !IsValidName(c.name))
    d.Error(file, 0, 0, "name: '" + c.name + "' is not a valid compute name");
  if (c.name == "local" || c.name == "serverless")
    d.Error(file, 0, 0, "name: '" + c.name + "' is reserved");
  static const std::vector<std::string> kTypes = {"amlcompute", "computeinstance", "local",
                                                  "slurm"};
  if (std::find(kTypes.begin(), kTypes.end(), c.type) == kTypes.end()) {
    d.Error(file, 0, 0,
            "type: '" + c.type +
                "' is not supported here (supported: amlcompute, computeinstance, local, slurm)");
  }
  if (c.extra.contains("slurm") && c.type != "slurm" && c.type != "amlcompute")
    d.Error(file, 0, 0,
            "slurm: only a compute of type slurm or amlcompute runs on Slurm, not " + c.type);
  if (c.max_instances < 1) d.Error(file, 0, 0, "max_instances: must be at least 1");
  if (std::string def = c.extra.value("default_instance_type", ""); !def.empty()) {
    json types = c.extra.value("instance_types", json::object());
    if (!types.contains(def) && !FindVmSize(def))
      d.Error(file, 0, 0,
              "default_instance_type: '" + def +
                  "' is neither one of the compute's instance_types" +
                  (types.empty() ? "" : " (" + Join(KeysOf(types), ", ") + ")") +
                  " nor an Azure VM size");
  }
  if (c.min_instances > c.max_instances)
    d.Error(file, 0, 0,
            "min_instances (" + std::to_string(c.min_instances) + ") exceeds max_instances (" +
                std::to_string(c.max_instances) + ")");
}

std::vector<std::string> KeysOf(const json& object) {
  std::vector<std::string> out;
  for (const auto& [k, _] : object.items()) out.push_back(k);
  return out;
}

std::string SlurmMemory(const std::string& k8s) {
  size_t digits = 0;
  while (digits < k8s.size() && isdigit(static_cast<unsigned char>(k8s[digits]))) ++digits;
  if (digits == 0 || digits > 12) return "";
  std::string unit = k8s.substr(digits);
  // Slurm's K/M/G/T are powers of 1024, as Kubernetes' Ki/Mi/Gi/Ti are.
  static const std::vector<std::pair<std::string, std::string>> kUnits = {
      {"Ki", "K"}, {"Mi", "M"}, {"Gi", "G"}, {"Ti", "T"},
      {"K", "K"},  {"M", "M"},  {"G", "G"},  {"T", "T"}};
  for (const auto& [from, to] : kUnits)
    if (unit == from) return k8s.substr(0, digits) + to;
  return "";
}

InstanceShape ShapeFor(const json& compute_extra, const std::string& compute_size,
                       const std::string& instance_type) {
  InstanceShape out;
  json types = compute_extra.is_object() ? compute_extra.value("instance_types", json::object())
                                         : json::object();
  auto from_name = [&](const std::string& name, const std::string& how) {
    out.name = name;
    out.from = how;
    if (types.contains(name)) {
      out.gpus = types[name].value("gpus", 0);
      out.cpus = types[name].value("cpus", 0.0);
      out.memory = types[name].value("memory", "");
      out.known = true;
      out.source = "the compute's instance_types";
    } else if (const VmSize* v = FindVmSize(name)) {
      out.name = v->name;
      out.gpus = v->WholeGpus();
      out.gpu_model = v->gpu_model;
      out.known = true;
      out.source = v->source;
    }
  };
  std::string def =
      compute_extra.is_object() ? compute_extra.value("default_instance_type", "") : "";
  if (!instance_type.empty())
    from_name(instance_type, "resources.instance_type");
  else if (!def.empty())
    from_name(def, "default_instance_type");
  else if (!compute_size.empty())
    from_name(compute_size, "size");
  return out;
}

}  // namespace cairn::spec
