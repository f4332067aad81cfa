#include "sweep/policy.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace cairn::sweep {

namespace {

std::string Fmt(double v) {
  char buf[32];
  snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

}  // namespace

Decision Evaluate(const Policy& p, bool maximize, const std::vector<TrialCurve>& curves, size_t t) {
  Decision d;
  if (p.type == Policy::Type::kNone || t >= curves.size()) return d;
  const TrialCurve& me = curves[t];
  const size_t k = me.values.size();
  if (k == 0 || p.evaluation_interval <= 0 || k % static_cast<size_t>(p.evaluation_interval) != 0 ||
      k < static_cast<size_t>(std::max(p.delay_evaluation, 0)))
    return d;
  d.evaluated = true;
  const double sign = maximize ? 1 : -1;
  auto better = [&](double a, double b) { return sign * a > sign * b; };
  auto best_of = [&](const TrialCurve& c) {
    double b = c.values[0];
    for (size_t i = 1; i < k; ++i)
      if (better(c.values[i], b)) b = c.values[i];
    return b;
  };
  // The population: trials that have reached interval k (this one included).
  std::vector<const TrialCurve*> reached;
  for (const auto& c : curves)
    if (c.values.size() >= k) reached.push_back(&c);
  const double mine = best_of(me);
  const std::string head =
      "trial " + std::to_string(me.trial) + " at interval " + std::to_string(k) + ": ";
  const char* worse = maximize ? " < " : " > ";
  const char* not_worse = maximize ? " >= " : " <= ";

  switch (p.type) {
    case Policy::Type::kBandit: {
      double b = best_of(*reached[0]);
      for (const auto* c : reached) b = better(best_of(*c), b) ? best_of(*c) : b;
      double threshold;
      std::string how;
      if (p.has_slack_factor) {
        threshold = maximize ? b / (1 + p.slack_factor) : b * (1 + p.slack_factor);
        how = maximize ? Fmt(b) + "/(1+" + Fmt(p.slack_factor) + ")"
                       : Fmt(b) + "*(1+" + Fmt(p.slack_factor) + ")";
      } else {
        threshold = maximize ? b - p.slack_amount : b + p.slack_amount;
        how = maximize ? Fmt(b) + "-" + Fmt(p.slack_amount) : Fmt(b) + "+" + Fmt(p.slack_amount);
      }
      d.stop = better(threshold, mine);
      d.reason = head + "best " + Fmt(mine) + (d.stop ? worse : not_worse) + "threshold " +
                 Fmt(threshold) + " = " + how + " (bandit over " + std::to_string(reached.size()) +
                 " trials)";
      break;
    }
    case Policy::Type::kMedianStopping: {
      std::vector<double> avgs;
      for (const auto* c : reached) {
        double s = 0;
        for (size_t i = 0; i < k; ++i) s += c->values[i];
        avgs.push_back(s / static_cast<double>(k));
      }
      std::sort(avgs.begin(), avgs.end());
      size_t n = avgs.size();
      double median = n % 2 ? avgs[n / 2] : (avgs[n / 2 - 1] + avgs[n / 2]) / 2;
      d.stop = better(median, mine);
      d.reason = head + "best " + Fmt(mine) + (d.stop ? worse : not_worse) + "median " +
                 Fmt(median) + " of the running averages of " + std::to_string(n) + " trials";
      break;
    }
    case Policy::Type::kTruncationSelection: {
      std::vector<const TrialCurve*> pop;
      for (const auto* c : reached)
        if (c == &me || !(p.exclude_finished_jobs && c->finished)) pop.push_back(c);
      // Worst first by the value at interval k; ties keep trial order, so the decision is
      // deterministic.
      std::stable_sort(pop.begin(), pop.end(), [&](const TrialCurve* a, const TrialCurve* b) {
        return better(b->values[k - 1], a->values[k - 1]);
      });
      size_t cut = pop.size() * static_cast<size_t>(p.truncation_percentage) / 100;
      size_t rank = static_cast<size_t>(std::find(pop.begin(), pop.end(), &me) - pop.begin());
      d.stop = rank < cut;
      d.reason = head + "value " + Fmt(me.values[k - 1]) + " ranks " + std::to_string(rank + 1) +
                 " from the worst of " + std::to_string(pop.size()) + "; the worst " +
                 std::to_string(p.truncation_percentage) + "% (" + std::to_string(cut) + ") are " +
                 (d.stop ? "stopped" : "stopped, not this one");
      break;
    }
    case Policy::Type::kNone:
      break;
  }
  return d;
}

}  // namespace cairn::sweep
