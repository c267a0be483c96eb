"""Operating the pipeline through the real `dagster dev` (webserver + daemon): launch llmoe_job for one ticker
over GraphQL as the Launchpad does, let the daemon dequeue it and the chain sensor start the experts (one run
per regime partition) and the evaluation, then check what they wrote (Parquet asset, MLflow parent/child runs,
the instance's materialization record) and that the nightly schedule is switched on."""

from __future__ import annotations

import datetime as dt
import time
from zoneinfo import ZoneInfo

import pandas as pd
from dagster import DagsterRunStatus
from dagster_graphql import DagsterGraphQLClient

from llmoe_pipeline_tests.e2e.support import mlflow_runs
from llmoe_pipeline_tests.model_fixtures import ALL_MODELS

TICKER = "AAPL"
RUN_TIMEOUT_S = 780  # labelling ~330 windows takes 1-2 min idle, several on a shared 2-core CPU; pytest stops at 900 s
CHAIN_JOBS = ["llmoe_job", "experts_job", "experts_job", "evaluation_job", "explanations_job"]
FINISHED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}
# One child run per seed; Buy&Hold has one run. The free router ablations are LLMoE models of their own.
SEEDED_MODELS = ALL_MODELS - {"Buy&Hold"}

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
  chain: sensorOrError(sensorSelector: {repositoryLocationName: "llmoe_pipeline", repositoryName: "__repository__",
    sensorName: "refresh_chain_sensor"}) { ... on Sensor { sensorState { status } } }
  instance { daemonHealth { allDaemonStatuses { daemonType healthy } } } }
"""


RUNS_QUERY = """
query ($tag: String!) { runsOrError(filter: {tags: [{key: "llmoe/refresh", value: $tag}]}) {
  ... on Runs { results { runId jobName status tags { key value } } } } }
"""


def chain_runs(dagster_dev, first_run_id: str) -> list[dict]:
    runs = dagster_dev.graphql(RUNS_QUERY, {"tag": first_run_id})["runsOrError"]["results"]
    return [{**r, "tags": {t["key"]: t["value"] for t in r["tags"]}} for r in runs]


def wait_for_refresh(client: DagsterGraphQLClient, dagster_dev, run_id: str, timeout_s: float) -> list[dict]:
    """The first run, then the runs the chain sensor started after it, until the explanations run (the last) has
    finished or a run failed. Returns every run of the refresh (first run included) with its final status."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        first = client.get_run_status(run_id)
        chain = chain_runs(dagster_dev, run_id)
        statuses = [first.value] + [r["status"] for r in chain]
        if (
            "FAILURE" in statuses
            or "CANCELED" in statuses
            or first == DagsterRunStatus.FAILURE
            or any(r["jobName"] == "explanations_job" and r["status"] in ("SUCCESS", "FAILURE") for r in chain)
        ):
            break
        time.sleep(3)
    return [{"runId": run_id, "jobName": "llmoe_job", "status": client.get_run_status(run_id).value}] + chain_runs(
        dagster_dev, run_id
    )


