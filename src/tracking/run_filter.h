// MLflow's search_runs filter and order_by grammar (mlflow/utils/search_utils.py): clauses joined by AND;
// metrics.x / params.x / tags.x / attributes.x with = != > >= < <= LIKE ILIKE IN NOT IN. Pure, thread-safe.
#pragma once

#include <string>
#include <vector>

#include "base/status.h"

namespace cairn::tracking {

struct Run;

struct Clause {
  std::string kind;  // metric | param | tag | attribute
  std::string key;
  std::string op;    // = != > >= < <= LIKE ILIKE IN NOT IN
  std::vector<std::string> values;  // one, or several for IN
  bool numeric = false;
};
using RunFilter = std::vector<Clause>;

struct OrderKey {
  std::string kind;
  std::string key;
  bool ascending = true;
};
using RunOrder = std::vector<OrderKey>;

Result<RunFilter> ParseRunFilter(const std::string& text);
Result<RunOrder> ParseRunOrder(const std::vector<std::string>& order_by);
bool Matches(const RunFilter& filter, const Run& run);
// SQL LIKE ('%' any run, '_' one character), case-insensitive for ILIKE.
bool LikeMatch(const std::string& value, const std::string& pattern, bool icase);
// Sorts by `order`, then start_time DESC, then run_id; runs missing an ordered value sort last.
void SortRuns(const RunOrder& order, std::vector<Run>& runs);

}  // namespace cairn::tracking
