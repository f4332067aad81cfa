// MLflow's search_runs filter and order_by grammar (mlflow/utils/search_utils.py): clauses joined
// by AND; metrics.x / params.x / tags.x / attributes.x with = != > >= < <= LIKE ILIKE IN NOT IN.
// Pure, thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace cairn::tracking {

struct Run;

struct Clause {
  std::string kind;  // metric | param | tag | attribute
  std::string key;
  std::string op;                   // = != > >= < <= LIKE ILIKE IN NOT IN
  std::vector<std::string> values;  // one, or several for IN
  bool numeric = false;
  double number = 0;  // the value of a numeric clause
};
using RunFilter = std::vector<Clause>;

struct OrderKey {
  std::string kind;
  std::string key;
  bool ascending = true;
};
using RunOrder = std::vector<OrderKey>;

// What a filter may name besides metrics.x, params.x and tags.x.
struct FilterSchema {
  std::vector<std::string> string_attrs, number_attrs;
};
const FilterSchema& RunSchema();
const FilterSchema& LoggedModelSchema();

Result<RunFilter> ParseFilter(const std::string& text, const FilterSchema& schema);
Result<RunFilter> ParseRunFilter(const std::string& text);  // with RunSchema()

// The values a filter is evaluated against.
class FieldSource {
 public:
  virtual ~FieldSource() = default;
  // kind: metric | param | tag | attribute.
  virtual std::optional<std::string_view> String(const std::string& kind,
                                                 const std::string& key) const = 0;
  virtual std::optional<double> Number(const std::string& kind, const std::string& key) const = 0;
};
bool Matches(const RunFilter& filter, const FieldSource& source);
Result<RunOrder> ParseRunOrder(const std::vector<std::string>& order_by);
bool Matches(const RunFilter& filter, const Run& run);
// SQL LIKE ('%' any run, '_' one character), case-insensitive for ILIKE.
bool LikeMatch(std::string_view value, std::string_view pattern, bool icase);
// Sorts by `order`, then start_time DESC, then run_id; runs missing an ordered value sort last.
void SortRuns(const RunOrder& order, std::vector<Run>& runs);
// One ordered value of a run, to sort many runs without looking each value up for every comparison.
struct SortValue {
  bool present = false;
  bool numeric = false;
  double num = 0;
  std::string_view str;  // points into the run
};
SortValue OrderValue(const OrderKey& k, const Run& r);
SortValue OrderValue(const OrderKey& k, const FieldSource& source);
// <0, 0 or >0: missing values last, NaN after every number, then by the key's direction.
int CompareOrderValues(const OrderKey& k, const SortValue& x, const SortValue& y);
// The order SortRuns sorts by: whether `a` comes before `b` (the keys, then start_time DESC, then
// run_id).
bool RunBefore(const RunOrder& order, const Run& a, const Run& b);

}  // namespace cairn::tracking
