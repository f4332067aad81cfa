#!/usr/bin/env python3
"""What knowing who is calling costs the server: its CPU time per request (utime + stime of the server's
process, from /proc) and the requests per second one keep-alive client gets, for the same authenticated
`GET /api/v1/health`:

  - the reference binary's single workspace-token check (a private server), first;
  - this binary's private server, with the workspace token (the route table's check);
  - a team server through its Unix socket (the caller's uid from SO_PEERCRED, its name, groups and role);
  - a team server over TCP with a personal access token (a SHA-256 of the secret, looked up).

    /usr/bin/python3 bench/identity.py [--requests 20000] [--rounds 3] [--ref /tmp/ref/build/cairn-server]

Every figure comes from one run, the modes interleaved round by round, so they sit side by side.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
NEW_SERVER = os.path.join(HERE, "..", "build", "cairn-server")
NEW_CLI = os.path.join(HERE, "..", "build", "cairn")
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def read_answer(s, buf):
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise OSError("closed")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    n = int([h.split(b":")[1] for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")][0])
    while len(rest) < n:
        rest += s.recv(65536)
    return status, rest[n:]


def hammer(connect, headers, n, pid):
    s = connect()
    req = ("GET /api/v1/health HTTP/1.1\r\nHost: localhost\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
           + "\r\n").encode()
    buf = b""
    for _ in range(200):  # warm up
        s.sendall(req)
        status, buf = read_answer(s, buf)
        assert status == 200, status
    c0, t0 = cpu_seconds(pid), time.perf_counter()
    for _ in range(n):
        s.sendall(req)
        status, buf = read_answer(s, buf)
    t1, c1 = time.perf_counter(), cpu_seconds(pid)
    s.close()
    assert status == 200, status
    return (c1 - c0) / n * 1e6, n / (t1 - t0)


def tcp(port):
    def connect():
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s
    return connect


def unix(path):
    def connect():
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        return s
    return connect


def start(server, home, team):
    env = dict(os.environ)
    env.pop("CAIRN_HOME", None)
    env["CAIRN_HOME"] = home
    argv = [server, "--home", home, "--port", "0"] + (["--team"] if team else [])
    p = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    info = os.path.join(home, "server.json")
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            j = json.load(open(info))
            if j.get("pid") == p.pid:
                return p, j
        except (OSError, ValueError):
            pass
        time.sleep(0.02)
    raise SystemExit(f"{server} did not start")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--ref", default="/tmp/ref/build/cairn-server")
    a = ap.parse_args()
    root = tempfile.mkdtemp(prefix="cairn-identity-")
    procs = []
    try:
        ref, ref_info = start(a.ref, os.path.join(root, "ref"), False)
        new, new_info = start(NEW_SERVER, os.path.join(root, "new"), False)
        team, team_info = start(NEW_SERVER, os.path.join(root, "team"), True)
        procs = [ref, new, team]
        ref_token = open(os.path.join(root, "ref", "token")).read().strip()
        new_token = open(os.path.join(root, "new", "token")).read().strip()
        made = subprocess.run([NEW_CLI, "token", "create", "-o", "json"], capture_output=True, text=True,
                              env=dict(os.environ, CAIRN_WORKSPACE=os.path.join(root, "team")), check=True)
        pat = json.loads(made.stdout)["token"]
        modes = [
            ("reference: workspace token (TCP)", ref.pid, tcp(ref_info["port"]), {"Authorization": f"Bearer {ref_token}"}),
            ("private server: workspace token (TCP)", new.pid, tcp(new_info["port"]), {"Authorization": f"Bearer {new_token}"}),
            ("team server: Unix socket, SO_PEERCRED", team.pid, unix(team_info["socket"]), {}),
            ("team server: personal access token (TCP)", team.pid, tcp(team_info["port"]), {"Authorization": f"Bearer {pat}"}),
        ]
        results = {m[0]: [] for m in modes}
        for _ in range(a.rounds):
            for name, pid, connect, headers in modes:
                results[name].append(hammer(connect, headers, a.requests, pid))
        base = statistics.median(c for c, _ in results[modes[0][0]])
        print(f"{a.requests} requests x {a.rounds} rounds, one keep-alive client; median of rounds")
        print(f"{'mode':45} {'server CPU/request':>20} {'vs reference':>14} {'requests/s':>12}")
        for name, _, _, _ in modes:
            cpu = statistics.median(c for c, _ in results[name])
            rate = statistics.median(r for _, r in results[name])
            print(f"{name:45} {cpu:17.1f} us {cpu - base:+11.1f} us {rate:12.0f}")
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=30)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
