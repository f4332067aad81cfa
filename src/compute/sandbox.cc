#include "compute/sandbox.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/fs.h"
#include "base/util.h"
#include "compute/process.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef CLONE_NEWCGROUP
#define CLONE_NEWCGROUP 0x02000000
#endif

namespace cairn::compute {

namespace {

#if defined(__x86_64__)
constexpr uint32_t kNativeArch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
constexpr uint32_t kNativeArch = AUDIT_ARCH_AARCH64;
#else
#error "the job sandbox's seccomp filter knows x86_64 and aarch64"
#endif

// The file systems a job gets fresh: (path, type, options, flags). /dev's nodes are bound in after
// it.
struct Fresh {
  const char* path;
  const char* type;
  const char* options;
  unsigned long flags;
};
constexpr Fresh kFresh[] = {
    {"/proc", "proc", nullptr, MS_NOSUID | MS_NODEV | MS_NOEXEC},
    {"/dev", "tmpfs", "mode=0755,size=1m", MS_NOSUID | MS_NOEXEC},
    {"/dev/pts", "devpts", "newinstance,ptmxmode=0666,mode=0620", MS_NOSUID | MS_NOEXEC},
    {"/dev/shm", "tmpfs", "mode=1777", MS_NOSUID | MS_NODEV},
    {"/tmp", "tmpfs", "mode=1777", MS_NOSUID | MS_NODEV},
};
constexpr const char* kDevices[] = {"/dev/null",   "/dev/zero",    "/dev/full",
                                    "/dev/random", "/dev/urandom", "/dev/tty"};

bool UnderFresh(const std::string& path) {
  for (const auto& f : kFresh)
    if (IsWithin(path, f.path)) return true;
  return false;
}

// The folders from the top down to `path` itself ("/a", "/a/b", ...).
std::vector<std::string> Ancestry(const std::string& path) {
  std::vector<std::string> out;
  for (size_t at = path.find('/', 1); at != std::string::npos; at = path.find('/', at + 1))
    out.push_back(path.substr(0, at));
  if (path.size() > 1) out.push_back(path);
  return out;
}

// Writes `what` and errno to `fd` and ends the child with 125: the sandbox could not be made.
[[noreturn]] void Die(int fd, const std::string& what) {
  std::string line = "cairn sandbox: " + what + ": " + strerror(errno) + "\n";
  if (fd >= 0) (void)!write(fd, line.data(), line.size());
  _exit(125);
}

bool WriteSmall(const std::string& path, const std::string& text) {
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  close(fd);
  return ok;
}

// Creates the folders missing on the way to `path` (only ever beneath a file system the sandbox
// made: anywhere else the path exists already) and, for a device, the file to bind it on.
bool MakeTarget(const std::string& path, bool file) {
  if (access(path.c_str(), F_OK) == 0)
    return true;  // most are there: one look instead of a mkdir each
  for (const auto& dir : Ancestry(path)) {
    if (file && dir == path) break;
    if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) return false;
  }
  if (!file) return true;
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  close(fd);
  return true;
}

// The mount flags a remount must keep: in a user namespace the kernel refuses to clear locked ones.
unsigned long KeptFlags(const std::string& path) {
  struct statvfs sv;
  if (statvfs(path.c_str(), &sv) != 0) return 0;
  unsigned long flags = 0;
  if (sv.f_flag & ST_NOSUID) flags |= MS_NOSUID;
  if (sv.f_flag & ST_NODEV) flags |= MS_NODEV;
  if (sv.f_flag & ST_NOEXEC) flags |= MS_NOEXEC;
  if (sv.f_flag & ST_NOATIME) flags |= MS_NOATIME;
  if (sv.f_flag & ST_NODIRATIME) flags |= MS_NODIRATIME;
  if (sv.f_flag & ST_RELATIME) flags |= MS_RELATIME;
  return flags;
}

// Makes the job's view, in the holder (PID 1 of the new namespaces). Every source is opened before
// the first mount covers it, and bound back through its descriptor.
void MakeMounts(const std::vector<SandboxMount>& plan, int err) {
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) Die(err, "making / private");
  std::vector<int> fds(plan.size(), -1);
  for (size_t i = 0; i < plan.size(); ++i) {
    if (plan[i].source.empty()) continue;
    fds[i] = open(plan[i].source.c_str(), O_PATH | O_CLOEXEC);
    if (fds[i] < 0 && plan[i].kind == SandboxMount::kDevice) continue;  // a device this host lacks
    if (fds[i] < 0) Die(err, "opening " + plan[i].source);
  }
  for (size_t i = 0; i < plan.size(); ++i) {
    const SandboxMount& m = plan[i];
    const char* at = m.path.c_str();
    switch (m.kind) {
      case SandboxMount::kFresh: {
        const Fresh* f = nullptr;
        for (const auto& candidate : kFresh)
          if (m.path == candidate.path) f = &candidate;
        if (!f || !MakeTarget(m.path, false) ||
            mount(f->type, at, f->type, f->flags, f->options) != 0)
          Die(err, "mounting a fresh " + std::string(f ? f->type : "?") + " on " + m.path);
        if (m.path == "/dev") {
          (void)!symlink("/proc/self/fd", "/dev/fd");
          (void)!symlink("/proc/self/fd/0", "/dev/stdin");
          (void)!symlink("/proc/self/fd/1", "/dev/stdout");
          (void)!symlink("/proc/self/fd/2", "/dev/stderr");
          (void)!symlink("pts/ptmx", "/dev/ptmx");
        }
        break;
      }
      case SandboxMount::kCover:
        if (!MakeTarget(m.path, false) ||
            mount("cairn-sealed", at, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m") != 0)
          Die(err, "covering " + m.path);
        break;
      case SandboxMount::kBind:
      case SandboxMount::kBindReadOnly:
      case SandboxMount::kDevice: {
        if (fds[i] < 0) break;
        struct stat st;
        bool file = fstat(fds[i], &st) == 0 && !S_ISDIR(st.st_mode);
        std::string src = "/proc/self/fd/" + std::to_string(fds[i]);
        if (!MakeTarget(m.path, file) ||
            mount(src.c_str(), at, nullptr, MS_BIND | MS_REC, nullptr) != 0)
          Die(err, "binding " + m.source + " on " + m.path);
        if (m.kind == SandboxMount::kBindReadOnly &&
            mount(nullptr, at, nullptr,
                  MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | KeptFlags(m.path),
                  nullptr) != 0)
          Die(err, "making " + m.path + " read-only");
        close(fds[i]);
        fds[i] = -1;
        break;
      }
    }
  }
}

// Rewrites this process's command line (the bytes the kernel shows as /proc/<pid>/cmdline) to
// `title`: the holder is a fork of the supervisor, and must not be taken for one (`cairn supervise
// <run>` is what the server's liveness check and the one-supervisor lock look for).
void Retitle(const std::string& title) {
  auto stat = ReadFile("/proc/self/stat", 1 << 16);
  if (!stat.ok()) return;
  size_t close_paren = stat->rfind(')');
  if (close_paren == std::string::npos) return;
  auto fields = Split(stat->substr(close_paren + 2), ' ');
  if (fields.size() < 47)
    return;  // fields[0] is the state, field 3; arg_start and arg_end are 48 and 49
  auto start = static_cast<uintptr_t>(strtoull(fields[45].c_str(), nullptr, 10));
  auto end = static_cast<uintptr_t>(strtoull(fields[46].c_str(), nullptr, 10));
  if (start == 0 || end <= start) return;
  char* area = reinterpret_cast<char*>(start);
  size_t room = end - start;
  memset(area, 0, room);
  memcpy(area, title.data(), std::min(title.size(), room - 1));
}

// The holder's user, mount, IPC, cgroup and PID namespaces, in that order, as descriptors over
// `sock`.
constexpr const char* kNamespaceFiles[] = {"user", "mnt", "ipc", "cgroup", "pid"};

bool SendNamespaces(int sock) {
  int fds[5];
  for (int i = 0; i < 5; ++i) {
    fds[i] =
        open(("/proc/self/ns/" + std::string(kNamespaceFiles[i])).c_str(), O_RDONLY | O_CLOEXEC);
    if (fds[i] < 0) return false;
  }
  char byte = 'n';
  iovec iov{&byte, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof fds)] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof fds);
  memcpy(CMSG_DATA(c), fds, sizeof fds);
  bool ok = sendmsg(sock, &msg, 0) == 1;
  for (int fd : fds) close(fd);
  close(sock);
  return ok;
}

