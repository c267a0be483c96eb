"""LLMoE experts: routed training rows, training-only scaling, determinism, grid search, routed prediction."""

import json
import pickle

import numpy as np
import pandas as pd
import pytest
import torch

from llmoe_pipeline.config.protocol import ExpertConfig
from llmoe_pipeline.models import (
    expert_param_grid,
    grid_search_experts,
    input_columns,
    llmoe_predict,
    train_expert,
)
from llmoe_pipeline.router.regimes import REGIMES
from llmoe_pipeline_tests.model_fixtures import rule_labels, small_features

TINY = ExpertConfig(
    hidden_sizes_grid=[(8, 8, 4), (16, 8, 4)],
    dropout_grid=[0.1, 0.3],
    learning_rate_grid=[1e-3, 3e-3],
    max_epochs=4,
    patience=2,
    batch_size=64,
)
PARAMS = {
    "hidden_sizes": [16, 8, 4],
    "dropout": 0.1,
    "learning_rate": 3e-3,
    "max_epochs": 4,
    "patience": 2,
    "batch_size": 64,
}


@pytest.fixture(scope="module")
def features(aapl_prices):
    return small_features(aapl_prices)


@pytest.fixture(scope="module")
def labels(features):
    return rule_labels(features)


@pytest.fixture(scope="module")
def optimistic_expert(features, labels):
    return train_expert(features, labels, "Optimistic", PARAMS, seed=0)


def _rows(features, split, up_today):
    return features.index[(features["split"] == split) & ((features["n_adj_close_lag0"] > 0) == up_today)]


@pytest.mark.parametrize("regime,up_today", [("Optimistic", True), ("Pessimistic", False)])
def test_expert_sees_only_its_regimes_training_and_validation_rows(features, labels, regime, up_today):
    model = train_expert(features, labels, regime, PARAMS, seed=0)
    expected_train, expected_val = _rows(features, "train", up_today), _rows(features, "validation", up_today)
    assert 300 < len(expected_train) < 600 and 60 < len(expected_val) < 150  # both regimes are populated
    np.testing.assert_array_equal(np.sort(model.train_rows), np.sort(expected_train.to_numpy()))
    np.testing.assert_array_equal(np.sort(model.validation_rows), np.sort(expected_val.to_numpy()))
    assert model.name == f"llmoe_expert_{regime.lower()}" and model.params == PARAMS and model.flavor == "pytorch"


