"""What the CPU is and which kernel family runs the language model's matrix multiplies on it.

The kernel family names the instructions oneDNN (CPU) or CUDA picks for a dtype. Two families round differently
(bfloat16 on AMX tiles and on AVX512-BF16 gave different labels for the same prompt), so a label is reproducible
only within its family: the family is part of the label provenance and of the label cache's model id
(router.model.scoring_model_id). `kernel_family` is pure (flags in, name out), so tests cover every instruction set
on any machine; `cpu_info` reads this machine's flags.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

# The first family whose flags the CPU has, per dtype; oneDNN computes a dtype without native units in float32.
NATIVE_FAMILIES: dict[str, tuple[tuple[str, frozenset[str]], ...]] = {
    "bfloat16": (
        ("amx-bf16", frozenset({"amx_bf16", "amx_tile"})),
        ("avx512-bf16", frozenset({"avx512_bf16"})),
    ),
    "float16": (
        ("amx-fp16", frozenset({"amx_fp16", "amx_tile"})),
        ("avx512-fp16", frozenset({"avx512_fp16"})),
    ),
}
FP32_FAMILIES = (
    ("avx512-fp32", frozenset({"avx512f"})),
    ("avx2-fp32", frozenset({"avx2", "fma"})),
)
PLAIN_FP32 = "fp32"
NATIVE_BF16 = {family for family, _ in NATIVE_FAMILIES["bfloat16"]}


def kernel_family(flags: Iterable[str], dtype: str, cuda_capability: tuple[int, int] | None = None) -> str:
    """The kernel family that runs `dtype` matrix multiplies: on a GPU its compute capability (`cuda-sm90`), on a
    CPU the widest units its `flags` (/proc/cpuinfo names) have for that dtype (`amx-bf16`, `avx512-bf16`,
    `avx512-fp32`, `avx2-fp32`, `fp32`)."""
    if cuda_capability is not None:
        major, minor = cuda_capability
        return f"cuda-sm{major}{minor}"
    available = set(flags)
    for family, needed in (*NATIVE_FAMILIES.get(dtype, ()), *FP32_FAMILIES):
        if needed <= available:
            return family
    return PLAIN_FP32


def cpu_info(path: str = "/proc/cpuinfo") -> dict:
    """Cores usable by this process, the clock (GHz, highest reported), the CPU flags, the model name, and the
    vendor, family and model numbers that tell microarchitectures apart."""
    info: dict = {"flags": set(), "mhz": 0.0, "model_name": "", "vendor": "", "family": 0, "model": 0}
    try:
        for line in Path(path).read_text().splitlines():
            key, _, value = line.partition(":")
            _read_cpuinfo_field(info, key.strip(), value.strip())
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    flags, mhz = sorted(info.pop("flags")), info.pop("mhz")
    return {"cores": cores, "ghz": round(mhz / 1000, 3), "flags": flags, **info}


def _read_cpuinfo_field(info: dict, key: str, value: str) -> None:
    if key == "flags":
        info["flags"] |= set(value.split())
    elif key == "cpu MHz":
        info["mhz"] = max(info["mhz"], float(value))
    elif key == "model name":
        info["model_name"] = value
    elif key == "vendor_id":
        info["vendor"] = value
    elif key in ("cpu family", "model") and value.isdigit():
        info["family" if key == "cpu family" else "model"] = int(value)


def cuda_capability() -> tuple[int, int] | None:
    """The first GPU's compute capability, or None without CUDA."""
    import torch

    if not torch.cuda.is_available():
        return None
    major, minor = torch.cuda.get_device_capability(0)
    return major, minor


def this_machine_kernel_family(dtype: str, on_gpu: bool = False) -> str:
    """`kernel_family` of this machine: its GPU when `on_gpu` (and CUDA is available), else its CPU."""
    return kernel_family(cpu_info()["flags"], dtype, cuda_capability() if on_gpu else None)
