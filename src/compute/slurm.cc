#include "compute/slurm.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/util.h"
#include "compute/process.h"

extern char** environ;

namespace cairn::compute {

namespace {
constexpr long long kSlurmCommandTimeoutMs = 15000;

// Single quotes for /bin/sh.
std::string ShellQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}
}  // namespace

std::string SlurmTimeLimit(long long timeout_seconds) {
  if (timeout_seconds <= 0) return "";
  return std::to_string((timeout_seconds + 59) / 60 + 1);
}

std::string BatchScript(const SlurmTarget& t, const BatchRequest& r) {
  std::string s = "#!/bin/sh\n";
  s += "# Written by Cairn for job " + r.job +
       ": the supervisor starts the job's processes on every node.\n";
  auto opt = [&](const std::string& o) { s += "#SBATCH " + o + "\n"; };
  opt("--job-name=cairn-" + r.job);
  opt("--nodes=" + std::to_string(r.nodes));
  opt("--ntasks-per-node=" + std::to_string(r.tasks_per_node));
  if (r.gpus_per_node > 0) opt("--gres=gpu:" + std::to_string(r.gpus_per_node));
  if (r.cpus_per_task > 0) opt("--cpus-per-task=" + std::to_string(r.cpus_per_task));
  if (!r.mem.empty()) opt("--mem=" + r.mem);
  // Cairn reports how each run ended; Slurm must not run it again behind its back (a node failure
  // requeues batch jobs by default).
  opt("--no-requeue");
  const bool always_staged = r.staging == "http";
  // Slurm opens the output before the script runs: on the node's own disk when the run is staged.
  opt("--output=" + (always_staged
                         ? "/tmp/cairn-" + r.job +
                               (r.output_tag.empty() ? "" : "-" + r.output_tag) + "-slurm-%j.txt"
                         : r.run_dir + "/artifacts/system_logs/slurm-%j.txt"));
  opt("--chdir=" + (always_staged ? std::string("/tmp") : r.run_dir));
  if (std::string limit = SlurmTimeLimit(r.timeout_seconds); !limit.empty()) opt("--time=" + limit);
  if (!t.partition.empty()) opt("--partition=" + t.partition);
  if (!t.account.empty()) opt("--account=" + t.account);
  if (!t.qos.empty()) opt("--qos=" + t.qos);
  for (const auto& o : t.sbatch_options) opt(o);
  if (!always_staged)
    s += "if [ -d " + ShellQuote(r.run_dir) + " ]; then exec " + ShellQuote(r.cairn) +
         " supervise " + ShellQuote(r.run_dir) + "; fi\n";
  if (r.server_url.empty()) {
    s += "echo 'cairn: this node does not see " + r.run_dir + "' >&2; exit 1\n";
    return s;
  }
  // A node without the workspace's filesystem: the supervisor fetches the run from the server.
  s += "export CAIRN_INTERNAL_TOKEN=" + ShellQuote(r.token) + "\n";
  s += "exec " + ShellQuote(r.cairn) + " supervise --staged " + ShellQuote(r.server_url) + " " +
       ShellQuote(r.job) + "\n";
  return s;
}

bool SlurmStateIsFinal(const std::string& state) {
  static const char* kLive[] = {"PENDING",      "RUNNING",   "COMPLETING",   "CONFIGURING",
                                "SUSPENDED",    "REQUEUED",  "REQUEUE_HOLD", "REQUEUE_FED",
                                "RESIZING",     "SIGNALING", "STAGE_OUT",    "STOPPED",
                                "RESV_DEL_HOLD"};
  for (const char* s : kLive)
    if (state == s) return false;
  return !state.empty();
}

std::map<std::string, SlurmJobState> ParseSqueue(const std::string& text) {
  std::map<std::string, SlurmJobState> out;
  for (const auto& line : Split(text, '\n')) {
    auto f = Split(line, '|');
    if (f.size() < 4 || Trim(f[0]).empty()) continue;
    out[Trim(f[0])] = {Trim(f[1]), Trim(f[2]), Trim(f[3])};
  }
  return out;
}

