"""The `transformers` backend: the model in this process (PyTorch), scored with fixed shapes so that a window's
p_optimistic does not depend on the rest of its batch (fixed_shape.py), in bfloat16 on a CPU with AMX or AVX512-BF16.

Llama-family models (SmolLM2, Llama 3.x) run a compact compiled forward (llama_torch.py); other architectures run
the transformers module with the same buckets and micro-batches (no prefix split; explanations by `generate`).
"""

from __future__ import annotations

import gc
import json
import os
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
from llmoe_pipeline.router.backends.config import RECIPE, Recipe, RouterBackendConfig, label_model_id
from llmoe_pipeline.router.hidden import HIDDEN_SPEC
from llmoe_pipeline.router.model import resolve_model


class _ModuleForward:
    """The transformers module behind the `FixedShapeRunner` interface (whole chats only: no prefix split)."""

    def __init__(self, model: Any):
        self.model = model

    def forward(self, ids, start=0, past=None, mask=None, positions=None, eager=False):
        if start or past is not None:
            raise ValueError("the transformers module path computes whole chats only")
        import torch

        with torch.no_grad():  # right padding under a causal mask: a real token never sees a pad
            return self.model.model(input_ids=ids).last_hidden_state, []

    def final_norm(self, hidden):
        return hidden.float()  # last_hidden_state is after the model's final norm already

    def logits(self, hidden, token_ids=None):
        head = self.model.get_output_embeddings().weight
        return hidden.float() @ (head if token_ids is None else head[token_ids]).float().T


