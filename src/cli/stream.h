// `cairn job stream` and `job create --stream`: Azure ML's streaming output (RunId, Web View,
// "Streaming user_logs/std_log.txt", the lines, an Execution Summary), fed by the server's
// long-poll log endpoint so lines appear as they are written. Not thread-safe.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "cli/client.h"

namespace cairn::cli {

// Streams until the job ends; returns the job as it ended (or an error). A distributed job streams
// rank 0's log, or with `all_ranks` every process's, each line prefixed with its rank.
// `known`: the job as just created (saves asking for it).
Result<nlohmann::json> StreamJob(Client& client, const std::string& name, bool tty,
                                 bool all_ranks = false, const nlohmann::json* known = nullptr);

}  // namespace cairn::cli
