"""Data assets, datastores and models: real files, real jobs reading them in each form and mode."""
import http.server
import json
import os
import pickle
import socketserver
import threading
import time

import pytest

from conftest import wait_for


def blob_count(ws):
    return sum(len(files) for _, _, files in os.walk(os.path.join(ws.home, "blobs")))


def job_out(ws, name, yaml):
    ws.write(f"{name}.yml", yaml)
    p = ws.run("job", "create", "-f", f"{name}.yml", "-n", name, "--stream", check=False)
    return p, ws.job(name)


def test_data_versions_dedup_latest_archive(ws):
    ws.write("d/a.txt", "alpha\n")
    ws.write("d/sub/b.txt", "beta\n")
    v1 = ws.json("data", "create", "--name", "ds", "--path", "d", "--type", "uri_folder")
    assert v1["version"] == "1" and v1["type"] == "uri_folder" and v1["storage"]["kind"] == "blobs"
    stored = blob_count(ws)
    # The same content again: a new version, nothing new stored.
    v2 = ws.json("data", "create", "--name", "ds", "--path", "d")
    assert v2["version"] == "2" and blob_count(ws) == stored
    assert v2["storage"]["snapshot"] == v1["storage"]["snapshot"]
    # Change one file: one new blob.
    ws.write("d/a.txt", "ALPHA\n")
    v3 = ws.json("data", "create", "--name", "ds", "--path", "d", "--version", "v3")
    assert v3["version"] == "v3" and blob_count(ws) == stored + 1
    # A version is never replaced.
    p = ws.run("data", "create", "--name", "ds", "--path", "d", "--version", "v3", check=False)
    assert p.returncode == 1 and "already exists" in p.stderr
    assert ws.json("data", "show", "--name", "ds", "--label", "latest")["version"] == "v3"
    assert [d["version"] for d in ws.json("data", "list", "--name", "ds")] == ["v3", "2", "1"]
    ws.run("data", "archive", "--name", "ds", "--version", "v3")
    assert ws.json("data", "show", "--name", "ds", "--label", "latest")["version"] == "2"
    assert [d["version"] for d in ws.json("data", "list", "--name", "ds")] == ["2", "1"]
    ws.run("data", "restore", "--name", "ds", "--version", "v3")
    assert ws.json("data", "show", "-n", "ds", "-v", "1")["version"] == "1"
    p = ws.run("data", "show", "-n", "ds", "-v", "9", check=False)
    assert p.returncode == 3 and "no version '9'" in p.stderr


def test_data_file_errors_name_file_line_and_field(ws):
    ws.write("bad.yml", "name: x\ntype: uri_flder\npath: nowhere/\n")
    p = ws.run("data", "create", "-f", "bad.yml", check=False)
    assert p.returncode == 2
    assert "bad.yml:1:1: error: type: expected uri_file, uri_folder or mltable" in p.stderr
    assert "bad.yml:3:7: error: path: no such file or folder" in p.stderr
    ws.write("typo.yml", "name: x\npaht: a\n")
    p = ws.run("data", "create", "-f", "typo.yml", check=False)
    assert "typo.yml:2:1: error: unknown key 'paht' (did you mean 'path'?)" in p.stderr
    assert ws.json("data", "list") == []  # nothing half-made


