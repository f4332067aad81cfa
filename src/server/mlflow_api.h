// The MLflow tracking REST API (/api/2.0/mlflow/...) and the mlflow-artifacts proxy
// (/api/2.0/mlflow-artifacts/...), as the unmodified `mlflow` client uses them
// (../shared/spec/mlflow-rest.md). Handlers run on the HTTP threads; the TrackingStore is
// thread-safe.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/status.h"
#include "server/access.h"

namespace cairn::http {
class Server;
}

namespace cairn::tracking {
class TrackingStore;
}

namespace cairn::server {

struct MlflowContext {
  tracking::TrackingStore* store = nullptr;
  std::string workspace;  // $CAIRN_HOME: artifacts of job runs live in runs/<job>/artifacts
  // Who created a run (its user_id): a Contributor changes only their own. Who is calling comes
  // with each request (access.h's CallerOf).
  std::function<std::string(const std::string& run_id)> user_of;
  // A team server: a person's new run is theirs whatever user_id the client sends.
  bool team = false;
  // Filled by RegisterMlflowRoutes: each endpoint under /api/2.0/mlflow/ and who may call it.
  std::vector<std::pair<std::string, Access>> endpoints;
};

void RegisterMlflowRoutes(http::Server& svr, MlflowContext& ctx);

// Where an artifact path (<experiment>/<run>/artifacts/<rest>, or anything else) lives on disk; ""
// when the path tries to leave the artifact root.
std::string ArtifactFile(const MlflowContext& ctx, const std::string& path);
// Where the artifact proxy keeps `path`: a root folder and a clean path beneath it (nullopt for a
// path that would leave it). Every access goes through Beneath from that root.
struct ArtifactPlace {
  std::string root;
  std::string rel;
};
std::optional<ArtifactPlace> ArtifactAt(const MlflowContext& ctx, const std::string& path);

// Where `runs:/<run>/<path>` is on disk, as MLflow resolves it: the run's artifacts, else (MLflow
// 3) the artifacts of the run's logged model named by the path's first part.
Result<std::string> RunsUriToPath(const MlflowContext& ctx, const std::string& uri);

}  // namespace cairn::server
