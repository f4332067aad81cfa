"""End-to-end harness: the real `cairn` binary, a real server on port 0, a temporary workspace.

Every test gets its own CAIRN_HOME; the CLI starts the server on demand exactly as it does for users.
At teardown the server is stopped and the test fails if any process of the workspace is left behind.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

CAIRN = os.environ.get("CAIRN_BIN") or os.path.join(os.path.dirname(__file__), "../../build/cairn")
CAIRN = os.path.abspath(CAIRN)
SHARED = os.path.abspath(os.environ.get("CAIRN_SHARED") or os.path.join(os.path.dirname(__file__), "../../../shared"))
CONFORMANCE = os.path.join(SHARED, "conformance")


def pids_mentioning(text):
    """Processes whose command line or environment mentions `text` (our workspace path)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = f.read().decode(errors="replace")
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state == "Z":
            continue
        if text in cmd or text in env:
            found.append((int(pid), cmd))
    return found


def job_namespace_pids(home, name):
    """The host pid of every process in a running job's PID namespace, keyed by its pid in there.

    A job's processes see their own PID namespace (the sandbox): a pid a job writes down is one of that
    namespace; its holder (PID 1 there) is named in the supervisor's log."""
    log = os.path.join(home, "runs", name, "artifacts", "system_logs", "cairn_supervisor.log")
    holder = wait_for(lambda: re.search(r"sandbox: holder (\d+)", open(log).read()) if os.path.exists(log) else None,
                      what=f"{name}'s sandbox")
    ns = os.readlink(f"/proc/{holder.group(1)}/ns/pid")
    found = {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{p}/ns/pid") != ns:
                continue
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("NSpid:"):
                        found[int(line.split()[-1])] = int(p)
        except OSError:
            pass
    return found


def wait_for(predicate, timeout=20.0, interval=0.02, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Workspace:
    def __init__(self, home, env_extra=None):
        self.home = home
        self.env = dict(os.environ)
        self.env.pop("CAIRN_WORKSPACE", None)
        self.env.pop("CAIRN_OUTPUT", None)
        self.env["CAIRN_HOME"] = home
        self.env["CAIRN_KILL_GRACE_MS"] = "2000"
        if env_extra:
            self.env.update(env_extra)
        self.dir = os.path.join(home, "..", "files")
        os.makedirs(self.dir, exist_ok=True)
        self.dir = os.path.abspath(self.dir)

    def run(self, *args, check=True, timeout=120, input=None, cwd=None):
        p = subprocess.run([CAIRN, *args], env=self.env, capture_output=True, text=True, timeout=timeout,
                           input=input, cwd=cwd or self.dir)
        if check and p.returncode != 0:
            raise AssertionError(f"cairn {' '.join(args)} exited {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}")
        return p

    def json(self, *args):
        return json.loads(self.run(*args, "-o", "json").stdout)

    def write(self, rel, text, mode=None):
        path = os.path.join(self.dir, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
        if mode:
            os.chmod(path, mode)
        return path

    def job(self, name):
        return self.json("job", "show", "-n", name)

    def wait_status(self, name, statuses, timeout=30):
        if isinstance(statuses, str):
            statuses = [statuses]
        return wait_for(lambda: (j := self.job(name))["status"] in statuses and j, timeout,
                        interval=0.05, what=f"job {name} to reach {statuses}")

    def server_info(self):
        with open(os.path.join(self.home, "server.json")) as f:
            return json.load(f)

    def token(self):
        with open(os.path.join(self.home, "token")) as f:
            return f.read().strip()

    def stop(self):
        subprocess.run([CAIRN, "server", "stop"], env=self.env, capture_output=True, timeout=30)


@pytest.fixture
def make_ws():
    roots = []
    spaces = []

    def make(env_extra=None):
        root = tempfile.mkdtemp(prefix="cairn-e2e-")
        roots.append(root)
        ws = Workspace(os.path.join(root, "home"), env_extra)
        spaces.append(ws)
        return ws

    yield make
    for ws in spaces:
        ws.stop()
    leftovers = []
    for root in roots:
        try:
            wait_for(lambda: not pids_mentioning(root), timeout=15, what="the workspace's processes to end")
        except AssertionError:
            leftovers += pids_mentioning(root)
            for pid, _ in pids_mentioning(root):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        shutil.rmtree(root, ignore_errors=True)
    assert not leftovers, f"processes left behind: {leftovers}"


@pytest.fixture
def ws(make_ws):
    return make_ws()


SLURM_CLUSTER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "slurm", "cluster.sh")


class SlurmCluster:
    """A real Slurm cluster on this machine (tests/slurm/cluster.sh): munged, slurmctld, slurmd per node."""

    def __init__(self, nodes=2):
        self.dir = tempfile.mkdtemp(prefix="cairn-slurm-")
        p = subprocess.run([SLURM_CLUSTER, "start", self.dir, str(nodes)], capture_output=True, text=True, timeout=60)
        if p.returncode != 0:
            self.stop()
            raise AssertionError(f"the test Slurm cluster did not start:\n{p.stderr}")
        self.conf = p.stdout.strip()
        self.env = dict(os.environ, SLURM_CONF=self.conf)

    def run(self, *args):
        return subprocess.run(list(args), env=self.env, capture_output=True, text=True, timeout=30)

    def slurmd_pid(self, node):
        with open(os.path.join(self.dir, f"slurmd.{node}.pid")) as f:
            return int(f.read())

    def stop(self):
        subprocess.run([SLURM_CLUSTER, "stop", self.dir], capture_output=True, timeout=60)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def slurm():
    if os.geteuid() != 0:
        pytest.skip("the test Slurm cluster runs its daemons as root")
    cluster = SlurmCluster(2)
    yield cluster
    cluster.stop()
