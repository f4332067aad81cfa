// Early termination of sweep trials: bandit, median stopping and truncation selection, by the
// formal semantics of spec/azureml-cli-v2.md section 5.7. Evaluated each time a trial reports the
// primary metric (each report is one interval); a decision carries the numbers it was made on, for
// the sweep's log.
#pragma once

#include <string>
#include <vector>

#include "base/status.h"

namespace cairn::sweep {

struct Policy {
  enum class Type { kNone, kBandit, kMedianStopping, kTruncationSelection };
  Type type = Type::kNone;
  int evaluation_interval = 1;
  int delay_evaluation = 0;
  // bandit: exactly one of the slacks
  bool has_slack_factor = false;
  double slack_factor = 0;
  bool has_slack_amount = false;
  double slack_amount = 0;
  // truncation_selection
  int truncation_percentage = 0;
  bool exclude_finished_jobs = false;
};

// One trial's reports of the primary metric, in order.
struct TrialCurve {
  int trial = 0;  // its number in the sweep
  std::vector<double> values;
  bool finished = false;  // ended (completed, failed or stopped)
};

struct Decision {
  bool evaluated = false;  // the policy applied at this interval
  bool stop = false;
  std::string reason;  // the numbers, when evaluated
};

// Whether to stop `curves[t]`, which has just made its k-th report (k = its values' size).
Decision Evaluate(const Policy& p, bool maximize, const std::vector<TrialCurve>& curves, size_t t);

}  // namespace cairn::sweep
