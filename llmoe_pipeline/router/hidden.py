"""Hidden states beside the labels: what `llm_probe` reads (router/probe.py).

The transformers backend's scoring pass keeps, per window, the mean over the window's own tokens (the chat after
the shared prefix the fixed-shape recipe computes once: the window's price lines, headlines, question and the
assistant's opening; no pad) of the final hidden state after the model's final norm (what the head reads). It is
stored as float16 little-endian bytes (576 × 2 = 1,152 bytes a window for SmolLM2) in the label cache under the
label's key, with `HIDDEN_SPEC` naming what the bytes are: a stored state of another spec counts as missing. The
width is the model's (the model is part of the key). Never pickle.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

HIDDEN_SPEC = "mean-own/final-norm/f16le"  # pooling / where / encoding; a new pooling is a new spec
_DTYPE = np.dtype("<f2")


def encode_hidden(vector: np.ndarray) -> bytes:
    """One window's pooled hidden state as float16 little-endian bytes."""
    return np.asarray(vector, dtype=np.float32).astype(_DTYPE).tobytes()


def decode_hidden(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype=_DTYPE)


def hidden_matrix(blobs: Iterable[bytes]) -> np.ndarray:
    """The windows' hidden states as one float64 matrix (windows × width); every window must have one."""
    rows = [decode_hidden(b) for b in blobs]
    if not rows:
        return np.zeros((0, 0))
    widths = {len(r) for r in rows}
    if len(widths) != 1:
        raise ValueError(f"hidden states of different widths {sorted(widths)}: more than one model")
    return np.vstack(rows).astype(np.float64)
