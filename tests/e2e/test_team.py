"""A team server shared by real Unix users: roles, whose job is whose, tokens, the audit log.

The test makes throwaway accounts (useradd), starts `cairn server --team` as root on a workspace of its
own, and runs the real CLI, curl and the MLflow REST API as each person through setpriv; the server
knows them only by the uid the kernel gives it for their socket connection. Everything it made is
removed afterwards.
"""
import glob
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid

import pytest

from conftest import CAIRN, wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("useradd") or not shutil.which("setpriv"),
                                reason="needs root, useradd and setpriv to act as several people")


class Person:
    def __init__(self, name, home, workspace):
        self.name = name
        self.home = home
        self.workspace = workspace
        pw = subprocess.run(["id", "-u", name], capture_output=True, text=True, check=True)
        self.uid = int(pw.stdout)
        self.gid = int(subprocess.run(["id", "-g", name], capture_output=True, text=True, check=True).stdout)

    def env(self):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": self.home, "LANG": "C.UTF-8"}
        if self.workspace:
            env["CAIRN_WORKSPACE"] = self.workspace
        return env

    def as_me(self, argv):
        if self.uid == 0:
            return argv
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--init-groups", "--", *argv]

    def cairn(self, *args, check=True):
        p = subprocess.run(self.as_me([CAIRN, *args]), env=self.env(), capture_output=True, text=True,
                           timeout=60, cwd=self.home)
        if check and p.returncode != 0:
            raise AssertionError(f"{self.name}: cairn {' '.join(args)} exited {p.returncode}\n{p.stdout}\n{p.stderr}")
        return p

    def json(self, *args):
        return json.loads(self.cairn(*args, "-o", "json").stdout)

    def curl(self, method, path, body=None, headers=(), url=None):
        """An HTTP request through the team socket (or to `url`), as this person: (status, body)."""
        argv = ["curl", "-s", "-o", "-", "-w", "\n%{http_code}", "-X", method]
        if url is None:
            argv += ["--unix-socket", os.path.join(self.workspace, "cairn.sock"), "http://localhost" + path]
        else:
            argv += [url + path]
        for h in headers:
            argv += ["-H", h]
        if body is not None:
            argv += ["-H", "Content-Type: application/json", "--data-binary", json.dumps(body)]
        p = subprocess.run(self.as_me(argv), env=self.env(), capture_output=True, text=True, timeout=30)
        out, _, code = p.stdout.rpartition("\n")
        return int(code), out


