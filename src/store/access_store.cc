#include "store/access_store.h"

#include <algorithm>

#include "base/util.h"
#include "store/db.h"

namespace cairn::store {

namespace {

const std::vector<std::string> kAccessMigrations = {
    R"(
CREATE TABLE role_assignments (
  id TEXT PRIMARY KEY,
  assignee TEXT NOT NULL,
  assignee_type TEXT NOT NULL,
  role INTEGER NOT NULL,
  created_by TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  UNIQUE (assignee, assignee_type, role)
);
CREATE TABLE access_tokens (
  id TEXT PRIMARY KEY,
  owner TEXT NOT NULL,
  hash TEXT NOT NULL UNIQUE,
  description TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  revoked_at INTEGER,
  last_used_at INTEGER
);
CREATE INDEX access_tokens_owner ON access_tokens (owner);
CREATE TABLE audit (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  at INTEGER NOT NULL,
  who TEXT NOT NULL,
  via TEXT NOT NULL,
  address TEXT NOT NULL,
  action TEXT NOT NULL,
  target TEXT NOT NULL,
  detail TEXT NOT NULL
);
-- Append-only: the audit log cannot be changed or shortened through SQL either.
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
)",
    R"(
CREATE TABLE quotas (
  compute TEXT NOT NULL,
  assignee TEXT NOT NULL,
  gpus INTEGER NOT NULL,
  slots INTEGER NOT NULL,
  jobs INTEGER NOT NULL,
  set_by TEXT NOT NULL,
  set_at INTEGER NOT NULL,
  PRIMARY KEY (compute, assignee)
);
)",
};

}  // namespace

const char* RoleName(Role r) {
  switch (r) {
    case Role::kOwner:
      return "Owner";
    case Role::kContributor:
      return "Contributor";
    case Role::kReader:
      return "Reader";
    default:
      return "";
  }
}

std::optional<Role> ParseRole(const std::string& s) {
  std::string l = ToLower(s);
  if (l == "owner") return Role::kOwner;
  if (l == "contributor") return Role::kContributor;
  if (l == "reader") return Role::kReader;
  return std::nullopt;
}

Result<std::unique_ptr<AccessStore>> AccessStore::Open(const std::string& path) {
  auto db = Db::Open(path, false, &kAccessMigrations);
  if (!db.ok()) return db.status();
  std::unique_ptr<AccessStore> s(new AccessStore());
  s->db_ = std::move(db).value();
  if (Status st = s->Load(); !st.ok()) return st;
  return s;
}

AccessStore::~AccessStore() = default;

Status AccessStore::Load() {
  roles_.clear();
  Stmt& r = db_->Prepare(
      "SELECT id, assignee, assignee_type, role, created_by, created_at FROM role_assignments "
      "ORDER BY created_at, id");
  while (r.Step())
    roles_.push_back(
        {r.Text(0), r.Text(1), r.Text(2), static_cast<Role>(r.Int(3)), r.Text(4), r.Int(5)});
  tokens_.clear();
  Stmt& t = db_->Prepare(
      "SELECT hash, id, owner, expires_at FROM access_tokens WHERE revoked_at IS NULL");
  while (t.Step()) tokens_[t.Text(0)] = {t.Text(1), t.Text(2), t.Int(3), 0};
  quotas_.clear();
  Stmt& q = db_->Prepare(
      "SELECT compute, assignee, gpus, slots, jobs, set_by, set_at FROM quotas ORDER BY compute, "
      "assignee");
  while (q.Step())
    quotas_.push_back({q.Text(0), q.Text(1), static_cast<int>(q.Int(2)), static_cast<int>(q.Int(3)),
                       static_cast<int>(q.Int(4)), q.Text(5), q.Int(6)});
  return Status::Ok();
}

Result<QuotaRecord> AccessStore::SetQuota(QuotaRecord q) {
  if (q.compute.empty() || q.compute.size() > 255 || q.assignee.empty() || q.assignee.size() > 255)
    return InvalidArgument("a quota needs a compute and an assignee");
  for (int v : {q.gpus, q.slots, q.jobs})
    if (v < -1 || v > 1000000) return InvalidArgument("a quota's limits are 0 or more (-1: none)");
  std::lock_guard<std::mutex> l(mu_);
  Status s = db_->Prepare(
                    "INSERT INTO quotas (compute, assignee, gpus, slots, jobs, set_by, set_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (compute, assignee) DO UPDATE SET "
                    "gpus = excluded.gpus, slots = excluded.slots, jobs = excluded.jobs, "
                    "set_by = excluded.set_by, set_at = excluded.set_at")
                 .Bind(1, q.compute)
                 .Bind(2, q.assignee)
                 .Bind(3, static_cast<long long>(q.gpus))
                 .Bind(4, static_cast<long long>(q.slots))
                 .Bind(5, static_cast<long long>(q.jobs))
                 .Bind(6, q.set_by)
                 .Bind(7, q.set_at)
                 .Run();
  if (!s.ok()) return s;
  if (Status st = Load(); !st.ok()) return st;
  return q;
}

