// Where data lives (inputs, data assets, models): a path as a job or an asset names it, resolved
// against the workspace to blobs, a URL or a file or folder on this machine. Runs on the scheduler
// thread.
#include <filesystem>

#include <algorithm>

#include "base/settings.h"
#include "base/fs.h"
#include "base/util.h"
#include "compute/data_delivery.h"
#include "compute/run_layout.h"
#include "scheduler/scheduler.h"
#include "spec/asset_spec.h"

namespace cairn::scheduler {

using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// "a/b/../c" would leave the folder it is relative to.
bool EscapesRoot(const std::string& rel) {
  for (const auto& part : Split(rel, '/'))
    if (part == "..") return true;
  return false;
}

std::string StripSlashes(std::string p) {
  while (!p.empty() && p.front() == '/') p.erase(p.begin());
  while (!p.empty() && p.back() == '/') p.pop_back();
  return p;
}

}  // namespace

std::optional<std::pair<std::string, std::string>> ParseDatastoreUri(const std::string& uri) {
  const std::string prefix = "azureml://datastores/";
  if (!StartsWith(uri, prefix)) return std::nullopt;
  std::string rest = uri.substr(prefix.size());
  std::string name = rest.substr(0, rest.find('/'));
  std::string after = rest.size() > name.size() ? rest.substr(name.size() + 1) : "";
  if (name.empty() || !StartsWith(after, "paths")) return std::nullopt;
  return std::make_pair(name, StripSlashes(after.substr(5)));
}

std::string Scheduler::DatastoreFolder(const std::string& name) {
  if (auto d = store_->GetDatastore(name); d.ok()) return d->spec.value("path", "");
  // The built-in datastores Azure ML's files name: folders of the workspace.
  if (IsBuiltinDatastore(name)) return BuiltinDatastoreFolder(config_.workspace, name);
  return "";
}

// azureml:<name>:<version> (or @latest): the asset's storage, located in turn when it names a path.
Result<Scheduler::DataLocation> Scheduler::LocateAsset(const std::string& field,
                                                       const std::string& path,
                                                       const std::string& asset_kind, int depth) {
  DataLocation loc;
  auto ref = spec::ParseAssetRef(path);
  if (!ref)
    return InvalidArgument(field +
                           ": expected azureml:<name>:<version> or azureml:<name>@latest, got \"" +
                           path + "\"");
  auto a = ref->version.empty() ? store_->LatestAsset(asset_kind, ref->name)
                                : store_->GetAsset(asset_kind, ref->name, ref->version);
  if (!a.ok()) return Status(a.status().code(), field + ": " + a.status().message());
  const json& st = a->spec.value("storage", json::object());
  std::string kind = st.value("kind", "");
  if (kind == "blobs") {
    loc.kind = "blobs";
    loc.snapshot = st.value("snapshot", "");
    loc.single_file = st.value("single_file", "");
  } else if (kind == "http") {
    loc.kind = "http";
    loc.url = st.value("url", "");
  } else {
    auto inner = Locate(field, st.value("uri", ""), asset_kind, depth + 1);
    if (!inner.ok()) return inner.status();
    loc = *inner;
  }
  loc.asset = a->name + ":" + a->version;
  loc.type = a->spec.value("type", "");
  return loc;
}

