// The `cairn` command line: parses arguments (CLI11) and runs one command. Not thread-safe.
#pragma once

namespace cairn::cli {

// Exit codes: 0 success; 1 the job did not complete, or a server-side failure; 2 bad input
// (validation errors, usage); 3 not found; 4 the server could not be reached.
int RunCli(int argc, char** argv);

}  // namespace cairn::cli
