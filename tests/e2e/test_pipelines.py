"""Pipeline jobs end to end: the real CLI and server, steps as real jobs, reuse across submissions,
failures, retries, cancel and a server killed mid-pipeline."""
import os
import re
import shutil
import signal
import time

import pytest
import yaml

from conftest import CONFORMANCE, wait_for

PY = "/usr/bin/python3"

PREP_COMPONENT = """\
$schema: https://azuremlschemas.azureedge.net/latest/commandComponent.schema.json
name: prep
version: "1"
type: command
inputs:
  raw: {type: uri_file}
  factor: {type: integer, default: 2}
outputs:
  clean: {type: uri_folder}
code: ./src
environment: {image: python:3.11}
command: %s prep.py ${{inputs.raw}} ${{outputs.clean}} ${{inputs.factor}}
""" % PY

PREP_PY = """\
import os, sys
raw, out, factor = sys.argv[1], sys.argv[2], int(sys.argv[3])
os.makedirs(out, exist_ok=True)
text = open(raw).read().strip()
open(os.path.join(out, "data.txt"), "w").write(text.upper() + "\\n")
print("prepared", len(text), "characters, factor", factor)
"""

THREE_STEPS = """\
$schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
type: pipeline
display_name: three_steps
inputs:
  raw: {type: uri_file, path: ./data.txt}
outputs:
  final: {type: uri_folder}
settings:
  default_compute: azureml:serverless
jobs:
  prep:
    component: file:./prep.yml
    inputs:
      raw: ${{parent.inputs.raw}}
  train:
    command: cat ${{inputs.d}}/data.txt > ${{outputs.m}}/model.txt && echo trained
    environment: {image: python:3.11}
    inputs:
      d: ${{parent.jobs.prep.outputs.clean}}
    outputs:
      m: ${{parent.outputs.final}}
  evaluate:
    command: echo "score of $(cat ${{inputs.m}}/model.txt)"
    environment: {image: python:3.11}
    inputs:
      m: ${{parent.jobs.train.outputs.m}}
"""


def three_steps(ws, data="hello pipelines"):
    ws.write("src/prep.py", PREP_PY)
    ws.write("prep.yml", PREP_COMPONENT)
    ws.write("data.txt", data + "\n")
    return ws.write("pipe.yml", THREE_STEPS)


def steps_of(ws, name):
    return {s["step"]: s for s in ws.job(name)["steps"]}


def test_data_flows_through_three_steps_and_the_pipeline_output_downloads(ws):
    pipe = three_steps(ws)
    p = ws.run("job", "create", "-f", pipe, "-n", "p1", "--stream", timeout=120)
    out = p.stdout
    # Each step's start, its log lines and its end, in the order the steps ran, then the result.
    order = [out.index(s) for s in ("start prep: p1_prep", "prep | prepared 15 characters, factor 2", "done prep: p1_prep Completed",
                                    "start train: p1_train", "train | trained", "start evaluate: p1_evaluate",
                                    "evaluate | score of HELLO PIPELINES", "pipeline Completed")]
    assert order == sorted(order), out
    assert "Status: Completed" in out
    steps = steps_of(ws, "p1")
    assert [steps[s]["status"] for s in ("prep", "train", "evaluate")] == ["Completed"] * 3
    assert steps["train"]["after"] == ["prep"] and steps["evaluate"]["after"] == ["train"]
    # The steps are the pipeline's children, hidden from the top-level list.
    children = ws.json("job", "list", "-p", "p1")
    assert sorted(c["name"] for c in children) == ["p1_evaluate", "p1_prep", "p1_train"]
    assert "p1_prep" not in [j["name"] for j in ws.json("job", "list")]
    # Each step has its own MLflow run under the pipeline's.
    run = ws.json("job", "show", "-n", "p1_prep")
    assert run["pipeline_step"] == "prep" and run["params"]["factor"] == "2"
    ws.run("job", "download", "-n", "p1", "--output-name", "final", "--download-path", os.path.join(ws.dir, "dl"))
    found = [os.path.join(r, f) for r, _, fs in os.walk(os.path.join(ws.dir, "dl")) for f in fs]
    assert len(found) == 1 and open(found[0]).read() == "HELLO PIPELINES\n", found
    table = ws.run("job", "show", "-n", "p1", "-o", "table").stdout
    assert re.search(r"prep\s+p1_prep\s+Completed", table), table
    # Saved as YAML (--save-as), it resubmits as it ran: every step reused, with the code gone meanwhile.
    saved = os.path.join(ws.dir, "saved.yml")
    ws.run("job", "create", "-f", pipe, "-n", "p1b", "--save-as", saved, "--stream", timeout=60)
    shutil.rmtree(os.path.join(ws.dir, "src"))
    again = ws.run("job", "create", "-f", saved, "-n", "p1c", "--stream", timeout=60).stdout
    assert again.count(" reused ") == 3 and "Status: Completed" in again, again
    # The pipeline's inputs take --set (which az ml's pipelines do not: Azure/azure-cli-extensions#5091).
    ws.write("other.txt", "four\n")
    ws.write("prep.yml", PREP_COMPONENT)
    ws.write("src/prep.py", PREP_PY)
    ws.run("job", "create", "-f", pipe, "-n", "p1d", "--set", "inputs.raw.path=./other.txt", "--stream", timeout=60)
    assert "FOUR" in ws.run("job", "stream", "-n", "p1d_evaluate").stdout


