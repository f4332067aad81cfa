#include "tracking/metric_series.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <thread>

#include "base/util.h"
#include "tracking/tracking_store.h"

namespace cairn::tracking {
namespace {

class SeriesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("cairn-series-" + RandomHex(6));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string Path(const std::string& f) { return (dir_ / f).string(); }
  std::string NewRun(TrackingStore& st) {
    auto r = st.CreateRun("0", "", "r", "u", 1, {});
    EXPECT_TRUE(r.ok());
    return r->run_id;
  }
  std::filesystem::path dir_;
};

TEST(Points, RoundTripThroughTheirBytes) {
  std::vector<Point> in = {{0, 1, 0.5}, {-3, 1700000000000, NAN}, {1LL << 60, 2, -1e300}};
  std::string bytes;
  EncodePoints(in.data(), in.size(), bytes);
  ASSERT_EQ(bytes.size(), 3 * kPointBytes);
  auto out = DecodePoints(bytes);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[1].timestamp, 1700000000000);
  EXPECT_TRUE(std::isnan(out[1].value));
  EXPECT_EQ(out[2].step, 1LL << 60);
  EXPECT_EQ(out[2].value, -1e300);
}

TEST_F(SeriesTest, SinglePointsAndBatchesReadBackInStepOrder) {
  auto st = TrackingStore::Open(Path("t.db"));
  ASSERT_TRUE(st.ok());
  std::string run = NewRun(**st);
  // 600 single points fill more than two small chunks; then a batch of 1000; then points out of
  // order.
  for (int i = 0; i < 600; ++i)
    ASSERT_TRUE((*st)->LogBatch(run, {{"loss", 1.0 / (i + 1), 1000 + i, i}}, {}, {}).ok());
  std::vector<Metric> batch;
  for (int i = 600; i < 1600; ++i) batch.push_back({"loss", 1.0 / (i + 1), 1000 + i, i});
  ASSERT_TRUE((*st)->LogBatch(run, batch, {}, {}).ok());
  auto h = (*st)->GetHistory(run, "loss");
  ASSERT_TRUE(h.ok());
  ASSERT_EQ(h->size(), 1600u);
  for (int i = 0; i < 1600; ++i) ASSERT_EQ((*h)[i].step, i);
  ASSERT_TRUE((*st)->LogBatch(run, {{"loss", 7, 5000, -1}, {"loss", 8, 5001, 100}}, {}, {}).ok());
  h = (*st)->GetHistory(run, "loss");
  ASSERT_EQ(h->size(), 1602u);
  EXPECT_EQ((*h)[0].step, -1);
  EXPECT_EQ((*h)[101].step, 100);
  EXPECT_EQ((*h)[102].step, 100);  // stable: (100, 1100) before (100, 5001)
  EXPECT_EQ((*h)[102].timestamp, 5001);
  auto run_now = (*st)->GetRun(run);
  ASSERT_TRUE(run_now.ok());
  ASSERT_EQ(run_now->metrics.size(), 1u);
  EXPECT_EQ(run_now->metrics[0].step,
            1599);  // the latest is the greatest step, not the last logged
}

TEST_F(SeriesTest, AReplayedBatchAddsNothing) {
  auto st = TrackingStore::Open(Path("t.db"));
  ASSERT_TRUE(st.ok());
  std::string run = NewRun(**st);
  std::vector<Metric> batch;
  for (int i = 0; i < 300; ++i)
    batch.push_back({"acc", i % 7 == 0 ? NAN : i / 300.0, 50, i});  // one timestamp
  batch.push_back(batch[10]);                                       // a duplicate inside the batch
  ASSERT_TRUE((*st)->LogBatch(run, batch, {}, {}).ok());
  ASSERT_TRUE((*st)->LogBatch(run, batch, {}, {}).ok());
  ASSERT_TRUE((*st)->LogBatch(run, {batch[7]}, {}, {}).ok());  // a NaN point again
  auto h = (*st)->GetHistory(run, "acc");
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->size(), 300u);
  // The same step and timestamp with another value is another point.
  ASSERT_TRUE((*st)->LogBatch(run, {{"acc", 0.99, 50, 1}}, {}, {}).ok());
  EXPECT_EQ((*st)->GetHistory(run, "acc")->size(), 301u);
}

