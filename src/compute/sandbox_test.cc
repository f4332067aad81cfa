#include "compute/sandbox.h"

#include <gtest/gtest.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <set>

#include "base/fs.h"

namespace cairn::compute {
namespace {

std::string Describe(const std::vector<SandboxMount>& plan) {
  std::string out;
  for (const auto& m : plan) {
    if (m.kind == SandboxMount::kFresh || m.kind == SandboxMount::kDevice) continue;
    out += (m.kind == SandboxMount::kCover  ? "cover "
            : m.kind == SandboxMount::kBind ? "bind "
                                            : "ro ") +
           m.path + "\n";
  }
  return out;
}

TEST(SandboxPlan, CoversTheWorkspaceAndBindsTheRunsFoldersBackBeneathIt) {
  SandboxSpec spec;
  spec.workspace = "/srv/ws";
  spec.keep = {"/srv/ws/runs/j/wd", "/srv/ws/runs/j/inputs", "/data/out/j"};
  spec.read_only = {"/srv/ws/runs/j/inputs/a", "/srv/ws/views/abc"};
  auto plan = PlanSandboxMounts(spec, [](const std::string&) { return true; });
  // /data/out/j is outside every cover: it is there as it is, with no bind of its own.
  EXPECT_EQ(Describe(plan),
            "cover /srv/ws\n"
            "bind /srv/ws/runs/j/inputs\n"
            "ro /srv/ws/runs/j/inputs/a\n"
            "bind /srv/ws/runs/j/wd\n"
            "ro /srv/ws/views/abc\n");
}

TEST(SandboxPlan, CoversTheHighestFolderTheJobsUserCannotEnter) {
  SandboxSpec spec;
  spec.workspace = "/root/.cairn";
  spec.keep = {"/root/.cairn/runs/j/wd", "/home/alice/secret/out"};
  auto plan = PlanSandboxMounts(
      spec, [](const std::string& dir) { return dir != "/root" && dir != "/home/alice"; });
  EXPECT_EQ(Describe(plan),
            "cover /home/alice\n"
            "cover /root\n"
            "bind /home/alice/secret/out\n"
            "bind /root/.cairn/runs/j/wd\n");
}

TEST(SandboxPlan, AWorkspaceUnderTmpNeedsNoCoverOfItsOwn) {
  SandboxSpec spec;
  spec.workspace = "/tmp/pytest-of-root/p0/ws";
  spec.keep = {"/tmp/pytest-of-root/p0/ws/runs/j/wd"};
  auto plan = PlanSandboxMounts(spec, [](const std::string&) { return false; });
  EXPECT_EQ(Describe(plan), "bind /tmp/pytest-of-root/p0/ws/runs/j/wd\n");
  ASSERT_GE(plan.size(), 5u);
  EXPECT_EQ(plan[0].path, "/proc");
  EXPECT_EQ(plan[4].path, "/tmp");
}

// Runs `body` in a child under the job's seccomp filter; the child's exit code.
int UnderFilter(const std::function<int()>& body) {
  pid_t pid = fork();
  if (pid == 0) {
    auto filter = SeccompFilter();
    sock_fprog prog{static_cast<unsigned short>(filter.size()), filter.data()};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) _exit(90);
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0) _exit(91);
    _exit(body());
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

TEST(SeccompFilter, RefusesMountPtraceSetnsAndNewUserNamespaces) {
  EXPECT_EQ(UnderFilter([] {
              return mount("none", "/mnt", "tmpfs", 0, nullptr) == -1 && errno == EPERM ? 0 : 1;
            }),
            0);
  EXPECT_EQ(
      UnderFilter([] { return umount2("/proc", MNT_DETACH) == -1 && errno == EPERM ? 0 : 1; }), 0);
  EXPECT_EQ(UnderFilter([] {
              return ptrace(PTRACE_ATTACH, getppid(), nullptr, nullptr) == -1 && errno == EPERM ? 0
                                                                                                : 1;
            }),
            0);
  EXPECT_EQ(UnderFilter([] { return setns(0, 0) == -1 && errno == EPERM ? 0 : 1; }), 0);
  EXPECT_EQ(UnderFilter([] { return unshare(CLONE_NEWUSER) == -1 && errno == EPERM ? 0 : 1; }), 0);
  EXPECT_EQ(
      UnderFilter([] { return syscall(SYS_bpf, 0, nullptr, 0) == -1 && errno == EPERM ? 0 : 1; }),
      0);
  EXPECT_EQ(UnderFilter(
                [] { return syscall(SYS_keyctl, 0, 0, 0, 0, 0) == -1 && errno == EPERM ? 0 : 1; }),
            0);
  EXPECT_EQ(
      UnderFilter([] { return syscall(SYS_clone3, nullptr, 0) == -1 && errno == ENOSYS ? 0 : 1; }),
      0);
}

TEST(SeccompFilter, LetsOrdinaryWorkThrough) {
  // fork (clone without CLONE_NEWUSER), exec, files, and an unshare the kernel then judges itself.
  EXPECT_EQ(UnderFilter([] {
              pid_t p = fork();
              if (p == 0) _exit(7);
              int st = 0;
              waitpid(p, &st, 0);
              return WIFEXITED(st) && WEXITSTATUS(st) == 7 && getpid() > 0 ? 0 : 1;
            }),
            0);
  EXPECT_EQ(UnderFilter([] {
              execl("/bin/sh", "sh", "-c", "exit 3", nullptr);
              return 1;
            }),
            3);
}

// The real thing, as root: the holder, a process in the job's namespaces, and what it sees and is.
TEST(Sandbox, AProcessInsideHasNoPrivilegeItsOwnPidNamespaceAndOnlyItsFolders) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root (the job's own uid)";
  std::string root =
      std::filesystem::temp_directory_path() / ("cairn-sandbox-test-" + std::to_string(getpid()));
  std::string ws = root + "/ws";
  ASSERT_TRUE(MakeDirs(ws + "/runs/j/wd").ok());
  ASSERT_TRUE(MakeDirs(ws + "/runs/j/inputs/in").ok());
  ASSERT_TRUE(WriteFile(ws + "/token", "secret", 0600).ok());
  // Writable by anyone as far as its bits go: only the read-only mount stands in the way.
  ASSERT_TRUE(WriteFile(ws + "/runs/j/inputs/in/data", "data", 0666).ok());
  ASSERT_EQ(chmod((ws + "/runs/j/inputs/in/data").c_str(), 0666), 0);
  SandboxSpec spec;
  spec.workspace = ws;
  spec.keep = {ws + "/runs/j/wd", ws + "/runs/j/inputs"};
  spec.read_only = {ws + "/runs/j/inputs/in"};
  spec.uid = JobUid(getpid());
  spec.gid = static_cast<gid_t>(spec.uid);
  ASSERT_EQ(chown((ws + "/runs/j/wd").c_str(), spec.uid, spec.gid), 0);
  Sandbox box;
  ASSERT_TRUE(box.Start(spec, -1).ok());
  int out[2];
  ASSERT_EQ(pipe(out), 0);
  auto spawned = box.Spawn(-1, [&] {
    box.DropInChild(out[1]);
    std::string facts;
    facts += "uid=" + std::to_string(getuid()) + "\n";
    facts += "pid=" + std::to_string(getpid()) + "\n";
    facts += "nnp=" + std::to_string(prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0)) + "\n";
    facts +=
        "token=" + std::string(access((ws + "/token").c_str(), F_OK) == 0 ? "seen" : "hidden") +
        "\n";
    facts +=
        "wd=" + std::string(access((ws + "/runs/j/wd").c_str(), W_OK) == 0 ? "writable" : "not") +
        "\n";
    int fd = open((ws + "/runs/j/inputs/in/data").c_str(), O_WRONLY);
    facts += "input=" +
             std::string(fd < 0 && errno == EROFS ? "read-only"
                         : fd < 0                 ? strerror(errno)
                                                  : "writable") +
             "\n";
    facts += "remount=" +
             std::string(mount(nullptr, (ws + "/runs/j/inputs/in").c_str(), nullptr,
                               MS_REMOUNT | MS_BIND, nullptr) == 0
                             ? "done"
                             : "refused") +
             "\n";
    kill(1, SIGKILL);  // the holder: a namespace's init takes no signal it does not handle
    (void)!write(out[1], facts.data(), facts.size());
    _exit(0);
  });
  close(out[1]);
  ASSERT_TRUE(spawned.ok()) << spawned.status().message();
  pid_t pid = *spawned;
  std::string got;
  char buf[1024];
  for (ssize_t n; (n = read(out[0], buf, sizeof buf)) > 0;) got.append(buf, static_cast<size_t>(n));
  close(out[0]);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);  // a child of ours, waited for as any other
  EXPECT_EQ(got,
            "uid=" + std::to_string(spec.uid) +
                "\npid=2\nnnp=1\ntoken=hidden\nwd=writable\ninput=read-only\nremount=refused\n");
  EXPECT_EQ(kill(box.holder(), 0), 0);
  EXPECT_TRUE(box.Stragglers().empty());
  box.Stop();
  std::error_code ec;
  std::filesystem::remove_all(root, ec);
}

}  // namespace
}  // namespace cairn::compute
