#include "tracking/metric_series.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <unordered_set>

namespace cairn::tracking {

using store::Db;
using store::Stmt;

static_assert(std::endian::native == std::endian::little, "points are stored little-endian");

const char* const kMetricSeriesMigration = R"sql(
CREATE TABLE metric_series (
  series_id INTEGER PRIMARY KEY,
  run_id TEXT NOT NULL,
  key TEXT NOT NULL,
  points INTEGER NOT NULL DEFAULT 0,
  max_timestamp INTEGER NOT NULL DEFAULT -1,
  last_step INTEGER NOT NULL DEFAULT 0,
  last_timestamp INTEGER NOT NULL DEFAULT -1,
  ordered INTEGER NOT NULL DEFAULT 1,
  UNIQUE (run_id, key)
);
CREATE TABLE metric_chunks (
  chunk_id INTEGER PRIMARY KEY,
  series_id INTEGER NOT NULL,
  n INTEGER NOT NULL,
  data BLOB NOT NULL
);
CREATE INDEX metric_chunks_series ON metric_chunks(series_id, chunk_id);
)sql";

namespace {

// Single points and small batches go into the series' last chunk up to this many points; bigger
// batches get chunks of their own, up to kMaxChunk points each.
constexpr size_t kSmallChunk = 256;
constexpr size_t kMaxChunk = 8192;

// Equality as MLflow's store sees it (step, timestamp, value), with every NaN equal to every other.
struct PointKey {
  long long step, timestamp;
  uint64_t bits;
  bool operator==(const PointKey&) const = default;
};
struct PointKeyHash {
  size_t operator()(const PointKey& k) const {
    uint64_t h = static_cast<uint64_t>(k.step) * 0x9E3779B97F4A7C15ull;
    h ^= static_cast<uint64_t>(k.timestamp) + 0x7F4A7C159E3779B9ull + (h << 6) + (h >> 2);
    h ^= k.bits + 0x94D049BB133111EBull + (h << 6) + (h >> 2);
    return static_cast<size_t>(h);
  }
};
PointKey KeyOf(const Point& p) {
  return {p.step, p.timestamp,
          std::isnan(p.value) ? 0x7ff8000000000000ull : std::bit_cast<uint64_t>(p.value)};
}

bool Before(const Point& a, const Point& b) {
  return std::tie(a.step, a.timestamp) < std::tie(b.step, b.timestamp);
}

}  // namespace

void EncodePoints(const Point* points, size_t n, std::string& out) {
  size_t at = out.size();
  out.resize(at + n * kPointBytes);
  char* p = out.data() + at;
  for (size_t i = 0; i < n; ++i, p += kPointBytes) {
    memcpy(p, &points[i].step, 8);
    memcpy(p + 8, &points[i].timestamp, 8);
    memcpy(p + 16, &points[i].value, 8);
  }
}

std::vector<Point> DecodePoints(std::string_view bytes) {
  std::vector<Point> out(bytes.size() / kPointBytes);
  const char* p = bytes.data();
  for (auto& x : out) {
    memcpy(&x.step, p, 8);
    memcpy(&x.timestamp, p + 8, 8);
    memcpy(&x.value, p + 16, 8);
    p += kPointBytes;
  }
  return out;
}

