// The workspace server's insides, shared by the files that hold its handlers (one per resource:
// jobs_api.cc, files_api.cc, computes_api.cc, people_api.cc, studio_api.cc; identify.cc for who is
// calling). Not for other modules: server.h is the server's interface.
//
// Every route is a row of one table (server.cc, kRoutes): method, path, who may call it (access.h),
// the handler (a named member function here), and its body limit.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/http_server.h"
#include "base/status.h"
#include "scheduler/scheduler.h"
#include "server/access.h"
#include "server/assets_api.h"
#include "server/mlflow_api.h"
#include "server/oidc.h"
#include "server/server.h"
#include "server/workspace.h"
#include "store/access_store.h"
#include "store/job_store.h"
#include "tracking/tracking_store.h"

namespace cairn::server {

using nlohmann::json;

// Helpers the handler files share (server.cc).
// A path of a job's listing (artifacts/..., named-outputs/<name>/...) as it lies in the run folder;
// "" when it is not one.
std::string MapRunPath(const std::string& rel);
// Whether `next` is one of the studio's own pages (where a sign-in may send the browser back to).
bool IsStudioRoute(const std::string& next);
// A cookie of the request, "" when absent.
std::string CookieOf(const http::Request& req, const std::string& name);

class Server {
 public:
  Server(ServerOptions o, std::string token);

  // Every route as the table declares it (registered, never served): for docs/rest-api.md's table
  // and its test.
  std::vector<RouteRow> Table();
  int Run();

 private:
  using Handler = void (Server::*)(const http::Request&, http::Response&);
  struct Route {
    const char* method;
    Access access;
    const char* path;
    Handler handler;
    size_t max_body = 0;  // 0: the server's default of 64 MiB
  };
  static const Route kRoutes[];

  // Start-up and the serving loop (server.cc).
  bool TakeLock();
  Status OpenAccess();
  int ConfigureHttp();
  bool Bind();
  Result<scheduler::SchedulerConfig> MakeSchedulerConfig();
  Status Announce();
  void Serve();
  void Routes();
  store::JobStore& Reader();
  void ProveIdentity(const http::Request& req, http::Response& res);
  void Health(const http::Request& req, http::Response& res);
  void Shutdown(const http::Request& req, http::Response& res);

  // Who is calling, and whether the route lets them (identify.cc).
  struct UnixPerson {
    bool known = false;
    std::string name;
    std::vector<std::string> groups;
    long long at = 0;
  };
  bool HostAllowed(const std::string& host_header) const;
  static std::string CrossSiteReason(const http::Request& req);
  static bool HasBody(const http::Request& req);
  static void AddSecurityHeaders(http::Response& res);
  UnixPerson LookUpPerson(const std::string& name, unsigned uid);
  Caller PersonCaller(const std::string& name, unsigned uid, const std::string& via,
                      const std::string& address,
                      const std::vector<std::string>& provider_groups = {});
  Caller Identify(const http::Request& req, Status* refusal);
  http::Server::HandlerResponse PreRoute(http::Request& req, http::Response& res);
  void Audit(const http::Request& req, const std::string& action, const std::string& target,
             const std::string& detail = "");

  // Jobs (jobs_api.cc).
  void SubmitJob(const http::Request& req, json body, http::Response& res);
  Result<json> RerunBody(const store::JobRecord& orig, const std::string& yaml,
                         const std::string& name);
  json View(const store::JobRecord& j);
  void AddGpuView(const store::JobRecord& j, json& v);
  Result<store::JobRecord> JobToChange(const http::Request& req, const std::string& name);
  json SweepTrials(const store::JobRecord& sweep);
  json PipelineSteps(const store::JobRecord& p);
  void SetArchived(const http::Request& req, http::Response& res, bool archived);
  void CreateJob(const http::Request& req, http::Response& res);
  void RerunJob(const http::Request& req, http::Response& res);
  void ListJobs(const http::Request& req, http::Response& res);
  void GetJob(const http::Request& req, http::Response& res);
  void UpdateJob(const http::Request& req, http::Response& res);
  void CancelJob(const http::Request& req, http::Response& res);
  void ArchiveJob(const http::Request& req, http::Response& res);
  void RestoreJob(const http::Request& req, http::Response& res);
  void JobEvents(const http::Request& req, http::Response& res);
  void JobLogs(const http::Request& req, http::Response& res);
  void JobMetrics(const http::Request& req, http::Response& res);
  void SupervisorEvent(const http::Request& req, http::Response& res);

