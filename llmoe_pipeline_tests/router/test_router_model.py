"""Model resolution: the converted alias and its manifest, Hugging Face ids from the local cache only,
clear errors for what is missing, and the backend factory's settings."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest
from pydantic import ValidationError

from llmoe_pipeline.router.backends import BackendSpec, RouterBackendConfig, make_backend
from llmoe_pipeline.router.model import (
    ALIASES,
    MANIFEST,
    ModelNotFoundError,
    alias_gguf_path,
    model_id_of,
    resolve_model,
    sha256_file,
    verify_manifest,
)


def test_alias_is_converted_once_with_a_verified_manifest(router_model, session_home):
    gguf = alias_gguf_path("smollm2-135m-instruct")
    assert gguf.name == ALIASES["smollm2-135m-instruct"].filename and gguf.stat().st_size > 50_000_000
    assert router_model.path == session_home / "models" / "smollm2-135m-instruct"
    manifest = json.loads((router_model.path / MANIFEST).read_text())
    assert manifest["source"]["sha256"] == sha256_file(gguf)
    assert router_model.model_id == f"smollm2-135m-instruct@gguf-{sha256_file(gguf)[:12]}" == manifest["model_id"]
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(manifest["files"])
    assert json.loads((router_model.path / "config.json").read_text())["model_type"] == "llama"
    assert "quantization_config" not in json.loads((router_model.path / "config.json").read_text())
    assert not list(router_model.path.parent.glob(".*.tmp-*"))  # no temp folder left behind
    mtime = (router_model.path / "model.safetensors").stat().st_mtime_ns
    again = resolve_model("smollm2-135m-instruct", session_home)  # reuse: verified, not converted again
    assert again == router_model and (again.path / "model.safetensors").stat().st_mtime_ns == mtime
    # A local folder is accepted as is and keeps the alias's id (so the label cache is shared).
    assert model_id_of(str(router_model.path)) == router_model.model_id


def test_a_conversion_waits_for_one_in_progress_and_uses_its_result(router_model, tmp_path):
    """Two runs that start together (`llmoe run` refreshes tickers in parallel) must not both convert: each would
    delete the other's temp folder. The second waits for the first's lock, then finds the folder made."""
    import threading

    from llmoe_pipeline.core.files import file_lock
    from llmoe_pipeline.router.model import ensure_alias_converted

    target = tmp_path / "models" / "smollm2-135m-instruct"
    result = []
    with file_lock(target.parent / f".{target.name}.lock"):  # another process is converting
        waiting = threading.Thread(target=lambda: result.append(ensure_alias_converted(target.name, tmp_path)))
        waiting.start()
        waiting.join(timeout=2)
        assert waiting.is_alive() and not result  # it waits instead of converting alongside
        shutil.copytree(router_model.path, target)  # the other process's finished conversion
        made = (target / "model.safetensors").stat().st_mtime_ns
    waiting.join(timeout=60)
    assert result == [target] and (target / "model.safetensors").stat().st_mtime_ns == made  # not converted again
    assert not list(target.parent.glob(".*.tmp-*"))


def test_a_corrupted_file_fails_verification(router_model, tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(router_model.path, copy)
    assert verify_manifest(copy)
    with open(copy / "tokenizer.json", "r+b") as fh:
        fh.seek(100)
        byte = fh.read(1)
        fh.seek(100)
        fh.write(bytes([byte[0] ^ 1]))
    assert not verify_manifest(copy)
    assert not verify_manifest(router_model.path, source_sha256="0" * 64)  # the package's GGUF changed


def test_missing_model_is_one_clear_error(tmp_path):
    with pytest.raises(ModelNotFoundError, match="not available locally.*hf download nobody/no-such-model"):
        resolve_model("nobody/no-such-model")
    with pytest.raises(ModelNotFoundError, match="no config.json"):
        resolve_model(str(tmp_path))
    with pytest.raises(ModelNotFoundError, match="not a folder"):
        model_id_of("not a model name")


def test_hugging_face_id_resolves_from_the_local_cache_only(router_model, tmp_path):
    # A Hugging Face cache laid out as `hf download` leaves it (refs/main -> snapshots/<commit>/).
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--example-org--tiny-router"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        shutil.copy(router_model.path / name, snapshot / name)
    code = textwrap.dedent("""
        from llmoe_pipeline.router.model import model_id_of, resolve_model
        print(model_id_of("example-org/tiny-router"))
        print(resolve_model("example-org/tiny-router").path)
    """)
    # HF_HUB_CACHE is read when huggingface_hub is imported: a fresh interpreter. No network is reachable
    # from the test, and HF_HUB_OFFLINE makes any attempt an error instead of a download.
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    model_id, path = out.stdout.split()
    assert model_id == "example-org/tiny-router@0123456789ab"
    assert path == str(snapshot)


def test_backend_factory_settings():
    with pytest.raises(ValidationError, match=r"backend\n.*'vllm', 'transformers' or 'openai'.*'llamacpp'"):
        RouterBackendConfig(backend="llamacpp")
    with pytest.raises(ValidationError, match=r"bach_size\n.*Extra inputs are not permitted"):
        RouterBackendConfig(backend="transformers", bach_size=8)
    with pytest.raises(ValidationError, match="base_url"):  # the openai backend needs a server
        RouterBackendConfig(backend="openai", model="smollm2", base_url=None)
    with pytest.raises(TypeError, match="expected a RouterBackendConfig"):  # the old flat call is a clear error
        make_backend("transformers")
    spec = BackendSpec(
        RouterBackendConfig(
            backend="vllm",
            model="smollm2-135m-instruct",
            batch_size=256,
            base_url=None,
            api_key_env="X",
            seed=0,
            explanation_max_tokens=40,
        )
    )  # the resource's fields
    assert spec.model_id.startswith("smollm2-135m-instruct@gguf-")  # known without loading anything