namespace {

// Stores `add` in the series' chunks: small appends grow the last chunk while it is small; a big
// batch starts chunks of its own.
Status WriteChunks(Db& db, long long series, long long count, const std::vector<Point>& add) {
  std::string bytes;
  // Small appends grow the last chunk while it is small; a big batch starts chunks of its own.
  size_t done = 0;
  if (add.size() < kSmallChunk && count > 0) {
    Stmt& tail = db.Prepare(
        "SELECT chunk_id, n, data FROM metric_chunks WHERE series_id = ? ORDER BY chunk_id DESC "
        "LIMIT 1");
    tail.Bind(1, series);
    if (tail.Step() && static_cast<size_t>(tail.Int(1)) + add.size() <= kSmallChunk) {
      long long chunk = tail.Int(0), n = tail.Int(1);
      bytes.assign(tail.Blob(2));
      tail.Reset();
      EncodePoints(add.data(), add.size(), bytes);
      Status s = db.Prepare("UPDATE metric_chunks SET n = ?, data = ? WHERE chunk_id = ?")
                     .Bind(1, n + static_cast<long long>(add.size()))
                     .BindBlob(2, bytes)
                     .Bind(3, chunk)
                     .Run();
      if (!s.ok()) return s;
      done = add.size();
    } else {
      tail.Reset();
    }
  }
  while (done < add.size()) {
    size_t n = std::min(kMaxChunk, add.size() - done);
    bytes.clear();
    EncodePoints(add.data() + done, n, bytes);
    Status s = db.Prepare("INSERT INTO metric_chunks (series_id, n, data) VALUES (?, ?, ?)")
                   .Bind(1, series)
                   .Bind(2, static_cast<long long>(n))
                   .BindBlob(3, bytes)
                   .Run();
    if (!s.ok()) return s;
    done += n;
  }
  return Status::Ok();
}

}  // namespace

Status AppendSeries(Db& db, const std::string& run_id, const std::string& key,
                    const std::vector<Point>& points) {
  if (points.empty()) return Status::Ok();
  Stmt& find = db.Prepare(
      "SELECT series_id, points, max_timestamp, last_step, last_timestamp, ordered FROM "
      "metric_series "
      "WHERE run_id = ? AND key = ?");
  find.Bind(1, run_id).Bind(2, key);
  long long series = -1, count = 0, max_ts = -1;
  Point last{0, -1, 0};
  bool ordered = true;
  if (find.Step()) {
    series = find.Int(0);
    count = find.Int(1);
    max_ts = find.Int(2);
    last.step = find.Int(3);
    last.timestamp = find.Int(4);
    ordered = find.Int(5) != 0;
  }
  find.Reset();
  if (series < 0) {
    Status s = db.Prepare("INSERT INTO metric_series (run_id, key) VALUES (?, ?)")
                   .Bind(1, run_id)
                   .Bind(2, key)
                   .Run();
    if (!s.ok()) return s;
    Stmt& id = db.Prepare("SELECT last_insert_rowid()");
    id.Step();
    series = id.Int(0);
    id.Reset();
  }

  // The common case needs no look at stored points: every timestamp is newer than any stored, and
  // strictly increasing within the batch (so no two points of it can be equal). Otherwise compare
  // with a hash set of the stored points (a replayed request, or a script that logs with fixed
  // timestamps).
  bool fast = points.front().timestamp > max_ts;
  for (size_t i = 1; fast && i < points.size(); ++i)
    fast = points[i].timestamp > points[i - 1].timestamp;
  std::vector<Point> fresh;
  const std::vector<Point>* add = &points;
  if (!fast) {
    std::unordered_set<PointKey, PointKeyHash> seen;
    bool older = false;
    for (const Point& p : points) older = older || p.timestamp <= max_ts;
    // A stored series in (step, timestamp) order whose last point comes before every point of the
    // batch holds none of them: no need to read it. That is a bulk import that gives every point
    // one timestamp (log_batch of a history), which otherwise read the whole series per batch (151k
    // -> 18k points/s at 300k points).
    bool beyond = ordered;
    for (size_t i = 0; beyond && i < points.size(); ++i) beyond = Before(last, points[i]);
    if (older && count > 0 && !beyond) {
      seen.reserve(static_cast<size_t>(count) + points.size());
      for (const Point& p : ReadSeries(db, run_id, key)) seen.insert(KeyOf(p));
    }
    // A batch in strict (step, timestamp) order beyond the stored series has no point twice:
    // nothing to filter (the bulk import's case).
    bool strict = beyond;
    for (size_t i = 1; strict && i < points.size(); ++i) strict = Before(points[i - 1], points[i]);
    if (!strict) {
      for (const Point& p : points)
        if (seen.insert(KeyOf(p)).second) fresh.push_back(p);
      add = &fresh;
      if (fresh.empty()) return Status::Ok();
    }
  }

  for (const Point& p : *add) {
    if (Before(p, last)) ordered = false;
    last = p;
    max_ts = std::max(max_ts, p.timestamp);
  }

  if (Status s = WriteChunks(db, series, count, *add); !s.ok()) return s;
  return db
      .Prepare(
          "UPDATE metric_series SET points = points + ?, max_timestamp = ?, last_step = ?, "
          "last_timestamp = ?, ordered = ? WHERE series_id = ?")
      .Bind(1, static_cast<long long>(add->size()))
      .Bind(2, max_ts)
      .Bind(3, last.step)
      .Bind(4, last.timestamp)
      .Bind(5, ordered ? 1 : 0)
      .Bind(6, series)
      .Run();
}

