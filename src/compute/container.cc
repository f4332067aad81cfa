#include "compute/container.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "base/settings.h"
#include "base/fs.h"
#include "base/util.h"
#include "compute/image_cache.h"
#include "compute/process.h"

namespace cairn::compute {

using nlohmann::json;
namespace fs = std::filesystem;

namespace {

constexpr long long kQuickMs = 60'000;       // image checks, pulls
constexpr long long kBuildMs = 30 * 60'000;  // builds

Result<std::string> Runtime(const std::string& runtime, std::vector<std::string> args,
                            long long timeout_ms) {
  std::vector<std::string> argv = RuntimeBase(runtime);
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv, {}, timeout_ms);
}

// What every container needs on these machines: the host's network (the workspace server is on
// loopback) and, for podman, file and process limits runc may set.
std::vector<std::string> RunOptions(const std::string& runtime) {
  std::vector<std::string> o = {"--network", "host"};
  if (runtime == "podman")
    o.insert(o.end(), {"--ulimit", "nofile=20000:20000", "--ulimit", "nproc=4096:4096"});
  return o;
}

// The content of a build context: every file's path and bytes, so the same context is built once.
Result<std::string> ContextHash(const std::string& dir, const std::string& dockerfile) {
  std::vector<std::string> lines;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_regular_file(ec)) continue;
    auto data = ReadFile(it->path().string());
    if (!data.ok()) return data.status();
    lines.push_back(it->path().lexically_relative(dir).string() + " " + Sha256Hex(*data));
  }
  if (ec) return Internal("cannot read the build context " + dir + ": " + ec.message());
  std::sort(lines.begin(), lines.end());
  std::string all = "dockerfile " + dockerfile + "\n";
  for (const auto& l : lines) all += l + "\n";
  return Sha256Hex(all).substr(0, 24);
}

}  // namespace

bool ImageExists(const std::string& runtime, const std::string& image) {
  if (runtime == "podman") return Runtime(runtime, {"image", "exists", image}, kQuickMs).ok();
  return Runtime(runtime, {"image", "inspect", image}, kQuickMs).ok();
}

Status PullImage(const std::string& runtime, const std::string& image) {
  auto pulled = Runtime(runtime, {"pull", "-q", image}, kQuickMs);
  return pulled.ok() ? Status::Ok() : pulled.status();
}

namespace {

// "12 s ago", "5 min ago" (a remembered check's age, for a job's log).
std::string FormatAgo(int64_t ms) {
  long long s = std::max<long long>(0, (NowMillis() - ms) / 1000);
  if (s < 120) return std::to_string(s) + " s ago";
  if (s < 7200) return std::to_string(s / 60) + " min ago";
  return std::to_string(s / 3600) + " h ago";
}

}  // namespace

std::string ContainerRuntime() {
  if (auto r = settings::Get("CAIRN_CONTAINER_RUNTIME"); r && !r->empty())
    return *r == "none" ? "" : *r;
  for (const char* r : {"podman", "docker"})
    if (OnPath(r)) return r;
  return "";
}

std::vector<std::string> RuntimeBase(const std::string& runtime) {
  if (runtime == "podman") return {"podman", "--runtime", "runc", "--cgroup-manager", "cgroupfs"};
  return {runtime};
}

