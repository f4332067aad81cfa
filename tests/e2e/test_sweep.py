"""Sweep jobs: trials as child jobs, the objective through MLflow, early termination, cancel, restarts."""
import json
import os
import signal
import subprocess

from conftest import pids_mentioning, wait_for

IRIS_TRIAL = """\
import argparse, csv
import cairn_mlflow as mlflow
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
p = argparse.ArgumentParser()
p.add_argument("--iris-csv"); p.add_argument("--C", type=float); p.add_argument("--solver")
a = p.parse_args()
rows = list(csv.reader(open(a.iris_csv)))[1:]
X = [[float(v) for v in r[:4]] for r in rows]; y = [r[4] for r in rows]
Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, random_state=0)
m = LogisticRegression(C=a.C, solver=a.solver, max_iter=200).fit(Xtr, ytr)
mlflow.log_metric("accuracy", m.score(Xte, yte))
"""

GA_SWEEP = """\
type: sweep
trial:
  code: src
  command: >-
    /usr/bin/python3 main.py --iris-csv ${{inputs.iris_csv}}
    --C ${{search_space.C}} --solver ${{search_space.solver}}
  environment: {image: python}
inputs:
  iris_csv: {type: uri_file, path: data/iris.csv}
sampling_algorithm: {type: random, seed: 5}
search_space:
  C: {type: loguniform, min_value: -6, max_value: 2}
  solver: {type: choice, values: [lbfgs, liblinear]}
objective: {goal: maximize, primary_metric: accuracy}
limits: {max_total_trials: 4, max_concurrent_trials: 2, timeout: 600}
experiment_name: iris-sweep
"""

PREVIEW1_SWEEP = """\
type: sweep_job
algorithm: grid
trial:
  code:
    local_path: src
  command: >-
    /usr/bin/python3 main.py --iris-csv {inputs.iris}
    --C {search_space.C} --solver {search_space.solver}
  inputs:
    iris:
      data:
        local_path: data/iris.csv
      mode: mount
  environment:
    docker:
      image: python
  compute:
    target: local
search_space:
  C: {type: choice, values: [0.01, 1, 100]}
  solver: {type: choice, values: [lbfgs, liblinear]}
objective:
  primary_metric: accuracy
  goal: maximize
max_concurrent_trials: 2
timeout_minutes: 10
"""


def write_iris(ws):
    from sklearn.datasets import load_iris
    d = load_iris()
    lines = ["sepal_length,sepal_width,petal_length,petal_width,species"]
    lines += [",".join(f"{v:.1f}" for v in x) + "," + d.target_names[t] for x, t in zip(d.data, d.target)]
    ws.write("data/iris.csv", "\n".join(lines) + "\n")
    ws.write("src/main.py", IRIS_TRIAL)


def call(ws, method, path, body=None, query=None):
    return __import__("test_tracking").call(ws, method, path, body, query)


def test_the_iris_sweep_runs_its_trials_and_names_the_best(ws):
    write_iris(ws)
    ws.write("sweep.yml", GA_SWEEP)
    p = ws.run("job", "create", "-f", "sweep.yml", "-n", "irisweep", "--stream", timeout=300)
    assert "start irisweep_0: " in p.stdout and "sweep Completed: 4 trials: 4 completed" in p.stdout
    sweep = ws.job("irisweep")
    assert sweep["status"] == "Completed" and sweep["type"] == "sweep"
    assert sweep["$schema"].endswith("sweepJob.schema.json") and "search_space.C" in sweep["trial"]["command"]
    trials = ws.json("job", "list", "--parent-job-name", "irisweep")
    assert sorted(t["name"] for t in trials) == [f"irisweep_{i}" for i in range(4)]
    assert [j["name"] for j in ws.json("job", "list")] == ["irisweep"]  # trials only when asked for
    assert len(ws.json("job", "list", "--include-children")) == 5
    # Each trial: its command substituted, its hyperparameters as MLflow params and AZUREML_PARAMETER_*,
    # its run a child of the sweep's.
    rows = sweep["trials"]
    best = min(rows, key=lambda r: (-r["accuracy"], int(r["name"].rsplit("_", 1)[1])))  # ties: the earlier trial
    assert sweep["properties"]["best_child_run_id"] == best["name"] == rows[0]["name"]
    assert float(sweep["properties"]["score"]) == best["accuracy"]
    t0 = ws.job("irisweep_0")
    hp = next(r for r in rows if r["name"] == "irisweep_0")["hyperparameters"]
    assert f"--solver {hp['solver']} " in t0["command"] + " " and "${{search_space" not in t0["command"]
    assert f"--C {hp['C']!r}" in t0["command"]  # the exact value, as its params record it
    assert t0["environment_variables"]["AZUREML_PARAMETER_solver"] == hp["solver"]
    _, run = call(ws, "GET", "/api/2.0/mlflow/runs/get", query={"run_id": "irisweep_0"})
    tags = {t["key"]: t["value"] for t in run["run"]["data"]["tags"]}
    params = {t["key"]: t["value"] for t in run["run"]["data"]["params"]}
    assert tags["mlflow.parentRunId"] == "irisweep" and params["solver"] == hp["solver"]
    # The table view, and the download: the sweep's log plus the best trial's files.
    table = ws.run("job", "show", "-n", "irisweep", "-o", "table").stdout
    assert f"Trials, best first (accuracy, maximize); best: {best['name']}:" in table
    dl = os.path.join(ws.dir, "dl")
    ws.run("job", "download", "-n", "irisweep", "--download-path", dl)
    assert "sweep Completed" in open(os.path.join(dl, "artifacts/user_logs/std_log.txt")).read()
    assert os.path.exists(os.path.join(dl, best["name"], "artifacts/user_logs/std_log.txt"))


