"""The hidden states `llm_probe` reads, through the real model (the default path: transformers, fixed shapes) and the
label cache: the same bit for bit whatever the batch, p_optimistic unchanged by capturing them, stored beside the
labels and read back (SQLite and PostgreSQL; an old cache migrated on open, only its hidden states filled in), and a
headline word that decides the next day found by the probe on synthetic windows."""

from __future__ import annotations

import sqlite3

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from llmoe_pipeline import SplitConfig
from llmoe_pipeline.data import daily_news
from llmoe_pipeline.features.windows import build_features
from llmoe_pipeline.router.backends import RouterBackend
from llmoe_pipeline.router.cache import CacheEntry, LabelCache, cache_key
from llmoe_pipeline.router.hidden import HIDDEN_SPEC, encode_hidden
from llmoe_pipeline.router.labels import label_windows
from llmoe_pipeline.router.probe import feature_inputs, fit_probe, hidden_inputs
from llmoe_pipeline.router.prompt import PROMPT_VERSION, build_prompts, sha256_text
from llmoe_pipeline_tests.router_support import SHORT, Shared, mixed_prompts, reference_data

WIDTH = 576
# The label cache's first schema, before hidden states (a database made by an older version).
OLD_SCHEMA = """CREATE TABLE router_labels (key TEXT PRIMARY KEY, model_id TEXT NOT NULL, prompt_version TEXT NOT NULL,
    prompt_sha256 TEXT NOT NULL, p_optimistic {real} NOT NULL, explanation TEXT, created_at {time} NOT NULL {now})"""


@pytest.fixture(scope="module")
def windows() -> pd.DataFrame:
    return mixed_prompts(6, **SHORT)  # 12 real windows: AAPL 2012 (crowded news), MSFT 2016 (sparse)


@pytest.fixture(scope="module")
def scored(backend, windows) -> tuple[np.ndarray, np.ndarray]:
    p, _, states = backend.score_explain_hidden(windows["prompt"].tolist())
    return p, states


def no_model():
    raise AssertionError("a fully cached run loaded the model")


no_model.model_id = None  # type: ignore[attr-defined]


@pytest.fixture(params=["sqlite", "postgresql"])
def cache_at(request, tmp_path):
    """Opens the label cache (a fresh SQLite file, or the module's PostgreSQL server) as `open(old_rows)`: the old
    schema is made first, holding `old_rows` (CacheEntry), when given."""
    opened = []

    def open_cache(old_rows: list[CacheEntry] | None = None):
        if request.param == "sqlite":
            path = tmp_path / "cache.sqlite"
            if old_rows is not None:
                with sqlite3.connect(path) as conn:
                    conn.execute(OLD_SCHEMA.format(real="REAL", time="TEXT", now=""))
                    conn.executemany("INSERT INTO router_labels VALUES (?, ?, ?, ?, ?, ?, 'then')", old_rows)
                conn.close()
            cache = LabelCache(path)
        else:
            import psycopg2

            url = request.getfixturevalue("postgres_url")
            if old_rows is not None:
                with psycopg2.connect(url) as conn, conn.cursor() as cur:
                    cur.execute(OLD_SCHEMA.format(real="DOUBLE PRECISION", time="TIMESTAMPTZ", now="DEFAULT now()"))
                    cur.executemany("INSERT INTO router_labels VALUES (%s, %s, %s, %s, %s, %s)", old_rows)
                conn.close()
            from llmoe_pipeline.router.cache.postgres import PostgresLabelCache

            cache = PostgresLabelCache(url)
        opened.append(cache)
        return cache

    yield open_cache
    for cache in opened:
        if request.param == "postgresql":
            with cache._transaction() as cur:  # the server lives for the module: each test starts empty
                cur.execute("DROP TABLE IF EXISTS router_labels")
        cache.close()


