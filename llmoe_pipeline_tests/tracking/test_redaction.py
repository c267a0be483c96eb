"""Secret redaction: secret keys, token formats, secret environment values, URL credentials and query values."""

import pytest

from llmoe_pipeline.tracking import REDACTED, is_secret_key, redact, redact_argv, redact_url


def test_redact_masks_secret_keys_token_formats_and_environment_secrets(monkeypatch):
    monkeypatch.setenv("SOME_API_KEY", "value-from-the-environment")
    assert redact(
        {
            "HF_TOKEN": "x",
            "OPENAI_API_KEY": "x",
            "db_password": "x",
            "aws_secret_access_key": "x",
            "apiKey": "x",
            "max_new_tokens": 64,
            "tokenizer": "gpt2",
            "author": "me",
            "header": "Bearer hf_abcdefghijklmnopqrstuvwx1",
            "url": "https://x/?k=value-from-the-environment",
        }
    ) == {
        "HF_TOKEN": REDACTED,
        "OPENAI_API_KEY": REDACTED,
        "db_password": REDACTED,
        "aws_secret_access_key": REDACTED,
        "apiKey": REDACTED,
        "max_new_tokens": "64",
        "tokenizer": "gpt2",
        "author": "me",
        "header": f"Bearer {REDACTED}",
        "url": f"https://x/?k={REDACTED}",
    }
    assert redact(None) == {}


def test_redact_argv_masks_the_values_of_secret_options():
    assert redact_argv(["p", "--api-key=abc", "--token", "abc", "--tokenizer", "gpt2"]) == [
        "p",
        f"--api-key={REDACTED}",
        "--token",
        REDACTED,
        "--tokenizer",
        "gpt2",
    ]


@pytest.mark.parametrize("key", ["HF_TOKEN", "OPENAI_API_KEY", "db_password", "Authorization", "private-key"])
def test_secret_keys(key):
    assert is_secret_key(key)


@pytest.mark.parametrize("key", ["max_new_tokens", "tokenizer", "author", "keyboard", "url"])
def test_harmless_keys(key):
    assert not is_secret_key(key)


@pytest.mark.parametrize(
    "url, expected",
    [
        # userinfo and every query value
        ("http://u:p@host:8000/v1?api_key=abc&x=1", f"http://{REDACTED}@host:8000/v1?api_key={REDACTED}&x={REDACTED}"),
        # userinfo only: a user name alone (often a token) is masked as well
        ("https://ghp_token@github.com/org/repo.git", f"https://{REDACTED}@github.com/org/repo.git"),
        ("postgresql://user:p%40ss@db.example:5432/mlflow", f"postgresql://{REDACTED}@db.example:5432/mlflow"),
        # an unencoded '@' in the password: the host is what follows the last '@', as urllib reads it
        ("http://user:p@ss@host/", f"http://{REDACTED}@host/"),
        # query only: keys, empty values, bare flags and the fragment are kept
        ("https://x/?k=v&empty=&flag#frag", f"https://x/?k={REDACTED}&empty=&flag#frag"),
        ("https://x/path?a=1=2", f"https://x/path?a={REDACTED}"),
        # neither: unchanged
        ("http://127.0.0.1:5000/#/experiments/1/runs/abc", "http://127.0.0.1:5000/#/experiments/1/runs/abc"),
        ("https://host:8000/v1/models", "https://host:8000/v1/models"),
        ("sqlite:////tmp/mlflow.db", "sqlite:////tmp/mlflow.db"),
        ("http://host/?", "http://host/?"),
        # not a URL: unchanged
        ("models:/m-0123456789", "models:/m-0123456789"),
        ("user:pass@host?x=1", "user:pass@host?x=1"),
        ("just some text", "just some text"),
        ("", ""),
    ],
)
def test_redact_url(url, expected):
    assert redact_url(url) == expected


def test_redact_and_redact_argv_mask_urls_inside_values():
    secret_url = "http://u:pw@host:8000/v1?api_key=abc&x=1"
    masked = f"http://{REDACTED}@host:8000/v1?api_key={REDACTED}&x={REDACTED}"
    assert redact({"base_url": secret_url, "note": f"served at {secret_url} today", "plain": "http://host/v1"}) == {
        "base_url": masked,
        "note": f"served at {masked} today",
        "plain": "http://host/v1",
    }
    assert redact_argv(["llmoe", f"--base-url={secret_url}", "--endpoint", secret_url, "http://host/v1"]) == [
        "llmoe",
        f"--base-url={masked}",
        "--endpoint",
        masked,
        "http://host/v1",
    ]