def test_an_unchanged_resubmission_reuses_every_step_and_a_changed_input_reruns_exactly_downstream(ws):
    pipe = three_steps(ws)
    ws.run("job", "create", "-f", pipe, "-n", "p1", "--stream", timeout=120)
    again = ws.run("job", "create", "-f", pipe, "-n", "p2", "--stream", timeout=60).stdout
    assert "reused prep: p1_prep" in again and "reused evaluate: p1_evaluate" in again and "Status: Completed" in again
    steps = steps_of(ws, "p2")
    assert {s: steps[s].get("reused_from") for s in steps} == {"prep": "p1_prep", "train": "p1_train", "evaluate": "p1_evaluate"}
    # A reused step shows its original's logs and outputs, and took no compute.
    assert "prepared 15 characters" in ws.run("job", "stream", "-n", "p2_prep").stdout
    assert ws.job("p2_prep")["params"]["factor"] == "2"  # and its run's params and metrics
    ws.run("job", "download", "-n", "p2", "--output-name", "final", "--download-path", os.path.join(ws.dir, "dl2"))
    # force_rerun: nothing reused.
    forced = ws.run("job", "create", "-f", pipe, "-n", "p3", "--set", "settings.force_rerun=true", "--stream", timeout=120).stdout
    assert not re.search(r"\d reused \w+:", forced) and "(not reused: settings.force_rerun is true)" in forced, forced
    # A literal that does not change prep's output: prep reruns, train and evaluate are reused (by content).
    ws.run("job", "create", "-f", pipe, "-n", "p4", "--set", "jobs.prep.inputs.factor=3", "--stream", timeout=120)
    steps = steps_of(ws, "p4")
    assert "reused_from" not in steps["prep"] and steps["prep"]["why_not_reused"].startswith("inputs.factor changed: 2 -> 3")
    assert steps["train"]["reused_from"] and steps["evaluate"]["reused_from"]
    # New data: every step downstream of it reruns, each saying which input changed.
    ws.write("data.txt", "other data\n")
    ws.run("job", "create", "-f", pipe, "-n", "p5", "--stream", timeout=120)
    steps = steps_of(ws, "p5")
    assert all("reused_from" not in steps[s] for s in steps), steps
    assert re.match(r"inputs\.raw changed: sha256:[0-9a-f]{12}\.\.\. -> sha256:[0-9a-f]{12}\.\.\.", steps["prep"]["why_not_reused"]), steps["prep"]
    assert steps["train"]["why_not_reused"].startswith("inputs.d changed: sha256:")
    assert "OTHER DATA" in ws.run("job", "stream", "-n", "p5_evaluate").stdout


