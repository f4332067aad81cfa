"""Command jobs end to end: create, stream, show, list, update, archive, download, cancel."""
import json
import os
import re
import shutil
import subprocess
import time

from conftest import CONFORMANCE, pids_mentioning, wait_for


@__import__("pytest").mark.skipif(not os.path.isdir(CONFORMANCE), reason="the conformance corpus (../shared) is absent")
def test_ga_hello_world_streams_and_completes(ws):
    shutil.copy(os.path.join(CONFORMANCE, "azureml-examples/jobs/basics/hello-world.yml"), ws.dir)
    p = ws.run("job", "create", "-f", "hello-world.yml", "--stream")
    lines = p.stdout.splitlines()
    assert lines[0].startswith("RunId: ")
    name = lines[0].split(": ")[1]
    assert lines[1] == f"Web View: {ws.server_info()['url']}/#/jobs/{name}"
    assert "Streaming user_logs/std_log.txt\n===============================\n\nhello world\n" in p.stdout
    assert "\nExecution Summary\n=================\nRunId: " + name in p.stdout
    assert "Status: Completed" in p.stdout
    job = ws.job(name)
    assert job["status"] == "Completed"
    assert job["compute"] == "local"  # no compute: the workspace default
    statuses = [e["status"] for e in job["status_history"]]
    # Preparing comes once per step of the environment (resolving, pulling, ...), each with its reason.
    assert [s for i, s in enumerate(statuses) if i == 0 or statuses[i - 1] != s] == [
        "NotStarted", "Starting", "Preparing", "Running", "Finalizing", "Completed"]
    assert "runs on this host" in job["notes"][0]


@__import__("pytest").mark.skipif(not os.path.isdir(CONFORMANCE), reason="the conformance corpus (../shared) is absent")
def test_preview1_hello_world_needs_the_seed_compute(ws):
    shutil.copy(os.path.join(CONFORMANCE, "azureml-examples-legacy/preview1-2021-11-03/jobs/misc/hello-world.yml"), ws.dir)
    p = ws.run("job", "create", "-f", "hello-world.yml", "--stream", check=False)
    assert p.returncode == 2
    assert p.stderr == ("hello-world.yml: error: compute 'cpu-cluster' does not exist in this workspace; create it "
                        "with: cairn compute create --name cpu-cluster --type amlcompute --min-instances 0 "
                        "--max-instances 4\n")
    assert ws.json("job", "list") == []  # nothing half-created
    ws.run("compute", "create", "--name", "cpu-cluster", "--type", "amlcompute", "--min-instances", "0",
           "--max-instances", "4")
    p = ws.run("job", "create", "-f", "hello-world.yml", "--stream")
    assert "\nhello world\n" in p.stdout
    name = p.stdout.splitlines()[0].split(": ")[1]
    assert ws.job(name)["compute"] == "azureml:cpu-cluster"


JOB_WITH_INPUT = """\
$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
command: echo "epochs=${{inputs.epochs}} rate=${{inputs.rate}}"
inputs:
  epochs: 1
  rate: 0.5
environment:
  image: python:3.11
experiment_name: exp-a
tags:
  team: vision
"""


def test_set_and_name_override_the_file_and_json_has_azure_shape(ws):
    ws.write("job.yml", JOB_WITH_INPUT)
    job = json.loads(ws.run("job", "create", "-f", "job.yml", "--set", "inputs.epochs=3", "--name", "my_run_1",
                            "-o", "json").stdout)
    assert job["name"] == "my_run_1"
    assert job["inputs"] == {"epochs": 3, "rate": 0.5}
    assert job["experiment_name"] == "exp-a"
    assert job["type"] == "command"
    assert job["creation_context"]["created_by_type"] == "User"
    assert job["services"]["Studio"]["endpoint"].endswith("/#/jobs/my_run_1")
    ws.wait_status("my_run_1", "Completed")
    p = ws.run("job", "stream", "-n", "my_run_1")  # replays a finished job
    assert "epochs=3 rate=0.5" in p.stdout
    assert ws.run("job", "show", "-n", "my_run_1", "--query", "status", "-o", "tsv").stdout == "Completed\n"
    listed = ws.json("job", "list")
    assert [j["name"] for j in listed] == ["my_run_1"]
    # The name is taken now.
    p = ws.run("job", "create", "-f", "job.yml", "--name", "my_run_1", check=False)
    assert p.returncode == 2
    assert p.stderr == ("job.yml: error: a job named 'my_run_1' already exists in this workspace; choose another "
                        "--name\n")


