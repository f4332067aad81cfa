// The scheduler: the job state machine, the per-compute queues, and the bridge to the local
// compute's supervisors. All of its state belongs to one thread; other threads call the public
// methods, which post a closure to that thread and wait for its answer. Thread-safe through that
// posting.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <map>
#include <optional>
#include <memory>
#include <mutex>
#include <set>
#include <tuple>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "compute/gpu.h"
#include "compute/run_layout.h"
#include "compute/slurm.h"
#include "compute/spawner.h"
#include "scheduler/policy.h"
#include "spec/compute_spec.h"
#include "spec/job_spec.h"
#include "store/blob_store.h"
#include "store/job_store.h"

namespace cairn::scheduler {

struct SchedulerConfig {
  // A team server's: each job runs as the person who submitted it (their uid, gid and groups),
  // and a job of someone with no account on this machine fails with that reason.
  bool run_as_submitter = false;
  std::string workspace;   // $CAIRN_HOME
  std::string server_url;  // http://127.0.0.1:<port>
  std::string self_exe;    // the cairn binary, for `cairn supervise`
  int local_slots = 0;     // 0 = one per CPU
  long long max_log_bytes = 1LL << 30;
  long long system_metrics_seconds = 2;  // how often a supervisor samples its job's use (0: never)
  long long kill_grace_ms = 5000;
  // Each person's quota on a compute (cairn quota set), read at every pass; null: none.
  std::function<std::map<std::string, Quota>(const std::string& compute)> quotas;
  // Fair share: usage halves every this many seconds (CAIRN_FAIR_SHARE_HALF_LIFE_HOURS).
  double fair_share_half_life_s = 7 * 24 * 3600.0;
  std::string
      python_helper_dir;  // put on jobs' PYTHONPATH: cairn_mlflow.py, the dependency-free helper
  // The workspace's Slurm connection (a slurm.conf, CAIRN_SLURM_CONF): with one, an amlcompute is a
  // Slurm partition rather than a slice of this machine. "" = none.
  std::string slurm_conf;
  // Called on the scheduler thread when a job reaches a final status (to close its MLflow run).
  // Must not block.
  std::function<void(const std::string& job, const std::string& status, long long at)> on_final;
  // Sweeps: a trial's MLflow run is made before the trial is (parent run, hyperparameters as
  // params); and a run's history of one metric, oldest report first, for the objective and the
  // early-termination policies.
  std::function<Status(const std::string& trial, const std::string& sweep,
                       const std::string& experiment_id, const nlohmann::json& params)>
      on_trial;
  std::function<std::vector<double>(const std::string& run, const std::string& key)> metric_history;
  // The workspace's secret (its token): supervisors' credentials are derived from it.
  std::string secret;
  // This machine's GPUs (compute::DiscoverGpus), shared by every compute that runs here.
  std::vector<compute::Gpu> gpus;
};

// What a job asks of GPUs, per instance, and the shape that says so.
struct GpuRequest {
  int per_instance = 0;
  int instances = 1;
  std::string shape;      // "Standard_NC12s_v3", an instance type's name, or ""
  std::string from;       // "resources.instance_type", "default_instance_type", "size" or ""
  std::string gpu_model;  // the size table's, for a note when this machine's differ
  std::string note;       // an instance type nobody knows, said in job show
  double cpus = 0;        // an instance type's CPUs and memory per instance ("" / 0: not given)
  std::string memory;
  int Total() const { return per_instance * instances; }
};

// A GPU of this machine and the job holding it ("" when free), for compute show.
struct GpuHolding {
  compute::Gpu gpu;
  std::string job;
};

// The credential a job's supervisor reports with (its events, its exit record, staged files):
// derived from the workspace's secret and the job's token, so the server needs to store nothing
// more, and never given to the job's processes (they hold the job's token, which may only log to
// the job's MLflow run).
std::string SupervisorCredential(const std::string& secret, const std::string& job_token);

struct SubmitRequest {
  nlohmann::json spec;                                 // a normalised JobSpec
  std::string source_yaml;                             // the file as the user wrote it
  std::string snapshot;                                // code snapshot id, "" when no code
  std::map<std::string, std::string> input_manifests;  // input name -> uploaded snapshot id
  bool dry_run = false;                                // validate against the workspace only
  std::string mlflow_experiment_id;  // the job's MLflow experiment (its run is the job's name)
  std::string parent;                // a sweep trial's sweep
  std::string created_by;            // the person submitting it (a child: its parent's)
};

// Wakes long-polling readers when a job changes. Thread-safe.
class JobEvents {
 public:
  long long Version();
  void Bump();
  // Waits until the version passes `seen` or the timeout elapses; returns the current version.
  long long WaitPast(long long seen, int timeout_ms);

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  long long version_ = 0;
};

// The datastores every workspace has, as in Azure ML (its jobs' files name them): folders of the
// workspace
// (<workspace>/datastores/<name>), listed beside the user's and never deleted. workspaceblobstore
// is the default.
inline const std::vector<std::string>& BuiltinDatastores() {
  static const std::vector<std::string> names = {"workspaceblobstore", "workspacefilestore",
                                                 "workspaceartifactstore",
                                                 "workspaceworkingdirectory"};
  return names;
}
inline bool IsBuiltinDatastore(const std::string& name) {
  for (const auto& b : BuiltinDatastores())
    if (b == name) return true;
  return false;
}
inline std::string BuiltinDatastoreFolder(const std::string& workspace, const std::string& name) {
  return workspace + "/datastores/" + name;
}
// azureml://datastores/<name>/paths/<path>: the datastore's name and the path in it (no leading or
// trailing slashes); nullopt for any other form.
std::optional<std::pair<std::string, std::string>> ParseDatastoreUri(const std::string& uri);

// The Slurm cluster a compute's spec names (a slurm compute, or an amlcompute with slurm settings
// or a workspace-wide slurm.conf); nullopt for a compute of this machine.
std::optional<compute::SlurmTarget> SlurmTargetOf(const nlohmann::json& spec,
                                                  const std::string& default_conf);

struct SweepSettings;  // what a sweep's spec says of how it runs (sweep.cc)

class Scheduler {
 public:
  Scheduler(SchedulerConfig config, std::unique_ptr<store::JobStore> store);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Reconciles every non-terminal job with its run folder, then starts the thread.
  void Start();
  void Stop();

