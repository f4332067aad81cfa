"""Trust, round 2 (issue 25): a job as an attacker inside it would be, and pages and squatters outside.

Each test is one of the audit's findings, tried as the audit tried it on the code before the sandbox: a job
on the host was root with every capability and walked out of its mount namespace."""
import hashlib
import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.parse

import pytest

from conftest import CAIRN, job_namespace_pids, wait_for
from test_trust import connect, raw, read_answer, status_of, start
from test_tracking import call

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="a job's own uid and namespaces are made by a root supervisor")

PROBE = r"""
import ctypes, glob, json, os, subprocess, sys
home, server_pid, data = sys.argv[1], sys.argv[2], sys.argv[3]
me = os.environ["MLFLOW_RUN_ID"]
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return line.split()[1]
def fails(*cmd):
    return subprocess.run(list(cmd), capture_output=True).returncode != 0
def can_read(p):
    try:
        open(p, "rb").read(1)
        return True
    except OSError:
        return False
def can_write(p):
    try:
        with open(p, "r+b") as f:
            f.write(b"TAMPERED")
        return True
    except OSError:
        return False
libc = ctypes.CDLL(None, use_errno=True)
environs = []
for e in glob.glob("/proc/[0-9]*/environ"):
    try:
        environs.append(open(e, "rb").read().decode(errors="replace"))
    except OSError:
        pass
print(json.dumps({
    "uid": os.getuid(), "cap_eff": status("CapEff"), "cap_bnd": status("CapBnd"),
    "no_new_privs": status("NoNewPrivs"), "seccomp": status("Seccomp"),
    "pid": os.getpid(), "server_visible": os.path.exists("/proc/" + server_pid),
    "processes": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
    "token": can_read(home + "/token"),
    "token_via_parent_root": can_read("/proc/1/root" + home + "/token"),
    "job_json": can_read(home + "/runs/" + me + "/job.json"),
    "umount": not fails("umount", "-l", home),
    "nsenter": not fails("nsenter", "-t", "1", "-m", "true"),
    "userns": not fails("unshare", "-r", "true"),
    "ptrace": libc.ptrace(16, 1, 0, 0) == 0,
    "remount": not fails("mount", "-o", "remount,rw,bind", data),
    "input_write": can_write(os.path.join(data, "train.csv")),
    "cgroup_escape": not fails("sh", "-c", "echo $$ > /sys/fs/cgroup/unified/cgroup.procs"),
    "cgroup_v1_escape": not fails("sh", "-c", "echo $$ > /sys/fs/cgroup/pids/cgroup.procs"),
    "max_processes": [l.split()[2] for l in open("/proc/self/limits") if l.startswith("Max processes")][0],
    "environs": environs,
}))
"""


def test_a_job_on_the_host_is_an_unprivileged_guest_in_its_own_namespaces(ws):
    start(ws)
    server_pid = ws.server_info()["pid"]
    ws.write("probe/probe.py", PROBE)
    ws.write("data/train.csv", "a,b\n1,2\n")
    ws.write("probe.yml", f"command: python probe.py {ws.home} {server_pid} ${{{{inputs.data}}}}\ncode: probe\n"
                          "inputs:\n  data: {type: uri_folder, path: ./data}\nenvironment: {image: python}\n")
    ws.run("job", "create", "-f", "probe.yml", "-n", "probe", "--stream")
    log = open(os.path.join(ws.home, "runs/probe/artifacts/user_logs/std_log.txt")).read()
    got = json.loads(log.strip().splitlines()[-1])
    assert got["uid"] != 0 and got["uid"] >= 1500000000, got["uid"]
    assert got["cap_eff"] == "0000000000000000" and got["cap_bnd"] == "0000000000000000"
    assert got["no_new_privs"] == "1" and got["seccomp"] == "2"
    # Its own PID namespace: the holder is 1, the job 2, and nothing of the machine's is there.
    assert got["pid"] == 2 and not got["server_visible"] and max(got["processes"]) < 100, got["processes"]
    assert got["max_processes"] == "16384"
    for door in ("token", "token_via_parent_root", "job_json", "umount", "nsenter", "userns", "ptrace", "remount",
                 "input_write", "cgroup_escape", "cgroup_v1_escape"):
        assert got[door] is False, door
    token = ws.token()
    credential = json.load(open(os.path.join(ws.home, "runs/probe/job.json")))["supervisor_token"]
    for env in got["environs"]:
        assert token not in env and credential not in env
    # The input's stored copy is as it was uploaded.
    assert open(os.path.join(ws.dir, "data/train.csv")).read() == "a,b\n1,2\n"
    blobs = [os.path.join(d, f) for d, _, fs in os.walk(os.path.join(ws.home, "blobs")) for f in fs]
    for b in blobs:
        assert hashlib.sha256(open(b, "rb").read()).hexdigest() == os.path.basename(b), b


