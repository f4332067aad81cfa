#include "compute/slurm.h"

#include <gtest/gtest.h>

namespace cairn::compute {
namespace {

TEST(SlurmTest, BatchScriptAsksForTheNodesAndRunsTheSupervisor) {
  SlurmTarget t;
  t.partition = "gpu";
  t.account = "ml";
  t.qos = "high";
  t.sbatch_options = {"--exclusive", "--gres=gpu:2"};
  BatchRequest r;
  r.job = "blue_cat";
  r.run_dir = "/ws/runs/blue_cat";
  r.cairn = "/opt/cairn/bin/cairn";
  r.nodes = 2;
  r.tasks_per_node = 4;
  r.timeout_seconds = 90;
  std::string s = BatchScript(t, r);
  for (const char* line :
       {"#!/bin/sh\n", "#SBATCH --job-name=cairn-blue_cat\n", "#SBATCH --nodes=2\n",
        "#SBATCH --ntasks-per-node=4\n", "#SBATCH --no-requeue\n", "#SBATCH --time=3\n",
        "#SBATCH --partition=gpu\n", "#SBATCH --account=ml\n", "#SBATCH --qos=high\n",
        "#SBATCH --exclusive\n", "#SBATCH --gres=gpu:2\n",
        "#SBATCH --output=/ws/runs/blue_cat/artifacts/system_logs/slurm-%j.txt\n",
        "if [ -d '/ws/runs/blue_cat' ]; then exec '/opt/cairn/bin/cairn' supervise "
        "'/ws/runs/blue_cat'; fi\n"})
    EXPECT_NE(s.find(line), std::string::npos) << line << "\n" << s;
  // A GPU size asks Slurm for its GPUs on every node.
  r.gpus_per_node = 4;
  r.cpus_per_task = 8;
  r.mem = "128G";
  std::string gpu = BatchScript(t, r);
  for (const char* line :
       {"#SBATCH --gres=gpu:4\n", "#SBATCH --cpus-per-task=8\n", "#SBATCH --mem=128G\n"})
    EXPECT_NE(gpu.find(line), std::string::npos) << line << "\n" << gpu;
  r.gpus_per_node = r.cpus_per_task = 0;
  r.mem.clear();
  // No partition, no timeout: Slurm's defaults, and no empty options.
  std::string plain = BatchScript({}, r);
  EXPECT_EQ(plain.find("--partition"), std::string::npos);
  r.timeout_seconds = 0;
  EXPECT_EQ(BatchScript({}, r).find("--time"), std::string::npos);
}

TEST(SlurmTest, NodesWithoutTheWorkspaceFetchTheRunFromTheServer) {
  BatchRequest r;
  r.job = "j";
  r.run_dir = "/ws/runs/j";
  r.cairn = "cairn";
  r.server_url = "http://10.0.0.5:8080";
  r.token = "tok'en";
  std::string automatic = BatchScript({}, r);
  // The workspace folder when the node has it, else staged over HTTP with the job's token.
  EXPECT_LT(automatic.find("if [ -d '/ws/runs/j' ]"), automatic.find("--staged"));
  EXPECT_NE(automatic.find("export CAIRN_INTERNAL_TOKEN='tok'\\''en'\n"), std::string::npos)
      << automatic;
  EXPECT_NE(automatic.find("exec 'cairn' supervise --staged 'http://10.0.0.5:8080' 'j'\n"),
            std::string::npos);
  r.staging = "http";
  std::string staged = BatchScript({}, r);
  EXPECT_EQ(staged.find("if [ -d"), std::string::npos);
  EXPECT_NE(staged.find("#SBATCH --output=/tmp/cairn-j-slurm-%j.txt\n"), std::string::npos)
      << staged;
  // With a tag (the scheduler's random one), a file someone left under the plain name is no matter.
  r.output_tag = "a1b2c3";
  EXPECT_NE(BatchScript({}, r).find("#SBATCH --output=/tmp/cairn-j-a1b2c3-slurm-%j.txt\n"),
            std::string::npos);
  EXPECT_NE(staged.find("#SBATCH --chdir=/tmp\n"), std::string::npos);
}

TEST(SlurmTest, TimeLimitIsWholeMinutesWithAMinuteOfSlack) {
  EXPECT_EQ(SlurmTimeLimit(0), "");
  EXPECT_EQ(SlurmTimeLimit(1), "2");
  EXPECT_EQ(SlurmTimeLimit(60), "2");
  EXPECT_EQ(SlurmTimeLimit(61), "3");
  EXPECT_EQ(SlurmTimeLimit(3600), "61");
}

TEST(SlurmTest, QueueStatesAndTheirEnds) {
  auto jobs = ParseSqueue(
      "12|PENDING|Resources|\n13|RUNNING|None|n[1-2]\n\ngarbage\n14|NODE_FAIL|NodeDown|n2\n");
  ASSERT_EQ(jobs.size(), 3u);
  EXPECT_EQ(jobs["12"].reason, "Resources");
  EXPECT_EQ(jobs["13"].nodes, "n[1-2]");
  EXPECT_FALSE(SlurmStateIsFinal(jobs["12"].state));
  EXPECT_FALSE(SlurmStateIsFinal(jobs["13"].state));
  EXPECT_FALSE(SlurmStateIsFinal("COMPLETING"));
  EXPECT_TRUE(SlurmStateIsFinal(jobs["14"].state));
  EXPECT_TRUE(SlurmStateIsFinal("CANCELLED"));
  EXPECT_TRUE(SlurmStateIsFinal("TIMEOUT"));
  EXPECT_FALSE(SlurmStateIsFinal(""));
}

TEST(SlurmTest, ATeamServersJobIsSubmittedAsItsOwner) {
  EXPECT_EQ(SbatchArgv("/r/slurm_job.sh", -1, -1),
            (std::vector<std::string>{"sbatch", "--parsable", "/r/slurm_job.sh"}));
  EXPECT_EQ(SbatchArgv("/r/slurm_job.sh", 1001, 100),
            (std::vector<std::string>{"sbatch", "--parsable", "--uid=1001", "--gid=100",
                                      "/r/slurm_job.sh"}));
}

TEST(SlurmTest, MissingClientIsAClearError) {
  auto r = RunSlurmCommand({}, {"/nonexistent/sbatch", "--version"});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("not installed"), std::string::npos) << r.status().message();
}

}  // namespace
}  // namespace cairn::compute
