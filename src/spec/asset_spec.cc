#include "spec/asset_spec.h"

#include <algorithm>

#include "base/fs.h"
#include "base/util.h"
#include "spec/yaml_tree.h"

namespace cairn::spec {

using nlohmann::json;

namespace {

const std::vector<std::string> kDataTypes = {"uri_file", "uri_folder", "mltable"};
const std::vector<std::string> kModelTypes = {"custom_model", "mlflow_model", "triton_model"};

bool IsName(const std::string& s) {
  if (s.empty() || s.size() > 255 || !isalnum(static_cast<unsigned char>(s[0]))) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
  });
}

std::vector<std::string> KeysFor(const std::string& kind) {
  std::vector<std::string> common = {"$schema", "name", "version", "description", "tags"};
  std::vector<std::string> more;
  if (kind == "data")
    more = {"type", "path", "local_path", "paths", "datastore", "properties", "stage"};
  else if (kind == "model")
    more = {"type",      "path",    "local_path", "stage",           "properties",
            "datastore", "flavors", "job_name",   "utc_time_created"};
  else if (kind == "datastore")
    more = {"type", "path", "credentials"};
  else
    more = {"image",     "conda_file",       "build",     "docker",
            "os_type",   "inference_config", "datastore", "environment_variables",
            "properties"};
  common.insert(common.end(), more.begin(), more.end());
  return common;
}

}  // namespace

json ToJson(const AssetSpec& a) {
  json j = {
      {"name", a.name}, {"version", a.version}, {"description", a.description}, {"tags", a.tags}};
  if (a.kind == "data" || a.kind == "model") {
    j["type"] = a.type;
    j["path"] = a.path;
    if (!a.stage.empty()) j["stage"] = a.stage;
  } else if (a.kind == "environment") {
    const EnvironmentSpec& e = a.environment;
    if (!e.image.empty()) j["image"] = e.image;
    if (!e.conda_file.empty()) j["conda_file"] = e.conda_file;
    if (!e.build_path.empty())
      j["build"] = {{"path", e.build_path}, {"dockerfile_path", e.dockerfile_path}};
    j["os_type"] = a.os_type.empty() ? "linux" : a.os_type;
  } else if (a.kind == "datastore") {
    j = {{"name", a.name},
         {"type", a.datastore_type},
         {"path", a.path},
         {"description", a.description}};
  }
  return j;
}

void ValidateAsset(AssetSpec& a, const std::string& file, Diagnostics& d, bool check_paths) {
  auto err = [&](const std::string& m) { d.Error(file, 0, 0, m); };
  if (a.name.empty())
    err("name: required");
  else if (!IsName(a.name))
    err("name: \"" + a.name +
        "\" must start with a letter or digit and hold only letters, digits, '-', '_' and '.'");
  if (!a.version.empty() && !IsName(a.version))
    err("version: \"" + a.version + "\" must hold only letters, digits, '-', '_' and '.'");
  if (a.kind == "data") {
    if (a.type.empty()) a.type = "uri_folder";
    if (std::find(kDataTypes.begin(), kDataTypes.end(), a.type) == kDataTypes.end())
      err("type: expected uri_file, uri_folder or mltable, got \"" + a.type + "\"");
  } else if (a.kind == "model") {
    if (a.type.empty()) a.type = "custom_model";
    if (std::find(kModelTypes.begin(), kModelTypes.end(), a.type) == kModelTypes.end())
      err("type: expected custom_model, mlflow_model or triton_model, got \"" + a.type + "\"");
  } else if (a.kind == "datastore") {
    if (a.datastore_type.empty()) a.datastore_type = "local";
    if (a.datastore_type != "local")
      err("type: Cairn's datastores are folders on this machine or a shared filesystem (type: "
          "local), got \"" +
          a.datastore_type + "\"");
  }
  if ((a.kind == "data" || a.kind == "model" || a.kind == "datastore") && a.path.empty())
    err("path: required");
  if (a.kind == "datastore" && !a.path.empty() && !IsDir(a.path))
    err("path: " + a.path + " is not a folder on this machine");
  if ((a.kind == "data" || a.kind == "model") && !a.path.empty() && check_paths) {
    a.path_kind = ClassifyPath(a.path);
    if (a.path_kind == PathKind::kLocal && !PathExists(a.path))
      err("path: no such file or folder " + a.path);
    if (a.kind == "data" && a.type == "uri_file" && a.path_kind == PathKind::kLocal &&
        IsDir(a.path))
      err("path: " + a.path + " is a folder, but type is uri_file");
    if (a.kind == "data" && a.type == "mltable" && a.path_kind == PathKind::kLocal &&
        !PathExists(a.path + "/MLTable"))
      err("path: an mltable asset is a folder with an MLTable file; there is none in " + a.path);
    if (a.path_kind == PathKind::kRuns && a.kind == "data")
      err("path: runs:/ URIs name models, not data");
  }
  if (a.kind == "environment" && a.environment.image.empty() && a.environment.build_path.empty())
    err("an environment needs --image or --build-context (image: or build: in its file)");
}

