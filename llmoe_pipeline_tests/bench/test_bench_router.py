"""`llmoe bench router`: interleaved rounds, medians and ratios against naive and float32 vLLM, the machine's peaks,
and the batch-invariance check; the JSON contract (`--format json`). The arithmetic is tested on synthetic
timings; one real run (a few windows, two rounds, every default path) checks the whole command."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from llmoe_pipeline.bench import router as bench_router
from llmoe_pipeline.bench.machine import microarchitecture, model_shape, peak_formula, peaks_gflops, window_flops
from llmoe_pipeline.bench.paths import (
    FP32_VLLM_PATH,
    NAIVE_PATH,
    PATHS,
    default_path_name,
    describe_path,
    path_kernel_family,
)
from llmoe_pipeline.bench.router import _summary, format_table, invariance_chunks
from llmoe_pipeline.core.cpu import cpu_info
from llmoe_pipeline.core.paths import REPO_ROOT

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 143
model name\t: Some Xeon
cpu MHz\t\t: 2600.000
flags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile amx_int8
processor\t: 1
cpu MHz\t\t: 2500.000
"""


def test_peaks_follow_the_documented_formula(tmp_path, monkeypatch):
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO)
    monkeypatch.setattr(os, "sched_getaffinity", lambda _: {0, 1})
    info = cpu_info(str(path))
    assert (info["cores"], info["ghz"], info["model_name"]) == (2, 2.6, "Some Xeon")
    peaks = peaks_gflops(info)
    # per core per cycle x cores x GHz: AVX-512 fp32 2 FMA x 16 lanes x 2 = 64, AMX bf16 1024 (Intel), int8 2048
    assert peaks == pytest.approx(
        {"fp32_avx512": 64 * 2 * 2.6, "bf16_avx512": 128 * 2 * 2.6, "bf16_amx": 1024 * 2 * 2.6, "int8_amx": 2048 * 5.2}
    )
    assert "bf16_amx" not in peaks_gflops({**info, "flags": ["avx512f"]})


AVX2 = ["avx2", "fma"]
AVX512_BF16 = [*AVX2, "avx512f", "avx512_bf16"]
AMX = [*AVX512_BF16, "amx_tile", "amx_bf16", "amx_int8"]


@pytest.mark.parametrize(
    ("vendor", "family", "model", "flags", "arch", "per_cycle"),
    [
        # Sapphire Rapids: two 512-bit FMA units and AMX
        (
            "GenuineIntel",
            6,
            143,
            AMX,
            "intel",
            {"fp32_avx2": 32, "fp32_avx512": 64, "bf16_avx512": 128} | {"bf16_amx": 1024, "int8_amx": 2048},
        ),
        # Zen 4 (EPYC 9004): AVX-512 on 256-bit units, half the per-cycle rate; AVX2 unchanged
        ("AuthenticAMD", 25, 17, AVX512_BF16, "zen4", {"fp32_avx2": 32, "fp32_avx512": 32, "bf16_avx512": 64}),
        # Zen 5 EPYC 9005 (Turin, model 2): full 512-bit units
        ("AuthenticAMD", 26, 2, AVX512_BF16, "zen5", {"fp32_avx2": 32, "fp32_avx512": 64, "bf16_avx512": 128}),
        # Zen 5 mobile (Strix Point, model 0x24): 256-bit units again
        ("AuthenticAMD", 26, 0x24, AVX512_BF16, "zen5-mobile", {"fp32_avx2": 32, "fp32_avx512": 32, "bf16_avx512": 64}),
        # Zen 3: family 25 without AVX-512
        ("AuthenticAMD", 25, 1, AVX2, "zen4", {"fp32_avx2": 32}),
    ],
)
def test_peaks_per_microarchitecture(vendor, family, model, flags, arch, per_cycle):
    info = {"cores": 2, "ghz": 2.5, "flags": flags, "vendor": vendor, "family": family, "model": model}
    assert microarchitecture(info) == arch
    assert peaks_gflops(info) == pytest.approx({unit: flops * 2 * 2.5 for unit, flops in per_cycle.items()})
    assert peak_formula(info).startswith(f"per core per cycle x cores x GHz ({arch}, ")


