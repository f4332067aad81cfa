// Distributed jobs: how many processes a distribution starts, where each runs, and what each sees.
// Pure functions over plain values, shared by the local compute (every "instance" on this machine)
// and the Slurm compute (one node supervisor per allocated node). Thread-safe.
//
//   pytorch     nodes x process_count_per_instance processes; MASTER_ADDR/PORT, WORLD_SIZE, RANK,
//               LOCAL_RANK, LOCAL_WORLD_SIZE, NODE_RANK, and Azure ML's names for the same.
//   tensorflow  worker_count + parameter_server_count processes spread over the nodes; TF_CONFIG.
//   mpi         one `mpirun` started by the first node; Open MPI places the ranks.
//   (none)      one process: a plain command job.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace cairn::compute {

struct DistPlan {
  std::string type;  // "" (none) | pytorch | tensorflow | mpi
  int nodes = 1;
  int per_node = 1;                // pytorch, mpi: process_count_per_instance; tensorflow: derived
  int workers = 0;                 // tensorflow
  int ps = 0;                      // tensorflow parameter servers
  std::vector<std::string> hosts;  // one address per node, node rank order
  int master_port = 0;             // rendezvous port on hosts[0]; TF tasks use the ports after it

  // Total processes, and how many of them run on `node`.
  int Total() const;
  int OnNode(int node) const;
  // The global rank of a node's local process.
  int Rank(int node, int local) const { return node * per_node + local; }
  bool Distributed() const { return !type.empty(); }
};

// From a job's normalised `distribution` (null for none) and its instance count.
DistPlan PlanFor(const nlohmann::json& distribution, int instance_count);
nlohmann::json ToJson(const DistPlan& p);
DistPlan DistPlanFromJson(const nlohmann::json& j);

// The variables one process sees, on top of the job's own.
std::map<std::string, std::string> RankEnv(const DistPlan& p, int node, int local);

// The per-process log, relative to the run's artifacts: user_logs/std_log_process_<rank>.txt for
// distributed jobs, user_logs/std_log.txt otherwise.
std::string RankLogName(const DistPlan& p, int rank);

// The `mpirun` line for an MPI job: every rank's output goes to its own log in `log_dir`.
// `host_slots` is "host:n,host:n" (empty inside a Slurm allocation, which Open MPI reads itself).
std::vector<std::string> MpirunArgv(const DistPlan& p, const std::string& command,
                                    const std::string& log_dir, const std::string& host_slots,
                                    const std::vector<std::string>& extra);

}  // namespace cairn::compute
