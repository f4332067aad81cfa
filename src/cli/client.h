// The CLI's side of the REST API: one keep-alive HTTP connection to the workspace server, errors
// mapped back to Status. Not thread-safe.
#pragma once

#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "server/workspace.h"

namespace cairn {
class HttpClient;
}

namespace cairn::cli {

struct LogChunk {
  std::string data;
  long long next_offset = 0;
  long long size = 0;
  std::string status;
  std::string reason;
  bool terminal = false;
};

class Client {
 public:
  explicit Client(server::ServerAddress addr);
  ~Client();

  const std::string& url() const { return addr_.url; }
  Result<nlohmann::json> Get(const std::string& path);
  Result<nlohmann::json> Post(const std::string& path, const nlohmann::json& body);
  Result<nlohmann::json> Patch(const std::string& path, const nlohmann::json& body);
  Result<nlohmann::json> Delete(const std::string& path);
  Result<nlohmann::json> PutBytes(const std::string& path, const std::string& body);
  // Long-polls for log bytes past `offset`; answers early when the status differs from `seen_status`.
  Result<LogChunk> Logs(const std::string& job, long long offset, int wait_ms,
                        const std::string& file = "user_logs/std_log.txt", const std::string& seen_status = "");
  // Streams a run file to `local_path` (created with its folders).
  Status Download(const std::string& job, const std::string& rel, const std::string& local_path);

 private:
  server::ServerAddress addr_;
  std::unique_ptr<HttpClient> http_;
};

// Connects to the workspace the CLI was pointed at: $CAIRN_WORKSPACE (a URL, with $CAIRN_TOKEN), else
// the server of $CAIRN_HOME (started on demand).
Result<std::unique_ptr<Client>> Connect();

}  // namespace cairn::cli
