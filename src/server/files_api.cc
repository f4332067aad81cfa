#include "server/server_impl.h"

#include <fcntl.h>
#include <grp.h>
#include <malloc.h>
#include <pwd.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/accounts.h"
#include "base/settings.h"
#include "base/beneath.h"
#include "base/json_limits.h"
#include "base/http_server.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "base/fs.h"
#include "base/json_writer.h"
#include "base/util.h"
#include "compute/container.h"
#include "compute/distribution.h"
#include "compute/image_cache.h"
#include "compute/process.h"
#include "compute/run_layout.h"
#include "scheduler/scheduler.h"
#include "server/access.h"
#include "server/assets_api.h"
#include "store/access_store.h"
#include "server/job_view.h"
#include "server/zip_stream.h"
#include "server/responses.h"
#include "server/mlflow_api.h"
#include "server/oidc.h"
#include "tracking/tracking_store.h"
#include "server/workspace.h"
#include "spec/job_spec.h"
#include "spec/vm_sizes.h"
#include "store/blob_store.h"
#include "tracking/downsample.h"

namespace cairn::server {

namespace fs = std::filesystem;

namespace {

// The files below `dir` (a path beneath the run folder) as {path, size}; links as {path, type:
// "link"}, never followed.
void ListFiles(const Beneath& run, const std::string& dir, const std::string& prefix, json& out) {
  (void)run.Walk(dir, [&](const Beneath::Entry& e) {
    if (e.type == Beneath::Type::kFile)
      out.push_back({{"path", prefix + e.path}, {"size", e.size}});
    else if (e.type == Beneath::Type::kLink)
      out.push_back({{"path", prefix + e.path}, {"type", "link"}});
  });
}

}  // namespace

// The folder of a job's named output written to a datastore path (outputs.<name>.path:
// azureml://datastores/<ds>/paths/<rel>); "" when the output is in the run folder or cannot be
// found.
std::string Server::OutputDatastoreFolder(const store::JobRecord& job, const std::string& name) {
  auto parsed = scheduler::ParseDatastoreUri(
      job.spec.value("outputs", json::object()).value(name, json::object()).value("path", ""));
  if (!parsed) return "";
  const auto& [ds, rel] = *parsed;
  if (!rel.empty() && !Beneath::IsClean(rel)) return "";
  std::string folder;
  if (auto d = Reader().GetDatastore(ds); d.ok())
    folder = d->spec.value("path", "");
  else if (scheduler::IsBuiltinDatastore(ds))
    folder = scheduler::BuiltinDatastoreFolder(opt_.home, ds);
  if (folder.empty()) return "";
  return rel.empty() ? folder : folder + "/" + rel;
}

// Whose files a job's file routes read: a reused step's are its original's; a pipeline's named
// outputs are the outputs of the steps bound to them. Rewrites `path` (named-outputs/<name>/...)
// to match.
store::JobRecord Server::FilesOf(const store::JobRecord& job, std::string* path) {
  if (std::string from = job.properties.value("reused_from", ""); !from.empty())
    if (auto orig = Reader().Get(from); orig.ok()) return *orig;
  if (job.type != "pipeline" || !path || !StartsWith(*path, "named-outputs/")) return job;
  std::string rest = path->substr(14);
  std::string out = rest.substr(0, rest.find('/'));
  const json outs = job.spec.value("pipeline", json::object()).value("outputs", json::object());
  if (!outs.contains(out)) return job;
  const std::string step = outs[out].value("step", ""), step_out = outs[out].value("output", "");
  for (const auto& row : PipelineSteps(job)) {
    if (row.value("step", "") != step || row.value("status", "") != "Completed") continue;
    auto c = Reader().Get(row.value("job", ""));
    if (!c.ok()) break;
    store::JobRecord owner = FilesOf(*c);
    if (owner.type == "sweep")
      if (auto best = Reader().Get(owner.properties.value("best_child_run_id", "")); best.ok())
        owner = *best;
    *path = "named-outputs/" + step_out + rest.substr(out.size());
    return owner;
  }
  return job;
}

// A job's files as the files route lists them: {path, size} under artifacts/ and
// named-outputs/<name>/ (a datastore output from its folder, a reused step's from its original, a
// pipeline's outputs from the steps bound to them).
json Server::JobFiles(const store::JobRecord& given) {
  json files = json::array();
  if (given.type == "pipeline") {
    if (auto run = Beneath::Open(compute::RunLayout::For(opt_.home, given.name).root); run.ok())
      ListFiles(*run, "artifacts", "artifacts/", files);
    const json outs = given.spec.value("pipeline", json::object()).value("outputs", json::object());
    for (const auto& [out, _] : outs.items()) {
      std::string path = "named-outputs/" + out + "/";
      store::JobRecord owner = FilesOf(given, &path);
      if (owner.name == given.name) continue;
      std::string step_out = path.substr(14, path.find('/', 14) - 14);
      std::string folder = OutputDatastoreFolder(owner, step_out);
      auto root = Beneath::Open(folder.empty() ? compute::RunLayout::For(opt_.home, owner.name).root
                                               : folder);
      if (root.ok())
        ListFiles(*root, folder.empty() ? "outputs/" + step_out : "", "named-outputs/" + out + "/",
                  files);
    }
    return files;
  }
  store::JobRecord job = FilesOf(given);
  compute::RunLayout layout = compute::RunLayout::For(opt_.home, job.name);
  if (auto run = Beneath::Open(layout.root); run.ok()) {
    ListFiles(*run, "artifacts", "artifacts/", files);
    const json outputs = job.spec.value("outputs", json::object());
    for (const auto& [name, _] : outputs.items()) {
      if (!Beneath::IsClean(name) || name.find('/') != std::string::npos) continue;
      std::string folder = OutputDatastoreFolder(job, name);
      if (folder.empty()) {
        ListFiles(*run, "outputs/" + name, "named-outputs/" + name + "/", files);
      } else if (auto ds = Beneath::Open(folder); ds.ok()) {
        ListFiles(*ds, "", "named-outputs/" + name + "/", files);
      }
    }
  }
  return files;
}

// One file of that listing, opened beneath its root without following links.
Result<int> Server::OpenJobFile(const store::JobRecord& given, const std::string& path) {
  std::string asked = path;
  store::JobRecord job = FilesOf(given, &asked);
  std::string rel = MapRunPath(asked);
  std::string root = compute::RunLayout::For(opt_.home, job.name).root;
  if (StartsWith(rel, "outputs/")) {
    // outputs/<name>/<file>: from the datastore folder when the job wrote that output there.
    std::string name = rel.substr(
        8, rel.find('/', 8) == std::string::npos ? std::string::npos : rel.find('/', 8) - 8);
    std::string folder = OutputDatastoreFolder(job, name);
    if (!folder.empty()) {
      root = folder;
      rel = rel.size() > 8 + name.size() + 1 ? rel.substr(8 + name.size() + 1) : "";
    }
  }
  auto run = Beneath::Open(root);
  auto fd = rel.empty() || !run.ok() ? Result<int>(NotFound("")) : run->OpenRead(rel);
  if (!fd.ok()) return NotFound("job '" + given.name + "' has no file " + path);
  return fd;
}

// Blobs and snapshots: the CLI asks which blobs are missing, uploads those, then names a
// manifest.
void Server::MissingBlobs(const http::Request& req, http::Response& res) {
  json body = ParseJsonOrDiscarded(req.body);
  if (!body.is_object() || !body["sha256"].is_array())
    return SendError(res, InvalidArgument("expected {\"sha256\": [...]}"));
  store::BlobStore blobs(ws_.Blobs());
  json missing = json::array();
  for (const auto& h : body["sha256"]) {
    if (!h.is_string() || !store::IsValidSha256(h))
      return SendError(res, InvalidArgument("not a SHA-256 digest: " + h.dump()));
    if (!blobs.Has(h)) missing.push_back(h);
  }
  SendJson(res, {{"missing", missing}});
}

void Server::PutBlob(const http::Request& req, http::Response& res) {
  store::BlobStore blobs(ws_.Blobs());
  // Not synced one by one: the snapshot that names it syncs them all before it is
  // recorded.
  Status s = blobs.Put(req.matches[1], req.body, /*durable=*/false);
  if (!s.ok()) return SendError(res, s);
  SendJson(res, {{"sha256", req.matches[1].str()}}, 201);
}

void Server::CreateSnapshot(const http::Request& req, http::Response& res) {
  json body = ParseJsonOrDiscarded(req.body);
  if (!body.is_object()) return SendError(res, InvalidArgument("expected {\"manifest\": [...]}"));
  auto m = store::ManifestFromJson(body.value("manifest", json()));
  if (!m.ok()) return SendError(res, m.status());
  store::BlobStore blobs(ws_.Blobs());
  for (const auto& e : *m) {
    if (!blobs.Has(e.sha256))
      return SendError(res,
                       InvalidArgument("blob " + e.sha256 + " (" + e.path + ") was not uploaded"));
    // A CLI on this machine copies blobs in itself: at least their sizes must be what the
    // manifest says.
    struct stat st;
    if (stat(blobs.PathOf(e.sha256).c_str(), &st) != 0 || st.st_size != e.size)
      return SendError(res, InvalidArgument("blob " + e.sha256 + " (" + e.path +
                                            ") does not have the manifest's " +
                                            std::to_string(e.size) + " bytes"));
  }
  std::string id = store::ManifestId(*m);
  // Every blob it names is on disk before the snapshot is (the uploads were not synced one
  // by one).
  if (Status synced = blobs.Sync(); !synced.ok()) return SendError(res, synced);
  Status s = sched_->PutSnapshot(id, store::ManifestToJson(*m).dump());
  if (!s.ok()) return SendError(res, s);
  SendJson(res, {{"id", id}, {"files", m->size()}}, 201);
}

void Server::ListJobFiles(const http::Request& req, http::Response& res) {
  auto job = Reader().Get(req.matches[1]);
  if (!job.ok()) return SendError(res, job.status());
  SendJson(res, {{"status", job->status}, {"files", JobFiles(*job)}});
}

void Server::GetJobFile(const http::Request& req, http::Response& res) {
  auto job = Reader().Get(req.matches[1]);
  if (!job.ok()) return SendError(res, job.status());
  auto fd = OpenJobFile(*job, req.matches[2]);
  if (!fd.ok()) return SendError(res, fd.status());
  struct stat st;
  fstat(*fd, &st);
  res.set_file_content(*fd, static_cast<size_t>(st.st_size), "application/octet-stream");
}

// A folder of a job's files as one zip (stored, not compressed), streamed: ?path=<folder of the
// listing>.
void Server::ZipJobFiles(const http::Request& req, http::Response& res) {
  auto job = Reader().Get(req.matches[1]);
  if (!job.ok()) return SendError(res, job.status());
  std::string folder = req.get_param_value("path");
  while (!folder.empty() && folder.back() == '/') folder.pop_back();
  while (!folder.empty() && folder.front() == '/') folder.erase(folder.begin());
  std::vector<ZipEntry> entries;
  long long total = 0;
  for (const auto& f : JobFiles(*job)) {
    std::string path = f.value("path", "");
    if (!folder.empty() && !StartsWith(path, folder + "/")) continue;
    long long size = f.value("size", 0LL);
    total += size;
    // Named for the folder's own name and below it, as a folder downloaded from a file
    // browser is.
    std::string base = folder.empty() ? job->name : Basename(folder);
    entries.push_back(
        {base + "/" + path.substr(folder.empty() ? 0 : folder.size() + 1), path, size});
  }
  if (entries.empty())
    return SendError(res, NotFound("job '" + job->name + "' has no files under '" + folder + "'"));
  if (total >= (1LL << 32) - 1 || entries.size() >= 65535)
    return SendError(res, FailedPrecondition("the folder is too large for one zip (4 GiB or 65,535 "
                                             "files); download it with cairn job download"));
  res.set_header(
      "Content-Disposition",
      "attachment; filename=\"" + (folder.empty() ? job->name : Basename(folder)) + ".zip\"");
  auto writer = std::make_shared<ZipStream>(
      std::move(entries),
      [this, j = *job](const std::string& path) { return OpenJobFile(j, path); });
  res.set_stream("application/zip", [writer](http::DataSink& sink) { return writer->Next(sink); });
}

// Staging, for supervisors on nodes that do not share the workspace's filesystem (a Slurm
// cluster's): the run file, the blobs it names, and the run's files written back as they grow.
void Server::StageRunFile(const http::Request& req, http::Response& res) {
  compute::RunLayout layout = compute::RunLayout::For(opt_.home, req.matches[1]);
  auto text = ReadFile(layout.JobFile());
  if (!text.ok()) return SendError(res, text.status());
  res.set_header("X-Cairn-Run-Root", layout.root);
  res.set_content(*text, "application/json");
}

void Server::StageBlob(const http::Request& req, http::Response& res) {
  // Only what the job's run file names: a job's token reads its own code and inputs,
  // nothing else.
  compute::RunLayout layout = compute::RunLayout::For(opt_.home, req.matches[1]);
  auto text = ReadFile(layout.JobFile());
  if (!text.ok() || text->find(req.matches[2].str()) == std::string::npos)
    return SendError(
        res, NotFound("job '" + req.matches[1].str() + "' has no blob " + req.matches[2].str()));
  store::BlobStore blobs(ws_.Blobs());
  std::string path = blobs.PathOf(req.matches[2]);
  struct stat st;
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 || fstat(fd, &st) != 0) {
    if (fd >= 0) close(fd);
    return SendError(res,
                     NotFound("blob " + req.matches[2].str() + " is missing from the workspace"));
  }
  res.set_file_content(fd, static_cast<size_t>(st.st_size), "application/octet-stream");
}

