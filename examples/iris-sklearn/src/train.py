"""Trains a random forest on scikit-learn's bundled iris data; writes a model and a report."""
import argparse
import json
import os
import pickle
import time

from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import accuracy_score, classification_report
from sklearn.model_selection import train_test_split

# Log through MLflow: the real client when it is installed (then autolog records the model too), else
# Cairn's dependency-free helper, which speaks the same REST API. Inside a Cairn job both need no setup.
try:
    import mlflow
    mlflow.sklearn.autolog()
    HAVE_MLFLOW = True
except ImportError:
    import cairn_mlflow as mlflow
    HAVE_MLFLOW = False


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n-estimators", type=int, default=100)
    parser.add_argument("--max-depth", type=int, default=None)
    parser.add_argument("--test-size", type=float, default=0.3)
    parser.add_argument("--model-dir", default="outputs/model")
    args = parser.parse_args()

    print(f"job {os.environ.get('AZUREML_RUN_ID', '?')}: training with {vars(args)}", flush=True)
    mlflow.log_params({"n_estimators": args.n_estimators, "max_depth": args.max_depth, "test_size": args.test_size})
    iris = load_iris()
    x_train, x_test, y_train, y_test = train_test_split(
        iris.data, iris.target, test_size=args.test_size, random_state=42, stratify=iris.target)
    start = time.time()
    model = RandomForestClassifier(n_estimators=args.n_estimators, max_depth=args.max_depth, random_state=42)
    model.fit(x_train, y_train)
    accuracy = accuracy_score(y_test, model.predict(x_test))
    # Accuracy as the forest grows, one point per tree count: a curve to look at in `cairn job metrics`.
    for n, _ in enumerate(model.estimators_, start=1):
        if n % max(1, args.n_estimators // 10) == 0 or n == args.n_estimators:
            partial = sum(t.predict_proba(x_test) for t in model.estimators_[:n]).argmax(axis=1)
            mlflow.log_metric("test_accuracy_by_trees", accuracy_score(y_test, partial), step=n)
    mlflow.log_metric("test_accuracy", accuracy)
    print(f"trained {args.n_estimators} trees in {time.time() - start:.2f}s; test accuracy {accuracy:.4f}",
          flush=True)
    print(classification_report(y_test, model.predict(x_test), target_names=iris.target_names), flush=True)

    os.makedirs(args.model_dir, exist_ok=True)
    with open(os.path.join(args.model_dir, "model.pkl"), "wb") as f:
        pickle.dump(model, f)
    os.makedirs("outputs", exist_ok=True)
    with open("outputs/metrics.json", "w") as f:
        json.dump({"accuracy": accuracy, "n_estimators": args.n_estimators, "max_depth": args.max_depth}, f,
                  indent=2)
    with open("logs/train.log", "a") as f:
        f.write(f"accuracy={accuracy}\n")
    if not HAVE_MLFLOW:
        mlflow.log_artifact("outputs/metrics.json", "report")
    print("wrote outputs/metrics.json and the model to the 'model' output", flush=True)


if __name__ == "__main__":
    main()
