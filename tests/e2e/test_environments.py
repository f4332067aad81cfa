"""Environments: registered versions, and jobs in podman containers made from a debootstrapped Debian image
(scripts/make-test-image.sh imports it as localhost/cairn-test:bookworm; no registry is reachable)."""
import os
import subprocess
import time
import uuid

import pytest

from conftest import wait_for

IMAGE = "localhost/cairn-test:bookworm"
PODMAN = ["podman", "--runtime", "runc", "--cgroup-manager", "cgroupfs"]


def have_image():
    try:
        return subprocess.run([*PODMAN, "image", "exists", IMAGE], capture_output=True).returncode == 0
    except FileNotFoundError:
        return False


needs_image = pytest.mark.skipif(not have_image(), reason=f"{IMAGE} is not imported (scripts/make-test-image.sh)")


def containers_named(prefix):
    out = subprocess.run([*PODMAN, "ps", "-a", "--format", "{{.Names}}"], capture_output=True, text=True).stdout
    return [n for n in out.split() if n.startswith(prefix)]


def reasons(job):
    return [e["reason"] for e in job["status_history"]]


def test_environment_versions_from_flags_and_files(ws):
    e1 = ws.json("environment", "create", "--name", "py", "--image", "python:3.11")
    assert e1["version"] == "1" and e1["image"] == "python:3.11"
    ws.write("env.yml", "name: py\nversion: '2'\nimage: python:3.12\ndescription: newer\n")
    assert ws.json("environment", "create", "-f", "env.yml")["version"] == "2"
    assert ws.json("environment", "show", "--name", "py", "--label", "latest")["image"] == "python:3.12"
    ws.run("environment", "archive", "--name", "py", "--version", "2")
    assert ws.json("environment", "show", "--name", "py", "--label", "latest")["version"] == "1"
    # The one-of rules, and a conda file given where an environment file belongs.
    ws.write("ctx/Dockerfile", "FROM scratch\n")
    p = ws.run("environment", "create", "--name", "x", "--image", "a", "--build-context", "ctx", check=False)
    assert p.returncode == 2 and "either --image or --build-context" in p.stderr
    ws.write("conda.yml", "channels: [conda-forge]\ndependencies: [python=3.11]\n")
    p = ws.run("environment", "create", "-f", "conda.yml", check=False)
    assert p.returncode == 2 and "conda file for --file" in p.stderr
    ws.write("both.yml", "name: b\nimage: a\nbuild: {path: ctx}\n")
    p = ws.run("environment", "create", "-f", "both.yml", check=False)
    assert p.returncode == 2 and "both.yml:3:" in p.stderr and "either 'image' or 'build'" in p.stderr


def test_an_unregistered_or_curated_environment_runs_on_this_host_and_says_so(ws):
    ws.write("job.yml", "command: echo host\nenvironment: azureml://registries/azureml/environments/sklearn-1.5/labels/latest\n")
    ws.run("job", "create", "-f", "job.yml", "-n", "cur", "--stream")
    j = ws.job("cur")
    assert j["status"] == "Completed"
    assert "curated environment not mapped in this workspace" in j["notes"][0]
    assert "cairn environment create --name sklearn-1.5" in j["notes"][0]


@needs_image
def test_a_job_runs_in_its_image_with_inputs_outputs_and_variables(ws):
    ws.write("data/in.txt", "input data\n")
    ws.write("job.yml", f"""
command: >-
  (command -v python3 || echo no-python-here) && cat ${{{{inputs.d}}}}/in.txt && echo $AZUREML_RUN_ID &&
  echo result > ./outputs/r.txt && echo named > ${{{{outputs.o}}}}/n.txt &&
  (echo x > ${{{{inputs.d}}}}/in.txt 2>/dev/null && echo WROTE || echo REFUSED)
environment: {{image: {IMAGE}}}
inputs:
  d: {{type: uri_folder, path: data}}
outputs:
  o: {{type: uri_folder}}
""")
    p = ws.run("job", "create", "-f", "job.yml", "-n", "inimg", "--stream")
    assert "no-python-here" in p.stdout  # the host has python3; the minimal image does not
    assert "input data" in p.stdout and "inimg" in p.stdout and "REFUSED" in p.stdout
    j = ws.job("inimg")
    assert j["status"] == "Completed"
    assert any(r.startswith("environment: starting the container") for r in reasons(j))
    ws.run("job", "download", "-n", "inimg", "--all", "--download-path", "dl")
    assert open(os.path.join(ws.dir, "dl", "artifacts", "outputs", "r.txt")).read() == "result\n"
    assert open(os.path.join(ws.dir, "dl", "named-outputs", "o", "n.txt")).read() == "named\n"
    assert containers_named("cairn-inimg") == []