@pytest.mark.parametrize(
    ("flags", "cuda", "default_path", "fp32_vllm"),
    [
        (AMX, None, "fixed shapes, amx-bf16 kernels", "vLLM, prefix cache, avx512-fp32 kernels"),
        (AVX512_BF16, None, "fixed shapes, avx512-bf16 kernels", "vLLM, prefix cache, avx512-fp32 kernels"),
        (AVX2, None, "fixed shapes, avx2-fp32 kernels", "vLLM, prefix cache, avx2-fp32 kernels"),
        (AMX, (9, 0), "fixed shapes, amx-bf16 kernels", "vLLM, prefix cache, cuda-sm90 kernels"),
    ],
)
def test_each_path_is_described_by_the_kernels_it_runs_on(flags, cuda, default_path, fp32_vllm):
    def described(name: str) -> str:
        return describe_path(PATHS[name], path_kernel_family(PATHS[name], flags, cuda))

    assert described("transformers-bfloat16") == default_path
    assert described(FP32_VLLM_PATH) == fp32_vllm
    assert "AMX" not in default_path or "amx" in flags


def test_window_flops_of_smollm2(router_model):
    shape = model_shape(router_model.path)
    # 30 layers of q (576x576), k and v (576x192 each), o (576x576), gate/up/down (576x1536): 3.54 M each.
    assert shape == {"layers": 30, "heads": 9, "head_dim": 64, "matmul_params": 3_538_944}
    flops = window_flops(shape, 360)
    assert flops == pytest.approx(2 * 30 * 3_538_944 * 360 + 2 * 30 * 9 * 64 * 360**2)
    assert 80e9 < flops < 82e9  # ~81 GFLOP per window of 360 tokens


def test_invariance_rebatching_covers_sizes_1_7_64():
    chunks = invariance_chunks(256)
    assert [len(c) for c in chunks] == [1, 7, 64]
    flat = [i for c in chunks for i in c]
    assert len(set(flat)) == 72 and flat != sorted(flat)  # distinct windows, shuffled
    assert [len(c) for c in invariance_chunks(5)] == [1, 4]


class _W:
    def __init__(self, startup):
        self.startup_s = startup


def test_summary_medians_and_ratios():
    paths = [default_path_name(), FP32_VLLM_PATH, NAIVE_PATH]
    n, naive_n = 10, 2
    timings = {
        paths[0]: [{"seconds": s, "generated_tokens": 0} for s in (1.0, 0.5, 2.0)],  # 10, 20, 5 windows/s
        paths[1]: [{"seconds": s, "generated_tokens": 0} for s in (2.0, 2.0, 4.0)],  # 5, 5, 2.5
        paths[2]: [{"seconds": s, "generated_tokens": 30} for s in (2.0, 1.0, 4.0)],  # 1, 2, 0.5
    }
    for t in timings[paths[2]]:
        t["answered_with_a_label"] = 0.5
    workers = {p: _W(3.0) for p in paths}
    info = {"cores": 2, "ghz": 2.0, "flags": ["avx512f", "amx_bf16", "amx_tile"], "model_name": "x"}
    shape = {"layers": 1, "heads": 1, "head_dim": 1, "matmul_params": 1}
    s = _summary(paths, workers, timings, {paths[0]: 0.0, paths[1]: 2e-6}, [100] * n, naive_n, shape, info, "m", 3)
    rows = {r["name"]: r for r in s["paths"]}
    assert rows[paths[0]]["windows_per_s"] == [10, 20, 5] and rows[paths[0]]["windows_per_s_median"] == 10
    assert rows[paths[0]]["x_fp32_vllm"] == 2.0 and rows[paths[0]]["x_naive"] == 10.0
    assert rows[FP32_VLLM_PATH]["x_fp32_vllm"] == 1.0 and rows[NAIVE_PATH]["x_naive"] == 1.0
    assert rows[NAIVE_PATH]["windows"] == naive_n and rows[NAIVE_PATH]["invariance_max_abs_dp"] is None
    # useful FLOPs: 10 windows x (2 x 100 + 2 x 100^2) in the median 1.0 s
    assert rows[paths[0]]["useful_gflops_per_s"] == pytest.approx(10 * (200 + 20_000) / 1e9, abs=0.1)
    assert (s["default_path"], s["fp32_vllm_path"], s["invariance_max_abs_dp"]) == (paths[0], FP32_VLLM_PATH, 0.0)
    assert s["peak_gflops"] == {"fp32_avx512": 256, "bf16_amx": 4096}
    table = format_table(s)
    assert f"{paths[0]} *" in table and "2.00x" in table and "bf16_amx 4,096" in table