  Result<store::JobRecord> Submit(SubmitRequest request);
  Status Cancel(const std::string& name);
  Result<store::JobRecord> Update(const std::string& name, const nlohmann::json& patch);
  Status SetArchived(const std::string& name, bool archived);
  // A supervisor reports "running" or "exited".
  // A supervisor reports "preparing" (with what it is doing: the environment's phases), "running"
  // or "exited".
  Status SupervisorEvent(const std::string& name, const std::string& event,
                         const std::string& reason = "");
  Result<nlohmann::json> CreateCompute(const nlohmann::json& spec);
  Status DeleteCompute(const std::string& name);
  Status PutSnapshot(const std::string& id, const std::string& manifest);

  // Data (data.cc). Where a path names data: blobs of the workspace, a URL, or a file or folder
  // here.
  struct DataLocation {
    std::string kind;         // blobs | http | folder
    std::string snapshot;     // blobs: the manifest's id
    std::string single_file;  // blobs: the file's name, for a uri_file asset
    std::string url;          // http
    std::string local;        // folder: a file or folder on this machine
    std::string asset;        // "name:version" when a data asset or model named it
    std::string type;         // the asset's type
  };
  // Resolves an input's or an asset's path (azureml:<asset>, datastore and job-output URIs, runs:/,
  // URLs, local paths); `asset_kind` is the kind an azureml: reference names. Errors start with
  // `field`.
  Result<DataLocation> LocateData(const std::string& field, const std::string& path,
                                  const std::string& asset_kind);
  Result<store::AssetRecord> CreateAsset(store::AssetRecord asset);
  Status SetAssetArchived(const std::string& kind, const std::string& name,
                          const std::string& version, bool archived);
  Status PutDatastore(const store::DatastoreRecord& d);
  Status DeleteDatastore(const std::string& name);

