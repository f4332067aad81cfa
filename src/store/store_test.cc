#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "base/fs.h"
#include "base/util.h"
#include "store/blob_store.h"
#include "store/job_store.h"

namespace cairn::store {
namespace {

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("cairn-store-" + RandomHex(6));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string Path(const std::string& f) { return (dir_ / f).string(); }
  std::filesystem::path dir_;
};

JobRecord Job(const std::string& name, const std::string& status = "Starting") {
  JobRecord j;
  j.name = name;
  j.status = status;
  j.compute = "local";
  j.experiment_name = "e";
  j.spec = {{"command", "true"}};
  j.created_at = 1000;
  return j;
}

TEST_F(StoreTest, MigratesANewDatabaseToTheLatestSchema) {
  auto s = JobStore::Open(Path("w.db"));
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_EQ((*s)->db().SchemaVersion(), 6);
  auto again = JobStore::Open(Path("w.db"));  // reopening runs nothing twice
  ASSERT_TRUE(again.ok());
}

TEST_F(StoreTest, InsertTransitionAndHistoryAreDurableAcrossReopen) {
  {
    auto s = JobStore::Open(Path("w.db"));
    ASSERT_TRUE((*s)->Insert(Job("a"), {{"NotStarted", "submitted", 1}, {"Starting", "", 2}}).ok());
    ASSERT_TRUE((*s)->Transition("a", {"Running", "go", 3}, 3).ok());
    ASSERT_TRUE((*s)->Transition("a", {"Completed", "done", 4}, std::nullopt, 4, 0).ok());
  }
  auto s = JobStore::Open(Path("w.db"));
  auto j = (*s)->Get("a");
  ASSERT_TRUE(j.ok());
  EXPECT_EQ(j->status, "Completed");
  EXPECT_EQ(j->status_reason, "done");
  EXPECT_EQ(j->start_time, 3);
  EXPECT_EQ(j->end_time, 4);
  EXPECT_EQ(j->exit_code, 0);
  auto h = (*s)->History("a");
  ASSERT_EQ(h.size(), 4u);
  EXPECT_EQ(h[2].status, "Running");
  EXPECT_TRUE((*s)->NonTerminal().empty());
}

TEST_F(StoreTest, ADuplicateNameIsRefusedAndLeavesNothingBehind) {
  auto s = JobStore::Open(Path("w.db"));
  ASSERT_TRUE((*s)->Insert(Job("a"), {{"NotStarted", "", 1}}).ok());
  Status st = (*s)->Insert(Job("a"), {{"NotStarted", "", 1}});
  EXPECT_EQ(st.code(), Code::kAlreadyExists);
  EXPECT_EQ(st.message(), "a job named 'a' already exists");
  EXPECT_EQ((*s)->History("a").size(), 1u);
}

TEST_F(StoreTest, ListFiltersAndOrdersNewestFirst) {
  auto s = JobStore::Open(Path("w.db"));
  auto a = Job("a"), b = Job("b", "Failed"), c = Job("c");
  c.experiment_name = "other";
  for (auto* j : {&a, &b, &c}) ASSERT_TRUE((*s)->Insert(*j, {}).ok());
  ASSERT_TRUE((*s)->SetArchived("a", true).ok());
  JobFilter f;
  auto names = [&](const JobFilter& f) {
    std::vector<std::string> out;
    for (const auto& j : (*s)->List(f)) out.push_back(j.name);
    return out;
  };
  EXPECT_EQ(names(f), (std::vector<std::string>{"c", "b"}));
  f.include_archived = true;
  EXPECT_EQ(names(f), (std::vector<std::string>{"c", "b", "a"}));
  f.status = "Failed";
  EXPECT_EQ(names(f), (std::vector<std::string>{"b"}));
  JobFilter g;
  g.experiment = "other";
  EXPECT_EQ(names(g), (std::vector<std::string>{"c"}));
}

TEST_F(StoreTest, ARefusesANewerSchema) {
  {
    auto s = JobStore::Open(Path("w.db"));
    ASSERT_TRUE((*s)->db().Exec("PRAGMA user_version=99").ok());
  }
  auto s = JobStore::Open(Path("w.db"));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(
      s.status().message(),
      "the workspace database is at schema version 99, newer than this cairn (6); upgrade cairn");
}

TEST_F(StoreTest, BlobsAreVerifiedAgainstTheirHash) {
  BlobStore b(Path("blobs"));
  std::string sha = Sha256Hex("hello");
  EXPECT_FALSE(b.Has(sha));
  Status bad = b.Put(sha, "tampered");
  EXPECT_EQ(bad.code(), Code::kInvalidArgument);
  EXPECT_FALSE(b.Has(sha));
  ASSERT_TRUE(b.Put(sha, "hello").ok());
  EXPECT_TRUE(b.Has(sha));
  EXPECT_EQ(b.PathOf(sha), Path("blobs") + "/" + sha.substr(0, 2) + "/" + sha);
}

TEST_F(StoreTest, APutFileStreamsAndLeavesNothingElseBehind) {
  std::filesystem::create_directories(Path("blobs"));
  BlobStore b(Path("blobs"));
  std::string big(3 << 20, 'x');  // more than one read
  big[12345] = 'y';
  std::string src = Path("big.bin");
  ASSERT_TRUE(WriteFile(src, big).ok());
  auto sha = b.PutFile(src);
  ASSERT_TRUE(sha.ok()) << sha.status().message();
  EXPECT_EQ(*sha, Sha256Hex(big));
  EXPECT_EQ(*ReadFile(b.PathOf(*sha)), big);
  auto again = b.PutFile(src);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *sha);
  int entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(Path("blobs")))
    entries += e.is_directory() ? 1 : 100;
  EXPECT_EQ(entries, 1);  // one fan-out folder, no temporary file left
  EXPECT_EQ(b.PutFile(Path("missing")).status().code(), Code::kInvalidArgument);
}

