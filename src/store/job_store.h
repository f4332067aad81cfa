// The workspace's records: jobs with their status history, computes, code snapshots. A JobStore
// wraps one Db connection and so is not thread-safe: the scheduler thread owns the writer; each
// reader thread opens its own with OpenReader.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "store/db.h"

namespace cairn::store {

struct StatusEvent {
  std::string status;
  std::string reason;
  long long at = 0;  // Unix milliseconds
};

struct JobRecord {
  std::string name;
  std::string type = "command";
  std::string display_name;
  std::string experiment_name;
  std::string description;
  std::string status;
  std::string status_reason;
  std::string compute;
  std::string parent;
  nlohmann::json spec;  // the normalised JobSpec
  std::string source_yaml;
  std::string snapshot;
  nlohmann::json tags = nlohmann::json::object();
  nlohmann::json properties = nlohmann::json::object();
  long long created_at = 0;
  std::optional<long long> start_time;
  std::optional<long long> end_time;
  bool archived = false;
  std::optional<long long> exit_code;
  std::string error;
  int slots = 1;
  std::optional<long long> supervisor_pid;
  std::string token;
  long long seq = 0;
  // The GPUs of this machine the job holds while it runs, per instance ([[0, 1], [2, 3]]); [] for
  // none.
  nlohmann::json gpus = nlohmann::json::array();
  // Who submitted it (a person's name; a sweep's trials and a pipeline's steps take their
  // parent's);
  // "" for jobs from before people were named.
  std::string created_by;
};

struct JobFilter {
  int max_results = 50;  // 0 = all
  std::string status;
  std::string experiment;
  std::string parent;
  std::string compute;
  bool include_archived = false;
  bool archived_only = false;
  bool top_level_only = false;  // no sweep trials
  std::string created_by;
};

// What a table of jobs shows, read without parsing any job's spec (the studio's jobs page).
struct JobSummary {
  std::string name, display_name, type, status, experiment_name, compute, parent;
  long long created_at = 0;
  std::optional<long long> start_time, end_time;
  std::string tags_json;   // as stored
  std::string best_child;  // a sweep's best trial, when it has one
  std::string created_by;
};

struct ComputeRecord {
  std::string name;
  std::string type;
  nlohmann::json spec;
  long long created_at = 0;
};

// A version of a data asset, an environment or a model. `spec` holds the asset's fields as the API
// shows them (type, path, description, tags, ...) plus where its content lives.
struct AssetRecord {
  std::string kind;  // data | environment | model
  std::string name;
  std::string version;
  nlohmann::json spec = nlohmann::json::object();
  long long created_at = 0;
  bool archived = false;
  long long seq = 0;  // creation order; "latest" is the highest not archived
};

struct DatastoreRecord {
  std::string name;
  nlohmann::json spec = nlohmann::json::object();  // {type, path, description}
  long long created_at = 0;
};

// A pipeline step that completed: its reuse key, what it is (a component's name, or a pipeline's
// step), and the fields the key was made of, to say what changed when a later step is not reused.
struct StepRun {
  std::string key;
  std::string ident;
  std::string job;
  nlohmann::json fields = nlohmann::json::object();
  long long at = 0;
};

class JobStore {
 public:
  // The writer: creates and migrates the database.
  static Result<std::unique_ptr<JobStore>> Open(const std::string& path);
  // A read-only connection for another thread.
  static Result<std::unique_ptr<JobStore>> OpenReader(const std::string& path);

  // Inserts the job and its first status events in one transaction. AlreadyExists if the name is
  // taken.
  Status Insert(const JobRecord& job, const std::vector<StatusEvent>& events);
  // Records a transition (status, reason, time) and the fields that come with it, in one
  // transaction.
  Status Transition(const std::string& name, const StatusEvent& event,
                    const std::optional<long long>& start_time = std::nullopt,
                    const std::optional<long long>& end_time = std::nullopt,
                    const std::optional<long long>& exit_code = std::nullopt,
                    const std::string& error = "");
  // Several transitions in one transaction (e.g. Finalizing then Completed); the last is the
  // status.
  Status Transition(const std::string& name, const std::vector<StatusEvent>& events,
                    const std::optional<long long>& start_time,
                    const std::optional<long long>& end_time,
                    const std::optional<long long>& exit_code, const std::string& error);
  // Its supervisor's pid and the GPUs it holds, recorded together once it is started.
  Status SetSupervisorPid(const std::string& name, long long pid,
                          const nlohmann::json& gpus = nlohmann::json::array());
  Status UpdateMeta(
      const JobRecord& job);  // display_name, description, experiment, tags, properties
  Status SetArchived(const std::string& name, bool archived);

  Result<JobRecord> Get(const std::string& name);
  // A job's status, reason and token without the rest of its record (no JSON parsed): for the
  // checks made on every report and every log poll.
  struct Brief {
    std::string status, status_reason, token;
  };
  Result<Brief> GetBrief(const std::string& name);
  // The job whose token this is while it has not ended, or "".
  std::string JobByToken(const std::string& token);
  std::vector<JobRecord> List(const JobFilter& filter);
  std::vector<JobSummary> ListSummaries(const JobFilter& filter);
  std::vector<JobRecord> NonTerminal();
  std::vector<StatusEvent> History(const std::string& name);

  Status PutCompute(const ComputeRecord& c);
  Status DeleteCompute(const std::string& name);
  Result<ComputeRecord> GetCompute(const std::string& name);
  std::vector<ComputeRecord> ListComputes();

  // Inserts a new version; AlreadyExists if that version exists (versions never change once made).
  Status InsertAsset(const AssetRecord& a);
  Result<AssetRecord> GetAsset(const std::string& kind, const std::string& name,
                               const std::string& version);
  // The most recently created version that is not archived.
  Result<AssetRecord> LatestAsset(const std::string& kind, const std::string& name);
  // With `name`: every version of it, newest first; without: the latest version of each name.
  std::vector<AssetRecord> ListAssets(const std::string& kind, const std::string& name,
                                      bool include_archived, bool archived_only);
  // One version, or with `version` empty every version of the name. NotFound when nothing matched.
  Status SetAssetArchived(const std::string& kind, const std::string& name,
                          const std::string& version, bool archived);
  // One more than the highest integer version of `name` (1 for a new name).
  std::string NextAssetVersion(const std::string& kind, const std::string& name);

  Status PutDatastore(const DatastoreRecord& d);
  Status DeleteDatastore(const std::string& name);
  Result<DatastoreRecord> GetDatastore(const std::string& name);
  std::vector<DatastoreRecord> ListDatastores();

  Status PutStepRun(const StepRun& r);  // the latest completion of a key wins
  Result<StepRun> StepRunByKey(const std::string& key);
  // The most recent completions of that step, newest first.
  std::vector<StepRun> RecentStepRuns(const std::string& ident, int limit);

  Status PutSnapshot(const std::string& id, const std::string& manifest);
  Result<std::string> GetSnapshot(const std::string& id);

  Db& db() { return *db_; }

 private:
  explicit JobStore(std::unique_ptr<Db> db) : db_(std::move(db)) {}
  JobRecord Read(Stmt& s);
  static AssetRecord ReadAsset(Stmt& s);
  std::unique_ptr<Db> db_;
};

bool IsTerminalStatus(const std::string& status);

}  // namespace cairn::store