def test_the_default_path_gives_hidden_states_and_the_same_p(backend, windows, scored):
    p, states = scored
    assert backend.hidden_spec == HIDDEN_SPEC
    assert np.array_equal(p, backend.score(windows["prompt"].tolist()))  # capturing them changes no p
    assert states.dtype == np.float32 and states.shape == (len(windows), WIDTH) and np.isfinite(states).all()
    assert len({s.tobytes() for s in states}) == len(windows)


def test_hidden_states_are_bitwise_identical_across_batch_sizes_and_orders(backend, windows, scored):
    p_all, all_states = scored
    prompts, n = windows["prompt"].tolist(), len(windows)
    rng = np.random.default_rng(0)
    for i in (0, 9):  # alone in a batch
        p, _, states = backend.score_explain_hidden([prompts[i]])
        assert p[0] == p_all[i] and np.array_equal(states[0], all_states[i])
    order = rng.permutation(n)
    sevens = np.empty_like(all_states)
    for start in range(0, n, 5):  # batches of 5, shuffled
        chunk = order[start : start + 5]
        sevens[chunk] = backend.score_explain_hidden([prompts[i] for i in chunk])[2]
    assert np.array_equal(sevens, all_states)
    idx = rng.permutation(np.resize(np.arange(n), 20))  # repeated, in other neighbourhoods
    assert np.array_equal(backend.score_explain_hidden([prompts[i] for i in idx])[2], all_states[idx])


def test_hidden_states_survive_a_cache_round_trip(backend, windows, scored, cache_at):
    p, states = scored
    cache = cache_at()
    labels = label_windows(windows, Shared(backend), cache, hidden_spec=HIDDEN_SPEC)
    assert not labels["from_cache"].any() and np.array_equal(labels["p_optimistic"], p)
    assert list(labels["hidden"]) == [encode_hidden(s) for s in states]
    no_model.model_id = backend.model_id  # type: ignore[attr-defined]
    again = label_windows(windows, no_model, cache, hidden_spec=HIDDEN_SPEC)
    assert again["from_cache"].all() and again.drop(columns="from_cache").equals(labels.drop(columns="from_cache"))
    assert np.array_equal(hidden_inputs(windows, again), states.astype(np.float16).astype(np.float64))
    keys = [cache_key(backend.model_id, PROMPT_VERSION, q) for q in windows["prompt"]]
    assert cache.get_hidden(keys, "last/other-spec") == {}  # another pooling: missing, recomputed


def test_labelling_stores_hidden_states_unasked_and_an_old_cache_is_migrated(backend, windows, scored, cache_at):
    p, states = scored
    prompts = windows["prompt"].tolist()
    keys = [cache_key(backend.model_id, PROMPT_VERSION, q) for q in prompts]
    old = [
        CacheEntry(k, backend.model_id, PROMPT_VERSION, sha256_text(q), 0.25 + i / 100, "kept" if i == 1 else None)
        for i, (k, q) in enumerate(zip(keys[:4], prompts[:4]))
    ]
    cache = cache_at(old)  # opening adds the columns
    before = cache.get_many(keys)
    assert len(before) == 4 and cache.get_hidden(keys, HIDDEN_SPEC) == {}
    plain = label_windows(windows, Shared(backend), cache)  # not asked: stored anyway, not returned
    assert "hidden" not in plain.columns and plain["from_cache"].sum() == 4
    assert set(cache.get_hidden(keys, HIDDEN_SPEC)) == set(keys[4:])
    labels = label_windows(windows, Shared(backend), cache, hidden_spec=HIDDEN_SPEC)
    # The four old windows went through the model for their hidden states only: their stored p and explanation kept.
    assert list(labels["from_cache"]) == [False] * 4 + [True] * (len(windows) - 4)
    assert np.array_equal(labels["p_optimistic"][:4], [0.25, 0.26, 0.27, 0.28])
    assert np.array_equal(labels["p_optimistic"][4:], p[4:]) and labels["explanation"][1] == "kept"
    assert cache.get_many(keys[:4]) == {k: before[k] for k in keys[:4]}
    assert list(labels["hidden"]) == [encode_hidden(s) for s in states]