Result<int> AccessStore::DeleteQuota(const std::string& compute, const std::string& assignee) {
  std::lock_guard<std::mutex> l(mu_);
  int n = 0;
  for (const auto& q : quotas_) n += q.compute == compute && q.assignee == assignee;
  if (n == 0) return NotFound("no quota for " + assignee + " on " + compute);
  Status s = db_->Prepare("DELETE FROM quotas WHERE compute = ? AND assignee = ?")
                 .Bind(1, compute)
                 .Bind(2, assignee)
                 .Run();
  if (!s.ok()) return s;
  if (Status st = Load(); !st.ok()) return st;
  return n;
}

std::vector<QuotaRecord> AccessStore::Quotas(const std::string& compute) const {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<QuotaRecord> out;
  for (const auto& q : quotas_)
    if (compute.empty() || q.compute == compute) out.push_back(q);
  return out;
}

Role AccessStore::RoleOf(const std::string& user, const std::vector<std::string>& groups) const {
  std::lock_guard<std::mutex> l(mu_);
  Role best = Role::kNone;
  for (const auto& a : roles_) {
    bool match = a.assignee_type == "user"
                     ? a.assignee == user
                     : std::find(groups.begin(), groups.end(), a.assignee) != groups.end();
    if (match && a.role > best) best = a.role;
  }
  return best;
}

bool AccessStore::HasAssignments() const {
  std::lock_guard<std::mutex> l(mu_);
  return !roles_.empty();
}

std::vector<RoleAssignment> AccessStore::Assignments() const {
  std::lock_guard<std::mutex> l(mu_);
  return roles_;
}

Result<RoleAssignment> AccessStore::Assign(const std::string& assignee, const std::string& type,
                                           Role role, const std::string& by) {
  if (assignee.empty() || assignee.size() > 256)
    return InvalidArgument("--assignee: expected a name of 1 to 256 characters");
  for (unsigned char c : assignee)
    if (c < 0x20 || c == 0x7f) return InvalidArgument("--assignee: control characters");
  if (type != "user" && type != "group")
    return InvalidArgument("--assignee-principal-type: expected User or Group");
  if (role == Role::kNone) return InvalidArgument("--role: expected Owner, Contributor or Reader");
  std::lock_guard<std::mutex> l(mu_);
  for (const auto& a : roles_)
    if (a.assignee == assignee && a.assignee_type == type && a.role == role) return a;
  RoleAssignment a{"ra-" + RandomHex(8), assignee, type, role, by, NowMillis()};
  Status s = db_->Prepare(
                    "INSERT INTO role_assignments (id, assignee, assignee_type, role, created_by, "
                    "created_at) VALUES (?, ?, ?, ?, ?, ?)")
                 .Bind(1, a.id)
                 .Bind(2, a.assignee)
                 .Bind(3, a.assignee_type)
                 .Bind(4, static_cast<int>(a.role))
                 .Bind(5, a.created_by)
                 .Bind(6, a.created_at)
                 .Run();
  if (!s.ok()) return s;
  roles_.push_back(a);
  return a;
}

Result<int> AccessStore::Unassign(const std::string& assignee, std::optional<Role> role,
                                  const std::string& id) {
  std::lock_guard<std::mutex> l(mu_);
  auto matches = [&](const RoleAssignment& a) {
    return (assignee.empty() || a.assignee == assignee) && (!role || a.role == *role) &&
           (id.empty() || a.id == id);
  };
  int owners_left = 0, removed = 0;
  for (const auto& a : roles_) {
    if (matches(a))
      ++removed;
    else if (a.role == Role::kOwner && a.assignee_type == "user")
      ++owners_left;
  }
  if (removed == 0) return 0;
  if (owners_left == 0)
    return FailedPrecondition(
        "refused: that would leave the workspace without an Owner; assign another Owner first "
        "(cairn role assignment create --assignee NAME --role Owner)");
  if (Status s = db_->Begin(); !s.ok()) return s;
  for (const auto& a : roles_) {
    if (!matches(a)) continue;
    if (Status s = db_->Prepare("DELETE FROM role_assignments WHERE id = ?").Bind(1, a.id).Run();
        !s.ok()) {
      db_->Rollback();
      return s;
    }
  }
  if (Status s = db_->Commit(); !s.ok()) return s;
  roles_.erase(std::remove_if(roles_.begin(), roles_.end(), matches), roles_.end());
  return removed;
}

