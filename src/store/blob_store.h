// Content-addressed files under <root>/<first two hex>/<sha256>. Writes go to a temporary file that
// is hashed as it is written and renamed into place only when the hash matches, so a blob on disk
// is always whole and correct. Thread-safe: the file system is the only state.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"

namespace cairn::store {

// One file of a snapshot manifest.
struct ManifestEntry {
  std::string path;  // relative, '/'-separated, no '..'
  std::string sha256;
  long long size = 0;
  bool executable = false;
};

class BlobStore {
 public:
  explicit BlobStore(std::string root) : root_(std::move(root)) {}

  // Whether the blob is stored whole (an empty file stands for nothing unless the blob is empty:
  // what a crash can leave of a blob written but not yet synced).
  bool Has(const std::string& sha) const;
  std::string PathOf(const std::string& sha) const;
  // Stores `data`, which must hash to `sha` (InvalidArgument otherwise). Not `durable`: written and
  // renamed into place but not synced, for many blobs in a row; Sync() then makes them all durable
  // at once.
  Status Put(const std::string& sha, const std::string& data, bool durable = true);
  // Stores a file of any size, hashing it as it is copied (never all in memory); returns its
  // SHA-256. Not synced (see Sync()).
  Result<std::string> PutFile(const std::string& path);
  // Flushes the blob store's filesystem (one syncfs for any number of blobs written without sync).
  Status Sync() const;
  // Copies the manifest's files into `dir` (which must exist).
  Status Materialize(const std::vector<ManifestEntry>& manifest, const std::string& dir) const;

 private:
  std::string root_;
};

bool IsValidSha256(const std::string& s);
// Manifest <-> JSON; the parser checks every path stays inside its folder.
nlohmann::json ManifestToJson(const std::vector<ManifestEntry>& m);
Result<std::vector<ManifestEntry>> ManifestFromJson(const nlohmann::json& j);
// The snapshot id: the SHA-256 of the manifest's canonical JSON.
std::string ManifestId(const std::vector<ManifestEntry>& m);

}  // namespace cairn::store