def test_a_step_whose_outputs_changed_after_it_completed_is_not_reused(ws):
    pipe = three_steps(ws)
    ws.run("job", "create", "-f", pipe, "-n", "p1", "--stream", timeout=120)
    # What the audit did to a blob, done to a completed step's output: the same size, other bytes, in place.
    data = os.path.join(ws.home, "runs", "p1_prep", "outputs", "clean", "data.txt")
    assert open(data).read() == "HELLO PIPELINES\n"
    with open(data, "r+") as f:
        f.write("TAMPERED PIPELN\n")
    ws.run("job", "create", "-f", pipe, "-n", "p2", "--stream", timeout=120)
    steps = steps_of(ws, "p2")
    assert "reused_from" not in steps["prep"], steps["prep"]
    assert steps["prep"]["why_not_reused"] == ("the run with the same key, p1_prep, cannot stand for it: "
                                               "outputs.clean changed after it completed"), steps["prep"]
    # prep ran again and wrote what it wrote before: what reads it is reused, and read the true data.
    assert open(os.path.join(ws.home, "runs", "p2_prep", "outputs", "clean", "data.txt")).read() == "HELLO PIPELINES\n"
    assert steps["train"]["reused_from"] == "p1_train" and steps["evaluate"]["reused_from"] == "p1_evaluate"
    assert "score of HELLO PIPELINES" in ws.run("job", "stream", "-n", "p2_evaluate").stdout
    # Untouched, the rerun's outputs stand for the next submission.
    ws.run("job", "create", "-f", pipe, "-n", "p3", "--stream", timeout=60)
    assert steps_of(ws, "p3")["prep"]["reused_from"] == "p2_prep"


def test_a_registered_component_is_versioned_and_used_by_name(ws):
    ws.write("src/prep.py", PREP_PY)
    comp = ws.write("prep.yml", PREP_COMPONENT)
    made = ws.json("component", "create", "-f", comp)
    assert (made["name"], made["version"]) == ("prep", "1")
    two = ws.json("component", "create", "-f", comp, "--set", "version=2")
    assert two["version"] == "2"
    again = ws.run("component", "create", "-f", comp, check=False)
    assert again.returncode != 0 and "already exists" in again.stderr, again.stderr
    assert [c["version"] for c in ws.json("component", "list", "-n", "prep")] == ["2", "1"]
    assert ws.json("component", "show", "-n", "prep", "--version", "1")["inputs"]["factor"]["default"] == 2
    ws.write("data.txt", "abc\n")
    ws.write("pipe.yml", """\
type: pipeline
inputs:
  raw: {type: uri_file, path: ./data.txt}
jobs:
  latest:
    component: azureml:prep@latest
    inputs: {raw: "${{parent.inputs.raw}}", factor: 5}
  pinned:
    component: azureml:prep:1
    inputs: {raw: "${{parent.inputs.raw}}"}
""")
    # The registered code runs even after the local folder is gone.
    shutil.rmtree(os.path.join(ws.dir, "src"))
    out = ws.run("job", "create", "-f", os.path.join(ws.dir, "pipe.yml"), "-n", "rc", "--stream", timeout=120).stdout
    assert "latest | prepared 3 characters, factor 5" in out and "pinned | prepared 3 characters, factor 2" in out, out
    ws.run("component", "archive", "-n", "prep", "--version", "2")
    assert [c["version"] for c in ws.json("component", "list", "-n", "prep")] == ["1"]
    ws.run("component", "restore", "-n", "prep", "--version", "2")
    missing = ws.run("job", "validate", "-f", ws.write("bad.yml", """\
type: pipeline
jobs:
  x: {component: "azureml:nothing:1"}
"""), check=False)
    assert missing.returncode == 2 and ":3:" in missing.stderr and "no component nothing version 1" in missing.stderr, missing.stderr


def test_fan_out_and_fan_in_run_independent_steps_at_once(ws):
    ws.write("fan.yml", """\
type: pipeline
jobs:
  a: {command: "sleep 1; date +%s.%N > ${{outputs.o}}/t", environment: {image: python:3.11}, outputs: {o: }}
  b: {command: "sleep 1; date +%s.%N > ${{outputs.o}}/t", environment: {image: python:3.11}, outputs: {o: }}
  join:
    command: cat ${{inputs.x}}/t ${{inputs.y}}/t
    environment: {image: python:3.11}
    inputs: {x: "${{parent.jobs.a.outputs.o}}", y: "${{parent.jobs.b.outputs.o}}"}
""")
    start = time.time()
    ws.run("job", "create", "-f", os.path.join(ws.dir, "fan.yml"), "-n", "fan", "--stream", timeout=60)
    log = ws.run("job", "stream", "-n", "fan_join").stdout
    times = [float(x) for x in re.findall(r"^\d+\.\d+$", log, re.M)]
    assert len(times) == 2 and abs(times[0] - times[1]) < 0.9, log  # a and b ran side by side
    assert time.time() - start < 10


