"""GPUs as a resource on this machine, declared with CAIRN_GPUS (this machine has none): exact holdings,
waiting with a reason, hiding from jobs that asked for none, disjoint instances, and holdings that survive
a server killed outright."""
import os
import signal
import time

import pytest

from conftest import wait_for

GPU_JOB = """command: 'echo CVD=[$CUDA_VISIBLE_DEVICES]; while [ ! -e outputs/release ]; do sleep 0.05; done'
environment: {{image: python}}
resources: {{instance_type: Standard_NC12s_v3}}
"""


@pytest.fixture
def gws(make_ws):
    return make_ws({"CAIRN_GPUS": "0,1,2,3", "CAIRN_LOCAL_SLOTS": "2"})


def submit_gpu_job(ws, name):
    ws.write(f"{name}.yml", GPU_JOB.format())
    ws.run("job", "create", "-f", f"{name}.yml", "-n", name)


def release(ws, name):
    """Lets job `name` end: a file in its own outputs, the only place of this machine it sees."""
    open(os.path.join(ws.home, "runs", name, "artifacts", "outputs", "release"), "w").close()


def seen_devices(ws, name):
    path = os.path.join(ws.home, "runs", name, "artifacts", "user_logs", "std_log.txt")
    text = wait_for(lambda: os.path.exists(path) and "CVD=" in open(path).read() and open(path).read(),
                    what=f"{name}'s first line")
    return text.split("CVD=[", 1)[1].split("]", 1)[0]


def holders(ws):
    return {g["index"]: g["job"] for g in ws.json("compute", "show", "-n", "local")["gpus"]}


def test_two_gpu_jobs_hold_disjoint_pairs_and_a_third_waits_naming_gpus(gws):
    for name in ("ga", "gb", "gc"):
        submit_gpu_job(gws, name)
    gws.wait_status("ga", "Running")
    gws.wait_status("gb", "Running")
    pairs = {seen_devices(gws, "ga"), seen_devices(gws, "gb")}
    assert pairs == {"0,1", "2,3"}
    gc = gws.job("gc")
    assert gc["status"] == "Queued"
    assert gc["status_reason"] == "waiting for 2 GPUs on local (4 of 4 in use by ga, gb)"
    assert sorted(holders(gws).values()) == ["ga", "ga", "gb", "gb"]
    assert gws.job("ga")["gpus"].startswith(seen_devices(gws, "ga") + " (")

    # A CPU job runs beside them (GPU jobs take no CPU slot) and sees no GPU, and job show says why.
    gws.write("cpu.yml", "command: 'echo CVD=[${CUDA_VISIBLE_DEVICES-unset}]'\nenvironment: {image: python}\n")
    out = gws.run("job", "create", "-f", "cpu.yml", "-n", "cpu", "--stream").stdout
    assert "CVD=[]" in out
    assert any("asked for no GPU" in n for n in gws.job("cpu").get("notes", []))

    # The third starts the moment GPUs are free, with the freed pair.
    freed = seen_devices(gws, "ga")
    release(gws, "ga")
    gws.wait_status("gc", "Running")
    assert seen_devices(gws, "gc") == freed
    for name in ("gb", "gc"):
        release(gws, name)
        gws.wait_status(name, "Completed")
    assert not any(holders(gws).values())


def test_a_size_with_more_gpus_than_the_machine_is_refused_with_how_many_it_has(gws):
    gws.write("big.yml", "command: 'true'\nenvironment: {image: python}\nresources: {instance_type: Standard_ND96asr_v4}\n")
    p = gws.run("job", "create", "-f", "big.yml", check=False)
    assert p.returncode == 2
    assert "Standard_ND96asr_v4 asks for 8 GPUs per instance but compute 'local' has 4 GPUs" in p.stderr
    assert gws.json("job", "list") == []  # nothing half-written
    # validate says the same, and a size nobody knows is a note, not an error.
    assert "has 4 GPUs" in gws.run("job", "validate", "-f", "big.yml", check=False).stderr
    gws.write("odd.yml", "command: 'true'\nenvironment: {image: python}\nresources: {instance_type: gpu-large}\n")
    gws.run("job", "create", "-f", "odd.yml", "-n", "odd", "--stream")
    assert any("'gpu-large' is neither an instance type" in n for n in gws.job("odd")["notes"])


