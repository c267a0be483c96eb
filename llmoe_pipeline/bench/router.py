"""Router throughput: the default labelling path against float32 vLLM and naive one-prompt-at-a-time `generate`.

    llmoe bench router [--n 256] [--rounds 3] [--paths ...] [--format table|json]
    python -m llmoe_pipeline.bench.router ...

Same model, same n real windows (evenly spread over the reference data's AAPL and MSFT windows), same prompts.
Each path runs in its own process, loaded once (start-up and warm-up reported apart), then the paths take turns
(A B C A B C ..., `--rounds` times) so that a busy spell of a shared machine hits every path alike; the table
shows each path's median and its ratio to the naive path and to float32 vLLM (ratio of medians). The naive path
(chat template, `generate` 16 tokens, parse the word) runs on the first `--naive-n` windows only; rates compare.

Only the result goes to stdout (the table or the JSON object); progress and every library's log lines go to stderr.
Also printed: each path's kernel family as detected here (llmoe_pipeline/core/cpu.py), useful FLOP/s against the
machine's peaks for its microarchitecture (bench/machine.py: formulas there) and batch invariance:
the max |Δp| of each batched path between its first timed run (all n windows in one call) and the same windows
again, shuffled, in calls of 1, 7 and 64 windows.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

from llmoe_pipeline.bench.machine import microarchitecture, model_shape, peak_formula, peaks_gflops, window_flops
from llmoe_pipeline.bench.paths import (
    FP32_VLLM_PATH,
    NAIVE_PATH,
    PATHS,
    Worker,
    default_path_name,
    describe_path,
    path_kernel_family,
)
from llmoe_pipeline.core.cpu import cpu_info, cuda_capability
from llmoe_pipeline.core.files import write_text_atomic
from llmoe_pipeline.core.paths import default_data_dir
from llmoe_pipeline.data import daily_news, load_headlines, load_prices
from llmoe_pipeline.features.windows import build_features
from llmoe_pipeline.router.model import DEFAULT_MODEL, resolve_model
from llmoe_pipeline.router.prompt import build_prompts

INVARIANCE_CHUNKS = (1, 7, 64)  # the second batching: shuffled windows in calls of these sizes


def bench_windows(n: int, tickers: tuple[str, ...] = ("AAPL", "MSFT")) -> pd.DataFrame:
    """n real windows, evenly spaced over all windows of `tickers` (both news-rich and sparse periods)."""
    data = default_data_dir()
    prices = load_prices(data / "prices.csv", tickers=list(tickers))
    headlines = load_headlines(data / "headlines.csv", tickers=list(tickers))
    prompts = build_prompts(build_features(prices), daily_news(headlines, prices))
    idx = np.linspace(0, len(prompts) - 1, num=min(n, len(prompts))).round().astype(int)
    return prompts.iloc[idx].reset_index(drop=True)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send whatever is written to stdout meanwhile to stderr, at the file descriptor: vLLM's log lines, the worker
    processes' (they inherit it) and C libraries' prints, so that stdout carries the result alone."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        with contextlib.redirect_stdout(sys.stderr):  # a replaced sys.stdout (pytest's) does not write to fd 1
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def invariance_chunks(n: int, seed: int = 0) -> list[list[int]]:
    order = np.random.default_rng(seed).permutation(n).tolist()
    chunks, start = [], 0
    for size in INVARIANCE_CHUNKS:
        if start < n:
            chunks.append(order[start : start + size])
            start += size
    return chunks


def token_counts(model: str, prompts: list[str]) -> list[int]:
    from transformers import AutoTokenizer

    from llmoe_pipeline.router.backends import chat_token_ids

    tokenizer = AutoTokenizer.from_pretrained(resolve_model(model).path, local_files_only=True)
    return [len(chat_token_ids(tokenizer, q)) for q in prompts]


def run_bench(n: int, rounds: int, paths: list[str], model: str, naive_n: int) -> dict[str, Any]:

    windows = bench_windows(n)
    prompts = windows["prompt"].tolist()
    tokens = token_counts(model, prompts)
    shape = model_shape(resolve_model(model).path)
    info = {**cpu_info(), "cuda_capability": cuda_capability()}
    log(f"{len(prompts)} windows ({np.mean(tokens):.0f} tokens on average), model {model}; paths {', '.join(paths)}")
    workers: dict[str, Worker] = {}
    timings: dict[str, list[dict]] = {name: [] for name in paths}
    try:
        for name in paths:  # one at a time: a start-up (compilation) must not slow another path's
            subset = prompts[:naive_n] if PATHS[name].kind == "naive" else prompts
            workers[name] = Worker(PATHS[name], model, subset)
            log(f"{name}: ready in {workers[name].startup_s:.1f} s")
        for r in range(rounds):
            for name in paths:
                timings[name].append(workers[name].call("run"))
                t = timings[name][-1]
                log(f"round {r + 1}/{rounds} {name}: {t['seconds']:.1f} s")
        invariance = {}
        chunks = invariance_chunks(len(prompts))
        for name in paths:
            if PATHS[name].kind == "batched":
                again = workers[name].call("score_in_chunks", chunks)["p"]
                done = ~np.isnan(again)
                invariance[name] = float(np.abs(again[done] - timings[name][0]["p"][done]).max())
    finally:
        for w in workers.values():
            w.close()
    return _summary(paths, workers, timings, invariance, tokens, naive_n, shape, info, model, rounds)


def _summary(paths, workers, timings, invariance, tokens, naive_n, shape, info, model, rounds) -> dict[str, Any]:
    rows = []
    for name in paths:
        spec, runs = PATHS[name], timings[name]
        count = naive_n if spec.kind == "naive" else len(tokens)
        counted = tokens[:count]
        rates = [count / t["seconds"] for t in runs]
        seconds = float(np.median([t["seconds"] for t in runs]))
        generated = float(np.median([t["generated_tokens"] for t in runs]))
        decode = 2.0 * shape["layers"] * shape["matmul_params"] * generated  # generated tokens, one at a time
        flops = sum(window_flops(shape, k) for k in counted) + decode
        family = path_kernel_family(spec, info["flags"], info.get("cuda_capability"))
        row = {
            "name": name,
            "description": describe_path(spec, family),
            "kernel_family": family,
            "windows": count,
            "startup_s": round(workers[name].startup_s, 1),
            "windows_per_s": [round(x, 3) for x in rates],
            "windows_per_s_median": round(float(np.median(rates)), 3),
            "tokens_per_s_median": round((sum(counted) + generated) / seconds, 1),
            "useful_gflops_per_s": round(flops / seconds / 1e9, 1),
            "invariance_max_abs_dp": invariance.get(name),
        }
        if spec.kind == "naive":
            row["answered_with_a_label"] = float(np.median([t["answered_with_a_label"] for t in runs]))
        rows.append(row)
    by_name = {r["name"]: r for r in rows}
    for r in rows:
        for key, ref in (("x_naive", NAIVE_PATH), ("x_fp32_vllm", FP32_VLLM_PATH)):
            base = by_name[ref]["windows_per_s_median"] if ref in by_name else None
            r[key] = round(r["windows_per_s_median"] / base, 2) if base else None
    default = default_path_name()
    peaks = peaks_gflops(info)
    return {
        "n": len(tokens),
        "mean_tokens": round(float(np.mean(tokens)), 1),
        "model": model,
        "rounds": rounds,
        "paths": rows,
        "default_path": default,
        "fp32_vllm_path": FP32_VLLM_PATH,
        "invariance_max_abs_dp": invariance.get(default),
        "machine": {k: info[k] for k in ("cores", "ghz", "model_name")}
        | {"microarchitecture": microarchitecture(info), "load_average": list(os.getloadavg())},
        "peak_gflops": {k: round(v) for k, v in peaks.items()},
        "peak_formula": peak_formula(info),
    }


def format_table(s: dict[str, Any]) -> str:
    head = (
        f"{'path':<28} {'windows':>7} {'start s':>8} {'windows/s (median)':>19} {'rounds':>20} {'x naive':>8} "
        f"{'x fp32 vLLM':>11} {'useful GF/s':>11} {'max |dp| rebatched':>18}"
    )
    lines = [head, "-" * len(head)]
    for r in s["paths"]:
        mark = " *" if r["name"] == s["default_path"] else ""
        ratio = {k: f"{r[k]:.2f}x" if r[k] is not None else "n/a" for k in ("x_naive", "x_fp32_vllm")}
        dp = "n/a" if r["invariance_max_abs_dp"] is None else f"{r['invariance_max_abs_dp']:.2g}"
        rounds = " ".join(f"{x:.2f}" for x in r["windows_per_s"])
        lines.append(
            f"{r['name'] + mark:<28} {r['windows']:>7} {r['startup_s']:>8.1f} {r['windows_per_s_median']:>19.2f} "
            f"{rounds:>20} {ratio['x_naive']:>8} {ratio['x_fp32_vllm']:>11} {r['useful_gflops_per_s']:>11.0f} {dp:>18}"
        )
    m, peaks = s["machine"], s["peak_gflops"]
    lines += [
        f"* default path ({s['default_path']}); {s['n']} windows, {s['mean_tokens']} tokens on average; "
        f"{s['rounds']} rounds, interleaved",
        f"machine: {m['cores']} cores at {m['ghz']} GHz ({m['model_name']}, {m['microarchitecture']}), "
        f"load average {m['load_average']}",
        "peak GFLOP/s: " + ", ".join(f"{k} {v:,}" for k, v in peaks.items()) + f" ({s['peak_formula']})",
        f"invariance (default path, max |dp| between two batchings): {s['invariance_max_abs_dp']}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=256, help="windows for the batched paths")
    ap.add_argument("--naive-n", type=int, default=32, help="windows for the naive path (its first ones)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (at least 1; 3 for the README)")
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument(
        "--paths", default="", help=f"comma-separated, of {', '.join(PATHS)} (default: the default, fp32 vLLM, naive)"
    )
    ap.add_argument("--skip", default="", help="comma-separated paths to leave out (e.g. naive-float32)")
    ap.add_argument("--format", choices=["table", "json"], default="table")
    ap.add_argument("--json", default=None, help="also write the JSON summary to this file")
    args = ap.parse_args(argv)
    paths = [p for p in args.paths.split(",") if p] or [default_path_name(), FP32_VLLM_PATH, NAIVE_PATH]
    paths = list(dict.fromkeys(p for p in paths if p not in set(args.skip.split(","))))
    unknown = [p for p in paths if p not in PATHS]
    if unknown or args.rounds < 1 or not paths:
        ap.error(f"unknown paths {unknown} (known: {', '.join(PATHS)})" if unknown else "need a path and rounds >= 1")
    with stdout_to_stderr():
        summary = run_bench(args.n, args.rounds, paths, args.model, args.naive_n)
    print(json.dumps(summary, indent=2) if args.format == "json" else format_table(summary))
    if args.json:
        write_text_atomic(json.dumps(summary, indent=2), args.json)
    return 0


if __name__ == "__main__":  # worker processes start with spawn: keep this guard
    sys.exit(main())
