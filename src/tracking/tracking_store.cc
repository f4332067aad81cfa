#include "tracking/tracking_store.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <deque>
#include <map>
#include <tuple>
#include <cstring>
#include <optional>
#include <regex>
#include <thread>
#include <unordered_map>

#include "base/settings.h"
#include "base/util.h"
#include "tracking/run_filter.h"

namespace cairn::tracking {

using nlohmann::json;
using store::Db;
using store::Stmt;

namespace {

const std::vector<std::string>& Migrations() {
  static const std::vector<std::string> kMigrations = {
      R"sql(
CREATE TABLE experiments (
  experiment_id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  artifact_location TEXT NOT NULL,
  lifecycle_stage TEXT NOT NULL DEFAULT 'active',
  creation_time INTEGER NOT NULL,
  last_update_time INTEGER NOT NULL
);
CREATE TABLE experiment_tags (
  experiment_id INTEGER NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
  PRIMARY KEY (experiment_id, key)
) WITHOUT ROWID;
CREATE TABLE runs (
  run_id TEXT PRIMARY KEY,
  experiment_id INTEGER NOT NULL,
  run_name TEXT NOT NULL DEFAULT '',
  user_id TEXT NOT NULL DEFAULT '',
  status TEXT NOT NULL DEFAULT 'RUNNING',
  start_time INTEGER,
  end_time INTEGER,
  artifact_uri TEXT NOT NULL,
  lifecycle_stage TEXT NOT NULL DEFAULT 'active'
);
CREATE INDEX runs_experiment ON runs(experiment_id, start_time);
CREATE TABLE params (
  run_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (run_id, key)
) WITHOUT ROWID;
CREATE TABLE tags (
  run_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (run_id, key)
) WITHOUT ROWID;
-- Append-only series; a replayed point (same key, timestamp, step, value) is ignored, not duplicated.
CREATE TABLE metrics (
  run_id TEXT NOT NULL, key TEXT NOT NULL, step INTEGER NOT NULL, timestamp INTEGER NOT NULL,
  value REAL, is_nan INTEGER NOT NULL DEFAULT 0,
  UNIQUE (run_id, key, step, timestamp, value, is_nan)
);
CREATE TABLE latest_metrics (
  run_id TEXT NOT NULL, key TEXT NOT NULL, step INTEGER NOT NULL, timestamp INTEGER NOT NULL,
  value REAL, is_nan INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (run_id, key)
) WITHOUT ROWID;
CREATE TABLE run_inputs (run_id TEXT NOT NULL, seq INTEGER NOT NULL, input TEXT NOT NULL, PRIMARY KEY (run_id, seq));
INSERT INTO experiments (experiment_id, name, artifact_location, creation_time, last_update_time)
  VALUES (0, 'Default', 'mlflow-artifacts:/0', CAST(strftime('%s','now') AS INTEGER) * 1000,
          CAST(strftime('%s','now') AS INTEGER) * 1000);
)sql",
      // 2: metric histories packed into chunks (metric_series.h); the first schema's `metrics`
      // table is converted and dropped by ConvertLegacyMetrics when the store opens.
      kMetricSeriesMigration,
      // 3: MLflow 3.x logged models, and the models runs use and produce.
      R"sql(
CREATE TABLE logged_models (
  model_id TEXT PRIMARY KEY,
  experiment_id INTEGER NOT NULL,
  name TEXT NOT NULL,
  artifact_uri TEXT NOT NULL,
  status TEXT NOT NULL DEFAULT 'LOGGED_MODEL_PENDING',
  status_message TEXT NOT NULL DEFAULT '',
  creator_id TEXT NOT NULL DEFAULT '',
  model_type TEXT NOT NULL DEFAULT '',
  source_run_id TEXT NOT NULL DEFAULT '',
  creation_time INTEGER NOT NULL,
  last_updated_time INTEGER NOT NULL,
  lifecycle_stage TEXT NOT NULL DEFAULT 'active'
);
CREATE INDEX logged_models_experiment ON logged_models(experiment_id, creation_time);
CREATE TABLE logged_model_params (
  model_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (model_id, key)
) WITHOUT ROWID;
CREATE TABLE logged_model_tags (
  model_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (model_id, key)
) WITHOUT ROWID;
CREATE TABLE logged_model_metrics (
  model_id TEXT NOT NULL, key TEXT NOT NULL, value REAL, is_nan INTEGER NOT NULL DEFAULT 0,
  timestamp INTEGER NOT NULL, step INTEGER NOT NULL, run_id TEXT NOT NULL DEFAULT '',
  dataset_name TEXT NOT NULL DEFAULT '', dataset_digest TEXT NOT NULL DEFAULT '',
  UNIQUE (model_id, key, step, timestamp, value, is_nan, run_id, dataset_name, dataset_digest)
);
CREATE TABLE run_outputs (
  run_id TEXT NOT NULL, model_id TEXT NOT NULL, step INTEGER NOT NULL, PRIMARY KEY (run_id, model_id, step)
) WITHOUT ROWID;
CREATE TABLE run_model_inputs (
  run_id TEXT NOT NULL, model_id TEXT NOT NULL, PRIMARY KEY (run_id, model_id)
) WITHOUT ROWID;
)sql",
      // 4: search reads runs and the named values from covering indexes in run id order, merged
      // (SearchRuns).
      R"sql(
CREATE INDEX runs_search ON runs(experiment_id, run_id, lifecycle_stage, start_time, end_time, status, run_name, user_id);
CREATE INDEX latest_metrics_search ON latest_metrics(key, run_id, step, timestamp, value, is_nan);
CREATE INDEX params_search ON params(key, run_id, value);
CREATE INDEX tags_search ON tags(key, run_id, value);
)sql",
  };
  return kMigrations;
}

double Clamp(double v) {
  if (std::isinf(v)) return v > 0 ? DBL_MAX : -DBL_MAX;
  return v;
}

Metric ReadMetric(Stmt& s, int col) {
  Metric m;
  m.key = s.Text(col);
  m.step = s.Int(col + 1);
  m.timestamp = s.Int(col + 2);
  m.value = s.Int(col + 4) ? NAN : s.Double(col + 3);
  return m;
}

}  // namespace

std::string Uuid4Hex() {
  std::string h = RandomHex(16);
  h[12] = '4';
  static const char kVariant[] = "89ab";
  h[16] = kVariant[static_cast<unsigned char>(h[16]) % 4];
  return h;
}

bool ValidExperimentId(const std::string& id) {
  return !id.empty() && id.size() < 19 && std::all_of(id.begin(), id.end(), ::isdigit);
}

std::string KeyError(const std::string& key) {
  // MLflow's ^[/\w.\- :]*$ plus normpath: checked by hand, as this runs for every logged value.
  bool bad = key.empty() || key[0] == '/' || key == "." || key.find("..") != std::string::npos ||
             key.find("//") != std::string::npos || key.back() == '/';
  for (unsigned char c : key)
    if (!(isalnum(c) || c == '_' || c == '/' || c == '.' || c == '-' || c == ' ' || c == ':'))
      bad = true;
  if (bad)
    return "Invalid value \"" + key +
           "\" for parameter 'key' supplied: Names may only contain alphanumerics, "
           "underscores (_), dashes (-), periods (.), spaces ( ), colon(:) and slashes (/).";
  if (key.size() > kMaxKeyLength)
    return "Key '" + key.substr(0, 30) + "...' had length " + std::to_string(key.size()) +
           ", which exceeded length limit of " + std::to_string(kMaxKeyLength);
  return "";
}

Result<std::unique_ptr<TrackingStore>> TrackingStore::Open(const std::string& path) {
  auto db = Db::Open(path, false, &Migrations());
  if (!db.ok()) return db.status();
  if (Status s = ConvertLegacyMetrics(**db); !s.ok()) return s;
  // Durable by default: a write is on disk (the WAL fsynced) before its answer, and group commit
  // shares that fsync among the writes that arrive together. CAIRN_TRACKING_SYNC=normal trades that
  // for speed: a write then survives a crash of the server but not of the machine.
  bool normal = settings::Is("CAIRN_TRACKING_SYNC", "normal");
  if (Status s = (*db)->Exec(normal ? "PRAGMA synchronous=NORMAL" : "PRAGMA synchronous=FULL");
      !s.ok())
    return s;
  auto store = std::unique_ptr<TrackingStore>(new TrackingStore(path, std::move(db).value()));
  store->durable_ = store->full_now_ = !normal;
  return store;
}

