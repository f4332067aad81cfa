#include "compute/system_metrics.h"

#include <unistd.h>

#include <cstdlib>

#include "base/fs.h"
#include "base/util.h"
#include "compute/process.h"

namespace cairn::compute {

namespace {
std::string Text(const std::string& path) {
  auto t = ReadFile(path, 1 << 20);
  return t.ok() ? *t : "";
}
}  // namespace

SystemMetrics::SystemMetrics(std::string cgroup, std::vector<int> gpus)
    : cgroup_(std::move(cgroup)), gpus_(std::move(gpus)) {
  if (!gpus_.empty()) {
    sampler_ = std::make_unique<GpuSampler>();
    if (!sampler_->ok()) sampler_.reset();
  }
  for (const auto& line : Split(Text("/proc/meminfo"), '\n'))
    if (StartsWith(line, "MemTotal:")) machine_bytes_ = atof(line.substr(9).c_str()) * 1024;
  cpus_ = std::max(1L, sysconf(_SC_NPROCESSORS_ONLN));
}

std::vector<pid_t> SystemMetrics::Processes() const {
  std::vector<pid_t> out;
  if (!cgroup_.empty()) {
    for (const auto& line : Split(Text(cgroup_ + "/cgroup.procs"), '\n'))
      if (!line.empty()) out.push_back(static_cast<pid_t>(atol(line.c_str())));
    return out;
  }
  return Descendants(getpid());
}

double SystemMetrics::CpuSeconds(const std::vector<pid_t>& pids) const {
  if (!cgroup_.empty()) {
    // cpu.stat's usage_usec counts every process the cgroup ever had, the ended ones too.
    for (const auto& line : Split(Text(cgroup_ + "/cpu.stat"), '\n'))
      if (StartsWith(line, "usage_usec ")) return atof(line.c_str() + 11) / 1e6;
  }
  double ticks = 0;
  for (pid_t p : pids) {
    std::string stat = Text("/proc/" + std::to_string(p) + "/stat");
    size_t close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::vector<std::string> f = Split(stat.substr(close + 2), ' ');
    if (f.size() > 12) ticks += atof(f[11].c_str()) + atof(f[12].c_str());  // utime, stime
  }
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double SystemMetrics::MemoryBytes(const std::vector<pid_t>& pids) const {
  if (!cgroup_.empty()) {
    std::string current = Trim(Text(cgroup_ + "/memory.current"));
    if (!current.empty()) return atof(current.c_str());
  }
  double pages = 0;
  for (pid_t p : pids) {
    std::vector<std::string> f = Split(Trim(Text("/proc/" + std::to_string(p) + "/statm")), ' ');
    if (f.size() > 1) pages += atof(f[1].c_str());  // resident
  }
  return pages * static_cast<double>(sysconf(_SC_PAGESIZE));
}

std::vector<std::pair<std::string, double>> SystemMetrics::Sample(long long now_ms) {
  std::vector<std::pair<std::string, double>> out;
  std::vector<pid_t> pids = Processes();
  double cpu = CpuSeconds(pids);
  if (last_cpu_ >= 0 && now_ms > last_ms_) {
    double share = (cpu - last_cpu_) / (static_cast<double>(now_ms - last_ms_) / 1000.0) /
                   static_cast<double>(cpus_) * 100.0;
    out.push_back({"system/cpu_utilization_percentage", std::max(0.0, std::min(100.0, share))});
  }
  last_cpu_ = cpu;
  last_ms_ = now_ms;
  double mem = MemoryBytes(pids);
  out.push_back({"system/system_memory_usage_megabytes", mem / (1024.0 * 1024.0)});
  if (machine_bytes_ > 0)
    out.push_back({"system/system_memory_usage_percentage", mem / machine_bytes_ * 100.0});
  if (sampler_) {
    std::vector<GpuSample> s = sampler_->Sample(gpus_, pids);
    for (size_t i = 0; i < s.size(); ++i) {
      std::string p = "system/gpu_" + std::to_string(i) + "_";
      out.push_back({p + "utilization_percentage", s[i].utilization_percent});
      out.push_back({p + "memory_usage_megabytes", s[i].memory_used_mib});
    }
  }
  return out;
}

}  // namespace cairn::compute
