"""Provenance helpers: file hashes and the git-derived tags of a run."""

import hashlib

from llmoe_pipeline.tracking import CODE_VERSION_TAG, GIT_COMMIT_TAG, data_files_hash, file_sha256, provenance_tags


def test_file_sha256(tmp_path):
    sample = tmp_path / "abc.txt"
    sample.write_bytes(b"abc")  # the FIPS 180-2 test vector
    assert file_sha256(sample) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_data_files_hash_covers_names_and_contents_of_existing_files(tmp_path):
    prices, news = tmp_path / "prices.csv", tmp_path / "news.csv"
    prices.write_bytes(b"abc")
    news.write_bytes(b"")
    missing = tmp_path / "missing.csv"
    joined = f"prices.csv:{file_sha256(prices)}news.csv:{file_sha256(news)}"  # the value evaluation logged before
    expected = hashlib.sha256(joined.encode()).hexdigest()[:16]
    assert data_files_hash([prices, missing, str(news)]) == expected
    news.write_bytes(b"headline")
    assert data_files_hash([prices, news]) != expected


def test_provenance_tags():
    tags = provenance_tags()
    sha = tags["mlflow.source.git.commit"]
    assert len(sha) == 40 and int(sha, 16) >= 0
    assert tags["llmoe.git_dirty"] in ("true", "false")
    assert tags["llmoe.code_version"].startswith(sha)
    assert (tags["llmoe.code_version"] == sha) == (tags["llmoe.git_dirty"] == "false")
    assert (GIT_COMMIT_TAG, CODE_VERSION_TAG) == ("mlflow.source.git.commit", "llmoe.code_version")


def test_argv_is_redacted(monkeypatch):
    monkeypatch.setattr("sys.argv", ["llmoe", "--hf-token", "argv-secret", "--url=http://u:p@h/?k=v"])
    assert provenance_tags()["llmoe.argv"] == (
        "llmoe --hf-token ***redacted*** --url=http://***redacted***@h/?k=***redacted***"
    )
