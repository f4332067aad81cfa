#include "compute/distribution.h"

#include <gtest/gtest.h>

#include <set>

namespace cairn::compute {
namespace {

using nlohmann::json;

TEST(DistributionTest, PytorchRanksCoverEveryProcessOnce) {
  DistPlan p = PlanFor(json{{"type", "pytorch"}, {"process_count_per_instance", 2}}, 2);
  p.hosts = {"10.0.0.1", "10.0.0.2"};
  p.master_port = 6105;
  ASSERT_EQ(p.Total(), 4);
  std::set<std::string> ranks;
  for (int node = 0; node < 2; ++node) {
    ASSERT_EQ(p.OnNode(node), 2);
    for (int local = 0; local < 2; ++local) {
      auto env = RankEnv(p, node, local);
      EXPECT_EQ(env["MASTER_ADDR"], "10.0.0.1");
      EXPECT_EQ(env["MASTER_PORT"], "6105");
      EXPECT_EQ(env["WORLD_SIZE"], "4");
      EXPECT_EQ(env["LOCAL_RANK"], std::to_string(local));
      EXPECT_EQ(env["LOCAL_WORLD_SIZE"], "2");
      EXPECT_EQ(env["NODE_RANK"], std::to_string(node));
      EXPECT_EQ(env["AZ_BATCH_MASTER_NODE"], "10.0.0.1:6105");
      EXPECT_EQ(env["AZ_BATCH_HOST_LIST"], "10.0.0.1,10.0.0.2");
      ranks.insert(env["RANK"]);
    }
  }
  EXPECT_EQ(ranks, (std::set<std::string>{"0", "1", "2", "3"}));
  EXPECT_EQ(RankLogName(p, 3), "user_logs/std_log_process_3.txt");
}

TEST(DistributionTest, TensorflowSpreadsWorkersAndParameterServers) {
  DistPlan p =
      PlanFor(json{{"type", "tensorflow"}, {"worker_count", 2}, {"parameter_server_count", 1}}, 2);
  p.hosts = {"a", "b"};
  p.master_port = 5000;
  ASSERT_EQ(p.Total(), 3);
  EXPECT_EQ(p.OnNode(0), 2);
  EXPECT_EQ(p.OnNode(1), 1);
  json tf0 = json::parse(RankEnv(p, 0, 0)["TF_CONFIG"]);
  json tf2 = json::parse(RankEnv(p, 1, 0)["TF_CONFIG"]);
  EXPECT_EQ(tf0["cluster"]["worker"], json({"a:5001", "a:5002"}));
  EXPECT_EQ(tf0["cluster"]["ps"], json({"b:5003"}));
  EXPECT_EQ(tf0["task"], json({{"type", "worker"}, {"index", 0}}));
  EXPECT_EQ(tf2["task"], json({{"type", "ps"}, {"index", 0}}));
  EXPECT_EQ(tf0["environment"], "cloud");
  // Without parameter servers the cluster has no ps list at all.
  DistPlan q = PlanFor(json{{"type", "tensorflow"}}, 3);
  EXPECT_EQ(q.Total(), 3);
  EXPECT_FALSE(json::parse(RankEnv(q, 2, 0)["TF_CONFIG"])["cluster"].contains("ps"));
}

TEST(DistributionTest, PlainJobIsOneProcessWithTheClassicLog) {
  DistPlan p = PlanFor(nullptr, 1);
  EXPECT_FALSE(p.Distributed());
  EXPECT_EQ(p.Total(), 1);
  EXPECT_EQ(RankLogName(p, 0), "user_logs/std_log.txt");
  EXPECT_FALSE(RankEnv(p, 0, 0).contains("RANK"));
  DistPlan r = DistPlanFromJson(
      ToJson(PlanFor(json{{"type", "mpi"}, {"process_count_per_instance", 3}}, 2)));
  EXPECT_EQ(r.type, "mpi");
  EXPECT_EQ(r.Total(), 6);
}

TEST(DistributionTest, MpirunNamesEachRanksLog) {
  DistPlan p = PlanFor(json{{"type", "mpi"}, {"process_count_per_instance", 2}}, 2);
  auto argv = MpirunArgv(p, "python3 train.py", "/r/user_logs", "localhost:4", {});
  ASSERT_GE(argv.size(), 8u);
  EXPECT_EQ(argv[3], "4");
  EXPECT_NE(std::find(argv.begin(), argv.end(), "localhost:4"), argv.end());
  EXPECT_EQ(argv[argv.size() - 2], "python3 train.py");
  EXPECT_EQ(argv.back(), "/r/user_logs");
  auto slurm = MpirunArgv(p, "x", "/l", "", {"--mca", "btl", "self,tcp"});
  EXPECT_NE(std::find(slurm.begin(), slurm.end(), "ppr:2:node"), slurm.end());
  EXPECT_NE(std::find(slurm.begin(), slurm.end(), "self,tcp"), slurm.end());
}

}  // namespace
}  // namespace cairn::compute
