#include "compute/process.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
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

}  // namespace
}  // namespace cairn::compute
