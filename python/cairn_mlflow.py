"""Log to a Cairn job's run without the mlflow package: the same REST calls, standard library only.

Inside a Cairn job nothing needs configuring: MLFLOW_TRACKING_URI, MLFLOW_RUN_ID and MLFLOW_TRACKING_TOKEN
are set. Elsewhere, set them yourself (the workspace token is in ~/.cairn/token).

    import cairn_mlflow as mlflow
    mlflow.log_param("lr", 0.1)
    for step in range(10):
        mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
    mlflow.log_artifact("model.pkl")
"""
import http.client
import json
import math
import os
import time
import urllib.error
import urllib.parse
import urllib.request

__all__ = ["log_metric", "log_metrics", "log_param", "log_params", "set_tag", "set_tags", "log_artifact",
           "get_run", "MlflowError"]


class MlflowError(Exception):
    """The server refused a call; `error_code` is MLflow's (e.g. INVALID_PARAMETER_VALUE)."""

    def __init__(self, status, error_code, message):
        super().__init__(f"{error_code}: {message} (HTTP {status})")
        self.status, self.error_code, self.message = status, error_code, message


def _uri():
    uri = os.environ.get("MLFLOW_TRACKING_URI", "")
    if not uri.startswith("http"):
        raise MlflowError(0, "BAD_REQUEST", "MLFLOW_TRACKING_URI must be the http:// address of the server")
    return uri.rstrip("/")


def _run_id(run_id):
    rid = run_id or os.environ.get("MLFLOW_RUN_ID")
    if not rid:
        raise MlflowError(0, "BAD_REQUEST", "no run: pass run_id or set MLFLOW_RUN_ID")
    return rid


def _call(method, path, body=None, query=None, data=None, content_type="application/json", retries=5):
    url = _uri() + path + ("?" + urllib.parse.urlencode(query, doseq=True) if query else "")
    headers = {"Content-Type": content_type}
    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    if token:
        headers["Authorization"] = "Bearer " + token
    payload = data if data is not None else (json.dumps(body).encode() if body is not None else None)
    for attempt in range(retries + 1):
        req = urllib.request.Request(url, data=payload, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=120) as resp:
                raw = resp.read()
                return json.loads(raw) if raw and raw.strip().startswith(b"{") else raw
        except urllib.error.HTTPError as e:
            raw = e.read()
            # Like the mlflow client: 5xx and 429 are retried (writes are idempotent on the server).
            if (e.code >= 500 or e.code == 429) and attempt < retries:
                time.sleep(min(2 ** attempt, 30))
                continue
            try:
                err = json.loads(raw)
                raise MlflowError(e.code, err.get("error_code", "UNKNOWN"), err.get("message", "")) from None
            except ValueError:
                raise MlflowError(e.code, "UNKNOWN", raw.decode(errors="replace")) from None
        except (urllib.error.URLError, ConnectionError, http.client.HTTPException, TimeoutError):
            # A refused or reset connection, or one closed before the answer (the server restarting):
            # tried again, as the mlflow client's urllib3 retries do.
            if attempt < retries:
                time.sleep(min(2 ** attempt, 30))
                continue
            raise


def _value(v):
    v = float(v)
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    return v


def log_metric(key, value, step=0, run_id=None, timestamp=None):
    _call("POST", "/api/2.0/mlflow/runs/log-metric",
          {"run_id": _run_id(run_id), "key": key, "value": _value(value),
           "timestamp": timestamp or int(time.time() * 1000), "step": int(step or 0)})


def log_metrics(metrics, step=0, run_id=None):
    now = int(time.time() * 1000)
    items = [{"key": k, "value": _value(v), "timestamp": now, "step": int(step or 0)} for k, v in metrics.items()]
    for i in range(0, len(items), 1000):
        _call("POST", "/api/2.0/mlflow/runs/log-batch", {"run_id": _run_id(run_id), "metrics": items[i:i + 1000]})


def log_param(key, value, run_id=None):
    _call("POST", "/api/2.0/mlflow/runs/log-parameter", {"run_id": _run_id(run_id), "key": key, "value": str(value)})


def log_params(params, run_id=None):
    items = [{"key": k, "value": str(v)} for k, v in params.items()]
    for i in range(0, len(items), 100):
        _call("POST", "/api/2.0/mlflow/runs/log-batch", {"run_id": _run_id(run_id), "params": items[i:i + 100]})


def set_tag(key, value, run_id=None):
    _call("POST", "/api/2.0/mlflow/runs/set-tag", {"run_id": _run_id(run_id), "key": key, "value": str(value)})


def set_tags(tags, run_id=None):
    items = [{"key": k, "value": str(v)} for k, v in tags.items()]
    for i in range(0, len(items), 100):
        _call("POST", "/api/2.0/mlflow/runs/log-batch", {"run_id": _run_id(run_id), "tags": items[i:i + 100]})


def get_run(run_id=None):
    return _call("GET", "/api/2.0/mlflow/runs/get", query={"run_id": _run_id(run_id)})["run"]


def log_artifact(local_path, artifact_path=None, run_id=None):
    """Uploads a file, or every file of a folder, under the run's artifacts (like mlflow.log_artifact)."""
    info = get_run(run_id)["info"]
    base = info["artifact_uri"]
    if not base.startswith("mlflow-artifacts:/"):
        raise MlflowError(0, "BAD_REQUEST", "unsupported artifact_uri " + base)
    prefix = base[len("mlflow-artifacts:/"):].strip("/")
    if artifact_path:
        prefix += "/" + artifact_path.strip("/")
    paths = []
    if os.path.isdir(local_path):
        root_name = os.path.basename(os.path.normpath(local_path))
        for root, _, files in os.walk(local_path):
            for f in files:
                full = os.path.join(root, f)
                paths.append((full, root_name + "/" + os.path.relpath(full, local_path)))
    else:
        paths.append((local_path, os.path.basename(local_path)))
    for full, rel in paths:
        with open(full, "rb") as f:
            data = f.read()
        _call("PUT", "/api/2.0/mlflow-artifacts/artifacts/" + urllib.parse.quote(prefix + "/" + rel),
              data=data, content_type="application/octet-stream")