Result<std::pair<AccessToken, std::string>> AccessStore::CreateToken(const std::string& owner,
                                                                     const std::string& description,
                                                                     long long expires_at) {
  if (description.size() > 256) return InvalidArgument("--description: at most 256 characters");
  AccessToken t;
  t.id = "pat-" + RandomHex(8);
  t.owner = owner;
  t.description = description;
  t.created_at = NowMillis();
  t.expires_at = expires_at;
  if (expires_at <= t.created_at) return InvalidArgument("--expires-in: must be in the future");
  // 256 random bits; the prefix tells a leaked one apart in logs and secret scanners.
  std::string secret = "cairn_pat_" + RandomHex(32);
  std::string hash = Sha256Hex(secret);
  std::lock_guard<std::mutex> l(mu_);
  Status s = db_->Prepare(
                    "INSERT INTO access_tokens (id, owner, hash, description, created_at, "
                    "expires_at) VALUES (?, ?, ?, ?, ?, ?)")
                 .Bind(1, t.id)
                 .Bind(2, t.owner)
                 .Bind(3, hash)
                 .Bind(4, t.description)
                 .Bind(5, t.created_at)
                 .Bind(6, t.expires_at)
                 .Run();
  if (!s.ok()) return s;
  tokens_[hash] = {t.id, t.owner, t.expires_at, 0};
  return std::make_pair(t, secret);
}

std::string AccessStore::TokenOwner(const std::string& secret, long long now) {
  if (!StartsWith(secret, "cairn_pat_") || secret.size() != 74) return "";
  std::string hash = Sha256Hex(secret);
  std::lock_guard<std::mutex> l(mu_);
  auto it = tokens_.find(hash);
  if (it == tokens_.end() || it->second.expires_at <= now) return "";
  // When it was last used: written at most once a minute per token, off nobody's hot path for long.
  if (now - it->second.last_used_written > 60000) {
    it->second.last_used_written = now;
    (void)db_->Prepare("UPDATE access_tokens SET last_used_at = ? WHERE id = ?")
        .Bind(1, now)
        .Bind(2, it->second.id)
        .Run();
  }
  return it->second.owner;
}

std::vector<AccessToken> AccessStore::Tokens(const std::string& owner) const {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<AccessToken> out;
  Stmt& s = db_->Prepare(
      "SELECT id, owner, description, created_at, expires_at, revoked_at, last_used_at FROM "
      "access_tokens WHERE ? = '' OR owner = ? ORDER BY created_at, id");
  s.Bind(1, owner).Bind(2, owner);
  while (s.Step()) {
    AccessToken t{s.Text(0), s.Text(1), s.Text(2), s.Int(3), s.Int(4), std::nullopt, std::nullopt};
    if (!s.IsNull(5)) t.revoked_at = s.Int(5);
    if (!s.IsNull(6)) t.last_used_at = s.Int(6);
    out.push_back(std::move(t));
  }
  return out;
}

Status AccessStore::RevokeToken(const std::string& id, const std::string& owner) {
  std::lock_guard<std::mutex> l(mu_);
  Stmt& s = db_->Prepare(
      "UPDATE access_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL AND "
      "(? = '' OR owner = ?)");
  Status st = s.Bind(1, static_cast<long long>(NowMillis()))
                  .Bind(2, id)
                  .Bind(3, owner)
                  .Bind(4, owner)
                  .Run();
  if (!st.ok()) return st;
  if (db_->Changes() == 0)
    return NotFound("no live token " + id + (owner.empty() ? "" : " of " + owner));
  for (auto it = tokens_.begin(); it != tokens_.end(); ++it)
    if (it->second.id == id) {
      tokens_.erase(it);
      break;
    }
  return Status::Ok();
}

Status AccessStore::Audit(const AuditEntry& e) {
  std::lock_guard<std::mutex> l(mu_);
  return db_
      ->Prepare(
          "INSERT INTO audit (at, who, via, address, action, target, detail) VALUES (?, ?, "
          "?, ?, ?, ?, ?)")
      .Bind(1, e.at ? e.at : static_cast<long long>(NowMillis()))
      .Bind(2, e.who)
      .Bind(3, e.via)
      .Bind(4, e.address)
      .Bind(5, e.action)
      .Bind(6, e.target)
      .Bind(7, e.detail)
      .Run();
}

std::vector<AuditEntry> AccessStore::AuditLog(const AuditFilter& f) const {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<AuditEntry> out;
  Stmt& s = db_->Prepare(
      "SELECT seq, at, who, via, address, action, target, detail FROM audit WHERE (? = '' OR who "
      "= ?) AND (? = '' OR action = ?) AND (? = '' OR target = ?) AND at >= ? ORDER BY seq DESC "
      "LIMIT ?");
  s.Bind(1, f.who).Bind(2, f.who).Bind(3, f.action).Bind(4, f.action).Bind(5, f.target);
  s.Bind(6, f.target).Bind(7, f.since).Bind(8, f.max_results > 0 ? f.max_results : -1);
  while (s.Step())
    out.push_back(
        {s.Int(0), s.Int(1), s.Text(2), s.Text(3), s.Text(4), s.Text(5), s.Text(6), s.Text(7)});
  return out;
}

}  // namespace cairn::store
