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

bool SameToken(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

std::string BearerOf(const http::Request& req) {
  std::string h = req.get_header_value("Authorization");
  return StartsWith(h, "Bearer ") ? h.substr(7) : "";
}

std::string SessionOf(const http::Request& req) { return CookieOf(req, "cairn_session"); }

}  // namespace

// Whether the Host a request names is this server: a loopback name (any port) when it listens on
// loopback, which a page on another name that resolves here (DNS rebinding) does not send; beyond
// loopback (TLS), the names people use for the machine are not known, and a rebound page has no
// cookie.
bool Server::HostAllowed(const std::string& host_header) const {
  if (opt_.host != "127.0.0.1" && opt_.host != "localhost" && opt_.host != "::1") return true;
  if (host_header.empty()) return true;  // not a browser's (every browser sends one)
  std::string host = host_header;
  if (StartsWith(host, "["))
    host = host.substr(1, host.find(']') == std::string::npos ? 0 : host.find(']') - 1);
  else
    host = host.substr(0, host.find(':'));
  return host == "127.0.0.1" || host == "localhost" || host == "::1";
}

// Why a studio request (a session cookie) that changes something is refused, "" when it may go
// on: it must carry X-Cairn-Studio (a header no form can send, and no other origin's script
// without a CORS preflight this server never grants), and the browser's own Origin and
// Sec-Fetch-Site must say the page is this server's.
std::string Server::CrossSiteReason(const http::Request& req) {
  if (req.method == "GET" || req.method == "HEAD") return "";
  std::string site = req.get_header_value("Sec-Fetch-Site");
  if (!site.empty() && site != "same-origin")
    return "refused: a studio request from another site or origin (Sec-Fetch-Site: " +
           site.substr(0, 40) + ")";
  std::string origin = req.get_header_value("Origin");
  if (!origin.empty()) {
    std::string bare =
        origin.substr(origin.find("://") == std::string::npos ? 0 : origin.find("://") + 3);
    if (bare != req.get_header_value("Host"))
      return "refused: a studio request from another origin (" + origin.substr(0, 200) + ")";
  }
  if (req.get_header_value("X-Cairn-Studio") != "1")
    return "refused: a studio request that changes something must come from the studio "
           "(X-Cairn-Studio header)";
  return "";
}

bool Server::HasBody(const http::Request& req) {
  if (req.has_header("Transfer-Encoding")) return true;
  std::string length = req.get_header_value("Content-Length");
  return !length.empty() && length != "0";
}

// On every answer: no framing by other pages, no guessing of types, scripts and styles only from
// here.
void Server::AddSecurityHeaders(http::Response& res) {
  res.set_header("X-Frame-Options", "DENY");
  res.set_header("X-Content-Type-Options", "nosniff");
  res.set_header("Referrer-Policy", "no-referrer");
  res.set_header(
      "Content-Security-Policy",
      "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
      "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'");
}

Server::UnixPerson Server::LookUpPerson(const std::string& name, unsigned uid) {
  std::string key = name.empty() ? "#" + std::to_string(uid) : name;
  long long now = NowMillis();
  {
    std::lock_guard<std::mutex> l(people_mu_);
    if (auto it = people_.find(key); it != people_.end() && now - it->second.at < 10000)
      return it->second;
  }
  UnixPerson p;
  p.at = now;
  auto account = name.empty() ? AccountOfUid(uid) : AccountOf(name);
  if (account.ok()) {
    p.known = true;
    p.name = account->name;
    p.groups = account->group_names;
  } else {
    p.name = name.empty() ? "uid " + std::to_string(uid) : name;
  }
  std::lock_guard<std::mutex> l(people_mu_);
  if (people_.size() > 4096) people_.clear();
  people_[key] = p;
  return p;
}

