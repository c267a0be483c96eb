"""RouterBackendConfig (validation, no model), the `vllm serve` argv built from it, the settings the vLLM
backend hands to the engine (with a stand-in `vllm` module), and URL redaction in the openai backend's
errors (against a stub HTTP server). Fast: nothing here loads a model."""

from __future__ import annotations

import http.server
import json
import os
import sys
import threading
import types

import pytest
from pydantic import ValidationError

from llmoe_pipeline.core import cpu
from llmoe_pipeline.router.backends import (
    BACKENDS,
    DEFAULT_DTYPE,
    RECIPE,
    BackendSpec,
    OpenAIBackend,
    RouterBackendConfig,
    TransformersBackend,
    VLLMBackend,
    make_backend,
    vllm_serve_command,
)
from llmoe_pipeline.router.backends.config import cpu_has_native_bf16
from llmoe_pipeline.router.cache import cache_key
from llmoe_pipeline.router.model import (
    DEFAULT_MODEL,
    ResolvedModel,
    kernel_family_of,
    model_id_of,
    scoring_model_id,
    without_kernel_family,
)


def _opt(argv: list[str], name: str) -> str:
    """The value after option `name` in argv."""
    assert argv.count(name) == 1, argv
    return argv[argv.index(name) + 1]


HASWELL = ["avx", "avx2", "fma"]
SKYLAKE_X = [*HASWELL, "avx512f"]
ZEN4 = [*SKYLAKE_X, "avx512_bf16"]
SAPPHIRE_RAPIDS = [*ZEN4, "avx512_fp16", "amx_tile", "amx_bf16"]


def with_cpu_flags(monkeypatch, flags: list[str]) -> None:
    """This machine's CPU, as the kernel-family detection reads it, has exactly `flags`."""
    monkeypatch.setattr(cpu, "cpu_info", lambda *_: {"flags": sorted(flags)})


def spec_id(**settings) -> str:
    return BackendSpec(RouterBackendConfig(model=DEFAULT_MODEL, **settings)).model_id


# ---------------------------------------------------------------------------------------------- the config
def test_defaults_are_todays_settings(monkeypatch):
    import torch

    c = RouterBackendConfig()
    assert (c.backend, c.model, c.dtype, DEFAULT_DTYPE) == (None, DEFAULT_MODEL, "auto", "auto")
    # None/auto: the fixed-shape transformers path on a CPU, in bfloat16 where the CPU multiplies it natively;
    # vLLM on a GPU, in float32 unless the config says otherwise.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert c.resolved_backend == "transformers"
    assert c.resolved_dtype == ("bfloat16" if cpu_has_native_bf16() else "float32")
    with_cpu_flags(monkeypatch, SKYLAKE_X)  # AVX-512 without native bfloat16
    assert c.resolved_dtype == "float32"
    with_cpu_flags(monkeypatch, ZEN4)  # AVX512-BF16 (AMD Zen 4/5)
    assert c.resolved_dtype == "bfloat16"
    with_cpu_flags(monkeypatch, SAPPHIRE_RAPIDS)  # AMX
    assert c.resolved_dtype == "bfloat16"
    with_cpu_flags(monkeypatch, HASWELL)
    assert c.resolved_dtype == "float32"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert (c.resolved_backend, c.resolved_dtype) == ("vllm", "float32")
    assert RouterBackendConfig(dtype="bfloat16").resolved_dtype == "bfloat16"  # a GPU user's dtype is kept
    assert (c.max_model_len, c.kv_cache_gib, c.block_size, c.enforce_eager, c.in_process) == (4096, 2, None, None, True)
    assert (c.batch_size, c.forward_batch_size, c.explanation_max_tokens, c.seed) == (256, 16, 40, 0)
    assert (c.base_url, c.api_key_env, c.timeout_s, c.max_concurrency) == (None, "LLMOE_OPENAI_API_KEY", 300.0, 32)
    assert set(BACKENDS) == {"vllm", "transformers", "openai"}
    assert (BACKENDS["vllm"], BACKENDS["transformers"], BACKENDS["openai"]) == (
        VLLMBackend,
        TransformersBackend,
        OpenAIBackend,
    )


def test_config_is_frozen_and_hashable():
    c = RouterBackendConfig(backend="transformers")
    with pytest.raises(ValidationError, match="frozen"):
        c.dtype = "bfloat16"
    same = RouterBackendConfig(backend="transformers")
    assert c == same and hash(c) == hash(same)
    assert c.model_copy(update={"dtype": "bfloat16"}).dtype == "bfloat16" and c.dtype == "auto"


