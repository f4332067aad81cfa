// How a job's inputs reach its run folder (the supervisor's side of data): read-only views of blob
// snapshots shared by every job, folders of this machine linked in, URLs fetched through a cache
// that revalidates with the server, MLTables evaluated to their files. Thread-compatible; processes
// coordinate through lock files.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"

namespace cairn::compute {

struct DeliveryContext {
  std::string
      workspace;  // for the URL cache; "" when the workspace is not reachable (staged nodes)
  std::string blob_root;
  // Readable when a signal arrived; `stop_requested` then says whether the job is being stopped
  // (downloads give up at once) or it was something else (a child's end).
  int cancel_fd = -1;
  std::function<bool()> stop_requested;
  std::function<void(const std::string&)> log;
};

// Where a snapshot's shared view lives (<workspace>/views/<snapshot>), with its manifest recorded
// beside it
// (<view>.json, once) so that whichever job comes first can make the view.
Result<std::string> ViewOf(const std::string& workspace, const std::string& snapshot,
                           const std::string& manifest);

// Makes `view` (a folder of hard links to the blobs of the manifest in `manifest_file`, read-only)
// unless it exists. Safe when several jobs make the same view at once.
Status EnsureView(const std::string& view, const std::string& manifest_file,
                  const std::string& blob_root);

// Fetches `url` into the workspace's cache (or revalidates the cached copy with its ETag and
// Last-Modified) and returns the cached file. Without a workspace, downloads to `fallback`.
Result<std::string> FetchUrl(const std::string& url, const std::string& fallback,
                             long long max_bytes, const DeliveryContext& ctx);

// Delivers one input of the run file (kinds view, folder, http; blobs are the caller's) into `dir`,
// by its mode: ro_mount links (and adds what must stay read-only to `read_only`), download copies,
// eval_* first evaluates the MLTable.
Status DeliverInput(const nlohmann::json& item, const std::string& dir, const DeliveryContext& ctx,
                    std::vector<std::string>& read_only);

// The files an MLTable in `folder` names (paths: file, folder, pattern; URLs fetched), placed under
// `dir` by hard link or copy.
Status EvaluateMlTable(const std::string& folder, const std::string& dir, bool link,
                       const DeliveryContext& ctx);

}  // namespace cairn::compute
