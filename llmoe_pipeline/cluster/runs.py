"""`llmoe-cluster run`: each ticker's refresh launched through the cluster's Dagster webserver (GraphQL), as the UI
would: one `llmoe_job` per ticker, queued; the daemon launches it, its steps run on the Celery workers, and
`refresh_chain_sensor` launches the experts of each regime, the evaluation and then the router's explanations. Waits
for every chain's evaluation (the explanations, last, go on without holding the results) and prints the results
table read from the shared store. A failed run is one line naming the ticker, the step and the cause."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from llmoe_pipeline.catalog import REFRESH_CHAIN_TAG
from llmoe_pipeline.cluster.apps import graphql
from llmoe_pipeline.cluster.procs import ClusterError
from llmoe_pipeline.cluster.services import LOCATION

DONE, FAILED = {"SUCCESS"}, {"FAILURE", "CANCELED"}
_EXCEPTION_PREFIX = re.compile(r"^[\w.]*(Error|Exception): ")  # Dagster's "module.TypeError: message"

LAUNCH = """mutation($params: ExecutionParams!) { launchRun(executionParams: $params) { __typename
  ... on LaunchRunSuccess { run { runId } } ... on PythonError { message }
  ... on RunConfigValidationInvalid { errors { message } } ... on InvalidSubsetError { message }
  ... on PipelineNotFoundError { message } ... on RunConflict { message } ... on UnauthorizedError { message } } }"""
RUNS = """query($runIds: [String!], $tags: [ExecutionTag!]) { runsOrError(filter: {runIds: $runIds, tags: $tags}) {
  ... on Runs { results { runId jobName status tags { key value } } } } }"""
FAILURES = """query($runId: ID!) { logsForRun(runId: $runId, limit: 5000) { ... on EventConnection { events {
  __typename ... on ExecutionStepFailureEvent { stepKey error { message cause { message } } }
  ... on RunFailureEvent { message } } } } }"""


@dataclass
class Chain:
    ticker: str
    first_run: str
    runs: list[dict]

    @property
    def finished(self) -> bool:
        return any(r["jobName"] == "evaluation_job" and r["status"] in DONE for r in self.runs)

    @property
    def failed(self) -> dict | None:
        return next((r for r in self.runs if r["status"] in FAILED), None)


def launch(port: int, ticker: str, job: str = "llmoe_job", tags: dict[str, str] | None = None) -> str:
    """Queue one run of `job` for `ticker`'s partition; returns its run id."""
    params = {
        "selector": {"repositoryLocationName": LOCATION, "repositoryName": "__repository__", "jobName": job},
        "runConfigData": {},
        "executionMetadata": {
            "tags": [{"key": k, "value": v} for k, v in {"dagster/partition": ticker, **(tags or {})}.items()]
        },
    }
    result = graphql(port, LAUNCH, {"params": params})["launchRun"]
    if result["__typename"] != "LaunchRunSuccess":
        detail = result.get("message") or "; ".join(e["message"] for e in result.get("errors", []))
        raise ClusterError(f"{ticker}: the webserver refused to launch {job}: {result['__typename']}: {detail}")
    return result["run"]["runId"]


def chain_runs(port: int, first_run: str) -> list[dict]:
    first = graphql(port, RUNS, {"runIds": [first_run], "tags": None})["runsOrError"]["results"]
    rest = graphql(port, RUNS, {"runIds": None, "tags": [{"key": REFRESH_CHAIN_TAG, "value": first_run}]})[
        "runsOrError"
    ]
    return first + [r for r in rest["results"] if r["runId"] != first_run]


def failure_line(port: int, run: dict) -> str:
    """The step and the root cause of a failed run, on one line."""
    events = graphql(port, FAILURES, {"runId": run["runId"]})["logsForRun"].get("events", [])
    for ev in events:
        if ev["__typename"] == "ExecutionStepFailureEvent":
            error, cause = ev["error"], ev["error"]
            while cause.get("cause"):
                cause = cause["cause"]
            message = " ".join((cause.get("message") or error.get("message") or "").split())
            return f"{ev['stepKey']}: {_EXCEPTION_PREFIX.sub('', message)}"
    messages = [ev.get("message", "") for ev in events if ev["__typename"] == "RunFailureEvent"]
    return " ".join((messages[-1] if messages else f"run {run['status'].lower()}").split())


def wait_for_chains(
    port: int, chains: list[Chain], timeout_s: float, log: Callable[[str], None] = print, poll_s: float = 3
) -> list[Chain]:
    """Until every chain's evaluation succeeded; ClusterError (one line) at the first failed run or the timeout."""
    deadline, seen = time.time() + timeout_s, set()
    while True:
        for chain in chains:
            chain.runs = chain_runs(port, chain.first_run)
            for run in chain.runs:
                key = (run["runId"], run["status"])
                if key not in seen and run["status"] in DONE | FAILED:
                    seen.add(key)
                    what = f"{run['jobName']} {_partition(run)}"
                    log(f"{chain.ticker}: {what} {run['status'].lower()} ({run['runId'][:8]})")
            failed = chain.failed
            if failed:
                why = failure_line(port, failed)
                raise ClusterError(f"{chain.ticker}: {failed['jobName']} run {failed['runId'][:8]} failed: {why}")
        if all(c.finished for c in chains):
            return chains
        if time.time() > deadline:
            pending = [c.ticker for c in chains if not c.finished]
            raise ClusterError(f"refresh of {', '.join(pending)} not finished after {timeout_s:.0f} s")
        time.sleep(poll_s)


def _partition(run: dict) -> str:
    return next((t["value"] for t in run["tags"] if t["key"] == "dagster/partition"), "")


def refresh(port: int, tickers: list[str], timeout_s: float, log: Callable[[str], None] = print) -> list[Chain]:
    """Launch every ticker's refresh at once and wait for all of them."""
    chains = [Chain(t, launch(port, t, tags={"llmoe/launched_by": "cluster-run"}), []) for t in tickers]
    for chain in chains:
        log(f"{chain.ticker}: queued llmoe_job ({chain.first_run[:8]})")
    return wait_for_chains(port, chains, timeout_s, log)
