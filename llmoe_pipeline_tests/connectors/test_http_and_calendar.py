"""Retries within the stated budget (sleep injected: no real waiting), keys kept out of errors, and the exchange
calendar deciding which sessions are due."""

from __future__ import annotations

import datetime as dt
import logging

import pytest

from llmoe_pipeline.connectors.calendar import due_sessions
from llmoe_pipeline.connectors.http import JsonClient, RetryBudget
from llmoe_pipeline.connectors.protocol import ProviderError
from llmoe_pipeline_tests.connectors.support import local_server

BUDGET = RetryBudget(attempts=4, backoff_seconds=2.0, max_backoff_seconds=5.0)


def scripted(*statuses: int):
    """Answer the n-th request with statuses[n] (the last one from then on)."""
    seen = []

    def respond(request):
        status = statuses[min(len(seen), len(statuses) - 1)]
        seen.append(status)
        return status, {"ok": status == 200, "n": len(seen)}

    return respond


def test_429_and_5xx_are_retried_with_backoff_then_answer():
    sleeps: list[float] = []
    with local_server(scripted(429, 503, 200)) as server:
        body = JsonClient("nyt", BUDGET, sleep=sleeps.append).get(server.url + "/svc/x", params={"api-key": "s3cret"})
    assert body == {"ok": True, "n": 3}
    assert sleeps == [2.0, 4.0]  # 2 s, then 4 s


def test_budget_spent_is_one_error_without_the_key():
    sleeps: list[float] = []
    with local_server(scripted(503)) as server:
        client = JsonClient("nyt", BUDGET, sleep=sleeps.append)
        with pytest.raises(ProviderError) as caught:
            client.get(server.url + "/svc/search/v2/articlesearch.json", params={"api-key": "s3cret"})
        assert len(server.requests) == 4
    assert str(caught.value) == (
        "nyt: GET /svc/search/v2/articlesearch.json failed 4 times (last: HTTP 503); retry budget spent"
    )
    assert sleeps == [2.0, 4.0, 5.0]  # capped at max_backoff_seconds


def test_client_errors_are_not_retried():
    with local_server(scripted(401)) as server:
        with pytest.raises(ProviderError, match=r"^alpaca: GET /v2/stocks/AAPL/bars answered HTTP 401$"):
            JsonClient("alpaca", BUDGET, sleep=lambda s: None).get(server.url + "/v2/stocks/AAPL/bars")
        assert len(server.requests) == 1


def test_retry_after_is_honoured_up_to_the_cap():
    assert BUDGET.wait(0, "3") == 3.0
    assert BUDGET.wait(0, "120") == 5.0
    assert BUDGET.wait(1, None) == 4.0


def utc(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.timezone.utc)


TWO_HOURS = dt.timedelta(hours=2)


def test_good_friday_is_not_a_session():
    due = due_sessions("XNYS", dt.date(2024, 3, 27), utc(2024, 4, 2, 7), TWO_HOURS)
    assert due == [dt.date(2024, 3, 27), dt.date(2024, 3, 28), dt.date(2024, 4, 1)]


def test_a_session_is_due_its_delay_after_the_close():
    # 1 April 2024 closes at 16:00 New York = 20:00 UTC.
    assert due_sessions("XNYS", dt.date(2024, 4, 1), utc(2024, 4, 1, 21, 59), TWO_HOURS) == []
    assert due_sessions("XNYS", dt.date(2024, 4, 1), utc(2024, 4, 1, 22, 0), TWO_HOURS) == [dt.date(2024, 4, 1)]


def test_early_close_is_due_earlier():
    # The day after Thanksgiving 2024 closes at 13:00 New York = 18:00 UTC.
    assert due_sessions("XNYS", dt.date(2024, 11, 29), utc(2024, 11, 29, 20), TWO_HOURS) == [dt.date(2024, 11, 29)]


def test_debug_logs_of_the_transport_do_not_show_the_key(caplog):
    with caplog.at_level(logging.DEBUG), local_server(scripted(200)) as server:
        JsonClient("nyt", BUDGET).get(server.url + "/svc/search/v2/articlesearch.json", params={"api-key": "s3cretKey"})
    assert "articlesearch.json" in caplog.text  # urllib3 did log the request line
    assert "s3cretKey" not in caplog.text
