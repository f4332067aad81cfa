// `cairn role assignment create|list|delete`, `cairn token create|list|revoke`, `cairn audit list`
// and `cairn whoami`: people and what they may do in a workspace (docs/team.md).
#pragma once

#include <functional>
#include <string>

#include <CLI/CLI.hpp>

#include "cli/assets.h"

namespace cairn::cli {

// Adds the groups `wanted` names (all when it is empty); a command's exit code lands in `rc`.
void AddPeopleCommands(CLI::App& app, const AssetCommandHooks& hooks, int& rc,
                       const std::function<bool(const std::string&)>& wanted = nullptr);

}  // namespace cairn::cli
