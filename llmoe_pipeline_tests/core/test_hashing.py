"""hashing.py: known digests, file = bytes, the per-process file cache, and unchanged call-site outputs."""

import hashlib
import json
import os

from llmoe_pipeline.core.hashing import (
    canonical_json,
    sha256_bytes,
    sha256_chunks,
    sha256_file,
    sha256_file_cached,
    sha256_json,
    sha256_text,
)

ABC_SHA256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"  # FIPS 180-2 test vector


def test_known_digests():
    assert sha256_bytes(b"abc") == sha256_text("abc") == sha256_chunks([b"a", b"", b"bc"]) == ABC_SHA256
    assert sha256_text("é") == hashlib.sha256("é".encode()).hexdigest()
    assert sha256_json({"b": 1, "a": [1, 2]}) == sha256_text('{"a": [1, 2], "b": 1}')
    assert canonical_json({"when": object}) == json.dumps({"when": str(object)})


def test_file_hash_equals_bytes_hash(tmp_path):
    data = bytes(range(256)) * 12 + b"tail"  # several 1000-byte chunks and a partial one
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    assert sha256_file(path) == sha256_file(str(path), chunk=1000) == sha256_bytes(data)
    (tmp_path / "abc").write_bytes(b"abc")
    assert sha256_file(tmp_path / "abc") == ABC_SHA256


def test_cached_file_hash_changes_when_the_file_changes(tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(b"abc")
    assert sha256_file_cached(path) == ABC_SHA256
    path.write_bytes(b"abcd")  # new size (and mtime): a new cache key
    assert sha256_file_cached(path) == sha256_bytes(b"abcd")
    path.write_bytes(b"abce")  # same size: the mtime tells the versions apart
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert sha256_file_cached(path) == sha256_bytes(b"abce")


def test_router_cache_key_is_unchanged():
    """The label cache (thousands of labels) is keyed by these strings: they must never change."""
    from llmoe_pipeline.router.cache import cache_key

    old = hashlib.sha256(json.dumps(["m", "v2", "p"]).encode("utf-8")).hexdigest()
    assert cache_key("m", "v2", "p") == old
    prompt = 'Oct 26 "quoted" ✓\n<headlines>…</headlines>'
    assert (
        cache_key("smollm2@gguf-0", "v2", prompt)
        == hashlib.sha256(json.dumps(["smollm2@gguf-0", "v2", prompt]).encode("utf-8")).hexdigest()
    )


def test_router_prompt_sha256_text_is_unchanged():
    from llmoe_pipeline.router.prompt import sha256_text as prompt_sha256_text

    assert prompt_sha256_text("Oct 26 ✓") == hashlib.sha256("Oct 26 ✓".encode()).hexdigest()


def test_config_hash_is_unchanged():
    from llmoe_pipeline.config.protocol import PipelineConfig

    cfg = PipelineConfig()
    # Where the data lives (the data folder, the fetch's updates folder) is not the experiment's identity.
    payload = cfg.model_dump(mode="json", exclude={"data": {"data_dir", "updates_dir"}, "quality": True})
    assert cfg.config_hash() == hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]
    # The quality checks' thresholds only gate a run: they are not part of the experiment's identity.
    stricter = PipelineConfig.model_validate({"quality": {"gaps": {"max_missing_business_days": 3}}})
    assert stricter.quality != cfg.quality and stricter.config_hash() == cfg.config_hash()
