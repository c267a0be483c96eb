"""The cluster's application services: one `vllm serve`, the Dagster code server, webserver and daemon, and the
Celery workers (each with its own LLMOE_HOME). Pure: no Dagster (they are other processes)."""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

import yaml

from llmoe_pipeline.cluster.layout import ClusterLayout, ClusterState
from llmoe_pipeline.cluster.procs import port_open
from llmoe_pipeline.cluster.services import BIN, DAGSTER_TEMPLATE, LOCATION, Service, _http_ok, base_env
from llmoe_pipeline.core.files import private_mkdir, write_text_atomic
from llmoe_pipeline.core.parallel import WORKERS_ENV

WORKER_QUEUE = "dagster"  # dagster-celery's default queue

GRAPHQL_LOCATION = """query { workspaceOrError { ... on Workspace { locationEntries { name loadStatus
  locationOrLoadError { __typename ... on PythonError { message } } } } } }"""


def served_model(config: dict) -> str:
    """The name the server serves the model under (what the workers' `router_backend.model` asks for)."""
    from llmoe_pipeline.router.model import DEFAULT_MODEL

    return (config.get("router_backend") or {}).get("model") or DEFAULT_MODEL


def vllm(layout: ClusterLayout, state: ClusterState, user_router: dict) -> Service:
    """`vllm serve` of the configured model (converted once under the home), with the same engine settings as the
    offline backend (`vllm_serve_command`), used by every run through the `openai` backend."""
    from llmoe_pipeline.router.backends.config import RouterBackendConfig
    from llmoe_pipeline.router.backends.vllm import vllm_env, vllm_serve_command
    from llmoe_pipeline.router.model import resolve_model

    port = state.port("vllm")
    keep = {k: v for k, v in user_router.items() if k not in ("backend", "base_url")}
    config = RouterBackendConfig.model_validate({**keep, "backend": "vllm"})
    resolved = resolve_model(config.model, layout.home)  # converted once under the home, verified afterwards
    argv = vllm_serve_command(config, resolved.path, port, served_model_name=config.model)
    env = {**vllm_env(layout.home, in_process=False, kv_cache_gib=config.kv_cache_gib), **base_env(layout, state)}
    env["VLLM_ENABLE_V1_MULTIPROCESSING"] = "1"
    return Service(
        "vllm",
        argv,
        env,
        lambda: _http_ok(f"http://127.0.0.1:{port}/health"),
        port="vllm",
        timeout_s=900,
        wait_last=True,
        cwd=layout.home,
    )


def write_dagster_home(layout: ClusterLayout, state: ClusterState) -> None:
    """DAGSTER_HOME/dagster.yaml (the template: PostgreSQL storage, queued runs) and workspace.yaml (the code
    server by gRPC)."""
    private_mkdir(layout.dagster_home)
    shutil.copyfile(DAGSTER_TEMPLATE, layout.dagster_home / "dagster.yaml")
    workspace = {
        "load_from": [
            {"grpc_server": {"host": "127.0.0.1", "port": state.port("code_server"), "location_name": LOCATION}}
        ]
    }
    write_text_atomic(yaml.safe_dump(workspace), layout.dagster_home / "workspace.yaml")


def config_hash(layout: ClusterLayout) -> str:
    return hashlib.sha256(layout.config_file.read_bytes()).hexdigest()[:16] if layout.config_file.exists() else ""


def code_server(layout: ClusterLayout, state: ClusterState) -> Service:
    port = state.port("code_server")
    argv = [str(BIN / "dagster"), "code-server", "start", "-h", "127.0.0.1", "-p", str(port)]
    argv += ["-m", "llmoe_pipeline.definitions", "-a", "defs", "--location-name", LOCATION]
    return Service(
        "code_server",
        argv,
        base_env(layout, state),
        lambda: port_open(port),
        port="code_server",
        prepare=lambda: write_dagster_home(layout, state),
        timeout_s=300,
        cwd=layout.dagster_home,
        spec_extra=config_hash(layout),  # a new pipeline config reloads the code location
    )


def graphql(port: int, query: str, variables: dict | None = None, timeout: float = 30) -> dict:
    import requests

    resp = requests.post(
        f"http://127.0.0.1:{port}/graphql", json={"query": query, "variables": variables or {}}, timeout=timeout
    )
    resp.raise_for_status()
    body = resp.json()
    if body.get("errors"):
        raise RuntimeError(json.dumps(body["errors"])[:500])
    return body["data"]


def location_loaded(port: int) -> bool:
    entries = graphql(port, GRAPHQL_LOCATION, timeout=10)["workspaceOrError"]["locationEntries"]
    ours = [e for e in entries if e["name"] == LOCATION]
    if not ours or ours[0]["loadStatus"] != "LOADED":
        return False
    loaded = ours[0]["locationOrLoadError"]
    if loaded["__typename"] != "RepositoryLocation":
        raise RuntimeError(f"code location failed to load: {loaded.get('message')}")
    return True


def webserver(layout: ClusterLayout, state: ClusterState) -> Service:
    port = state.port("webserver")
    argv = [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port)]
    argv += ["-w", str(layout.dagster_home / "workspace.yaml")]
    return Service(
        "webserver",
        argv,
        base_env(layout, state),
        lambda: location_loaded(port),
        port="webserver",
        timeout_s=300,
        cwd=layout.dagster_home,
        spec_extra=config_hash(layout),
    )


def daemon(layout: ClusterLayout, state: ClusterState) -> Service:
    argv = [str(BIN / "dagster-daemon"), "run", "-w", str(layout.dagster_home / "workspace.yaml")]
    log = layout.log("daemon")
    offset = log.stat().st_size if log.exists() else 0
    return Service(
        "daemon",
        argv,
        base_env(layout, state),
        lambda: "daemon" in _log_since(log, offset).lower(),
        timeout_s=300,
        cwd=layout.dagster_home,
        spec_extra=config_hash(layout),
    )


def worker(layout: ClusterLayout, state: ClusterState, n: int) -> Service:
    """A Celery worker running one step at a time, with its own LLMOE_HOME (and DAGSTER_HOME): what steps hand each
    other goes through the shared store, PostgreSQL and the MLflow server, never through this folder."""
    home = layout.worker_home(n)
    log = layout.log(f"worker{n}")
    offset = log.stat().st_size if log.exists() else 0
    argv = [sys.executable, "-m", "celery", "-A", "llmoe_pipeline.cluster.celery_app", "worker"]
    argv += ["-n", f"w{n}@%h", "-c", "1", "-Q", WORKER_QUEUE, "--prefetch-multiplier=1", "-l", "INFO"]
    argv += ["--without-gossip", "--without-mingle"]
    env = {**base_env(layout, state), "LLMOE_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")}
    env["LLMOE_WORKER_NAME"] = f"w{n}"
    # Steps already run side by side, one per worker: a step fits its models one at a time unless the user says.
    env.setdefault(WORKERS_ENV, "1")

    def prepare() -> None:
        private_mkdir(home / "dagster")
        shutil.copyfile(DAGSTER_TEMPLATE, home / "dagster" / "dagster.yaml")

    return Service(
        f"worker{n}",
        argv,
        env,
        lambda: " ready." in _log_since(log, offset),
        prepare=prepare,
        timeout_s=300,
        cwd=home,
        spec_extra=config_hash(layout),
    )


def _log_since(log: Path, offset: int) -> str:
    try:
        with open(log, "rb") as fh:
            fh.seek(offset)
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