void Server::StageBackFile(const http::Request& req, http::Response& res) {
  compute::RunLayout layout = compute::RunLayout::For(opt_.home, req.matches[1]);
  std::string rel = req.matches[2];
  std::string path;
  if (rel == "exit.json")
    path = "exit.json";
  else if (StartsWith(rel, "outputs/"))
    path = MapRunPath("named-outputs/" + rel.substr(8));
  else
    path = MapRunPath(rel);
  if (path.empty())
    return SendError(res, InvalidArgument("cannot write '" + rel + "' in a run folder"));
  long long offset = req.has_param("offset") ? atoll(req.get_param_value("offset").c_str()) : 0;
  if (offset < 0) return SendError(res, InvalidArgument("offset must not be negative"));
  auto run = Beneath::OpenOrCreate(layout.root);
  if (!run.ok()) return SendError(res, run.status());
  if (path.find('/') != std::string::npos)
    if (Status s = run->MakeDirs(Dirname(path)); !s.ok()) return SendError(res, s);
  // Offset 0 starts the file over; a later offset appends where the node left off.
  auto fd = run->OpenWrite(path, offset == 0 ? O_TRUNC : 0);
  if (!fd.ok()) return SendError(res, fd.status());
  ssize_t n = pwrite(*fd, req.body.data(), req.body.size(), static_cast<off_t>(offset));
  close(*fd);
  if (n != static_cast<ssize_t>(req.body.size()))
    return SendError(res, Internal("short write to " + rel));
  SendJson(res, {{"size", offset + static_cast<long long>(req.body.size())}});
}

}  // namespace cairn::server
