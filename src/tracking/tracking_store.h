// MLflow's model: experiments, runs, metrics, params, tags, dataset inputs. Stored in its own
// SQLite database (tracking.db) so that tracking writes never wait on job-state writes.
//
// Thread-safe. Writes are group-committed: whoever writes while no commit runs leads one, taking
// every write queued meanwhile into the same transaction (each in its own savepoint, so one bad
// request does not fail the others); the rest wait for their result. Reads use a connection per
// calling thread.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "store/db.h"
#include "tracking/metric_series.h"

namespace cairn::tracking {

struct KeyValue {
  std::string key;
  std::string value;
};

struct Metric {
  std::string key;
  double value = 0;  // NaN allowed
  long long timestamp = 0;
  long long step = 0;
  // MLflow 3.x: a metric of a logged model (post-training metrics, evaluation), and the dataset it
  // was measured on. Such a metric is also kept with the model.
  std::string model_id = {}, dataset_name = {}, dataset_digest = {};
};

// MLflow 3.x: a model logged by a run, with its own id, artifacts, params, tags and metrics.
struct ModelMetric {
  Metric metric;
  std::string run_id;
};
struct LoggedModel {
  std::string model_id;
  std::string experiment_id;
  std::string name;
  std::string artifact_uri;
  std::string status = "LOGGED_MODEL_PENDING";
  std::string status_message;
  std::string creator_id;
  std::string model_type;
  std::string source_run_id;
  long long creation_timestamp_ms = 0;
  long long last_updated_timestamp_ms = 0;
  std::vector<KeyValue> tags, params;
  std::vector<ModelMetric> metrics;
};

struct ModelSearch {
  std::vector<std::string> experiment_ids;
  std::string filter;
  // field_name (an attribute or metrics.<key>) and direction; default: creation_timestamp
  // descending.
  std::vector<std::pair<std::string, bool>> order_by;
  int max_results = 50;
  long long offset = 0;
};

struct Experiment {
  std::string experiment_id;
  std::string name;
  std::string artifact_location;
  std::string lifecycle_stage = "active";
  long long creation_time = 0;
  long long last_update_time = 0;
  std::vector<KeyValue> tags;
};

struct RunInfo {
  std::string run_id;
  std::string experiment_id;
  std::string run_name;
  std::string user_id;
  std::string status = "RUNNING";
  std::optional<long long> start_time;
  std::optional<long long> end_time;
  std::string artifact_uri;
  std::string lifecycle_stage = "active";
};

struct Run {
  RunInfo info;
  std::vector<Metric> metrics;  // the latest value of each key
  std::vector<KeyValue> params;
  std::vector<KeyValue> tags;
  nlohmann::json dataset_inputs;                                 // an array, or null for none
  std::vector<std::string> model_inputs;                         // 3.x: models the run used
  std::vector<std::pair<std::string, long long>> model_outputs;  // 3.x: models it logged, at a step
};

struct RunSearch {
  std::vector<std::string> experiment_ids;
  std::string filter;
  std::vector<std::string> order_by;
  std::string view = "ACTIVE_ONLY";  // ACTIVE_ONLY | DELETED_ONLY | ALL
  int max_results = 1000;
  long long offset = 0;  // from the page token
};

// The limits MLflow enforces (mlflow/utils/validation.py), so clients see the same errors.
constexpr size_t kMaxMetricsPerBatch = 1000;
constexpr size_t kMaxParamsPerBatch = 100;
constexpr size_t kMaxTagsPerBatch = 100;
constexpr size_t kMaxEntitiesPerBatch = 1000;
constexpr size_t kMaxKeyLength = 250;
constexpr size_t kMaxParamValueLength = 6000;
constexpr size_t kMaxTagValueLength = 8000;

// A fresh uuid4 as 32 hex digits, as MLflow makes run ids.
std::string Uuid4Hex();
// Whether `id` can name an experiment (a non-negative integer that fits in int64).
bool ValidExperimentId(const std::string& id);

// Checks a metric, param or tag key: MLflow's characters and no path tricks. "" when fine.
std::string KeyError(const std::string& key);

class TrackingStore {
 public:
  static Result<std::unique_ptr<TrackingStore>> Open(const std::string& path);
  ~TrackingStore();
  TrackingStore(const TrackingStore&) = delete;
  TrackingStore& operator=(const TrackingStore&) = delete;

  // Writes.
  Result<std::string> CreateExperiment(const std::string& name,
                                       const std::string& artifact_location,
                                       const std::vector<KeyValue>& tags);
  // The experiment's id, creating it when missing.
  Result<std::string> EnsureExperiment(const std::string& name);
  Status RenameExperiment(const std::string& id, const std::string& new_name);
  Status SetExperimentStage(const std::string& id, const std::string& stage);
  Status SetExperimentTag(const std::string& id, const std::string& key, const std::string& value);
  Status DeleteExperimentTag(const std::string& id, const std::string& key);
  // `run_id` empty: a fresh uuid4 hex. `job_run`: the run of a job being submitted, committed with
  // the job store's durability (it survives a crash of the server; the WAL is flushed by the next
  // durable write or checkpoint) instead of waiting for its own flush: the job's record is written
  // that way too.
  Result<RunInfo> CreateRun(const std::string& experiment_id, const std::string& run_id,
                            const std::string& run_name, const std::string& user_id,
                            std::optional<long long> start_time, const std::vector<KeyValue>& tags,
                            const std::vector<KeyValue>& params = {}, bool job_run = false);
  Result<RunInfo> UpdateRun(const std::string& run_id, const std::string& status,
                            std::optional<long long> end_time, const std::string& run_name);
  Status SetRunStage(const std::string& run_id, const std::string& stage);
  // Removes a run and everything logged to it (used when the job it was made for is refused).
  Status EraseRun(const std::string& run_id);
  // Sets a run's final status without waiting for the commit (the scheduler calls this).
  void FinishRunAsync(const std::string& run_id, const std::string& status, long long end_time);
  Status LogBatch(const std::string& run_id, const std::vector<Metric>& metrics,
                  const std::vector<KeyValue>& params, const std::vector<KeyValue>& tags);
  Status DeleteTag(const std::string& run_id, const std::string& key);
  Status LogInputs(const std::string& run_id, const nlohmann::json& dataset_inputs,
                   const std::vector<std::string>& model_inputs = {});

