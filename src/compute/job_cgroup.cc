#include "compute/job_cgroup.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cstring>
#include <linux/magic.h>

#include "base/fs.h"
#include "base/util.h"

namespace cairn::compute {

namespace {

// The cgroup2 mount: /sys/fs/cgroup on a unified machine, /sys/fs/cgroup/unified on a hybrid one.
std::string Cgroup2Mount() {
  for (const char* m : {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"}) {
    struct statfs sf;
    if (statfs(m, &sf) == 0 && sf.f_type == CGROUP2_SUPER_MAGIC) return m;
  }
  return "";
}

// The caller's place in the cgroup2 hierarchy ("0::/a/b" in /proc/self/cgroup).
std::string OwnCgroup() {
  auto text = ReadFile("/proc/self/cgroup", 1 << 16);
  if (!text.ok()) return "";
  for (const auto& line : Split(*text, '\n'))
    if (StartsWith(line, "0::")) return line.substr(3);
  return "";
}

// The caller's place in a v1 hierarchy ("4:memory:/a/b" in /proc/self/cgroup).
std::string OwnV1Cgroup(const std::string& controller) {
  auto text = ReadFile("/proc/self/cgroup", 1 << 16);
  if (!text.ok()) return "";
  for (const auto& line : Split(*text, '\n')) {
    auto parts = Split(line, ':');
    if (parts.size() < 3) continue;
    for (const auto& c : Split(parts[1], ','))
      if (c == controller) return line.substr(parts[0].size() + parts[1].size() + 2);
  }
  return "";
}

// The path a job's cgroup takes beneath `mount` + the caller's own place.
std::string JobCgroupPath(const std::string& mount, std::string own, const std::string& job,
                          const std::string& record_file) {
  if (own == "/") own = "";
  // Named for the job and its run folder: two workspaces on one machine may both have a job named
  // "train", and ending one must not end the other.
  return mount + own + "/cairn.job." + job.substr(0, 200) + "." +
         Sha256Hex(Dirname(record_file)).substr(0, 12);
}

}  // namespace

std::vector<std::string> CreateJobLimitCgroups(const std::string& job,
                                               const std::string& record_file,
                                               long long memory_bytes, long long pids_max) {
  std::vector<std::string> made;
  if (geteuid() != 0 || !IsValidName(job)) return made;
  struct Limit {
    const char* controller;
    const char* file;
    long long value;
  };
  for (const Limit& l : {Limit{"memory", "memory.limit_in_bytes", memory_bytes},
                         Limit{"pids", "pids.max", pids_max}}) {
    if (l.value <= 0) continue;
    std::string mount = std::string("/sys/fs/cgroup/") + l.controller;
    struct statfs sf;
    if (statfs(mount.c_str(), &sf) != 0 || sf.f_type != CGROUP_SUPER_MAGIC) continue;
    std::string own = OwnV1Cgroup(l.controller);
    if (own.empty()) continue;
    std::string path = JobCgroupPath(mount, own, job, record_file);
    if (mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) continue;
    if (!WriteFile(path + "/" + l.file, std::to_string(l.value)).ok()) {
      rmdir(path.c_str());
      continue;
    }
    made.push_back(path);
  }
  if (made.empty()) return made;
  auto before = ReadFile(record_file, 1 << 16);
  std::string text = before.ok() ? *before : "";
  for (const auto& p : made) text += p + "\n";
  if (!WriteFileAtomic(record_file, text, 0600).ok()) {
    for (const auto& p : made) rmdir(p.c_str());
    made.clear();
  }
  return made;
}

std::string CreateJobCgroup(const std::string& job, const std::string& record_file) {
  if (geteuid() != 0 || !IsValidName(job)) return "";
  std::string mount = Cgroup2Mount();
  if (mount.empty()) return "";
  std::string path = JobCgroupPath(mount, OwnCgroup(), job, record_file);
  if (mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) return "";
  if (access((path + "/cgroup.procs").c_str(), W_OK) != 0) {
    rmdir(path.c_str());
    return "";
  }
  if (!WriteFileAtomic(record_file, path + "\n", 0600).ok()) {
    rmdir(path.c_str());
    return "";
  }
  return path;
}

void JoinCgroupInChild(const std::string& path) {
  if (path.empty()) return;
  std::string procs = path + "/cgroup.procs";
  int fd = open(procs.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return;
  ssize_t n = write(fd, "0", 1);
  (void)n;
  close(fd);
}

int CgroupProcessCount(const std::string& path) {
  auto text = ReadFile(path + "/cgroup.procs", 1 << 20);
  if (!text.ok()) return 0;
  int n = 0;
  for (const auto& line : Split(*text, '\n'))
    if (!Trim(line).empty()) ++n;
  return n;
}

bool KillCgroup(const std::string& path, int wait_ms) {
  if (path.empty() || !IsDir(path)) return true;
  for (int waited = 0;; waited += 20) {
    if (CgroupProcessCount(path) == 0) break;
    if (!WriteFile(path + "/cgroup.kill", "1").ok()) {
      // Kernels before 5.14: each process by hand.
      auto text = ReadFile(path + "/cgroup.procs", 1 << 20);
      if (text.ok())
        for (const auto& line : Split(*text, '\n'))
          if (int pid = atoi(line.c_str()); pid > 0) kill(pid, SIGKILL);
    }
    if (waited >= wait_ms) return false;
    usleep(20000);
  }
  return rmdir(path.c_str()) == 0 || errno == ENOENT;
}

bool KillRecordedCgroup(const std::string& record_file) {
  auto text = ReadFile(record_file, 1 << 16);
  if (!text.ok()) return true;
  bool all = true;
  for (const auto& line : Split(*text, '\n')) {
    std::string path = Trim(line);
    if (path.empty()) continue;  // emptied by its supervisor: the cgroups are gone
    // Only a cgroup of ours: the record sits in a run folder a job could once write.
    if (path.find("/cairn.job.") == std::string::npos || path.find("..") != std::string::npos ||
        !StartsWith(path, "/sys/fs/cgroup/"))
      return false;
    if (!KillCgroup(path)) all = false;
  }
  if (all) unlink(record_file.c_str());
  return all;
}

}  // namespace cairn::compute