TEST(Manifest, RejectsPathsThatLeaveTheFolder) {
  std::string sha = Sha256Hex("x");
  for (const char* p : {"../x", "/etc/passwd", "a/../../b", "a//b"}) {
    auto m = ManifestFromJson(nlohmann::json::array({{{"path", p}, {"sha256", sha}}}));
    EXPECT_FALSE(m.ok()) << p;
  }
  auto ok = ManifestFromJson(nlohmann::json::array({{{"path", "a/b.py"}, {"sha256", sha}}}));
  EXPECT_TRUE(ok.ok());
}

TEST(Manifest, IdDoesNotDependOnOrder) {
  std::string s1 = Sha256Hex("1"), s2 = Sha256Hex("2");
  std::vector<ManifestEntry> a = {{"a", s1, 1, false}, {"b", s2, 1, false}};
  std::vector<ManifestEntry> b = {{"b", s2, 1, false}, {"a", s1, 1, false}};
  EXPECT_EQ(ManifestId(a), ManifestId(b));
}

TEST_F(StoreTest, AssetVersionsAreImmutableAndLatestSkipsArchived) {
  auto s = JobStore::Open(Path("a.db"));
  ASSERT_TRUE(s.ok());
  auto& st = **s;
  EXPECT_EQ(st.NextAssetVersion("data", "iris"), "1");
  for (const char* v : {"1", "2", "v3"}) {
    AssetRecord a;
    a.kind = "data";
    a.name = "iris";
    a.version = v;
    a.spec = {{"path", std::string("p") + v}};
    ASSERT_TRUE(st.InsertAsset(a).ok());
  }
  AssetRecord dup;
  dup.kind = "data";
  dup.name = "iris";
  dup.version = "2";
  EXPECT_EQ(st.InsertAsset(dup).code(), Code::kAlreadyExists);
  EXPECT_EQ(st.GetAsset("data", "iris", "2")->spec["path"],
            "p2");                                      // unchanged by the refused insert
  EXPECT_EQ(st.NextAssetVersion("data", "iris"), "3");  // "v3" is not a number
  EXPECT_EQ(st.LatestAsset("data", "iris")->version, "v3");
  ASSERT_TRUE(st.SetAssetArchived("data", "iris", "v3", true).ok());
  EXPECT_EQ(st.LatestAsset("data", "iris")->version, "2");
  EXPECT_EQ(st.ListAssets("data", "iris", false, false).size(), 2u);
  EXPECT_EQ(st.ListAssets("data", "iris", true, false).size(), 3u);
  EXPECT_EQ(st.ListAssets("data", "", false, false).front().version, "2");  // latest of each name
  EXPECT_EQ(st.LatestAsset("model", "iris").status().code(),
            Code::kNotFound);  // kinds are separate
  ASSERT_TRUE(st.SetAssetArchived("data", "iris", "", true).ok());
  EXPECT_EQ(st.LatestAsset("data", "iris").status().code(), Code::kNotFound);
  EXPECT_EQ(st.SetAssetArchived("data", "nope", "", true).code(), Code::kNotFound);
}

TEST_F(StoreTest, StepRunsAreFoundByKeyAndTheRecentOnesOfAStepNewestFirst) {
  auto s = JobStore::Open(Path("w.db"));
  ASSERT_TRUE(s.ok());
  JobStore& st = **s;
  EXPECT_EQ(st.StepRunByKey("k1").status().code(), Code::kNotFound);
  ASSERT_TRUE(st.PutStepRun({"k1", "step:e/p/a", "p1_a", {{"command", "echo 1"}}, 10}).ok());
  ASSERT_TRUE(st.PutStepRun({"k2", "step:e/p/a", "p2_a", {{"command", "echo 2"}}, 20}).ok());
  ASSERT_TRUE(st.PutStepRun({"k3", "component:train", "p2_t", {}, 30}).ok());
  auto got = st.StepRunByKey("k1");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->job, "p1_a");
  EXPECT_EQ(got->fields["command"], "echo 1");
  ASSERT_TRUE(st.PutStepRun({"k1", "step:e/p/a", "p3_a", {{"command", "echo 1"}}, 40})
                  .ok());  // the latest wins
  EXPECT_EQ(st.StepRunByKey("k1")->job, "p3_a");
  auto recent = st.RecentStepRuns("step:e/p/a", 10);
  ASSERT_EQ(recent.size(), 2u);
  EXPECT_EQ(recent[0].job, "p3_a");
  EXPECT_EQ(recent[1].job, "p2_a");
  EXPECT_EQ(st.RecentStepRuns("step:e/p/a", 1).size(), 1u);
}

}  // namespace
}  // namespace cairn::store
