"""The router diagnostics' tables, per variant: its windows joined to the next day's direction, the Optimistic share
per month, the rank correlation of the score with day t's inputs, and the agreement between variants' labels."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd

from llmoe_pipeline.features.windows import FEATURE_NAMES
from llmoe_pipeline.router.regimes import REGIMES, apply_threshold

SPLITS = ("train", "validation", "test")
INPUTS = [f"{name}_lag0" for name in FEATURE_NAMES]  # the 11 inputs of day t, the window's last day
KEYS = ["ticker", "date"]


@dataclass(frozen=True)
class VariantRouting:
    """One router variant's routing table (ticker, date, split, p_optimistic[, explanation]) and the threshold its
    LLMoE grid chose (label Optimistic where p_optimistic > threshold, as the experts are routed)."""

    name: str
    routing: pd.DataFrame
    threshold: float
    uses_future: bool = False
    is_llm: bool = False


def aligned_windows(features: pd.DataFrame, v: VariantRouting) -> pd.DataFrame:
    """The variant's windows of the train/validation/test splits in time order, with `label` at its threshold,
    `up` (the next day's direction: the feature row's target), `hit` (label matched the direction) and the inputs
    of day t. Windows without a feature row or a score are left out."""
    missing = set(KEYS + ["split", "p_optimistic"]) - set(v.routing.columns)
    if missing:
        raise ValueError(f"routing table of {v.name!r} lacks columns {sorted(missing)}")
    cols = KEYS + ["split", "p_optimistic"] + (["explanation"] if "explanation" in v.routing.columns else [])
    routing = v.routing.loc[v.routing["split"].isin(SPLITS) & v.routing["p_optimistic"].notna(), cols]
    inputs = [c for c in INPUTS if c in features.columns]
    rows = routing.merge(features[KEYS + ["target", *inputs]], on=KEYS, how="inner", validate="one_to_one")
    rows = apply_threshold(rows, v.threshold).sort_values(KEYS, kind="stable").reset_index(drop=True)
    rows["up"] = rows.pop("target").astype(int)
    rows["hit"] = ((rows["label"] == REGIMES[0]) == (rows["up"] == 1)).astype(int)
    return rows


def spearman(a, b) -> float:
    """Rank correlation (average ranks for ties); NaN when either side is constant or has fewer than 3 values."""
    x, y = pd.Series(np.asarray(a, dtype=float)), pd.Series(np.asarray(b, dtype=float))
    ok = x.notna().to_numpy() & y.notna().to_numpy()
    x, y = x[ok].rank(), y[ok].rank()
    if len(x) < 3 or x.nunique() < 2 or y.nunique() < 2:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def input_correlations(rows: pd.DataFrame) -> pd.DataFrame:
    """split, input, spearman (of p_optimistic with the input of day t), windows; one row per split × input."""
    out = [
        {"split": split, "input": name, "spearman": spearman(g["p_optimistic"], g[name]), "windows": len(g)}
        for split, g in rows.groupby("split", sort=False)
        for name in INPUTS
        if name in g.columns
    ]
    return pd.DataFrame(out, columns=["split", "input", "spearman", "windows"])


def top_inputs(correlations: pd.DataFrame) -> pd.DataFrame:
    """Per split: the input with the largest |spearman| (what the score tracks most) and that correlation."""
    finite = correlations[correlations["spearman"].notna()]
    best = finite.loc[finite["spearman"].abs().groupby(finite["split"], sort=False).idxmax()]
    return best[["split", "input", "spearman"]].reset_index(drop=True)


def monthly_optimistic_share(rows_by_variant: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """variant, month (first day), split (the split of most of the month's windows), optimistic_share, windows."""
    frames = []
    for name, rows in rows_by_variant.items():
        month = rows["date"].dt.to_period("M").dt.to_timestamp()
        g = rows.assign(month=month, optimistic=(rows["label"] == REGIMES[0]).astype(float)).groupby("month")
        table = g.agg(optimistic_share=("optimistic", "mean"), windows=("optimistic", "size"))
        table["split"] = g["split"].agg(lambda s: s.value_counts().index[0])
        frames.append(table.reset_index().assign(variant=name))
    columns = ["variant", "month", "split", "optimistic_share", "windows"]
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)[columns]


def label_agreement(rows_by_variant: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """For every pair of variants and split: the share of their common windows with the same label (agreement),
    the rank correlation of their scores, and the number of common windows."""
    out = []
    for a, b in combinations(rows_by_variant, 2):
        left = rows_by_variant[a][[*KEYS, "split", "label", "p_optimistic"]]
        both = left.merge(rows_by_variant[b][[*KEYS, "label", "p_optimistic"]], on=KEYS, suffixes=("_a", "_b"))
        for split, g in both.groupby("split", sort=False):
            out.append(
                {
                    "split": split,
                    "variant_a": a,
                    "variant_b": b,
                    "agreement": float((g["label_a"] == g["label_b"]).mean()),
                    "score_spearman": spearman(g["p_optimistic_a"], g["p_optimistic_b"]),
                    "windows": len(g),
                }
            )
    return pd.DataFrame(out, columns=["split", "variant_a", "variant_b", "agreement", "score_spearman", "windows"])
