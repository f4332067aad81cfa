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

// An image the cache remembers as absent (compute/image_cache.h), as the images route shows it.
json AbsenceJson(const compute::ImageAbsence& a) {
  return json{{"image", a.image},
              {"runtime", a.runtime},
              {"available", false},
              {"reason", a.reason},
              {"checked_at", IsoTime(a.checked_ms)}};
}

}  // namespace

static double MachineMemoryGb() {
  long long mem_kb = 0;
  if (auto m = ReadFile("/proc/meminfo", 1 << 16); m.ok())
    for (const auto& line : Split(*m, '\n'))
      if (StartsWith(line, "MemTotal:")) mem_kb = atoll(line.substr(9).c_str());
  return std::round(static_cast<double>(mem_kb) / 1048576.0 * 10) / 10;
}

json Server::LocalCompute() {
  auto [in_use, queued] = sched_->PoolUsage("local");
  json out = {{"name", "local"},
              {"type", "local"},
              {"max_instances", sched_->local_slots()},
              {"min_instances", 0},
              {"provisioning_state", "Succeeded"},
              {"in_use", in_use},
              {"queued_jobs", queued},
              {"description", "this machine (built in)"}};
  out["cpus"] = sysconf(_SC_NPROCESSORS_ONLN);
  out["memory_gb"] = MachineMemoryGb();
  out["gpus"] = GpuTable();
  out["gpu_discovery"] = gpu_note_.empty() ? gpu_source_ : gpu_source_ + " (" + gpu_note_ + ")";
  return out;
}

// This machine's GPUs and who holds each: index, name, memory, UUID, job.
json Server::GpuTable() {
  json gpus = json::array();
  for (const auto& h : sched_->GpuHoldings()) {
    json g = {{"index", h.gpu.index},
              {"name", h.gpu.name},
              {"uuid", h.gpu.uuid},
              {"memory_mib", h.gpu.memory_mib}};
    g["job"] = h.job.empty() ? json(nullptr) : json(h.job);
    gpus.push_back(g);
  }
  return gpus;
}

void Server::ListImages(const http::Request&, http::Response& res) {
  json out = json::array();
  for (const auto& a : compute::RememberedAbsences(opt_.home)) out.push_back(AbsenceJson(a));
  SendJson(res, {{"runtime", compute::ContainerRuntime()}, {"value", out}});
}

void Server::CheckImages(const http::Request& req, http::Response& res) {
  json body = ParseJsonOrDiscarded(req.body);
  if (!body.is_object()) return SendError(res, InvalidArgument("expected {\"image\": ...} or {}"));
  std::string runtime = compute::ContainerRuntime();
  if (runtime.empty())
    return SendError(
        res, FailedPrecondition("no container runtime (podman or docker) on the server's machine"));
  std::vector<std::string> images;
  if (body.contains("image")) {
    if (!body["image"].is_string() || body["image"].get<std::string>().empty() ||
        body["image"].get<std::string>().size() > 1024)
      return SendError(res, InvalidArgument("image: expected an image reference"));
    images.push_back(body["image"]);
  } else {
    for (const auto& a : compute::RememberedAbsences(opt_.home))
      if (a.runtime == runtime) images.push_back(a.image);
  }
  json out = json::array();
  for (const auto& image : images) {
    auto c = compute::CheckImageNow(opt_.home, runtime, image);
    json j = {{"image", image},
              {"runtime", runtime},
              {"available", c.available},
              {"checked_at", IsoTime(NowMillis())}};
    if (c.available)
      j["source"] = c.pulled ? "pulled" : "local";
    else
      j["reason"] = c.reason;
    out.push_back(j);
  }
  SendJson(res, {{"runtime", runtime}, {"value", out}});
}

// Computes.
void Server::CreateCompute(const http::Request& req, http::Response& res) {
  json body = ParseJsonOrDiscarded(req.body);
  if (!body.is_object()) return SendError(res, InvalidArgument("expected a compute object"));
  auto c = sched_->CreateCompute(body);
  if (!c.ok()) return SendError(res, c.status());
  auto rec = Reader().GetCompute(body.value("name", ""));
  if (!rec.ok()) return SendError(res, rec.status());
  Audit(req, "compute.create", rec->name, rec->type);
  SendJson(res, ComputeView(*rec, 0, 0, !sched_->config().slurm_conf.empty()), 201);
}

void Server::ListComputes(const http::Request&, http::Response& res) {
  json out = json::array();
  out.push_back(LocalCompute());
  for (const auto& c : Reader().ListComputes()) {
    auto [in_use, queued] = sched_->PoolUsage(c.name);
    out.push_back(ComputeView(c, in_use, queued, !sched_->config().slurm_conf.empty()));
  }
  SendJson(res, out);
}

void Server::GetCompute(const http::Request& req, http::Response& res) {
  if (req.matches[1] == "local") return SendJson(res, LocalCompute());
  auto c = Reader().GetCompute(req.matches[1]);
  if (!c.ok()) return SendError(res, c.status());
  auto [in_use, queued] = sched_->PoolUsage(c->name);
  SendJson(res, ComputeView(*c, in_use, queued, !sched_->config().slurm_conf.empty()));
}

