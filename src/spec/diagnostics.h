// Compiler-style diagnostics for user-written files: "job.yml:7:3: error: unknown key 'comand' (did
// you mean 'command'?)". Collected all at once. Not thread-safe.
#pragma once

#include <string>
#include <vector>

namespace cairn::spec {

struct Diagnostic {
  std::string file;  // "job.yml", or "--set" for a command-line override
  int line = 0;      // 1-based; 0 when the place is the whole file
  int column = 0;    // 1-based
  bool error = true;
  std::string message;

  std::string ToString() const;
};

class Diagnostics {
 public:
  void Error(const std::string& file, int line, int col, std::string message);
  void Warning(const std::string& file, int line, int col, std::string message);
  bool HasErrors() const;
  const std::vector<Diagnostic>& all() const { return items_; }
  size_t size() const { return items_.size(); }
  // Puts `prefix` before the messages of the diagnostics added since the first `from` (which field
  // of which step a shared check was about).
  void PrefixSince(size_t from, const std::string& prefix) {
    for (size_t i = from; i < items_.size(); ++i) items_[i].message = prefix + items_[i].message;
  }
  // Sorted by place, one per line.
  std::string ToString() const;

 private:
  std::vector<Diagnostic> items_;
};

}  // namespace cairn::spec