  // A job's files, blobs and snapshots, and staging for supervisors on other nodes (files_api.cc).
  std::string OutputDatastoreFolder(const store::JobRecord& job, const std::string& name);
  store::JobRecord FilesOf(const store::JobRecord& job, std::string* path = nullptr);
  json JobFiles(const store::JobRecord& given);
  Result<int> OpenJobFile(const store::JobRecord& given, const std::string& path);
  void MissingBlobs(const http::Request& req, http::Response& res);
  void PutBlob(const http::Request& req, http::Response& res);
  void CreateSnapshot(const http::Request& req, http::Response& res);
  void ListJobFiles(const http::Request& req, http::Response& res);
  void GetJobFile(const http::Request& req, http::Response& res);
  void ZipJobFiles(const http::Request& req, http::Response& res);
  void StageRunFile(const http::Request& req, http::Response& res);
  void StageBlob(const http::Request& req, http::Response& res);
  void StageBackFile(const http::Request& req, http::Response& res);

  // Computes, sizes, GPUs and images (computes_api.cc).
  json LocalCompute();
  json GpuTable();
  void ListImages(const http::Request& req, http::Response& res);
  void CheckImages(const http::Request& req, http::Response& res);
  void CreateCompute(const http::Request& req, http::Response& res);
  void ListComputes(const http::Request& req, http::Response& res);
  void GetCompute(const http::Request& req, http::Response& res);
  void ListSizes(const http::Request& req, http::Response& res);
  void ListNodes(const http::Request& req, http::Response& res);
  void DeleteCompute(const http::Request& req, http::Response& res);
  void ListQuotas(const http::Request& req, http::Response& res);
  void SetQuota(const http::Request& req, http::Response& res);
  void DeleteQuota(const http::Request& req, http::Response& res);

  // People: who one is, role assignments, tokens, the audit log, OpenID sign-in (people_api.cc).
  void WhoAmI(const http::Request& req, http::Response& res);
  void ListRoleAssignments(const http::Request& req, http::Response& res);
  void CreateRoleAssignment(const http::Request& req, http::Response& res);
  void DeleteRoleAssignments(const http::Request& req, http::Response& res);
  void ListTokens(const http::Request& req, http::Response& res);
  void CreateToken(const http::Request& req, http::Response& res);
  void RevokeToken(const http::Request& req, http::Response& res);
  void ListAudit(const http::Request& req, http::Response& res);
  void SignInOptions(const http::Request& req, http::Response& res);
  void OidcLogin(const http::Request& req, http::Response& res);
  void OidcCallback(const http::Request& req, http::Response& res);

  // The studio's files and its one-time sign-in links (studio_api.cc).
  void SendUiFile(http::Response& res, const std::string& rel);
  void StudioIndex(const http::Request& req, http::Response& res);
  void StudioAsset(const http::Request& req, http::Response& res);
  void CreateLoginCode(const http::Request& req, http::Response& res);
  void SignInWithCode(const http::Request& req, http::Response& res);

  std::string gpu_source_,
      gpu_note_;  // how the GPUs were found, and why none were where discovery looked
  std::mutex people_mu_;
  std::map<std::string, UnixPerson> people_;    // by name, or "#<uid>"
  std::unique_ptr<store::AccessStore> access_;  // roles, tokens, the audit log (a team server's)
  std::mutex auth_mu_;
  struct LoginCode {
    long long expires;
    std::string person;  // whom the link signs in
  };
  std::map<std::string, LoginCode> login_codes_;  // one-time sign-in codes
  struct Session {
    long long created, last_used;
    std::string person;
    // Signed in with the OpenID provider: the groups its ID token listed, and when to refresh.
    bool oidc = false;
    std::vector<std::string> groups;
    std::string refresh_token;
    long long refresh_at = 0;
  };
  std::unique_ptr<Oidc> oidc_;  // a team server's OpenID Connect sign-in, when configured
  std::map<std::string, Session> sessions_;  // the studio's signed-in browsers, until idle or old
  // Sign-in sessions end after 12 hours unused or 7 days in all (CAIRN_SESSION_IDLE_SECONDS,
  // CAIRN_SESSION_MAX_AGE_SECONDS).
  long long session_idle_ms_, session_max_age_ms_;
  ServerOptions opt_;
  std::string token_;
  std::string tls_url_;  // https://host:port when serving TLS
  int local_port_ = -1;  // the plain loopback port this machine's CLI and jobs use
  WorkspacePaths ws_;
  std::string url_;
  int lock_fd_ = -1;
  http::Server svr_;
  std::unique_ptr<tracking::TrackingStore> tracking_;
  MlflowContext mlflow_;
  AssetContext assets_;
  std::unique_ptr<scheduler::Scheduler> sched_;
};

}  // namespace cairn::server