// A person as the server names them, with the role they hold now: on a private server its one
// person is the Owner; on a team server root is, and everyone else holds what is assigned to them
// or to one of their groups.
Caller Server::PersonCaller(const std::string& name, unsigned uid, const std::string& via,
                            const std::string& address,
                            const std::vector<std::string>& provider_groups) {
  Caller c;
  c.kind = Caller::Kind::kPerson;
  c.via = via;
  c.address = address;
  if (!opt_.team) {
    c.name = name.empty() ? UserName() : name;
    c.role = store::Role::kOwner;
    return c;
  }
  UnixPerson p = LookUpPerson(name, uid);
  c.name = p.name;
  // Root is an Owner when the kernel or the workspace token says so, never by a name a token or
  // a provider carries.
  if ((via == "socket" && uid == 0) || via == "workspace-token") {
    c.role = store::Role::kOwner;
    return c;
  }
  std::vector<std::string> groups = p.groups;
  groups.insert(groups.end(), provider_groups.begin(), provider_groups.end());
  c.role = access_->RoleOf(p.name, groups);
  return c;
}

// Who is calling, from what the request shows (the socket's peer, a bearer token, the studio's
// session): a nobody when it shows nothing this server knows. `refusal` is set when the request
// must be answered at once (a studio request from another site).
Caller Server::Identify(const http::Request& req, Status* refusal) {
  if (req.peer.unix_socket) return PersonCaller("", req.peer.uid, "socket", req.peer.address);
  std::string bearer = BearerOf(req);
  if (!bearer.empty() && SameToken(bearer, token_))
    return PersonCaller(opt_.team ? "root" : "", 0, "workspace-token", req.peer.address);
  if (StartsWith(bearer, "cairn_pat_") && access_) {
    std::string owner = access_->TokenOwner(bearer, NowMillis());
    if (!owner.empty()) return PersonCaller(owner, 0, "access-token", req.peer.address);
    return Caller();
  }
  // The studio: a browser signed in through a one-time link carries a session cookie.
  if (std::string session = SessionOf(req); !session.empty()) {
    std::string person, refresh;
    std::vector<std::string> groups;
    bool stale = false;
    {
      std::lock_guard<std::mutex> l(auth_mu_);
      if (auto it = sessions_.find(session); it != sessions_.end()) {
        long long now = NowMillis();
        if (now - it->second.last_used <= session_idle_ms_ &&
            now - it->second.created <= session_max_age_ms_) {
          it->second.last_used = now;
          person = it->second.person;
          groups = it->second.groups;
          refresh = it->second.refresh_token;
          stale = it->second.oidc && now >= it->second.refresh_at;
        } else {
          sessions_.erase(it);  // expired: idle too long, or past its absolute age
        }
      }
    }
    // A provider's sign-in is asked again now and then: a person disabled there is signed out.
    if (stale && oidc_) {
      auto fresh = oidc_->Refresh(refresh);
      std::lock_guard<std::mutex> l(auth_mu_);
      auto it = sessions_.find(session);
      if (!fresh.ok() || it == sessions_.end()) {
        if (it != sessions_.end()) sessions_.erase(it);
        fprintf(stderr, "%s studio session of %s ended: %s\n", IsoTime(NowMillis()).c_str(),
                person.c_str(), fresh.ok() ? "gone" : fresh.status().message().c_str());
        return Caller();
      }
      it->second.refresh_token = *fresh;
      it->second.refresh_at = NowMillis() + oidc_->config().refresh_seconds * 1000;
    }
    if (!person.empty()) {
      // A cookie goes with any page's request: a change must prove it comes from the studio
      // itself.
      if (std::string why = CrossSiteReason(req); !why.empty()) {
        *refusal = Status(Code::kPermissionDenied, why);
        return Caller();
      }
      return PersonCaller(person, 0, "studio", req.peer.address, groups);
    }
  }
  if (bearer.empty()) return Caller();
  // A job's MLflow client authenticates with the job's token and may write only to the job's run.
  if (StartsWith(req.path, "/api/2.0/")) {
    if (std::string job = Reader().JobByToken(bearer); !job.empty()) {
      Caller c;
      c.kind = Caller::Kind::kJob;
      c.job = job;
      c.via = "job-token";
      c.address = req.peer.address;
      return c;
    }
    return Caller();
  }
  // A supervisor reports on its own job with that job's credential, only while the job has not
  // ended: a finished job's credential writes nothing more.
  static const std::string kInternal = "/api/v1/internal/jobs/";
  if (StartsWith(req.path, kInternal)) {
    std::string name = req.path.substr(kInternal.size());
    name = name.substr(0, name.find('/'));
    auto job = Reader().GetBrief(name);
    if (job.ok() && !store::IsTerminalStatus(job->status) &&
        SameToken(bearer, scheduler::SupervisorCredential(token_, job->token))) {
      Caller c;
      c.kind = Caller::Kind::kSupervisor;
      c.job = name;
      c.via = "supervisor";
      c.address = req.peer.address;
      return c;
    }
  }
  return Caller();
}

