// `cairn data`, `cairn model`, `cairn environment` and `cairn datastore`: versioned assets as `az
// ml` has them (create from a file or flags, list, show by version or label, archive, restore;
// model download).
#pragma once

#include <functional>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cli/output.h"

namespace cairn::cli {

struct AssetCommandHooks {
  std::function<void(CLI::App*)> add_globals;  // -o/--output, --query
  std::function<int(const nlohmann::json&, const std::vector<Column>&)> print;
};

// Adds the four command groups to `app` (those `wanted` names, where it is given: the CLI builds
// only the group a command line names); a command's exit code lands in `rc`.
void AddAssetCommands(CLI::App& app, const AssetCommandHooks& hooks, int& rc,
                      const std::function<bool(const std::string&)>& wanted = nullptr);

}  // namespace cairn::cli
