#include "compute/gpu.h"

#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <cstdlib>
#include <set>

#include "base/settings.h"
#include "base/util.h"
#include "compute/process.h"

namespace cairn::compute {

namespace {
// The few NVML calls used (nvml.h, NVML API reference). Every one returns nvmlReturn_t, 0 on
// success.
using nvmlDevice_t = void*;
struct nvmlMemory_t {
  unsigned long long total, free, used;
};
struct nvmlUtilization_t {
  unsigned int gpu, memory;
};
struct nvmlProcessInfo_t {  // the _v3 calls' layout (v2 has the same fields)
  unsigned int pid;
  unsigned long long usedGpuMemory;
  unsigned int gpuInstanceId, computeInstanceId;
};
constexpr int kNvmlSuccess = 0;
constexpr int kNvmlInsufficientSize = 7;
constexpr size_t kNvmlNameSize = 96, kNvmlUuidSize = 96;

std::string DefaultNvml() { return settings::Text("CAIRN_NVML_LIBRARY"); }
}  // namespace

struct GpuSampler::Api {
  int (*init)();
  int (*shutdown)();
  int (*handle)(unsigned int, nvmlDevice_t*);
  int (*utilization)(nvmlDevice_t, nvmlUtilization_t*);
  int (*memory)(nvmlDevice_t, nvmlMemory_t*);
  int (*processes)(nvmlDevice_t, unsigned int*, nvmlProcessInfo_t*);  // may be null (an old driver)
};

Result<std::vector<Gpu>> ParseDeclaredGpus(const std::string& spec) {
  std::vector<Gpu> out;
  std::string s = Trim(spec);
  if (s == "none" || s.empty()) return out;
  std::set<int> seen;
  for (const std::string& item : Split(s, ',')) {
    std::string t = Trim(item);
    char* end = nullptr;
    long v = strtol(t.c_str(), &end, 10);
    if (t.empty() || *end != '\0' || v < 0 || v > 1023)
      return InvalidArgument("CAIRN_GPUS: '" + t +
                             "' is not a GPU index (expected a list such as 0,1,2,3, or none)");
    if (!seen.insert(static_cast<int>(v)).second)
      return InvalidArgument("CAIRN_GPUS: GPU " + t + " is listed twice");
    out.push_back({static_cast<int>(v), "", "declared GPU (CAIRN_GPUS)", 0});
  }
  return out;
}

Result<std::vector<Gpu>> DiscoverWithNvml(const std::string& library) {
  void* lib = dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!lib) return Unavailable("no NVIDIA driver library (" + library + ")");
  auto sym = [&](const char* name) { return dlsym(lib, name); };
  auto init = reinterpret_cast<int (*)()>(sym("nvmlInit_v2"));
  auto shutdown = reinterpret_cast<int (*)()>(sym("nvmlShutdown"));
  auto count = reinterpret_cast<int (*)(unsigned int*)>(sym("nvmlDeviceGetCount_v2"));
  auto handle =
      reinterpret_cast<int (*)(unsigned int, nvmlDevice_t*)>(sym("nvmlDeviceGetHandleByIndex_v2"));
  auto name =
      reinterpret_cast<int (*)(nvmlDevice_t, char*, unsigned int)>(sym("nvmlDeviceGetName"));
  auto uuid =
      reinterpret_cast<int (*)(nvmlDevice_t, char*, unsigned int)>(sym("nvmlDeviceGetUUID"));
  auto memory =
      reinterpret_cast<int (*)(nvmlDevice_t, nvmlMemory_t*)>(sym("nvmlDeviceGetMemoryInfo"));
  if (!init || !shutdown || !count || !handle || !name || !uuid || !memory) {
    dlclose(lib);
    return Unavailable(library + " lacks the NVML calls Cairn uses");
  }
  if (int rc = init(); rc != kNvmlSuccess) {
    dlclose(lib);
    return Unavailable("NVML did not start (error " + std::to_string(rc) + ")");
  }
  std::vector<Gpu> out;
  unsigned int n = 0;
  Status st;
  if (int rc = count(&n); rc != kNvmlSuccess)
    st = Unavailable("NVML could not count the GPUs (error " + std::to_string(rc) + ")");
  for (unsigned int i = 0; st.ok() && i < std::min(n, 1024u); ++i) {
    nvmlDevice_t d = nullptr;
    if (handle(i, &d) != kNvmlSuccess) continue;  // a GPU that fell off the bus: not offered
    char nm[kNvmlNameSize] = {}, id[kNvmlUuidSize] = {};
    nvmlMemory_t mem{};
    Gpu g;
    g.index = static_cast<int>(i);
    if (name(d, nm, sizeof nm) == kNvmlSuccess) g.name = std::string(nm, strnlen(nm, sizeof nm));
    if (uuid(d, id, sizeof id) == kNvmlSuccess) g.uuid = std::string(id, strnlen(id, sizeof id));
    if (memory(d, &mem) == kNvmlSuccess)
      g.memory_mib = static_cast<long long>(mem.total / (1024 * 1024));
    out.push_back(g);
  }
  shutdown();
  dlclose(lib);
  if (!st.ok()) return st;
  return out;
}

