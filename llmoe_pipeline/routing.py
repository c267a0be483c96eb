"""Router variants (ablations): which regime assignment an LLMoE model's experts are trained and routed with.

Each variant is its own LLMoE model: the same experts, grid search and seeds; only the routing differs. A variant
gives every window a routing score (higher = Optimistic) and a rule for the threshold:
- `llm`: the language model's p_optimistic (the paper's router); the threshold quantile is searched.
- `llm_prices_only`, `llm_news_only`: the same model with the headlines, or the price lines, left out of the
  prompt (their own prompt version, so the label cache keeps them apart); opt-in, they double the labelling.
- `momentum`: a rule without a language model: the close against its 5-day average; the quantile is searched.
- `random`: a seeded coin per window, with the Optimistic share the `llm` router's chosen threshold gives.
- `oracle`: the true next-day direction. It reads the future: an upper bound and a sanity check, never a result.
- `single`: routing off, one expert of the same architecture on all days (no score; `models.training`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from llmoe_pipeline.hashing import sha256_text
from llmoe_pipeline.models.registry import LLMOE

Threshold = Literal["searched", "llm_share", "fixed"]
SCORE_COLUMNS = ["ticker", "date", "split", "p_optimistic"]


@dataclass(frozen=True)
class RouterVariant:
    name: str
    description: str
    threshold: Threshold = "searched"
    fixed_threshold: float | None = None  # with threshold "fixed"
    uses_future: bool = False  # reads the target: an upper bound, marked in every table, plot and MLflow run
    prompt_parts: tuple[str, ...] | None = None  # LLM variants: which parts of the prompt the model sees
    experts: bool = True  # False for `single`: one network, no regimes

    @property
    def display_name(self) -> str:
        return LLMOE if self.name == "llm" else f"{LLMOE}[{self.name}]"

    @property
    def is_llm(self) -> bool:
        return self.prompt_parts is not None

    @property
    def routing_asset(self) -> str:
        """The asset holding every window's score: the LLM's labels, or a cheap rule's scores."""
        if self.name == "llm":
            return "router_labels"
        return f"router_labels_{self.name.removeprefix('llm_')}" if self.is_llm else f"routing_scores_{self.name}"


VARIANTS: tuple[RouterVariant, ...] = (
    RouterVariant("llm", "the language model's p_optimistic (the paper's router)", prompt_parts=("prices", "news")),
    RouterVariant("momentum", "close vs its 5-day average, above the training windows' quantile"),
    RouterVariant("random", "a seeded coin per window with the llm router's Optimistic share", threshold="llm_share"),
    RouterVariant("single", "routing off: one expert of the same architecture on all days", experts=False),
    RouterVariant(
        "oracle",
        "the true next-day direction: uses the future, an upper bound only",
        threshold="fixed",
        fixed_threshold=0.5,
        uses_future=True,
    ),
    RouterVariant("llm_prices_only", "the language model without the headlines", prompt_parts=("prices",)),
    RouterVariant("llm_news_only", "the language model without the price lines", prompt_parts=("news",)),
)
VARIANT_NAMES = tuple(v.name for v in VARIANTS)
DEFAULT_VARIANTS = ("llm", "momentum", "random", "single", "oracle")  # the free ones, in `make run`


def variant(name: str) -> RouterVariant:
    for v in VARIANTS:
        if v.name == name:
            return v
    raise ValueError(f"unknown router variant {name!r} (expected one of {list(VARIANT_NAMES)})")


def uses_future(display_name: str) -> bool:
    return any(v.uses_future and v.display_name == display_name for v in VARIANTS)


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