def test_json_alone_on_stdout_whatever_the_paths_print(monkeypatch, capfd):
    """vLLM logs on stdout, in the bench's process and in its worker processes: all of it goes to stderr."""

    def noisy_bench(n, rounds, paths, model, naive_n):
        print("INFO vllm: engine ready")
        os.write(1, b"INFO from a C library\n")
        subprocess.run([sys.executable, "-c", "print('INFO from a worker process')"], check=True)
        return {"n": n, "rounds": rounds, "paths": [{"name": p} for p in paths]}

    monkeypatch.setattr(bench_router, "run_bench", noisy_bench)
    assert bench_router.main(["--n", "4", "--rounds", "1", "--paths", FP32_VLLM_PATH, "--format", "json"]) == 0
    out, err = capfd.readouterr()
    assert json.loads(out) == {"n": 4, "rounds": 1, "paths": [{"name": FP32_VLLM_PATH}]}
    assert err.splitlines()[-3:] == ["INFO vllm: engine ready", "INFO from a C library", "INFO from a worker process"]


def test_known_paths():
    assert {FP32_VLLM_PATH, NAIVE_PATH, "transformers-bfloat16", "transformers-float32"} <= set(PATHS)
    assert default_path_name() in PATHS


def test_cli_bench_router_json(router_model, session_home, data_dir):
    # `make bench` is `llmoe bench router`: here 8 real windows, two interleaved rounds of the three default paths.
    argv = ["bench", "router", "--n", "8", "--rounds", "2", "--format", "json"]
    env = {"LLMOE_HOME": str(session_home), "LLMOE_DATA_DIR": str(data_dir), "VLLM_LOGGING_LEVEL": "ERROR"}
    result = subprocess.run(
        [sys.executable, "-m", "llmoe_pipeline.app.cli", *argv],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, **env},
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    s = json.loads(result.stdout)
    names = [p["name"] for p in s["paths"]]
    assert names == [default_path_name(), FP32_VLLM_PATH, NAIVE_PATH] and s["rounds"] == 2 and s["n"] == 8
    rows = {p["name"]: p for p in s["paths"]}
    for p in s["paths"]:
        assert len(p["windows_per_s"]) == 2
        assert p["windows_per_s_median"] == pytest.approx(np.median(p["windows_per_s"]), abs=1e-3)
        assert p["x_naive"] > 0 and p["x_fp32_vllm"] > 0
    assert rows[NAIVE_PATH]["x_naive"] == 1.0 and rows[FP32_VLLM_PATH]["x_fp32_vllm"] == 1.0
    assert s["default_path"] == default_path_name() and s["fp32_vllm_path"] == FP32_VLLM_PATH
    assert s["invariance_max_abs_dp"] == 0.0  # the default path: bitwise the same in other batches
    assert rows[FP32_VLLM_PATH]["invariance_max_abs_dp"] < 1e-4
    assert s["peak_gflops"]["fp32_avx512"] > 0
