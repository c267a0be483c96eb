"""The benchmark's paths, each in its own worker process (loaded once, then timed round after round).

A worker process per path keeps the engines apart (vLLM's in-process engine binds threads and keeps state that
would otherwise leak into the other paths' timings); the workers wait on a pipe, idle, while another path runs.
Before every timed run the path's prefix cache is emptied (vLLM's, or the fixed-shape recipe's), so that each
round does the work a fresh labelling batch does instead of reusing the previous round's prompts.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import time
import traceback
from dataclasses import dataclass
from typing import Any

import numpy as np

from llmoe_pipeline.core.cpu import kernel_family
from llmoe_pipeline.router.model import resolve_model
from llmoe_pipeline.router.prompt import chat_messages
from llmoe_pipeline.router.regimes import REGIMES


@dataclass(frozen=True)
class PathSpec:
    name: str
    kind: str  # "batched" (one score call per run) or "naive" (generate one prompt at a time)
    backend: str = "transformers"
    dtype: str = "float32"
    compile: bool | None = None  # None: the backend's choice (compiled except in float32)
    description: str = ""


PATHS = {
    s.name: s
    for s in (
        PathSpec("transformers-bfloat16", "batched", "transformers", "bfloat16", description="fixed shapes"),
        PathSpec("transformers-float32", "batched", "transformers", "float32", description="fixed shapes"),
        PathSpec("transformers-bfloat16-eager", "batched", "transformers", "bfloat16", False, "fixed, no compile"),
        PathSpec("vllm-float32", "batched", "vllm", "float32", description="vLLM, prefix cache"),
        PathSpec("vllm-bfloat16", "batched", "vllm", "bfloat16", description="vLLM, prefix cache"),
        PathSpec("naive-float32", "naive", description="transformers generate, one prompt at a time"),
    )
}
FP32_VLLM_PATH = "vllm-float32"
NAIVE_PATH = "naive-float32"


def path_kernel_family(spec: PathSpec, flags: list[str], cuda_capability: tuple[int, int] | None = None) -> str:
    """The kernels `spec` runs on (cpu.kernel_family): the GPU's for vLLM where there is one, else the CPU's."""
    return kernel_family(flags, spec.dtype, cuda_capability if spec.backend == "vllm" else None)


def describe_path(spec: PathSpec, family: str) -> str:
    """What the path does and on which kernels, from the family detected on this machine (never assumed)."""
    return f"{spec.description}, {family} kernels"


def default_path_name() -> str:
    """The path the default RouterBackendConfig labels with on this machine."""
    from llmoe_pipeline.router.backends import RouterBackendConfig

    config = RouterBackendConfig()
    return f"{config.resolved_backend}-{config.resolved_dtype}"


class _Batched:
    def __init__(self, spec: PathSpec, model: str, prompts: list[str]):
        from llmoe_pipeline.router.backends import RouterBackendConfig, TransformersBackend, make_backend

        config = RouterBackendConfig.model_validate({"backend": spec.backend, "model": model, "dtype": spec.dtype})
        self.backend: Any = (
            TransformersBackend(config, compile=spec.compile)
            if spec.backend == "transformers"
            else make_backend(config)
        )
        self.prompts = prompts
        # Warm-up, part of start-up: the fixed-shape path compiles each of its shapes once; vLLM needs none.
        self.backend.score(prompts if spec.backend == "transformers" else prompts[:2])

    def _fresh(self) -> None:
        if hasattr(self.backend, "_llm"):
            self.backend._llm.reset_prefix_cache()
        else:
            self.backend._runner._prefixes.clear()

    def run(self, _: Any = None) -> dict:
        self._fresh()
        t0 = time.perf_counter()
        p = self.backend.score(self.prompts)
        return {"seconds": time.perf_counter() - t0, "p": p, "generated_tokens": 0}

    def score_in_chunks(self, chunks: list[list[int]]) -> dict:
        """The same windows in other batches (other sizes, other neighbours, other order)."""
        p = np.full(len(self.prompts), np.nan)
        for chunk in chunks:
            p[chunk] = self.backend.score([self.prompts[i] for i in chunk])
        return {"p": p}

    def close(self) -> None:
        self.backend.close()


class _Naive:
    """How most re-implementations call an LLM: chat template, greedy `generate` of a few tokens, parse the word."""

    def __init__(self, spec: PathSpec, model: str, prompts: list[str], max_new_tokens: int = 16):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = resolve_model(model).path
        self.torch, self.prompts, self.max_new_tokens = torch, prompts, max_new_tokens
        self.tokenizer: Any = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.lm: Any = AutoModelForCausalLM.from_pretrained(
            path, dtype=getattr(torch, spec.dtype), local_files_only=True
        ).eval()

    def run(self, _: Any = None) -> dict:

        generated = parsed = 0
        t0 = time.perf_counter()
        for q in self.prompts:
            ids: Any = self.tokenizer.apply_chat_template(
                chat_messages(q), add_generation_prompt=True, return_tensors="pt", return_dict=True
            )
            with self.torch.inference_mode():
                out = self.lm.generate(
                    **ids, max_new_tokens=self.max_new_tokens, do_sample=False, pad_token_id=self.tokenizer.eos_token_id
                )
            new = out[0, ids["input_ids"].shape[1] :]
            generated += len(new)
            text = str(self.tokenizer.decode(new, skip_special_tokens=True)).lower()
            parsed += int(any(label.lower() in text for label in REGIMES))
        seconds = time.perf_counter() - t0
        return {"seconds": seconds, "generated_tokens": generated, "answered_with_a_label": parsed / len(self.prompts)}

    def close(self) -> None:
        self.lm = None


def _serve(spec: PathSpec, model: str, prompts: list[str], conn: Any) -> None:
    runner: Any = None
    try:
        t0 = time.perf_counter()
        runner = (_Naive if spec.kind == "naive" else _Batched)(spec, model, prompts)
        conn.send(("ok", time.perf_counter() - t0))
        while True:
            command, arg = conn.recv()
            if command == "stop":
                break
            conn.send(("ok", getattr(runner, command)(arg)))
    except BaseException:
        conn.send(("error", traceback.format_exc()))
    finally:
        if runner is not None:
            runner.close()


class Worker:
    """One path in its own process. `startup_s`: load and warm-up time."""

    def __init__(self, spec: PathSpec, model: str, prompts: list[str]):
        ctx = mp.get_context("spawn")
        self.spec = spec
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(target=_serve, args=(spec, model, prompts, child), daemon=True)
        self._process.start()
        self.startup_s = float(self._receive())

    def _receive(self) -> Any:
        status, value = self._conn.recv()
        if status != "ok":
            self.close()
            raise RuntimeError(f"benchmark path {self.spec.name} failed:\n{value}")
        return value

    def call(self, command: str, arg: Any = None) -> Any:
        self._conn.send((command, arg))
        return self._receive()

    def close(self) -> None:
        if self._process.is_alive():
            with contextlib.suppress(OSError):
                self._conn.send(("stop", None))
            self._process.join(timeout=60)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