  // {in use, queued} on a compute's pool.
  std::pair<int, int> PoolUsage(const std::string& compute);
  // The up-to-date reason a queued job waits ("waiting for 1 CPU slot on local (2 of 2 in use, 3
  // queued ahead)"), or "" when it is not queued. Thread-safe without posting.
  std::string LiveQueueReason(const std::string& job);
  // This machine's GPUs with their holders. Thread-safe without posting.
  std::vector<GpuHolding> GpuHoldings();
  const std::vector<compute::Gpu>& gpus() const { return config_.gpus; }

  // The GPUs a job asks for on its compute (resources.instance_type, the compute's
  // default_instance_type or size); how many per instance. Reads the compute's record: call on the
  // scheduler thread, or from a reader with the record in hand (`compute_spec` null for the
  // built-in local compute).
  static GpuRequest RequestOf(const nlohmann::json& job_spec, const nlohmann::json* compute_spec);

  // Schedules `compute` again (its quotas changed): posts to the scheduler thread.
  void Nudge(const std::string& compute);
  JobEvents& events() { return events_; }
  const SchedulerConfig& config() const { return config_; }
  int local_slots() const { return local_slots_; }

 private:
  struct Queued {
    std::string name;
    int slots = 1;
    int gpus = 0;              // in all, on this machine
    int passed = 0;            // how often a later job started first while this one waited for GPUs
    long long timeout_ms = 0;  // its limits.timeout; 0: none
    // For the policy (policy.h): whose it is (a team server's person; else its experiment), its
    // queue_settings, when it was queued.
    std::string owner;
    Priority priority = Priority::kMedium;
    Tier tier = Tier::kStandard;
    long long enqueued_ms = 0;
  };
  // A job that holds slots or GPUs, as the policy sees it, and on which compute.
  struct Holding {
    std::string compute;
    RunningJob job;
  };
  std::map<std::string, Holding> holding_;  // job -> what it holds (started by Schedule)
  std::set<std::string> preempting_;        // jobs sent SIGTERM for a preemption, until requeued
  // Requeued jobs whose last supervisor is still on its way out (it holds the run's lock): queued
  // again once it is gone (Tick), so that the next one does not find the lock taken.
  std::map<std::string, long long> requeue_after_exit_;
  void EnqueueAgain(const std::string& name);
  UsageLedger usage_;         // each owner's decayed GPU- and CPU-seconds
  long long charged_at_ = 0;  // when holding_ was last charged to usage_
  void ChargeUsage(long long now);
  // Whose a job is for fair share, and its queue_settings.
  void QueueInfo(const store::JobRecord& job, Queued& q) const;

  struct Pool {
    int capacity = 0;
    int in_use = 0;
    std::deque<Queued> queue;
  };
  // What readers may ask about queues without posting to the scheduler thread: each queued job's
  // ticket in its pool, so "N queued ahead" is computed when asked rather than rewritten on every
  // change.
  struct LiveQueues {
    std::mutex mu;
    std::map<std::string, std::tuple<std::string, long long, int>>
        ticket_of;                                       // job -> (pool, ticket, slots)
    std::map<std::string, std::set<long long>> tickets;  // pool -> queued tickets
    std::map<std::string, std::pair<int, int>> usage;    // pool -> (in use, capacity)
    long long next_ticket = 0;
    std::map<std::string, int> gpus_needed;  // queued job -> GPUs it waits for
    std::vector<GpuHolding> gpus;            // this machine's, with holders
    struct Reserved {
      std::string job;
      long long ticket = 0;
      int gpus = 0;
      long long shadow =
          0;  // when its GPUs are expected free (policy.h's Reservation); max: unknown
    };
    std::map<std::string, Reserved> reserved;  // pool -> the job the queue waits for, when one does
    std::map<std::string, std::string> policy_reason;  // queued job -> why the policy holds it
  };

  template <typename T>
  T Call(std::function<T()> fn);
  void Post(std::function<void()> fn);
  void Loop();
  void Tick();

