#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>

#include "sweep/policy.h"
#include "sweep/search_space.h"

namespace cairn::sweep {
namespace {

using nlohmann::json;

Space MustParse(const json& j) {
  auto s = ParseSpace(j);
  EXPECT_TRUE(s.ok()) << s.status().message();
  return s.ok() ? *s : Space{};
}

TEST(SearchSpace, DrawsByTheDigestsFormulas) {
  auto space = MustParse(json::parse(R"({
    "u": {"type": "uniform", "min_value": 0.01, "max_value": 0.9},
    "lu": {"type": "loguniform", "min_value": 0, "max_value": 2},
    "qu": {"type": "quniform", "min_value": 0, "max_value": 10, "q": 2},
    "qlu": {"type": "qloguniform", "min_value": 0, "max_value": 3, "q": 0.5},
    "r": {"type": "randint", "upper": 5},
    "c": {"type": "choice", "values": [1, "two", 3.5]},
    "n": {"type": "normal", "mu": 10, "sigma": 2},
    "qn": {"type": "qnormal", "mu": 10, "sigma": 2, "q": 3}
  })"));
  std::map<std::string, Distribution> d;
  for (const auto& p : space) d[p.name] = p.dist;
  EXPECT_DOUBLE_EQ(Draw(d["u"], 0.5, 0).get<double>(), 0.01 + 0.5 * 0.89);
  EXPECT_DOUBLE_EQ(Draw(d["lu"], 0.25, 0).get<double>(), std::exp(0.5));
  EXPECT_EQ(Draw(d["qu"], 0.33, 0), json(4));  // round(3.3 / 2) * 2, an integer since q is
  EXPECT_DOUBLE_EQ(Draw(d["qlu"], 0.5, 0).get<double>(), std::round(std::exp(1.5) / 0.5) * 0.5);
  EXPECT_EQ(Draw(d["r"], 0.999, 0), json(4));
  EXPECT_EQ(Draw(d["r"], 0.0, 0), json(0));
  EXPECT_EQ(Draw(d["c"], 0.5, 0), json("two"));
  // Box-Muller with u2 = 0: mu + sigma * sqrt(-2 ln(1 - u)).
  EXPECT_DOUBLE_EQ(Draw(d["n"], 0.5, 0).get<double>(), 10 + 2 * std::sqrt(-2 * std::log(0.5)));
  EXPECT_EQ(
      Draw(d["qn"], 0.5, 0),
      json(static_cast<long long>(std::round((10 + 2 * std::sqrt(-2 * std::log(0.5))) / 3) * 3)));
}

TEST(SearchSpace, RandomSamplesHaveEachDistributionsRangeAndShape) {
  auto space = MustParse(json::parse(R"({
    "u": {"type": "uniform", "min_value": -1, "max_value": 3},
    "lu": {"type": "loguniform", "min_value": -2, "max_value": 2},
    "n": {"type": "normal", "mu": 5, "sigma": 2},
    "ln": {"type": "lognormal", "mu": 0, "sigma": 0.5},
    "r": {"type": "randint", "upper": 4},
    "c": {"type": "choice", "values": ["a", "b"]},
    "qlu": {"type": "qloguniform", "min_value": 0, "max_value": 4, "q": 5}
  })"));
  const int n = 20000;
  double su = 0, slu = 0, sn = 0, sn2 = 0, sln = 0;
  std::map<long long, int> r;
  std::map<std::string, int> c;
  for (int i = 0; i < n; ++i) {
    json s = SampleRandom(space, 42, static_cast<uint64_t>(i));
    double u = s["u"], lu = s["lu"], nv = s["n"], ln = s["ln"];
    ASSERT_GE(u, -1);
    ASSERT_LE(u, 3);
    ASSERT_GE(lu, std::exp(-2) - 1e-12);
    ASSERT_LE(lu, std::exp(2) + 1e-12);
    ASSERT_GT(ln, 0);
    ASSERT_TRUE(s["qlu"].is_number_integer());
    ASSERT_EQ(s["qlu"].get<long long>() % 5, 0);
    su += u;
    slu += std::log(lu);
    sn += nv;
    sn2 += nv * nv;
    sln += std::log(ln);
    r[s["r"].get<long long>()]++;
    c[s["c"].get<std::string>()]++;
  }
  EXPECT_NEAR(su / n, 1.0, 0.03);
  EXPECT_NEAR(slu / n, 0.0, 0.03);  // uniform in log space
  EXPECT_NEAR(sn / n, 5.0, 0.05);
  EXPECT_NEAR(std::sqrt(sn2 / n - (sn / n) * (sn / n)), 2.0, 0.05);
  EXPECT_NEAR(sln / n, 0.0, 0.02);
  ASSERT_EQ(r.size(), 4u);  // 0..3
  for (const auto& [v, count] : r) EXPECT_NEAR(count, n / 4, n / 40) << v;
  EXPECT_NEAR(c["a"], n / 2, n / 40);
}

TEST(SearchSpace, TrialsDependOnlyOnSeedAndIndex) {
  auto space = MustParse(json::parse(R"({"x": {"type": "uniform", "min_value": 0, "max_value": 1},
                                          "y": {"type": "choice", "values": [1, 2, 3]}})"));
  EXPECT_EQ(SampleRandom(space, 7, 12), SampleRandom(space, 7, 12));
  EXPECT_NE(SampleRandom(space, 7, 12), SampleRandom(space, 8, 12));
  EXPECT_NE(SampleRandom(space, 7, 12), SampleRandom(space, 7, 13));
  EXPECT_EQ(SampleSobol(space, 7, 3), SampleSobol(space, 7, 3));
}

TEST(SearchSpace, SobolPointsStratifyEveryDimension) {
  // Any Sobol sequence: the first 2^m points put exactly one coordinate in each [j/2^m, (j+1)/2^m).
  for (size_t dims : {1u, 3u, 8u}) {
    for (int m : {3, 6}) {
      size_t count = size_t{1} << m;
      std::vector<std::set<size_t>> cells(dims);
      for (size_t i = 0; i < count; ++i) {
        auto p = SobolPoint(dims, i);
        for (size_t d = 0; d < dims; ++d) {
          ASSERT_GE(p[d], 0);
          ASSERT_LT(p[d], 1);
          cells[d].insert(static_cast<size_t>(p[d] * static_cast<double>(count)));
        }
      }
      for (size_t d = 0; d < dims; ++d)
        EXPECT_EQ(cells[d].size(), count) << "dim " << d << " m " << m;
    }
  }
  // And Sobol samples fill a uniform range more evenly than random ones: compare the largest gap.
  auto space =
      MustParse(json::parse(R"({"x": {"type": "uniform", "min_value": 0, "max_value": 1}})"));
  auto max_gap = [&](bool sobol) {
    std::vector<double> xs;
    for (uint64_t i = 0; i < 64; ++i)
      xs.push_back((sobol ? SampleSobol(space, 3, i) : SampleRandom(space, 3, i))["x"]);
    std::sort(xs.begin(), xs.end());
    double g = xs.front();
    for (size_t i = 1; i < xs.size(); ++i) g = std::max(g, xs[i] - xs[i - 1]);
    return std::max(g, 1 - xs.back());
  };
  EXPECT_LT(max_gap(true), max_gap(false));
}

TEST(SearchSpace, GridVisitsTheCartesianProductOnce) {
  auto space = MustParse(json::parse(R"({"a": {"type": "choice", "values": [1, 2, 3]},
                                          "b": {"type": "choice", "values": ["x", "y"]}})"));
  ASSERT_EQ(GridSize(space), 6);
  std::set<std::string> seen;
  for (uint64_t i = 0; i < 6; ++i) seen.insert(SampleGrid(space, i).dump());
  EXPECT_EQ(seen.size(), 6u);
  EXPECT_EQ(SampleGrid(space, 0), json::parse(R"({"a": 1, "b": "x"})"));
  EXPECT_EQ(SampleGrid(space, 1), json::parse(R"({"a": 1, "b": "y"})"));
}

TEST(SearchSpace, NestedChoicesSampleTheChosenSubSpace) {
  auto space = MustParse(json::parse(R"({"model": {"type": "choice", "values": [
      {"kind": "svm", "C": {"type": "uniform", "min_value": 1, "max_value": 2}},
      {"kind": "forest", "trees": {"type": "randint", "upper": 10}}]}})"));
  std::map<std::string, int> kinds;
  for (uint64_t i = 0; i < 200; ++i) {
    json s = SampleRandom(space, 1, i);
    std::string kind = s["kind"];
    kinds[kind]++;
    if (kind == "svm") {
      ASSERT_TRUE(s.contains("C") && !s.contains("trees")) << s.dump();
      ASSERT_GE(s["C"].get<double>(), 1);
    } else {
      ASSERT_TRUE(s.contains("trees") && !s.contains("C")) << s.dump();
    }
  }
  EXPECT_GT(kinds["svm"], 60);
  EXPECT_GT(kinds["forest"], 60);
}

