"""The local compute: process trees, cancel, timeout, logs, queueing, and a server that dies."""
import os
import signal
import sqlite3
import subprocess
import time

from conftest import job_namespace_pids, pids_mentioning, wait_for

# Starts a background sleeper that leaves the process group and a foreground one; records both pids.
TREE_JOB = """\
command: |
  setsid sleep 300 &
  echo $! > ${{outputs.pids}}/bg.pid
  sleep 300 &
  echo $! > ${{outputs.pids}}/fg.pid
  echo started
  wait
outputs:
  pids: {}
environment: {image: python}
"""


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def read_pids(ws, name):
    out = os.path.join(ws.home, "runs", name, "outputs", "pids")
    wait_for(lambda: os.path.exists(out + "/fg.pid") and os.path.getsize(out + "/fg.pid") > 0, what="pid files")
    # Pids of the job's own PID namespace, as the job sees them: found on the host by that namespace.
    inside = [int(open(os.path.join(out, f)).read()) for f in ("bg.pid", "fg.pid")]
    on_host = job_namespace_pids(ws.home, name)
    assert all(p in on_host for p in inside), (inside, on_host)
    return [on_host[p] for p in inside]


def test_cancel_kills_the_whole_process_tree(ws):
    ws.write("job.yml", TREE_JOB)
    ws.run("job", "create", "-f", "job.yml", "-n", "tree1")
    ws.wait_status("tree1", "Running")
    pids = read_pids(ws, "tree1")
    assert all(alive(p) for p in pids)
    job = ws.json("job", "cancel", "-n", "tree1")
    assert job["status"] == "Canceled"
    assert job["status_reason"] == "canceled by request"
    wait_for(lambda: not any(alive(p) for p in pids), timeout=10, what="the job's processes to die")
    statuses = [e["status"] for e in job["status_history"]]
    assert statuses[-3:] == ["CancelRequested", "Finalizing", "Canceled"]


def test_timeout_cancels_the_job_with_the_reason(ws):
    ws.write("job.yml", "command: echo before; sleep 60; echo after\nenvironment: {image: python}\nlimits:\n  timeout: 1\n")
    start = time.time()
    p = ws.run("job", "create", "-f", "job.yml", "-n", "slow", "--stream", check=False)
    assert time.time() - start < 8
    assert p.returncode == 1
    assert "before" in p.stdout and "after" not in p.stdout
    job = ws.job("slow")
    assert job["status"] == "Canceled"
    assert job["status_reason"] == "limits.timeout of 1 s reached"


def test_a_job_flooding_its_log_is_capped_and_still_completes(make_ws):
    ws = make_ws({"CAIRN_MAX_LOG_BYTES": "100000"})
    ws.write("job.yml", "command: head -c 20000000 /dev/zero | tr '\\\\0' x; echo; echo done\nenvironment: {image: python}\n")
    ws.run("job", "create", "-f", "job.yml", "-n", "flood", "--stream", "-o", "none")
    job = ws.job("flood")
    assert job["status"] == "Completed"
    log = os.path.join(ws.home, "runs", "flood", "artifacts", "user_logs", "std_log.txt")
    size = os.path.getsize(log)
    assert 100000 < size < 100300
    with open(log) as f:
        assert f.read().endswith("[cairn] log truncated: the job wrote more than 100000 bytes to stdout/stderr; "
                                 "the rest is discarded\n")


def test_stream_follows_a_running_job_live(ws):
    ws.write("job.yml", "command: echo first; sleep 1.5; echo second\nenvironment: {image: python}\n")
    ws.run("job", "create", "-f", "job.yml", "-n", "live")
    proc = subprocess.Popen([os.environ.get("CAIRN_BIN", "cairn") if False else __import__("conftest").CAIRN,
                             "job", "stream", "-n", "live"], env=ws.env, stdout=subprocess.PIPE, text=True)
    seen_first = None
    start = time.time()
    for line in proc.stdout:
        if line == "first\n":
            seen_first = time.time() - start
        if line == "second\n":
            assert seen_first is not None and seen_first < 1.2, "first line came only with the second"
    assert proc.wait(timeout=30) == 0


def test_jobs_queue_when_slots_are_full_with_the_reason(make_ws):
    ws = make_ws({"CAIRN_LOCAL_SLOTS": "1"})
    ws.write("sleep.yml", "command: sleep 2\nenvironment: {image: python}\n")
    ws.run("job", "create", "-f", "sleep.yml", "-n", "q1")
    ws.run("job", "create", "-f", "sleep.yml", "-n", "q2")
    ws.run("job", "create", "-f", "sleep.yml", "-n", "q3")
    q3 = ws.job("q3")
    assert q3["status"] == "Queued"
    assert q3["status_reason"] == "waiting for 1 CPU slot on local (1 of 1 in use, 1 queued ahead)"
    assert ws.job("q2")["status_reason"] == "waiting for 1 CPU slot on local (1 of 1 in use)"
    ws.run("job", "cancel", "-n", "q2")
    assert ws.job("q2")["status_reason"] == "canceled before it started"
    ws.wait_status("q3", "Completed", timeout=20)
    assert ws.job("q1")["status"] == "Completed"


