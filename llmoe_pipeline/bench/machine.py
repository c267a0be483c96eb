"""The machine's peak arithmetic rates, from its CPU flags and clock, and the model's FLOPs per window.

Peaks (per core per cycle, then × cores × GHz):
- AVX-512 float32: 2 FMA units × 16 lanes × 2 flops (multiply + add) = 64 (Xeon Scalable parts with AVX-512 have
  two 512-bit FMA units; one-unit parts have half);
- AVX-512 BF16 (vdpbf16ps): 2 units × 32 bf16 pairs × 2 = 128;
- AMX BF16: 1024 (Intel: 4th-gen Xeon "1024 BF16 operations per cycle per core": one 16×16×32 tile multiply,
  8,192 multiply-adds, every 16 cycles); AMX INT8: 2048.
Clock: the highest "cpu MHz" in /proc/cpuinfo (a VM reports the nominal clock; turbo can run above it, so a
measured rate can exceed the printed peak by that margin). Cores: those this process may run on.

FLOPs of a window of n tokens (what any implementation must compute, "useful"): 2 × (matrix-multiply parameters
of the layers) × n for the projections, plus 2 × layers × heads × head_dim × n² for causal attention (QKᵀ and PV,
each n²/2 × head_dim multiply-adds per head); the head's one answer row is negligible. A path that reuses work
(a prefix cache) does fewer FLOPs than this, so its "useful FLOP/s" can exceed what the cores computed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

PER_CYCLE_PER_CORE = {"fp32_avx512": 64, "bf16_avx512": 128, "bf16_amx": 1024, "int8_amx": 2048}
FLAGS_NEEDED = {"fp32_avx512": "avx512f", "bf16_avx512": "avx512_bf16", "bf16_amx": "amx_bf16", "int8_amx": "amx_int8"}


def cpu_info(path: str = "/proc/cpuinfo") -> dict:
    """Cores usable by this process, the clock (GHz, highest reported), the CPU flags and the model name."""
    flags: set[str] = set()
    mhz, name = 0.0, ""
    try:
        for line in Path(path).read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "flags":
                flags |= set(value.split())
            elif key == "cpu MHz":
                mhz = max(mhz, float(value))
            elif key == "model name":
                name = value.strip()
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return {"cores": cores, "ghz": round(mhz / 1000, 3), "flags": sorted(flags), "model_name": name}


def peaks_gflops(info: dict) -> dict[str, float]:
    """Peak GFLOP/s of each unit the CPU has: per_cycle_per_core × cores × GHz."""
    flags = set(info["flags"])
    return {
        unit: per_cycle * info["cores"] * info["ghz"]
        for unit, per_cycle in PER_CYCLE_PER_CORE.items()
        if FLAGS_NEEDED[unit] in flags
    }


def model_shape(model_path: str | os.PathLike) -> dict:
    """Layers, heads, head_dim and matrix-multiply parameters per layer, from config.json."""
    c = json.loads((Path(model_path) / "config.json").read_text(encoding="utf-8"))
    heads = int(c["num_attention_heads"])
    kv_heads = int(c.get("num_key_value_heads") or heads)
    hidden = int(c["hidden_size"])
    head_dim = int(c.get("head_dim") or hidden // heads)
    per_layer = hidden * head_dim * (2 * heads + 2 * kv_heads) + 3 * hidden * int(c["intermediate_size"])
    return {"layers": int(c["num_hidden_layers"]), "heads": heads, "head_dim": head_dim, "matmul_params": per_layer}


def window_flops(shape: dict, n_tokens: int) -> float:
    """Useful FLOPs of one forward pass over `n_tokens` (see the module docstring)."""
    projections = 2.0 * shape["layers"] * shape["matmul_params"] * n_tokens
    attention = 2.0 * shape["layers"] * shape["heads"] * shape["head_dim"] * n_tokens**2
    return projections + attention
