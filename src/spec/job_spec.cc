#include "spec/job_spec.h"

#include <algorithm>
#include <map>

#include "base/util.h"

namespace cairn::spec {

using nlohmann::json;

namespace {
PathKind PathKindFromName(const std::string& s) {
  for (PathKind k : {PathKind::kLocal, PathKind::kHttp, PathKind::kAsset, PathKind::kDatastore,
                     PathKind::kJobOutput, PathKind::kRuns, PathKind::kCloud, PathKind::kNone})
    if (s == PathKindName(k)) return k;
  return PathKind::kNone;
}
}  // namespace

json ToJson(const JobSpec& s) {
  json j;
  j["type"] = s.type;
  j["generation"] = s.generation;
  if (!s.sweep.is_null()) j["sweep"] = s.sweep;
  if (!s.pipeline.is_null()) j["pipeline"] = s.pipeline;
  j["name"] = s.name;
  j["display_name"] = s.display_name;
  j["experiment_name"] = s.experiment_name;
  j["description"] = s.description;
  j["tags"] = s.tags;
  j["properties"] = s.properties;
  j["command"] = s.command;
  j["code"] = s.code;
  if (!s.code_snapshot.empty()) j["code_snapshot"] = s.code_snapshot;
  j["environment"] = {{"reference", s.environment.reference},
                      {"image", s.environment.image},
                      {"conda_file", s.environment.conda_file},
                      {"build_path", s.environment.build_path},
                      {"dockerfile_path", s.environment.dockerfile_path}};
  j["environment_variables"] = s.environment_variables;
  j["compute"] = s.compute;
  j["resources"] = {{"instance_count", s.instance_count},
                    {"instance_type", s.instance_type},
                    {"shm_size", s.shm_size},
                    {"properties", s.resources_properties}};
  j["distribution"] = s.distribution;
  j["limits"] = {{"timeout", s.timeout_seconds}};
  json in = json::object();
  for (const auto& [k, v] : s.inputs) {
    json x;
    if (v.literal) {
      x = {{"literal", true}, {"value", v.value}, {"type", v.literal_type}};
    } else {
      x = {{"literal", false},
           {"type", v.type},
           {"path", v.path},
           {"path_kind", PathKindName(v.path_kind)},
           {"mode", v.mode}};
    }
    x["optional"] = v.optional;
    if (!v.description.empty()) x["description"] = v.description;
    in[k] = x;
  }
  j["inputs"] = in;
  json out = json::object();
  for (const auto& [k, v] : s.outputs) {
    out[k] = {{"type", v.type},
              {"mode", v.mode},
              {"path", v.path},
              {"name", v.asset_name},
              {"version", v.asset_version},
              {"description", v.description}};
  }
  j["outputs"] = out;
  j["services"] = s.services;
  j["identity"] = s.identity;
  j["queue_settings"] = s.queue_settings;
  return j;
}

Result<JobSpec> JobSpecFromJson(const json& j) {
  try {
    JobSpec s;
    s.type = j.value("type", "command");
    s.generation = j.value("generation", "GA");
    if (j.contains("sweep")) s.sweep = j["sweep"];
    if (j.contains("pipeline")) s.pipeline = j["pipeline"];
    s.name = j.value("name", "");
    s.display_name = j.value("display_name", "");
    s.experiment_name = j.value("experiment_name", "");
    s.description = j.value("description", "");
    if (j.contains("tags")) s.tags = j["tags"].get<std::map<std::string, std::string>>();
    if (j.contains("properties"))
      s.properties = j["properties"].get<std::map<std::string, std::string>>();
    s.command = j.at("command").get<std::string>();
    s.code = j.value("code", "");
    s.code_snapshot = j.value("code_snapshot", "");
    if (j.contains("environment")) {
      const json& e = j["environment"];
      s.environment.reference = e.value("reference", "");
      s.environment.image = e.value("image", "");
      s.environment.conda_file = e.value("conda_file", "");
      s.environment.build_path = e.value("build_path", "");
      s.environment.dockerfile_path = e.value("dockerfile_path", "");
    }
    if (j.contains("environment_variables"))
      s.environment_variables =
          j["environment_variables"].get<std::map<std::string, std::string>>();
    s.compute = j.value("compute", "");
    if (j.contains("resources")) {
      const json& r = j["resources"];
      s.instance_count = r.value("instance_count", 1);
      s.instance_type = r.value("instance_type", "");
      s.shm_size = r.value("shm_size", "");
      if (r.contains("properties") && r["properties"].is_object())
        s.resources_properties = r["properties"];
    }
    if (s.instance_count < 1) return InvalidArgument("resources.instance_count must be positive");
    // The same bounds as the job file's parser (a client may send its own JSON): counts that name
    // processes to start or rows every list shows.
    if (s.instance_count > kMaxInstances)
      return InvalidArgument("resources.instance_count: at most " + std::to_string(kMaxInstances));
    if (s.tags.size() > kMaxTags || s.properties.size() > kMaxTags)
      return InvalidArgument("tags and properties: at most " + std::to_string(kMaxTags) + " each");
    s.distribution = j.value("distribution", json());
    if (s.distribution.is_object()) {
      for (const char* k :
           {"process_count_per_instance", "worker_count", "parameter_server_count"}) {
        const json& v = s.distribution.contains(k) ? s.distribution[k] : json();
        if (!v.is_null() && (!v.is_number_integer() || v.get<long long>() < 0 ||
                             v.get<long long>() > kMaxProcessesPerInstance))
          return InvalidArgument(std::string("distribution.") + k + ": at most " +
                                 std::to_string(kMaxProcessesPerInstance));
      }
    }
    if (j.contains("limits")) s.timeout_seconds = j["limits"].value("timeout", 0LL);
    if (j.contains("inputs")) {
      for (const auto& [k, x] : j["inputs"].items()) {
        InputSpec in;
        in.literal = x.value("literal", false);
        in.optional = x.value("optional", false);
        in.description = x.value("description", "");
        if (in.literal) {
          in.value = x.value("value", "");
          in.literal_type = x.value("type", "string");
        } else {
          in.type = x.value("type", "uri_folder");
          in.path = x.value("path", "");
          in.path_kind = PathKindFromName(x.value("path_kind", "none"));
          in.mode = x.value("mode", "ro_mount");
        }
        s.inputs[k] = in;
      }
    }
    if (j.contains("outputs")) {
      for (const auto& [k, x] : j["outputs"].items()) {
        OutputSpec o;
        o.type = x.value("type", "uri_folder");
        o.mode = x.value("mode", "rw_mount");
        o.path = x.value("path", "");
        o.asset_name = x.value("name", "");
        o.asset_version = x.value("version", "");
        o.description = x.value("description", "");
        s.outputs[k] = o;
      }
    }
    s.services = j.value("services", json());
    s.identity = j.value("identity", json());
    s.queue_settings = j.value("queue_settings", json());
    // As the parser takes them: a client's JSON gets no value a file could not have.
    if (!s.queue_settings.is_null()) {
      if (!s.queue_settings.is_object())
        return InvalidArgument("queue_settings: expected a mapping");
      const std::map<std::string, std::vector<std::string>> allowed = {
          {"priority", {"low", "medium", "high"}},
          {"job_tier", {"spot", "basic", "standard", "premium"}}};
      for (const auto& [k, v] : s.queue_settings.items()) {
        auto a = allowed.find(k);
        if (a == allowed.end()) return InvalidArgument("queue_settings." + k + ": unknown key");
        if (!v.is_string() ||
            std::find(a->second.begin(), a->second.end(), v.get<std::string>()) == a->second.end())
          return InvalidArgument("queue_settings." + k + ": expected one of " +
                                 Join(a->second, ", "));
      }
    }
    return s;
  } catch (const json::exception& e) {
    return InvalidArgument(std::string("malformed job specification: ") + e.what());
  }
}

}  // namespace cairn::spec
