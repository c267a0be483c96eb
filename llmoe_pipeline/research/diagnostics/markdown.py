"""The router diagnostics as small Markdown tables (the asset's metadata in the Dagster UI)."""

from __future__ import annotations

import math
from collections.abc import Iterable

import pandas as pd

from llmoe_pipeline.research.diagnostics.report import RouterDiagnostics
from llmoe_pipeline.research.diagnostics.tables import SPLITS

FUTURE_MARK = " (uses the future)"


def _name(variant: str, future: Iterable[str]) -> str:
    return variant + (FUTURE_MARK if variant in set(future) else "")


def _num(x: float, digits: int = 3) -> str:
    return "n/a" if x is None or not math.isfinite(float(x)) else f"{float(x):.{digits}f}"


def _with_interval(value: float, low: float, high: float) -> str:
    if not math.isfinite(float(low)):
        return _num(value)
    return f"{_num(value)} [{_num(low)}, {_num(high)}]"


def _md(frame: pd.DataFrame) -> str:
    return frame.to_markdown(index=False) if len(frame) else "(none)"


def interval_table(d: RouterDiagnostics, metric: str) -> str:
    """Variant × split: `value [ci_low, ci_high]` of `metric` (auc, hit_rate), with the windows of each split."""
    rows = d.summary[d.summary["metric"] == metric]
    out = []
    for variant, g in rows.groupby("variant", sort=False):
        cells = {r.split: f"{_with_interval(r.value, r.ci_low, r.ci_high)} (n={r.n})" for r in g.itertuples()}
        out.append({"variant": _name(str(variant), d.future_variants), **{s: cells.get(s, "") for s in SPLITS}})
    return _md(pd.DataFrame(out))


def correlation_table(d: RouterDiagnostics) -> str:
    """Variant × split: the score's Spearman correlation with each input of day t, and the one it tracks most."""
    top = d.summary[d.summary["metric"] == "top_input"].set_index(["variant", "split"])
    out = []
    for (variant, split), g in d.correlations.groupby(["variant", "split"], sort=False):
        row = {"variant": _name(str(variant), d.future_variants), "split": split}
        row |= {r.input.removesuffix("_lag0"): _num(r.spearman, 2) for r in g.itertuples()}
        if (variant, split) in top.index:
            best = top.loc[(variant, split)]
            row["tracks most"] = f"{best['detail']} ({_num(best['value'], 2)})"
        out.append(row)
    return _md(pd.DataFrame(out))


def agreement_table(d: RouterDiagnostics) -> str:
    """Pair × split: the share of common windows with the same label."""
    if d.agreement.empty:
        return "(one variant: nothing to compare)"
    table = d.agreement.assign(
        pair=lambda t: (
            t["variant_a"].map(lambda v: _name(v, d.future_variants))
            + " / "
            + t["variant_b"].map(lambda v: _name(v, d.future_variants))
        ),
        cell=lambda t: t["agreement"].map(_num) + " (n=" + t["windows"].astype(str) + ")",
    )
    wide = table.pivot(index="pair", columns="split", values="cell").reindex(columns=[*SPLITS]).fillna("")
    return _md(wide.reindex(table["pair"].unique()).reset_index())


def contradiction_markdown(d: RouterDiagnostics) -> str:
    """Per LLM variant and split: explained windows, how many take a side, how many contradict the label."""
    t = d.contradictions
    if t.empty:
        return "(no explained windows)"
    shown = t.assign(
        contradiction_share=t["contradiction_share"].map(_num),
        contradiction_share_of_sided=t["contradiction_share_of_sided"].map(_num),
    )
    return _md(shown)


def monthly_table(d: RouterDiagnostics, split: str = "test") -> str:
    """Month × variant: the share of the month's windows labelled Optimistic, for the months of one split."""
    t = d.monthly_share[d.monthly_share["split"] == split]
    if t.empty:
        return f"(no {split} months)"
    wide = t.pivot(index="month", columns="variant", values="optimistic_share")
    wide = wide.reindex(columns=list(dict.fromkeys(t["variant"]))).rename(
        columns=lambda v: _name(str(v), d.future_variants)
    )
    shown = wide.apply(lambda col: col.map(lambda x: _num(x, 2)))
    shown.index = shown.index.strftime("%Y-%m")
    return _md(shown.reset_index())
