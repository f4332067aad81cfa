// Data assets, models, environments and datastores as their YAML files and the CLI's flags describe
// them, in every syntax generation (GA `path`; preview `local_path`, `paths: [{file|folder: ...}]`,
// `build.local_path`). Plain values: copyable, not thread-safe.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "spec/diagnostics.h"
#include "spec/job_spec.h"

namespace cairn::spec {

struct AssetSpec {
  std::string kind;  // data | model | environment | datastore
  std::string name;
  std::string version;  // "" = the next free integer
  std::string description;
  std::map<std::string, std::string> tags;
  // data and model: what it is and where. Local paths are absolute once parsed.
  std::string type;  // data: uri_file | uri_folder | mltable; model: custom_model | mlflow_model |
                     // triton_model
  std::string path;
  PathKind path_kind = PathKind::kNone;
  std::string stage;  // model
  // environment
  EnvironmentSpec environment;
  std::string os_type;  // linux | windows
  // datastore: a folder on this machine or on a shared filesystem
  std::string datastore_type;  // local
};

nlohmann::json ToJson(const AssetSpec& a);

// Checks what a file and the flags share: names, types, the one-of rules, and (with `check_paths`)
// that a local path exists. Adds errors to `d` naming `file` (a YAML file, or "--flags").
void ValidateAsset(AssetSpec& a, const std::string& file, Diagnostics& d, bool check_paths = true);

// Reads an asset file of `kind` (relative paths resolve against its folder). nullopt after errors.
std::optional<AssetSpec> ParseAssetFile(const std::string& kind, const std::string& path,
                                        const std::vector<std::string>& overrides, Diagnostics& d);
std::optional<AssetSpec> ParseAssetText(const std::string& kind, const std::string& text,
                                        const std::string& file, const std::string& base_dir,
                                        const std::vector<std::string>& overrides, Diagnostics& d);

// `azureml:<name>:<version>`, `azureml:<name>@latest`, the ARM long form
// (`.../data/<name>/versions/<v>`) or a registry URI
// (`azureml://registries/<r>/<kind>s/<name>/versions/<v>` or `/labels/latest`): {name, version},
// version "" meaning the latest. nullopt when it is none of these.
struct AssetRef {
  std::string name;
  std::string version;
  std::string registry;  // for registry URIs
};
std::optional<AssetRef> ParseAssetRef(const std::string& ref);

}  // namespace cairn::spec
