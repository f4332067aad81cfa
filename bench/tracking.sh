#!/usr/bin/env bash
# `make bench-tracking`: the MLflow tracking benchmarks (build/tracking_bench) against a fresh server in a
# temporary workspace, durable (the default) and with CAIRN_TRACKING_SYNC=normal, plus the server's RSS.
#   bench/tracking.sh [--root DIR] [--search100k] [--build DIR]
# --root puts the workspaces under DIR (e.g. /dev/shm to take the disk out of the upload figure).
# --build takes cairn and cairn-server from DIR (another checkout's build, to compare in one run).
set -euo pipefail
cd "$(dirname "$0")/.."
root=/tmp
extra=()
bin="$PWD/build"
while [ $# -gt 0 ]; do
  case "$1" in
    --root) root="$2"; shift 2 ;;
    --search100k) extra+=(search100k); shift ;;
    --build) bin="$(cd "$2" && pwd)"; shift 2 ;;
    *) echo "usage: bench/tracking.sh [--root DIR] [--search100k] [--build DIR]" >&2; exit 2 ;;
  esac
done
export CAIRN_SERVER_BIN="$bin/cairn-server"
echo "== binaries: $bin"
for mode in full normal; do
  home="$(mktemp -d "$root/cairn-bench.XXXXXX")"
  export CAIRN_HOME="$home"
  if [ "$mode" = normal ]; then export CAIRN_TRACKING_SYNC=normal; else unset CAIRN_TRACKING_SYNC; fi
  "$bin/cairn" job list -o none
  url="$(/usr/bin/python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['url'])" "$home/server.json")"
  pid="$(/usr/bin/python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['pid'])" "$home/server.json")"
  echo "== workspace $home, tracking writes: $mode (load average: $(cut -d' ' -f1-3 /proc/loadavg))"
  echo "server RSS idle: $(awk '/VmRSS/ {print $2, $3}' "/proc/$pid/status")"
  TRACKING_BENCH_SERVER_PID="$pid" build/tracking_bench "$url" "$(cat "$home/token")" ping metric batch batchgrow history search artifacts "${extra[@]}"
  echo "server RSS after the load: $(awk '/VmRSS/ {print $2, $3}' "/proc/$pid/status")"
  "$bin/cairn" server stop > /dev/null
  rm -rf "$home"
done
