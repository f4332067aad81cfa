#!/usr/bin/env python3
"""Idle keep-alive connections against a fresh server: opens N connections, each used once (so they are
keep-alive connections waiting for a next request; one never used is, past 64 from one address, closed by
the server since the eighth session), then times ordinary requests on a connection of its own and reads the
server's RSS. Reference: the same requests with no idle connections open.

    /usr/bin/python3 bench/idle_connections.py [--connections 10000] [--requests 200] [--cairn BIN]
"""
import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CAIRN = os.path.join(HERE, "../build/cairn")


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024


def read_answer(s):
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    n = int([h.split(b":")[1] for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")][0])
    while len(body) < n:
        body += s.recv(65536)
    return head


def latencies(port, token, n):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    req = f"GET /api/v1/jobs?max_results=10 HTTP/1.1\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        s.sendall(req)
        read_answer(s)
        out.append((time.perf_counter() - t) * 1000)
    s.close()
    # A new connection each time, as a CLI call makes.
    fresh = []
    for _ in range(20):
        t = time.perf_counter()
        c = socket.create_connection(("127.0.0.1", port))
        c.sendall(req)
        read_answer(c)
        c.close()
        fresh.append((time.perf_counter() - t) * 1000)
    return out, fresh


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--connections", type=int, default=10000)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--cairn", default=CAIRN, help="the cairn binary (cairn-server beside it)")
    a = ap.parse_args()
    cairn = os.path.abspath(a.cairn)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    home = tempfile.mkdtemp(prefix="cairn-idle-")
    env = dict(os.environ, CAIRN_HOME=home, CAIRN_SERVER_BIN=os.path.join(os.path.dirname(cairn), "cairn-server"))
    print(f"binaries: {os.path.dirname(cairn)}")
    subprocess.run([cairn, "job", "list", "-o", "none"], env=env, check=True)
    info = json.load(open(os.path.join(home, "server.json")))
    token = open(os.path.join(home, "token")).read().strip()
    port, pid = info["port"], info["pid"]
    try:
        base, base_fresh = latencies(port, token, a.requests)
        rss0 = rss_mib(pid)
        conns = []
        t = time.time()
        for i in range(a.connections):
            c = socket.create_connection(("127.0.0.1", port))
            c.sendall(f"GET /api/v1/health HTTP/1.1\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
            read_answer(c)
            conns.append(c)
        opened = time.time() - t
        time.sleep(1)
        rss1 = rss_mib(pid)
        held, held_fresh = latencies(port, token, a.requests)
        alive = 0
        for c in conns[::97]:  # the idle ones are still served
            c.sendall(f"GET /api/v1/health HTTP/1.1\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
            alive += read_answer(c).startswith(b"HTTP/1.1 200")
        print(f"load average: {open('/proc/loadavg').read().split()[:3]}")
        print(f"opened {a.connections} connections in {opened:.1f} s (each used once)")
        print(f"server RSS: {rss0:.1f} MiB with none, {rss1:.1f} MiB with {a.connections} idle")
        for label, xs, fr in [("none idle", base, base_fresh), (f"{a.connections} idle", held, held_fresh)]:
            print(f"job list request, {label}: keep-alive median {statistics.median(xs):.2f} ms, p99 "
                  f"{sorted(xs)[int(len(xs) * 0.99) - 1]:.2f} ms; new connection median {statistics.median(fr):.2f} ms")
        print(f"idle connections sampled afterwards and answered: {alive}/{len(conns[::97])}")
        for c in conns:
            c.close()
    finally:
        subprocess.run([cairn, "server", "stop"], env=env, capture_output=True)


if __name__ == "__main__":
    main()
