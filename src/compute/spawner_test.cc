#include "compute/spawner.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include <nlohmann/json.hpp>

#include "base/fs.h"
#include "base/util.h"
#include "compute/process.h"
#include "compute/run_layout.h"

namespace cairn::compute {
namespace {

namespace fs = std::filesystem;

template <typename F>
bool Within(int ms, F f) {
  for (int i = 0; i < ms / 10; ++i) {
    if (f()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return f();
}

std::string Text(const std::string& path) {
  auto t = ReadFile(path);
  return t.ok() ? *t : "";
}

std::string Proc(pid_t pid, const std::string& what) {
  return Text("/proc/" + std::to_string(pid) + "/" + what);
}

// A run folder whose job runs `command` on this host, with no server to report to.
std::string MakeRun(const std::string& root, const std::string& name, const std::string& command) {
  std::string run = root + "/runs/" + name;
  EXPECT_TRUE(MakeDirs(RunLayout(run).SystemLogDir()).ok());
  nlohmann::json job = {{"name", name}, {"command", command}, {"workspace", root}};
  EXPECT_TRUE(WriteFile(RunLayout(run).JobFile(), job.dump()).ok());
  return run;
}

TEST(SupervisorSpawner, ForksSupervisorsAsSpawnDetachedWouldStartThem) {
  std::string root = fs::temp_directory_path() / ("cairn-spawner-" + RandomHex(6));
  std::string run = MakeRun(root, "spawned", "echo from-the-job; sleep 0.5");
  RunLayout layout(run);
  pid_t spawner_pid;
  {
    SupervisorSpawner spawner(CAIRN_BIN_PATH);
    auto pid = spawner.Spawn(run, layout.SupervisorLog());
    ASSERT_TRUE(pid.ok()) << pid.status().message();
    spawner_pid = spawner.process();
    ASSERT_GT(spawner_pid, 0);
    EXPECT_NE(*pid, spawner_pid);
    // The command line the server's liveness check looks for, as an exec'd supervisor has it.
    EXPECT_TRUE(Within(2000, [&] { return IsAliveWithMarker(*pid, "supervise " + run); }))
        << Proc(*pid, "cmdline");
    std::string cmdline = Proc(*pid, "cmdline");
    while (!cmdline.empty() && cmdline.back() == '\0') cmdline.pop_back();
    EXPECT_EQ(cmdline, std::string(CAIRN_BIN_PATH) + " supervise " + run);
    // Its own session, stdin from /dev/null, output into its log.
    std::string stat = Proc(*pid, "stat");
    std::vector<std::string> f = Split(stat.substr(stat.rfind(')') + 2), ' ');
    ASSERT_GE(f.size(), 4u);
    EXPECT_EQ(f[3], std::to_string(*pid)) << "session id";
    EXPECT_EQ(fs::read_symlink("/proc/" + std::to_string(*pid) + "/fd/0").string(), "/dev/null");
    EXPECT_EQ(fs::read_symlink("/proc/" + std::to_string(*pid) + "/fd/1").string(),
              layout.SupervisorLog());
    // It runs the job to its end, and the spawner reaps it (no zombie left behind).
    EXPECT_TRUE(Within(10000, [&] { return PathExists(layout.ExitFile()); }));
    EXPECT_NE(Text(layout.ExitFile()).find("\"completed\""), std::string::npos)
        << Text(layout.SupervisorLog());
    EXPECT_NE(Text(layout.UserLog()).find("from-the-job"), std::string::npos);
    EXPECT_TRUE(Within(3000, [&] { return kill(*pid, 0) != 0; }))
        << "not reaped: " << Proc(*pid, "status");

    // A request it cannot serve is refused alone: the spawner stays and serves the next one.
    auto bad = spawner.Spawn(run, root + "/no/such/folder/log");
    EXPECT_FALSE(bad.ok());
    EXPECT_NE(bad.status().message().find("cannot open"), std::string::npos)
        << bad.status().message();
    std::string run2 = MakeRun(root, "second", "true");
    auto again = spawner.Spawn(run2, RunLayout(run2).SupervisorLog());
    ASSERT_TRUE(again.ok()) << again.status().message();
    EXPECT_EQ(spawner.process(), spawner_pid);
    EXPECT_TRUE(Within(10000, [&] { return PathExists(RunLayout(run2).ExitFile()); }));
  }
  // The server's end closed: the spawner is gone, and reaped even when its exit is slow (under ASan
  // its leak check at exit outlasted the destructor's wait, which once left a zombie for good).
  EXPECT_TRUE(Within(10000, [&] { return kill(spawner_pid, 0) != 0; }));
  fs::remove_all(root);
}

TEST(SupervisorSpawner, StartsAFreshSpawnerWhenItsSpawnerDied) {
  std::string root = fs::temp_directory_path() / ("cairn-spawner-" + RandomHex(6));
  SupervisorSpawner spawner(CAIRN_BIN_PATH);
  std::string run = MakeRun(root, "first", "true");
  ASSERT_TRUE(spawner.Spawn(run, RunLayout(run).SupervisorLog()).ok());
  pid_t first = spawner.process();
  kill(first, SIGKILL);
  EXPECT_TRUE(Within(2000, [&] {
    return Proc(first, "stat").find(") Z") != std::string::npos || kill(first, 0) != 0;
  }));
  std::string run2 = MakeRun(root, "after", "true");
  // The request to the dead one fails (the caller then starts the supervisor itself); the next call
  // has a new spawner.
  auto lost = spawner.Spawn(run2, RunLayout(run2).SupervisorLog());
  EXPECT_FALSE(lost.ok());
  auto next = spawner.Spawn(run2, RunLayout(run2).SupervisorLog());
  ASSERT_TRUE(next.ok()) << next.status().message();
  EXPECT_NE(spawner.process(), first);
  EXPECT_TRUE(Within(10000, [&] { return PathExists(RunLayout(run2).ExitFile()); }));
  fs::remove_all(root);
}

}  // namespace
}  // namespace cairn::compute
