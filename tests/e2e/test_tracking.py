"""MLflow tracking: the REST API the mlflow client uses, the golden trace, jobs logging to their runs."""
import json
import os
import re
import urllib.error
import urllib.request

from conftest import CONFORMANCE

TRACE = os.path.join(CONFORMANCE, "mlflow", "client-trace-2.17.2.jsonl")
HELPER_JOB = """\
command: /usr/bin/python3 train.py
code: src
environment: {image: python}
experiment_name: tracked
"""
HELPER_SCRIPT = """\
import os
import cairn_mlflow as mlflow
mlflow.log_param("lr", 0.1)
for step in range(5):
    mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
mlflow.log_metrics({"acc": 0.9})
mlflow.set_tag("stage", "dev")
with open("weights.txt", "w") as f:
    f.write("w")
mlflow.log_artifact("weights.txt", "model")
try:
    mlflow.log_param("x", 1, run_id="someone_else")
except mlflow.MlflowError as e:
    print("refused:", e.error_code, e.status)
print("experiment", os.environ["MLFLOW_EXPERIMENT_ID"], os.environ["MLFLOW_EXPERIMENT_NAME"])
"""


def call(ws, method, path, body=None, query=None, token=None, data=None):
    url = ws.server_info()["url"] + path
    if query:
        url += "?" + urllib.parse.urlencode(query, doseq=True)
    payload = data if data is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url, data=payload, method=method,
                                 headers={"Authorization": "Bearer " + (token or ws.token()),
                                          "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req) as r:
            raw = r.read()
            return r.status, (json.loads(raw) if raw.startswith(b"{") else raw)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


import urllib.parse  # noqa: E402


def shape_ok(golden, ours, path="$"):
    """Every key of the golden answer is in ours, with the same JSON type, recursively."""
    if isinstance(golden, dict):
        assert isinstance(ours, dict), f"{path}: expected an object, got {ours!r}"
        for k, v in golden.items():
            assert k in ours, f"{path}.{k} missing in {json.dumps(ours)[:300]}"
            shape_ok(v, ours[k], f"{path}.{k}")
    elif isinstance(golden, list):
        assert isinstance(ours, list), f"{path}: expected a list"
        if golden and ours:
            shape_ok(golden[0], ours[0], path + "[0]")
    elif isinstance(golden, bool) or golden is None:
        pass
    elif isinstance(golden, (int, float)):
        assert isinstance(ours, (int, float)) or ours in ("NaN", "Infinity", "-Infinity"), f"{path}: {ours!r}"
    else:
        assert isinstance(ours, str), f"{path}: expected a string, got {ours!r}"


@__import__("pytest").mark.skipif(not os.path.exists(TRACE), reason="the golden MLflow trace is in ../shared, absent here")
def test_the_golden_client_trace_replays_with_the_same_statuses_and_shapes(ws):
    ws.run("job", "list")
    status, body = call(ws, "POST", "/api/2.0/mlflow/experiments/create", {"name": "trace-exp"})
    assert (status, body) == (200, {"experiment_id": "1"})
    ids = {}  # the trace's run ids -> ours
    with open(TRACE) as f:
        records = [json.loads(line) for line in f]
    for rec in records:
        path = rec["path"]
        if rec["method"] == "PUT" and path.endswith("/artifacts"):
            continue  # the recorder lost these file names
        for old, new in ids.items():
            path = path.replace(old, new)
        def sub(x):
            x = str(x)
            for old, new in ids.items():
                x = x.replace(old, new)
            return x
        query = {k: [sub(x) for x in (v if isinstance(v, list) else [v])] for k, v in (rec.get("params") or {}).items()}
        body = None
        if "json" in rec:
            text = rec["json"]
            for old, new in ids.items():
                text = text.replace(old, new)
            body = json.loads(text)
        data = b"golden trace bytes" if "data" in rec else None
        status, ours = call(ws, rec["method"], path, body, query, data=data)
        assert status == rec["status"], f"{rec['phase']} {rec['method']} {path}: {status} {ours}"
        if rec.get("resp") and rec["resp"].lstrip().startswith("{"):
            if rec["path"].endswith("runs/create"):
                golden_id = re.search(r'"run_id": "([0-9a-f]{32})"', rec["resp"]).group(1)
                ids[golden_id] = ours["run"]["info"]["run_id"]
            try:
                golden = json.loads(rec["resp"])
            except ValueError:
                continue  # the recorder cut some long answers short
            shape_ok(golden, ours)
    # The search with a filter and an order found the run the trace found.
    status, res = call(ws, "POST", "/api/2.0/mlflow/runs/search",
                       {"experiment_ids": ["1"], "filter": "metrics.m1 > 0.1 and params.p1 = 'v1'",
                        "order_by": ["metrics.m1 DESC"]})
    assert status == 200 and len(res["runs"]) == 1 and res["runs"][0]["info"]["run_name"] == "r1"


def test_writes_are_idempotent_and_limits_are_enforced(ws):
    ws.run("job", "list")
    _, run = call(ws, "POST", "/api/2.0/mlflow/runs/create", {"experiment_id": "0", "run_name": "idem"})
    rid = run["run"]["info"]["run_id"]
    assert re.fullmatch(r"[0-9a-f]{32}", rid)
    batch = {"run_id": rid, "metrics": [{"key": "m", "value": 1.5, "timestamp": "1700000000000", "step": 1},
                                        {"key": "m", "value": "NaN", "timestamp": 1700000000001, "step": 2}],
             "params": [{"key": "p", "value": "1"}]}
    for _ in range(3):  # the client retries POSTs: a replay must neither fail nor duplicate
        assert call(ws, "POST", "/api/2.0/mlflow/runs/log-batch", batch) == (200, {})
    _, hist = call(ws, "GET", "/api/2.0/mlflow/metrics/get-history", query={"run_id": rid, "metric_key": "m"})
    assert [(m["step"], m["value"]) for m in hist["metrics"]] == [(1, 1.5), (2, "NaN")]
    status, err = call(ws, "POST", "/api/2.0/mlflow/runs/log-parameter", {"run_id": rid, "key": "p", "value": "2"})
    assert status == 400 and err["error_code"] == "INVALID_PARAMETER_VALUE"
    assert err["message"] == (f"Changing param values is not allowed. Param with key='p' was already logged with "
                              f"value='1' for run ID='{rid}'. Attempted logging new value '2'.")
    too_many = {"run_id": rid, "params": [{"key": f"k{i}", "value": "v"} for i in range(101)]}
    status, err = call(ws, "POST", "/api/2.0/mlflow/runs/log-batch", too_many)
    assert status == 400
    assert err["message"] == ("A batch logging request can contain at most 100 params. Got 101 params. Please split "
                              "up params across multiple requests and try again.")
    status, err = call(ws, "POST", "/api/2.0/mlflow/runs/log-metric",
                       {"run_id": rid, "key": "../etc", "value": 1, "timestamp": 1})
    assert status == 400 and "Names may only contain" in err["message"]
    status, err = call(ws, "POST", "/api/2.0/mlflow/runs/log-batch", data=b"{not json")
    assert (status, err["error_code"]) == (400, "INVALID_PARAMETER_VALUE")
    status, err = call(ws, "GET", "/api/2.0/mlflow/registered-models/list")
    assert (status, err["error_code"]) == (404, "ENDPOINT_NOT_FOUND")
    status, err = call(ws, "GET", "/api/2.0/mlflow/runs/get", query={"run_id": "nope"})
    assert (status, err) == (404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "Run with id=nope not found"})
    for bad in ["../../etc/passwd", "/etc/passwd", "0/x/artifacts/../../../../etc/passwd"]:
        status, err = call(ws, "PUT", "/api/2.0/mlflow-artifacts/artifacts/" + bad, data=b"x")
        assert status in (400, 404), bad
    status, err = call(ws, "PUT", "/api/2.0/mlflow-artifacts/artifacts/0/%2E%2E/%2E%2E/x", data=b"x")
    assert status in (400, 404)
    huge = json.dumps({"run_id": rid, "params": [{"key": "k", "value": "x" * (40 << 20)}]}).encode()
    status, err = call(ws, "POST", "/api/2.0/mlflow/runs/log-batch", data=huge)
    assert status == 400 and err["message"].startswith(f"request body of {len(huge)} bytes exceeds the 32 MiB limit")
    status, err = call(ws, "POST", "/api/2.0/mlflow-artifacts/mpu/create/0/r/artifacts/big", {"path": "big", "num_parts": 2})
    assert status == 501 and err["message"].startswith("Multipart upload is not supported for the current artifact repository")


