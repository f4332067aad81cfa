// Who may call what: each route declares an Access (in its row of the route table), each request
// carries the Caller the pre-router found, and the decision between them is this file's, a pure
// function the unit tests call directly.
//
// A private server (the default: one person's ~/.cairn) has one person, its Owner: the workspace
// token, the studio's session and the server's own user all are. A team server (cairn server
// --team) knows people by the Unix socket's peer credentials, personal access tokens and studio
// sessions, and gives each the role assigned to them or to one of their groups.
#pragma once

#include <memory>
#include <string>

#include "base/http_server.h"
#include "base/status.h"
#include "store/access_store.h"

namespace cairn::server {

enum class Access : int {
  kPublic = 0,     // anyone, no credential (and no body)
  kPerson = 1,     // any person the server can name, with or without a role (whoami, their tokens)
  kRead = 2,       // a person with a role (Reader and up)
  kWrite = 3,      // a Contributor or Owner; a Contributor only on what they created
  kOwner = 4,      // an Owner: computes, roles, the audit log, shutting the server down
  kRunRead = 5,    // kRead, or a running job's token (MLflow reads)
  kRunWrite = 6,   // kWrite, or a job's token for its own run only (MLflow writes)
  kSupervisor = 7  // a running job's supervisor, with that job's credential
};
// "public", "person", "reader", "contributor", "owner", "reader or job", "contributor or job",
// "supervisor": as docs/rest-api.md's route table names them.
const char* AccessName(Access a);

struct Caller {
  enum class Kind { kNobody, kPerson, kJob, kSupervisor };
  Kind kind = Kind::kNobody;
  std::string name;  // a person's: a Unix user name or an OpenID subject
  store::Role role = store::Role::kNone;
  std::string job;  // kJob and kSupervisor: the job whose credential it showed
  // How it proved itself: "socket", "workspace-token", "access-token", "studio", "job-token",
  // "supervisor"; and from where ("unix:<uid>" or an IP address).
  std::string via, address;

  bool IsPerson() const { return kind == Kind::kPerson; }
  bool IsOwner() const { return IsPerson() && role == store::Role::kOwner; }
};

// The caller the pre-router attached to the request (a nobody when none was).
const Caller& CallerOf(const http::Request& req);
void SetCaller(http::Request& req, Caller c);

// Why `c` may not call a route of access `a` with `method`; OK when it may. The status says how to
// answer: Unauthenticated (401) when no credential was shown, PermissionDenied (403) with the role
// named otherwise.
Status Check(Access a, const Caller& c);

// Whether `c` may change something `created_by` made (a job, an asset, a run): an Owner anything, a
// Contributor what they made, nobody else. `what` names it in the refusal.
Status MayChange(const Caller& c, const std::string& created_by, const std::string& what);

}  // namespace cairn::server
