"""The `openai` backend against a real `vllm serve` (CPU build) started on a free 127.0.0.1 port.

The server runs the session's converted SmolLM2 folder with the same engine settings as the offline
backend, behind an API key passed through its environment; the backend reads the key from the
environment variable it is configured to name.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time

import numpy as np
import pytest
import requests

from llmoe_pipeline.router.backends import RouterBackendConfig, make_backend, vllm_env, vllm_serve_command
from llmoe_pipeline.router.model import model_id_of
from llmoe_pipeline_tests.router.float32_reference import float32_reference
from llmoe_pipeline_tests.router_support import reference_windows

KEY_ENV = "LLMOE_TEST_ROUTER_API_KEY"
KEY = "test-key-5e1f0c"  # a throwaway key for this local server only
SERVED_NAME = "smollm2"
START_TIMEOUT_S = 300


def openai_config(base_url: str, model: str = SERVED_NAME) -> RouterBackendConfig:
    return RouterBackendConfig(backend="openai", model=model, base_url=base_url, api_key_env=KEY_ENV)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def reference(router_model):
    """Computed before the server starts, so that the two never compete for the cores."""
    return float32_reference(str(router_model.path))


@pytest.fixture(scope="module")
def server(reference, router_model, session_home, tmp_path_factory):
    port = free_port()
    env = {
        **vllm_env(session_home, in_process=False),
        **os.environ,
        "VLLM_API_KEY": KEY,
        "VLLM_ENABLE_V1_MULTIPROCESSING": "1",
    }
    log_path = tmp_path_factory.mktemp("vllm_serve") / "server.log"
    started = time.perf_counter()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            vllm_serve_command(RouterBackendConfig(), router_model.path, port, served_model_name=SERVED_NAME),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if proc.poll() is not None or time.perf_counter() - started > START_TIMEOUT_S:
                pytest.fail(f"vllm serve did not start (exit {proc.poll()}):\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield {"base_url": f"http://127.0.0.1:{port}/v1", "startup_s": time.perf_counter() - started}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server and its engine-core process (its own session)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture
def api_key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)


def test_server_start_up_time(server, record_property):
    record_property("vllm_serve_startup_s", round(server["startup_s"], 1))
    print(f"vllm serve start-up: {server['startup_s']:.1f} s")
    assert server["startup_s"] < START_TIMEOUT_S


def test_openai_backend_matches_the_transformers_reference(server, api_key, reference, caplog):
    caplog.set_level(logging.DEBUG)
    windows = reference_windows().head(8)
    ref_p, ref_label_ids = reference
    with make_backend(openai_config(server["base_url"])) as backend:
        # The server runs the converted folder: same model id as the offline backends, so they share the cache.
        assert backend.model_id == model_id_of("smollm2-135m-instruct")
        assert backend.label_ids == ref_label_ids  # from the server's /tokenize, under the chat template
        p, explanations = backend.score_and_explain(windows["prompt"].tolist(), [True] + [False] * 7)
    assert np.abs(p - np.array(ref_p[:8])).max() <= 0.01
    assert isinstance(explanations[0], str) and len(explanations[0]) > 10 and "\n" not in explanations[0]
    assert explanations[1:] == [None] * 7
    assert KEY not in caplog.text


def test_missing_or_wrong_key_is_refused_without_echoing_it(server, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    with pytest.raises(RuntimeError, match="HTTP 401"):
        make_backend(openai_config(server["base_url"]))
    monkeypatch.setenv(KEY_ENV, "wrong-" + KEY)
    with pytest.raises(RuntimeError, match="HTTP 401") as err:
        make_backend(openai_config(server["base_url"]))
    assert KEY not in str(err.value)


def test_unknown_served_model_is_a_clear_error(server, api_key):
    with pytest.raises(RuntimeError, match="does not serve 'llama-70b'"):
        make_backend(openai_config(server["base_url"], model="llama-70b"))
