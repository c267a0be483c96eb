"""Explanations after the labels (issue 26): a label is stored without its explanation and the explanation step fills
it in for the same key later, never rewriting the label's p; a second explanation step generates nothing. The same
for the SQLite and the PostgreSQL cache (a bare server started here; skipped where PostgreSQL is not installed).
The model is a deterministic fake that counts what it is asked to score and to explain."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from llmoe_pipeline.router.backends import RouterBackend
from llmoe_pipeline.router.cache import CacheEntry, cache_key
from llmoe_pipeline.router.labels import explain_windows, label_windows
from llmoe_pipeline.router.prompt import PROMPT_VERSION, sha256_text

MODEL_ID = "explainer@1"


class ExplainingBackend(RouterBackend):
    """p from the prompt's text; an explanation naming the prompt; a rescoring pass that would give another p (so a
    label rewritten by the explanation step would show)."""

    model_id = MODEL_ID

    def __init__(self, drift: float = 0.0):
        self.drift, self.scored, self.explained = drift, [], []

    def __call__(self) -> ExplainingBackend:
        return self

    def score_and_explain(self, prompts, explain_mask=None):
        mask = [False] * len(prompts) if explain_mask is None else list(explain_mask)
        self.scored += list(prompts)
        self.explained += [q for q, m in zip(prompts, mask) if m]
        p = np.array([0.2 + len(q) % 11 / 20 + self.drift for q in prompts])
        return p, [f"because of {q}" if m else None for q, m in zip(prompts, mask)]


def windows(n: int) -> pd.DataFrame:
    texts = [f"window {i}: {'headlines ' * i}" for i in range(n)]
    return pd.DataFrame(
        {
            "ticker": "AAPL",
            "date": pd.date_range("2020-01-01", periods=n),
            "split": ["train"] * (n - 3) + ["test", "test", "live"],
            "prompt": texts,
            "prompt_sha256": [sha256_text(t) for t in texts],
        }
    )


def test_put_explanations_fills_a_stored_label_and_never_touches_its_p(cache):
    key = cache_key(MODEL_ID, PROMPT_VERSION, "a window")
    cache.put_many([CacheEntry(key, MODEL_ID, PROMPT_VERSION, sha256_text("a window"), 0.1 + 0.2, None)])
    assert cache.get_many([key])[key] == (0.1 + 0.2, None)  # a label without an explanation
    assert cache.put_explanations([(key, "Because earnings rose."), ("no-such-key", "dropped")]) == 1
    assert cache.get_many([key, "no-such-key"]) == {key: (0.1 + 0.2, "Because earnings rose.")}  # p bit for bit
    assert cache.put_explanations([(key, "Another sentence.")]) == 0  # a stored explanation is kept
    assert cache.get_many([key])[key].explanation == "Because earnings rose."
    assert len(cache) == 1 and cache.integrity_ok()


def test_labels_first_then_explanations_then_nothing(cache):
    table = windows(8)
    explain = (table["split"] != "train").to_numpy()
    labeller = ExplainingBackend()
    labels = label_windows(table, labeller, cache, batch_size=3)
    assert labeller.explained == [] and labels["explanation"].isna().all()  # scores only

    explainer = ExplainingBackend(drift=0.01)  # its scoring pass differs: the stored p must not take it
    out = explain_windows(table, explainer, cache, explain, batch_size=2)
    assert explainer.explained == table.loc[explain, "prompt"].tolist()
    assert out["split"].tolist() == ["test", "test", "live"] and out["explained_now"].all()
    assert out["explanation"].tolist() == [f"because of {q}" for q in table.loc[explain, "prompt"]]

    again = label_windows(table, ExplainingBackend(drift=0.3), cache)  # a warm cache: labels show the explanations
    assert again["from_cache"].all() and np.array_equal(again["p_optimistic"], labels["p_optimistic"])
    assert again["explanation"].notna().tolist() == explain.tolist()
    assert again.loc[explain, "explanation"].tolist() == out["explanation"].tolist()

    def must_not_load():
        raise AssertionError("a fully explained run loaded the model")

    second = explain_windows(table, must_not_load, cache, explain, model_id=MODEL_ID)
    assert not second["explained_now"].any() and second["explanation"].tolist() == out["explanation"].tolist()


def test_a_window_whose_label_is_gone_is_stored_whole(cache):
    table = windows(4)
    explain = np.array([False, False, False, True])
    backend = ExplainingBackend()
    out = explain_windows(table, backend, cache, explain)
    key = cache_key(MODEL_ID, PROMPT_VERSION, table["prompt"].iloc[3])
    stored = cache.get_many([key])[key]
    assert (
        stored.explanation == out["explanation"].iloc[0]
        and stored.p_optimistic == backend.score([table["prompt"].iloc[3]])[0]
    )
    labels = label_windows(table, ExplainingBackend(drift=0.3), cache)
    assert labels["from_cache"].tolist() == [False, False, False, True]


def test_the_mask_must_match_the_windows():
    with pytest.raises(ValueError, match="explain_mask has shape"):
        explain_windows(windows(4), ExplainingBackend(), None, [True], model_id=MODEL_ID)  # type: ignore[arg-type]
