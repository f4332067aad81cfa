// Who may do what in a workspace: role assignments (az's Owner, Contributor, Reader), personal
// access tokens (stored as SHA-256 hashes, with an expiry), and the append-only audit log. Its own
// SQLite database (access.db beside jobs.db), so that a request's identity check never waits on
// the scheduler's writes.
//
// Thread-safe: every method takes the store's mutex. The request path (RoleOf, TokenOwner) reads
// in-memory copies that every change updates before it returns, so a role or a revocation takes
// effect on the next request.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"

namespace cairn::store {

class Db;

enum class Role { kNone = 0, kReader = 1, kContributor = 2, kOwner = 3 };
// "Owner", "Contributor", "Reader" (az's names); "" for kNone.
const char* RoleName(Role r);
// The role az names, case-insensitively; nullopt for anything else.
std::optional<Role> ParseRole(const std::string& s);

struct RoleAssignment {
  std::string id;        // stable: "ra-<hex>"
  std::string assignee;  // a Unix user or group name, or an OpenID subject or group
  // "user" or "group" (a Unix group, or an OpenID provider's group claim).
  std::string assignee_type = "user";
  Role role = Role::kReader;
  std::string created_by;
  long long created_at = 0;
};

struct AccessToken {
  std::string id;  // "pat-<hex>": names the token in list and revoke, never proves anything
  std::string owner;
  std::string description;
  long long created_at = 0;
  long long expires_at = 0;  // ms since the epoch
  std::optional<long long> revoked_at;
  std::optional<long long> last_used_at;
};

struct AuditEntry {
  long long seq = 0;
  long long at = 0;
  std::string who, via, address, action, target, detail;
};

struct AuditFilter {
  std::string who, action, target;
  long long since = 0;
  int max_results = 100;
};

// At most this much of a compute for one person (-1: no limit).
struct QuotaRecord {
  std::string compute, assignee;
  int gpus = -1, slots = -1, jobs = -1;
  std::string set_by;
  long long set_at = 0;
};

class AccessStore {
 public:
  static Result<std::unique_ptr<AccessStore>> Open(const std::string& path);
  ~AccessStore();

  // ---- roles ----
  // The strongest role among the assignments to `user` or to any of `groups`.
  Role RoleOf(const std::string& user, const std::vector<std::string>& groups) const;
  Result<RoleAssignment> Assign(const std::string& assignee, const std::string& type, Role role,
                                const std::string& by);
  // Deletes the assignments matching every given field (an empty field matches any); how many.
  // Refused when it would leave the workspace with no Owner assigned to a user.
  Result<int> Unassign(const std::string& assignee, std::optional<Role> role,
                       const std::string& id);
  std::vector<RoleAssignment> Assignments() const;
  bool HasAssignments() const;

  // ---- personal access tokens ----
  // A new token for `owner`: its record, and the secret itself (shown once, stored hashed).
  Result<std::pair<AccessToken, std::string>> CreateToken(const std::string& owner,
                                                          const std::string& description,
                                                          long long expires_at);
  // The person a presented secret belongs to, when it is live (not revoked, not expired at `now`);
  // "" otherwise.
  std::string TokenOwner(const std::string& secret, long long now);
  std::vector<AccessToken> Tokens(const std::string& owner) const;  // "" = everyone's
  // Revokes `id`; only its owner's when `owner` is given.
  Status RevokeToken(const std::string& id, const std::string& owner);

  // ---- quotas (kept in memory: the scheduler reads them at every pass) ----
  Result<QuotaRecord> SetQuota(QuotaRecord q);  // sets or replaces the assignee's on the compute
  Result<int> DeleteQuota(const std::string& compute, const std::string& assignee);
  std::vector<QuotaRecord> Quotas(const std::string& compute) const;  // "" = every compute's

  // ---- audit ----
  Status Audit(const AuditEntry& e);
  std::vector<AuditEntry> AuditLog(const AuditFilter& f) const;

 private:
  AccessStore() = default;
  Status Load();

  mutable std::mutex mu_;
  std::unique_ptr<Db> db_;
  std::vector<RoleAssignment> roles_;
  std::vector<QuotaRecord> quotas_;
  struct Live {
    std::string id, owner;
    long long expires_at = 0;
    long long last_used_written = 0;
  };
  std::map<std::string, Live> tokens_;  // by the secret's SHA-256 (hex), live ones only
};

}  // namespace cairn::store