def test_a_distributed_jobs_instances_get_disjoint_gpus_and_one_process_per_gpu(gws):
    gws.write("dist.yml", """command: 'echo rank=$RANK local=$LOCAL_RANK node=$NODE_RANK CVD=[$CUDA_VISIBLE_DEVICES]'
environment: {image: python}
distribution: {type: pytorch}
resources: {instance_count: 2, instance_type: Standard_NC12s_v3}
""")
    gws.run("job", "create", "-f", "dist.yml", "-n", "dist", "--stream")
    logs = os.path.join(gws.home, "runs", "dist", "artifacts", "user_logs")
    lines = sorted(open(os.path.join(logs, f)).read().strip() for f in os.listdir(logs) if f.startswith("std_log_process"))
    # process_count_per_instance left out: one process per GPU, 2 per instance.
    assert lines == ["rank=0 local=0 node=0 CVD=[0,1]", "rank=1 local=1 node=0 CVD=[0,1]",
                     "rank=2 local=0 node=1 CVD=[2,3]", "rank=3 local=1 node=1 CVD=[2,3]"]
    assert gws.job("dist")["gpus"].startswith("0,1,2,3 ")


def test_gpu_holdings_are_rebuilt_after_the_server_is_killed(gws):
    for name in ("ka", "kb", "kc"):
        submit_gpu_job(gws, name)
    gws.wait_status("kb", "Running")
    before = holders(gws)
    pid = gws.server_info()["pid"]
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z",
             what="the server to die")
    assert holders(gws) == before  # the next command starts a new server, which reads the records
    assert gws.job("kc")["status"] == "Queued"
    assert "waiting for 2 GPUs" in gws.job("kc")["status_reason"]
    freed = seen_devices(gws, "ka")
    release(gws, "ka")
    gws.wait_status("ka", "Completed")
    gws.wait_status("kc", "Running")
    assert seen_devices(gws, "kc") == freed  # never two jobs on one GPU
    for name in ("kb", "kc"):
        release(gws, name)
        gws.wait_status(name, "Completed")


def test_a_computes_size_and_instance_types_give_its_jobs_gpus(gws):
    gws.run("compute", "create", "--name", "gpu-cluster", "--type", "amlcompute", "--size", "Standard_NC12",
            "--max-instances", "4")
    gws.write("on.yml", "command: 'echo CVD=[$CUDA_VISIBLE_DEVICES]'\nenvironment: {image: python}\ncompute: azureml:gpu-cluster\n")
    gws.run("job", "create", "-f", "on.yml", "-n", "sized", "--stream")
    assert seen_devices(gws, "sized") == "0,1"
    gws.write("k8s.yml", "name: k8s\ntype: amlcompute\nmax_instances: 2\ninstance_types:\n"
                         "  one: {gpus: 1, cpus: 4, memory: 16Gi}\n  three: {gpus: 3}\ndefault_instance_type: one\n")
    gws.run("compute", "create", "-f", "k8s.yml")
    gws.write("k.yml", "command: 'echo CVD=[$CUDA_VISIBLE_DEVICES]'\nenvironment: {image: python}\ncompute: azureml:k8s\n")
    gws.run("job", "create", "-f", "k.yml", "-n", "default-shape", "--stream")
    assert seen_devices(gws, "default-shape") == "0"
    gws.run("job", "create", "-f", "k.yml", "-n", "three", "--set", "resources.instance_type=three", "--stream")
    assert seen_devices(gws, "three") == "0,1,2"


