// A cgroup (v2) per job, where the machine has a writable cgroup2 hierarchy (root): the supervisor
// puts every process of the job in it, and whoever finds the supervisor gone (the server, within a
// tick) kills the whole cgroup with cgroup.kill, so nothing of a job outlives it even when its
// supervisor was killed outright. Elsewhere the supervisor's subreaper walk and PR_SET_PDEATHSIG
// are what there is. Functions are thread-safe; JoinInChild is safe between fork and exec.
#pragma once

#include <string>
#include <vector>

namespace cairn::compute {

// A new cgroup for `job` beside the caller's own, or "" where none can be made. Records its path in
// `record_file` (the run folder's `cgroup`), which KillRecorded reads.
std::string CreateJobCgroup(const std::string& job, const std::string& record_file);
// Cgroups in the machine's cgroup v1 `memory` and `pids` hierarchies (where it has them and we may
// write them: root), beside the caller's own, with the job's limits set: memory.limit_in_bytes (0:
// none) and pids.max (0: none). Their paths are appended to `record_file`, one a line, for
// KillRecordedCgroup. A limit that cannot be set removes its cgroup: no cgroup is better than one
// that promises a limit.
std::vector<std::string> CreateJobLimitCgroups(const std::string& job,
                                               const std::string& record_file,
                                               long long memory_bytes, long long pids_max);
// Moves the calling process into `path` (in a child, before exec).
void JoinCgroupInChild(const std::string& path);
// Kills every process in `path`, waits up to `wait_ms` for it to empty, and removes it. True when
// it is gone (or never was).
bool KillCgroup(const std::string& path, int wait_ms = 2000);
// KillCgroup on every path `record_file` names; removes the record once the cgroup is gone.
bool KillRecordedCgroup(const std::string& record_file);
// How many processes `path` holds (0 when it does not exist).
int CgroupProcessCount(const std::string& path);

}  // namespace cairn::compute
