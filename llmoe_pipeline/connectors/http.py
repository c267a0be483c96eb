"""JSON over HTTP for the keyed providers: retries with exponential backoff on 429 and 5xx within a stated budget.

Keys travel in headers or query parameters but never into a message: errors name the provider, the URL's path and
the status, not the query string. `sleep` is injectable so that tests run the whole retry budget in no time.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests

from llmoe_pipeline.connectors.protocol import ProviderError
from llmoe_pipeline.tracking.redaction import REDACTED

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})


_QUERY_VALUE = re.compile(r"([?&][^=\s&\"]+=)[^&\s\"]+")


class _RedactUrls(logging.Filter):
    """urllib3 logs each request line at DEBUG, `GET /path?api-key=... HTTP/1.1` (NYT's key is a query parameter):
    every query value is masked before any handler sees the record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = _QUERY_VALUE.sub(rf"\1{REDACTED}", record.getMessage()), ()
        return True


logging.getLogger("urllib3.connectionpool").addFilter(_RedactUrls())


@dataclass(frozen=True)
class RetryBudget:
    """At most `attempts` requests per call; waits `backoff_seconds` * 2**n, capped at `max_backoff_seconds`
    (a 429's Retry-After is honoured up to that cap)."""

    attempts: int = 5
    backoff_seconds: float = 2.0
    max_backoff_seconds: float = 60.0
    timeout_seconds: float = 30.0

    def wait(self, attempt: int, retry_after: str | None) -> float:
        if retry_after and retry_after.strip().isdigit():
            return min(float(retry_after), self.max_backoff_seconds)
        return min(self.backoff_seconds * 2**attempt, self.max_backoff_seconds)


class JsonClient:
    """GET → parsed JSON for one provider, through one `requests.Session`."""

    def __init__(
        self,
        provider: str,
        budget: RetryBudget,
        sleep: Callable[[float], None] = time.sleep,
        session: requests.Session | None = None,
    ):
        self.provider, self.budget, self.sleep = provider, budget, sleep
        self.session = session or requests.Session()

    def get(self, url: str, params: Mapping[str, Any] | None = None, headers: Mapping[str, str] | None = None) -> Any:
        where = urlsplit(url).path or "/"  # never the query: it may hold a key
        last, retry_after = "", None
        for attempt in range(self.budget.attempts):
            if attempt:
                self.sleep(self.budget.wait(attempt - 1, retry_after))
                retry_after = None
            try:
                response = self.session.get(url, params=params, headers=headers, timeout=self.budget.timeout_seconds)
            except requests.RequestException as exc:  # connection refused, reset, timeout: worth another try
                last = f"{type(exc).__name__}"
                continue
            if response.status_code in RETRYABLE_STATUS:
                last, retry_after = f"HTTP {response.status_code}", response.headers.get("Retry-After")
                continue
            if response.status_code >= 400:
                raise ProviderError(self.provider, f"GET {where} answered HTTP {response.status_code}")
            try:
                return response.json()
            except ValueError:
                raise ProviderError(self.provider, f"GET {where} answered something that is not JSON") from None
        raise ProviderError(
            self.provider, f"GET {where} failed {self.budget.attempts} times (last: {last}); retry budget spent"
        )


def key_from_env(provider: str, env_name: str, environ: Mapping[str, str]) -> str:
    """The key in $`env_name`; a missing one is an error naming the variable (never a value)."""
    value = environ.get(env_name, "").strip()
    if not value:
        raise ProviderError(provider, f"the environment variable {env_name} (its API key) is not set")
    return value
