// Where a run's files live under the workspace: one folder per job. Plain value, thread-safe.
//
//   runs/<job>/job.json            what the supervisor runs (written by the server before the
//   start) runs/<job>/exit.json           how it ended (written by the supervisor, atomically,
//   before it reports) runs/<job>/supervisor.lock     locked by the job's supervisor while it lives
//   (compute::LockRun) runs/<job>/wd/                 the working directory: the code snapshot;
//   ./outputs and ./logs link
//                                  into artifacts/
//   runs/<job>/artifacts/          the "default" output: outputs/, logs/, user_logs/, system_logs/
//   runs/<job>/inputs/<name>/      delivered inputs
//   runs/<job>/outputs/<name>/     named outputs
#pragma once

#include <string>

namespace cairn::compute {

struct RunLayout {
  std::string root;

  explicit RunLayout(std::string run_root) : root(std::move(run_root)) {}
  static RunLayout For(const std::string& workspace, const std::string& job) {
    return RunLayout(workspace + "/runs/" + job);
  }
  std::string JobFile() const { return root + "/job.json"; }
  std::string ExitFile() const { return root + "/exit.json"; }
  std::string SupervisorLock() const { return root + "/supervisor.lock"; }
  std::string WorkDir() const { return root + "/wd"; }
  std::string Artifacts() const { return root + "/artifacts"; }
  std::string UserLog() const { return root + "/artifacts/user_logs/std_log.txt"; }
  std::string SystemLogDir() const { return root + "/artifacts/system_logs"; }
  std::string SupervisorLog() const { return SystemLogDir() + "/cairn_supervisor.log"; }
  std::string Input(const std::string& name) const { return root + "/inputs/" + name; }
  std::string Output(const std::string& name) const { return root + "/outputs/" + name; }
};

}  // namespace cairn::compute
