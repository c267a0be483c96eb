"""Aggregate per-seed results over seeds, and render them as the paper's table, JSON and Markdown.

Input of `summarize`: a long DataFrame, one row per (ticker, model, seed, split[, cost_bps]) with the
seven metric columns of `llmoe_pipeline.trading.metrics.METRIC_NAMES`. A missing `cost_bps` column means 0
(the paper trades without costs). A deterministic model (Buy&Hold) simply has one seed.

Output of `summarize`: one row per (ticker, model, split, cost_bps) with `n_seeds` (rows aggregated)
and `<metric>_mean`, `<metric>_std` (ddof=1; 0 for a single value), `<metric>_min`, `<metric>_max`.
A metric that is undefined (NaN, e.g. the Sharpe ratio of an all-cash seed) is left out of that
metric's statistics; when it is undefined for every seed its statistics are NaN.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from llmoe_pipeline.models.registry import model_rank
from llmoe_pipeline.trading.metrics import METRIC_NAMES

GROUP_KEYS = ["ticker", "model", "split", "cost_bps"]
STATS = ("mean", "std", "min", "max")
# Shown as percentages in the table; the ratios are shown as they are.
PERCENT_METRICS = {"total_return", "annual_return", "annual_volatility", "max_drawdown"}
METRIC_LABELS = {
    "total_return": "Total return %",
    "annual_return": "Annual return %",
    "annual_volatility": "Annual vol. %",
    "sharpe_ratio": "Sharpe",
    "sortino_ratio": "Sortino",
    "calmar_ratio": "Calmar",
    "max_drawdown": "Max DD %",
}


def summarize(results: pd.DataFrame) -> pd.DataFrame:
    """Mean, std, min and max of every metric over seeds, per (ticker, model, split, cost_bps)."""
    missing = [c for c in ["ticker", "model", "seed", "split", *METRIC_NAMES] if c not in results.columns]
    if missing:
        raise ValueError(f"results lack column(s) {missing}")
    results = results.copy()
    if "cost_bps" not in results.columns:
        results["cost_bps"] = 0.0
    results["cost_bps"] = results["cost_bps"].astype(float)
    duplicated = results.duplicated(GROUP_KEYS + ["seed"], keep=False)
    if duplicated.any():
        first = results.loc[duplicated, GROUP_KEYS + ["seed"]].iloc[0].to_dict()
        raise ValueError(f"results hold the same run more than once, e.g. {first}")
    metrics = results[list(METRIC_NAMES)].astype(float)
    if np.isinf(metrics.to_numpy()).any():
        raise ValueError("results hold an infinite metric value")

    grouped = metrics.groupby([results[k] for k in GROUP_KEYS], sort=False)
    stats = grouped.agg(list(STATS))
    stats.columns = [f"{metric}_{stat}" for metric, stat in stats.columns]
    counts = grouped.count()
    for metric in METRIC_NAMES:  # one defined value: the spread is 0, not pandas' NaN
        stats.loc[counts[metric] == 1, f"{metric}_std"] = 0.0
    stats.insert(0, "n_seeds", grouped.size())
    summary = stats.reset_index()
    return _ordered(summary).reset_index(drop=True)


def _ordered(summary: pd.DataFrame) -> pd.DataFrame:
    rank = summary["model"].map(model_rank)
    return summary.assign(_rank=rank).sort_values(["ticker", "split", "cost_bps", "_rank"]).drop(columns="_rank")


def _format_cell(row: pd.Series, metric: str) -> str:
    mean, std = row[f"{metric}_mean"], row[f"{metric}_std"]
    if pd.isna(mean):
        return "n/a"
    scale = 100.0 if metric in PERCENT_METRICS else 1.0
    return f"{mean * scale:.2f} ± {std * scale:.2f}"


def _blocks(summary: pd.DataFrame, splits: list[str]):
    """(title, header, rows) for each (split, cost, ticker): rows are models, columns the seven metrics."""
    header = ["Model", "Seeds", *(METRIC_LABELS[m] for m in METRIC_NAMES)]
    summary = _ordered(summary)
    for split in splits:
        part = summary[summary["split"] == split]
        for (cost, ticker), group in part.groupby(["cost_bps", "ticker"], sort=True):
            rows = [
                [r["model"], str(int(r["n_seeds"])), *(_format_cell(r, m) for m in METRIC_NAMES)]
                for _, r in group.iterrows()
            ]
            yield f"{ticker}, {split} split, cost {cost:g} bps (mean ± std over seeds)", header, rows


def format_table(summary: pd.DataFrame, split: str = "test") -> str:
    """The paper's table as aligned text: one block per ticker (and cost level) of `split`.

    Cells are "mean ± std" over seeds; returns, volatility and max drawdown in percent, ratios as they
    are, 2 decimals; "n/a" where a metric is undefined.
    """
    if split not in set(summary["split"]):
        raise ValueError(f"no results for split {split!r} (have {sorted(set(summary['split']))})")
    out = []
    for title, header, rows in _blocks(summary, [split]):
        widths = [max(len(cell) for cell in column) for column in zip(header, *rows)]

        def line(cells: list[str], widths: list[int] = widths) -> str:  # names left-aligned, numbers right-aligned
            return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

        out += [title, line(header), "-" * len(line(header)), *(line(r) for r in rows), ""]
    return "\n".join(out).rstrip() + "\n"


def to_markdown(summary: pd.DataFrame) -> str:
    """Every split and cost level as Markdown tables (for Dagster metadata); splits in the usual order."""
    order = ["train", "validation", "test", "none"]
    splits = sorted(set(summary["split"]), key=lambda s: (order.index(s) if s in order else len(order), s))
    out = []
    for title, header, rows in _blocks(summary, splits):
        out += [f"**{title}**", "", "| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
        out += ["| " + " | ".join(r) + " |" for r in rows] + [""]
    return "\n".join(out)


def _json_number(value) -> float | None:
    value = float(value)
    return None if math.isnan(value) else value


def to_json(summary: pd.DataFrame, split: str = "test") -> list[dict]:
    """JSON-safe records of `split`: {ticker, model, cost_bps, n_seeds, metrics: {name: {mean, std, min, max}}}.

    NaN (an undefined metric) becomes None.
    """
    records = []
    for _, row in _ordered(summary[summary["split"] == split]).iterrows():
        records.append(
            {
                "ticker": str(row["ticker"]),
                "model": str(row["model"]),
                "cost_bps": float(row["cost_bps"]),
                "n_seeds": int(row["n_seeds"]),
                "metrics": {m: {s: _json_number(row[f"{m}_{s}"]) for s in STATS} for m in METRIC_NAMES},
            }
        )
    return records