def test_a_preview1_grid_sweep_visits_each_point_once(ws):
    write_iris(ws)
    ws.write("sweep.yml", PREVIEW1_SWEEP)
    ws.run("job", "create", "-f", "sweep.yml", "-n", "gridsweep", "--stream", timeout=300)
    sweep = ws.job("gridsweep")
    assert sweep["status"] == "Completed"
    points = sorted((r["hyperparameters"]["C"], r["hyperparameters"]["solver"]) for r in sweep["trials"])
    assert points == sorted((c, s) for c in (0.01, 1, 100) for s in ("lbfgs", "liblinear"))
    assert all(r["status"] == "Completed" and "accuracy" in r for r in sweep["trials"])


def test_bandit_stops_the_trial_the_formula_says_at_the_interval_it_says(ws):
    # One trial at a time, so the population each decision sees is fixed: trial 0 reports 0.8 six times;
    # trial 1's best at interval 2 is 0.55 < 0.8/(1+0.1).
    p_stdout = scripted_sweep(ws, "banditsweep", '{"c0": [0.8] * 6, "c1": [0.5, 0.55, 0.6, 0.62, 0.64, 0.66]}',
                              "{type: bandit, slack_factor: 0.1, evaluation_interval: 1, delay_evaluation: 2}")
    expected = "trial 1 at interval 2: best 0.55 < threshold 0.727273 = 0.8/(1+0.1) (bandit over 2 trials)"
    assert "stop: " + expected in p_stdout, p_stdout
    assert "keep: trial 0 at interval 2: best 0.8 >= threshold 0.727273" in p_stdout
    bad = ws.job("banditsweep_1")
    assert bad["status"] == "Canceled"
    assert bad["status_reason"] == "stopped by the early-termination policy: " + expected
    sweep = ws.job("banditsweep")
    assert sweep["status"] == "Completed"
    assert sweep["status_reason"] == "2 trials: 1 completed, 0 failed, 1 canceled (1 stopped early)"
    assert sweep["properties"]["best_child_run_id"] == "banditsweep_0"


def test_canceling_a_sweep_cancels_every_running_trial(ws):
    ws.write("sweep.yml", """\
type: sweep
trial:
  command: sleep 30 # ${{search_space.n}}
  environment: {image: python}
search_space:
  n: {type: randint, upper: 100}
objective: {primary_metric: m, goal: minimize}
limits: {max_total_trials: 10, max_concurrent_trials: 2}
""")
    ws.run("job", "create", "-f", "sweep.yml", "-n", "cancelme")
    wait_for(lambda: sum(t["status"] == "Running" for t in ws.json("job", "list", "--parent-job-name", "cancelme")) == 2,
             what="two running trials")
    ws.run("job", "cancel", "-n", "cancelme")
    sweep = ws.wait_status("cancelme", ["Canceled"], timeout=30)
    assert sweep["status_reason"].startswith("canceled; 2 trials: 0 completed, 0 failed, 2 canceled")
    trials = ws.json("job", "list", "--parent-job-name", "cancelme")
    assert len(trials) == 2 and all(t["status"] == "Canceled" for t in trials)


def test_a_sweep_survives_a_killed_server_with_the_same_trials(ws):
    # Random sampling: trial n depends only on the seed and n. Interrupt one sweep with kill -9 and compare
    # its trials with an uninterrupted sweep of the same seed.
    body = """\
type: sweep
trial:
  command: sleep 0.6 # ${{search_space.x}} ${{search_space.k}}
  environment: {image: python}
sampling_algorithm: {type: random, seed: 11}
search_space:
  x: {type: uniform, min_value: 0, max_value: 1}
  k: {type: choice, values: [a, b, c]}
objective: {primary_metric: m, goal: minimize}
limits: {max_total_trials: 6, max_concurrent_trials: 2}
"""
    ws.write("sweep.yml", body)
    ws.run("job", "create", "-f", "sweep.yml", "-n", "durable")
    wait_for(lambda: len(ws.json("job", "list", "--parent-job-name", "durable")) >= 3, what="a third trial")
    os.kill(ws.server_info()["pid"], signal.SIGKILL)
    wait_for(lambda: ws.job("durable")["status"] in ("Completed", "Failed"), timeout=60, what="the sweep to end")
    ws.run("job", "create", "-f", "sweep.yml", "-n", "reference", "--stream", timeout=120)

    def trials(name):
        return {t["name"].removeprefix(name): (t["hyperparameters"], t["status"]) for t in ws.job(name)["trials"]}

    interrupted, reference = trials("durable"), trials("reference")
    assert sorted(interrupted) == [f"_{i}" for i in range(6)]
    assert {k: v[0] for k, v in interrupted.items()} == {k: v[0] for k, v in reference.items()}
    not_completed = {k: ws.job("durable" + k).get("status_reason") for k, v in interrupted.items() if v[1] != "Completed"}
    assert not not_completed, not_completed
    durable = ws.job("durable")
    assert durable["status"] == "Completed" and "best_child_run_id" not in durable["properties"]  # no metric reported