bool ReceiveNamespaces(int sock, int (&out)[5]) {
  int fds[5];
  char byte;
  iovec iov{&byte, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof fds)] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  if (recvmsg(sock, &msg, MSG_CMSG_CLOEXEC) != 1) return false;
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  if (!c || c->cmsg_type != SCM_RIGHTS || c->cmsg_len != CMSG_LEN(sizeof fds)) return false;
  memcpy(fds, CMSG_DATA(c), sizeof fds);
  for (int i = 0; i < 5; ++i) out[i] = fds[i];
  return true;
}

int LastCap() {
  auto text = ReadFile("/proc/sys/kernel/cap_last_cap", 64);
  int n = text.ok() ? atoi(text->c_str()) : 0;
  return n > 0 ? n : CAP_LAST_CAP;
}

// Every privilege goes, for good: supplementary groups, the uid and gid (as root), the bounding and
// ambient capability sets, every capability left, and the right to gain any (no_new_privs); then
// the filter.
void DropPrivileges(const SandboxSpec& spec, bool as_root, int last_cap,
                    const std::vector<sock_filter>& filter, int err) {
  if (as_root && spec.max_processes > 0) {
    // The job's uid is its own: the kernel's count of that uid's processes is the job's, as
    // pids.max would count it, without a cgroup move per process.
    rlimit limit{static_cast<rlim_t>(spec.max_processes), static_cast<rlim_t>(spec.max_processes)};
    if (setrlimit(RLIMIT_NPROC, &limit) != 0) Die(err, "limiting the job's processes");
  }
  if (as_root) {
    if (setgroups(spec.groups.size(), spec.groups.empty() ? nullptr : spec.groups.data()) != 0)
      Die(err, "setting the job's groups");
    if (setresgid(spec.gid, spec.gid, spec.gid) != 0) Die(err, "setting the job's gid");
  }
  for (int cap = 0; cap <= last_cap; ++cap)
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL)
      Die(err, "dropping capabilities");
  (void)prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
  if (as_root && setresuid(spec.uid, spec.uid, spec.uid) != 0) Die(err, "setting the job's uid");
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  if (syscall(SYS_capset, &header, data) != 0) Die(err, "clearing capabilities");
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) Die(err, "setting no_new_privs");
  sock_fprog prog{static_cast<unsigned short>(filter.size()),
                  const_cast<sock_filter*>(filter.data())};
  if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0)
    Die(err, "loading the seccomp filter");
  // Credentials changed: the parent-death signal was cleared with them.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
}

