"""Secret redaction: whatever is logged to MLflow (params, tags, argv) passes through here first.

Three rules: a value under a secret-looking key is masked whole; well-known token formats and the values
of secret environment variables are masked wherever they appear; URLs lose their userinfo and their
query-string values (`redact_url`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

REDACTED = "***redacted***"
# A key is secret when one of these words is a whole word in it: HF_TOKEN, OPENAI_API_KEY, db_password,
# but not max_new_tokens or tokenizer.
_SECRET_KEY = re.compile(
    r"(^|[^a-z])(token|secret|passwd|password|pwd|credentials?|api[_-]?key|access[_-]?key|private[_-]?key"
    r"|auth|authorization|bearer)([^a-z]|$)",
    re.IGNORECASE,
)
# Well-known token formats, masked wherever they appear in a value (Hugging Face, OpenAI, GitHub, AWS).
_SECRET_VALUE = re.compile(
    r"\b(hf_[A-Za-z0-9]{20,}|sk-[A-Za-z0-9_-]{20,}|gh[pousr]_[A-Za-z0-9]{20,}|AKIA[0-9A-Z]{16})\b"
)
_MIN_SECRET_LENGTH = 6  # shorter env values ("1", "true") would mask harmless text

# scheme://authority path ?query #fragment, split the way urllib.parse.urlsplit splits them.
_URL = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)([^/?#]*)([^?#]*)(?:\?([^#]*))?(#.*)?\Z", re.DOTALL)
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S+")


def is_secret_key(key: str) -> bool:
    return bool(_SECRET_KEY.search(str(key)))


def redact_url(url: str) -> str:
    """`url` with its userinfo and every non-empty query-string value replaced by `REDACTED`.

    `http://u:p@host:8000/v1?api_key=abc&x=1&flag` becomes
    `http://***redacted***@host:8000/v1?api_key=***redacted***&x=***redacted***&flag`: the host, path,
    query keys, empty values and the fragment are kept as written. Anything that is not a
    `scheme://...` URL is returned unchanged.
    """
    match = _URL.match(url)
    if match is None:
        return url
    scheme, authority, path, query, fragment = match.groups()
    _userinfo, at, host = authority.rpartition("@")
    if at:
        authority = f"{REDACTED}@{host}"
    if query is not None:
        parts = []
        for part in query.split("&"):
            key, eq, value = part.partition("=")
            parts.append(f"{key}={REDACTED}" if eq and value else part)
        query = "&".join(parts)
    return f"{scheme}{authority}{path}" + (f"?{query}" if query is not None else "") + (fragment or "")


def _redact_urls(text: str) -> str:
    """`redact_url` applied to every URL inside `text` (a URL ends at the next whitespace)."""
    if "://" not in text:
        return text
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group()), text)


def _environment_secrets() -> list[str]:
    """Values of secret-looking environment variables, so that they are masked even under innocent keys."""
    return sorted(
        (v for k, v in os.environ.items() if is_secret_key(k) and len(v) >= _MIN_SECRET_LENGTH),
        key=len,
        reverse=True,  # longest first, so a secret containing another is masked whole
    )


def _scrub(text: str, env_secrets: list[str]) -> str:
    text = _redact_urls(text)
    for secret in env_secrets:
        text = text.replace(secret, REDACTED)
    return _SECRET_VALUE.sub(REDACTED, text)


def redact_text(text: str) -> str:
    """Free text (an error message, a log line) with URL credentials and query values, token formats and the
    values of secret environment variables masked."""
    return _scrub(str(text), _environment_secrets())


def redact(mapping: Mapping[str, Any] | None) -> dict[str, str]:
    """String copy of `mapping` that is safe to log: secret-looking keys get their value masked, and
    secret values (token formats, values of secret environment variables, URL credentials and query
    values) are masked anywhere."""
    env_secrets = _environment_secrets()
    return {str(k): REDACTED if is_secret_key(k) else _scrub(str(v), env_secrets) for k, v in (mapping or {}).items()}


def redact_argv(argv: list[str]) -> list[str]:
    """argv with the values of secret-looking options masked (`--hf-token X`, `--api-key=X`), and every
    other argument scrubbed like a `redact` value."""
    env_secrets = _environment_secrets()
    out: list[str] = []
    mask_next = False
    for arg in argv:
        if mask_next:
            out.append(REDACTED)
            mask_next = False
            continue
        name, eq, _ = arg.partition("=")
        if arg.startswith("-") and is_secret_key(name.lstrip("-")):
            if eq:
                out.append(f"{name}={REDACTED}")
            else:
                out.append(arg)
                mask_next = True
            continue
        out.append(_scrub(arg, env_secrets))
    return out