def test_a_job_logs_to_its_own_run_with_no_configuration(ws):
    ws.write("src/train.py", HELPER_SCRIPT)
    ws.write("job.yml", HELPER_JOB)
    p = ws.run("job", "create", "-f", "job.yml", "-n", "tracked1", "--stream")
    assert "refused: PERMISSION_DENIED 403" in p.stdout
    assert re.search(r"experiment \d+ tracked\n", p.stdout)
    job = ws.job("tracked1")
    assert job["metrics"] == {"acc": 0.9, "loss": 0.2}
    assert job["params"] == {"lr": "0.1"}
    lines = ws.run("job", "metrics", "-n", "tracked1", "--key", "loss", "-o", "csv").stdout.splitlines()
    assert lines[0] == "key,step,timestamp,value"
    rows = lines[1:]
    assert [(r.split(",")[0], r.split(",")[1], r.split(",")[3]) for r in rows] == [
        ("loss", "0", "1.0"), ("loss", "1", "0.5"), ("loss", "2", "0.3333333333333333"), ("loss", "3", "0.25"),
        ("loss", "4", "0.2")]
    # The run is finished with the job, and its artifacts are downloaded with the job's.
    _, run = call(ws, "GET", "/api/2.0/mlflow/runs/get", query={"run_id": "tracked1"})
    assert run["run"]["info"]["status"] == "FINISHED"
    dl = os.path.join(ws.dir, "dl")
    ws.run("job", "download", "-n", "tracked1", "--download-path", dl)
    with open(os.path.join(dl, "artifacts/model/weights.txt")) as f:
        assert f.read() == "w"
    _, found = call(ws, "POST", "/api/2.0/mlflow/runs/search",
                    {"experiment_ids": [run["run"]["info"]["experiment_id"]], "filter": "tags.stage = 'dev'"})
    assert [r["info"]["run_id"] for r in found["runs"]] == ["tracked1"]


