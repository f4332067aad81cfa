#include "compute/gpu.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <optional>

#include <filesystem>

#include <nlohmann/json.hpp>

#include "base/fs.h"
#include "base/util.h"
#include "compute/container.h"

#include "spec/compute_spec.h"
#include "spec/diagnostics.h"
#include "spec/vm_sizes.h"

namespace cairn::compute {
namespace {

// Sets an environment variable for one scope.
struct ScopedEnv {
  ScopedEnv(const char* k, const char* v) : key(k) {
    if (const char* old = getenv(k)) had = old;
    if (v)
      setenv(k, v, 1);
    else
      unsetenv(k);
  }
  ~ScopedEnv() {
    if (had)
      setenv(key, had->c_str(), 1);
    else
      unsetenv(key);
  }
  const char* key;
  std::optional<std::string> had;
};

TEST(Gpus, DeclaredListsAreIndicesOrNone) {
  auto four = ParseDeclaredGpus("0,1,2,3");
  ASSERT_TRUE(four.ok());
  ASSERT_EQ(four->size(), 4u);
  EXPECT_EQ((*four)[3].index, 3);
  EXPECT_TRUE((*four)[0].uuid.empty());
  EXPECT_TRUE(ParseDeclaredGpus("none")->empty());
  EXPECT_EQ(ParseDeclaredGpus(" 2, 5 ")->back().index, 5);
  for (const char* bad : {"0,x", "-1", "0,0", "1.5", "0,,1"}) {
    auto r = ParseDeclaredGpus(bad);
    EXPECT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.status().message().find("CAIRN_GPUS"), std::string::npos) << r.status().message();
  }
}

TEST(Gpus, CairnGpusOverridesDiscovery) {
  ScopedEnv lib("CAIRN_NVML_LIBRARY", FAKE_NVML_PATH);
  {
    ScopedEnv g("CAIRN_GPUS", "0,1,2,3");
    auto inv = DiscoverGpus();
    ASSERT_TRUE(inv.ok());
    EXPECT_EQ(inv->source, "CAIRN_GPUS");
    EXPECT_EQ(inv->gpus.size(), 4u);
  }
  {
    ScopedEnv g("CAIRN_GPUS", "none");
    EXPECT_TRUE(DiscoverGpus()->gpus.empty());
  }
  {
    ScopedEnv g("CAIRN_GPUS", "zero");
    EXPECT_FALSE(DiscoverGpus().ok());
  }
}

TEST(Gpus, NvmlDiscoveryThroughTheDriverLibrary) {
  ScopedEnv count("FAKE_NVML_COUNT", "3");
  auto gpus = DiscoverWithNvml(FAKE_NVML_PATH);
  ASSERT_TRUE(gpus.ok()) << gpus.status().message();
  ASSERT_EQ(gpus->size(), 3u);
  EXPECT_EQ((*gpus)[2].index, 2);
  EXPECT_EQ((*gpus)[2].name, "Fake H200 2");
  EXPECT_EQ((*gpus)[2].uuid, "GPU-00000000-fake-0000-0000-000000000002");
  EXPECT_EQ((*gpus)[0].memory_mib, 141 * 1024);
  // And as the server finds them when no CAIRN_GPUS is given.
  ScopedEnv none("CAIRN_GPUS", nullptr);
  ScopedEnv lib("CAIRN_NVML_LIBRARY", FAKE_NVML_PATH);
  auto inv = DiscoverGpus();
  ASSERT_TRUE(inv.ok());
  EXPECT_EQ(inv->source, "NVML");
  EXPECT_EQ(inv->gpus.size(), 3u);
}

TEST(Gpus, NoDriverOrAFailingOneMeansNoGpuAndSaysWhy) {
  EXPECT_FALSE(DiscoverWithNvml("/nonexistent/libnvidia-ml.so.1").ok());
  ScopedEnv fails("FAKE_NVML_INIT_FAILS", "1");
  auto r = DiscoverWithNvml(FAKE_NVML_PATH);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("NVML did not start"), std::string::npos);
  ScopedEnv none("CAIRN_GPUS", nullptr);
  ScopedEnv lib("CAIRN_NVML_LIBRARY", "/nonexistent/libnvidia-ml.so.1");
  ScopedEnv smi("CAIRN_NVIDIA_SMI", "/nonexistent/nvidia-smi");
  auto inv = DiscoverGpus();
  ASSERT_TRUE(inv.ok());
  EXPECT_TRUE(inv->gpus.empty());
  EXPECT_EQ(inv->source, "none");
  EXPECT_NE(inv->note.find("no NVIDIA driver library"), std::string::npos) << inv->note;
}