TrackingStore::TrackingStore(std::string path, std::unique_ptr<Db> writer)
    : path_(std::move(path)), writer_(std::move(writer)) {
  thread_ = std::thread([this] { WriterLoop(); });
}

TrackingStore::~TrackingStore() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

// Group commit with a leader: the first writer to find no commit in progress runs one itself,
// taking every write queued meanwhile into the same transaction; the others wait for their result.
// A leader commits one group and returns with its answer: it hands the lead to the oldest writer
// still waiting (whose write is in the next group), so no writer's answer waits behind other
// writers' commits. An uncontended write thus commits on its own thread with no hand-off, and a
// burst shares commits. The background thread only leads for asynchronous writes (the scheduler's),
// which nobody waits on.
Status TrackingStore::Write(std::function<Status(Db&)> fn, bool durable) {
  auto op = std::make_shared<Op>();
  op->fn = std::move(fn);
  op->durable = durable;
  std::unique_lock<std::mutex> l(mu_);
  ops_.push_back(op);
  if (!leading_) {
    leading_ = true;
    LeadLocked(l);
  } else {
    op->cv.wait(l, [&] { return op->finished || op->lead; });
    if (!op->finished) LeadLocked(l);  // handed the lead: its write is in the group it now commits
  }
  return op->result;
}

void TrackingStore::WriteAsync(std::function<Status(Db&)> fn) {
  auto op = std::make_shared<Op>();
  op->fn = std::move(fn);
  op->async = true;
  {
    std::lock_guard<std::mutex> l(mu_);
    ops_.push_back(op);
  }
  cv_.notify_one();
}

// Called with the lead (leading_ set) and the lock held; commits what is queued, then passes the
// lead on.
void TrackingStore::LeadLocked(std::unique_lock<std::mutex>& l) {
  std::deque<std::shared_ptr<Op>> batch;
  batch.swap(ops_);
  l.unlock();
  std::vector<Status> results = RunBatch(batch);
  l.lock();
  for (size_t i = 0; i < batch.size(); ++i) {
    batch[i]->result = results[i];
    batch[i]->finished = true;
  }
  // The next group's leader: the oldest writer waiting for its answer, else the background thread.
  std::shared_ptr<Op> next;
  for (auto& op : ops_)
    if (!op->async) {
      next = op;
      break;
    }
  if (next) {
    next->lead = true;  // leading_ stays set: the lead goes straight to it
  } else {
    leading_ = false;
  }
  bool wake_background = !next && !ops_.empty();
  l.unlock();
  // Woken after the lock is let go (the batch keeps each op alive until then).
  for (auto& op : batch)
    if (!op->async) op->cv.notify_one();
  if (next) next->cv.notify_one();
  if (wake_background) cv_.notify_one();
  batch.clear();
  l.lock();
}

