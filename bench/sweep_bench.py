#!/usr/bin/python3
"""Sweep performance targets (issue: sweep jobs), each beside its reference in the same run.

  1. a 1000-trial random sweep of `true`, max_concurrent_trials 8, submit to the sweep's end, beside
     `seq 1000 | xargs -P8 -n1 sh -c true` (the limit) - goal <= 3 s
  2. 100 trials of `sleep 1`, 8 at a time, against the ideal 100/8 = 12.5 s - goal within 5%

Trials run on an amlcompute of 8 instances (on this machine, a slice of 8 slots), so 8 can run at once.
Usage: bench/sweep_bench.py [--cairn build/cairn] [--trials 1000] [--sleepers 100] [--root DIR]
"""
import argparse
import os
import shutil
import subprocess
import tempfile
import time

SWEEP = """\
type: sweep
trial:
  command: {command} # ${{{{search_space.x}}}}
  environment: {{image: python}}
compute: azureml:eight
sampling_algorithm: {{type: random, seed: 1}}
search_space:
  x: {{type: uniform, min_value: 0, max_value: 1}}
objective: {{primary_metric: m, goal: minimize}}
limits: {{max_total_trials: {trials}, max_concurrent_trials: 8}}
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cairn", default=os.path.join(os.path.dirname(__file__), "../build/cairn"))
    ap.add_argument("--trials", type=int, default=1000)
    ap.add_argument("--sleepers", type=int, default=100)
    ap.add_argument("--root", default=None, help="where the temporary workspace goes (default: $TMPDIR)")
    args = ap.parse_args()
    cairn = os.path.abspath(args.cairn)
    root = tempfile.mkdtemp(prefix="cairn-sweep-bench-", dir=args.root)
    env = dict(os.environ, CAIRN_HOME=os.path.join(root, "home"))
    env.pop("CAIRN_WORKSPACE", None)

    def run(*a, **kw):
        return subprocess.run([cairn, *a], env=env, check=True, capture_output=True, text=True, cwd=root, **kw)

    try:
        run("compute", "create", "--name", "eight", "--type", "amlcompute", "--max-instances", "8")
        for label, command, trials in (("true", "'true'", args.trials), ("sleep 1", "sleep 1", args.sleepers)):
            with open(os.path.join(root, "s.yml"), "w") as f:
                f.write(SWEEP.format(command=command, trials=trials))
            name = "bench" + label.replace(" ", "")
            t = time.perf_counter()
            run("job", "create", "-f", "s.yml", "-n", name, "--stream", timeout=3600)
            took = time.perf_counter() - t
            status = run("job", "show", "-n", name, "--query", "status", "-o", "tsv").stdout.strip()
            if label == "true":
                t = time.perf_counter()
                subprocess.run(f"seq {trials} | xargs -P8 -n1 sh -c true", shell=True, check=True)
                ref = time.perf_counter() - t
                print(f"| {trials}-trial random sweep of `true`, 8 at a time | {took:.2f} s = {trials / took:.0f} trials/s "
                      f"({status}) | `xargs -P8 sh -c true` {ref:.2f} s | <= 3 s | ratio {took / ref:.1f}x |")
            else:
                ideal = trials / 8
                print(f"| {trials} trials of `sleep 1`, 8 at a time | {took:.2f} s ({status}) | ideal {ideal:.1f} s | "
                      f"within 5% | {100 * (took - ideal) / ideal:+.1f}% |")
        run("server", "stop")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
