// A cgroup (v2) per job, where the machine has a writable cgroup2 hierarchy (root): the supervisor puts
// every process of the job in it, and whoever finds the supervisor gone (the server, within a tick)
// kills the whole cgroup with cgroup.kill, so nothing of a job outlives it even when its supervisor was
// killed outright. Elsewhere the supervisor's subreaper walk and PR_SET_PDEATHSIG are what there is.
// Functions are thread-safe; JoinInChild is safe between fork and exec.
#pragma once

#include <string>

namespace cairn::compute {

// A new cgroup for `job` beside the caller's own, or "" where none can be made. Records its path in
// `record_file` (the run folder's `cgroup`), which KillRecorded reads.
std::string CreateJobCgroup(const std::string& job, const std::string& record_file);
// Moves the calling process into `path` (in a child, before exec).
void JoinCgroupInChild(const std::string& path);
// Kills every process in `path`, waits up to `wait_ms` for it to empty, and removes it. True when it is
// gone (or never was).
bool KillCgroup(const std::string& path, int wait_ms = 2000);
// KillCgroup on the path `record_file` names; removes the record once the cgroup is gone.
bool KillRecordedCgroup(const std::string& record_file);
// How many processes `path` holds (0 when it does not exist).
int CgroupProcessCount(const std::string& path);

}  // namespace cairn::compute