@pytest.fixture
def team():
    """A team server on a fresh workspace, and four people: two Contributors, a Reader, and one with no
    role. Yields (workspace, people by role); removes the accounts and the workspace afterwards."""
    tag = uuid.uuid4().hex[:6]
    base = tempfile.mkdtemp(prefix="cairn-team-")
    os.chmod(base, 0o755)
    workspace = os.path.join(base, "ws")
    made = []
    server = None
    try:
        people = {}
        for role in ("carl", "dana", "rita", "eve"):
            name = f"ct{tag}{role}"
            home = os.path.join(base, role)
            subprocess.run(["useradd", "-M", "-N", "-d", home, "-s", "/bin/sh", name], check=True,
                           capture_output=True)
            made.append(name)
            os.makedirs(home)
            p = Person(name, home, workspace)
            os.chown(home, p.uid, p.gid)
            people[role] = p
        root_home = os.path.join(base, "root")
        os.makedirs(root_home)
        people["root"] = Person("root", root_home, workspace)
        env = dict(os.environ)
        env.pop("CAIRN_HOME", None)
        env["CAIRN_KILL_GRACE_MS"] = "2000"
        server = subprocess.Popen([CAIRN, "server", "--team", "--home", workspace], env=env,
                                  stdout=subprocess.DEVNULL, stderr=open(os.path.join(base, "server.log"), "w"))
        wait_for(lambda: os.path.exists(os.path.join(workspace, "cairn.sock")), what="the team server's socket")
        yield workspace, people
    finally:
        if server:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
        for name in made:
            subprocess.run(["userdel", name], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


JOB = """\
$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
command: {command}
environment: azureml:AzureML-sklearn-1.0-ubuntu20.04-py38-cpu@latest
compute: local
"""


def submit(person, command, name):
    path = os.path.join(person.home, f"{name}.yml")
    with open(path, "w") as f:
        f.write(JOB.format(command=command))
    os.chown(path, person.uid, person.gid)
    return person.json("job", "create", "-f", path, "--name", name)


def test_each_person_is_named_by_the_kernel_and_given_their_role(team):
    workspace, p = team
    root = p["root"]
    # The workspace is the server's: others reach only its socket.
    assert oct(os.stat(workspace).st_mode & 0o777) == "0o711"
    for f in ("token", "cairn.db", "access.db"):
        assert os.stat(os.path.join(workspace, f)).st_mode & 0o077 == 0, f
    assert root.json("whoami")["role"] == "Owner"
    # Someone on the machine with no role is told which command an Owner runs.
    eve = p["eve"].cairn("job", "list", check=False)
    assert eve.returncode != 0
    assert f"cairn role assignment create --assignee {p['eve'].name} --role Reader" in eve.stderr, eve.stderr
    assert p["eve"].json("whoami") == {"name": p["eve"].name, "role": "", "via": "socket", "team": True}
    for who, role in (("carl", "Contributor"), ("dana", "Contributor"), ("rita", "Reader")):
        a = root.json("role", "assignment", "create", "--assignee", p[who].name, "--role", role)
        assert a["role_definition_name"] == role
    # Whatever a client claims, the server names the uid that connected.
    assert p["carl"].json("whoami")["name"] == p["carl"].name
    code, out = p["dana"].curl("GET", "/api/v1/whoami", headers=[f"X-Remote-User: {p['carl'].name}"])
    assert code == 200 and json.loads(out)["name"] == p["dana"].name
    listed = {a["assignee"]: a["role_definition_name"] for a in p["rita"].json("role", "assignment", "list")}
    assert listed[p["carl"].name] == "Contributor" and listed["root"] == "Owner"
    # A Reader sees, but does not submit: 403 with the role named.
    code, out = p["rita"].curl("POST", "/api/v1/jobs", {"spec": {"command": "true"}})
    assert code == 403 and "is a Reader" in out and "--role Contributor" in out, out
    # Only an Owner assigns roles.
    code, out = p["carl"].curl("POST", "/api/v1/role-assignments", {"assignee": p["carl"].name, "role": "Owner"})
    assert code == 403, out
    # A datastore names a folder of the machine, which the server reads on people's behalf: Owners only.
    code, out = p["carl"].curl("POST", "/api/v1/datastores", {"name": "mine", "type": "local", "path": "/root"})
    assert code == 403 and "Owner" in out, out
    root.cairn("datastore", "create", "-n", "shared", "-p", workspace)
    created = root.json("audit", "list", "--action", "datastore.create")
    assert created[0]["target"] == "shared" and created[0]["who"] == "root"


def test_a_contributor_changes_only_their_own(team):
    workspace, p = team
    root, carl, dana = p["root"], p["carl"], p["dana"]
    for who in ("carl", "dana"):
        root.cairn("role", "assignment", "create", "--assignee", p[who].name, "--role", "Contributor")
    root.cairn("role", "assignment", "create", "--assignee", p["rita"].name, "--role", "Reader")
    cj = submit(carl, "sleep 120", "carls-job")
    dj = submit(dana, "echo from dana", "danas-job")
    assert cj["creation_context"]["created_by"] == carl.name
    assert dj["creation_context"]["created_by"] == dana.name
    # Everyone with a role reads everything; --created-by picks one person's.
    names = {j["name"] for j in p["rita"].json("job", "list", "--created-by", carl.name)}
    assert names == {"carls-job"}
    assert {j["name"] for j in dana.json("job", "list", "--created-by", "me")} == {"danas-job"}
    # The MLflow run records its creator.
    code, out = p["rita"].curl("GET", "/api/2.0/mlflow/runs/get?run_id=carls-job")
    run = json.loads(out)["run"]
    assert run["info"]["user_id"] == carl.name
    assert {"key": "mlflow.user", "value": carl.name} in run["data"]["tags"]
    # Dana cannot cancel, archive, tag or delete Carl's job or run: CLI, REST, MLflow.
    for args in (("job", "cancel", "-n", "carls-job"), ("job", "archive", "-n", "carls-job"),
                 ("job", "update", "-n", "carls-job", "--set", "tags.x=1")):
        r = dana.cairn(*args, check=False)
        assert r.returncode != 0 and f"created by {carl.name}" in r.stderr, (args, r.stderr)
    code, out = dana.curl("PATCH", "/api/v1/jobs/carls-job", {"tags": {"x": "1"}})
    assert code == 403, out
    code, out = dana.curl("POST", "/api/2.0/mlflow/runs/set-tag", {"run_id": "carls-job", "key": "x", "value": "1"})
    assert code == 403 and f"created by {carl.name}" in out, out
    code, out = dana.curl("POST", "/api/2.0/mlflow/runs/delete", {"run_id": "carls-job"})
    assert code == 403, out
    code, out = dana.curl("PUT", "/api/2.0/mlflow-artifacts/artifacts/0/carls-job/artifacts/x.txt")
    assert code == 403, out
    # A change is never a GET: an authenticated GET of a mutating MLflow route is 405.
    code, out = carl.curl("GET", "/api/2.0/mlflow/runs/delete?run_id=carls-job")
    assert code == 405, out
    shown = carl.json("job", "show", "-n", "carls-job")
    assert shown["status"] in ("Queued", "Starting", "Preparing", "Running"), (shown["status_reason"], shown.get("error"))
    # Carl tags his own run; a Reader cannot tag anything.
    code, out = carl.curl("POST", "/api/2.0/mlflow/runs/set-tag", {"run_id": "carls-job", "key": "x", "value": "1"})
    assert code == 200, out
    code, out = p["rita"].curl("POST", "/api/2.0/mlflow/runs/set-tag", {"run_id": "danas-job", "key": "x", "value": "1"})
    assert code == 403 and "is a Reader" in out, out
    # An Owner changes anyone's.
    root.cairn("job", "cancel", "-n", "carls-job")
    wait_for(lambda: root.json("job", "show", "-n", "carls-job")["status"] == "Canceled", timeout=30,
             what="carl's job to be canceled")
    # The audit log says who did it, and only Owners read it.
    audit = root.json("audit", "list", "--action", "job.cancel")
    assert audit[0]["who"] == "root" and audit[0]["target"] == "carls-job" and audit[0]["via"] == "socket"
    submits = {(e["who"], e["target"]) for e in root.json("audit", "list", "--action", "job.submit")}
    assert {(carl.name, "carls-job"), (dana.name, "danas-job")} <= submits
    assert dana.cairn("audit", "list", check=False).returncode != 0


def test_role_changes_and_revoked_tokens_take_effect_at_once(team):
    workspace, p = team
    root, carl = p["root"], p["carl"]
    root.cairn("role", "assignment", "create", "--assignee", carl.name, "--role", "Contributor")
    assert carl.cairn("job", "list").returncode == 0
    # A token, shown once, acts as Carl over TCP; its secret is nowhere in the workspace.
    made = carl.json("token", "create", "--description", "laptop", "--expires-in", "7")
    secret = made["token"]
    assert secret.startswith("cairn_pat_")
    with open(os.path.join(workspace, "access.db"), "rb") as f:
        assert secret.encode() not in f.read()
    with open(os.path.join(workspace, "server.json")) as f:
        url = json.load(f)["url"]
    code, out = carl.curl("GET", "/api/v1/whoami", headers=[f"Authorization: Bearer {secret}"], url=url)
    assert code == 200 and json.loads(out) == {"name": carl.name, "role": "Contributor", "via": "access-token",
                                                "team": True}
    # A token makes no other token.
    code, out = carl.curl("POST", "/api/v1/tokens", {}, headers=[f"Authorization: Bearer {secret}"], url=url)
    assert code == 403, out
    # Others do not see it, or revoke it.
    assert p["dana"].json("token", "list") == []
    assert p["dana"].cairn("token", "revoke", "--id", made["id"], check=False).returncode != 0
    listed = carl.json("token", "list")
    assert [t["id"] for t in listed] == [made["id"]] and "token" not in listed[0]
    # The role goes: the next request is refused, through the socket and through the token.
    root.cairn("role", "assignment", "delete", "--assignee", carl.name)
    r = carl.cairn("job", "list", check=False)
    assert r.returncode != 0 and "has no role" in r.stderr
    code, out = carl.curl("GET", "/api/v1/jobs", headers=[f"Authorization: Bearer {secret}"], url=url)
    assert code == 403, out
    root.cairn("role", "assignment", "create", "--assignee", carl.name, "--role", "Reader")
    assert carl.cairn("job", "list").returncode == 0
    # Revoked: refused at the very next request.
    carl.cairn("token", "revoke", "--id", made["id"])
    code, out = carl.curl("GET", "/api/v1/jobs", headers=[f"Authorization: Bearer {secret}"], url=url)
    assert code == 401, out
    # The last Owner cannot be removed.
    r = root.cairn("role", "assignment", "delete", "--assignee", "root", check=False)
    assert r.returncode != 0 and "without an Owner" in r.stderr
    actions = [e["action"] for e in root.json("audit", "list")]
    for a in ("role.assign", "role.delete", "token.create", "token.revoke"):
        assert a in actions, (a, actions)


PTRACE = ("import ctypes, sys; libc = ctypes.CDLL(None, use_errno=True); "
          "r = libc.ptrace(16, int(sys.argv[1]), 0, 0); print('attached' if r == 0 else 'refused', ctypes.get_errno())")


def test_jobs_run_as_their_owner_and_cannot_reach_each_other(team):
    from conftest import job_namespace_pids
    workspace, p = team
    root, carl, dana = p["root"], p["carl"], p["dana"]
    for who in ("carl", "dana"):
        root.cairn("role", "assignment", "create", "--assignee", p[who].name, "--role", "Contributor")
    submit(carl, "id -un > outputs/who.txt; id -G >> outputs/who.txt; echo carls-secret > outputs/secret.txt; "
                 "sleep 120", "carls-job")
    secret = os.path.join(workspace, "runs", "carls-job", "artifacts", "outputs", "secret.txt")
    wait_for(lambda: os.path.exists(secret), timeout=30, what="carl's job to write its outputs")
    with open(os.path.join(workspace, "runs", "carls-job", "artifacts", "outputs", "who.txt")) as f:
        name, groups = f.read().split("\n", 1)
    assert name == carl.name and str(carl.gid) in groups.split()
    # Its files are carl's, and its processes are carl's.
    assert os.stat(secret).st_uid == carl.uid
    pids = job_namespace_pids(workspace, "carls-job")
    sleeper = next(pid for pid in pids.values()
                   if open(f"/proc/{pid}/cmdline", "rb").read().startswith(b"sleep"))
    uids = next(line for line in open(f"/proc/{sleeper}/status") if line.startswith("Uid:")).split()[1:]
    assert uids == [str(carl.uid)] * 4
    # Dana's shell cannot signal it, trace it, read its environment (its MLflow token) or its files.
    for argv in (["kill", "-0", str(sleeper)], ["cat", f"/proc/{sleeper}/environ"], ["cat", secret],
                 ["ls", os.path.join(workspace, "runs")]):
        r = subprocess.run(dana.as_me(argv), capture_output=True, text=True, env=dana.env())
        assert r.returncode != 0, (argv, r.stdout)
        assert "carls-secret" not in r.stdout and "MLFLOW_TRACKING_TOKEN" not in r.stdout
    r = subprocess.run(dana.as_me(["/usr/bin/python3", "-c", PTRACE, str(sleeper)]), capture_output=True, text=True)
    assert r.stdout.startswith("refused"), r.stdout + r.stderr
    # Nor can Dana's job: it runs as Dana, and Carl's run folder is not in its world.
    dj = submit(dana, f"id -un; cat {secret} || echo no-secret; kill -0 {sleeper} || echo no-kill; "
                      f"/usr/bin/python3 -c \"{PTRACE}\" {sleeper}", "danas-job")
    done = wait_for(lambda: (j := root.json("job", "show", "-n", "danas-job"))["status"] in ("Completed", "Failed")
                    and j, timeout=60, what="dana's job to end")
    log = open(os.path.join(workspace, "runs", "danas-job", "artifacts", "user_logs", "std_log.txt")).read()
    assert done["status"] == "Completed", log
    assert log.split("\n")[0] == dana.name, log
    assert "no-secret" in log and "no-kill" in log and "carls-secret" not in log, log
    assert "attached" not in log, log
    root.cairn("job", "cancel", "-n", "carls-job")
    wait_for(lambda: root.json("job", "show", "-n", "carls-job")["status"] == "Canceled", timeout=30,
             what="carl's job to be canceled")


def test_a_slurm_job_is_submitted_as_the_person_and_runs_as_them(team, slurm):
    # On a Slurm compute the batch job is the person's in Slurm's own books (squeue's user, and so
    # its accounting, limits and fair share), and its processes run as them on the node.
    workspace, p = team
    root, carl = p["root"], p["carl"]
    root.cairn("role", "assignment", "create", "--assignee", carl.name, "--role", "Contributor")
    compute = os.path.join(root.home, "hpc.yml")
    with open(compute, "w") as f:
        f.write(f"$schema: https://azuremlschemas.azureedge.net/latest/amlCompute.schema.json\n"
                f"name: hpc\ntype: slurm\nmax_instances: 2\nslurm:\n  conf: {slurm.conf}\n")
    root.cairn("compute", "create", "-f", compute)
    path = os.path.join(carl.home, "slurm.yml")
    with open(path, "w") as f:
        f.write(JOB.replace("compute: local", "compute: azureml:hpc").format(
            command="id -un; id -u; echo carls-output > outputs/out.txt"))
    os.chown(path, carl.uid, carl.gid)
    carl.json("job", "create", "-f", path, "--name", "carls-slurm-job")
    done = wait_for(lambda: (j := carl.json("job", "show", "-n", "carls-slurm-job"))["status"]
                    in ("Completed", "Failed", "Canceled") and j, timeout=90, what="the Slurm job to end")
    run = os.path.join(workspace, "runs", "carls-slurm-job")
    log = open(os.path.join(run, "artifacts", "user_logs", "std_log.txt")).read()
    assert done["status"] == "Completed", (done, log)
    assert log.split("\n")[:2] == [carl.name, str(carl.uid)], log
    with open(os.path.join(run, "slurm_job_id")) as f:
        sid = f.read().strip()
    q = slurm.run("squeue", "-h", "-t", "all", "-j", sid, "-o", "%u|%T")
    assert q.stdout.strip() == f"{carl.name}|COMPLETED", q.stdout + q.stderr
    # Its outputs came back to the run folder, which only the server reads; carl reads them through it.
    out = carl.cairn("job", "download", "-n", "carls-slurm-job", "--output-name", "default",
                     "--download-path", os.path.join(carl.home, "dl"))
    found = [os.path.join(d, f) for d, _, fs in os.walk(os.path.join(carl.home, "dl")) for f in fs]
    assert any(open(f).read() == "carls-output\n" for f in found), (out.stdout, found)
    # The node's Slurm output of a staged job (carl's file in /tmp): removed with what the test made.
    for f in glob.glob("/tmp/cairn-carls-slurm-job-*-slurm-*.txt"):
        os.unlink(f)


def test_a_job_over_its_owners_quota_waits_with_the_reason(team):
    workspace, p = team
    root, carl, dana = p["root"], p["carl"], p["dana"]
    for who in ("carl", "dana"):
        root.cairn("role", "assignment", "create", "--assignee", p[who].name, "--role", "Contributor")
    # Only an Owner sets quotas.
    refused = carl.cairn("quota", "set", "--assignee", carl.name, "--jobs", "5", check=False)
    assert refused.returncode != 0 and "Owner" in refused.stderr, refused.stderr
    q = root.json("quota", "set", "--assignee", carl.name, "--jobs", "1")
    assert q["jobs"] == 1 and q["gpus"] is None and q["compute"] == "local"
    assert [r["assignee"] for r in carl.json("quota", "list")] == [carl.name]
    submit(carl, "sleep 60", "carl-1")
    wait_for(lambda: root.json("job", "show", "-n", "carl-1")["status"] == "Running", timeout=30,
             what="carl's first job to run")
    submit(carl, "true", "carl-2")
    submit(dana, "true", "dana-1")
    wait_for(lambda: root.json("job", "show", "-n", "dana-1")["status"] == "Completed", timeout=30,
             what="dana's job, which no quota holds")
    waiting = root.json("job", "show", "-n", "carl-2")
    assert waiting["status"] == "Queued", waiting
    assert waiting["status_reason"] == f"{carl.name} uses 1 of the 1 running job their quota allows on local", waiting
    # Raised: it starts at once; the audit log has both changes.
    root.cairn("quota", "set", "--assignee", carl.name, "--jobs", "2")
    wait_for(lambda: root.json("job", "show", "-n", "carl-2")["status"] == "Completed", timeout=30,
             what="carl's second job once his quota allows it")
    actions = [e["action"] for e in root.json("audit", "list", "--action", "quota.set")]
    assert actions == ["quota.set", "quota.set"], actions
    root.cairn("quota", "delete", "--assignee", carl.name)
    assert root.json("quota", "list") == []
    root.cairn("job", "cancel", "-n", "carl-1")


@pytest.mark.skipif(os.path.exists("/var/lib/cairn"), reason="this machine has a team server's folder already")
def test_cairn_finds_the_machines_team_server_without_being_told(team):
    # `cairn server --team` with no --home serves /var/lib/cairn; a person's `cairn` with neither
    # CAIRN_HOME nor CAIRN_WORKSPACE finds it there, and the kernel names them to it.
    _, p = team
    env = dict(os.environ)
    env.pop("CAIRN_HOME", None)
    server = subprocess.Popen([CAIRN, "server", "--team"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: os.path.exists("/var/lib/cairn/cairn.sock"), what="the default team server's socket")
        root = Person("root", p["root"].home, None)
        carl = Person(p["carl"].name, p["carl"].home, None)
        assert root.json("whoami") == {"name": "root", "role": "Owner", "via": "socket", "team": True}
        root.cairn("role", "assignment", "create", "--assignee", carl.name, "--role", "Reader")
        assert carl.json("whoami")["name"] == carl.name
        assert carl.json("whoami")["role"] == "Reader"
        # Nothing private was started for carl: his home has no ~/.cairn.
        assert not os.path.exists(os.path.join(carl.home, ".cairn"))
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree("/var/lib/cairn", ignore_errors=True)


def test_the_studio_signs_in_as_the_person_who_asked(team):
    workspace, p = team
    root, carl, dana = p["root"], p["carl"], p["dana"]
    if not shutil.which("node") or not os.path.exists("/usr/bin/chromium"):
        pytest.skip("needs node and Debian's chromium (scripts/install-deps.sh)")
    for who in ("carl", "dana"):
        root.cairn("role", "assignment", "create", "--assignee", p[who].name, "--role", "Contributor")
    submit(carl, "sleep 120", "carls-job")
    submit(dana, "sleep 120", "danas-job")
    try:
        # Carl asks for a sign-in link through the socket: the studio then acts as Carl, and only as Carl.
        code, out = carl.curl("POST", "/api/v1/login-codes", {})
        assert code == 201, out
        browser = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "browser")
        cfg = {"login": json.loads(out)["url"] + "&next=/%23/jobs", "mine": "carls-job", "theirs": "danas-job"}
        r = subprocess.run(["node", os.path.join(browser, "team.mjs"), json.dumps(cfg)], capture_output=True,
                           text=True, timeout=120, cwd=browser)
        assert r.returncode == 0, r.stderr + r.stdout
        seen = json.loads(r.stdout.strip().splitlines()[-1])
        assert seen["whoami"]["name"] == carl.name and seen["whoami"]["via"] == "studio"
        assert seen["mine_rows"] == ["carls-job"], seen
        assert "mine=1" in seen["url"]
        assert seen["cancel_theirs"]["status"] == 403 and f"created by {dana.name}" in seen["cancel_theirs"]["body"]
        assert root.json("job", "show", "-n", "danas-job")["status"] != "Canceled"
    finally:
        for name in ("carls-job", "danas-job"):
            root.cairn("job", "cancel", "-n", name, check=False)
