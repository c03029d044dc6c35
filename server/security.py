"""Secrets: generation, hashing at rest, and the clock used for stored timestamps."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time

__all__ = [
    "API_KEY_RE",
    "ENVIRONMENT_RE",
    "hash_secret",
    "new_api_key",
    "new_session_id",
    "new_token",
    "now_s",
    "now_us",
    "same_secret",
]

ENVIRONMENT_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
API_KEY_RE = re.compile(r"^sk_([a-z0-9][a-z0-9-]{0,31})_([0-9a-f]{40})$")
TOKEN_RE = re.compile(r"^slt_[0-9a-f]{40}$")


def now_s() -> int:
    return int(time.time())


def now_us() -> int:
    return time.time_ns() // 1000


def hash_secret(value: str) -> str:
    """SHA-256 hex digest. Keys and tokens carry 160 random bits, so a fast hash is enough."""
    return hashlib.sha256(value.encode()).hexdigest()


def same_secret(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def new_api_key(environment: str) -> tuple[str, str]:
    """A new ingest key `sk_<environment>_<40 hex>` (160 random bits) and its visible prefix."""
    if not ENVIRONMENT_RE.match(environment):
        raise ValueError("environment must be 1-32 characters of a-z, 0-9 and '-', starting with a letter or digit")
    key = f"sk_{environment}_{secrets.token_hex(20)}"
    return key, key[: len(environment) + 4 + 8]


def new_token() -> tuple[str, str]:
    """A new personal API token `slt_<40 hex>` and its visible prefix."""
    token = f"slt_{secrets.token_hex(20)}"
    return token, token[:12]


def new_session_id() -> str:
    return secrets.token_urlsafe(32)
