#include "base/accounts.h"

#include <grp.h>
#include <pwd.h>

namespace cairn {

namespace {

UnixAccount FromPasswd(const passwd& pw) {
  UnixAccount a;
  a.name = pw.pw_name;
  a.uid = pw.pw_uid;
  a.gid = pw.pw_gid;
  int n = 64;
  std::vector<gid_t> gids(static_cast<size_t>(n));
  if (getgrouplist(pw.pw_name, pw.pw_gid, gids.data(), &n) < 0) {
    gids.resize(static_cast<size_t>(n));
    if (getgrouplist(pw.pw_name, pw.pw_gid, gids.data(), &n) < 0) n = 0;
  }
  gids.resize(static_cast<size_t>(n > 0 ? n : 0));
  a.groups = gids;
  std::vector<char> buf(65536);
  for (gid_t g : gids) {
    group gr{}, *found = nullptr;
    if (getgrgid_r(g, &gr, buf.data(), buf.size(), &found) == 0 && found)
      a.group_names.push_back(gr.gr_name);
  }
  return a;
}

}  // namespace

Result<UnixAccount> AccountOf(const std::string& name) {
  if (name.empty()) return NotFound("no account name");
  std::vector<char> buf(16384);
  passwd pw{}, *found = nullptr;
  if (getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &found) != 0 || !found)
    return NotFound(name + " has no account on this machine");
  return FromPasswd(pw);
}

Result<UnixAccount> AccountOfUid(uid_t uid) {
  std::vector<char> buf(16384);
  passwd pw{}, *found = nullptr;
  if (getpwuid_r(uid, &pw, buf.data(), buf.size(), &found) != 0 || !found)
    return NotFound("uid " + std::to_string(uid) + " has no account on this machine");
  return FromPasswd(pw);
}

}  // namespace cairn
