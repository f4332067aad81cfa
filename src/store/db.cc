#include "store/db.h"

#include <sqlite3.h>

namespace cairn::store {

namespace {
// Numbered migrations: the database's user_version says how many have run. Append only.
const std::vector<std::string> kMigrations = {
    // 1: jobs, their status history, computes, code snapshots.
    R"sql(
CREATE TABLE jobs (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL UNIQUE,
  type TEXT NOT NULL,
  display_name TEXT NOT NULL DEFAULT '',
  experiment_name TEXT NOT NULL DEFAULT '',
  description TEXT NOT NULL DEFAULT '',
  status TEXT NOT NULL,
  status_reason TEXT NOT NULL DEFAULT '',
  compute TEXT NOT NULL,
  parent TEXT NOT NULL DEFAULT '',
  spec TEXT NOT NULL,
  source_yaml TEXT NOT NULL DEFAULT '',
  snapshot TEXT NOT NULL DEFAULT '',
  tags TEXT NOT NULL DEFAULT '{}',
  properties TEXT NOT NULL DEFAULT '{}',
  created_at INTEGER NOT NULL,
  start_time INTEGER,
  end_time INTEGER,
  archived INTEGER NOT NULL DEFAULT 0,
  exit_code INTEGER,
  error TEXT NOT NULL DEFAULT '',
  slots INTEGER NOT NULL DEFAULT 1,
  supervisor_pid INTEGER,
  token TEXT NOT NULL DEFAULT ''
);
CREATE INDEX jobs_status ON jobs(status);
CREATE INDEX jobs_parent ON jobs(parent);
CREATE INDEX jobs_experiment ON jobs(experiment_name);
CREATE TABLE job_status_history (
  job TEXT NOT NULL,
  seq INTEGER NOT NULL,
  status TEXT NOT NULL,
  reason TEXT NOT NULL DEFAULT '',
  at INTEGER NOT NULL,
  PRIMARY KEY (job, seq)
) WITHOUT ROWID;
CREATE TABLE computes (
  name TEXT PRIMARY KEY,
  type TEXT NOT NULL,
  spec TEXT NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE TABLE snapshots (
  id TEXT PRIMARY KEY,
  manifest TEXT NOT NULL,
  created_at INTEGER NOT NULL
);
)sql",
    // 2: find a job by its token (a job's MLflow client authenticates with it).
    "CREATE INDEX jobs_token ON jobs(token);",
    // 3: versioned assets (data, environment, model) and datastores.
    R"sql(
CREATE TABLE assets (
  kind TEXT NOT NULL,
  name TEXT NOT NULL,
  version TEXT NOT NULL,
  seq INTEGER NOT NULL,
  spec TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  archived INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (kind, name, version)
) WITHOUT ROWID;
CREATE INDEX assets_latest ON assets(kind, name, seq);
CREATE TABLE datastores (
  name TEXT PRIMARY KEY,
  spec TEXT NOT NULL,
  created_at INTEGER NOT NULL
);
)sql",
    // 4: the GPUs a running job holds, per instance (JSON), so a restarted server rebuilds the
    // holdings.
    "ALTER TABLE jobs ADD COLUMN gpus TEXT NOT NULL DEFAULT '';",
    // 5: pipeline steps that ran to completion, by their reuse key (a later step with the same key
    // is
    // reused) and by what they are (a component, or a pipeline's step), to say why one was not
    // reused.
    R"sql(
CREATE TABLE step_runs (
  key TEXT PRIMARY KEY,
  ident TEXT NOT NULL,
  job TEXT NOT NULL,
  fields TEXT NOT NULL,
  at INTEGER NOT NULL
);
CREATE INDEX step_runs_by_ident ON step_runs (ident, at);
)sql",
    // 6: who submitted a job (a person's name; "" for jobs from before people were named).
    "ALTER TABLE jobs ADD COLUMN created_by TEXT NOT NULL DEFAULT '';"
    "CREATE INDEX jobs_created_by ON jobs(created_by);",
};
}  // namespace

Result<std::unique_ptr<Db>> Db::Open(const std::string& path, bool read_only,
                                     const std::vector<std::string>* migrations) {
  sqlite3* raw = nullptr;
  int flags = read_only ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  flags |= SQLITE_OPEN_NOMUTEX;
  int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = raw ? sqlite3_errmsg(raw) : sqlite3_errstr(rc);
    sqlite3_close(raw);
    return Internal("cannot open database " + path + ": " + msg);
  }
  std::unique_ptr<Db> db(new Db(raw));
  sqlite3_busy_timeout(raw, 10000);
  if (read_only) {
    // Readers are one per server thread: a small page cache each keeps the server's memory small.
    (void)db->Exec("PRAGMA cache_size=-256");
  } else {
    Status s =
        db->Exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;");
    if (!s.ok()) return s;
    s = db->Migrate(migrations ? *migrations : kMigrations);
    if (!s.ok()) return s;
  }
  return db;
}

