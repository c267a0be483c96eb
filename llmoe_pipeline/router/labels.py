"""Label windows with the router: cache first, the model only for what is missing.

`label_windows` sends only uncached windows to the model, creates the backend lazily (a fully cached run
never loads the model) and commits every batch to the cache (a killed run loses at most the batch in
flight). A backend that gives the scoring pass's hidden states (router/hidden.py) has them stored beside the labels
whenever it runs; asked for (`hidden_spec`), they are part of a hit and returned. The decision threshold on
p_optimistic is `regimes.fit_threshold` (training windows only).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from llmoe_pipeline.catalog import HIDDEN_STATES_NEED_TRANSFORMERS
from llmoe_pipeline.router.cache import CacheEntry, LabelStore, cache_key
from llmoe_pipeline.router.hidden import encode_hidden
from llmoe_pipeline.router.prompt import PROMPT_VERSION, sha256_text

log = logging.getLogger(__name__)

LABEL_COLUMNS = [
    "ticker",
    "date",
    "split",
    "p_optimistic",
    "explanation",
    "model_id",
    "prompt_version",
    "prompt_sha256",
    "from_cache",
]
DEFAULT_BATCH_SIZE = 256

Progress = Callable[[int, int, float], None]  # (windows done, windows to label, prompts per second)


def label_windows(
    prompts_df: pd.DataFrame,
    backend_factory: Callable,
    cache: LabelStore,
    explain_mask: Sequence[bool] | np.ndarray | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
    model_id: str | None = None,
    prompt_version: str = PROMPT_VERSION,
    hidden_spec: str | None = None,
) -> pd.DataFrame:
    """p_optimistic (and explanations where explain_mask is True) for every row of `build_prompts` output.

    backend_factory: a zero-argument callable returning a `RouterBackend`, with a `model_id` attribute
    (e.g. `BackendSpec`), or pass `model_id=` explicitly: the id is needed for the cache key before
    deciding whether the model is needed at all. A window counts as cached when its p is stored and, if
    an explanation is asked for, the explanation too, and with `hidden_spec` its hidden state of that spec: a window
    whose p is stored without one goes through the model again and only its hidden state is stored (its p kept).
    Returns one row per input row: ticker, date, split, p_optimistic, explanation, model_id,
    prompt_version, prompt_sha256, from_cache; with `hidden_spec`, `hidden` (bytes, router/hidden.py) too.
    """
    if model_id is None:
        model_id = getattr(backend_factory, "model_id", None)
        if not model_id:
            raise TypeError(
                "label_windows needs the model id for the cache key: pass model_id=... or a "
                "backend_factory with a model_id attribute (router.backends.BackendSpec)"
            )
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    n = len(prompts_df)
    prompts = prompts_df["prompt"].tolist()
    explain = np.zeros(n, dtype=bool) if explain_mask is None else np.asarray(explain_mask, dtype=bool)
    if explain.shape != (n,):
        raise ValueError(f"explain_mask has shape {explain.shape}, expected ({n},)")
    keys = [cache_key(model_id, prompt_version, p) for p in prompts]
    cached = cache.get_many(keys)
    hidden = cache.get_hidden(keys, hidden_spec) if hidden_spec else {}
    labelled = [k in cached and (not e or cached[k].explanation is not None) for k, e in zip(keys, explain)]
    from_cache = np.array([ok and (not hidden_spec or k in hidden) for k, ok in zip(keys, labelled)], dtype=bool)

    # Windows to label, once per distinct key (identical prompts share one model call): (prompt, explain?, p stored
    # with what was asked: only the hidden state is missing).
    todo: dict[str, tuple[str, bool, bool]] = {}
    for k, p, e, ok, hit in zip(keys, prompts, explain, labelled, from_cache):
        if not hit:
            _, wanted, stored = todo.get(k, (p, False, True))
            todo[k] = (p, wanted or bool(e), stored and ok)
    computed: dict[str, tuple[float, str | None]] = {}
    if todo:
        computed = _label_uncached(
            todo, backend_factory, cache, model_id, prompt_version, batch_size, progress, cached, hidden, hidden_spec
        )

    p_opt, explanations = np.empty(n), []
    for i, k in enumerate(keys):
        p, e = computed[k] if k in computed else cached[k]
        p_opt[i] = p
        explanations.append(e)
    out = prompts_df[["ticker", "date", "split"]].reset_index(drop=True).copy()
    out["p_optimistic"] = p_opt
    out["explanation"] = pd.Series(explanations, dtype=object)
    out["model_id"] = model_id
    out["prompt_version"] = prompt_version
    out["prompt_sha256"] = prompts_df["prompt_sha256"].to_numpy()
    out["from_cache"] = from_cache
    if not hidden_spec:
        return out[LABEL_COLUMNS]
    out["hidden"] = pd.Series([hidden[k] for k in keys], dtype=object)
    return out[[*LABEL_COLUMNS, "hidden"]]


EXPLANATION_COLUMNS = ["ticker", "date", "split", "explanation", "explained_now"]


def explain_windows(
    prompts_df: pd.DataFrame,
    backend_factory: Callable,
    cache: LabelStore,
    explain_mask: Sequence[bool] | np.ndarray,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
    model_id: str | None = None,
    prompt_version: str = PROMPT_VERSION,
) -> pd.DataFrame:
    """The one-sentence explanations of the windows where explain_mask is True, after their labels (`label_windows`).

    Cached by the labels' key: an explanation already stored is reused, a new one is filled in beside its label
    (`put_explanations`: the label's p_optimistic is never rewritten, so labels are the same as without this step).
    Only windows without one reach the model (the backend is created lazily: a fully explained run loads nothing);
    a window whose label is not stored (a cache emptied since the labels) is stored whole. Returns one row per
    window of the mask: ticker, date, split, explanation, explained_now.
    """
    model_id = model_id or getattr(backend_factory, "model_id", None)
    if not model_id:
        raise TypeError("explain_windows needs the model id for the cache key: pass model_id=...")
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    mask = np.asarray(explain_mask, dtype=bool)
    if mask.shape != (len(prompts_df),):
        raise ValueError(f"explain_mask has shape {mask.shape}, expected ({len(prompts_df)},)")
    asked = prompts_df[mask].reset_index(drop=True)
    prompts = asked["prompt"].tolist()
    keys = [cache_key(model_id, prompt_version, p) for p in prompts]
    cached = cache.get_many(keys)
    todo = {k: p for k, p in zip(keys, prompts) if k not in cached or cached[k].explanation is None}
    computed: dict[str, str] = {}
    if todo:
        computed = _explain_uncached(
            todo, cached, backend_factory, cache, model_id, prompt_version, batch_size, progress
        )
    out = asked[["ticker", "date", "split"]].copy()
    texts = [computed[k] if k in computed else cached[k].explanation for k in keys]
    out["explanation"] = pd.Series(texts, dtype=object)
    out["explained_now"] = np.array([k in todo for k in keys], dtype=bool)
    return out[EXPLANATION_COLUMNS]


def _in_batches(
    items: list,
    backend_factory: Callable,
    model_id: str,
    batch_size: int,
    progress: Progress | None,
    verb: str,
    work: Callable,
) -> None:
    """Open the backend once, refuse another model than the cache key's, and run `work(backend, batch)` batch by
    batch (each batch committed to the cache by `work`), logging progress as windows `verb`."""
    backend = backend_factory()
    try:
        if backend.model_id != model_id:
            raise RuntimeError(
                f"the backend serves {backend.model_id!r} but labels were keyed for {model_id!r}: "
                "refusing to mix models in the cache"
            )
        started = time.perf_counter()
        for start in range(0, len(items), batch_size):
            batch = items[start : start + batch_size]
            work(backend, batch)
            done = start + len(batch)
            rate = done / max(time.perf_counter() - started, 1e-9)
            log.info("router: %d/%d windows %s (%.2f prompts/s)", done, len(items), verb, rate)
            if progress is not None:
                progress(done, len(items), rate)
    finally:
        backend.close()


def _explain_uncached(
    todo: dict[str, str],
    cached: dict,
    backend_factory: Callable,
    cache: LabelStore,
    model_id: str,
    prompt_version: str,
    batch_size: int,
    progress: Progress | None,
) -> dict[str, str]:
    """Explain `todo` (cache key -> prompt) batch by batch, committing each batch to the cache."""
    computed: dict[str, str] = {}

    def work(backend, batch: list[tuple[str, str]]) -> None:
        # The default path explains from its scoring pass's keys and values: the p it returns is discarded for a
        # stored label (kept bit for bit) and stored only for a window whose label is missing.
        p_opt, texts = backend.score_and_explain([p for _, p in batch], [True] * len(batch))
        explained = {k: t or "" for (k, _), t in zip(batch, texts)}
        cache.put_explanations((k, t) for k, t in explained.items() if k in cached)
        cache.put_many(
            CacheEntry(k, model_id, prompt_version, sha256_text(p), float(q), explained[k])
            for (k, p), q in zip(batch, p_opt)
            if k not in cached
        )
        computed.update(explained)

    _in_batches(list(todo.items()), backend_factory, model_id, batch_size, progress, "explained", work)
    return computed


def _label_uncached(
    todo: dict[str, tuple[str, bool, bool]],
    backend_factory: Callable,
    cache: LabelStore,
    model_id: str,
    prompt_version: str,
    batch_size: int,
    progress: Progress | None,
    cached: dict,
    hidden: dict[str, bytes],
    hidden_spec: str | None,
) -> dict[str, tuple[float, str | None]]:
    """Label `todo` (cache key -> (prompt, explain?, only the hidden state missing?)) batch by batch, committing
    each batch to the cache; hidden states the backend gives are stored too (and added to `hidden`)."""
    computed: dict[str, tuple[float, str | None]] = {}

    def work(backend, batch: list[tuple[str, tuple[str, bool, bool]]]) -> None:
        spec = getattr(backend, "hidden_spec", None)
        if hidden_spec and spec != hidden_spec:
            raise RuntimeError(
                f"hidden states {hidden_spec!r} were asked for, the backend gives {spec or 'none'}: "
                + HIDDEN_STATES_NEED_TRANSFORMERS
            )
        prompts, asked = [p for _, (p, _, _) in batch], [e for _, (_, e, _) in batch]
        if spec:
            p_opt, explanations, states = backend.score_explain_hidden(prompts, asked)
        else:
            (p_opt, explanations), states = backend.score_and_explain(prompts, asked), None
        if len(p_opt) != len(batch) or not np.all((p_opt >= 0) & (p_opt <= 1)):
            raise RuntimeError(f"backend returned invalid p_optimistic for a batch of {len(batch)}: {p_opt[:5]}")
        # A window whose label is stored and only lacks its hidden state keeps its stored p (and explanation).
        cache.put_many(
            CacheEntry(k, model_id, prompt_version, sha256_text(p), float(q), ex)
            for (k, (p, _, stored)), q, ex in zip(batch, p_opt, explanations)
            if not stored
        )
        if states is not None and spec:
            blobs = {k: encode_hidden(v) for (k, _), v in zip(batch, states)}
            cache.put_hidden(blobs.items(), spec)
            hidden.update(blobs)
        for (k, (_, _, stored)), q, ex in zip(batch, p_opt, explanations):
            computed[k] = (cached[k].p_optimistic, cached[k].explanation) if stored else (float(q), ex)

    _in_batches(list(todo.items()), backend_factory, model_id, batch_size, progress, "labelled", work)
    return computed
