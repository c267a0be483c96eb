"""Summary over seeds, the text table, JSON and Markdown, on small hand-checkable results."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from llmoe_pipeline.reporting.tables import format_table, summarize, to_json, to_markdown
from llmoe_pipeline.trading.metrics import METRIC_NAMES


def _row(ticker, model, seed, split, sharpe, total, cost=0.0):
    metrics = dict.fromkeys(METRIC_NAMES, 0.0)
    metrics.update(sharpe_ratio=sharpe, total_return=total, max_drawdown=-0.1 * (seed + 1))
    return {"ticker": ticker, "model": model, "seed": seed, "split": split, "cost_bps": cost, **metrics}


@pytest.fixture()
def results():
    rows = [
        _row("AAPL", "MLP", 0, "test", 0.5, 0.10),
        _row("AAPL", "MLP", 1, "test", 1.5, 0.30),
        _row("AAPL", "LLMoE", 0, "test", 1.0, 0.20),
        _row("AAPL", "LLMoE", 1, "test", 2.0, 0.40),
        _row("AAPL", "LLMoE", 2, "test", 3.0, 0.60),
        _row("AAPL", "Buy&Hold", 0, "test", 0.8, 0.25),
        _row("AAPL", "LLMoE", 0, "test", 0.7, 0.15, cost=10.0),
        _row("AAPL", "LLMoE", 0, "train", 4.0, 2.00),
        _row("MSFT", "LLMoE", 0, "test", np.nan, 0.0),  # an all-cash seed: Sharpe undefined
        _row("MSFT", "LLMoE", 1, "test", 1.2, 0.05),
        _row("MSFT", "MoE", 0, "test", np.nan, 0.0),
    ]
    return pd.DataFrame(rows)


def _one(summary, **keys):
    mask = np.logical_and.reduce([summary[k] == v for k, v in keys.items()])
    assert mask.sum() == 1
    return summary[mask].iloc[0]


def test_summarize_statistics(results):
    s = summarize(results)
    llmoe = _one(s, ticker="AAPL", model="LLMoE", split="test", cost_bps=0.0)
    assert llmoe["n_seeds"] == 3
    assert llmoe["sharpe_ratio_mean"] == pytest.approx(2.0)
    assert llmoe["sharpe_ratio_std"] == pytest.approx(1.0)  # sample std of 1, 2, 3
    assert llmoe["sharpe_ratio_min"] == 1.0 and llmoe["sharpe_ratio_max"] == 3.0
    assert llmoe["total_return_std"] == pytest.approx(0.2)
    assert llmoe["max_drawdown_min"] == pytest.approx(-0.3) and llmoe["max_drawdown_max"] == pytest.approx(-0.1)
    mlp = _one(s, ticker="AAPL", model="MLP", split="test", cost_bps=0.0)
    assert mlp["sharpe_ratio_std"] == pytest.approx(math.sqrt(0.5))
    bh = _one(s, ticker="AAPL", model="Buy&Hold", split="test", cost_bps=0.0)
    assert bh["n_seeds"] == 1 and bh["sharpe_ratio_std"] == 0.0 and bh["sharpe_ratio_mean"] == 0.8
    costly = _one(s, ticker="AAPL", model="LLMoE", split="test", cost_bps=10.0)
    assert costly["n_seeds"] == 1 and costly["total_return_mean"] == 0.15
    # undefined Sharpe of one seed is left out; undefined for all seeds stays NaN
    msft = _one(s, ticker="MSFT", model="LLMoE", split="test", cost_bps=0.0)
    assert msft["n_seeds"] == 2 and msft["sharpe_ratio_mean"] == 1.2 and msft["sharpe_ratio_std"] == 0.0
    moe = _one(s, ticker="MSFT", model="MoE", split="test", cost_bps=0.0)
    assert math.isnan(moe["sharpe_ratio_mean"]) and math.isnan(moe["sharpe_ratio_std"])
    assert len(s) == 7  # groups: AAPL test x3 models, AAPL test at 10 bps, AAPL train, MSFT x2 models
    # fixed model order within (ticker, split, cost)
    aapl_test = s[(s["ticker"] == "AAPL") & (s["split"] == "test") & (s["cost_bps"] == 0.0)]
    assert aapl_test["model"].tolist() == ["LLMoE", "MLP", "Buy&Hold"]


def test_summarize_without_cost_column_and_errors(results):
    s = summarize(results[results["cost_bps"] == 0.0].drop(columns="cost_bps"))
    assert set(s["cost_bps"]) == {0.0}
    with pytest.raises(ValueError, match="more than once"):
        summarize(pd.concat([results, results.iloc[[0]]]))
    with pytest.raises(ValueError, match="sharpe_ratio"):
        summarize(results.drop(columns="sharpe_ratio"))


def test_format_table(results):
    text = format_table(summarize(results), split="test")
    lines = text.splitlines()
    assert "AAPL, test split, cost 0 bps (mean ± std over seeds)" in lines
    assert "MSFT, test split, cost 0 bps (mean ± std over seeds)" in lines
    assert "AAPL, test split, cost 10 bps (mean ± std over seeds)" in lines
    assert "train" not in text
    llmoe = next(row for row in lines if row.startswith("LLMoE") and "40.00 ± 20.00" in row)
    # total return 40% ± 20%, Sharpe 2.00 ± 1.00, max drawdown mean -20% ± 10%
    assert "2.00 ± 1.00" in llmoe and "-20.00 ± 10.00" in llmoe
    block = lines[lines.index("AAPL, test split, cost 0 bps (mean ± std over seeds)") :]
    assert [row.split()[0] for row in block[3:6]] == ["LLMoE", "MLP", "Buy&Hold"]
    assert "n/a" in next(row for row in lines if row.startswith("MoE"))
    assert len({len(row) for row in block[1:6]}) == 1  # aligned columns
    with pytest.raises(ValueError, match="validation"):
        format_table(summarize(results), split="validation")


def test_to_json_is_json_safe(results):
    records = to_json(summarize(results), split="test")
    json.dumps(records, allow_nan=False)  # raises on NaN
    assert len(records) == 6
    first = records[0]
    assert (first["ticker"], first["model"], first["cost_bps"], first["n_seeds"]) == ("AAPL", "LLMoE", 0.0, 3)
    assert first["metrics"]["sharpe_ratio"] == {"mean": 2.0, "std": 1.0, "min": 1.0, "max": 3.0}
    assert set(first["metrics"]) == set(METRIC_NAMES)
    moe = next(r for r in records if r["model"] == "MoE")
    assert moe["metrics"]["sharpe_ratio"]["mean"] is None


def test_to_markdown(results):
    md = to_markdown(summarize(results))
    assert md.index("**AAPL, train split") < md.index("**AAPL, test split")
    assert "| Model | Seeds | Total return % |" in md
    assert "| LLMoE | 3 | 40.00 ± 20.00 |" in md
    assert "| LLMoE | 1 | 200.00 ± 0.00 |" in md  # the train split
