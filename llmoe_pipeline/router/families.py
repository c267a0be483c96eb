"""Kernel families in one label cache: labels of the same model, path and precision computed by other kernels (another
CPU kind sharing the cache, a copied home) are never mixed in (the family is part of the cache key), but named."""

from __future__ import annotations

import pandas as pd

from llmoe_pipeline.router.cache import LabelStore
from llmoe_pipeline.router.model import kernel_family_of, without_kernel_family
from llmoe_pipeline.router.prompt import PROMPT_VERSION

UNRECORDED_FAMILY = "unrecorded"  # labels cached before the kernel family was part of the model id


def other_kernel_families(
    cache: LabelStore, prompts_df: pd.DataFrame, model_id: str, prompt_version: str = PROMPT_VERSION
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