def test_a_finished_jobs_supervisor_credential_reports_nothing(ws):
    start(ws)
    ws.write("j2.yml", "command: 'true'\nenvironment: {image: python}\n")
    ws.run("job", "create", "-f", "j2.yml", "-n", "done1", "--stream")
    credential = json.load(open(os.path.join(ws.home, "runs/done1/job.json")))["supervisor_token"]
    for method, path, body in (("POST", "/api/v1/internal/jobs/done1/events", {"event": "exited"}),
                               ("PUT", "/api/v1/internal/jobs/done1/files/outputs/x?offset=0", "x")):
        code, _ = call(ws, method, path, body, token=credential)
        assert code == 401, (method, path, code)


def test_a_job_cannot_leave_its_cgroup_and_dies_with_its_holder(ws):
    """Every process of the job is in its cgroup, and what it leaves behind ends with the job."""
    start(ws)
    ws.write("bg.yml", "command: (sleep 300.41 &) ; echo $$ > /sys/fs/cgroup/unified/cgroup.procs; echo moved=$?\n"
                       "environment: {image: python}\n")
    ws.run("job", "create", "-f", "bg.yml", "-n", "bg1", "--stream", check=False)
    log = open(os.path.join(ws.home, "runs/bg1/artifacts/user_logs/std_log.txt")).read()
    assert "moved=1" in log, log
    deadline = time.time() + 10
    while time.time() < deadline and any("300.41" in open(f"/proc/{p}/cmdline").read()
                                         for p in os.listdir("/proc") if p.isdigit() and os.path.exists(f"/proc/{p}/cmdline")):
        time.sleep(0.05)
    assert not [p for p in os.listdir("/proc") if p.isdigit() and os.path.exists(f"/proc/{p}/cmdline")
                and "300.41" in open(f"/proc/{p}/cmdline").read()]


def kill_server_and_squat(ws):
    """Kills the server (its server.json still names the port), takes its port, and records what arrives
    there (answering with a made-up proof). Returns (port, heard, stop)."""
    port = ws.server_info()["port"]
    os.kill(ws.server_info()["pid"], signal.SIGKILL)

    def port_closed():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return False
        except ConnectionRefusedError:
            return True
    # A killed process's threads all end (and its descriptors close) after its main thread is a zombie.
    deadline = time.time() + 10
    while time.time() < deadline and not port_closed():
        time.sleep(0.02)
    return squat_on(port)


def squat_on(port):
    """A listener on `port` that records what each connection sends and answers any identity check with
    a proof it cannot have. Returns (port, what it heard, stop)."""
    heard = []
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    port = listener.getsockname()[1]
    listener.listen(16)
    listener.settimeout(0.2)
    done = threading.Event()

    def squat():
        while not done.is_set():
            try:
                c, _ = listener.accept()
            except OSError:
                continue
            c.settimeout(2)
            try:
                heard.append(c.recv(65536))
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 35\r\n\r\n"
                          b'{"proof": "00", "job_proof": "00"}\n')
            except OSError:
                pass
            c.close()

    t = threading.Thread(target=squat)
    t.start()

    def stop():
        done.set()
        t.join()
        listener.close()
    return port, heard, stop


