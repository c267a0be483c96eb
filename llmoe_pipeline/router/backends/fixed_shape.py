"""Batch-invariant scoring: each window is computed by the same kernels on the same shapes, whatever else is in
its batch, so its p_optimistic is the same bit for bit in a batch of 1 or of 256, first or last, in a cold run
or an incremental one.

Why it is needed: a matrix multiply's rounding depends on the kernel and the blocking the library picks for
the *whole* matrix, i.e. for the batch's total token count. In bfloat16 that moved p_optimistic by up to 0.04
with the composition of a vLLM batch (in float32 by < 1e-5). Here the shapes are fixed per window (the recipe
below, `RECIPE`), so the same kernels always run on a window's rows, and rows never mix (every operation is
row-wise, or attention within one sequence). The invariance is tested bitwise (tests/router/test_invariance.py).

The recipe (`config.RECIPE`, part of the label-cache model id: changing it relabels):
- prefix: the first `prefix_tokens` tokens of a chat (the system message and the table header, which every
  window of a ticker shares: 100 tokens with SmolLM2's tokenizer) are computed alone, batch 1, and their keys
  and values cached by their token ids; a chat not longer than that is computed alone in one pass (padded to
  a multiple of `bucket`);
- suffix: the rest, right-padded to a multiple of `bucket` tokens, in micro-batches of exactly `micro_batch`
  rows (rows of one bucket only; empty rows fill the last micro-batch), attending to its own prefix.
The prefix cache saves ~27 % of the work (vLLM's prefix cache does the same, but its reuse depends on what
else was in the batch, ours does not).

Every forward pass runs on one thread, and the process's threads (torch.get_num_threads()) each run a micro-batch
at once: oneDNN's bfloat16 matrix multiply reduces some shapes differently on two threads than on one (README,
Performance), so with one thread per pass a window's p is also the same whatever the number of cores (tested).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

from llmoe_pipeline.router.backends.config import RECIPE, Recipe
from llmoe_pipeline.router.backends.llama_torch import CANONICAL_LENGTH, LlamaTorch

KV = list[tuple[torch.Tensor, torch.Tensor]]  # per layer (k, v): (B, kv_heads, T, head_dim)


PREFIX_CACHE_ENTRIES = 64  # distinct prefixes kept (one per ticker and task); ~2 MB each for SmolLM2 in bfloat16


class FixedShapeRunner:
    """Scores and greedy continuations of token sequences through `model` with the fixed-shape recipe."""

    def __init__(self, model: LlamaTorch, pad_id: int, recipe: Recipe = RECIPE):
        if recipe.prefix_tokens % recipe.bucket:
            raise ValueError("prefix_tokens must be a multiple of bucket")
        self.model, self.pad_id, self.recipe = model, pad_id, recipe
        self._prefixes: OrderedDict[tuple[int, ...], KV] = OrderedDict()
        self._prefix_lock = threading.Lock()  # micro-batches run in threads
        if getattr(model, "compiled", False):
            self._warm_up()

    # ------------------------------------------------------------------------------------------ shapes
    def _warm_up(self) -> None:
        """Compile the model's two passes (a prefix, batch 1; a suffix after it, a micro-batch) on canonical
        shapes, through the code path real windows take: every process compiles the same kernels, whichever
        windows it scores first (llama_torch.compiled_layer_forward)."""
        prefix = self.recipe.prefix_tokens
        self.prefill([[self.pad_id] * (prefix + CANONICAL_LENGTH)], prefix, CANONICAL_LENGTH)
        self._prefixes.clear()

    def rows(self, prefix: int) -> int:
        """Rows of a forward pass: a micro-batch after a prefix; a chat not longer than the prefix is computed
        alone, like a prefix (so that both passes of the recipe have one canonical shape each)."""
        return self.recipe.micro_batch if prefix or not self.recipe.prefix_tokens else 1

    def split(self, seq: Sequence[int]) -> int:
        """Tokens computed as the shared prefix of `seq` (0: the whole chat in one pass)."""
        return self.recipe.prefix_tokens if len(seq) > self.recipe.prefix_tokens else 0

    def groups(self, seqs: Sequence[Sequence[int]]) -> list[tuple[int, int, list[int]]]:
        """(prefix length, padded suffix length, indices) of each micro-batch, in a fixed order."""
        by_shape: dict[tuple[int, int], list[int]] = {}
        for i, seq in enumerate(seqs):
            if not seq:
                raise ValueError("cannot score an empty token sequence")
            prefix = self.split(seq)
            width = -(-(len(seq) - prefix) // self.recipe.bucket) * self.recipe.bucket
            by_shape.setdefault((prefix, width), []).append(i)
        return [
            (prefix, width, members[start : start + self.rows(prefix)])
            for (prefix, width), members in sorted(by_shape.items())
            for start in range(0, len(members), self.rows(prefix))
        ]

    def _prefix_kv(self, ids: tuple[int, ...]) -> KV:
        with self._prefix_lock:
            kv = self._prefixes.get(ids)
            if kv is None:
                _, kv = self.model.forward(torch.tensor([ids]))
                self._prefixes[ids] = kv
                while len(self._prefixes) > PREFIX_CACHE_ENTRIES:
                    self._prefixes.popitem(last=False)
            else:
                self._prefixes.move_to_end(ids)
            return kv

    def prefill(self, seqs: Sequence[Sequence[int]], prefix: int, width: int) -> tuple[torch.Tensor, KV, list[KV]]:
        """One micro-batch: hidden states (micro_batch, width, hidden) of the suffixes, their (k, v), and each
        real row's prefix (k, v) (empty when prefix is 0)."""
        rows = self.rows(prefix)
        ids = torch.full((rows, width), self.pad_id, dtype=torch.long)
        for r, seq in enumerate(seqs):
            ids[r, : len(seq) - prefix] = torch.tensor(seq[prefix:])
        if not prefix:
            hidden, kv = self.model.forward(ids)
            return hidden, kv, [[] for _ in seqs]
        prefixes = [self._prefix_kv(tuple(seq[:prefix])) for seq in seqs]
        filled = prefixes + [prefixes[0]] * (rows - len(seqs))  # empty rows: any prefix (rows never mix)
        past = [
            (torch.cat([p[i][0] for p in filled]), torch.cat([p[i][1] for p in filled]))
            for i in range(len(prefixes[0]))
        ]
        allowed = torch.ones(width, prefix + width, dtype=torch.bool).tril(diagonal=prefix)
        hidden, kv = self.model.forward(ids, start=prefix, past=past, mask=allowed[None, None])
        return hidden, kv, prefixes

    # ------------------------------------------------------------------------------------------ scoring
    def score(
        self,
        seqs: Sequence[Sequence[int]],
        token_ids: list[int],
        keep: dict[int, int] | None = None,
        sink: Callable[[int, KV], None] | None = None,
        pooled: bool = False,
    ) -> Any:
        """Logits (float32) of `token_ids` at the position after each sequence, shape (len(seqs), len(token_ids));
        with `pooled`, (logits, states): states (len(seqs), hidden; float32) the mean over each sequence's own
        tokens (after its shared prefix) of the final-normed hidden state, from the same pass (router/hidden.py).

        keep: {index: n}: hand the keys and values of the first n tokens of those sequences (per layer,
        (1, kv_heads, n, head_dim)) to `sink` (in this thread) once their micro-batch is done (explanations reuse
        them)."""
        out = np.empty((len(seqs), len(token_ids)))
        states: np.ndarray | None = None
        wanted = keep if keep and sink is not None else {}
        groups = self.groups(seqs)
        threads = torch.get_num_threads()

        def one_pass(group: tuple[int, int, list[int]]) -> tuple[np.ndarray, list[tuple[int, KV]], np.ndarray | None]:
            torch.set_num_threads(1)  # this thread's passes (see the module's docstring)
            return self._score_group(seqs, group, token_ids, wanted, pooled)

        with ThreadPoolExecutor(threads) as pool:
            try:
                # `threads` micro-batches at a time; between them, `sink` (explanations) runs on every thread.
                for start in range(0, len(groups), threads):
                    wave = groups[start : start + threads]
                    done = list(pool.map(one_pass, wave))
                    torch.set_num_threads(threads)
                    for (_, _, members), (logits, kept, mean) in zip(wave, done):
                        out[members] = logits
                        if mean is not None:
                            if states is None:
                                states = np.zeros((len(seqs), mean.shape[1]), dtype=np.float32)
                            states[members] = mean
                        for i, kv in kept:
                            sink(i, kv)  # type: ignore[misc]
            finally:
                torch.set_num_threads(threads)
        if not pooled:
            return out
        return out, states if states is not None else np.zeros((0, 0), dtype=np.float32)

    def _score_group(
        self,
        seqs: Sequence[Sequence[int]],
        group: tuple[int, int, list[int]],
        token_ids: list[int],
        keep: dict[int, int],
        pooled: bool = False,
    ) -> tuple[np.ndarray, list[tuple[int, KV]], np.ndarray | None]:
        """One micro-batch: the logits of its real rows, the (index, keys and values) of those in `keep`, and with
        `pooled` the real rows' mean final-normed hidden state over their own tokens (else None)."""
        prefix, width, members = group
        chunk = [seqs[i] for i in members]
        hidden, kv, prefixes = self.prefill(chunk, prefix, width)
        last = torch.zeros(len(hidden), dtype=torch.long)  # empty rows: position 0
        last[: len(chunk)] = torch.tensor([len(s) - prefix - 1 for s in chunk])
        # The head on every row of the micro-batch: a matrix multiply's rounding depends on its row count too.
        logits = self.model.logits(hidden[torch.arange(len(hidden)), last], token_ids)
        kept = [(i, self._row_kv(kv, prefixes[r], r, keep[i])) for r, i in enumerate(members) if i in keep]
        mean = None
        if pooled:  # the norm on the whole micro-batch (row-wise, fixed shape); each row's own tokens, no pads
            normed = self.model.final_norm(hidden)
            mean = torch.stack([normed[r, : len(s) - prefix].mean(0) for r, s in enumerate(chunk)]).numpy()
        return logits[: len(chunk)].numpy(), kept, mean

    @staticmethod
    def _row_kv(kv: KV, prefix: KV, row: int, n: int) -> KV:
        """Row `row`'s keys and values of its first n positions: its prefix's, then its own."""
        out = []
        for layer, (k, v) in enumerate(kv):
            own_k, own_v = k[row : row + 1], v[row : row + 1]
            if prefix:
                own_k, own_v = torch.cat([prefix[layer][0], own_k], 2), torch.cat([prefix[layer][1], own_v], 2)
            out.append((own_k[:, :, :n].clone(), own_v[:, :, :n].clone()))
        return out
