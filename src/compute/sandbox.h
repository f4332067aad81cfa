// The sandbox every process of a job runs in on a host (the local compute, the fallback when a
// container image cannot be had, a Slurm node): kernel features set up by the supervisor itself,
// the way bubblewrap sets them up (ARCHITECTURE.md, "The job sandbox", says why not bubblewrap
// itself).
//
// One sandbox per job (per node): a small holder process is PID 1 of the job's own PID, mount, IPC
// and cgroup namespaces (and, when the supervisor is not root, a user namespace where the
// supervisor's own uid is the only one mapped). Before anything of the job runs, the holder makes
// the job's view of the filesystem: a /proc of its own PID namespace, a /dev with only the harmless
// nodes and the GPUs the job holds, a /tmp and /dev/shm of its own, the workspace (and every folder
// above the job's paths that the job's user could not have entered) covered by an empty tmpfs with
// only the job's own folders bound back, its read-only inputs bound read-only. The job's processes
// join those namespaces (every rank of a job shares one PID namespace and /dev/shm, as NCCL needs)
// and then, before exec, drop every privilege: an unprivileged uid of their own when the supervisor
// is root, no capabilities (bounding and ambient sets cleared), no_new_privs, and a seccomp filter
// (SeccompFilter below). Mounts made by root before the job exists cannot be undone by a process
// without CAP_SYS_ADMIN; the filter refuses mount, ptrace and the rest regardless.
//
// Not thread-safe: owned by the supervisor's one thread. The *InChild functions run between fork
// and exec of a single-threaded supervisor.
#pragma once

#include <linux/filter.h>
#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

#include "base/status.h"

namespace cairn::compute {

// What the job may see and be.
struct SandboxSpec {
  std::string workspace;               // covered by an empty tmpfs but for the paths below
  std::vector<std::string> keep;       // folders bound back, writable, at their own paths
  std::vector<std::string> read_only;  // folders bound back read-only
  std::vector<std::string> devices;    // device nodes bound into the job's /dev (its GPUs)
  std::vector<std::string> cgroups;    // cgroup folders (v1 limits) the job's processes are put in
  long long max_processes = 0;         // RLIMIT_NPROC of the job's own uid (root only; 0: none)
  uid_t uid = 0;                       // the job's identity, when the supervisor is root
  gid_t gid = 0;
  std::vector<gid_t> groups;  // its supplementary groups (a person's, on a team server; else none)
};

// The uid a job runs as when its supervisor is root: one of its own (kJobUidBase + the supervisor's
// pid), unique among the jobs running on the machine, in no group and with no entry in /etc/passwd.
constexpr uid_t kJobUidBase = 1500000000;
uid_t JobUid(pid_t supervisor);

// The mounts a sandbox makes, in order: fresh file systems, then covers over hidden folders, then
// binds of the job's folders back beneath them. Pure: computed from the spec and whether the job's
// user can enter a folder (`can_enter`, injected so tests need no real users).
struct SandboxMount {
  enum Kind { kFresh, kCover, kBind, kBindReadOnly, kDevice } kind;
  std::string path;
  std::string source;  // kBind*, kDevice: what is bound there
};
std::vector<SandboxMount> PlanSandboxMounts(
    const SandboxSpec& spec, const std::function<bool(const std::string&)>& can_enter);

// Whether the user `uid` (primary group `gid`, no other group) may search the folder `path`.
bool UserCanEnter(const std::string& path, uid_t uid, gid_t gid);

// The seccomp program every process of a job runs under: the native architecture only (others are
// killed), and EPERM for the system calls a job has no business making: ptrace, mount and its
// relatives, setns, new user namespaces, bpf, kernel modules and kexec, keyrings, perf events,
// userfaultfd, open_by_handle_at, reboot, swap, clock and host name changes. clone3 answers ENOSYS,
// so the C library falls back to clone, whose flags the filter can read.
std::vector<sock_filter> SeccompFilter();

class Sandbox {
 public:
  Sandbox() = default;
  ~Sandbox();
  Sandbox(const Sandbox&) = delete;
  Sandbox& operator=(const Sandbox&) = delete;

  // Starts the holder, in the cgroup `cgroup_fd` (-1: the caller's). As root it returns at once:
  // the holder makes the job's view while the job's processes are started (each waits for it), and
  // Ready says how that went; in a user namespace it waits. An error means no sandbox: the caller
  // must not run the job unsealed without saying so.
  Status Start(const SandboxSpec& spec, int cgroup_fd);
  // Waits until the holder has made the job's view, or says why it could not (then the job's
  // processes that were started have ended with 125, or were killed with the holder).
  Status Ready();
  bool active() const { return holder_ > 0; }
  pid_t holder() const { return holder_; }
  // Whether a user namespace stands in for root (the supervisor is not root).
  bool user_namespace() const { return userns_; }

  // Starts `child` as a child of the supervisor inside the job's namespaces: the process the
  // supervisor forks (into `cgroup_fd`, -1: none) joins them, then clones the real child with
  // CLONE_PARENT (so its children land in the job's PID namespace and the supervisor waits for it
  // as for any child) and reports its pid. `child` must end in exec or _exit, and call DropInChild
  // before exec. Returns the child's pid as the supervisor sees it, or why it could not be started.
  Result<pid_t> Spawn(int cgroup_fd, const std::function<void()>& child) const;
  // In such a child, right before exec: drops every privilege and loads the seccomp filter. On
  // failure it writes why to `err_fd` and exits 125: a job never runs with privileges it should not
  // have.
  void DropInChild(int err_fd) const;

  // Every process of the job but the holder (processes the job left behind re-parent to it).
  std::vector<pid_t> Stragglers() const;
  // Ends the sandbox: the holder is killed, and the kernel kills everything left in its PID
  // namespace.
  void Stop();

 private:
  // In a started process, before it joins the namespaces: waits for the view; exits 125 if it
  // failed.
  void WaitReadyInChild() const;

  pid_t holder_ = -1;
  int pidfd_ = -1;
  int ready_fd_ = -1;      // the holder's pipe: closed empty once the view is made
  int own_pidns_fd_ = -1;  // the supervisor's PID namespace, to make its children there again
  int last_cap_ = 0;       // the kernel's highest capability number, read once
  int handover_fd_ = -1;   // user namespace: where the holder sends its namespaces' descriptors
  int ns_fds_[5] = {-1, -1, -1, -1, -1};  // user, mnt, ipc, cgroup, pid (user namespace only)
  bool ready_known_ = false;
  std::string ready_error_;
  bool userns_ = false;
  SandboxSpec spec_;
  std::vector<sock_filter> filter_;
};

}  // namespace cairn::compute
