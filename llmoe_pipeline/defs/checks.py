"""Blocking asset checks that keep the last good value: the results are yielded before the value."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import dagster as dg

from llmoe_pipeline.tracking.redaction import redact_text

OWNERS = ["team:llmoe-research"]


def checks_then_output(
    value, checks: list[dg.AssetCheckResult], metadata: dict, output_name: str = "result"
) -> Iterator:
    """Yield the check results, then the value, or fail before the value is stored.

    Dagster hands an output to the IO manager before later checks run, so a blocking check that failed
    after the output would still have overwritten the last good version on disk. Failing first keeps it.
    Only checks with ERROR severity block; a WARN check is shown in the UI and the run goes on.
    """
    yield from checks
    failed = [c for c in checks if not c.passed and c.severity == dg.AssetCheckSeverity.ERROR]
    if failed:
        # allow_retries=False: the same data fails the same check again; retrying only wastes the minutes.
        raise dg.Failure(
            description=f"blocking check(s) failed: {', '.join(str(c.check_name) for c in failed)}; "
            "the stored asset is unchanged",
            allow_retries=False,
            metadata={
                str(c.check_name): dg.MetadataValue.json({k: v.value for k, v in c.metadata.items()}) for c in failed
            },
        )
    yield dg.Output(value, output_name=output_name, metadata=metadata)


@contextlib.contextmanager
def retry_only(*retryable: type[BaseException]) -> Iterator[None]:
    """Let `retryable` errors reach the asset's RetryPolicy; turn every other error (a missing model, a bad
    config: the same input fails the same way again) into a Failure that is not retried."""

    try:
        yield
    except (dg.Failure, *retryable):  # type: ignore[misc]  # a tuple of exception classes
        raise
    except Exception as exc:
        raise dg.Failure(description=redact_text(f"{type(exc).__name__}: {exc}"), allow_retries=False) from exc
