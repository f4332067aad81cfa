"""The studio in a real headless Chromium (tests/browser/studio.mjs, playwright-core): jobs run through the CLI,
then the pages a user opens. Screenshots of every page are kept in $CAIRN_TEST_ARTIFACTS (default
build/test-artifacts/studio)."""
import json
import os
import re
import subprocess
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
BROWSER = os.path.join(HERE, "..", "browser")
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))

ARTS = """\
import json, os, struct, zlib
os.makedirs("outputs/model", exist_ok=True)
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)
raw = b"".join(b"\\x00" + b"\\xff\\x00\\x00" * 4 for _ in range(4))  # 4x4 red
png = b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
open("outputs/confusion_matrix.png", "wb").write(png)
open("outputs/data.csv", "w").write("a,b\\n" + "".join(f"{i},\\"x,{i}\\"\\n" for i in range(1500)))
open("outputs/metrics.json", "w").write(json.dumps({"acc": 0.9, "nested": {"k": [1, 2]}}))
open("outputs/estimator.html", "w").write("<html><body><p id=est>LogisticRegression</p><script>parent.document.title='pwned'</script></body></html>")
open("outputs/model/MLmodel", "w").write("artifact_path: model\\nflavors:\\n  python_function:\\n    loader_module: mlflow.sklearn\\n  sklearn:\\n    sklearn_version: 1.2.1\\nrun_id: abc\\nsignature:\\n  inputs: '[{\\"type\\": \\"double\\"}]'\\n")
"""

CURVE = """\
import sys, time
import cairn_mlflow as mlflow
lr = float(sys.argv[1])
for step in range(5):
    mlflow.log_metric("acc", 1 - lr / (step + 1), step=step)
"""


