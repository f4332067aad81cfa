"""The demo's example: a real scikit-learn training job on the iris data that ships with scikit-learn."""
import json
import os

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "iris-sklearn", "job.yml")


def test_the_iris_example_trains_and_keeps_its_outputs(ws):
    p = ws.run("job", "create", "-f", os.path.abspath(EXAMPLE), "-n", "iris1", "--stream",
               "--set", "inputs.n_estimators=20", timeout=300)
    assert "job iris1: training with" in p.stdout
    assert "trained 20 trees" in p.stdout
    dl = os.path.join(ws.dir, "dl")
    ws.run("job", "download", "-n", "iris1", "--all", "--download-path", dl)
    with open(os.path.join(dl, "artifacts/outputs/metrics.json")) as f:
        metrics = json.load(f)
    assert metrics["n_estimators"] == 20
    assert metrics["accuracy"] > 0.8
    assert os.path.getsize(os.path.join(dl, "named-outputs/model/model.pkl")) > 1000
    with open(os.path.join(dl, "artifacts/logs/train.log")) as f:
        assert f.read().startswith("accuracy=")
    job = ws.job("iris1")
    assert job["metrics"]["test_accuracy"] == metrics["accuracy"]
    assert job["params"]["n_estimators"] == "20"
    curve = ws.run("job", "metrics", "-n", "iris1", "--key", "test_accuracy_by_trees", "-o", "csv").stdout.splitlines()
    assert [line.split(",")[1] for line in curve[1:]] == ["2", "4", "6", "8", "10", "12", "14", "16", "18", "20"]
    assert os.path.exists(os.path.join(dl, "artifacts/report/metrics.json"))
    assert job["display_name"] == "iris-random-forest"
    assert job["experiment_name"] == "iris-sklearn-example"
    assert job["inputs"]["n_estimators"] == 20


def test_the_iris_sweep_example_runs_every_trial_and_names_the_best(ws):
    sweep = os.path.join(os.path.dirname(EXAMPLE), "job-sweep.yml")
    p = ws.run("job", "create", "-f", os.path.abspath(sweep), "-n", "irissweep", "--stream",
               "--set", "limits.max_total_trials=4", timeout=300)
    assert "sweep Completed: 4 trials: 4 completed" in p.stdout
    job = ws.job("irissweep")
    best = job["properties"]["best_child_run_id"]
    assert best == job["trials"][0]["name"]
    assert all(t["reports"] == 10 for t in job["trials"])  # 10 growth steps per forest
    assert all(t["hyperparameters"]["n_estimators"] % 10 == 0 for t in job["trials"])  # quniform, q: 10
