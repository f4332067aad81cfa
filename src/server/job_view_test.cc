#include "server/job_view.h"

#include <gtest/gtest.h>

namespace cairn::server {
namespace {

using nlohmann::json;

TEST(ListView, AJobWithManyTagsShowsABoundedNumberOfShortOnes) {
  // What a job stored before the parser bounded tags may hold.
  json tags = json::object();
  for (int i = 0; i < 150000; ++i) tags["tag" + std::to_string(i)] = std::string(12, 'v');
  tags["long"] = std::string(5000, 'x');
  std::string stored = tags.dump();
  json listed = json::parse(ListTagsJson(stored));
  EXPECT_EQ(listed.size(), kListTags);
  EXPECT_EQ(ListTags(tags), listed);
  json view = {{"name", "j"}, {"tags", tags}, {"description", std::string(100000, 'd')}};
  BoundForList(view);
  EXPECT_EQ(view["tags"], listed);
  EXPECT_EQ(view["description"].get<std::string>(), std::string(kListDescription, 'd') + "...");
  EXPECT_LT(view.dump().size(), 20000u);
}

TEST(ListView, SmallTagsAreShownAsTheyAreAndLongOnesCutOnACharacter) {
  EXPECT_EQ(ListTagsJson(""), "{}");
  EXPECT_EQ(ListTagsJson(R"({"team":"vision"})"), R"({"team":"vision"})");
  // 255 ASCII bytes, then a 3-byte character across the cut: it goes whole, never half.
  std::string value = std::string(255, 'a') + "\xe2\x82\xac" + "tail";
  json listed = ListTags(json{{"k", value}});
  EXPECT_EQ(listed["k"].get<std::string>(), std::string(255, 'a') + "...");
  json numbers = ListTags(json{{"n", 3}});
  EXPECT_EQ(numbers["n"], "3");
  EXPECT_EQ(
      ListTagsJson("not json at all, and long enough to be parsed rather than passed through: " +
                   std::string(300, 'x')),
      "{}");
}

}  // namespace
}  // namespace cairn::server
