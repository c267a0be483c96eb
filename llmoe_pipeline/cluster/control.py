"""`up`, `down` and `status` of the local cluster.

`up` is idempotent: a service that runs with the same command, environment and pipeline config is left alone; one
that is down (or whose config changed) is (re)started; a port that another program holds is one error line before
anything starts. `down` stops every service, dependents first (process groups, then whatever still carries the
cluster's tag), removes the pid files and checks that nothing is left. Pure: no Dagster.
"""

from __future__ import annotations

import concurrent.futures
import os
import signal
from pathlib import Path

import yaml

from llmoe_pipeline.cluster import apps, services
from llmoe_pipeline.cluster.layout import (
    ClusterLayout,
    ClusterState,
    load_or_create_state,
    pg_url,
    read_state,
)
from llmoe_pipeline.cluster.procs import ClusterError, port_free, running, start, stop, sweep, tagged, wait_until
from llmoe_pipeline.config.settings import ConfigError, load_settings, read_config_file
from llmoe_pipeline.core.files import private_mkdir, write_text_atomic

DEFAULT_WORKERS = 2
ORDER = ["vllm", "postgres", "epmd", "rabbitmq", "mlflow", "code_server", "webserver", "daemon"]


def cluster_config(layout: ClusterLayout, state: ClusterState, config_file: str | None, tickers: str | None) -> dict:
    """The pipeline config of the cluster: the user's file (protocol, router settings) with the data folder made
    absolute, the tickers fixed, and the sections that point at the cluster's services."""
    settings = load_settings(config_file, tickers=tickers)  # validates the user's file first
    raw = read_config_file(config_file) if config_file else {}
    user_router = raw.get("router_backend") or {}
    model = apps.served_model(raw)
    raw["data"] = {
        **(raw.get("data") or {}),
        "data_dir": str(Path(settings.protocol.data.data_dir).resolve()),
        "tickers": list(settings.tickers),
    }
    raw["router_backend"] = {
        **{k: v for k, v in user_router.items() if k != "base_url"},
        "backend": "openai",
        "model": model,
        "base_url": f"http://127.0.0.1:{state.port('vllm')}/v1",
    }
    raw["mlflow"] = {
        **(raw.get("mlflow") or {}),
        "tracking_uri": f"http://127.0.0.1:{state.port('mlflow')}",
        "ui_base_url": f"http://127.0.0.1:{state.port('mlflow')}",
    }
    raw["storage"] = {"shared_url": layout.shared.resolve().as_uri(), "label_cache_url": pg_url(state, "labels")}
    raw["executor"] = {**(raw.get("executor") or {}), "kind": "celery"}
    return raw


def write_cluster_config(layout: ClusterLayout, raw: dict) -> None:
    private_mkdir(layout.root)
    text = "# Written by `llmoe-cluster up` from your config and the cluster's services; do not edit.\n"
    text += yaml.safe_dump(raw, sort_keys=False)
    if not layout.config_file.exists() or layout.config_file.read_text() != text:
        write_text_atomic(text, layout.config_file)
    try:
        load_settings(layout.config_file)
    except ConfigError as exc:
        raise ClusterError(str(exc)) from None


def build_services(layout: ClusterLayout, state: ClusterState, raw: dict, workers: int) -> list[services.Service]:
    by_name = {
        "vllm": lambda: apps.vllm(layout, state, raw.get("router_backend") or {}),
        "postgres": lambda: services.postgres(layout, state),
        "epmd": lambda: services.epmd(layout, state),
        "rabbitmq": lambda: services.rabbitmq(layout, state),
        "mlflow": lambda: services.mlflow(layout, state),
        "code_server": lambda: apps.code_server(layout, state),
        "webserver": lambda: apps.webserver(layout, state),
        "daemon": lambda: apps.daemon(layout, state),
    }
    return [by_name[name]() for name in ORDER] + [apps.worker(layout, state, n) for n in range(1, workers + 1)]


