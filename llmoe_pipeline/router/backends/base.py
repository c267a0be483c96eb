"""The `RouterBackend` interface and the scoring maths every backend shares.

The label probability never comes from parsing text. Each label word's first token under the model's chat
template is the label token; the model's log-probabilities of the two tokens at the first answer
position give p_optimistic = softmax over the two = 1 / (1 + exp(lp_pessimistic - lp_optimistic)).
(Renormalising over the two makes raw and processed log-probabilities give the same p.)
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from llmoe_pipeline.router.prompt import SCORE_QUESTION, chat_messages
from llmoe_pipeline.router.regimes import REGIMES as LABELS

# A prompt used only to find the label tokens: where the answer starts under the chat template.
_PROBE_PROMPT = f"Stock: PROBE\n\n{SCORE_QUESTION.format(ticker='PROBE')}"


def p_from_logprobs(lp_optimistic: np.ndarray | float, lp_pessimistic: np.ndarray | float) -> np.ndarray:
    """Softmax over the two label tokens (numerically stable form)."""
    diff = np.asarray(lp_pessimistic, dtype=float) - np.asarray(lp_optimistic, dtype=float)
    return 1.0 / (1.0 + np.exp(diff))


def first_answer_tokens(prefix_ids: Sequence[int], labelled_ids: Sequence[Sequence[int]]) -> tuple[int, ...]:
    """The token that follows the chat prefix when the assistant's answer is each label word."""
    out = []
    for label, ids in zip(LABELS, labelled_ids):
        if list(ids[: len(prefix_ids)]) != list(prefix_ids) or len(ids) <= len(prefix_ids):
            raise ValueError(f"the chat template does not tokenize {label!r} as a continuation of the prompt")
        out.append(int(ids[len(prefix_ids)]))
    if len(set(out)) != len(out):
        raise ValueError(f"the label words {LABELS} start with the same token {out[0]}: cannot score them apart")
    return tuple(out)


def chat_token_ids(tokenizer: Any, prompt: str, task: Literal["score", "explain"] = "score") -> list[int]:
    """Token ids of the chat (system + user message + the assistant turn's opening)."""
    text = tokenizer.apply_chat_template(chat_messages(prompt, task), add_generation_prompt=True, tokenize=False)
    # The template's text already holds the special tokens (e.g. Llama's <|begin_of_text|>): add none.
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def label_token_ids(tokenizer: Any) -> tuple[int, int]:
    """(id_optimistic, id_pessimistic) for a Hugging Face tokenizer with a chat template."""
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("the model's tokenizer has no chat template: the router needs an instruction-tuned model")
    text = tokenizer.apply_chat_template(chat_messages(_PROBE_PROMPT), add_generation_prompt=True, tokenize=False)
    prefix = tokenizer(text, add_special_tokens=False)["input_ids"]
    labelled = [tokenizer(text + label, add_special_tokens=False)["input_ids"] for label in LABELS]
    return first_answer_tokens(prefix, labelled)  # type: ignore[return-value]


def _first_line(text: str) -> str:
    return text.strip().split("\n", 1)[0].strip()


def _mask(prompts: Sequence[str], explain_mask: Sequence[bool] | None) -> list[bool]:
    mask = [False] * len(prompts) if explain_mask is None else [bool(x) for x in explain_mask]
    if len(mask) != len(prompts):
        raise ValueError(f"explain_mask has {len(mask)} entries for {len(prompts)} prompts")
    return mask


class RouterBackend(abc.ABC):
    """p_optimistic (and optionally an explanation) for a list of prompts from `build_prompts`."""

    model_id: str  # name@revision; part of the label cache key
    # What `score_explain_hidden` returns beside p (router/hidden.py), None: this backend gives log-probabilities only.
    hidden_spec: str | None = None

    @abc.abstractmethod
    def score_and_explain(
        self, prompts: Sequence[str], explain_mask: Sequence[bool] | None = None
    ) -> tuple[np.ndarray, list[str | None]]:
        """p_optimistic for every prompt, and an explanation where explain_mask is True (else None)."""

    def score_explain_hidden(
        self, prompts: Sequence[str], explain_mask: Sequence[bool] | None = None
    ) -> tuple[np.ndarray, list[str | None], np.ndarray | None]:
        """`score_and_explain`, and the pooled final hidden states (windows × width, float32) of the same pass
        where the backend has a `hidden_spec` (else None)."""
        p_opt, explanations = self.score_and_explain(prompts, explain_mask)
        return p_opt, explanations, None

    def score(self, prompts: Sequence[str]) -> np.ndarray:
        return self.score_and_explain(prompts, None)[0]

    def explain(self, prompts: Sequence[str]) -> list[str]:
        return [e or "" for e in self.score_and_explain(prompts, [True] * len(prompts))[1]]

    def close(self) -> None:  # noqa: B027 - optional hook: backends without resources need not override it
        """Release the model (and its engine's processes)."""

    def __enter__(self) -> RouterBackend:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
