"""Labelling many tickers: today's per-ticker in-process engine against the cluster's one shared `vllm serve`.

    python -m llmoe_pipeline.cluster.bench --tickers GE,JNJ,XOM|all [--windows N] [--clients 2] [--json out.json]
        [--config llmoe_pipeline/configs/all_tickers_recent.yaml]

Both paths label the same windows (the config's train/validation/test windows of each ticker, explanations where
the config asks for them) into an empty label cache, so every window reaches a model:
- in-process (what `llmoe run` and a run on a single machine do): per ticker, load the offline vLLM engine
  (`vllm` backend, the server's engine and precision), label the ticker, close it; the load is paid once per
  ticker; and the same with this machine's default path (`in_process_default`: on an AMX CPU, bfloat16 in plain
  torch, other labels than float32);
- shared server (what the cluster does): the running cluster's `vllm serve` (`make cluster-up` first; its base URL
  is read from `$LLMOE_HOME/cluster/config.yaml`), `--clients` tickers labelled at once through the `openai`
  backend, as concurrent runs do; no model load per ticker.
Run it on an idle machine (both paths use every core).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from llmoe_pipeline.cluster.layout import ClusterLayout
from llmoe_pipeline.config.settings import load_settings
from llmoe_pipeline.core.paths import llmoe_home
from llmoe_pipeline.data import load_headlines, load_prices
from llmoe_pipeline.features.windows import build_features
from llmoe_pipeline.router.cache import LabelCache
from llmoe_pipeline.router.labels import label_windows
from llmoe_pipeline.router.prompt import configured_prompts


def ticker_prompts(settings, ticker: str):
    """The ticker's train/validation/test window prompts, and which of them the config explains."""

    cfg = settings.protocol
    # As raw_prices and raw_headlines read them: every configured file at once (a ticker may be in one file only).
    tz = cfg.data.exchange_timezone
    prices = load_prices(cfg.data.price_paths(), tickers=[ticker], exchange_timezone=tz)
    headlines = load_headlines(cfg.data.headline_paths(), exchange_timezone=tz)
    headlines = headlines[headlines["ticker"] == ticker].reset_index(drop=True)
    windows = build_features(prices, cfg.split)
    return configured_prompts(windows[windows["split"].isin(["train", "validation", "test"])], headlines, prices, cfg)


def _subset(prompts, explain, n: int | None):
    if not n or n >= len(prompts):
        return prompts, explain
    import numpy as np

    keep = np.linspace(0, len(prompts) - 1, n).round().astype(int)
    return prompts.iloc[keep].reset_index(drop=True), explain[keep]


def label(prompts, explain, spec, batch_size: int) -> tuple[int, float]:

    with tempfile.TemporaryDirectory() as tmp, LabelCache(Path(tmp) / "cache.sqlite") as cache:
        started = time.perf_counter()
        out = label_windows(prompts, spec, cache, explain_mask=explain, batch_size=batch_size)
        return int((~out["from_cache"]).sum()), time.perf_counter() - started


class _Loaded:
    """A loaded backend as `label_windows`' factory (it asks for the model id, then calls it)."""

    def __init__(self, backend):
        self.backend, self.model_id = backend, backend.model_id

    def __call__(self):
        return self.backend


def in_process(settings, work: dict, home: Path, backend_name: str | None) -> dict:
    """Per ticker: load `backend_name` (None: this machine's default path), label, close."""
    from llmoe_pipeline.router.backends import BackendSpec

    config = settings.router_backend.model_copy(update={"backend": backend_name, "base_url": None})
    per_ticker = {}
    for ticker, (prompts, explain) in work.items():
        started = time.perf_counter()
        backend = BackendSpec(config, home)()  # loads the engine, as each ticker's router_labels step does
        load_s = time.perf_counter() - started

        try:
            n, label_s = label(prompts, explain, _Loaded(backend), config.batch_size)
        finally:
            backend.close()
        per_ticker[ticker] = {"windows": n, "load_s": round(load_s, 1), "label_s": round(label_s, 1)}
    return _summary(per_ticker)


def shared_server(settings, work: dict, clients: int) -> dict:
    from llmoe_pipeline.router.backends import BackendSpec

    spec = BackendSpec(settings.router_backend)
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        futures = {t: pool.submit(label, p, e, spec, settings.router_backend.batch_size) for t, (p, e) in work.items()}
        per_ticker = {
            t: {"windows": f.result()[0], "load_s": 0.0, "label_s": round(f.result()[1], 1)} for t, f in futures.items()
        }
    return {**_summary(per_ticker), "wall_s": round(time.perf_counter() - started, 1)}


def _summary(per_ticker: dict) -> dict:
    windows = sum(v["windows"] for v in per_ticker.values())
    wall = sum(v["load_s"] + v["label_s"] for v in per_ticker.values())
    return {
        "per_ticker": per_ticker,
        "windows": windows,
        "load_s": round(sum(v["load_s"] for v in per_ticker.values()), 1),
        "wall_s": round(wall, 1),
        "windows_per_s": round(windows / wall, 2) if wall else None,
    }


def main(argv: list[str] | None = None) -> int:

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="llmoe_pipeline/configs/all_tickers_recent.yaml")
    parser.add_argument("--tickers", required=True)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument(
        "--windows", type=int, help="at most this many windows per ticker, evenly spread (default: all)"
    )
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    local = load_settings(args.config, tickers=args.tickers)
    tickers = list(local.tickers)  # "all": every ticker of the config's price files
    cluster = load_settings(ClusterLayout(llmoe_home()).config_file, tickers=",".join(tickers))
    server = cluster.model_copy(update={"protocol": local.protocol})  # the cluster's router, this protocol
    work = {}
    for ticker in tickers:
        prompts, explain = ticker_prompts(local, ticker)
        work[ticker] = _subset(prompts, explain, args.windows)
    result: dict[str, Any] = {
        "tickers": tickers,
        "windows_per_ticker": {t: len(p) for t, (p, _) in work.items()},
        "shared_server": shared_server(server, work, args.clients),
        "in_process": in_process(local, work, llmoe_home(), "vllm"),
        "in_process_default": in_process(local, work, llmoe_home(), None),
    }
    shared, own = result["shared_server"], result["in_process"]
    shared["windows_per_s"] = round(shared["windows"] / shared["wall_s"], 2)
    result["speedup"] = round(own["wall_s"] / shared["wall_s"], 2)
    result["speedup_vs_default"] = round(result["in_process_default"]["wall_s"] / shared["wall_s"], 2)
    result["model_load_saved_s"] = own["load_s"]
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
