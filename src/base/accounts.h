// Unix accounts: who a name or a uid is on this machine (getpwnam_r/getpwuid_r, getgrouplist).
// Thread-safe.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "base/status.h"

namespace cairn {

struct UnixAccount {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;             // every group the account is in, its primary one included
  std::vector<std::string> group_names;  // the same groups' names (those that have one)
};

// The account named `name`; NotFound when this machine has none.
Result<UnixAccount> AccountOf(const std::string& name);
// The account with `uid`; NotFound when no name maps to it.
Result<UnixAccount> AccountOfUid(uid_t uid);

}  // namespace cairn
