"""The label cache with a real model (transformers backend on the converted SmolLM2): only uncached windows
reach the model, a fully cached run never loads it, and a SIGKILLed run resumes losing at most one batch."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pandas as pd
import pytest

from llmoe_pipeline.data import daily_news
from llmoe_pipeline.features.windows import build_features
from llmoe_pipeline.router.backends import RouterBackend, RouterBackendConfig, make_backend
from llmoe_pipeline.router.cache import CacheEntry, LabelCache, cache_key
from llmoe_pipeline.router.labels import explain_windows, label_windows
from llmoe_pipeline.router.model import model_id_of
from llmoe_pipeline.router.prompt import PROMPT_VERSION, build_prompts
from llmoe_pipeline_tests.router_support import SHORT, real_prompts, reference_data

# The fixed-shape transformers path in bfloat16 (the default on an AMX CPU): fast, and every p independent of how
# prompts are grouped into batches, so runs can be compared exactly; 12-token explanations keep generation cheap.
FAST_SETTINGS = {"backend": "transformers", "dtype": "bfloat16", "explanation_max_tokens": 12}


class CountingFactory:
    """Backend factory around one shared real backend: counts model loads and the prompts it is sent."""

    def __init__(self, backend: RouterBackend):
        self.backend, self.model_id = backend, backend.model_id
        self.loads, self.prompts = 0, []

    def __call__(self) -> RouterBackend:
        self.loads += 1
        factory = self

        class Counting(RouterBackend):
            model_id = factory.model_id

            def score_and_explain(self, prompts, explain_mask=None):
                factory.prompts += list(prompts)
                return factory.backend.score_and_explain(prompts, explain_mask)

        return Counting()


def must_not_load():
    raise AssertionError("a fully cached run loaded the model")


@pytest.fixture(scope="module")
def backend(router_model):
    with make_backend(RouterBackendConfig(**FAST_SETTINGS, model=str(router_model.path))) as b:
        yield b


@pytest.fixture(scope="module")
def windows() -> pd.DataFrame:
    return real_prompts("AAPL", "2012-03-01", 6, **SHORT)  # dates 2012-03-01 .. 03-08


@pytest.fixture(scope="module")
def reference_p(backend, windows) -> np.ndarray:
    return backend.score(windows["prompt"].tolist())


def test_cache_key_separates_model_version_and_prompt():
    base = cache_key("m@1", "v1", "prompt")
    assert base != cache_key("m@2", "v1", "prompt") != cache_key("m@1", "v2", "prompt")
    assert base != cache_key("m@1", "v1", "prompt ") and base == cache_key("m@1", "v1", "prompt")
    assert cache_key("a", "bc", "d") != cache_key("ab", "c", "d")  # no separator ambiguity


def test_second_run_labels_nothing_and_does_not_load_the_model(tmp_path, router_model, backend, windows, reference_p):
    factory = CountingFactory(backend)
    with LabelCache(tmp_path / "cache.sqlite") as cache:
        first = label_windows(windows, factory, cache, batch_size=4)
        assert factory.loads == 1 and len(factory.prompts) == 6
        assert not first["from_cache"].any()
        np.testing.assert_allclose(first["p_optimistic"], reference_p, atol=1e-6)
        # bfloat16 labels are cached under their own id, never mixed with float32 ones (model.scoring_model_id)
        assert (first["model_id"] == backend.model_id).all() and backend.model_id != model_id_of(str(router_model.path))
        assert backend.model_id.startswith(model_id_of("smollm2-135m-instruct") + "+transformers-bfloat16-")
        assert (first["prompt_version"] == PROMPT_VERSION).all() and first["explanation"].isna().all()

        started = time.perf_counter()
        second = label_windows(windows, must_not_load, cache, model_id=backend.model_id)
        assert time.perf_counter() - started < 2.0
        assert second["from_cache"].all()
        pd.testing.assert_frame_equal(second.drop(columns="from_cache"), first.drop(columns="from_cache"))
    assert list(first.columns) == [
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


def test_one_appended_day_labels_one_window(tmp_path, backend):
    prices, headlines = reference_data()
    aapl_p, aapl_h = prices[prices["ticker"] == "AAPL"], headlines[headlines["ticker"] == "AAPL"]
    day = pd.Timestamp("2013-06-14")

    def last_windows(until: pd.Timestamp) -> pd.DataFrame:
        p = aapl_p[aapl_p["date"] <= until]
        prompts = build_prompts(build_features(p), daily_news(aapl_h[aapl_h["date"] <= until], p), **SHORT)
        return prompts[prompts["date"] >= pd.Timestamp("2013-06-10")].reset_index(drop=True)

    before = last_windows(day)  # windows end 2013-06-10 .. 06-13 (06-14 has no target yet)
    after = last_windows(pd.Timestamp("2013-06-17"))  # the nightly refresh appends Monday
    assert len(after) == len(before) + 1
    factory = CountingFactory(backend)
    with LabelCache(tmp_path / "cache.sqlite") as cache:
        label_windows(before, factory, cache)
        factory.prompts.clear()
        out = label_windows(after, factory, cache)
    assert factory.prompts == [after["prompt"].iloc[-1]]
    assert out["from_cache"].tolist() == [True] * len(before) + [False]
    assert out["date"].iloc[-1] == day


def test_explanations_are_requested_only_where_missing(tmp_path, backend, windows):
    factory = CountingFactory(backend)
    two = windows.head(2)
    with LabelCache(tmp_path / "cache.sqlite") as cache:
        label_windows(two, factory, cache)  # scores only
        factory.prompts.clear()
        out = label_windows(two, factory, cache, explain_mask=[False, True])
        assert factory.prompts == [two["prompt"].iloc[1]]  # the cached score lacks an explanation
        assert out["explanation"].iloc[0] is None
        assert isinstance(out["explanation"].iloc[1], str) and out["explanation"].iloc[1]
        assert out["from_cache"].tolist() == [True, False]
        factory.prompts.clear()
        both = label_windows(two, factory, cache, explain_mask=[True, True])
        assert factory.prompts == [two["prompt"].iloc[0]]
        assert both["explanation"].iloc[1] == out["explanation"].iloc[1]
        third = label_windows(two, must_not_load, cache, model_id=backend.model_id, explain_mask=[True, True])
    assert third["from_cache"].all() and third["explanation"].notna().all()


def test_the_explanation_step_fills_in_what_labelling_with_explanations_gave(tmp_path, backend, windows, reference_p):
    """Labels first, explanations later (router_explanations): the same p, bit for bit, and the same sentences as
    one labelling pass that explained as it scored."""
    two, mask = windows.head(3), [False, True, True]
    with LabelCache(tmp_path / "together.sqlite") as cache:
        together = label_windows(two, CountingFactory(backend), cache, explain_mask=mask)
    factory = CountingFactory(backend)
    with LabelCache(tmp_path / "apart.sqlite") as cache:
        labels = label_windows(two, factory, cache)
        explained = explain_windows(two, factory, cache, mask)
        warm = label_windows(two, must_not_load, cache, model_id=backend.model_id)
    assert np.array_equal(labels["p_optimistic"], reference_p[:3])
    assert np.array_equal(warm["p_optimistic"], together["p_optimistic"])
    assert explained["explanation"].tolist() == together["explanation"].iloc[1:].tolist()
    assert warm["explanation"].tolist() == together["explanation"].tolist()


def _kill_script(prompts_path, marker, cache_path) -> str:
    return textwrap.dedent(f"""
        import pandas as pd
        from llmoe_pipeline.router.backends import BackendSpec, RouterBackendConfig
        from llmoe_pipeline.router.cache import LabelCache
        from llmoe_pipeline.router.labels import explain_windows, label_windows

        def progress(done, total, rate):
            with open({str(marker)!r}, "a") as fh:
                fh.write(f"{{done}}\\n")

        with LabelCache({str(cache_path)!r}) as cache:
            label_windows(pd.read_parquet({str(prompts_path)!r}), BackendSpec(RouterBackendConfig(**{FAST_SETTINGS!r})),
                          cache, batch_size=2, progress=progress)
    """)


def test_killed_run_resumes_and_relabels_at_most_the_batch_in_flight(tmp_path, backend, windows, reference_p):
    prompts_path, marker, cache_path = tmp_path / "prompts.parquet", tmp_path / "done.txt", tmp_path / "cache.sqlite"
    windows.to_parquet(prompts_path)
    proc = subprocess.Popen(
        [sys.executable, "-c", _kill_script(prompts_path, marker, cache_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 120
    while not (marker.exists() and marker.read_text().strip()):
        if proc.poll() is not None:
            pytest.fail(f"labelling subprocess exited early: {proc.stderr.read().decode()[-2000:]}")
        if time.time() > deadline:
            proc.kill()
            pytest.fail("labelling subprocess reported no batch within 120 s")
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)  # mid-run: batch 2 of 3 is in the model
    proc.wait()
    reported = int(marker.read_text().split()[-1])
    assert proc.returncode == -signal.SIGKILL and reported < 6

    factory = CountingFactory(backend)
    with LabelCache(cache_path) as cache:
        assert cache.integrity_ok()
        committed = len(cache)
        # Every batch reported done was committed; at most the batch in flight finished after the report.
        assert reported <= committed <= reported + 2
        out = label_windows(windows, factory, cache, batch_size=2)
    assert len(factory.prompts) == 6 - committed <= 4
    assert out["from_cache"].sum() == committed
    np.testing.assert_allclose(out["p_optimistic"], reference_p, atol=1e-6)


def test_two_processes_write_the_same_cache_concurrently(tmp_path):
    path = tmp_path / "shared.sqlite"
    LabelCache(path).close()
    code = textwrap.dedent("""
        import sys
        from llmoe_pipeline.router.cache import CacheEntry, LabelCache
        who = sys.argv[1]
        with LabelCache(sys.argv[2]) as cache:
            for batch in range(40):
                cache.put_many(CacheEntry(f"{who}-{batch}-{i}", "m", "v1", "sha", 0.5, None) for i in range(25))
                cache.get_many([f"{who}-{batch}-0"])
    """)
    procs = [subprocess.Popen([sys.executable, "-c", code, who, str(path)], stderr=subprocess.PIPE) for who in "ab"]
    errors = [p.communicate(timeout=120)[1].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    with LabelCache(path) as cache:
        assert len(cache) == 2 * 40 * 25 and cache.integrity_ok()


def test_an_entry_without_explanation_keeps_the_stored_one(tmp_path):
    with LabelCache(tmp_path / "c.sqlite") as cache:
        cache.put_many([CacheEntry("k", "m", "v1", "sha", 0.25, "Because earnings rose.")])
        cache.put_many([CacheEntry("k", "m", "v1", "sha", 0.30, None)])
        assert cache.get_many(["k", "missing"]) == {"k": (0.30, "Because earnings rose.")}