def test_the_cli_never_hands_the_token_to_a_squatter_on_a_dead_servers_port(ws):
    start(ws)
    port, heard, stop = kill_server_and_squat(ws)
    try:
        jobs = ws.json("job", "list")  # the CLI starts a server of its own instead
        assert isinstance(jobs, list), (jobs, heard)
    finally:
        stop()
    assert heard, "the CLI did not try the recorded port"
    token = ws.token()
    for h in heard:
        assert token.encode() not in h and b"authorization" not in h.lower(), h
    assert ws.server_info()["port"] != port


def test_a_supervisor_never_hands_its_credential_to_a_squatter(ws):
    start(ws)
    ws.write("short.yml", "command: sleep 1\nenvironment: {image: python}\n")
    ws.run("job", "create", "-f", "short.yml", "-n", "short1")
    ws.wait_status("short1", "Running")
    credential = json.load(open(os.path.join(ws.home, "runs/short1/job.json")))["supervisor_token"]
    port, heard, stop = kill_server_and_squat(ws)
    try:
        # The job ends while only the squatter listens: its supervisor reports, or tries to.
        exit_json = os.path.join(ws.home, "runs/short1/exit.json")
        deadline = time.time() + 20
        while time.time() < deadline and not any(b"/internal/jobs/short1" in h or b"job=short1" in h for h in heard):
            time.sleep(0.05)
        assert os.path.exists(exit_json)
    finally:
        stop()
    assert any(b"job=short1" in h for h in heard), heard
    for h in heard:
        assert credential.encode() not in h and b"authorization" not in h.lower(), h
    # A real server takes the job up from its run folder.
    assert ws.wait_status("short1", ["Completed"], timeout=30)["status"] == "Completed"


def test_a_staged_node_supervisor_never_hands_its_credential_to_a_squatter(ws):
    # What a Slurm node without the workspace's filesystem runs (compute `staging: http`), pointed at a port
    # someone else holds: it asks for the run and would send what the job made, but only to a proven server.
    port, heard, stop = squat_on(0)
    credential = "c" * 64
    tmp = os.path.join(ws.dir, "node-tmp")
    os.makedirs(tmp, exist_ok=True)
    try:
        p = subprocess.run([CAIRN, "supervise", "--staged", f"http://127.0.0.1:{port}", "staged1"],
                           env=dict(ws.env, CAIRN_INTERNAL_TOKEN=credential, TMPDIR=tmp), capture_output=True, timeout=60)
    finally:
        stop()
    assert any(b"/api/v1/identify?" in h and b"job=staged1" in h for h in heard), heard
    for h in heard:
        assert credential.encode() not in h and b"authorization" not in h.lower(), h
    assert not any(b"/internal/jobs/" in h for h in heard), heard
    assert os.listdir(tmp) == [], "the node left its staging folder behind"


