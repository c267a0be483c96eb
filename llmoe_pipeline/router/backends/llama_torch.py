"""A compact Llama-family forward pass in plain PyTorch, for the `transformers` backend's fixed-shape scoring.

Why not the transformers module: with fixed shapes the work is a handful of large matrix multiplies per layer, and
in bfloat16 on a CPU with AMX those run several times faster than float32 — the rest (norms, rotary embedding,
SiLU, residual adds) then dominates unless it is fused. This forward fuses the q/k/v and the gate/up
projections into one matrix each, keeps the residual stream in float32 (only the matrix-multiply inputs are in
the low precision), and is compiled layer by layer with `torch.compile` (one graph for the 30 identical layers and
every sequence length, compiled once per process on canonical shapes, cached on disk under TORCHINDUCTOR_CACHE_DIR).

Supported: `model_type: llama` without biases (SmolLM2, Llama 3.x); `supports(config)` says whether a folder is.
Numerically it is the transformers Llama: in float32 its p_optimistic matches the transformers model and vLLM to
~1e-6.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

KVList = list[tuple[torch.Tensor, torch.Tensor]]  # per layer (k, v)
RECOMPILE_LIMIT = 64  # compiled variants one process may hold (a few: with and without a prefix, per dtype)


def supports(config: dict) -> bool:
    """Whether `config` (a config.json mapping) is a Llama-family model this forward implements."""
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    return (
        config.get("model_type") == "llama"
        and not config.get("attention_bias", False)
        and not config.get("mlp_bias", False)
        and config.get("hidden_act", "silu") == "silu"
        and config.get("pretraining_tp", 1) in (None, 1)
        and rope.get("rope_type", rope.get("type", "default")) in ("default", "llama3", "linear")
    )


def _rms(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    x = x.float()
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def _rope(t: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = t.shape[-1] // 2
    return t * cos + torch.cat([-t[..., half:], t[..., :half]], dim=-1) * sin


def _qkv(
    x: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    w: tuple[torch.Tensor, ...],
    heads: int,
    kv_heads: int,
    eps: float,
):
    """q, k, v (B, heads or kv_heads, T, head_dim; q and k rotated) of x (B, T, hidden; float32)."""
    batch, length, _ = x.shape
    dt = w[1].dtype
    qkv = F.linear(_rms(x, w[0], eps).to(dt), w[1]).view(batch, length, heads + 2 * kv_heads, -1).transpose(1, 2)
    q, k, v = qkv.split([heads, kv_heads, kv_heads], dim=1)
    return _rope(q.float(), cos, sin).to(dt), _rope(k.float(), cos, sin).to(dt), v


def _after_attention(x: torch.Tensor, a: torch.Tensor, w: tuple[torch.Tensor, ...], eps: float) -> torch.Tensor:
    """The rest of the layer: output projection, residual, MLP, residual."""
    _, _, o_w, ln2, gu_w, down_w = w
    x = x + F.linear(a.transpose(1, 2).reshape(x.shape[0], x.shape[1], -1), o_w)
    gate, up = F.linear(_rms(x, ln2, eps).to(o_w.dtype), gu_w).chunk(2, dim=-1)
    return x + F.linear(F.silu(gate) * up, down_w)


def layer_forward(
    x: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    past_k: torch.Tensor | None,
    past_v: torch.Tensor | None,
    mask: torch.Tensor | None,
    w: tuple[torch.Tensor, ...],
    heads: int,
    kv_heads: int,
    eps: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One decoder layer on x (B, T, hidden; float32): returns (x, k, v), k/v (B, kv_heads, T, head_dim) of
    this call's positions (rotated keys). Without `mask` the attention is causal over these T positions; with
    it, over past_k/past_v followed by the T positions (mask (.., T, P + T), True = attend)."""
    q, k, v = _qkv(x, cos, sin, w, heads, kv_heads, eps)
    if past_k is None or past_v is None:
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    else:
        a = F.scaled_dot_product_attention(
            q, torch.cat([past_k, k], dim=2), torch.cat([past_v, v], dim=2), attn_mask=mask, enable_gqa=True
        )
    return _after_attention(x, a, w, eps), k, v


def cached_layer_forward(x, cos, sin, cache_k, cache_v, start: int, mask, w, heads: int, kv_heads: int, eps: float):
    """One layer for generation (eager): writes this call's k/v into the caches (B, kv_heads, slots, head_dim)
    at slots start..start+T-1 and attends over slots 0..start+T-1 as `mask` (B, 1, T, start+T) allows."""
    q, k, v = _qkv(x, cos, sin, w, heads, kv_heads, eps)
    end = start + x.shape[1]
    cache_k[:, :, start:end], cache_v[:, :, start:end] = k, v
    a = F.scaled_dot_product_attention(q, cache_k[:, :, :end], cache_v[:, :, :end], attn_mask=mask, enable_gqa=True)
    return _after_attention(x, a, w, eps)


_COMPILED: dict[str, Any] = {}
CANONICAL_LENGTH = 256  # the sequence length every process compiles the layer with (see compiled_layer_forward)


def compiled_layer_forward():
    """`layer_forward` compiled once per process, with the sequence length symbolic: one compiled graph serves
    every bucket (instead of ~10 compilations of ~10 s), its other dimensions specialised. FixedShapeRunner's
    warm-up compiles it on the same canonical shapes in every process before any window is scored, so the generated
    kernels never depend on which windows came first (tested: p bitwise equal across processes that scored the
    windows in opposite orders)."""
    if "layer" not in _COMPILED:
        import torch._dynamo

        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, RECOMPILE_LIMIT)
        compiled = torch.compile(layer_forward, dynamic=False, fullgraph=True)

        def layer(x, cos, sin, past_k, past_v, mask, w, heads, kv_heads, eps):
            for tensor, dim in ((x, 1), (cos, 0), (sin, 0)) + (((mask, 2), (mask, 3)) if mask is not None else ()):
                torch._dynamo.mark_dynamic(tensor, dim)
            return compiled(x, cos, sin, past_k, past_v, mask, w, heads, kv_heads, eps)

        _COMPILED["layer"] = layer
    return _COMPILED["layer"]


