// The job sandbox's cost, step by step, beside its reference in the same run: a plain fork + exec
// of /bin/true (what a job's process cost before the sandbox) against the sandbox's steps for one
// process (the holder started with the job's view made, the process started inside and its exec,
// the holder's end). Needs root (the job's own uid). Run: build/sandbox_bench [iterations]
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "base/fs.h"
#include "compute/process.h"
#include "compute/sandbox.h"

using cairn::compute::Sandbox;
using cairn::compute::SandboxSpec;

namespace {

double Ms(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

void RunTrue() {
  execl("/bin/true", "true", nullptr);
  _exit(127);
}

}  // namespace

int main(int argc, char** argv) {
  if (geteuid() != 0) {
    fprintf(stderr, "sandbox_bench: needs root (the job's own uid)\n");
    return 2;
  }
  int n = argc > 1 ? atoi(argv[1]) : 200;
  std::string root =
      std::filesystem::temp_directory_path() / ("cairn-sandbox-bench-" + std::to_string(getpid()));
  std::string ws = root + "/ws";
  if (!cairn::MakeDirs(ws + "/runs/j/wd").ok() || !cairn::MakeDirs(ws + "/runs/j/inputs/in").ok())
    return 1;
  std::vector<double> plain, start, spawn, run, stop;
  for (int i = 0; i < n; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    pid_t p = fork();
    if (p == 0) RunTrue();
    waitpid(p, nullptr, 0);
    plain.push_back(Ms(t0, std::chrono::steady_clock::now()));

    SandboxSpec spec;
    spec.workspace = ws;
    spec.keep = {ws + "/runs/j/wd", ws + "/runs/j/inputs"};
    spec.read_only = {ws + "/runs/j/inputs/in"};
    spec.uid = cairn::compute::JobUid(getpid());
    spec.gid = static_cast<gid_t>(spec.uid);
    Sandbox box;
    auto t1 = std::chrono::steady_clock::now();
    if (!box.Start(spec, -1).ok()) return 1;
    auto t2 = std::chrono::steady_clock::now();
    auto child = box.Spawn(-1, [&] {
      box.DropInChild(2);
      RunTrue();
    });
    auto t3 = std::chrono::steady_clock::now();
    if (!child.ok()) return 1;
    waitpid(*child, nullptr, 0);
    auto t4 = std::chrono::steady_clock::now();
    box.Stop();
    auto t5 = std::chrono::steady_clock::now();
    start.push_back(Ms(t1, t2));
    spawn.push_back(Ms(t2, t3));
    run.push_back(Ms(t3, t4));
    stop.push_back(Ms(t4, t5));
  }
  std::error_code ec;
  std::filesystem::remove_all(root, ec);
  double total = Median(start) + Median(spawn) + Median(run) + Median(stop);
  printf("%d iterations, medians (ms)\n", n);
  printf("reference: fork + exec /bin/true + wait   %.3f\n", Median(plain));
  printf("sandbox: holder started (view made async) %.3f\n", Median(start));
  printf("sandbox: process forked inside           %.3f\n", Median(spawn));
  printf("sandbox: waits for the view, drops, execs %.3f\n", Median(run));
  printf("sandbox: holder ended (namespaces freed)  %.3f\n", Median(stop));
  printf("sandbox total %.3f, over the reference %.3f\n", total, total - Median(plain));
  return 0;
}