def test_a_step_reads_another_steps_output_read_only_and_the_pipeline_downloads_whole(ws):
    ws.write("ro.yml", """\
type: pipeline
outputs:
  kept: {type: uri_folder}
jobs:
  a: {command: "echo a > ${{outputs.o}}/a", environment: {image: python:3.11}, outputs: {o: "${{parent.outputs.kept}}"}}
  b:
    command: touch ${{inputs.i}}/evil && echo WROTE || echo REFUSED
    environment: {image: python:3.11}
    inputs: {i: "${{parent.jobs.a.outputs.o}}"}
""")
    ws.run("job", "create", "-f", os.path.join(ws.dir, "ro.yml"), "-n", "ro", "--stream", timeout=60)
    assert "REFUSED" in ws.run("job", "stream", "-n", "ro_b").stdout
    assert os.listdir(os.path.join(ws.home, "runs", "ro_a", "outputs", "o")) == ["a"]
    dl = os.path.join(ws.dir, "all")
    ws.run("job", "download", "-n", "ro", "--all", "--download-path", dl)
    got = sorted(os.path.relpath(os.path.join(r, f), dl) for r, _, fs in os.walk(dl) for f in fs)
    assert any(p.endswith("user_logs/std_log.txt") for p in got) and any(p.endswith("kept/a") for p in got), got


def test_a_failing_step_fails_the_pipeline_and_cancels_what_runs_unless_continue_on_step_failure(ws):
    ws.write("fail.yml", """\
type: pipeline
jobs:
  slow: {command: "sleep 30", environment: {image: python:3.11}}
  bad: {command: "sleep 1; echo broken; exit 3", environment: {image: python:3.11}}
  after_bad:
    command: echo never
    environment: {image: python:3.11}
    inputs: {x: "${{parent.jobs.bad.outputs.artifacts}}"}
  independent: {command: "sleep 2; echo fine", environment: {image: python:3.11}}
""")
    f = os.path.join(ws.dir, "fail.yml")
    p = ws.run("job", "create", "-f", f, "-n", "f1", "--stream", check=False, timeout=60)
    assert p.returncode == 1
    job = ws.job("f1")
    assert job["status"] == "Failed" and job["status_reason"].startswith("step bad failed: the command exited with code 3")
    steps = steps_of(ws, "f1")
    assert steps["slow"]["status"] == "Canceled" and "step bad failed" in steps["slow"]["status_reason"]
    assert steps["after_bad"]["status"] == "NotStarted"
    ws.run("job", "create", "-f", f, "-n", "f2", "--set", "settings.continue_on_step_failure=true", "--set",
           "jobs.slow.command=sleep 1", check=False, timeout=60, )
    ws.wait_status("f2", "Failed", timeout=30)
    steps = steps_of(ws, "f2")
    assert steps["independent"]["status"] == "Completed" and steps["slow"]["status"] == "Completed"
    assert steps["after_bad"]["status"] == "NotStarted" and steps["bad"]["status"] == "Failed"


def test_retries_keep_every_attempt(ws):
    # Fails twice, then succeeds: the third attempt is the step's. Each attempt is a job of its own, which
    # sees nothing of another's: it knows which it is by its own name (its MLflow run id).
    ws.write("flaky.yml", """\
type: pipeline
jobs:
  flaky:
    command: 'echo try $MLFLOW_RUN_ID; case $MLFLOW_RUN_ID in *_attempt3) exit 0;; *) exit 1;; esac'
    environment: {image: python:3.11}
    retry_settings: {max_retries: 3, timeout: 30}
""")
    out = ws.run("job", "create", "-f", os.path.join(ws.dir, "flaky.yml"), "-n", "r1", "--stream", timeout=60).stdout
    assert "retry flaky: attempt 2 of 4" in out and "retry flaky: attempt 3 of 4" in out, out
    step = steps_of(ws, "r1")["flaky"]
    assert step["status"] == "Completed" and step["job"] == "r1_flaky_attempt3"
    assert [(a["job"], a["status"]) for a in step["attempts"]] == [
        ("r1_flaky", "Failed"), ("r1_flaky_attempt2", "Failed"), ("r1_flaky_attempt3", "Completed")]
    assert ws.job("r1_flaky_attempt3")["limits"]["timeout"] == 30
    assert ws.job("r1")["status"] == "Completed"


