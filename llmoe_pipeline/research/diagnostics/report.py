"""All router diagnostics of one ticker (issue #10, section 2) as tidy tables, and their flat MLflow metrics.

`summary` is the long table the `router_diagnostics` asset stores: one row per variant × split × metric with
value, ci_low, ci_high (bootstrap intervals, where there is one), n (windows), detail (words: the input a score
tracks most, the threshold, the counts behind a share) and uses_future (the oracle reads the next day: an upper
bound and a sanity check, never a result). Metrics: `auc`, `hit_rate`, `optimistic_share`, `spearman:<input>`,
`top_input`, `agreement:<other variant>`, for LLM variants with explanations, `contradiction_share`, and for each
pair in `gains` (a, b), `auc_gain:<b>` on a's rows: AUC(a) - AUC(b) on the days both score, paired bootstrap.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from llmoe_pipeline.research.diagnostics.auc import DEFAULT_REPS, auc_and_hit_rate, auc_difference
from llmoe_pipeline.research.diagnostics.explanations import contradiction_table
from llmoe_pipeline.research.diagnostics.tables import (
    SPLITS,
    VariantRouting,
    aligned_windows,
    input_correlations,
    label_agreement,
    monthly_optimistic_share,
    top_inputs,
)

SUMMARY_COLUMNS = ["variant", "split", "metric", "value", "ci_low", "ci_high", "n", "detail", "uses_future"]


@dataclass(frozen=True)
class RouterDiagnostics:
    summary: pd.DataFrame  # the long table (SUMMARY_COLUMNS)
    monthly_share: pd.DataFrame  # variant, month, split, optimistic_share, windows
    correlations: pd.DataFrame  # variant, split, input, spearman, windows
    agreement: pd.DataFrame  # split, variant_a, variant_b, agreement, score_spearman, windows
    contradictions: pd.DataFrame  # variant, split, explained, sided, contradicting, contradiction_share, ...
    future_variants: tuple[str, ...]

    def tables(self) -> dict[str, pd.DataFrame]:
        """File stem → table, for CSV artifacts."""
        return {
            "summary": self.summary,
            "monthly_optimistic_share": self.monthly_share,
            "input_correlations": self.correlations,
            "agreement": self.agreement,
            "contradictions": self.contradictions,
        }


def _rng(seed: int, *keys: str) -> np.random.Generator:
    """One generator per (seed, variant, split): adding a variant leaves the others' resamples unchanged."""
    return np.random.default_rng([seed, zlib.crc32("|".join(keys).encode())])


def _row(v: VariantRouting, split: str, metric: str, value: float, n: int, detail: str = "", ci=(None, None)) -> dict:
    low, high = (float("nan") if c is None else c for c in ci)
    return dict(zip(SUMMARY_COLUMNS, [v.name, split, metric, value, low, high, n, detail, v.uses_future]))


def _variant_rows(
    v: VariantRouting, rows: pd.DataFrame, correlations: pd.DataFrame, reps: int, seed: int, block: int | None
) -> list[dict]:
    out = []
    for split in SPLITS:
        g = rows[rows["split"] == split]
        if g.empty:
            continue
        auc, hit = auc_and_hit_rate(g["p_optimistic"], g["up"], g["hit"], block, reps, _rng(seed, v.name, split))
        boot = f"{auc.reps} circular block resamples of {auc.block_length} days"
        share = float((g["label"] == "Optimistic").mean())
        out += [
            _row(v, split, "auc", auc.value, auc.n, boot, (auc.ci_low, auc.ci_high)),
            _row(
                v,
                split,
                "hit_rate",
                hit.value,
                hit.n,
                f"threshold {v.threshold:.6g}; {boot}",
                (hit.ci_low, hit.ci_high),
            ),
            _row(v, split, "optimistic_share", share, len(g), f"threshold {v.threshold:.6g}"),
        ]
        corr = correlations[correlations["split"] == split]
        out += [_row(v, split, f"spearman:{r.input}", r.spearman, r.windows) for r in corr.itertuples()]
        out += [_row(v, split, "top_input", r.spearman, len(g), r.input) for r in top_inputs(corr).itertuples()]
    return out