// azureml://datastores/<name>/paths/<path>: a folder of the datastore, or (Azure ML's default
// output location) a job's named output.
Result<Scheduler::DataLocation> Scheduler::LocateDatastore(const std::string& field,
                                                           const std::string& path,
                                                           const std::string& asset_kind,
                                                           int depth) {
  DataLocation loc;
  auto parsed = ParseDatastoreUri(path);
  if (!parsed)
    return InvalidArgument(field + ": expected azureml://datastores/<name>/paths/<path>, got \"" +
                           path + "\"");
  const auto& [name, rel] = *parsed;
  std::string folder = DatastoreFolder(name);
  if (folder.empty())
    return FailedPrecondition(field + ": datastore '" + name +
                              "' does not exist in this workspace (" + path +
                              "); cairn datastore create --name " + name + " --path <folder>");
  if (EscapesRoot(rel)) return InvalidArgument(field + ": " + path + " leaves the datastore");
  loc.kind = "folder";
  loc.local = rel.empty() ? folder : folder + "/" + rel;
  if (!PathExists(loc.local)) {
    // azureml://datastores/workspaceblobstore/paths/azureml/<job>/<output>/...: where `job
    // show` says a job's named output is (Azure ML's default output location), kept in the
    // job's run folder.
    auto parts = Split(rel, '/');
    if (name == "workspaceblobstore" && parts.size() >= 3 && parts[0] == "azureml" &&
        store_->Get(parts[1]).ok()) {
      std::string uri = "azureml://jobs/" + parts[1] + "/outputs/" + parts[2] + "/paths";
      for (size_t i = 3; i < parts.size(); ++i) uri += "/" + parts[i];
      return Locate(field, uri, asset_kind, depth + 1);
    }
    return NotFound(field + ": " + path + ": no such file or folder " + loc.local);
  }
  return loc;
}

// azureml://jobs/<job>/outputs/<output>/paths/<path>: a completed job's output, in its run folder
// or where its datastore path put it.
Result<Scheduler::DataLocation> Scheduler::LocateJobOutput(const std::string& field,
                                                           const std::string& path,
                                                           const std::string& asset_kind,
                                                           int depth) {
  DataLocation loc;
  // azureml://jobs/<job>/outputs/<output>/paths/<path>
  auto parts = Split(path.substr(std::string("azureml://jobs/").size()), '/');
  if (parts.size() < 3 || parts[1] != "outputs")
    return InvalidArgument(field +
                           ": expected azureml://jobs/<job>/outputs/<output>/paths/<path>, got \"" +
                           path + "\"");
  std::string job_name = parts[0], out = parts[2], rel;
  size_t i = 3;
  if (i < parts.size() && parts[i] == "paths") ++i;
  for (; i < parts.size(); ++i) rel += (rel.empty() ? "" : "/") + parts[i];
  rel = StripSlashes(rel);
  if (EscapesRoot(rel)) return InvalidArgument(field + ": " + path + " leaves the job's output");
  auto job = store_->Get(job_name);
  if (!job.ok())
    return NotFound(field + ": " + path + ": no job named '" + job_name + "' in this workspace");
  if (job->status != "Completed")
    return FailedPrecondition(field + ": " + path + ": job '" + job_name + "' is " + job->status +
                              "; only a Completed job's outputs can be read");
  compute::RunLayout layout = compute::RunLayout::For(config_.workspace, job_name);
  std::string base;
  if (out == "default" || out == "artifacts") {
    base = layout.Artifacts();
  } else {
    json outs = job->spec.value("outputs", json::object());
    if (!outs.contains(out))
      return NotFound(field + ": " + path + ": job '" + job_name + "' has no output named '" + out +
                      "'");
    std::string ds = outs[out].value("path", "");
    if (!ds.empty()) {
      auto inner = Locate(field, ds, asset_kind, depth + 1);
      if (!inner.ok()) return inner.status();
      base = inner->local;
    } else {
      base = layout.Output(out);
    }
  }
  loc.kind = "folder";
  loc.local = rel.empty() ? base : base + "/" + rel;
  if (!PathExists(loc.local))
    return NotFound(field + ": " + path + ": no such file or folder in the job's output (" +
                    loc.local + ")");
  return loc;
}

