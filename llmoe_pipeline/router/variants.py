"""Routing scores of the rules that need no language model (`momentum`, `random`, `oracle`); the variants
themselves (names, thresholds, which read the future) are listed in `llmoe_pipeline.catalog`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from llmoe_pipeline.core.hashing import sha256_text

SCORE_COLUMNS = ["ticker", "date", "split", "p_optimistic"]


def momentum_scores(features: pd.DataFrame) -> pd.DataFrame:
    """Close against its 5-day average on day t (features store avg/close - 1): positive when the close is above."""
    trend = 1.0 / (1.0 + features["ma_5_lag0"].to_numpy(dtype=float)) - 1.0
    return features[SCORE_COLUMNS[:3]].assign(p_optimistic=trend).reset_index(drop=True)


def random_scores(features: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """A uniform number per window from a hash of (ticker, date, seed): the same window always gets the same coin,
    whatever split or batch it is in."""
    keys = features["ticker"].astype(str) + "|" + pd.to_datetime(features["date"]).dt.strftime("%Y-%m-%d") + f"|{seed}"
    coins = np.array([int(sha256_text(k)[:13], 16) / float(16**13) for k in keys])
    return features[SCORE_COLUMNS[:3]].assign(p_optimistic=coins).reset_index(drop=True)


def oracle_scores(features: pd.DataFrame) -> pd.DataFrame:
    """1 when the next day is up, else 0: the future, by construction."""
    return (
        features[SCORE_COLUMNS[:3]].assign(p_optimistic=features["target"].to_numpy(dtype=float)).reset_index(drop=True)
    )


RULE_SCORES = {"momentum": momentum_scores, "random": random_scores, "oracle": oracle_scores}
