#include "compute/distribution.h"

#include "compute/process.h"

#include <algorithm>

namespace cairn::compute {

using nlohmann::json;

int DistPlan::Total() const {
  if (type == "tensorflow") return workers + ps;
  return nodes * per_node;
}

int DistPlan::OnNode(int node) const {
  if (node < 0 || node >= nodes) return 0;
  return std::clamp(Total() - node * per_node, 0, per_node);
}

DistPlan PlanFor(const json& d, int instance_count) {
  DistPlan p;
  p.nodes = std::max(1, instance_count);
  if (!d.is_object()) return p;
  p.type = d.value("type", "");
  if (p.type == "pytorch" || p.type == "mpi") {
    p.per_node = std::max(1, d.value("process_count_per_instance", 1));
  } else if (p.type == "tensorflow") {
    p.workers = std::max(1, d.value("worker_count", p.nodes));
    p.ps = std::max(0, d.value("parameter_server_count", 0));
    // Tasks fill the nodes in order, as evenly as they go: 3 tasks on 2 nodes are 2 + 1.
    p.per_node = (p.workers + p.ps + p.nodes - 1) / p.nodes;
  } else {
    p.type.clear();
  }
  return p;
}

json ToJson(const DistPlan& p) {
  return {
      {"type", p.type}, {"nodes", p.nodes}, {"per_node", p.per_node},      {"workers", p.workers},
      {"ps", p.ps},     {"hosts", p.hosts}, {"master_port", p.master_port}};
}

DistPlan DistPlanFromJson(const json& j) {
  DistPlan p;
  if (!j.is_object()) return p;
  p.type = j.value("type", "");
  p.nodes = std::max(1, j.value("nodes", 1));
  p.per_node = std::max(1, j.value("per_node", 1));
  p.workers = j.value("workers", 0);
  p.ps = j.value("ps", 0);
  if (j.contains("hosts") && j["hosts"].is_array())
    p.hosts = j["hosts"].get<std::vector<std::string>>();
  p.master_port = j.value("master_port", 0);
  return p;
}

namespace {
std::string HostOf(const DistPlan& p, int node) {
  if (node >= 0 && node < static_cast<int>(p.hosts.size()))
    return p.hosts[static_cast<size_t>(node)];
  return "127.0.0.1";
}
}  // namespace

std::map<std::string, std::string> RankEnv(const DistPlan& p, int node, int local) {
  std::map<std::string, std::string> env;
  const std::string master = HostOf(p, 0);
  const std::string port = std::to_string(p.master_port);
  std::string host_list;
  for (int n = 0; n < p.nodes; ++n) host_list += (n ? "," : "") + HostOf(p, n);
  // What every node of an Azure ML cluster sees, whatever the framework.
  env["AZUREML_NODE_COUNT"] = std::to_string(p.nodes);
  env["AZUREML_CR_NODE_RANK"] = std::to_string(node);
  env["AZ_BATCH_NODE_ID"] = "node-" + std::to_string(node);
  env["AZ_BATCH_HOST_LIST"] = host_list;
  env["AZ_BATCH_MASTER_NODE"] = master + ":" + port;
  env["AZ_BATCHAI_MPI_MASTER_NODE"] = master;
  env["AZ_BATCHAI_JOB_MASTER_NODE_IP"] = master;
  if (!p.Distributed()) return env;
  const int rank = p.Rank(node, local);
  env["AZ_BATCHAI_TASK_INDEX"] = std::to_string(rank);
  if (p.type == "pytorch") {
    env["MASTER_ADDR"] = master;
    env["MASTER_PORT"] = port;
    env["WORLD_SIZE"] = std::to_string(p.Total());
    env["RANK"] = std::to_string(rank);
    env["LOCAL_RANK"] = std::to_string(local);
    env["LOCAL_WORLD_SIZE"] = std::to_string(p.OnNode(node));
    env["NODE_RANK"] = std::to_string(node);
    env["GROUP_RANK"] = std::to_string(node);
  } else if (p.type == "tensorflow") {
    // Task g listens on master_port + 1 + g: distinct even where several "nodes" share a host
    // (local).
    json workers = json::array(), ps = json::array();
    for (int g = 0; g < p.Total(); ++g) {
      std::string addr = HostOf(p, g / p.per_node) + ":" + std::to_string(p.master_port + 1 + g);
      (g < p.workers ? workers : ps).push_back(addr);
    }
    json cluster = {{"worker", workers}};
    if (p.ps > 0) cluster["ps"] = ps;
    bool is_worker = rank < p.workers;
    json tf = {
        {"cluster", cluster},
        {"task",
         {{"type", is_worker ? "worker" : "ps"}, {"index", is_worker ? rank : rank - p.workers}}},
        {"environment", "cloud"}};
    env["TF_CONFIG"] = tf.dump();
  }
  return env;
}

std::string RankLogName(const DistPlan& p, int rank) {
  if (!p.Distributed()) return "user_logs/std_log.txt";
  return "user_logs/std_log_process_" + std::to_string(rank) + ".txt";
}

std::vector<std::string> MpirunArgv(const DistPlan& p, const std::string& command,
                                    const std::string& log_dir, const std::string& host_slots,
                                    const std::vector<std::string>& extra) {
  std::vector<std::string> argv = {"mpirun", "--allow-run-as-root", "-np",
                                   std::to_string(p.Total())};
  if (!host_slots.empty()) {
    argv.insert(argv.end(), {"--oversubscribe", "--host", host_slots});
  } else {
    argv.insert(argv.end(), {"--map-by", "ppr:" + std::to_string(p.per_node) + ":node"});
  }
  argv.insert(argv.end(), extra.begin(), extra.end());
  // Each rank writes its own log: Open MPI numbers them, the shell names the file.
  argv.insert(argv.end(),
              {"/bin/sh", "-c",
               "exec " + CommandShell() +
                   " -c \"$0\" >> \"$1/std_log_process_${OMPI_COMM_WORLD_RANK:-0}.txt\" 2>&1",
               command, log_dir});
  return argv;
}

}  // namespace cairn::compute
