#include "spec/vm_sizes.h"

#include <algorithm>
#include <cctype>

namespace cairn::spec {

namespace {
constexpr char kNc[] =
    "https://learn.microsoft.com/azure/virtual-machines/sizes/gpu-accelerated/nc-family";
constexpr char kNd[] =
    "https://learn.microsoft.com/azure/virtual-machines/sizes/gpu-accelerated/nd-family";
constexpr char kNv[] =
    "https://learn.microsoft.com/azure/virtual-machines/sizes/gpu-accelerated/nv-family";
constexpr char kD[] =
    "https://learn.microsoft.com/azure/virtual-machines/sizes/general-purpose/d-family";
constexpr char kE[] =
    "https://learn.microsoft.com/azure/virtual-machines/sizes/memory-optimized/e-family";
constexpr char kF[] =
    "https://learn.microsoft.com/azure/virtual-machines/sizes/compute-optimized/f-family";

std::vector<VmSize> Build() {
  std::vector<VmSize> t = {
      // NC: K80 (half a board each), retired but still in older YAML.
      {"Standard_NC6", "NC", 6, 56, 1, "NVIDIA K80 (12 GB)", kNc},
      {"Standard_NC12", "NC", 12, 112, 2, "NVIDIA K80 (12 GB)", kNc},
      {"Standard_NC24", "NC", 24, 224, 4, "NVIDIA K80 (12 GB)", kNc},
      {"Standard_NC24r", "NC", 24, 224, 4, "NVIDIA K80 (12 GB)", kNc},
      {"Standard_NC6s_v2", "NCv2", 6, 112, 1, "NVIDIA P100 (16 GB)", kNc},
      {"Standard_NC12s_v2", "NCv2", 12, 224, 2, "NVIDIA P100 (16 GB)", kNc},
      {"Standard_NC24s_v2", "NCv2", 24, 448, 4, "NVIDIA P100 (16 GB)", kNc},
      {"Standard_NC24rs_v2", "NCv2", 24, 448, 4, "NVIDIA P100 (16 GB)", kNc},
      {"Standard_NC6s_v3", "NCv3", 6, 112, 1, "NVIDIA V100 (16 GB)", kNc},
      {"Standard_NC12s_v3", "NCv3", 12, 224, 2, "NVIDIA V100 (16 GB)", kNc},
      {"Standard_NC24s_v3", "NCv3", 24, 448, 4, "NVIDIA V100 (16 GB)", kNc},
      {"Standard_NC24rs_v3", "NCv3", 24, 448, 4, "NVIDIA V100 (16 GB)", kNc},
      {"Standard_NC4as_T4_v3", "NCasT4_v3", 4, 28, 1, "NVIDIA T4 (16 GB)", kNc},
      {"Standard_NC8as_T4_v3", "NCasT4_v3", 8, 56, 1, "NVIDIA T4 (16 GB)", kNc},
      {"Standard_NC16as_T4_v3", "NCasT4_v3", 16, 110, 1, "NVIDIA T4 (16 GB)", kNc},
      {"Standard_NC64as_T4_v3", "NCasT4_v3", 64, 440, 4, "NVIDIA T4 (16 GB)", kNc},
      {"Standard_NC24ads_A100_v4", "NC A100 v4", 24, 220, 1, "NVIDIA A100 PCIe (80 GB)", kNc},
      {"Standard_NC48ads_A100_v4", "NC A100 v4", 48, 440, 2, "NVIDIA A100 PCIe (80 GB)", kNc},
      {"Standard_NC96ads_A100_v4", "NC A100 v4", 96, 880, 4, "NVIDIA A100 PCIe (80 GB)", kNc},
      {"Standard_NC40ads_H100_v5", "NCads H100 v5", 40, 320, 1, "NVIDIA H100 NVL (94 GB)", kNc},
      {"Standard_NC80adis_H100_v5", "NCads H100 v5", 80, 640, 2, "NVIDIA H100 NVL (94 GB)", kNc},
      // ND
      {"Standard_ND6s", "ND", 6, 112, 1, "NVIDIA P40 (24 GB)", kNd},
      {"Standard_ND12s", "ND", 12, 224, 2, "NVIDIA P40 (24 GB)", kNd},
      {"Standard_ND24s", "ND", 24, 448, 4, "NVIDIA P40 (24 GB)", kNd},
      {"Standard_ND24rs", "ND", 24, 448, 4, "NVIDIA P40 (24 GB)", kNd},
      {"Standard_ND40rs_v2", "NDv2", 40, 672, 8, "NVIDIA V100 SXM2 (32 GB)", kNd},
      {"Standard_ND96asr_v4", "ND A100 v4", 96, 900, 8, "NVIDIA A100 SXM4 (40 GB)", kNd},
      {"Standard_ND96amsr_A100_v4", "NDm A100 v4", 96, 1900, 8, "NVIDIA A100 SXM4 (80 GB)", kNd},
      {"Standard_ND96isr_H100_v5", "ND H100 v5", 96, 1900, 8, "NVIDIA H100 SXM5 (80 GB)", kNd},
      {"Standard_ND96isr_H200_v5", "ND H200 v5", 96, 1850, 8, "NVIDIA H200 (141 GB)", kNd},
      // NV
      {"Standard_NV6", "NV", 6, 56, 1, "NVIDIA M60 (8 GB)", kNv},
      {"Standard_NV12", "NV", 12, 112, 2, "NVIDIA M60 (8 GB)", kNv},
      {"Standard_NV24", "NV", 24, 224, 4, "NVIDIA M60 (8 GB)", kNv},
      {"Standard_NV12s_v3", "NVv3", 12, 112, 1, "NVIDIA M60 (8 GB)", kNv},
      {"Standard_NV24s_v3", "NVv3", 24, 224, 2, "NVIDIA M60 (8 GB)", kNv},
      {"Standard_NV48s_v3", "NVv3", 48, 448, 4, "NVIDIA M60 (8 GB)", kNv},
      {"Standard_NV6ads_A10_v5", "NVadsA10 v5", 6, 55, 1.0 / 6, "NVIDIA A10 (1/6 of 24 GB)", kNv},
      {"Standard_NV12ads_A10_v5", "NVadsA10 v5", 12, 110, 1.0 / 3, "NVIDIA A10 (1/3 of 24 GB)",
       kNv},
      {"Standard_NV18ads_A10_v5", "NVadsA10 v5", 18, 220, 0.5, "NVIDIA A10 (1/2 of 24 GB)", kNv},
      {"Standard_NV36ads_A10_v5", "NVadsA10 v5", 36, 440, 1, "NVIDIA A10 (24 GB)", kNv},
      {"Standard_NV36adms_A10_v5", "NVadsA10 v5", 36, 880, 1, "NVIDIA A10 (24 GB)", kNv},
      {"Standard_NV72ads_A10_v5", "NVadsA10 v5", 72, 880, 2, "NVIDIA A10 (24 GB)", kNv},
  };
  // CPU series: name pattern, vCPUs, memory per vCPU (GiB).
  struct Series {
    std::string family;
    std::vector<std::pair<std::string, std::pair<int, double>>> sizes;
    const char* source;
  };
  std::vector<Series> cpu = {
      {"Dv2",
       {{"D1_v2", {1, 3.5}},
        {"D2_v2", {2, 7}},
        {"D3_v2", {4, 14}},
        {"D4_v2", {8, 28}},
        {"D5_v2", {16, 56}},
        {"D11_v2", {2, 14}},
        {"D12_v2", {4, 28}},
        {"D13_v2", {8, 56}},
        {"D14_v2", {16, 112}}},
       kD},
      {"DSv2",
       {{"DS1_v2", {1, 3.5}},
        {"DS2_v2", {2, 7}},
        {"DS3_v2", {4, 14}},
        {"DS4_v2", {8, 28}},
        {"DS5_v2", {16, 56}},
        {"DS11_v2", {2, 14}},
        {"DS12_v2", {4, 28}},
        {"DS13_v2", {8, 56}},
        {"DS14_v2", {16, 112}}},
       kD},
  };
  for (const char* suffix :
       {"_v3", "s_v3", "_v4", "s_v4", "ds_v4", "as_v4", "_v5", "s_v5", "ds_v5", "as_v5"}) {
    Series s{std::string("D") + suffix, {}, kD};
    for (int n : {2, 4, 8, 16, 32, 48, 64})
      s.sizes.push_back({"D" + std::to_string(n) + suffix, {n, 4.0 * n}});
    cpu.push_back(s);
  }
  for (const char* suffix :
       {"_v3", "s_v3", "_v4", "s_v4", "ds_v4", "as_v4", "_v5", "s_v5", "ds_v5", "as_v5"}) {
    std::string sfx = suffix;
    Series s{"E" + sfx, {}, kE};
    bool v3 = sfx.find("v3") != std::string::npos, v4 = sfx.find("v4") != std::string::npos;
    for (int n : {2, 4, 8, 16, 20, 32, 48, 64}) {
      if (n == 20 && v3) continue;  // E20 came with v4
      // The 64-vCPU sizes stop short of 8 GiB per vCPU on Intel v3 and v4: 432 and 504 GiB.
      double mem = n == 64 && v3 ? 432.0 : n == 64 && v4 && sfx != "as_v4" ? 504.0 : 8.0 * n;
      s.sizes.push_back({"E" + std::to_string(n) + sfx, {n, mem}});
    }
    cpu.push_back(s);
  }
  {
    Series s{"Fsv2", {}, kF};
    for (int n : {2, 4, 8, 16, 32, 48, 64, 72})
      s.sizes.push_back({"F" + std::to_string(n) + "s_v2", {n, 2.0 * n}});
    cpu.push_back(s);
  }
  for (const auto& s : cpu)
    for (const auto& [n, shape] : s.sizes)
      t.push_back({"Standard_" + n, s.family, shape.first, shape.second, 0, "", s.source});
  return t;
}

bool SameName(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}
}  // namespace

const std::vector<VmSize>& VmSizes() {
  static const std::vector<VmSize> table = Build();
  return table;
}

const VmSize* FindVmSize(std::string_view name) {
  for (const VmSize& s : VmSizes())
    if (SameName(s.name, name)) return &s;
  return nullptr;
}

}  // namespace cairn::spec
