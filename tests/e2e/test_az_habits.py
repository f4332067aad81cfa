"""What an Azure ML user's files and habits expect of the CLI (issue: an az ml user's scripts and habits)."""
import os

import yaml

from conftest import wait_for


def test_the_jobs_own_pythonpath_comes_before_the_helper(ws):
    ws.write("job.yml", "command: echo \"pp=$PYTHONPATH\"\nenvironment: {image: python}\n"
                        "environment_variables: {PYTHONPATH: /opt/mine}\n")
    out = ws.run("job", "create", "-f", "job.yml", "--stream").stdout
    pp = next(line for line in out.splitlines() if line.startswith("pp="))[3:].split(":")
    assert pp[0] == "/opt/mine" and len(pp) >= 2, pp  # the helper after it: mlflow still reaches the server
    assert any(os.path.exists(os.path.join(d, "cairn_mlflow.py")) for d in pp[1:]), pp


def test_commands_run_under_bash_where_it_exists(ws):
    ws.write("env.sh", "export GREETING=hi\n")
    ws.write("job.yml", "command: source ./env.sh && [[ $GREETING == hi ]] && echo \"bash:$BASH_VERSION\"\n"
                        "code: .\nenvironment: {image: python}\n")
    p = ws.run("job", "create", "-f", "job.yml", "--stream", check=False)
    assert p.returncode == 0 and "bash:5." in p.stdout, p.stdout


def test_builtin_datastores_are_listed_and_cannot_be_deleted(ws):
    listed = {d["name"]: d for d in ws.json("datastore", "list")}
    for name in ("workspaceblobstore", "workspacefilestore", "workspaceartifactstore", "workspaceworkingdirectory"):
        assert name in listed and listed[name]["built_in"] is True
    assert listed["workspaceblobstore"]["is_default"] is True
    shown = ws.json("datastore", "show", "-n", "workspaceblobstore")
    assert shown["path"].endswith("/datastores/workspaceblobstore")
    p = ws.run("datastore", "delete", "-n", "workspaceblobstore", check=False)
    assert p.returncode != 0 and "built in" in p.stderr


def test_job_list_accepts_the_compute_as_the_table_prints_it(ws):
    ws.run("compute", "create", "-n", "cpu-cluster", "--type", "amlcompute")
    ws.write("job.yml", "command: echo hi\nenvironment: {image: python}\ncompute: azureml:cpu-cluster\n")
    name = ws.json("job", "create", "-f", "job.yml")["name"]
    ws.wait_status(name, "Completed")
    for form in ("azureml:cpu-cluster", "cpu-cluster"):
        assert [j["name"] for j in ws.json("job", "list", "--compute", form)] == [name], form
    assert ws.json("job", "list", "--compute", "azureml:other") == []


def test_services_are_kept_in_show_and_save_as(ws):
    ws.write("job.yml", """\
command: echo hi
environment: {image: python}
services:
  my_jupyter: {type: jupyter_lab}
  my_tb: {type: tensor_board, log_dir: outputs/tblogs}
""")
    ws.run("job", "create", "-f", "job.yml", "-n", "svc", "--save-as", "saved.yml")
    shown = ws.job("svc")["services"]
    assert shown["my_jupyter"] == {"type": "jupyter_lab"}
    assert shown["my_tb"]["log_dir"] == "outputs/tblogs" and "Studio" in shown and "Tracking" in shown
    saved = yaml.safe_load(open(os.path.join(ws.dir, "saved.yml")))
    assert set(saved["services"]) == {"my_jupyter", "my_tb"}


def test_queue_settings_are_checked_shown_and_kept_by_save_as(ws):
    ws.write("job.yml", "command: echo hi\nenvironment: {image: python}\n"
                        "queue_settings: {priority: High, job_tier: spot}\n")
    ws.run("job", "create", "-f", "job.yml", "-n", "qs", "--save-as", "saved.yml", "-o", "none")
    assert ws.job("qs")["queue_settings"] == {"priority": "high", "job_tier": "spot"}
    saved = yaml.safe_load(open(os.path.join(ws.dir, "saved.yml")))
    assert saved["queue_settings"] == {"priority": "high", "job_tier": "spot"}
    ws.write("bad.yml", "command: echo hi\nenvironment: {image: python}\nqueue_settings:\n  priority: urgent\n")
    p = ws.run("job", "create", "-f", "bad.yml", check=False)
    assert p.returncode == 2
    assert "bad.yml:4:13: error: queue_settings.priority: expected one of low, medium, high, got 'urgent'" \
        in p.stderr, p.stderr