def test_a_backend_without_hidden_states_is_refused_when_they_are_asked_for(tmp_path, windows):
    class LogProbsOnly(RouterBackend):  # what vllm and openai give
        model_id = "m"

        def score_and_explain(self, prompts, explain_mask=None):
            return np.full(len(prompts), 0.5), [None] * len(prompts)

    with LabelCache(tmp_path / "c.sqlite") as cache, pytest.raises(RuntimeError, match="llm_probe reads the final"):
        label_windows(windows, LogProbsOnly, cache, model_id="m", hidden_spec=HIDDEN_SPEC)
    with LabelCache(tmp_path / "c.sqlite") as cache:
        assert len(label_windows(windows, LogProbsOnly, cache, model_id="m")) == len(windows)  # not asked: fine


# ---------------------------------------------------------------------------------------------- a signal
UP, DOWN = "{} shares set to surge after record profit and raised forecast", "{} shares set to plunge after lawsuit"


def headline_decides(n_days: int = 165, seed: int = 0, ticker: str = "SYNT"):
    """Synthetic prices and headlines on real trading days: day t's one headline (one of two templates, a coin)
    decides whether day t+1 rises or falls; the prices of the window carry nothing about it."""
    real, _ = reference_data()
    days = real[(real["ticker"] == "AAPL") & (real["date"] >= "2012-01-03")].head(n_days).reset_index(drop=True)
    rng = np.random.default_rng(seed)
    good = rng.random(n_days) < 0.5
    step = np.where(good[:-1], 1.0, -1.0) * rng.uniform(0.004, 0.02, n_days - 1)
    close = 100 * np.exp(np.concatenate([[0.0], np.cumsum(step)]))
    prices = days[["date"]].assign(ticker=ticker, open=close * (1 + rng.normal(0, 0.003, n_days)), close=close)
    prices["high"] = np.maximum(prices["open"], close) * (1 + rng.uniform(0, 0.01, n_days))
    prices["low"] = np.minimum(prices["open"], close) * (1 - rng.uniform(0, 0.01, n_days))
    prices = prices.assign(adj_close=close, volume=days["volume"].to_numpy())
    headlines = days[["date"]].assign(ticker=ticker, headline=[(UP if g else DOWN).format(ticker) for g in good])
    split = SplitConfig(
        train_start=days["date"].iloc[0].date(),
        train_end=days["date"].iloc[130].date(),
        test_start=days["date"].iloc[131].date(),
        test_end=days["date"].iloc[-1].date(),
    )
    features = build_features(prices, split)
    features = features[features["split"] != "none"].reset_index(drop=True)
    # Only day t's headline fits the news budget: the window's older headlines decided days already in its prices.
    prompts = build_prompts(features, daily_news(headlines, prices), max_news_chars=90, max_headline_chars=70)
    return features, prompts


def test_llm_probe_finds_a_headline_word_that_decides_the_next_day(backend, tmp_path):
    features, prompts = headline_decides()
    assert len(features) > 120 and set(features["split"]) >= {"train", "validation", "test"}
    with LabelCache(tmp_path / "cache.sqlite") as cache:
        labels = label_windows(prompts, Shared(backend), cache, hidden_spec=HIDDEN_SPEC)
    held = features["split"].isin(["validation", "test"]).to_numpy()
    y = features["target"].to_numpy()[held]
    probe = fit_probe(features, hidden_inputs(features, labels))
    prices_only = fit_probe(features, feature_inputs(features, 5))
    probe_auc = roc_auc_score(y, probe.scores["p_optimistic"].to_numpy()[held])
    prices_auc = roc_auc_score(y, prices_only.scores["p_optimistic"].to_numpy()[held])
    assert probe_auc > 0.7 and prices_auc < 0.7, (probe_auc, prices_auc)
