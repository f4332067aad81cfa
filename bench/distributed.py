"""Distributed and Slurm benchmarks (issue 5), each side by side with its reference in the same run:

  slurm-latency   submit -> the job's first line, a trivial job: Cairn's Slurm compute vs plain sbatch
  slurm-200       200 trivial jobs, submitted one after another, until all have ended: Cairn vs sbatch
  local-ddp-start a 4-process PyTorch job on the local compute (2 instances x 2), submit -> every rank has
                  run its first line, vs the same 4 processes started by hand with the same environment

Run as root (the test Slurm cluster's daemons run as root): `make bench-distributed`, or
  /usr/bin/python3 bench/distributed.py [--rounds 15] [--jobs 200] [--root DIR]
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CAIRN = os.environ.get("CAIRN_BIN") or os.path.join(ROOT, "build", "cairn")
CLUSTER = os.path.join(ROOT, "tests", "slurm", "cluster.sh")


def wait_files(paths, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if all(os.path.exists(p) and os.path.getsize(p) > 0 for p in paths):
            return
        time.sleep(0.002)
    raise SystemExit(f"timed out waiting for {len(paths)} files")


def read_time(path):
    with open(path) as f:
        return int(f.read().strip()) / 1e9


def summary(xs):
    xs = sorted(xs)
    return {"median_ms": round(statistics.median(xs) * 1000, 1), "min_ms": round(xs[0] * 1000, 1),
            "p90_ms": round(xs[int(0.9 * (len(xs) - 1))] * 1000, 1)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--jobs", type=int, default=200)
    ap.add_argument("--root", default=None, help="where the cluster, workspace and markers live")
    a = ap.parse_args()
    root = tempfile.mkdtemp(prefix="cairn-bench-dist-", dir=a.root)
    os.chmod(root, 0o755)  # munged, running as its own user, must reach its folder inside
    cluster_dir = os.path.join(root, "slurm")
    conf = subprocess.run([CLUSTER, "start", cluster_dir, "2"], capture_output=True, text=True, check=True).stdout.strip()
    env = dict(os.environ, SLURM_CONF=conf, CAIRN_HOME=os.path.join(root, "home"))
    marks = os.path.join(root, "marks")
    os.makedirs(marks)
    work = os.path.join(root, "work")
    os.makedirs(work)
    results = {}

    def cairn(*args):
        return subprocess.run([CAIRN, *args], env=env, capture_output=True, text=True, check=True, cwd=work)

    try:
        with open(os.path.join(work, "hpc.yml"), "w") as f:
            f.write(f"name: hpc\ntype: slurm\nmax_instances: 2\nslurm: {{conf: {conf}}}\n")
        cairn("compute", "create", "-f", "hpc.yml")

        # 1. Submit -> first line, alternating Cairn and plain sbatch so both see the same cluster.
        cairn_lat, sbatch_lat = [], []
        for i in range(a.rounds):
            for side in ("sbatch", "cairn"):
                mark = os.path.join(marks, f"lat-{side}-{i}")
                cmd = f"date +%s%N > {mark}"
                t0 = time.time()
                if side == "sbatch":
                    subprocess.run(["sbatch", "--parsable", "-o", "/dev/null", "--wrap", cmd], env=env, check=True,
                                   capture_output=True)
                else:
                    job = os.path.join(work, "lat.yml")
                    with open(job, "w") as f:
                        f.write(f"command: '{cmd}'\nenvironment: azureml:bench@latest\ncompute: azureml:hpc\n")
                    cairn("job", "create", "-f", job)
                wait_files([mark])
                (sbatch_lat if side == "sbatch" else cairn_lat).append(read_time(mark) - t0)
        results["slurm_latency"] = {"cairn": summary(cairn_lat), "sbatch": summary(sbatch_lat),
                                    "overhead_median_ms": round((statistics.median(cairn_lat) -
                                                                 statistics.median(sbatch_lat)) * 1000, 1)}
        print(json.dumps({"slurm_latency": results["slurm_latency"]}), flush=True)

        # 2. N trivial jobs, one submission after another, until every one has ended.
        def wait_slurm_idle():
            while subprocess.run(["squeue", "-h"], env=env, capture_output=True, text=True).stdout.strip():
                time.sleep(0.02)

        wait_slurm_idle()
        t0 = time.time()
        for i in range(a.jobs):
            subprocess.run(["sbatch", "--parsable", "-o", "/dev/null", "--wrap", f"date +%s%N > {marks}/many-s-{i}"],
                           env=env, check=True, capture_output=True)
        submitted_s = time.time() - t0
        wait_files([f"{marks}/many-s-{i}" for i in range(a.jobs)], timeout=600)
        wait_slurm_idle()
        sbatch_total = time.time() - t0

        job = os.path.join(work, "many.yml")
        with open(job, "w") as f:
            f.write(f"command: 'date +%s%N > {marks}/many-c-$CAIRN_JOB_NAME'\nenvironment: azureml:bench@latest\n"
                    "compute: azureml:hpc\n")
        t0 = time.time()
        names = []
        for i in range(a.jobs):
            names.append(f"many_{i}")
            cairn("job", "create", "-f", job, "-n", names[-1])
        submitted_c = time.time() - t0
        wait_files([f"{marks}/many-c-{n}" for n in names], timeout=600)
        while True:
            listed = json.loads(cairn("job", "list", "-o", "json", "--max-results", str(a.jobs + 50)).stdout)
            done = sum(1 for j in listed if j["name"].startswith("many_") and j["status"] == "Completed")
            if done >= a.jobs:
                break
            time.sleep(0.05)
        cairn_total = time.time() - t0
        results["slurm_many"] = {"jobs": a.jobs, "sbatch_s": round(sbatch_total, 2),
                                 "sbatch_submit_s": round(submitted_s, 2), "cairn_s": round(cairn_total, 2),
                                 "cairn_submit_s": round(submitted_c, 2),
                                 "ratio": round(cairn_total / sbatch_total, 3)}
        print(json.dumps({"slurm_many": results["slurm_many"]}), flush=True)

        # 3. A 4-process PyTorch job on the local compute vs the same processes by hand.
        first = "date +%s%N > {m}/ddp-{side}-{i}-$RANK"
        cairn_start, hand_start = [], []
        for i in range(a.rounds):
            job = os.path.join(work, "ddp.yml")
            with open(job, "w") as f:
                f.write("command: '" + first.format(m=marks, side="c", i=i) + "'\n"
                        "environment: azureml:bench@latest\nresources: {instance_count: 2}\n"
                        "distribution: {type: pytorch, process_count_per_instance: 2}\n")
            t0 = time.time()
            cairn("job", "create", "-f", job)
            files = [f"{marks}/ddp-c-{i}-{r}" for r in range(4)]
            wait_files(files)
            cairn_start.append(max(read_time(p) for p in files) - t0)

            t0 = time.time()
            procs = []
            for r in range(4):
                penv = dict(env, RANK=str(r), WORLD_SIZE="4", LOCAL_RANK=str(r % 2), NODE_RANK=str(r // 2),
                            MASTER_ADDR="127.0.0.1", MASTER_PORT="29500")
                procs.append(subprocess.Popen(["/bin/sh", "-c", first.format(m=marks, side="h", i=i)], env=penv))
            for p in procs:
                p.wait()
            files = [f"{marks}/ddp-h-{i}-{r}" for r in range(4)]
            wait_files(files)
            hand_start.append(max(read_time(p) for p in files) - t0)
        results["local_ddp_start"] = {"cairn": summary(cairn_start), "by_hand": summary(hand_start),
                                      "overhead_median_ms": round((statistics.median(cairn_start) -
                                                                   statistics.median(hand_start)) * 1000, 1)}
        print(json.dumps({"local_ddp_start": results["local_ddp_start"]}), flush=True)
    finally:
        for cleanup in ([CAIRN, "server", "stop"], [CLUSTER, "stop", cluster_dir]):
            try:
                subprocess.run(cleanup, env=env, capture_output=True, timeout=60)
            except (OSError, subprocess.SubprocessError) as e:
                print(f"cleanup {cleanup[0]}: {e}", file=sys.stderr)
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    sys.exit(main())
