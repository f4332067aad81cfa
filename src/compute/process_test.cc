#include "compute/process.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <chrono>
#include <thread>

#include "base/fs.h"
#include "base/util.h"

namespace cairn::compute {
namespace {

TEST(Descendants, FindsGrandchildrenAndSignalTreeEndsThem) {
  pid_t child = fork();
  if (child == 0) {
    // A child that starts a grandchild, then waits.
    execl("/bin/sh", "sh", "-c", "sleep 30 & sleep 30; wait", nullptr);
    _exit(127);
  }
  std::vector<pid_t> found;
  for (int i = 0; i < 200 && found.size() < 3; ++i) {
    found = Descendants(getpid());
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_GE(found.size(), 3u);  // sh and its two sleeps
  EXPECT_NE(std::find(found.begin(), found.end(), child), found.end());
  EXPECT_GE(SignalTree(child, 0, SIGKILL), 2);
  kill(child, SIGKILL);
  int status;
  waitpid(child, &status, 0);
  for (int i = 0; i < 200 && !Descendants(getpid()).empty(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_TRUE(Descendants(getpid()).empty());
}

TEST(IsAliveWithMarker, ChecksTheCommandLine) {
  EXPECT_TRUE(IsAliveWithMarker(getpid(), "unit_tests"));
  EXPECT_FALSE(IsAliveWithMarker(getpid(), "no-such-marker"));
  EXPECT_FALSE(IsAliveWithMarker(0, ""));
}

TEST(SpawnDetached, StartsInANewSessionWithItsOutputInTheLog) {
  std::string log = "/tmp/cairn-spawn-" + RandomHex(4) + ".log";
  auto pid = SpawnDetached({"/bin/sh", "-c", "echo sid=$(ps -o sid= -p $$ | tr -d ' ')"}, log);
  ASSERT_TRUE(pid.ok());
  int status;
  waitpid(*pid, &status, 0);
  auto text = ReadFile(log);
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(Trim(*text), "sid=" + std::to_string(*pid));
  unlink(log.c_str());
}

// Plain commands run without a shell; anything the shell would read differently goes to the shell.
TEST(WithoutShell, PlainWordsOnlyAndAProgramOnThePath) {
  auto d = WithoutShell("true", "/nonexistent:/usr/bin:/bin", "/");
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->argv, std::vector<std::string>{"true"});
  EXPECT_TRUE(d->path == "/usr/bin/true" || d->path == "/bin/true") << d->path;
  d = WithoutShell("  env   --null\tFOO=bar  ", "/usr/bin:/bin", "/");
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->argv, (std::vector<std::string>{"env", "--null", "FOO=bar"}));
  d = WithoutShell("/usr/bin/env -u X --lr=0.1 a,b @c 50%", "", "/");
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->path, "/usr/bin/env");
  for (const char* shell : {"echo $HOME",
                            "echo 'a b'",
                            "echo \"a\"",
                            "echo a > f",
                            "a | b",
                            "a && b",
                            "a; b",
                            "ls *.py",
                            "ls ?",
                            "echo ~",
                            "echo a#b",
                            "(true)",
                            "echo a\nb",
                            "echo \\a",
                            "FOO=1 env",
                            "cd /tmp",
                            "source x.sh",
                            "export A=1",
                            "kill 1",
                            "test -f x",
                            "pwd",
                            "exec true",
                            "echo `id`",
                            "echo {a,b}",
                            "echo [a]",
                            "echo \xc3\xa9",
                            "",
                            "   ",
                            "nosuchprogram-cairn",
                            "./not-here"})
    EXPECT_FALSE(WithoutShell(shell, "/usr/bin:/bin", "/").has_value()) << shell;
  // Relative names from the command's folder, not the caller's.
  std::string dir = std::filesystem::temp_directory_path() / ("cairn-direct-" + RandomHex(6));
  std::filesystem::create_directories(dir + "/bin");
  ASSERT_TRUE(WriteFile(dir + "/run.sh", "#!/bin/sh\necho hi\n").ok());
  ASSERT_TRUE(WriteFile(dir + "/data.txt", "not a program").ok());
  chmod((dir + "/run.sh").c_str(), 0755);
  d = WithoutShell("./run.sh --x", "/usr/bin", dir);
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->path, "./run.sh");
  EXPECT_EQ(d->argv[0], "./run.sh");
  EXPECT_FALSE(
      WithoutShell("./data.txt", "/usr/bin", dir).has_value());    // not executable: bash says so
  EXPECT_FALSE(WithoutShell("bin", "/usr/bin", dir).has_value());  // a folder
  std::filesystem::remove_all(dir);
}

// One supervisor per run: the lock is seen (with its holder) by a probe that does not take it, and
// a second taker is refused with the holder's pid; it goes with its process; a link is never
// followed.
TEST(RunLock, OneHolderFoundWithoutTakingIt) {
  std::string dir = "/tmp/cairn-lock-" + RandomHex(4);
  ASSERT_EQ(mkdir(dir.c_str(), 0700), 0);
  std::string file = dir + "/supervisor.lock";
  EXPECT_FALSE(RunLockHolder(file).has_value());  // no file yet
  int ready[2], release[2];
  ASSERT_EQ(pipe(ready), 0);
  ASSERT_EQ(pipe(release), 0);
  pid_t child = fork();
  if (child == 0) {
    pid_t h;
    int fd = LockRun(file, h);
    char c = fd >= 0 ? 'y' : 'n';
    (void)!write(ready[1], &c, 1);
    (void)!read(release[0], &c, 1);
    _exit(0);
  }
  char c = 0;
  ASSERT_EQ(read(ready[0], &c, 1), 1);
  EXPECT_EQ(c, 'y');
  EXPECT_EQ(RunLockHolder(file), std::optional<pid_t>(child));
  EXPECT_EQ(RunLockHolder(file), std::optional<pid_t>(child));  // the probe took nothing
  pid_t holder = 0;
  EXPECT_EQ(LockRun(file, holder), -1);
  EXPECT_EQ(holder, child);
  (void)!write(release[1], "x", 1);
  waitpid(child, nullptr, 0);
  EXPECT_FALSE(RunLockHolder(file).has_value());
  int fd = LockRun(file, holder);
  EXPECT_GE(fd, 0);
  close(fd);
  // A link in the lock's place (a job could leave one) is not followed.
  std::string link = dir + "/link.lock";
  ASSERT_EQ(symlink(file.c_str(), link.c_str()), 0);
  EXPECT_EQ(LockRun(link, holder), -1);
  EXPECT_EQ(holder, 0);
  EXPECT_FALSE(RunLockHolder(link).has_value());
  for (int p : {ready[0], ready[1], release[0], release[1]}) close(p);
  unlink(link.c_str());
  unlink(file.c_str());
  rmdir(dir.c_str());
}

}  // namespace
}  // namespace cairn::compute