TEST(Gpus, NvidiaSmiOutputAsRecordedOnAnH200Machine) {
  // `nvidia-smi --query-gpu=index,uuid,name,memory.total --format=csv,noheader,nounits`, two GPUs.
  const char* recorded =
      "0, GPU-6f5c4a1e-2b3d-4c5e-8f90-1a2b3c4d5e6f, NVIDIA H200, 143771\n"
      "1, GPU-0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d, NVIDIA H200, 143771\n";
  auto gpus = ParseNvidiaSmi(recorded);
  ASSERT_TRUE(gpus.ok()) << gpus.status().message();
  ASSERT_EQ(gpus->size(), 2u);
  EXPECT_EQ((*gpus)[1].index, 1);
  EXPECT_EQ((*gpus)[1].uuid, "GPU-0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d");
  EXPECT_EQ((*gpus)[0].name, "NVIDIA H200");
  EXPECT_EQ((*gpus)[0].memory_mib, 143771);
  // A name with a comma, and a memory the driver cannot say.
  auto odd = ParseNvidiaSmi("0, GPU-x, Tesla K80, rev 2, [N/A]\n");
  ASSERT_TRUE(odd.ok());
  EXPECT_EQ((*odd)[0].name, "Tesla K80, rev 2");
  EXPECT_EQ((*odd)[0].memory_mib, 0);
  EXPECT_FALSE(ParseNvidiaSmi("No devices were found\n").ok());
  EXPECT_TRUE(ParseNvidiaSmi("")->empty());
}

TEST(Gpus, CudaVisibleDevicesByUuidWhenEveryOneIsKnown) {
  EXPECT_EQ(CudaVisibleDevices({{0, "GPU-a", "", 0}, {1, "GPU-b", "", 0}}), "GPU-a,GPU-b");
  EXPECT_EQ(CudaVisibleDevices({{2, "", "", 0}, {3, "", "", 0}}), "2,3");
  EXPECT_EQ(CudaVisibleDevices({{2, "GPU-a", "", 0}, {3, "", "", 0}}), "2,3");
  EXPECT_EQ(CudaVisibleDevices({}), "");
}

TEST(Gpus, SamplesCountOnlyTheJobsOwnProcessesMemory) {
  ScopedEnv pid("FAKE_NVML_PID", "777");
  GpuSampler s(FAKE_NVML_PATH);
  ASSERT_TRUE(s.ok());
  auto samples = s.Sample({1}, {777});
  ASSERT_EQ(samples.size(), 1u);
  EXPECT_EQ(samples[0].index, 1);
  EXPECT_DOUBLE_EQ(samples[0].utilization_percent, 41);
  EXPECT_DOUBLE_EQ(samples[0].memory_used_mib, 1024);  // its 1 GiB, not pid 1's 5 GiB
  EXPECT_DOUBLE_EQ(s.Sample({0}, {12345})[0].memory_used_mib, 0);
  GpuSampler none("/nonexistent/libnvidia-ml.so.1");
  EXPECT_FALSE(none.ok());
  EXPECT_TRUE(none.Sample({0}, {1}).empty());
}