// PID 1 of the job's namespaces once the view is made: it reaps what the job leaves behind and
// nothing else. It cannot be signalled from inside (a namespace's init takes only signals it
// handles), nor inspected (not dumpable, and ptrace is filtered).
[[noreturn]] void HoldLoop() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  sigprocmask(SIG_BLOCK, &set, nullptr);
  for (;;) {
    while (waitpid(-1, nullptr, WNOHANG) > 0) {
    }
    siginfo_t info;
    (void)sigwaitinfo(&set, &info);
  }
}

}  // namespace

uid_t JobUid(pid_t supervisor) { return kJobUidBase + static_cast<uid_t>(supervisor); }

bool UserCanEnter(const std::string& path, uid_t uid, gid_t gid) {
  if (uid == 0) return true;
  struct stat st;
  if (stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return false;
  if (st.st_uid == uid) return st.st_mode & S_IXUSR;
  if (st.st_gid == gid) return st.st_mode & S_IXGRP;
  return st.st_mode & S_IXOTH;
}

std::vector<SandboxMount> PlanSandboxMounts(
    const SandboxSpec& spec, const std::function<bool(const std::string&)>& can_enter) {
  std::vector<SandboxMount> plan;
  for (const auto& f : kFresh) plan.push_back({SandboxMount::kFresh, f.path, ""});
  for (const char* d : kDevices) plan.push_back({SandboxMount::kDevice, d, d});
  for (const auto& d : spec.devices) plan.push_back({SandboxMount::kDevice, d, d});

  // Covered: the workspace, and above each of the job's paths the highest folder its user could not
  // enter (root's home, pytest's 0700 temporary folder): the job's paths stay reachable, what else
  // is in such a folder is not there at all.
  std::vector<std::string> covers;
  std::vector<std::string> paths = spec.keep;
  paths.insert(paths.end(), spec.read_only.begin(), spec.read_only.end());
  if (!spec.workspace.empty()) {
    paths.push_back(spec.workspace);
    covers.push_back(spec.workspace);
  }
  for (const auto& p : paths) {
    for (const auto& dir : Ancestry(p)) {
      if (UnderFresh(dir)) break;
      if (!can_enter(dir)) {
        covers.push_back(dir);
        break;
      }
    }
  }
  std::sort(covers.begin(), covers.end());
  covers.erase(std::unique(covers.begin(), covers.end()), covers.end());
  std::vector<std::string> outer;
  for (const auto& c : covers) {
    if (UnderFresh(c)) continue;  // already empty
    if (std::any_of(outer.begin(), outer.end(),
                    [&](const std::string& o) { return IsWithin(c, o); }))
      continue;
    outer.push_back(c);
  }
  for (const auto& c : outer) plan.push_back({SandboxMount::kCover, c, ""});

  auto hidden = [&](const std::string& p) {
    return UnderFresh(p) || std::any_of(outer.begin(), outer.end(),
                                        [&](const std::string& o) { return IsWithin(p, o); });
  };
  std::vector<SandboxMount> binds;
  for (const auto& k : spec.keep)
    if (hidden(k)) binds.push_back({SandboxMount::kBind, k, k});
  for (const auto& r : spec.read_only) binds.push_back({SandboxMount::kBindReadOnly, r, r});
  // Parents before what lies beneath them (a read-only input inside the run's inputs folder).
  std::stable_sort(binds.begin(), binds.end(), [](const SandboxMount& a, const SandboxMount& b) {
    return a.path < b.path || (a.path == b.path && a.kind < b.kind);
  });
  plan.insert(plan.end(), binds.begin(), binds.end());
  return plan;
}

std::vector<sock_filter> SeccompFilter() {
  const long kDenied[] = {
    SYS_ptrace,
    SYS_mount,
    SYS_umount2,
    SYS_pivot_root,
    SYS_chroot,
    SYS_setns,
#ifdef SYS_move_mount
    SYS_move_mount,
    SYS_open_tree,
    SYS_fsopen,
    SYS_fsconfig,
    SYS_fsmount,
    SYS_fspick,
#endif
#ifdef SYS_mount_setattr
    SYS_mount_setattr,
#endif
    SYS_bpf,
    SYS_init_module,
    SYS_finit_module,
    SYS_delete_module,
    SYS_kexec_load,
#ifdef SYS_kexec_file_load
    SYS_kexec_file_load,
#endif
    SYS_keyctl,
    SYS_add_key,
    SYS_request_key,
    SYS_perf_event_open,
    SYS_userfaultfd,
    SYS_open_by_handle_at,
    SYS_name_to_handle_at,
    SYS_reboot,
    SYS_swapon,
    SYS_swapoff,
    SYS_acct,
    SYS_syslog,
    SYS_quotactl,
    SYS_settimeofday,
    SYS_clock_settime,
    SYS_clock_adjtime,
    SYS_adjtimex,
    SYS_sethostname,
    SYS_setdomainname,
    SYS_kcmp,
#if defined(__x86_64__)
    SYS_iopl,
    SYS_ioperm,
    SYS_lookup_dcookie,
    SYS_uselib,
    SYS__sysctl,
#endif
  };
  constexpr uint32_t kAllow = SECCOMP_RET_ALLOW;
  constexpr uint32_t kEperm = SECCOMP_RET_ERRNO | EPERM;
  constexpr uint32_t kEnosys = SECCOMP_RET_ERRNO | ENOSYS;
  const uint32_t args0 = offsetof(seccomp_data, args[0])
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
                         + 4
#endif
      ;
  std::vector<sock_filter> f;
  auto stmt = [&](uint16_t code, uint32_t k) { f.push_back(BPF_STMT(code, k)); };
  auto jump = [&](uint16_t code, uint32_t k, uint8_t jt, uint8_t jf) {
    f.push_back(BPF_JUMP(code, k, jt, jf));
  };
  // Another architecture's system calls (int 0x80 on x86_64) would bypass the numbers below:
  // killed.
  stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch));
  jump(BPF_JMP | BPF_JEQ | BPF_K, kNativeArch, 1, 0);
  stmt(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
  stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr));