def test_inputs_from_assets_in_every_form_and_mode(ws):
    ws.write("d/a.txt", "alpha\n")
    ws.write("one.csv", "x,y\n1,2\n")
    ws.run("data", "create", "--name", "folder", "--path", "d")
    ws.run("data", "create", "--name", "file", "--path", "one.csv", "--type", "uri_file")
    # ro_mount (default): the asset's files, read-only for real.
    p, j = job_out(ws, "ro", """
command: cat ${{inputs.f}} ${{inputs.d}}/a.txt && (echo x > ${{inputs.d}}/a.txt && echo WROTE || echo REFUSED)
environment: azureml:x@latest
inputs:
  d: {type: uri_folder, path: azureml:folder:1}
  f: {type: uri_file, path: azureml:file@latest}
""")
    assert j["status"] == "Completed", p.stderr
    assert "x,y" in p.stdout and "alpha" in p.stdout and "REFUSED" in p.stdout and "WROTE" not in p.stdout
    # download: a private, writable copy; the asset is unchanged afterwards.
    p, j = job_out(ws, "dl", """
command: echo changed > ${{inputs.d}}/a.txt && cat ${{inputs.d}}/a.txt
environment: azureml:x@latest
inputs:
  d: {type: uri_folder, path: azureml:folder:1, mode: download}
""")
    assert j["status"] == "Completed" and "changed" in p.stdout, j.get("status_reason")
    p, j = job_out(ws, "again", "command: cat ${{inputs.d}}/a.txt\nenvironment: azureml:x@latest\n"
                   "inputs:\n  d: {type: uri_folder, path: azureml:folder:1}\n")
    assert "alpha" in p.stdout
    # direct: the path itself.
    p, j = job_out(ws, "direct", "command: echo ${{inputs.d}}\nenvironment: azureml:x@latest\n"
                   "inputs:\n  d: {type: uri_folder, path: azureml:folder:1, mode: direct}\n")
    assert j["status"] == "Completed" and "/views/" in p.stdout
    # An unknown asset is refused at submission, naming the input.
    ws.write("missing.yml", "command: 'true'\nenvironment: azureml:x@latest\n"
             "inputs:\n  d: {type: uri_folder, path: azureml:nope:1}\n")
    p = ws.run("job", "create", "-f", "missing.yml", check=False)
    assert p.returncode != 0 and "inputs.d" in p.stderr and "'nope'" in p.stderr


def test_datastore_and_job_output_uris_and_output_registration(ws, tmp_path):
    store = tmp_path / "store"
    (store / "shared").mkdir(parents=True)
    (store / "shared" / "big.bin").write_bytes(b"z" * 4096)
    ws.run("datastore", "create", "--name", "lake", "--path", str(store))
    assert ws.json("datastore", "show", "--name", "lake")["path"] == str(store)
    # A datastore input is the folder itself (no copy), read-only.
    p, j = job_out(ws, "ds", """
command: >-
  wc -c < ${{inputs.d}}/big.bin && echo ok > ${{outputs.result}}/r.txt && echo m > ${{outputs.model}}/m.txt &&
  (touch ${{inputs.d}}/new 2>/dev/null && echo WROTE || echo REFUSED)
environment: azureml:x@latest
inputs:
  d: {type: uri_folder, path: azureml://datastores/lake/paths/shared/}
outputs:
  result: {type: uri_folder, path: azureml://datastores/lake/paths/results/, name: results, version: "7"}
  model: {type: uri_folder, name: trained}
""")
    assert j["status"] == "Completed", p.stderr
    assert "4096" in p.stdout and "REFUSED" in p.stdout
    assert not (store / "shared" / "new").exists()
    # The output with a datastore path was written straight into the datastore.
    assert (store / "results" / "r.txt").read_text() == "ok\n"
    # Outputs with a name became data assets.
    reg = ws.json("data", "show", "--name", "results", "--version", "7")
    assert reg["path"] == "azureml://jobs/ds/outputs/result/paths/"
    assert ws.json("data", "show", "--name", "trained", "--label", "latest")["version"] == "1"
    # A later job reads them: by asset, and by job-output URI.
    p, j = job_out(ws, "reader", """
command: cat ${{inputs.a}}/r.txt ${{inputs.b}}/m.txt
environment: azureml:x@latest
inputs:
  a: {type: uri_folder, path: azureml:results:7}
  b: {type: uri_folder, path: azureml://jobs/ds/outputs/model/paths/}
""")
    assert j["status"] == "Completed" and "ok" in p.stdout and "m" in p.stdout, p.stderr
    # Unknown datastore: a clear error at submission.
    ws.write("nods.yml", "command: 'true'\nenvironment: azureml:x@latest\ninputs:\n"
             "  d: {type: uri_folder, path: azureml://datastores/nope/paths/x}\n")
    p = ws.run("job", "create", "-f", "nods.yml", check=False)
    assert p.returncode != 0 and "datastore 'nope' does not exist" in p.stderr