def test_save_as_of_a_job_with_code_can_be_resubmitted(ws):
    ws.write("src/run.sh", "echo from-code\n")
    ws.write("job.yml", "command: sh run.sh\ncode: src\nenvironment: {image: python}\n")
    ws.run("job", "create", "-f", "job.yml", "-n", "c1", "--stream", "--save-as", "again.yml")
    saved = yaml.safe_load(open(os.path.join(ws.dir, "again.yml")))
    assert saved["code"].startswith("azureml:snapshots/")
    out = ws.run("job", "create", "-f", "again.yml", "-n", "c2", "--stream").stdout
    assert "from-code" in out
    assert ws.job("c2")["code"] == ws.job("c1")["code"]
    ws.write("bad.yml", "command: 'true'\ncode: azureml:snapshots/" + "0" * 64 + "\nenvironment: {image: python}\n")
    p = ws.run("job", "create", "-f", "bad.yml", check=False)
    assert p.returncode != 0 and "was not uploaded" in p.stderr


def test_the_output_location_job_show_prints_works_as_an_input(ws):
    ws.write("make.yml", "command: echo made > ${{outputs.res}}/file.txt\nenvironment: {image: python}\n"
                         "outputs: {res: {type: uri_folder}}\n")
    ws.run("job", "create", "-f", "make.yml", "-n", "maker", "--stream")
    out = ws.job("maker")["outputs"]["res"]
    assert out["path"] == "azureml://datastores/workspaceblobstore/paths/azureml/maker/res/"
    assert out["job_output_uri"] == "azureml://jobs/maker/outputs/res"
    for i, where in enumerate((out["path"], out["job_output_uri"])):
        ws.write(f"use{i}.yml", "command: cat ${{inputs.d}}/file.txt\nenvironment: {image: python}\n"
                                f"inputs: {{d: {{type: uri_folder, path: '{where}'}}}}\n")
        assert "made" in ws.run("job", "create", "-f", f"use{i}.yml", "--stream").stdout, where


def test_outputs_written_to_a_datastore_path_download(ws):
    store = os.path.join(ws.dir, "store")
    os.makedirs(store)
    ws.run("datastore", "create", "-n", "mine", "-p", store)
    ws.write("job.yml", "command: echo result > ${{outputs.res}}/r.txt\nenvironment: {image: python}\n"
                        "outputs: {res: {type: uri_folder, path: 'azureml://datastores/mine/paths/runs/one'}}\n")
    ws.run("job", "create", "-f", "job.yml", "-n", "dsout", "--stream")
    assert open(os.path.join(store, "runs/one/r.txt")).read() == "result\n"
    assert ws.job("dsout")["outputs"]["res"]["path"] == "azureml://datastores/mine/paths/runs/one"
    p = ws.run("job", "download", "-n", "dsout", "--output-name", "res", "-p", "dl")
    assert "Downloaded 1 file" in p.stderr, p.stderr
    assert open(os.path.join(ws.dir, "dl/named-outputs/res/r.txt")).read() == "result\n"
    p = ws.run("job", "download", "-n", "dsout", "--all", "-p", "all")
    assert os.path.exists(os.path.join(ws.dir, "all/named-outputs/res/r.txt"))


def test_compute_identity_is_kept_and_a_compute_instance_is_one_machine(ws):
    ws.write("ci.yml", "name: ci1\ntype: computeinstance\nsize: Standard_DS3_v2\n"
                       "identity: {type: user_assigned, user_assigned_identities: [{resource_id: /x/y}]}\n")
    ws.run("compute", "create", "-f", "ci.yml")
    shown = ws.json("compute", "show", "-n", "ci1")
    assert shown["max_instances"] == 1
    assert shown["identity"] == {"type": "user_assigned", "user_assigned_identities": [{"resource_id": "/x/y"}]}
    ws.run("compute", "create", "-n", "ci2", "--type", "computeinstance")
    assert ws.json("compute", "show", "-n", "ci2")["max_instances"] == 1


def test_data_create_reports_every_bad_path_one_way(ws):
    # A path that names nothing exits 3 (az's "resource not found"), a malformed one 2; one format for both,
    # whether the CLI or the workspace found it.
    for path, rc in (("/definitely/not/here", 3), ("./nope", 3), ("azureml://datastores/nope/paths/x", 3),
                     ("azureml:missing:1", 3), ("azureml://jobs/nojob/outputs/o", 3), ("runs:/nojob/x", 2),
                     ("azureml://datastores/nope", 2)):
        p = ws.run("data", "create", "--name", "d", "--path", path, check=False)
        assert p.returncode == rc, (path, p.returncode, p.stderr)
        assert p.stderr.startswith("--flags: error: path: "), (path, p.stderr)
    ws.write("d.yml", "name: d\npath: azureml://datastores/nope/paths/x\n")
    p = ws.run("data", "create", "-f", "d.yml", check=False)
    assert p.returncode == 3 and p.stderr.startswith("d.yml: error: path: "), p.stderr