#if defined(__x86_64__)
  jump(BPF_JMP | BPF_JGE | BPF_K, 0x40000000, 0, 1);  // the x32 ABI
  stmt(BPF_RET | BPF_K, kEperm);
#endif
  for (long nr : kDenied) {
    jump(BPF_JMP | BPF_JEQ | BPF_K, static_cast<uint32_t>(nr), 0, 1);
    stmt(BPF_RET | BPF_K, kEperm);
  }
  jump(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone3, 0, 1);
  stmt(BPF_RET | BPF_K, kEnosys);
  // clone and unshare: no new user namespace (in one, the job would hold every capability over it).
  jump(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone, 1, 0);
  jump(BPF_JMP | BPF_JEQ | BPF_K, SYS_unshare, 0, 3);
  stmt(BPF_LD | BPF_W | BPF_ABS, args0);
  jump(BPF_JMP | BPF_JSET | BPF_K, CLONE_NEWUSER, 0, 1);
  stmt(BPF_RET | BPF_K, kEperm);
  stmt(BPF_RET | BPF_K, kAllow);
  return f;
}

Sandbox::~Sandbox() { Stop(); }

Status Sandbox::Start(const SandboxSpec& spec, int cgroup_fd) {
  spec_ = spec;
  filter_ = SeccompFilter();
  userns_ = geteuid() != 0;
  const uid_t outer_uid = geteuid();
  const gid_t outer_gid = getegid();
  if (userns_) {
    spec_.uid = outer_uid;
    spec_.gid = outer_gid;
  }
  std::vector<SandboxMount> plan = PlanSandboxMounts(
      spec_, [&](const std::string& dir) { return UserCanEnter(dir, spec_.uid, spec_.gid); });
  const int last_cap = last_cap_ = LastCap();
  int ready[2];
  if (pipe2(ready, O_CLOEXEC) != 0) return Internal(std::string("pipe: ") + strerror(errno));
  // In a user namespace the holder hands over its namespaces as descriptors: it is not dumpable, so
  // an unprivileged process may not open them through /proc (or use its pidfd for setns).
  int handover[2] = {-1, -1};
  if (userns_ && socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, handover) != 0) {
    close(ready[0]);
    close(ready[1]);
    return Internal(std::string("socketpair: ") + strerror(errno));
  }
  clone_args ca{};
  ca.flags =
      CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWCGROUP | (userns_ ? CLONE_NEWUSER : 0);
  ca.exit_signal = SIGCHLD;
  if (cgroup_fd >= 0) {
    ca.flags |= CLONE_INTO_CGROUP;
    ca.cgroup = static_cast<uint64_t>(cgroup_fd);
  }
  pid_t pid = static_cast<pid_t>(syscall(SYS_clone3, &ca, sizeof ca));
  if (pid < 0 && cgroup_fd >= 0) {  // an older kernel: without CLONE_INTO_CGROUP
    ca.flags &= ~static_cast<uint64_t>(CLONE_INTO_CGROUP);
    pid = static_cast<pid_t>(syscall(SYS_clone3, &ca, sizeof ca));
  }
  if (pid < 0) {
    int e = errno;
    for (int fd : {ready[0], ready[1], handover[0], handover[1]})
      if (fd >= 0) close(fd);
    return Unavailable(std::string("cannot create the job's namespaces: ") + strerror(e));
  }
  if (pid == 0) {
    close(ready[0]);
    if (handover[0] >= 0) close(handover[0]);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGCHLD, SIGPIPE}) signal(sig, SIG_DFL);
    if (userns_) {
      // Its own /proc files are its to write only while it is dumpable (the supervisor is not); no
      // process of the job exists yet, and only the same user could look in meanwhile.
      prctl(PR_SET_DUMPABLE, 1);
      if (!WriteSmall("/proc/self/setgroups", "deny") ||
          !WriteSmall("/proc/self/uid_map",
                      std::to_string(outer_uid) + " " + std::to_string(outer_uid) + " 1") ||
          !WriteSmall("/proc/self/gid_map",
                      std::to_string(outer_gid) + " " + std::to_string(outer_gid) + " 1"))
        Die(ready[1], "mapping the user namespace");
    }
    // It holds a copy of the supervisor's memory: nothing of the job may read it.
    prctl(PR_SET_DUMPABLE, 0);
    // Not in the limit cgroups: the holder only reaps (a move into a v1 cgroup costs 2-3 ms here),
    // and what re-parents to it was forked inside the job's own cgroups.
    MakeMounts(plan, ready[1]);
    if (chdir("/") != 0) Die(ready[1], "chdir /");
    if (userns_ && !SendNamespaces(handover[1])) Die(ready[1], "handing over the namespaces");
    // Ready: the view is made. Said by closing the pipe with nothing written (every waiter sees the
    // end; a failure above wrote why first). The holder's own privileges go next, before any job
    // process can be there to see it (a job process drops its own before exec).
    close(ready[1]);
    Retitle(
        "cairn sandbox holder");  // after ready: it reads /proc and allocates, off the job's path
    DropPrivileges(spec_, !userns_, last_cap, filter_, -1);
    prctl(PR_SET_DUMPABLE, 0);
    HoldLoop();
  }
  close(ready[1]);
  if (handover[1] >= 0) close(handover[1]);
  handover_fd_ = handover[0];
  holder_ = pid;
  ready_fd_ = ready[0];
  pidfd_ = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  own_pidns_fd_ = open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC);
  if (pidfd_ < 0 || own_pidns_fd_ < 0) {
    int e = errno;
    Stop();
    return Unavailable(std::string("pidfd_open: ") + strerror(e));
  }
  // Without root the caller falls back to no sandbox on any failure, so it must know of one now.
  if (userns_) {
    Status ready = Ready();
    if (!ready.ok()) Stop();
    return ready;
  }
  return Status::Ok();
}