def test_a_refused_job_leaves_no_run(ws):
    ws.write("job.yml", "command: 'true'\nenvironment: {image: python}\ncompute: azureml:nowhere\n")
    p = ws.run("job", "create", "-f", "job.yml", "-n", "ghost", check=False)
    assert p.returncode == 2
    p = ws.run("job", "metrics", "-n", "ghost", check=False)
    assert p.stderr == "ERROR: no job named 'ghost' in this workspace\n"
    status, _ = call(ws, "GET", "/api/2.0/mlflow/runs/get", query={"run_id": "ghost"})
    assert status == 404


def test_experiments_search_filters_and_orders(ws):
    ws.run("job", "list")
    for name, team in (("alpha-1", "a"), ("alpha-2", "b"), ("beta", "a")):
        _, e = call(ws, "POST", "/api/2.0/mlflow/experiments/create", {"name": name, "tags": [{"key": "team", "value": team}]})
    names = lambda res: [e["name"] for e in res["experiments"]]  # noqa: E731
    _, res = call(ws, "POST", "/api/2.0/mlflow/experiments/search",
                  {"filter": "name LIKE 'alpha%'", "order_by": ["name DESC"]})
    assert names(res) == ["alpha-2", "alpha-1"]
    _, res = call(ws, "POST", "/api/2.0/mlflow/experiments/search", {"filter": "tags.team = 'a'", "order_by": ["name"]})
    assert names(res) == ["alpha-1", "beta"]
    _, res = call(ws, "POST", "/api/2.0/mlflow/experiments/search", {"max_results": 2, "order_by": ["experiment_id"]})
    assert names(res) == ["Default", "alpha-1"] and "next_page_token" in res
    _, res2 = call(ws, "POST", "/api/2.0/mlflow/experiments/search",
                   {"max_results": 2, "order_by": ["experiment_id"], "page_token": res["next_page_token"]})
    assert names(res2) == ["alpha-2", "beta"] and "next_page_token" not in res2
    status, err = call(ws, "POST", "/api/2.0/mlflow/experiments/search", {"filter": "nonsense ~ 1"})
    assert status == 400 and err["message"] == "Invalid experiment filter clause 'nonsense ~ 1'"


