"""Personal data at rest: AES-GCM encryption of identity and bank account numbers, with a keyed
hash (HMAC-SHA256) as the lookup index, both derived from DATA_ENCRYPTION_KEY."""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
from functools import lru_cache

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_PREFIX = "v1:"


def _derive(secret: str, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"jiuzhu-personal-data", info=info).derive(secret.encode())


class FieldCipher:
    """``encrypt`` is randomized (a fresh nonce each time); ``index`` is deterministic, so equality
    lookups (the same person, the same account) use the index column, never the plaintext."""

    def __init__(self, secret: str) -> None:
        self._aead = AESGCM(_derive(secret, b"aes-gcm-field-v1"))
        self._index_key = _derive(secret, b"hmac-index-v1")

    def encrypt(self, plaintext: str, *, context: str = "") -> str:
        nonce = os.urandom(12)
        ct = self._aead.encrypt(nonce, plaintext.encode(), context.encode())
        return _PREFIX + base64.urlsafe_b64encode(nonce + ct).decode()

    def decrypt(self, token: str, *, context: str = "") -> str:
        if not token.startswith(_PREFIX):
            raise ValueError("not an encrypted field")
        raw = base64.urlsafe_b64decode(token[len(_PREFIX):])
        return self._aead.decrypt(raw[:12], raw[12:], context.encode()).decode()

    @property
    def index_key(self) -> bytes:
        """The HMAC key of ``index`` (for an engine that computes the same index itself, e.g. in SQL)."""
        return self._index_key

    def index(self, value: str) -> str:
        return hmac.new(self._index_key, value.encode(), hashlib.sha256).hexdigest()


@lru_cache(maxsize=8)
def cipher_for(secret: str) -> FieldCipher:
    return FieldCipher(secret)
