// The Azure VM sizes ML users name (resources.instance_type, `compute create --size`): what each
// gives a job here. Figures are Azure's, from the size pages named in each entry's `source`.
#pragma once

#include <cmath>
#include <string>
#include <string_view>
#include <vector>

namespace cairn::spec {

struct VmSize {
  std::string name;    // Standard_NC12s_v3
  std::string family;  // NCv3
  int v_cpus = 0;
  double memory_gib = 0;
  double gpus = 0;  // fractional for the partitioned sizes (NVadsA10 v5: 1/6, 1/3, 1/2 of an A10)
  std::string gpu_model;  // NVIDIA V100 (16 GB)
  std::string source;     // the page the figures come from
  // GPUs held here: a partial GPU is a whole one (Cairn does not partition GPUs).
  int WholeGpus() const { return static_cast<int>(std::ceil(gpus - 1e-9)); }
};

const std::vector<VmSize>& VmSizes();
// By name, ignoring case (Azure's names are case-insensitive); nullptr when unknown.
const VmSize* FindVmSize(std::string_view name);

}  // namespace cairn::spec
