#include "base/beneath.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "base/fs.h"

namespace cairn {
namespace {

class BeneathTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/beneath-XXXXXX";
    dir_ = mkdtemp(tmpl);
    ASSERT_TRUE(MakeDirs(dir_ + "/root/sub").ok());
    ASSERT_TRUE(WriteFile(dir_ + "/root/sub/a.txt", "a").ok());
    ASSERT_TRUE(WriteFile(dir_ + "/outside.txt", "secret").ok());
    ASSERT_TRUE(MakeDirs(dir_ + "/elsewhere").ok());
    ASSERT_TRUE(WriteFile(dir_ + "/elsewhere/keep.txt", "keep").ok());
    ASSERT_EQ(symlink((dir_ + "/outside.txt").c_str(), (dir_ + "/root/link").c_str()), 0);
    ASSERT_EQ(symlink((dir_ + "/elsewhere").c_str(), (dir_ + "/root/dirlink").c_str()), 0);
    ASSERT_EQ(symlink("sub/a.txt", (dir_ + "/root/inner").c_str()), 0);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

TEST_F(BeneathTest, ReadsFilesAndRefusesEveryLink) {
  auto root = Beneath::Open(dir_ + "/root");
  ASSERT_TRUE(root.ok());
  auto fd = root->OpenRead("sub/a.txt");
  ASSERT_TRUE(fd.ok());
  close(*fd);
  EXPECT_EQ(root->OpenRead("link").status().message(),
            "file 'link': a link (links are not followed)");
  EXPECT_FALSE(root->OpenRead("inner").ok());  // even one that stays inside
  EXPECT_FALSE(root->OpenRead("dirlink/keep.txt").ok());
  EXPECT_FALSE(root->OpenRead("../outside.txt").ok());
  EXPECT_FALSE(root->OpenRead("/etc/passwd").ok());
  EXPECT_FALSE(root->OpenRead("sub").ok());
  EXPECT_EQ(root->OpenRead("nope").status().code(), Code::kNotFound);
}

TEST_F(BeneathTest, WritesAndRemovesNeverThroughALink) {
  auto root = Beneath::Open(dir_ + "/root");
  ASSERT_TRUE(root.ok());
  EXPECT_FALSE(root->MakeDirs("dirlink/new").ok());
  EXPECT_FALSE(root->OpenWrite("dirlink/x.txt", O_TRUNC).ok());
  EXPECT_FALSE(root->OpenWrite("link", O_TRUNC).ok());
  EXPECT_FALSE(root->Remove("dirlink/keep.txt").ok());
  EXPECT_TRUE(root->Remove("dirlink").ok());  // the link itself
  EXPECT_TRUE(PathExists(dir_ + "/elsewhere/keep.txt"));
  ASSERT_TRUE(root->MakeDirs("x/y/z").ok());
  auto fd = root->OpenWrite("x/y/z/f.txt", O_TRUNC);
  ASSERT_TRUE(fd.ok());
  ASSERT_EQ(write(*fd, "hi", 2), 2);
  close(*fd);
  EXPECT_TRUE(root->Rename("x/y/z/f.txt", "x/g.txt").ok());
  EXPECT_EQ(*ReadFile(dir_ + "/root/x/g.txt"), "hi");
  EXPECT_TRUE(root->Remove("").ok());  // everything in the root, links as links
  EXPECT_EQ(*ReadFile(dir_ + "/outside.txt"), "secret");
  EXPECT_TRUE(std::filesystem::is_empty(dir_ + "/root"));
}

TEST_F(BeneathTest, ListsAndWalksLinksAsLinks) {
  auto root = Beneath::Open(dir_ + "/root");
  ASSERT_TRUE(root.ok());
  std::vector<std::string> seen;
  ASSERT_TRUE(root->Walk("",
                         [&](const Beneath::Entry& e) {
                           seen.push_back(e.path + (e.type == Beneath::Type::kLink  ? "@"
                                                    : e.type == Beneath::Type::kDir ? "/"
                                                                                    : ""));
                         })
                  .ok());
  EXPECT_EQ(seen, (std::vector<std::string>{"dirlink@", "inner@", "link@", "sub/", "sub/a.txt"}));
  EXPECT_FALSE(root->List("dirlink").ok());
}

TEST(BeneathPaths, CleanPathsOnly) {
  EXPECT_TRUE(Beneath::IsClean(""));
  EXPECT_TRUE(Beneath::IsClean("a/b/"));
  EXPECT_FALSE(Beneath::IsClean("a//b"));
  EXPECT_FALSE(Beneath::IsClean("a/../b"));
  EXPECT_FALSE(Beneath::IsClean("./a"));
  EXPECT_FALSE(Beneath::IsClean("/a"));
  EXPECT_FALSE(Beneath::IsClean("a\\b"));
}

}  // namespace
}  // namespace cairn
