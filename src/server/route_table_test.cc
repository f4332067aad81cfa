// Access as data: every route declares who may call it, and docs/rest-api.md prints the same table.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "server/server.h"

namespace cairn::server {
namespace {

std::string Limit(const RouteRow& r) {
  if (r.max_body == 0) return r.method == "GET" || r.method == "DELETE" ? "none" : "64 MiB";
  size_t mib = r.max_body >> 20;
  std::string s = mib >= 1024 ? std::to_string(mib >> 10) + " GiB" : std::to_string(mib) + " MiB";
  return r.streams ? s + ", streamed" : s;
}

// The table as docs/rest-api.md shows it: one line per route, by path, then method.
std::string Render(std::vector<RouteRow> rows) {
  std::sort(rows.begin(), rows.end(), [](const RouteRow& a, const RouteRow& b) {
    return std::tie(a.path, a.method) < std::tie(b.path, b.method);
  });
  std::string out = "| method | path | who may call it | body |\n|---|---|---|---|\n";
  for (auto r : rows) {
    // A | in a pattern would end the cell.
    for (size_t i = 0; (i = r.path.find('|', i)) != std::string::npos; i += 2)
      r.path.insert(i, "\\");
    out += "| " + (r.method.empty() ? std::string("GET, POST") : r.method) + " | `" + r.path +
           "` | " + r.access + " | " + (r.method.empty() ? "32 MiB" : Limit(r)) + " |\n";
  }
  return out;
}

TEST(RouteTable, EveryRouteSaysWhoMayCallIt) {
  auto rows = RouteTable();
  ASSERT_GT(rows.size(), 60u);
  for (const auto& r : rows) EXPECT_NE(r.access, "UNDECLARED") << r.method << " " << r.path;
  auto find = [&](const std::string& method, const std::string& path) {
    for (const auto& r : rows)
      if (r.method == method && r.path == path) return r.access;
    return std::string("missing");
  };
  EXPECT_EQ(find("POST", "/api/v1/shutdown"), "owner");
  EXPECT_EQ(find("POST", "/api/v1/role-assignments"), "owner");
  EXPECT_EQ(find("POST", "/api/v1/jobs"), "contributor");
  EXPECT_EQ(find("GET", "/api/v1/jobs"), "reader");
  EXPECT_EQ(find("GET", "/api/v1/identify"), "public");
  EXPECT_EQ(find("POST", R"(/api/v1/internal/jobs/([^/]+)/events)"), "supervisor");
  // Changing MLflow endpoints are for Contributors and a job's own token, and never a GET.
  EXPECT_EQ(find("", "/api/2.0/mlflow/runs/delete"), "contributor or job");
  EXPECT_EQ(find("", "/api/2.0/mlflow/runs/log-batch"), "contributor or job");
  EXPECT_EQ(find("", "/api/2.0/mlflow/runs/search"), "reader or job");
}

TEST(RouteTable, DocsRestApiPrintsTheTable) {
  std::ifstream f(std::string(CAIRN_SOURCE_DIR) + "/docs/rest-api.md");
  ASSERT_TRUE(f) << "docs/rest-api.md";
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string doc = ss.str();
  const std::string begin = "<!-- route-table: begin -->\n", end = "<!-- route-table: end -->";
  size_t b = doc.find(begin), e = doc.find(end);
  ASSERT_NE(b, std::string::npos) << "docs/rest-api.md has no " << begin;
  ASSERT_NE(e, std::string::npos);
  std::string want = Render(RouteTable());
  EXPECT_EQ(doc.substr(b + begin.size(), e - b - begin.size()), want)
      << "docs/rest-api.md's route table differs from the code's; the code's is:\n"
      << want;
}

}  // namespace
}  // namespace cairn::server
