// The job object as Azure ML prints it (`az ml job show -o json`), built from the store's record,
// plus Cairn's additions (status_reason, status_history, timings, error). Pure functions,
// thread-safe.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "compute/distribution.h"
#include "store/job_store.h"

namespace cairn::server {

// The user the server runs as ($USER, else the password database): creation_context and
// mlflow.user.
std::string UserName();

// One log per process of a distributed job (std_log_process_<rank>.txt), else std_log.txt: name ->
// URL.
nlohmann::json LogFiles(const compute::DistPlan& plan, const std::string& job,
                        const std::string& server_url);

nlohmann::json JobView(const store::JobRecord& job, const std::vector<store::StatusEvent>& history,
                       const std::string& server_url);

// What a list shows of one job never grows with that job's size: at most kListTags tags, their keys
// and values cut to kListText characters, and the description cut to kListDescription (a job stored
// before the parser bounded tags may hold 150,000; `job show` still shows them all).
constexpr size_t kListTags = 256, kListText = 256, kListDescription = 1024;
nlohmann::json ListTags(const nlohmann::json& tags);
// The same, from tags as stored (JSON text); the text itself when it is small enough to need
// nothing.
std::string ListTagsJson(const std::string& stored);
// A job's view (JobView) made fit for a list.
void BoundForList(nlohmann::json& view);
// `workspace_slurm`: the workspace has a Slurm connection, so an amlcompute runs on Slurm.
nlohmann::json ComputeView(const store::ComputeRecord& c, int in_use, int queued,
                           bool workspace_slurm);

}  // namespace cairn::server
