"""The default labelling path on real windows: a window's p_optimistic is the same bit for bit whatever else is
in its batch (batch sizes 1, 7, 64 and 256, shuffled, with explanations, through the label cache), and close to
the float32 reference. On this CPU (AMX) the default is bfloat16 through the fixed-shape recipe."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from llmoe_pipeline.core.cpu import this_machine_kernel_family
from llmoe_pipeline.router.backends import RECIPE
from llmoe_pipeline.router.backends.config import cpu_has_native_bf16
from llmoe_pipeline.router.cache import LabelCache
from llmoe_pipeline.router.labels import label_windows
from llmoe_pipeline.router.model import model_id_of
from llmoe_pipeline_tests.router.float32_reference import float32_reference
from llmoe_pipeline_tests.router_support import SHORT, Unclosed, mixed_prompts, real_prompts, reference_windows

# bfloat16 vs the float32 reference on the 16 reference windows, measured: max |dp| 0.041, mean 0.013, Spearman
# 0.997 (p spans ~0.09 there; float32 paths agree to < 1e-5). Labels come from a threshold fitted on the same path's
# own training windows, so a uniform shift would not matter; the README gives the label agreement on 5,024 windows.
VS_FLOAT32_ATOL = 0.06


@pytest.fixture(scope="module")
def windows() -> pd.DataFrame:
    return mixed_prompts(16, **SHORT)  # 32 real windows: AAPL 2012 (crowded news), MSFT 2016 (sparse)


@pytest.fixture(scope="module")
def p_all(backend, windows) -> np.ndarray:
    return backend.score(windows["prompt"].tolist())  # all 32 in one call, prefix cache cold


def test_the_default_is_bfloat16_through_the_fixed_shape_recipe_on_this_cpu(backend):
    if not cpu_has_native_bf16():
        pytest.skip("no native bfloat16 on this CPU: the default is float32")
    family = this_machine_kernel_family("bfloat16")  # the kernels are part of the id (cpu.py)
    assert backend.model_id == (
        f"{model_id_of('smollm2-135m-instruct')}+transformers-bfloat16-{RECIPE.id}+kernels-{family}"
    )


def test_bitwise_identical_across_batch_sizes_and_orders(backend, windows, p_all):
    prompts, n = windows["prompt"].tolist(), len(windows)
    rng = np.random.default_rng(0)
    assert np.unique(p_all).size > n // 2  # real, distinct windows
    for i in (0, 13, 31):  # alone in a batch (the prefix cache is warm now: that must not matter either)
        assert backend.score([prompts[i]])[0] == p_all[i]
    order = rng.permutation(n)
    sevens = np.empty(n)
    for start in range(0, n, 7):  # batches of 7, shuffled
        chunk = order[start : start + 7]
        sevens[chunk] = backend.score([prompts[i] for i in chunk])
    assert np.array_equal(sevens, p_all)
    for size in (64, 256):  # the windows repeated in shuffled order: every copy, every neighbourhood
        idx = rng.permutation(np.resize(np.arange(n), size))
        assert np.array_equal(backend.score([prompts[i] for i in idx]), p_all[idx])


def test_explanations_in_the_same_batch_leave_p_unchanged(backend, windows, p_all):
    prompts = windows["prompt"].tolist()[:4]
    p, explanations = backend.score_and_explain(prompts, [True, False, False, True])
    assert np.array_equal(p, p_all[:4])
    assert explanations[1] is None and explanations[2] is None
    for text in (explanations[0], explanations[3]):
        assert isinstance(text, str) and 10 < len(text) < 400 and "\n" not in text


def test_close_to_the_float32_reference(router_model, backend, windows, p_all):
    ref = np.array(float32_reference(str(router_model.path))[0])  # transformers, float32, the 16 reference windows
    first_eight = list(range(8)) + list(range(16, 24))  # the reference windows: the first 8 of each ticker here
    assert reference_windows()["prompt"].tolist() == windows["prompt"].iloc[first_eight].tolist()
    ours = p_all[first_eight]
    assert np.abs(ours - ref).max() <= VS_FLOAT32_ATOL
    assert pd.Series(ours).corr(pd.Series(ref), method="spearman") > 0.9


def test_label_windows_gives_the_same_cached_p_whatever_the_labelling_batch(tmp_path, backend, windows, p_all):
    class Shared:  # the module's backend, never closed by label_windows
        model_id = backend.model_id

        def __call__(self):
            return Unclosed(backend)

    for batch_size in (5, 32):
        with LabelCache(tmp_path / f"cache-{batch_size}.sqlite") as cache:
            out = label_windows(windows, Shared(), cache, batch_size=batch_size)
        assert np.array_equal(out["p_optimistic"].to_numpy(), p_all)
        assert (out["model_id"] == backend.model_id).all()


# Windows whose micro-batches oneDNN multiplied differently on two threads than on one before each pass ran on one
# thread (p moved by up to 0.026 on 2016-02-12).
THREAD_SENSITIVE = ("MSFT", "2016-02-10", 8)


def test_the_same_p_on_one_thread_as_on_two(backend):
    """`llmoe run` refreshes tickers in parallel processes of one core each (the UI's runs take every core): the
    labels must not depend on it. (Where kernels were compiled does not matter: measured, the thread count at run
    time decides.)"""
    windows = real_prompts(*THREAD_SENSITIVE)["prompt"].tolist()
    before = torch.get_num_threads()
    p = {}
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            p[threads] = backend.score(windows)
    finally:
        torch.set_num_threads(before)
    assert len(p[1]) == 8 and np.array_equal(p[1], p[2])  # bitwise
