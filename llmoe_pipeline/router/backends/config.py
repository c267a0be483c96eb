"""`RouterBackendConfig`: every setting of the router backends, typed and validated in one place.

Pure (no Dagster): the Dagster resource, the benchmark and the tests all build one of these and hand it
to `make_backend` / `BackendSpec`. Settings a backend does not use are ignored by it (e.g. `base_url` by
`vllm`), so one config serves all three; an unknown key or an out-of-range value is an error here, before
any model is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from llmoe_pipeline.core.cpu import NATIVE_BF16, this_machine_kernel_family
from llmoe_pipeline.router.model import DEFAULT_MODEL, scoring_model_id

# Precision and path (measured on SmolLM2, 2-core AVX-512 + AMX CPU; README "Performance"):
# - dtype "auto" (the default) is bfloat16 for the `transformers` backend on a CPU with native bfloat16 matrix
#   multiplies (AMX or AVX512-BF16), float32 elsewhere; the `vllm` and `openai` backends read "auto" as float32,
#   their former default. An explicit dtype is always used as is (e.g. "bfloat16" for vLLM on a GPU).
# - bfloat16 is reproducible only on the `transformers` backend, whose fixed-shape scoring (fixed_shape.py) makes a
#   window's p independent of its batch; through vLLM, bfloat16 p moved by up to 0.04 with the batch's
#   composition, float32 by < 1e-5.
# - the label cache keeps precisions and paths apart (model.scoring_model_id): float32 labels keep the plain model
#   id (existing caches stay valid), any other precision is cached under the id plus backend, dtype, recipe and the
#   kernel family (llmoe_pipeline/core/cpu.py: AMX and AVX512-BF16 round bfloat16 differently, so their labels differ).


@dataclass(frozen=True)
class Recipe:
    """The fixed shapes of the transformers backend's batch-invariant scoring (fixed_shape.py). Part of the
    label-cache model id of every precision but float32: changing a value relabels."""

    prefix_tokens: int = 96  # computed alone and cached (the chat's shared start); a multiple of `bucket`
    bucket: int = 16  # the rest is right-padded to a multiple of this many tokens
    micro_batch: int = 8  # rows per forward pass, always (empty rows fill the last one)
    version: int = 2  # bump when the scoring code changes numbers (2: one thread per forward pass)

    @property
    def id(self) -> str:
        return f"fixed{self.version}-p{self.prefix_tokens}-t{self.bucket}-b{self.micro_batch}"


RECIPE = Recipe()

Backend = Literal["vllm", "transformers", "openai"]
Dtype = Literal["auto", "float32", "bfloat16", "float16"]
DEFAULT_DTYPE: Dtype = "auto"


class RouterBackendConfig(BaseModel):
    """How the router's language model is run. Frozen: build a new one with `model_copy(update=...)`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # --- which model, run how (all backends)
    backend: Backend | None = Field(
        None,
        description="None: transformers on a CPU (fixed-shape, batch-invariant scoring), vllm on a GPU; "
        "or offline vLLM, transformers in this process, an OpenAI-compatible server",
    )
    model: str = Field(
        DEFAULT_MODEL, description="alias, local folder or cached Hugging Face id; for openai, the served model name"
    )
    dtype: Dtype = Field(
        DEFAULT_DTYPE,
        description="weights/activations dtype (vllm, transformers, vllm serve); auto: bfloat16 for transformers on "
        "a CPU with native bfloat16 (AMX, AVX512-BF16), else float32",
    )
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
    forward_batch_size: int = Field(
        16, ge=1, description="prompts per generate call for explanations of non-Llama models (scoring: fixed recipe)"
    )

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

    @property
    def resolved_backend(self) -> str:
        """`backend`, or for None: vllm when CUDA is available, else transformers."""
        if self.backend is not None:
            return self.backend
        import torch

        return "vllm" if torch.cuda.is_available() else "transformers"

    @property
    def resolved_dtype(self) -> str:
        """`dtype`, or for "auto": bfloat16 for transformers on a CPU with native bfloat16, else float32."""
        if self.dtype != "auto":
            return self.dtype
        return "bfloat16" if self.resolved_backend == "transformers" and cpu_has_native_bf16() else "float32"


def cpu_has_native_bf16() -> bool:
    """AMX tiles or AVX512-BF16 (oneDNN runs bfloat16 matrix multiplies natively); no GPU in use."""
    import torch

    if torch.cuda.is_available():
        return False
    return this_machine_kernel_family("bfloat16") in NATIVE_BF16


def config_kernel_family(config: RouterBackendConfig) -> str | None:
    """The kernel family (cpu.py) that runs `config` here: the GPU's for vllm with CUDA, else the CPU's; None for
    openai (the server's machine computes)."""
    backend = config.resolved_backend
    if backend == "openai":
        return None
    import torch

    return this_machine_kernel_family(config.resolved_dtype, on_gpu=backend == "vllm" and torch.cuda.is_available())


def label_model_id(config: RouterBackendConfig, model_id: str, recipe_id: str = RECIPE.id) -> str:
    """The label cache's id for `model_id` run as `config` says (model.scoring_model_id); `recipe_id`: the
    transformers backend's fixed shapes (another recipe, or eager, is another id)."""
    backend = config.resolved_backend
    recipe = recipe_id if backend == "transformers" else ""
    return scoring_model_id(model_id, backend, config.resolved_dtype, recipe, config_kernel_family(config))
