#include "spec/diagnostics.h"

#include <algorithm>

namespace cairn::spec {

std::string Diagnostic::ToString() const {
  std::string out = file;
  if (line > 0) out += ":" + std::to_string(line) + ":" + std::to_string(column);
  out += error ? ": error: " : ": warning: ";
  out += message;
  return out;
}

void Diagnostics::Error(const std::string& file, int line, int col, std::string message) {
  items_.push_back({file, line, col, true, std::move(message)});
}

void Diagnostics::Warning(const std::string& file, int line, int col, std::string message) {
  items_.push_back({file, line, col, false, std::move(message)});
}

bool Diagnostics::HasErrors() const {
  return std::any_of(items_.begin(), items_.end(), [](const Diagnostic& d) { return d.error; });
}

std::string Diagnostics::ToString() const {
  std::vector<Diagnostic> sorted = items_;
  std::stable_sort(sorted.begin(), sorted.end(), [](const Diagnostic& a, const Diagnostic& b) {
    if (a.file != b.file)
      return a.file == "--set" ? false : b.file == "--set" ? true : a.file < b.file;
    if (a.line != b.line) return a.line < b.line;
    return a.column < b.column;
  });
  std::string out;
  for (const auto& d : sorted) out += d.ToString() + "\n";
  return out;
}

}  // namespace cairn::spec