def test_a_machine_without_gpus_sets_nothing(make_ws):
    ws = make_ws({"CAIRN_GPUS": "none"})
    ws.write("cpu.yml", "command: 'echo CVD=[${CUDA_VISIBLE_DEVICES-unset}]'\nenvironment: {image: python}\n")
    assert "CVD=[unset]" in ws.run("job", "create", "-f", "cpu.yml", "-n", "plain", "--stream").stdout
    assert "notes" not in ws.job("plain") or not any("GPU" in n for n in ws.job("plain")["notes"])
    assert ws.json("compute", "show", "-n", "local")["gpus"] == []


def test_system_metrics_of_a_cpu_burning_job_land_in_its_run(make_ws):
    from conftest import CAIRN
    fake = os.path.join(os.path.dirname(CAIRN), "libfake_nvml.so")
    if not os.path.exists(fake):
        pytest.skip(f"the stand-in NVML library is not built ({fake}); `make build` builds it")
    ws = make_ws({"CAIRN_GPUS": "0,1", "CAIRN_SYSTEM_METRICS_SECONDS": "1", "CAIRN_NVML_LIBRARY": fake})
    ws.write("burn.yml", "command: 'timeout 3.5 sh -c \"while :; do :; done\"; true'\nenvironment: {image: python}\n"
                         "resources: {instance_type: Standard_NC6s_v3}\n")
    ws.run("job", "create", "-f", "burn.yml", "-n", "burn", "--stream")
    metrics = ws.json("job", "metrics", "-n", "burn")
    cpu = [p["value"] for p in metrics["system/cpu_utilization_percentage"]]
    assert len(cpu) >= 2
    # One busy process of a machine with os.cpu_count() CPUs.
    assert max(cpu) > 0.3 * 100 / os.cpu_count(), cpu
    assert all(p["value"] > 0 for p in metrics["system/system_memory_usage_megabytes"])
    # The GPU it holds, through NVML (here the stand-in's 40%), under MLflow's names; none for GPUs it does not.
    assert {p["value"] for p in metrics["system/gpu_0_utilization_percentage"]} == {40}
    assert "system/gpu_1_utilization_percentage" not in metrics
    # And through the MLflow API, as the mlflow client reads them.
    import urllib.request
    info = ws.server_info()
    req = urllib.request.Request(f"{info['url']}/api/2.0/mlflow/metrics/get-history?run_id=burn&metric_key=system/cpu_utilization_percentage",
                                 headers={"Authorization": f"Bearer {ws.token()}"})
    with urllib.request.urlopen(req) as r:
        import json as _json
        assert len(_json.load(r)["metrics"]) == len(cpu)


def gpu_job(ws, name, size, command="true", timeout=None):
    limits = f"limits: {{timeout: {timeout}}}\n" if timeout else ""
    ws.write(f"{name}.yml", f"command: '{command}'\nenvironment: {{image: python}}\n"
                            f"resources: {{instance_type: {size}}}\n{limits}")
    ws.run("job", "create", "-f", f"{name}.yml", "-n", name)


def end_all(ws, names):
    """After a failure: cancels the jobs a test left running or waiting, so it reports itself, not "processes left
    behind" (a release file is not enough: a queued job's outputs are not yet its own)."""
    for name in names:
        ws.run("job", "cancel", "-n", name, check=False)


def scheduler_pass(ws, name):
    """Returns once the scheduler has made a pass after everything that happened before the call: a CPU
    job submitted now has started and ended (the scheduler takes events in order), so a job that could
    have started in that pass would have."""
    ws.write(f"{name}.yml", "command: 'true'\nenvironment: {image: python}\n")
    ws.run("job", "create", "-f", f"{name}.yml", "-n", name)
    ws.wait_status(name, "Completed")