def test_mltable_eval_materialises_its_files(ws):
    ws.write("tbl/MLTable", "paths:\n  - file: ./titanic.csv\n  - pattern: ./parts/*.csv\n"
             "transformations:\n  - read_delimited: {delimiter: ',', header: from_first_file}\n")
    ws.write("tbl/titanic.csv", "name,age\nx,1\n")
    ws.write("tbl/parts/p1.csv", "p1\n")
    ws.write("tbl/parts/p2.txt", "not matched\n")
    ws.run("data", "create", "--name", "tbl", "--path", "tbl", "--type", "mltable")
    p, j = job_out(ws, "eval", """
command: cd ${{inputs.t}} && find . -type f | sort
environment: azureml:x@latest
inputs:
  t: {type: mltable, path: azureml:tbl:1, mode: eval_download}
""")
    assert j["status"] == "Completed", p.stderr
    files = [l for l in p.stdout.splitlines() if l.startswith("./")]
    assert files == ["./parts/p1.csv", "./titanic.csv"]
    p, j = job_out(ws, "evalm", """
command: cat ${{inputs.t}}/titanic.csv && (echo x > ${{inputs.t}}/titanic.csv 2>/dev/null && echo WROTE || echo REFUSED)
environment: azureml:x@latest
inputs:
  t: {type: mltable, path: azureml:tbl:1, mode: eval_mount}
""")
    assert j["status"] == "Completed" and "name,age" in p.stdout and "REFUSED" in p.stdout


class _Handler(http.server.BaseHTTPRequestHandler):
    body = b"v1\n"
    etag = '"1"'
    hits = []
    delay = 0.0

    def do_GET(self):
        type(self).hits.append((self.path, self.headers.get("If-None-Match")))
        if self.path == "/missing.csv":
            self.send_response(404)
            self.end_headers()
            return
        if self.headers.get("If-None-Match") == type(self).etag:
            self.send_response(304)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("ETag", type(self).etag)
        self.send_header("Content-Length", str(len(type(self).body)))
        self.end_headers()
        if self.path == "/slow.csv":
            for _ in range(100):
                time.sleep(0.2)
                self.wfile.write(b"")
        self.wfile.write(type(self).body)

    def log_message(self, *a):
        pass


@pytest.fixture
def web():
    srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    _Handler.hits.clear()
    _Handler.body, _Handler.etag = b"v1\n", '"1"'
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def test_url_inputs_are_cached_and_revalidated(ws, web):
    ws.run("data", "create", "--name", "remote", "--path", f"{web}/data.csv", "--type", "uri_file")
    yml = "command: cat ${{inputs.r}}\nenvironment: azureml:x@latest\ninputs:\n  r: {type: uri_file, path: azureml:remote:1}\n"
    p, j = job_out(ws, "u1", yml)
    assert j["status"] == "Completed" and "v1" in p.stdout
    p, j = job_out(ws, "u2", yml)
    assert "v1" in p.stdout
    # The second fetch revalidated with the ETag and the server answered 304.
    assert [h for h in _Handler.hits if h[0] == "/data.csv"] == [("/data.csv", None), ("/data.csv", '"1"')]
    # The file changes: the next job gets the new content.
    _Handler.body, _Handler.etag = b"v2\n", '"2"'
    p, j = job_out(ws, "u3", yml)
    assert "v2" in p.stdout
    # A 404 fails the job with the URL and the status in its reason.
    p, j = job_out(ws, "u404", "command: 'true'\nenvironment: azureml:x@latest\n"
                   f"inputs:\n  r: {{type: uri_file, path: {web}/missing.csv}}\n")
    assert j["status"] == "Failed" and "HTTP 404" in j["status_reason"] and "missing.csv" in j["status_reason"]


