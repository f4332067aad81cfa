#include "spec/compute_spec.h"

#include <gtest/gtest.h>

namespace cairn::spec {
namespace {

TEST(ComputeSpecTest, SlurmSectionIsParsedAndPathsResolved) {
  Diagnostics d;
  auto c = ParseComputeText(R"(name: hpc
type: slurm
max_instances: 8
slurm:
  partition: gpu
  conf: etc/slurm.conf
  sbatch_options: [--exclusive, --gres=gpu:1]
  mpirun_options: --mca btl self,tcp
)",
                            "/clusters/hpc.yml", {}, d);
  ASSERT_TRUE(c) << d.ToString();
  EXPECT_EQ(c->type, "slurm");
  const auto& s = c->extra["slurm"];
  EXPECT_EQ(s["partition"], "gpu");
  EXPECT_EQ(s["conf"], "/clusters/etc/slurm.conf");
  EXPECT_EQ(s["sbatch_options"], nlohmann::json({"--exclusive", "--gres=gpu:1"}));
  EXPECT_EQ(s["mpirun_options"], nlohmann::json({"--mca", "btl", "self,tcp"}));
}

TEST(ComputeSpecTest, SlurmMistakesAreLocated) {
  Diagnostics d;
  auto c = ParseComputeText("name: hpc\ntype: slurm\nslurm:\n  partiton: gpu\n  qos: [a]\n",
                            "c.yml", {}, d);
  EXPECT_FALSE(c);
  std::string e = d.ToString();
  EXPECT_NE(e.find("c.yml:4:3: error: slurm: unknown key 'partiton' (did you mean 'partition'?)"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("c.yml:5:8: error: slurm.qos: expected a string"), std::string::npos) << e;
  Diagnostics d2;
  EXPECT_FALSE(ParseComputeText("name: box\ntype: computeinstance\nslurm: {partition: x}\n",
                                "i.yml", {}, d2));
  EXPECT_NE(d2.ToString().find("only a compute of type slurm or amlcompute runs on Slurm"),
            std::string::npos);
}

}  // namespace
}  // namespace cairn::spec
