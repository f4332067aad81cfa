#!/usr/bin/python3
"""Pipelines' costs, each beside its reference, in one workspace (the default path: podman present or not,
as the machine has it):

  1. a resubmitted, fully reused 20-step chain: `job create --stream` end to end (CLI wall time), median of
     --runs; beside it one plain `true` job's `job create --stream`
  2. a 100-step chain of `true` steps (force_rerun, so every step runs): submit -> the pipeline Completed;
     beside it 100 plain `true` jobs run one after another (each `job create --stream`)
  3. a 1,000-step fan-out of `true` steps: `job create` started -> the first step's start (its record);
     beside it the CLI's own validation of the file (`job validate` wall time)

Usage: bench/pipeline_bench.py [--cairn build/cairn] [--runs 15] [--chain 100] [--fan 1000] [--root DIR]
"""
import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from datetime import datetime


def ts(s):
    return datetime.fromisoformat(s).timestamp()


def chain(n, command="true"):
    lines = ["type: pipeline", "jobs:"]
    for i in range(n):
        lines.append(f"  s{i}:")
        lines.append(f"    command: {command}")
        lines.append("    environment: {image: python}")
        lines.append("    outputs: {o: }")
        if i:
            lines.append(f"    inputs: {{i: '${{{{parent.jobs.s{i - 1}.outputs.o}}}}'}}")
    return "\n".join(lines) + "\n"


def fan(n):
    lines = ["type: pipeline", "jobs:"]
    for i in range(n):
        lines += [f"  s{i}:", "    command: 'true'", "    environment: {image: python}"]
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cairn", default=os.path.join(os.path.dirname(__file__), "../build/cairn"))
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--chain", type=int, default=100)
    ap.add_argument("--fan", type=int, default=1000)
    ap.add_argument("--root", default=None, help="where the workspace goes (default: $TMPDIR)")
    args = ap.parse_args()
    cairn = os.path.abspath(args.cairn)
    root = tempfile.mkdtemp(prefix="cairn-pipeline-bench-", dir=args.root)
    env = dict(os.environ, CAIRN_HOME=os.path.join(root, "home"))
    env.pop("CAIRN_WORKSPACE", None)

    def run(*a, **kw):
        return subprocess.run([cairn, *a], env=env, cwd=root, check=True, capture_output=True, text=True, **kw)

    def timed(*a):
        t = time.perf_counter()
        run(*a)
        return (time.perf_counter() - t) * 1000

    def write(name, text):
        with open(os.path.join(root, name), "w") as f:
            f.write(text)

    try:
        write("true.yml", "command: 'true'\nenvironment: {image: python}\n")
        write("chain20.yml", chain(20))
        write("chain.yml", chain(args.chain))
        write("fan.yml", fan(args.fan))
        run("job", "list")  # the server
        for i in range(3):
            run("job", "create", "-f", "true.yml", "--stream")  # warm

        # 1. Fully reused 20 steps against one plain job, interleaved.
        run("job", "create", "-f", "chain20.yml", "--stream")  # the runs to reuse
        reused, plain = [], []
        for i in range(args.runs):
            reused.append(timed("job", "create", "-f", "chain20.yml", "--stream"))
            plain.append(timed("job", "create", "-f", "true.yml", "--stream"))
        print(f"reused 20-step pipeline, job create --stream: median {statistics.median(reused):.1f} ms "
              f"(min {min(reused):.1f}, max {max(reused):.1f}); one plain true job: median {statistics.median(plain):.1f} ms")

        # 2. A chain that runs every step, against as many plain jobs one after another.
        t = time.perf_counter()
        run("job", "create", "-f", "chain.yml", "--set", "settings.force_rerun=true", "-n", "chain1", "--stream",
            timeout=600)
        chain_s = time.perf_counter() - t
        t = time.perf_counter()
        for i in range(args.chain):
            run("job", "create", "-f", "true.yml", "--stream")
        plain_s = time.perf_counter() - t
        print(f"{args.chain}-step chain of true: {chain_s:.2f} s; {args.chain} plain true jobs one after another: "
              f"{plain_s:.2f} s; ratio {chain_s / plain_s:.2f}")

        # 3. A wide fan-out: how long before its first step starts.
        t = time.perf_counter()
        run("job", "validate", "-f", "fan.yml")
        validate_ms = (time.perf_counter() - t) * 1000
        t0 = time.time()
        run("job", "create", "-f", "fan.yml", "-n", "fan1", "--set", "settings.force_rerun=true", timeout=600)
        answered = time.time() - t0
        first = None
        deadline = time.time() + 120
        import json
        while time.time() < deadline:
            starts = [ts(j["start_time"]) for j in json.loads(run("job", "list", "-p", "fan1", "--all-results", "-o", "json").stdout)
                      if j.get("start_time")]
            if starts:
                first = min(starts)
                break
            time.sleep(0.2)
        print(f"{args.fan}-step fan-out: first step started {(first - t0) * 1000:.0f} ms after job create began "
              f"(the CLI had its answer after {answered * 1000:.0f} ms); job validate of the file: {validate_ms:.0f} ms")
        subprocess.run([cairn, "job", "cancel", "-n", "fan1"], env=env, cwd=root, capture_output=True)
    finally:
        subprocess.run([cairn, "server", "stop"], env=env, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
