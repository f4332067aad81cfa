// GPUs: what this machine has, and what a job's processes use of them.
//
// Discovery is NVML, loaded at run time (`libnvidia-ml.so.1` through dlopen, as Slurm's gres/nvml
// and the Kubernetes device plugin do): no build-time dependency and nothing to install where there
// is no GPU. `nvidia-smi --query-gpu` is the fallback. `CAIRN_GPUS` in the server's environment
// overrides both: `0,1,2,3` declares four GPUs with those indices, `none` declares none.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "base/status.h"

namespace cairn::compute {

struct Gpu {
  int index = 0;
  std::string uuid;  // "GPU-..." (empty for a declared GPU)
  std::string name;  // "NVIDIA H200"
  long long memory_mib = 0;
};

struct GpuInventory {
  std::vector<Gpu> gpus;
  std::string source;  // "CAIRN_GPUS", "NVML", "nvidia-smi" or "none"
  std::string note;    // why discovery found none, when it tried (e.g. "no NVIDIA driver")
};

// The machine's GPUs: CAIRN_GPUS, else NVML (CAIRN_NVML_LIBRARY names another library file), else
// nvidia-smi (CAIRN_NVIDIA_SMI another binary). A malformed CAIRN_GPUS is InvalidArgument.
Result<GpuInventory> DiscoverGpus();

// The pieces, for the tests.
Result<std::vector<Gpu>> ParseDeclaredGpus(const std::string& spec);  // CAIRN_GPUS's value
Result<std::vector<Gpu>> DiscoverWithNvml(const std::string& library);
// `nvidia-smi --query-gpu=index,uuid,name,memory.total --format=csv,noheader,nounits` output.
Result<std::vector<Gpu>> ParseNvidiaSmi(const std::string& csv);

// CUDA_VISIBLE_DEVICES for a set of GPUs: their UUIDs when every one is known, else their indices.
std::string CudaVisibleDevices(const std::vector<Gpu>& held);

// One look at what GPUs are doing, through NVML (nothing where it cannot be loaded).
struct GpuSample {
  int index = 0;
  double utilization_percent = 0;  // the device's, over its last sample period
  double memory_used_mib = 0;      // by the given processes when NVML lists them, else the device's
};
class GpuSampler {
 public:
  explicit GpuSampler(const std::string& library = "");
  ~GpuSampler();
  GpuSampler(const GpuSampler&) = delete;
  GpuSampler& operator=(const GpuSampler&) = delete;
  bool ok() const { return lib_ != nullptr; }
  // The GPUs with these indices; memory counts only `pids`' use when the driver reports processes.
  std::vector<GpuSample> Sample(const std::vector<int>& indices, const std::vector<pid_t>& pids);

 private:
  void* lib_ = nullptr;
  struct Api;
  Api* api_ = nullptr;
};

}  // namespace cairn::compute
