// The REST API of data assets, models, environments and datastores (/api/v1/assets/...,
// /api/v1/datastores): versions are immutable once made; "latest" is the newest version not
// archived. Local content arrives as a snapshot the CLI uploaded; a model named by runs:/ or a
// job's output is copied into the blob store so it stays as it was registered.
#pragma once

#include <functional>
#include <string>

#include "base/http_server.h"
#include "scheduler/scheduler.h"
#include "store/job_store.h"

namespace cairn::server {

struct AssetContext {
  scheduler::Scheduler* sched = nullptr;
  std::function<store::JobStore&()> reader;  // this thread's read connection
  std::string workspace;
  std::string blobs;
  std::function<Result<std::string>(const std::string&)>
      resolve_runs;  // runs:/ URI -> a path on disk
  // Appends to the audit log: who (the request's caller) did `action` to `target`.
  std::function<void(const http::Request&, const std::string& action, const std::string& target,
                     const std::string& detail)>
      audit;
};

void RegisterAssetRoutes(http::Server& svr, AssetContext& ctx);

}  // namespace cairn::server
