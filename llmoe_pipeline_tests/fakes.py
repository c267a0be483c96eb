"""A deterministic fake router for fast graph tests (the real vLLM router is tested in router/ and e2e/).

Its p_optimistic is a fixed function of the prompt text, so labels are stable across runs and batchings, and
it counts the prompts it scores, so tests can assert what reached "the model".
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from llmoe_pipeline.core.hashing import sha256_text
from llmoe_pipeline.defs.resources import LLMRouterResource
from llmoe_pipeline.router.backends import RouterBackend
from llmoe_pipeline.router.hidden import HIDDEN_SPEC

FAKE_MODEL_ID = "fake-router@v1"
SCORED: list[str] = []  # every prompt the fake backend scored in this process
EXPLAINED: list[str] = []  # every prompt the fake backend was asked to explain in this process


class FakeBackend(RouterBackend):
    model_id = FAKE_MODEL_ID

    def score_and_explain(self, prompts, explain_mask=None):
        SCORED.extend(prompts)
        p = np.array([int(sha256_text(q)[:8], 16) / 0xFFFFFFFF for q in prompts])
        mask = [False] * len(prompts) if explain_mask is None else list(explain_mask)
        EXPLAINED.extend(q for q, m in zip(prompts, mask) if m)
        return p, [f"fake explanation {i}" if m else None for i, m in enumerate(mask)]

    hidden_spec = HIDDEN_SPEC

    def score_explain_hidden(self, prompts, explain_mask=None):
        """And a fake hidden state per prompt (16 numbers from its hash: no information about the next day)."""
        p, explanations = self.score_and_explain(prompts, explain_mask)
        states = np.array([[int(sha256_text(f"{i}{q}")[:8], 16) / 0xFFFFFFFF for i in range(16)] for q in prompts])
        return p, explanations, states.astype(np.float32).reshape(len(prompts), 16)


class FakeSpec:
    model_id = FAKE_MODEL_ID
    hidden_spec = HIDDEN_SPEC

    def __call__(self) -> FakeBackend:
        return FakeBackend()


class FakeRouterResource(LLMRouterResource):
    """The LLM router resource with the fake backend; the label cache is real (under the home)."""

    def backend_factory(self):
        return FakeSpec()


def fake_router(home: Path) -> FakeRouterResource:
    return FakeRouterResource(backend={"batch_size": 64}, home=str(home))