std::vector<Status> TrackingStore::RunBatch(std::deque<std::shared_ptr<Op>>& batch) {
  // One transaction for everything that arrived together; a savepoint each. Flushed
  // (synchronous=FULL) when any of them asks for it, in durable mode.
  bool full = durable_ &&
              std::any_of(batch.begin(), batch.end(), [](const auto& op) { return op->durable; });
  if (full != full_now_ &&
      writer_->Exec(full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL").ok())
    full_now_ = full;
  Status begin = writer_->Begin();
  std::vector<Status> results;
  for (auto& op : batch) {
    if (!begin.ok()) {
      results.push_back(begin);
      continue;
    }
    (void)writer_->Prepare("SAVEPOINT w").Run();
    Status s = op->fn(*writer_);
    if (!s.ok()) (void)writer_->Prepare("ROLLBACK TO w").Run();
    (void)writer_->Prepare("RELEASE w").Run();
    results.push_back(s);
  }
  if (begin.ok()) {
    Status c = writer_->Commit();
    if (!c.ok()) {
      writer_->Rollback();
      for (auto& r : results) r = c;
    }
  }
  return results;
}

void TrackingStore::WriterLoop() {
  std::unique_lock<std::mutex> l(mu_);
  for (;;) {
    cv_.wait(l, [&] { return stopping_ || (!ops_.empty() && !leading_); });
    if (!ops_.empty() && !leading_) {
      leading_ = true;
      LeadLocked(l);
      continue;
    }
    if (stopping_) return;
  }
}

Db& TrackingStore::Reader() {
  thread_local std::map<std::string, std::unique_ptr<Db>> readers;
  auto& r = readers[path_];
  if (!r) {
    auto db = Db::Open(path_, true);
    if (!db.ok()) {
      fprintf(stderr, "cairn: cannot open %s: %s\n", path_.c_str(), db.status().message().c_str());
      abort();
    }
    r = std::move(db).value();
  }
  return *r;
}

// ---- experiments ----

Result<std::string> TrackingStore::CreateExperiment(const std::string& name,
                                                    const std::string& artifact_location,
                                                    const std::vector<KeyValue>& tags) {
  if (name.empty())
    return InvalidArgument(
        "Invalid experiment name: ''. Experiment name must be a non-empty string");
  if (name.size() > 500)
    return InvalidArgument("Experiment name exceeds the maximum length of 500 characters");
  std::string id;
  Status s = Write([&](Db& db) -> Status {
    Stmt& find = db.Prepare("SELECT experiment_id FROM experiments WHERE name = ?");
    find.Bind(1, name);
    bool exists = find.Step();
    find.Reset();
    if (exists) return AlreadyExists("Experiment '" + name + "' already exists.");
    long long now = NowMillis();
    Stmt& ins = db.Prepare(
        "INSERT INTO experiments (experiment_id, name, artifact_location, creation_time, "
        "last_update_time) "
        "VALUES ((SELECT COALESCE(MAX(experiment_id), 0) + 1 FROM experiments), ?, '', ?, ?)");
    Status st = ins.Bind(1, name).Bind(2, now).Bind(3, now).Run();
    if (!st.ok()) return st;
    Stmt& q = db.Prepare("SELECT experiment_id FROM experiments WHERE name = ?");
    q.Bind(1, name);
    q.Step();
    id = std::to_string(q.Int(0));
    q.Reset();
    std::string location =
        artifact_location.empty() ? "mlflow-artifacts:/" + id : artifact_location;
    st = db.Prepare("UPDATE experiments SET artifact_location = ? WHERE experiment_id = ?")
             .Bind(1, location)
             .Bind(2, std::stoll(id))
             .Run();
    for (const auto& t : tags) {
      if (!st.ok()) break;
      st = db.Prepare("INSERT OR REPLACE INTO experiment_tags VALUES (?,?,?)")
               .Bind(1, std::stoll(id))
               .Bind(2, t.key)
               .Bind(3, t.value)
               .Run();
    }
    return st;
  });
  if (!s.ok()) return s;
  return id;
}

Result<std::string> TrackingStore::EnsureExperiment(const std::string& name) {
  if (auto e = GetExperimentByName(name); e.ok()) return e->experiment_id;
  auto id = CreateExperiment(name, "", {});
  if (id.ok()) return id;
  if (auto e = GetExperimentByName(name); e.ok()) return e->experiment_id;  // created meanwhile
  return id;
}

namespace {

// A read transaction on a reader connection for the guard's lifetime.
class ReadTransaction {
 public:
  explicit ReadTransaction(Db& db) : db_(db), ok_(db.Exec("BEGIN").ok()) {}
  ~ReadTransaction() {
    if (ok_) (void)db_.Exec("COMMIT");
  }

 private:
  Db& db_;
  bool ok_;
};
}  // namespace

Status TrackingStore::RenameExperiment(const std::string& id, const std::string& new_name) {
  if (!ValidExperimentId(id)) return NotFound("No Experiment with id=" + id + " exists");
  if (new_name.empty()) return InvalidArgument("Invalid experiment name: ''");
  return Write([&](Db& db) -> Status {
    Stmt& u =
        db.Prepare("UPDATE experiments SET name = ?, last_update_time = ? WHERE experiment_id = ?");
    Status s = u.Bind(1, new_name).Bind(2, NowMillis()).Bind(3, std::stoll(id)).Run();
    if (s.code() == Code::kAlreadyExists)
      return AlreadyExists("Experiment '" + new_name + "' already exists.");
    if (s.ok() && db.Changes() == 0) return NotFound("No Experiment with id=" + id + " exists");
    return s;
  });
}

Status TrackingStore::SetExperimentStage(const std::string& id, const std::string& stage) {
  if (!ValidExperimentId(id)) return NotFound("No Experiment with id=" + id + " exists");
  if (id == "0" && stage == "deleted")
    return InvalidArgument("Cannot delete the default experiment '0'.");
  return Write([&](Db& db) -> Status {
    Status s = db.Prepare(
                     "UPDATE experiments SET lifecycle_stage = ?, last_update_time = ? WHERE "
                     "experiment_id = ?")
                   .Bind(1, stage)
                   .Bind(2, NowMillis())
                   .Bind(3, std::stoll(id))
                   .Run();
    if (s.ok() && db.Changes() == 0) return NotFound("No Experiment with id=" + id + " exists");
    return s;
  });
}

Status TrackingStore::SetExperimentTag(const std::string& id, const std::string& key,
                                       const std::string& value) {
  if (!ValidExperimentId(id)) return NotFound("No Experiment with id=" + id + " exists");
  if (key.size() > 250 || key.empty())
    return InvalidArgument("Experiment tag key must be 1 to 250 characters");
  if (value.size() > 5000) return InvalidArgument("Experiment tag value exceeds 5000 characters");
  if (!GetExperiment(id).ok()) return NotFound("No Experiment with id=" + id + " exists");
  return Write([&](Db& db) {
    return db.Prepare("INSERT OR REPLACE INTO experiment_tags VALUES (?,?,?)")
        .Bind(1, std::stoll(id))
        .Bind(2, key)
        .Bind(3, value)
        .Run();
  });
}

Status TrackingStore::DeleteExperimentTag(const std::string& id, const std::string& key) {
  if (!ValidExperimentId(id)) return NotFound("No Experiment with id=" + id + " exists");
  if (!GetExperiment(id).ok()) return NotFound("No Experiment with id=" + id + " exists");
  return Write([&](Db& db) -> Status {
    Status s = db.Prepare("DELETE FROM experiment_tags WHERE experiment_id = ? AND key = ?")
                   .Bind(1, std::stoll(id))
                   .Bind(2, key)
                   .Run();
    if (s.ok() && db.Changes() == 0)
      return NotFound("No tag with name: " + key + " in experiment with id " + id);
    return s;
  });
}

namespace {
const char kExperimentCols[] =
    "SELECT experiment_id, name, artifact_location, lifecycle_stage, creation_time, "
    "last_update_time FROM experiments ";
}  // namespace

Result<Experiment> TrackingStore::GetExperiment(const std::string& id) {
  if (!ValidExperimentId(id)) return NotFound("No Experiment with id=" + id + " exists");
  Db& db = Reader();
  Stmt& s = db.Prepare(std::string(kExperimentCols) + "WHERE experiment_id = ?");
  s.Bind(1, std::stoll(id));
  if (!s.Step()) {
    s.Reset();
    return NotFound("No Experiment with id=" + id + " exists");
  }
  Experiment e;
  e.experiment_id = std::to_string(s.Int(0));
  e.name = s.Text(1);
  e.artifact_location = s.Text(2);
  e.lifecycle_stage = s.Text(3);
  e.creation_time = s.Int(4);
  e.last_update_time = s.Int(5);
  s.Reset();
  Stmt& t =
      db.Prepare("SELECT key, value FROM experiment_tags WHERE experiment_id = ? ORDER BY key");
  t.Bind(1, std::stoll(e.experiment_id));
  while (t.Step()) e.tags.push_back({t.Text(0), t.Text(1)});
  t.Reset();
  return e;
}

Result<Experiment> TrackingStore::GetExperimentByName(const std::string& name) {
  Db& db = Reader();
  Stmt& s = db.Prepare(std::string(kExperimentCols) + "WHERE name = ?");
  s.Bind(1, name);
  if (!s.Step()) {
    s.Reset();
    return NotFound("Could not find experiment with name '" + name + "'");
  }
  std::string id = std::to_string(s.Int(0));
  s.Reset();
  return GetExperiment(id);
}

namespace {
struct ExpClause {
  std::string field;  // name | tag | creation_time | last_update_time
  std::string tag;
  std::string op;
  std::string value;
};

Result<std::vector<ExpClause>> ParseExperimentFilter(const std::string& text) {
  std::vector<ExpClause> out;
  if (Trim(text).empty()) return out;
  static const std::regex kAnd(R"(\s+[aA][nN][dD]\s+)");
  static const std::regex kClause(
      R"(^\s*(attribute\.name|name|creation_time|last_update_time|tags?\.(?:"[^"]+"|`[^`]+`|[\w.\-/: ]+?))\s*)"
      R"((=|!=|LIKE|like|ILIKE|ilike|>=|<=|>|<)\s*('[^']*'|-?[0-9.]+)\s*$)");
  for (std::sregex_token_iterator it(text.begin(), text.end(), kAnd, -1), e; it != e; ++it) {
    std::smatch m;
    std::string part = *it;
    if (!std::regex_match(part, m, kClause))
      return InvalidArgument("Invalid experiment filter clause '" + Trim(part) + "'");
    ExpClause c;
    std::string f = m[1];
    if (StartsWith(f, "tag")) {
      c.field = "tag";
      c.tag = f.substr(f.find('.') + 1);
      if (c.tag.size() >= 2 && (c.tag[0] == '"' || c.tag[0] == '`'))
        c.tag = c.tag.substr(1, c.tag.size() - 2);
    } else {
      c.field = f == "attribute.name" ? "name" : f;
    }
    c.op = m[2];
    for (char& ch : c.op) ch = static_cast<char>(toupper(ch));
    c.value = m[3];
    bool numeric = c.field == "creation_time" || c.field == "last_update_time";
    bool quoted = c.value[0] == '\'';
    if (quoted) c.value = c.value.substr(1, c.value.size() - 2);
    if (numeric == quoted)
      return InvalidArgument("Invalid experiment filter clause '" + Trim(part) + "'");
    out.push_back(c);
  }
  return out;
}

bool ExperimentMatches(const Experiment& e, const std::vector<ExpClause>& clauses) {
  for (const auto& c : clauses) {
    if (c.field == "creation_time" || c.field == "last_update_time") {
      double v =
          static_cast<double>(c.field == "creation_time" ? e.creation_time : e.last_update_time);
      double x = std::stod(c.value);
      bool ok = c.op == "="    ? v == x
                : c.op == "!=" ? v != x
                : c.op == ">"  ? v > x
                : c.op == ">=" ? v >= x
                : c.op == "<"  ? v < x
                : c.op == "<=" ? v <= x
                               : false;
      if (!ok) return false;
      continue;
    }
    std::optional<std::string> v;
    if (c.field == "name")
      v = e.name;
    else
      for (const auto& t : e.tags)
        if (t.key == c.tag) v = t.value;
    if (!v) return false;
    bool ok = c.op == "="       ? *v == c.value
              : c.op == "!="    ? *v != c.value
              : c.op == "LIKE"  ? LikeMatch(*v, c.value, false)
              : c.op == "ILIKE" ? LikeMatch(*v, c.value, true)
                                : false;
    if (!ok) return false;
  }
  return true;
}
}  // namespace

Result<std::vector<Experiment>> TrackingStore::SearchExperiments(
    const std::string& view, const std::string& filter, const std::vector<std::string>& order_by,
    int max_results, long long offset, bool* more) {
  auto clauses = ParseExperimentFilter(filter);
  if (!clauses.ok()) return clauses.status();
  struct Key {
    std::string field;
    bool asc;
  };
  std::vector<Key> keys;
  for (const auto& o : order_by) {
    auto words = Split(Trim(o), ' ');
    std::string field = words[0];
    if (field == "attribute.name") field = "name";
    if (field != "name" && field != "experiment_id" && field != "creation_time" &&
        field != "last_update_time")
      return InvalidArgument("Invalid order_by entity '" + Trim(o) + "'");
    bool asc = words.size() < 2 || ToLower(words.back()) != "desc";
    keys.push_back({field, asc});
  }
  Db& db = Reader();
  std::string where = view == "ALL"            ? ""
                      : view == "DELETED_ONLY" ? "WHERE lifecycle_stage = 'deleted' "
                                               : "WHERE lifecycle_stage = 'active' ";
  Stmt& s = db.Prepare(std::string("SELECT experiment_id FROM experiments ") + where);
  std::vector<std::string> ids;
  while (s.Step()) ids.push_back(std::to_string(s.Int(0)));
  s.Reset();
  std::vector<Experiment> all;
  for (const auto& id : ids)
    if (auto e = GetExperiment(id); e.ok() && ExperimentMatches(*e, *clauses)) all.push_back(*e);
  if (keys.empty()) keys.push_back({"last_update_time", false});
  std::stable_sort(all.begin(), all.end(), [&](const Experiment& a, const Experiment& b) {
    for (const auto& k : keys) {
      int c = 0;
      if (k.field == "name")
        c = a.name.compare(b.name);
      else if (k.field == "experiment_id")
        c = std::stoll(a.experiment_id) < std::stoll(b.experiment_id)   ? -1
            : std::stoll(a.experiment_id) > std::stoll(b.experiment_id) ? 1
                                                                        : 0;
      else {
        long long x = k.field == "creation_time" ? a.creation_time : a.last_update_time;
        long long y = k.field == "creation_time" ? b.creation_time : b.last_update_time;
        c = x < y ? -1 : x > y ? 1 : 0;
      }
      if (c != 0) return k.asc ? c < 0 : c > 0;
    }
    return std::stoll(a.experiment_id) > std::stoll(b.experiment_id);  // ties: experiment_id DESC
  });
  size_t begin = std::min(static_cast<size_t>(offset), all.size());
  size_t end = std::min(all.size(), begin + static_cast<size_t>(max_results));
  *more = end < all.size();
  return std::vector<Experiment>(all.begin() + static_cast<long>(begin),
                                 all.begin() + static_cast<long>(end));
}

// ---- runs ----

Result<RunInfo> TrackingStore::ReadRunInfo(Db& db, const std::string& run_id) {
  Stmt& s = db.Prepare(
      "SELECT run_id, experiment_id, run_name, user_id, status, start_time, end_time, "
      "artifact_uri, "
      "lifecycle_stage FROM runs WHERE run_id = ?");
  s.Bind(1, run_id);
  if (!s.Step()) {
    s.Reset();
    return NotFound("Run with id=" + run_id + " not found");
  }
  RunInfo r;
  r.run_id = s.Text(0);
  r.experiment_id = std::to_string(s.Int(1));
  r.run_name = s.Text(2);
  r.user_id = s.Text(3);
  r.status = s.Text(4);
  if (!s.IsNull(5)) r.start_time = s.Int(5);
  if (!s.IsNull(6)) r.end_time = s.Int(6);
  r.artifact_uri = s.Text(7);
  r.lifecycle_stage = s.Text(8);
  s.Reset();
  return r;
}

Result<RunInfo> TrackingStore::CreateRun(const std::string& experiment_id,
                                         const std::string& run_id_in,
                                         const std::string& run_name_in, const std::string& user_id,
                                         std::optional<long long> start_time,
                                         const std::vector<KeyValue>& tags,
                                         const std::vector<KeyValue>& params, bool job_run) {
  std::string exp_id = experiment_id.empty() ? "0" : experiment_id;
  auto exp = GetExperiment(exp_id);
  if (!exp.ok()) return exp.status();
  if (exp->lifecycle_stage != "active")
    return InvalidArgument("The experiment " + exp_id +
                           " must be in the 'active' state. Current state is " +
                           exp->lifecycle_stage + ".");
  std::string run_name = run_name_in;
  for (const auto& t : tags) {
    if (t.key == "mlflow.runName") {
      if (!run_name.empty() && run_name != t.value)
        return InvalidArgument(
            "Both 'run_name' argument and 'mlflow.runName' tag are specified, but with "
            "different values (run_name='" +
            run_name + "', mlflow.runName='" + t.value + "').");
      run_name = t.value;
    }
    if (std::string e = KeyError(t.key); !e.empty()) return InvalidArgument(e);
  }
  std::string run_id = run_id_in.empty() ? Uuid4Hex() : run_id_in;
  if (run_name.empty()) {
    std::string generated =
        GenerateJobName();  // adjective_noun_suffix: MLflow-style names are two words
    run_name = generated.substr(0, generated.rfind('_'));
  }
  std::vector<KeyValue> all = tags;
  if (std::none_of(all.begin(), all.end(),
                   [](const KeyValue& t) { return t.key == "mlflow.runName"; }))
    all.push_back({"mlflow.runName", run_name});
  std::string artifact_uri = exp->artifact_location + "/" + run_id + "/artifacts";
  Status s = Write(
      [&](Db& db) -> Status {
        Status st = db.Prepare(
                          "INSERT INTO runs (run_id, experiment_id, run_name, user_id, status, "
                          "start_time, artifact_uri) "
                          "VALUES (?,?,?,?,'RUNNING',?,?)")
                        .Bind(1, run_id)
                        .Bind(2, std::stoll(exp_id))
                        .Bind(3, run_name)
                        .Bind(4, user_id)
                        .Bind(5, start_time)
                        .Bind(6, artifact_uri)
                        .Run();
        if (st.code() == Code::kAlreadyExists)
          return AlreadyExists("Run with id=" + run_id + " already exists");
        for (const auto& t : all) {
          if (!st.ok()) break;
          st = db.Prepare("INSERT OR REPLACE INTO tags VALUES (?,?,?)")
                   .Bind(1, run_id)
                   .Bind(2, t.key)
                   .Bind(3, t.value.substr(0, kMaxTagValueLength))
                   .Run();
        }
        for (const auto& p :
             params) {  // a sweep trial's hyperparameters: in the same commit as the run
          if (!st.ok()) break;
          st = db.Prepare("INSERT OR REPLACE INTO params VALUES (?,?,?)")
                   .Bind(1, run_id)
                   .Bind(2, p.key)
                   .Bind(3, p.value.substr(0, kMaxParamValueLength))
                   .Run();
        }
        return st;
      },
      /*durable=*/!job_run);
  if (!s.ok()) return s;
  return ReadRunInfo(Reader(), run_id);
}

Result<RunInfo> TrackingStore::UpdateRun(const std::string& run_id, const std::string& status,
                                         std::optional<long long> end_time,
                                         const std::string& run_name) {
  static const std::vector<std::string> kStatuses = {"RUNNING", "SCHEDULED", "FINISHED", "FAILED",
                                                     "KILLED"};
  if (!status.empty() && std::find(kStatuses.begin(), kStatuses.end(), status) == kStatuses.end())
    return InvalidArgument("Invalid run status '" + status + "'");
  Status s = Write([&](Db& db) -> Status {
    auto info = ReadRunInfo(db, run_id);
    if (!info.ok()) return info.status();
    if (info->lifecycle_stage != "active")
      return InvalidArgument("The run " + run_id +
                             " must be in the 'active' state. Current state is " +
                             info->lifecycle_stage + ".");
    Status st = db.Prepare(
                      "UPDATE runs SET status = CASE WHEN ? = '' THEN status ELSE ? END, "
                      "end_time = COALESCE(?, end_time), run_name = CASE WHEN ? = '' THEN run_name "
                      "ELSE ? END "
                      "WHERE run_id = ?")
                    .Bind(1, status)
                    .Bind(2, status)
                    .Bind(3, end_time)
                    .Bind(4, run_name)
                    .Bind(5, run_name)
                    .Bind(6, run_id)
                    .Run();
    if (st.ok() && !run_name.empty())
      st = db.Prepare("INSERT OR REPLACE INTO tags VALUES (?, 'mlflow.runName', ?)")
               .Bind(1, run_id)
               .Bind(2, run_name)
               .Run();
    return st;
  });
  if (!s.ok()) return s;
  return ReadRunInfo(Reader(), run_id);
}

Status TrackingStore::SetRunStage(const std::string& run_id, const std::string& stage) {
  return Write([&](Db& db) -> Status {
    auto info = ReadRunInfo(db, run_id);
    if (!info.ok()) return info.status();
    return db.Prepare("UPDATE runs SET lifecycle_stage = ? WHERE run_id = ?")
        .Bind(1, stage)
        .Bind(2, run_id)
        .Run();
  });
}

Status TrackingStore::EraseRun(const std::string& run_id) {
  return Write([&](Db& db) -> Status {
    if (Status s = EraseSeries(db, run_id); !s.ok()) return s;
    for (const char* table : {"runs", "params", "tags", "latest_metrics", "run_inputs",
                              "run_outputs", "run_model_inputs"}) {
      Status s = db.Prepare(std::string("DELETE FROM ") + table + " WHERE run_id = ?")
                     .Bind(1, run_id)
                     .Run();
      if (!s.ok()) return s;
    }
    return Status::Ok();
  });
}

void TrackingStore::FinishRunAsync(const std::string& run_id, const std::string& status,
                                   long long end_time) {
  WriteAsync([run_id, status, end_time](Db& db) {
    return db
        .Prepare("UPDATE runs SET status = ?, end_time = COALESCE(end_time, ?) WHERE run_id = ?")
        .Bind(1, status)
        .Bind(2, end_time)
        .Bind(3, run_id)
        .Run();
  });
}

namespace {
// Whether a log-batch request is within MLflow's limits (counts, key names, value lengths, no param
// twice), refused as MLflow's server refuses it.
Status CheckBatch(const std::vector<Metric>& metrics, const std::vector<KeyValue>& params,
                  const std::vector<KeyValue>& tags) {
  auto limit = [](size_t n, size_t max, const char* what) -> std::string {
    if (n <= max) return "";
    return "A batch logging request can contain at most " + std::to_string(max) + " " + what +
           ". Got " + std::to_string(n) + " " + what + ". Please split up " + what +
           " across multiple requests and try again.";
  };
  for (auto e : {limit(metrics.size(), kMaxMetricsPerBatch, "metrics"),
                 limit(params.size(), kMaxParamsPerBatch, "params"),
                 limit(tags.size(), kMaxTagsPerBatch, "tags")})
    if (!e.empty()) return InvalidArgument(e);
  size_t total = metrics.size() + params.size() + tags.size();
  if (total > kMaxEntitiesPerBatch)
    return InvalidArgument(
        "A batch logging request can contain at most 1000 total entities (metrics, params and "
        "tags). Got " +
        std::to_string(total) + " entities.");
  std::vector<std::string> seen, dups;
  for (const auto& p : params) {
    if (std::find(seen.begin(), seen.end(), p.key) != seen.end()) dups.push_back(p.key);
    seen.push_back(p.key);
  }
  if (!dups.empty())
    return InvalidArgument("Duplicate parameter keys have been submitted: ['" + Join(dups, "', '") +
                           "']");
  for (size_t i = 0; i < metrics.size(); ++i) {
    const Metric& m = metrics[i];
    if (i == 0 || m.key != metrics[i - 1].key)  // a batch is mostly runs of one key
      if (std::string e = KeyError(m.key); !e.empty()) return InvalidArgument(e);
    if (m.timestamp < 0) return InvalidArgument("Metric timestamp must be a non-negative integer");
  }
  for (const auto& p : params)
    if (std::string e = KeyError(p.key); !e.empty()) return InvalidArgument(e);
  // Values over MLflow's limits are refused as MLflow's server refuses them (its client may
  // truncate first).
  auto too_long = [](const char* what, const std::string& v, size_t limit) {
    return std::string(what) + " '" + v.substr(0, 250) + "' had length " +
           std::to_string(v.size()) + ", which exceeded length limit of " + std::to_string(limit);
  };
  for (const auto& p : params)
    if (p.value.size() > kMaxParamValueLength)
      return InvalidArgument(too_long("Param value", p.value, kMaxParamValueLength));
  for (const auto& t : tags)
    if (t.value.size() > kMaxTagValueLength)
      return InvalidArgument(too_long("Tag value", t.value, kMaxTagValueLength));
  for (const auto& t : tags)
    if (std::string e = KeyError(t.key); !e.empty()) return InvalidArgument(e);
  return Status::Ok();
}
}  // namespace

Status TrackingStore::LogBatch(const std::string& run_id, const std::vector<Metric>& metrics,
                               const std::vector<KeyValue>& params,
                               const std::vector<KeyValue>& tags) {
  if (Status s = CheckBatch(metrics, params, tags); !s.ok()) return s;

  return Write([&](Db& db) -> Status {
    auto info = ReadRunInfo(db, run_id);
    if (!info.ok()) return info.status();
    if (info->lifecycle_stage != "active")
      return InvalidArgument("The run " + run_id +
                             " must be in the 'active' state. Current state is " +
                             info->lifecycle_stage + ".");
    for (const auto& p : params) {
      const std::string& value = p.value;  // within the limit: checked above
      Stmt& q = db.Prepare("SELECT value FROM params WHERE run_id = ? AND key = ?");
      q.Bind(1, run_id).Bind(2, p.key);
      bool exists = q.Step();
      std::string old = exists ? q.Text(0) : "";
      q.Reset();
      if (exists && old != value)
        return InvalidArgument("Changing param values is not allowed. Param with key='" + p.key +
                               "' was already logged with value='" + old + "' for run ID='" +
                               run_id + "'. Attempted logging new value '" + value + "'.");
      if (!exists) {
        Status st = db.Prepare("INSERT INTO params VALUES (?,?,?)")
                        .Bind(1, run_id)
                        .Bind(2, p.key)
                        .Bind(3, value)
                        .Run();
        if (!st.ok()) return st;
      }
    }
    for (const auto& t : tags) {
      Status st = db.Prepare("INSERT OR REPLACE INTO tags VALUES (?,?,?)")
                      .Bind(1, run_id)
                      .Bind(2, t.key)
                      .Bind(3, t.value.substr(0, kMaxTagValueLength))
                      .Run();
      if (!st.ok()) return st;
    }
    // Points grouped by key, in the order they came, with the batch's greatest (step, timestamp,
    // value) per key: one upsert of the latest value each, not one per point.
    auto greater = [](const Metric& a, const Metric& b) {
      double av = std::isnan(a.value) ? -DBL_MAX : a.value,
             bv = std::isnan(b.value) ? -DBL_MAX : b.value;
      return std::tie(a.step, a.timestamp, av) > std::tie(b.step, b.timestamp, bv);
    };
    struct Series {
      const Metric* latest;
      std::vector<Point> points;
    };
    std::vector<Series> series;
    const Metric* prev = nullptr;  // consecutive points of one key skip the lookup
    size_t prev_slot = 0;
    std::unordered_map<std::string_view, size_t> slot;
    for (const auto& m : metrics) {
      size_t at;
      if (prev && prev->key == m.key) {
        at = prev_slot;
      } else {
        auto [it, added] = slot.try_emplace(m.key, series.size());
        if (added) series.push_back({&m, {}});
        at = it->second;
      }
      prev = &m;
      prev_slot = at;
      series[at].points.push_back(
          {m.step, m.timestamp, std::isnan(m.value) ? NAN : Clamp(m.value)});
      if (greater(m, *series[at].latest)) series[at].latest = &m;
    }
    for (const auto& x : series)
      if (Status st = AppendSeries(db, run_id, x.latest->key, x.points); !st.ok()) return st;
    for (const auto& m : metrics) {
      if (m.model_id.empty()) continue;
      bool nan = std::isnan(m.value);
      Status st = db.Prepare(
                        "INSERT OR IGNORE INTO logged_model_metrics (model_id, key, value, is_nan, "
                        "timestamp, step, "
                        "run_id, dataset_name, dataset_digest) VALUES (?,?,?,?,?,?,?,?,?)")
                      .Bind(1, m.model_id)
                      .Bind(2, m.key)
                      .BindDouble(3, nan ? 0.0 : Clamp(m.value))
                      .Bind(4, nan ? 1 : 0)
                      .Bind(5, m.timestamp)
                      .Bind(6, m.step)
                      .Bind(7, run_id)
                      .Bind(8, m.dataset_name)
                      .Bind(9, m.dataset_digest)
                      .Run();
      if (!st.ok()) return st;
    }
    for (const auto& x : series) {
      const Metric& m = *x.latest;
      bool nan = std::isnan(m.value);
      double v = Clamp(m.value);
      Status st;
      // The latest value is the greatest (step, timestamp, value), as MLflow's SQL store keeps it.
      Stmt& up = db.Prepare(
          "INSERT INTO latest_metrics (run_id, key, step, timestamp, value, is_nan) VALUES "
          "(?,?,?,?,?,?) "
          "ON CONFLICT (run_id, key) DO UPDATE SET step = excluded.step, timestamp = "
          "excluded.timestamp, "
          "value = excluded.value, is_nan = excluded.is_nan WHERE (excluded.step, "
          "excluded.timestamp, "
          "CASE WHEN excluded.is_nan THEN -1e308 ELSE excluded.value END) > (latest_metrics.step, "
          "latest_metrics.timestamp, CASE WHEN latest_metrics.is_nan THEN -1e308 ELSE "
          "latest_metrics.value END)");
      up.Bind(1, run_id).Bind(2, m.key).Bind(3, m.step).Bind(4, m.timestamp);
      up.BindDouble(5, nan ? 0.0 : v);
      up.Bind(6, nan ? 1 : 0);
      st = up.Run();
      if (!st.ok()) return st;
    }
    return Status::Ok();
  });
}

Status TrackingStore::DeleteTag(const std::string& run_id, const std::string& key) {
  return Write([&](Db& db) -> Status {
    auto info = ReadRunInfo(db, run_id);
    if (!info.ok()) return info.status();
    Status s = db.Prepare("DELETE FROM tags WHERE run_id = ? AND key = ?")
                   .Bind(1, run_id)
                   .Bind(2, key)
                   .Run();
    if (s.ok() && db.Changes() == 0)
      return NotFound("No tag with name: " + key + " in run with id " + run_id);
    return s;
  });
}

Status TrackingStore::LogInputs(const std::string& run_id, const json& inputs,
                                const std::vector<std::string>& models) {
  return Write([&](Db& db) -> Status {
    auto info = ReadRunInfo(db, run_id);
    if (!info.ok()) return info.status();
    if (inputs.is_array())
      for (const auto& in : inputs) {
        Status s = db.Prepare(
                         "INSERT INTO run_inputs VALUES (?, (SELECT COALESCE(MAX(seq),0)+1 FROM "
                         "run_inputs WHERE run_id = ?), ?)")
                       .Bind(1, run_id)
                       .Bind(2, run_id)
                       .Bind(3, in.dump())
                       .Run();
        if (!s.ok()) return s;
      }
    for (const auto& m : models) {
      Status s = db.Prepare("INSERT OR IGNORE INTO run_model_inputs VALUES (?, ?)")
                     .Bind(1, run_id)
                     .Bind(2, m)
                     .Run();
      if (!s.ok()) return s;
    }
    return Status::Ok();
  });
}

Result<Run> TrackingStore::GetRun(const std::string& run_id) {
  Db& db = Reader();
  auto info = ReadRunInfo(db, run_id);
  if (!info.ok()) return info.status();
  Run r;
  r.info = *info;
  ReadRunData(db, r);
  return r;
}

void TrackingStore::ReadPageData(Db& db, std::vector<Run>& page) {
  if (page.size() <= 2) {
    for (auto& r : page) {
      if (auto info = ReadRunInfo(db, r.info.run_id); info.ok()) r.info = *info;
      ReadRunData(db, r);
    }
    return;
  }
  // One query per table for the whole page, the ids bound as one JSON array.
  std::unordered_map<std::string_view, Run*> index;
  index.reserve(page.size());
  json ids = json::array();
  for (auto& r : page) {
    index[r.info.run_id] = &r;
    ids.push_back(r.info.run_id);
    r.metrics.clear();
    r.params.clear();
    r.tags.clear();
    r.dataset_inputs = nullptr;
    r.model_inputs.clear();
    r.model_outputs.clear();
  }
  std::string id_list = ids.dump();
  const char* in = " WHERE run_id IN (SELECT value FROM json_each(?))";
  Stmt& a = db.Prepare(
      std::string("SELECT run_id, experiment_id, run_name, user_id, status, start_time, end_time, "
                  "artifact_uri, lifecycle_stage FROM runs") +
      in);
  a.Bind(1, id_list);
  while (a.Step()) {
    auto it = index.find(a.Text(0));
    if (it == index.end()) continue;
    RunInfo& i = it->second->info;
    i.experiment_id = std::to_string(a.Int(1));
    i.run_name = a.Text(2);
    i.user_id = a.Text(3);
    i.status = a.Text(4);
    i.start_time = a.IsNull(5) ? std::nullopt : std::optional<long long>(a.Int(5));
    i.end_time = a.IsNull(6) ? std::nullopt : std::optional<long long>(a.Int(6));
    i.artifact_uri = a.Text(7);
    i.lifecycle_stage = a.Text(8);
  }
  a.Reset();
  Stmt& m = db.Prepare(
      std::string("SELECT run_id, key, step, timestamp, value, is_nan FROM latest_metrics") + in +
      " ORDER BY run_id, key");
  m.Bind(1, id_list);
  while (m.Step())
    if (auto it = index.find(m.Text(0)); it != index.end())
      it->second->metrics.push_back(ReadMetric(m, 1));
  m.Reset();
  for (const char* table : {"params", "tags"}) {
    Stmt& kv = db.Prepare(std::string("SELECT run_id, key, value FROM ") + table + in +
                          " ORDER BY run_id, key");
    kv.Bind(1, id_list);
    bool params = std::string(table) == "params";
    while (kv.Step())
      if (auto it = index.find(kv.Text(0)); it != index.end())
        (params ? it->second->params : it->second->tags).push_back({kv.Text(1), kv.Text(2)});
    kv.Reset();
  }
  Stmt& i = db.Prepare(std::string("SELECT run_id, input FROM run_inputs") + in +
                       " ORDER BY run_id, seq");
  i.Bind(1, id_list);
  while (i.Step())
    if (auto it = index.find(i.Text(0)); it != index.end())
      it->second->dataset_inputs.push_back(json::parse(i.Text(1), nullptr, false));
  i.Reset();
  Stmt& mi = db.Prepare("SELECT run_id, model_id FROM run_model_inputs" + std::string(in) +
                        " ORDER BY run_id, model_id");
  mi.Bind(1, id_list);
  while (mi.Step())
    if (auto it = index.find(mi.Text(0)); it != index.end())
      it->second->model_inputs.push_back(mi.Text(1));
  mi.Reset();
  Stmt& mo = db.Prepare("SELECT run_id, model_id, step FROM run_outputs" + std::string(in) +
                        " ORDER BY run_id, step, model_id");
  mo.Bind(1, id_list);
  while (mo.Step())
    if (auto it = index.find(mo.Text(0)); it != index.end())
      it->second->model_outputs.push_back({mo.Text(1), mo.Int(2)});
  mo.Reset();
}

void TrackingStore::ReadRunData(Db& db, Run& r) {
  const std::string& run_id = r.info.run_id;
  r.metrics.clear();
  r.params.clear();
  r.tags.clear();
  r.dataset_inputs = nullptr;
  Stmt& m = db.Prepare(
      "SELECT key, step, timestamp, value, is_nan FROM latest_metrics WHERE run_id = ? ORDER BY "
      "key");
  m.Bind(1, run_id);
  while (m.Step()) r.metrics.push_back(ReadMetric(m, 0));
  m.Reset();
  Stmt& p = db.Prepare("SELECT key, value FROM params WHERE run_id = ? ORDER BY key");
  p.Bind(1, run_id);
  while (p.Step()) r.params.push_back({p.Text(0), p.Text(1)});
  p.Reset();
  Stmt& t = db.Prepare("SELECT key, value FROM tags WHERE run_id = ? ORDER BY key");
  t.Bind(1, run_id);
  while (t.Step()) r.tags.push_back({t.Text(0), t.Text(1)});
  t.Reset();
  Stmt& in = db.Prepare("SELECT input FROM run_inputs WHERE run_id = ? ORDER BY seq");
  in.Bind(1, run_id);
  while (in.Step()) r.dataset_inputs.push_back(json::parse(in.Text(0), nullptr, false));
  in.Reset();
  ReadRunModels(db, r);
}

void TrackingStore::ReadRunModels(Db& db, Run& r) {
  r.model_inputs.clear();
  r.model_outputs.clear();
  Stmt& mi = db.Prepare("SELECT model_id FROM run_model_inputs WHERE run_id = ? ORDER BY model_id");
  mi.Bind(1, r.info.run_id);
  while (mi.Step()) r.model_inputs.push_back(mi.Text(0));
  mi.Reset();
  Stmt& mo =
      db.Prepare("SELECT model_id, step FROM run_outputs WHERE run_id = ? ORDER BY step, model_id");
  mo.Bind(1, r.info.run_id);
  while (mo.Step()) r.model_outputs.push_back({mo.Text(0), mo.Int(1)});
  mo.Reset();
}

Result<std::vector<Point>> TrackingStore::GetHistory(const std::string& run_id,
                                                     const std::string& key) {
  Db& db = Reader();
  auto info = ReadRunInfo(db, run_id);
  if (!info.ok()) return info.status();
  return ReadSeries(db, run_id, key);
}

std::vector<std::string> TrackingStore::MetricKeys(const std::string& run_id) {
  Db& db = Reader();
  Stmt& s = db.Prepare("SELECT key FROM latest_metrics WHERE run_id = ? ORDER BY key");
  s.Bind(1, run_id);
  std::vector<std::string> out;
  while (s.Step()) out.push_back(s.Text(0));
  s.Reset();
  return out;
}

std::unordered_map<std::string, std::vector<Metric>> TrackingStore::LatestMetricsOfAllRuns() {
  Db& db = Reader();
  Stmt& s =
      db.Prepare("SELECT run_id, key, value, is_nan FROM latest_metrics ORDER BY run_id, key");
  std::unordered_map<std::string, std::vector<Metric>> out;
  while (s.Step()) {
    Metric m;
    m.key = s.Text(1);
    m.value = s.Int(3) != 0 ? std::nan("") : s.Double(2);
    out[s.Text(0)].push_back(std::move(m));
  }
  s.Reset();
  return out;
}

std::unordered_map<std::string, std::vector<KeyValue>> TrackingStore::ParamsOfAllRuns(
    size_t per_run, size_t max_value) {
  Db& db = Reader();
  Stmt& s = db.Prepare("SELECT run_id, key, value FROM params ORDER BY run_id, key");
  std::unordered_map<std::string, std::vector<KeyValue>> out;
  while (s.Step()) {
    auto& kvs = out[s.Text(0)];
    if (kvs.size() >= per_run) continue;
    std::string value = s.Text(2);
    if (value.size() > max_value) {
      size_t cut = max_value;
      while (cut > 0 && (static_cast<unsigned char>(value[cut]) & 0xC0) == 0x80) --cut;
      value.resize(cut);
    }
    kvs.push_back({s.Text(1), std::move(value)});
  }
  s.Reset();
  return out;
}

namespace {

// A run search's first pass (TrackingStore::SearchRuns): every run of the experiments as a compact
// candidate (its id in one arena, only the attributes the filter or order names), and the metrics,
// params and tags they name in flat arrays, a row per candidate. At 100k runs a Run object per run,
// with its strings and vectors, cost more than the scans.
struct SearchCandidates {
  struct Candidate {
    uint32_t id_off = 0;
    uint32_t id_len = 0;
    std::optional<long long> start, end;
    std::string name, user, status, stage, uri;  // only when named
  };
  std::vector<Candidate> all;
  std::string ids;
  std::vector<std::string> metric_keys, param_keys, tag_keys;  // what the filter and order name
  std::vector<double> mvals;
  std::vector<std::string> svals;
  std::vector<uint8_t> mhave, shave;

  std::string_view IdOf(const Candidate& c) const {
    return std::string_view(ids.data() + c.id_off, c.id_len);
  }
  void Need(const std::string& kind, const std::string& key) {
    auto* v = kind == "metric"  ? &metric_keys
              : kind == "param" ? &param_keys
              : kind == "tag"   ? &tag_keys
                                : nullptr;
    if (v && std::find(v->begin(), v->end(), key) == v->end()) v->push_back(key);
  }
};

// Candidate `i`'s fields, as the filter and the order read them.
class CandidateFields : public FieldSource {
 public:
  CandidateFields(const SearchCandidates& c, size_t i) : s_(c), i_(i), c_(c.all[i]) {}
  std::optional<std::string_view> String(const std::string& kind,
                                         const std::string& key) const override {
    if (kind == "param" || kind == "tag") {
      const auto& keys = kind == "param" ? s_.param_keys : s_.tag_keys;
      size_t base = kind == "param" ? 0 : s_.param_keys.size();
      size_t ns = s_.param_keys.size() + s_.tag_keys.size();
      for (size_t k = 0; k < keys.size(); ++k)
        if (keys[k] == key) {
          if (!s_.shave[i_ * ns + base + k]) return std::nullopt;
          return std::string_view(s_.svals[i_ * ns + base + k]);
        }
      return std::nullopt;
    }
    if (key == "run_id") return s_.IdOf(c_);
    if (key == "run_name") return std::string_view(c_.name);
    if (key == "user_id") return std::string_view(c_.user);
    if (key == "status") return std::string_view(c_.status);
    if (key == "lifecycle_stage") return std::string_view(c_.stage);
    if (key == "artifact_uri") return std::string_view(c_.uri);
    return std::nullopt;
  }
  std::optional<double> Number(const std::string& kind, const std::string& key) const override {
    if (kind == "metric") {
      const size_t nm = s_.metric_keys.size();
      for (size_t k = 0; k < nm; ++k)
        if (s_.metric_keys[k] == key) {
          if (!s_.mhave[i_ * nm + k]) return std::nullopt;
          return s_.mvals[i_ * nm + k];
        }
      return std::nullopt;
    }
    if (key == "start_time" && c_.start) return static_cast<double>(*c_.start);
    if (key == "end_time" && c_.end) return static_cast<double>(*c_.end);
    return std::nullopt;
  }

 private:
  const SearchCandidates& s_;
  size_t i_;
  const SearchCandidates::Candidate& c_;
};

}  // namespace

// Every run of the experiments, in run id order, from a covering index (the table is not read),
// with only the attributes the filter or the order names: at 100k rows, each column read is a
// measurable cost.
namespace {

bool ScanCandidates(Db& db, const RunSearch& q, const RunFilter& filter, const RunOrder& order,
                    SearchCandidates& sc) {
  auto& all = sc.all;
  auto& ids = sc.ids;
  using Candidate = SearchCandidates::Candidate;
  std::string stage = q.view == "ALL"            ? ""
                      : q.view == "DELETED_ONLY" ? " AND lifecycle_stage = 'deleted'"
                                                 : " AND lifecycle_stage = 'active'";
  auto named = [&](const char* attr) {
    for (const auto& c : filter)
      if (c.kind == "attribute" && c.key == attr) return true;
    for (const auto& o : order)
      if (o.kind == "attribute" && o.key == attr) return true;
    return false;
  };
  const bool want_name = named("run_name"), want_user = named("user_id"),
             want_status = named("status"), want_end = named("end_time"),
             want_stage = named("lifecycle_stage"), want_uri = named("artifact_uri");
  std::string cols = "run_id, start_time";
  if (want_end) cols += ", end_time";
  if (want_name) cols += ", run_name";
  if (want_user) cols += ", user_id";
  if (want_status) cols += ", status";
  if (want_stage) cols += ", lifecycle_stage";
  for (const auto& exp : q.experiment_ids) {
    if (!ValidExperimentId(exp)) continue;
    Stmt& s =
        db.Prepare("SELECT " + cols + " FROM runs INDEXED BY runs_search WHERE experiment_id = ?" +
                   stage + " ORDER BY run_id");
    s.Bind(1, std::stoll(exp));
    while (s.Step()) {
      Candidate& c = all.emplace_back();
      std::string_view id = s.Blob(0);
      c.id_off = static_cast<uint32_t>(ids.size());
      c.id_len = static_cast<uint32_t>(id.size());
      ids += id;
      if (!s.IsNull(1)) c.start = s.Int(1);
      int col = 2;
      if (want_end && !s.IsNull(col)) c.end = s.Int(col);
      col += want_end;
      if (want_name) c.name = s.Text(col++);
      if (want_user) c.user = s.Text(col++);
      if (want_status) c.status = s.Text(col++);
      if (want_stage) c.stage = s.Text(col++);
    }
    s.Reset();
  }
  if (q.experiment_ids.size() > 1)
    std::sort(all.begin(), all.end(),
              [&](const Candidate& a, const Candidate& b) { return sc.IdOf(a) < sc.IdOf(b); });
  return want_uri;
}

// Each named metric, param and tag from its own covering index, also in run id order, merged into
// the candidates: two sequential scans per name instead of a B-tree lookup per run and name.
void MergeNamedValues(Db& db, SearchCandidates& sc) {
  const auto& all = sc.all;
  auto& metric_keys = sc.metric_keys;
  auto& param_keys = sc.param_keys;
  auto& tag_keys = sc.tag_keys;
  auto id_of = [&](const SearchCandidates::Candidate& c) { return sc.IdOf(c); };
  const size_t n = all.size(), nm = metric_keys.size(), ns = param_keys.size() + tag_keys.size();
  auto& mvals = sc.mvals;
  auto& svals = sc.svals;
  auto& mhave = sc.mhave;
  auto& shave = sc.shave;
  mvals.assign(n * nm, 0);
  svals.assign(n * ns, std::string());
  mhave.assign(n * nm, 0);
  shave.assign(n * ns, 0);
  // Merges rows (run_id first, ascending) into the candidates, which are in run id order too.
  auto merge = [&](Stmt& s, const std::function<void(size_t, Stmt&)>& take) {
    size_t i = 0;
    while (s.Step() && i < n) {
      std::string_view id = s.Blob(0);  // the text's bytes, without a copy
      while (i < n && id_of(all[i]) < id) ++i;
      if (i < n && id_of(all[i]) == id) take(i, s);
    }
    s.Reset();
  };
  for (size_t k = 0; k < nm; ++k) {
    // Only the value: filter and order need nothing else, and the page's runs are read again in
    // full.
    Stmt& s = db.Prepare(
        "SELECT run_id, CASE WHEN is_nan THEN NULL ELSE value END FROM latest_metrics INDEXED BY "
        "latest_metrics_search WHERE key = ? ORDER BY run_id");
    s.Bind(1, metric_keys[k]);
    merge(s, [&](size_t i, Stmt& row) {
      mhave[i * nm + k] = 1;
      mvals[i * nm + k] = row.IsNull(1) ? NAN : row.Double(1);
    });
  }
  for (size_t k = 0; k < ns; ++k) {
    bool param = k < param_keys.size();
    const char* table = param ? "params" : "tags";
    Stmt& s = db.Prepare(std::string("SELECT run_id, value FROM ") + table + " INDEXED BY " +
                         table + "_search WHERE key = ? ORDER BY run_id");
    s.Bind(1, param ? param_keys[k] : tag_keys[k - param_keys.size()]);
    merge(s, [&](size_t i, Stmt& row) {
      shave[i * ns + k] = 1;
      svals[i * ns + k] = row.Text(1);
    });
  }
}

// The page of the candidates that match the filter, in the order asked (then newest first, then by
// id), from `q.offset`; sets `more` when runs follow it. Run ids only: the caller reads the rest.
std::vector<Run> PageOfCandidates(const SearchCandidates& sc, const RunSearch& q,
                                  const RunFilter& filter, const RunOrder& order, bool* more) {
  const auto& all = sc.all;
  const size_t n = all.size();
  using Candidate = SearchCandidates::Candidate;
  auto id_of = [&](const Candidate& c) { return sc.IdOf(c); };
  auto fields = [&](size_t i) { return CandidateFields(sc, i); };
  std::vector<uint32_t> matched;
  for (size_t i = 0; i < n; ++i)
    if (Matches(filter, fields(i))) matched.push_back(static_cast<uint32_t>(i));
  // The ordered values are looked up once per run, not once per comparison; a page from the top of
  // the order needs only a partial sort.
  const size_t nk = order.size();
  std::vector<SortValue> values(matched.size() * nk);
  for (size_t m = 0; m < matched.size(); ++m) {
    CandidateFields f = fields(matched[m]);
    for (size_t j = 0; j < nk; ++j) values[m * nk + j] = OrderValue(order[j], f);
  }
  std::vector<uint32_t> idx(matched.size());
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = static_cast<uint32_t>(i);
  auto before = [&](uint32_t a, uint32_t b) {
    for (size_t j = 0; j < nk; ++j)
      if (int c = CompareOrderValues(order[j], values[a * nk + j], values[b * nk + j]); c != 0)
        return c < 0;
    const Candidate& x = all[matched[a]];
    const Candidate& y = all[matched[b]];
    long long sa = x.start.value_or(0), sb = y.start.value_or(0);
    if (sa != sb) return sa > sb;
    return id_of(x) < id_of(y);
  };
  long long start = std::min<long long>(q.offset, static_cast<long long>(matched.size()));
  long long end =
      std::min<long long>(start + q.max_results, static_cast<long long>(matched.size()));
  if (end < static_cast<long long>(matched.size()))
    std::partial_sort(idx.begin(), idx.begin() + end, idx.end(), before);
  else
    std::sort(idx.begin(), idx.end(), before);
  *more = end < static_cast<long long>(matched.size());
  std::vector<Run> page(static_cast<size_t>(end - start));
  for (long long i = start; i < end; ++i)
    page[static_cast<size_t>(i - start)].info.run_id =
        id_of(all[matched[idx[static_cast<size_t>(i)]]]);
  return page;
}

}  // namespace

Result<std::vector<Run>> TrackingStore::SearchRuns(const RunSearch& q, bool* more) {
  auto filter = ParseRunFilter(q.filter);
  if (!filter.ok()) return filter.status();
  auto order = ParseRunOrder(q.order_by);
  if (!order.ok()) return order.status();
  if (q.max_results > 50000 || q.max_results < 0)
    return InvalidArgument(
        "Invalid value for request parameter max_results. It must be at most 50000, but got "
        "value " +
        std::to_string(q.max_results));
  // In two steps, so that the cost grows with the page rather than with the experiment: first every
  // run's attributes plus only the metrics, params and tags that the filter and the order name,
  // enough to filter, sort and page; then everything else, for the runs of the page only.
  SearchCandidates sc;
  for (const auto& c : *filter) sc.Need(c.kind, c.key);
  for (const auto& o : *order) sc.Need(o.kind, o.key);
  Db& db = Reader();
  // One read transaction for the whole search: one snapshot (a page agrees with the filter that
  // chose it), and one pair of lock calls instead of a pair per statement.
  ReadTransaction snapshot(db);
  if (ScanCandidates(db, q, *filter, *order, sc))  // rare enough to read run by run
    for (auto& c : sc.all)
      if (auto info = ReadRunInfo(db, std::string(sc.IdOf(c))); info.ok())
        c.uri = info->artifact_uri;
  MergeNamedValues(db, sc);
  std::vector<Run> page = PageOfCandidates(sc, q, *filter, *order, more);
  ReadPageData(db, page);
  return page;
}

}  // namespace cairn::tracking