def test_generated_names_have_azure_ml_shape(ws):
    ws.write("job.yml", "command: 'true'\nenvironment: {image: python}\n")
    name = ws.run("job", "create", "-f", "job.yml", "--query", "name", "-o", "tsv").stdout.strip()
    assert re.fullmatch(r"[a-z]+_[a-z]+_[bcdfghjklmnpqrstvwxyz0-9]{10}", name), name
    ws.wait_status(name, "Completed")


def test_list_filters_archive_and_restore(ws):
    ws.write("ok.yml", "command: 'true'\nenvironment: {image: python}\nexperiment_name: alpha\n")
    ws.write("bad.yml", "command: 'exit 3'\nenvironment: {image: python}\nexperiment_name: beta\n")
    ws.run("job", "create", "-f", "ok.yml", "-n", "a1", "--stream")
    ws.run("job", "create", "-f", "ok.yml", "-n", "a2", "--stream")
    p = ws.run("job", "create", "-f", "bad.yml", "-n", "b1", "--stream", check=False)
    assert p.returncode == 1
    assert [j["name"] for j in ws.json("job", "list")] == ["b1", "a2", "a1"]
    assert [j["name"] for j in ws.json("job", "list", "--max-results", "2")] == ["b1", "a2"]
    assert [j["name"] for j in ws.json("job", "list", "--status", "Failed")] == ["b1"]
    assert [j["name"] for j in ws.json("job", "list", "--experiment", "alpha")] == ["a2", "a1"]
    assert ws.json("job", "list", "--parent-job-name", "a1") == []
    ws.run("job", "archive", "-n", "a1")
    assert [j["name"] for j in ws.json("job", "list")] == ["b1", "a2"]
    assert [j["name"] for j in ws.json("job", "list", "--include-archived")] == ["b1", "a2", "a1"]
    assert [j["name"] for j in ws.json("job", "list", "--archived-only")] == ["a1"]
    ws.run("job", "restore", "-n", "a1")
    assert len(ws.json("job", "list")) == 3
    table = ws.run("job", "list", "-o", "table").stdout.splitlines()
    assert table[0].split() [:3] == ["Name", "Display", "name"]
    assert table[2].startswith("b1 ")
    tsv = ws.run("job", "list", "--query", "[].{n:name,s:status}", "-o", "tsv").stdout
    assert tsv == "b1\tFailed\na2\tCompleted\na1\tCompleted\n"
    yaml_out = ws.run("job", "show", "-n", "b1", "-o", "yaml").stdout
    assert "name: b1\n" in yaml_out and "status: Failed\n" in yaml_out


def test_failed_job_says_why(ws):
    ws.write("job.yml", "command: no_such_command_xyz --flag\nenvironment: {image: python}\n")
    p = ws.run("job", "create", "-f", "job.yml", "-n", "nf", "--stream", check=False)
    assert p.returncode == 1
    # bash's words where bash runs the command (dash says "not found")
    assert "no_such_command_xyz: command not found" in p.stdout or "no_such_command_xyz: not found" in p.stdout
    job = ws.job("nf")
    assert job["status"] == "Failed"
    assert job["exit_code"] == 127
    assert job["status_reason"] == ("the command exited with code 127 (command not found; see "
                                    "user_logs/std_log.txt)")
    assert job["error"]["message"] == job["status_reason"]
    assert '"message": "the command exited with code 127' in p.stdout


def test_update_tags_properties_and_display_name(ws):
    ws.write("job.yml", "command: 'true'\nenvironment: {image: python}\ntags: {a: '1'}\nproperties: {p: x}\n")
    ws.run("job", "create", "-f", "job.yml", "-n", "u1", "--stream")
    job = ws.json("job", "update", "-n", "u1", "--set", "tags.b=2", "--set", "display_name=renamed",
                  "--set", "description=hello there", "--set", "properties.q=y")
    assert job["tags"] == {"a": "1", "b": "2"}
    assert job["display_name"] == "renamed"
    assert job["description"] == "hello there"
    assert job["properties"] == {"p": "x", "q": "y"}
    p = ws.run("job", "update", "-n", "u1", "--set", "properties.p=changed", check=False)
    assert p.returncode == 2
    assert p.stderr == "ERROR: properties are append-only: 'p' is already set to 'x'\n"
    p = ws.run("job", "update", "-n", "u1", "--set", "command=ls", check=False)
    assert p.returncode == 2
    assert "only tags.<key>, properties.<key>, display_name, description and experiment_name" in p.stderr


