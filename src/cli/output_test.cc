#include "cli/output.h"

#include <gtest/gtest.h>

namespace cairn::cli {
namespace {

using nlohmann::json;

const json kJobs = json::parse(R"([
  {"name": "a", "status": "Completed", "services": {"Studio": {"endpoint": "http://x/#/jobs/a"}}},
  {"name": "b", "status": "Failed", "services": {"Studio": {"endpoint": "http://x/#/jobs/b"}}}
])");

TEST(ApplyQuery, FollowsPathsProjectionsIndexesAndMultiselects) {
  EXPECT_EQ(*ApplyQuery(kJobs[0], "name"), "a");
  EXPECT_EQ(*ApplyQuery(kJobs[0], "services.Studio.endpoint"), "http://x/#/jobs/a");
  EXPECT_EQ(*ApplyQuery(kJobs, "[].name"), json::parse(R"(["a","b"])"));
  EXPECT_EQ(*ApplyQuery(kJobs, "[1].status"), "Failed");
  EXPECT_EQ(*ApplyQuery(kJobs, "[-1].name"), "b");
  EXPECT_EQ(*ApplyQuery(kJobs, "[].{n:name, s:status}"),
            json::parse(R"([{"n":"a","s":"Completed"},{"n":"b","s":"Failed"}])"));
  EXPECT_TRUE(ApplyQuery(kJobs[0], "missing.deeper")->is_null());
  EXPECT_EQ(ApplyQuery(kJobs, "[?status").status().code(),
            Code::kInvalidArgument);  // does not compile
  EXPECT_EQ(ApplyQuery(kJobs, "length(`1`)").status().code(), Code::kFailedPrecondition);
  // What az scripts write; a multiselect hash keeps the order the query gives.
  EXPECT_EQ(*ApplyQuery(kJobs, "[?status=='Completed'].name"), json::parse(R"(["a"])"));
  EXPECT_EQ(*ApplyQuery(kJobs, "length(@)"), 2);
  EXPECT_EQ(ApplyQuery(kJobs, "[0].{z:name, a:status}")->dump(), R"({"z":"a","a":"Completed"})");
  EXPECT_EQ(ToTable(*ApplyQuery(kJobs, "[].{Z:name, A:status}"), {}),
            "Z  A\n-  ---------\na  Completed\nb  Failed\n");
}

TEST(ToTsv, PrintsScalarsOfEachRow) {
  EXPECT_EQ(ToTsv(*ApplyQuery(kJobs, "[].{n:name,s:status}")), "a\tCompleted\nb\tFailed\n");
  EXPECT_EQ(ToTsv(json("Completed")), "Completed\n");
  EXPECT_EQ(ToTsv(json(true)), "True\n");
}

TEST(ToYaml, QuotesWhatWouldChangeMeaningAndKeepsBlocks) {
  json v = {{"a", "true"},
            {"b", "12"},
            {"c", "plain text"},
            {"d", "two\nlines\n"},
            {"e", json::array({1, "x"})},
            {"f", json::object()},
            {"g", nullptr}};
  EXPECT_EQ(ToYaml(v),
            "a: \"true\"\nb: \"12\"\nc: plain text\nd: |\n  two\n  lines\ne:\n  - 1\n  - x\nf: "
            "{}\ng: null\n");
}

TEST(ToTable, AlignsColumns) {
  std::string t = ToTable(kJobs, {{"Name", "name"}, {"Status", "status"}});
  EXPECT_EQ(t, "Name  Status\n----  ---------\na     Completed\nb     Failed\n");
}

TEST(ToTable, TimesToTheSecondAndReadableDurations) {
  json rows = json::parse(
      R"([{"t":"2026-12-01T14:01:53.319000+00:00","d":72.4},{"t":"2026-12-01T14:02:00Z","d":0.25},
                              {"t":"not a time","d":7300}])");
  std::string t = ToTable(rows, {{"T", "t"}, {"D", "d", Column::kDuration}});
  EXPECT_EQ(t,
            "T                    D\n-------------------  ------\n2026-12-01 14:01:53  1m 12s\n"
            "2026-12-01 14:02:00  0.2s\nnot a time           2h 1m\n");
}

TEST(ToTable, HugeOrNegativeDurationsStayDefined) {
  // A fuzzer found 3.4e20 seconds overflowing the cast to long long.
  json rows = json::parse(R"([{"d":3.44444e20},{"d":-5}])");
  std::string t = ToTable(rows, {{"D", "d", Column::kDuration}});
  EXPECT_EQ(t, "D\n-----------\n1157407d 9h\n0s\n");
}

TEST(ParseFormat, NamesTheAllowedValues) {
  auto f = ParseFormat("xml");
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().message(), "--output: 'xml' is not one of json, yaml, table, tsv, none");
}

}  // namespace
}  // namespace cairn::cli