def up(
    home: Path, config_file: str | None = None, tickers: str | None = None, workers: int = DEFAULT_WORKERS, log=print
) -> ClusterState:
    layout = ClusterLayout(home)
    state = load_or_create_state(layout)
    os.environ["PGPASSFILE"] = str(layout.pgpass)  # this process checks PostgreSQL too
    raw = cluster_config(layout, state, config_file, tickers)
    write_cluster_config(layout, raw)
    wanted = build_services(layout, state, raw, workers)
    current = {s.name: running(layout.pid_file(s.name)) for s in wanted}
    todo = [s for s in wanted if current[s.name] is None or current[s.name].spec != s.spec]  # type: ignore[union-attr]
    if any(s.name == "epmd" for s in todo):  # RabbitMQ's node registers with epmd when it starts
        todo += [s for s in wanted if s.name == "rabbitmq" and s not in todo]
    for svc in reversed(todo):  # stop what must restart (dependents first) before anything starts
        if current[svc.name] is not None:
            log(f"restarting {svc.name} (its command or the pipeline config changed)")
            _stop(layout, svc.name)
    for name in _extra_workers(layout, workers):
        stop(layout.pid_file(name))
    for svc in todo:  # every port: one clear line before anything starts
        if svc.port and not port_free(state.port(svc.port)):
            raise ClusterError(
                f"port {state.port(svc.port)} on 127.0.0.1 (for {svc.name}) is already in use by another program: "
                f"free it, or `make cluster-down` and choose another base with LLMOE_CLUSTER_PORT_BASE"
            )
    waiting = []
    for svc in wanted:
        if svc not in todo:
            continue
        if svc.prepare:
            svc.prepare()
        record = start(
            svc.name,
            svc.argv,
            env=svc.env,
            log=layout.log(svc.name),
            pid_file=layout.pid_file(svc.name),
            cluster_id=state.cluster_id,
            cwd=svc.cwd,
            user=svc.user,
            spec=svc.spec,
        )
        log(f"started {svc.name} (pid {record.pid}), log {layout.log(svc.name)}")
        if svc.wait_last:
            waiting.append(svc)
        else:
            _await(layout, svc)
    for svc in waiting:
        _await(layout, svc)
    log(
        f"cluster up: Dagster UI http://127.0.0.1:{state.port('webserver')}, MLflow http://127.0.0.1:{state.port('mlflow')}"
    )
    return state


def _await(layout: ClusterLayout, svc: services.Service) -> None:
    pid_file = layout.pid_file(svc.name)
    wait_until(svc.ready, svc.timeout_s, svc.name, lambda: running(pid_file) is not None, layout.log(svc.name))
    if svc.after_ready:
        svc.after_ready()


def _extra_workers(layout: ClusterLayout, workers: int) -> list[str]:
    folder = layout.path("pids")
    names = [p.stem for p in folder.glob("worker*.json")] if folder.is_dir() else []
    return [n for n in names if n[len("worker") :].isdigit() and int(n[len("worker") :]) > workers]


def _known_services(layout: ClusterLayout) -> list[str]:
    folder = layout.path("pids")
    found = [p.stem for p in folder.glob("*.json")] if folder.is_dir() else []
    workers = sorted((n for n in found if n.startswith("worker")), reverse=True)
    return workers + [n for n in reversed(ORDER) if n in found]


# `down` stops one tier at a time, the services of a tier at once: whatever writes to the stores and the broker
# first (Dagster's processes, the workers, and vLLM and MLflow, which nothing stops after them needs), then the
# broker and the database, then epmd (RabbitMQ's node deregisters from it on the way down).
DOWN_TIERS = [{"rabbitmq", "postgres"}, {"epmd"}]


def _down_tiers(names: list[str]) -> list[list[str]]:
    later = set().union(*DOWN_TIERS)
    tiers = [[n for n in names if n not in later]] + [[n for n in names if n in tier] for tier in DOWN_TIERS]
    return [tier for tier in tiers if tier]


# How each service is stopped, by `down` and by `up` when it restarts one. PostgreSQL: SIGINT, its "fast" shutdown
# (SIGTERM would wait for every client to disconnect). Told to stop, the code server (no state) waits up to 60 s
# for open RPC streams, and vLLM's HTTP server, its engine already stopped, for its clients' keep-alive
# connections to close: a short grace, then SIGKILL.
STOP_SIGNALS = {"postgres": signal.SIGINT}
STOP_GRACE_S = {"code_server": 3.0, "vllm": 5.0}


def _stop(layout: ClusterLayout, name: str) -> bool:
    return stop(layout.pid_file(name), STOP_SIGNALS.get(name, signal.SIGTERM), STOP_GRACE_S.get(name, 30.0))


def down(home: Path, log=print) -> list[str]:
    """Stop every service and anything they started; returns the processes the final sweep had to end."""
    layout = ClusterLayout(home)
    state = read_state(layout)
    if state is None:
        log("no cluster under this home")
        return []
    with concurrent.futures.ThreadPoolExecutor(len(ORDER) + DEFAULT_WORKERS) as pool:
        for tier in _down_tiers(_known_services(layout)):
            stopped = pool.map(lambda name: _stop(layout, name), tier)
            for name, was_running in zip(tier, list(stopped), strict=True):
                if was_running:
                    log(f"stopped {name}")
    swept = sweep(state.cluster_id)
    for line in swept:
        log(f"ended leftover process {line}")
    left = tagged(state.cluster_id)
    if left:
        raise ClusterError(f"{len(left)} cluster processes are still alive: {[p.pid for p in left]}")
    log("cluster down: no process of it is left")
    return swept


def status(home: Path) -> dict[str, str]:
    layout = ClusterLayout(home)
    out = {}
    for name in _known_services(layout):
        record = running(layout.pid_file(name))
        out[name] = f"running (pid {record.pid})" if record else "down"
    return out


def stop_service(home: Path, name: str) -> bool:
    return _stop(ClusterLayout(home), name)
