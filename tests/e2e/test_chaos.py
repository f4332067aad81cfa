"""Chaos: 50 jobs, a sweep and a job logging 1,000 metrics a second, while the server is killed -9 three
times, one supervisor is killed, and the disk fills up and is freed. Every job must end in the state its
processes earned, every metric the server acknowledged must be stored exactly once, and no process may be
left (the harness checks that)."""
import json
import os
import signal
import subprocess
import tempfile
import time

import pytest

from conftest import pids_mentioning, wait_for

LOGGER = """\
import json, os, time
import cairn_mlflow as mlflow
run = os.environ["MLFLOW_RUN_ID"]
acked = []
step = 0
end = time.time() + 12
while time.time() < end:
    batch = list(range(step, step + 50))
    try:
        mlflow._call("POST", "/api/2.0/mlflow/runs/log-batch", {"run_id": run, "metrics": [
            {"key": "tick", "value": float(s), "timestamp": 1700000000000 + s, "step": s} for s in batch]})
        acked.extend(batch)
    except Exception as e:  # the server was down for longer than the retries: not acknowledged
        print("unacknowledged batch at", step, type(e).__name__, flush=True)
    step += 50
    time.sleep(0.05)
with open("outputs/acked.json", "w") as f:
    json.dump(acked, f)
print("done", len(acked), flush=True)
"""

SWEEP = """\
type: sweep
trial:
  command: echo trial ${{search_space.x}}; sleep 1
  environment: {image: python}
sampling_algorithm: grid
search_space:
  x: {type: choice, values: [1, 2, 3, 4]}
objective: {goal: maximize, primary_metric: none}
limits: {max_total_trials: 4, max_concurrent_trials: 2}
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="the disk-full part mounts a small tmpfs (root)")
def test_jobs_end_as_their_processes_earned_through_crashes_a_lost_supervisor_and_a_full_disk(make_ws):
    mnt = tempfile.mkdtemp(prefix="cairn-chaos-")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256m", "tmpfs", mnt], check=True)
    try:
        ws = make_ws({"CAIRN_LOCAL_SLOTS": "12"})
        ws.home = os.path.join(mnt, "home")
        ws.env["CAIRN_HOME"] = ws.home
        ws.write("logger/log.py", LOGGER)
        ws.write("logger.yml", "command: /usr/bin/python3 log.py\ncode: logger\nenvironment: {image: python}\n")
        ws.write("sweep.yml", SWEEP)
        ws.write("victim.yml", "command: sleep 30\nenvironment: {image: python}\n")
        ws.run("job", "create", "-f", "logger.yml", "-n", "logger")
        ws.run("job", "create", "-f", "victim.yml", "-n", "victim")
        ws.run("job", "create", "-f", "sweep.yml", "-n", "sweeper")
        expected = {}
        kills = 0
        for i in range(50):
            kind = i % 3
            cmd = ["'true'", "'exit 3'", "'sleep 2; echo slept'"][kind]
            ws.write(f"j{i}.yml", f"command: {cmd}\nenvironment: {{image: python}}\n")
            for attempt in range(30):  # the server may be down this moment: the CLI starts another
                p = ws.run("job", "create", "-f", f"j{i}.yml", "-n", f"j{i}", check=False)
                if p.returncode == 0 or "already exists" in p.stderr:
                    break
                time.sleep(0.2)
            assert p.returncode == 0 or "already exists" in p.stderr, p.stderr
            expected[f"j{i}"] = ["Completed", "Failed", "Completed"][kind]
            if i in (10, 25, 40):  # the server killed outright, three times
                os.kill(ws.server_info()["pid"], signal.SIGKILL)
                kills += 1
            if i == 15:  # one supervisor killed
                ws.wait_status("victim", "Running", timeout=30)
                sup = [pid for pid, cmd in pids_mentioning(ws.home) if " supervise " in cmd and "/victim" in cmd]
                assert len(sup) == 1
                os.kill(sup[0], signal.SIGKILL)
            if i == 30:  # the disk fills up, and is freed a moment later
                filler = os.path.join(mnt, "filler")
                subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=1M", "count=400"], capture_output=True)
                time.sleep(1.0)
                os.unlink(filler)
        assert kills == 3
        names = list(expected) + ["logger", "victim", "sweeper"]

        def all_ended():
            jobs = {j["name"]: j for j in json.loads(ws.run("job", "list", "--max-results", "200", "-o", "json").stdout)}
            return all(n in jobs and jobs[n]["status"] in ("Completed", "Failed", "Canceled") for n in names) and jobs
        jobs = wait_for(all_ended, timeout=180, interval=0.5, what="every job to end")
        # While the disk was full a job could neither start (its run folder) nor have its end recorded (by its
        # supervisor, or by the server, which may then have been killed before the disk was freed): those are
        # Failed, and either their reason or their supervisor's log says the disk was full. Every other job
        # ended as its command did.
        def logs(n):
            try:
                with open(os.path.join(ws.home, f"runs/{n}/artifacts/system_logs/cairn_supervisor.log")) as f:
                    return f.read()
            except OSError as e:
                return str(e)

        def disk_full(n):
            j = jobs[n]
            r = (j.get("status_reason") or "").lower()
            return j["status"] == "Failed" and ("no space left" in r or "No space left on device" in logs(n))
        wrong = {n: (jobs[n]["status"], jobs[n].get("status_reason")) for n, want in expected.items()
                 if jobs[n]["status"] != want and not disk_full(n)}
        assert not wrong, {n: (w, logs(n)) for n, w in wrong.items()}
        assert sum(disk_full(n) for n in expected) <= 10
        assert jobs["victim"]["status"] == "Failed"
        assert "the supervisor" in jobs["victim"]["status_reason"]
        assert jobs["sweeper"]["status"] == "Completed", jobs["sweeper"].get("status_reason")
        assert jobs["logger"]["status"] == "Completed", jobs["logger"].get("status_reason")
        # Every acknowledged metric stored, each exactly once.
        with open(os.path.join(ws.home, "runs/logger/artifacts/outputs/acked.json")) as f:
            acked = json.load(f)
        assert len(acked) > 1000  # about 12,000 in a release build, fewer under the sanitizers
        p = ws.run("job", "metrics", "-n", "logger", "--key", "tick", "-o", "json")
        steps = [m["step"] for m in json.loads(p.stdout)["tick"]]
        assert len(steps) == len(set(steps)), "a metric was stored twice"
        assert set(acked) <= set(steps), f"{len(set(acked) - set(steps))} acknowledged metrics were lost"
        ws.stop()
        wait_for(lambda: not pids_mentioning(ws.home), timeout=15, what="no process left")
    finally:
        subprocess.run(["umount", "-l", mnt])