def test_a_slow_download_can_be_canceled(ws, web):
    ws.write("slow.yml", "command: 'true'\nenvironment: azureml:x@latest\n"
             f"inputs:\n  r: {{type: uri_file, path: {web}/slow.csv}}\n")
    ws.run("job", "create", "-f", "slow.yml", "-n", "slow")
    wait_for(lambda: any(h[0] == "/slow.csv" for h in _Handler.hits), what="the download to start")
    t0 = time.time()
    ws.run("job", "cancel", "-n", "slow")
    j = ws.wait_status("slow", ["Canceled", "Failed"], timeout=15)
    assert j["status"] == "Canceled" and time.time() - t0 < 10
    import subprocess
    assert "slow.csv" not in subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout


def test_model_from_a_run_registered_and_downloaded(ws, tmp_path):
    # A job trains a scikit-learn model and logs it to its MLflow run through the artifact API, laid out as
    # mlflow.sklearn.log_model lays it out (MLmodel + model.pkl under the artifact path "model").
    ws.write("src/train.py", """
import os, pickle
import cairn_mlflow as mlflow
from sklearn.linear_model import LinearRegression
m = LinearRegression().fit([[0], [1], [2]], [0, 2, 4])
os.makedirs("model", exist_ok=True)
pickle.dump(m, open("model/model.pkl", "wb"))
open("model/MLmodel", "w").write("flavors:\\n  sklearn:\\n    pickled_model: model.pkl\\n")
mlflow.log_artifact("model/model.pkl", "model")
mlflow.log_artifact("model/MLmodel", "model")
""")
    p, j = job_out(ws, "train", "code: src\ncommand: /usr/bin/python3 train.py\nenvironment: azureml:x@latest\n")
    assert j["status"] == "Completed", p.stderr
    m = ws.json("model", "create", "--name", "reg", "--path", "runs:/train/model", "--type", "mlflow_model")
    assert m["version"] == "1" and m["type"] == "mlflow_model" and m["storage"]["kind"] == "blobs"
    # runs:/ works as a job input too.
    p, j = job_out(ws, "runsin", "command: ls ${{inputs.m}}\nenvironment: azureml:x@latest\n"
                   "inputs:\n  m: {type: mlflow_model, path: runs:/train/model}\n")
    assert j["status"] == "Completed" and "MLmodel" in p.stdout and "model.pkl" in p.stdout
    # Registered means kept: the run's files may go, the model stays.
    os.remove(os.path.join(ws.home, "runs", "train", "artifacts", "model", "model.pkl"))
    ws.run("model", "download", "--name", "reg", "--version", "1", "--download-path", str(tmp_path))
    with open(tmp_path / "reg" / "model.pkl", "rb") as f:
        model = pickle.load(f)
    assert abs(model.predict([[5]])[0] - 10) < 1e-9
    assert (tmp_path / "reg" / "MLmodel").exists()
    # A local file as a model, and a model as a job input.
    ws.write("w.bin", "weights")
    assert ws.json("model", "create", "--name", "local", "--path", "w.bin")["type"] == "custom_model"
    p, j = job_out(ws, "use", "command: ls ${{inputs.m}} && cat ${{inputs.w}}\nenvironment: azureml:x@latest\n"
                   "inputs:\n  m: {type: mlflow_model, path: azureml:reg:1}\n  w: {type: custom_model, path: azureml:local@latest}\n")
    assert j["status"] == "Completed" and "MLmodel" in p.stdout and "weights" in p.stdout, p.stderr