Result<std::string> RunSlurmCommand(const SlurmTarget& t, const std::vector<std::string>& argv) {
  // Slurm's clients retry an unreachable controller for a minute or more; Cairn's scheduler waits
  // for them, so they get a deadline.
  std::vector<std::string> env;
  if (!t.conf.empty()) env.push_back("SLURM_CONF=" + t.conf);
  auto out = RunCommand(argv, env, kSlurmCommandTimeoutMs);
  if (out.ok()) return out;
  const std::string& m = out.status().message();
  if (EndsWith(m, "did not answer in time"))
    return Unavailable(argv[0] + " did not answer within " +
                       std::to_string(kSlurmCommandTimeoutMs / 1000) +
                       " s (is the Slurm controller up?)");
  if (EndsWith(m, "is not installed"))
    return Unavailable(argv[0] +
                       " is not installed (the Slurm compute needs Slurm's client commands)");
  return out;
}

std::vector<std::string> SbatchArgv(const std::string& script_path, long long uid, long long gid) {
  std::vector<std::string> argv = {"sbatch", "--parsable"};
  if (uid >= 0) argv.push_back("--uid=" + std::to_string(uid));
  if (gid >= 0) argv.push_back("--gid=" + std::to_string(gid));
  argv.push_back(script_path);
  return argv;
}

Result<std::string> SlurmSubmit(const SlurmTarget& t, const std::string& script_path, long long uid,
                                long long gid) {
  auto out = RunSlurmCommand(t, SbatchArgv(script_path, uid, gid));
  if (!out.ok()) return out.status();
  // "<id>" or "<id>;<cluster>"
  std::string id = Trim(out->substr(0, out->find(';')));
  if (id.empty() || id.find_first_not_of("0123456789") != std::string::npos)
    return Internal("sbatch answered '" + Trim(*out) + "' instead of a job id");
  return id;
}

Result<std::map<std::string, SlurmJobState>> SlurmQuery(const SlurmTarget& t,
                                                        const std::vector<std::string>& ids) {
  if (ids.empty()) return std::map<std::string, SlurmJobState>{};
  std::string list;
  for (const auto& id : ids) list += (list.empty() ? "" : ",") + id;
  auto out = RunSlurmCommand(t, {"squeue", "-h", "-t", "all", "-o", "%i|%T|%r|%N", "-j", list});
  if (!out.ok()) {
    // squeue refuses the whole list when one id is unknown to it: ask one by one.
    if (ids.size() == 1) {
      if (out.status().message().find("Invalid job id") != std::string::npos)
        return std::map<std::string, SlurmJobState>{};
      return out.status();
    }
    std::map<std::string, SlurmJobState> all;
    for (const auto& id : ids) {
      auto one = SlurmQuery(t, {id});
      if (!one.ok()) return one.status();
      all.insert(one->begin(), one->end());
    }
    return all;
  }
  return ParseSqueue(*out);
}

std::optional<std::string> SlurmAccounting(const SlurmTarget& t, const std::string& id) {
  for (bool completion_log : {false, true}) {
    std::vector<std::string> argv = {"sacct", "-X", "-n", "-P", "-j", id, "-o", "State,ExitCode"};
    if (completion_log) argv.insert(argv.begin() + 1, "-c");
    auto out = RunSlurmCommand(t, argv);
    if (!out.ok()) continue;
    for (const auto& line : Split(*out, '\n')) {
      auto f = Split(line, '|');
      if (f.size() >= 2 && !Trim(f[0]).empty()) return Trim(f[0]) + " exit=" + Trim(f[1]);
    }
  }
  return std::nullopt;
}

std::string SlurmDownNodes(const SlurmTarget& t, const std::string& nodelist) {
  if (nodelist.empty()) return "";
  auto out = RunSlurmCommand(
      t, {"sinfo", "-h", "-N", "-n", nodelist, "-t", "down,drain,fail,no_respond", "-o", "%N"});
  if (!out.ok()) return "";
  std::string nodes;
  for (const auto& n : Split(*out, '\n'))
    if (!Trim(n).empty() && nodes.find(Trim(n)) == std::string::npos)
      nodes += (nodes.empty() ? "" : ",") + Trim(n);
  return nodes;
}

Status SlurmCancel(const SlurmTarget& t, const std::string& id, bool batch_term) {
  std::vector<std::string> argv = {"scancel"};
  if (batch_term) argv.insert(argv.end(), {"--batch", "--signal=TERM"});
  argv.push_back(id);
  auto out = RunSlurmCommand(t, argv);
  return out.ok() ? Status::Ok() : out.status();
}

}  // namespace cairn::compute