def test_openai_without_base_url_is_rejected():
    with pytest.raises(ValidationError, match="backend 'openai' needs base_url"):
        RouterBackendConfig(backend="openai")
    with pytest.raises(ValidationError, match="needs base_url"):
        RouterBackendConfig(backend="openai", base_url="")
    assert RouterBackendConfig(backend="openai", base_url="http://127.0.0.1:8000/v1").base_url.endswith("/v1")
    assert RouterBackendConfig(backend="vllm", base_url=None).base_url is None  # only openai needs one


@pytest.mark.parametrize("block_size", [20, 0, -32, 8, 100])
def test_block_size_not_a_positive_multiple_of_16_is_rejected(block_size):
    with pytest.raises(ValidationError, match=f"block_size must be a positive multiple of 16, got {block_size}"):
        RouterBackendConfig(block_size=block_size)


@pytest.mark.parametrize("block_size", [None, 16, 32, 64, 128])
def test_block_size_accepted(block_size):
    assert RouterBackendConfig(block_size=block_size).block_size == block_size


def test_unknown_key_is_rejected():
    with pytest.raises(ValidationError, match=r"bach_size\n.*Extra inputs are not permitted"):
        RouterBackendConfig(bach_size=8)
    with pytest.raises(ValidationError, match="engine_kwargs"):
        RouterBackendConfig(engine_kwargs={"gpu_memory_utilization": 0.5})


@pytest.mark.parametrize("dtype", ["bfloat61", "fp32", "Float32", "float64", "Auto"])
def test_dtype_typo_is_rejected(dtype):
    with pytest.raises(ValidationError, match=r"dtype\n.*'auto', 'float32', 'bfloat16' or 'float16'"):
        RouterBackendConfig(dtype=dtype)


def test_unknown_backend_is_rejected():
    with pytest.raises(ValidationError, match=r"backend\n.*'vllm', 'transformers' or 'openai'.*'llamacpp'"):
        RouterBackendConfig(backend="llamacpp")


@pytest.mark.parametrize(
    "field,value",
    [
        ("max_model_len", 255),
        ("kv_cache_gib", 0),
        ("batch_size", 0),
        ("forward_batch_size", 0),
        ("explanation_max_tokens", 0),
        ("explanation_max_tokens", 513),
        ("timeout_s", 0),
        ("timeout_s", -1.0),
        ("max_concurrency", 0),
        ("model", " "),
        ("seed", "zero"),
        ("in_process", "maybe"),
    ],
)
def test_out_of_range_values_are_rejected(field, value):
    with pytest.raises(ValidationError, match=field):
        RouterBackendConfig(**{field: value})


def test_edges_of_the_ranges_are_accepted():
    c = RouterBackendConfig(
        max_model_len=256,
        kv_cache_gib=1,
        batch_size=1,
        forward_batch_size=1,
        explanation_max_tokens=512,
        timeout_s=0.5,
        max_concurrency=1,
        enforce_eager=False,
    )
    assert (c.max_model_len, c.explanation_max_tokens, c.timeout_s, c.enforce_eager) == (256, 512, 0.5, False)


def test_make_backend_and_spec_take_only_a_config():
    with pytest.raises(TypeError, match="expected a RouterBackendConfig, got str"):
        make_backend("vllm")
    with pytest.raises(TypeError, match="expected a RouterBackendConfig, got dict"):
        BackendSpec({"backend": "vllm"})
    spec = BackendSpec(RouterBackendConfig(backend="transformers", model=DEFAULT_MODEL, dtype="float32"))
    assert repr(spec) == f"BackendSpec(backend='transformers', model='{DEFAULT_MODEL}')"
    assert spec.model_id == model_id_of(DEFAULT_MODEL)  # the label cache key: float32 unchanged, nothing loaded