TEST(SearchSpace, RefusesWhatCannotBeSampled) {
  auto bad = [](const char* text) {
    auto s = ParseSpace(json::parse(text));
    return s.ok() ? std::string("ok") : s.status().message();
  };
  EXPECT_EQ(bad(R"({"lr": {"type": "uniform", "min_value": 0.5, "max_value": 0.1}})"),
            "search_space.lr.max_value: must not be less than min_value (0.5)");
  EXPECT_EQ(bad(R"({"lr": {"type": "gaussian"}})")
                .rfind("search_space.lr.type: unknown distribution 'gaussian'", 0),
            0u);
  EXPECT_EQ(bad(R"({"lr": {"type": "quniform", "min_value": 0, "max_value": 1}})"),
            "search_space.lr: missing `q`");
  EXPECT_EQ(bad(R"({"n": {"type": "randint", "upper": 0}})"),
            "search_space.n.upper: must be at least 1, not 0");
  EXPECT_EQ(bad(R"({"c": {"type": "choice", "values": []}})"),
            "search_space.c.values: a choice needs a non-empty list of values");
  auto space = MustParse(json::parse(R"({"lr": {"type": "uniform", "min_value": 0, "max_value": 1},
                                          "n": {"type": "normal", "mu": 0, "sigma": 1}})"));
  EXPECT_EQ(CheckAlgorithm(space, "grid"),
            "search_space.lr: grid sampling takes only choice (with plain values), not uniform");
  EXPECT_EQ(
      CheckAlgorithm(space, "bayesian"),
      "search_space.n: bayesian sampling takes only choice, uniform and quniform, not normal");
  EXPECT_EQ(CheckAlgorithm(space, "random"), "");
}

