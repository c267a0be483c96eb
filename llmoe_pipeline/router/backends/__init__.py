"""Backends that turn router prompts into p_optimistic (and, on request, a one-sentence explanation).

One interface (`base.RouterBackend`), three implementations, all built from one `RouterBackendConfig`:
- `transformers` (default without a GPU): the model in this process, scored with fixed shapes so that a
  window's p does not depend on its batch (fixed_shape.py), bfloat16 on a CPU with AMX or AVX512-BF16;
- `vllm` (default with a GPU): offline `vllm.LLM`, one `generate` call per batch for scores and explanations;
- `openai`: any OpenAI-compatible server (`vllm serve`, see `vllm_serve_command`) by base URL.

    config = RouterBackendConfig(backend="transformers", model="smollm2-135m-instruct", dtype="bfloat16")
    with make_backend(config) as backend:
        p = backend.score(prompts)

`BackendSpec(config)` is the backend not built yet, for `label_windows`: its model id (the label cache
key: the model, and for precisions other than float32 the backend, dtype and recipe) is known without
loading the model.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable

from llmoe_pipeline.router.backends.base import (
    RouterBackend,
    chat_token_ids,
    first_answer_tokens,
    label_token_ids,
    p_from_logprobs,
)
from llmoe_pipeline.router.backends.config import DEFAULT_DTYPE, RECIPE, RouterBackendConfig, label_model_id
from llmoe_pipeline.router.backends.openai import OpenAIBackend
from llmoe_pipeline.router.backends.transformers import TransformersBackend
from llmoe_pipeline.router.backends.vllm import (
    CPU_ENGINE_SETTINGS,
    ENGINE_SETTINGS,
    VLLMBackend,
    engine_settings,
    vllm_env,
    vllm_serve_command,
)
from llmoe_pipeline.router.model import model_id_of

log = logging.getLogger(__name__)

BACKENDS: dict[str, Callable[..., RouterBackend]] = {
    "vllm": VLLMBackend,
    "transformers": TransformersBackend,
    "openai": OpenAIBackend,
}


def _check_config(config: object) -> RouterBackendConfig:
    if not isinstance(config, RouterBackendConfig):
        raise TypeError(
            f"expected a RouterBackendConfig, got {type(config).__name__} "
            "(e.g. RouterBackendConfig(backend='vllm', model='smollm2-135m-instruct'))"
        )
    return config


def make_backend(config: RouterBackendConfig, home: str | os.PathLike | None = None) -> RouterBackend:
    """Build (load) the backend `config.backend`; `home` is the LLMOE home models resolve under (None: the
    default)."""
    return BACKENDS[_check_config(config).resolved_backend](config, home)


class BackendSpec:
    """A backend not built yet: `model_id` is known without loading the model; calling it builds the backend.

    `label_windows` needs the model id for the cache key before deciding whether any window needs the
    model, so a fully cached run never loads it.
    """

    def __init__(self, config: RouterBackendConfig, home: str | os.PathLike | None = None):
        self.config = _check_config(config)
        self.home = home
        self._model_id: str | None = None

    @property
    def model_id(self) -> str:
        if self._model_id is None:
            if self.config.resolved_backend == "openai":  # asks the server what it serves (cheap)
                with make_backend(self.config, self.home) as probe:
                    self._model_id = probe.model_id
            else:
                self._model_id = label_model_id(self.config, model_id_of(self.config.model))
        return self._model_id

    @property
    def hidden_spec(self) -> str | None:
        """What hidden states the backend gives beside p (router/hidden.py; None: none), without building it."""
        return getattr(BACKENDS[self.config.resolved_backend], "hidden_spec", None)

    def __call__(self) -> RouterBackend:
        started = time.perf_counter()
        backend = make_backend(self.config, self.home)
        log.info(
            "router backend %s (%s) ready in %.1f s",
            self.config.resolved_backend,
            backend.model_id,
            time.perf_counter() - started,
        )
        return backend

    def __repr__(self) -> str:
        return f"BackendSpec(backend={self.config.resolved_backend!r}, model={self.config.model!r})"


__all__ = [
    "BACKENDS",
    "BackendSpec",
    "CPU_ENGINE_SETTINGS",
    "DEFAULT_DTYPE",
    "ENGINE_SETTINGS",
    "RECIPE",
    "OpenAIBackend",
    "RouterBackend",
    "RouterBackendConfig",
    "TransformersBackend",
    "VLLMBackend",
    "chat_token_ids",
    "engine_settings",
    "first_answer_tokens",
    "label_model_id",
    "label_token_ids",
    "make_backend",
    "p_from_logprobs",
    "vllm_env",
    "vllm_serve_command",
]
