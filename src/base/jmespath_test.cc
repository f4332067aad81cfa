#include "base/jmespath.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace cairn::jmespath {
namespace {

namespace fs = std::filesystem;

Json Q(const std::string& expr, const std::string& doc) {
  Json out;
  Error e;
  EXPECT_TRUE(Search(expr, Json::parse(doc), &out, &e))
      << expr << ": " << e.kind << ": " << e.message;
  return out;
}

std::string ErrorOf(const std::string& expr, const std::string& doc) {
  Json out;
  Error e;
  EXPECT_FALSE(Search(expr, Json::parse(doc), &out, &e)) << expr << " gave " << out.dump();
  return e.kind;
}

// What az users write (and what the old subset failed at), checked here so the engine is tested
// where
// ../shared (the compliance suite) is absent.
TEST(Jmespath, WhatAzScriptsWrite) {
  std::string jobs =
      R"([{"name":"a","status":"Completed","n":3},{"name":"b","status":"Failed","n":1},
                         {"name":"c","status":"Completed","n":2}])";
  EXPECT_EQ(Q("[?status=='Completed'].name", jobs), Json::parse(R"(["a","c"])"));
  EXPECT_EQ(Q("[].[name,status]", jobs),
            Json::parse(R"([["a","Completed"],["b","Failed"],["c","Completed"]])"));
  EXPECT_EQ(Q("length(@)", jobs), 3);
  EXPECT_EQ(Q("sort_by(@, &n)[].name", jobs), Json::parse(R"(["b","c","a"])"));
  EXPECT_EQ(Q("max_by(@, &n).name", jobs), "a");
  EXPECT_EQ(Q("[0].name", jobs), "a");
  EXPECT_EQ(Q("[-1].name", jobs), "c");
  EXPECT_EQ(Q("[?n > `1`] | length(@)", jobs), 2);
  EXPECT_EQ(Q("[?status=='Completed' && n < `3`].name | [0]", jobs), "c");
  EXPECT_EQ(Q("[].{Name:name, S:status} | [1]", jobs).dump(),
            R"({"Name":"b","S":"Failed"})");  // key order kept
  EXPECT_EQ(Q("join(', ', [].name)", jobs), "a, b, c");
  EXPECT_EQ(Q("[::-1].name", jobs), Json::parse(R"(["c","b","a"])"));
  EXPECT_EQ(Q("keys([0])", jobs), Json::parse(R"(["name","status","n"])"));
  EXPECT_EQ(Q("contains([].status, 'Failed')", jobs), true);
  EXPECT_EQ(Q("nothing.here", jobs), nullptr);
}

TEST(Jmespath, ErrorsHaveTheSuitesKinds) {
  EXPECT_EQ(ErrorOf("[?status=='x'", "[]"), "syntax");
  EXPECT_EQ(ErrorOf("a.", "{}"), "syntax");
  EXPECT_EQ(ErrorOf("foo(@)", "{}"), "unknown-function");
  EXPECT_EQ(ErrorOf("length(@, @)", "{}"), "invalid-arity");
  EXPECT_EQ(ErrorOf("length(`1`)", "{}"), "invalid-type");
  EXPECT_EQ(ErrorOf("[::0]", "[1]"), "invalid-value");
}

TEST(Jmespath, Int64EdgesDoNotOverflow) {
  EXPECT_EQ(Q("abs(`-9223372036854775808`)", "{}"), 9223372036854775808.0);
  EXPECT_EQ(Q("[1:9:9223372036854775807]", "[0,1,2]"), Json::parse("[1]"));
  EXPECT_EQ(Q("[::-9223372036854775808]", "[0,1,2]"), Json::parse("[2]"));
  EXPECT_EQ(Q("[-9223372036854775808]", "[0,1,2]"), nullptr);
  EXPECT_EQ(ErrorOf("[99999999999999999999]", "[]"), "syntax");
}

TEST(Jmespath, DeepNestingIsRefusedNotACrash) {
  std::string deep(100000, '(');
  Json out;
  Error e;
  EXPECT_FALSE(Search(deep + "@" + std::string(100000, ')'), Json::object(), &out, &e));
  EXPECT_EQ(e.kind, "syntax");
  std::string chain = "a";
  for (int i = 0; i < 20000; ++i) chain += ".a";
  EXPECT_TRUE(
      Search(chain, Json::object(), &out, &e));  // a flat subexpression: no recursion per link
}

// The official compliance suite (jmespath/jmespath.test), every case, errors included.
TEST(Jmespath, ComplianceSuite) {
  fs::path dir = fs::path(CAIRN_SOURCE_DIR) / ".." / "shared" / "conformance" / "jmespath";
  if (!fs::is_directory(dir))
    GTEST_SKIP() << "the JMESPath compliance suite (../shared) is not here";
  int cases = 0, failed = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() != ".json" || entry.path().filename() == "benchmarks.json")
      continue;
    std::ifstream in(entry.path());
    std::stringstream ss;
    ss << in.rdbuf();
    Json suites = Json::parse(ss.str());
    for (const auto& suite : suites) {
      for (const auto& c : suite["cases"]) {
        ++cases;
        std::string expr = c["expression"];
        Json out;
        Error e;
        bool ok = Search(expr, suite["given"], &out, &e);
        if (c.contains("error")) {
          if (ok || e.kind != c["error"].get<std::string>()) {
            ++failed;
            ADD_FAILURE() << entry.path().filename() << ": " << expr << ": expected error "
                          << c["error"] << ", got "
                          << (ok ? out.dump() : e.kind + ": " + e.message);
          }
        } else if (!ok || out != c["result"]) {
          ++failed;
          ADD_FAILURE() << entry.path().filename() << ": " << expr << ": expected "
                        << c["result"].dump() << ", got "
                        << (ok ? out.dump() : e.kind + ": " + e.message);
        }
      }
    }
  }
  EXPECT_GT(cases, 800);
  EXPECT_EQ(failed, 0) << failed << " of " << cases << " cases";
}

}  // namespace
}  // namespace cairn::jmespath