// Bayesian (TPE) against random search on a shifted sphere, same seeds and budget.
TEST(SearchSpace, TpeBeatsRandomSearchOnASphere) {
  auto space = MustParse(json::parse(R"({"x": {"type": "uniform", "min_value": -5, "max_value": 5},
                                          "y": {"type": "uniform", "min_value": -5, "max_value": 5},
                                          "z": {"type": "quniform", "min_value": -5, "max_value": 5, "q": 0.1}})"));
  auto f = [](const json& p) {
    double x = p["x"], y = p["y"], z = p["z"];
    return (x - 1.3) * (x - 1.3) + (y + 2.1) * (y + 2.1) + (z - 0.4) * (z - 0.4);
  };
  double tpe_total = 0, random_total = 0;
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    std::vector<Observation> obs;
    double tpe_best = 1e9, random_best = 1e9;
    for (uint64_t i = 0; i < 60; ++i) {
      json p = SampleTpe(space, seed, i, obs, /*maximize=*/false);
      double v = f(p);
      obs.push_back({p, v});
      tpe_best = std::min(tpe_best, v);
      random_best = std::min(random_best, f(SampleRandom(space, seed, i)));
    }
    tpe_total += tpe_best;
    random_total += random_best;
  }
  EXPECT_LT(tpe_total, random_total * 0.7)
      << "TPE mean best " << tpe_total / 10 << ", random " << random_total / 10;
}

TrialCurve Curve(int trial, std::vector<double> v, bool finished = false) {
  return {trial, std::move(v), finished};
}

TEST(Policy, BanditStopsBelowTheSlackedBest) {
  // The digest's example: maximize, the best trial has 0.8 at interval 10, slack_factor 0.2:
  // 0.8/1.2 = 0.667.
  Policy p;
  p.type = Policy::Type::kBandit;
  p.has_slack_factor = true;
  p.slack_factor = 0.2;
  p.evaluation_interval = 1;
  std::vector<TrialCurve> curves = {Curve(1, std::vector<double>(10, 0.8)),
                                    Curve(2, std::vector<double>(10, 0.66)),
                                    Curve(3, std::vector<double>(10, 0.67))};
  Decision d = Evaluate(p, true, curves, 1);
  EXPECT_TRUE(d.stop);
  EXPECT_EQ(d.reason,
            "trial 2 at interval 10: best 0.66 < threshold 0.666667 = 0.8/(1+0.2) (bandit over 3 "
            "trials)");
  EXPECT_FALSE(Evaluate(p, true, curves, 2).stop);
  // slack_amount, minimizing: threshold = best + amount.
  Policy a = p;
  a.has_slack_factor = false;
  a.has_slack_amount = true;
  a.slack_amount = 0.1;
  std::vector<TrialCurve> loss = {Curve(1, {0.5, 0.3}), Curve(2, {0.6, 0.41}),
                                  Curve(3, {0.45, 0.39})};
  EXPECT_TRUE(Evaluate(a, false, loss, 1).stop);   // 0.41 > 0.3 + 0.1
  EXPECT_FALSE(Evaluate(a, false, loss, 2).stop);  // 0.39 <= 0.4
}