// runs:/<run>/<path>: a job's run keeps its artifacts in its run folder; another MLflow run's are
// where the artifact proxy put them.
Result<Scheduler::DataLocation> Scheduler::LocateRunArtifacts(const std::string& field,
                                                              const std::string& path) {
  DataLocation loc;
  // runs:/<run>/<path>: a job's run keeps its artifacts in its run folder; another MLflow run's
  // are where the artifact proxy put them.
  std::string rest = path.substr(6);
  while (!rest.empty() && rest.front() == '/') rest.erase(rest.begin());
  std::string run = rest.substr(0, rest.find('/'));
  std::string rel = StripSlashes(rest.size() > run.size() ? rest.substr(run.size() + 1) : "");
  if (run.empty() || EscapesRoot(rel) || EscapesRoot(run))
    return InvalidArgument(field + ": expected runs:/<run-id>/<path>, got \"" + path + "\"");
  std::vector<std::string> bases = {config_.workspace + "/runs/" + run + "/artifacts"};
  std::error_code ec;
  for (auto it = fs::directory_iterator(config_.workspace + "/mlartifacts", ec);
       !ec && it != fs::directory_iterator(); it.increment(ec))
    bases.push_back(it->path().string() + "/" + run + "/artifacts");
  for (const auto& b : bases) {
    std::string p = rel.empty() ? b : b + "/" + rel;
    if (PathExists(p)) {
      loc.kind = "folder";
      loc.local = p;
      return loc;
    }
  }
  return NotFound(field + ": " + path + ": run '" + run + "' has no artifact '" + rel + "'");
}

Result<Scheduler::DataLocation> Scheduler::Locate(const std::string& field, const std::string& path,
                                                  const std::string& asset_kind, int depth) {
  if (depth > 4) return FailedPrecondition(field + ": " + path + " refers to itself");
  DataLocation loc;
  switch (spec::ClassifyPath(path)) {
    case spec::PathKind::kHttp:
      loc.kind = "http";
      loc.url = path;
      return loc;
    case spec::PathKind::kLocal:
      loc.kind = "folder";
      loc.local = path;
      if (!PathExists(path)) return NotFound(field + ": no such file or folder " + path);
      return loc;
    case spec::PathKind::kAsset:
      return LocateAsset(field, path, asset_kind, depth);
    case spec::PathKind::kDatastore:
      return LocateDatastore(field, path, asset_kind, depth);
    case spec::PathKind::kJobOutput:
      return LocateJobOutput(field, path, asset_kind, depth);
    case spec::PathKind::kRuns:
      return LocateRunArtifacts(field, path);
    case spec::PathKind::kCloud:
      return FailedPrecondition(field + ": cloud storage (" + path +
                                ") cannot be reached from this workspace; "
                                "use a local path, an http(s) URL or a datastore");
    case spec::PathKind::kNone:
      break;
  }
  return InvalidArgument(field + ": no path");
}

Result<Scheduler::DataLocation> Scheduler::LocateData(const std::string& field,
                                                      const std::string& path,
                                                      const std::string& asset_kind) {
  return Call<Result<DataLocation>>([=, this]() { return Locate(field, path, asset_kind); });
}

Result<store::AssetRecord> Scheduler::CreateAsset(store::AssetRecord a) {
  return Call<Result<store::AssetRecord>>([this, a]() mutable -> Result<store::AssetRecord> {
    if (a.version.empty()) a.version = store_->NextAssetVersion(a.kind, a.name);
    a.created_at = NowMillis();
    Status s = store_->InsertAsset(a);
    if (!s.ok()) return s;
    return store_->GetAsset(a.kind, a.name, a.version);
  });
}

Status Scheduler::SetAssetArchived(const std::string& kind, const std::string& name,
                                   const std::string& version, bool archived) {
  return Call<Status>(
      [=, this]() { return store_->SetAssetArchived(kind, name, version, archived); });
}

Status Scheduler::PutDatastore(const store::DatastoreRecord& d) {
  return Call<Status>([=, this]() { return store_->PutDatastore(d); });
}

Status Scheduler::DeleteDatastore(const std::string& name) {
  return Call<Status>([=, this]() { return store_->DeleteDatastore(name); });
}

