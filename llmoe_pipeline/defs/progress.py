"""Progress lines: always to the Dagster event log; also to stdout when `llmoe run` asked for it."""

import os

import dagster as dg

PROGRESS_ENV = "LLMOE_CLI_PROGRESS"


def progress_log(context: dg.AssetExecutionContext, message: str) -> None:
    context.log.info(message)
    if os.environ.get(PROGRESS_ENV):
        partition = context.partition_key if context.has_partition_key else ""
        print(f"    {partition} {context.op_def.name}: {message}", flush=True)
