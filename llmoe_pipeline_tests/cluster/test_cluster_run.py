"""The pipeline through the local cluster (PostgreSQL, RabbitMQ + 2 Celery workers, an MLflow server, one
`vllm serve`, the Dagster webserver and daemon), on the e2e slice's protocol over a shorter span (TEST_SPLIT in
support.py). In order:

1. the vLLM server stops mid-labelling: the run fails with one clear line, the cache keeps every finished batch;
2. after a restart, both tickers' refreshes at once: they share the one server and the cache (no window labelled
   twice, none lost), AAPL's finished batches are not relabelled, a worker killed mid-step has its step retried on
   the other, steps ran on both workers;
3. the same config in-process (another store: every model retrained) gives identical predictions and metrics;
4. `down` leaves no process behind.
"""

from __future__ import annotations

import time

import dagster as dg
import pandas as pd
import pytest

from llmoe_pipeline.cluster.control import down, stop_service, up
from llmoe_pipeline.cluster.procs import ClusterError, kill, running, tagged
from llmoe_pipeline.cluster.runs import Chain, chain_runs, failure_line, launch, wait_for_chains
from llmoe_pipeline_tests.cluster.support import BATCH, TICKERS, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.e2e]  # e2e too: `make test-fast` leaves them out
RUN_TIMEOUT_S = 1500
SHARED: dict = {}  # what one test leaves for the next (they run in file order on one cluster)


def _runs_of(instance, status):
    return instance.get_runs(filters=dg.RunsFilter(statuses=[status]))


def _worker_events(instance, run_ids: list[str]) -> list[tuple[str, str, str]]:
    """(run id, step key, Celery worker) of every "Executing steps … in celery worker" event of the runs."""
    out = []
    for run_id in run_ids:
        for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
            event = record.dagster_event  # "[CeleryExecutor] Executing steps <key> in celery worker"
            if event and "Celery worker" in event.engine_event_data.metadata:
                worker = event.engine_event_data.metadata["Celery worker"].value
                out.append((run_id, event.step_key, worker.split("@")[0]))
    return out


def _finished_steps(instance, run_id: str) -> set[str]:
    return {
        r.dagster_event.step_key
        for r in instance.all_logs(run_id, of_type={dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE})
    }


def _router_metadata(instance, ticker: str) -> dict:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("router_labels"), asset_partitions=[ticker]), limit=1
    ).records
    return {k: v.value for k, v in records[0].asset_materialization.metadata.items()}


def test_vllm_stopped_mid_labelling_fails_in_one_line_and_keeps_finished_batches(cluster):
    run_id = launch(cluster.port, "AAPL")
    with cluster.label_cache() as cache:
        wait_for(lambda: len(cache) >= 2 * BATCH, RUN_TIMEOUT_S, "two label batches committed")
        down_at = time.time()
        assert stop_service(cluster.home, "vllm")
        chains = [Chain("AAPL", run_id, [])]
        with pytest.raises(ClusterError) as failed:
            wait_for_chains(cluster.port, chains, RUN_TIMEOUT_S, log=lambda _: None)
        kept = len(cache)
    message = str(failed.value)
    assert "\n" not in message, message
    assert "router_labels" in message and "not reachable" in message, message
    assert f"127.0.0.1:{cluster.state.port('vllm')}" in message, message
    assert kept >= 2 * BATCH, kept  # every batch committed before the server went away
    assert time.time() - down_at < 300  # the retries (2, 5 s then 10 s apart) end it soon
    line = failure_line(cluster.port, chain_runs(cluster.port, run_id)[0])
    assert line.startswith("router_labels: the router server at http://127.0.0.1:") and "\n" not in line
    SHARED["aapl_cached"] = kept