def test_az_global_arguments_are_accepted_on_every_verb(ws):
    az = ["-g", "my-rg", "-w", "my-ws", "--subscription", "0000", "--only-show-errors"]
    ws.write("job.yml", "command: echo hi\nenvironment: {image: python}\n")
    name = ws.json("job", "create", "-f", "job.yml", *az)["name"]
    ws.wait_status(name, "Completed")
    assert ws.json("job", "show", "-n", name, *az)["name"] == name
    assert name in ws.run("job", "list", *az, "--query", "[].name", "-o", "tsv").stdout.split()
    ws.run("compute", "list", *az)
    ws.run("datastore", "list", *az)
    ws.run("environment", "list", *az)
    p = ws.run("job", "show", "-n", name, "--debug", "-o", "none")
    assert "DEBUG: GET " in p.stderr and "/api/v1/jobs/" + name in p.stderr
    assert ws.run("--version").stdout.startswith("cairn ")


def test_a_named_workspace_is_selected_by_w_where_it_exists(ws):
    other = os.path.join(ws.home, "workspaces", "second")
    os.makedirs(other)
    ws.write("job.yml", "command: echo hi\nenvironment: {image: python}\n")
    try:
        name = ws.json("job", "create", "-f", "job.yml", "-w", "second")["name"]
        wait_for(lambda: ws.json("job", "show", "-n", name, "-w", "second")["status"] == "Completed", what="the job")
        assert [j["name"] for j in ws.json("job", "list", "-w", "second")] == [name]
        assert name not in [j["name"] for j in ws.json("job", "list")]  # the default workspace does not have it
        assert "INFO: workspace " + other in ws.run("job", "list", "-w", "second", "--verbose", "-o", "none").stderr
    finally:
        ws.run("server", "stop", "-w", "second")


def test_a_missing_or_unknown_command_lists_what_exists(ws):
    p = ws.run("job", check=False)
    assert p.returncode == 2 and "'cairn job' needs a command" in p.stderr and "create" in p.stderr and "list" in p.stderr
    p = ws.run("compute", "frobnicate", check=False)
    assert p.returncode == 2 and "'cairn compute' has no command 'frobnicate'" in p.stderr and "show" in p.stderr


def test_job_update_adds_and_removes_tags(ws):
    ws.write("job.yml", "command: 'true'\nenvironment: {image: python}\ntags: {keep: '1', drop: '2'}\n")
    ws.run("job", "create", "-f", "job.yml", "-n", "tagged")
    j = ws.json("job", "update", "-n", "tagged", "--add", "tags", "new=3", "--remove", "tags.drop")
    assert j["tags"] == {"keep": "1", "new": "3"}
    j = ws.json("job", "update", "-n", "tagged", "--add", "tags", '{"a": "x", "b": "y"}')
    assert j["tags"] == {"keep": "1", "new": "3", "a": "x", "b": "y"}
    p = ws.run("job", "update", "-n", "tagged", "--remove", "tags.nope", check=False)
    assert p.returncode == 3 and "has no tag 'nope'" in p.stderr
    p = ws.run("job", "update", "-n", "tagged", "--remove", "properties.x", check=False)
    assert p.returncode == 2 and "append-only" in p.stderr


def test_compute_list_nodes_sizes_and_usage(ws):
    ws.write("job.yml", "command: sleep 3\nenvironment: {image: python}\n")
    ws.run("job", "create", "-f", "job.yml", "-n", "busy1")
    ws.wait_status("busy1", "Running")
    nodes = ws.json("compute", "list-nodes", "-n", "local")
    assert len(nodes) == 1 and nodes[0]["node_state"] == "running" and nodes[0]["current_job_names"] == ["busy1"]
    usage = {u["name"]["value"]: u for u in ws.json("compute", "list-usage")}
    assert usage["local"]["current_value"] == 1 and usage["local"]["limit"] >= 1 and usage["local"]["unit"] == "Count"
    sizes = ws.json("compute", "list-sizes")
    assert sizes[0]["v_cpus"] == os.cpu_count() and sizes[0]["memory_gb"] > 0
    ws.wait_status("busy1", "Completed")
    assert ws.json("compute", "list-nodes", "-n", "local")[0]["node_state"] == "idle"
    p = ws.run("compute", "list-nodes", "-n", "nope", check=False)
    assert p.returncode == 3