Result<json> Scheduler::InputItem(const std::string& name, const spec::InputSpec& in,
                                  const DataLocation& loc, const std::string& dir, bool on_slurm,
                                  std::string& target) {
  json item = {{"name", name}, {"mode", in.mode}};
  if (in.mode == "eval_mount" || in.mode == "eval_download") item["evaluate"] = "mltable";
  bool direct = in.mode == "direct";
  if (loc.kind == "blobs") {
    auto m = store_->GetSnapshot(loc.snapshot);
    if (!m.ok()) return m.status();
    json manifest = json::parse(*m, nullptr, false);
    if (!manifest.is_array())
      return Internal("inputs." + name + ": malformed manifest " + loc.snapshot);
    std::string file = loc.single_file;
    if (file.empty() && (in.type == "uri_file" || loc.type == "uri_file") && manifest.size() == 1)
      file = manifest[0].value("path", "");
    if (on_slurm) {
      // Nodes may not see the workspace: the manifest travels with the run and the blobs are
      // fetched.
      item["kind"] = "blobs";
      item["manifest"] = manifest;
      target = file.empty() ? dir : dir + "/" + file;
      return item;
    }
    // A read-only view of the snapshot is made once (hard links to the blobs) and shared by every
    // job that reads it, so a large input costs a job a link, not a copy.
    auto made = compute::ViewOf(config_.workspace, loc.snapshot, *m);
    if (!made.ok()) return made.status();
    const std::string& view = *made;
    item["kind"] = "view";
    item["view"] = view;
    item["manifest_file"] = view + ".json";
    std::string base = direct ? view : dir;
    target = file.empty() ? base : base + "/" + file;
    return item;
  }
  if (loc.kind == "http") {
    if (direct) {
      target = loc.url;
      return json();
    }
    std::string file = Basename(loc.url.substr(0, loc.url.find('?')));
    if (file.empty()) file = "data";
    item["kind"] = "http";
    item["url"] = loc.url;
    item["file_name"] = file;
    target = dir + "/" + file;
    return item;
  }
  // A file or folder on this machine.
  if (direct) {
    target = loc.local;
    return json();
  }
  item["kind"] = "folder";
  item["local"] = loc.local;
  target = IsDir(loc.local) || item.contains("evaluate") ? dir : dir + "/" + Basename(loc.local);
  return item;
}