def test_search_answers_runs_as_get_does_and_pages_in_order(ws):
    """runs/search writes its JSON by hand and loads a run's data only for the page: it must give what runs/get
    gives (strange strings, NaN, inputs included), and pages must follow the order across the whole experiment."""
    ws.run("job", "list")
    _, e = call(ws, "POST", "/api/2.0/mlflow/experiments/create", {"name": "paging"})
    exp = e["experiment_id"]
    ids = []
    for i in range(30):
        _, r = call(ws, "POST", "/api/2.0/mlflow/runs/create",
                    {"experiment_id": exp, "run_name": f"r{i}", "start_time": 1000 + i})
        rid = r["run"]["info"]["run_id"]
        ids.append(rid)
        batch = {"run_id": rid,
                 "metrics": [{"key": "acc", "value": (i * 7 % 30) / 30, "timestamp": 1, "step": 0},
                             {"key": "odd", "value": "NaN" if i % 2 else i, "timestamp": 1, "step": 0}],
                 "params": [{"key": "i", "value": str(i)}, {"key": "weird", "value": "é\"\\\n\u0001/\U0001F600"}],
                 "tags": [{"key": "group", "value": "even" if i % 2 == 0 else "odd"}]}
        assert call(ws, "POST", "/api/2.0/mlflow/runs/log-batch", batch) == (200, {})
    call(ws, "POST", "/api/2.0/mlflow/runs/log-inputs",
         {"run_id": ids[3], "datasets": [{"dataset": {"name": "d", "digest": "x", "source_type": "local",
                                                      "source": "{}"}, "tags": []}]})
    query = {"experiment_ids": [exp], "filter": "tags.group = 'odd' and params.i LIKE '%'",
             "order_by": ["metrics.acc DESC"], "max_results": 4}
    seen = []
    while True:
        status, page = call(ws, "POST", "/api/2.0/mlflow/runs/search", query)
        assert status == 200
        for run in page.get("runs", []):
            _, got = call(ws, "GET", "/api/2.0/mlflow/runs/get", query={"run_id": run["info"]["run_id"]})
            assert run == got["run"]
            seen.append(run)
        if "next_page_token" not in page:
            break
        query["page_token"] = page["next_page_token"]
    assert len(seen) == 15
    accs = [next(m["value"] for m in r["data"]["metrics"] if m["key"] == "acc") for r in seen]
    assert accs == sorted(accs, reverse=True)
    assert all(next(m["value"] for m in r["data"]["metrics"] if m["key"] == "odd") == "NaN" for r in seen)
    assert any(r["inputs"].get("dataset_inputs") for r in seen)


