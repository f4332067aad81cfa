"""Who goes first when GPUs are short: queue_settings.priority, then fair share between experiments (a
person's own server; people on a team server), then arrival. GPUs are declared with CAIRN_GPUS (this machine
has none); each job holds its GPU until the test lets it end."""
import json
import os
import urllib.request

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


TRAIN = """\
import json, os, time
import cairn_mlflow as mlflow
ckpt = "outputs/ckpt.json"
step = json.load(open(ckpt))["step"] if os.path.exists(ckpt) else 0
attempt = int(os.environ["CAIRN_JOB_ATTEMPT"])
print("attempt", attempt, "from step", step, flush=True)
while step < 20:
    mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
    step += 1
    with open(ckpt + ".tmp", "w") as f:
        json.dump({"step": step}, f)
    os.replace(ckpt + ".tmp", ckpt)
    while attempt == 1 and step == 10:  # the first attempt stops here until it is preempted
        time.sleep(0.05)
print("done at step", step, flush=True)
"""


def test_a_high_priority_job_preempts_a_spot_job_which_resumes_from_its_checkpoint(make_ws):
    ws = make_ws({"CAIRN_GPUS": "0", "CAIRN_LOCAL_SLOTS": "8", "CAIRN_KILL_GRACE_MS": "2000"})
    ws.write("src/train.py", TRAIN)
    ws.write("spot.yml", """\
code: src
command: python3 train.py
environment: {image: python}
resources: {instance_type: Standard_NC6}
queue_settings: {job_tier: spot}
""")
    ws.run("job", "create", "-f", "spot.yml", "-n", "spot", "-o", "none")
    ckpt = os.path.join(ws.home, "runs", "spot", "artifacts", "outputs", "ckpt.json")
    wait_for(lambda: os.path.exists(ckpt) and json.load(open(ckpt))["step"] == 10, timeout=60,
             what="the spot job's tenth checkpoint")
    submit(ws, "urgent", extra="queue_settings: {priority: high}\n")
    ws.wait_status("urgent", "Running", timeout=30)
    spot = ws.job("spot")
    assert spot["status"] == "Queued", spot
    preempted = [r["reason"] for r in spot["status_history"] if r["status"] == "Queued"][-1]
    assert "preempted for urgent" in preempted and "attempt 2" in preempted, spot["status_history"]
    release(ws, "urgent")
    ws.wait_status("urgent", "Completed")
    done = ws.wait_status("spot", ["Completed", "Failed", "Canceled"], timeout=60)
    log = open(os.path.join(ws.home, "runs", "spot", "artifacts", "user_logs", "std_log.txt")).read()
    assert done["status"] == "Completed", (done, log)
    assert "attempt 1 from step 0" in log and "attempt 2 from step 10" in log, log
    assert done["properties"]["attempt"] == 2
    # One MLflow run, its steps continuing across the two attempts: 0..19, each once.
    req = urllib.request.Request(ws.server_info()["url"] + "/api/v1/jobs/spot/metrics?key=loss",
                                 headers={"Authorization": "Bearer " + ws.token()})
    points = json.load(urllib.request.urlopen(req))["metrics"]["loss"]
    assert sorted(p["step"] for p in points) == list(range(20)), points


RETRIED = """command: 'echo attempt $CAIRN_JOB_ATTEMPT; {body}'
environment: {{image: python}}
properties:
  cairn.max_retries: "{retries}"
  cairn.retry_exit_codes: "3"
"""


def test_a_failed_job_that_asked_for_retries_is_tried_again_in_its_run(make_ws):
    ws = make_ws()
    # Fails with 3 the first time, then succeeds: one retry, in the same run.
    ws.write("flaky.yml", RETRIED.format(retries=2, body='[ "$CAIRN_JOB_ATTEMPT" = 1 ] && exit 3; echo fine'))
    ws.run("job", "create", "-f", "flaky.yml", "-n", "flaky", "-o", "none")
    done = ws.wait_status("flaky", ["Completed", "Failed"], timeout=60)
    assert done["status"] == "Completed", done
    assert done["properties"]["attempt"] == 2 and done["properties"]["retries"] == 1
    assert any("retry 1 of 2" in r["reason"] for r in done["status_history"]), done["status_history"]
    log = open(os.path.join(ws.home, "runs", "flaky", "artifacts", "user_logs", "std_log.txt")).read()
    assert "attempt 1" in log and "attempt 2" in log and "fine" in log, log
    # Always failing: tried 1 + max_retries times, then Failed.
    ws.write("bad.yml", RETRIED.format(retries=1, body="exit 3"))
    ws.run("job", "create", "-f", "bad.yml", "-n", "bad", "-o", "none")
    done = ws.wait_status("bad", ["Completed", "Failed"], timeout=60)
    assert done["status"] == "Failed" and done["properties"]["attempt"] == 2, done
    # An exit code it did not name is not retried.
    ws.write("other.yml", RETRIED.format(retries=3, body="exit 4"))
    ws.run("job", "create", "-f", "other.yml", "-n", "other", "-o", "none")
    done = ws.wait_status("other", ["Completed", "Failed"], timeout=60)
    assert done["status"] == "Failed" and "attempt" not in done["properties"], done
    # A bad value is refused where it is written.
    ws.write("wrong.yml", RETRIED.format(retries="many", body="true"))
    p = ws.run("job", "create", "-f", "wrong.yml", check=False)
    assert p.returncode == 2
    assert "wrong.yml:4:22: error: properties.cairn.max_retries: expected a number of retries from 0 to 100, " \
           "got 'many'" in p.stderr, p.stderr
