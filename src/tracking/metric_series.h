// Metric histories, packed. A run's metric key is a series; its points are stored as 24-byte
// records (step, timestamp, value; little-endian) in chunks, one SQLite row per chunk rather than
// one row and one index entry per point. A batch of 1000 points is one row; single points are
// appended to the series' last chunk while it is small. A series remembers whether its points
// arrived in (step, timestamp) order, so a read sorts only when they did not.
//
// All functions run inside the caller's write transaction (TrackingStore's group commit) or on a
// reader.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "store/db.h"

namespace cairn::tracking {

struct Point {
  long long step = 0;
  long long timestamp = 0;
  double value = 0;  // NaN allowed
};

constexpr size_t kPointBytes = 24;

void EncodePoints(const Point* points, size_t n, std::string& out);
std::vector<Point> DecodePoints(std::string_view bytes);

// The schema migration that adds the packed tables (appended to the tracking store's migrations).
extern const char* const kMetricSeriesMigration;

// Appends `points` to the run's series `key`. A point equal to one already stored (same step,
// timestamp and value), or to an earlier one of the same call, is skipped: the mlflow client
// retries a log-batch whose answer it did not get, and the retry must not duplicate anything.
Status AppendSeries(store::Db& db, const std::string& run_id, const std::string& key,
                    const std::vector<Point>& points);

// The series' points in (step, timestamp) order; NotFound-free: a missing series is empty.
std::vector<Point> ReadSeries(store::Db& db, const std::string& run_id, const std::string& key);

// Removes every series of the run.
Status EraseSeries(store::Db& db, const std::string& run_id);

// Moves the points of the first schema's one-row-per-point `metrics` table into series, then drops
// it. Does nothing when that table is gone. Runs in its own transaction.
Status ConvertLegacyMetrics(store::Db& db);

}  // namespace cairn::tracking