  // MLflow 3.x logged models and run outputs.
  Result<LoggedModel> CreateLoggedModel(const std::string& experiment_id, const std::string& name,
                                        const std::string& model_type,
                                        const std::string& source_run_id,
                                        const std::string& creator_id,
                                        const std::vector<KeyValue>& params,
                                        const std::vector<KeyValue>& tags);
  Result<LoggedModel> GetLoggedModel(const std::string& model_id);
  Result<LoggedModel> FinalizeLoggedModel(const std::string& model_id, const std::string& status);
  Status LogModelParams(const std::string& model_id, const std::vector<KeyValue>& params);
  Status SetModelTags(const std::string& model_id, const std::vector<KeyValue>& tags);
  Status DeleteModelTag(const std::string& model_id, const std::string& key);
  Status DeleteLoggedModel(const std::string& model_id);
  Result<std::vector<LoggedModel>> SearchLoggedModels(const ModelSearch& search, bool* more);
  // `models`: [{model_id, step}] a run produced.
  Status LogOutputs(const std::string& run_id,
                    const std::vector<std::pair<std::string, long long>>& models);

  // Reads.
  Result<Experiment> GetExperiment(const std::string& id);
  Result<Experiment> GetExperimentByName(const std::string& name);
  // `filter`: clauses on name, tags.<key>, creation_time, last_update_time joined by AND;
  // `order_by`: name, experiment_id, creation_time, last_update_time with ASC or DESC.
  Result<std::vector<Experiment>> SearchExperiments(const std::string& view,
                                                    const std::string& filter,
                                                    const std::vector<std::string>& order_by,
                                                    int max_results, long long offset, bool* more);
  Result<Run> GetRun(const std::string& run_id);
  // The points of one metric in (step, timestamp) order.
  Result<std::vector<Point>> GetHistory(const std::string& run_id, const std::string& key);
  std::vector<std::string> MetricKeys(const std::string& run_id);
  // Every run's latest value of each metric, by run id, keys in order (one query; the studio's jobs
  // table).
  std::unordered_map<std::string, std::vector<Metric>> LatestMetricsOfAllRuns();
  // Every run's params, by run id, keys in order, at most `per_run` each and values cut to
  // `max_value` bytes (at a UTF-8 boundary): what a table of jobs shows as columns (one query).
  std::unordered_map<std::string, std::vector<KeyValue>> ParamsOfAllRuns(size_t per_run,
                                                                         size_t max_value);
  Result<std::vector<Run>> SearchRuns(const RunSearch& search, bool* more);

 private:
  explicit TrackingStore(std::string path, std::unique_ptr<store::Db> writer);
  // `durable`: the commit that holds it is flushed before it returns (in the default durable mode).
  Status Write(std::function<Status(store::Db&)> fn, bool durable = true);
  void WriteAsync(std::function<Status(store::Db&)> fn);
  store::Db& Reader();
  void WriterLoop();
  struct Op;
  void LeadLocked(std::unique_lock<std::mutex>& l);
  std::vector<Status> RunBatch(std::deque<std::shared_ptr<Op>>& batch);
  Result<RunInfo> ReadRunInfo(store::Db& db, const std::string& run_id);
  Result<LoggedModel> ReadLoggedModel(store::Db& db, const std::string& model_id);
  // Fills the run's metrics, params, tags and inputs (replacing what it had).
  void ReadRunData(store::Db& db, Run& r);
  // The same, and the attributes the search's first pass left out, for a page of runs at once.
  void ReadPageData(store::Db& db, std::vector<Run>& page);
  void ReadRunModels(store::Db& db, Run& r);

  struct Op {  // one write; its fields after fn are guarded by mu_
    std::function<Status(store::Db&)> fn;
    bool durable = true;
    bool async = false;     // WriteAsync: nobody waits for it
    bool finished = false;  // committed (or failed): result holds the outcome
    bool lead = false;      // handed the lead by the last group's leader
    Status result;
    std::condition_variable cv;
  };
  std::string path_;
  std::unique_ptr<store::Db> writer_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Op>> ops_;
  bool stopping_ = false;
  bool leading_ =
      false;             // a thread holds the lead (runs a commit, or has been handed the next one)
  bool durable_ = true;  // synchronous=FULL unless CAIRN_TRACKING_SYNC=normal
  bool full_now_ = true;  // the writer's current synchronous setting is FULL
  std::thread thread_;
};

}  // namespace cairn::tracking