def _load_tensors(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{folder}: no *.safetensors weights")
    tensors: dict[str, torch.Tensor] = {}
    for f in files:
        tensors.update(load_file(str(f)))
    return tensors


def _inv_freq(folder: Path, head_dim: int) -> tuple[torch.Tensor, float]:
    """Rotary inverse frequencies and scaling, as transformers computes them for this config."""
    from transformers import AutoConfig
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

    rotary = LlamaRotaryEmbedding(AutoConfig.from_pretrained(folder, local_files_only=True))
    inv_freq = rotary.inv_freq.float()
    if inv_freq.numel() * 2 != head_dim:
        raise ValueError(f"{folder}: rotary dimension {inv_freq.numel() * 2} != head_dim {head_dim}")
    return inv_freq, float(rotary.attention_scaling)


class LlamaTorch:
    """The weights of a Llama-family model in `dtype` (norms, embeddings and the label rows of the head in float32)
    and its forward pass over fixed-shape batches. `compile=False` runs the same code eagerly."""

    def __init__(self, folder: str | os.PathLike, dtype: torch.dtype, compile: bool = True):
        folder = Path(folder)
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        if not supports(config):
            kind = config.get("model_type")
            raise ValueError(f"{folder}: not a Llama-family model without biases (model_type {kind})")
        self.dtype = dtype
        self.heads = int(config["num_attention_heads"])
        self.kv_heads = int(config.get("num_key_value_heads") or self.heads)
        self.head_dim = int(config.get("head_dim") or config["hidden_size"] // self.heads)
        self.eps = float(config["rms_norm_eps"])
        t = _load_tensors(folder)
        self.embed = t["model.embed_tokens.weight"].float()
        self.layers: list[tuple[torch.Tensor, ...]] = []
        for i in range(int(config["num_hidden_layers"])):
            p = f"model.layers.{i}."
            qkv = [t[p + f"self_attn.{n}_proj.weight"] for n in "qkv"]
            gate_up = [t[p + f"mlp.{n}_proj.weight"] for n in ("gate", "up")]
            self.layers.append(
                (
                    t[p + "input_layernorm.weight"].float(),
                    torch.cat(qkv).to(dtype).contiguous(),
                    t[p + "self_attn.o_proj.weight"].to(dtype).contiguous(),
                    t[p + "post_attention_layernorm.weight"].float(),
                    torch.cat(gate_up).to(dtype).contiguous(),
                    t[p + "mlp.down_proj.weight"].to(dtype).contiguous(),
                )
            )
        self.norm = t["model.norm.weight"].float()
        self.head = t.get("lm_head.weight", t["model.embed_tokens.weight"]).float()  # tied embeddings: no lm_head
        self.inv_freq, self.rope_scaling = _inv_freq(folder, self.head_dim)
        self.compiled = compile
        self._layer = compiled_layer_forward() if compile else layer_forward

    def rotary(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """cos, sin (float32) for integer `positions` (any shape), with a trailing head_dim axis."""
        freqs = positions.float()[..., None] * self.inv_freq
        emb = torch.cat([freqs, freqs], dim=-1)
        return emb.cos() * self.rope_scaling, emb.sin() * self.rope_scaling

    def forward(
        self,
        ids: torch.Tensor,
        start: int = 0,
        past: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
        mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
        """Hidden states (B, T, hidden; float32, before the final norm) of `ids` (B, T) at positions start..start+T-1,
        and each layer's (k, v) of these positions. With `past` (per layer (k, v), (B, kv_heads, P, head_dim)) the
        tokens attend to it as `mask` allows; without, causally to each other."""
        cos, sin = self.rotary(torch.arange(start, start + ids.shape[1]))
        x = self.embed[ids]
        kv = []
        with torch.no_grad():
            for i, w in enumerate(self.layers):
                pk, pv = past[i] if past is not None else (None, None)
                x, k, v = self._layer(x, cos, sin, pk, pv, mask, w, self.heads, self.kv_heads, self.eps)
                kv.append((k, v))
        return x, kv

    def forward_cached(
        self, ids: torch.Tensor, positions: torch.Tensor, caches: KVList, start: int, mask
    ) -> torch.Tensor:
        """Hidden states of `ids` (B, T) at `positions` (B, T) for generation: keys and values go into `caches`
        (per layer, see cached_layer_forward) at slots start..start+T-1."""
        cos, sin = self.rotary(positions[:, None, :])
        x = self.embed[ids]
        with torch.no_grad():
            for (k, v), w in zip(caches, self.layers):
                x = cached_layer_forward(x, cos, sin, k, v, start, mask, w, self.heads, self.kv_heads, self.eps)
        return x

    def final_norm(self, hidden: torch.Tensor) -> torch.Tensor:
        """The final norm (float32) the head reads, on hidden states (..., hidden): row-wise."""
        return _rms(hidden, self.norm, self.eps)

    def logits(self, hidden: torch.Tensor, token_ids: list[int] | None = None) -> torch.Tensor:
        """Final norm and head (float32) on hidden states (..., hidden): all tokens, or only `token_ids`."""
        head = self.head if token_ids is None else self.head[token_ids]
        return self.final_norm(hidden) @ head.T
