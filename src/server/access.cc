#include "server/access.h"

namespace cairn::server {

using store::Role;

const char* AccessName(Access a) {
  switch (a) {
    case Access::kPublic:
      return "public";
    case Access::kPerson:
      return "person";
    case Access::kRead:
      return "reader";
    case Access::kWrite:
      return "contributor";
    case Access::kOwner:
      return "owner";
    case Access::kRunRead:
      return "reader or job";
    case Access::kRunWrite:
      return "contributor or job";
    case Access::kSupervisor:
      return "supervisor";
  }
  return "?";
}

const Caller& CallerOf(const http::Request& req) {
  static const Caller kNobody;
  return req.auth ? *static_cast<const Caller*>(req.auth.get()) : kNobody;
}

void SetCaller(http::Request& req, Caller c) { req.auth = std::make_shared<const Caller>(c); }

namespace {

std::string GrantCommand(const std::string& name, const char* role) {
  return "an Owner gives it with: cairn role assignment create --assignee " + name + " --role " +
         role;
}

Status NeedsRole(const Caller& c, Role need, const char* doing) {
  if (c.role >= need) return Status::Ok();
  if (c.role == Role::kNone)
    return Status(Code::kPermissionDenied, c.name + " has no role in this workspace; " +
                                               GrantCommand(c.name, "Reader") +
                                               " (or Contributor, to submit jobs)");
  return Status(Code::kPermissionDenied, c.name + " is a " + store::RoleName(c.role) +
                                             " in this workspace: " + doing + " needs the " +
                                             store::RoleName(need) + " role; " +
                                             GrantCommand(c.name, store::RoleName(need)));
}

}  // namespace

Status Check(Access a, const Caller& c) {
  if (a == Access::kPublic) return Status::Ok();
  if (c.kind == Caller::Kind::kNobody)
    return Status(Code::kUnauthenticated, "missing or wrong credential");
  if (a == Access::kSupervisor)
    return c.kind == Caller::Kind::kSupervisor
               ? Status::Ok()
               : Status(Code::kPermissionDenied, "only a job's supervisor may call this");
  if (c.kind == Caller::Kind::kSupervisor)
    return Status(Code::kPermissionDenied, "a supervisor's credential may only report its job");
  if (c.kind == Caller::Kind::kJob) {
    if (a == Access::kRunRead || a == Access::kRunWrite) return Status::Ok();
    return Status(Code::kPermissionDenied,
                  "a job's token (job '" + c.job + "') may only use the MLflow API for its run");
  }
  switch (a) {
    case Access::kPerson:
      return Status::Ok();
    case Access::kRead:
    case Access::kRunRead:
      return NeedsRole(c, Role::kReader, "reading");
    case Access::kWrite:
    case Access::kRunWrite:
      return NeedsRole(c, Role::kContributor, "submitting or changing");
    case Access::kOwner:
      return NeedsRole(c, Role::kOwner, "this");
    default:
      return Status(Code::kPermissionDenied, "refused");
  }
}

Status MayChange(const Caller& c, const std::string& created_by, const std::string& what) {
  if (c.IsOwner()) return Status::Ok();
  if (c.IsPerson() && c.role >= Role::kContributor && !c.name.empty() && c.name == created_by)
    return Status::Ok();
  if (c.IsPerson() && c.role >= Role::kContributor)
    return Status(
        Code::kPermissionDenied,
        c.name + " is a Contributor and may change only what they created; " + what +
            (created_by.empty() ? " has no recorded creator" : " was created by " + created_by) +
            " (an Owner may change it)");
  return Check(Access::kWrite, c);
}

}  // namespace cairn::server