def call(ws, method, path, body):
    import urllib.request
    req = urllib.request.Request(ws.server_info()["url"] + path, data=json.dumps(body).encode(), method=method,
                                 headers={"Authorization": "Bearer " + ws.token(), "Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read() or b"{}")


@pytest.mark.skipif(not os.path.exists("/usr/bin/chromium"), reason="chromium is not installed")
def test_studio_pages_in_a_real_browser(make_ws):
    # Five slots: a running pipeline's step, the jobs canceled from the pages and the live job run together.
    ws = make_ws({"CAIRN_LOCAL_SLOTS": "5"})
    out = os.environ.get("CAIRN_TEST_ARTIFACTS") or os.path.join(ROOT, "build", "test-artifacts", "studio")
    os.makedirs(out, exist_ok=True)
    ws.write("src/curve.py", CURVE)
    ws.write("done.yml", """
code: src
command: mkdir -p outputs && echo model weights > outputs/model.txt && echo done
environment: azureml:x@latest
tags: {team: vision}
""")
    ws.run("job", "create", "-f", "done.yml", "-n", "done_job", "--stream")
    ws.run("job", "create", "-f", "done.yml", "-n", "other_job", "--stream")
    ws.write("src/arts.py", ARTS)
    ws.write("arts.yml", "code: src\ncommand: /usr/bin/python3 arts.py\nenvironment: azureml:x@latest\ntags: {team: nlp}\n")
    ws.run("job", "create", "-f", "arts.yml", "-n", "arts_job", "--stream")
    call(ws, "POST", "/api/2.0/mlflow/runs/log-batch", {"run_id": "arts_job", "metrics": [
        {"key": "final_acc", "value": 0.97, "timestamp": 1700000000000, "step": 0}] + [
        {"key": "epoch_loss", "value": 1.0 / (i + 1), "timestamp": 1700000000000 + i, "step": i} for i in range(3)] + [
        {"key": f"{split}/acc", "value": 0.5 + i / 10, "timestamp": 1700000000000 + i, "step": i}
        for split in ("train", "val") for i in range(3)]})
    for chunk in range(10):  # a 10,000-step curve: drawn downsampled, zoomed at full resolution
        call(ws, "POST", "/api/2.0/mlflow/runs/log-batch", {"run_id": "arts_job", "metrics": [
            {"key": "long_curve", "value": (i % 97) / 97.0, "timestamp": 1700000000000 + i, "step": i}
            for i in range(chunk * 1000, chunk * 1000 + 1000)]})
    # A curve on the finished job, and params that differ between the two.
    call(ws, "POST", "/api/2.0/mlflow/runs/log-batch", {"run_id": "done_job", "metrics": [
        {"key": "loss", "value": 1.0 / (i + 1), "timestamp": 1700000000000 + i, "step": i} for i in range(500)],
        "params": [{"key": "lr", "value": "0.1"}, {"key": "layers", "value": "3"}]})
    # System metrics as a job's supervisor logs them (it samples every 2 s; this job ended sooner).
    call(ws, "POST", "/api/2.0/mlflow/runs/log-batch", {"run_id": "done_job", "metrics": [
        {"key": "system/cpu_utilization_percentage", "value": 10.0 + i, "timestamp": 1700000000000 + 2000 * i, "step": i}
        for i in range(5)]})
    call(ws, "POST", "/api/2.0/mlflow/runs/log-batch", {"run_id": "other_job", "metrics": [
        {"key": "loss", "value": 2.0 / (i + 1), "timestamp": 1700000000000 + i, "step": i} for i in range(500)],
        "params": [{"key": "lr", "value": "0.01"}, {"key": "layers", "value": "3"}]})
    # A metric each of the two logs once, for the compare page's bars.
    for run, acc in (("done_job", 0.91), ("other_job", 0.87)):
        call(ws, "POST", "/api/2.0/mlflow/runs/log-batch", {"run_id": run, "metrics": [
            {"key": "test_acc", "value": acc, "timestamp": 1700000001000, "step": 0}]})
    ws.write("sweep.yml", """
type: sweep
trial:
  code: src
  command: /usr/bin/python3 curve.py ${{search_space.lr}}
  environment: {image: python}
sampling_algorithm: grid
search_space:
  lr: {type: choice, values: [0.1, 0.5, 0.9]}
objective: {primary_metric: acc, goal: maximize}
limits: {max_concurrent_trials: 2}
""")
    ws.run("job", "create", "-f", "sweep.yml", "-n", "sweep_job", "--stream", timeout=120)
    # Pipelines: one run, the same resubmitted (every step reused), and one still running when the page opens.
    ws.write("pipe.yml", """
type: pipeline
jobs:
  make: {command: "echo data > ${{outputs.o}}/d", environment: azureml:x@latest, outputs: {o: }}
  use: {command: "cat ${{inputs.i}}/d", environment: azureml:x@latest, inputs: {i: "${{parent.jobs.make.outputs.o}}"}}
""")
    ws.run("job", "create", "-f", "pipe.yml", "-n", "pipe_first", "--stream")
    ws.run("job", "create", "-f", "pipe.yml", "-n", "pipe_reused", "--stream")
    ws.write("pipe_live.yml", """
type: pipeline
settings: {force_rerun: true}
jobs:
  make: {command: "echo data > ${{outputs.o}}/d", environment: azureml:x@latest, outputs: {o: }}
  slow: {command: "while [ ! -e outputs/gate ]; do sleep 0.1; done; cat ${{inputs.i}}/d", environment: azureml:x@latest, inputs: {i: "${{parent.jobs.make.outputs.o}}"}}
""")
    # The step's gate is in its own outputs: a job sees nothing else of the machine.
    gate = os.path.join(ws.home, "runs", "pipe_live_slow", "artifacts", "outputs", "gate")
    ws.run("job", "create", "-f", "pipe_live.yml", "-n", "pipe_live")
    ws.write("sleep.yml", "command: sleep 120\nenvironment: azureml:x@latest\n")
    ws.run("job", "create", "-f", "sleep.yml", "-n", "sleeper")
    ws.run("job", "create", "-f", "sleep.yml", "-n", "to_cancel")
    ws.write("live.yml", "command: 'sleep 8; echo hello from the job'\nenvironment: azureml:x@latest\n")
    ws.run("job", "create", "-f", "live.yml", "-n", "live_job")
    # An MLflow run logged from outside any job (a laptop's), with a param, a metric and an artifact.
    laptop_exp = call(ws, "POST", "/api/2.0/mlflow/experiments/create", {"name": "laptop"})["experiment_id"]
    laptop_run = call(ws, "POST", "/api/2.0/mlflow/runs/create", {"experiment_id": laptop_exp, "run_name": "from_laptop",
                                                                  "start_time": 1700000000000})["run"]["info"]["run_id"]
    call(ws, "POST", "/api/2.0/mlflow/runs/log-batch", {"run_id": laptop_run, "params": [{"key": "depth", "value": "7"}],
                                                        "metrics": [{"key": "auc", "value": 0.91, "timestamp": 1700000000000, "step": 0}]})
    import urllib.request
    put = urllib.request.Request(ws.server_info()["url"] + f"/api/2.0/mlflow-artifacts/artifacts/{laptop_exp}/{laptop_run}/artifacts/notes/readme.txt",
                                 data=b"hello", method="PUT", headers={"Authorization": "Bearer " + ws.token()})
    urllib.request.urlopen(put).read()
    got = urllib.request.Request(ws.server_info()["url"] + "/api/2.0/mlflow/runs/get?run_id=done_job",
                                 headers={"Authorization": "Bearer " + ws.token()})
    job_exp = json.loads(urllib.request.urlopen(got).read())["run"]["info"]["experiment_id"]
    login = ws.run("studio", "--page", "/#/jobs").stdout.strip()
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/login\?code=[0-9a-f]+&next=/%23/jobs", login), login

    cfg = {"server": ws.server_info()["url"], "login": login, "done": "done_job", "live": "live_job",
           "live_line": "hello from the job", "sleeper": "sleeper", "sweep": "sweep_job",
           "output_path": "artifacts/outputs/model.txt", "compare": ["done_job", "other_job"], "out": out,
           "pipeline": "pipe_first", "pipeline_reused": "pipe_reused", "pipeline_live": "pipe_live",
           "gate": gate, "job_experiment": job_exp, "laptop_experiment": laptop_exp,
           "laptop_run": laptop_run, "arts": "arts_job", "to_cancel": "to_cancel"}
    browsed = False
    try:
        p = subprocess.run(["node", os.path.join(BROWSER, "studio.mjs"), json.dumps(cfg)], capture_output=True,
                           text=True, timeout=180, cwd=BROWSER)
        browsed = p.returncode == 0
    finally:
        # When the browser stopped early, the jobs it was meant to end are ended here (the gate opened, the rest
        # canceled), so the failure reports itself rather than processes left behind. Not after a full run: the
        # checks below are that the page's own buttons ended them.
        if not browsed:
            try:
                open(cfg["gate"], "w").close()
            except OSError:  # the step never started: its cancel below ends it
                pass
            for name in ("sleeper", "to_cancel", "live_job", "pipe_live"):
                ws.run("job", "cancel", "-n", name, check=False)
    assert p.returncode == 0, p.stderr + p.stdout
    results = json.loads(p.stdout.strip().splitlines()[-1])
    assert results["live_status_before"] != "Completed"  # it changed while the page was open
    # No layout shift while live data arrive (a job reaching Completed on its page, a canceled job's row, a
    # pipeline's boxes), measured by the browser's Layout Instability API, which does see an induced shift.
    assert results["shifts_control"] and results["shifts_control"][0]["value"] > 0, results["shifts_control"]
    for page in ("overview", "jobs", "pipeline"):
        assert results[f"shifts_{page}"] == [], (page, results[f"shifts_{page}"])
    assert results["downloaded"] == "model weights\n"
    # The job's fields read as text, never JSON; where it ran (no image registered: this host), and nothing empty.
    fields = dict(results["job_fields"])
    assert not [v for v in fields.values() if v.startswith(("{", "["))], fields
    assert fields["resources"] == "instance_count 1, shm_size 2g", fields
    assert fields["runs in"].startswith("this host"), fields
    assert "distribution" not in fields and all(fields.values()), fields
    assert results["rerun_editor_kept"] is True  # an overview read that lands after the click leaves the editor
    assert results["key_metrics"] == "loss 0.002 · test_acc 0.91"  # the latest of the 500 points logged, then the other
    assert results["workspace_name"] == "workspace home" and results["workspace_title"] == ws.home  # the header names it
    assert results["sweep_key_metrics"] == "acc 0.98"  # the sweep shows its best trial's
    assert any("loss" in s for s in results["chart_series"])
    # System metrics have a view of their own, against time, and stay out of the metrics view.
    assert results["monitoring_keys"] == ["system/cpu_utilization_percentage"]
    assert results["monitoring_x"] == "timestamp"
    assert "system/cpu_utilization_percentage" not in results["metric_keys"]
    assert sorted(results["parallel_lines"]) == ["sweep_job_0", "sweep_job_1", "sweep_job_2"]
    assert "sweep_job_0" in results["best_trial"]  # lr 0.1 keeps acc highest
    assert results["differing_params"] == ["lr"]
    assert results["compare_metrics"] == ["loss", "test_acc"] and results["compare_lines"] == ["done_job", "other_job"]
    # test_acc, logged once by each, is a bar per run (the longer one the larger value), not a chart.
    bars = {run: (width, value) for run, width, value in results["compare_bars"]}
    assert bars["done_job"][1] == "0.91" and bars["other_job"][1] == "0.87", bars
    assert bars["done_job"][0] > bars["other_job"][0] > 0, bars
    assert "test_acc" not in results["compare_chart_keys"] and "loss" in results["compare_chart_keys"], results["compare_chart_keys"]
    assert ws.job("to_cancel")["status"] == "Canceled"
    # Both themes: text and badges at WCAG AA (4.5:1) against what is behind them; the dark one is dark.
    for scheme in ("light", "dark"):
        c = results[f"contrast_{scheme}"]
        assert min(c["title"], c["reason"], c["link"], c["badge"]) >= 4.5, (scheme, c)
    assert results["contrast_dark"]["bg"] != results["contrast_light"]["bg"]
    # A 390 px phone: no page scrolls sideways.
    assert all(v <= 0 for v in results["phone_overflow"].values()), results["phone_overflow"]
    assert "lr0.1" in results["params"].replace(" ", "")
    assert ws.job("sleeper")["status"] == "Canceled"
    # Pipelines: steps nested under their pipeline, the graph's boxes and data edge, reused steps marked.
    assert results["steps_hidden"] == 0 and results["steps_shown"] == ["pipe_first_make", "pipe_first_use"]
    assert results["trials_hidden"] == 0  # a sweep's trials are nested under it too
    assert results["cursor_is_second"]  # ↓ twice: the second row; Enter opened it
    assert results["filtered_statuses"] == ["Completed"] and "status=Completed" in results["filter_url"]
    assert "expand=pipe_first" in results["filter_url"]
    assert results["url_filter_applied"] == "Canceled"
    assert results["click_during_refresh"] == "#/jobs/done_job", results["click_during_refresh"]
    # The column chooser offers the params the jobs log; chosen columns show each job's value, sort numerically
    # (0.01 before 0.1 before 0.5), and stay in the URL across a reload.
    assert "param:lr" in results["chooser_params"] and "param:layers" in results["chooser_params"], results["chooser_params"]
    assert results["chooser_head"] == ["status", "name", "display_name", "compute", "created", "duration", "metrics",
                                       "param:lr", "metric:loss"], results["chooser_head"]
    rows = {name: (lr, loss) for name, lr, loss in results["chooser_rows"]}
    assert rows["done_job"][0] == "0.1" and rows["other_job"][0] == "0.01", rows
    assert rows["done_job"][1] not in ("", None), rows
    with_lr = [lr for _, lr, _ in results["chooser_rows"] if lr]
    assert with_lr == sorted(with_lr, key=float), with_lr
    order = [name for name, _, _ in results["chooser_rows"]]
    assert order.index("other_job") < order.index("done_job"), order
    assert "cols=" in results["chooser_url"] and "param%3Alr" in results["chooser_url"], results["chooser_url"]
    assert results["chooser_head_after_reload"] == results["chooser_head"]
    assert [s for s, _ in results["graph_steps"]] == ["make", "use"]
    assert all("status-completed" in c for _, c in results["graph_steps"])
    assert results["graph_edges"] == ["make->use"]
    assert results["reused_steps"] == ["make", "use"]
    # MLflow's URLs: a job's run opens the job, an artifact its file, a run logged elsewhere a page of its own.
    assert results["mlflow_job_title"].startswith("done_job")
    assert results["marked"] == "artifacts/outputs/model.txt"
    # Previews: an image with its natural size, a CSV as a table of the first 1,000 rows (quotes honoured),
    # JSON pretty-printed with line numbers, HTML in a frame without scripts, an MLflow model's flavors.
    assert results["png_size"] == [4, 4]
    assert results["csv_rows"] == 1001 and results["csv_cell"] == "x,0"
    assert results["json_lines"] >= 6 and results["json_first"] == "{"
    assert results["html_sandbox"] == "" and "LogisticRegression" in results["html_srcdoc"]
    assert results["title_after_html"] != "pwned"
    assert results["mlmodel_flavors"] == "python_function, sklearn"
    # A folder downloads as one zip: every file, byte for byte (checked by Python's zipfile, CRCs included).
    import zipfile
    with zipfile.ZipFile(results["zip_path"]) as z:
        assert z.testzip() is None
        names = sorted(z.namelist())
        assert "outputs/model/MLmodel" in names and "outputs/data.csv" in names, names
        assert z.read("outputs/metrics.json") == open(os.path.join(ws.home, "runs/arts_job/artifacts/outputs/metrics.json"), "rb").read()
    # Inputs and outputs as rows with their locations; tags and properties edited from the page.
    assert results["output_rows"] == [["o", "azureml://jobs/pipe_first_make/outputs/o"]]
    assert results["input_link"] == "#/jobs/pipe_first_make/outputs"
    # Rerun from the page: a located error for bad YAML, then the edited job with the original's code.
    assert results["rerun_error"].startswith("the edited YAML:"), results["rerun_error"]
    again, first = ws.job("rerun_job"), ws.job("done_job")
    assert again["command"].endswith("echo rerun from the studio") and again["code"] == first["code"]
    assert ws.run("job", "download", "-n", "rerun_job", "--output-name", "default", "--download-path",
                  os.path.join(ws.dir, "rr")).returncode == 0
    arts = ws.job("arts_job")
    assert arts["tags"] == {"stage": "prod"} and arts["properties"]["reviewed"] == "yes"
    # A metric logged once is a value; a 3-step curve's axis counts steps in integers.
    assert results["single_values"] == [["final_acc", "0.97"]]
    # Charts grouped by key prefix: those without one first, then "train", then "val", each under its heading.
    assert results["curve_keys"] == ["epoch_loss", "long_curve", "train/acc", "val/acc"], results["curve_keys"]
    assert results["chart_groups"] == ["metrics", "train", "val"], results["chart_groups"]
    assert results["chart_group_keys"] == {"": ["epoch_loss", "long_curve"], "train": ["train/acc"], "val": ["val/acc"]}
    # Zoom: a drag over the 10,000-step curve (first drawn from ~2,000 points) fetches that range whole.
    assert results["zoom_before"] <= 2100 and results["zoom_zoomed"] == "true", results
    assert 20 <= results["zoom_after"] < results["zoom_before"], results
    assert results["zoom_ticks"] and all(re.fullmatch(r"\d+", t) for t in results["zoom_ticks"]), results
    assert len(results["x_ticks"]) >= 2 and all(re.fullmatch(r"\d+", t) for t in results["x_ticks"]), results["x_ticks"]
    # Relative time: seconds since the first point (the 3 points were logged 1 ms apart).
    assert results["relative_ticks"] and results["relative_ticks"][0] == "0", results["relative_ticks"]
    assert len(set(results["relative_ticks"])) == len(results["relative_ticks"]), results["relative_ticks"]  # no "0, 0, 0.001"
    assert "depth" in results["laptop_params"] and "7" in results["laptop_params"]
    assert results["laptop_artifacts"] == ["notes"]
    assert results["laptop_nested"] == ["notes/readme.txt"]
    assert results["experiment_runs"] == [laptop_run]
    for page in ("jobs", "job-overview", "job-logs", "job-metrics", "job-monitoring", "job-outputs", "job-canceled",
                 "sweep-trials", "compare", "pipeline-graph", "pipeline-live", "mlflow-run", "preview-image", "preview-csv", "job-io", "job-rerun", "theme-dark", "phone-jobs", "phone-pipeline"):
        assert os.path.getsize(os.path.join(out, f"{page}.png")) > 1000

    # A used or unknown sign-in link is refused; the API without a session is too.
    import urllib.error
    import urllib.request
    for link in (login, ws.server_info()["url"] + "/login?code=nope"):
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(link)
        assert e.value.code == 403
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(ws.server_info()["url"] + "/api/v1/jobs")
    assert e.value.code == 401


def test_jobs_summary_carries_each_jobs_key_metrics(ws):
    """The jobs table's one read: each job's latest metric values (non-finite ones as strings, a few keys at
    most), a sweep showing its best trial's."""
    import urllib.request
    ws.write("job.yml", "command: 'true'\nenvironment: azureml:x@latest\n")
    for n in ("plain", "logged"):
        ws.run("job", "create", "-f", "job.yml", "-n", n, "--stream")
    call(ws, "POST", "/api/2.0/mlflow/runs/log-batch", {"run_id": "logged", "metrics": [
        {"key": "a_loss", "value": 0.5, "timestamp": 1, "step": 0},
        {"key": "a_loss", "value": 0.25, "timestamp": 2, "step": 1},
        {"key": "a_nan", "value": "NaN", "timestamp": 1, "step": 0},
        *[{"key": f"k{i:02d}", "value": i, "timestamp": 1, "step": 0} for i in range(40)]],
        "params": [{"key": "lr", "value": "0.1"}, {"key": "note", "value": "x" * 300}]})
    req = urllib.request.Request(ws.server_info()["url"] + "/api/v1/jobs?view=summary",
                                 headers={"Authorization": "Bearer " + ws.token()})
    with urllib.request.urlopen(req) as r:
        jobs = {j["name"]: j for j in json.loads(r.read())}
    assert "metrics" not in jobs["plain"]
    # The latest value of each key, keys in name order, the first 32 of 42.
    assert jobs["logged"]["metrics"] == {"a_loss": 0.25, "a_nan": "NaN", **{f"k{i:02d}": i for i in range(30)}}
    # Its params (the column chooser's), long values cut at 256 bytes; none for a job that logged none.
    assert jobs["logged"]["params"] == {"lr": "0.1", "note": "x" * 256} and "params" not in jobs["plain"]
