"""Result figures as PNG files: equity and drawdown over seeds vs buy-and-hold, and router regimes.

Input shapes:
- `curves`: {model name: DataFrame indexed by date, one column per seed, values = equity}, i.e. the
  `equity` columns of `backtest.backtest` for each seed, e.g.
  `pd.concat({seed: bt["equity"] for seed, bt in runs.items()}, axis=1)`.
- `benchmark`: Series of buy-and-hold equity indexed by date (`buy_and_hold(...)["equity"]`).
- `labels`: Series of router labels ("Optimistic" / "Pessimistic") indexed by date.
Equity on date t is the wealth after the holding period t -> t+1 (see `backtest`).

Figures are drawn with matplotlib's object API on the Agg canvas (no pyplot, no global backend state)
and written through `io.atomic_path`, so a crash never leaves a half-written PNG.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from llmoe_pipeline.catalog import BUY_AND_HOLD
from llmoe_pipeline.core.files import atomic_path
from llmoe_pipeline.router.regimes import REGIMES
from llmoe_pipeline.trading.metrics import drawdown_from_equity

REGIME_COLORS = dict(zip(REGIMES, ("tab:green", "tab:red")))


def _new_axes(title: str, ylabel: str):
    fig = Figure(figsize=(10, 4.5), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    return fig, ax


def _save(fig: Figure, path: str | os.PathLike) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return Path(path)


def _plot_band(ax, frame: pd.DataFrame, label: str) -> None:
    """Mean over the columns (seeds) as a line, +-1 std (ddof=1; none for one seed) as a band."""
    mean = frame.mean(axis=1)
    (line,) = ax.plot(frame.index, mean, label=f"{label} (n={frame.shape[1]})", linewidth=1.4)
    if frame.shape[1] > 1:
        std = frame.std(axis=1, ddof=1)
        ax.fill_between(frame.index, mean - std, mean + std, color=line.get_color(), alpha=0.2, linewidth=0)


def _check_curves(curves: Mapping[str, pd.DataFrame]) -> None:
    if not curves:
        raise ValueError("no equity curves to plot")
    for model, frame in curves.items():
        if frame.empty:
            raise ValueError(f"the equity curves of {model!r} are empty")


def plot_equity(
    curves: Mapping[str, pd.DataFrame],
    benchmark: pd.Series,
    path: str | os.PathLike,
    title: str = "Equity (mean ± 1 std over seeds)",
) -> Path:
    """Mean equity per model with a ±1 std band over seeds, against buy-and-hold; returns `path`."""
    _check_curves(curves)
    fig, ax = _new_axes(title, "equity (start = 1)")
    for model, frame in curves.items():
        _plot_band(ax, frame, model)
    ax.plot(benchmark.index, benchmark, color="black", linestyle="--", linewidth=1.2, label=BUY_AND_HOLD)
    ax.axhline(1.0, color="grey", linewidth=0.8)
    ax.legend(loc="upper left")
    return _save(fig, path)


def plot_drawdown(
    curves: Mapping[str, pd.DataFrame],
    benchmark: pd.Series,
    path: str | os.PathLike,
    title: str = "Drawdown (mean ± 1 std over seeds)",
) -> Path:
    """Drawdown (%) per model, mean with a ±1 std band over seeds, against buy-and-hold; returns `path`."""
    _check_curves(curves)
    fig, ax = _new_axes(title, "drawdown (%)")
    for model, frame in curves.items():
        drawdown = pd.DataFrame(drawdown_from_equity(frame) * 100.0, index=frame.index, columns=frame.columns)
        _plot_band(ax, drawdown, model)
    ax.plot(
        benchmark.index,
        drawdown_from_equity(benchmark) * 100.0,
        color="black",
        linestyle="--",
        linewidth=1.2,
        label=BUY_AND_HOLD,
    )
    ax.legend(loc="lower left")
    return _save(fig, path)


def plot_regimes(prices: pd.Series, labels: pd.Series, path: str | os.PathLike, title: str = "Router regimes") -> Path:
    """The price (or an equity curve) with each day's router label shaded behind it; returns `path`.

    Label of date t shades [t, next date). Dates without a label stay unshaded; a label other than
    Optimistic/Pessimistic is an error.
    """
    if prices.empty:
        raise ValueError("no prices to plot")
    unknown = set(labels.dropna()) - set(REGIME_COLORS)
    if unknown:
        raise ValueError(f"unknown router label(s) {sorted(unknown)}; expected {sorted(REGIME_COLORS)}")
    fig, ax = _new_axes(title, prices.name or "price")
    aligned = labels.reindex(prices.index).to_numpy(dtype=object)
    dates = prices.index
    # Contiguous runs of one label become one shaded span each.
    starts = np.flatnonzero(np.r_[True, aligned[1:] != aligned[:-1]])
    ends = np.r_[starts[1:], len(dates)]
    shown = set()
    for start, end in zip(starts, ends):
        label = aligned[start]
        if label not in REGIME_COLORS:
            continue
        right = dates[end] if end < len(dates) else dates[-1]
        ax.axvspan(
            dates[start],
            right,
            color=REGIME_COLORS[label],
            alpha=0.18,
            linewidth=0,
            label=None if label in shown else label,
        )
        shown.add(label)
    ax.plot(dates, prices, color="black", linewidth=1.2, label=prices.name or "price")
    ax.legend(loc="upper left")
    return _save(fig, path)
