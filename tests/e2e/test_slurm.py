"""The Slurm compute against a real two-node Slurm cluster started by the harness (tests/slurm/cluster.sh).

Both nodes are slurmd daemons on this machine; the suite runs in a private network namespace, so the
cluster's and the jobs' traffic stays on loopback.
"""
import json
import os
import re
import signal
import subprocess
import time

import pytest

from conftest import SlurmCluster, pids_mentioning, wait_for

PYTHON = "/usr/bin/python3"

DDP = """
import os, torch, torch.distributed as dist
print("ranks", os.environ["RANK"], os.environ["NODE_RANK"], os.environ["LOCAL_RANK"], os.environ["WORLD_SIZE"],
      os.environ["SLURM_JOB_ID"], os.environ["SLURM_NODEID"], flush=True)
dist.init_process_group("gloo")
t = torch.tensor([float(dist.get_rank() + 1)])
dist.all_reduce(t)
print("all_reduce", t.item(), flush=True)
dist.destroy_process_group()
"""


def make_compute(ws, cluster, name="hpc", extra=""):
    ws.write(f"{name}.yml", f"""
$schema: https://azuremlschemas.azureedge.net/latest/amlCompute.schema.json
name: {name}
type: slurm
max_instances: 2
slurm:
  conf: {cluster.conf}
  mpirun_options: [--mca, btl, "self,tcp", --mca, btl_tcp_if_include, lo, --mca, oob_tcp_if_include, lo]
{extra}
""")
    return ws.json("compute", "create", "-f", f"{name}.yml")


def write_job(ws, command, rest="", compute="hpc", file="job.yml"):
    if not os.path.isdir(os.path.join(ws.dir, "src")):
        ws.write("src/README", "a stand-in code folder\n")
    return ws.write(file, f"""
$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
code: src
command: {command}
environment: azureml:AzureML-pytorch-1.13@latest
compute: azureml:{compute}
{rest}
""")


def slurm_id(ws, name):
    with open(os.path.join(ws.home, "runs", name, "slurm_job_id")) as f:
        return f.read().strip()


def in_squeue(cluster, sid):
    p = cluster.run("squeue", "-h", "-j", sid, "-o", "%T")
    return p.returncode == 0 and p.stdout.strip() in ("PENDING", "RUNNING", "COMPLETING", "CONFIGURING")


def rank_log(ws, name, rank):
    with open(os.path.join(ws.home, "runs", name, "artifacts", "user_logs", f"std_log_process_{rank}.txt")) as f:
        return f.read()


def test_compute_commands_and_a_command_job_on_slurm(ws, slurm):
    ws.write("src/hello.py", "print('hello')\n")
    c = make_compute(ws, slurm)
    assert c["type"] == "slurm" and c["backend"] == "slurm" and c["slurm"]["conf"] == slurm.conf
    listed = {x["name"]: x for x in ws.json("compute", "list")}
    assert listed["hpc"]["max_instances"] == 2 and "local" in listed
    updated = ws.json("compute", "update", "-n", "hpc", "--max-instances", "2", "--sbatch-option=--comment=cairn")
    assert updated["slurm"]["sbatch_options"] == ["--comment=cairn"] and updated["slurm"]["conf"] == slurm.conf

    path = write_job(ws, f"'{PYTHON} hello.py; echo job $SLURM_JOB_ID node $AZUREML_CR_NODE_RANK of $AZUREML_NODE_COUNT'")
    p = ws.run("job", "create", "-f", path, "--stream", timeout=60)
    name = re.search(r"RunId: (\S+)", p.stdout).group(1)
    job = ws.job(name)
    assert job["status"] == "Completed", p.stdout
    sid = slurm_id(ws, name)
    assert f"job {sid} node 0 of 1" in p.stdout and "hello" in p.stdout
    statuses = [h["status"] for h in job["status_history"]]
    assert statuses.index("Queued") < statuses.index("Running") < statuses.index("Completed")
    assert any(f"Slurm as job {sid}" in h["reason"] for h in job["status_history"])
    # Slurm ran it: its own records say so.
    script = open(os.path.join(ws.home, "runs", name, "slurm_job.sh")).read()
    assert "#SBATCH --nodes=1" in script and "#SBATCH --comment=cairn" in script
    wait_for(lambda: "COMPLETED" in slurm.run("sacct", "-c", "-X", "-n", "-P", "-j", sid, "-o", "State").stdout,
             what="sacct to record the job")

    # A job asking for more nodes than the compute allows is refused at submission.
    path = write_job(ws, "true", "resources: {instance_count: 3}", file="big.yml")
    p = ws.run("job", "create", "-f", path, check=False)
    assert p.returncode != 0 and "allows at most 2 (max_instances)" in p.stderr
    # A compute whose cluster cannot be reached is refused at creation.
    ws.write("bad.yml", "name: nowhere\ntype: slurm\nslurm: {conf: /nonexistent/slurm.conf}\n")
    p = ws.run("compute", "create", "-f", "bad.yml", check=False)
    assert p.returncode != 0 and "slurm.conf: no such file /nonexistent/slurm.conf" in p.stderr
    assert "nowhere" not in [x["name"] for x in ws.json("compute", "list")]


