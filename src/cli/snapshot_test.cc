#include "cli/snapshot.h"

#include <gtest/gtest.h>

namespace cairn::cli {
namespace {

TEST(IgnoreRules, FollowGitignoreSemantics) {
  IgnoreRules r;
  for (const char* p :
       {"# comment", "*.tmp", "data/", "/build", "!keep.tmp", "docs/**/*.md", "", "logs/azureml"})
    r.Add(p);
  EXPECT_TRUE(r.Ignored("x.tmp", false));
  EXPECT_TRUE(r.Ignored("sub/x.tmp", false));
  EXPECT_FALSE(r.Ignored("keep.tmp", false));
  EXPECT_TRUE(r.Ignored("data", true));
  EXPECT_TRUE(r.Ignored("sub/data", true));
  EXPECT_FALSE(r.Ignored("data", false));  // a file named data is not the folder
  EXPECT_TRUE(r.Ignored("build", true));
  EXPECT_FALSE(r.Ignored("src/build", true));  // anchored
  EXPECT_TRUE(r.Ignored("docs/a/b/c.md", false));
  EXPECT_TRUE(r.Ignored("logs/azureml", true));
  EXPECT_FALSE(r.Ignored("train.py", false));
}

}  // namespace
}  // namespace cairn::cli
