"""Bad input: compiler-style diagnostics, all at once; nothing is submitted."""
import json
import os
import time


def test_every_diagnostic_at_once_with_places_and_suggestions(ws):
    ws.write("job.yml", """\
$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json   
comand: echo hi
command: python train.py --lr ${{inputs.lr}} --out ${{outputs.model}}
inputs:
  learning_rate: 0.1
  data:
    type: uri_fiel
    path: https://example.com/x.csv
environment:
  image: python
resources:
  instance_count: two
limits:
  timeout: 10
  timeout: 20
""")
    p = ws.run("job", "validate", "-f", "job.yml", check=False)
    assert p.returncode == 2
    assert p.stdout == ""
    assert p.stderr == (
        "job.yml:2:1: error: unknown key 'comand' (did you mean 'command'?)\n"
        "job.yml:3:10: error: command: ${{inputs.lr}} names no input (inputs are: data, learning_rate)\n"
        "job.yml:3:10: error: command: ${{outputs.model}} names no output (the job has no outputs)\n"
        "job.yml:7:11: error: inputs.data.type: unknown input type 'uri_fiel' (did you mean 'uri_file'?)\n"
        "job.yml:12:19: error: resources.instance_count: expected a positive integer, got \"two\"\n"
        "job.yml:15:3: error: duplicate key 'timeout' (first defined on line 14)\n")
    assert not os.path.exists(os.path.join(ws.home, "cairn.db")) or ws.json("job", "list") == []


def test_create_refuses_invalid_files_before_uploading_anything(ws):
    ws.write("src/a.py", "")
    ws.write("job.yml", "code: src\ncommand: echo ${{inputs.missing}}\nenvironment: {image: python}\n")
    p = ws.run("job", "create", "-f", "job.yml", check=False)
    assert p.returncode == 2
    assert p.stderr == "job.yml:2:10: error: command: ${{inputs.missing}} names no input (the job has no inputs)\n"
    assert not os.path.exists(os.path.join(ws.home, "server.json"))  # the server was not even needed


def test_set_errors_and_typed_values(ws):
    ws.write("job.yml", "command: echo ${{inputs.n}}\ninputs: {n: 1}\nenvironment: {image: python}\n")
    p = ws.run("job", "validate", "-f", "job.yml", "--set", "resources.instance_count=zero", check=False)
    assert p.returncode == 2
    assert p.stderr == "--set resources.instance_count: error: resources.instance_count: expected a positive integer, got \"zero\"\n"
    p = ws.run("job", "validate", "-f", "job.yml", "--set", "command.x=1", check=False)
    assert p.stderr == "--set: error: 'command.x': 'command' is a string, not a mapping\n"
    p = ws.run("job", "validate", "-f", "job.yml", "--set", "novalue", check=False)
    assert p.stderr == "--set: error: 'novalue': expected KEY=VALUE (for example inputs.epochs=3)\n"
    p = ws.run("job", "validate", "-f", "job.yml", "--set", "inputs.n=4")
    assert p.stdout == "job.yml: valid command job (GA syntax)\n"


def test_yaml_syntax_errors_and_wrong_shapes(ws):
    ws.write("broken.yml", "command: [echo,\n  environment: x\n")
    p = ws.run("job", "validate", "-f", "broken.yml", check=False)
    assert p.returncode == 2
    assert p.stderr.startswith("broken.yml:3:1: error: invalid YAML: ")
    ws.write("list.yml", "- command: echo\n")
    p = ws.run("job", "validate", "-f", "list.yml", check=False)
    assert p.stderr == "list.yml:1:1: error: a job file must be a mapping of keys to values, got a list\n"
    ws.write("sweep.yml", "type: sweep\ncommand: x\n")
    p = ws.run("job", "validate", "-f", "sweep.yml", check=False)
    assert p.stderr == ("sweep.yml:1:1: error: missing required key 'trial' (the command each trial runs)\n"
                        "sweep.yml:2:1: error: command: in a sweep job this belongs under trial:\n")


