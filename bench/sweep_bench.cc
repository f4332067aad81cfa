// Sampler benchmarks for the sweep issue: the bayesian (TPE) sampler's suggestion time with 1000
// observations (goal <= 50 ms), and TPE against random search on the Branin function (a standard
// test function of two variables, minimum 0.397887) with the same budget and seeds.
//
//   build/sweep_bench
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <numbers>

#include "sweep/search_space.h"

using nlohmann::json;
using namespace cairn::sweep;

namespace {
double Branin(double x, double y) {
  const double pi = std::numbers::pi;
  double b = 5.1 / (4 * pi * pi), c = 5 / pi, t = 1 / (8 * pi);
  return std::pow(y - b * x * x + c * x - 6, 2) + 10 * (1 - t) * std::cos(x) + 10;
}
}  // namespace

int main() {
  auto space =
      ParseSpace(json::parse(R"({"x": {"type": "uniform", "min_value": -5, "max_value": 10},
                                           "y": {"type": "uniform", "min_value": 0, "max_value": 15}})"));
  if (!space.ok()) return 1;
  // 1. Suggestion time with 1000 observations.
  std::vector<Observation> obs;
  for (uint64_t i = 0; i < 1000; ++i) {
    json p = SampleRandom(*space, 9, i);
    obs.push_back({p, Branin(p["x"], p["y"])});
  }
  double best_ms = 1e9;
  for (int r = 0; r < 20; ++r) {
    auto t = std::chrono::steady_clock::now();
    json p = SampleTpe(*space, 9, 1000 + static_cast<uint64_t>(r), obs, false);
    best_ms = std::min(
        best_ms,
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count());
    if (!p.contains("x")) return 1;
  }
  printf("TPE suggestion with 1000 observations: %.2f ms (best of 20)\n", best_ms);
  // 2. Branin, 50 trials, 30 seeds: mean of the best value found.
  const int kTrials = 50, kSeeds = 30;
  const size_t kStartup = getenv("STARTUP") ? static_cast<size_t>(atoi(getenv("STARTUP"))) : 6;
  double tpe = 0, random = 0;
  int tpe_wins = 0;
  for (uint64_t seed = 1; seed <= kSeeds; ++seed) {
    std::vector<Observation> seen;
    double tb = 1e9, rb = 1e9;
    for (uint64_t i = 0; i < kTrials; ++i) {
      json p = SampleTpe(*space, seed, i, seen, false, kStartup);
      double v = Branin(p["x"], p["y"]);
      seen.push_back({p, v});
      tb = std::min(tb, v);
      json q = SampleRandom(*space, seed, i);
      rb = std::min(rb, Branin(q["x"], q["y"]));
    }
    tpe += tb;
    random += rb;
    tpe_wins += tb < rb;
  }
  printf(
      "Branin, %d trials, %d seeds: mean best TPE %.4f, random %.4f (optimum 0.3979); TPE better "
      "in %d of %d\n",
      kTrials, kSeeds, tpe / kSeeds, random / kSeeds, tpe_wins, kSeeds);
  return 0;
}
