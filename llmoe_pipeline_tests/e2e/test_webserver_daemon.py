"""Operating the pipeline through the real `dagster dev` (webserver + daemon): launch llmoe_job for one ticker
over GraphQL as the UI's "Materialize" does, let the daemon dequeue and run it, then check what it wrote
(Parquet asset, MLflow parent/child runs, the instance's materialization record) and that the nightly
schedule is switched on."""

from __future__ import annotations

import datetime as dt
import time
from zoneinfo import ZoneInfo

import pandas as pd
from dagster import DagsterRunStatus
from dagster_graphql import DagsterGraphQLClient

from llmoe_pipeline_tests.e2e.support import mlflow_runs

TICKER = "AAPL"
RUN_TIMEOUT_S = 780  # labelling ~330 windows takes 1-2 min idle, several on a shared 2-core CPU; pytest stops at 900 s
FINISHED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}
SEEDED_MODELS = {"LLMoE", "LightGBM", "MLP", "LSTM", "MoE"}  # one child run per seed; Buy&Hold has one run

STEP_FAILURES_QUERY = """
query ($runId: ID!) { runOrError(runId: $runId) { ... on Run { eventConnection { events {
  __typename ... on ExecutionStepFailureEvent { stepKey error { message } } } } } } }
"""
MATERIALIZATIONS_QUERY = """
query ($partition: String!) { assetOrError(assetKey: {path: ["backtest_results"]}) {
  ... on Asset { assetMaterializations(partitions: [$partition]) { runId partition } } } }
"""
SCHEDULE_QUERY = """
query { scheduleOrError(scheduleSelector: {repositoryLocationName: "llmoe_pipeline",
    repositoryName: "__repository__", scheduleName: "nightly_refresh_schedule"}) {
  __typename ... on Schedule { cronSchedule executionTimezone pipelineName scheduleState { status }
    futureTicks(limit: 3) { results { timestamp } } } ... on PythonError { message } }
  sensorOrError(sensorSelector: {repositoryLocationName: "llmoe_pipeline", repositoryName: "__repository__",
    sensorName: "data_files_sensor"}) { ... on Sensor { sensorState { status } } }
  instance { daemonHealth { allDaemonStatuses { daemonType healthy } } } }
"""


def wait_for_run(client: DagsterGraphQLClient, run_id: str, timeout_s: float) -> DagsterRunStatus:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        status = client.get_run_status(run_id)
        if status in FINISHED:
            return status
        time.sleep(2)
    return status


def test_job_launched_over_graphql_materializes_the_ticker_and_logs_to_mlflow(dagster_dev):
    client = DagsterGraphQLClient("127.0.0.1", port_number=dagster_dev.port, timeout=60)
    run_id = client.submit_job_execution("llmoe_job", tags={"dagster/partition": TICKER})
    status = wait_for_run(client, run_id, RUN_TIMEOUT_S)
    if status != DagsterRunStatus.SUCCESS:
        events = dagster_dev.graphql(STEP_FAILURES_QUERY, {"runId": run_id})["runOrError"]["eventConnection"]["events"]
        failures = [f"{e['stepKey']}: {e['error']['message']}" for e in events if "stepKey" in e]
        raise AssertionError(f"run {run_id} ended {status} after <= {RUN_TIMEOUT_S} s: {failures}\n{dagster_dev.log_tail()}")

    # The asset value, where the IO manager keeps it: every model × seed × split × cost of this ticker only.
    assets = dagster_dev.home / "assets"
    results = pd.read_parquet(assets / "backtest_results" / f"{TICKER}.parquet")
    assert set(results["ticker"]) == {TICKER}
    assert set(results["model"]) == SEEDED_MODELS | {"Buy&Hold"}
    assert set(results["split"]) == {"validation", "test"}
    assert set(results["cost_bps"]) == {0.0, 10.0}
    assert results.groupby("model")["seed"].nunique().to_dict() == {**{m: 2 for m in SEEDED_MODELS}, "Buy&Hold": 1}
    assert not (assets / "backtest_results" / "MSFT.parquet").exists()  # only the requested partition ran

    # The instance recorded the materialization of that partition by that run (what the UI shows).
    record = dagster_dev.graphql(MATERIALIZATIONS_QUERY, {"partition": TICKER})["assetOrError"]
    assert [(m["runId"], m["partition"]) for m in record["assetMaterializations"]] == [(run_id, TICKER)]

    # MLflow: one parent per model, one child per seed, tagged with the Dagster run and partition.
    runs = mlflow_runs(dagster_dev.home)
    assert set(runs["status"]) == {"FINISHED"}
    parents = runs[runs["parent"].isna()].set_index("run_id")
    children = runs[runs["parent"].notna()]
    assert sorted(parents["model"]) == sorted(SEEDED_MODELS | {"Buy&Hold"})
    assert set(children["parent"]) == set(parents.index)
    seeds_per_model = children.groupby(children["parent"].map(parents["model"]))["seed"].apply(sorted).to_dict()
    # Seeds are logged as params (strings).
    assert seeds_per_model == {**{m: ["0", "1"] for m in SEEDED_MODELS}, "Buy&Hold": ["0"]}
    assert set(runs["tag.dagster.run_id"]) == {run_id}
    assert set(runs["tag.dagster.partition"]) == {TICKER}
    # Each seed run carries its own predictions: that model and seed only, every validation and test day.
    from mlflow import MlflowClient

    mlflow_client = MlflowClient(tracking_uri=f"sqlite:///{dagster_dev.home / 'mlflow.db'}")
    days = set()
    for _, child in children.iterrows():
        own = pd.read_parquet(mlflow_client.download_artifacts(child["run_id"], "predictions/predictions.parquet"))
        assert set(zip(own["model"], own["seed"].astype(str))) == {(parents.loc[child["parent"], "model"], child["seed"])}
        assert own["date"].is_unique and set(own["split"]) == {"validation", "test"}
        days.add(len(own))
    assert len(days) == 1  # every model and seed predicted the same days


def test_nightly_schedule_is_running_and_daemon_healthy(dagster_dev):
    data = dagster_dev.graphql(SCHEDULE_QUERY)
    schedule = data["scheduleOrError"]
    assert schedule["__typename"] == "Schedule", schedule
    assert schedule["scheduleState"]["status"] == "RUNNING"  # default status: on without a click
    assert schedule["pipelineName"] == "llmoe_job"
    assert (schedule["cronSchedule"], schedule["executionTimezone"]) == ("0 2 * * 1-5", "America/New_York")
    ny = ZoneInfo("America/New_York")
    ticks = [dt.datetime.fromtimestamp(t["timestamp"], ny) for t in schedule["futureTicks"]["results"]]
    assert len(ticks) == 3
    for tick in ticks:  # 02:00 New York time, Monday to Friday
        assert (tick.hour, tick.minute, tick.weekday() < 5) == (2, 0, True), tick
    assert data["sensorOrError"]["sensorState"]["status"] == "STOPPED"  # data_sensor_enabled: false

    # The scheduler daemon is what fires the ticks: it must be up (heartbeats arrive within ~30 s).
    deadline = time.time() + 60
    while True:
        statuses = {d["daemonType"]: d["healthy"] for d in data["instance"]["daemonHealth"]["allDaemonStatuses"]}
        if statuses.get("SCHEDULER") and statuses.get("QUEUED_RUN_COORDINATOR") or time.time() > deadline:
            break
        time.sleep(2)
        data = dagster_dev.graphql(SCHEDULE_QUERY)
    assert statuses.get("SCHEDULER") is True and statuses.get("QUEUED_RUN_COORDINATOR") is True, statuses
