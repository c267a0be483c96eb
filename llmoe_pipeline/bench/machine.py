"""The machine's peak arithmetic rates, from its CPU flags, microarchitecture and clock (`core.cpu.cpu_info`),
and the model's FLOPs per window.

Peaks (per core per cycle, then × cores × GHz), on CPUs that execute 512-bit instructions on 512-bit units
(Intel Xeon Scalable with two FMA units, AMD Zen 5 server and desktop parts):
- AVX2 float32: 2 FMA units × 8 lanes × 2 flops (multiply + add) = 32;
- AVX-512 float32: 2 FMA units × 16 lanes × 2 = 64 (one-unit Xeon parts have half);
- AVX-512 BF16 (vdpbf16ps): 2 units × 32 bf16 pairs × 2 = 128;
- AMX BF16 (Sapphire Rapids and later): 1024 (Intel: 4th-gen Xeon "1024 BF16 operations per cycle per core": one
  16×16×32 tile multiply, 8,192 multiply-adds, every 16 cycles); AMX INT8: 2048.
AMD Zen 4 (family 25) and Zen 5 mobile parts run a 512-bit instruction as two halves on 256-bit units: half the
AVX-512 rates above (AVX2's are unchanged).
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

# unit: (flops per core per cycle on full-width units, the CPU flags it needs)
UNITS: dict[str, tuple[int, frozenset[str]]] = {
    "fp32_avx2": (32, frozenset({"avx2", "fma"})),
    "fp32_avx512": (64, frozenset({"avx512f"})),
    "bf16_avx512": (128, frozenset({"avx512_bf16"})),
    "bf16_amx": (1024, frozenset({"amx_bf16", "amx_tile"})),
    "int8_amx": (2048, frozenset({"amx_int8", "amx_tile"})),
}
AVX512_UNITS = ("fp32_avx512", "bf16_avx512")  # halved where 512-bit instructions run on 256-bit units
AMD = "AuthenticAMD"
ZEN4_FAMILY, ZEN5_FAMILY = 25, 26  # /proc/cpuinfo "cpu family" (0x19, 0x1A); Zen 3 (also 25) has no AVX-512
ZEN5_MOBILE_MODELS = (range(0x20, 0x30), range(0x60, 0x70))  # Strix Point, Krackan Point: 256-bit datapaths


def microarchitecture(info: dict) -> str:
    """The microarchitecture as far as it changes the peaks: `zen4`, `zen5`, `zen5-mobile`, or the vendor."""
    if info.get("vendor") != AMD:
        return "intel" if info.get("vendor") == "GenuineIntel" else "other"
    if info.get("family") == ZEN5_FAMILY:
        return "zen5-mobile" if any(info.get("model") in r for r in ZEN5_MOBILE_MODELS) else "zen5"
    return "zen4" if info.get("family") == ZEN4_FAMILY else "amd"


def avx512_width_bits(info: dict) -> int:
    """The datapath width 512-bit instructions run on: 256 on Zen 4 and Zen 5 mobile (double-pumped), else 512."""
    return 256 if microarchitecture(info) in ("zen4", "zen5-mobile") else 512


def per_cycle_per_core(info: dict) -> dict[str, float]:
    """Flops per core per cycle of each unit the CPU has (its flags), on its microarchitecture."""
    flags, halve = set(info["flags"]), avx512_width_bits(info) == 256
    return {
        unit: flops / 2 if halve and unit in AVX512_UNITS else flops
        for unit, (flops, needed) in UNITS.items()
        if needed <= flags
    }


def peaks_gflops(info: dict) -> dict[str, float]:
    """Peak GFLOP/s of each unit the CPU has: per_cycle_per_core × cores × GHz."""
    return {unit: per_cycle * info["cores"] * info["ghz"] for unit, per_cycle in per_cycle_per_core(info).items()}


def peak_formula(info: dict) -> str:
    """How `peaks_gflops` came about, for the bench's output."""
    rates = ", ".join(f"{unit} {flops:g}" for unit, flops in per_cycle_per_core(info).items())
    units = f"{microarchitecture(info)}, {avx512_width_bits(info)}-bit AVX-512 units"
    return f"per core per cycle x cores x GHz ({units}): {rates}"


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