def test_scaler_statistics_are_the_regime_training_rows_mean_and_std(features, optimistic_expert):
    cols = input_columns(features)
    train = features.loc[_rows(features, "train", True), cols].to_numpy()
    scale = optimistic_expert.estimator.scale
    np.testing.assert_allclose(scale.mean.numpy(), train.mean(axis=0), rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(scale.std.numpy(), train.std(axis=0), rtol=1e-5, atol=1e-8)
    # Not the statistics of a wider set of rows (all training days, or training + validation + test).
    wider = features.loc[features["split"] != "none", cols].to_numpy()
    assert not np.allclose(scale.mean.numpy(), wider.mean(axis=0), rtol=1e-3)
    all_train = features.loc[features["split"] == "train", cols].to_numpy()
    assert not np.allclose(scale.mean.numpy(), all_train.mean(axis=0), rtol=1e-3)


def test_early_stopping_keeps_the_best_validation_epoch(features, labels):
    params = {**PARAMS, "max_epochs": 40, "patience": 3, "learning_rate": 1e-2}
    model = train_expert(features, labels, "Optimistic", params, seed=1)
    h = model.history
    assert list(h.columns) == ["epoch", "train_loss", "val_loss"]
    assert model.best_epoch == int(h.loc[h["val_loss"].idxmin(), "epoch"])
    assert len(h) == min(40, model.best_epoch + 3)  # stopped `patience` epochs after the best one
    # The kept weights are the best epoch's: recompute the validation log loss independently.
    val = features.loc[model.validation_rows]
    p = model.predict_proba(val[input_columns(features)].to_numpy())
    y = val["target"].to_numpy()
    log_loss = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    assert log_loss == pytest.approx(h["val_loss"].min(), abs=1e-5)


def test_a_regime_with_one_target_stops_once_learnt_and_others_run_to_patience(features):
    """The oracle's routing gives each expert days of one direction only: its validation loss would fall for every
    epoch; training stops at LEARNT_LOSS. Real routing never gets near it and runs until patience."""
    from llmoe_pipeline.models.nets import LEARNT_LOSS
    from llmoe_pipeline.router.variants import oracle_scores

    oracle = oracle_scores(features).assign(
        label=lambda s: np.where(s["p_optimistic"] > 0.5, "Optimistic", "Pessimistic")
    )
    params = {**PARAMS, "hidden_sizes": [64, 32, 16], "max_epochs": 200, "patience": 20, "learning_rate": 1e-3}
    learnt = train_expert(features, oracle, "Optimistic", params, seed=0).history
    assert learnt["val_loss"].iloc[-1] < LEARNT_LOSS <= learnt["val_loss"].iloc[:-1].min()
    assert len(learnt) < 40  # not the 200 epochs it would run to without the floor
    real = train_expert(features, rule_labels(features), "Optimistic", {**params, "max_epochs": 60}, seed=0).history
    assert real["val_loss"].min() > 0.5  # a real router's expert: near log 2
    best = int(real.loc[real["val_loss"].idxmin(), "epoch"])
    assert len(real) == min(60, best + 20)


def test_same_seed_same_bytes_other_seed_other_weights(features, labels, optimistic_expert):
    x = features.loc[features["split"] == "test", input_columns(features)].to_numpy()
    torch.manual_seed(12345)  # the caller's global RNG state must not matter, and is left alone
    rng_before = torch.get_rng_state()
    again = train_expert(features, labels, "Optimistic", PARAMS, seed=0)
    assert torch.equal(rng_before, torch.get_rng_state())
    p0 = optimistic_expert.predict_proba(x)
    assert p0.tobytes() == again.predict_proba(x).tobytes()
    assert p0.tobytes() == pickle.loads(pickle.dumps(optimistic_expert)).predict_proba(x).tobytes()
    other = train_expert(features, labels, "Optimistic", PARAMS, seed=1)
    w0 = optimistic_expert.estimator.body[0].weight.detach().numpy()
    assert not np.allclose(w0, other.estimator.body[0].weight.detach().numpy())
    assert not np.allclose(p0, other.predict_proba(x))
    assert p0.shape == (len(x),) and ((p0 > 0) & (p0 < 1)).all()


def test_grid_search_scores_each_regime_on_its_validation_rows_and_picks_the_best(features, labels):
    result = grid_search_experts(features, labels, TINY, seed=0)
    table = result.table
    assert len(table) == 2 * 8 and sorted(table["regime"].unique()) == sorted(REGIMES)
    for regime, up_today in (("Optimistic", True), ("Pessimistic", False)):
        rows = table[table["regime"] == regime]
        assert rows["n_validation"].eq(len(_rows(features, "validation", up_today))).all()
        assert sorted(rows["params"]) == sorted(
            pd.Series(expert_param_grid(TINY)).map(lambda p: json.dumps(p, sort_keys=True))
        )
        # Independent ranking: highest accuracy, then lowest log loss.
        winner = rows.iloc[np.lexsort((rows["val_log_loss"].to_numpy(), -rows["val_accuracy"].to_numpy()))[0]]
        assert result.best_params[regime] == json.loads(winner["params"])
        # Re-fit the winner and score it by hand on this regime's validation rows.
        model = train_expert(features, labels, regime, result.best_params[regime], seed=0)
        val = features.loc[_rows(features, "validation", up_today)]
        p = model.predict_proba(val[input_columns(features)].to_numpy())
        assert np.mean((p > 0.5) == (val["target"] == 1)) == pytest.approx(winner["val_accuracy"])
        # The search hands back the winning model itself, identical to the refit: no need to train it again.
        assert result.best_model[regime].params == result.best_params[regime]
        np.testing.assert_array_equal(
            result.best_model[regime].predict_proba(val[input_columns(features)].to_numpy()), p
        )


def test_llmoe_predict_routes_each_row_to_its_labels_expert(features, labels, optimistic_expert):
    pessimistic = train_expert(features, labels, "Pessimistic", PARAMS, seed=0)
    experts = {"Optimistic": optimistic_expert, "Pessimistic": pessimistic}
    test = features[features["split"] == "test"]
    x = test[input_columns(features)].to_numpy()
    up_today = (test["n_adj_close_lag0"] > 0).to_numpy()
    probs = llmoe_predict(experts, test, labels)
    np.testing.assert_array_equal(probs[up_today], optimistic_expert.predict_proba(x[up_today]))
    np.testing.assert_array_equal(probs[~up_today], pessimistic.predict_proba(x[~up_today]))
    assert not np.allclose(probs[up_today], pessimistic.predict_proba(x[up_today]))
    # Labels given row by row, in row order, give the same answer.
    in_order = np.where(up_today, "Optimistic", "Pessimistic")
    np.testing.assert_array_equal(llmoe_predict(experts, test, list(in_order)), probs)
    # Swapping the labels swaps the experts.
    swapped = llmoe_predict(experts, test, list(np.where(up_today, "Pessimistic", "Optimistic")))
    np.testing.assert_array_equal(swapped[up_today], pessimistic.predict_proba(x[up_today]))


def test_bad_router_labels_are_refused(features, labels):
    unlabelled = labels[labels["date"] != features.loc[features["split"] == "train", "date"].iloc[5]]
    with pytest.raises(ValueError, match="no router label"):
        train_expert(features, unlabelled, "Optimistic", PARAMS, seed=0)
    with pytest.raises(ValueError, match="must be one of"):
        train_expert(features, labels.assign(label="Neutral"), "Optimistic", PARAMS, seed=0)
    with pytest.raises(ValueError, match="more than one label"):
        train_expert(features, pd.concat([labels, labels.head(1)]), "Optimistic", PARAMS, seed=0)
    with pytest.raises(ValueError, match="no expert"):
        llmoe_predict({}, features.head(3), ["Optimistic"] * 3)
    with pytest.raises(ValueError, match="have no router label"):
        llmoe_predict({}, features.head(3), ["Optimistic", None, "Optimistic"])


def _scored_labels(features: pd.DataFrame, test_shift: float = 0.0) -> pd.DataFrame:
    """Router-like labels with p_optimistic: a squashed 1-day return plus noise (test rows optionally moved)."""
    rng = np.random.default_rng(7)
    p = 1 / (1 + np.exp(-50 * features["n_adj_close_lag0"].to_numpy())) * 0.5 + 0.5 * rng.random(len(features))
    p = np.where(features["split"].to_numpy() == "test", np.clip(p + test_shift, 0, 1), p)
    return features[["ticker", "date", "split"]].assign(p_optimistic=p)


def test_router_threshold_search_picks_the_best_validation_quantile_fitted_on_training_windows(features):
    from llmoe_pipeline.models import search_router_threshold, validation_score
    from llmoe_pipeline.router.regimes import apply_threshold

    cfg = TINY.model_copy(update={"threshold_quantile_grid": [0.02, 0.4, 0.6]})
    scored = _scored_labels(features)
    result = search_router_threshold(features, scored, cfg, seed=0)
    table = result.table
    assert list(table["threshold_quantile"]) == [0.02, 0.4, 0.6]
    train_p = scored.loc[scored["split"] == "train", "p_optimistic"].to_numpy()
    np.testing.assert_allclose(table["threshold"], np.quantile(train_p, [0.02, 0.4, 0.6]))
    # 2 % of the training windows are too few for the Pessimistic expert: that quantile is skipped.
    assert table["skipped"].tolist() == [True, False, False] and table.loc[0, "n_train_pessimistic"] < 50
    # The winner: highest LLMoE validation accuracy, then lowest log loss (ranked independently here).
    scoredrows = table[~table["skipped"]]
    winner = scoredrows.iloc[
        np.lexsort((scoredrows["val_log_loss"].to_numpy(), -scoredrows["val_accuracy"].to_numpy()))[0]
    ]
    assert result.threshold_quantile == winner["threshold_quantile"] and result.threshold == winner["threshold"]
    assert result.expert_params("Optimistic") == {
        **result.params["Optimistic"],
        "threshold": result.threshold,
        "threshold_quantile": result.threshold_quantile,
    }
    # Re-score the winner by hand: relabel, train both experts with the chosen params, route the validation rows.
    relabelled = apply_threshold(scored, result.threshold)
    experts = {r: train_expert(features, relabelled, r, result.params[r], seed=0) for r in REGIMES}
    validation = features[features["split"] == "validation"]
    by_hand = validation_score(validation["target"].to_numpy(), llmoe_predict(experts, validation, relabelled))
    assert by_hand["val_accuracy"] == pytest.approx(winner["val_accuracy"])
    # Every configuration of the grid is kept with its test-day positions: 2 quantiles × 8 × 8 networks; the chosen
    # one trades exactly as the re-trained winners do.
    configurations = result.configurations
    test = features[features["split"] == "test"]
    assert configurations.shape == (len(test), 1 + 2 * 8 * 8)
    assert list(configurations["date"]) == list(pd.to_datetime(test["date"]))
    grid = expert_param_grid(cfg)
    chosen = f"q={result.threshold_quantile:g} " + " ".join(f"{r}#{grid.index(result.params[r])}" for r in REGIMES)
    by_hand_positions = (llmoe_predict(experts, test, relabelled) > 0.5).astype(np.int8)
    np.testing.assert_array_equal(configurations[chosen].to_numpy(), by_hand_positions)
    assert configurations.drop(columns="date").isin([0, 1]).all().all()
    # Test windows never influence the choice: moving every test p_optimistic changes nothing.
    moved = search_router_threshold(features, _scored_labels(features, test_shift=0.3), cfg, seed=0)
    pd.testing.assert_frame_equal(moved.table, table)


def test_regime_counts_and_the_windows_an_expert_needs():
    from llmoe_pipeline.router.regimes import MIN_ROWS_PER_REGIME, regime_counts, too_few_windows

    labels = pd.DataFrame(
        {
            "split": ["train"] * 60 + ["validation"] * 15 + ["test"] * 3,
            "label": ["Optimistic"] * 55
            + ["Pessimistic"] * 5
            + ["Optimistic"] * 6
            + ["Pessimistic"] * 9
            + ["Pessimistic"] * 3,
        }
    )
    counts = regime_counts(labels)
    assert counts == {
        "train": {"Optimistic": 55, "Pessimistic": 5},
        "validation": {"Optimistic": 6, "Pessimistic": 9},
        "test": {"Optimistic": 0, "Pessimistic": 3},
    }
    assert MIN_ROWS_PER_REGIME == {"train": 50, "validation": 10}
    # Test windows never count; a regime absent from a split counts as 0.
    assert too_few_windows(counts) == {"train/Pessimistic": 5, "validation/Optimistic": 6, "validation/Pessimistic": 9}
    assert too_few_windows({"train": {"Optimistic": 50, "Pessimistic": 50}}) == {
        "validation/Optimistic": 0,
        "validation/Pessimistic": 0,
    }
    assert (
        too_few_windows(
            {"train": {"Optimistic": 50, "Pessimistic": 50}, "validation": {"Optimistic": 10, "Pessimistic": 10}}
        )
        == {}
    )