def login_cookie(ws, port):
    code, body = call(ws, "POST", "/api/v1/login-codes", {})
    a = raw(port, f"GET /login?code={body['code']}&next=%2F HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                  "Connection: close\r\n\r\n".encode())
    head = a.decode(errors="replace")
    return [h.split(": ", 1)[1].split(";")[0] for h in head.split("\r\n") if h.lower().startswith("set-cookie:")][0]


def test_the_studio_refuses_other_pages_and_is_never_framed(ws):
    port = start(ws)
    cookie = login_cookie(ws, port)
    ws.write("slow.yml", "command: sleep 300.42\nenvironment: {image: python}\n")
    ws.run("job", "create", "-f", "slow.yml", "-n", "victim")

    def cancel(*headers):
        extra = "".join(h + "\r\n" for h in headers)
        return raw(port, f"POST /api/v1/jobs/victim/cancel HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nCookie: {cookie}\r\n"
                         f"Content-Type: text/plain\r\nContent-Length: 2\r\n{extra}Connection: close\r\n\r\n{{}}".encode())
    # A no-cors fetch or a form from another port of 127.0.0.1 (same site, another origin).
    a = cancel(f"Origin: http://127.0.0.1:{port + 1}", "Sec-Fetch-Site: same-site")
    assert status_of(a) == 403 and b"another site or origin" in a, a
    a = cancel(f"Origin: http://127.0.0.1:{port + 1}")
    assert status_of(a) == 403 and b"another origin" in a, a
    a = cancel()  # no Origin at all (an old browser's form): still no header a form can send
    assert status_of(a) == 403 and b"X-Cairn-Studio" in a, a
    assert ws.job("victim")["status"] in ("Queued", "Preparing", "Running", "Starting", "NotStarted")
    # Another name for this machine (DNS rebinding) is not this server.
    a = raw(port, f"GET / HTTP/1.1\r\nHost: evil.example:{port}\r\nConnection: close\r\n\r\n".encode())
    assert status_of(a) == 421, a
    # The studio itself: its header, its origin.
    a = cancel(f"Origin: http://127.0.0.1:{port}", "Sec-Fetch-Site: same-origin", "X-Cairn-Studio: 1")
    assert status_of(a) == 200, a
    page = raw(port, f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode()).decode()
    assert "X-Frame-Options: DENY" in page and "frame-ancestors 'none'" in page
    assert "X-Content-Type-Options: nosniff" in page


def test_bodies_without_a_token_are_never_read_and_hold_no_worker(ws):
    port = start(ws)
    token = ws.token()
    held = []
    for i in range(600):
        path = ("/", "/login", "/assets/x.js", "/nowhere", "/api/v1/jobs")[i % 5]
        s = connect(port)
        s.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 60000000\r\n\r\n".encode())
        held.append(s)
    try:
        t0 = time.time()
        a = raw(port, f"GET /api/v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
                      "Connection: close\r\n\r\n".encode())
        took = time.time() - t0
        assert status_of(a) == 200
        assert took < 2.0, took
        # Each was answered at once, its body unread (the newest: older ones may have been closed unanswered,
        # past the 64 connections without a credential one address may hold).
        for s in held[-25:]:
            assert status_of(read_answer(s, timeout=5)) in (400, 401, 404), s
    finally:
        for s in held:
            s.close()


def server_sockets(pid):
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            n += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
        except OSError:
            pass
    return n


def test_one_address_holds_at_most_64_connections_without_a_credential(ws):
    port = start(ws)
    pid = ws.server_info()["pid"]
    before = server_sockets(pid)
    # A connection that proved itself (a request with the token), then left idle, and 300 that say nothing.
    proven = connect(port)
    proven.sendall(f"GET /api/v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {ws.token()}\r\n\r\n".encode())
    assert status_of(read_answer(proven)) == 200
    silent = [connect(port) for _ in range(300)]
    try:
        # The server closes the oldest silent ones: 64 stay open, the newest.
        def closed(s):
            s.settimeout(0.01)
            try:
                return s.recv(1) == b""
            except (socket.timeout, BlockingIOError):
                return False
            except OSError:
                return True
        wait_for(lambda: sum(closed(s) for s in silent[:236]) == 236, timeout=10, what="236 silent connections closed")
        assert not any(closed(s) for s in silent[236:])
        assert server_sockets(pid) <= before + 1 + 64 + 4, (before, server_sockets(pid))
        # The proven one, and a CLI call (which proves itself on its first request), are served.
        proven.sendall(f"GET /api/v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {ws.token()}\r\n\r\n".encode())
        assert status_of(read_answer(proven)) == 200
        ws.run("job", "list")
    finally:
        for s in silent:
            s.close()
        proven.close()


def test_a_jobs_memory_is_limited_where_the_machine_has_the_controller(ws):
    if not os.path.isdir("/sys/fs/cgroup/memory"):
        pytest.skip("no cgroup v1 memory controller on this machine")
    start(ws)
    ws.write("hold.yml", "command: 'while [ ! -e outputs/release ]; do sleep 0.05; done'\nenvironment: {image: python}\n")
    ws.run("job", "create", "-f", "hold.yml", "-n", "mem1")
    ws.wait_status("mem1", "Running")
    try:
        record = open(os.path.join(ws.home, "runs/mem1/cgroup")).read().split()
        memcg = [p for p in record if p.startswith("/sys/fs/cgroup/memory/")]
        assert len(memcg) == 1, record
        total = [int(l.split()[1]) * 1024 for l in open("/proc/meminfo") if l.startswith("MemTotal:")][0]
        limit = int(open(memcg[0] + "/memory.limit_in_bytes").read())
        assert 0 < limit <= total - total // 10, (limit, total)
        # Every process of the job is in it, and none can leave it (checked from inside above). A rank joins
        # it in the moment between its fork into the job's PID namespace and its exec (the job's code never
        # runs outside it), which "Running" does not wait for: the check waits for that moment to pass.
        def all_inside():
            inside = job_namespace_pids(ws.home, "mem1")
            members = set(int(x) for x in open(memcg[0] + "/cgroup.procs").read().split())
            job_pids = [host for ns, host in inside.items() if ns != 1]  # 1: the holder, which only reaps
            # A `sleep 0.05` seen first may have ended before the cgroup was read: only those still there count.
            still = [p for p in job_pids if os.path.exists(f"/proc/{p}")]
            return still and all(p in members for p in still)
        wait_for(all_inside, timeout=10, what="every process of the job in its memory cgroup")
    finally:
        open(os.path.join(ws.home, "runs/mem1/artifacts/outputs/release"), "w").close()
    ws.wait_status("mem1", "Completed")
    assert not os.path.exists(memcg[0])


def test_a_container_job_is_a_guest_too(ws):
    from test_environments import IMAGE, have_image
    if not have_image():
        pytest.skip(f"{IMAGE} is not imported (scripts/make-test-image.sh)")
    ws.write("c.yml", f"""
command: >-
  echo uid=$(id -u) && grep -E '^(CapEff|NoNewPrivs)' /proc/self/status &&
  (cat $(dirname $PWD)/job.json >/dev/null 2>&1 && echo JOB_JSON_READ || echo JOB_JSON_HIDDEN) &&
  (ls $(dirname $PWD) | tr -s '[:space:]' ' ')
environment: {{image: {IMAGE}}}
""")
    p = ws.run("job", "create", "-f", "c.yml", "-n", "inbox", "--stream")
    out = p.stdout
    uid = [l for l in out.splitlines() if l.startswith("uid=")][0]
    assert uid != "uid=0" and int(uid[4:]) >= 1500000000, out
    assert "CapEff:\t0000000000000000" in out and "NoNewPrivs:\t1" in out, out
    assert "JOB_JSON_HIDDEN" in out and "job.json" not in out.split("JOB_JSON_HIDDEN")[1], out


@pytest.mark.skipif(not os.path.exists("/usr/bin/chromium"), reason="chromium is not installed")
def test_a_same_site_page_in_a_real_browser_cannot_act_through_the_studio_nor_frame_it(ws, tmp_path):
    """The audit's page: another port of 127.0.0.1, in Chromium signed in to the studio."""
    import http.server
    start(ws)
    ws.write("slow.yml", "command: sleep 300.43\nenvironment: {image: python}\n")
    for name in ("victim", "own_victim"):
        ws.run("job", "create", "-f", "slow.yml", "-n", name)
        ws.wait_status(name, "Running")
    page = tmp_path / "attacker"
    page.mkdir()
    (page / "index.html").write_text("<!doctype html><title>elsewhere</title><body>a page on another port</body>")
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(page), **k)
    attacker = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=attacker.serve_forever, daemon=True)
    t.start()
    try:
        login = ws.run("studio", "--page", "/#/jobs").stdout.strip()
        cfg = {"server": ws.server_info()["url"], "login": login, "out": str(tmp_path),
               "attacker": f"http://127.0.0.1:{attacker.server_address[1]}/"}
        browser = os.path.join(os.path.dirname(__file__), "..", "browser")
        p = subprocess.run(["node", os.path.join(browser, "cross_site.mjs"), json.dumps(cfg)], capture_output=True,
                           text=True, timeout=120, cwd=browser)
        assert p.returncode == 0, p.stderr
        seen = json.loads(p.stdout.strip().splitlines()[-1])
        victim = ws.job("victim")["status"]
    finally:
        attacker.shutdown()
        for name in ("victim", "own_victim"):
            ws.run("job", "cancel", "-n", name, check=False)
    assert "error" not in seen, seen
    # Neither the fetch nor the form canceled the victim: the form landed on the server's refusal.
    assert victim == "Running", (victim, seen)
    assert "PermissionDenied" in seen["form_answer"], seen
    # The framed studio never loaded (X-Frame-Options, frame-ancestors): the frame shows the browser's error.
    assert not seen["framed"].startswith(cfg["server"]) and "Cairn" not in seen["framed"].split(" | ")[1], seen
    # The studio's own page, with its header and origin, may.
    assert seen["own"] == 200, seen


