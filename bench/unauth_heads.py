#!/usr/bin/env python3
"""Heads with a body never sent, and no token: N connections each send a request head with a large
Content-Length to a public path, an unknown one or the API, then nothing. Times an authenticated
`GET /api/v1/jobs` (keep-alive and a new connection each time) before and while they are held, for each
binary given, in one run (the reference first), so the figures sit side by side.

    /usr/bin/python3 bench/unauth_heads.py [--heads 600] [--requests 50] [--cairn REF --cairn NEW]
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
PATHS = ("/", "/login", "/assets/x.js", "/nowhere", "/api/v1/jobs")


def read_answer(s):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    n = int([h.split(b":")[1] for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")][0])
    while len(body) < n:
        body += s.recv(65536)
    return head


def timed_requests(port, token, n, timeout):
    req = f"GET /api/v1/jobs?max_results=10 HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
    keep, fresh = [], []
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for _ in range(n):
        t = time.perf_counter()
        try:
            s.sendall(req)
            read_answer(s)
        except OSError:
            keep.append(timeout * 1000)
            break
        keep.append((time.perf_counter() - t) * 1000)
    s.close()
    for _ in range(10):
        t = time.perf_counter()
        try:
            c = socket.create_connection(("127.0.0.1", port), timeout=timeout)
            c.sendall(req)
            read_answer(c)
            c.close()
            fresh.append((time.perf_counter() - t) * 1000)
        except OSError:
            fresh.append(timeout * 1000)
            break
    return keep, fresh


def run(cairn, heads, requests, timeout):
    home = tempfile.mkdtemp(prefix="cairn-heads-")
    env = dict(os.environ, CAIRN_HOME=home, CAIRN_SERVER_BIN=os.path.join(os.path.dirname(cairn), "cairn-server"))
    subprocess.run([cairn, "job", "list", "-o", "none"], env=env, check=True)
    info = json.load(open(os.path.join(home, "server.json")))
    token = open(os.path.join(home, "token")).read().strip()
    port = info["port"]
    held = []
    try:
        base = timed_requests(port, token, requests, timeout)
        for i in range(heads):
            c = socket.create_connection(("127.0.0.1", port))
            c.sendall(f"POST {PATHS[i % len(PATHS)]} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 60000000\r\n\r\n".encode())
            held.append(c)
        time.sleep(0.5)
        during = timed_requests(port, token, requests, timeout)
    finally:
        for c in held:
            c.close()
        subprocess.run([cairn, "server", "stop"], env=env, capture_output=True)
    return base, during


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--heads", type=int, default=600)
    ap.add_argument("--requests", type=int, default=50)
    ap.add_argument("--timeout", type=float, default=30, help="a request waiting longer counts as this long")
    ap.add_argument("--cairn", action="append", help="a cairn binary (cairn-server beside it); repeat to compare")
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print(f"load average: {open('/proc/loadavg').read().split()[:3]}; {a.heads} heads held")
    for cairn in a.cairn or [os.path.join(HERE, "../build/cairn")]:
        (bk, bf), (dk, df) = run(os.path.abspath(cairn), a.heads, a.requests, a.timeout)
        print(f"{cairn}:")
        print(f"  none held: keep-alive median {statistics.median(bk):.2f} ms, max {max(bk):.2f} ms; "
              f"new connection median {statistics.median(bf):.2f} ms")
        print(f"  {a.heads} held: keep-alive median {statistics.median(dk):.2f} ms, max {max(dk):.2f} ms; "
              f"new connection median {statistics.median(df):.2f} ms, max {max(df):.2f} ms")


if __name__ == "__main__":
    main()
