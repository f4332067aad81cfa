// Downsampling a metric's history for a chart: a series of a million points becomes at most
// `max_points` that draw the same picture. The x range is cut into max_points / 2 equal columns (a
// chart's pixel columns); each column keeps its lowest and its highest point, in x order, and the
// series keeps its first and last points. So every extreme survives: a spike one point wide is
// still drawn. NaN values are kept where they fall (a column with only NaN keeps one). Pure;
// thread-safe.
#pragma once

#include <cstddef>
#include <vector>

#include "tracking/metric_series.h"

namespace cairn::tracking {

enum class XAxis { kStep, kTimestamp };

// The indexes of the points to keep, ascending. `points` must be in x order (GetHistory's order for
// steps; timestamps within a step may go back, which only widens a column). All of them when there
// are at most `max_points` (or max_points < 4).
std::vector<size_t> MinMaxDownsample(const std::vector<Point>& points, size_t max_points, XAxis x);

}  // namespace cairn::tracking
