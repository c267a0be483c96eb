"""ExperimentTracker against a real sqlite store: parent/seed nesting, values, models, re-runs, secrets, concurrency."""

import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from llmoe_pipeline.tracking import (
    CONFIG_HASH_TAG,
    IDENTITY_TAG,
    PARENT_RUN_ID_TAG,
    REDACTED,
    SEED_TABLE_ARTIFACT,
    SEED_TAG,
    ExperimentTracker,
    ModelToLog,
    fluent_tracking_uri,
    model_uri_tag,
)

CONFIG_HASH = "cfg0123456789abc"
DATA_HASH = "data0123456789ab"
CODE_VERSION = "test-code-version"  # fixed: the shared checkout's git state may change while tests run
SEEDS = [0, 1, 2]
# Fake secrets: none of them may reach the store.
FAKE_HF_TOKEN = "hf_FAKEfakeFAKEfakeFAKEfake0123"
FAKE_API_KEY = "sk-FAKEfakeFAKEfakeFAKEfake4567"
ENV_SECRET = "env-secret-value-8910"  # value of a secret env var, passed under an innocent key
ARGV_SECRET = "argv-secret-value-1112"
URL_PASSWORD = "url-password-1314"  # in a URL's userinfo
URL_QUERY_SECRET = "url-query-value-1516"  # a URL's query value


def _seed_metrics(seed: int) -> dict[str, float]:
    return {"test_sharpe_ratio": 0.5 + seed, "test_accuracy": 0.25 * (seed + 1)}


def _loss_curve(seed: int) -> list[float]:
    return [1.0 / (epoch + 1) + seed for epoch in range(4 + seed)]  # a different length per seed


def _tiny_torch_model(seed: int):
    import torch

    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(55, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1)).eval()


