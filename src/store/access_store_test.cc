#include "store/access_store.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>

#include "base/util.h"
#include "store/db.h"

namespace cairn::store {
namespace {

class AccessStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("cairn-access-" + RandomHex(6));
    std::filesystem::create_directories(dir_);
    Reopen();
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  void Reopen() {
    store_.reset();
    auto s = AccessStore::Open((dir_ / "access.db").string());
    ASSERT_TRUE(s.ok()) << s.status().message();
    store_ = std::move(s).value();
  }
  std::filesystem::path dir_;
  std::unique_ptr<AccessStore> store_;
};

TEST_F(AccessStoreTest, TheStrongestRoleOfAPersonAndTheirGroupsWins) {
  EXPECT_EQ(store_->RoleOf("alice", {}), Role::kNone);
  ASSERT_TRUE(store_->Assign("alice", "user", Role::kReader, "root").ok());
  ASSERT_TRUE(store_->Assign("ml-team", "group", Role::kContributor, "root").ok());
  EXPECT_EQ(store_->RoleOf("alice", {}), Role::kReader);
  EXPECT_EQ(store_->RoleOf("alice", {"staff", "ml-team"}), Role::kContributor);
  // A group's name is not a user's: bob named "ml-team" as a user gets nothing from it.
  EXPECT_EQ(store_->RoleOf("ml-team", {}), Role::kNone);
  // Kept across a restart.
  Reopen();
  EXPECT_EQ(store_->RoleOf("alice", {"ml-team"}), Role::kContributor);
  ASSERT_EQ(store_->Assignments().size(), 2u);
}

TEST_F(AccessStoreTest, AssigningTwiceKeepsOneAssignment) {
  auto a = store_->Assign("alice", "user", Role::kOwner, "root");
  auto b = store_->Assign("alice", "user", Role::kOwner, "root");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->id, b->id);
  EXPECT_EQ(store_->Assignments().size(), 1u);
  EXPECT_FALSE(store_->Assign("", "user", Role::kOwner, "root").ok());
  EXPECT_FALSE(store_->Assign("x", "robot", Role::kOwner, "root").ok());
}

TEST_F(AccessStoreTest, TheLastOwnerCannotBeRemoved) {
  ASSERT_TRUE(store_->Assign("root", "user", Role::kOwner, "root").ok());
  ASSERT_TRUE(store_->Assign("alice", "user", Role::kContributor, "root").ok());
  auto r = store_->Unassign("root", Role::kOwner, "");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("without an Owner"), std::string::npos);
  EXPECT_EQ(store_->RoleOf("root", {}), Role::kOwner);
  ASSERT_TRUE(store_->Assign("alice", "user", Role::kOwner, "root").ok());
  auto removed = store_->Unassign("root", std::nullopt, "");
  ASSERT_TRUE(removed.ok()) << removed.status().message();
  EXPECT_EQ(*removed, 1);
  EXPECT_EQ(store_->RoleOf("root", {}), Role::kNone);
  EXPECT_EQ(*store_->Unassign("nobody", std::nullopt, ""), 0);
}

TEST_F(AccessStoreTest, ATokenProvesItsOwnerUntilRevokedOrExpired) {
  long long now = NowMillis();
  auto t = store_->CreateToken("alice", "laptop", now + 3600000);
  ASSERT_TRUE(t.ok()) << t.status().message();
  const std::string secret = t->second;
  EXPECT_EQ(store_->TokenOwner(secret, now), "alice");
  // The secret itself is nowhere in the database: only its hash.
  {
    auto db = Db::Open((dir_ / "access.db").string(), true);
    ASSERT_TRUE(db.ok());
    Stmt& s = (*db)->Prepare("SELECT count(*) FROM access_tokens WHERE hash = ? OR id = ?");
    s.Bind(1, secret).Bind(2, secret);
    ASSERT_TRUE(s.Step());
    EXPECT_EQ(s.Int(0), 0);
  }
  // One character changed proves nothing; past its expiry it proves nothing.
  std::string wrong = secret;
  wrong.back() = wrong.back() == '0' ? '1' : '0';
  EXPECT_EQ(store_->TokenOwner(wrong, now), "");
  EXPECT_EQ(store_->TokenOwner(secret, now + 3600001), "");
  // Revoked: refused at once, and after a restart.
  EXPECT_FALSE(store_->RevokeToken(t->first.id, "bob").ok());  // not bob's
  EXPECT_EQ(store_->TokenOwner(secret, now), "alice");
  ASSERT_TRUE(store_->RevokeToken(t->first.id, "alice").ok());
  EXPECT_EQ(store_->TokenOwner(secret, now), "");
  Reopen();
  EXPECT_EQ(store_->TokenOwner(secret, now), "");
  auto listed = store_->Tokens("alice");
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_TRUE(listed[0].revoked_at.has_value());
  EXPECT_EQ(listed[0].description, "laptop");
}

TEST_F(AccessStoreTest, TheAuditLogIsAppendOnly) {
  ASSERT_TRUE(store_->Audit({0, 0, "alice", "socket", "unix:1001", "job.cancel", "j1", ""}).ok());
  ASSERT_TRUE(store_->Audit({0, 0, "bob", "token", "10.0.0.2", "job.submit", "j2", ""}).ok());
  auto all = store_->AuditLog({});
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].who, "bob");  // newest first
  AuditFilter f;
  f.who = "alice";
  ASSERT_EQ(store_->AuditLog(f).size(), 1u);
  // Not through SQL either: another connection's DELETE and UPDATE are refused.
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ / "access.db").string().c_str(), &raw), SQLITE_OK);
  EXPECT_NE(sqlite3_exec(raw, "DELETE FROM audit", nullptr, nullptr, nullptr), SQLITE_OK);
  EXPECT_NE(sqlite3_exec(raw, "UPDATE audit SET who = 'mallory'", nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(raw);
  EXPECT_EQ(store_->AuditLog({}).size(), 2u);
}

}  // namespace
}  // namespace cairn::store