def test_mlflow_3_logged_models_follow_the_clients_log_model_sequence(ws):
    """The calls a 3.x client makes for mlflow.sklearn.log_model inside a run (spec section 10), in order."""
    ws.run("job", "list")
    _, e = call(ws, "POST", "/api/2.0/mlflow/experiments/create", {"name": "three"})
    exp = e["experiment_id"]
    _, r = call(ws, "POST", "/api/2.0/mlflow/runs/create", {"experiment_id": exp})
    rid = r["run"]["info"]["run_id"]
    call(ws, "POST", "/api/2.0/mlflow/runs/log-parameter", {"run_id": rid, "key": "C", "value": "1.0"})
    status, created = call(ws, "POST", "/api/2.0/mlflow/logged-models",
                           {"experiment_id": exp, "name": "model", "model_type": "sklearn", "source_run_id": rid,
                            "params": [{"key": "C", "value": "1.0"}],
                            "tags": [{"key": "mlflow.user", "value": "ada"}, {"key": "flavor", "value": "sklearn"}]})
    assert status == 200
    info = created["model"]["info"]
    mid = info["model_id"]
    assert re.fullmatch(r"m-[0-9a-f]{32}", mid)
    assert info["artifact_uri"] == f"mlflow-artifacts:/{exp}/models/{mid}/artifacts"
    assert info["status"] == "LOGGED_MODEL_PENDING" and info["creator_id"] == "ada"
    assert call(ws, "POST", "/api/2.0/mlflow/runs/outputs", {"run_id": rid, "models": [{"model_id": mid, "step": 0}]}) == (200, {})
    # Metrics at the model's step, carrying model_id and the dataset (unknown to a 2.x server, kept here).
    batch = {"run_id": rid, "metrics": [{"key": "acc", "value": 0.93, "timestamp": 5, "step": 0, "model_id": mid,
                                         "dataset_name": "iris", "dataset_digest": "abc", "run_id": rid}]}
    assert call(ws, "POST", "/api/2.0/mlflow/runs/log-batch", batch) == (200, {})
    for name, body in [("MLmodel", b"flavors: {}\n"), ("model.pkl", b"\x80\x04pickle")]:
        status, _ = call(ws, "PUT", f"/api/2.0/mlflow-artifacts/artifacts/{exp}/models/{mid}/artifacts/{name}", data=body)
        assert status == 200
    call(ws, "POST", "/api/2.0/mlflow/runs/log-model", {"run_id": rid, "model_json": json.dumps({"artifact_path": "model"})})
    status, done = call(ws, "PATCH", f"/api/2.0/mlflow/logged-models/{mid}", {"model_id": mid, "status": "LOGGED_MODEL_READY"})
    assert status == 200 and done["model"]["info"]["status"] == "LOGGED_MODEL_READY"

    _, got = call(ws, "GET", f"/api/2.0/mlflow/logged-models/{mid}")
    m = got["model"]
    assert m["data"]["params"] == [{"key": "C", "value": "1.0"}]
    assert m["data"]["metrics"] == [{"key": "acc", "value": 0.93, "timestamp": 5, "step": 0, "model_id": mid,
                                     "run_id": rid, "dataset_name": "iris", "dataset_digest": "abc"}]
    _, run = call(ws, "GET", "/api/2.0/mlflow/runs/get", query={"run_id": rid})
    assert run["run"]["outputs"] == {"model_outputs": [{"model_id": mid, "step": 0}]}
    _, listing = call(ws, "GET", f"/api/2.0/mlflow/logged-models/{mid}/artifacts/directories")
    assert sorted(f["path"] for f in listing["files"]) == ["MLmodel", "model.pkl"]
    status, raw = call(ws, "GET", f"/api/2.0/mlflow-artifacts/artifacts/{exp}/models/{mid}/artifacts/model.pkl")
    assert raw == b"\x80\x04pickle"

    # Another run uses the model; tags change; search filters, orders and pages.
    _, r2 = call(ws, "POST", "/api/2.0/mlflow/runs/create", {"experiment_id": exp})
    rid2 = r2["run"]["info"]["run_id"]
    assert call(ws, "POST", "/api/2.0/mlflow/runs/log-inputs", {"run_id": rid2, "models": [{"model_id": mid}]}) == (200, {})
    _, run2 = call(ws, "POST", "/api/2.0/mlflow/runs/search", {"experiment_ids": [exp], "filter": f"attributes.run_id = '{rid2}'"})
    assert run2["runs"][0]["inputs"] == {"model_inputs": [{"model_id": mid}]}
    others = []
    for i in range(3):
        _, o = call(ws, "POST", "/api/2.0/mlflow/logged-models", {"experiment_id": exp, "name": f"other{i}"})
        others.append(o["model"]["info"]["model_id"])
        call(ws, "POST", "/api/2.0/mlflow/runs/log-batch",
             {"run_id": rid, "metrics": [{"key": "acc", "value": 0.5 + i / 10, "timestamp": 6, "step": 0,
                                          "model_id": others[-1]}]})
    assert call(ws, "PATCH", f"/api/2.0/mlflow/logged-models/{mid}/tags", {"tags": [{"key": "stage", "value": "prod"}]}) == (200, {})
    assert call(ws, "DELETE", f"/api/2.0/mlflow/logged-models/{mid}/tags/flavor")[0] == 200
    _, found = call(ws, "POST", "/api/2.0/mlflow/logged-models/search",
                    {"experiment_ids": [exp], "filter": "metrics.acc > 0.55 AND name LIKE '%'",
                     "order_by": [{"field_name": "metrics.acc", "ascending": False}], "max_results": 2})
    assert [x["info"]["model_id"] for x in found["models"]] == [mid, others[2]]
    _, rest = call(ws, "POST", "/api/2.0/mlflow/logged-models/search",
                   {"experiment_ids": [exp], "filter": "metrics.acc > 0.55",
                    "order_by": [{"field_name": "metrics.acc", "ascending": False}], "max_results": 2,
                    "page_token": found["next_page_token"]})
    assert [x["info"]["model_id"] for x in rest["models"]] == [others[1]] and "next_page_token" not in rest
    _, tagged = call(ws, "POST", "/api/2.0/mlflow/logged-models/search", {"experiment_ids": [exp], "filter": "tags.stage = 'prod'"})
    assert [x["info"]["tags"] for x in tagged["models"]] == [[{"key": "mlflow.user", "value": "ada"}, {"key": "stage", "value": "prod"}]]
    status, err = call(ws, "POST", "/api/2.0/mlflow/logged-models/search", {"experiment_ids": [exp], "filter": "nonsense = 'x'"})
    assert status == 400 and err["error_code"] == "INVALID_PARAMETER_VALUE"

    # Deleted: gone from get and search; experiments lose tags too (3.x delete-experiment-tag).
    assert call(ws, "DELETE", f"/api/2.0/mlflow/logged-models/{others[0]}")[0] == 200
    status, err = call(ws, "GET", f"/api/2.0/mlflow/logged-models/{others[0]}")
    assert (status, err["error_code"]) == (404, "RESOURCE_DOES_NOT_EXIST")
    call(ws, "POST", "/api/2.0/mlflow/experiments/set-experiment-tag", {"experiment_id": exp, "key": "k", "value": "v"})
    assert call(ws, "POST", "/api/2.0/mlflow/experiments/delete-experiment-tag", {"experiment_id": exp, "key": "k"}) == (200, {})
    _, ex = call(ws, "GET", "/api/2.0/mlflow/experiments/get", query={"experiment_id": exp})
    assert "tags" not in ex["experiment"]
    status, err = call(ws, "PATCH", f"/api/2.0/mlflow/logged-models/{mid}", {"status": "LOGGED_MODEL_SOMETHING"})
    assert status == 400