json Scheduler::ContainerFor(const store::JobRecord& job, const spec::JobSpec& s,
                             std::vector<std::string>& notices) {
  const spec::EnvironmentSpec& e = s.environment;
  json c = json::object();
  std::string conda_path = e.conda_file;
  if (!e.reference.empty()) {
    // A registered environment, or a curated one (AzureML-..., azureml://registries/...): the
    // workspace maps a curated name to an image by registering an environment of that name.
    auto ref = spec::ParseAssetRef(e.reference);
    auto a = !ref                   ? Result<store::AssetRecord>(NotFound(""))
             : ref->version.empty() ? store_->LatestAsset("environment", ref->name)
                                    : store_->GetAsset("environment", ref->name, ref->version);
    if (!a.ok()) {
      bool curated = ref && (!ref->registry.empty() || StartsWith(ref->name, "AzureML-"));
      notices.push_back("environment " + e.reference +
                        (curated ? " is a curated environment not mapped in this workspace"
                                 : " is not registered in this workspace") +
                        "; the job runs on this host (cairn environment create --name " +
                        (ref ? ref->name : "<name>") + " --image <image> maps it)");
      return json::object();
    }
    c["describe"] = "azureml:" + a->name + ":" + a->version;
    const json& sp = a->spec;
    if (sp.contains("image")) c["image"] = sp["image"];
    std::string snap = sp.value("storage", json::object()).value("snapshot", "");
    if (!snap.empty()) {
      // A build context registered with the environment: its view is the context.
      auto m = store_->GetSnapshot(snap);
      auto made =
          m.ok() ? compute::ViewOf(config_.workspace, snap, *m) : Result<std::string>(m.status());
      std::string view =
          made.ok() ? *made : config_.workspace + "/views/" + snap;  // the supervisor says why
      c["build_context"] = view;
      c["build_manifest"] = view + ".json";
      c["dockerfile"] = sp.value("build", json::object()).value("dockerfile_path", "Dockerfile");
    }
    if (sp.contains("conda_file_content")) c["conda"] = sp["conda_file_content"];
    notices.push_back("environment " + e.reference + " is azureml:" + a->name + ":" + a->version);
  } else if (!e.image.empty()) {
    c["image"] = e.image;
    c["describe"] = "image " + e.image;
  } else if (!e.build_path.empty()) {
    c["build_context"] = e.build_path;
    c["dockerfile"] = e.dockerfile_path.empty() ? "Dockerfile" : e.dockerfile_path;
    c["describe"] = "build context " + e.build_path;
  } else {
    notices.push_back("no environment given; the job runs on this host");
    return json::object();
  }
  if (!conda_path.empty()) {
    if (auto text = ReadFile(conda_path, 1 << 20); text.ok()) c["conda"] = *text;
  }
  std::string dist = s.distribution.is_object() ? s.distribution.value("type", "") : "";
  if (dist == "mpi" || SlurmTargetFor(job.compute)) {
    notices.push_back(
        "environment " + c.value("describe", std::string()) + ": " +
        (dist == "mpi" ? "MPI jobs run without containers for now; the job runs on this host"
                       : "jobs on a Slurm compute run without containers for now; the job runs on "
                         "the nodes' own software"));
    return json::object();
  }
  // Limits: resources.shm_size, and resources.properties memory / cpus.
  json limits = json::object();
  if (!s.shm_size.empty()) limits["shm_size"] = s.shm_size;
  for (const char* k : {"memory", "cpus"})
    if (s.resources_properties.contains(k)) {
      const json& v = s.resources_properties[k];
      limits[k] = v.is_string() ? v.get<std::string>() : v.dump();
    }
  c["limits"] = limits;
  // A compute may refuse to run a job anywhere but in its environment.
  if (auto comp = store_->GetCompute(job.compute); comp.ok())
    c["strict"] = comp->spec.value("extra", json::object()).value("containers", "") == "strict";
  if (settings::Is("CAIRN_CONTAINERS", "strict")) c["strict"] = true;
  if (settings::Is("CAIRN_CONTAINERS", "off")) {
    notices.push_back("environment " + c.value("describe", std::string()) +
                      ": containers are off (CAIRN_CONTAINERS=off); "
                      "the job runs on this host");
    return json::object();
  }
  return c;
}

// Outputs with `name` (and `version`) become data assets when their job completes: the asset points
// at the output where the job left it.
void Scheduler::RegisterOutputAssets(const store::JobRecord& job) {
  json outs = job.spec.value("outputs", json::object());
  for (const auto& [out, o] : outs.items()) {
    std::string name = o.value("name", "");
    if (name.empty()) continue;
    store::AssetRecord a;
    a.kind = "data";
    a.name = name;
    a.version = o.value("version", "");
    if (a.version.empty()) a.version = store_->NextAssetVersion("data", name);
    a.created_at = NowMillis();
    std::string uri = "azureml://jobs/" + job.name + "/outputs/" + out + "/paths/";
    a.spec = {{"name", name},
              {"version", a.version},
              {"type", o.value("type", "uri_folder")},
              {"path", uri},
              {"description", "output '" + out + "' of job " + job.name},
              {"tags", json::object()},
              {"storage", {{"kind", "uri"}, {"uri", uri}}},
              {"job_name", job.name}};
    Status s = store_->InsertAsset(a);
    compute::RunLayout layout = compute::RunLayout::For(config_.workspace, job.name);
    std::string line =
        s.ok() ? "outputs." + out + ": registered as data asset " + name + ":" + a.version
               : "outputs." + out + ": not registered as a data asset: " + s.message();
    (void)AppendFile(layout.SupervisorLog(), "[" + IsoTime(NowMillis()) + "] " + line + "\n");
  }
}

}  // namespace cairn::scheduler
