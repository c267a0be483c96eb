"""Router figures as PNG files: the Optimistic share per month of each router variant, test period shaded.

Input: the `monthly_share` table of `diagnostics.router_diagnostics` (variant, month, optimistic_share, ...).
Drawn like `plots.py`: matplotlib's object API on the Agg canvas (no pyplot, no global backend state), written
through `io.atomic_path` so that a crash never leaves a half-written PNG.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from llmoe_pipeline.core.files import atomic_path


def plot_optimistic_share(
    monthly: pd.DataFrame,
    path: str | os.PathLike,
    test_period: tuple[pd.Timestamp, pd.Timestamp] | None = None,
    future_variants: Iterable[str] = (),
    title: str = "Share of windows labelled Optimistic, per month",
) -> Path:
    """One line per variant (share of its windows labelled Optimistic each month), the test period shaded, a
    variant that uses the future dashed and marked in the legend; returns `path`."""
    missing = {"variant", "month", "optimistic_share"} - set(monthly.columns)
    if missing:
        raise ValueError(f"monthly share table lacks columns {sorted(missing)}")
    if monthly.empty:
        raise ValueError("no monthly Optimistic shares to plot")
    future = set(future_variants)
    fig = Figure(figsize=(10, 4.5), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_title(title)
    ax.set_ylabel("Optimistic share of windows")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    if test_period is not None:
        ax.axvspan(pd.Timestamp(test_period[0]), pd.Timestamp(test_period[1]), color="grey", alpha=0.15, label="test")
    for variant, g in monthly.groupby("variant", sort=False):
        g = g.sort_values("month")
        label = f"{variant} (uses the future)" if variant in future else str(variant)
        style = "--" if variant in future else "-"
        ax.plot(pd.to_datetime(g["month"]), g["optimistic_share"], style, linewidth=1.2, label=label)
    ax.axhline(0.5, color="black", linewidth=0.8)
    ax.legend(loc="upper left", ncol=2, fontsize="small")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return Path(path)