MODEL_SCRIPT = """\
import json, os, urllib.error, urllib.request
def call(method, path, body):
    req = urllib.request.Request(os.environ["MLFLOW_TRACKING_URI"] + "/api/2.0/mlflow/" + path, method=method,
                                 data=json.dumps(body).encode(),
                                 headers={"Authorization": "Bearer " + os.environ["MLFLOW_TRACKING_TOKEN"]})
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())
exp = os.environ["MLFLOW_EXPERIMENT_ID"]
status, m = call("POST", "logged-models", {"experiment_id": exp, "name": "mine"})
mid = m["model"]["info"]["model_id"]
print("create", status, m["model"]["info"]["source_run_id"])
print("finalize", call("PATCH", "logged-models/" + mid, {"status": "LOGGED_MODEL_READY"})[0])
print("outputs", call("POST", "runs/outputs", {"run_id": os.environ["MLFLOW_RUN_ID"], "models": [{"model_id": mid}]})[0])
print("foreign", call("POST", "logged-models", {"experiment_id": exp, "source_run_id": "someone_else"})[0])
print("other", call("PATCH", "logged-models/" + os.environ["OTHER_MODEL"] + "/tags", {"tags": [{"key": "a", "value": "b"}]})[0])
"""


def test_a_jobs_token_may_log_models_for_its_own_run_only(ws):
    ws.run("job", "list")
    _, other = call(ws, "POST", "/api/2.0/mlflow/logged-models", {"experiment_id": "0", "name": "not-the-jobs"})
    ws.write("src/model.py", MODEL_SCRIPT)
    ws.write("job.yml", "command: /usr/bin/python3 model.py\ncode: src\nenvironment: {image: python}\n"
             f"environment_variables: {{OTHER_MODEL: {other['model']['info']['model_id']}}}\n")
    p = ws.run("job", "create", "-f", "job.yml", "-n", "modeller", "--stream")
    assert "create 200 modeller\n" in p.stdout
    assert "finalize 200\n" in p.stdout and "outputs 200\n" in p.stdout
    assert "foreign 403\n" in p.stdout and "other 403\n" in p.stdout
    _, run = call(ws, "GET", "/api/2.0/mlflow/runs/get", query={"run_id": "modeller"})
    assert len(run["run"]["outputs"]["model_outputs"]) == 1


