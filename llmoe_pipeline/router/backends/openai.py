"""The `openai` backend: any OpenAI-compatible server (e.g. `vllm serve`, see vllm.vllm_serve_command)."""

from __future__ import annotations

import concurrent.futures
import os
import threading
from pathlib import Path

import numpy as np

from llmoe_pipeline.router.backends.base import (
    _PROBE_PROMPT,
    RouterBackend,
    _first_line,
    _mask,
    first_answer_tokens,
    p_from_logprobs,
)
from llmoe_pipeline.router.backends.config import RouterBackendConfig
from llmoe_pipeline.router.model import folder_model_id
from llmoe_pipeline.router.prompt import chat_messages
from llmoe_pipeline.router.regimes import REGIMES as LABELS
from llmoe_pipeline.tracking.redaction import redact_url

RETRYABLE_HTTP = {429, 500, 502, 503, 504}  # the server is busy or restarting: worth another try


class ServerUnavailableError(ConnectionError):
    """The router server cannot be reached or is temporarily failing: a retry can succeed."""


class OpenAIBackend(RouterBackend):
    """Any OpenAI-compatible server (e.g. `vllm serve <folder> --logprobs-mode processed_logprobs`).

    Uses chat/completions with logprobs/top_logprobs and vLLM's `allowed_token_ids` extension; label token
    ids come from the server's /tokenize (with the chat template). The API key is read from the
    environment variable named `api_key_env` when it is set; it is never logged or stored, and URLs in
    error messages lose their userinfo and query values (`redact_url`).

    From `config`: model (the served model name), base_url, api_key_env, timeout_s, max_concurrency, seed,
    explanation_max_tokens. `home` is accepted for a uniform constructor and unused.
    """

    def __init__(self, config: RouterBackendConfig, home: str | os.PathLike | None = None):
        import requests

        if not config.base_url:
            raise ValueError("the openai backend needs base_url (the server's /v1 URL)")
        self.config = config
        self.model = config.model
        self.base_url = config.base_url.rstrip("/")
        self.server_root = self.base_url[: -len("/v1")] if self.base_url.endswith("/v1") else self.base_url
        self.explanation_max_tokens = config.explanation_max_tokens
        self.seed = config.seed
        self.timeout_s = config.timeout_s
        self.max_concurrency = config.max_concurrency
        self._requests = requests
        self._local = threading.local()
        key = os.environ.get(config.api_key_env)
        self._headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.model_id = self._served_model_id()
        self.label_ids = self._label_ids()
        self._pool = concurrent.futures.ThreadPoolExecutor(config.max_concurrency, thread_name_prefix="llmoe-openai")

    def _call(self, method: str, url: str, **kwargs):
        """One HTTP request; ServerUnavailableError (retryable) when the server is unreachable or busy,
        RuntimeError (not retryable: a wrong model, key or request) for any other non-200 answer."""
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = self._requests.Session()
        try:
            resp = session.request(method, url, headers=self._headers, timeout=self.timeout_s, **kwargs)
        except self._requests.RequestException as exc:
            raise ServerUnavailableError(
                f"the router server at {redact_url(self.base_url)} is not reachable ({type(exc).__name__}); start "
                'it (`vllm serve`, README "Running on a cluster") or fix router_backend.base_url'
            ) from None
        if resp.status_code in RETRYABLE_HTTP:
            raise ServerUnavailableError(f"{redact_url(url)} answered HTTP {resp.status_code}: {resp.text[:200]}")
        if resp.status_code != 200:
            raise RuntimeError(f"{redact_url(url)} answered HTTP {resp.status_code}: {resp.text[:300]}")
        return resp.json()

    def _post(self, url: str, payload: dict) -> dict:
        return self._call("POST", url, json=payload)

    def _served_model_id(self) -> str:
        """The served weights' model id when the server runs a local folder (so the cache is shared with the
        offline backends), else `<served name>@served`."""
        served = {m["id"]: m for m in self._call("GET", f"{self.base_url}/models").get("data", [])}
        if self.model not in served:
            raise RuntimeError(
                f"the server at {redact_url(self.base_url)} does not serve {self.model!r}; it serves {sorted(served)}"
            )
        root = served[self.model].get("root") or self.model
        if Path(root).is_dir():
            return folder_model_id(Path(root))
        return f"{root}@served"

    def _label_ids(self) -> tuple[int, int]:
        url = f"{self.server_root}/tokenize"
        messages = chat_messages(_PROBE_PROMPT)
        prefix = self._post(
            url, {"model": self.model, "messages": messages, "add_generation_prompt": True, "add_special_tokens": False}
        )["tokens"]
        labelled = [
            self._post(
                url,
                {
                    "model": self.model,
                    "add_generation_prompt": False,
                    "continue_final_message": True,
                    "add_special_tokens": False,
                    "messages": messages + [{"role": "assistant", "content": label}],
                },
            )["tokens"]
            for label in LABELS
        ]
        return first_answer_tokens(prefix, labelled)  # type: ignore[return-value]

    def _score_one(self, prompt: str) -> tuple[float, float]:
        body = self._post(
            f"{self.base_url}/chat/completions",
            {
                "model": self.model,
                "messages": chat_messages(prompt),
                "max_tokens": 1,
                "temperature": 0.0,
                "seed": self.seed,
                "logprobs": True,
                "top_logprobs": 2,
                "allowed_token_ids": list(self.label_ids),
                "return_tokens_as_token_ids": True,
            },
        )
        first = body["choices"][0]["logprobs"]["content"][0]["top_logprobs"]  # tokens as "token_id:<id>"
        top = {int(t["token"].split(":", 1)[1]): t["logprob"] for t in first}
        if not all(t in top for t in self.label_ids):
            raise RuntimeError(
                "the server's top log-probabilities miss a label token: start `vllm serve` with "
                "`--logprobs-mode processed_logprobs` so that they are taken after allowed_token_ids"
            )
        return top[self.label_ids[0]], top[self.label_ids[1]]

    def _explain_one(self, prompt: str) -> str:
        body = self._post(
            f"{self.base_url}/chat/completions",
            {
                "model": self.model,
                "messages": chat_messages(prompt, "explain"),
                "temperature": 0.0,
                "seed": self.seed,
                "max_tokens": self.explanation_max_tokens,
                "stop": ["\n"],
            },
        )
        return _first_line(body["choices"][0]["message"]["content"] or "")

    def score_and_explain(self, prompts, explain_mask=None):
        mask = _mask(prompts, explain_mask)
        # All requests in flight together, so that the server batches them.
        scores = [self._pool.submit(self._score_one, p) for p in prompts]
        texts = {i: self._pool.submit(self._explain_one, p) for i, p in enumerate(prompts) if mask[i]}
        lp = np.array([f.result() for f in scores], dtype=float).reshape(len(prompts), 2)
        explanations = [texts[i].result() if i in texts else None for i in range(len(prompts))]
        return p_from_logprobs(lp[:, 0], lp[:, 1]), explanations

    def close(self) -> None:
        self._pool.shutdown(wait=True)
