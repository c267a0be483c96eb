"""`llmoe-cluster` (also `python -m llmoe_pipeline.cluster`): the local cluster's commands.

    llmoe-cluster up     [--config FILE] [--tickers AAPL,MSFT] [--workers 2]   start (or fix up) every service
    llmoe-cluster run    [--config FILE] [--tickers AAPL,MSFT] [--timeout S]   `up`, then each ticker's refresh
    llmoe-cluster down                                                          stop everything, leave nothing
    llmoe-cluster status                                                        each service: running or down
    llmoe-cluster stop SERVICE / kill SERVICE                                   one service (operations, tests)

Everything lives under $LLMOE_HOME/cluster. Expected failures print one line and exit 1 (LLMOE_DEBUG=1: traceback).
"""

from __future__ import annotations

import argparse

from llmoe_pipeline.core.paths import llmoe_home


def _up(args: argparse.Namespace):
    from llmoe_pipeline.cluster.control import up

    return up(llmoe_home(), args.config, args.tickers, args.workers)


def cmd_up(args: argparse.Namespace) -> int:
    _up(args)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    import time

    from llmoe_pipeline.cluster.layout import ClusterLayout
    from llmoe_pipeline.cluster.runs import refresh
    from llmoe_pipeline.config.settings import load_settings
    from llmoe_pipeline.defs.results import StoredResults
    from llmoe_pipeline.reporting.tables import format_table, summarize

    state = _up(args)
    settings = load_settings(ClusterLayout(llmoe_home()).config_file)
    started = time.time()
    refresh(state.port("webserver"), list(settings.tickers), args.timeout)
    print(f"all {len(settings.tickers)} tickers done in {time.time() - started:.0f} s (through the cluster)")
    results = StoredResults.of(settings).backtest_results(settings.tickers)  # from the shared store
    print(format_table(summarize(results), split="test"))
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    from llmoe_pipeline.cluster.control import down

    down(llmoe_home())
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from llmoe_pipeline.cluster.control import status

    found = status(llmoe_home())
    for name, state in found.items():
        print(f"{name:12} {state}")
    if not found:
        print("no service of a cluster under this home is known")
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    from llmoe_pipeline.cluster.control import stop_service

    print(f"{args.service}: {'stopped' if stop_service(llmoe_home(), args.service) else 'was not running'}")
    return 0


def cmd_kill(args: argparse.Namespace) -> int:
    from llmoe_pipeline.cluster.layout import ClusterLayout
    from llmoe_pipeline.cluster.procs import kill

    done = kill(ClusterLayout(llmoe_home()).pid_file(args.service))
    print(f"{args.service}: {'killed' if done else 'was not running'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llmoe-cluster", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, func, text in (("up", cmd_up, "start every service (idempotent)"), ("run", cmd_run, "up, then refresh")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--config", help="pipeline config (default: the paper's protocol)")
        p.add_argument("--tickers", help="comma-separated tickers (default: the config's, AAPL,MSFT)")
        p.add_argument("--workers", type=int, default=2, help="Celery workers (default 2)")
        p.set_defaults(func=func)
        if name == "run":
            p.add_argument("--timeout", type=float, default=6 * 3600, help="seconds to wait for the refresh")
    sub.add_parser("down", help="stop every service").set_defaults(func=cmd_down)
    sub.add_parser("status", help="each service's state").set_defaults(func=cmd_status)
    for name, func in (("stop", cmd_stop), ("kill", cmd_kill)):
        p = sub.add_parser(name, help=f"{name} one service (e.g. vllm, worker1)")
        p.add_argument("service")
        p.set_defaults(func=func)
    return parser


def main(argv: list[str] | None = None) -> int:
    from llmoe_pipeline.app.cli import run_command

    return run_command("llmoe-cluster", build_parser().parse_args(argv))
