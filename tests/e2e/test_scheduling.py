"""Who goes first when GPUs are short: queue_settings.priority, then fair share between experiments (a
person's own server; people on a team server), then arrival. GPUs are declared with CAIRN_GPUS (this machine
has none); each job holds its GPU until the test lets it end."""
import os

import pytest

from conftest import wait_for

JOB = """command: 'while [ ! -e outputs/release ]; do sleep 0.05; done'
environment: {{image: python}}
resources: {{instance_type: Standard_NC6}}
experiment_name: {experiment}
{extra}"""


@pytest.fixture
def one_gpu(make_ws):
    return make_ws({"CAIRN_GPUS": "0", "CAIRN_LOCAL_SLOTS": "8"})


def submit(ws, name, experiment="exp", extra=""):
    ws.write(f"{name}.yml", JOB.format(experiment=experiment, extra=extra))
    ws.run("job", "create", "-f", f"{name}.yml", "-n", name, "-o", "none")


def release(ws, name):
    """Lets job `name` end: a file in its own outputs, the only place of this machine it sees."""
    path = os.path.join(ws.home, "runs", name, "artifacts", "outputs")
    wait_for(lambda: os.path.isdir(path), what=f"{name}'s outputs folder")
    open(os.path.join(path, "release"), "w").close()


def started_order(ws, names):
    """The order in which `names` started, by their start times."""
    jobs = [ws.job(n) for n in names]
    return [j["name"] for j in sorted(jobs, key=lambda j: j["start_time"])]


def test_a_high_priority_job_goes_before_earlier_ones(one_gpu):
    ws = one_gpu
    submit(ws, "holder")
    ws.wait_status("holder", "Running")
    submit(ws, "low", extra="queue_settings: {priority: low}\n")
    submit(ws, "medium")
    submit(ws, "high", extra="queue_settings: {priority: high, job_tier: spot}\n")
    for n in ("low", "medium", "high"):
        assert ws.job(n)["status"] == "Queued", n
    assert ws.job("high")["queue_settings"] == {"priority": "high", "job_tier": "spot"}
    for ahead, nxt in (("holder", "high"), ("high", "medium"), ("medium", "low")):
        release(ws, ahead)
        ws.wait_status(nxt, "Running")
    release(ws, "low")
    ws.wait_status("low", "Completed")
    assert started_order(ws, ["high", "medium", "low"]) == ["high", "medium", "low"]


def test_fair_share_lets_a_quiet_experiment_pass_a_busy_ones_queue(one_gpu):
    # The busy experiment has run a job and queued three more; a job of a quiet experiment queued after
    # them goes next, since its experiment has used nothing.
    ws = one_gpu
    submit(ws, "busy0", "busy")
    ws.wait_status("busy0", "Running")
    for i in (1, 2, 3):
        submit(ws, f"busy{i}", "busy")
    submit(ws, "quiet0", "quiet")
    release(ws, "busy0")
    ws.wait_status("quiet0", "Running")
    assert ws.job("busy1")["status"] == "Queued"
    for n in ("quiet0", "busy1", "busy2", "busy3"):
        release(ws, n)
    for n in ("busy1", "busy2", "busy3"):
        ws.wait_status(n, "Completed")
    assert started_order(ws, ["quiet0", "busy1", "busy2", "busy3"])[0] == "quiet0"