@needs_image
def test_a_memory_limit_kills_the_job_and_no_container_is_left(ws):
    ws.write("job.yml", f"""
command: head -c 400000000 /dev/zero | tail > /dev/null && echo survived
environment: {{image: {IMAGE}}}
resources: {{properties: {{memory: 64m}}}}
""")
    p = ws.run("job", "create", "-f", "job.yml", "-n", "oom", "--stream", check=False)
    j = ws.job("oom")
    assert "survived" not in p.stdout
    # tail was killed (137 = SIGKILL); the pipeline's status is tail's, so the command fails.
    assert j["status"] == "Failed", j["status_reason"]
    assert containers_named("cairn-oom") == []


@needs_image
def test_a_build_context_is_built_once_and_cached(ws):
    ws.write("ctx/Dockerfile", f"FROM {IMAGE}\nCOPY marker.txt /marker.txt\n")
    # A context of its own each run: the image cache is the machine's, shared by every workspace.
    ws.write("ctx/marker.txt", f"built from the context {uuid.uuid4().hex}\n")
    ws.run("environment", "create", "--name", "built", "--build-context", "ctx")
    ws.write("job.yml", "command: cat /marker.txt\nenvironment: azureml:built@latest\n")
    p = ws.run("job", "create", "-f", "job.yml", "-n", "b1", "--stream", timeout=300)
    assert "built from the context" in p.stdout
    assert any("cache miss" in r for r in reasons(ws.job("b1")))
    p = ws.run("job", "create", "-f", "job.yml", "-n", "b2", "--stream", timeout=300)
    assert "built from the context" in p.stdout
    assert not any("cache miss" in r for r in reasons(ws.job("b2")))
    assert any("(cache hit)" in r for r in reasons(ws.job("b2")))
    log = open(os.path.join(ws.home, "runs", "b2", "artifacts", "system_logs", "cairn_supervisor.log")).read()
    assert "cache hit" in log
    image = log.split("environment: image ")[1].split(" ")[0]
    subprocess.run([*PODMAN, "rmi", image], capture_output=True)


@needs_image
def test_cancel_stops_the_container(ws):
    # Canceled at once (the container may still be starting) and once it runs: nothing of it is left.
    for name, settle in (("quick", 0), ("long", 2)):
        ws.write(f"{name}.yml", f"command: sleep 307\nenvironment: {{image: {IMAGE}}}\n")
        ws.run("job", "create", "-f", f"{name}.yml", "-n", name)
        ws.wait_status(name, "Running", timeout=60)
        time.sleep(settle)
        ws.run("job", "cancel", "-n", name)
        assert ws.wait_status(name, "Canceled", timeout=30)["status"] == "Canceled"
        assert containers_named(f"cairn-{name}") == []
        assert subprocess.run(["pgrep", "-f", "sleep 307"], capture_output=True).stdout == b""


def test_a_strict_compute_refuses_to_run_without_the_image(ws):
    ws.write("strict.yml", "name: strict\ntype: local\nmax_instances: 2\ncontainers: strict\n")
    ws.run("compute", "create", "-f", "strict.yml")
    ws.write("job.yml", "command: echo on-host\nenvironment: {image: localhost/no-such-image:1}\ncompute: azureml:strict\n")
    p = ws.run("job", "create", "-f", "job.yml", "-n", "st", "--stream", check=False)
    j = ws.job("st")
    assert j["status"] == "Failed" and "on-host" not in p.stdout
    assert "the compute is strict" in j["status_reason"]