def test_cancel_ends_every_step(ws):
    ws.write("long.yml", """\
type: pipeline
jobs:
  a: {command: "sleep 60", environment: {image: python:3.11}}
  b: {command: "sleep 60", environment: {image: python:3.11}}
  c: {command: "echo c", environment: {image: python:3.11}, inputs: {i: "${{parent.jobs.a.outputs.artifacts}}"}}
""")
    ws.run("job", "create", "-f", os.path.join(ws.dir, "long.yml"), "-n", "k")
    wait_for(lambda: all(s["status"] == "Running" for s in ws.job("k")["steps"][:2]), timeout=20, what="a and b to run")
    ws.run("job", "cancel", "-n", "k")
    ws.wait_status("k", "Canceled", timeout=20)
    steps = steps_of(ws, "k")
    assert steps["a"]["status"] == steps["b"]["status"] == "Canceled" and steps["c"]["status"] == "NotStarted"


def test_a_server_killed_mid_pipeline_goes_on_with_no_step_run_twice(ws):
    # Each step notes its run in its own outputs (a job sees nothing else of the machine): a step run twice
    # in its run folder would note it twice.
    ws.write("chain.yml", """\
type: pipeline
jobs:
  a: {command: "sleep 3; echo a >> outputs/runs", environment: {image: python:3.11}, outputs: {o: }}
  b: {command: "echo b >> outputs/runs", environment: {image: python:3.11}, inputs: {i: "${{parent.jobs.a.outputs.o}}"}}
  c: {command: "echo c >> outputs/runs", environment: {image: python:3.11}, inputs: {i: "${{parent.jobs.b.outputs.artifacts}}"}}
""")
    ws.run("job", "create", "-f", os.path.join(ws.dir, "chain.yml"), "-n", "chain")
    wait_for(lambda: steps_of(ws, "chain")["a"]["status"] == "Running", timeout=20, what="step a to run")
    os.kill(ws.server_info()["pid"], signal.SIGKILL)
    # a ends while no server runs: its supervisor records how it ended.
    wait_for(lambda: os.path.exists(os.path.join(ws.home, "runs", "chain_a", "exit.json")), timeout=20,
             what="step a to end")
    ws.wait_status("chain", "Completed", timeout=40)  # the CLI starts a new server, which takes up the pipeline
    for step in ("a", "b", "c"):
        with open(os.path.join(ws.home, "runs", "chain_" + step, "artifacts", "outputs", "runs")) as f:
            assert f.read().split() == [step], step
    steps = steps_of(ws, "chain")
    assert steps["a"]["job"] == "chain_a" and steps["c"]["job"] == "chain_c"
    assert [c["name"] for c in ws.json("job", "list", "-p", "chain")].count("chain_b") == 1


def test_a_sweep_step_runs_its_trials_and_its_best_trial_feeds_the_next_step(ws):
    ws.write("train.yml", """\
name: train
type: command
inputs:
  lr: {type: number}
outputs:
  model: {type: uri_folder}
environment: {image: python:3.11}
command: >-
  %s -c "import cairn_mlflow as mlflow; mlflow.log_metric('acc', 1 - abs(${{inputs.lr}} - 0.3))" &&
  echo ${{inputs.lr}} > ${{outputs.model}}/lr
""" % PY)
    ws.write("sweep.yml", """\
type: pipeline
jobs:
  tune:
    type: sweep
    trial: file:./train.yml
    sampling_algorithm: grid
    search_space:
      lr: {type: choice, values: [0.1, 0.3, 0.5]}
    objective: {primary_metric: acc, goal: maximize}
    limits: {max_total_trials: 3, max_concurrent_trials: 3}
  use:
    command: cat ${{inputs.m}}/lr
    environment: {image: python:3.11}
    inputs: {m: "${{parent.jobs.tune.outputs.model}}"}
""")
    ws.run("job", "create", "-f", os.path.join(ws.dir, "sweep.yml"), "-n", "sw", "--stream", timeout=120)
    steps = steps_of(ws, "sw")
    tune = ws.job(steps["tune"]["job"])
    assert tune["type"] == "sweep" and len(tune["trials"]) == 3
    assert ws.run("job", "stream", "-n", "sw_use").stdout.count("0.3") >= 1


