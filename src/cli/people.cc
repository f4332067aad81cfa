// `cairn role assignment`, `cairn token` and `cairn audit`: who may do what in a workspace, as az's
// `role assignment` commands say it, personal access tokens for reaching a team server from
// elsewhere, and the audit log.
#include "cli/people.h"

#include "base/util.h"
#include "cli/client.h"

namespace cairn::cli {

using nlohmann::json;

namespace {

// The CLI's exit codes for a failure (commands.h), said on stderr.
int Fail(const Status& s) { return ReportFailure(s); }

struct PeopleArgs {
  std::string assignee, role, principal_type = "User", scope, ids, description, who, action, target;
  int expires_in_days = 30;
  int max_results = 100;
  bool all = false;
  std::string compute = "local";
  std::optional<int> gpus, slots, jobs;
};

const std::vector<Column> kAssignmentColumns = {{"Principal", "assignee"},
                                                {"Type", "principal_type"},
                                                {"Role", "role_definition_name"},
                                                {"Id", "id"},
                                                {"CreatedBy", "created_by"}};
const std::vector<Column> kTokenColumns = {{"Id", "id"},
                                           {"Owner", "owner"},
                                           {"Description", "description"},
                                           {"Expires", "expires_at"},
                                           {"State", "state"},
                                           {"LastUsed", "last_used_at"}};
const std::vector<Column> kQuotaColumns = {{"Compute", "compute"}, {"Assignee", "assignee"},
                                           {"GPUs", "gpus"},       {"Slots", "slots"},
                                           {"Jobs", "jobs"},       {"SetBy", "set_by"}};
const std::vector<Column> kAuditColumns = {
    {"At", "at"},         {"Who", "who"}, {"Action", "action"}, {"Target", "target"},
    {"Detail", "detail"}, {"Via", "via"}, {"From", "address"}};

// Runs `fn` against the workspace's server; prints its answer with `columns`.
void Call(int& rc, const AssetCommandHooks& hooks, const std::vector<Column>& columns,
          const std::function<Result<json>(Client&)>& fn) {
  auto client = Connect();
  if (!client.ok()) {
    rc = Fail(client.status());
    return;
  }
  auto r = fn(**client);
  rc = r.ok() ? hooks.print(*r, columns) : Fail(r.status());
}

void AddRoleCommands(CLI::App& app, const AssetCommandHooks& hooks, int& rc,
                     std::shared_ptr<PeopleArgs> a) {
  auto* role =
      app.add_subcommand("role", "Manage who may do what in the workspace")->require_subcommand(1);
  auto* group =
      role->add_subcommand("assignment", "Manage role assignments (Owner, Contributor, Reader)")
          ->require_subcommand(1);
  auto* create = group->add_subcommand("create", "Give a person or a group a role");
  create->add_option("--assignee", a->assignee, "a Unix user or group, or an OpenID subject")
      ->required();
  create->add_option("--role", a->role, "Owner, Contributor or Reader")->required();
  create->add_option("--assignee-principal-type", a->principal_type, "User (default) or Group");
  create->add_option("--scope", a->scope, "accepted for az scripts; the scope is the workspace");
  hooks.add_globals(create);
  create->callback([&rc, hooks, a] {
    Call(rc, hooks, kAssignmentColumns, [a](Client& c) {
      return c.Post("/api/v1/role-assignments", {{"assignee", a->assignee},
                                                 {"role", a->role},
                                                 {"assignee_principal_type", a->principal_type}});
    });
  });
  auto* list = group->add_subcommand("list", "List role assignments");
  list->add_option("--assignee", a->assignee, "only this person's or group's");
  list->add_option("--role", a->role, "only this role's");
  list->add_option("--scope", a->scope, "accepted for az scripts");
  list->add_flag("--all", a->all, "accepted for az scripts (every assignment is listed)");
  hooks.add_globals(list);
  list->callback([&rc, hooks, a] {
    Call(rc, hooks, kAssignmentColumns, [a](Client& c) {
      std::string q = "/api/v1/role-assignments?assignee=" + HttpClient::UrlEncode(a->assignee) +
                      "&role=" + HttpClient::UrlEncode(a->role);
      return c.Get(q);
    });
  });
  auto* del = group->add_subcommand("delete", "Take roles away");
  del->add_option("--assignee", a->assignee, "the person or group");
  del->add_option("--role", a->role, "only this role (default: every role of the assignee)");
  del->add_option("--ids", a->ids, "an assignment's id (from list)");
  del->add_option("--scope", a->scope, "accepted for az scripts");
  hooks.add_globals(del);
  del->callback([&rc, hooks, a] {
    if (a->assignee.empty() && a->ids.empty()) {
      rc = Fail(InvalidArgument("give --assignee or --ids"));
      return;
    }
    Call(rc, hooks, {{"Deleted", "deleted"}}, [a](Client& c) {
      std::string q = "/api/v1/role-assignments?assignee=" + HttpClient::UrlEncode(a->assignee);
      if (!a->role.empty()) q += "&role=" + HttpClient::UrlEncode(a->role);
      if (!a->ids.empty()) q += "&id=" + HttpClient::UrlEncode(a->ids);
      return c.Delete(q);
    });
  });
}

void AddTokenCommands(CLI::App& app, const AssetCommandHooks& hooks, int& rc,
                      std::shared_ptr<PeopleArgs> a) {
  auto* token = app.add_subcommand("token", "Manage your personal access tokens (for TLS clients)")
                    ->require_subcommand(1);
  auto* create = token->add_subcommand(
      "create", "Make a token: it is shown once, and acts as you until it expires or is revoked");
  create->add_option("-d,--description", a->description, "what it is for");
  create->add_option("--expires-in", a->expires_in_days, "days until it expires (1-366, 30)");
  hooks.add_globals(create);
  create->callback([&rc, hooks, a] {
    Call(rc, hooks, {{"Id", "id"}, {"Expires", "expires_at"}, {"Token", "token"}}, [a](Client& c) {
      return c.Post("/api/v1/tokens",
                    {{"description", a->description}, {"expires_in_days", a->expires_in_days}});
    });
  });
  auto* list = token->add_subcommand("list", "List your tokens (never their secrets)");
  list->add_flag("--all", a->all, "everyone's (Owners)");
  hooks.add_globals(list);
  list->callback([&rc, hooks, a] {
    Call(rc, hooks, kTokenColumns, [a](Client& c) {
      return c.Get(std::string("/api/v1/tokens") + (a->all ? "?all=true" : ""));
    });
  });
  auto* revoke = token->add_subcommand("revoke", "Revoke a token at once");
  revoke->add_option("--id", a->ids, "the token's id (from list)")->required();
  hooks.add_globals(revoke);
  revoke->callback([&rc, hooks, a] {
    Call(rc, hooks, {{"Id", "id"}, {"Revoked", "revoked"}},
         [a](Client& c) { return c.Delete("/api/v1/tokens/" + HttpClient::UrlEncode(a->ids)); });
  });
}

void AddAuditCommands(CLI::App& app, const AssetCommandHooks& hooks, int& rc,
                      std::shared_ptr<PeopleArgs> a) {
  auto* audit =
      app.add_subcommand("audit", "Read the workspace's audit log (Owners)")->require_subcommand(1);
  auto* list = audit->add_subcommand("list", "Who did what, newest first");
  list->add_option("--who", a->who, "only this person's");
  list->add_option("--action", a->action, "only this action (job.cancel, role.assign, ...)");
  list->add_option("--target", a->target, "only about this job, person or token");
  list->add_option("-r,--max-results", a->max_results, "at most this many (default 100)");
  hooks.add_globals(list);
  list->callback([&rc, hooks, a] {
    Call(rc, hooks, kAuditColumns, [a](Client& c) {
      return c.Get("/api/v1/audit?who=" + HttpClient::UrlEncode(a->who) +
                   "&action=" + HttpClient::UrlEncode(a->action) +
                   "&target=" + HttpClient::UrlEncode(a->target) +
                   "&max_results=" + std::to_string(a->max_results));
    });
  });
  auto* whoami = app.add_subcommand("whoami", "Who the workspace's server says you are");
  hooks.add_globals(whoami);
  whoami->callback([&rc, hooks] {
    Call(rc, hooks, {{"Name", "name"}, {"Role", "role"}, {"Via", "via"}},
         [](Client& c) { return c.Get("/api/v1/whoami"); });
  });
}

// cairn quota set|list|delete: at most this many GPUs, CPU slots and running jobs of a compute for
// one person (Owners set them; docs/scheduling.md).
void AddQuotaCommands(CLI::App& app, const AssetCommandHooks& hooks, int& rc,
                      std::shared_ptr<PeopleArgs> a) {
  auto* quota = app.add_subcommand("quota", "Limit what one person may hold of a compute")
                    ->require_subcommand(1);
  auto path = [a] { return "/api/v1/computes/" + HttpClient::UrlEncode(a->compute) + "/quotas"; };
  auto* set = quota->add_subcommand("set", "Set (or replace) a person's quota on a compute");
  set->add_option("--assignee", a->assignee, "the person (a Unix user or OpenID name)")->required();
  set->add_option("-c,--compute", a->compute, "the compute (default local)");
  set->add_option("--gpus", a->gpus, "GPUs at most (left out: no limit)");
  set->add_option("--slots", a->slots, "CPU slots at most");
  set->add_option("--jobs", a->jobs, "running jobs at most");
  hooks.add_globals(set);
  set->callback([&rc, hooks, a, path] {
    json body = json::object();
    if (a->gpus) body["gpus"] = *a->gpus;
    if (a->slots) body["slots"] = *a->slots;
    if (a->jobs) body["jobs"] = *a->jobs;
    Call(rc, hooks, kQuotaColumns, [a, path, body](Client& c) {
      return c.Put(path() + "/" + HttpClient::UrlEncode(a->assignee), body);
    });
  });
  auto* list = quota->add_subcommand("list", "List a compute's quotas");
  list->add_option("-c,--compute", a->compute, "the compute (default local)");
  hooks.add_globals(list);
  list->callback([&rc, hooks, path] {
    Call(rc, hooks, kQuotaColumns, [path](Client& c) { return c.Get(path()); });
  });
  auto* del = quota->add_subcommand("delete", "Remove a person's quota on a compute");
  del->add_option("--assignee", a->assignee, "the person")->required();
  del->add_option("-c,--compute", a->compute, "the compute (default local)");
  hooks.add_globals(del);
  del->callback([&rc, hooks, a, path] {
    Call(rc, hooks, {{"Deleted", "deleted"}}, [a, path](Client& c) {
      return c.Delete(path() + "/" + HttpClient::UrlEncode(a->assignee));
    });
  });
}

}  // namespace

void AddPeopleCommands(CLI::App& app, const AssetCommandHooks& hooks, int& rc,
                       const std::function<bool(const std::string&)>& wanted) {
  auto a = std::make_shared<PeopleArgs>();
  if (!wanted || wanted("role")) AddRoleCommands(app, hooks, rc, a);
  if (!wanted || wanted("token")) AddTokenCommands(app, hooks, rc, a);
  if (!wanted || wanted("quota")) AddQuotaCommands(app, hooks, rc, a);
  if (!wanted || wanted("audit") || wanted("whoami")) AddAuditCommands(app, hooks, rc, a);
}

}  // namespace cairn::cli
