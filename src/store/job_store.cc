#include "store/job_store.h"

namespace cairn::store {

using nlohmann::json;

bool IsTerminalStatus(const std::string& s) {
  return s == "Completed" || s == "Failed" || s == "Canceled" || s == "Paused";
}

Result<std::unique_ptr<JobStore>> JobStore::Open(const std::string& path) {
  auto db = Db::Open(path);
  if (!db.ok()) return db.status();
  return std::unique_ptr<JobStore>(new JobStore(std::move(db).value()));
}

Result<std::unique_ptr<JobStore>> JobStore::OpenReader(const std::string& path) {
  auto db = Db::Open(path, true);
  if (!db.ok()) return db.status();
  return std::unique_ptr<JobStore>(new JobStore(std::move(db).value()));
}

namespace {
const char kColumns[] =
    "name, type, display_name, experiment_name, description, status, status_reason, compute, "
    "parent, "
    "spec, source_yaml, snapshot, tags, properties, created_at, start_time, end_time, archived, "
    "exit_code, error, slots, supervisor_pid, token, seq, gpus, created_by";

std::optional<long long> OptInt(Stmt& s, int c) {
  if (s.IsNull(c)) return std::nullopt;
  return s.Int(c);
}
}  // namespace

JobRecord JobStore::Read(Stmt& s) {
  JobRecord r;
  r.name = s.Text(0);
  r.type = s.Text(1);
  r.display_name = s.Text(2);
  r.experiment_name = s.Text(3);
  r.description = s.Text(4);
  r.status = s.Text(5);
  r.status_reason = s.Text(6);
  r.compute = s.Text(7);
  r.parent = s.Text(8);
  r.spec = json::parse(s.Text(9), nullptr, false);
  r.source_yaml = s.Text(10);
  r.snapshot = s.Text(11);
  r.tags = json::parse(s.Text(12), nullptr, false);
  r.properties = json::parse(s.Text(13), nullptr, false);
  r.created_at = s.Int(14);
  r.start_time = OptInt(s, 15);
  r.end_time = OptInt(s, 16);
  r.archived = s.Int(17) != 0;
  r.exit_code = OptInt(s, 18);
  r.error = s.Text(19);
  r.slots = static_cast<int>(s.Int(20));
  r.supervisor_pid = OptInt(s, 21);
  r.token = s.Text(22);
  r.seq = s.Int(23);
  if (std::string g = s.Text(24); !g.empty()) r.gpus = json::parse(g, nullptr, false);
  if (!r.gpus.is_array()) r.gpus = json::array();
  r.created_by = s.Text(25);
  return r;
}

Status JobStore::Insert(const JobRecord& j, const std::vector<StatusEvent>& events) {
  Status s = db_->Begin();
  if (!s.ok()) return s;
  Stmt& ins = db_->Prepare(
      "INSERT INTO jobs (name, type, display_name, experiment_name, description, status, "
      "status_reason, compute, parent, spec, source_yaml, snapshot, tags, properties, created_at, "
      "slots, "
      "token, created_by) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
  ins.Bind(1, j.name)
      .Bind(2, j.type)
      .Bind(3, j.display_name)
      .Bind(4, j.experiment_name)
      .Bind(5, j.description)
      .Bind(6, j.status)
      .Bind(7, j.status_reason)
      .Bind(8, j.compute)
      .Bind(9, j.parent)
      .Bind(10, j.spec.dump())
      .Bind(11, j.source_yaml)
      .Bind(12, j.snapshot)
      .Bind(13, j.tags.dump())
      .Bind(14, j.properties.dump())
      .Bind(15, j.created_at)
      .Bind(16, j.slots)
      .Bind(17, j.token)
      .Bind(18, j.created_by);
  s = ins.Run();
  if (!s.ok()) {
    db_->Rollback();
    if (s.code() == Code::kAlreadyExists)
      return AlreadyExists("a job named '" + j.name + "' already exists");
    return s;
  }
  int seq = 0;
  for (const auto& e : events) {
    Stmt& h = db_->Prepare(
        "INSERT INTO job_status_history (job, seq, status, reason, at) VALUES (?,?,?,?,?)");
    h.Bind(1, j.name).Bind(2, ++seq).Bind(3, e.status).Bind(4, e.reason).Bind(5, e.at);
    s = h.Run();
    if (!s.ok()) {
      db_->Rollback();
      return s;
    }
  }
  return db_->Commit();
}

Status JobStore::Transition(const std::string& name, const StatusEvent& e,
                            const std::optional<long long>& start_time,
                            const std::optional<long long>& end_time,
                            const std::optional<long long>& exit_code, const std::string& error) {
  return Transition(name, std::vector<StatusEvent>{e}, start_time, end_time, exit_code, error);
}

Status JobStore::Transition(const std::string& name, const std::vector<StatusEvent>& events,
                            const std::optional<long long>& start_time,
                            const std::optional<long long>& end_time,
                            const std::optional<long long>& exit_code, const std::string& error) {
  if (events.empty()) return Status::Ok();
  const StatusEvent& last = events.back();
  Status s = db_->Begin();
  if (!s.ok()) return s;
  Stmt& u = db_->Prepare(
      "UPDATE jobs SET status = ?, status_reason = ?, start_time = COALESCE(?, start_time), "
      "end_time = COALESCE(?, end_time), exit_code = COALESCE(?, exit_code), "
      "error = CASE WHEN ? = '' THEN error ELSE ? END WHERE name = ?");
  u.Bind(1, last.status)
      .Bind(2, last.reason)
      .Bind(3, start_time)
      .Bind(4, end_time)
      .Bind(5, exit_code)
      .Bind(6, error)
      .Bind(7, error)
      .Bind(8, name);
  s = u.Run();
  for (const auto& e : events) {
    if (!s.ok()) break;
    Stmt& h = db_->Prepare(
        "INSERT INTO job_status_history (job, seq, status, reason, at) VALUES (?, "
        "(SELECT COALESCE(MAX(seq), 0) + 1 FROM job_status_history WHERE job = ?), ?, ?, ?)");
    h.Bind(1, name).Bind(2, name).Bind(3, e.status).Bind(4, e.reason).Bind(5, e.at);
    s = h.Run();
  }
  if (!s.ok()) {
    db_->Rollback();
    return s;
  }
  return db_->Commit();
}

Status JobStore::SetSupervisorPid(const std::string& name, long long pid, const json& gpus) {
  return db_->Prepare("UPDATE jobs SET supervisor_pid = ?, gpus = ? WHERE name = ?")
      .Bind(1, pid)
      .Bind(2, gpus.empty() ? std::string() : gpus.dump())
      .Bind(3, name)
      .Run();
}

Status JobStore::UpdateMeta(const JobRecord& j) {
  return db_
      ->Prepare(
          "UPDATE jobs SET display_name = ?, description = ?, experiment_name = ?, tags = ?, "
          "properties = ? WHERE name = ?")
      .Bind(1, j.display_name)
      .Bind(2, j.description)
      .Bind(3, j.experiment_name)
      .Bind(4, j.tags.dump())
      .Bind(5, j.properties.dump())
      .Bind(6, j.name)
      .Run();
}

Status JobStore::SetArchived(const std::string& name, bool archived) {
  return db_->Prepare("UPDATE jobs SET archived = ? WHERE name = ?")
      .Bind(1, archived ? 1 : 0)
      .Bind(2, name)
      .Run();
}

Result<JobRecord> JobStore::Get(const std::string& name) {
  Stmt& s = db_->Prepare(std::string("SELECT ") + kColumns + " FROM jobs WHERE name = ?");
  s.Bind(1, name);
  if (!s.Step()) {
    s.Reset();
    return NotFound("no job named '" + name + "' in this workspace");
  }
  JobRecord r = Read(s);
  s.Reset();
  return r;
}

Status JobStore::PutStepRun(const StepRun& r) {
  Stmt& s = db_->Prepare(
      "INSERT OR REPLACE INTO step_runs (key, ident, job, fields, at) VALUES (?,?,?,?,?)");
  s.Bind(1, r.key).Bind(2, r.ident).Bind(3, r.job).Bind(4, r.fields.dump()).Bind(5, r.at);
  return s.Run();
}

namespace {
Result<StepRun> ReadStepRun(Stmt& s, const std::string& what) {
  if (!s.Step()) {
    s.Reset();
    return NotFound("no completed step " + what);
  }
  StepRun r{s.Text(0), s.Text(1), s.Text(2), nlohmann::json::parse(s.Text(3), nullptr, false),
            s.Int(4)};
  s.Reset();
  if (r.fields.is_discarded()) r.fields = nlohmann::json::object();
  return r;
}
}  // namespace

Result<StepRun> JobStore::StepRunByKey(const std::string& key) {
  Stmt& s = db_->Prepare("SELECT key, ident, job, fields, at FROM step_runs WHERE key = ?");
  s.Bind(1, key);
  return ReadStepRun(s, "with key " + key);
}

std::vector<StepRun> JobStore::RecentStepRuns(const std::string& ident, int limit) {
  Stmt& s = db_->Prepare(
      "SELECT key, ident, job, fields, at FROM step_runs WHERE ident = ? ORDER BY at DESC LIMIT ?");
  s.Bind(1, ident).Bind(2, limit);
  std::vector<StepRun> out;
  while (s.Step()) {
    StepRun r{s.Text(0), s.Text(1), s.Text(2), nlohmann::json::parse(s.Text(3), nullptr, false),
              s.Int(4)};
    if (r.fields.is_discarded()) r.fields = nlohmann::json::object();
    out.push_back(std::move(r));
  }
  s.Reset();
  return out;
}

Result<JobStore::Brief> JobStore::GetBrief(const std::string& name) {
  Stmt& s = db_->Prepare("SELECT status, status_reason, token FROM jobs WHERE name = ?");
  s.Bind(1, name);
  if (!s.Step()) {
    s.Reset();
    return NotFound("no job named '" + name + "' in this workspace");
  }
  Brief b{s.Text(0), s.Text(1), s.Text(2)};
  s.Reset();
  return b;
}

std::string JobStore::JobByToken(const std::string& token) {
  if (token.empty()) return "";
  Stmt& s = db_->Prepare("SELECT name, status FROM jobs WHERE token = ?");
  s.Bind(1, token);
  std::string name, status;
  if (s.Step()) {
    name = s.Text(0);
    status = s.Text(1);
  }
  s.Reset();
  // A job's token ends with the job.
  return IsTerminalStatus(status) ? "" : name;
}

namespace {
// The WHERE and ORDER of a job listing, with its arguments.
std::string FilterSql(const JobFilter& f, std::vector<std::string>& args) {
  std::string sql = " FROM jobs WHERE 1";
  if (f.archived_only)
    sql += " AND archived = 1";
  else if (!f.include_archived)
    sql += " AND archived = 0";
  if (!f.status.empty()) {
    sql += " AND status = ?";
    args.push_back(f.status);
  }
  if (!f.experiment.empty()) {
    sql += " AND experiment_name = ?";
    args.push_back(f.experiment);
  }
  if (!f.parent.empty()) {
    sql += " AND parent = ?";
    args.push_back(f.parent);
  } else if (f.top_level_only)
    sql += " AND parent = ''";
  if (!f.compute.empty()) {
    sql += " AND compute = ?";
    args.push_back(f.compute);
  }
  if (!f.created_by.empty()) {
    sql += " AND created_by = ?";
    args.push_back(f.created_by);
  }
  sql += " ORDER BY seq DESC";
  if (f.max_results > 0) sql += " LIMIT " + std::to_string(f.max_results);
  return sql;
}
}  // namespace

std::vector<JobRecord> JobStore::List(const JobFilter& f) {
  std::vector<std::string> args;
  Stmt& s = db_->Prepare(std::string("SELECT ") + kColumns + FilterSql(f, args));
  for (size_t i = 0; i < args.size(); ++i) s.Bind(static_cast<int>(i + 1), args[i]);
  std::vector<JobRecord> out;
  while (s.Step()) out.push_back(Read(s));
  s.Reset();
  return out;
}

std::vector<JobSummary> JobStore::ListSummaries(const JobFilter& f) {
  std::vector<std::string> args;
  Stmt& s = db_->Prepare(
      "SELECT name, display_name, type, status, experiment_name, compute, parent, created_at, "
      "start_time, end_time, "
      "tags, COALESCE(json_extract(properties, '$.best_child_run_id'), ''), created_by" +
      FilterSql(f, args));
  for (size_t i = 0; i < args.size(); ++i) s.Bind(static_cast<int>(i + 1), args[i]);
  std::vector<JobSummary> out;
  while (s.Step()) {
    JobSummary j;
    j.name = s.Text(0);
    j.display_name = s.Text(1);
    j.type = s.Text(2);
    j.status = s.Text(3);
    j.experiment_name = s.Text(4);
    j.compute = s.Text(5);
    j.parent = s.Text(6);
    j.created_at = s.Int(7);
    j.start_time = OptInt(s, 8);
    j.end_time = OptInt(s, 9);
    j.tags_json = s.Text(10);
    j.best_child = s.Text(11);
    j.created_by = s.Text(12);
    out.push_back(std::move(j));
  }
  s.Reset();
  return out;
}

std::vector<JobRecord> JobStore::NonTerminal() {
  Stmt& s = db_->Prepare(
      std::string("SELECT ") + kColumns +
      " FROM jobs WHERE status NOT IN ('Completed','Failed','Canceled','Paused') ORDER BY seq");
  std::vector<JobRecord> out;
  while (s.Step()) out.push_back(Read(s));
  s.Reset();
  return out;
}

std::vector<StatusEvent> JobStore::History(const std::string& name) {
  Stmt& s =
      db_->Prepare("SELECT status, reason, at FROM job_status_history WHERE job = ? ORDER BY seq");
  s.Bind(1, name);
  std::vector<StatusEvent> out;
  while (s.Step()) out.push_back({s.Text(0), s.Text(1), s.Int(2)});
  s.Reset();
  return out;
}

Status JobStore::PutCompute(const ComputeRecord& c) {
  return db_
      ->Prepare("INSERT OR REPLACE INTO computes (name, type, spec, created_at) VALUES (?,?,?,?)")
      .Bind(1, c.name)
      .Bind(2, c.type)
      .Bind(3, c.spec.dump())
      .Bind(4, c.created_at)
      .Run();
}

Status JobStore::DeleteCompute(const std::string& name) {
  return db_->Prepare("DELETE FROM computes WHERE name = ?").Bind(1, name).Run();
}

Result<ComputeRecord> JobStore::GetCompute(const std::string& name) {
  Stmt& s = db_->Prepare("SELECT name, type, spec, created_at FROM computes WHERE name = ?");
  s.Bind(1, name);
  if (!s.Step()) {
    s.Reset();
    return NotFound("no compute named '" + name + "' in this workspace");
  }
  ComputeRecord c{s.Text(0), s.Text(1), json::parse(s.Text(2), nullptr, false), s.Int(3)};
  s.Reset();
  return c;
}

std::vector<ComputeRecord> JobStore::ListComputes() {
  Stmt& s = db_->Prepare("SELECT name, type, spec, created_at FROM computes ORDER BY name");
  std::vector<ComputeRecord> out;
  while (s.Step())
    out.push_back({s.Text(0), s.Text(1), json::parse(s.Text(2), nullptr, false), s.Int(3)});
  s.Reset();
  return out;
}

namespace {
const char kAssetColumns[] = "kind, name, version, spec, created_at, archived, seq";
std::string AssetWord(const std::string& kind) { return kind == "data" ? "data asset" : kind; }
}  // namespace

AssetRecord JobStore::ReadAsset(Stmt& s) {
  AssetRecord a;
  a.kind = s.Text(0);
  a.name = s.Text(1);
  a.version = s.Text(2);
  a.spec = json::parse(s.Text(3), nullptr, false);
  a.created_at = s.Int(4);
  a.archived = s.Int(5) != 0;
  a.seq = s.Int(6);
  return a;
}

Status JobStore::InsertAsset(const AssetRecord& a) {
  Stmt& s = db_->Prepare(
      "INSERT INTO assets (kind, name, version, seq, spec, created_at, archived) VALUES "
      "(?, ?, ?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM assets WHERE kind = ?1), ?, ?, ?) ON "
      "CONFLICT DO NOTHING");
  s.Bind(1, a.kind)
      .Bind(2, a.name)
      .Bind(3, a.version)
      .Bind(4, a.spec.dump())
      .Bind(5, a.created_at)
      .Bind(6, a.archived ? 1 : 0);
  Status st = s.Run();
  if (!st.ok()) return st;
  if (db_->Changes() == 0)
    return AlreadyExists(AssetWord(a.kind) + " '" + a.name + "' version '" + a.version +
                         "' already exists; versions cannot be changed, give a new --version");
  return Status::Ok();
}

Result<AssetRecord> JobStore::GetAsset(const std::string& kind, const std::string& name,
                                       const std::string& version) {
  Stmt& s = db_->Prepare(std::string("SELECT ") + kAssetColumns +
                         " FROM assets WHERE kind = ? AND name = ? AND version = ?");
  s.Bind(1, kind).Bind(2, name).Bind(3, version);
  if (!s.Step()) {
    s.Reset();
    return NotFound(AssetWord(kind) + " '" + name + "' has no version '" + version +
                    "' in this workspace");
  }
  AssetRecord a = ReadAsset(s);
  s.Reset();
  return a;
}

Result<AssetRecord> JobStore::LatestAsset(const std::string& kind, const std::string& name) {
  Stmt& s = db_->Prepare(
      std::string("SELECT ") + kAssetColumns +
      " FROM assets WHERE kind = ? AND name = ? AND archived = 0 ORDER BY seq DESC LIMIT 1");
  s.Bind(1, kind).Bind(2, name);
  if (!s.Step()) {
    s.Reset();
    return NotFound("no " + AssetWord(kind) + " named '" + name +
                    "' in this workspace (or every version is archived)");
  }
  AssetRecord a = ReadAsset(s);
  s.Reset();
  return a;
}

std::vector<AssetRecord> JobStore::ListAssets(const std::string& kind, const std::string& name,
                                              bool include_archived, bool archived_only) {
  std::string where = archived_only      ? " AND archived = 1"
                      : include_archived ? ""
                                         : " AND archived = 0";
  std::string sql =
      name.empty()
          ? std::string("SELECT ") + kAssetColumns + " FROM assets a WHERE kind = ?1" + where +
                " AND seq = (SELECT MAX(seq) FROM assets b WHERE b.kind = a.kind AND b.name = "
                "a.name" +
                where + ") ORDER BY name"
          : std::string("SELECT ") + kAssetColumns + " FROM assets WHERE kind = ?1 AND name = ?2" +
                where + " ORDER BY seq DESC";
  Stmt& s = db_->Prepare(sql);
  s.Bind(1, kind);
  if (!name.empty()) s.Bind(2, name);
  std::vector<AssetRecord> out;
  while (s.Step()) out.push_back(ReadAsset(s));
  s.Reset();
  return out;
}

Status JobStore::SetAssetArchived(const std::string& kind, const std::string& name,
                                  const std::string& version, bool archived) {
  Stmt& s = db_->Prepare(
      "UPDATE assets SET archived = ? WHERE kind = ? AND name = ? AND (? = '' OR version = ?)");
  s.Bind(1, archived ? 1 : 0).Bind(2, kind).Bind(3, name).Bind(4, version).Bind(5, version);
  Status st = s.Run();
  if (!st.ok()) return st;
  if (db_->Changes() == 0)
    return NotFound(AssetWord(kind) + " '" + name + "'" +
                    (version.empty() ? "" : " version '" + version + "'") +
                    " does not exist in this workspace");
  return Status::Ok();
}

std::string JobStore::NextAssetVersion(const std::string& kind, const std::string& name) {
  Stmt& s = db_->Prepare(
      "SELECT COALESCE(MAX(CAST(version AS INTEGER)), 0) + 1 FROM assets WHERE kind = ? AND name = "
      "? "
      "AND version GLOB '[0-9]*' AND version NOT GLOB '*[^0-9]*'");
  s.Bind(1, kind).Bind(2, name);
  long long v = s.Step() ? s.Int(0) : 1;
  s.Reset();
  return std::to_string(v);
}

Status JobStore::PutDatastore(const DatastoreRecord& d) {
  return db_->Prepare("INSERT OR REPLACE INTO datastores (name, spec, created_at) VALUES (?,?,?)")
      .Bind(1, d.name)
      .Bind(2, d.spec.dump())
      .Bind(3, d.created_at)
      .Run();
}

Status JobStore::DeleteDatastore(const std::string& name) {
  Status s = db_->Prepare("DELETE FROM datastores WHERE name = ?").Bind(1, name).Run();
  if (s.ok() && db_->Changes() == 0)
    return NotFound("no datastore named '" + name + "' in this workspace");
  return s;
}

Result<DatastoreRecord> JobStore::GetDatastore(const std::string& name) {
  Stmt& s = db_->Prepare("SELECT name, spec, created_at FROM datastores WHERE name = ?");
  s.Bind(1, name);
  if (!s.Step()) {
    s.Reset();
    return NotFound("datastore '" + name +
                    "' does not exist in this workspace (cairn datastore list)");
  }
  DatastoreRecord d{s.Text(0), json::parse(s.Text(1), nullptr, false), s.Int(2)};
  s.Reset();
  return d;
}

std::vector<DatastoreRecord> JobStore::ListDatastores() {
  Stmt& s = db_->Prepare("SELECT name, spec, created_at FROM datastores ORDER BY name");
  std::vector<DatastoreRecord> out;
  while (s.Step()) out.push_back({s.Text(0), json::parse(s.Text(1), nullptr, false), s.Int(2)});
  s.Reset();
  return out;
}

Status JobStore::PutSnapshot(const std::string& id, const std::string& manifest) {
  return db_
      ->Prepare(
          "INSERT OR IGNORE INTO snapshots (id, manifest, created_at) VALUES (?, ?, "
          "strftime('%s','now'))")
      .Bind(1, id)
      .Bind(2, manifest)
      .Run();
}

Result<std::string> JobStore::GetSnapshot(const std::string& id) {
  Stmt& s = db_->Prepare("SELECT manifest FROM snapshots WHERE id = ?");
  s.Bind(1, id);
  if (!s.Step()) {
    s.Reset();
    return NotFound("no code snapshot " + id);
  }
  std::string m = s.Text(0);
  s.Reset();
  return m;
}

}  // namespace cairn::store