def test_the_hash_cache_never_hides_a_change_and_remote_clients_upload_over_http(ws):
    path = ws.write("c/f.txt", "AAAA\n")
    st = os.stat(path)
    v1 = ws.json("data", "create", "--name", "c", "--path", "c")
    # Same size, same mtime, new content: the change time still differs, so the file is hashed again.
    with open(path, "w") as f:
        f.write("BBBB\n")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    v2 = ws.json("data", "create", "--name", "c", "--path", "c")
    assert v2["storage"]["snapshot"] != v1["storage"]["snapshot"]
    ws.run("job", "create", "-f", ws.write("j.yml", "command: cat ${{inputs.d}}/f.txt\nenvironment: azureml:x@latest\n"
                                          "inputs:\n  d: {type: uri_folder, path: azureml:c:2}\n"), "-n", "cat2", "--stream")
    assert "BBBB" in ws.run("job", "stream", "-n", "cat2").stdout
    # A CLI pointed at the workspace by URL (another machine) sends the files over HTTP.
    ws.write("r/g.txt", "remote\n")
    remote = dict(ws.env, CAIRN_WORKSPACE=ws.server_info()["url"], CAIRN_TOKEN=ws.token(), CAIRN_HOME=os.path.join(ws.dir, "no-home"))
    import subprocess
    from conftest import CAIRN, wait_for
    p = subprocess.run([CAIRN, "data", "create", "--name", "r", "--path", "r", "-o", "json"], env=remote,
                       capture_output=True, text=True, cwd=ws.dir)
    assert p.returncode == 0, p.stderr
    assert "1 new" in p.stderr
    assert ws.json("data", "show", "--name", "r", "--version", "1")["storage"]["kind"] == "blobs"


def test_a_model_logged_the_mlflow_3_way_is_registered_from_runs_uri(ws, tmp_path):
    """mlflow.sklearn.log_model in MLflow 3 keeps the files with a logged model whose source run is the run;
    runs:/<run>/model resolves to it through the tracking store, as MLflow resolves it."""
    import urllib.request
    from sklearn.tree import DecisionTreeClassifier
    ws.run("job", "list")
    url, token = ws.server_info()["url"], ws.token()

    def call(method, path, body=None, data=None):
        req = urllib.request.Request(url + path, method=method, data=data if data is not None else json.dumps(body).encode(),
                                     headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
        with urllib.request.urlopen(req) as r:
            raw = r.read()
            return json.loads(raw) if raw.startswith(b"{") else raw

    run = call("POST", "/api/2.0/mlflow/runs/create", {"experiment_id": "0"})["run"]["info"]["run_id"]
    info = call("POST", "/api/2.0/mlflow/logged-models",
                {"experiment_id": "0", "name": "model", "model_type": "sklearn", "source_run_id": run})["model"]["info"]
    clf = DecisionTreeClassifier(random_state=0).fit([[0, 0], [1, 1], [0, 1], [1, 0]], [0, 1, 1, 0])
    base = info["artifact_uri"][len("mlflow-artifacts:/"):]
    for name, body in [("MLmodel", b"flavors:\n  sklearn: {pickled_model: model.pkl}\n"), ("model.pkl", pickle.dumps(clf))]:
        call("PUT", f"/api/2.0/mlflow-artifacts/artifacts/{base}/{name}", data=body)
    m = ws.json("model", "create", "--name", "tree", "--path", f"runs:/{run}/model", "--type", "mlflow_model")
    assert m["version"] == "1" and m["storage"]["source"] == f"runs:/{run}/model"
    ws.run("model", "download", "--name", "tree", "--download-path", str(tmp_path))
    with open(tmp_path / "tree" / "model.pkl", "rb") as f:
        assert list(pickle.load(f).predict([[1, 1], [0, 0]])) == [1, 0]
    p = ws.run("model", "create", "--name", "nope", "--path", f"runs:/{run}/other", check=False)
    assert p.returncode == 3 and "no logged model named 'other'" in p.stderr


def test_assets_in_the_preview_syntaxes(ws):
    ws.write("d/a.txt", "alpha\n")
    ws.run("data", "create", "--name", "pv", "--path", "d")
    # Preview 1: `data:` with the asset, `{inputs.x}` placeholders, compute.target.
    p, j = job_out(ws, "p1", """
command: cat {inputs.d}/a.txt
code: {local_path: .}
environment: azureml:x@latest
inputs:
  d: {data: azureml:pv:1, mode: mount}
""")
    assert j["status"] == "Completed" and "alpha" in p.stdout, p.stderr
    # Preview 2: `dataset:` names the asset.
    p, j = job_out(ws, "p2", """
command: cat ${{inputs.d}}/a.txt
environment: azureml:x@latest
inputs:
  d: {dataset: azureml:pv:1}
""")
    assert j["status"] == "Completed" and "alpha" in p.stdout, p.stderr
