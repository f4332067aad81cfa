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

}  // namespace

std::string CreateJobCgroup(const std::string& job, const std::string& record_file) {
  if (geteuid() != 0 || !IsValidName(job)) return "";
  std::string mount = Cgroup2Mount();
  if (mount.empty()) return "";
  std::string own = OwnCgroup();
  if (own == "/") own = "";
  // Named for the job and its run folder: two workspaces on one machine may both have a job named
  // "train", and ending one must not end the other.
  std::string path = mount + own + "/cairn.job." + job.substr(0, 200) + "." + Sha256Hex(Dirname(record_file)).substr(0, 12);
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
  auto text = ReadFile(record_file, 4096);
  if (!text.ok()) return true;
  std::string path = Trim(*text);
  if (path.empty()) return true;  // emptied by its supervisor: the cgroup is gone
  // Only a cgroup of ours: the record sits in a run folder a job could once write.
  if (path.find("/cairn.job.") == std::string::npos || path.find("..") != std::string::npos ||
      !StartsWith(path, "/sys/fs/cgroup/"))
    return false;
  if (!KillCgroup(path)) return false;
  unlink(record_file.c_str());
  return true;
}

}  // namespace cairn::compute
