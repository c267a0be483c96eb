"""Windows joined to the next day's direction, rank correlations, agreement and the monthly Optimistic share."""

import numpy as np
import pandas as pd
import pytest

from llmoe_pipeline.features.windows import FEATURE_NAMES
from llmoe_pipeline.research.diagnostics import VariantRouting, label_agreement, mlflow_metrics, router_diagnostics
from llmoe_pipeline.research.diagnostics.tables import (
    aligned_windows,
    input_correlations,
    monthly_optimistic_share,
    spearman,
)


def toy_features(n: int = 120, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2014-01-01", periods=n)
    frame = pd.DataFrame({"ticker": "AAA", "date": dates})
    for name in FEATURE_NAMES:
        frame[f"{name}_lag0"] = rng.normal(size=n)
    frame["target"] = rng.integers(0, 2, n)
    frame["split"] = np.where(np.arange(n) < 60, "train", np.where(np.arange(n) < 80, "validation", "test"))
    frame.loc[n - 1, "split"] = "none"
    return frame


def routing(features: pd.DataFrame, score) -> pd.DataFrame:
    return features[["ticker", "date", "split"]].assign(p_optimistic=np.asarray(score, dtype=float))


def test_aligned_windows_label_direction_and_hit():
    f = toy_features()
    score = np.linspace(0, 1, len(f))
    rows = aligned_windows(f, VariantRouting("v", routing(f, score), threshold=0.5))
    assert len(rows) == len(f) - 1  # the "none" row is left out
    assert (rows["label"] == np.where(score[:-1] > 0.5, "Optimistic", "Pessimistic")).all()
    assert (rows["up"] == f["target"].iloc[:-1]).all()
    assert (rows["hit"] == ((rows["label"] == "Optimistic") == (rows["up"] == 1))).all()
    with pytest.raises(ValueError, match="lacks columns"):
        aligned_windows(f, VariantRouting("v", routing(f, score).drop(columns="split"), 0.5))


def test_spearman_by_hand():
    assert spearman([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]) == pytest.approx(1 - 6 * 4 / (5 * 24))  # sum d^2 = 4
    assert spearman([1, 2, 3, 4], [10, 100, 1000, 10000]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert np.isnan(spearman([1, 1, 1, 1], [1, 2, 3, 4]))


def test_momentum_like_score_tracks_its_input():
    f = toy_features()
    rows = aligned_windows(f, VariantRouting("v", routing(f, -3 * f["ma_5_lag0"]), 0.0))
    table = input_correlations(rows)
    assert set(table["split"]) == {"train", "validation", "test"}
    assert len(table) == 3 * len(FEATURE_NAMES)
    ma5 = table[table["input"] == "ma_5_lag0"]["spearman"]
    assert ma5.to_numpy() == pytest.approx(-1.0)


def test_agreement_with_itself_is_one_and_with_its_opposite_zero():
    f = toy_features()
    rng = np.random.default_rng(1)
    score = rng.uniform(size=len(f))
    same = aligned_windows(f, VariantRouting("a", routing(f, score), 0.5))
    opposite = aligned_windows(f, VariantRouting("c", routing(f, 1 - score), 0.5))
    table = label_agreement({"a": same, "b": same, "c": opposite})
    ab = table[(table["variant_a"] == "a") & (table["variant_b"] == "b")]
    assert len(ab) == 3 and (ab["agreement"] == 1.0).all()
    assert ab["score_spearman"].to_numpy() == pytest.approx(1.0)
    ac = table[(table["variant_a"] == "a") & (table["variant_b"] == "c")]
    assert (ac["agreement"] == 0.0).all()
    assert ab.set_index("split")["windows"].to_dict() == {"train": 60, "validation": 20, "test": 39}


def test_monthly_share_by_hand():
    dates = pd.to_datetime(["2015-01-05", "2015-01-06", "2015-01-07", "2015-02-02"])
    rows = pd.DataFrame(
        {
            "date": dates,
            "split": ["validation", "test", "test", "test"],
            "label": ["Optimistic", "Optimistic", "Pessimistic", "Pessimistic"],
        }
    )
    table = monthly_optimistic_share({"v": rows})
    assert table["optimistic_share"].tolist() == pytest.approx([2 / 3, 0.0])
    assert table["windows"].tolist() == [3, 1]
    assert table["split"].tolist() == ["test", "test"]
    assert table["month"].tolist() == [pd.Timestamp("2015-01-01"), pd.Timestamp("2015-02-01")]


def test_report_long_table_and_flat_metric_names():
    f = toy_features()
    llm = routing(f, np.linspace(0, 1, len(f))).assign(explanation=None)
    llm.loc[llm["split"] == "test", "explanation"] = "The outlook is pessimistic."
    d = router_diagnostics(
        f,
        [
            VariantRouting("llm", llm, 0.5, is_llm=True),
            VariantRouting("oracle", routing(f, f["target"]), 0.5, uses_future=True),
        ],
        reps=50,
    )
    s = d.summary
    assert list(s.columns) == ["variant", "split", "metric", "value", "ci_low", "ci_high", "n", "detail", "uses_future"]
    auc = s[(s["metric"] == "auc") & (s["variant"] == "oracle")]
    assert auc["value"].tolist() == [1.0, 1.0, 1.0] and auc["uses_future"].all()
    assert not s.loc[s["variant"] == "llm", "uses_future"].any()
    contradiction = s[s["metric"] == "contradiction_share"]
    # Test windows above 0.5 are labelled Optimistic, and every test explanation says pessimistic.
    test_rows = aligned_windows(f, VariantRouting("llm", llm, 0.5))
    expected = (test_rows.loc[test_rows["split"] == "test", "label"] == "Optimistic").mean()
    assert contradiction["split"].tolist() == ["test"] and contradiction["value"].iloc[0] == pytest.approx(expected)
    assert d.future_variants == ("oracle",)
    metrics = mlflow_metrics(s)
    assert metrics["auc_test_oracle"] == 1.0 and metrics["auc_test_oracle_ci_low"] == 1.0
    assert "auc_validation_llm_ci_high" in metrics and "hit_rate_train_llm" in metrics
    assert "spearman_ma_5_lag0_test_llm" in metrics and "agreement_test_llm_vs_oracle" in metrics
    assert metrics["contradiction_share_test_llm"] == pytest.approx(expected)
    assert all(np.isfinite(v) for v in metrics.values())
    assert set(d.tables()) == {
        "summary",
        "monthly_optimistic_share",
        "input_correlations",
        "agreement",
        "contradictions",
    }
