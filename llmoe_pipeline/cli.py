"""`llmoe`: run the pipeline, print the results table, benchmark the router, open the UIs.

Expected failures (a bad data file, a missing model, a port in use) print one line and exit 1;
usage errors exit 2 (argparse). Set LLMOE_DEBUG=1 for the full traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from llmoe_pipeline.io import write_text_atomic
from llmoe_pipeline.paths import REPO_ROOT
from llmoe_pipeline.settings import DATA_DIR_OVERRIDE_ENV


class CliError(Exception):
    """An expected failure: reported as one line, exit code 1."""


def _load_settings(args: argparse.Namespace, **overrides):
    """The run's settings, loaded once: defaults < --config file < the other flags."""
    from llmoe_pipeline.settings import TICKERS_ENV, load_settings

    tickers = args.tickers if getattr(args, "tickers", None) is not None else os.environ.get(TICKERS_ENV) or None
    return load_settings(
        getattr(args, "config", None), data_dir=getattr(args, "data_dir", None), tickers=tickers, **overrides
    )


def dagster_home(llmoe_home_dir: Path) -> Path:
    """<home>/dagster: the Dagster instance the CLI and the UI share, with this repo's dagster.yaml."""
    home = llmoe_home_dir / "dagster"
    home.mkdir(parents=True, exist_ok=True)
    src = REPO_ROOT / "dagster.yaml"
    if src.exists() and (
        not (home / "dagster.yaml").exists() or (home / "dagster.yaml").read_bytes() != src.read_bytes()
    ):
        shutil.copyfile(src, home / "dagster.yaml")
    return home


def dagster_instance(llmoe_home_dir: Path):
    import dagster as dg

    return dg.DagsterInstance.from_config(str(dagster_home(llmoe_home_dir)))


def _quiet_libraries() -> None:
    """Keep `llmoe run`'s output to its own progress lines: no progress bars from transformers, tqdm or
    vLLM's loader, no deprecation chatter from vLLM/torch imports, no C++ info warnings (NUMA binding).
    Set before the libraries are imported; a user's own settings of these variables win."""
    import logging
    import warnings

    for key, value in {
        "TQDM_DISABLE": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "TORCH_CPP_LOG_LEVEL": "ERROR",
        "VLLM_LOGGING_LEVEL": "ERROR",
        "MLFLOW_LOGGING_LEVEL": "WARNING",
    }.items():
        os.environ.setdefault(key, value)
    warnings.filterwarnings("ignore", category=FutureWarning)
    # "Triton not available" (unused on CPU): torch resets the level of its top logger on import, not this one's.
    logging.getLogger("torch._library.triton").setLevel(logging.ERROR)


def cmd_run(args: argparse.Namespace) -> int:
    _quiet_libraries()
    settings = _load_settings(args, seeds=args.seeds, router_backend=args.router)
    from llmoe_pipeline.runner import run_pipeline

    print(run_pipeline(settings, dagster_instance(settings.home), log=print))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    settings = _load_settings(args)
    from llmoe_pipeline.definitions import build_definitions
    from llmoe_pipeline.report import format_table, summarize
    from llmoe_pipeline.research_report import report_json, report_markdown
    from llmoe_pipeline.runner import load_evidence, load_results
    from llmoe_pipeline.verdict import verdict_text

    defs, instance, tickers = build_definitions(settings), dagster_instance(settings.home), list(settings.tickers)
    summary = summarize(load_results(defs, tickers, instance))
    if args.format == "table":
        print(format_table(summary, split=args.split))
        if args.split == "test":
            print("\n".join(verdict_text(load_evidence(defs, settings, t, instance)) for t in tickers))
        return 0
    evidence = [load_evidence(defs, settings, t, instance) for t in tickers]
    if args.format == "json":
        text = json.dumps(report_json(summary, evidence), indent=2, default=str)
        if args.output:
            write_text_atomic(text + "\n", args.output)
        else:
            print(text)
        return 0
    output = Path(args.output or "llmoe_report.md")
    plots = {t: settings.home / "artifacts" / t / "plots" for t in tickers}
    print(f"wrote {report_markdown(summary, evidence, plots, output)} and {output.stem}_figures/")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from llmoe_pipeline.bench.router import main as bench_main

    return bench_main(["--n", str(args.n)] + (["--skip", "naive"] if args.skip_naive else []))


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def _stop_groups(procs: list[subprocess.Popen], grace_s: float = 30) -> None:
    """SIGINT to each process group (what Ctrl-C sends: both UIs shut down cleanly on it), then SIGKILL for
    whatever is left after `grace_s`."""
    for p in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGINT)
    deadline = time.time() + grace_s
    for p in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(timeout=max(0.1, deadline - time.time()))
    for p in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGKILL)
        p.wait()