TEST_F(SeriesTest, AnErasedRunLeavesNoPoints) {
  auto st = TrackingStore::Open(Path("t.db"));
  ASSERT_TRUE(st.ok());
  std::string run = NewRun(**st);
  ASSERT_TRUE((*st)->LogBatch(run, {{"a", 1, 1, 1}, {"b", 2, 1, 1}}, {}, {}).ok());
  ASSERT_TRUE((*st)->EraseRun(run).ok());
  auto db = store::Db::Open(Path("t.db"), true);
  ASSERT_TRUE(db.ok());
  auto& q = (*db)->Prepare(
      "SELECT (SELECT COUNT(*) FROM metric_series) + (SELECT COUNT(*) FROM metric_chunks)");
  ASSERT_TRUE(q.Step());
  EXPECT_EQ(q.Int(0), 0);
  q.Reset();
}

TEST_F(SeriesTest, TheFirstSchemasRowsAreConvertedOnOpen) {
  // A tracking database as the first version wrote it: schema 1, one row per point (the tables that
  // matter).
  std::vector<std::string> v1 = {R"sql(
CREATE TABLE runs (run_id TEXT PRIMARY KEY, experiment_id INTEGER NOT NULL, run_name TEXT NOT NULL DEFAULT '',
  user_id TEXT NOT NULL DEFAULT '', status TEXT NOT NULL DEFAULT 'RUNNING', start_time INTEGER, end_time INTEGER,
  artifact_uri TEXT NOT NULL, lifecycle_stage TEXT NOT NULL DEFAULT 'active');
CREATE TABLE metrics (run_id TEXT NOT NULL, key TEXT NOT NULL, step INTEGER NOT NULL, timestamp INTEGER NOT NULL,
  value REAL, is_nan INTEGER NOT NULL DEFAULT 0, UNIQUE (run_id, key, step, timestamp, value, is_nan));
INSERT INTO runs (run_id, experiment_id, artifact_uri) VALUES ('old', 0, 'x');
INSERT INTO metrics VALUES ('old', 'loss', 2, 20, 0.2, 0), ('old', 'loss', 1, 10, 0.1, 0), ('old', 'loss', 3, 30, 0, 1),
  ('old', 'acc', 0, 5, 0.9, 0);
)sql"};
  ASSERT_TRUE(store::Db::Open(Path("t.db"), false, &v1).ok());
  // Reopened by a newer version: migration 2 adds the packed tables, then the rows move there.
  std::vector<std::string> v2 = {v1[0], kMetricSeriesMigration};
  auto db = store::Db::Open(Path("t.db"), false, &v2);
  ASSERT_TRUE(db.ok());
  ASSERT_TRUE(ConvertLegacyMetrics(**db).ok());
  auto loss = ReadSeries(**db, "old", "loss");
  ASSERT_EQ(loss.size(), 3u);
  EXPECT_EQ(loss[0].step, 1);
  EXPECT_EQ(loss[1].value, 0.2);
  EXPECT_TRUE(std::isnan(loss[2].value));
  EXPECT_EQ(ReadSeries(**db, "old", "acc").size(), 1u);
  auto& gone = (*db)->Prepare("SELECT COUNT(*) FROM sqlite_master WHERE name = 'metrics'");
  ASSERT_TRUE(gone.Step());
  EXPECT_EQ(gone.Int(0), 0);
  gone.Reset();
  EXPECT_TRUE(ConvertLegacyMetrics(**db).ok());  // a second open has nothing to do
}

}  // namespace
}  // namespace cairn::tracking