Result<std::vector<Gpu>> ParseNvidiaSmi(const std::string& csv) {
  std::vector<Gpu> out;
  int line_no = 0;
  for (const std::string& raw : Split(csv, '\n')) {
    ++line_no;
    std::string line = Trim(raw);
    if (line.empty()) continue;
    std::vector<std::string> f = Split(line, ',');
    if (f.size() < 4)
      return InvalidArgument("nvidia-smi line " + std::to_string(line_no) +
                             ": expected index, uuid, name, memory");
    for (auto& x : f) x = Trim(x);
    char* end = nullptr;
    long idx = strtol(f[0].c_str(), &end, 10);
    if (f[0].empty() || *end != '\0' || idx < 0)
      return InvalidArgument("nvidia-smi line " + std::to_string(line_no) + ": bad index '" + f[0] +
                             "'");
    Gpu g;
    g.index = static_cast<int>(idx);
    g.uuid = f[1];
    // A name with a comma in it is split above: everything between the uuid and the memory is the
    // name.
    std::vector<std::string> name_parts(f.begin() + 2, f.end() - 1);
    g.name = Join(name_parts, ", ");
    g.memory_mib = atoll(f.back().c_str());  // "[N/A]" reads as 0
    out.push_back(g);
  }
  return out;
}

Result<GpuInventory> DiscoverGpus() {
  GpuInventory inv;
  if (auto declared = settings::Get("CAIRN_GPUS")) {
    auto g = ParseDeclaredGpus(*declared);
    if (!g.ok()) return g.status();
    inv.gpus = *g;
    inv.source = "CAIRN_GPUS";
    return inv;
  }
  auto nvml = DiscoverWithNvml(DefaultNvml());
  if (nvml.ok()) {
    inv.gpus = *nvml;
    inv.source = "NVML";
    return inv;
  }
  inv.note = nvml.status().message();
  std::string smi = settings::Text("CAIRN_NVIDIA_SMI");
  if (smi.find('/') != std::string::npos ? access(smi.c_str(), X_OK) == 0 : OnPath(smi)) {
    auto out = RunCommand(
        {smi, "--query-gpu=index,uuid,name,memory.total", "--format=csv,noheader,nounits"}, {},
        10000);
    if (out.ok()) {
      auto parsed = ParseNvidiaSmi(*out);
      if (parsed.ok()) {
        inv.gpus = *parsed;
        inv.source = "nvidia-smi";
        return inv;
      }
      inv.note += "; " + parsed.status().message();
    } else {
      inv.note += "; nvidia-smi: " + out.status().message();
    }
  }
  inv.source = "none";
  return inv;
}

std::string CudaVisibleDevices(const std::vector<Gpu>& held) {
  bool uuids = !held.empty() &&
               std::all_of(held.begin(), held.end(), [](const Gpu& g) { return !g.uuid.empty(); });
  std::vector<std::string> ids;
  for (const Gpu& g : held) ids.push_back(uuids ? g.uuid : std::to_string(g.index));
  return Join(ids, ",");
}

GpuSampler::GpuSampler(const std::string& library) {
  std::string path = library.empty() ? DefaultNvml() : library;
  lib_ = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!lib_) return;
  api_ = new Api{};
  api_->init = reinterpret_cast<int (*)()>(dlsym(lib_, "nvmlInit_v2"));
  api_->shutdown = reinterpret_cast<int (*)()>(dlsym(lib_, "nvmlShutdown"));
  api_->handle = reinterpret_cast<int (*)(unsigned int, nvmlDevice_t*)>(
      dlsym(lib_, "nvmlDeviceGetHandleByIndex_v2"));
  api_->utilization = reinterpret_cast<int (*)(nvmlDevice_t, nvmlUtilization_t*)>(
      dlsym(lib_, "nvmlDeviceGetUtilizationRates"));
  api_->memory = reinterpret_cast<int (*)(nvmlDevice_t, nvmlMemory_t*)>(
      dlsym(lib_, "nvmlDeviceGetMemoryInfo"));
  api_->processes = reinterpret_cast<int (*)(nvmlDevice_t, unsigned int*, nvmlProcessInfo_t*)>(
      dlsym(lib_, "nvmlDeviceGetComputeRunningProcesses_v3"));
  if (!api_->init || !api_->shutdown || !api_->handle || !api_->utilization || !api_->memory ||
      api_->init() != kNvmlSuccess) {
    delete api_;
    api_ = nullptr;
    dlclose(lib_);
    lib_ = nullptr;
  }
}

GpuSampler::~GpuSampler() {
  if (api_) api_->shutdown();
  delete api_;
  if (lib_) dlclose(lib_);
}

std::vector<GpuSample> GpuSampler::Sample(const std::vector<int>& indices,
                                          const std::vector<pid_t>& pids) {
  std::vector<GpuSample> out;
  if (!api_) return out;
  std::set<unsigned int> mine(pids.begin(), pids.end());
  for (int i : indices) {
    nvmlDevice_t d = nullptr;
    if (api_->handle(static_cast<unsigned int>(i), &d) != kNvmlSuccess) continue;
    GpuSample s;
    s.index = i;
    nvmlUtilization_t u{};
    if (api_->utilization(d, &u) == kNvmlSuccess) s.utilization_percent = u.gpu;
    bool counted = false;
    if (api_->processes) {
      std::vector<nvmlProcessInfo_t> procs(64);
      unsigned int n = static_cast<unsigned int>(procs.size());
      int rc = api_->processes(d, &n, procs.data());
      if (rc == kNvmlInsufficientSize && n > procs.size()) {
        procs.resize(n);
        rc = api_->processes(d, &n, procs.data());
      }
      if (rc == kNvmlSuccess) {
        counted = true;
        for (unsigned int k = 0; k < std::min<size_t>(n, procs.size()); ++k)
          if (mine.count(procs[k].pid))
            s.memory_used_mib += static_cast<double>(procs[k].usedGpuMemory) / (1024 * 1024);
      }
    }
    if (!counted) {
      nvmlMemory_t m{};
      if (api_->memory(d, &m) == kNvmlSuccess)
        s.memory_used_mib = static_cast<double>(m.used) / (1024 * 1024);
    }
    out.push_back(s);
  }
  return out;
}

}  // namespace cairn::compute