class TransformersBackend(RouterBackend):
    """The model in this process: fixed-shape, batch-invariant scoring; explanations by greedy decoding; the pooled
    final hidden states of the scoring pass on request (`score_explain_hidden`, router/hidden.py).

    From `config`: model, dtype ("auto": bfloat16 on a CPU with native bfloat16 matrix multiplies, else float32),
    seed, explanation_max_tokens, forward_batch_size (generate batch, non-Llama models only). The Llama forward
    is compiled except in float32; `compile=False` (benchmarks) runs it eagerly: other low-precision numbers, so
    another model id. `recipe` (tests, benchmarks): other fixed shapes, another model id in low precision.
    """

    hidden_spec = HIDDEN_SPEC

    def __init__(
        self,
        config: RouterBackendConfig,
        home: str | os.PathLike | None = None,
        *,
        compile: bool | None = None,
        recipe: Recipe = RECIPE,
    ):
        import torch
        from transformers import AutoTokenizer

        from llmoe_pipeline.router.backends import llama_torch
        from llmoe_pipeline.router.backends.fixed_shape import FixedShapeRunner

        home = Path(home) if home else llmoe_home()
        os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(home / "cache" / "torchinductor"))
        resolved = resolve_model(config.model, home)
        self.config = config
        self.dtype = config.resolved_dtype
        # Compiled in low precision, where fusing the element-wise work pays (measured: 1.6x); float32 is bound
        # by its matrix multiplies and runs eagerly (no compilation to wait for; numbers within 1e-6).
        compile = self.dtype != "float32" if compile is None else compile
        # Eager low precision rounds otherwise than compiled: another recipe id, so another cache id.
        eager = not compile and self.dtype != "float32"
        self.model_id = label_model_id(config, resolved.model_id, recipe.id + ("-eager" if eager else ""))
        self.explanation_max_tokens = config.explanation_max_tokens
        torch.manual_seed(config.seed)
        self._torch = torch
        self._tokenizer: Any = AutoTokenizer.from_pretrained(resolved.path, local_files_only=True)
        pad = self._tokenizer.pad_token_id
        self._pad_id = pad if pad is not None else self._tokenizer.eos_token_id
        self.label_ids = label_token_ids(self._tokenizer)
        model_config = json.loads((resolved.path / "config.json").read_text(encoding="utf-8"))
        self._module: Any = None
        if llama_torch.supports(model_config):
            model: Any = llama_torch.LlamaTorch(resolved.path, getattr(torch, self.dtype), compile=compile)
        else:
            from transformers import AutoModelForCausalLM

            self._module = AutoModelForCausalLM.from_pretrained(
                resolved.path, dtype=getattr(torch, self.dtype), local_files_only=True
            ).eval()
            model = _ModuleForward(self._module)
            recipe = Recipe(0, recipe.bucket, recipe.micro_batch, recipe.version)
        self._runner = FixedShapeRunner(model, self._pad_id, recipe)
        self._stop_ids: set[int] | None = None

    @property
    def stop_ids(self) -> set[int]:
        """Tokens that end an explanation: the end-of-turn tokens and every token holding a line break."""
        if self._stop_ids is None:
            tok = self._tokenizer
            texts = tok.batch_decode([[i] for i in range(len(tok))])
            self._stop_ids = {i for i, t in enumerate(texts) if "\n" in t}
            eos = tok.eos_token_id
            self._stop_ids |= set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        return self._stop_ids

    def _text(self, tokens: list[int]) -> str:
        return _first_line(str(self._tokenizer.decode(tokens, skip_special_tokens=True)))

    def _generate(self, seqs: list[list[int]]) -> list[list[int]]:
        torch = self._torch
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self._pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):  # left padding for generate
            ids[i, width - len(s) :], mask[i, width - len(s) :] = torch.tensor(s), 1
        with torch.inference_mode():
            out = self._module.generate(
                input_ids=ids,
                attention_mask=mask,
                do_sample=False,
                max_new_tokens=self.explanation_max_tokens,
                pad_token_id=self._pad_id,
                stop_strings=["\n"],
                tokenizer=self._tokenizer,
            )
        return [row[width:].tolist() for row in out]

    def score_and_explain(self, prompts, explain_mask=None):
        p_opt, explanations, _ = self._score(prompts, explain_mask, pooled=False)
        return p_opt, explanations

    def score_explain_hidden(self, prompts, explain_mask=None):
        return self._score(prompts, explain_mask, pooled=True)

    def _score(self, prompts, explain_mask, pooled: bool):
        from llmoe_pipeline.router.backends.fixed_generate import Generator, common_prefix

        mask = _mask(prompts, explain_mask)
        seqs = [chat_token_ids(self._tokenizer, p) for p in prompts]
        asked = {i: chat_token_ids(self._tokenizer, prompts[i], "explain") for i, m in enumerate(mask) if m}
        explanations: list[str | None] = [None] * len(prompts)
        if not seqs:
            return np.zeros(0), explanations, (np.zeros((0, 0), dtype=np.float32) if pooled else None)
        if self._module is not None:  # other architectures: transformers' generate on the explanation chats
            lp, states = self._scores(self._runner.score(seqs, list(self.label_ids), pooled=pooled), pooled)
            todo, size = list(asked), self.config.forward_batch_size
            for start in range(0, len(todo), size):
                for i, tokens in zip(
                    todo[start : start + size], self._generate([asked[i] for i in todo[start : start + size]])
                ):
                    explanations[i] = self._text(tokens)
            return p_from_logprobs(lp[:, 0], lp[:, 1]), explanations, states
        # Explanations continue from the scoring pass's keys and values of the part both chats share.
        shared = {i: min(common_prefix(seqs[i], chat), len(chat) - 1) for i, chat in asked.items()}
        generator = Generator(self._runner.model, self.explanation_max_tokens, self.stop_ids)
        lp, states = self._scores(
            self._runner.score(
                seqs,
                list(self.label_ids),
                keep=shared,
                sink=lambda i, kv: generator.add(i, kv, asked[i][shared[i] :]),
                pooled=pooled,
            ),
            pooled,
        )
        for i, tokens in generator.finish().items():
            explanations[i] = self._text(tokens)
        return p_from_logprobs(lp[:, 0], lp[:, 1]), explanations, states

    @staticmethod
    def _scores(result, pooled: bool) -> tuple[np.ndarray, np.ndarray | None]:
        return result if pooled else (result, None)

    def close(self) -> None:
        self._runner = None  # type: ignore[assignment]
        self._module = None
        gc.collect()
