// Compute targets as users declare them (`cairn compute create -f cluster.yml` or flags). Plain
// values.
#pragma once

#include <map>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "spec/diagnostics.h"

namespace cairn::spec {

struct ComputeSpec {
  std::string name;
  std::string type = "amlcompute";  // amlcompute | computeinstance | local (lower case)
  std::string size;
  int min_instances = 0;
  int max_instances = 4;  // the CLI's default
  int idle_time_before_scale_down = 120;
  std::string tier = "dedicated";
  std::string location;
  std::string description;
  std::map<std::string, std::string> tags;
  nlohmann::json extra = nlohmann::json::object();  // identity, ssh settings...: kept, unused
};

// What each instance of a job gets: from resources.instance_type (one of the compute's
// instance_types, else an Azure VM size), else the compute's default_instance_type, else its size
// (amlcompute --size).
struct InstanceShape {
  std::string name;       // as the table spells it; empty when nothing names a shape
  std::string from;       // "resources.instance_type", "default_instance_type", "size" or ""
  bool known = false;     // false: a name neither the compute nor the size table knows (no GPU)
  int gpus = 0;           // per instance
  std::string gpu_model;  // from the size table
  std::string source;     // where the figures come from
  double cpus =
      0;  // an instance type's own CPUs and memory (what Slurm is asked for); 0/"" for a VM size
  std::string memory;  // as written: "128Gi"
};
// A Kubernetes-style size ("128Gi", "512Mi", "64G") as Slurm's --mem writes it ("128G", "512M"); ""
// when it is not one.
std::string SlurmMemory(const std::string& k8s);
InstanceShape ShapeFor(const nlohmann::json& compute_extra, const std::string& compute_size,
                       const std::string& instance_type);
std::vector<std::string> KeysOf(const nlohmann::json& object);

nlohmann::json ToJson(const ComputeSpec& c);
// InvalidArgument when a field has the wrong JSON type (the body of a request is outside input).
Result<ComputeSpec> ComputeSpecFromJson(const nlohmann::json& j);

// Parses a compute YAML; `overrides` are --set items. Returns nullopt after adding errors.
std::optional<ComputeSpec> ParseComputeText(const std::string& text, const std::string& file,
                                            const std::vector<std::string>& overrides,
                                            Diagnostics& d);
std::optional<ComputeSpec> ParseComputeFile(const std::string& path,
                                            const std::vector<std::string>& overrides,
                                            Diagnostics& d);
// Checks the values (from a file or from flags); adds errors located at `file`.
void ValidateCompute(const ComputeSpec& c, const std::string& file, Diagnostics& d);

}  // namespace cairn::spec