Result<std::string> PrepareImage(const std::string& runtime, const json& container,
                                 const ImageSteps& steps, std::string& why,
                                 const std::string& workspace) {
  std::string image = container.value("image", "");
  std::string context = container.value("build_context", "");
  auto absent = context.empty() ? RememberedAbsence(workspace, runtime, image) : std::nullopt;
  if (!absent)
    steps.phase("environment: resolving " + container.value("describe", std::string("the image")));
  if (!context.empty()) {
    std::string dockerfile = container.value("dockerfile", "Dockerfile");
    if (!IsDir(context))
      return NotFound("environment: the build context " + context + " is not there");
    auto hash = ContextHash(context, dockerfile);
    if (!hash.ok()) return hash.status();
    image = "localhost/cairn-build:" + *hash;
    if (ImageExists(runtime, image)) {
      steps.phase("environment: image " + image + " (cache hit)");
      steps.log("environment: image " + image +
                " (cache hit: this build context was built before)");
    } else {
      steps.phase("environment: building the image from " + context + " (cache miss)");
      steps.log("environment: building " + image + " from " + context + " (cache miss)");
      auto built = Runtime(runtime,
                           {"build", "-q", "--network", "host", "-t", image, "-f",
                            context + "/" + dockerfile, context},
                           kBuildMs);
      if (!built.ok())
        return Status(built.status().code(),
                      "environment: the image build failed: " + built.status().message());
      steps.log("environment: built " + image);
    }
  } else if (absent) {
    // Known absent: no runtime call on the job's path (the server looks again in the background).
    why = "image " + image + " is not available (" + absent->reason + "; as of " +
          FormatAgo(absent->checked_ms) + ", `cairn environment check --image " + image +
          "` looks again now); import or build it, or register "
          "an environment with --build-context";
    return std::string();
  } else {
    ImageCheck got = CheckImageNow(workspace, runtime, image, [&] {
      steps.phase("environment: pulling " + image);
      steps.log("environment: " + image + " is not in " + runtime + "'s local images; pulling it");
    });  // remembers an absence
    if (!got.available) {
      why = "image " + image + " is not available (" + got.reason +
            "); import or build it, or register an environment with --build-context";
      return std::string();
    }
    steps.log(got.pulled ? "environment: pulled " + image
                         : "environment: image " + image + " (present)");
  }
  std::string conda = container.value("conda", "");
  if (conda.empty()) return image;
  // A conda file on top of the image, where the image has conda: a derived image, built once.
  std::vector<std::string> check = {"run", "--rm"};
  for (const auto& o : RunOptions(runtime)) check.push_back(o);
  check.insert(check.end(), {"--entrypoint", "/bin/sh", image, "-c", "command -v conda"});
  auto has = Runtime(runtime, check, kQuickMs);
  if (!has.ok() || Trim(*has).empty()) {
    steps.log("environment: conda_file not applied: the image " + image + " has no conda" +
              (has.ok() ? "" : " (" + Trim(has.status().message()) + ")"));
    return image;
  }
  std::string derived = "localhost/cairn-conda:" + Sha256Hex(image + "\n" + conda).substr(0, 24);
  if (ImageExists(runtime, derived)) {
    steps.phase("environment: image " + derived + " (cache hit)");
    steps.log("environment: image " + derived + " (cache hit: the conda file was applied before)");
    return derived;
  }
  steps.phase("environment: applying the conda file on top of " + image + " (cache miss)");
  char tmpl[] = "/tmp/cairn-conda-XXXXXX";
  if (!mkdtemp(tmpl)) return Internal("cannot make a temporary folder");
  std::string dir = tmpl;
  Status s = WriteFile(dir + "/conda.yml", conda);
  if (s.ok())
    s = WriteFile(dir + "/Containerfile",
                  "FROM " + image +
                      "\nCOPY conda.yml /tmp/cairn-conda.yml\n"
                      "RUN conda env update -n base -f /tmp/cairn-conda.yml\n");
  if (!s.ok()) return s;
  auto built = Runtime(
      runtime,
      {"build", "-q", "--network", "host", "-t", derived, "-f", dir + "/Containerfile", dir},
      kBuildMs);
  std::error_code ec;
  fs::remove_all(dir, ec);
  if (!built.ok())
    return Status(built.status().code(),
                  "environment: applying the conda file failed: " + built.status().message());
  steps.log("environment: built " + derived);
  return derived;
}

