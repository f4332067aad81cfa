// What every `az` command line may carry (-g, -w, --subscription, --debug, --verbose,
// --only-show-errors), accepted on every verb of the CLI so that az scripts run unchanged; set once
// while parsing.
#pragma once

#include <string>

namespace cairn::cli {

struct AzGlobals {
  std::string resource_group, workspace_name, subscription;
  bool debug = false;             // each request to the workspace server on stderr
  bool verbose = false;           // notes on what the CLI chose (the workspace, the server)
  bool only_show_errors = false;  // no warnings on stderr
};
AzGlobals& Az();

}  // namespace cairn::cli