std::vector<Point> ReadSeries(Db& db, const std::string& run_id, const std::string& key) {
  Stmt& find = db.Prepare(
      "SELECT series_id, points, ordered FROM metric_series WHERE run_id = ? AND key = ?");
  find.Bind(1, run_id).Bind(2, key);
  if (!find.Step()) {
    find.Reset();
    return {};
  }
  long long series = find.Int(0), count = find.Int(1);
  bool ordered = find.Int(2) != 0;
  find.Reset();
  std::vector<Point> out;
  out.reserve(static_cast<size_t>(count));
  Stmt& chunks = db.Prepare("SELECT data FROM metric_chunks WHERE series_id = ? ORDER BY chunk_id");
  chunks.Bind(1, series);
  while (chunks.Step()) {
    std::string_view b = chunks.Blob(0);
    size_t at = out.size(), n = b.size() / kPointBytes;
    out.resize(at + n);
    for (size_t i = 0; i < n; ++i) {
      const char* p = b.data() + i * kPointBytes;
      memcpy(&out[at + i].step, p, 8);
      memcpy(&out[at + i].timestamp, p + 8, 8);
      memcpy(&out[at + i].value, p + 16, 8);
    }
  }
  chunks.Reset();
  if (!ordered) std::stable_sort(out.begin(), out.end(), Before);
  return out;
}

Status EraseSeries(Db& db, const std::string& run_id) {
  Status s = db.Prepare(
                   "DELETE FROM metric_chunks WHERE series_id IN (SELECT series_id FROM "
                   "metric_series WHERE run_id = ?)")
                 .Bind(1, run_id)
                 .Run();
  if (!s.ok()) return s;
  return db.Prepare("DELETE FROM metric_series WHERE run_id = ?").Bind(1, run_id).Run();
}

Status ConvertLegacyMetrics(Db& db) {
  Stmt& has = db.Prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'metrics'");
  bool legacy = has.Step();
  has.Reset();
  if (!legacy) return Status::Ok();
  Status s = db.Begin();
  if (!s.ok()) return s;
  {
    Stmt& rows = db.Prepare(
        "SELECT run_id, key, step, timestamp, value, is_nan FROM metrics ORDER BY run_id, key, "
        "rowid");
    std::string run, key;
    std::vector<Point> points;
    auto flush = [&]() -> Status {
      Status st = AppendSeries(db, run, key, points);
      points.clear();
      return st;
    };
    while (s.ok() && rows.Step()) {
      std::string r = rows.Text(0), k = rows.Text(1);
      if ((r != run || k != key) && !points.empty()) s = flush();
      run = std::move(r);
      key = std::move(k);
      points.push_back({rows.Int(2), rows.Int(3), rows.Int(5) ? NAN : rows.Double(4)});
    }
    rows.Reset();
    if (s.ok() && !points.empty()) s = flush();
  }
  if (s.ok()) s = db.Exec("DROP TABLE metrics");
  if (!s.ok()) {
    db.Rollback();
    return s;
  }
  return db.Commit();
}

}  // namespace cairn::tracking