def test_a_long_metric_is_downsampled_for_charts_keeping_its_extremes(ws):
    ws.write("job.yml", "command: echo hi\nenvironment: azureml:x@latest\n")
    name = ws.json("job", "create", "-f", "job.yml")["name"]
    ws.wait_status(name, "Completed")
    n = 20000
    for start in range(0, n, 1000):
        metrics = [{"key": "loss", "value": 1.0 / (1 + i) if i != 12345 else 99.0, "timestamp": 1700000000000 + i,
                    "step": i} for i in range(start, start + 1000)]
        assert call(ws, "POST", "/api/2.0/mlflow/runs/log-batch", {"run_id": name, "metrics": metrics}) == (200, {})
    status, full = call(ws, "GET", f"/api/v1/jobs/{name}/metrics", query={"key": "loss"})
    assert status == 200 and len(full["metrics"]["loss"]) == n
    status, small = call(ws, "GET", f"/api/v1/jobs/{name}/metrics", query={"key": "loss", "max_points": 300})
    points = small["metrics"]["loss"]
    assert status == 200 and small["total_points"] == {"loss": n} and 100 <= len(points) <= 300
    steps = [p["step"] for p in points]
    assert steps == sorted(steps) and steps[0] == 0 and steps[-1] == n - 1
    assert {"step": 12345, "timestamp": 1700000012345, "value": 99.0} in points  # the spike survives
    status, by_time = call(ws, "GET", f"/api/v1/jobs/{name}/metrics", query={"max_points": 50, "x": "timestamp"})
    assert status == 200 and len(by_time["metrics"]["loss"]) <= 50