std::optional<AssetSpec> ParseAssetText(const std::string& kind, const std::string& text,
                                        const std::string& file, const std::string& base_dir,
                                        const std::vector<std::string>& overrides, Diagnostics& d) {
  auto root = ParseYaml(text, file, d);
  if (!root) return std::nullopt;
  for (const auto& o : overrides) ApplyOverride(*root, o, d);
  if (!root->IsMap()) {
    d.Error(file, root->line, root->column,
            "a " + kind + " file must be a mapping, got " + root->TypeName());
    return std::nullopt;
  }
  if (kind == "environment" && (root->Get("channels") || root->Get("dependencies"))) {
    d.Error(file, 1, 1,
            "It looks like you are trying to specify a conda file for --file. Use --conda-file "
            "with --image, or conda_file: in an environment file.");
    return std::nullopt;
  }
  AssetSpec a;
  a.kind = kind;
  std::vector<std::string> keys = KeysFor(kind);
  auto scalar = [&](const YEntry& e) -> std::string {
    if (!e.value.IsScalar()) {
      d.Error(file, e.value.line, e.value.column,
              e.key + ": expected a string, got " + e.value.TypeName());
      return "";
    }
    return e.value.scalar;
  };
  auto local = [&](const std::string& p) {
    return ClassifyPath(p) == PathKind::kLocal
               ? AbsPath(StartsWith(p, "file:") ? p.substr(5) : p, base_dir)
               : p;
  };
  int path_line = 0, path_col = 0;
  for (const auto& e : root->map) {
    if (std::find(keys.begin(), keys.end(), e.key) == keys.end()) {
      std::string near = ClosestMatch(e.key, keys);
      d.Error(
          file, e.line, e.column,
          "unknown key '" + e.key + "'" + (near.empty() ? "" : " (did you mean '" + near + "'?)"));
      continue;
    }
    if (e.key == "name")
      a.name = scalar(e);
    else if (e.key == "version")
      a.version = scalar(e);
    else if (e.key == "description")
      a.description = scalar(e);
    else if (e.key == "stage")
      a.stage = scalar(e);
    else if (e.key == "type" && kind == "datastore")
      a.datastore_type = ToLower(scalar(e));
    else if (e.key == "type")
      a.type = ToLower(scalar(e));
    else if (e.key == "tags") {
      if (!e.value.IsMap()) {
        d.Error(file, e.value.line, e.value.column,
                "tags: expected a mapping, got " + e.value.TypeName());
        continue;
      }
      for (const auto& t : e.value.map) a.tags[t.key] = t.value.IsScalar() ? t.value.scalar : "";
    } else if ((e.key == "path" || e.key == "local_path") && kind != "environment") {
      a.path = local(scalar(e));
      path_line = e.value.line;
      path_col = e.value.column;
    } else if (e.key == "paths") {  // preview 2 datasets: paths: [{file: ...}] or [{folder: ...}]
      const YNode& v = e.value;
      if (!v.IsSeq() || v.seq.size() != 1 || !v.seq[0].IsMap() || v.seq[0].map.size() != 1 ||
          (v.seq[0].map[0].key != "file" && v.seq[0].map[0].key != "folder")) {
        d.Error(file, v.line, v.column,
                "paths: expected one entry, {file: <path>} or {folder: <path>}");
        continue;
      }
      const YEntry& p = v.seq[0].map[0];
      a.path = local(scalar(p));
      if (a.type.empty()) a.type = p.key == "file" ? "uri_file" : "uri_folder";
      path_line = p.value.line;
      path_col = p.value.column;
    }
  }
  if (kind == "environment") {
    auto env = ParseEnvironmentNode(*root, base_dir, d);
    if (!env) return std::nullopt;
    a.environment = *env;
    if (const YNode* os = root->Get("os_type"); os && os->IsScalar())
      a.os_type = ToLower(os->scalar);
  }
  if (d.HasErrors()) return std::nullopt;
  Diagnostics v;
  ValidateAsset(a, file, v);
  for (const auto& x : v.all()) {
    bool at_path = StartsWith(x.message, "path:");
    d.Error(file, at_path ? path_line : 1, at_path ? path_col : 1, x.message);
  }
  if (d.HasErrors()) return std::nullopt;
  return a;
}

std::optional<AssetSpec> ParseAssetFile(const std::string& kind, const std::string& path,
                                        const std::vector<std::string>& overrides, Diagnostics& d) {
  auto text = ReadFile(path, YamlLimits().max_bytes);
  if (!text.ok()) {
    d.Error(path, 0, 0, text.status().message());
    return std::nullopt;
  }
  return ParseAssetText(kind, *text, path, Dirname(AbsPath(path)), overrides, d);
}

std::optional<AssetRef> ParseAssetRef(const std::string& ref) {
  AssetRef r;
  if (StartsWith(ref, "azureml://registries/")) {
    // azureml://registries/<r>/<kind>s/<name>/(versions/<v>|labels/latest)
    auto parts = Split(ref.substr(21), '/');
    if (parts.size() != 5 || (parts[3] != "versions" && parts[3] != "labels")) return std::nullopt;
    r.registry = parts[0];
    r.name = parts[2];
    r.version = parts[3] == "versions" ? parts[4] : "";
    return r;
  }
  if (!StartsWith(ref, "azureml:")) return std::nullopt;
  std::string rest = ref.substr(8);
  if (StartsWith(rest, "/subscriptions/")) {  // ARM id: .../<kind>/<name>/versions/<v>
    auto parts = Split(rest, '/');
    if (parts.size() < 4 || parts[parts.size() - 2] != "versions") return std::nullopt;
    r.name = parts[parts.size() - 3];
    r.version = parts.back();
    return r;
  }
  if (auto at = rest.rfind("@latest"); at != std::string::npos && at + 7 == rest.size()) {
    r.name = rest.substr(0, at);
  } else if (auto colon = rest.find(':'); colon != std::string::npos) {
    r.name = rest.substr(0, colon);
    r.version = rest.substr(colon + 1);
    if (r.version.empty()) return std::nullopt;
  } else {
    r.name = rest;  // no version: the latest, as Azure ML resolves a bare name
  }
  if (r.name.empty()) return std::nullopt;
  return r;
}

}  // namespace cairn::spec
