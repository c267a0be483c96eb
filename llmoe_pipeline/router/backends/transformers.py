"""The `transformers` backend: batched forward passes with left padding for scores, greedy `generate` for
explanations. The reference the vLLM paths are checked against."""

from __future__ import annotations

import gc
import os
from pathlib import Path

import numpy as np

from llmoe_pipeline.router.backends.base import (
    RouterBackend,
    _first_line,
    _mask,
    chat_token_ids,
    label_token_ids,
    p_from_logprobs,
)
from llmoe_pipeline.router.backends.config import RouterBackendConfig
from llmoe_pipeline.router.model import resolve_model


class TransformersBackend(RouterBackend):
    """transformers, batched: left-padded forward passes for scores, greedy `generate` for explanations.

    From `config`: model, dtype, forward_batch_size (prompts per forward pass), seed, explanation_max_tokens.
    """

    def __init__(self, config: RouterBackendConfig, home: str | os.PathLike | None = None):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        resolved = resolve_model(config.model, Path(home) if home else None)
        self.config = config
        self.model_id = resolved.model_id
        self.batch_size = config.forward_batch_size
        self.explanation_max_tokens = config.explanation_max_tokens
        torch.manual_seed(config.seed)
        self._torch = torch
        self._tokenizer = AutoTokenizer.from_pretrained(resolved.path, local_files_only=True)
        pad = self._tokenizer.pad_token_id
        self._pad_id = pad if pad is not None else self._tokenizer.eos_token_id
        self._model = AutoModelForCausalLM.from_pretrained(
            resolved.path, dtype=getattr(torch, config.dtype), local_files_only=True
        ).eval()
        self.label_ids = label_token_ids(self._tokenizer)

    def _left_pad(self, seqs: list[list[int]]):
        torch = self._torch
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self._pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, width - len(s) :] = torch.tensor(s)
            mask[i, width - len(s) :] = 1
        return ids, mask

    def _label_logprobs(self, seqs: list[list[int]]) -> np.ndarray:
        torch = self._torch
        ids, mask = self._left_pad(seqs)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)  # real positions despite the left padding
        with torch.inference_mode():
            hidden = self._model.model(input_ids=ids, attention_mask=mask, position_ids=positions).last_hidden_state
            # Only the two label rows of the head, in float32 (as vLLM's head_dtype=float32): a bfloat16 head
            # rounds logits to steps of 0.125, which makes p_optimistic jump in steps of ~0.03.
            head = self._model.get_output_embeddings().weight[list(self.label_ids)].float()
            logits = hidden[:, -1, :].float() @ head.T
        return logits.numpy()  # softmax over two tokens: logits differ from log-probs by a constant

    def _generate(self, seqs: list[list[int]]) -> list[str]:
        torch = self._torch
        ids, mask = self._left_pad(seqs)
        with torch.inference_mode():
            out = self._model.generate(
                input_ids=ids,
                attention_mask=mask,
                do_sample=False,
                max_new_tokens=self.explanation_max_tokens,
                pad_token_id=self._pad_id,
                stop_strings=["\n"],
                tokenizer=self._tokenizer,
            )
        return [_first_line(str(self._tokenizer.decode(row[ids.shape[1] :], skip_special_tokens=True))) for row in out]

    def score_and_explain(self, prompts, explain_mask=None):
        mask = _mask(prompts, explain_mask)
        lp = np.empty((len(prompts), 2))
        explanations: list[str | None] = [None] * len(prompts)
        for start in range(0, len(prompts), self.batch_size):
            chunk = range(start, min(start + self.batch_size, len(prompts)))
            lp[start : chunk.stop] = self._label_logprobs([chat_token_ids(self._tokenizer, prompts[i]) for i in chunk])
            todo = [i for i in chunk if mask[i]]
            if todo:
                texts = self._generate([chat_token_ids(self._tokenizer, prompts[i], "explain") for i in todo])
                for i, text in zip(todo, texts):
                    explanations[i] = text
        return p_from_logprobs(lp[:, 0], lp[:, 1]), explanations

    def close(self) -> None:
        self._model = None
        gc.collect()
