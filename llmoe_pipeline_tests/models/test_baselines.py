"""Baselines and the random search: shapes, determinism, LSTM day order, MoE gate, search bookkeeping."""

import json
import pickle

import numpy as np
import pandas as pd
import pytest
import torch

from llmoe_pipeline import FEATURE_NAMES, window_columns
from llmoe_pipeline.config.protocol import BaselineConfig
from llmoe_pipeline.models import BASELINES, baseline, input_columns, validation_score
from llmoe_pipeline.models.baselines import fit_lstm
from llmoe_pipeline.models.search import best_trial
from llmoe_pipeline_tests.model_fixtures import small_features


def baseline_candidates(name, cfg):
    return baseline(name).candidates(cfg)


def fit_baseline(name, features, params, seed):
    return baseline(name).fit(features, params, seed)


TINY = BaselineConfig(n_trials=4, search_seed=0, max_epochs=3, patience=2, batch_size=64)


@pytest.fixture(scope="module")
def features(aapl_prices):
    return small_features(aapl_prices)


def _x(features, split):
    return features.loc[features["split"] == split, input_columns(features)].to_numpy()


@pytest.mark.parametrize("name", ["lightgbm", "mlp", "lstm", "moe"])
def test_baseline_probabilities_are_deterministic_per_seed(features, name):
    params = baseline_candidates(name, TINY)[0]
    x = _x(features, "test")
    first = fit_baseline(name, features, params, seed=0)
    p = first.predict_proba(x)
    assert p.shape == (len(x),) and p.dtype == np.float64 and ((p >= 0) & (p <= 1)).all()
    assert p.tobytes() == fit_baseline(name, features, params, seed=0).predict_proba(x).tobytes()
    assert p.tobytes() == pickle.loads(pickle.dumps(first)).predict_proba(x).tobytes()
    assert not np.allclose(p, fit_baseline(name, features, params, seed=1).predict_proba(x))
    assert first.name == name and first.params == params and first.seed == 0
    np.testing.assert_array_equal(first.train_rows, features.index[features["split"] == "train"])
    np.testing.assert_array_equal(first.validation_rows, features.index[features["split"] == "validation"])
    with pytest.raises(ValueError, match="expected inputs of shape"):
        first.predict_proba(x[:, :54])


