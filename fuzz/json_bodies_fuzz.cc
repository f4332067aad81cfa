// libFuzzer target: every JSON body handler of the MLflow API (the routes a job's token reaches),
// against a real tracking store in a temporary folder. The first byte picks the route; the rest is
// the body, and its high bit whether an Owner or a Contributor calls. Also the bounded parse every
// other JSON route goes through.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "base/http_server.h"
#include "base/json_limits.h"
#include "server/access.h"
#include "server/mlflow_api.h"
#include "tracking/tracking_store.h"

namespace {

struct Fixture {
  std::string dir;
  std::unique_ptr<cairn::tracking::TrackingStore> store;
  cairn::server::MlflowContext ctx;
  cairn::http::Server svr;
  std::vector<std::string> routes;
  Fixture() {
    char tmpl[] = "/tmp/cairn-fuzz-XXXXXX";
    dir = mkdtemp(tmpl);
    auto s = cairn::tracking::TrackingStore::Open(dir + "/tracking.db");
    if (!s.ok()) abort();
    store = std::move(s).value();
    ctx.store = store.get();
    ctx.workspace = dir;
    ctx.user_of = [this](const std::string& run_id) {
      auto run = store->GetRun(run_id);
      return run.ok() ? run->info.user_id : std::string();
    };
    cairn::server::RegisterMlflowRoutes(svr, ctx);
    for (const char* r :
         {"experiments/create", "experiments/search", "experiments/update",
          "experiments/set-experiment-tag", "experiments/delete-experiment-tag", "logged-models",
          "logged-models/search", "runs/outputs", "runs/create", "runs/update", "runs/log-metric",
          "runs/log-parameter", "runs/set-tag", "runs/delete-tag", "runs/log-batch",
          "runs/log-inputs", "runs/log-model", "runs/search"})
      routes.push_back(std::string("/api/2.0/mlflow/") + r);
    // A run the bodies can name.
    cairn::http::Request req;
    req.method = "POST";
    req.target = "/api/2.0/mlflow/runs/create";
    req.body = R"({"experiment_id":"0","run_name":"r"})";
    cairn::http::Response res;
    cairn::server::SetCaller(req, Person(cairn::store::Role::kOwner));
    svr.DispatchForTest(req, res);
  }
  // Who calls (the pre-router attaches it; DispatchForTest has none): an Owner, or a Contributor,
  // whose changes go through the ownership checks.
  static cairn::server::Caller Person(cairn::store::Role role) {
    cairn::server::Caller c;
    c.kind = cairn::server::Caller::Kind::kPerson;
    c.name = role == cairn::store::Role::kOwner ? "owner" : "contributor";
    c.role = role;
    return c;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Fixture* f = new Fixture();
  if (size == 0) return 0;
  std::string body(reinterpret_cast<const char*>(data) + 1, size - 1);
  nlohmann::json j;
  std::string error;
  (void)cairn::ParseJsonBounded(body, &j, &error);
  cairn::http::Request req;
  req.method = "POST";
  req.target = f->routes[(data[0] & 0x7f) % f->routes.size()];
  req.body = body;
  cairn::server::SetCaller(req, Fixture::Person((data[0] & 0x80) ? cairn::store::Role::kContributor
                                                                 : cairn::store::Role::kOwner));
  cairn::http::Response res;
  try {
    f->svr.DispatchForTest(req, res);
  } catch (const std::exception&) {
    // The server answers an exception with a 500; a 500 for a body is a bug, but not a memory
    // error: the regression tests assert the statuses.
  }
  return 0;
}