@needs_image
def test_a_conda_file_is_applied_where_the_image_has_conda(ws):
    # An image with a stand-in `conda` that records what it was asked to apply, and the plain test image.
    tag = uuid.uuid4().hex[:12]
    ws.write("ctx/Dockerfile", f"FROM {IMAGE}\nCOPY conda /usr/local/bin/conda\n")
    ws.write("ctx/conda", f"#!/bin/sh\n# {tag}\necho \"$@\" > /conda-args && cp \"$6\" /conda-applied\n", mode=0o755)
    ws.run("environment", "create", "--name", "withconda", "--build-context", "ctx")
    ws.write("conda.yml", f"name: t\ndependencies: [python=3.11]  # {tag}\n")
    p = ws.run("job", "create", "-f", ws.write("b.yml", "command: 'true'\nenvironment: azureml:withconda@latest\n"),
               "-n", "base", "--stream", timeout=300)
    base_image = open(os.path.join(ws.home, "runs", "base", "artifacts", "system_logs", "cairn_supervisor.log")).read() \
        .split("environment: built ")[1].split("\n")[0]
    ws.write("job.yml", f"command: cat /conda-args /conda-applied\n"
             f"environment: {{image: {base_image}, conda_file: conda.yml}}\n")
    p = ws.run("job", "create", "-f", "job.yml", "-n", "conda1", "--stream", timeout=300)
    assert "env update -n base -f /tmp/cairn-conda.yml" in p.stdout and tag in p.stdout
    assert any("applying the conda file" in r for r in reasons(ws.job("conda1")))
    # The plain image has no conda: the file is not applied, and the log says so.
    ws.write("plain.yml", f"command: 'true'\nenvironment: {{image: {IMAGE}, conda_file: conda.yml}}\n")
    ws.run("job", "create", "-f", "plain.yml", "-n", "plain", "--stream")
    log = open(os.path.join(ws.home, "runs", "plain", "artifacts", "system_logs", "cairn_supervisor.log")).read()
    assert "conda_file not applied: the image " + IMAGE + " has no conda" in log
    derived = open(os.path.join(ws.home, "runs", "conda1", "artifacts", "system_logs", "cairn_supervisor.log")).read() \
        .split("environment: built ")[1].split("\n")[0]
    subprocess.run([*PODMAN, "rmi", derived, base_image], capture_output=True)


FAKE_RUNTIME = """#!/bin/sh
# A container runtime that has no images and reaches no registry (until $0.has exists), logging each call.
echo "$@" >> "$0.calls"
case "$1 $2" in
  "image inspect") [ -e "$0.has" ] && exit 0; echo "Error: $3: image not known" >&2; exit 1 ;;
  "pull -q") echo "Error: pinging container registry: dial tcp: lookup registry-1.docker.io: no such host" >&2; exit 125 ;;
esac
exit 1
"""


def runtime_calls(path):
    try:
        with open(path + ".calls") as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def fake_runtime(tmp_path):
    fake = str(tmp_path / "fakeman")
    with open(fake, "w") as f:
        f.write(FAKE_RUNTIME)
    os.chmod(fake, 0o755)
    return fake


def test_an_unavailable_image_is_remembered_so_later_jobs_do_not_ask_the_runtime(make_ws, tmp_path):
    fake = fake_runtime(tmp_path)
    ws = make_ws({"CAIRN_CONTAINER_RUNTIME": fake, "CAIRN_IMAGE_RECHECK_SECONDS": "3600"})
    ws.write("job.yml", "command: echo hi\nenvironment: {image: 'library/python:3.11'}\n")
    first = ws.json("job", "create", "-f", "job.yml")["name"]
    ws.wait_status(first, "Completed")
    calls = runtime_calls(fake)
    assert calls == ["image inspect library/python:3.11", "pull -q library/python:3.11"], calls
    # Remembered: the next jobs run on this host at once, with no runtime call, and say why.
    names = [ws.json("job", "create", "-f", "job.yml")["name"] for _ in range(3)]
    for n in names:
        job = ws.wait_status(n, "Completed")
        why = " ".join(reasons(job))
        assert "image library/python:3.11 is not available" in why and "no such host" in why
        assert "cairn environment check --image library/python:3.11" in why
    assert runtime_calls(fake) == calls
    listed = ws.json("environment", "list-images")
    assert [(i["image"], i["available"]) for i in listed] == [("library/python:3.11", False)]
    assert "no such host" in listed[0]["reason"]
    # Looking again now asks the runtime; still absent, still remembered.
    again = ws.json("environment", "check", "--image", "library/python:3.11")
    assert again[0]["available"] is False and len(runtime_calls(fake)) == len(calls) + 2
    # Once the image is there, a check (of every remembered image) finds it and forgets the absence.
    open(fake + ".has", "w").close()
    found = ws.json("environment", "check")
    assert [(i["image"], i["available"], i["source"]) for i in found] == [("library/python:3.11", True, "local")]
    assert ws.json("environment", "list-images") == []


def test_the_server_looks_again_for_a_remembered_image_off_the_job_path(make_ws, tmp_path):
    fake = fake_runtime(tmp_path)
    ws = make_ws({"CAIRN_CONTAINER_RUNTIME": fake, "CAIRN_IMAGE_RECHECK_SECONDS": "1"})
    ws.write("job.yml", "command: echo hi\nenvironment: {image: ghost:1}\n")
    ws.wait_status(ws.json("job", "create", "-f", "job.yml")["name"], "Completed")
    n = len(runtime_calls(fake))
    # No job runs, yet the server asks again once the entry is older than the TTL.
    wait_for(lambda: len(runtime_calls(fake)) > n, timeout=15, what="the server's recheck")
    open(fake + ".has", "w").close()
    wait_for(lambda: ws.json("environment", "list-images") == [], timeout=15, what="the absence forgotten")