SCRIPTED = """\
import sys, time
import cairn_mlflow as mlflow
curve = {curves}[sys.argv[1]]
for step, v in enumerate(curve):
    mlflow.log_metric("acc", v, step=step)
    time.sleep(0.7)
"""


def scripted_sweep(ws, name, curves, policy):
    ws.write("src/curve.py", SCRIPTED.format(curves=curves))
    names = ", ".join(sorted(eval(curves)))
    ws.write("sweep.yml", f"""\
type: sweep
trial:
  code: src
  command: /usr/bin/python3 curve.py ${{{{search_space.curve}}}}
  environment: {{image: python}}
sampling_algorithm: grid
search_space:
  curve: {{type: choice, values: [{names}]}}
objective: {{primary_metric: acc, goal: maximize}}
limits: {{max_concurrent_trials: 1}}
early_termination: {policy}
""")
    return ws.run("job", "create", "-f", "sweep.yml", "-n", name, "--stream", timeout=180).stdout


def test_median_stopping_stops_below_the_median_of_running_averages(ws):
    # At interval 3: running averages 2 (c0), 5 (c1), 0.6 (c2); c2's best 0.7 is below their median 2.
    out = scripted_sweep(ws, "median", '{"c0": [1, 2, 3, 4], "c1": [4, 5, 6, 7], "c2": [0.5, 0.6, 0.7, 0.8, 0.9]}',
                         "{type: median_stopping, evaluation_interval: 1, delay_evaluation: 3}")
    assert "keep: trial 0 at interval 3: best 3 >= median 2 of the running averages of 1 trials" in out
    assert "keep: trial 1 at interval 3: best 6 >= median 3.5 of the running averages of 2 trials" in out
    assert "stop: trial 2 at interval 3: best 0.7 < median 2 of the running averages of 3 trials" in out
    statuses = {t["name"]: t["status"] for t in ws.job("median")["trials"]}
    assert statuses == {"median_0": "Completed", "median_1": "Completed", "median_2": "Canceled"}


def test_truncation_selection_stops_the_worst_percentage_at_each_interval(ws):
    out = scripted_sweep(ws, "trunc", '{"c0": [0.9, 0.9, 0.9], "c1": [0.5, 0.6, 0.7], "c2": [0.2, 0.3, 0.4]}',
                         "{type: truncation_selection, truncation_percentage: 50, delay_evaluation: 2}")
    assert "stop: trial 1 at interval 2: value 0.6 ranks 1 from the worst of 2; the worst 50% (1) are stopped" in out
    assert "stop: trial 2 at interval 2: value 0.3 ranks 1 from the worst of 3; the worst 50% (1) are stopped" in out
    assert "keep: trial 0 at interval 2: value 0.9 ranks 1 from the worst of 1; the worst 50% (0) are stopped, not this one" in out
    sweep = ws.job("trunc")
    assert sweep["status_reason"] == "3 trials: 1 completed, 0 failed, 2 canceled (2 stopped early)"


def test_the_sweep_timeout_cancels_every_trial_and_a_failed_trial_does_not_stop_a_sweep(ws):
    ws.write("timeout.yml", """\
type: sweep
trial:
  command: sleep 30 # ${{search_space.n}}
  environment: {image: python}
search_space:
  n: {type: randint, upper: 9}
objective: {primary_metric: m, goal: minimize}
limits: {max_total_trials: 5, max_concurrent_trials: 2, timeout: 2}
""")
    ws.run("job", "create", "-f", "timeout.yml", "-n", "late")
    sweep = ws.wait_status("late", ["Canceled"], timeout=30)
    assert sweep["status_reason"].startswith("limits.timeout of 2 s reached; 2 trials: 0 completed, 0 failed, 2 canceled")
    ws.write("fails.yml", """\
type: sweep
trial:
  command: test ${{search_space.x}} = ok
  environment: {image: python}
sampling_algorithm: grid
search_space:
  x: {type: choice, values: [ok, broken, ok2]}
objective: {primary_metric: m, goal: minimize}
""")
    ws.run("job", "create", "-f", "fails.yml", "-n", "partly", "--stream", timeout=60)
    sweep = ws.job("partly")
    assert (sweep["status"], sweep["status_reason"]) == ("Completed", "3 trials: 1 completed, 2 failed, 0 canceled (0 stopped early)")
