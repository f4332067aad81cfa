#!/usr/bin/env bash
# `make demo`: runs the iris example end to end on the default workspace and says where to look.
set -euo pipefail
cd "$(dirname "$0")/.."
CAIRN=./build/cairn
echo "== cairn job create -f examples/iris-sklearn/job.yml --stream"
$CAIRN job create -f examples/iris-sklearn/job.yml --stream
name=$($CAIRN job list --max-results 1 --experiment iris-sklearn-example --query '[0].name' -o tsv)
out=demo-output/$name
rm -rf "$out"
$CAIRN job download -n "$name" --all --download-path "$out"
home=${CAIRN_HOME:-$HOME/.cairn}
echo
echo "== the job"
$CAIRN job show -n "$name" -o table
echo
echo "== its MLflow run: latest metrics and params"
$CAIRN job show -n "$name" --query '{metrics:metrics,params:params}' -o yaml
echo
echo "Where to look:"
echo "  downloaded:   $out/artifacts/outputs/metrics.json, $out/named-outputs/model/model.pkl"
echo "  logs:         $out/artifacts/user_logs/std_log.txt"
echo "  run folder:   $home/runs/$name"
echo "  studio:       $($CAIRN studio --page "/#/jobs/$name")   (a one-time sign-in link, 5 minutes)"
echo "  metrics:      $CAIRN job metrics -n $name -o table"
echo "  more:         $CAIRN job list -o table; $CAIRN job show -n $name"
