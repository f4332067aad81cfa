#!/usr/bin/env bash
# `make bench`: the command-job benchmarks; figures go to BENCHMARKS.md by hand, with this command.
set -euo pipefail
cd "$(dirname "$0")/.."
/usr/bin/python3 bench/bench.py "$@"
