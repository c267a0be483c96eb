"""The float32 reference the other router paths are checked against: the transformers backend in float32 on the
16 reference windows (computed once per test session). Explicitly float32: the default dtype is "auto"."""

from __future__ import annotations

import functools

from llmoe_pipeline.router.backends import RouterBackendConfig, make_backend
from llmoe_pipeline_tests.router_support import reference_windows


@functools.lru_cache(maxsize=1)
def float32_reference(model_path: str) -> tuple:
    """(p_optimistic of `reference_windows()`, label token ids), transformers backend, float32."""
    config = RouterBackendConfig(backend="transformers", model=model_path, dtype="float32")
    with make_backend(config) as reference:
        return tuple(reference.score(reference_windows()["prompt"].tolist())), reference.label_ids