def test_jobs_survive_a_server_killed_with_sigkill(ws):
    ws.write("job.yml", "command: echo one; sleep 2; echo two\nenvironment: {image: python}\n")
    ws.write("quick.yml", "command: echo quick\nenvironment: {image: python}\n")
    ws.run("job", "create", "-f", "job.yml", "-n", "survivor")
    ws.wait_status("survivor", "Running")
    old = ws.server_info()
    os.kill(old["pid"], signal.SIGKILL)
    wait_for(lambda: not os.path.exists(f"/proc/{old['pid']}") or open(f"/proc/{old['pid']}/stat").read().split()[2] == "Z",
             what="the server to die")
    # The job ends while no server runs: its supervisor records how it ended.
    wait_for(lambda: os.path.exists(os.path.join(ws.home, "runs", "survivor", "exit.json")), what="the job to end")
    # The next command starts a new server, which reconciles the job from its run folder.
    job = ws.job("survivor")
    assert ws.server_info()["pid"] != old["pid"]
    assert job["status"] == "Completed", job
    with open(os.path.join(ws.home, "runs", "survivor", "artifacts", "user_logs", "std_log.txt")) as f:
        assert f.read() == "one\ntwo\n"
    # And the new server runs jobs as before.
    p = ws.run("job", "create", "-f", "quick.yml", "--stream")
    assert "quick" in p.stdout


def test_a_running_job_continues_under_a_restarted_server(ws):
    ws.write("job.yml", "command: sleep 1; echo late\nenvironment: {image: python}\n")
    ws.run("job", "create", "-f", "job.yml", "-n", "across")
    ws.wait_status("across", "Running")
    os.kill(ws.server_info()["pid"], signal.SIGKILL)
    job = ws.job("across")  # a new server, while the job still runs
    assert job["status"] == "Running"
    job = ws.wait_status("across", ["Completed", "Failed"], timeout=20)
    assert job["status"] == "Completed"


def kill_server_and_forget_the_supervisor(ws, name):
    """kill -9 of the server, then the job's record as a server killed between starting the job's supervisor
    and recording its pid leaves it (found by the sweep test under CI load): Preparing, no pid."""
    old = ws.server_info()["pid"]
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: not os.path.exists(f"/proc/{old}") or open(f"/proc/{old}/stat").read().split()[2] == "Z",
             what="the server to die")
    db = sqlite3.connect(os.path.join(ws.home, "cairn.db"))
    with db:
        n = db.execute("UPDATE jobs SET supervisor_pid = NULL, status = 'Preparing' WHERE name = ?", (name,)).rowcount
    db.close()
    assert n == 1


def run_then_crash_before_the_pid_is_recorded(ws, name, then):
    """A job that notes each run of it in a file (returned), then `then`; running when the server is crashed."""
    # In the job's own outputs (what survives a second run of it): the job sees nothing else of the machine.
    runs = os.path.join(ws.home, "runs", name, "artifacts", "outputs", "runs.txt")
    ws.write("job.yml", f"command: echo run >> outputs/runs.txt; {then}\nenvironment: {{image: python}}\n")
    ws.run("job", "create", "-f", "job.yml", "-n", name)
    ws.wait_status(name, "Running")
    kill_server_and_forget_the_supervisor(ws, name)
    return runs


def test_a_supervisor_whose_pid_was_never_recorded_is_found_and_the_job_runs_once(ws):
    runs = run_then_crash_before_the_pid_is_recorded(ws, "lost", "sleep 2; echo done")
    # The next command starts a server, which finds the running supervisor by the run's lock.
    sup = [(pid, cmd) for pid, cmd in pids_mentioning(ws.home) if " supervise " in cmd and "--spawner" not in cmd]
    assert len(sup) == 1
    job = ws.job("lost")
    assert job["status"] in ("Preparing", "Running"), job
    # A second supervisor for the job (what the old server did here: it started the job again) stops at once.
    root = os.path.join(ws.home, "runs", "lost")
    second = subprocess.run([sup[0][1].split(" supervise ")[0], "supervise", root], capture_output=True, text=True,
                            timeout=10)
    assert second.returncode == 0, second.stderr
    job = ws.wait_status("lost", ["Completed", "Failed"], timeout=20)
    assert job["status"] == "Completed", job
    with open(runs) as f:
        assert f.read() == "run\n"
    with open(os.path.join(root, "artifacts", "system_logs", "cairn_supervisor.log")) as f:
        log = f.read()
    assert f"supervisor {sup[0][0]} already runs this job; supervisor " in log
    with open(os.path.join(root, "artifacts", "user_logs", "std_log.txt")) as f:
        assert f.read() == "done\n"