def test_tables_show_seconds_durations_and_plurals(ws):
    ws.write("job.yml", "command: echo hi > outputs/one.txt\nenvironment: {image: python}\n")
    ws.run("job", "create", "-f", "job.yml", "-n", "tab1", "--stream")
    table = ws.run("job", "list", "-o", "table").stdout.splitlines()
    assert table[0].split()[-2:] == ["Created", "Duration"]
    row = next(line for line in table if line.startswith("tab1"))
    import re
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\s+\d+(\.\d)?s$", row), row
    p = ws.run("job", "download", "-n", "tab1", "--output-name", "default", "-p", "dl")
    assert re.search(r"Downloaded \d+ files? of job tab1", p.stderr)
    ws.write("one/f.txt", "x")
    p = ws.run("data", "create", "--name", "single", "--path", "one")
    assert ": 1 file, " in p.stderr, p.stderr


def test_a_download_error_says_what_failed(ws):
    ws.write("job.yml", "command: cat ${{inputs.x}}\nenvironment: {image: python}\n"
                        "inputs: {x: {type: uri_file, path: 'https://no-such-host.invalid/data.csv'}}\n")
    ws.run("job", "create", "-f", "job.yml", "-n", "dl1", "--stream", check=False)
    why = ws.job("dl1")["status_reason"]
    assert "could not resolve host no-such-host.invalid" in why and "exit code" not in why, why


def test_a_failed_sweep_says_why_its_trials_failed(ws):
    ws.write("sweep.yml", """\
type: sweep
trial:
  command: echo "bad input ${{search_space.x}}" >&2; exit 3
  environment: {image: python}
sampling_algorithm: grid
search_space:
  x: {type: choice, values: [1, 2]}
objective: {goal: maximize, primary_metric: acc}
limits: {max_total_trials: 2, max_concurrent_trials: 1}
""")
    ws.run("job", "create", "-f", "sweep.yml", "-n", "badsweep", "--stream", check=False, timeout=120)
    j = ws.job("badsweep")
    assert j["status"] == "Failed"
    assert "2 trials: 0 completed, 2 failed" in j["status_reason"]
    assert "badsweep_" in j["error"]["message"] and "exited with code 3" in j["error"]["message"], j["error"]


def test_a_plain_command_runs_without_a_shell_as_bash_would_run_it(make_ws):
    """A command of plain words is executed directly (no bash start); what the program sees, its output, exit
    code and errors are bash's: the same jobs with CAIRN_DIRECT_EXEC=off (always the shell) are the reference."""
    def jobs(ws):
        ws.write("code/noshebang.sh", "echo \"a script with no #! line, run by ${0##*/}\"\n", mode=0o755)
        out = {}
        for name, command in (("env", "/usr/bin/env"), ("true", "true"), ("false", "false"), ("missing", "nosuchcmd-x"),
                              ("script", "./noshebang.sh"), ("echo", "echo -n a,b --lr=0.1 50%")):
            ws.write(f"{name}.yml", f"command: {command}\ncode: code\nenvironment: {{image: python}}\n")
            p = ws.run("job", "create", "-f", f"{name}.yml", "-n", f"j_{name}", "--stream", check=False)
            job = ws.job(f"j_{name}")
            log = open(os.path.join(ws.home, "runs", f"j_{name}", "artifacts", "user_logs", "std_log.txt")).read()
            sup = open(os.path.join(ws.home, "runs", f"j_{name}", "artifacts", "system_logs", "cairn_supervisor.log")).read()
            out[name] = (job["status"], job.get("exit_code"), log, sup, p.returncode)
        return out
    direct, shell = jobs(make_ws()), jobs(make_ws({"CAIRN_DIRECT_EXEC": "off"}))
    assert "needs no shell" in direct["true"][3] and "needs no shell" not in shell["true"][3]
    assert "needs no shell" not in direct["missing"][3]  # not on PATH: bash says so
    for name in ("true", "false", "missing", "script", "echo"):
        assert direct[name][:3] == shell[name][:3], (name, direct[name], shell[name])
    assert direct["false"][1] == 1 and direct["missing"][1] == 127 and "command not found" in direct["missing"][2]
    assert direct["echo"][2] == "a,b --lr=0.1 50%"
    assert "a script with no #! line" in direct["script"][2]
    # The environment the program sees: the same variables, and bash's PWD, SHLVL and _.
    env = lambda text: dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    d, s = env(direct["env"][2]), env(shell["env"][2])
    s.pop("CAIRN_DIRECT_EXEC")  # the reference's server was told to use the shell; the job inherits that
    assert set(d) == set(s), set(d) ^ set(s)
    assert d["_"] == s["_"] == "/usr/bin/env" and d["SHLVL"] == s["SHLVL"], (d["_"], s["_"], d["SHLVL"], s["SHLVL"])
    assert d["PWD"].endswith("/runs/j_env/wd") and s["PWD"].endswith("/runs/j_env/wd"), (d["PWD"], s["PWD"])
