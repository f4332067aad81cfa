"""Distributed jobs on the local compute: every "instance" runs on this machine with its own node rank.

Real frameworks where Debian has them: torch.distributed (gloo) and mpi4py; TensorFlow is not packaged,
so a script checks the TF_CONFIG each process sees. The suite runs in a private network namespace
(tests/e2e/isolated.sh), so the ranks' rendezvous stays on loopback.
"""
import json
import os
import re
import time

from conftest import pids_mentioning, wait_for

PYTHON = "/usr/bin/python3"

DDP = """
import os, torch, torch.distributed as dist
print("env", {k: os.environ[k] for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "NODE_RANK",
                                         "MASTER_ADDR", "MASTER_PORT", "AZ_BATCH_MASTER_NODE")}, flush=True)
dist.init_process_group("gloo")
t = torch.tensor([float(dist.get_rank() + 1)])
dist.all_reduce(t)
print("all_reduce", t.item(), flush=True)
if dist.get_rank() == 0:
    open("outputs/sum.txt", "w").write(str(t.item()))
dist.destroy_process_group()
"""

MPI = """
from mpi4py import MPI
c = MPI.COMM_WORLD
print("allreduce", c.allreduce(c.Get_rank() + 1), "rank", c.Get_rank(), "size", c.Get_size(), flush=True)
"""

TF = """
import json, os
tf = json.loads(os.environ["TF_CONFIG"])
print("tf_config", json.dumps(tf, sort_keys=True), flush=True)
"""


def write_job(ws, rest, script="main.py", body="print('hi')\n", command=None):
    ws.write(f"src/{script}", body)
    return ws.write("job.yml", f"""
$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
code: src
command: {command or f'{PYTHON} {script}'}
environment: azureml:AzureML-pytorch-1.13@latest
{rest}
""")


def rank_log(ws, name, rank):
    with open(os.path.join(ws.home, "runs", name, "artifacts", "user_logs", f"std_log_process_{rank}.txt")) as f:
        return f.read()


