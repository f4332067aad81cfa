// A job's system metrics, sampled by its supervisor: what the job's own processes use (their
// cgroup, else the supervisor's descendants), not the whole machine, under MLflow's system-metric
// names so that the studio, `cairn job metrics` and the mlflow client all read them as MLflow's
// own:
//   system/cpu_utilization_percentage      the job's CPU time over the interval, as a share of the
//   machine system/system_memory_usage_megabytes   the job's memory
//   system/system_memory_usage_percentage  the same, of the machine's
//   system/gpu_<i>_utilization_percentage  per GPU the job holds (NVML), i counted from 0 within
//   the job system/gpu_<i>_memory_usage_megabytes  the job's processes' memory on it
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "compute/gpu.h"

namespace cairn::compute {

class SystemMetrics {
 public:
  // `cgroup`: the job's cgroup folder ("" without one); `gpus`: the indices the job holds.
  SystemMetrics(std::string cgroup, std::vector<int> gpus);
  // One sample; the CPU share needs a previous one, so the first returns no CPU figure.
  std::vector<std::pair<std::string, double>> Sample(long long now_ms);

 private:
  std::vector<pid_t> Processes() const;
  double CpuSeconds(const std::vector<pid_t>& pids) const;
  double MemoryBytes(const std::vector<pid_t>& pids) const;

  std::string cgroup_;
  std::vector<int> gpus_;
  std::unique_ptr<GpuSampler> sampler_;
  double machine_bytes_ = 0;
  long cpus_ = 1;
  long long last_ms_ = 0;
  double last_cpu_ = -1;
};

}  // namespace cairn::compute