  void Reconcile();
  // The live supervisor that holds a job's run lock, when it is not the pid on record (a server
  // killed between the spawn and the record, or a second supervisor that stopped for the first):
  // nullopt if none.
  std::optional<long long> LockHolderOf(const std::string& name, long long recorded);
  // Takes such a supervisor as the job's: its pid (with the job's GPUs) on record and in
  // running_pids_.
  void Adopt(const std::string& name, long long pid, const nlohmann::json& gpus);
  // Sweeps (sweep.cc): each step issues trials up to the limits, applies the early-termination
  // policy to new reports of the primary metric, records the best trial, and ends the sweep when it
  // is done.
  void SweepStep(const std::string& sweep);
  // SweepStep's steps (sweep.cc).
  void ForgetSweep(const std::string& name);
  void SweepLog(const std::string& sweep, const std::string& line);
  // Keeps a sweep's view of its trial current and, when the trial ended, asks for a step.
  void NoteTrialStatus(const std::string& trial, const std::string& status);
  struct SweepTrial {
    std::string name;
    std::string status;
    nlohmann::json hyperparameters;
    std::vector<double>
        values;  // reports of the primary metric; final once the trial has ended and been read
    bool values_final = false;
    size_t evaluated = 0;  // reports the policy has seen
    bool end_logged = false;
    bool stopped = false;  // by the policy
  };
  struct SweepState {
    bool loaded = false;
    bool step_pending = false;
    std::vector<SweepTrial> trials;  // by number
  };
  void LoadTrials(const std::string& name, SweepState& st);
  void ApplyEarlyTermination(const std::string& name, SweepState& st, const SweepSettings& c,
                             bool ending);
  void LogEndedTrials(const std::string& name, SweepState& st, const SweepSettings& c);
  void RecordBestTrial(const std::string& name, const store::JobRecord& sweep, SweepState& st,
                       const SweepSettings& c);
  Result<store::JobRecord> IssueTrial(const std::string& name, const store::JobRecord& sweep,
                                      SweepState& st, const nlohmann::json& params, uint64_t n);
  void FinishSweep(const std::string& name, SweepState& st, bool ending,
                   const std::string& end_reason);
  // A sweep's state is its records; this is a cache of them, so a step costs the trials still
  // running, not every trial (a 1000-trial sweep takes a step per trial).
  std::map<std::string, SweepState> sweeps_;        // sweeps in progress
  std::map<std::string, std::string> trial_sweep_;  // trial -> its sweep, for sweeps in progress
  std::map<std::string, std::string>
      cancel_reason_;  // job -> why it was canceled, when not by a user
  // Pipelines (pipeline.cc): each step launches the steps whose inputs are ready, retries, reuses,
  // and ends the pipeline when nothing is left to run. The cache below mirrors the step jobs'
  // records.
  struct StepAttempt {
    std::string job;
    std::string status;
    int attempt = 1;
  };
  struct PipelineState {
    bool loaded = false;
    bool step_pending = false;
    std::map<std::string, std::vector<StepAttempt>>
        attempts;                      // step -> its jobs, oldest attempt first
    std::set<std::string> recorded;    // completed step jobs already kept for reuse
    std::set<std::string> end_logged;  // step jobs whose end is in the pipeline's log
    // The pipeline's own record, read once: its steps and what its steps take from it.
    bool spec_loaded = false;
    nlohmann::json pipeline;  // spec.pipeline
    std::string experiment_name, display_name, mlflow_experiment_id, created_by;
  };
  std::map<std::string, PipelineState> pipelines_;    // pipelines in progress
  std::map<std::string, std::string> step_pipeline_;  // step job -> its pipeline
  void PipelineStep(const std::string& pipeline);
  // PipelineStep's steps (pipeline.cc).
  void ForgetPipeline(const std::string& name);
  bool LoadPipeline(const std::string& name, PipelineState& st);
  void LogEndedSteps(const std::string& name, PipelineState& st);
  void RememberCompletedSteps(PipelineState& st);
  bool LaunchReadySteps(const std::string& name, PipelineState& st, bool& waiting_for_hashes);
  void FinishPipelineIfDone(const std::string& name, PipelineState& st, bool ending, bool stopping,
                            const std::string& first_failed);
  static const StepAttempt* LatestAttempt(
      const std::map<std::string, std::vector<StepAttempt>>& attempts, const std::string& step);
  static bool StepFailedForGood(const PipelineState& st, const nlohmann::json& step,
                                bool canceling);
  void NotePipelineChild(const std::string& child, const std::string& status);
  Status LaunchStep(const std::string& pipeline, const nlohmann::json& step, int attempt);
  nlohmann::json ReuseFieldsOf(const nlohmann::json& step, const nlohmann::json& spec,
                               const nlohmann::json& hashes);
  Status RecordReusedStep(const std::string& pipeline, const nlohmann::json& step, int attempt,
                          const nlohmann::json& spec, const store::JobRecord& orig);
  Status ValidatePipeline(const spec::JobSpec& s, const SubmitRequest& r);
  std::string OutputJobOf(const std::string& step_job);
  // Output hashes, for consumers' reuse keys: what a job's outputs hold, recorded in its properties
  // once known. Hashing reads every byte, so it runs on a thread of its own (a step's 10 GB model
  // does not stall the scheduler); until it is done, the job's consumers wait. nullopt = not known
  // yet (and asked for).
  std::optional<nlohmann::json> KnownOutputHashes(const std::string& job);
  void OutputsHashed(const std::string& job, const nlohmann::json& hashes);
  // Where a job's outputs are: "artifacts" (its outputs/ folder) and each named output.
  std::vector<std::pair<std::string, std::string>> OutputPaths(const store::JobRecord& job);
  // The seal of each output (SealTree in pipeline.cc), taken when a step completes; and why a
  // completed job's outputs no longer match theirs ("" when they do).
  nlohmann::json SealOutputs(const store::JobRecord& job);
  std::string TouchedOutputs(const std::string& job);
  struct HashRequest {
    std::string job;
    std::vector<std::pair<std::string, std::string>> paths;  // output -> where it is
  };
  void HashLoop();
  std::mutex hash_mu_;
  std::condition_variable hash_cv_;
  std::deque<HashRequest> hash_queue_;
  bool hash_stop_ = false;
  std::thread hash_thread_;
  std::set<std::string> hashing_;  // jobs whose outputs are being hashed
  std::map<std::string, nlohmann::json>
      known_hashes_;  // while pipelines run: job -> its output hashes
  Result<store::JobRecord> DoSubmit(SubmitRequest& r);
  // DoSubmit's steps, in order (scheduler.cc).
  Result<std::string> NameFor(const spec::JobSpec& s, bool dry_run);
  Status CheckPlacement(const spec::JobSpec& s, const nlohmann::json& raw_spec,
                        const std::string& compute, int& slots, int& gpus);
  Status CheckInputs(const spec::JobSpec& s, SubmitRequest& r);
  Status CheckOutputs(const spec::JobSpec& s);
  store::JobRecord RecordFor(spec::JobSpec& s, const SubmitRequest& r, const std::string& name,
                             const std::string& compute, int slots);
  Result<store::JobRecord> StartParent(const store::JobRecord& job, const spec::JobSpec& s);
  Result<store::JobRecord> Admit(const store::JobRecord& job, const std::string& compute, int slots,
                                 int gpus, long long timeout_seconds);
  Status DoCancel(const std::string& name, const std::string& reason = "");
  Status Transition(const std::string& name, const std::string& status, const std::string& reason,
                    std::optional<long long> start = std::nullopt,
                    std::optional<long long> end = std::nullopt,
                    std::optional<long long> exit_code = std::nullopt,
                    const std::string& error = "");
  Pool* PoolFor(const std::string& compute);
  void Schedule(const std::string& compute);
  void StartJob(const store::JobRecord& job);
  void FinishFromExitFile(const std::string& name, const std::string& unrecorded = "");
  void FailJob(const std::string& name, const std::string& reason);
  void Release(const store::JobRecord& job);
  // Preemption (policy.h chose the job): SIGTERM now, the kill grace, then its supervisor's end
  // puts it back in the queue (Requeue) instead of ending it. Recorded in the job's properties
  // (preempted_for), so a server restarted meanwhile still requeues it.
  void Preempt(const std::string& name, const std::string& for_job);
  // Back to Queued in the same run: its resources freed, exit.json removed (the next supervisor
  // runs it again, its outputs and logs kept), its attempt counted, its MLflow run left open.
  void Requeue(const store::JobRecord& job, const std::string& reason, bool retry = false);
  // Why a job that ended `outcome` (failed, timeout) with `code` is tried again, from its
  // properties cairn.max_retries and cairn.retry_exit_codes; nullopt when it is not.
  std::optional<std::string> RetryReason(const store::JobRecord& job, const std::string& outcome,
                                         std::optional<long long> code, const std::string& why);
  std::string QueueReason(const std::string& compute, int need, size_t ahead);
  void Enqueue(const std::string& compute, const store::JobRecord& job, int slots, int gpus = 0,
               long long timeout_s = 0);
  // Whether a compute's jobs run on this machine (not on Slurm).
  bool RunsHere(const std::string& compute);
  // GPUs on this machine: whether a compute's jobs run here (not on Slurm), what a job needs,
  // holding and freeing them.
  GpuRequest RequestFor(const store::JobRecord& job);
  int FreeGpus() const;
  std::vector<std::vector<int>> HoldGpus(const std::string& job, const GpuRequest& req);
  void FreeGpusOf(const std::string& job);
  void PublishGpus();
  std::string GpuWaitReason(const std::string& compute, int need);
  void Dequeued(const std::string& name);
  void PublishUsage(const std::string& compute);
  Result<nlohmann::json> BuildRunFile(const store::JobRecord& job,
                                      std::vector<std::string>& notices,
                                      const std::vector<std::vector<int>>& gpus = {});
  // BuildRunFile's parts (scheduler.cc).
  nlohmann::json HeldGpus(const std::vector<std::vector<int>>& gpus, size_t& per_instance);
  Status RunInputs(const store::JobRecord& job, const spec::JobSpec& s,
                   const compute::RunLayout& layout, std::vector<std::string>& notices,
                   std::map<std::string, std::string>& values, nlohmann::json& env,
                   nlohmann::json& inputs);
  nlohmann::json RunOutputs(const spec::JobSpec& s, const compute::RunLayout& layout,
                            std::map<std::string, std::string>& values, nlohmann::json& env);
  void AddJobEnvironment(const store::JobRecord& job, const spec::JobSpec& s,
                         const compute::RunLayout& layout, nlohmann::json& env,
                         nlohmann::json& run);
  // data.cc, on the scheduler thread.
  Result<DataLocation> Locate(const std::string& field, const std::string& path,
                              const std::string& asset_kind, int depth = 0);
  // Locate's cases (data.cc).
  Result<DataLocation> LocateAsset(const std::string& field, const std::string& path,
                                   const std::string& asset_kind, int depth);
  Result<DataLocation> LocateDatastore(const std::string& field, const std::string& path,
                                       const std::string& asset_kind, int depth);
  Result<DataLocation> LocateJobOutput(const std::string& field, const std::string& path,
                                       const std::string& asset_kind, int depth);
  Result<DataLocation> LocateRunArtifacts(const std::string& field, const std::string& path);
  std::string DatastoreFolder(const std::string& name);
  void RegisterOutputAssets(const store::JobRecord& job);
  // The run file's "container" object for the job's environment ({} when it runs on this host), and
  // what was decided in `notices`.
  nlohmann::json ContainerFor(const store::JobRecord& job, const spec::JobSpec& s,
                              std::vector<std::string>& notices);
  // The run file's entry for one input: how the supervisor delivers it, and what the command sees.
  Result<nlohmann::json> InputItem(const std::string& name, const spec::InputSpec& in,
                                   const DataLocation& loc, const std::string& dir, bool on_slurm,
                                   std::string& target);