namespace cairn::tracking {
namespace {

TEST_F(SeriesTest, BatchesWithOneTimestampAppendAndTheirReplaysAddNothing) {
  auto st = TrackingStore::Open(Path("t.db"));
  ASSERT_TRUE(st.ok());
  std::string run = NewRun(**st);
  auto batch = [](long long from) {
    std::vector<Metric> m;
    for (long long s = from; s < from + 1000; ++s)
      m.push_back({"loss", static_cast<double>(s), 5, s});
    return m;
  };
  ASSERT_TRUE((*st)->LogBatch(run, batch(0), {}, {}).ok());
  ASSERT_TRUE(
      (*st)->LogBatch(run, batch(1000), {}, {}).ok());  // after the stored points: appended unread
  ASSERT_TRUE(
      (*st)->LogBatch(run, batch(0), {}, {}).ok());  // a replay: every point is there already
  ASSERT_TRUE((*st)->LogBatch(run, batch(1500), {}, {}).ok());  // half replayed, half new
  auto h = (*st)->GetHistory(run, "loss");
  ASSERT_TRUE(h.ok());
  ASSERT_EQ(h->size(), 2500u);
  for (size_t i = 0; i < h->size(); ++i) EXPECT_EQ((*h)[i].step, static_cast<long long>(i));
}

// The jobs table's params: every run's in one read, at most so many each, long values cut whole
// characters.
TEST_F(SeriesTest, ParamsOfAllRunsAreCappedAndCutAtACharacter) {
  auto st = TrackingStore::Open(Path("t.db"));
  ASSERT_TRUE(st.ok());
  std::string a = NewRun(**st), b = NewRun(**st);
  std::vector<KeyValue> many;
  for (int i = 0; i < 40; ++i) many.push_back({"p" + std::to_string(100 + i), std::to_string(i)});
  ASSERT_TRUE((*st)->LogBatch(a, {}, many, {}).ok());
  // 9 bytes of ASCII, then "é" (2 bytes) straddling the 10-byte cut.
  ASSERT_TRUE((*st)->LogBatch(b, {}, {{"lr", "0.1"}, {"name", "abcdefghi\xc3\xa9xyz"}}, {}).ok());
  auto all = (*st)->ParamsOfAllRuns(32, 10);
  ASSERT_EQ(all[a].size(), 32u);
  EXPECT_EQ(all[a][0].key, "p100");
  EXPECT_EQ(all[a][31].key, "p131");
  ASSERT_EQ(all[b].size(), 2u);
  EXPECT_EQ(all[b][0].key, "lr");
  EXPECT_EQ(all[b][0].value, "0.1");
  EXPECT_EQ(all[b][1].value, "abcdefghi");
}

// Group commit under contention: writers that share commits (and hand the lead on) each get their
// own answer, a refused write fails alone, and asynchronous writes queued among them are committed
// too.
TEST_F(SeriesTest, ConcurrentWritersEachGetTheirOwnAnswer) {
  const int kThreads = 8, kWrites = 200;
  std::vector<std::string> finished;
  std::string run;
  {
    auto st = TrackingStore::Open(Path("t.db"));
    ASSERT_TRUE(st.ok());
    run = NewRun(**st);
    ASSERT_TRUE((*st)->LogBatch(run, {}, {{"fixed", "a"}}, {}).ok());
    for (int i = 0; i < 50; ++i) finished.push_back(NewRun(**st));
    std::vector<std::thread> ts;
    std::vector<int> wrong(kThreads, 0);
    for (int t = 0; t < kThreads; ++t) {
      ts.emplace_back([&, t] {
        for (int i = 0; i < kWrites; ++i) {
          bool refused =
              i % 10 == 7;  // changing a logged param is refused; the write beside it is not
          Status s = refused
                         ? (*st)->LogBatch(run, {}, {{"fixed", "b" + std::to_string(i)}}, {})
                         : (*st)->LogBatch(run, {{"m" + std::to_string(t), double(i), 1000 + i, i}},
                                           {}, {});
          if (s.ok() == refused) ++wrong[t];
        }
      });
    }
    ts.emplace_back([&] {
      for (auto& r : finished) (*st)->FinishRunAsync(r, "FINISHED", 5000);
    });
    for (auto& t : ts) t.join();
    for (int t = 0; t < kThreads; ++t)
      EXPECT_EQ(wrong[t], 0) << "thread " << t << " got another write's answer";
  }  // closed: what was queued asynchronously is committed on the way out
  auto st = TrackingStore::Open(Path("t.db"));
  ASSERT_TRUE(st.ok());
  for (int t = 0; t < kThreads; ++t) {
    auto h = (*st)->GetHistory(run, "m" + std::to_string(t));
    ASSERT_TRUE(h.ok());
    EXPECT_EQ(h->size(), size_t(kWrites - kWrites / 10)) << "m" << t;
  }
  auto r = (*st)->GetRun(run);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->params.size(), 1u);
  EXPECT_EQ(r->params[0].value, "a");
  for (auto& f : finished) {
    auto fr = (*st)->GetRun(f);
    ASSERT_TRUE(fr.ok());
    EXPECT_EQ(fr->info.status, "FINISHED");
  }
}

}  // namespace
}  // namespace cairn::tracking
