// The CLI's side of the REST API: one keep-alive HTTP connection to the workspace server, errors
// mapped back to Status. Not thread-safe.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "server/workspace.h"

#include "base/http_client.h"

namespace cairn::cli {

struct LogChunk {
  std::string data;
  long long next_offset = 0;
  long long size = 0;
  std::string status;
  std::string reason;
  bool terminal = false;
  // With `final` asked for and the job ended: its status, status_reason, notes and error (else
  // null).
  nlohmann::json final;
};

class Client {
 public:
  // `restart`, when given, is called once if the server at `addr` accepts no connection (it was
  // stopped or died since server.json was written); it returns the address of a freshly started
  // one.
  explicit Client(server::ServerAddress addr,
                  std::function<Result<server::ServerAddress>()> restart = nullptr);
  ~Client();

  const std::string& url() const { return addr_.url; }
  // The workspace's blob store when the server is this machine's and the CLI may write it: local
  // content is then stored by copying files straight into it instead of sending them over HTTP. ""
  // otherwise.
  const std::string& local_blob_root() const { return blob_root_; }
  void set_local_blob_root(std::string root) { blob_root_ = std::move(root); }
  Result<nlohmann::json> Get(const std::string& path);
  Result<nlohmann::json> Post(const std::string& path, const nlohmann::json& body);
  Result<nlohmann::json> Patch(const std::string& path, const nlohmann::json& body);
  Result<nlohmann::json> Put(const std::string& path, const nlohmann::json& body);
  Result<nlohmann::json> Delete(const std::string& path);
  Result<nlohmann::json> PutBytes(const std::string& path, const std::string& body);
  // Long-polls for log bytes past `offset`; answers early when the status differs from
  // `seen_status`.
  Result<LogChunk> Logs(const std::string& job, long long offset, int wait_ms,
                        const std::string& file = "user_logs/std_log.txt",
                        const std::string& seen_status = "", bool want_final = false);
  // Streams a run file to `local_path` (created with its folders).
  // Writes the job's file `rel` to `root`/`rel`, beneath `root` (no link followed, no '..').
  Status Download(const std::string& job, const std::string& rel, const std::string& root);
  // Streams any GET answer to `local_path`; `what` names it in errors.
  Status Fetch(const std::string& path, const std::string& what, const std::string& root,
               const std::string& rel);

 private:
  Result<HttpResponse> Send(const std::string& method, const std::string& path,
                            const std::string& body = "",
                            const std::string& content_type = "application/json",
                            const std::function<bool(const char*, size_t)>& sink = nullptr);

  server::ServerAddress addr_;
  std::string blob_root_;
  std::function<Result<server::ServerAddress>()> restart_;
  std::unique_ptr<HttpClient> http_;
};

// Prints `s` as az does ("ERROR: ...") and returns the CLI's exit code for it (commands.h: 2 bad
// input, 3 not found, 4 unreachable, else 1).
int ReportFailure(const Status& s);

// Connects to the workspace the CLI was pointed at: $CAIRN_WORKSPACE (a URL, with $CAIRN_TOKEN),
// else the server of $CAIRN_HOME (started on demand).
Result<std::unique_ptr<Client>> Connect();

}  // namespace cairn::cli
