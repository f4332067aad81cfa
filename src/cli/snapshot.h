// Code and data snapshots on the CLI side: walk a folder (honouring .amlignore, else .gitignore),
// hash every file, upload only the blobs the server lacks, and name the manifest. Not thread-safe.
#pragma once

#include <string>
#include <vector>

#include "base/status.h"
#include "cli/client.h"

namespace cairn::cli {

struct LocalFile {
  std::string rel;  // path inside the snapshot
  std::string abs;  // where it is on disk
  std::string sha256;
  long long size = 0;
  bool executable = false;
  std::string key;  // what identifies its content when it was hashed (device, inode, size, times)
};

// .gitignore-style rules: comments, '!' negation, trailing '/' for folders, leading '/' anchors,
// '*', '?', '**'.
class IgnoreRules {
 public:
  void Add(const std::string& pattern);
  // Reads <root>/.amlignore, or <root>/.gitignore when there is none. Returns which file it read.
  std::string Load(const std::string& root);
  bool Ignored(const std::string& rel, bool is_dir) const;

 private:
  struct Rule {
    std::string glob;
    bool negate = false;
    bool dir_only = false;
    bool anchored = false;
  };
  std::vector<Rule> rules_;
};

// Files under `root` (a folder, or a single file) with their hashes. `what` names it in errors
// ("code", "inputs.data"). Links that leave the folder are an error.
Result<std::vector<LocalFile>> CollectFiles(const std::string& root, bool use_ignore_files,
                                            const std::string& what);

struct UploadStats {
  size_t files = 0;
  size_t uploaded = 0;
  long long uploaded_bytes = 0;
};

Result<std::string> UploadSnapshot(Client& client, const std::string& root, bool use_ignore_files,
                                   const std::string& what, UploadStats* stats = nullptr);

}  // namespace cairn::cli
