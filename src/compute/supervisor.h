// The job supervisor: `cairn supervise <run-dir>`, one process per running job, started detached by
// the server. It prepares the working directory and inputs, runs the command in a shell, copies its
// stdout/stderr into user_logs/std_log.txt as they are written (up to a cap), enforces the timeout,
// kills the whole process tree on SIGTERM (cancel) or timeout, writes exit.json, then tells the server.
// It outlives a server crash; a restarted server reads exit.json. Single-threaded.
#pragma once

#include <string>

namespace cairn::compute {

// Runs the job described by <run_dir>/job.json. Returns the supervisor's own exit code (0 when it
// recorded an outcome, whatever the job's).
int RunSupervisor(const std::string& run_dir);

}  // namespace cairn::compute
