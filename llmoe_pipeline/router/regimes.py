"""The two router regimes, the decision threshold that assigns them, and whether each regime can train an expert.

The regime names are the label words the language model scores (`REGIMES[0]` is the one whose probability
is `p_optimistic`). Tiny models are biased towards one word, so the threshold on `p_optimistic` is a quantile
of the *training* windows' values (`fit_threshold`), never of validation or test windows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from llmoe_pipeline.catalog import REGIMES

# Fewer windows of a regime than this in a split cannot train and early-stop its expert.
MIN_ROWS_PER_REGIME = {"train": 50, "validation": 10}


def regime_key(regime: str) -> str:
    """The lower-case form used in asset keys and partition keys ("optimistic")."""
    if regime not in REGIMES:
        raise ValueError(f"unknown regime {regime!r} (expected one of {REGIMES})")
    return regime.lower()


def regime_from_key(key: str) -> str:
    """Inverse of `regime_key`."""
    by_key = {regime_key(r): r for r in REGIMES}
    if key not in by_key:
        raise ValueError(f"unknown regime key {key!r} (expected one of {sorted(by_key)})")
    return by_key[key]


def fit_threshold(labels: pd.DataFrame, quantile: float = 0.5, column: str = "p_optimistic") -> float:
    """The `quantile` of `column` over the training windows only (never validation or test)."""
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile must be in (0, 1), got {quantile}")
    train = labels.loc[labels["split"] == "train", column].to_numpy(dtype=float)
    if len(train) == 0:
        raise ValueError("fit_threshold: no training windows (split == 'train') to fit the threshold on")
    return float(np.quantile(train, quantile))


def apply_threshold(labels: pd.DataFrame, threshold: float, column: str = "p_optimistic") -> pd.DataFrame:
    """Adds `label`: the first regime where `column` > threshold, else the second; and `threshold`."""
    out = labels.copy()
    out["label"] = np.where(out[column].to_numpy(dtype=float) > threshold, REGIMES[0], REGIMES[1])
    out["threshold"] = float(threshold)
    return out


def soft_weights(labels: pd.DataFrame, quantile: float, column: str = "p_optimistic") -> np.ndarray:
    """The Optimistic expert's weight in soft routing, per row: the score's rank among the *training* windows'
    scores (F in [0, 1]), mapped piecewise linearly so that the top-1 threshold quantile gives 0.5, F = 0 gives 0
    and F = 1 gives 1. Soft routing then leans the way top-1 routes, more the further a score is from the
    threshold, and treats a biased model's scores by their rank, as the threshold does."""
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile must be in (0, 1), got {quantile}")
    train = np.sort(labels.loc[labels["split"] == "train", column].to_numpy(dtype=float))
    if len(train) == 0:
        raise ValueError("soft_weights: no training windows (split == 'train') to rank the scores against")
    rank = np.searchsorted(train, labels[column].to_numpy(dtype=float), side="right") / len(train)
    return np.where(rank <= quantile, 0.5 * rank / quantile, 0.5 + 0.5 * (rank - quantile) / (1.0 - quantile))


def regime_counts(labels: pd.DataFrame) -> dict[str, dict[str, int]]:
    """split → regime → number of labelled windows (every regime listed, 0 included)."""
    table = labels.groupby(["split", "label"]).size()
    return {split: {r: int(table.get((split, r), 0)) for r in REGIMES} for split in labels["split"].unique()}


def too_few_windows(counts: dict[str, dict[str, int]]) -> dict[str, int]:
    """ "split/regime" → count, for each regime short of MIN_ROWS_PER_REGIME (empty: both experts trainable)."""
    return {
        f"{split}/{r}": counts.get(split, {}).get(r, 0)
        for split, need in MIN_ROWS_PER_REGIME.items()
        for r in REGIMES
        if counts.get(split, {}).get(r, 0) < need
    }
