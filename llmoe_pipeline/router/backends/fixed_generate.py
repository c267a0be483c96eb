"""Greedy explanations on the fixed-shape path, reusing the scoring pass.

An explanation chat is its window's scoring chat with another question at the end: with SmolLM2's tokenizer
they share all but the last 27 of ~350 tokens. `FixedShapeRunner.score` hands over the keys and values of that
shared part, so an explanation costs only its ~31-token tail (one batched pass over all rows of a group, each
attending to its own cached window) and then one decoding step per generated token for the whole group.
Explanations are text for people; labels never depend on them (p comes from the scoring pass alone), so this
path is free to batch by whatever is pending.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from llmoe_pipeline.router.backends.fixed_shape import KV
from llmoe_pipeline.router.backends.llama_torch import LlamaTorch

ROWS_PER_GROUP = 32  # explanations decoded together (~10 MB of cached keys and values each for SmolLM2)


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


class Generator:
    """Collects (window, cached prefix, tail tokens) and decodes them in groups: `add`, then `finish`."""

    def __init__(self, model: LlamaTorch, max_new_tokens: int, stop_ids: set[int], rows: int = ROWS_PER_GROUP):
        self.model, self.max_new_tokens, self.stop_ids, self.rows = model, max_new_tokens, stop_ids, rows
        self.pending: list[tuple[int, KV, list[int]]] = []
        self.done: dict[int, list[int]] = {}

    def add(self, index: int, past: KV, tail: Sequence[int]) -> None:
        """Window `index`: the keys/values of its chat's first tokens, and the rest of its chat (at least one)."""
        self.pending.append((index, past, list(tail)))
        if len(self.pending) >= self.rows:
            self._run(self.pending)
            self.pending = []

    def finish(self) -> dict[int, list[int]]:
        """The generated tokens of every window added (ending at the first stop token, if any)."""
        if self.pending:
            self._run(self.pending)
            self.pending = []
        return self.done

    def _run(self, rows: list[tuple[int, KV, list[int]]]) -> None:
        n, new = len(rows), self.max_new_tokens
        past_len = [r[1][0][0].shape[2] for r in rows]
        tail_len = [len(r[2]) for r in rows]
        width, tail = max(past_len), max(tail_len)
        slots = width + tail + new
        k0 = rows[0][1][0][0]
        caches = [
            (k0.new_zeros(n, k0.shape[1], slots, k0.shape[3]), k0.new_zeros(n, k0.shape[1], slots, k0.shape[3]))
            for _ in rows[0][1]
        ]
        valid = torch.zeros(n, slots, dtype=torch.bool)
        ids = torch.zeros(n, tail, dtype=torch.long)
        for r, (_, past, tokens) in enumerate(rows):
            for (k, v), (pk, pv) in zip(caches, past):
                k[r, :, : past_len[r]], v[r, :, : past_len[r]] = pk[0], pv[0]
            valid[r, : past_len[r]] = True
            ids[r, : tail_len[r]] = torch.tensor(tokens)
        # The tails: each row attends to its own past and causally within its tail.
        causal = torch.ones(tail, tail, dtype=torch.bool).tril()
        mask = torch.cat([valid[:, None, :width].expand(n, tail, width), causal.expand(n, tail, tail)], dim=2)
        positions = torch.tensor(past_len)[:, None] + torch.arange(tail)
        hidden = self.model.forward_cached(ids, positions, caches, width, mask[:, None])
        for r in range(n):
            valid[r, width : width + tail_len[r]] = True
        token = self.model.logits(hidden[torch.arange(n), torch.tensor(tail_len) - 1]).argmax(-1)
        position = torch.tensor(past_len) + torch.tensor(tail_len)
        out: list[list[int]] = [[] for _ in rows]
        done = torch.zeros(n, dtype=torch.bool)
        for step in range(new):
            for r in range(n):
                if not done[r]:
                    out[r].append(int(token[r]))
            done |= torch.tensor([int(t) in self.stop_ids for t in token])
            if bool(done.all()) or step == new - 1:
                break
            slot = width + tail + step
            valid[:, slot] = True
            mask = valid[:, None, None, : slot + 1]
            hidden = self.model.forward_cached(token[:, None], position[:, None], caches, slot, mask)
            token = self.model.logits(hidden[:, 0]).argmax(-1)
            position = position + 1
        for (index, _, _), tokens in zip(rows, out):
            self.done[index] = tokens
