#!/usr/bin/python3
"""GPU scheduling's costs, on GPUs declared with CAIRN_GPUS (no GPU is needed; none is touched):

  1. submit -> start of a 1-GPU job against the same job asking for no GPU, one server, interleaved
     (the job's own record: created_at -> start_time, median of --runs each)
  2. --jobs queued GPU jobs (1, 2 and 4 GPUs, `sleep 0.05`) on 8 GPUs: how long the GPUs sat idle while a
     job waited that they could have run, against the ideal (every GPU busy until the last job starts)

     (idle GPU-seconds in all, and those while a waiting job would have fitted the idle GPUs)
     --sleep sets the jobs' length (0.05 s: the start rate dominates; 0.5 s: closer to real jobs)
     --timeout S gives the queued jobs `limits.timeout: S`, which lets the scheduler backfill behind a
     reserved job; --mixed makes every third 1-GPU job a long one (sleep x10, timeout x10), so the short
     jobs' timeouts end them before the long ones free their GPUs (what backfill can use)

Usage: bench/gpu_bench.py [--cairn build/cairn] [--runs 40] [--jobs 1000] [--sleep 0.05] [--queue-only]
                         [--timeout S] [--mixed]
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
from datetime import datetime


def ts(s):
    return datetime.fromisoformat(s).timestamp()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cairn", default=os.path.join(os.path.dirname(__file__), "../build/cairn"))
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--sleep", default="0.05")
    ap.add_argument("--queue-only", action="store_true")
    ap.add_argument("--timeout", type=int, default=0)
    ap.add_argument("--mixed", action="store_true")
    args = ap.parse_args()
    cairn = os.path.abspath(args.cairn)
    root = tempfile.mkdtemp(prefix="cairn-gpu-bench-")
    env = dict(os.environ, CAIRN_HOME=os.path.join(root, "home"), CAIRN_GPUS="0,1,2,3,4,5,6,7")
    env.pop("CAIRN_WORKSPACE", None)
    run = lambda *a, **kw: subprocess.run([cairn, *a], env=env, cwd=root, check=True, capture_output=True, text=True, **kw)
    try:
        def job_file(name, command, instance_type, timeout=0):
            with open(os.path.join(root, name), "w") as f:
                f.write(f"command: '{command}'\nenvironment: {{image: python}}\n")
                if instance_type:
                    f.write(f"resources: {{instance_type: {instance_type}}}\n")
                if timeout:
                    f.write(f"limits: {{timeout: {timeout}}}\n")

        job_file("gpu1.yml", "true", "Standard_NC6s_v3")
        job_file("cpu1.yml", "true", "")
        job_file("gpu.yml", f"sleep {args.sleep}", "Standard_NC6s_v3", args.timeout)
        job_file("g2.yml", f"sleep {args.sleep}", "Standard_NC12s_v3", args.timeout)
        job_file("g4.yml", f"sleep {args.sleep}", "Standard_NC24s_v3", args.timeout)
        job_file("long.yml", f"sleep {float(args.sleep) * 10:g}", "Standard_NC6s_v3", args.timeout * 10)
        run("job", "list")  # the server

        # 1. Submit -> start, interleaved.
        names = {"gpu": [], "cpu": []}
        for i in range(0 if args.queue_only else args.runs + 5):
            for kind in ("gpu", "cpu"):
                n = f"{kind}-{i}"
                run("job", "create", "-f", f"{kind}1.yml", "-n", n, "-o", "none")
                if i >= 5:
                    names[kind].append(n)
                time.sleep(0.03)
        time.sleep(1.0)
        jobs = {j["name"]: j for j in json.loads(run("job", "list", "--all-results", "-o", "json").stdout)}
        lat = {} if args.queue_only else {k: [(ts(jobs[n]["start_time"]) - ts(jobs[n]["creation_context"]["created_at"])) * 1000 for n in v]
               for k, v in names.items()}
        if lat: print(f"| submit -> start, median of {args.runs} | 1-GPU job {statistics.median(lat['gpu']):.1f} ms | "
              f"no-GPU job {statistics.median(lat['cpu']):.1f} ms | added "
              f"{statistics.median(lat['gpu']) - statistics.median(lat['cpu']):.1f} ms (goal <= 1 ms) |")

        # 2. A queue of GPU jobs on 8 GPUs.
        sizes = [1, 2, 4]
        files = {1: "gpu.yml", 2: "g2.yml", 4: "g4.yml"}
        want = {}
        with open(os.path.join(root, "queue.txt"), "w") as f:
            for i in range(args.jobs):
                want[f"q{i}"] = sizes[i % 3]
                long = args.mixed and i % 9 == 0
                f.write(f"{'long.yml' if long else files[sizes[i % 3]]} q{i}\n")
        with open(os.path.join(root, "queue.txt")) as f:
            subprocess.run(["xargs", "-P4", "-n2", "sh", "-c", 'exec "$0" job create -f "$1" -n "$2" -o none', cairn],
                           stdin=f, env=env, cwd=root, check=True, stdout=subprocess.DEVNULL)
        while True:
            jobs = {j["name"]: j for j in json.loads(run("job", "list", "--all-results", "-o", "json").stdout)}
            mine = [jobs[n] for n in want if n in jobs]
            if len(mine) == args.jobs and all(j["status"] in ("Completed", "Failed", "Canceled") for j in mine):
                break
            time.sleep(0.2)
        failed = sum(j["status"] != "Completed" for j in mine)
        # When each job was given its GPUs: its first Preparing (the scheduler's decision), before its
        # supervisor starts and reports Running (start_time).
        granted, completed = {}, {}
        for j in mine:
            shown = json.loads(run("job", "show", "-n", j["name"], "-o", "json").stdout)
            completed[j["name"]] = next((ts(e["time"]) for e in shown.get("status_history", []) if e["status"] == "Completed"),
                                        ts(j["end_time"]))
            granted[j["name"]] = next((ts(e["time"]) for e in shown.get("status_history", []) if e["status"] == "Preparing"),
                                      ts(j["start_time"]))
        events = []  # (time, busy delta, waiting delta)
        for j in mine:
            g = want[j["name"]]
            events += [(ts(j["creation_context"]["created_at"]), 0, 1, g), (ts(j["start_time"]), g, -1, g), (ts(j["end_time"]), -g, 0, g)]
        events.sort()
        busy = waiting = 0
        idle = idle_fit = 0.0
        sizes_waiting = {1: 0, 2: 0, 4: 0}
        gpu_seconds = sum(want[j["name"]] * (ts(j["end_time"]) - ts(j["start_time"])) for j in mine)
        first, last_start = events[0][0], max(ts(j["start_time"]) for j in mine)
        prev = first
        for t, db, dw, g in events:
            if waiting > 0:
                idle += (8 - busy) * (t - prev)
                if any(n and size <= 8 - busy for size, n in sizes_waiting.items()):
                    idle_fit += (8 - busy) * (t - prev)
            busy += db
            waiting += dw
            sizes_waiting[g] += dw
            prev = t
        span = max(ts(j["end_time"]) for j in mine) - first
        # The same, with a GPU counted held from its grant: idle GPUs the scheduler had not given out.
        held_events = []
        for j in mine:
            g = want[j["name"]]
            held_events += [(ts(j["creation_context"]["created_at"]), 0, 1), (granted[j["name"]], g, -1), (ts(j["end_time"]), -g, 0)]
        held_events.sort()
        held = waiting = 0
        idle_ungranted = idle_head_fits = 0.0
        prev = first
        # The oldest waiting job (the queue's head, which the scheduler keeps GPUs for once smaller jobs have
        # passed it kMaxPassed times): idle GPUs it would fit are the scheduler's lag, the rest are kept for it.
        by_created = sorted(mine, key=lambda j: ts(j["creation_context"]["created_at"]))
        head = 0
        for t, db, dw in held_events:
            while head < len(by_created) and granted[by_created[head]["name"]] <= prev:
                head += 1
            if waiting > 0:
                idle_ungranted += (8 - held) * (t - prev)
                if head < len(by_created) and want[by_created[head]["name"]] <= 8 - held:
                    idle_head_fits += (8 - held) * (t - prev)
            held += db
            waiting += dw
            prev = t
        starts = sorted(ts(j["start_time"]) - granted[j["name"]] for j in mine)
        ends = sorted(completed[j["name"]] - ts(j["end_time"]) for j in mine)
        print(f"| {args.jobs} queued GPU jobs (1/2/4 GPUs, sleep {args.sleep}) on 8 GPUs | {span:.2f} s, GPUs busy "
              f"{gpu_seconds:.1f} GPU-s | ideal {gpu_seconds / 8:.2f} s | idle while a job waited: {idle:.2f} GPU-s "
              f"({100 * idle / (8 * (last_start - first)):.1f}% of the GPU time until the last start), of which while a "
              f"waiting job would have fitted: {idle_fit:.2f} GPU-s ({100 * idle_fit / (8 * (last_start - first)):.1f}%); "
              f"{failed} not completed |")
        print(f"| the same, GPUs counted from their grant (first Preparing) | idle while a job waited and no GPU was held: "
              f"{idle_ungranted:.2f} GPU-s ({100 * idle_ungranted / (8 * (last_start - first)):.1f}%), of which while the oldest "
              f"waiting job would have fitted: {idle_head_fits:.2f} GPU-s ({100 * idle_head_fits / (8 * (last_start - first)):.1f}%) | grant -> command "
              f"running: median {1000 * starts[len(starts) // 2]:.1f} ms, p90 {1000 * starts[len(starts) * 9 // 10]:.1f} ms | "
              f"command end -> Completed recorded: median {1000 * ends[len(ends) // 2]:.1f} ms, p90 {1000 * ends[len(ends) * 9 // 10]:.1f} ms |")
        if args.queue_only:
            return
        # 3. The cost of sampling: the supervisor's CPU over 10 s of a job that sleeps, with system metrics
        # every 2 s (the default) and with them off, in servers of their own.
        for label, seconds in (("metrics every 2 s", "2"), ("metrics off", "0")):
            run("server", "stop")
            env["CAIRN_SYSTEM_METRICS_SECONDS"] = seconds
            job_file("idle.yml", "sleep 14", "Standard_NC6s_v3")
            name = f"idle-{seconds}"
            run("job", "create", "-f", "idle.yml", "-n", name, "-o", "none")
            marker = f"supervise {os.path.join(root, 'home', 'runs', name)}"
            pid = None
            for _ in range(200):
                for p in os.listdir("/proc"):
                    if p.isdigit():
                        try:
                            if marker in open(f"/proc/{p}/cmdline").read().replace("\0", " "):
                                pid = int(p)
                        except OSError:
                            pass
                if pid:
                    break
                time.sleep(0.05)
            # schedstat's first field: nanoseconds on a CPU (stat's utime/stime count 10 ms ticks: too coarse).
            cpu = lambda: int(open(f"/proc/{pid}/schedstat").read().split()[0]) / 1e9
            time.sleep(2.0)
            c0, t0 = cpu(), time.time()
            time.sleep(10.0)
            c1, t1 = cpu(), time.time()
            share = (c1 - c0) / (t1 - t0) * 100
            print(f"| supervisor CPU of a sleeping 1-GPU job, {label} | {share:.3f}% of one core over {t1 - t0:.1f} s "
                  f"| goal: sampling <= 0.5% of one core |")
            run("job", "cancel", "-n", name)
    finally:
        subprocess.run([cairn, "server", "stop"], env=env, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