  // The Slurm compute (slurm_jobs.cc). A job on it is an sbatch script; its supervisor reports as a
  // local one does, and Tick reconciles every Slurm job with squeue (pending reasons, starts) and,
  // once Slurm forgets it, with sacct: an end that left no exit record fails with Slurm's word for
  // it.
  struct SlurmWatch {
    std::string id;  // Slurm's job id
    compute::SlurmTarget target;
    std::string state;  // last seen: PENDING, RUNNING, ...
    std::string reason;
    std::string nodes;             // the allocation, once Slurm gave one
    long long ended_at = 0;        // when Slurm was first seen done with it, without an exit record
    long long cancel_sent_at = 0;  // when Cairn asked the supervisor to stop (scancel --batch)
    bool cancel_on_submit = false;  // canceled while sbatch was still running
    long long completing_since =
        0;  // when its recorded end was first held back because Slurm still had it
  };
  std::optional<compute::SlurmTarget> SlurmTargetFor(const std::string& compute);
  int CapacityOf(const spec::ComputeSpec& c) const;
  void StartSlurmJob(const store::JobRecord& job, nlohmann::json run,
                     const compute::SlurmTarget& target);
  void CancelSlurmJob(const store::JobRecord& job, const std::string& reason);
  void PollSlurm();
  // Takes up a job a previous server gave Slurm; false when Slurm never got it (submit it anew).
  bool ReconcileSlurmJob(const store::JobRecord& job);
  std::map<std::string, SlurmWatch>
      slurm_;  // job -> its Slurm job, while in progress ("" id: being submitted)
  long long last_slurm_poll_ = 0;
  // sbatch runs on a thread of its own, so a submission answers without waiting for Slurm's client
  // and the scheduler goes on meanwhile; the id comes back to the scheduler thread
  // (SlurmSubmitted).
  struct SlurmSubmission {
    std::string job;
    std::string script;
    compute::SlurmTarget target;
    long long uid = -1, gid = -1;  // whom Slurm runs it as (-1: the server's user)
  };
  void SubmitLoop();
  void SlurmSubmitted(const std::string& job, const Result<std::string>& id);
  std::mutex submit_mu_;
  std::condition_variable submit_cv_;
  std::deque<SlurmSubmission> submissions_;
  bool submit_stop_ = false;
  std::thread submit_thread_;