def test_the_servers_mlflow_helper_is_there_wherever_the_checkout_is(tmp_path):
    """A checkout under /tmp (CI's clone) in a folder only root may enter: the job's own /tmp and the cover
    over that folder would hide the helper on its PYTHONPATH, so the sandbox binds it back, read-only."""
    import shutil
    from conftest import CAIRN
    root = tmp_path / "checkout"
    (root / "build").mkdir(parents=True)
    for exe in ("cairn", "cairn-server"):
        shutil.copy2(os.path.join(os.path.dirname(CAIRN), exe), root / "build" / exe)
    shutil.copytree(os.path.join(os.path.dirname(__file__), "..", "..", "python"), root / "python")
    os.chmod(tmp_path, 0o700)
    (tmp_path / "j.yml").write_text('command: python3 -c "import cairn_mlflow; print(cairn_mlflow.__file__)"\n'
                                    "environment: {image: python}\n")
    env = dict(os.environ, CAIRN_HOME=str(tmp_path / "home"), CAIRN_SERVER_BIN=str(root / "build" / "cairn-server"))
    try:
        p = subprocess.run([str(root / "build" / "cairn"), "job", "create", "-f", str(tmp_path / "j.yml"), "--stream"],
                           capture_output=True, text=True, env=env, timeout=60)
        assert p.returncode == 0, p.stdout + p.stderr
        assert str(root / "python" / "cairn_mlflow.py") in p.stdout
    finally:
        subprocess.run([str(root / "build" / "cairn"), "server", "stop"], capture_output=True, env=env)


