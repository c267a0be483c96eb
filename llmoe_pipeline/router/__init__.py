"""The LLM router: prompts from 5-day windows, a language model's p_optimistic, a cache, a threshold.

Pure modules (no Dagster): `prompt` builds the text, `model` resolves the weights, `backends` runs them
(vLLM, transformers, OpenAI-compatible server), `cache` stores results, `labels` ties them together.
"""

from llmoe_pipeline.router.backends import BackendSpec, RouterBackend, make_backend
from llmoe_pipeline.router.cache import LabelCache, cache_key
from llmoe_pipeline.router.labels import apply_threshold, fit_threshold, label_windows
from llmoe_pipeline.router.model import DEFAULT_MODEL, ModelNotFoundError, model_id_of, resolve_model
from llmoe_pipeline.router.prompt import LABELS, PROMPT_VERSION, build_prompts

__all__ = ["BackendSpec", "RouterBackend", "make_backend", "LabelCache", "cache_key", "apply_threshold",
           "fit_threshold", "label_windows", "DEFAULT_MODEL", "ModelNotFoundError", "model_id_of",
           "resolve_model", "LABELS", "PROMPT_VERSION", "build_prompts"]
