// The Slurm compute: a job becomes an sbatch script that runs Cairn's supervisor in the allocation
// (which starts a node supervisor on every node through srun for a multi-node job); status comes
// from squeue while Slurm remembers the job and from sacct after; cancel is scancel. The commands
// are Slurm's own clients, pointed at the cluster by the compute's slurm.conf. Thread-compatible.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"

namespace cairn::compute {

struct SlurmTarget {
  std::string conf;       // SLURM_CONF for the clients; "" = the clients' default
  std::string partition;  // "" = the cluster's default partition
  std::string account;
  std::string qos;
  std::vector<std::string> sbatch_options;  // extra options, as sbatch spells them
};

struct BatchRequest {
  std::string job;  // Cairn's job name (Slurm's job name is cairn-<job>)
  std::string run_dir;
  std::string cairn;  // the cairn binary, as the nodes reach it
  int nodes = 1;
  int tasks_per_node = 1;
  int gpus_per_node =
      0;  // --gres=gpu:N (a GPU size or instance type); Slurm then sets CUDA_VISIBLE_DEVICES
  int cpus_per_task = 0;  // --cpus-per-task, from an instance type's cpus (0: Slurm's default)
  std::string mem;  // --mem per node, from an instance type's memory ("128G"; "": Slurm's default)
  long long timeout_seconds = 0;  // 0 = the partition's limit
  // Where the supervisor finds the run: in the workspace folder when the node sees it ("auto"),
  // else fetched from the server at `server_url` with the job's token ("http" always does that).
  std::string staging = "auto";
  std::string server_url;
  std::string token;
  // A team server's job: Slurm runs the batch job as this person (sbatch --uid/--gid, which only
  // root may give), so Slurm's accounting, limits and fair share see them. -1: the server's user.
  long long uid = -1, gid = -1;
  // A staged job's Slurm output goes to the node's /tmp under this (random) tag: a file left there
  // by an earlier job of the same name, or put there by someone else, cannot stop it or catch it.
  std::string output_tag;
};

// The batch script: #SBATCH lines, then the supervisor. Pure.
std::string BatchScript(const SlurmTarget& t, const BatchRequest& r);

// Slurm's time limit for a Cairn timeout: whole minutes, rounded up, with a minute for the
// supervisor to stop the job its own way first ("" when there is no timeout). Pure.
std::string SlurmTimeLimit(long long timeout_seconds);

struct SlurmJobState {
  std::string
      state;  // PENDING, RUNNING, COMPLETING, COMPLETED, FAILED, CANCELLED, TIMEOUT, NODE_FAIL, ...
  std::string reason;  // squeue's %r: why pending, or why it ended
  std::string nodes;   // the node list once allocated
};

// Whether Slurm is done with a job in this state (nothing of it runs any more).
bool SlurmStateIsFinal(const std::string& state);

// Parses `squeue -h -o %i|%T|%r|%N` output. Pure.
std::map<std::string, SlurmJobState> ParseSqueue(const std::string& text);

// Runs a Slurm client with the target's SLURM_CONF; stdout, or an error with its stderr.
Result<std::string> RunSlurmCommand(const SlurmTarget& t, const std::vector<std::string>& argv);

// sbatch --parsable <script>: the Slurm job id.
// As r.uid/r.gid when they are set (the submitter must be root).
Result<std::string> SlurmSubmit(const SlurmTarget& t, const std::string& script_path,
                                long long uid = -1, long long gid = -1);
// sbatch's arguments for that. Pure.
std::vector<std::string> SbatchArgv(const std::string& script_path, long long uid, long long gid);
// squeue over the given ids (every state Slurm still remembers); ids Slurm forgot are absent.
Result<std::map<std::string, SlurmJobState>> SlurmQuery(const SlurmTarget& t,
                                                        const std::vector<std::string>& ids);
// sacct's view of a job Slurm's queue has forgotten: "STATE exit=N:S", or nullopt when accounting
// has no record either. Tries the accounting database, then the job completion log (sacct -c).
std::optional<std::string> SlurmAccounting(const SlurmTarget& t, const std::string& id);
// The nodes of `nodelist` Slurm holds down, drained or failed ("n2"), or "" when all are up.
std::string SlurmDownNodes(const SlurmTarget& t, const std::string& nodelist);
// scancel: with `batch_term`, SIGTERM to the batch script only (Cairn's supervisor then stops every
// node its own way); otherwise Slurm's own cancel of every step.
Status SlurmCancel(const SlurmTarget& t, const std::string& id, bool batch_term);

}  // namespace cairn::compute
