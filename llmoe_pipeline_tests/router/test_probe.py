"""The probe routers' fit (router/probe.py) on real price features and on inputs of the hidden states' width: the
validation and test targets are never read, shuffled training targets give a chance validation AUC, and a signal in
the inputs is found; the vllm/openai backends with llm_probe are one ConfigError. No language model here
(test_hidden_states.py runs the probe through the real model and cache)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from llmoe_pipeline.catalog import DEFAULT_VARIANTS, HIDDEN_STATES_NEED_TRANSFORMERS, variant
from llmoe_pipeline.config.protocol import PipelineConfig
from llmoe_pipeline.config.settings import ConfigError, load_settings
from llmoe_pipeline.features.windows import build_features
from llmoe_pipeline.research.walkforward import fold_features, fold_probe_scores, folds
from llmoe_pipeline.router.hidden import decode_hidden, encode_hidden
from llmoe_pipeline.router.probe import PROBE_CS, feature_inputs, fit_probe, hidden_inputs
from llmoe_pipeline_tests.model_fixtures import small_features

WIDTH = 576  # SmolLM2's hidden size


@pytest.fixture(scope="module")
def windows(aapl_prices) -> pd.DataFrame:
    """~800 train, ~200 validation, ~120 test real AAPL windows (2010 to mid-2014), with their 55 features."""
    features = small_features(aapl_prices)
    return features[features["split"] != "none"].reset_index(drop=True)


def fake_labels(windows: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """`llm`'s labels as router_labels stores them for llm_probe: a float16 hidden state per window."""
    states = np.random.default_rng(seed).normal(size=(len(windows), WIDTH)).astype(np.float32)
    return windows[["ticker", "date", "split"]].assign(hidden=[encode_hidden(s) for s in states])


def held_out_changed(windows: pd.DataFrame) -> pd.DataFrame:
    """The same windows with every validation and test target flipped, and the live one set."""
    changed = windows.copy()
    held = changed["split"].isin(["validation", "test"])
    changed.loc[held, "target"] = 1 - changed.loc[held, "target"]
    changed.loc[changed["split"] == "live", "target"] = 1.0
    return changed


def auc(windows: pd.DataFrame, scores: pd.DataFrame, split: str) -> float:
    rows = (windows["split"] == split).to_numpy()
    return float(roc_auc_score(windows["target"].to_numpy()[rows], scores["p_optimistic"].to_numpy()[rows]))


def test_the_probes_never_read_validation_or_test_targets(windows):
    changed = held_out_changed(windows)
    assert (changed["target"] != windows["target"]).sum() > 300
    features = fit_probe(windows, feature_inputs(windows, 5))
    again = fit_probe(changed, feature_inputs(changed, 5))
    assert np.array_equal(features.scores["p_optimistic"], again.scores["p_optimistic"]) and features.c == again.c
    labels = fake_labels(windows)
    probe = fit_probe(windows, hidden_inputs(windows, labels))
    again = fit_probe(changed, hidden_inputs(changed, labels))
    assert np.array_equal(probe.scores["p_optimistic"], again.scores["p_optimistic"]) and probe.c == again.c
    assert features.train_windows == probe.train_windows == int((windows["split"] == "train").sum())
    assert (features.inputs, probe.inputs) == (55, WIDTH) and features.c in PROBE_CS
    # Every window is scored, in the windows' order, the live one included.
    assert features.scores[["ticker", "date", "split"]].equals(windows[["ticker", "date", "split"]])
    assert features.scores["p_optimistic"].between(0, 1).all()


def test_shuffled_training_targets_give_a_chance_validation_auc(windows):
    rng = np.random.default_rng(0)
    x = feature_inputs(windows, 5)
    train = (windows["split"] == "train").to_numpy()
    aucs = []
    for _ in range(15):
        shuffled = windows.copy()
        shuffled.loc[train, "target"] = rng.permutation(shuffled.loc[train, "target"].to_numpy())
        aucs.append(auc(windows, fit_probe(shuffled, x).scores, "validation"))
    assert abs(np.mean(aucs) - 0.5) < 0.05, aucs
    # Inputs as wide as the hidden states and unrelated to the targets: chance too.
    noise = [
        auc(windows, fit_probe(windows, hidden_inputs(windows, fake_labels(windows, s))).scores, "validation")
        for s in range(5)
    ]
    assert abs(np.mean(noise) - 0.5) < 0.05, noise


