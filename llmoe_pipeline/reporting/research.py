"""`llmoe report --format json|md`: the results, the significance tests, the router diagnostics and the walk-forward
of every ticker as one JSON object, or as a Markdown research report with its figures beside it."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from llmoe_pipeline.catalog import LLMOE, uses_future
from llmoe_pipeline.core.files import atomic_path, write_text_atomic
from llmoe_pipeline.reporting.tables import to_json, to_markdown
from llmoe_pipeline.research.across import across_text
from llmoe_pipeline.research.verdict import (
    MAIN_COMPARISON,
    POWER_COLUMNS,
    TickerEvidence,
    plain_words,
    power_words,
    ranking,
    selection_words,
    verdict_text,
)

# Figures each ticker's evaluation writes under <home>/artifacts/<ticker>/plots, and what the report calls them.
FIGURES = {
    "equity.png": "Test equity of every model (mean ± 1 std over seeds) against buy-and-hold",
    "regimes.png": "The LLM router's regimes over the test period",
    "router_optimistic_share.png": "Share of windows labelled Optimistic per month, per router variant",
}


def _records(frame: pd.DataFrame | None) -> list[dict]:
    if frame is None or frame.empty:
        return []
    clean = frame.astype(object).where(frame.notna(), None)
    return [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
        for r in clean.to_dict(orient="records")
    ]


POWER_INPUTS = ["n_days", "correlation", "skewness_a", "skewness_b", "kurtosis_a", "kurtosis_b",
                "autocorrelation_a", "autocorrelation_b", "block_length", "simulations", "alpha"]  # fmt: skip


def power_records(tables: dict) -> list[dict]:
    """The LLMoE comparisons' power figures, each with its inputs (T, correlation, moments, block length)."""
    keep = ["model_a", "model_b", "uses_future", "sharpe_diff", "p_value", *POWER_COLUMNS, *POWER_INPUTS,
            "power_curve"]  # fmt: skip
    return [{k: r.get(k) for k in keep} for r in tables.get("pairs") or [] if "mde" in r]


def _sections(e: TickerEvidence, name: str) -> dict:
    return {split: tables.get(name) or [] for split, tables in e.significance.items()}


def report_json(results_summary: pd.DataFrame, evidence: list[TickerEvidence]) -> dict:
    """One object: results (the per-model rows), significance, power, track_record, selection,
    router_diagnostics, walk_forward and the verdict (by ticker)."""
    return {
        "results": to_json(results_summary, split="test"),
        "significance": {e.ticker: e.significance for e in evidence},
        "router_diagnostics": {e.ticker: _records(e.diagnostics) for e in evidence},
        "walk_forward": {
            e.ticker: {
                "results": to_json(e.walk_forward, split="walk_forward") if e.walk_forward is not None else [],
                "sharpe_per_year": _records(e.yearly.reset_index() if e.yearly is not None else None),
            }
            for e in evidence
        },
        "power": {e.ticker: {split: power_records(t) for split, t in e.significance.items()} for e in evidence},
        "track_record": {e.ticker: _sections(e, "track_record") for e in evidence},
        "selection": {e.ticker: (e.significance.get("test") or {}).get("selection") or [] for e in evidence},
        "verdict": {
            e.ticker: " ".join(w for w in (plain_words(e), power_words(e), selection_words(e)) if w) for e in evidence
        },
    }


