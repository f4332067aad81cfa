// Load generator for the MLflow tracking API, beside the reference figures of the real MLflow
// server (issue "MLflow-compatible tracking"). Uses the project's loopback HTTP client: one
// keep-alive connection per thread, like the mlflow client's session.
//
//   build/tracking_bench <server-url> <token> [phase...]
//
// Phases: ping, metric, batch, batchgrow, history, search, search100k, artifacts (default: all but
// search100k). ping: GET /api/v1/health over 4 connections, the HTTP layer alone (what log-metric
// costs beyond it is the store's). With TRACKING_BENCH_SERVER_PID set (bench/tracking.sh sets it),
// ping and metric also print the server's CPU time per request, from /proc/PID/stat.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <sstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

#include "base/http_client.h"
#include "base/util.h"

using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {
std::string g_url, g_token;

double Seconds(Clock::time_point a) {
  return std::chrono::duration<double>(Clock::now() - a).count();
}

json Call(cairn::HttpClient& c, const std::string& method, const std::string& path,
          const json& body = nullptr) {
  auto r = c.Request(method, path, body.is_null() ? "" : body.dump());
  if (!r.ok() || r->status != 200) {
    fprintf(stderr, "%s %s failed: %s\n", method.c_str(), path.c_str(),
            r.ok() ? r->body.c_str() : r.status().message().c_str());
    exit(1);
  }
  return json::parse(r->body);
}

std::unique_ptr<cairn::HttpClient> Client() {
  auto c = std::make_unique<cairn::HttpClient>(g_url);
  c->SetBearerToken(g_token);
  return c;
}

// The server's user + system CPU seconds so far, or -1 when TRACKING_BENCH_SERVER_PID is not set.
double ServerCpuSeconds() {
  const char* pid = getenv("TRACKING_BENCH_SERVER_PID");
  if (!pid || !*pid) return -1;
  std::ifstream f(std::string("/proc/") + pid + "/stat");
  std::string stat((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  auto paren = stat.rfind(')');  // the command name may hold spaces
  if (paren == std::string::npos) return -1;
  std::istringstream in(stat.substr(paren + 2));
  std::string field;
  long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && in >> field; ++i) {  // fields 14 and 15 of proc(5): utime, stime
    if (i == 14) utime = std::atoll(field.c_str());
    if (i == 15) stime = std::atoll(field.c_str());
  }
  return double(utime + stime) / sysconf(_SC_CLK_TCK);
}

std::string CpuPerRequest(double cpu0, long long requests) {
  double cpu1 = ServerCpuSeconds();
  if (cpu0 < 0 || cpu1 < 0 || requests == 0) return "";
  char buf[96];
  snprintf(buf, sizeof buf, ", server CPU %.0f us/request", (cpu1 - cpu0) / requests * 1e6);
  return buf;
}

// Sends requests (`send(client, connection, n)`) on 4 keep-alive connections, one thread each, for
// `seconds`; prints the rate and the server's CPU per request.
void OnConnections(const char* what, double seconds,
                   const std::function<void(cairn::HttpClient&, int, long long)>& send) {
  const int kThreads = 4;
  std::vector<std::thread> ts;
  std::vector<long long> counts(kThreads);
  double cpu0 = ServerCpuSeconds();
  auto start = Clock::now();
  for (int t = 0; t < kThreads; ++t) {
    ts.emplace_back([&, t] {
      auto cl = Client();
      long long n = 0;
      while (Seconds(start) < seconds) send(*cl, t, n++);
      counts[t] = n;
    });
  }
  for (auto& t : ts) t.join();
  long long total = 0;
  for (auto n : counts) total += n;
  double secs = Seconds(start);
  printf("%s, %d connections: %.0f requests/s (%lld in %.1f s%s)\n", what, kThreads, total / secs,
         total, secs, CpuPerRequest(cpu0, total).c_str());
}

std::string NewRun(cairn::HttpClient& c, const std::string& exp) {
  return Call(c, "POST", "/api/2.0/mlflow/runs/create",
              {{"experiment_id", exp}})["run"]["info"]["run_id"];
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: tracking_bench <server-url> <token>\n");
    return 2;
  }
  g_url = argv[1];
  g_token = argv[2];
  std::vector<std::string> phases(argv + 3, argv + argc);
  if (phases.empty())
    phases = {"ping", "metric", "batch", "batchgrow", "history", "search", "artifacts"};
  auto want = [&](const char* p) {
    return std::find(phases.begin(), phases.end(), p) != phases.end();
  };
  auto c = Client();
  std::string exp = Call(*c, "POST", "/api/2.0/mlflow/experiments/create",
                         {{"name", "bench-" + cairn::RandomHex(4)}})["experiment_id"];

  // 0. The HTTP layer alone: an authenticated GET that reads nothing, 4 connections, 3 s.
  if (want("ping"))
    OnConnections("GET /api/v1/health", 3.0,
                  [](cairn::HttpClient& cl, int, long long) { Call(cl, "GET", "/api/v1/health"); });
  // 1. Single log-metric requests, 4 connections, 5 s.
  if (want("metric")) {
    std::string run = NewRun(*c, exp);
    OnConnections("log-metric", 5.0, [&](cairn::HttpClient& cl, int t, long long n) {
      Call(cl, "POST", "/api/2.0/mlflow/runs/log-metric",
           {{"run_id", run},
            {"key", "m" + std::to_string(t)},
            {"value", 0.5},
            {"timestamp", 1700000000000 + n},
            {"step", n}});
    });
  }
  // 2. log-batch of 1000 metrics, one connection.
  std::string big_run = NewRun(*c, exp);
  if (want("batch") || want("history")) {
    // The bodies are made before the clock starts: this measures the server, not this program's
    // JSON.
    std::vector<std::string> bodies;
    for (int b = 0; b < 100; ++b) {
      json metrics = json::array();
      for (int i = 0; i < 1000; ++i)
        metrics.push_back({{"key", "loss"},
                           {"value", 1.0 / (b * 1000 + i + 1)},
                           {"timestamp", 1700000000000 + b * 1000 + i},
                           {"step", b * 1000 + i}});
      bodies.push_back(json{{"run_id", big_run}, {"metrics", metrics}}.dump());
    }
    auto start = Clock::now();
    long long points = 0;
    for (const auto& body : bodies) {
      auto r = c->Request("POST", "/api/2.0/mlflow/runs/log-batch", body);
      if (!r.ok() || r->status != 200) return 1;
      points += 1000;
    }
    printf("log-batch of 1000 metrics: %.0f points/s (%lld points in %.2f s)\n",
           points / Seconds(start), points, Seconds(start));
  }
  // 2b. log-batch as a series grows to 1M points: 1000 batches of 1000, one timestamp for all (a
  // bulk import) and then increasing timestamps; points/s over the first, middle and last 50
  // batches.
  if (want("batchgrow")) {
    for (bool one_timestamp : {true, false}) {
      std::string run = NewRun(*c, exp);
      std::vector<double> window_s(3, 0.0);
      // The bodies are made before the clock starts, as for the batch phase (about 100 MB).
      std::vector<std::string> bodies;
      for (int b = 0; b < 1000; ++b) {
        json metrics = json::array();
        for (int i = 0; i < 1000; ++i) {
          long long step = static_cast<long long>(b) * 1000 + i;
          metrics.push_back(
              {{"key", "loss"},
               {"value", 1.0 / (step + 1)},
               {"timestamp", one_timestamp ? 1700000000000LL : 1700000000000LL + step},
               {"step", step}});
        }
        bodies.push_back(json{{"run_id", run}, {"metrics", metrics}}.dump());
      }
      for (int b = 0; b < 1000; ++b) {
        const std::string& body = bodies[b];
        auto start = Clock::now();
        auto r = c->Request("POST", "/api/2.0/mlflow/runs/log-batch", body);
        double s = Seconds(start);
        if (!r.ok() || r->status != 200) return 1;
        if (b < 50)
          window_s[0] += s;
        else if (b >= 475 && b < 525)
          window_s[1] += s;
        else if (b >= 950)
          window_s[2] += s;
      }
      printf(
          "log-batch growing to 1M points (%s): %.0f / %.0f / %.0f points/s at 0-50k / 500k / 1M "
          "points\n",
          one_timestamp ? "one timestamp" : "increasing timestamps", 50000 / window_s[0],
          50000 / window_s[1], 50000 / window_s[2]);
    }
  }
  // 3. get-history of the 100k-point metric just written.
  if (want("history")) {
    double best = 1e9;
    size_t n = 0;
    for (int i = 0; i < 5; ++i) {
      // Time the request, not this program's JSON parsing of the answer.
      auto start = Clock::now();
      auto r = c->Request(
          "GET", "/api/2.0/mlflow/metrics/get-history?run_id=" + big_run + "&metric_key=loss");
      best = std::min(best, Seconds(start));
      if (!r.ok() || r->status != 200) return 1;
      n = 0;
      for (size_t p = r->body.find("\"step\""); p != std::string::npos;
           p = r->body.find("\"step\"", p + 1))
        ++n;
    }
    printf("get-history of %zu points: %.1f ms (best of 5)\n", n, best * 1000);
  }
  // 4. search over 1000 runs, and (phase search100k) over 100,000.
  auto search_over = [&](int runs, int threads) {
    std::string exp2 = Call(*c, "POST", "/api/2.0/mlflow/experiments/create",
                            {{"name", "bench-search-" + cairn::RandomHex(4)}})["experiment_id"];
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t) {
      ts.emplace_back([&, t] {
        auto cl = Client();
        for (int i = t; i < runs; i += threads) {
          std::string r = NewRun(*cl, exp2);
          Call(*cl, "POST", "/api/2.0/mlflow/runs/log-batch",
               {{"run_id", r},
                {"metrics",
                 {{{"key", "acc"}, {"value", (i % 1000) / 1000.0}, {"timestamp", 1}, {"step", 0}}}},
                {"params", {{{"key", "i"}, {"value", std::to_string(i)}}}}});
        }
      });
    }
    for (auto& t : ts) t.join();
    // As the mlflow UI and client ask: a filter, an order, a page of 1000 (the client's default).
    double best = 1e9;
    size_t n = 0;
    for (int i = 0; i < 5; ++i) {
      auto start = Clock::now();
      auto r = c->Request("POST", "/api/2.0/mlflow/runs/search",
                          json{{"experiment_ids", {exp2}},
                               {"filter", "metrics.acc > 0.5"},
                               {"order_by", {"metrics.acc DESC"}},
                               {"max_results", 1000}}
                              .dump());
      best = std::min(best, Seconds(start));
      if (!r.ok() || r->status != 200) exit(1);
      n = json::parse(r->body)["runs"].size();
    }
    printf("search over %d runs (filter + order, page of %zu): %.1f ms (best of 5)\n", runs, n,
           best * 1000);
  };
  if (want("search")) search_over(1000, 1);
  if (want("search100k")) search_over(100000, 4);
  // 5. artifact upload and download of 200 MB.
  if (want("artifacts")) {
    std::string run = NewRun(*c, exp);
    std::string data(200 << 20, 'x');
    std::string path =
        "/api/2.0/mlflow-artifacts/artifacts/" + exp + "/" + run + "/artifacts/big.bin";
    auto start = Clock::now();
    auto up = c->Request("PUT", path, data, "application/octet-stream");
    double up_s = Seconds(start);
    if (!up.ok() || up->status != 200) return 1;
    start = Clock::now();
    size_t got = 0;
    auto down = c->Request("GET", path, "", "", [&](const char*, size_t n) {
      got += n;
      return true;
    });
    double down_s = Seconds(start);
    if (!down.ok() || got != data.size()) return 1;
    printf("artifact 200 MiB: upload %.0f MB/s, download %.0f MB/s\n", data.size() / up_s / 1e6,
           data.size() / down_s / 1e6);
  }
  return 0;
}
