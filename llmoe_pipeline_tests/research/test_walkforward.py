"""Walk-forward: expanding folds, every model refitted before its test year and never shown a row of that year or
later, out-of-sample days joined into one series, and the model store reusing what a fold trained before."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from llmoe_pipeline import build_features
from llmoe_pipeline.catalog import DEFAULT_VARIANTS, variant
from llmoe_pipeline.config.protocol import PipelineConfig
from llmoe_pipeline.models import ModelSet
from llmoe_pipeline.models.store import ModelStore
from llmoe_pipeline.research.walkforward import (
    concatenated_metrics,
    fold_features,
    fold_models,
    folds,
    walk_forward,
    yearly_sharpe,
)
from llmoe_pipeline.router.hidden import encode_hidden
from llmoe_pipeline.router.variants import momentum_scores, oracle_scores, random_scores
from llmoe_pipeline_tests.model_fixtures import ALL_MODELS, small_training

TINY = PipelineConfig.model_validate(
    {
        "split": {
            "train_start": "2010-01-04",
            "train_end": "2012-12-31",
            "test_start": "2013-01-02",
            "test_end": "2014-12-31",
        },
        **small_training([8, 8, 4], epochs=4, patience=2, thresholds=[0.5]),
    }
)
VARIANTS = [variant(n) for n in DEFAULT_VARIANTS]  # the probes refitted in every fold


@pytest.fixture(scope="module")
def features(aapl_prices):
    prices = aapl_prices[(aapl_prices["date"] >= "2009-10-01") & (aapl_prices["date"] <= "2014-12-31")]
    return build_features(prices, TINY.split)


def routing(features):
    windows = features[features["split"] != "none"]
    llm = momentum_scores(windows).assign(p_optimistic=lambda d: 0.5 - d["p_optimistic"])  # a stand-in LLM score
    states = np.random.default_rng(0).normal(size=(len(llm), 8))  # stand-in hidden states, for llm_probe
    llm["hidden"] = [encode_hidden(s) for s in states]
    return {
        "llm": llm,
        "momentum": momentum_scores(windows),
        "random": random_scores(windows),
        "oracle": oracle_scores(windows),
    }


def test_folds_expand_from_train_start_and_stop_at_the_data():
    cfg = PipelineConfig()
    got = folds(cfg, 2011, 2016, dt.date(2016, 12, 30))
    assert [f.year for f in got] == [2011, 2012, 2013, 2014, 2015, 2016]
    assert {f.split.train_start for f in got} == {cfg.split.train_start}
    assert [(f.split.train_end, f.split.test_start) for f in got[:2]] == [
        (dt.date(2010, 12, 31), dt.date(2011, 1, 1)),
        (dt.date(2011, 12, 31), dt.date(2012, 1, 1)),
    ]
    assert got[-1].split.test_end == dt.date(2016, 11, 29)  # the protocol's test_end comes first
    assert [f.year for f in folds(cfg, 2011, 2016, dt.date(2013, 6, 1))] == [2011, 2012, 2013]


def test_no_model_of_year_y_sees_a_row_dated_in_y_or_later(features):
    for fold in folds(TINY, 2013, 2014, dt.date(2014, 12, 31)):
        feats = fold_features(features, fold)
        routed, plain = fold_models(
            feats, routing(features), VARIANTS, TINY, lambda fp, kind, train: (train(), False), f"t/{fold.year}"
        )
        models = [m for by_seed in plain.values() for m in by_seed.values()]
        experts = [r for r in routed.values() if not r.soft]  # soft routing shares its top-1 experts
        models += [m for r in experts for by_seed in r.experts.values() for m in by_seed.values()]
        assert len(models) == 2 * (4 + 1 + 6 * 2)  # seeds × (baselines + single + 6 variants × 2 experts)
        for model in models:
            seen = feats.loc[[*model.train_rows, *model.validation_rows], "date"]
            assert seen.max() < pd.Timestamp(f"{fold.year}-01-01"), (fold.year, model.name)
        test_days = feats.loc[feats["split"] == "test", "date"]
        assert test_days.min() >= pd.Timestamp(f"{fold.year}-01-01") and test_days.max().year == fold.year


def test_walk_forward_joins_out_of_sample_years_and_reuses_stored_models(features, tmp_path):
    store = ModelStore(tmp_path / "store")
    calls = []

    def recording(fp, kind, train):
        value, reused = store.get_or_train(fp, kind, train)
        calls.append(reused)
        return value, reused

    daily = walk_forward(features, routing(features), VARIANTS, TINY, 2013, 2014, store=recording)
    assert sorted(daily["year"].unique()) == [2013, 2014]
    assert set(daily["split"]) == {"test"}
    days = daily[(daily["model"] == "LLMoE") & (daily["seed"] == 0) & (daily["cost_bps"] == 0)]
    assert days["date"].is_unique and days["date"].min().year == 2013 and days["date"].max().year == 2014
    assert set(daily["model"]) == ALL_MODELS
    assert not any(calls)
    first = len(calls)
    again = walk_forward(features, routing(features), VARIANTS, TINY, 2013, 2014, store=recording)
    assert all(calls[first:]) and len(calls) == 2 * first  # every fold's models came from the store
    pd.testing.assert_frame_equal(again, daily)
    years = yearly_sharpe(daily)
    assert list(years.columns) == [2013, 2014] and "LLMoE" in years.index
    joined = concatenated_metrics(daily)
    assert (
        set(joined["split"]) == {"walk_forward"} and len(joined) == daily.groupby(["model", "seed", "cost_bps"]).ngroups
    )
    assert isinstance(
        store.get_or_train(next(iter(store.folder.glob("*.safetensors"))).stem, ModelSet, lambda: None)[0], ModelSet
    )


def test_folds_in_parallel_processes_give_the_same_returns(features):
    one = walk_forward(features, routing(features), VARIANTS[:2], TINY, 2013, 2014, workers=1)
    two = walk_forward(features, routing(features), VARIANTS[:2], TINY, 2013, 2014, workers=2)
    pd.testing.assert_frame_equal(one, two)