def plot_power_curve(tables: dict, path: Path, title: str) -> Path | None:
    """Power of the LLMoE-vs-buy-and-hold test against the true Sharpe gap (simulation), with the MDE marked."""
    rows = [r for r in tables.get("pairs") or [] if r.get("model_b") == MAIN_COMPARISON and r.get("power_curve")]
    main = next((r for r in rows if r.get("model_a") == LLMOE), None)
    if main is None:
        return None
    gaps, power = zip(*main["power_curve"])
    fig = Figure(figsize=(7, 4), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot(gaps, power, "-o", label="block-bootstrap simulation")
    ax.axhline(main["target_power"], color="grey", linestyle="--", linewidth=0.8, label=f"{main['target_power']:.0%}")
    ax.axhline(main["alpha"], color="grey", linestyle=":", linewidth=0.8, label="5 % level")
    if main.get("mde") is not None and math.isfinite(main["mde"]):
        ax.axvline(main["mde"], color="C1", linewidth=1, label=f"MDE {main['mde']:.2f}")
    ax.set_xlabel("true annualised Sharpe gap, LLMoE minus buy-and-hold")
    ax.set_ylabel("probability the test detects it")
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


def plot_yearly_sharpe(yearly: pd.DataFrame, path: Path, title: str) -> Path:
    """Walk-forward Sharpe per out-of-sample year: one line per model (mean over seeds)."""
    fig = Figure(figsize=(10, 4.5), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_title(title)
    ax.set_ylabel("Sharpe ratio (mean over seeds)")
    ax.grid(alpha=0.3)
    for model, row in yearly.iterrows():
        future = uses_future(str(model))
        ax.plot(
            [int(y) for y in row.index],
            row.to_numpy(),
            "--" if future else "-o",
            linewidth=1.2,
            label=f"{model} (uses the future)" if future else str(model),
        )
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.legend(loc="upper left", ncol=3, fontsize="small")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


def _diagnostics_table(diagnostics: pd.DataFrame | None) -> str:
    if diagnostics is None or diagnostics.empty:
        return "_No router diagnostics._"
    rows = diagnostics[diagnostics["metric"].isin(["auc", "hit_rate"])]
    cells = rows.assign(
        cell=[f"{v:.3f} [{lo:.3f}, {hi:.3f}]" for v, lo, hi in zip(rows["value"], rows["ci_low"], rows["ci_high"])]
    )
    table = cells.pivot_table(index=["variant", "metric"], columns="split", values="cell", aggfunc="first")
    return table[[s for s in ("train", "validation", "test") if s in table.columns]].to_markdown()


def _significance_table(tables: dict) -> str:
    pairs = pd.DataFrame(tables.get("pairs") or [])
    if pairs.empty:
        return "_No tests._"
    cols = ["model_a", "model_b", "sharpe_a", "sharpe_b", "sharpe_diff", "p_value", "p_value_hac", "mde",
            "power_at_gap", "ruled_out_above", "seed_win_share"]  # fmt: skip
    cols = [c for c in cols if c in pairs]
    return pairs[pairs["model_a"] == LLMOE][cols].to_markdown(index=False, floatfmt=".3f")


def _ranking_table(evidence: TickerEvidence, split: str) -> str:
    table = ranking(evidence, split)
    table["model"] = [m + (" (uses the future)" if f else "") for m, f in zip(table["model"], table["uses_future"])]
    return table.drop(columns="uses_future").to_markdown(index=False, floatfmt=".3f")


def report_markdown(
    results_summary: pd.DataFrame,
    evidence: list[TickerEvidence],
    plots_dirs: dict[str, Path],
    output: Path,
    across: dict[str, pd.DataFrame] | None = None,
) -> Path:
    """Write the research report to `output`, its figures into `<output stem>_figures/`; returns `output`."""
    figures = output.parent / f"{output.stem}_figures"
    figures.mkdir(parents=True, exist_ok=True)
    lines = [
        "# LLMoE: results, significance and router diagnostics",
        "",
        "Mean ± std over seeds; p-values are Ledoit-Wolf (2008) studentized circular block bootstrap tests of "
        "equal Sharpe ratios on the seed-averaged daily returns; the Model Confidence Set is Hansen, Lunde & "
        "Nason's at 10 %. Models marked *uses the future* (the oracle router) are upper bounds, never results.",
        "",
        "## Results (test split)",
        "",
        to_markdown(results_summary[results_summary["split"] == "test"]),
    ]
    for e in evidence:
        lines += [
            f"## {e.ticker}",
            "",
            f"**Verdict.** {plain_words(e)}",
            "",
            f"**What the test could have seen.** {power_words(e) or 'No power figures (tables of an older run).'}",
            "",
            f"**Selection and track record.** {selection_words(e) or '-'}",
            "",
            "```",
            verdict_text(e),
            "```",
            "",
            "### Ranking (test split)",
            "",
            _ranking_table(e, "test"),
            "",
            "### LLMoE against every model (test split)",
            "",
            _significance_table(e.significance.get("test", {})),
            "",
            "### Router diagnostics (AUC of the routing score for the next day's direction, hit rate)",
            "",
            _diagnostics_table(e.diagnostics),
            "",
        ]
        curve = plot_power_curve(
            e.significance.get("test", {}),
            figures / f"{e.ticker}_power.png",
            f"{e.ticker}: power of the Sharpe test (test split)",
        )
        if curve is not None:
            caption = "Power of the LLMoE-vs-buy-and-hold Sharpe test against the true gap (block-bootstrap simulation)"
            lines += [f"![{e.ticker}: {caption}]({figures.name}/{curve.name})", "", f"*{caption}.*", ""]
        for name, caption in FIGURES.items():
            source = plots_dirs.get(e.ticker, Path("/nonexistent")) / name
            if source.exists():
                target = figures / f"{e.ticker}_{name}"
                shutil.copyfile(source, target)
                lines += [f"![{e.ticker}: {caption}]({figures.name}/{target.name})", "", f"*{caption}.*", ""]
        if e.walk_forward is not None and e.yearly is not None:
            plot = plot_yearly_sharpe(
                e.yearly,
                figures / f"{e.ticker}_walk_forward_sharpe.png",
                f"{e.ticker}: walk-forward Sharpe per out-of-sample year",
            )
            lines += [
                "### Walk-forward (expanding window, every model refitted before each year)",
                "",
                _ranking_table(e, "walk_forward"),
                "",
                e.yearly.round(2).to_markdown(),
                "",
                f"![{e.ticker}: walk-forward Sharpe per year]({figures.name}/{plot.name})",
                "",
                _significance_table(e.significance.get("walk_forward", {})),
                "",
            ]
    if across is not None:
        lines += [
            "## Across tickers",
            "",
            "```",
            across_text(across),
            "```",
            "",
            "Per-ticker test Sharpe (mean over seeds):",
            "",
            across["sharpe"].round(2).to_markdown(),
            "",
        ]
    write_text_atomic("\n".join(lines) + "\n", output)
    return output
