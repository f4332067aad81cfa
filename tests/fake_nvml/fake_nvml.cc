/* A stand-in for libnvidia-ml.so.1 with the few calls Cairn makes, for the unit tests: what a
 * machine with FAKE_NVML_COUNT GPUs (default 2) would answer. FAKE_NVML_INIT_FAILS makes
 * nvmlInit_v2 fail as a driver mismatch does. Each GPU runs two processes: FAKE_NVML_PID (default
 * 4242) using 1 GiB and pid 1 using 5 GiB. */
#include <cstdio>
#include <cstdlib>
#include <cstring>

extern "C" {

typedef struct {
  unsigned long long total, free, used;
} nvmlMemory_t;
typedef struct {
  unsigned int gpu, memory;
} nvmlUtilization_t;
typedef struct {
  unsigned int pid;
  unsigned long long usedGpuMemory;
  unsigned int gpuInstanceId, computeInstanceId;
} nvmlProcessInfo_t;

static unsigned int count() {
  const char* c = getenv("FAKE_NVML_COUNT");
  return c ? (unsigned int)atoi(c) : 2;
}
static long index_of(void* d) { return reinterpret_cast<long>(d) - 1; }

int nvmlInit_v2() {
  return getenv("FAKE_NVML_INIT_FAILS") ? 18 /* NVML_ERROR_LIB_RM_VERSION_MISMATCH */ : 0;
}
int nvmlShutdown() { return 0; }
int nvmlDeviceGetCount_v2(unsigned int* n) {
  *n = count();
  return 0;
}
int nvmlDeviceGetHandleByIndex_v2(unsigned int i, void** d) {
  if (i >= count()) return 2; /* NVML_ERROR_INVALID_ARGUMENT */
  *d = reinterpret_cast<void*>(static_cast<long>(i) + 1);
  return 0;
}
int nvmlDeviceGetName(void* d, char* out, unsigned int len) {
  snprintf(out, len, "Fake H200 %ld", index_of(d));
  return 0;
}
int nvmlDeviceGetUUID(void* d, char* out, unsigned int len) {
  snprintf(out, len, "GPU-00000000-fake-0000-0000-00000000000%ld", index_of(d));
  return 0;
}
int nvmlDeviceGetMemoryInfo(void* d, nvmlMemory_t* m) {
  (void)d;
  m->total = 141ULL << 30;
  m->used = 6ULL << 30;
  m->free = m->total - m->used;
  return 0;
}
int nvmlDeviceGetUtilizationRates(void* d, nvmlUtilization_t* u) {
  u->gpu = 40 + (unsigned int)index_of(d);
  u->memory = 10;
  return 0;
}
int nvmlDeviceGetComputeRunningProcesses_v3(void* d, unsigned int* n, nvmlProcessInfo_t* procs) {
  (void)d;
  if (*n < 2) {
    *n = 2;
    return 7; /* NVML_ERROR_INSUFFICIENT_SIZE */
  }
  const char* p = getenv("FAKE_NVML_PID");
  std::memset(static_cast<void*>(procs), 0, 2 * sizeof *procs);
  procs[0].pid = p ? (unsigned int)atoi(p) : 4242;
  procs[0].usedGpuMemory = 1ULL << 30;
  procs[1].pid = 1;
  procs[1].usedGpuMemory = 5ULL << 30;
  *n = 2;
  return 0;
}

}  // extern "C"
