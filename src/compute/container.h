// Container environments (podman, or docker where that is what is installed): the image a job's
// environment names, built once per content and cached, with a conda file applied on top where the
// image has conda; the command line that runs one process of the job in it. Thread-compatible.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"

namespace cairn::compute {

// "podman" or "docker" when one is on PATH (CAIRN_CONTAINER_RUNTIME overrides; "none" turns them
// off), else "".
std::string ContainerRuntime();

struct ImageSteps {
  std::function<void(const std::string&)> log;    // a line for the job's system log
  std::function<void(const std::string&)> phase;  // the job's status reason while it prepares
};

// The image to run the job in, from the run file's "container" object ({image} or {build_context,
// dockerfile}, optional conda). "" with a reason in `why` when the job runs on this host instead.
// An image that could not be had is remembered in `workspace`'s image cache
// (compute/image_cache.h): later jobs skip the runtime until someone looks again.
Result<std::string> PrepareImage(const std::string& runtime, const nlohmann::json& container,
                                 const ImageSteps& steps, std::string& why,
                                 const std::string& workspace = "");

struct ContainerRun {
  std::string runtime;
  std::string image;
  std::string name;  // the container's name, to remove it whatever happens
  std::string workdir;
  std::vector<std::string>
      mounts;                    // "path" (read-write) or "path:ro", each at the same path inside
  std::vector<std::string> env;  // K=V the process sees (nothing else of the host's leaks in)
  std::string memory, cpus, shm_size;  // limits, as the runtime writes them ("512m", "1.5", "2g")
  std::vector<std::string> devices;    // CDI devices ("nvidia.com/gpu=0")
  std::string user;                    // the uid (or uid:gid) the command runs as ("": the image's)
  long long pids_limit = 0;            // 0: the runtime's default
  std::string command;
};
// Whether the host has a CDI spec naming NVIDIA's GPUs (nvidia-ctk cdi generate writes one), so
// that a container can be given `--device nvidia.com/gpu=<index>`: /etc/cdi and /var/run/cdi
// (CAIRN_CDI_DIRS).
bool HasNvidiaCdiSpec();
std::vector<std::string> ContainerArgv(const ContainerRun& r);
// Stops and removes the container (a no-op when it is gone). With `verify`, makes sure it stays
// gone: a container its client was still creating when the job was stopped can appear a moment
// later.
void RemoveContainer(const std::string& runtime, const std::string& name, bool verify);
// Sends `sig` to the container's processes (SIGKILL: removes it).
void SignalContainer(const std::string& runtime, const std::string& name, int sig);
// Whether the runtime has the image locally; a pull of it (60 s at most).
bool ImageExists(const std::string& runtime, const std::string& image);
Status PullImage(const std::string& runtime, const std::string& image);
// The runtime's global options (podman: runc and cgroupfs, as these machines need).
std::vector<std::string> RuntimeBase(const std::string& runtime);

}  // namespace cairn::compute