def test_validation_reports_every_pipeline_error_at_its_place(ws):
    bad = ws.write("bad.yml", """\
type: pipeline
inputs:
  n: 3
jobs:
  a:
    command: echo ${{inputs.x}}
    environment: {image: python:3.11}
    inputs:
      x: ${{parent.inputs.nope}}
  b:
    command: echo ${{inputs.y}}
    environment: {image: python:3.11}
    inputs:
      y: ${{parent.jobs.c.outputs.o}}
    outputs: {o: }
  c:
    command: echo ${{inputs.z}}
    environment: {image: python:3.11}
    inputs:
      z: ${{parent.jobs.b.outputs.o}}
    outputs: {o: }
  d:
    command: echo ${{inputs.w}}
    environment: {image: python:3.11}
    inputs:
      w: ${{parent.jobs.a.outputs.missing}}
  e:
    component: file:./comp.yml
""")
    ws.write("comp.yml", """\
name: comp
inputs:
  data: {type: uri_folder}
  count: {type: integer}
environment: {image: python:3.11}
command: ls ${{inputs.data}} ${{inputs.count}}
""")
    p = ws.run("job", "validate", "-f", bad, check=False)
    assert p.returncode == 2
    err = p.stderr
    assert f"{bad}:9:10: error: jobs.a.inputs.x: ${{{{parent.inputs.nope}}}} names no input of the pipeline (did you mean 'n'?)" in err \
        or f"{bad}:9:10: error: jobs.a.inputs.x: ${{{{parent.inputs.nope}}}} names no input of the pipeline (its inputs: n)" in err, err
    assert re.search(re.escape(bad) + r":(14|20):10: error: jobs\.[bc]\.inputs\.[yz]: the steps form a cycle: (b -> c -> b|c -> b -> c)", err), err
    assert f"{bad}:26:10: error: jobs.d.inputs.w: ${{{{parent.jobs.a.outputs.missing}}}}: step 'a' has no output 'missing'" in err, err
    assert "jobs.e.inputs.data: the component's input 'data' is not bound and has no default" in err
    assert "jobs.e.inputs.count: the component's input 'count' is not bound and has no default" in err
    mismatch = ws.write("mismatch.yml", """\
type: pipeline
inputs:
  n: 3
jobs:
  e:
    component: file:./comp.yml
    inputs: {data: "${{parent.inputs.n}}", count: 2}
""")
    p = ws.run("job", "validate", "-f", mismatch, check=False)
    assert "jobs.e.inputs.data: type mismatch: the pipeline's input 'n' is a value but the component's input is data (uri_folder)" in p.stderr, p.stderr
    ok = ws.write("ok.yml", """\
type: pipeline
jobs:
  e: {command: "echo hi", environment: {image: python:3.11}, compute: azureml:nowhere}
""")
    p = ws.run("job", "validate", "-f", ok, check=False)
    assert p.returncode == 2 and "jobs.e: compute 'nowhere' does not exist in this workspace" in p.stderr, p.stderr


