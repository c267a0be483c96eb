"""Labels of two kernel families in one cache (a shared PostgreSQL cache, a copied home): never mixed, one WARN.

A machine of another family relabels (its family is in the cache key) and is told which families the cache also
holds labels of for its prompts. The same for the SQLite cache and for the PostgreSQL cache (a bare server
started here, conftest.postgres_url; skipped where PostgreSQL is not installed). The model is a deterministic fake:
what is tested is the cache's bookkeeping, not the numbers.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from llmoe_pipeline.router.backends import RouterBackend
from llmoe_pipeline.router.families import UNRECORDED_FAMILY, kernel_family_warning, other_kernel_families
from llmoe_pipeline.router.labels import label_windows
from llmoe_pipeline.router.model import scoring_model_id
from llmoe_pipeline.router.prompt import PROMPT_VERSION, sha256_text

BASE = "smollm2@gguf-abc"
AMX_ID = scoring_model_id(BASE, "transformers", "bfloat16", "fixed2", kernels="amx-bf16")
ZEN_ID = scoring_model_id(BASE, "transformers", "bfloat16", "fixed2", kernels="avx512-bf16")
BEFORE_FAMILIES_ID = scoring_model_id(BASE, "transformers", "bfloat16", "fixed2")  # cached before this change


class FamilyBackend(RouterBackend):
    """A fake model whose p depends on its kernel family, as bfloat16's rounding does; counts what it scores."""

    def __init__(self, model_id: str, offset: float):
        self.model_id, self.offset, self.scored = model_id, offset, 0

    def __call__(self) -> FamilyBackend:
        return self

    def score_and_explain(self, prompts, explain_mask=None):
        self.scored += len(prompts)
        return np.array([0.25 + self.offset + len(q) % 7 / 100 for q in prompts]), [None] * len(prompts)


def prompts(n: int) -> pd.DataFrame:
    texts = [f"window {i}: headlines and returns" for i in range(n)]
    return pd.DataFrame(
        {
            "ticker": "AAPL",
            "date": pd.date_range("2020-01-01", periods=n),
            "split": "train",
            "prompt": texts,
            "prompt_sha256": [sha256_text(t) for t in texts],
        }
    )


def test_another_family_relabels_and_is_named_never_mixed(cache):
    windows = prompts(6)
    intel, amd = FamilyBackend(AMX_ID, 0.0), FamilyBackend(ZEN_ID, 0.03)
    on_intel = label_windows(windows, intel, cache, batch_size=4)
    assert other_kernel_families(cache, windows, AMX_ID) == {}

    on_amd = label_windows(windows, amd, cache, batch_size=4)
    assert amd.scored == 6 and not on_amd["from_cache"].any()  # none of the AMX labels was reused
    np.testing.assert_allclose(on_amd["p_optimistic"] - on_intel["p_optimistic"], 0.03)
    assert (on_amd["model_id"] == ZEN_ID).all() and (on_intel["model_id"] == AMX_ID).all()
    assert other_kernel_families(cache, windows, ZEN_ID) == {"amx-bf16": 6}
    assert other_kernel_families(cache, windows.head(2), AMX_ID) == {"avx512-bf16": 2}

    again = label_windows(windows, FamilyBackend(AMX_ID, 0.5), cache)  # each family reads its own labels back
    assert again["from_cache"].all() and np.array_equal(again["p_optimistic"], on_intel["p_optimistic"])


def test_labels_cached_before_families_count_as_unrecorded_and_other_prompts_do_not_count(cache):
    windows = prompts(5)
    label_windows(windows.head(3), FamilyBackend(BEFORE_FAMILIES_ID, 0.0), cache)
    label_windows(windows.tail(1), FamilyBackend(scoring_model_id("other@1", "transformers", "bfloat16"), 0.0), cache)
    label_windows(prompts(9).tail(5), FamilyBackend(AMX_ID, 0.0), cache)  # windows 4..8: one of ours
    assert other_kernel_families(cache, windows, ZEN_ID) == {UNRECORDED_FAMILY: 3, "amx-bf16": 1}
    assert other_kernel_families(cache, windows, ZEN_ID, prompt_version=PROMPT_VERSION + "-next") == {}
    assert other_kernel_families(cache, windows, BASE) == {}  # float32: one id for every family


def test_the_warning_names_both_families():
    line = kernel_family_warning(ZEN_ID, {"amx-bf16": 6, UNRECORDED_FAMILY: 2}, 8)
    assert line.startswith("8 windows labelled with kernel family avx512-bf16;")
    assert "labels of amx-bf16 for 6 of them, unrecorded for 2 of them" in line
    assert kernel_family_warning(ZEN_ID, {}, 8) == ""
