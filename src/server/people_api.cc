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

static json AssignmentView(const store::RoleAssignment& a) {
  return {{"id", a.id},
          {"assignee", a.assignee},
          {"principal_type", a.assignee_type == "group" ? "Group" : "User"},
          {"role_definition_name", store::RoleName(a.role)},
          {"scope", "workspace"},
          {"created_by", a.created_by},
          {"created_at", IsoTime(a.created_at)}};
}

static json TokenView(const store::AccessToken& t) {
  json v = {{"id", t.id},
            {"owner", t.owner},
            {"description", t.description},
            {"created_at", IsoTime(t.created_at)},
            {"expires_at", IsoTime(t.expires_at)},
            {"state", t.revoked_at                  ? "revoked"
                      : t.expires_at <= NowMillis() ? "expired"
                                                    : "active"}};
  if (t.last_used_at) v["last_used_at"] = IsoTime(*t.last_used_at);
  return v;
}

void Server::WhoAmI(const http::Request& req, http::Response& res) {
  const Caller& c = CallerOf(req);
  SendJson(
      res,
      {{"name", c.name}, {"role", store::RoleName(c.role)}, {"via", c.via}, {"team", opt_.team}});
}

void Server::ListRoleAssignments(const http::Request& req, http::Response& res) {
  std::string assignee = req.get_param_value("assignee");
  std::string role = req.get_param_value("role");
  json out = json::array();
  for (const auto& a : access_->Assignments()) {
    if (!assignee.empty() && a.assignee != assignee) continue;
    if (!role.empty() && ToLower(role) != ToLower(store::RoleName(a.role))) continue;
    out.push_back(AssignmentView(a));
  }
  SendJson(res, out);
}

void Server::CreateRoleAssignment(const http::Request& req, http::Response& res) {
  json body = ParseJsonOrDiscarded(req.body);
  if (!body.is_object())
    return SendError(res, InvalidArgument("expected {\"assignee\", \"role\"}"));
  auto role = store::ParseRole(body.value("role", ""));
  if (!role)
    return SendError(res, InvalidArgument("--role: expected Owner, Contributor or Reader, got '" +
                                          body.value("role", "").substr(0, 64) + "'"));
  std::string type = ToLower(body.value("assignee_principal_type", "User"));
  auto made = access_->Assign(body.value("assignee", ""), type, *role, CallerOf(req).name);
  if (!made.ok()) return SendError(res, made.status());
  Audit(req, "role.assign", made->assignee, store::RoleName(made->role));
  SendJson(res, AssignmentView(*made), 201);
}

void Server::DeleteRoleAssignments(const http::Request& req, http::Response& res) {
  std::string assignee = req.get_param_value("assignee");
  std::string id = req.get_param_value("id");
  std::optional<store::Role> role;
  if (req.has_param("role")) {
    role = store::ParseRole(req.get_param_value("role"));
    if (!role)
      return SendError(res, InvalidArgument("--role: expected Owner, Contributor or Reader"));
  }
  if (assignee.empty() && id.empty())
    return SendError(res, InvalidArgument("give --assignee or --ids"));
  auto n = access_->Unassign(assignee, role, id);
  if (!n.ok()) return SendError(res, n.status());
  Audit(req, "role.delete", assignee.empty() ? id : assignee,
        role ? store::RoleName(*role) : "every role");
  SendJson(res, {{"deleted", *n}});
}

void Server::ListTokens(const http::Request& req, http::Response& res) {
  const Caller& c = CallerOf(req);
  bool all = req.get_param_value("all") == "true";
  if (all && !c.IsOwner())
    return SendError(res, Status(Code::kPermissionDenied, "only an Owner lists everyone's tokens"));
  json out = json::array();
  for (const auto& t : access_->Tokens(all ? "" : c.name)) out.push_back(TokenView(t));
  SendJson(res, out);
}

void Server::CreateToken(const http::Request& req, http::Response& res) {
  const Caller& c = CallerOf(req);
  // A token makes no other: a leaked one cannot mint itself a longer life.
  if (c.via == "access-token")
    return SendError(res, Status(Code::kPermissionDenied,
                                 "a personal access token cannot create tokens; run cairn token "
                                 "create on the machine, or from the studio"));
  json body = ParseJsonOrDiscarded(req.body);
  if (!body.is_object()) body = json::object();
  long long days = body.value("expires_in_days", 30LL);
  if (days < 1 || days > 366)
    return SendError(res,
                     InvalidArgument("--expires-in: 1 to 366 days, got " + std::to_string(days)));
  auto made =
      access_->CreateToken(c.name, body.value("description", ""), NowMillis() + days * 86400000LL);
  if (!made.ok()) return SendError(res, made.status());
  Audit(req, "token.create", made->first.id, made->first.description);
  json v = TokenView(made->first);
  v["token"] = made->second;  // shown once
  SendJson(res, v, 201);
}

