// The expressions of a job's command: ${{inputs.x}}, ${{outputs.x}}, ${{search_space.x}}, the first
// preview's {inputs.x}, and $[[ ... ]] optional fragments. Pure functions, thread-safe.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"

namespace cairn::spec {

struct Placeholder {
  size_t begin = 0;        // offset of "${{"
  size_t end = 0;          // one past "}}"
  std::string expression;  // trimmed text inside the braces, e.g. "inputs.epochs"
  std::string context;     // "inputs", "outputs", "search_space", or the first segment otherwise
  std::string name;        // the part after the context
};

std::vector<Placeholder> FindPlaceholders(const std::string& text);

// Rewrites preview 1's `{inputs.x}` / `{outputs.x}` / `{search_space.x}` to `${{...}}`; other brace
// uses (shell `{a,b}`, Python f-strings) are left alone. Returns how many were rewritten through
// `count`.
std::string NormalizeLegacyPlaceholders(const std::string& text, int* count = nullptr);

// Replaces every placeholder with lookup(context, name). An optional fragment `$[[ ... ]]` is
// dropped whole when any placeholder inside it looks up to nullopt; outside a fragment that is an
// error.
Result<std::string> Substitute(const std::string& text,
                               const std::function<std::optional<std::string>(
                                   const std::string& context, const std::string& name)>& lookup);

}  // namespace cairn::spec