def test_pytorch_gloo_all_reduce_over_two_instances_of_two_processes(ws):
    path = write_job(ws, """
resources:
  instance_count: 2
distribution:
  type: pytorch
  process_count_per_instance: 2
""", "ddp.py", DDP)
    p = ws.run("job", "create", "-f", path, "--stream", "--all-ranks", timeout=180)
    name = re.search(r"RunId: (\S+)", p.stdout).group(1)
    job = ws.job(name)
    assert job["status"] == "Completed", p.stdout
    assert job["distribution"] == {"type": "pytorch", "process_count_per_instance": 2}
    seen = {}
    for rank in range(4):
        log = rank_log(ws, name, rank)
        assert "all_reduce 10.0" in log, log  # 1 + 2 + 3 + 4 from four processes
        env = eval(re.search(r"env (\{.*\})", log).group(1))
        seen[rank] = env
        assert env["RANK"] == str(rank) and env["WORLD_SIZE"] == "4"
        assert env["LOCAL_RANK"] == str(rank % 2) and env["NODE_RANK"] == str(rank // 2)
        assert env["LOCAL_WORLD_SIZE"] == "2" and env["MASTER_ADDR"] == "127.0.0.1"
        assert env["AZ_BATCH_MASTER_NODE"] == f"127.0.0.1:{env['MASTER_PORT']}"
        assert f"[rank {rank}] all_reduce 10.0" in p.stdout
    assert len({e["MASTER_PORT"] for e in seen.values()}) == 1
    assert sorted(job["log_files"]) == [f"user_logs/std_log_process_{r}.txt" for r in range(4)]
    # Every rank's log and rank 0's output come down with the job.
    ws.run("job", "download", "-n", name, "-p", "dl")
    base = os.path.join(ws.dir, "dl", "artifacts")
    for rank in range(4):
        assert os.path.exists(os.path.join(base, "user_logs", f"std_log_process_{rank}.txt"))
    with open(os.path.join(base, "outputs", "sum.txt")) as f:
        assert f.read() == "10.0"


def test_mpi4py_allreduce_with_four_ranks(ws):
    path = write_job(ws, """
resources: {instance_count: 2}
distribution: {type: mpi, process_count_per_instance: 2}
""", "allreduce.py", MPI)
    p = ws.run("job", "create", "-f", path, "--stream", timeout=120)
    name = re.search(r"RunId: (\S+)", p.stdout).group(1)
    assert ws.job(name)["status"] == "Completed", p.stdout
    # --stream follows rank 0 unless asked for all.
    assert "Streaming user_logs/std_log_process_0.txt" in p.stdout
    assert "allreduce 10 rank 0 size 4" in p.stdout and "rank 1 size" not in p.stdout
    for rank in range(4):
        assert f"allreduce 10 rank {rank} size 4" in rank_log(ws, name, rank)


def test_tensorflow_processes_see_their_tf_config(ws):
    path = write_job(ws, """
resources: {instance_count: 2}
distribution: {type: tensorflow, worker_count: 2, parameter_server_count: 1}
""", "tf.py", TF)
    p = ws.run("job", "create", "-f", path, "--stream", timeout=60)
    name = re.search(r"RunId: (\S+)", p.stdout).group(1)
    assert ws.job(name)["status"] == "Completed", p.stdout
    configs = [json.loads(re.search(r"tf_config (.*)", rank_log(ws, name, r)).group(1)) for r in range(3)]
    cluster = configs[0]["cluster"]
    assert len(cluster["worker"]) == 2 and len(cluster["ps"]) == 1
    assert all(c["cluster"] == cluster for c in configs)
    assert [c["task"] for c in configs] == [{"type": "worker", "index": 0}, {"type": "worker", "index": 1},
                                            {"type": "ps", "index": 0}]
    assert all(c["environment"] == "cloud" for c in configs)
    addresses = cluster["worker"] + cluster["ps"]
    assert len(set(addresses)) == 3 and all(a.startswith("127.0.0.1:") for a in addresses)


def test_one_failing_rank_fails_the_job_and_stops_the_others(ws):
    path = write_job(ws, """
resources: {instance_count: 2}
distribution: {type: pytorch, process_count_per_instance: 2}
""", command="""'if [ "$RANK" = 2 ]; then sleep 0.3; echo rank two fails; exit 3; fi; echo waiting $RANK; sleep 60'""")
    started = time.time()
    name = ws.json("job", "create", "-f", path)["name"]
    job = ws.wait_status(name, ["Failed"], timeout=30)
    assert time.time() - started < 20  # the others did not run their 60 s
    assert job["status_reason"].startswith("process 2 exited with code 3"), job["status_reason"]
    assert "the other processes were stopped" in job["status_reason"]
    assert "rank two fails" in rank_log(ws, name, 2)
    # No rank is left running (the harness also checks every process of the workspace at teardown). Only
    # this workspace's processes count: a machine-wide pgrep also found other tests' and other users' sleeps.
    assert [cmd for _, cmd in pids_mentioning(ws.home) if "sleep 60" in cmd] == []


def test_cancel_and_timeout_stop_every_rank(ws):
    path = write_job(ws, """
resources: {instance_count: 2}
distribution: {type: pytorch, process_count_per_instance: 2}
""", command="'echo up $RANK; sleep 120'")
    name = ws.json("job", "create", "-f", path)["name"]
    ws.wait_status(name, "Running")
    wait_for(lambda: all("up" in rank_log(ws, name, r) for r in range(4)), what="every rank to start")
    ws.run("job", "cancel", "-n", name)
    assert ws.wait_status(name, "Canceled")["status"] == "Canceled"

    path = write_job(ws, """
resources: {instance_count: 2}
distribution: {type: mpi, process_count_per_instance: 1}
limits: {timeout: 2}
""", command="'echo up; sleep 120'")
    name = ws.json("job", "create", "-f", path)["name"]
    job = ws.wait_status(name, ["Canceled", "Failed"], timeout=30)
    assert job["status"] == "Canceled" and "limits.timeout" in job["status_reason"], job