def test_an_alias_bomb_is_refused_quickly(ws):
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        prev = f"*a{i-1}"
        lines.append(f"a{i}: &a{i} [{','.join([prev] * 9)}]")
    lines.append("command: echo hi\nenvironment: {image: python}")
    ws.write("bomb.yml", "\n".join(lines) + "\n")
    start = time.time()
    p = ws.run("job", "validate", "-f", "bomb.yml", check=False)
    assert time.time() - start < 5
    assert p.returncode == 2
    assert p.stderr == ("bomb.yml: error: the document expands to more than 200000 nodes (an alias bomb?); "
                        "refusing to read it\n")


def test_a_huge_file_or_command_is_refused(ws):
    path = os.path.join(ws.dir, "huge.yml")
    with open(path, "w") as f:
        f.write("environment: {image: python}\ncommand: echo ")
        f.write("x" * (100 * 1024 * 1024))
        f.write("\n")
    start = time.time()
    p = ws.run("job", "create", "-f", "huge.yml", check=False)
    assert time.time() - start < 5
    assert p.returncode == 2
    assert p.stderr == "huge.yml: error: file is 104857644 bytes; a job file may be at most 4194304 bytes\n"


def test_read_only_fields_from_a_saved_job_are_accepted(ws):
    ws.write("job.yml", "command: echo saved\nenvironment: {image: python}\n")
    ws.run("job", "create", "-f", "job.yml", "-n", "orig", "--save-as", "saved.yml", "-o", "none")
    ws.wait_status("orig", "Completed")
    p = ws.run("job", "validate", "-f", "saved.yml", check=False)
    assert p.stderr == "saved.yml: error: a job named 'orig' already exists in this workspace; choose another --name\n"
    p = ws.run("job", "create", "-f", "saved.yml", "-n", "copy", "--stream")
    assert "\nsaved\n" in p.stdout


def test_requests_without_the_token_are_refused(ws):
    import urllib.error
    import urllib.request
    ws.run("job", "list")
    url = ws.server_info()["url"]
    try:
        urllib.request.urlopen(url + "/api/v1/jobs")
        raise AssertionError("expected 401")
    except urllib.error.HTTPError as e:
        assert e.code == 401
        body = json.loads(e.read())
        assert body["error"]["code"] == "Unauthenticated"
    req = urllib.request.Request(url + "/api/v1/jobs", headers={"Authorization": "Bearer " + ws.token()})
    assert json.loads(urllib.request.urlopen(req).read()) == []
    # A body of the wrong shape is the client's mistake: a 400 that says so, not a 500.
    req = urllib.request.Request(url + "/api/v1/computes", data=json.dumps({"name": 5}).encode(), method="POST",
                                 headers={"Authorization": "Bearer " + ws.token()})
    try:
        urllib.request.urlopen(req)
        raise AssertionError("expected 400")
    except urllib.error.HTTPError as e:
        assert e.code == 400
        assert json.loads(e.read())["error"]["message"].startswith("malformed compute: ")
    assert oct(os.stat(os.path.join(ws.home, "token")).st_mode & 0o777) == "0o600"
    assert ws.server_info()["host"] == "127.0.0.1"


def test_an_unreadable_code_folder_is_reported():
    import pathlib
    import shutil
    import subprocess
    import tempfile
    from conftest import CAIRN
    if not shutil.which("setpriv"):
        import pytest
        pytest.skip("setpriv (util-linux) is needed to drop to an unprivileged user")
    tmp_path = pathlib.Path(tempfile.mkdtemp(dir="/tmp"))  # a folder an unprivileged user can enter
    os.chmod(tmp_path, 0o755)
    (tmp_path / "src").mkdir(mode=0o700)
    (tmp_path / "job.yml").write_text("command: ls\ncode: src\nenvironment: {image: python}\n")
    os.chmod(tmp_path / "job.yml", 0o644)
    p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", CAIRN, "job", "validate",
                        "-f", "job.yml"], cwd=tmp_path, capture_output=True, text=True,
                       env={"PATH": os.environ["PATH"], "HOME": str(tmp_path), "CAIRN_HOME": str(tmp_path / "h")})
    shutil.rmtree(tmp_path)
    assert p.returncode == 2
    assert p.stderr == f"job.yml:2:7: error: code: folder 'src' is not readable ({tmp_path}/src)\n"