def test_a_gpu_job_passed_eight_times_is_reserved_and_only_jobs_that_cannot_delay_it_pass(gws):
    try:
        # One GPU held by a job whose limits.timeout ends it within 62 s of its start at the latest (60 s and the
        # 2 s grace); it starts after `submitted`.
        hold = "while [ ! -e outputs/release ]; do sleep 0.05; done"
        submitted = time.time()
        gpu_job(gws, "h", "Standard_NC6s_v3", hold, timeout=60)
        gws.wait_status("h", "Running")
        gpu_job(gws, "big", "Standard_NC24s_v3", hold.replace("release-h", "release-big"))  # all four: waits for h
        # Eight 1-GPU jobs pass it (they fit the three free GPUs)...
        for n in range(8):
            gpu_job(gws, f"s{n}", "Standard_NC6s_v3")
            gws.wait_status(f"s{n}", "Completed")
        assert gws.job("big")["status"] == "Queued"
        # ...and then it holds the GPUs that free up. A 1-GPU job with no timeout could delay it: it waits, and
        # so does one whose timeout (120 s) ends it only after h's does.
        gpu_job(gws, "later", "Standard_NC6s_v3")
        gpu_job(gws, "long", "Standard_NC6s_v3", timeout=120)
        # A job whose timeout ends it before h's can pass (backfill), and a CPU job needs no GPU at all.
        gpu_job(gws, "short", "Standard_NC6s_v3", timeout=5)
        gws.write("cpu.yml", "command: 'true'\nenvironment: {image: python}\n")
        gws.run("job", "create", "-f", "cpu.yml", "-n", "cpu")
        gws.wait_status("short", "Completed")
        gws.wait_status("cpu", "Completed")
        scheduler_pass(gws, "witness")
        assert gws.job("later")["status"] == "Queued" and gws.job("long")["status"] == "Queued"
        reason = gws.job("later")["status_reason"]
        read = time.time()
        assert reason.startswith("waiting behind big, which needs 4 GPUs on local and goes first (8 later jobs have "
                                 "passed it); a job whose limits.timeout ends it within "), reason
        assert reason.endswith(" s (when the running jobs' timeouts free its GPUs) may pass it"), reason
        # What is left of h's 62 s, however long the eight took (a sanitizer build is slower): the reason was
        # written before it was read, and h started after it was submitted; 1 s for rounding.
        within = int(reason.split(" within ")[1].split(" s ")[0])
        assert 62 - (read - submitted) - 1 <= within <= 62, (reason, read - submitted)
        # h ends: the reserved job gets all four GPUs before the two that waited behind it.
        release(gws, "h")
        gws.wait_status("big", "Running")
        assert sorted(holders(gws).values()) == ["big"] * 4
        assert gws.job("later")["status"] == "Queued"
        release(gws, "big")
        for name in ("big", "later", "long"):
            gws.wait_status(name, "Completed")
    finally:
        end_all(gws, ("h", "big", "later", "long", "short"))


def test_with_no_timeout_on_the_running_jobs_no_gpu_job_passes_the_reserved_one(gws):
    try:
        hold = "while [ ! -e outputs/release ]; do sleep 0.05; done"
        gpu_job(gws, "h", "Standard_NC6s_v3", hold)  # no timeout: when its GPU frees is not known
        gws.wait_status("h", "Running")
        gpu_job(gws, "big", "Standard_NC24s_v3", hold.replace("release-h", "release-big"))
        for n in range(8):
            gpu_job(gws, f"s{n}", "Standard_NC6s_v3")
            gws.wait_status(f"s{n}", "Completed")
        gpu_job(gws, "short", "Standard_NC6s_v3", timeout=5)
        gws.write("cpu.yml", "command: 'true'\nenvironment: {image: python}\n")
        gws.run("job", "create", "-f", "cpu.yml", "-n", "cpu")
        gws.wait_status("cpu", "Completed")
        scheduler_pass(gws, "witness")
        short = gws.job("short")
        assert short["status"] == "Queued"
        assert short["status_reason"] == ("waiting behind big, which needs 4 GPUs on local and goes first (8 later "
                                          "jobs have passed it); the jobs holding GPUs have no limits.timeout, so no "
                                          "job that needs GPUs passes it")
        release(gws, "h")
        gws.wait_status("big", "Running")
        release(gws, "big")
        gws.wait_status("short", "Completed")
    finally:
        end_all(gws, ("h", "big", "short"))
