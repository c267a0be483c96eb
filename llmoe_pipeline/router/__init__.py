"""The LLM router: prompts from 5-day windows, a language model's p_optimistic, a cache.

Pure modules (no Dagster): `prompt` builds the text, `model` resolves the weights, `backends` runs them
(vLLM, transformers, OpenAI-compatible server; one typed `RouterBackendConfig`), `cache` stores
results, `labels` ties them together.
"""

from llmoe_pipeline.router.backends import BackendSpec, RouterBackend, RouterBackendConfig, make_backend
from llmoe_pipeline.router.cache import LabelCache, cache_key
from llmoe_pipeline.router.labels import label_windows
from llmoe_pipeline.router.model import DEFAULT_MODEL, ModelNotFoundError, model_id_of, resolve_model
from llmoe_pipeline.router.prompt import PROMPT_VERSION, build_prompts

__all__ = [
    "BackendSpec",
    "RouterBackend",
    "RouterBackendConfig",
    "make_backend",
    "LabelCache",
    "cache_key",
    "label_windows",
    "DEFAULT_MODEL",
    "ModelNotFoundError",
    "model_id_of",
    "resolve_model",
    "PROMPT_VERSION",
    "build_prompts",
]
