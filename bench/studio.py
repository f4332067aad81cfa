"""The studio's performance targets (issue: the studio), measured in a real headless Chromium:
  - the Jobs page with 10,000 jobs in the workspace: first rows painted, filter, sort
  - a metric of 1,000,000 points: the chart drawn
  - 20 runs x 5 metrics x 10,000 steps in Compare: every chart drawn
  - a running job's new log line: visible in the page after it is written
`make bench-studio`, or /usr/bin/python3 bench/studio.py [--jobs 10000] [--root DIR]. The workspace is made
with real jobs (`true`, through the CLI) and real MLflow log-batch calls.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CAIRN = os.environ.get("CAIRN_BIN") or os.path.join(ROOT, "build", "cairn")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=10000)
    ap.add_argument("--root", default=None)
    a = ap.parse_args()
    root = tempfile.mkdtemp(prefix="cairn-bench-studio-", dir=a.root)
    env = dict(os.environ, CAIRN_HOME=os.path.join(root, "home"))
    work = os.path.join(root, "work")
    os.makedirs(work)

    def cairn(*args):
        return subprocess.run([CAIRN, *args], env=env, capture_output=True, text=True, check=True, cwd=work).stdout

    try:
        with open(os.path.join(work, "job.yml"), "w") as f:
            f.write("command: 'true'\nenvironment: azureml:bench@latest\nexperiment_name: bench\n")
        cairn("job", "list")
        info = json.load(open(os.path.join(env["CAIRN_HOME"], "server.json")))
        token = open(os.path.join(env["CAIRN_HOME"], "token")).read().strip()

        def api(path, body):
            req = urllib.request.Request(info["url"] + path, data=json.dumps(body).encode(), method="POST",
                                         headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
            with urllib.request.urlopen(req) as r:
                return r.read()

        t0 = time.time()
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda i: cairn("job", "create", "-f", "job.yml", "-n", f"bench_{i}"), range(a.jobs)))
        print(f"{a.jobs} jobs submitted in {time.time() - t0:.1f} s", file=sys.stderr)

        # One run with a million points of one metric; 20 runs with 5 metrics of 10,000 steps.
        def log_points(run, keys, n):
            for key in keys:
                for start in range(0, n, 1000):
                    api("/api/2.0/mlflow/runs/log-batch", {"run_id": run, "metrics": [
                        {"key": key, "value": ((i * 7919) % 1000) / 1000 + i / n, "timestamp": 1700000000000 + i, "step": i}
                        for i in range(start, min(n, start + 1000))]})
        log_points("bench_0", ["loss"], 1000000)
        compare = [f"bench_{i}" for i in range(1, 21)]
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda r: log_points(r, [f"m{k}" for k in range(5)], 10000), compare))
        with open(os.path.join(work, "ticker.yml"), "w") as f:
            f.write("command: 'for i in $(seq 200); do echo tick $(date +%s%3N); sleep 0.3; done'\n"
                    "environment: azureml:bench@latest\n")
        cairn("job", "create", "-f", "ticker.yml", "-n", "ticker")
        # Everything submitted has run and ended (the ticker runs on), so the pages are timed on a workspace
        # at rest rather than against 10,000 jobs' supervisors finishing.
        while True:
            left = json.loads(cairn("job", "list", "--status", "Queued", "-o", "json"))
            left += [j for j in json.loads(cairn("job", "list", "--status", "Running", "-o", "json"))
                     if j["name"] != "ticker"]
            if not left:
                break
            time.sleep(1)
        login = cairn("studio").strip()
        cfg = {"server": info["url"], "login": login, "million": "bench_0", "compare": compare, "compare_keys": 5,
               "ticker": "ticker", "rounds": 5}
        p = subprocess.run(["node", os.path.join(ROOT, "bench", "studio.mjs"), json.dumps(cfg)], capture_output=True,
                           text=True, timeout=900)
        if p.returncode != 0:
            raise SystemExit(p.stderr)
        print(json.dumps(json.loads(p.stdout.strip().splitlines()[-1]), indent=2))
    finally:
        subprocess.run([CAIRN, "job", "cancel", "-n", "ticker"], env=env, capture_output=True)
        subprocess.run([CAIRN, "server", "stop"], env=env, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