def test_job_launched_over_graphql_refreshes_the_ticker_and_logs_to_mlflow(dagster_dev):
    client = DagsterGraphQLClient("127.0.0.1", port_number=dagster_dev.port, timeout=60)
    run_id = client.submit_job_execution("llmoe_job", tags={"dagster/partition": TICKER})
    runs = wait_for_refresh(client, dagster_dev, run_id, RUN_TIMEOUT_S)
    failed = [r for r in runs if r["status"] != "SUCCESS"]
    if failed or sorted(r["jobName"] for r in runs) != sorted(CHAIN_JOBS):
        details = []
        for r in failed:
            events = dagster_dev.graphql(STEP_FAILURES_QUERY, {"runId": r["runId"]})["runOrError"]["eventConnection"]
            details += [f"{e['stepKey']}: {e['error']['message']}" for e in events["events"] if "stepKey" in e]
        raise AssertionError(f"refresh {runs} after <= {RUN_TIMEOUT_S} s: {details}\n{dagster_dev.log_tail()}")
    partitions = sorted(r["tags"].get("dagster/partition") for r in runs[1:])
    assert partitions == sorted([TICKER, TICKER, f"optimistic|{TICKER}", f"pessimistic|{TICKER}"])
    evaluation_run = next(r["runId"] for r in runs if r["jobName"] == "evaluation_job")

    # The asset value, where the IO manager keeps it: every model × seed × split × cost of this ticker only.
    assets = dagster_dev.home / "assets"
    results = pd.read_parquet(assets / "backtest_results" / f"{TICKER}.parquet")
    assert set(results["ticker"]) == {TICKER}
    assert set(results["model"]) == SEEDED_MODELS | {"Buy&Hold"}
    assert set(results["split"]) == {"validation", "test"}
    assert set(results["cost_bps"]) == {0.0, 10.0}
    assert results.groupby("model")["seed"].nunique().to_dict() == {**dict.fromkeys(SEEDED_MODELS, 2), "Buy&Hold": 1}
    assert not (assets / "backtest_results" / "MSFT.parquet").exists()  # only the requested partition ran

    # The instance recorded the materialization of that partition by that run (what the UI shows).
    record = dagster_dev.graphql(MATERIALIZATIONS_QUERY, {"partition": TICKER})["assetOrError"]
    assert [(m["runId"], m["partition"]) for m in record["assetMaterializations"]] == [(evaluation_run, TICKER)]

    # MLflow: one parent per model, one child per seed, tagged with the Dagster run and partition.
    mlflow = mlflow_runs(dagster_dev.home)
    assert set(mlflow["status"]) == {"FINISHED"}
    # Beside the models' runs: the ticker's router-diagnostics run (logged by llmoe_job's router_diagnostics).
    research = mlflow[mlflow["parent"].isna() & mlflow["model"].isna()]
    assert list(research["tag.mlflow.runName"]) == [f"router-diagnostics-{TICKER}"]
    assert not mlflow["parent"].isin(research["run_id"]).any()
    mlflow = mlflow.drop(research.index)
    parents = mlflow[mlflow["parent"].isna()].set_index("run_id")
    children = mlflow[mlflow["parent"].notna()]
    assert sorted(parents["model"]) == sorted(SEEDED_MODELS | {"Buy&Hold"})
    assert set(children["parent"]) == set(parents.index)
    seeds_per_model = children.groupby(children["parent"].map(parents["model"]))["seed"].apply(sorted).to_dict()
    # Seeds are logged as params (strings).
    assert seeds_per_model == {**{m: ["0", "1"] for m in SEEDED_MODELS}, "Buy&Hold": ["0"]}
    assert set(mlflow["tag.dagster.run_id"]) == {evaluation_run}
    assert set(mlflow["tag.dagster.partition"]) == {TICKER}
    # Each seed run carries its own predictions: that model and seed only, every validation and test day.
    from mlflow import MlflowClient

    mlflow_client = MlflowClient(tracking_uri=f"sqlite:///{dagster_dev.home / 'mlflow.db'}")
    days = set()
    for _, child in children.iterrows():
        own = pd.read_parquet(mlflow_client.download_artifacts(child["run_id"], "predictions/predictions.parquet"))
        assert set(zip(own["model"], own["seed"].astype(str))) == {
            (parents.loc[child["parent"], "model"], child["seed"])
        }
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
    assert data["chain"]["sensorState"]["status"] == "RUNNING"  # continues every refresh without a click

    # The scheduler daemon is what fires the ticks: it must be up (heartbeats arrive within ~30 s).
    deadline = time.time() + 60
    while True:
        statuses = {d["daemonType"]: d["healthy"] for d in data["instance"]["daemonHealth"]["allDaemonStatuses"]}
        if (
            statuses.get("SCHEDULER")
            and statuses.get("SENSOR")
            and statuses.get("QUEUED_RUN_COORDINATOR")
            or time.time() > deadline
        ):
            break
        time.sleep(2)
        data = dagster_dev.graphql(SCHEDULE_QUERY)
    assert statuses.get("SCHEDULER") is True and statuses.get("SENSOR") is True, statuses
    assert statuses.get("QUEUED_RUN_COORDINATOR") is True, statuses