def _gain_rows(a: VariantRouting, b: VariantRouting, rows: dict, reps: int, seed: int, block: int | None) -> list:
    both = rows[a.name].merge(
        rows[b.name][["ticker", "date", "p_optimistic"]], on=["ticker", "date"], suffixes=("", "_b")
    )
    out = []
    for split in SPLITS:
        g = both[both["split"] == split]
        if not g.empty:
            gain = auc_difference(
                g["p_optimistic"], g["p_optimistic_b"], g["up"], block, reps, _rng(seed, a.name, b.name)
            )
            detail = f"AUC of {a.name} minus {b.name}; {gain.reps} paired block resamples of {gain.block_length} days"
            out.append(_row(a, split, f"auc_gain:{b.name}", gain.value, gain.n, detail, (gain.ci_low, gain.ci_high)))
    return out


def router_diagnostics(
    features: pd.DataFrame,
    variants: Sequence[VariantRouting],
    reps: int = DEFAULT_REPS,
    seed: int = 0,
    block_length: int | None = None,
    gains: Sequence[tuple[str, str]] = (),
) -> RouterDiagnostics:
    """Every diagnostic of every variant with a score on `features` (the feature_windows frame: target and the
    inputs of day t). block_length None: per variant and split, at least 20 days (see `auc.block_length_for`)."""
    if not variants:
        raise ValueError("router_diagnostics: no router variant with a routing score")
    rows = {v.name: aligned_windows(features, v) for v in variants}
    by_name = {v.name: v for v in variants}
    summary, correlations, contradictions = [], [], []
    for v in variants:
        corr = input_correlations(rows[v.name])
        correlations.append(corr.assign(variant=v.name))
        summary += _variant_rows(v, rows[v.name], corr, reps, seed, block_length)
        if v.is_llm:
            table = contradiction_table(rows[v.name])
            contradictions.append(table.assign(variant=v.name))
            summary += [
                _row(
                    v,
                    r.split,
                    "contradiction_share",
                    r.contradiction_share,
                    r.explained,
                    f"{r.contradicting} of {r.explained} explained windows contradict the label "
                    f"({r.sided} take a side)",
                )
                for r in table.itertuples()
            ]
    for a, b in gains:
        if a in by_name and b in by_name:
            summary += _gain_rows(by_name[a], by_name[b], rows, reps, seed, block_length)
    agreement = label_agreement(rows)
    for r in agreement.itertuples():
        for a, b in ((r.variant_a, r.variant_b), (r.variant_b, r.variant_a)):
            detail = f"same label as {b}; score Spearman {r.score_spearman:.3f}"
            summary.append(_row(by_name[a], r.split, f"agreement:{b}", r.agreement, r.windows, detail))
    order = {s: i for i, s in enumerate(SPLITS)}
    table = pd.DataFrame(summary, columns=SUMMARY_COLUMNS)
    table = table.sort_values("split", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)
    table = table.astype({"value": float, "ci_low": float, "ci_high": float, "n": int, "uses_future": bool})
    contradiction_cols = ["variant", *contradiction_table(pd.DataFrame()).columns]
    return RouterDiagnostics(
        summary=table,
        monthly_share=monthly_optimistic_share(rows),
        correlations=pd.concat(correlations, ignore_index=True)[["variant", "split", "input", "spearman", "windows"]],
        agreement=agreement,
        contradictions=(pd.concat(contradictions, ignore_index=True) if contradictions else pd.DataFrame()).reindex(
            columns=contradiction_cols
        ),
        future_variants=tuple(v.name for v in variants if v.uses_future),
    )


def mlflow_metrics(summary: pd.DataFrame) -> dict[str, float]:
    """Flat metric names: `auc_test_llm`, `auc_test_llm_ci_low`, `auc_test_llm_ci_high`, `hit_rate_test_llm`,
    `spearman_ma_5_lag0_test_llm`, `agreement_test_llm_vs_momentum`, `contradiction_share_test_llm`, ...
    (finite values only; `top_input` is a word, shown in the tables)."""
    out: dict[str, float] = {}
    for r in summary.itertuples():
        base, _, other = str(r.metric).partition(":")
        if base == "top_input":
            continue
        if base == "agreement":
            key = f"agreement_{r.split}_{r.variant}_vs_{other}"
        else:
            key = f"{base}_{other}_{r.split}_{r.variant}" if other else f"{base}_{r.split}_{r.variant}"
        for suffix, value in (("", r.value), ("_ci_low", r.ci_low), ("_ci_high", r.ci_high)):
            if value is not None and math.isfinite(float(value)):
                out[key + suffix] = float(value)
    return out