TEST(VmSizes, TheSeriesMlUsersNameWithTheirGpus) {
  struct Want {
    const char* name;
    int cpus;
    double gpus;
  };
  for (const Want& w : std::vector<Want>{{"Standard_NC6", 6, 1},
                                         {"Standard_NC12", 12, 2},
                                         {"Standard_NC24s_v3", 24, 4},
                                         {"Standard_NC4as_T4_v3", 4, 1},
                                         {"Standard_NC64as_T4_v3", 64, 4},
                                         {"Standard_NC24ads_A100_v4", 24, 1},
                                         {"Standard_NC96ads_A100_v4", 96, 4},
                                         {"Standard_NC40ads_H100_v5", 40, 1},
                                         {"Standard_NC80adis_H100_v5", 80, 2},
                                         {"Standard_ND40rs_v2", 40, 8},
                                         {"Standard_ND96asr_v4", 96, 8},
                                         {"Standard_ND96amsr_A100_v4", 96, 8},
                                         {"Standard_ND96isr_H100_v5", 96, 8},
                                         {"Standard_ND24s", 24, 4},
                                         {"Standard_NV12", 12, 2},
                                         {"Standard_NV36ads_A10_v5", 36, 1},
                                         {"Standard_NV6ads_A10_v5", 6, 1.0 / 6},
                                         {"Standard_DS3_v2", 4, 0},
                                         {"Standard_D4s_v3", 4, 0},
                                         {"Standard_E8s_v3", 8, 0},
                                         {"Standard_F16s_v2", 16, 0}}) {
    const spec::VmSize* v = spec::FindVmSize(w.name);
    ASSERT_NE(v, nullptr) << w.name;
    EXPECT_EQ(v->v_cpus, w.cpus) << w.name;
    EXPECT_NEAR(v->gpus, w.gpus, 1e-9) << w.name;
    EXPECT_TRUE(v->source.find("learn.microsoft.com") != std::string::npos) << w.name;
  }
  EXPECT_EQ(spec::FindVmSize("standard_nc40ADS_h100_V5")->name,
            "Standard_NC40ads_H100_v5");  // any case
  EXPECT_EQ(spec::FindVmSize("Standard_NV6ads_A10_v5")->WholeGpus(),
            1);  // a sixth of a GPU holds one here
  EXPECT_EQ(spec::FindVmSize("Standard_E64s_v3")->memory_gib, 432);
  EXPECT_EQ(spec::FindVmSize("Standard_NC12s_v3")->gpu_model, "NVIDIA V100 (16 GB)");
  EXPECT_EQ(spec::FindVmSize("Standard_Nope"), nullptr);
}

TEST(InstanceShapes, InstanceTypeThenDefaultThenSize) {
  nlohmann::json extra = {
      {"instance_types", {{"a100x2", {{"gpus", 2}, {"cpus", 16}, {"memory", "128Gi"}}}}},
      {"default_instance_type", "a100x2"}};
  auto s = spec::ShapeFor(extra, "Standard_NC6", "Standard_NC24s_v3");
  EXPECT_EQ(s.gpus, 4);
  EXPECT_EQ(s.from, "resources.instance_type");
  s = spec::ShapeFor(extra, "Standard_NC6", "a100x2");
  EXPECT_EQ(s.gpus, 2);
  EXPECT_TRUE(s.known);
  s = spec::ShapeFor(extra, "Standard_NC6", "");
  EXPECT_EQ(s.from, "default_instance_type");
  EXPECT_EQ(s.gpus, 2);
  s = spec::ShapeFor(nlohmann::json::object(), "Standard_NC12", "");
  EXPECT_EQ(s.from, "size");
  EXPECT_EQ(s.gpus, 2);
  s = spec::ShapeFor(nlohmann::json::object(), "", "gpu-large");
  EXPECT_FALSE(s.known);
  EXPECT_EQ(s.gpus, 0);
  EXPECT_EQ(spec::ShapeFor(nlohmann::json::object(), "", "").from, "");
}

