"""Label windows with the router: cache first, the model only for what is missing.

`label_windows` sends only uncached windows to the model, creates the backend lazily (a fully cached run
never loads the model) and commits every batch to the cache (a killed run loses at most the batch in
flight). The decision threshold on p_optimistic is `regimes.fit_threshold` (training windows only).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from llmoe_pipeline.router.cache import CacheEntry, LabelCache, cache_key
from llmoe_pipeline.router.model import kernel_family_of, without_kernel_family
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
UNRECORDED_FAMILY = "unrecorded"  # labels cached before the kernel family was part of the model id

Progress = Callable[[int, int, float], None]  # (windows done, windows to label, prompts per second)


def label_windows(
    prompts_df: pd.DataFrame,
    backend_factory: Callable,
    cache: LabelCache,
    explain_mask: Sequence[bool] | np.ndarray | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
    model_id: str | None = None,
    prompt_version: str = PROMPT_VERSION,
) -> pd.DataFrame:
    """p_optimistic (and explanations where explain_mask is True) for every row of `build_prompts` output.

    backend_factory: a zero-argument callable returning a `RouterBackend`, with a `model_id` attribute
    (e.g. `BackendSpec`), or pass `model_id=` explicitly: the id is needed for the cache key before
    deciding whether the model is needed at all. A window counts as cached when its p is stored and, if
    an explanation is asked for, the explanation too.
    Returns one row per input row: ticker, date, split, p_optimistic, explanation, model_id,
    prompt_version, prompt_sha256, from_cache.
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
    from_cache = np.array(
        [k in cached and (not e or cached[k].explanation is not None) for k, e in zip(keys, explain)], dtype=bool
    )

    # Windows to label, once per distinct key (identical prompts share one model call).
    todo: dict[str, tuple[str, bool]] = {}
    for k, p, e, hit in zip(keys, prompts, explain, from_cache):
        if not hit:
            _, wanted = todo.get(k, (p, False))
            todo[k] = (p, wanted or bool(e))
    computed: dict[str, tuple[float, str | None]] = {}
    if todo:
        computed = _label_uncached(todo, backend_factory, cache, model_id, prompt_version, batch_size, progress)

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
    return out[LABEL_COLUMNS]


EXPLANATION_COLUMNS = ["ticker", "date", "split", "explanation", "explained_now"]


def explain_windows(
    prompts_df: pd.DataFrame,
    backend_factory: Callable,
    cache: LabelCache,
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
    cache: LabelCache,
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


def other_kernel_families(
    cache: LabelCache, prompts_df: pd.DataFrame, model_id: str, prompt_version: str = PROMPT_VERSION
) -> dict[str, int]:
    """Kernel families other than `model_id`'s with labels in `cache` for these prompts: family -> prompts.

    Those are the same model, path and precision computed by other kernels (another CPU kind sharing the cache, a
    copied home). They are never mixed in (the family is part of the cache key: this machine labels its own), but
    their presence is worth a warning: the two machines' results differ. Empty for ids without a family: float32
    (the families agree to ~1e-5) and openai (the server's machine computes; its id is the server's).
    """
    if kernel_family_of(model_id) is None:
        return {}
    ours = without_kernel_family(model_id)
    found = cache.model_ids_for(prompts_df["prompt_sha256"], prompt_version)
    return {
        kernel_family_of(other) or UNRECORDED_FAMILY: count
        for other, count in sorted(found.items())
        if other != model_id and without_kernel_family(other) == ours
    }


def shown_kernel_family(model_id: str) -> str:
    """The kernel family of labels with this id, for provenance (asset metadata, MLflow tags)."""
    return kernel_family_of(model_id) or "any (float32 or a server: not part of the cache id)"


def kernel_family_warning(model_id: str, others: dict[str, int], prompts: int) -> str:
    """One line naming this run's kernel family and the others the cache holds labels of (empty when none)."""
    if not others:
        return ""
    held = ", ".join(f"{family} for {count} of them" for family, count in others.items())
    return (
        f"{prompts} windows labelled with kernel family {kernel_family_of(model_id)}; the label cache also holds "
        f"labels of {held} (another CPU or GPU kind: not mixed in, but its results differ from this machine's)"
    )


def _label_uncached(
    todo: dict[str, tuple[str, bool]],
    backend_factory: Callable,
    cache: LabelCache,
    model_id: str,
    prompt_version: str,
    batch_size: int,
    progress: Progress | None,
) -> dict[str, tuple[float, str | None]]:
    """Label `todo` (cache key -> (prompt, explain?)) batch by batch, committing each batch to the cache."""
    computed: dict[str, tuple[float, str | None]] = {}

    def work(backend, batch: list[tuple[str, tuple[str, bool]]]) -> None:
        p_opt, explanations = backend.score_and_explain([p for _, (p, _) in batch], [e for _, (_, e) in batch])
        if len(p_opt) != len(batch) or not np.all((p_opt >= 0) & (p_opt <= 1)):
            raise RuntimeError(f"backend returned invalid p_optimistic for a batch of {len(batch)}: {p_opt[:5]}")
        cache.put_many(
            CacheEntry(k, model_id, prompt_version, sha256_text(p), float(q), ex)
            for (k, (p, _)), q, ex in zip(batch, p_opt, explanations)
        )
        for (k, _), q, ex in zip(batch, p_opt, explanations):
            computed[k] = (float(q), ex)

    _in_batches(list(todo.items()), backend_factory, model_id, batch_size, progress, "labelled", work)
    return computed
