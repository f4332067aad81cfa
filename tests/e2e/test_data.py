"""Code snapshots, inputs, outputs and `job download`."""
import http.server
import os
import socketserver
import threading

import pytest

from conftest import wait_for


def blob_count(ws):
    root = os.path.join(ws.home, "blobs")
    return sum(len(files) for _, _, files in os.walk(root))


def test_code_snapshot_honours_amlignore_and_uploads_nothing_twice(ws):
    ws.write("src/train.py", "print('hi')\n")
    ws.write("src/data/big.bin", "x" * 1000)
    ws.write("src/notes.tmp", "scratch\n")
    ws.write("src/.amlignore", "*.tmp\ndata/\n")
    ws.write("src/.gitignore", "train.py\n")  # .amlignore wins over .gitignore
    ws.write("job.yml", "command: find . -type f -not -path './outputs*' | sort\ncode: src\nenvironment: {image: python}\n")
    p = ws.run("job", "create", "-f", "job.yml", "-n", "c1", "--stream")
    files = [l for l in p.stdout.splitlines() if l.startswith("./")]
    assert files == ["./.amlignore", "./.gitignore", "./train.py"]
    before = blob_count(ws)
    assert before == 3
    ws.run("job", "create", "-f", "job.yml", "-n", "c2", "--stream")
    assert blob_count(ws) == before  # unchanged code: nothing new stored
    assert ws.job("c1")["code"] == ws.job("c2")["code"]


def test_code_with_a_link_leaving_the_folder_is_refused(ws):
    ws.write("src/ok.py", "")
    os.symlink("/etc/passwd", os.path.join(ws.dir, "src", "passwd"))
    ws.write("job.yml", "command: ls\ncode: src\nenvironment: {image: python}\n")
    p = ws.run("job", "create", "-f", "job.yml", check=False)
    assert p.returncode == 2
    assert p.stderr == (f"ERROR: code: passwd links to /etc/passwd, outside {ws.dir}/src; a snapshot does not "
                        "follow links out of its folder\n")
    assert ws.json("job", "list") == []


def test_missing_and_unreadable_code_folders(ws):
    ws.write("job.yml", "command: ls\ncode: nowhere\nenvironment: {image: python}\n")
    p = ws.run("job", "create", "-f", "job.yml", check=False)
    assert p.returncode == 2
    assert p.stderr == f"job.yml:2:7: error: code: 'nowhere' does not exist (looked for {ws.dir}/nowhere)\n"
    p = ws.run("job", "create", "-f", "missing.yml", check=False)
    assert p.returncode == 2
    assert p.stderr == "missing.yml: error: no such file\n"


def test_local_inputs_read_only_mount_download_and_literal(ws):
    ws.write("data/iris.csv", "a,b\n1,2\n")
    ws.write("folder/one.txt", "1\n")
    ws.write("job.yml", """\
command: |
  cat ${{inputs.csv}}
  ls ${{inputs.dir}}
  echo ${{inputs.n}}
  echo changed > ${{inputs.dir}}/one.txt && echo download-writable
  echo changed > ${{inputs.csv}} || echo ro-refused
inputs:
  csv:
    type: uri_file
    path: data/iris.csv
  dir:
    type: uri_folder
    path: ./folder
    mode: download
  n: 7
environment: {image: python}
""")
    p = ws.run("job", "create", "-f", "job.yml", "-n", "in1", "--stream")
    assert "a,b\n1,2\none.txt\n7\ndownload-writable\n" in p.stdout
    assert "ro-refused" in p.stdout  # a read-only input refuses writes, even from root
    with open(os.path.join(ws.dir, "data/iris.csv")) as f:
        assert f.read() == "a,b\n1,2\n"


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def http_dir(tmp_path):
    (tmp_path / "iris.csv").write_text("sepal,petal\n5.1,1.4\n")
    handler = lambda *a, **k: _Handler(*a, directory=str(tmp_path), **k)
    server = socketserver.TCPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_http_inputs_are_downloaded_and_direct_passes_the_uri(ws, http_dir):
    ws.write("job.yml", f"""\
command: cat ${{{{inputs.iris}}}}; echo uri=${{{{inputs.raw}}}}
inputs:
  iris:
    type: uri_file
    path: {http_dir}/iris.csv
  raw:
    type: uri_file
    path: {http_dir}/iris.csv
    mode: direct
environment: {{image: python}}
""")
    p = ws.run("job", "create", "-f", "job.yml", "-n", "web1", "--stream")
    assert "sepal,petal\n5.1,1.4\n" in p.stdout
    assert f"uri={http_dir}/iris.csv\n" in p.stdout
    ws.write("bad.yml", f"command: cat ${{{{inputs.x}}}}\ninputs:\n  x:\n    type: uri_file\n    path: {http_dir}/missing.csv\nenvironment: {{image: python}}\n")
    p = ws.run("job", "create", "-f", "bad.yml", "-n", "web2", "--stream", check=False)
    assert p.returncode == 1
    assert ws.job("web2")["status_reason"] == f"inputs.x: cannot download {http_dir}/missing.csv: HTTP 404"


def test_outputs_and_download_layout(ws):
    ws.write("job.yml", """\
command: |
  echo "hello world" > ${{outputs.hello_output}}/helloworld.txt
  mkdir -p outputs/sub && echo in-outputs > outputs/sub/a.txt
  echo live > logs/progress.log
outputs:
  hello_output:
environment: {image: python}
""")
    ws.run("job", "create", "-f", "job.yml", "-n", "out1", "--stream")
    dl = os.path.join(ws.dir, "dl")
    ws.run("job", "download", "-n", "out1", "--download-path", dl + "/default")
    got = sorted(os.path.relpath(os.path.join(r, f), dl + "/default") for r, _, fs in os.walk(dl + "/default") for f in fs)
    assert "artifacts/outputs/sub/a.txt" in got
    assert "artifacts/logs/progress.log" in got
    assert "artifacts/user_logs/std_log.txt" in got
    assert not any(g.startswith("named-outputs") for g in got)
    ws.run("job", "download", "-n", "out1", "--output-name", "hello_output", "--download-path", dl + "/named")
    got = sorted(os.path.relpath(os.path.join(r, f), dl + "/named") for r, _, fs in os.walk(dl + "/named") for f in fs)
    assert got == ["named-outputs/hello_output/helloworld.txt"]
    with open(dl + "/named/named-outputs/hello_output/helloworld.txt") as f:
        assert f.read() == "hello world\n"
    ws.run("job", "download", "-n", "out1", "--all", "--download-path", dl + "/all")
    assert os.path.exists(dl + "/all/named-outputs/hello_output/helloworld.txt")
    assert os.path.exists(dl + "/all/artifacts/outputs/sub/a.txt")
    p = ws.run("job", "download", "-n", "out1", "--output-name", "nope", check=False)
    assert p.returncode == 3
    assert p.stderr == "ERROR: job 'out1' has no output named 'nope'\n"


def test_download_of_a_running_job_is_refused(ws):
    ws.write("job.yml", "command: sleep 20\nenvironment: {image: python}\n")
    ws.run("job", "create", "-f", "job.yml", "-n", "busy")
    ws.wait_status("busy", "Running")
    p = ws.run("job", "download", "-n", "busy", check=False)
    assert p.returncode == 1
    assert p.stderr == ("ERROR: This job is in state Running. Download is allowed only in states ['Completed', "
                        "'Failed', 'Canceled', 'NotResponding', 'Paused']\n")
    ws.run("job", "cancel", "-n", "busy")