TEST(InstanceShapes, ComputeYamlInstanceTypesAreCheckedWhereWritten) {
  spec::Diagnostics d;
  auto ok = spec::ParseComputeText(
      "name: k8s\ntype: amlcompute\ninstance_types:\n  a100x2: {gpus: 2, cpus: 16, memory: 128Gi}\n"
      "default_instance_type: a100x2\n",
      "c.yml", {}, d);
  ASSERT_TRUE(ok) << d.ToString();
  EXPECT_EQ(ok->extra["instance_types"]["a100x2"]["gpus"], 2);
  spec::Diagnostics bad;
  auto no = spec::ParseComputeText(
      "name: k8s\ntype: amlcompute\ninstance_types:\n  big: {gpus: two, cpu: "
      "4}\ndefault_instance_type: huge\n",
      "c.yml", {}, bad);
  EXPECT_FALSE(no);
  std::string text = bad.ToString();
  EXPECT_NE(text.find("c.yml:4:"), std::string::npos) << text;
  EXPECT_NE(text.find("instance_types.big.gpus: expected a whole number of GPUs, got \"two\""),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("instance_types.big: unknown key 'cpu' (did you mean 'cpus'?)"),
            std::string::npos)
      << text;
  EXPECT_NE(
      text.find(
          "default_instance_type: 'huge' is neither one of the compute's instance_types (big)"),
      std::string::npos)
      << text;
}

}  // namespace
}  // namespace cairn::compute

namespace cairn::compute {
namespace {

TEST(GpuContainers, CdiDevicesWhereTheHostDescribesItsGpus) {
  std::string dir = std::filesystem::temp_directory_path() / ("cairn-cdi-" + RandomHex(6));
  std::filesystem::create_directories(dir);
  ScopedEnv dirs("CAIRN_CDI_DIRS", dir.c_str());
  EXPECT_FALSE(HasNvidiaCdiSpec());
  ASSERT_TRUE(
      WriteFile(dir + "/other.yaml", "cdiVersion: 0.5.0\nkind: vendor.example/fpga\n").ok());
  EXPECT_FALSE(HasNvidiaCdiSpec());
  ASSERT_TRUE(WriteFile(dir + "/nvidia.yaml",
                        "cdiVersion: 0.5.0\nkind: nvidia.com/gpu\ndevices:\n- name: \"0\"\n")
                  .ok());
  EXPECT_TRUE(HasNvidiaCdiSpec());
  std::filesystem::remove_all(dir);

  ContainerRun r;
  r.runtime = "podman";
  r.image = "localhost/torch:2";
  r.name = "cairn-j-0";
  r.workdir = "/w";
  r.command = "nvidia-smi -L";
  r.devices = {"nvidia.com/gpu=1", "nvidia.com/gpu=3"};
  std::vector<std::string> argv = ContainerArgv(r);
  std::string line = Join(argv, " ");
  EXPECT_NE(line.find("--device nvidia.com/gpu=1 --device nvidia.com/gpu=3"), std::string::npos)
      << line;
  EXPECT_LT(line.find("--device"), line.find("localhost/torch:2"))
      << "options come before the image";
}

}  // namespace
}  // namespace cairn::compute

namespace cairn::compute {
namespace {

TEST(InstanceShapes, AnInstanceTypesMemoryAsSlurmWritesIt) {
  EXPECT_EQ(spec::SlurmMemory("128Gi"), "128G");
  EXPECT_EQ(spec::SlurmMemory("512Mi"), "512M");
  EXPECT_EQ(spec::SlurmMemory("2Ti"), "2T");
  EXPECT_EQ(spec::SlurmMemory("64G"), "64G");
  for (const char* bad : {"", "Gi", "12.5Gi", "128", "128GB", "-1Gi"})
    EXPECT_EQ(spec::SlurmMemory(bad), "") << bad;
  nlohmann::json extra = {
      {"instance_types", {{"a100x2", {{"gpus", 2}, {"cpus", 16}, {"memory", "128Gi"}}}}}};
  auto s = spec::ShapeFor(extra, "", "a100x2");
  EXPECT_EQ(s.cpus, 16);
  EXPECT_EQ(s.memory, "128Gi");
  EXPECT_EQ(spec::ShapeFor(extra, "", "Standard_NC24ads_A100_v4").cpus,
            0);  // an Azure size's are Azure's machines'
}

}  // namespace
}  // namespace cairn::compute
