#include "tracking/run_filter.h"

#include <gtest/gtest.h>

#include <regex>

#include "tracking/tracking_store.h"

namespace cairn::tracking {
namespace {

Run MakeRun(const std::string& id, double m, const std::string& p, long long start) {
  Run r;
  r.info.run_id = id;
  r.info.status = "FINISHED";
  r.info.start_time = start;
  r.metrics = {{"m1", m, 1, 0}};
  r.params = {{"p1", p}};
  r.tags = {{"mlflow.parentRunId", "sweep_1"}};
  return r;
}

TEST(RunFilter, ParsesMlflowsGrammar) {
  auto f = ParseRunFilter(
      "metrics.m1 > 0.1 and params.p1 = 'v1' AND tags.\"mlflow.parentRunId\" = 'sweep_1' "
      "and attributes.status IN ('FINISHED', 'FAILED')");
  ASSERT_TRUE(f.ok()) << f.status().message();
  ASSERT_EQ(f->size(), 4u);
  EXPECT_EQ((*f)[0].kind, "metric");
  EXPECT_TRUE((*f)[0].numeric);
  EXPECT_EQ((*f)[2].key, "mlflow.parentRunId");
  EXPECT_EQ((*f)[3].op, "IN");
  EXPECT_EQ((*f)[3].values, (std::vector<std::string>{"FINISHED", "FAILED"}));
  EXPECT_TRUE(Matches(*f, MakeRun("a", 0.5, "v1", 1)));
  EXPECT_FALSE(Matches(*f, MakeRun("b", 0.05, "v1", 1)));
  EXPECT_FALSE(Matches(*f, MakeRun("c", 0.5, "v2", 1)));
}

TEST(RunFilter, RefusesWhatMlflowRefuses) {
  EXPECT_FALSE(ParseRunFilter("metrics.m1 > 'x'").ok());
  EXPECT_FALSE(ParseRunFilter("params.p1 > 'x'").ok());
  EXPECT_FALSE(ParseRunFilter("metrics.a > 1 or metrics.b > 2").ok());
  EXPECT_FALSE(ParseRunFilter("attributes.nonsense = 'x'").ok());
  EXPECT_TRUE(ParseRunFilter("").ok());
}

TEST(RunFilter, LikeAndIlike) {
  auto f = ParseRunFilter("params.p1 LIKE 'v%' and params.p1 ILIKE 'V_'");
  ASSERT_TRUE(f.ok());
  EXPECT_TRUE(Matches(*f, MakeRun("a", 1, "v1", 1)));
  EXPECT_FALSE(Matches(*f, MakeRun("a", 1, "w1", 1)));
}

// The hand-written matcher against std::regex as the reference, over every short pattern of a small
// alphabet.
TEST(RunFilter, LikeMatchAgreesWithARegex) {
  const std::string alphabet = "ab%_";
  std::vector<std::string> patterns = {""}, values = {""};
  for (int len = 1; len <= 4; ++len) {
    std::vector<std::string> next;
    for (const auto& p : patterns)
      if (p.size() == static_cast<size_t>(len - 1))
        for (char c : alphabet) next.push_back(p + c);
    patterns.insert(patterns.end(), next.begin(), next.end());
  }
  for (int len = 1; len <= 5; ++len) {
    std::vector<std::string> next;
    for (const auto& v : values)
      if (v.size() == static_cast<size_t>(len - 1))
        for (char c : std::string("abA")) next.push_back(v + c);
    values.insert(values.end(), next.begin(), next.end());
  }
  int checked = 0;
  for (const auto& p : patterns) {
    std::string re;
    for (char c : p)
      re += c == '%' ? std::string(".*") : c == '_' ? std::string(".") : std::string(1, c);
    for (bool icase : {false, true}) {
      std::regex r(re, icase ? std::regex::icase : std::regex::ECMAScript);
      for (const auto& v : values) {
        ASSERT_EQ(LikeMatch(v, p, icase), std::regex_match(v, r))
            << "'" << v << "' LIKE '" << p << "' icase=" << icase;
        ++checked;
      }
    }
  }
  EXPECT_GT(checked, 100000);
}

TEST(SortRuns, OrdersByMetricWithMissingLastThenStartTime) {
  std::vector<tracking::Run> runs = {MakeRun("a", 1, "x", 10), MakeRun("b", 3, "x", 20),
                                     MakeRun("c", 2, "x", 30)};
  runs.push_back(MakeRun("d", 0, "x", 40));
  runs.back().metrics.clear();
  auto order = ParseRunOrder({"metrics.m1 DESC"});
  ASSERT_TRUE(order.ok());
  SortRuns(*order, runs);
  EXPECT_EQ(runs[0].info.run_id, "b");
  EXPECT_EQ(runs[1].info.run_id, "c");
  EXPECT_EQ(runs[2].info.run_id, "a");
  EXPECT_EQ(runs[3].info.run_id, "d");
  SortRuns({}, runs);  // default: newest first
  EXPECT_EQ(runs[0].info.run_id, "d");
}

TEST(KeyError, FollowsMlflowsKeyRules) {
  EXPECT_EQ(KeyError("system/cpu utilization:1"), "");
  EXPECT_NE(KeyError("../x"), "");
  EXPECT_NE(KeyError("/abs"), "");
  EXPECT_NE(KeyError("semi;colon"), "");
  EXPECT_NE(KeyError(std::string(251, 'a')), "");
}

}  // namespace
}  // namespace cairn::tracking