def cmd_ui(args: argparse.Namespace) -> int:
    settings = _load_settings(args)
    home = dagster_home(settings.home)
    for port in (args.port, args.mlflow_port):
        if not _port_free(port):
            raise CliError(f"port {port} on 127.0.0.1 is already in use (choose another with --port/--mlflow-port)")
    bin_dir = Path(sys.executable).parent
    mlflow_db = settings.home / "mlflow.db"

    def stop(signum, frame):
        raise KeyboardInterrupt

    # Ctrl-C, and also `kill` / a supervisor's SIGTERM, stop both UIs. Installed before the children start, so
    # they get SIGINT's default action even when a shell started `make ui &` with SIGINT ignored.
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    commands = [
        [
            str(bin_dir / "dagster"),
            "dev",
            "-h",
            "127.0.0.1",
            "-p",
            str(args.port),
            "-w",
            str(REPO_ROOT / "workspace.yaml"),
        ],
        [
            str(bin_dir / "mlflow"),
            "ui",
            "--backend-store-uri",
            f"sqlite:///{mlflow_db}",
            "--host",
            "127.0.0.1",
            "--port",
            str(args.mlflow_port),
        ],
    ]
    # Each UI in its own process group (dagster dev starts a webserver, a daemon and code servers; mlflow ui
    # starts uvicorn workers and job runners), so that stopping reaches all of them.
    # The code location reads its settings from these (it is another process); the values are this command's.
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "LLMOE_HOME": str(settings.home),
        "LLMOE_TICKERS": ",".join(settings.tickers),
        **({"LLMOE_CONFIG": settings.config_file} if settings.config_file else {}),
    }
    if args.data_dir:
        env[DATA_DIR_OVERRIDE_ENV] = str(Path(args.data_dir).resolve())
    procs = [subprocess.Popen(cmd, cwd=REPO_ROOT, start_new_session=True, env=env) for cmd in commands]
    print(
        f"Dagster UI: http://127.0.0.1:{args.port}   MLflow UI: http://127.0.0.1:{args.mlflow_port}   "
        f"(DAGSTER_HOME={home}; Ctrl-C stops both)",
        flush=True,
    )
    try:
        while all(p.poll() is None for p in procs):
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        _stop_groups(procs)
    return 0


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
    run.add_argument("--router", choices=["vllm", "transformers", "openai"], help="router backend (default: vllm)")
    run.set_defaults(func=cmd_run)

    report = sub.add_parser(
        "report",
        help="the results table and the verdict per ticker, the same as JSON, or a "
        "Markdown research report with tables and figures",
    )
    common(report)
    report.add_argument("--format", choices=["table", "json", "md"], default="table")
    report.add_argument("--output", help="file to write (json, md; md defaults to llmoe_report.md)")
    report.add_argument("--split", choices=["test", "validation"], default="test")
    report.set_defaults(func=cmd_report)

    bench = sub.add_parser("bench", help="benchmarks")
    bench_sub = bench.add_subparsers(dest="bench", required=True)
    router = bench_sub.add_parser("router", help="vLLM batched vs transformers batched vs naive one-prompt-at-a-time")
    router.add_argument("--n", type=int, default=256, help="number of real windows (default 256)")
    router.add_argument("--skip-naive", action="store_true", help="skip the slow naive baseline")
    router.set_defaults(func=cmd_bench)

    ui = sub.add_parser("ui", help="start the Dagster UI (webserver + daemon) and the MLflow UI on 127.0.0.1")
    common(ui)
    ui.add_argument("--port", type=int, default=3000)
    ui.add_argument("--mlflow-port", type=int, default=5000)
    ui.set_defaults(func=cmd_ui)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except Exception as exc:
        if os.environ.get("LLMOE_DEBUG"):
            raise
        from llmoe_pipeline.tracking.redaction import redact_text

        cause = " ".join(redact_text(_root_cause(exc)).split())  # one line, no secrets (URLs in messages)
        print(f"llmoe {args.command}: error: {cause}", file=sys.stderr)
        return 1


def _root_cause(exc: BaseException) -> str:
    """Dagster wraps the asset's exception (also in DagsterMaxRetriesExceededError after retries); users want the
    original message, not the wrappers."""
    from llmoe_pipeline.data import DataValidationError

    seen = exc
    while True:
        user = getattr(seen, "user_exception", None)
        nxt = user or seen.__cause__ or (None if seen.__suppress_context__ else seen.__context__)
        if isinstance(seen, (CliError, DataValidationError)) or nxt is None:
            break
        seen = nxt
    return (
        f"{seen}"
        if isinstance(seen, (CliError, DataValidationError, FileNotFoundError, ValueError))
        else f"{type(seen).__name__}: {seen}"
    )


if __name__ == "__main__":
    sys.exit(main())
