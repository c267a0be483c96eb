"""`llmoe`: fetch the new days, run the pipeline, print the results table, benchmark the router, open the UIs.

Expected failures (a bad data file, a missing model, a port in use) print one line and exit 1;
usage errors exit 2 (argparse). Set LLMOE_DEBUG=1 for the full traceback.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from llmoe_pipeline.app.console import CliError, dagster_home, dagster_instance, quiet_libraries, root_cause
from llmoe_pipeline.config.settings import TICKERS_ENV, load_settings
from llmoe_pipeline.core.files import write_text_atomic
from llmoe_pipeline.tracking.redaction import redact_text


def _load_settings(args: argparse.Namespace, **overrides):
    """The run's settings, loaded once: defaults < --config file < the other flags."""

    tickers = args.tickers if getattr(args, "tickers", None) is not None else os.environ.get(TICKERS_ENV) or None
    return load_settings(
        getattr(args, "config", None), data_dir=getattr(args, "data_dir", None), tickers=tickers, **overrides
    )


def cmd_run(args: argparse.Namespace) -> int:
    quiet_libraries()
    settings = _load_settings(args, seeds=args.seeds, router_backend=args.router)
    from llmoe_pipeline.app.runner import run_pipeline

    print(run_pipeline(settings, dagster_instance(settings.home), log=print, jobs=args.jobs))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    settings = _load_settings(args)
    from llmoe_pipeline.defs.results import StoredResults
    from llmoe_pipeline.reporting.research import report_json, report_markdown
    from llmoe_pipeline.reporting.tables import format_table, summarize
    from llmoe_pipeline.research.across import across_text, across_tickers
    from llmoe_pipeline.research.verdict import verdict_text

    stored, tickers = StoredResults.of(settings, dagster_instance(settings.home)), list(settings.tickers)
    summary = summarize(stored.backtest_results(tickers))
    sig = settings.protocol.significance
    across = (
        across_tickers(summary, stored.daily_returns(tickers), power_gap=sig.power_gap, target_power=sig.target_power)
        if args.across
        else None
    )
    if args.format == "table" and across is not None:
        print(across_text(across))
        return 0
    if args.format == "table":
        print(format_table(summary, split=args.split))
        if args.split == "test":
            print("\n".join(verdict_text(stored.evidence(t)) for t in tickers))
        return 0
    evidence = [stored.evidence(t) for t in tickers]
    if args.format == "json":
        obj = report_json(summary, evidence) | (
            {"across": {k: v.reset_index().to_dict(orient="records") for k, v in across.items()}} if across else {}
        )
        text = json.dumps(obj, indent=2, default=str)
        if args.output:
            write_text_atomic(text + "\n", args.output)
        else:
            print(text)
        return 0
    output = Path(args.output or "llmoe_report.md")
    plots = {t: settings.home / "artifacts" / t / "plots" for t in tickers}
    print(f"wrote {report_markdown(summary, evidence, plots, output, across)} and {output.stem}_figures/")
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    from llmoe_pipeline.app.ui import run_ui

    settings = _load_settings(args)
    return run_ui(args, settings, dagster_home(settings.home))