Status Sandbox::Ready() {
  if (!ready_known_) {
    std::string answer = ReadUntilEof(ready_fd_);
    ready_known_ = true;
    ready_error_ = answer.empty() ? "" : Trim(answer);
    if (ready_error_.empty() && userns_ && !ReceiveNamespaces(handover_fd_, ns_fds_))
      ready_error_ = "the holder's namespaces did not arrive";
  }
  if (ready_error_.empty()) return Status::Ok();
  return Unavailable(ready_error_);
}

void Sandbox::WaitReadyInChild() const {
  // The end of the pipe, without reading: every process waiting sees it. Something written is a
  // failure.
  pollfd p{ready_fd_, POLLIN, 0};
  while (poll(&p, 1, -1) < 0 && errno == EINTR) {
  }
  // A pipe whose writers are gone and that holds nothing polls as POLLHUP alone.
  if (p.revents & POLLIN) _exit(125);
}

Result<pid_t> Sandbox::Spawn(int cgroup_fd, const std::function<void()>& child) const {
  if (!active()) return FailedPrecondition("the sandbox is not started");
  // Both ways, the new process joins the job's limit cgroups (a slow move: it overlaps the holder
  // making the view), waits until the view is made, joins the namespaces, then runs `child`.
  auto inside = [&](int err) {
    prctl(PR_SET_DUMPABLE, 0);  // a copy of the supervisor's memory, until exec replaces it
    for (const auto& cg : spec_.cgroups)
      if (!WriteSmall(cg + "/cgroup.procs", "0")) Die(err, "joining " + cg);
    WaitReadyInChild();
  };
  if (!userns_) {
    // As root, the supervisor's own children can be made in the job's PID namespace (setns to it
    // for children, then back): the process is forked straight in, with no go-between.
    if (setns(pidfd_, CLONE_NEWPID) != 0) return Internal(std::string("setns: ") + strerror(errno));
    bool in_cgroup = false;
    pid_t pid = ForkIntoCgroup(cgroup_fd, in_cgroup);
    int fork_errno = errno;
    if (pid != 0 && setns(own_pidns_fd_, CLONE_NEWPID) != 0)
      abort();  // the supervisor's next child must be its own
    if (pid < 0) return Internal(std::string("fork: ") + strerror(fork_errno));
    if (pid > 0) return pid;
    inside(2);
    if (!in_cgroup && cgroup_fd >= 0 &&
        !WriteSmall("/proc/self/fd/" + std::to_string(cgroup_fd) + "/cgroup.procs", "0"))
      Die(2, "joining the job's cgroup");
    if (setns(pidfd_, CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWCGROUP) != 0)
      Die(2, "joining the job's namespaces");
    child();
    _exit(127);
  }
  // In a user namespace the supervisor may not enter the PID namespace itself: a go-between does,
  // and clones the job's process as the supervisor's child (CLONE_PARENT).
  int report[2];
  if (pipe2(report, O_CLOEXEC) != 0) return Internal(std::string("pipe: ") + strerror(errno));
  bool in_cgroup = false;
  pid_t mid = ForkIntoCgroup(cgroup_fd, in_cgroup);
  if (mid < 0) {
    int e = errno;
    close(report[0]);
    close(report[1]);
    return Internal(std::string("fork: ") + strerror(e));
  }
  if (mid == 0) {
    close(report[0]);
    inside(report[1]);
    if (!in_cgroup && cgroup_fd >= 0 &&
        !WriteSmall("/proc/self/fd/" + std::to_string(cgroup_fd) + "/cgroup.procs", "0"))
      Die(report[1], "joining the job's cgroup");
    // The user namespace first: in it, this process may join the others.
    const int kinds[] = {CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWCGROUP, CLONE_NEWPID};
    for (size_t i = 0; i < 5; ++i)
      if (setns(ns_fds_[i], kinds[i]) != 0) Die(report[1], "joining the job's namespaces");
    pid_t pid =
        static_cast<pid_t>(syscall(SYS_clone, CLONE_PARENT, nullptr, nullptr, nullptr, nullptr));
    if (pid == 0) {
      close(report[1]);
      child();
      _exit(127);
    }
    if (pid < 0) Die(report[1], "starting the job's process");
    std::string line = "pid " + std::to_string(pid);
    (void)!write(report[1], line.data(), line.size());
    _exit(0);
  }
  close(report[1]);
  std::string answer = ReadUntilEof(report[0]);
  close(report[0]);
  while (waitpid(mid, nullptr, 0) < 0 && errno == EINTR) {
  }
  if (!StartsWith(answer, "pid "))
    return Internal(Trim(answer.empty() ? "the starter ended without a word" : answer));
  return static_cast<pid_t>(atoi(answer.c_str() + 4));
}

void Sandbox::DropInChild(int err_fd) const {
  DropPrivileges(spec_, !userns_, last_cap_, filter_, err_fd);
}

std::vector<pid_t> Sandbox::Stragglers() const {
  if (!active()) return {};
  return Descendants(holder_);
}

void Sandbox::Stop() {
  for (int* fd : {&pidfd_, &ready_fd_, &own_pidns_fd_, &handover_fd_, &ns_fds_[0], &ns_fds_[1],
                  &ns_fds_[2], &ns_fds_[3], &ns_fds_[4]}) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
  }
  if (holder_ > 0) {
    kill(holder_, SIGKILL);
    while (waitpid(holder_, nullptr, 0) < 0 && errno == EINTR) {
    }
    holder_ = -1;
  }
}

}  // namespace cairn::compute
