"""Helpers for the router tests: real reference windows and the converted default model.

The model is converted once per test session into the session's LLMOE_HOME (conftest.session_home):
`resolve_model` reuses a verified conversion, so each test module's session fixture costs ~0.3 s after
the first conversion (~15 s).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import pandas as pd
import pytest

from llmoe_pipeline.core.paths import default_data_dir
from llmoe_pipeline.data import daily_news, load_headlines, load_prices
from llmoe_pipeline.features.windows import build_features
from llmoe_pipeline.router.prompt import build_prompts

DATA_DIR = Path(os.environ.get("LLMOE_DATA_DIR") or default_data_dir())


@functools.lru_cache(maxsize=4)
def reference_data(tickers: tuple[str, ...] = ("AAPL", "MSFT")) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(prices, headlines) of the reference data for `tickers`."""
    if not (DATA_DIR / "prices.csv").exists():
        pytest.fail(f"reference data not found in {DATA_DIR}: set LLMOE_DATA_DIR")
    prices = load_prices(DATA_DIR / "prices.csv", tickers=list(tickers))
    headlines = load_headlines(DATA_DIR / "headlines.csv", tickers=list(tickers))
    return prices, headlines


def prompts_for(
    ticker: str, headlines: pd.DataFrame | None = None, prices: pd.DataFrame | None = None, **prompt_kwargs
) -> pd.DataFrame:
    """All windows of `ticker` from the reference data, or from the given prices/headlines instead."""
    all_prices, all_headlines = reference_data()
    prices = all_prices[all_prices["ticker"] == ticker] if prices is None else prices
    headlines = all_headlines[all_headlines["ticker"] == ticker] if headlines is None else headlines
    return build_prompts(build_features(prices), daily_news(headlines, prices), **prompt_kwargs)


def real_prompts(ticker: str, start: str, n: int, **prompt_kwargs) -> pd.DataFrame:
    """`n` consecutive real windows of `ticker` ending on or after `start`."""
    prompts = prompts_for(ticker, **prompt_kwargs)
    return prompts[prompts["date"] >= pd.Timestamp(start)].head(n).reset_index(drop=True)


def mixed_prompts(n_per_ticker: int, **prompt_kwargs) -> pd.DataFrame:
    """Real windows of both tickers from different years (some with long news lists, some sparse)."""
    return pd.concat(
        [
            real_prompts("AAPL", "2012-03-01", n_per_ticker, **prompt_kwargs),
            real_prompts("MSFT", "2016-06-01", n_per_ticker, **prompt_kwargs),
        ],
        ignore_index=True,
    )


SHORT = {"max_news_chars": 300, "max_headline_chars": 90}  # real windows, shorter news: cheaper model calls


@functools.lru_cache(maxsize=1)
def reference_windows() -> pd.DataFrame:
    """16 real windows: 8 AAPL (crowded news) and 8 MSFT (sparse news)."""
    return mixed_prompts(8, **SHORT)


@functools.lru_cache(maxsize=1)
def reference_scores(model_path: str) -> tuple:
    """p_optimistic of `reference_windows()` from the transformers backend (float32): the reference the
    vLLM and OpenAI-server paths are checked against. Computed once per test session."""
    from llmoe_pipeline.router.backends import RouterBackendConfig, make_backend

    with make_backend(RouterBackendConfig(backend="transformers", model=model_path, forward_batch_size=8)) as reference:
        return tuple(reference.score(reference_windows()["prompt"].tolist())), reference.label_ids


class Unclosed:
    """Delegates to a shared backend; close() is a no-op so a module fixture keeps its engine across labellings."""

    def __init__(self, backend):
        self._backend, self.model_id = backend, backend.model_id
        self.hidden_spec = getattr(backend, "hidden_spec", None)

    def score_and_explain(self, prompts, explain_mask=None):
        return self._backend.score_and_explain(prompts, explain_mask)

    def score_explain_hidden(self, prompts, explain_mask=None):
        return self._backend.score_explain_hidden(prompts, explain_mask)

    def close(self):
        pass


class Shared:
    """A backend factory handing out one module's backend, which label_windows then never closes."""

    def __init__(self, backend):
        self.backend, self.model_id = backend, backend.model_id

    def __call__(self) -> Unclosed:
        return Unclosed(self.backend)
