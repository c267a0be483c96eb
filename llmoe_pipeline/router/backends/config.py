"""`RouterBackendConfig`: every setting of the router backends, typed and validated in one place.

Pure (no Dagster): the Dagster resource, the benchmark and the tests all build one of these and hand it
to `make_backend` / `BackendSpec`. Settings a backend does not use are ignored by it (e.g. `base_url` by
`vllm`), so one config serves all three; an unknown key or an out-of-range value is an error here, before
any model is loaded.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from llmoe_pipeline.router.model import DEFAULT_MODEL

# float32 by default. Measured on SmolLM2 and 16-32 real windows (2-core CPU): in bfloat16, p_optimistic
# changes with batch composition by up to 0.04 and differs from transformers by up to 0.06 (the spread of
# p over windows is ~0.05, so labels near the threshold would flip); in float32 both stay below 1e-5.
# vLLM float32 takes ~1.6x the time of plain bfloat16, and bfloat16 with a float32 lm_head (which p's
# resolution needs, see vllm.ENGINE_SETTINGS) was slower still on CPU. On a GPU, "bfloat16" is the usual choice.

Backend = Literal["vllm", "transformers", "openai"]
Dtype = Literal["float32", "bfloat16", "float16"]
DEFAULT_DTYPE: Dtype = "float32"


class RouterBackendConfig(BaseModel):
    """How the router's language model is run. Frozen: build a new one with `model_copy(update=...)`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # --- which model, run how (all backends)
    backend: Backend = Field("vllm", description="offline vLLM, batched transformers, or an OpenAI-compatible server")
    model: str = Field(
        DEFAULT_MODEL, description="alias, local folder or cached Hugging Face id; for openai, the served model name"
    )
    dtype: Dtype = Field(DEFAULT_DTYPE, description="weights/activations dtype (vllm, transformers, vllm serve)")
    seed: int = Field(0, description="sampling/engine seed (greedy decoding: only ties depend on it)")
    explanation_max_tokens: int = Field(40, ge=1, le=512, description="token budget of a one-sentence explanation")
    batch_size: int = Field(
        256,
        ge=1,
        description="windows per labelling batch (label_windows; one cache commit each), not an engine setting",
    )

    # --- vllm (offline engine; dtype/max_model_len/seed/block_size also shape `vllm serve`)
    max_model_len: int = Field(4096, ge=256, description="longest prompt + answer, in tokens")
    kv_cache_gib: int = Field(2, ge=1, description="KV cache size on CPU (VLLM_CPU_KVCACHE_SPACE), GiB")
    block_size: int | None = Field(
        None, description="KV cache block, tokens; None: 32 on CPU (prefix reuse), the engine's default on GPU"
    )
    enforce_eager: bool | None = Field(None, description="None: eager on CPU, compiled with CUDA graphs on GPU")
    in_process: bool = Field(True, description="engine core in this process (~3 s start, nothing left running)")

    # --- transformers
    forward_batch_size: int = Field(16, ge=1, description="prompts per left-padded forward pass")

    # --- openai (any OpenAI-compatible server, e.g. `vllm serve`)
    base_url: str | None = Field(None, description="the server's /v1 URL; required for backend 'openai'")
    api_key_env: str = Field(
        "LLMOE_OPENAI_API_KEY",
        description="NAME of the environment variable holding the key (the key itself is never in config)",
    )
    timeout_s: float = Field(300.0, gt=0, description="per-request timeout, seconds")
    max_concurrency: int = Field(32, ge=1, description="requests in flight together (the server batches them)")

    @field_validator("block_size")
    @classmethod
    def _block_size_multiple_of_16(cls, value: int | None) -> int | None:
        if value is not None and (value <= 0 or value % 16):
            raise ValueError(f"block_size must be a positive multiple of 16, got {value}")
        return value

    @field_validator("model")
    @classmethod
    def _model_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("model must not be empty")
        return value

    @model_validator(mode="after")
    def _openai_needs_a_server(self) -> RouterBackendConfig:
        if self.backend == "openai" and not self.base_url:
            raise ValueError("backend 'openai' needs base_url (the server's /v1 URL, e.g. http://127.0.0.1:8000/v1)")
        return self