@pytest.mark.parametrize("name", ["mlp", "lstm", "moe"])
def test_network_baselines_scale_with_training_rows_only(features, name):
    model = fit_baseline(name, features, baseline_candidates(name, TINY)[0], seed=0)
    train = _x(features, "train")
    assert model.flavor == "pytorch" and len(model.history) >= 1
    np.testing.assert_allclose(model.estimator.scale.mean.numpy(), train.mean(axis=0), rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(model.estimator.scale.std.numpy(), train.std(axis=0), rtol=1e-5, atol=1e-8)


def test_lightgbm_keeps_only_the_early_stopped_rounds(features):
    model = fit_baseline("lightgbm", features, baseline_candidates("lightgbm", TINY)[0], seed=0)
    assert model.flavor == "lightgbm" and model.history.empty
    assert 1 <= model.best_epoch < model.params["num_boost_round"]
    assert model.estimator.num_trees() == model.best_epoch  # binary objective: one tree per round


def test_lstm_reads_the_window_as_days_oldest_first(features):
    model = fit_baseline("lstm", features, baseline_candidates("lstm", TINY)[0], seed=0)
    cols = window_columns()
    x = _x(features, "test")
    seq = model.estimator.sequences(torch.as_tensor(x, dtype=torch.float32)).numpy()
    assert seq.shape == (len(x), 5, 11)
    mean, std = model.estimator.scale.mean.numpy(), model.estimator.scale.std.numpy()
    for step in range(5):  # step 0 = oldest day (lag 4), step 4 = day t (lag 0)
        for j, feature in enumerate(FEATURE_NAMES):
            c = cols.index(f"{feature}_lag{4 - step}")
            np.testing.assert_allclose(seq[:, step, j], (x[:, c] - mean[c]) / std[c], rtol=1e-5, atol=1e-5)


def _synthetic(signal_column: str, n: int = 1200, seed: int = 0) -> pd.DataFrame:
    """Noise inputs; the target is whether one input is positive. 800 train, 200 validation, 200 test."""
    rng = np.random.default_rng(seed)
    cols = window_columns()
    frame = pd.DataFrame(rng.normal(size=(n, len(cols))), columns=cols)
    frame.insert(0, "date", pd.bdate_range("2000-01-03", periods=n))
    frame.insert(0, "ticker", "SYN")
    frame["target"] = (frame[signal_column] > 0).astype("int64")
    frame["split"] = np.repeat(["train", "validation", "test"], [800, 200, 200])
    return frame


def test_lstm_learns_a_signal_carried_by_the_newest_day_only():
    frame = _synthetic("n_adj_close_lag0")
    params = {
        "hidden_size": 16,
        "dropout": 0.0,
        "learning_rate": 1e-2,
        "max_epochs": 30,
        "patience": 5,
        "batch_size": 64,
    }
    model = fit_lstm(frame, params, seed=0)
    test = frame[frame["split"] == "test"]
    p = model.predict_proba(test[window_columns()].to_numpy())
    assert np.mean((p > 0.5) == (test["target"] == 1)) > 0.9  # chance is 0.5: the day-t feature reached the output


def test_moe_gate_weights_sum_to_one_and_mix_the_expert_probabilities(features):
    model = fit_baseline("moe", features, baseline_candidates("moe", TINY)[0], seed=0)
    net = model.estimator
    x = torch.as_tensor(_x(features, "test"), dtype=torch.float32)
    with torch.no_grad():
        gate = net.gate_weights(x)
        assert gate.shape == (len(x), 2) and ((gate > 0) & (gate < 1)).all()
        np.testing.assert_allclose(gate.sum(dim=1).numpy(), 1.0, atol=1e-6)
        z = net.scale(x)
        expert_probs = torch.cat([torch.sigmoid(expert(z)) for expert in net.experts], dim=1)
        mixture = (gate * expert_probs).sum(dim=1).numpy()
    np.testing.assert_allclose(model.predict_proba(x.numpy()), mixture, rtol=1e-5, atol=1e-6)
    assert gate[:, 0].std() > 0  # the gate depends on the input


def test_validation_score_by_hand():
    score = validation_score(np.array([1, 0, 1, 0]), np.array([0.9, 0.2, 0.4, 0.5]))
    assert score["val_accuracy"] == 0.75  # 0.5 is not "up": the last row is predicted down, correctly
    assert score["val_log_loss"] == pytest.approx(-(np.log(0.9) + np.log(0.8) + np.log(0.4) + np.log(0.5)) / 4)


def test_best_trial_breaks_accuracy_ties_by_log_loss_then_trial():
    table = pd.DataFrame(
        {"trial": [0, 1, 2, 3], "val_accuracy": [0.55, 0.60, 0.60, 0.60], "val_log_loss": [0.60, 0.69, 0.68, 0.68]}
    )
    assert best_trial(table) == 2


def test_random_search_draws_distinct_candidates_reproducibly():
    draws = baseline_candidates("mlp", TINY)
    assert len(draws) == 4 and len({json.dumps(d, sort_keys=True) for d in draws}) == 4
    assert draws == baseline_candidates("mlp", TINY)
    assert draws != baseline_candidates("mlp", TINY.model_copy(update={"search_seed": 1}))
    for d in draws:
        assert all(d[k] in baseline("mlp").search_space[k] for k in baseline("mlp").search_space)
        assert (d["max_epochs"], d["patience"], d["batch_size"]) == (3, 2, 64)


@pytest.mark.parametrize("name", ["lightgbm", "mlp"])
def test_random_search_returns_the_trial_with_the_best_validation_score(features, name):
    result = baseline(name).search(features, TINY)
    table = result.table
    assert list(table["trial"]) == [0, 1, 2, 3]
    assert [json.loads(p) for p in table["params"]] == baseline_candidates(name, TINY)
    assert table["n_validation"].eq((features["split"] == "validation").sum()).all()
    winner = table.iloc[np.lexsort((table["val_log_loss"].to_numpy(), -table["val_accuracy"].to_numpy()))[0]]
    assert result.best_params == json.loads(winner["params"])
    # The table's score is the validation score of that trial, re-fitted with the search seed.
    model = fit_baseline(name, features, result.best_params, seed=TINY.search_seed)
    val = features[features["split"] == "validation"]
    p = model.predict_proba(val[input_columns(features)].to_numpy())
    assert np.mean((p > 0.5) == (val["target"] == 1)) == pytest.approx(winner["val_accuracy"])
    assert validation_score(val["target"], p)["val_log_loss"] == pytest.approx(winner["val_log_loss"])


def test_unknown_baseline_is_refused(features):
    with pytest.raises(ValueError, match="unknown baseline"):
        baseline("transformer")


def test_registry_names_display_names_and_flavours_are_what_the_report_and_mlflow_use():
    assert [s.name for s in BASELINES] == ["moe", "lstm", "mlp", "lightgbm"]
    assert [s.display_name for s in BASELINES] == ["MoE", "LSTM", "MLP", "LightGBM"]
    assert {s.name: s.flavor for s in BASELINES} == {
        "moe": "pytorch",
        "lstm": "pytorch",
        "mlp": "pytorch",
        "lightgbm": "lightgbm",
    }