std::vector<std::string> ContainerArgv(const ContainerRun& r) {
  std::vector<std::string> argv = RuntimeBase(r.runtime);
  // --init: a small init as PID 1 passes signals on (a command as PID 1 would ignore SIGTERM).
  argv.insert(argv.end(),
              {"run", "--rm", "--init", "--name", r.name, "--pull", "never", "-w", r.workdir});
  for (const auto& o : RunOptions(r.runtime)) argv.push_back(o);
  for (const auto& m : r.mounts) {
    bool ro = EndsWith(m, ":ro");
    std::string p = ro ? m.substr(0, m.size() - 3) : m;
    argv.insert(argv.end(), {"-v", p + ":" + p + (ro ? ":ro" : "")});
  }
  for (const auto& e : r.env) argv.insert(argv.end(), {"-e", e});
  if (!r.memory.empty()) argv.insert(argv.end(), {"--memory", r.memory, "--memory-swap", r.memory});
  if (!r.cpus.empty()) argv.insert(argv.end(), {"--cpus", r.cpus});
  if (!r.shm_size.empty()) argv.insert(argv.end(), {"--shm-size", r.shm_size});
  for (const auto& d : r.devices) argv.insert(argv.end(), {"--device", d});
  // A guest here as on the host: no capability, no way to gain one, a user of its own, a process
  // cap, and the runtime's own seccomp profile (podman's default) and namespaces (PID, IPC, cgroup,
  // mount).
  argv.insert(argv.end(), {"--cap-drop", "all", "--security-opt", "no-new-privileges", "--cgroupns",
                           "private"});
  // "uid" runs as uid:uid (a job's own), "uid:gid" as given (a person's, on a team server).
  if (!r.user.empty())
    argv.insert(argv.end(),
                {"--user", r.user.find(':') == std::string::npos ? r.user + ":" + r.user : r.user});
  bool home = std::any_of(r.env.begin(), r.env.end(),
                          [](const std::string& e) { return StartsWith(e, "HOME="); });
  if (!r.user.empty() && !home) argv.insert(argv.end(), {"-e", "HOME=/tmp"});
  if (r.pids_limit > 0) argv.insert(argv.end(), {"--pids-limit", std::to_string(r.pids_limit)});
  // bash where the image has it, as on the host (kShellInImage), the command as $0.
  argv.insert(argv.end(), {"--entrypoint", "/bin/sh", r.image, "-c", kShellInImage, r.command});
  return argv;
}

bool HasNvidiaCdiSpec() {
  for (const auto& dir : Split(settings::Text("CAIRN_CDI_DIRS"), ':')) {
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
      std::string name = e.path().filename().string();
      if (!EndsWith(name, ".yaml") && !EndsWith(name, ".yml") && !EndsWith(name, ".json")) continue;
      auto text = ReadFile(e.path().string(), 4 << 20);
      if (text.ok() && text->find("nvidia.com/gpu") != std::string::npos) return true;
    }
  }
  return false;
}

void RemoveContainer(const std::string& runtime, const std::string& name, bool verify) {
  std::vector<std::string> args = {"rm", "-f"};
  if (runtime == "podman") args.insert(args.end(), {"-t", "0", "--ignore"});
  args.push_back(name);
  if (!verify) {
    (void)Runtime(runtime, args, kQuickMs);
    return;
  }
  for (int i = 0; i < 20; ++i) {
    (void)Runtime(runtime, args, kQuickMs);
    auto listed = Runtime(runtime, {"ps", "-a", "-q", "--filter", "name=^" + name + "$"}, kQuickMs);
    if (listed.ok() && Trim(*listed).empty()) {
      if (i > 0) return;  // gone twice in a row
      usleep(200'000);
      continue;
    }
    usleep(100'000);
  }
}

void SignalContainer(const std::string& runtime, const std::string& name, int sig) {
  if (sig == SIGKILL) return RemoveContainer(runtime, name, false);
  (void)Runtime(runtime, {"kill", "--signal", std::to_string(sig), name}, kQuickMs);
}

}  // namespace cairn::compute