TEST(Policy, IntervalAndDelayChooseWhenToEvaluate) {
  Policy p;
  p.type = Policy::Type::kBandit;
  p.has_slack_amount = true;
  p.slack_amount = 0;
  p.evaluation_interval = 2;
  p.delay_evaluation = 4;
  std::vector<TrialCurve> curves = {Curve(1, {1, 1, 1, 1, 1, 1}), Curve(2, {0})};
  for (int k = 1; k <= 6; ++k) {
    curves[1].values.assign(static_cast<size_t>(k), 0.0);
    Decision d = Evaluate(p, true, curves, 1);
    EXPECT_EQ(d.evaluated, k == 4 || k == 6) << k;
    EXPECT_EQ(d.stop, d.evaluated) << k;
  }
  p.evaluation_interval = 0;  // 0: never
  EXPECT_FALSE(Evaluate(p, true, curves, 1).evaluated);
}

TEST(Policy, MedianStoppingComparesWithTheMedianOfRunningAverages) {
  Policy p;
  p.type = Policy::Type::kMedianStopping;
  // Running averages at interval 3: 2, 5, 8 -> median 5.
  std::vector<TrialCurve> curves = {Curve(1, {1, 2, 3}), Curve(2, {4, 5, 6}), Curve(3, {7, 8, 9}),
                                    Curve(4, {4.9, 4, 4})};
  Decision d =
      Evaluate(p, true, curves, 3);  // best 4.9 < median of {2, 5, 8, 4.33} = 4.67? no: 4.9 >= 4.67
  EXPECT_FALSE(d.stop) << d.reason;
  curves[3].values = {4.5, 4, 4};  // averages {2, 5, 8, 4.17}: median (4.17 + 5) / 2 = 4.58 > 4.5
  d = Evaluate(p, true, curves, 3);
  EXPECT_TRUE(d.stop) << d.reason;
  EXPECT_NE(d.reason.find("median 4.58333"), std::string::npos) << d.reason;
  EXPECT_TRUE(Evaluate(p, true, curves, 0).stop);  // best 3 < 4.58
}

TEST(Policy, TruncationStopsTheWorstPercentage) {
  Policy p;
  p.type = Policy::Type::kTruncationSelection;
  p.truncation_percentage = 40;
  // Values at interval 2: 0.9, 0.1, 0.5, 0.3, 0.7: five trials, the worst 40% (2) are 0.1 and 0.3.
  std::vector<TrialCurve> curves = {Curve(1, {0, 0.9}), Curve(2, {0, 0.1}), Curve(3, {0, 0.5}),
                                    Curve(4, {0, 0.3}, true), Curve(5, {0, 0.7})};
  std::vector<bool> stopped;
  for (size_t t = 0; t < curves.size(); ++t) stopped.push_back(Evaluate(p, true, curves, t).stop);
  EXPECT_EQ(stopped, (std::vector<bool>{false, true, false, true, false}));
  // Finished trials left out: four remain, 40% of 4 = 1: only the worst running one, 0.1.
  p.exclude_finished_jobs = true;
  EXPECT_TRUE(Evaluate(p, true, curves, 1).stop);
  EXPECT_FALSE(Evaluate(p, true, curves, 2).stop);
  // Minimizing turns the order round: 0.9 is now the worst.
  p.exclude_finished_jobs = false;
  EXPECT_TRUE(Evaluate(p, false, curves, 0).stop);
  EXPECT_FALSE(Evaluate(p, false, curves, 1).stop);
}

TEST(Policy, ALoneTrialIsNeverStopped) {
  for (auto type :
       {Policy::Type::kBandit, Policy::Type::kMedianStopping, Policy::Type::kTruncationSelection}) {
    Policy p;
    p.type = type;
    p.has_slack_factor = true;
    p.slack_factor = 0.1;
    p.truncation_percentage = 99;
    std::vector<TrialCurve> curves = {Curve(1, {0.3, 0.2, 0.1})};
    EXPECT_FALSE(Evaluate(p, true, curves, 0).stop);
  }
}

}  // namespace
}  // namespace cairn::sweep
