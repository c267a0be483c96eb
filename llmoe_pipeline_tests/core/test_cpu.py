"""The kernel family of every instruction set, from CPU flags alone (no such CPU needed), and /proc/cpuinfo parsing."""

from __future__ import annotations

import os

import pytest

from llmoe_pipeline.core.cpu import cpu_info, kernel_family

HASWELL = ["sse4_2", "avx", "avx2", "fma"]
SKYLAKE_X = [*HASWELL, "avx512f", "avx512bw"]
ZEN4 = [*SKYLAKE_X, "avx512_bf16"]  # also Zen 5 and Cooper Lake
SAPPHIRE_RAPIDS = [*ZEN4, "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8"]
GRANITE_RAPIDS = [*SAPPHIRE_RAPIDS, "amx_fp16"]


@pytest.mark.parametrize(
    ("flags", "bfloat16", "float16", "float32"),
    [
        (GRANITE_RAPIDS, "amx-bf16", "amx-fp16", "avx512-fp32"),
        (SAPPHIRE_RAPIDS, "amx-bf16", "avx512-fp16", "avx512-fp32"),
        (ZEN4, "avx512-bf16", "avx512-fp32", "avx512-fp32"),
        (SKYLAKE_X, "avx512-fp32", "avx512-fp32", "avx512-fp32"),
        (HASWELL, "avx2-fp32", "avx2-fp32", "avx2-fp32"),
        (["sse4_2", "avx"], "fp32", "fp32", "fp32"),
        ([], "fp32", "fp32", "fp32"),
    ],
)
def test_the_widest_units_for_each_dtype_name_the_family(flags, bfloat16, float16, float32):
    assert kernel_family(flags, "bfloat16") == bfloat16
    assert kernel_family(flags, "float16") == float16
    assert kernel_family(flags, "float32") == float32


def test_amx_needs_its_tiles_and_a_gpu_is_named_by_its_compute_capability():
    assert kernel_family([*ZEN4, "amx_bf16"], "bfloat16") == "avx512-bf16"  # no amx_tile: the OS left AMX off
    assert kernel_family(SAPPHIRE_RAPIDS, "bfloat16", cuda_capability=(9, 0)) == "cuda-sm90"
    assert kernel_family([], "float32", cuda_capability=(8, 6)) == "cuda-sm86"


CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 17
model name\t: AMD EPYC 9654
cpu MHz\t\t: 2400.000
flags\t\t: fpu avx2 fma avx512f avx512_bf16
processor\t: 1
cpu MHz\t\t: 2600.000
"""


def test_cpu_info_reads_vendor_family_model_flags_and_the_highest_clock(tmp_path, monkeypatch):
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO)
    monkeypatch.setattr(os, "sched_getaffinity", lambda _: {0, 1, 2})
    info = cpu_info(str(path))
    assert info == {
        "cores": 3,
        "ghz": 2.6,
        "flags": ["avx2", "avx512_bf16", "avx512f", "fma", "fpu"],
        "model_name": "AMD EPYC 9654",
        "vendor": "AuthenticAMD",
        "family": 25,
        "model": 17,
    }
    assert kernel_family(info["flags"], "bfloat16") == "avx512-bf16"
    assert cpu_info(str(tmp_path / "missing"))["flags"] == []
