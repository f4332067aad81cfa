#!/usr/bin/env python3
"""Artifact upload and download through the server against the disk itself, in one run, interleaved:
`curl -T` of a 200 MB file to the MLflow artifact proxy (the server writes it and fdatasyncs it before
answering) beside `dd conv=fsync` of the same file to the same folder; `curl` of it back beside `dd` reading
it (both from the disk: the page cache is emptied before each, where the bench runs as root). Each binary given runs its own server, the reference
first.

    /usr/bin/python3 bench/upload.py [--mb 200] [--rounds 5] [--server REF --server NEW] [--root DIR]
"""
import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def start(server, home):
    env = dict(os.environ, CAIRN_HOME=home)
    p = subprocess.Popen([server, "--home", home, "--port", "0"], env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            j = json.load(open(os.path.join(home, "server.json")))
            if j.get("pid") == p.pid:
                return p, j["url"], open(os.path.join(home, "token")).read().strip()
        except (OSError, ValueError):
            pass
        time.sleep(0.02)
    raise SystemExit(f"{server} did not start")


def cold():
    """Empties the page cache (root), so that a read comes from the disk; False where it cannot."""
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def dd(args):
    out = subprocess.run(["dd", *args, "bs=1M"], capture_output=True, text=True, check=True).stderr
    seconds = float(re.search(r"copied, ([0-9.]+) s", out).group(1))
    return seconds


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--server", action="append")
    ap.add_argument("--root", default=None)
    a = ap.parse_args()
    servers = a.server or [os.path.join(HERE, "..", "build", "cairn-server")]
    root = tempfile.mkdtemp(prefix="cairn-upload-", dir=a.root)
    procs = []
    try:
        src = os.path.join(root, "src.bin")
        with open(src, "wb") as f:
            f.write(os.urandom(a.mb * 1000 * 1000))
        size = os.path.getsize(src)
        runs = []
        for i, server in enumerate(servers):
            p, url, token = start(server, os.path.join(root, f"ws{i}"))
            procs.append(p)
            runs.append((server, url, token, os.path.join(root, f"ws{i}")))
        res = {s: {"up": [], "down": []} for s, _, _, _ in runs}
        disk = {"write": [], "read": []}
        for r in range(a.rounds):
            for server, url, token, home in runs:
                art = f"{url}/api/2.0/mlflow-artifacts/artifacts/0/run{r}/artifacts/f.bin"
                t = time.perf_counter()
                subprocess.run(["curl", "-sf", "-o", "/dev/null", "-T", src, "-H", f"Authorization: Bearer {token}", art],
                               check=True)
                res[server]["up"].append(size / (time.perf_counter() - t) / 1e6)
                cold()
                t = time.perf_counter()
                subprocess.run(["curl", "-sf", "-o", "/dev/null", "-H", f"Authorization: Bearer {token}", art], check=True)
                res[server]["down"].append(size / (time.perf_counter() - t) / 1e6)
            target = os.path.join(runs[0][3], f"dd{r}.bin")
            disk["write"].append(size / dd([f"if={src}", f"of={target}", "conv=fsync"]) / 1e6)
            is_cold = cold()
            disk["read"].append(size / dd([f"if={target}", "of=/dev/null"]) / 1e6)
        w, rd = statistics.median(disk["write"]), statistics.median(disk["read"])
        print(f"{a.mb} MB x {a.rounds} rounds, medians (range); disk: dd conv=fsync {w:.0f} MB/s "
              f"({min(disk['write']):.0f}-{max(disk['write']):.0f}), dd read {rd:.0f} MB/s"
              f"{'' if is_cold else ' (from the page cache: not root)'}")
        for server, _, _, _ in runs:
            up, down = res[server]["up"], res[server]["down"]
            print(f"{server}: upload {statistics.median(up):.0f} MB/s ({min(up):.0f}-{max(up):.0f}; "
                  f"{statistics.median(up) / w:.0%} of dd), download {statistics.median(down):.0f} MB/s "
                  f"({min(down):.0f}-{max(down):.0f}; {statistics.median(down) / rd:.0%} of dd's read)")
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=30)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