@pytest.mark.skipif(not os.path.isdir(CONFORMANCE), reason=f"the conformance corpus is not here ({CONFORMANCE}: ../shared is absent)")
def test_every_pipeline_of_the_corpus_validates_and_the_hello_pipelines_run(ws):
    files = []
    for root in ("azureml-examples", "azureml-examples-legacy/preview2-2022-04-04"):
        base = os.path.join(CONFORMANCE, root)
        for rel in open(os.path.join(base, "MANIFEST.tsv")).read().splitlines()[1:]:
            path, kind = rel.split("\t")[:2]
            if kind == "pipeline-job":
                files.append(os.path.join(root, path))
    assert len(files) == 18
    work = os.path.join(ws.dir, "corpus")
    ws.run("compute", "create", "--name", "cpu-cluster", "--type", "amlcompute", "--max-instances", "4")
    generations = set()
    for rel in files:
        dest = os.path.join(work, rel)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copy(os.path.join(CONFORMANCE, rel), dest)
        p = ws.run("job", "validate", "-f", dest, check=False)
        assert p.returncode == 0, (rel, p.stderr)
        generations.add(re.fullmatch(r".*: valid pipeline job \((.*) syntax\)\n", p.stdout).group(1))
    assert generations == {"GA", "preview 2"}
    for rel in files:
        if "/hello-pipeline" not in rel:
            continue
        dest = os.path.join(work, rel)
        p = ws.run("job", "create", "-f", dest, "--stream", check=False, timeout=120)
        assert p.returncode == 0 and "Status: Completed" in p.stdout, (rel, p.stdout, p.stderr)
    # The io example's second step read what the first wrote.
    io = yaml.safe_load(open(os.path.join(CONFORMANCE, "azureml-examples/jobs/basics/hello-pipeline-io.yml")))
    assert io["jobs"]["world_job"]["inputs"]["world_input"].startswith("${{parent.jobs.hello_job")


def test_a_rerun_from_edited_yaml_takes_the_originals_code_and_local_inputs(ws):
    """POST /api/v1/jobs/<name>/rerun (the studio's Rerun): the YAML as edited, the original's uploads for
    the local paths it names, a pipeline's per step."""
    import json
    import urllib.error
    import urllib.request

    def rerun(name, yaml_text, new_name):
        req = urllib.request.Request(ws.server_info()["url"] + f"/api/v1/jobs/{name}/rerun", method="POST",
                                     data=json.dumps({"yaml": yaml_text, "name": new_name}).encode(),
                                     headers={"Authorization": "Bearer " + ws.token(), "Content-Type": "application/json"})
        with urllib.request.urlopen(req) as r:
            return json.loads(r.read())

    ws.write("src/show.sh", "cat \"$1\"; echo \"$2\"\n")
    ws.write("in.txt", "local input\n")
    job = ws.write("job.yml", """\
code: ./src
command: sh show.sh ${{inputs.f}} first
environment: {image: python:3.11}
inputs: {f: {type: uri_file, path: ./in.txt}}
""")
    ws.run("job", "create", "-f", job, "-n", "orig", "--stream")
    shutil.rmtree(os.path.join(ws.dir, "src"))
    os.remove(os.path.join(ws.dir, "in.txt"))
    made = rerun("orig", open(job).read().replace("first", "second"), "again")
    assert made["name"] == "again"
    ws.wait_status("again", "Completed")
    out = ws.run("job", "stream", "-n", "again").stdout
    assert "local input" in out and "second" in out, out
    with pytest.raises(urllib.error.HTTPError) as e:
        rerun("orig", open(job).read().replace("path: ./in.txt", "path: ./other.txt").replace("inputs: {f:", "inputs: {g:")
              .replace("${{inputs.f}}", "${{inputs.g}}"), "nope")
    assert e.value.code == 400 and "inputs.g: a local path" in e.value.read().decode()
    pipe = ws.write("p.yml", """\
type: pipeline
jobs:
  a: {command: "echo A > ${{outputs.o}}/a", environment: {image: python:3.11}, outputs: {o: }}
  b: {command: "cat ${{inputs.i}}/a; echo one", environment: {image: python:3.11}, inputs: {i: "${{parent.jobs.a.outputs.o}}"}}
""")
    ws.run("job", "create", "-f", pipe, "-n", "porig", "--stream")
    rerun("porig", open(pipe).read().replace("echo one", "echo two"), "pagain")
    ws.wait_status("pagain", "Completed", timeout=30)
    steps = steps_of(ws, "pagain")
    assert steps["a"]["reused_from"] == "porig_a" and "reused_from" not in steps["b"]
    assert "two" in ws.run("job", "stream", "-n", "pagain_b").stdout