def _tiny_lightgbm_model(seed: int, x: np.ndarray):
    import lightgbm as lgb

    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    model = lgb.LGBMClassifier(n_estimators=5, num_leaves=4, min_child_samples=5, random_state=seed, verbose=-1)
    return model.fit(x, y)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Two parents (a torch and a LightGBM model), each with 3 seed runs carrying a logged model."""
    root = tmp_path_factory.mktemp("mlflow")
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    mp.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    mp.setenv("LLMOE_TEST_SERVICE_TOKEN", ENV_SECRET)
    mp.setattr(sys, "argv", ["llmoe", "run", "--hf-token", ARGV_SECRET])
    tracker = ExperimentTracker(f"sqlite:///{root}/mlflow.db", "llmoe-test", artifact_location=root / "artifacts")
    x = np.random.default_rng(0).standard_normal((64, 55)).astype(np.float32)
    plot = root / "inputs" / "equity.txt"
    plot.parent.mkdir()
    plot.write_text("not really a plot")

    parents, models = {}, {}
    for flavor in ("pytorch", "lightgbm"):
        parent = tracker.parent_run(
            "AAPL",
            flavor,
            CONFIG_HASH,
            DATA_HASH,
            code_version=CODE_VERSION,
            params={
                "hidden": 4,
                "HF_TOKEN": FAKE_HF_TOKEN,
                "note": f"uses {ENV_SECRET}",
                "endpoint": f"http://user:{URL_PASSWORD}@host:8000/v1?key={URL_QUERY_SECRET}",
            },
            tags={"OPENAI_API_KEY": FAKE_API_KEY, "stage": "test"},
        )
        for seed in SEEDS:
            if flavor == "pytorch":  # two experts in one seed run, as LLMoE logs them
                fitted = {"optimistic": _tiny_torch_model(seed), "pessimistic": _tiny_torch_model(seed + 100)}
            else:
                fitted = {"lightgbm": _tiny_lightgbm_model(seed, x)}
            models |= {(seed, name): estimator for name, estimator in fitted.items()}
            tracker.log_seed_run(
                parent,
                seed,
                params={"learning_rate": 0.001, "db_password": "hunter2-fake"},
                metrics=_seed_metrics(seed),
                curves={"train_loss": _loss_curve(seed)},
                tags={"hf_token": FAKE_HF_TOKEN},
                artifacts={"plots": plot},
                models=[ModelToLog(estimator, flavor, x[:8], name=name) for name, estimator in fitted.items()],
            )
        seed_table = pd.DataFrame([{"seed": s, **_seed_metrics(s)} for s in SEEDS])
        tracker.finish_parent(parent, seed_table, artifacts={"plots": plot})
        parents[flavor] = parent
    yield tracker, root, parents, models, x
    mp.undo()


def test_parent_and_children_are_nested_with_values_curves_and_tags(store):
    tracker, _, parents, _, _ = store
    client = tracker.client
    parent_runs = client.search_runs([tracker.experiment_id], f"tags.`{IDENTITY_TAG}` != ''")
    assert sorted(r.info.run_id for r in parent_runs) == sorted(parents.values())

    for flavor, parent_id in parents.items():
        parent = client.get_run(parent_id)
        assert parent.info.status == "FINISHED"
        assert parent.data.params["hidden"] == "4"
        assert parent.data.tags[CONFIG_HASH_TAG] == CONFIG_HASH
        assert parent.data.tags["llmoe.model"] == flavor
        # mean and sample std over seeds 0, 1, 2: sharpe 0.5/1.5/2.5, accuracy 0.25/0.5/0.75
        assert parent.data.metrics["test_sharpe_ratio_mean"] == pytest.approx(1.5)
        assert parent.data.metrics["test_sharpe_ratio_std"] == pytest.approx(1.0)
        assert parent.data.metrics["test_accuracy_mean"] == pytest.approx(0.5)
        assert parent.data.metrics["test_accuracy_std"] == pytest.approx(0.25)
        table = pd.read_csv(client.download_artifacts(parent_id, SEED_TABLE_ARTIFACT))
        assert table["seed"].tolist() == SEEDS
        assert table["test_sharpe_ratio"].tolist() == [0.5, 1.5, 2.5]
        assert [a.path for a in client.list_artifacts(parent_id, "plots")] == ["plots/equity.txt"]

        children = client.search_runs([tracker.experiment_id], f"tags.`{PARENT_RUN_ID_TAG}` = '{parent_id}'")
        assert sorted(int(c.data.tags[SEED_TAG]) for c in children) == SEEDS
        for child in children:
            seed = int(child.data.tags[SEED_TAG])
            assert child.info.status == "FINISHED"
            assert child.info.run_name == f"seed-{seed}"
            assert child.data.tags[CONFIG_HASH_TAG] == CONFIG_HASH
            assert child.data.params["seed"] == str(seed)
            assert child.data.params["learning_rate"] == "0.001"
            assert child.data.metrics == pytest.approx({**_seed_metrics(seed), "train_loss": _loss_curve(seed)[-1]})
            history = client.get_metric_history(child.info.run_id, "train_loss")
            assert [m.step for m in sorted(history, key=lambda m: m.step)] == list(range(4 + seed))
            assert [m.value for m in sorted(history, key=lambda m: m.step)] == pytest.approx(_loss_curve(seed))
            assert [a.path for a in client.list_artifacts(child.info.run_id, "plots")] == ["plots/equity.txt"]

    url = tracker.run_url(parents["pytorch"])
    assert url == f"http://127.0.0.1:5000/#/experiments/{tracker.experiment_id}/runs/{parents['pytorch']}"


def test_logged_models_load_back_and_predict_like_the_originals(store):
    import mlflow
    import torch

    tracker, _, parents, models, x = store
    names = {"pytorch": ["optimistic", "pessimistic"], "lightgbm": ["lightgbm"]}
    for flavor, parent_id in parents.items():
        for child in tracker.child_runs(parent_id):
            seed = int(child.data.tags[SEED_TAG])
            predictions = []
            for name in names[flavor]:
                uri = child.data.tags[model_uri_tag(name)]
                original = models[(seed, name)]
                with fluent_tracking_uri(tracker.tracking_uri):  # a models:/ URI resolves through the store
                    info = mlflow.models.get_model_info(uri)
                    loaded = getattr(mlflow, flavor).load_model(uri)
                if flavor == "pytorch":
                    with torch.no_grad():  # 64 rows while the example had 8: the batch size is dynamic
                        predicted = loaded(torch.from_numpy(x)).numpy()
                        expected = original(torch.from_numpy(x)).numpy()
                else:
                    predicted, expected = loaded.predict_proba(x), original.predict_proba(x)
                assert predicted == pytest.approx(expected, abs=1e-6)
                assert list(info.signature.inputs.to_dict()[0]["tensor-spec"]["shape"]) == [-1, 55]
                assert info.saved_input_example_info is not None
                predictions.append(predicted)
            if flavor == "pytorch":  # each expert's URI holds its own model
                assert not np.allclose(predictions[0], predictions[1])


def test_secrets_never_reach_the_store(store):
    tracker, root, parents, _, _ = store
    parent = tracker.client.get_run(parents["pytorch"])
    assert parent.data.params["HF_TOKEN"] == REDACTED  # the key stays visible, its value does not
    assert parent.data.params["note"] == f"uses {REDACTED}"
    assert parent.data.params["endpoint"] == f"http://{REDACTED}@host:8000/v1?key={REDACTED}"
    assert parent.data.tags["OPENAI_API_KEY"] == REDACTED
    assert parent.data.tags["llmoe.argv"] == f"llmoe run --hf-token {REDACTED}"
    files = [p for p in root.rglob("*") if p.is_file() and "inputs" not in p.parts]
    assert any(p.name == "mlflow.db" for p in files) and any(p.name == "MLmodel" for p in files)
    for path in files:
        data = path.read_bytes()
        for secret in (
            FAKE_HF_TOKEN,
            FAKE_API_KEY,
            ENV_SECRET,
            ARGV_SECRET,
            "hunter2-fake",
            URL_PASSWORD,
            URL_QUERY_SECRET,
        ):
            assert secret.encode() not in data, f"{secret} leaked into {path}"


def test_rerun_of_the_same_identity_reuses_the_parent_and_replaces_its_children(store):
    tracker, _, _, _, _ = store

    def materialize(offset: float) -> tuple[str, list[str]]:
        parent = tracker.parent_run(
            "MSFT", "lstm", CONFIG_HASH, DATA_HASH, params={"hidden": 4}, code_version=CODE_VERSION
        )
        children = [tracker.log_seed_run(parent, seed, metrics={"test_sharpe_ratio": offset + seed}) for seed in SEEDS]
        seed_table = pd.DataFrame({"seed": SEEDS, "test_sharpe_ratio": [offset + s for s in SEEDS]})
        tracker.finish_parent(parent, seed_table)
        return parent, children

    first_parent, first_children = materialize(0.0)
    second_parent, second_children = materialize(10.0)
    assert second_parent == first_parent
    identity = tracker.client.get_run(first_parent).data.tags[IDENTITY_TAG]
    assert len(tracker.client.search_runs([tracker.experiment_id], f"tags.`{IDENTITY_TAG}` = '{identity}'")) == 1
    assert sorted(r.info.run_id for r in tracker.child_runs(first_parent)) == sorted(second_children)
    assert {tracker.client.get_run(r).info.lifecycle_stage for r in first_children} == {"deleted"}
    assert tracker.client.get_run(first_parent).data.metrics["test_sharpe_ratio_mean"] == pytest.approx(11.0)
    # A different data hash is a different experiment: a second parent beside the first.
    other = tracker.parent_run("MSFT", "lstm", CONFIG_HASH, "other-data", code_version=CODE_VERSION)
    assert other != first_parent
    with pytest.raises(ValueError, match="differ from the logged seed runs"):
        tracker.finish_parent(first_parent, pd.DataFrame({"seed": [0, 1], "test_sharpe_ratio": [0.0, 1.0]}))


def test_a_failure_while_logging_marks_the_runs_failed_and_a_retry_finishes_them(store, tmp_path):
    tracker, _, _, _, _ = store
    parent = tracker.parent_run("MSFT", "mlp-failing", CONFIG_HASH, DATA_HASH, code_version=CODE_VERSION)
    missing = tmp_path / "no-such-predictions.parquet"
    with pytest.raises(Exception), tracker.failed_on_error(parent):  # noqa: B017 - whatever the store raises
        tracker.log_seed_run(parent, 0, metrics={"test_sharpe_ratio": 1.0}, artifacts={"predictions": missing})
    failed_children = tracker.child_runs(parent)
    assert [r.info.status for r in failed_children] == ["FAILED"]
    assert tracker.client.get_run(parent).info.status == "FAILED"  # not RUNNING forever
    # The retry picks the same parent up, replaces the failed seed run and finishes.
    assert tracker.parent_run("MSFT", "mlp-failing", CONFIG_HASH, DATA_HASH, code_version=CODE_VERSION) == parent
    assert tracker.client.get_run(parent).info.status == "RUNNING"
    missing.write_bytes(b"predictions")
    child = tracker.log_seed_run(parent, 0, metrics={"test_sharpe_ratio": 1.0}, artifacts={"predictions": missing})
    tracker.finish_parent(parent, pd.DataFrame({"seed": [0], "test_sharpe_ratio": [1.0]}))
    assert [r.info.run_id for r in tracker.child_runs(parent)] == [child]
    assert tracker.client.get_run(child).info.status == tracker.client.get_run(parent).info.status == "FINISHED"
    assert tracker.client.get_run(failed_children[0].info.run_id).info.lifecycle_stage == "deleted"


_WORKER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from llmoe_pipeline.tracking import ExperimentTracker
    uri, barrier, name, first_seed = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])

    def both_at(stage):  # wait for the other process, so that both race for the same step
        (barrier / f"{stage}-{name}").touch()
        while len(list(barrier.glob(f"{stage}-*"))) < 2:
            time.sleep(0.005)

    both_at("start")
    tracker = ExperimentTracker(uri, "concurrent")  # both create the store's tables and the experiment
    both_at("parent")
    parent = tracker.parent_run("AAPL", "mlp", "cfg", "data", code_version="v")  # both look up the parent
    for seed in range(first_seed, first_seed + 3):
        tracker.log_seed_run(parent, seed, metrics={"m": seed}, curves={"loss": [0.1 * i for i in range(50)]})
    print(parent)
    """
)