def test_a_persons_own_server_without_root_sandboxes_its_jobs_in_a_user_namespace():
    """The zero-setup case as a person who is not root (a bare uid, made by setpriv): the same sandbox, in a
    user namespace where the person's uid is the only one mapped."""
    from conftest import CAIRN
    import pathlib
    import tempfile
    uid = 4100000 + os.getpid() % 1000
    home = pathlib.Path(tempfile.mkdtemp(prefix="cairn-person-", dir="/tmp"))  # pytest's folder is root's (0700)
    os.chown(home, uid, uid)
    (home / "j.yml").write_text(
        "command: sh -c 'id -u; grep -E \"^(CapEff|NoNewPrivs|Seccomp):\" /proc/self/status; echo pid=$$; "
        "cat $CAIRN_HOME_PROBE/token 2>/dev/null && echo TOKEN_READ || echo TOKEN_HIDDEN'\n"
        "environment: {image: python}\n"
        f"environment_variables: {{CAIRN_HOME_PROBE: {home / 'ws'}}}\n")
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "CAIRN_HOME": str(home / "ws"), "CAIRN_CONTAINERS": "off"}
    if os.environ.get("CAIRN_SERVER_BIN"):
        env["CAIRN_SERVER_BIN"] = os.environ["CAIRN_SERVER_BIN"]
    as_person = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--"]
    try:
        p = subprocess.run([*as_person, CAIRN, "job", "create", "-f", str(home / "j.yml"), "-n", "mine", "--stream"],
                           capture_output=True, text=True, env=env, timeout=60, cwd=home)
        assert p.returncode == 0, p.stdout + p.stderr
        out = p.stdout
        assert f"\n{uid}\n" in out and "CapEff:\t0000000000000000" in out and "NoNewPrivs:\t1" in out, out
        assert "Seccomp:\t2" in out and "pid=2" in out and "TOKEN_HIDDEN" in out, out
        log = open(home / "ws" / "runs" / "mine" / "artifacts" / "system_logs" / "cairn_supervisor.log").read()
        assert f"the job runs as uid {uid} in a user namespace" in log, log
    finally:
        subprocess.run([*as_person, CAIRN, "server", "stop"], capture_output=True, env=env, timeout=30)
        subprocess.run(["rm", "-rf", str(home)])
