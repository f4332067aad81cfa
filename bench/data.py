"""Data assets (issue: data, environments, models), each figure beside its reference in the same run:

  data-create     `cairn data create` of a 1 GB folder of 10,000 files (hash + store, durable), vs copying the
                  same folder with `cp -r` (and `cp -r && sync`, durable too) and hashing it with `sha256sum`
  data-recreate   a second `data create` of the same, unchanged folder
  ro-mount-start  a job with that 1 GB asset as a ro_mount input, submit -> its first line, vs the same job
                  without the input (median of 15 each, alternating)

`make bench-data`, or /usr/bin/python3 bench/data.py [--files 10000] [--mb 1024] [--root DIR]
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CAIRN = os.environ.get("CAIRN_BIN") or os.path.join(ROOT, "build", "cairn")


def timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=10000)
    ap.add_argument("--mb", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--root", default=None)
    a = ap.parse_args()
    root = tempfile.mkdtemp(prefix="cairn-bench-data-", dir=a.root)
    env = dict(os.environ, CAIRN_HOME=os.path.join(root, "home"))
    work = os.path.join(root, "work")
    os.makedirs(work)

    def cairn(*args):
        return subprocess.run([CAIRN, *args], env=env, capture_output=True, text=True, check=True, cwd=work)

    out = {}
    try:
        src = os.path.join(work, "big")
        size = a.mb * 1024 * 1024 // a.files
        for i in range(a.files):
            d = os.path.join(src, f"d{i % 100:02d}")
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, f"f{i:05d}.bin"), "wb") as f:
                f.write(os.urandom(size))
        total = size * a.files
        subprocess.run(["sync"])
        cairn("job", "list")  # the server is up before anything is timed

        copy_s = timed(lambda: subprocess.run(["cp", "-r", src, os.path.join(root, "copy")], check=True))
        subprocess.run(["sync"])
        shutil.rmtree(os.path.join(root, "copy"))
        subprocess.run(["sync"])
        # Cairn's store is durable once `data create` returns (one syncfs): the like-for-like reference is a
        # copy that is on disk too.
        copy_sync_s = timed(lambda: subprocess.run(f"cp -r {src} {root}/copy && sync", shell=True, check=True))
        hash_s = timed(lambda: subprocess.run(f"find {src} -type f -print0 | xargs -0 sha256sum > /dev/null",
                                              shell=True, check=True))
        shutil.rmtree(os.path.join(root, "copy"))
        subprocess.run(["sync"])
        create_s = timed(lambda: cairn("data", "create", "--name", "big", "--path", src))
        subprocess.run(["sync"])
        recreate_s = timed(lambda: cairn("data", "create", "--name", "big", "--path", src))
        mb = total / 1e6
        out["data_create"] = {"bytes": total, "files": a.files, "cairn_s": round(create_s, 2),
                              "cairn_mb_s": round(mb / create_s), "cp_r_s": round(copy_s, 2),
                              "cp_r_mb_s": round(mb / copy_s), "cp_r_sync_s": round(copy_sync_s, 2),
                              "cp_r_sync_mb_s": round(mb / copy_sync_s), "sha256sum_s": round(hash_s, 2),
                              "sha256sum_mb_s": round(mb / hash_s), "recreate_s": round(recreate_s, 3)}
        print(json.dumps({"data_create": out["data_create"]}), flush=True)

        # A job with the asset as a ro_mount input vs the same job without: submit -> first line.
        marks = os.path.join(root, "marks")
        os.makedirs(marks)
        with open(os.path.join(work, "with.yml"), "w") as f:
            f.write(f"command: 'date +%s%N > {marks}/$CAIRN_JOB_NAME && ls ${{{{inputs.d}}}} > /dev/null'\n"
                    "environment: azureml:bench@latest\ninputs:\n  d: {type: uri_folder, path: azureml:big@latest}\n")
        with open(os.path.join(work, "without.yml"), "w") as f:
            f.write(f"command: 'date +%s%N > {marks}/$CAIRN_JOB_NAME'\nenvironment: azureml:bench@latest\n")
        first_use = None
        sides = {"with": [], "without": []}
        for r in range(a.rounds + 1):
            for side in ("with", "without"):
                name = f"{side}_{r}"
                t0 = time.time_ns()
                cairn("job", "create", "-f", f"{side}.yml", "-n", name)
                path = os.path.join(marks, name)
                deadline = time.time() + 60
                while not (os.path.exists(path) and os.path.getsize(path) > 0):
                    if time.time() > deadline:
                        raise SystemExit(f"{name} did not start: {cairn('job', 'show', '-n', name).stdout}")
                    time.sleep(0.001)
                ms = (int(open(path).read()) - t0) / 1e6
                if r == 0 and side == "with":
                    first_use = ms  # the first job to use the asset
                elif r > 0:
                    sides[side].append(ms)
                while json.loads(cairn("job", "show", "-n", name).stdout)["status"] not in ("Completed", "Failed"):
                    time.sleep(0.01)
        w, wo = statistics.median(sides["with"]), statistics.median(sides["without"])
        out["ro_mount_start"] = {"with_input_median_ms": round(w, 1), "without_median_ms": round(wo, 1),
                                 "overhead_median_ms": round(w - wo, 1), "first_job_ms": round(first_use, 1)}
        print(json.dumps({"ro_mount_start": out["ro_mount_start"]}), flush=True)
    finally:
        subprocess.run([CAIRN, "server", "stop"], env=env, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
