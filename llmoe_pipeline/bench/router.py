"""Router throughput: vLLM batched vs transformers batched vs naive one-prompt-at-a-time `generate`.

    python -m llmoe_pipeline.bench.router [--n 256] [--naive-n 32] [--model smollm2-135m-instruct]

Same model, same n real windows (evenly spread over the reference data's AAPL and MSFT windows), same
prompts. The batched paths score each window in one forward pass (p from the two label tokens); the naive
path is how most re-implementations call an LLM: chat template, `generate` a few tokens for one prompt at a
time, parse the word. It runs on the first `--naive-n` windows only (it is slow); its rates are rates, so
they compare directly. Start-up (engine/model load and warm-up) is reported apart from the timed run.

FLOP floor: parameters × 2 × tokens processed, the matrix-multiply work any implementation must do
(attention's extra work is ignored); "achieved" is that floor divided by the measured time.
Run it on an idle machine: on shared cores, OpenMP threads waiting for a busy core make every path
several times slower, and unevenly so.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any, get_args

import numpy as np
import pandas as pd

from llmoe_pipeline.data import daily_news, load_headlines, load_prices
from llmoe_pipeline.features import build_features
from llmoe_pipeline.io import write_text_atomic
from llmoe_pipeline.paths import default_data_dir
from llmoe_pipeline.regimes import REGIMES
from llmoe_pipeline.router.backends import DEFAULT_DTYPE, RouterBackendConfig, chat_token_ids, make_backend
from llmoe_pipeline.router.backends.config import Dtype
from llmoe_pipeline.router.model import DEFAULT_MODEL
from llmoe_pipeline.router.prompt import build_prompts


@dataclass
class PathResult:
    path: str
    prompts: int
    startup_s: float
    seconds: float
    prompt_tokens: int
    generated_tokens: int

    @property
    def prompts_per_s(self) -> float:
        return self.prompts / self.seconds

    @property
    def tokens_per_s(self) -> float:
        return (self.prompt_tokens + self.generated_tokens) / self.seconds


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


def run_batched(config: RouterBackendConfig, prompts: list[str]) -> tuple[PathResult, np.ndarray]:
    backend_name = config.backend
    started = time.perf_counter()
    backend = make_backend(config)
    try:
        backend.score(prompts[:2])  # warm-up (kernels, caches): part of start-up, not of the timed run
        startup = time.perf_counter() - started
        log(f"{backend_name}: ready in {startup:.1f} s; scoring {len(prompts)} windows")
        t0 = time.perf_counter()
        p = backend.score(prompts)
        seconds = time.perf_counter() - t0
        tokenizer = backend._tokenizer  # type: ignore[attr-defined]  # both local backends have one
        tokens = sum(len(chat_token_ids(tokenizer, q)) for q in prompts)
    finally:
        backend.close()
    return PathResult(f"{backend_name} batched", len(prompts), startup, seconds, tokens, len(prompts)), p


def run_naive(model: str, prompts: list[str], dtype: str, max_new_tokens: int) -> tuple[PathResult, float]:
    """One prompt at a time: chat template, greedy `generate`, parse the first label word in the text."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llmoe_pipeline.router.model import resolve_model
    from llmoe_pipeline.router.prompt import chat_messages

    started = time.perf_counter()
    path = resolve_model(model).path
    tokenizer: Any = AutoTokenizer.from_pretrained(path, local_files_only=True)
    lm: Any = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype), local_files_only=True).eval()
    startup = time.perf_counter() - started
    log(f"naive: ready in {startup:.1f} s; generating for {len(prompts)} windows one at a time")
    prompt_tokens = generated = parsed = 0
    t0 = time.perf_counter()
    for q in prompts:
        ids: Any = tokenizer.apply_chat_template(
            chat_messages(q), add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        with torch.inference_mode():
            out = lm.generate(
                **ids, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.eos_token_id
            )
        new = out[0, ids["input_ids"].shape[1] :]
        text = str(tokenizer.decode(new, skip_special_tokens=True))
        prompt_tokens += ids["input_ids"].shape[1]
        generated += len(new)
        parsed += int(any(label.lower() in text.lower() for label in REGIMES))
    seconds = time.perf_counter() - t0
    result = PathResult("transformers naive generate", len(prompts), startup, seconds, prompt_tokens, generated)
    return result, parsed / len(prompts)


def parameter_count(model: str) -> int:
    from safetensors import safe_open

    from llmoe_pipeline.router.model import resolve_model

    total = 0
    for f in resolve_model(model).path.glob("*.safetensors"):
        with safe_open(f, "pt") as st:
            for name in st.keys():  # noqa: SIM118 - safe_open is not a dict
                total += int(np.prod(st.get_slice(name).get_shape()))
    return total


def format_table(results: list[PathResult], params: int, naive: PathResult | None) -> str:
    head = (
        f"{'path':<28} {'prompts':>7} {'start s':>8} {'run s':>8} {'prompts/s':>10} {'tokens/s':>9} "
        f"{'x naive':>8} {'FLOP floor':>11} {'achieved':>11}"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        flops = params * 2 * (r.prompt_tokens + r.generated_tokens)
        ratio = f"{r.prompts_per_s / naive.prompts_per_s:7.1f}x" if naive else "     n/a"
        lines.append(
            f"{r.path:<28} {r.prompts:>7} {r.startup_s:>8.1f} {r.seconds:>8.1f} {r.prompts_per_s:>10.2f} "
            f"{r.tokens_per_s:>9.0f} {ratio:>8} {flops / 1e12:>8.2f} TF {flops / r.seconds / 1e9:>6.0f} GF/s"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=256, help="windows for the batched paths")
    ap.add_argument("--naive-n", type=int, default=32, help="windows for the naive path (its first ones)")
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--dtype", default=DEFAULT_DTYPE, choices=get_args(Dtype))
    ap.add_argument("--batch-size", type=int, default=32, help="transformers forward batch")
    ap.add_argument("--naive-max-new-tokens", type=int, default=16)
    ap.add_argument("--skip", default="", help="comma-separated paths to skip: vllm,transformers,naive")
    ap.add_argument("--json", default=None, help="also write the results to this file")
    args = ap.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))

    windows = bench_windows(args.n)
    prompts = windows["prompt"].tolist()
    params = parameter_count(args.model)
    log(
        f"{len(prompts)} windows, {windows['date'].min().date()} .. {windows['date'].max().date()}; "
        f"model {args.model} ({params / 1e6:.0f} M parameters), {args.dtype}"
    )
    results, extra = [], {}
    p_vllm = p_tf = None
    if "vllm" not in skip:
        r, p_vllm = run_batched(RouterBackendConfig(backend="vllm", model=args.model, dtype=args.dtype), prompts)
        results.append(r)
    if "transformers" not in skip:
        config = RouterBackendConfig(
            backend="transformers", model=args.model, dtype=args.dtype, forward_batch_size=args.batch_size
        )
        r, p_tf = run_batched(config, prompts)
        results.append(r)
    naive = None
    if "naive" not in skip:
        naive, extra["naive_answers_with_a_label_word"] = run_naive(
            args.model, prompts[: args.naive_n], args.dtype, args.naive_max_new_tokens
        )
        results.append(naive)
    if p_vllm is not None and p_tf is not None:
        extra["max_abs_p_diff_vllm_vs_transformers"] = float(np.abs(p_vllm - p_tf).max())
    print(format_table(results, params, naive))
    for key, value in extra.items():
        print(f"{key}: {value:.4g}")
    if args.json:
        payload = {
            "n": len(prompts),
            "model": args.model,
            "dtype": args.dtype,
            "parameters": params,
            "results": [
                {**asdict(r), "prompts_per_s": r.prompts_per_s, "tokens_per_s": r.tokens_per_s} for r in results
            ],
            **extra,
        }
        write_text_atomic(json.dumps(payload, indent=2), args.json)
    return 0


if __name__ == "__main__":  # vLLM may start worker processes with spawn: keep this guard
    sys.exit(main())