// az ml compute list-sizes: the shapes jobs can get here (this machine's).
void Server::ListSizes(const http::Request&, http::Response& res) {
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  int gpus = static_cast<int>(sched_->gpus().size());
  json out = json::array(
      {{{"name", "local"},
        {"family", "this machine"},
        {"v_cpus", cpus},
        {"memory_gb", MachineMemoryGb()},
        {"gpus", gpus},
        {"slots", sched_->local_slots()},
        {"fits_here", true},
        {"supported_compute_types", json::array({"local", "amlcompute", "computeinstance"})}}});
  // The Azure sizes a job may name (resources.instance_type, compute --size): what each gives
  // here. A size fits when this machine has its GPUs; its CPUs and memory are shared, not
  // reserved.
  for (const auto& v : spec::VmSizes())
    out.push_back({{"name", v.name},
                   {"family", v.family},
                   {"v_cpus", v.v_cpus},
                   {"memory_gb", v.memory_gib},
                   {"gpus", v.gpus},
                   {"gpu_model", v.gpu_model},
                   {"fits_here", v.WholeGpus() <= gpus},
                   {"source", v.source}});
  SendJson(res, out);
}

// az ml compute list-nodes: this machine is one node; a Slurm compute's nodes are sinfo's.
void Server::ListNodes(const http::Request& req, http::Response& res) {
  std::string name = req.matches[1];
  std::optional<compute::SlurmTarget> slurm;
  if (name != "local") {
    auto c = Reader().GetCompute(name);
    if (!c.ok()) return SendError(res, c.status());
    slurm = scheduler::SlurmTargetOf(c->spec, sched_->config().slurm_conf);
  }
  store::JobFilter f;
  f.max_results = 0;
  f.status = "Running";
  f.compute = name;
  std::vector<std::string> running;
  for (const auto& j : Reader().List(f)) running.push_back(j.name);
  json nodes = json::array();
  if (slurm) {
    auto out = compute::RunSlurmCommand(*slurm, {"sinfo", "-N", "-h", "-o", "%N|%T|%c|%m"});
    if (!out.ok()) return SendError(res, Unavailable("sinfo: " + out.status().message()));
    for (const auto& line : Split(*out, '\n')) {
      auto p = Split(Trim(line), '|');
      if (p.size() < 4) continue;
      nodes.push_back({{"node_id", p[0]},
                       {"node_state", p[1]},
                       {"cpus", atoi(p[2].c_str())},
                       {"memory_mb", atoll(p[3].c_str())}});
    }
  } else {
    nodes.push_back({{"node_id", "node-0"},
                     {"private_ip_address", "127.0.0.1"},
                     {"public_ip_address", nullptr},
                     {"port", nullptr},
                     {"node_state", running.empty() ? "idle" : "running"},
                     {"current_job_names", running}});
  }
  SendJson(res, nodes);
}

void Server::DeleteCompute(const http::Request& req, http::Response& res) {
  if (req.matches[1] == "local")
    return SendError(res, InvalidArgument("the local compute is built in and cannot be deleted"));
  Status s = sched_->DeleteCompute(req.matches[1]);
  if (!s.ok()) return SendError(res, s);
  Audit(req, "compute.delete", req.matches[1]);
  SendJson(res, {{"name", req.matches[1].str()}, {"deleted", true}});
}

namespace {

json QuotaView(const store::QuotaRecord& q) {
  auto limit = [](int v) { return v < 0 ? json(nullptr) : json(v); };
  return {{"compute", q.compute},       {"assignee", q.assignee}, {"gpus", limit(q.gpus)},
          {"slots", limit(q.slots)},    {"jobs", limit(q.jobs)},  {"set_by", q.set_by},
          {"set_at", IsoTime(q.set_at)}};
}

}  // namespace

// Quotas: at most this many GPUs, CPU slots and running jobs of a compute for one person; a job
// over its owner's quota waits with that reason (docs/scheduling.md).
void Server::ListQuotas(const http::Request& req, http::Response& res) {
  json out = json::array();
  for (const auto& q : access_->Quotas(req.matches[1])) out.push_back(QuotaView(q));
  SendJson(res, out);
}

void Server::SetQuota(const http::Request& req, http::Response& res) {
  const std::string compute = req.matches[1];
  if (compute != "local" && !Reader().GetCompute(compute).ok())
    return SendError(res, NotFound("no compute '" + compute + "'"));
  json body = ParseJsonOrDiscarded(req.body);
  if (!body.is_object())
    return SendError(res, InvalidArgument("expected {\"gpus\", \"slots\", \"jobs\"}"));
  store::QuotaRecord q;
  q.compute = compute;
  q.assignee = req.matches[2];
  for (auto [key, field] :
       {std::pair{"gpus", &q.gpus}, std::pair{"slots", &q.slots}, std::pair{"jobs", &q.jobs}}) {
    if (!body.contains(key) || body[key].is_null()) continue;
    if (!body[key].is_number_integer() || body[key].get<long long>() < 0 ||
        body[key].get<long long>() > 1000000)
      return SendError(res, InvalidArgument(std::string("--") + key +
                                            ": expected a whole number from 0 to 1000000"));
    *field = body[key].get<int>();
  }
  q.set_by = CallerOf(req).name;
  q.set_at = NowMillis();
  auto made = access_->SetQuota(q);
  if (!made.ok()) return SendError(res, made.status());
  Audit(req, "quota.set", compute + "/" + q.assignee, QuotaView(*made).dump());
  sched_->Nudge(compute);
  SendJson(res, QuotaView(*made));
}

void Server::DeleteQuota(const http::Request& req, http::Response& res) {
  auto n = access_->DeleteQuota(req.matches[1], req.matches[2]);
  if (!n.ok()) return SendError(res, n.status());
  Audit(req, "quota.delete", req.matches[1].str() + "/" + req.matches[2].str());
  sched_->Nudge(req.matches[1]);
  SendJson(res, {{"deleted", *n}});
}

}  // namespace cairn::server