def test_cancel_of_finished_or_unknown_job_is_a_clear_error(ws):
    ws.write("job.yml", "command: 'true'\nenvironment: {image: python}\n")
    ws.run("job", "create", "-f", "job.yml", "-n", "done1", "--stream")
    p = ws.run("job", "cancel", "-n", "done1", check=False)
    assert p.returncode == 1
    assert p.stderr == "ERROR: job 'done1' is already Completed; only a job in progress can be canceled\n"
    p = ws.run("job", "show", "-n", "nope", check=False)
    assert p.returncode == 3
    assert p.stderr == "ERROR: no job named 'nope' in this workspace\n"


def test_environment_variables_reach_the_job(ws):
    ws.write("job.yml", """\
command: echo "run=$AZUREML_RUN_ID exp=$AZUREML_ARM_PROJECT_NAME mine=$MY_VAR in=$AZURE_ML_INPUT_n"
environment: {image: python}
environment_variables:
  MY_VAR: hello
inputs:
  n: 5
experiment_name: envexp
""")
    p = ws.run("job", "create", "-f", "job.yml", "-n", "env1", "--stream")
    assert "run=env1 exp=envexp mine=hello in=\n" in p.stdout


def test_job_without_environment_is_rejected(ws):
    ws.write("job.yml", "command: echo hi\n")
    p = ws.run("job", "create", "-f", "job.yml", check=False)
    assert p.returncode == 2
    assert p.stderr == "job.yml:1:1: error: missing required key 'environment'\n"


@__import__("pytest").mark.skipif(not os.path.isdir(CONFORMANCE), reason="the conformance corpus (../shared) is absent")
def test_compute_from_a_corpus_file_and_its_lifecycle(ws):
    # cluster-basic.yml has a trailing space after its $schema URL, as upstream does.
    shutil.copy(os.path.join(CONFORMANCE, "azureml-examples/resources/compute/cluster-basic.yml"), ws.dir)
    c = ws.json("compute", "create", "-f", "cluster-basic.yml")
    assert (c["name"], c["type"], c["size"], c["min_instances"], c["max_instances"]) == (
        "basic-example", "amlcompute", "STANDARD_DS3_v2", 0, 2)
    assert [x["name"] for x in ws.json("compute", "list")] == ["local", "basic-example"]
    assert ws.run("compute", "show", "-n", "basic-example", "--query", "max_instances", "-o", "tsv").stdout == "2\n"
    ws.write("big.yml", "command: 'true'\nenvironment: {image: python}\ncompute: azureml:basic-example\n"
                        "resources: {instance_count: 3}\n")
    p = ws.run("job", "create", "-f", "big.yml", check=False)
    assert p.returncode == 2
    assert p.stderr == ("big.yml: error: resources.instance_count: the job needs 3 nodes but compute "
                        "'basic-example' has at most 2\n")
    ws.write("bad-compute.yml", "name: x\ntype: amlcompute\nmax_instances: many\nmin_instanses: 1\n")
    p = ws.run("compute", "create", "-f", "bad-compute.yml", check=False)
    assert p.returncode == 2
    assert p.stderr == ("bad-compute.yml:3:16: error: max_instances: expected an integer >= 0, got \"many\"\n"
                        "bad-compute.yml:4:1: error: unknown key 'min_instanses' (did you mean 'min_instances'?)\n")
    ws.run("compute", "delete", "-n", "basic-example")
    p = ws.run("compute", "show", "-n", "basic-example", check=False)
    assert p.returncode == 3
    assert p.stderr == "ERROR: no compute named 'basic-example' in this workspace\n"


def test_server_sent_events_announce_job_changes(ws):
    import urllib.request
    ws.run("job", "list")  # starts the server
    req = urllib.request.Request(ws.server_info()["url"] + "/api/v1/events",
                                 headers={"Authorization": "Bearer " + ws.token()})
    with urllib.request.urlopen(req, timeout=10) as stream:
        assert stream.headers["Content-Type"] == "text/event-stream"

        def next_event():
            fields = {}
            while True:
                line = stream.readline().decode().rstrip("\n")
                if line == "" and fields:
                    return fields
                if line and not line.startswith(":"):
                    k, _, v = line.partition(": ")
                    fields[k] = v

        hello = next_event()
        assert hello["event"] == "hello"
        start = json.loads(hello["data"])["version"]
        ws.write("job.yml", "command: echo hi\nenvironment: azureml:x@latest\n")
        t0 = time.time()
        ws.json("job", "create", "-f", "job.yml")
        changed = next_event()
        assert changed["event"] == "jobs" and json.loads(changed["data"])["version"] > start
        assert time.time() - t0 < 2