def test_a_signal_in_the_inputs_is_found_on_days_it_was_not_fitted_on(windows):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(len(windows), 40))
    x[:, 7] += np.where(windows["target"].fillna(0).to_numpy() == 1, 0.8, -0.8)  # one input carries the direction
    fit = fit_probe(windows, x)
    assert auc(windows, fit.scores, "validation") > 0.7 and auc(windows, fit.scores, "test") > 0.7
    assert fit.cv_auc > 0.7


def test_too_few_training_windows_or_a_missing_hidden_state_is_an_error(windows):
    few = windows[windows["split"] != "train"].reset_index(drop=True)
    with pytest.raises(ValueError, match="training windows with both directions"):
        fit_probe(few, feature_inputs(few, 5))
    with pytest.raises(ValueError, match="2 of .* windows have no hidden state"):
        hidden_inputs(windows, fake_labels(windows).iloc[2:])
    with pytest.raises(ValueError, match="no hidden states"):
        hidden_inputs(windows, windows[["ticker", "date"]])


def test_hidden_states_are_float16_little_endian_bytes():
    vector = np.linspace(-3, 3, WIDTH, dtype=np.float32)
    blob = encode_hidden(vector)
    assert len(blob) == 2 * WIDTH and blob == vector.astype("<f2").tobytes()
    assert np.array_equal(decode_hidden(blob), vector.astype(np.float16))


# ---------------------------------------------------------------------------------------------- config
def test_llm_probe_with_the_vllm_or_openai_backend_is_one_config_error(tmp_path):
    assert {"llm_probe", "features_probe"} <= set(DEFAULT_VARIANTS)
    config = tmp_path / "c.yaml"
    config.write_text("router:\n  variants: [llm, llm_probe]\nrouter_backend:\n  base_url: http://127.0.0.1:8000/v1\n")
    for backend in ("vllm", "openai"):
        with pytest.raises(ConfigError) as err:
            load_settings(config, router_backend=backend)
        assert str(err.value) == f"{config}: router.variants: {HIDDEN_STATES_NEED_TRANSFORMERS}"
        assert "\n" not in str(err.value)
    assert load_settings(config, router_backend="transformers").protocol.router.variants == ["llm", "llm_probe"]


def test_the_default_variants_leave_llm_probe_out_where_the_backend_cannot_give_hidden_states(tmp_path):
    default = load_settings().protocol.router
    assert "llm_probe" in default.variants and default.soft_routing == ["llm", "llm_probe"]
    server = tmp_path / "server.yaml"
    server.write_text("router_backend:\n  backend: openai\n  base_url: http://127.0.0.1:8000/v1\n")
    for router in (load_settings(router_backend="vllm").protocol.router, load_settings(server).protocol.router):
        assert "llm_probe" not in router.variants and "features_probe" in router.variants
        assert router.soft_routing == ["llm"]
    assert variant("llm_probe").reads_hidden_states and not variant("features_probe").reads_hidden_states


def test_the_walk_forward_refits_a_probe_on_each_folds_training_windows(aapl_prices):
    cfg = PipelineConfig()
    features = build_features(aapl_prices[aapl_prices["date"] <= pd.Timestamp("2013-12-31")], cfg.split)
    (fold,) = folds(cfg, 2012, 2012, dt.date(2013, 12, 31))
    feats = fold_features(features, fold)
    scores = fold_probe_scores(variant("features_probe"), feats, {}, cfg)
    # The fold's year and everything after it (its test days, later days) changed: the fold's probe is the same.
    later = features.assign(target=np.where(features["date"] >= pd.Timestamp("2012-01-01"), 0.0, features["target"]))
    again = fold_probe_scores(variant("features_probe"), fold_features(later, fold), {}, cfg)
    assert np.array_equal(scores["p_optimistic"], again["p_optimistic"])
    assert set(scores["split"]) == {"train", "validation", "test"} and scores["date"].max() <= pd.Timestamp(
        "2012-12-31"
    )