def test_two_node_pytorch_and_mpi_jobs_on_slurm(ws, slurm):
    ws.write("src/ddp.py", DDP)
    make_compute(ws, slurm)
    path = write_job(ws, f"{PYTHON} ddp.py", """
resources: {instance_count: 2}
distribution: {type: pytorch, process_count_per_instance: 2}
environment_variables: {GLOO_SOCKET_IFNAME: lo}
""")
    p = ws.run("job", "create", "-f", path, "--stream", "--all-ranks", timeout=180)
    name = re.search(r"RunId: (\S+)", p.stdout).group(1)
    assert ws.job(name)["status"] == "Completed", p.stdout
    sid = slurm_id(ws, name)
    for rank in range(4):
        log = rank_log(ws, name, rank)
        assert "all_reduce 10.0" in log
        r, node, local, world, job_id, slurm_node = re.search(r"ranks (.*)", log).group(1).split()
        assert (r, node, local, world, job_id) == (str(rank), str(rank // 2), str(rank % 2), "4", sid)
        assert slurm_node == str(rank // 2)  # node ranks are Slurm's node ids
    # One node supervisor ran on each node of the allocation.
    sysdir = os.path.join(ws.home, "runs", name, "artifacts", "system_logs")
    assert sorted(f for f in os.listdir(sysdir) if f.startswith("node_")) == ["node_0.json", "node_1.json"]

    # MPI: Cairn's mpirun, inside the two-node allocation, with the compute's transport options.
    ws.write("src/allreduce.py", "from mpi4py import MPI\nc = MPI.COMM_WORLD\n"
                                 "print('allreduce', c.allreduce(c.Get_rank() + 1), 'size', c.Get_size(), flush=True)\n")
    path = write_job(ws, f"{PYTHON} allreduce.py", """
resources: {instance_count: 2}
distribution: {type: mpi, process_count_per_instance: 2}
""", file="mpi.yml")
    p = ws.run("job", "create", "-f", path, "--stream", timeout=120)
    name = re.search(r"RunId: (\S+)", p.stdout).group(1)
    assert ws.job(name)["status"] == "Completed", p.stdout
    for rank in range(4):
        assert "allreduce 10 size 4" in rank_log(ws, name, rank)
    assert "#SBATCH --ntasks-per-node=2" in open(os.path.join(ws.home, "runs", name, "slurm_job.sh")).read()


def test_amlcompute_is_a_slurm_partition_on_a_workspace_with_a_slurm_connection(make_ws, slurm):
    ws = make_ws({"CAIRN_SLURM_CONF": slurm.conf})
    c = ws.json("compute", "create", "-n", "cpu-cluster", "--type", "amlcompute", "--max-instances", "2")
    assert c["backend"] == "slurm"
    path = write_job(ws, "'echo on slurm job $SLURM_JOB_ID'", compute="cpu-cluster")
    p = ws.run("job", "create", "-f", path, "--stream", timeout=60)
    name = re.search(r"RunId: (\S+)", p.stdout).group(1)
    assert f"on slurm job {slurm_id(ws, name)}" in p.stdout
    # Without the connection, the same compute is a slice of this machine.
    plain = make_ws()
    assert plain.json("compute", "create", "-n", "cpu-cluster", "--type", "amlcompute")["backend"] == "local"


def test_cancel_and_timeout_stop_every_rank_on_every_node(ws, slurm):
    make_compute(ws, slurm)
    # A duration of its own, so that only this job's ranks match (a `sleep 300` elsewhere on the machine, the
    # developer's own included, once failed this test).
    path = write_job(ws, "'echo up $RANK; sleep 300.71'", """
resources: {instance_count: 2}
distribution: {type: pytorch, process_count_per_instance: 1}
""")
    name = ws.json("job", "create", "-f", path)["name"]
    ws.wait_status(name, "Running", timeout=30)
    wait_for(lambda: all(os.path.exists(os.path.join(ws.home, "runs", name, "artifacts", "user_logs",
                                                     f"std_log_process_{r}.txt")) and "up" in rank_log(ws, name, r)
                         for r in range(2)), what="both ranks to start")
    sid = slurm_id(ws, name)
    ws.run("job", "cancel", "-n", name)
    job = ws.wait_status(name, "Canceled", timeout=30)
    assert job["status"] == "Canceled"
    wait_for(lambda: not in_squeue(slurm, sid), timeout=20, what="Slurm to finish the job")
    # Every rank on every node is gone (a step's last processes may take Slurm's KillWait to be reaped; a
    # rank still sleeping after that has escaped and is reported with its ancestry).
    try:
        wait_for(lambda: subprocess.run(["pgrep", "-f", "sleep 300.71"], capture_output=True).stdout == b"",
                 timeout=8, what="the ranks to be gone")
    except AssertionError:
        left = subprocess.run(["pgrep", "-f", "sleep 300.71"], capture_output=True, text=True).stdout.split()
        ps = subprocess.run(["ps", "-o", "pid,ppid,pgid,sid,etime,args", "-p", ",".join(left)], capture_output=True,
                            text=True).stdout
        raise AssertionError(f"ranks left behind:\n{ps}")

    path = write_job(ws, "'echo up; sleep 300'", "limits: {timeout: 3}", file="slow.yml")
    name = ws.json("job", "create", "-f", path)["name"]
    job = ws.wait_status(name, ["Canceled", "Failed"], timeout=40)
    assert job["status"] == "Canceled" and "limits.timeout of 3 s" in job["status_reason"], job
    script = open(os.path.join(ws.home, "runs", name, "slurm_job.sh")).read()
    assert "#SBATCH --time=2" in script  # Slurm's own limit, a minute behind Cairn's


def test_a_pending_job_says_why_it_waits_and_cancels_before_it_runs(ws, slurm):
    make_compute(ws, slurm, extra="  sbatch_options: [--exclusive]")
    hold = write_job(ws, "'sleep 300'", "resources: {instance_count: 2}", file="hold.yml")
    first = ws.json("job", "create", "-f", hold)["name"]
    ws.wait_status(first, "Running", timeout=30)
    second = ws.json("job", "create", "-f", hold)["name"]
    job = wait_for(lambda: (j := ws.job(second))["status"] == "Queued" and "pending (Resources)" in j["status_reason"] and j,
                   timeout=20, what="the second job to say why it waits")
    assert f"Slurm job {slurm_id(ws, second)} is pending (Resources)" in job["status_reason"]
    ws.run("job", "cancel", "-n", second)
    assert ws.wait_status(second, "Canceled")["status_reason"] == "canceled before Slurm started it"
    ws.run("job", "cancel", "-n", first)
    ws.wait_status(first, "Canceled", timeout=30)


def test_gpu_sizes_get_gres_and_slurms_gpus_and_a_third_pends(ws, slurm):
    # n1 has 2 GPUs (gres, stand-in devices): two 1-GPU jobs get one each, a third waits for Slurm.
    make_compute(ws, slurm)
    gpu = write_job(ws, "'echo CVD=[$CUDA_VISIBLE_DEVICES]; sleep 300'", "resources: {instance_type: Standard_NC6s_v3}",
                    file="gpu.yml")
    names = [ws.json("job", "create", "-f", gpu)["name"] for _ in range(3)]
    for n in names[:2]:
        ws.wait_status(n, "Running", timeout=30)
    seen = []
    for n in names[:2]:
        log = os.path.join(ws.home, "runs", n, "artifacts", "user_logs", "std_log.txt")
        text = wait_for(lambda: os.path.exists(log) and "CVD=[" in open(log).read() and open(log).read(),
                        timeout=20, what="the job's devices")
        seen.append(text.split("CVD=[")[1].split("]")[0])
        with open(os.path.join(ws.home, "runs", n, "slurm_job.sh")) as f:
            assert "#SBATCH --gres=gpu:1\n" in f.read()
    assert sorted(seen) == ["0", "1"]  # Slurm's own CUDA_VISIBLE_DEVICES, disjoint
    job = wait_for(lambda: (j := ws.job(names[2]))["status"] == "Queued" and "pending (Resources)" in j["status_reason"] and j,
                   timeout=20, what="the third job to wait for Slurm's GPUs")
    assert f"Slurm job {slurm_id(ws, names[2])} is pending (Resources)" in job["status_reason"]
    for n in names:
        ws.run("job", "cancel", "-n", n)
    for n in names:
        ws.wait_status(n, "Canceled", timeout=30)
    # An instance type of the compute also gives Slurm its CPUs and memory.
    make_compute(ws, slurm, name="shaped", extra="instance_types:\n  one: {gpus: 1, cpus: 2, memory: 1Gi}\n"
                                               "default_instance_type: one")
    shaped = write_job(ws, "'echo CVD=[$CUDA_VISIBLE_DEVICES] cpus=$SLURM_CPUS_PER_TASK'", compute="shaped", file="shaped.yml")
    name = ws.json("job", "create", "-f", shaped)["name"]
    ws.wait_status(name, "Completed", timeout=60)
    with open(os.path.join(ws.home, "runs", name, "slurm_job.sh")) as f:
        script = f.read()
    for line in ("#SBATCH --gres=gpu:1\n", "#SBATCH --cpus-per-task=2\n", "#SBATCH --mem=1G\n"):
        assert line in script, script
    with open(os.path.join(ws.home, "runs", name, "artifacts", "user_logs", "std_log.txt")) as f:
        assert "cpus=2" in f.read()


def test_server_restart_while_slurm_jobs_run(ws, slurm):
    make_compute(ws, slurm)
    path = write_job(ws, "'echo started; sleep 4; echo finished'")
    name = ws.json("job", "create", "-f", path)["name"]
    ws.wait_status(name, "Running", timeout=30)
    pid = ws.server_info()["pid"]
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z",
             what="the server to die")
    # The next command starts a new server, which finds the Slurm job where it was.
    assert ws.job(name)["status"] in ("Running", "Finalizing", "Completed")
    job = ws.wait_status(name, "Completed", timeout=30)
    with open(os.path.join(ws.home, "runs", name, "artifacts", "user_logs", "std_log.txt")) as f:
        assert f.read() == "started\nfinished\n"
    assert job["status"] == "Completed"


def test_sweep_trials_are_slurm_jobs(ws, slurm):
    make_compute(ws, slurm)
    ws.write("src/trial.py", "import sys\nprint('x', sys.argv[1])\n")
    ws.write("sweep.yml", f"""
$schema: https://azuremlschemas.azureedge.net/latest/sweepJob.schema.json
type: sweep
compute: azureml:hpc
trial:
  code: src
  command: {PYTHON} trial.py ${{{{search_space.x}}}}
  environment: azureml:AzureML-sklearn-1.0@latest
search_space:
  x: {{type: choice, values: [1, 2, 3]}}
sampling_algorithm: grid
objective: {{goal: maximize, primary_metric: acc}}
limits: {{max_total_trials: 3, max_concurrent_trials: 2}}
""")
    name = ws.json("job", "create", "-f", "sweep.yml")["name"]
    ws.wait_status(name, "Completed", timeout=90)
    trials = ws.json("job", "list", "-p", name)
    assert len(trials) == 3 and all(t["status"] == "Completed" for t in trials)
    ids = {slurm_id(ws, t["name"]) for t in trials}
    assert len(ids) == 3  # each trial its own Slurm job


def test_a_node_failing_mid_job_fails_the_job(make_ws):
    if os.geteuid() != 0:
        pytest.skip("the test Slurm cluster runs its daemons as root")
    cluster = SlurmCluster(2)  # its own: this test takes a node down
    try:
        ws = make_ws()
        make_compute(ws, cluster)
        path = write_job(ws, "'echo up $NODE_RANK; sleep 300.72'", """
resources: {instance_count: 2}
distribution: {type: pytorch, process_count_per_instance: 1}
""")
        name = ws.json("job", "create", "-f", path)["name"]
        ws.wait_status(name, "Running", timeout=30)
        wait_for(lambda: all(os.path.exists(os.path.join(ws.home, "runs", name, "artifacts", "user_logs",
                                                         f"std_log_process_{r}.txt")) for r in range(2)),
                 what="both ranks to start")
        os.kill(cluster.slurmd_pid("n2"), signal.SIGKILL)
        job = ws.wait_status(name, ["Failed", "Canceled", "Completed"], timeout=90)
        assert job["status"] == "Failed", job
        assert job["status_reason"].startswith(f"Slurm ended job {slurm_id(ws, name)} ("), job["status_reason"]
        assert "without a cancel from Cairn" in job["status_reason"]
    finally:
        # The dead node's processes have no slurmd to stop them: the cluster's teardown does.
        for pid, cmd in pids_mentioning(cluster.dir):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        cluster.stop()
        subprocess.run(["pkill", "-9", "-f", "sleep 300.72"], capture_output=True)  # this test's ranks only


def test_nodes_without_the_workspace_filesystem_get_the_run_over_http(ws, slurm):
    # staging: http makes every node fetch the run from the server and send everything back, as on a
    # cluster whose nodes do not mount the workspace (here they could, so the test can look at both sides).
    make_compute(ws, slurm, extra="  staging: http")
    ws.write("src/work.py", """
import os, sys, time
print("cwd", os.getcwd(), flush=True)
os.makedirs("outputs", exist_ok=True)
open("outputs/result.txt", "w").write("rank " + os.environ.get("RANK", "-") + " done\\n")
open("logs/progress.log", "a").write("step 1\\n")
print("first", flush=True)
time.sleep(float(sys.argv[1]))
print("second", flush=True)
""")
    path = write_job(ws, f"{PYTHON} work.py 3")
    name = ws.json("job", "create", "-f", path)["name"]
    ws.wait_status(name, "Running", timeout=30)
    log = os.path.join(ws.home, "runs", name, "artifacts", "user_logs", "std_log.txt")
    # The log streams while the job runs: the first line is in the workspace before the job ends.
    wait_for(lambda: os.path.exists(log) and "first" in open(log).read(), timeout=10, what="the first line")
    assert "second" not in open(log).read() and ws.job(name)["status"] == "Running"
    job = ws.wait_status(name, ["Completed", "Failed"], timeout=30)
    assert job["status"] == "Completed", job
    text = open(log).read()
    # It ran in a node-local copy, not in the workspace's run folder.
    cwd = re.search(r"cwd (\S+)", text).group(1)
    assert cwd.startswith("/tmp/cairn-run-" + name) and not os.path.exists(cwd)
    assert text.endswith("first\nsecond\n")
    ws.run("job", "download", "-n", name, "-p", "dl")
    assert open(os.path.join(ws.dir, "dl", "artifacts", "outputs", "result.txt")).read() == "rank - done\n"
    assert open(os.path.join(ws.dir, "dl", "artifacts", "logs", "progress.log")).read() == "step 1\n"

    # Two nodes, each with its own copy: every rank's log comes back.
    path = write_job(ws, f"{PYTHON} work.py 0", """
resources: {instance_count: 2}
distribution: {type: pytorch, process_count_per_instance: 1}
""", file="two.yml")
    p = ws.run("job", "create", "-f", path, "--stream", "--all-ranks", timeout=60)
    name = re.search(r"RunId: (\S+)", p.stdout).group(1)
    assert ws.job(name)["status"] == "Completed", p.stdout
    for rank in range(2):
        assert "second" in rank_log(ws, name, rank)
    sysdir = os.path.join(ws.home, "runs", name, "artifacts", "system_logs")
    assert {"node_0.json", "node_1.json"} <= set(os.listdir(sysdir))


def test_a_job_on_a_slurm_node_is_an_unprivileged_guest_too(ws, slurm):
    from test_sandbox import PROBE  # what a job tries from inside (test_sandbox.py), on the host path
    make_compute(ws, slurm)
    ws.write("src/probe.py", PROBE)
    ws.write("data/train.csv", "a,b\n1,2\n")
    path = write_job(ws, f"{PYTHON} probe.py {ws.home} {ws.server_info()['pid']} ${{{{inputs.data}}}}",
                     rest="inputs:\n  data: {type: uri_folder, path: ./data}\n")
    p = ws.run("job", "create", "-f", path, "--stream", timeout=90)
    name = re.search(r"RunId: (\S+)", p.stdout).group(1)
    assert ws.job(name)["status"] == "Completed", p.stdout
    log = open(os.path.join(ws.home, "runs", name, "artifacts/user_logs/std_log.txt")).read()
    got = json.loads(log.strip().splitlines()[-1])
    assert got["uid"] >= 1500000000, got["uid"]
    assert got["cap_eff"] == "0000000000000000" and got["no_new_privs"] == "1" and got["seccomp"] == "2"
    assert got["pid"] == 2 and not got["server_visible"], got["processes"]
    for door in ("token", "token_via_parent_root", "job_json", "umount", "nsenter", "userns", "ptrace", "remount",
                 "input_write", "cgroup_escape"):
        assert got[door] is False, door
    for env in got["environs"]:
        assert ws.token() not in env