# ---------------------------------------------------------------------------------------------- label cache ids
def test_float32_keeps_the_plain_model_id_and_other_precisions_get_their_own(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with_cpu_flags(monkeypatch, SAPPHIRE_RAPIDS)
    base = model_id_of(DEFAULT_MODEL)

    # float32 (vLLM or the fixed-shape path: the same p to ~1e-5): the id every existing cache was written with.
    assert spec_id(backend="vllm") == spec_id(backend="vllm", dtype="float32") == base
    assert spec_id(backend="transformers", dtype="float32") == base
    ids = {
        spec_id(backend="vllm", dtype="bfloat16"),
        spec_id(backend="vllm", dtype="float16"),
        spec_id(backend="transformers", dtype="bfloat16"),
        spec_id(backend="transformers", dtype="float16"),
        base,
    }
    assert len(ids) == 5  # never shared: bfloat16 through vLLM depends on the batch, through the recipe it does not
    assert spec_id(backend="vllm", dtype="bfloat16") == f"{base}+vllm-bfloat16+kernels-amx-bf16"
    assert (
        spec_id(backend="transformers", dtype="bfloat16")
        == f"{base}+transformers-bfloat16-{RECIPE.id}+kernels-amx-bf16"
    )
    assert (
        spec_id(backend="transformers", dtype="float16")
        == f"{base}+transformers-float16-{RECIPE.id}+kernels-avx512-fp16"
    )
    assert RECIPE.id == "fixed2-p96-t16-b8"
    assert scoring_model_id("m@x", "openai", "bfloat16", kernels="amx-bf16") == "m@x"  # the server names what it serves
    assert spec_id() == f"{base}+transformers-bfloat16-{RECIPE.id}+kernels-amx-bf16"  # the default on an AMX CPU
    assert cache_key(spec_id(backend="vllm"), "v2", "prompt") == cache_key(base, "v2", "prompt")


def test_the_kernel_family_separates_low_precision_ids_and_float32_ids_stay_shared(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with_cpu_flags(monkeypatch, SAPPHIRE_RAPIDS)
    on_amx = {dtype: spec_id(dtype=dtype) for dtype in ("bfloat16", "float32")}
    with_cpu_flags(monkeypatch, ZEN4)
    on_avx512_bf16 = {dtype: spec_id(dtype=dtype) for dtype in ("bfloat16", "float32")}
    # bfloat16 labels of the two CPU kinds differ, so their cache ids do, in the family alone.
    assert on_amx["bfloat16"] != on_avx512_bf16["bfloat16"]
    assert without_kernel_family(on_amx["bfloat16"]) == without_kernel_family(on_avx512_bf16["bfloat16"])
    assert (kernel_family_of(on_amx["bfloat16"]), kernel_family_of(on_avx512_bf16["bfloat16"])) == (
        "amx-bf16",
        "avx512-bf16",
    )
    assert on_amx["float32"] == on_avx512_bf16["float32"] == model_id_of(DEFAULT_MODEL)
    assert kernel_family_of(on_amx["float32"]) is None
    # vLLM on a GPU: the GPU's compute capability; the transformers backend still runs on the CPU.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda _=0: (9, 0))
    assert kernel_family_of(spec_id(backend="vllm", dtype="bfloat16")) == "cuda-sm90"
    assert kernel_family_of(spec_id(backend="transformers", dtype="bfloat16")) == "avx512-bf16"


# ---------------------------------------------------------------------------------------------- vllm serve
def test_vllm_serve_command_from_the_config():
    config = RouterBackendConfig(dtype="bfloat16", max_model_len=2048, seed=7, block_size=64)
    argv = vllm_serve_command(config, "/models/smollm2", 8123, served_model_name="smollm2")
    assert argv[:3] == [sys.executable, "-m", "vllm.entrypoints.openai.api_server"]
    assert _opt(argv, "--model") == "/models/smollm2" and _opt(argv, "--port") == "8123"
    assert _opt(argv, "--host") == "127.0.0.1" and _opt(argv, "--served-model-name") == "smollm2"
    assert _opt(argv, "--dtype") == "bfloat16" and _opt(argv, "--max-model-len") == "2048"
    assert _opt(argv, "--seed") == "7" and _opt(argv, "--block-size") == "64"
    assert _opt(argv, "--logprobs-mode") == "processed_logprobs"
    assert json.loads(_opt(argv, "--hf-overrides")) == {"head_dtype": "float32"}
    assert "--enforce-eager" in argv and "--enable-prefix-caching" in argv
    assert all(isinstance(a, str) for a in argv)


def test_vllm_serve_command_defaults(monkeypatch):
    import torch

    argv = vllm_serve_command(RouterBackendConfig(), "/m", 8000, host="0.0.0.0")
    assert _opt(argv, "--dtype") == "float32" and _opt(argv, "--max-model-len") == "4096"
    assert _opt(argv, "--seed") == "0" and _opt(argv, "--host") == "0.0.0.0"
    assert "--served-model-name" not in argv
    # block_size None: 32 on CPU (prefix reuse), the engine's own default on a GPU.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert _opt(vllm_serve_command(RouterBackendConfig(), "/m", 8000), "--block-size") == "32"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert "--block-size" not in vllm_serve_command(RouterBackendConfig(), "/m", 8000)
    assert _opt(vllm_serve_command(RouterBackendConfig(block_size=16), "/m", 8000), "--block-size") == "16"


# ---------------------------------------------------------------------------------------------- vLLM engine
class _FakeLLM:
    """Stands in for vllm.LLM: records its arguments, never loads anything."""

    calls: list = []

    def __init__(self, model, **kwargs):
        _FakeLLM.calls.append((model, kwargs))

    def get_tokenizer(self):
        return object()


@pytest.fixture
def fake_vllm(monkeypatch, tmp_path):
    import llmoe_pipeline.router.backends.vllm as vllm_module

    fake = types.ModuleType("vllm")
    fake.LLM = _FakeLLM
    fake.SamplingParams = lambda **kwargs: kwargs
    fake.envs = types.SimpleNamespace()
    monkeypatch.setitem(sys.modules, "vllm", fake)
    monkeypatch.setattr(
        vllm_module, "resolve_model", lambda model, home: ResolvedModel(model, tmp_path / "weights", f"{model}@test")
    )
    monkeypatch.setattr(vllm_module, "label_token_ids", lambda tokenizer: (11, 22))
    monkeypatch.setattr(os, "environ", dict(os.environ))  # the backend writes the engine's env: keep it here
    for key in ("VLLM_CPU_KVCACHE_SPACE", "VLLM_ENABLE_V1_MULTIPROCESSING"):
        os.environ.pop(key, None)
    _FakeLLM.calls = []
    return _FakeLLM


def test_vllm_backend_hands_the_config_to_the_engine(fake_vllm, tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with_cpu_flags(monkeypatch, ZEN4)
    config = RouterBackendConfig(
        backend="vllm",
        model="tiny",
        dtype="bfloat16",
        max_model_len=1024,
        kv_cache_gib=3,
        block_size=64,
        enforce_eager=False,
        in_process=False,
        seed=5,
        explanation_max_tokens=17,
    )
    backend = make_backend(config, home=tmp_path)
    ((model, kwargs),) = fake_vllm.calls
    assert model == str(tmp_path / "weights") and backend.label_ids == (11, 22)
    # not float32: its own labels in the cache, for this kernel family
    assert backend.model_id == "tiny@test+vllm-bfloat16+kernels-avx512-bf16"
    assert kwargs["dtype"] == "bfloat16" and kwargs["max_model_len"] == 1024 and kwargs["seed"] == 5
    assert kwargs["enforce_eager"] is False and kwargs["block_size"] == 64
    assert kwargs["enable_prefix_caching"] and kwargs["logprobs_mode"] == "processed_logprobs"
    assert backend._explain_params["max_tokens"] == 17 and backend._explain_params["seed"] == 5
    assert backend._score_params["allowed_token_ids"] == [11, 22] and backend._score_params["seed"] == 5
    assert os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] == "1"  # in_process=False
    assert os.environ["VLLM_CPU_KVCACHE_SPACE"] == "3"


def test_vllm_backend_defaults_keep_todays_engine(fake_vllm, tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    VLLMBackend(RouterBackendConfig(model="tiny"), tmp_path)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda _=0: (9, 0))
    VLLMBackend(RouterBackendConfig(model="tiny"), tmp_path, engine_kwargs={"gpu_memory_utilization": 0.5})
    (_, cpu), (_, gpu) = fake_vllm.calls
    assert cpu["dtype"] == "float32" and cpu["max_model_len"] == 4096 and cpu["seed"] == 0
    assert cpu["enforce_eager"] is True and cpu["block_size"] == 32  # CPU: eager, 32-token blocks
    assert gpu["enforce_eager"] is False and "block_size" not in gpu  # GPU: compiled, the engine's block size
    assert gpu["gpu_memory_utilization"] == 0.5
    assert os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] == "0"  # in_process=True


# ---------------------------------------------------------------------------------------------- openai
class _StubServer(http.server.BaseHTTPRequestHandler):
    status, body = 401, b'{"error": "unauthorized"}'

    def do_GET(self):
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


@pytest.fixture
def stub_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _StubServer)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_openai_errors_do_not_leak_url_credentials(stub_server, monkeypatch):
    url = f"http://someone:url-password-77@127.0.0.1:{stub_server}/v1"
    config = RouterBackendConfig(backend="openai", model="served", base_url=url, timeout_s=10)
    with pytest.raises(RuntimeError, match="HTTP 401") as err:
        make_backend(config)
    assert "url-password-77" not in str(err.value) and f"127.0.0.1:{stub_server}/v1/models" in str(err.value)
    monkeypatch.setattr(_StubServer, "status", 200)
    monkeypatch.setattr(_StubServer, "body", json.dumps({"data": [{"id": "other", "root": "other"}]}).encode())
    with pytest.raises(RuntimeError, match="does not serve 'served'; it serves \\['other'\\]") as err:
        _ = BackendSpec(config).model_id  # asks the server
    assert "url-password-77" not in str(err.value)
