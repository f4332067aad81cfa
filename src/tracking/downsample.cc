#include "tracking/downsample.h"

#include <algorithm>
#include <cmath>

namespace cairn::tracking {

std::vector<size_t> MinMaxDownsample(const std::vector<Point>& points, size_t max_points, XAxis x) {
  std::vector<size_t> keep;
  const size_t n = points.size();
  if (n <= max_points || max_points < 4) {
    keep.resize(n);
    for (size_t i = 0; i < n; ++i) keep[i] = i;
    return keep;
  }
  auto xof = [&](size_t i) {
    return static_cast<double>(x == XAxis::kStep ? points[i].step : points[i].timestamp);
  };
  double lo = xof(0), hi = xof(0);
  for (size_t i = 1; i < n; ++i) {
    lo = std::min(lo, xof(i));
    hi = std::max(hi, xof(i));
  }
  // Two points per column, plus the first and the last.
  const size_t columns = (max_points - 2) / 2;
  const double width = hi > lo ? (hi - lo) / static_cast<double>(columns) : 1.0;
  keep.reserve(2 * columns + 2);
  keep.push_back(0);
  size_t i = 1;
  while (i + 1 < n) {
    size_t column = std::min(columns - 1, static_cast<size_t>((xof(i) - lo) / width));
    size_t lowest = i, highest = i, any_nan = n;
    size_t j = i;
    for (; j + 1 < n && std::min(columns - 1, static_cast<size_t>((xof(j) - lo) / width)) == column;
         ++j) {
      double v = points[j].value;
      if (std::isnan(v)) {
        if (any_nan == n) any_nan = j;
        continue;
      }
      if (std::isnan(points[lowest].value) || v < points[lowest].value) lowest = j;
      if (std::isnan(points[highest].value) || v > points[highest].value) highest = j;
    }
    if (std::isnan(points[lowest].value)) {  // the column is all NaN
      keep.push_back(any_nan);
    } else {
      keep.push_back(std::min(lowest, highest));
      if (lowest != highest) keep.push_back(std::max(lowest, highest));
    }
    i = j;
  }
  keep.push_back(n - 1);
  return keep;
}

}  // namespace cairn::tracking
