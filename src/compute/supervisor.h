// The job supervisor: `cairn supervise <run-dir>`, one process per running job, started detached by
// the server (local compute) or as a Slurm batch script (Slurm compute). It prepares the working
// directory and inputs, starts the job's processes (one, or every rank of a distributed job: see
// distribution.h), copies each one's stdout/stderr into its user log as it is written (up to a
// cap), stops them all when one fails, on SIGTERM (cancel) or at the timeout, writes exit.json,
// then tells the server. It outlives a server crash; a restarted server reads exit.json.
// Single-threaded.
#pragma once

#include <string>

namespace cairn::compute {

// Runs the job described by <run_dir>/job.json. Returns the supervisor's own exit code (0 when it
// recorded an outcome, whatever the job's).
int RunSupervisor(const std::string& run_dir);

// `cairn supervise <run-dir> --node`: one node of a multi-node Slurm job, started by the job's
// coordinating supervisor through srun. Starts the node's share of the processes (node rank from
// SLURM_NODEID, the plan from the coordinator), writes system_logs/node_<rank>.json, and exits
// non-zero when a process failed, so srun stops the other nodes.
int RunNodeSupervisor(const std::string& run_dir);

// `cairn supervise --staged <server-url> <job> [--node]`: the same, on a node that does not see the
// workspace's filesystem. The run file and the blobs it names come from the server (job token in
// CAIRN_INTERNAL_TOKEN) into a node-local folder; logs go back every second, outputs and records at
// the end.
int RunStagedSupervisor(const std::string& server_url, const std::string& job, bool node);

}  // namespace cairn::compute
