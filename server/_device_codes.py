"""The secrets of the device flow: device codes, user codes, the sealed key hand-off, and the
wrong-code limiter. `server.device` holds the flow itself.

Sealing: between approval in the browser and the CLI's next poll the new API key must wait
somewhere, and the server must not keep it readable. At start the server derives an X25519
key pair from the device code and stores only the public half; approval seals the key to it
(ephemeral X25519 + HKDF-SHA256 + AES-GCM); the poll, which brings the device code, derives
the private half and opens it. The database (even with SECRET_KEY) cannot open a sealed key.
"""

from __future__ import annotations

import collections
import hashlib
import math
import re
import secrets
import time

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

__all__ = [
    "USER_CODE_ALPHABET",
    "WrongCodeLimiter",
    "format_user_code",
    "new_device_code",
    "new_user_code",
    "normalise_user_code",
    "open_sealed",
    "seal",
    "seal_public_key",
]

# RFC 8628 section 6.1: base-20 consonants, no vowels (no words), nothing to confuse (0/O, 1/I/L).
USER_CODE_ALPHABET = "BCDFGHJKMNPQRSTVWXZ"  # 19 letters (no L: it reads as 1 or I in many fonts)
USER_CODE_LENGTH = 8  # 19^8, about 34 bits: guessing is bounded by the wrong-code limit and the lifetime
DEVICE_CODE_RE = re.compile(r"^sld_[A-Za-z0-9_-]{43}$")
_SEAL_INFO = b"sentry-logger device key v1"
_NONCE = bytes(12)  # every sealing uses a fresh ephemeral key, so a fixed nonce is never reused under one key


def new_device_code() -> str:
    """`sld_` + 256 random bits. Only ever shown to the CLI that started the flow."""
    return "sld_" + secrets.token_urlsafe(32)


def new_user_code() -> str:
    """Eight letters from `USER_CODE_ALPHABET`, shown as `WDJB-MJHT`."""
    return format_user_code("".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(USER_CODE_LENGTH)))


def normalise_user_code(value: str) -> str:
    """What people type back: any case, with or without the dash or spaces."""
    return "".join(ch for ch in value.upper() if ch.isalnum())


def format_user_code(code: str) -> str:
    plain = normalise_user_code(code)
    return f"{plain[:4]}-{plain[4:]}" if len(plain) == USER_CODE_LENGTH else plain


def _private_key(device_code: str) -> X25519PrivateKey:
    return X25519PrivateKey.from_private_bytes(hashlib.sha256(b"sentry-logger device seal\0" + device_code.encode()).digest())


def _raw(public: X25519PublicKey) -> bytes:
    return public.public_bytes(Encoding.Raw, PublicFormat.Raw)


def _derive(shared: bytes, ephemeral: bytes, recipient: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_SEAL_INFO + ephemeral + recipient).derive(shared)


def seal_public_key(device_code: str) -> str:
    """The public half (hex) stored at start; approval seals the key to it."""
    return _raw(_private_key(device_code).public_key()).hex()


def seal(secret: str, public_hex: str) -> str:
    recipient = bytes.fromhex(public_hex)
    ephemeral = X25519PrivateKey.generate()
    ephemeral_raw = _raw(ephemeral.public_key())
    key = _derive(ephemeral.exchange(X25519PublicKey.from_public_bytes(recipient)), ephemeral_raw, recipient)
    return (ephemeral_raw + AESGCM(key).encrypt(_NONCE, secret.encode(), None)).hex()


def open_sealed(sealed_hex: str, device_code: str) -> str:
    """The secret sealed to this device code's public key (raises InvalidTag for any other code)."""
    data = bytes.fromhex(sealed_hex)
    ephemeral_raw, box = data[:32], data[32:]
    private = _private_key(device_code)
    key = _derive(private.exchange(X25519PublicKey.from_public_bytes(ephemeral_raw)), ephemeral_raw, _raw(private.public_key()))
    return AESGCM(key).decrypt(_NONCE, box, None).decode()


class WrongCodeLimiter:
    """At most `limit` wrong user codes per key (("user", id) or ("addr", ip)) per `window` seconds.

    Checked *before* a code is looked up, so a blocked caller learns nothing, not even from a
    right guess. Bound: `max_keys` windows, least recently used forgotten first. Per process.
    """

    def __init__(self, limit: int, window: float = 900.0, max_keys: int = 100_000) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self._windows: collections.OrderedDict[object, tuple[float, int]] = collections.OrderedDict()

    def blocked_for(self, *keys: object) -> float:
        """Seconds until every key may try again; 0 when none is blocked."""
        if self.limit <= 0:
            return 0.0
        now, wait = time.monotonic(), 0.0
        for key in keys:
            start, count = self._windows.get(key, (now, 0))
            if now - start < self.window and count >= self.limit:
                wait = max(wait, self.window - (now - start))
        return wait

    def record_wrong(self, *keys: object) -> None:
        now = time.monotonic()
        for key in keys:
            start, count = self._windows.pop(key, (now, 0))
            if now - start >= self.window:
                start, count = now, 0
            self._windows[key] = (start, count + 1)
            if len(self._windows) > self.max_keys:
                self._windows.popitem(last=False)

    @staticmethod
    def retry_after(wait: float) -> str:
        return str(max(1, math.ceil(wait)))