def cmd_signals(args: argparse.Namespace) -> int:
    from llmoe_pipeline.trading.signals import format_signals, read_history, signals_json

    settings = _load_settings(args)
    history = read_history(settings.home / "signals", list(settings.tickers), last=args.history)
    print(json.dumps(signals_json(history), indent=2) if args.format == "json" else format_signals(history))
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    """New sessions and headlines into data.updates_dir; exit 1 when a due session is missing, a provider's adjusted
    history changed or a headline provider failed (each named on its own line)."""
    from llmoe_pipeline.connectors.fetch import fetch
    from llmoe_pipeline.connectors.providers import build_providers

    settings = _load_settings(args)
    if not settings.fetch.enabled:
        raise CliError("no providers configured: set fetch.prices and/or fetch.headlines in the --config file")
    since = None
    if args.since:
        try:
            since = dt.date.fromisoformat(args.since)
        except ValueError:
            raise CliError(f"--since {args.since!r}: give a date as YYYY-MM-DD") from None
    data = settings.protocol.data
    prices, headlines = build_providers(settings.fetch, data.exchange_timezone)
    report = fetch(data, settings.fetch, list(settings.tickers), prices, headlines, since=since, rebase=args.rebase)
    print("\n".join(report.lines()) or "nothing new: every due session and headline day is stored")
    if not report.ok:
        more = len(report.problems) - 1
        raise CliError(report.problems[0] + (f" (and {more} more problem(s) above)" if more else ""))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from llmoe_pipeline.bench.router import main as bench_main

    argv = ["--n", str(args.n), "--rounds", str(args.rounds), "--format", args.format]
    argv += (["--paths", args.paths] if args.paths else []) + (["--skip", "naive-float32"] if args.skip_naive else [])
    return bench_main(argv)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llmoe", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", help="YAML config file (see llmoe_pipeline/configs/paper.yaml)")
        p.add_argument(
            "--data-dir", help="folder with prices.csv/headlines.csv (default: $LLMOE_DATA_DIR or ../shared/data)"
        )
        p.add_argument(
            "--tickers",
            help="comma-separated tickers, or 'all' for every ticker in the price files "
            "(default: the config's, AAPL,MSFT)",
        )

    run = sub.add_parser(
        "run", help="materialize every asset for every ticker (same storage as the UI) and print the results table"
    )
    common(run)
    run.add_argument("--seeds", type=int, help="number of seeds (default: the config's, 10)")
    run.add_argument(
        "--router",
        choices=["vllm", "transformers", "openai"],
        help="router backend (default: transformers on a CPU, vllm on a GPU)",
    )
    run.add_argument(
        "--jobs",
        type=int,
        help="tickers refreshed at once, each in its own process (default: one per core); results do not depend on it",
    )
    run.set_defaults(func=cmd_run)

    report = sub.add_parser(
        "report",
        help="the results table and the verdict per ticker, the same as JSON, or a "
        "Markdown research report with tables and figures",
    )
    common(report)
    report.add_argument("--format", choices=["table", "json", "md"], default="table")
    report.add_argument("--output", help="file to write (json, md; md defaults to llmoe_report.md)")
    report.add_argument(
        "--across",
        action="store_true",
        help="the verdict across the tickers: win shares, paired tests, SPA/MCS on the pooled book",
    )
    report.add_argument("--split", choices=["test", "validation"], default="test")
    report.set_defaults(func=cmd_report)

    fetch = sub.add_parser(
        "fetch",
        help="bring the sessions missing since the last stored day (prices) and their headlines from the providers "
        "in the config's fetch: section, as new dated files in data.updates_dir",
    )
    common(fetch)
    fetch.add_argument("--since", help="first day to fetch (YYYY-MM-DD; needed for a ticker with no stored prices)")
    fetch.add_argument(
        "--rebase",
        action="store_true",
        help="when a provider's adjusted history changed (split, dividend): write its whole history as a new file set",
    )
    fetch.set_defaults(func=cmd_fetch)

    bench = sub.add_parser("bench", help="benchmarks")
    bench_sub = bench.add_subparsers(dest="bench", required=True)
    router = bench_sub.add_parser(
        "router", help="the default labelling path vs float32 vLLM vs naive one-prompt-at-a-time, interleaved rounds"
    )
    router.add_argument("--n", type=int, default=256, help="number of real windows (default 256)")
    router.add_argument("--rounds", type=int, default=3, help="interleaved rounds per path (default 3)")
    router.add_argument("--paths", default="", help="comma-separated paths (default: the default, vllm-float32, naive)")
    router.add_argument("--skip-naive", action="store_true", help="skip the slow naive baseline")
    router.add_argument("--format", choices=["table", "json"], default="table")
    router.set_defaults(func=cmd_bench)

    ui = sub.add_parser("ui", help="start the Dagster UI (webserver + daemon) and the MLflow UI on 127.0.0.1")
    common(ui)
    ui.add_argument("--port", type=int, default=3000)
    ui.add_argument("--mlflow-port", type=int, default=5000)
    ui.set_defaults(func=cmd_ui)

    signals = sub.add_parser(
        "signals",
        help="the latest trading signal per ticker (or the last N): position for "
        "the next session, regime, p_optimistic, P(up), explanation",
    )
    common(signals)
    signals.add_argument("--format", choices=["table", "json"], default="table")
    signals.add_argument("--history", type=int, default=1, metavar="N", help="the last N signals per ticker")
    signals.set_defaults(func=cmd_signals)
    return parser


def run_command(prog: str, args: argparse.Namespace, describe: Callable[[BaseException], str] = str) -> int:
    """`args.func(args)`; an exception is one line on stderr (`describe`d, redacted) and exit code 1, or the
    traceback with LLMOE_DEBUG=1."""
    try:
        return args.func(args)
    except Exception as exc:
        if os.environ.get("LLMOE_DEBUG"):
            raise

        cause = " ".join(redact_text(describe(exc)).split())  # one line, no secrets (URLs in messages)
        print(f"{prog} {args.command}: error: {cause}", file=sys.stderr)
        return 1


def main(argv: list[str] | None = None) -> int:
    return run_command("llmoe", build_parser().parse_args(argv), root_cause)


if __name__ == "__main__":
    sys.exit(main())
