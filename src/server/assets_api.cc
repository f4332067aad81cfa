#include "server/assets_api.h"

#include <set>

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>

#include "base/json_limits.h"
#include "base/fs.h"
#include "base/util.h"
#include "compute/data_delivery.h"
#include "server/access.h"
#include "server/responses.h"
#include "spec/asset_spec.h"
#include "spec/job_spec.h"
#include "store/blob_store.h"

namespace cairn::server {

using nlohmann::json;
namespace fs = std::filesystem;

namespace {

const char kKinds[] = "(data|model|environment)";
// What can be read, listed and archived: the above and components (made by their own route).
const char kReadKinds[] = "(data|model|environment|component)";

json AssetView(const store::AssetRecord& a) {
  json v = a.spec;
  v["name"] = a.name;
  v["version"] = a.version;
  v["id"] = "azureml:" + a.name + ":" + a.version;
  v["creation_context"] = {{"created_at", IsoTime(a.created_at)}};
  if (v.contains("created_by")) {
    v["creation_context"]["created_by"] = v["created_by"];
    v.erase("created_by");
  }
  v["archived"] = a.archived;
  return v;
}

json DatastoreView(const store::DatastoreRecord& d) {
  json v = d.spec;
  v["name"] = d.name;
  v["creation_context"] = {{"created_at", IsoTime(d.created_at)}};
  return v;
}

// A built-in datastore (scheduler::BuiltinDatastores) that the user has not redefined.
json BuiltinDatastoreView(const AssetContext& ctx, const std::string& name) {
  return {{"name", name},
          {"type", "local"},
          {"path", scheduler::BuiltinDatastoreFolder(ctx.workspace, name)},
          {"description",
           "built in: a folder of the workspace" +
               std::string(name == "workspaceblobstore" ? " (the default datastore)" : "")},
          {"is_default", name == "workspaceblobstore"},
          {"built_in", true}};
}

// Copies a file or folder of this machine into the blob store and names its snapshot: a model
// registered from a run or a job's output keeps the files it had, whatever happens to the run
// later.
Result<std::string> SnapshotLocal(AssetContext& ctx, const std::string& path) {
  std::vector<store::ManifestEntry> m;
  store::BlobStore blobs(ctx.blobs);
  auto add = [&](const std::string& abs, const std::string& rel) -> Status {
    auto sha = blobs.PutFile(abs);  // streamed: a model of many GB is never all in memory
    if (!sha.ok()) return sha.status();
    store::ManifestEntry e;
    e.path = rel;
    e.sha256 = *sha;
    struct stat st;
    if (stat(blobs.PathOf(e.sha256).c_str(), &st) == 0) e.size = static_cast<long long>(st.st_size);
    struct stat src;
    e.executable = stat(abs.c_str(), &src) == 0 && (src.st_mode & S_IXUSR);
    m.push_back(e);
    return Status::Ok();
  };
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) {
    Status s = add(path, Basename(path));
    if (!s.ok()) return s;
  } else {
    for (auto it = fs::recursive_directory_iterator(path, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (!it->is_regular_file(ec)) continue;
      Status s = add(it->path().string(), it->path().lexically_relative(path).string());
      if (!s.ok()) return s;
    }
  }
  std::sort(m.begin(), m.end(), [](const auto& a, const auto& b) { return a.path < b.path; });
  if (Status synced = blobs.Sync(); !synced.ok()) return synced;
  std::string id = store::ManifestId(m);
  Status s = ctx.sched->PutSnapshot(id, store::ManifestToJson(m).dump());
  if (!s.ok()) return s;
  return id;
}

// Where a new version's content is: the body's fields checked, the path resolved.
Result<json> Storage(AssetContext& ctx, const std::string& kind, const json& body) {
  std::string path = body.value("path", "");
  std::string snapshot = body.value("snapshot", "");
  if (!snapshot.empty()) {
    if (!ctx.reader().GetSnapshot(snapshot).ok())
      return InvalidArgument("snapshot " + snapshot + " was not uploaded");
    json st = {{"kind", "blobs"}, {"snapshot", snapshot}};
    if (!body.value("single_file", "").empty()) st["single_file"] = body["single_file"];
    return st;
  }
  if (kind == "environment") return json::object();
  switch (spec::ClassifyPath(path)) {
    case spec::PathKind::kHttp:
      return json{{"kind", "http"}, {"url", path}};
    case spec::PathKind::kLocal:
      return InvalidArgument("path: " + path + " is a local path; the CLI uploads it (cairn " +
                             kind + " create)");
    case spec::PathKind::kNone:
      return InvalidArgument("path: required");
    default:
      break;
  }
  if (kind == "model" && spec::ClassifyPath(path) == spec::PathKind::kRuns && ctx.resolve_runs) {
    // Resolved against the tracking store, as MLflow does (a run's artifacts, or its logged model).
    auto file = ctx.resolve_runs(path);
    if (!file.ok()) return file.status();
    auto id = SnapshotLocal(ctx, *file);
    if (!id.ok()) return id.status();
    json st = {{"kind", "blobs"}, {"snapshot", *id}, {"source", path}};
    if (!IsDir(*file)) st["single_file"] = Basename(*file);
    return st;
  }
  auto loc = ctx.sched->LocateData("path", path, kind);
  if (!loc.ok()) return loc.status();
  if (kind == "model" && loc->kind == "folder") {
    auto id = SnapshotLocal(ctx, loc->local);
    if (!id.ok()) return id.status();
    json st = {{"kind", "blobs"}, {"snapshot", *id}, {"source", path}};
    if (!IsDir(loc->local)) st["single_file"] = Basename(loc->local);
    return st;
  }
  return json{{"kind", "uri"}, {"uri", path}};
}

// Components: the YAML as written, checked again here, and the code snapshot that stands for its
// code.
void CreateComponent(AssetContext& ctx, const http::Request& req, http::Response& res) {
  json body = ParseJsonOrDiscarded(req.body);
  if (!body.is_object() || !body["yaml"].is_string())
    return SendError(res, InvalidArgument("expected {\"yaml\": ..., \"code_snapshot\": ...}"));
  spec::ParseOptions opt;
  opt.check_local_paths = false;
  if (body.contains("name") && body["name"].is_string()) opt.name = body["name"];
  spec::Diagnostics d;
  auto info = spec::ParseComponentText(body["yaml"], "component", "/", opt, d);
  if (!info) return SendError(res, InvalidArgument(Trim(d.ToString())));
  std::string snapshot = body.value("code_snapshot", "");
  if (!info->code.empty() && snapshot.empty())
    return SendError(res, InvalidArgument("code: the component's code was not uploaded"));
  if (!snapshot.empty() && !ctx.reader().GetSnapshot(snapshot).ok())
    return SendError(res, InvalidArgument("code snapshot " + snapshot + " was not uploaded"));
  store::AssetRecord rec;
  rec.kind = "component";
  rec.name = info->name;
  rec.version = body.value("version", "").empty() ? info->version : body.value("version", "");
  rec.spec = {{"type", "command"},
              {"display_name", info->display_name},
              {"description", info->description},
              {"is_deterministic", info->is_deterministic},
              {"inputs", info->inputs},
              {"outputs", info->outputs},
              {"command", info->command},
              {"yaml", body["yaml"]},
              {"code_snapshot", snapshot},
              {"tags", body.value("tags", json::object())},
              {"created_by", CallerOf(req).name}};
  if (!snapshot.empty()) rec.spec["code"] = "azureml:snapshots/" + snapshot;
  auto made = ctx.sched->CreateAsset(rec);
  if (!made.ok()) return SendError(res, made.status());
  SendJson(res, AssetView(*made), 201);
}

void CreateAsset(AssetContext& ctx, const http::Request& req, http::Response& res) {
  std::string kind = req.matches[1];
  json body = ParseJsonOrDiscarded(req.body);
  if (!body.is_object()) return SendError(res, InvalidArgument("expected a " + kind + " object"));
  spec::AssetSpec a;
  a.kind = kind;
  a.name = body.value("name", "");
  a.version = body.value("version", "");
  a.type = body.value("type", "");
  a.path = body.value("path", "");
  if (kind == "environment") a.environment.image = body.value("image", "");
  if (kind == "environment" && body.contains("build"))
    a.environment.build_path = body["build"].value("path", "");
  spec::Diagnostics d;
  // Local content was uploaded by the CLI, from a machine that may not be this one.
  spec::ValidateAsset(a, "request", d, /*check_paths=*/false);
  if (d.HasErrors()) {
    std::string msg;
    for (const auto& x : d.all()) msg += (msg.empty() ? "" : "; ") + x.message;
    return SendError(res, InvalidArgument(msg));
  }
  auto storage = Storage(ctx, kind, body);
  if (!storage.ok()) return SendError(res, storage.status());
  store::AssetRecord rec;
  rec.kind = kind;
  rec.name = a.name;
  rec.version = a.version;
  rec.spec = body;
  rec.spec.erase("snapshot");
  rec.spec.erase("single_file");
  if (kind != "environment") rec.spec["type"] = a.type;
  rec.spec["storage"] = *storage;
  rec.spec["created_by"] = CallerOf(req).name;
  auto made = ctx.sched->CreateAsset(rec);
  if (!made.ok()) return SendError(res, made.status());
  if (kind != "environment" && (*storage).value("kind", "") == "blobs") {
    // The read-only view jobs mount is made now, so no job waits for it (a link per file, no
    // copy).
    std::string id = (*storage).value("snapshot", "");
    auto m = ctx.reader().GetSnapshot(id);
    auto view = m.ok() ? compute::ViewOf(ctx.workspace, id, *m) : Result<std::string>(m.status());
    Status v = view.ok() ? compute::EnsureView(*view, *view + ".json", ctx.blobs) : view.status();
    if (!v.ok())
      fprintf(stderr, "cairn server: the view of %s: %s\n", id.c_str(), v.message().c_str());
  }
  SendJson(res, AssetView(*made), 201);
}

void ListAssets(AssetContext& ctx, const http::Request& req, http::Response& res) {
  json out = json::array();
  for (const auto& a : ctx.reader().ListAssets(req.matches[1], req.get_param_value("name"),
                                               req.get_param_value("include_archived") == "true",
                                               req.get_param_value("archived_only") == "true"))
    out.push_back(AssetView(a));
  SendJson(res, out);
}

void GetLatestAsset(AssetContext& ctx, const http::Request& req, http::Response& res) {
  std::string label = req.has_param("label") ? req.get_param_value("label") : "latest";
  if (label != "latest")
    return SendError(res,
                     InvalidArgument("--label: the only label is 'latest', got '" + label + "'"));
  auto a = ctx.reader().LatestAsset(req.matches[1], req.matches[2]);
  if (!a.ok()) return SendError(res, a.status());
  SendJson(res, AssetView(*a));
}

void GetAssetVersion(AssetContext& ctx, const http::Request& req, http::Response& res) {
  auto a = ctx.reader().GetAsset(req.matches[1], req.matches[2], req.matches[3]);
  if (!a.ok()) return SendError(res, a.status());
  SendJson(res, AssetView(*a));
}

// The files of a version whose content is in the blob store (models, local data): for download.
void AssetFiles(AssetContext& ctx, const http::Request& req, http::Response& res) {
  auto a = ctx.reader().GetAsset(req.matches[1], req.matches[2], req.matches[3]);
  if (!a.ok()) return SendError(res, a.status());
  json st = a->spec.value("storage", json::object());
  if (st.value("kind", "") != "blobs")
    return SendError(res, FailedPrecondition(a->name + ":" + a->version +
                                             " is not stored in this workspace; it is " +
                                             a->spec.value("path", "")));
  auto m = ctx.reader().GetSnapshot(st.value("snapshot", ""));
  if (!m.ok()) return SendError(res, m.status());
  SendJson(res, {{"name", a->name}, {"version", a->version}, {"files", json::parse(*m)}});
}

void SetAssetArchived(AssetContext& ctx, const http::Request& req, http::Response& res,
                      bool archive) {
  // A Contributor archives only versions they registered.
  const std::string version = req.get_param_value("version");
  for (const auto& a : ctx.reader().ListAssets(req.matches[1], req.matches[2], true, false)) {
    if (!version.empty() && a.version != version) continue;
    Status may = MayChange(CallerOf(req), a.spec.value("created_by", ""),
                           req.matches[1].str() + " " + a.name + ":" + a.version);
    if (!may.ok()) return SendError(res, may);
  }
  Status s = ctx.sched->SetAssetArchived(req.matches[1], req.matches[2],
                                         req.get_param_value("version"), archive);
  if (!s.ok()) return SendError(res, s);
  if (ctx.audit)
    ctx.audit(req, req.matches[1].str() + (archive ? ".archive" : ".restore"), req.matches[2].str(),
              req.get_param_value("version"));
  SendJson(res, {{"name", req.matches[2].str()}, {"archived", archive}});
}

// Blobs, read with the workspace token (a model's download).
void GetBlob(AssetContext& ctx, const http::Request& req, http::Response& res) {
  store::BlobStore blobs(ctx.blobs);
  if (!blobs.Has(req.matches[1]))
    return SendError(res, NotFound("no blob " + req.matches[1].str()));
  auto data = ReadFile(blobs.PathOf(req.matches[1]));
  if (!data.ok()) return SendError(res, data.status());
  res.set_content(std::move(*data), "application/octet-stream");
}

// Datastores: folders of this machine (or a shared filesystem) that
// azureml://datastores/<name>/paths/... names.
void CreateDatastore(AssetContext& ctx, const http::Request& req, http::Response& res) {
  json body = ParseJsonOrDiscarded(req.body);
  if (!body.is_object()) return SendError(res, InvalidArgument("expected a datastore object"));
  spec::AssetSpec a;
  a.kind = "datastore";
  a.name = body.value("name", "");
  a.path = body.value("path", "");
  a.datastore_type = body.value("type", "local");
  a.description = body.value("description", "");
  spec::Diagnostics d;
  spec::ValidateAsset(a, "request", d);
  if (!a.path.empty() && a.path[0] != '/') d.Error("request", 0, 0, "path: must be absolute");
  if (d.HasErrors()) {
    std::string msg;
    for (const auto& x : d.all()) msg += (msg.empty() ? "" : "; ") + x.message;
    return SendError(res, InvalidArgument(msg));
  }
  store::DatastoreRecord rec{a.name, spec::ToJson(a), NowMillis()};
  if (auto old = ctx.reader().GetDatastore(a.name); old.ok()) rec.created_at = old->created_at;
  Status s = ctx.sched->PutDatastore(rec);
  if (!s.ok()) return SendError(res, s);
  if (ctx.audit) ctx.audit(req, "datastore.create", a.name, a.path);
  SendJson(res, DatastoreView(rec), 201);
}

void ListDatastores(AssetContext& ctx, const http::Request&, http::Response& res) {
  json out = json::array();
  std::set<std::string> named;
  for (const auto& d : ctx.reader().ListDatastores()) {
    out.push_back(DatastoreView(d));
    named.insert(d.name);
  }
  for (const auto& b : scheduler::BuiltinDatastores())
    if (!named.count(b)) out.push_back(BuiltinDatastoreView(ctx, b));
  SendJson(res, out);
}

void GetDatastore(AssetContext& ctx, const http::Request& req, http::Response& res) {
  auto d = ctx.reader().GetDatastore(req.matches[1]);
  if (!d.ok() && scheduler::IsBuiltinDatastore(req.matches[1]))
    return SendJson(res, BuiltinDatastoreView(ctx, req.matches[1]));
  if (!d.ok()) return SendError(res, d.status());
  SendJson(res, DatastoreView(*d));
}

void DeleteDatastore(AssetContext& ctx, const http::Request& req, http::Response& res) {
  if (scheduler::IsBuiltinDatastore(req.matches[1]) &&
      !ctx.reader().GetDatastore(req.matches[1]).ok())
    return SendError(res, FailedPrecondition("datastore " + req.matches[1].str() +
                                             " is built in and cannot be deleted"));
  Status s = ctx.sched->DeleteDatastore(req.matches[1]);
  if (!s.ok()) return SendError(res, s);
  if (ctx.audit) ctx.audit(req, "datastore.delete", req.matches[1].str(), "");
  SendJson(res, {{"name", req.matches[1].str()}, {"deleted", true}});
}

void ArchiveAsset(AssetContext& ctx, const http::Request& req, http::Response& res) {
  SetAssetArchived(ctx, req, res, true);
}

void RestoreAsset(AssetContext& ctx, const http::Request& req, http::Response& res) {
  SetAssetArchived(ctx, req, res, false);
}

}  // namespace

void RegisterAssetRoutes(http::Server& svr, AssetContext& ctx) {
  // The route table of assets and datastores: method, path, who may call it (access.h), handler.
  const std::string kinds = std::string("/api/v1/assets/") + kKinds;
  const std::string read = std::string("/api/v1/assets/") + kReadKinds;
  struct Route {
    const char* method;
    std::string path;
    Access access;
    void (*handler)(AssetContext&, const http::Request&, http::Response&);
  };
  const Route routes[] = {
      {"POST", "/api/v1/assets/component", Access::kWrite, CreateComponent},
      {"POST", kinds, Access::kWrite, CreateAsset},
      {"GET", read, Access::kRead, ListAssets},
      {"GET", read + "/([^/]+)", Access::kRead, GetLatestAsset},
      {"GET", read + "/([^/]+)/versions/([^/]+)", Access::kRead, GetAssetVersion},
      {"GET", read + "/([^/]+)/versions/([^/]+)/files", Access::kRead, AssetFiles},
      {"POST", read + "/([^/]+)/archive", Access::kWrite, ArchiveAsset},
      {"POST", read + "/([^/]+)/restore", Access::kWrite, RestoreAsset},
      {"GET", R"(/api/v1/blobs/([0-9a-f]{64}))", Access::kRead, GetBlob},
      {"POST", "/api/v1/datastores", Access::kOwner, CreateDatastore},
      {"GET", "/api/v1/datastores", Access::kRead, ListDatastores},
      {"GET", R"(/api/v1/datastores/([^/]+))", Access::kRead, GetDatastore},
      {"DELETE", R"(/api/v1/datastores/([^/]+))", Access::kOwner, DeleteDatastore},
  };
  for (const Route& r : routes)
    svr.Add(
        r.method, r.path,
        [&ctx, fn = r.handler](const http::Request& req, http::Response& res) {
          fn(ctx, req, res);
        },
        0, static_cast<int>(r.access));
}

}  // namespace cairn::server
