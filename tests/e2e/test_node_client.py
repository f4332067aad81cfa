"""An independent MLflow client, the npm package `mlflow`, against the server (tests/node)."""
import os
import shutil
import subprocess

import pytest

NODE_DIR = os.path.join(os.path.dirname(__file__), "..", "node")


def test_the_npm_mlflow_client_works_against_the_server(ws):
    if not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "mlflow")):
        if not shutil.which("npm"):
            pytest.skip("npm is not installed")
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent"], cwd=NODE_DIR, check=True, timeout=300)
    ws.run("job", "list")
    env = dict(os.environ, MLFLOW_URL=ws.server_info()["url"], MLFLOW_TOKEN=ws.token())
    p = subprocess.run(["node", "--test", "client.test.js"], cwd=NODE_DIR, env=env, capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
    assert "# pass 2" in p.stdout