def test_two_processes_logging_at_once_share_one_parent(tmp_path):
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, uri, str(barrier), name, str(first)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, first in (("a", 0), ("b", 3))
    ]
    outputs = [w.communicate(timeout=120) for w in workers]
    for worker, (_, err) in zip(workers, outputs):
        assert worker.returncode == 0, err[-3000:]
    parent_ids = {out.strip().splitlines()[-1] for out, _ in outputs}
    assert len(parent_ids) == 1

    tracker = ExperimentTracker(uri, "concurrent")
    (parent_id,) = parent_ids
    parents = tracker.client.search_runs([tracker.experiment_id], f"tags.`{IDENTITY_TAG}` != ''")
    assert [r.info.run_id for r in parents] == [parent_id]
    children = tracker.child_runs(parent_id)
    assert sorted(int(c.data.tags[SEED_TAG]) for c in children) == list(range(6))
    for child in children:
        assert child.data.metrics["m"] == float(child.data.tags[SEED_TAG])
        assert len(tracker.client.get_metric_history(child.info.run_id, "loss")) == 50


def test_records_logged_by_two_worker_processes_are_complete(tmp_path, monkeypatch):
    """log_records spreads a model's seeds over the fit workers (other processes, each reconnecting to the
    store): every seed run ends FINISHED with its metrics, predictions and loadable model, under one parent."""
    import pickle

    import mlflow
    import torch

    from llmoe_pipeline.core.parallel import WORKERS_ENV
    from llmoe_pipeline.tracking.records import ModelRecord, SeedRecord, log_records

    monkeypatch.setenv(WORKERS_ENV, "2")
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    tracker = ExperimentTracker(f"sqlite:///{tmp_path}/mlflow.db", "workers", artifact_location=tmp_path / "art")
    clone = pickle.loads(pickle.dumps(tracker))  # what a worker gets: a tracker on the same experiment
    assert (clone.tracking_uri, clone.experiment_id) == (tracker.tracking_uri, tracker.experiment_id)
    x = np.random.default_rng(1).standard_normal((8, 55)).astype(np.float32)
    nets = {seed: _tiny_torch_model(seed) for seed in SEEDS}
    seeds = [
        SeedRecord(
            seed,
            _seed_metrics(seed),
            {"expert.train_loss": _loss_curve(seed)},
            pd.DataFrame({"date": pd.date_range("2015-01-02", periods=3), "p_up": [0.1 * seed] * 3}),
            [ModelToLog(nets[seed], "pytorch", x, name="expert")],
        )
        for seed in SEEDS
    ]
    urls = log_records(tracker, [ModelRecord("MLP", {"expert.hidden": 4}, seeds)], "AAPL", CONFIG_HASH, DATA_HASH, {})
    parent = urls["MLP"].rsplit("/", 1)[-1]
    assert tracker.client.get_run(parent).info.status == "FINISHED"
    children = {int(r.data.tags[SEED_TAG]): r for r in tracker.child_runs(parent)}
    assert sorted(children) == SEEDS
    for seed, child in children.items():
        assert child.info.status == "FINISHED"
        assert child.data.metrics["test_sharpe_ratio"] == _seed_metrics(seed)["test_sharpe_ratio"]
        assert [a.path for a in tracker.client.list_artifacts(child.info.run_id, "predictions")]
        with fluent_tracking_uri(tracker.tracking_uri):
            loaded = mlflow.pytorch.load_model(child.data.tags[model_uri_tag("expert")])
        with torch.no_grad():
            assert loaded(torch.from_numpy(x)).numpy() == pytest.approx(nets[seed](torch.from_numpy(x)).numpy())