void Server::RevokeToken(const http::Request& req, http::Response& res) {
  const Caller& c = CallerOf(req);
  Status s = access_->RevokeToken(req.matches[1], c.IsOwner() ? "" : c.name);
  if (!s.ok()) return SendError(res, s);
  Audit(req, "token.revoke", req.matches[1]);
  SendJson(res, {{"id", req.matches[1].str()}, {"revoked", true}});
}

void Server::ListAudit(const http::Request& req, http::Response& res) {
  store::AuditFilter f;
  f.who = req.get_param_value("who");
  f.action = req.get_param_value("action");
  f.target = req.get_param_value("target");
  if (req.has_param("max_results"))
    f.max_results = std::clamp(atoi(req.get_param_value("max_results").c_str()), 1, 100000);
  json out = json::array();
  for (const auto& e : access_->AuditLog(f))
    out.push_back({{"seq", e.seq},
                   {"at", IsoTime(e.at)},
                   {"who", e.who},
                   {"via", e.via},
                   {"address", e.address},
                   {"action", e.action},
                   {"target", e.target},
                   {"detail", e.detail}});
  SendJson(res, out);
}

// Public: how a browser may sign in here, for the studio's "not signed in" page.
void Server::SignInOptions(const http::Request&, http::Response& res) {
  json out = {{"oidc", static_cast<bool>(oidc_)}, {"link", "cairn studio"}};
  if (oidc_) out["issuer"] = oidc_->config().issuer;
  SendJson(res, out);
}

void Server::OidcLogin(const http::Request& req, http::Response& res) {
  if (!oidc_) return SendError(res, NotFound("this server has no OpenID provider configured"));
  std::string next = req.get_param_value("next");
  if (!IsStudioRoute(next)) next = "/";
  auto start = oidc_->Begin(next);
  if (!start.ok()) return SendError(res, start.status());
  // Lax: the provider's redirect back is a top-level navigation from its site.
  res.set_header("Set-Cookie", "cairn_oidc_state=" + start->state +
                                   "; Path=/oidc; Max-Age=600; HttpOnly; SameSite=Lax" +
                                   (svr_.tls() ? "; Secure" : ""));
  res.status = 302;
  res.set_header("Location", start->url);
}

void Server::OidcCallback(const http::Request& req, http::Response& res) {
  if (!oidc_) return SendError(res, NotFound("this server has no OpenID provider configured"));
  auto refuse = [&](const std::string& why) {
    res.status = 403;
    std::string text;
    for (char c : why.substr(0, 500))
      text += c == '<' ? "&lt;" : c == '&' ? "&amp;" : std::string(1, c);
    res.set_content("<!doctype html><title>Cairn</title><p>" + text +
                        "</p><p><a href=\"/oidc/login\">Sign in again</a></p>",
                    "text/html; charset=utf-8");
  };
  if (std::string err = req.get_param_value("error"); !err.empty())
    return refuse("the OpenID provider refused the sign-in: " + err);
  auto who = oidc_->Finish(req.get_param_value("code"), req.get_param_value("state"),
                           CookieOf(req, "cairn_oidc_state"));
  if (!who.ok()) return refuse(who.status().message());
  std::string session = RandomHex(32);
  long long now = NowMillis();
  {
    std::lock_guard<std::mutex> l(auth_mu_);
    Session s{now,
              now,
              who->name,
              true,
              who->groups,
              who->refresh_token,
              now + oidc_->config().refresh_seconds * 1000};
    sessions_[session] = std::move(s);
  }
  http::Request as = req;
  SetCaller(as, PersonCaller(who->name, 0, "oidc", req.peer.address, who->groups));
  Audit(as, "session.oidc", who->name, "subject " + who->subject);
  res.status = 302;
  res.headers.emplace("Set-Cookie", "cairn_oidc_state=; Path=/oidc; Max-Age=0");
  res.headers.emplace("Set-Cookie", "cairn_session=" + session +
                                        "; Path=/; HttpOnly; SameSite=Strict" +
                                        (svr_.tls() ? "; Secure" : ""));
  res.set_header("Location", IsStudioRoute(who->next) ? who->next : "/");
}

}  // namespace cairn::server
