#include "server/access.h"

#include <gtest/gtest.h>

namespace cairn::server {
namespace {

using store::Role;

Caller Person(const std::string& name, Role role) {
  Caller c;
  c.kind = Caller::Kind::kPerson;
  c.name = name;
  c.role = role;
  return c;
}

Caller Job(const std::string& job, Caller::Kind kind = Caller::Kind::kJob) {
  Caller c;
  c.kind = kind;
  c.job = job;
  return c;
}

TEST(Access, EachRoleReachesItsRoutesAndNoFurther) {
  const Access all[] = {Access::kPublic, Access::kPerson,  Access::kRead,     Access::kWrite,
                        Access::kOwner,  Access::kRunRead, Access::kRunWrite, Access::kSupervisor};
  // Rows: nobody, no role, Reader, Contributor, Owner, a job's token, a supervisor. Columns: the
  // accesses above, in order.
  const std::vector<std::pair<Caller, std::string>> rows = {
      {Caller(), "10000000"},
      {Person("eve", Role::kNone), "11000000"},
      {Person("rita", Role::kReader), "11100100"},
      {Person("carl", Role::kContributor), "11110110"},
      {Person("olga", Role::kOwner), "11111110"},
      {Job("j1"), "10000110"},
      {Job("j1", Caller::Kind::kSupervisor), "10000001"},
  };
  for (const auto& [caller, expect] : rows)
    for (size_t i = 0; i < 8; ++i)
      EXPECT_EQ(Check(all[i], caller).ok(), expect[i] == '1')
          << (caller.name.empty() ? caller.job : caller.name) << " on " << AccessName(all[i]);
}

TEST(Access, RefusalsSayWhatToDo) {
  Status none = Check(Access::kRead, Person("eve", Role::kNone));
  EXPECT_EQ(none.code(), Code::kPermissionDenied);
  EXPECT_NE(none.message().find("cairn role assignment create --assignee eve --role Reader"),
            std::string::npos)
      << none.message();
  Status reader = Check(Access::kWrite, Person("rita", Role::kReader));
  EXPECT_NE(reader.message().find("rita is a Reader"), std::string::npos) << reader.message();
  EXPECT_NE(reader.message().find("--role Contributor"), std::string::npos) << reader.message();
  EXPECT_EQ(Check(Access::kRead, Caller()).code(), Code::kUnauthenticated);
}

TEST(Access, AContributorChangesOnlyWhatTheyCreated) {
  EXPECT_TRUE(MayChange(Person("carl", Role::kContributor), "carl", "job j").ok());
  Status other = MayChange(Person("carl", Role::kContributor), "dana", "job j");
  EXPECT_EQ(other.code(), Code::kPermissionDenied);
  EXPECT_NE(other.message().find("created by dana"), std::string::npos) << other.message();
  // A record from before anyone was named belongs to nobody a Contributor can be.
  EXPECT_FALSE(MayChange(Person("carl", Role::kContributor), "", "job j").ok());
  EXPECT_TRUE(MayChange(Person("olga", Role::kOwner), "dana", "job j").ok());
  EXPECT_FALSE(MayChange(Person("rita", Role::kReader), "rita", "job j").ok());
  EXPECT_FALSE(MayChange(Job("j1"), "carl", "job j").ok());
}

TEST(Access, TheCallerTravelsWithTheRequest) {
  http::Request req;
  EXPECT_EQ(CallerOf(req).kind, Caller::Kind::kNobody);
  SetCaller(req, Person("olga", Role::kOwner));
  EXPECT_TRUE(CallerOf(req).IsOwner());
  EXPECT_EQ(CallerOf(req).name, "olga");
}

}  // namespace
}  // namespace cairn::server