// Before any of the body is read: the host, then who is calling, then whether the route's row
// lets them. Attaches the caller for the handler.
http::Server::HandlerResponse Server::PreRoute(http::Request& req, http::Response& res) {
  AddSecurityHeaders(res);
  if (!HostAllowed(req.get_header_value("Host"))) {
    SendError(res, Status(Code::kPermissionDenied, "this server does not answer for host '" +
                                                       req.get_header_value("Host").substr(0, 200) +
                                                       "'"));
    res.status = 421;
    return http::Server::HandlerResponse::Handled;
  }
  const bool api = StartsWith(req.path, "/api/");
  // A path no row names: beyond /api/ a page (404, public); under it, only for someone known.
  Access access = req.route_tag >= 0 ? static_cast<Access>(req.route_tag)
                  : api              ? Access::kRead
                                     : Access::kPublic;
  if (access == Access::kPublic) {
    // Pages, assets, the sign-in link and identify: public, and so they take no body (none is
    // read).
    if (!HasBody(req)) return http::Server::HandlerResponse::Unhandled;
    SendError(res, InvalidArgument(req.path.substr(0, 200) + " takes no request body"));
    return http::Server::HandlerResponse::Handled;
  }
  Status refusal;
  Caller caller = Identify(req, &refusal);
  if (!refusal.ok()) {
    SendError(res, refusal);
    return http::Server::HandlerResponse::Handled;
  }
  if (Status s = Check(access, caller); !s.ok()) {
    if (s.code() == Code::kUnauthenticated) {
      std::string why = opt_.team ? "missing, wrong, expired or revoked credential (on this "
                                    "machine, the CLI needs none; elsewhere, a personal access "
                                    "token: cairn token create)"
                                  : "missing or wrong bearer token (the workspace token is in " +
                                        ws_.Token() + ")";
      if (StartsWith(req.path, "/api/2.0/")) {
        res.status = 401;
        res.set_content(json{{"error_code", "UNAUTHENTICATED"}, {"message", why}}.dump(),
                        "application/json");
      } else {
        SendError(res, Status(Code::kUnauthenticated, why));
      }
    } else {
      SendError(res, s);
    }
    return http::Server::HandlerResponse::Handled;
  }
  bool known = caller.kind != Caller::Kind::kNobody;
  SetCaller(req, std::move(caller));
  return known ? http::Server::HandlerResponse::Authorized
               : http::Server::HandlerResponse::Unhandled;
}

// An entry in the audit log: who did `action` to `target`, from where.
void Server::Audit(const http::Request& req, const std::string& action, const std::string& target,
                   const std::string& detail) {
  if (!access_) return;
  const Caller& c = CallerOf(req);
  store::AuditEntry e;
  e.who = c.IsPerson() ? c.name : c.job.empty() ? "?" : "job " + c.job;
  e.via = c.via;
  e.address = c.address;
  e.action = action;
  e.target = target;
  e.detail = detail;
  if (Status s = access_->Audit(e); !s.ok())
    fprintf(stderr, "cairn server: audit log: %s\n", s.message().c_str());
}

}  // namespace cairn::server