def test_a_job_that_ended_while_its_pid_was_never_recorded_is_not_run_again(ws):
    runs = run_then_crash_before_the_pid_is_recorded(ws, "ended", "sleep 1")
    root = os.path.join(ws.home, "runs", "ended")
    wait_for(lambda: os.path.exists(os.path.join(root, "exit.json")), timeout=15, what="the job to end")
    wait_for(lambda: not [c for _, c in pids_mentioning(ws.home) if " supervise " in c and "--spawner" not in c],
             timeout=15, what="its supervisor to end")
    job = ws.job("ended")
    assert job["status"] == "Completed", job
    with open(runs) as f:
        assert f.read() == "run\n"


def test_a_supervisor_killed_with_sigkill_fails_its_job_and_takes_every_process_along(ws):
    # A child, a grandchild in a session of its own (a daemon), each of which would outlive a plain kill.
    ws.write("job.yml", "command: 'setsid sleep 31 & sleep 30'\nenvironment: {image: python}\n")
    ws.run("job", "create", "-f", "job.yml", "-n", "orphan")
    ws.wait_status("orphan", "Running")
    wait_for(lambda: len([c for _, c in pids_mentioning(ws.home) if c.startswith("sleep")]) == 2, what="both sleeps")
    sup = [pid for pid, cmd in pids_mentioning(ws.home) if " supervise " in cmd and "--spawner" not in cmd]
    assert len(sup) == 1
    os.kill(sup[0], signal.SIGKILL)
    job = ws.wait_status("orphan", "Failed", timeout=10)
    assert job["status_reason"] == f"the supervisor (pid {sup[0]}) ended without recording how the job ended"
    if os.geteuid() == 0 and os.path.exists("/sys/fs/cgroup/unified/cgroup.procs") or \
            os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        # The job's cgroup went with it: no process of the job is left.
        wait_for(lambda: not [c for _, c in pids_mentioning(ws.home) if c.startswith("sleep")], timeout=5,
                 what="the job's processes to end with its supervisor")
    for pid, cmd in pids_mentioning(ws.home):
        if cmd.startswith("sleep"):
            os.kill(pid, signal.SIGKILL)


def test_concurrent_clis_start_one_server(ws):
    procs = [subprocess.Popen([__import__("conftest").CAIRN, "job", "list"], env=ws.env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(6)]
    assert all(p.wait(timeout=30) == 0 for p in procs)
    servers = [pid for pid, cmd in pids_mentioning(ws.home) if cmd.strip().endswith("server --port 0")]
    assert len(servers) == 1, servers


def test_server_stop_returns_once_the_server_is_gone(ws):
    """A command right after `cairn server stop` starts a fresh server (the old one's lock is released)."""
    ws.run("job", "list")
    old = ws.server_info()["pid"]
    ws.run("server", "stop")
    assert not any(pid == old for pid, _ in pids_mentioning(ws.home))
    ws.run("job", "list")
    assert ws.server_info()["pid"] != old


def test_two_workspaces_with_a_job_of_the_same_name_end_only_their_own(make_ws):
    """A job's cgroup is named for its run folder too: canceling `train` in one workspace (its cgroup killed)
    leaves the other workspace's `train` running."""
    a, b = make_ws(), make_ws()
    for w in (a, b):
        w.write("job.yml", "command: sleep 60\nenvironment: {image: python:3.11}\n")
        w.run("job", "create", "-f", "job.yml", "-n", "train")
    for w in (a, b):
        w.wait_status("train", "Running")
    b_pids = list(job_namespace_pids(b.home, "train").values())  # its holder and its `sleep 60`
    assert len(b_pids) >= 2, b_pids
    a.run("job", "cancel", "-n", "train")
    a.wait_status("train", "Canceled")
    # a's supervisor emptied its cgroup before it reported Canceled: b's processes are all still there.
    assert all(os.path.exists(f"/proc/{pid}") for pid in b_pids), b_pids
    assert b.job("train")["status"] == "Running"
    with open(os.path.join(b.home, "runs", "train", "cgroup")) as f:
        b_cgroup = f.read().strip()
    if b_cgroup:
        assert os.path.basename(b_cgroup).startswith("cairn.job.train.")
    b.run("job", "cancel", "-n", "train")
    b.wait_status("train", "Canceled")