def test_two_tickers_at_once_share_the_server_and_cache_and_survive_a_lost_worker(cluster):
    cached_before = SHARED.get("aapl_cached", 0)
    up(cluster.home, str(cluster.config))  # restarts the stopped vLLM server, leaves the rest alone
    instance = cluster.instance()
    chains = [Chain(t, launch(cluster.port, t), []) for t in TICKERS]
    first = {c.ticker: c.first_run for c in chains}

    # Kill the worker running MSFT's labelling (a step that takes a while) once it has committed a batch.
    def msft_router_worker():
        events = [e for e in _worker_events(instance, [first["MSFT"]]) if e[1] == "router_labels"]
        return events[-1][2] if events and "router_labels" not in _finished_steps(instance, first["MSFT"]) else None

    victim = wait_for(msft_router_worker, RUN_TIMEOUT_S, "MSFT's router_labels running on a worker")
    with cluster.label_cache() as cache:
        before = len(cache)
        wait_for(lambda: len(cache) >= before + BATCH, RUN_TIMEOUT_S, "a batch of MSFT labels committed")
    assert kill(cluster.layout.pid_file(f"worker{victim[1:]}"))
    survivor = {"w1": "w2", "w2": "w1"}[victim]

    wait_for_chains(cluster.port, chains, RUN_TIMEOUT_S, log=print)
    run_ids = [r["runId"] for c in chains for r in c.runs]
    events = _worker_events(instance, run_ids)
    msft_router = [w for run, step, w in events if run == first["MSFT"] and step == "router_labels"]
    assert msft_router[-2:] == [victim, survivor], msft_router  # the lost step ran again on the other worker
    assert {w for _, _, w in events} == {"w1", "w2"}  # steps ran on both workers

    # One server, one cache: every window labelled once, AAPL's batches from before not relabelled.
    aapl, msft = _router_metadata(instance, "AAPL"), _router_metadata(instance, "MSFT")
    assert aapl["from_cache"] >= cached_before and aapl["labelled_now"] == aapl["rows"] - aapl["from_cache"]
    assert aapl["model_id"] == msft["model_id"]
    labels = {t: pd.read_parquet(_asset_bytes(cluster, "router_labels", t)) for t in TICKERS}
    with cluster.label_cache() as cache:
        assert cache.integrity_ok()
        # The cache holds exactly one entry per distinct window prompt of the two tickers (this cluster's only run).
        assert len(cache) == sum(df["prompt_sha256"].nunique() for df in labels.values())
    # Both labelling steps ran at the same time, through the same server.
    spans = {t: _step_span(instance, first[t], "router_labels") for t in TICKERS}
    assert spans["AAPL"][0] < spans["MSFT"][1] and spans["MSFT"][0] < spans["AAPL"][1], spans
    wait_for(lambda: running(cluster.layout.pid_file(f"worker{victim[1:]}")) is None, 30, "killed worker gone")
    up(cluster.home, str(cluster.config))  # `up` restarts the lost worker
    assert running(cluster.layout.pid_file(f"worker{victim[1:]}"))


def _asset_bytes(cluster, key: str, partition: str):
    import io

    return io.BytesIO(cluster.shared_assets().read_bytes(f"{key}/{partition}.parquet"))


def _step_span(instance, run_id: str, step: str) -> tuple[float, float]:
    records = [r for r in instance.all_logs(run_id) if r.dagster_event and r.dagster_event.step_key == step]
    starts = [r.timestamp for r in records if r.dagster_event.event_type == dg.DagsterEventType.STEP_START]
    ends = [r.timestamp for r in records if r.dagster_event.event_type == dg.DagsterEventType.STEP_SUCCESS]
    return min(starts), max(ends)


def test_celery_results_equal_the_in_process_run(cluster, tmp_path):
    """Same config, labels (the shared cache), seeds and code, in-process in this test's process, with its own
    store (so every model is trained again): identical predictions and backtest metrics."""
    from llmoe_pipeline.app.runner import refresh_ticker
    from llmoe_pipeline.config.settings import ExecutorConfig, MLflowConfig, StorageConfig, load_settings
    from llmoe_pipeline.definitions import build_definitions
    from llmoe_pipeline.defs.io_manager import load_asset_value

    settings = load_settings(cluster.layout.config_file)
    local = settings.model_copy(
        update={
            "home": tmp_path / "home",
            "storage": StorageConfig(
                shared_url=(tmp_path / "store").as_uri(), label_cache_url=settings.storage.label_cache_url
            ),
            "executor": ExecutorConfig(),
            "mlflow": MLflowConfig(experiment_name="llmoe-in-process"),
        }
    )
    defs = build_definitions(local)
    with dg.DagsterInstance.ephemeral() as instance:
        for ticker in TICKERS:
            refresh_ticker(defs, ticker, instance)
    mine = (tmp_path / "store").as_uri() + "/assets"
    for ticker in TICKERS:
        for key in ("predictions", "backtest_results"):
            ours = load_asset_value(mine, [key], ticker)
            theirs = load_asset_value(cluster.shared_assets(), [key], ticker)
            pd.testing.assert_frame_equal(ours, theirs, check_exact=True)
        fresh = load_asset_value(mine, ["router_labels"], ticker)
        assert not fresh["from_cache"].eq(False).any()  # nothing relabelled: the same labels


def test_down_stops_every_process_and_frees_every_port(cluster):
    from llmoe_pipeline.cluster.layout import PORT_OFFSETS
    from llmoe_pipeline.cluster.procs import port_free

    assert tagged(cluster.state.cluster_id)  # the cluster is up (and its processes are tagged)
    swept = down(cluster.home)
    assert swept == []  # every process stopped with its service: nothing had to be swept up
    assert tagged(cluster.state.cluster_id) == []
    assert not list(cluster.layout.path("pids").glob("*.json"))
    assert all(port_free(cluster.state.port_base + o) for o in PORT_OFFSETS.values())