Db::~Db() {
  cache_.clear();
  sqlite3_close(db_);
}

Status Db::Exec(const std::string& sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    return Internal("sqlite: " + msg);
  }
  return Status::Ok();
}

int Db::SchemaVersion() {
  Stmt& s = Prepare("PRAGMA user_version");
  int v = s.Step() ? static_cast<int>(s.Int(0)) : 0;
  s.Reset();
  return v;
}

Status Db::Migrate(const std::vector<std::string>& migrations) {
  int have = SchemaVersion();
  int want = static_cast<int>(migrations.size());
  if (have > want)
    return FailedPrecondition("the workspace database is at schema version " +
                              std::to_string(have) + ", newer than this cairn (" +
                              std::to_string(want) + "); upgrade cairn");
  for (int v = have; v < want; ++v) {
    Status s = Begin();
    if (!s.ok()) return s;
    s = Exec(migrations[static_cast<size_t>(v)]);
    if (s.ok()) s = Exec("PRAGMA user_version=" + std::to_string(v + 1));
    if (!s.ok()) {
      Rollback();
      return Internal("migration " + std::to_string(v + 1) + " failed: " + s.message());
    }
    s = Commit();
    if (!s.ok()) return s;
  }
  return Status::Ok();
}

Stmt& Db::Prepare(const std::string& sql) {
  auto it = cache_.find(sql);
  if (it != cache_.end()) {
    it->second->Reset();
    return *it->second;
  }
  sqlite3_stmt* s = nullptr;
  int rc = sqlite3_prepare_v2(db_, sql.c_str(), -1, &s, nullptr);
  if (rc != SQLITE_OK) {
    // A statement that does not compile is a bug in Cairn, not an outside failure.
    fprintf(stderr, "cairn: bad SQL (%s): %s\n", sqlite3_errmsg(db_), sql.c_str());
    abort();
  }
  auto& slot = cache_[sql];
  slot = std::make_unique<Stmt>(db_, s);
  return *slot;
}

int Db::Changes() { return sqlite3_changes(db_); }

std::string Db::LastError() const { return sqlite3_errmsg(db_); }

Stmt::~Stmt() { sqlite3_finalize(s_); }

Stmt& Stmt::Bind(int i, const std::string& v) {
  sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  return *this;
}
Stmt& Stmt::Bind(int i, long long v) {
  sqlite3_bind_int64(s_, i, v);
  return *this;
}
Stmt& Stmt::BindDouble(int i, double v) {
  sqlite3_bind_double(s_, i, v);
  return *this;
}
Stmt& Stmt::BindBlob(int i, std::string_view bytes) {
  sqlite3_bind_blob64(s_, i, bytes.data(), bytes.size(), SQLITE_STATIC);
  return *this;
}
Stmt& Stmt::BindNull(int i) {
  sqlite3_bind_null(s_, i);
  return *this;
}

bool Stmt::Step() {
  last_rc_ = sqlite3_step(s_);
  return last_rc_ == SQLITE_ROW;
}

Status Stmt::Run() {
  int rc;
  while ((rc = sqlite3_step(s_)) == SQLITE_ROW) {
  }
  Status out;
  if (rc != SQLITE_DONE) {
    out = Status(rc == SQLITE_CONSTRAINT ? Code::kAlreadyExists : Code::kInternal,
                 std::string("sqlite: ") + sqlite3_errmsg(db_));
  }
  Reset();
  return out;
}

std::string Stmt::Text(int col) {
  const unsigned char* t = sqlite3_column_text(s_, col);
  return t ? std::string(reinterpret_cast<const char*>(t),
                         static_cast<size_t>(sqlite3_column_bytes(s_, col)))
           : std::string();
}
long long Stmt::Int(int col) { return sqlite3_column_int64(s_, col); }
double Stmt::Double(int col) { return sqlite3_column_double(s_, col); }
std::string_view Stmt::Blob(int col) {
  const void* p = sqlite3_column_blob(s_, col);
  return p ? std::string_view(static_cast<const char*>(p),
                              static_cast<size_t>(sqlite3_column_bytes(s_, col)))
           : std::string_view();
}
bool Stmt::IsNull(int col) { return sqlite3_column_type(s_, col) == SQLITE_NULL; }
void Stmt::Reset() {
  sqlite3_reset(s_);
  sqlite3_clear_bindings(s_);
}

}  // namespace cairn::store