  SchedulerConfig config_;
  std::unique_ptr<store::JobStore> store_;
  store::BlobStore blobs_;
  JobEvents events_;
  int local_slots_ = 1;
  std::map<std::string, Pool> pools_;
  std::map<std::string, long long> running_pids_;    // job -> supervisor pid
  std::map<int, std::string> gpu_holder_;            // GPU index -> the job holding it
  std::map<std::string, std::vector<int>> gpus_of_;  // job -> the GPUs it holds
  // GPU job with a limits.timeout -> when it ends it at the latest: the timeout runs from the
  // command's start, so unknown (max) until the supervisor reports it running (a container image
  // may take long to get).
  std::map<std::string, long long> expected_end_;
  std::map<std::string, long long> timeout_ms_;  // the same jobs' timeouts
  std::map<std::string, long long> spawned_at_;  // job -> when this server started its supervisor
  std::set<long long> children_;                 // supervisors this server started, until reaped
  // Forks the local compute's supervisors (CAIRN_SPAWNER=off: each is exec'd by the server, as
  // before).
  std::unique_ptr<compute::SupervisorSpawner> spawner_;
  LiveQueues live_;
  long long last_task_at_ = 0;
  bool trimmed_ = true;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  bool stopping_ = false;
  std::thread thread_;
};

// Runs `fn` on the scheduler thread and waits for its answer.
template <typename T>
T Scheduler::Call(std::function<T()> fn) {
  auto p = std::make_shared<std::promise<T>>();
  auto f = p->get_future();
  Post([p, fn = std::move(fn)] { p->set_value(fn()); });
  return f.get();
}

}  // namespace cairn::scheduler
